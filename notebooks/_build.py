"""Write the exploration notebooks (``python notebooks/_build.py``), stored without outputs.

The notebooks are generated from the cell lists below so that their code stays reviewable
as plain Python; ``tests/test_notebooks.py`` executes them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(text.strip("\n"))


# ---------------------------------------------------------------------------------------------
OPERATORS_TOUR = [
    md("""
# 01 · A tour of the forward operators

Every reconstruction in `ambient-imaging` starts from a *forward operator* `A`: the
measurements are `y = A x + ε`. Training an ambient prior only ever sees `y` and `A`,
never `x`, so it is worth looking at what each instrument actually measures.

This notebook shows, on real data shipped with installed packages:

1. pixel masks (dust and boxes) on an image,
2. Cartesian MRI k-space sampling patterns, simulated coil maps and an ESPIRiT estimate,
3. the uv-coverage and dirty beam of real radio arrays (EHT 2017, VLBA, VLA-A, VLA-D),
4. the adjoint (dot-product) test every operator passes.

Everything runs on a CPU in a few seconds.
"""),
    code("""
%matplotlib inline
import matplotlib.pyplot as plt
import nibabel
import numpy as np
import torch
from skimage import data
from skimage.transform import resize

import ambient_imaging.operators as O
from ambient_imaging.datasets.embedded.mri_brain import template_path
from ambient_imaging.operators.testing import dot_product_test

plt.rcParams["figure.dpi"] = 80
g = torch.Generator().manual_seed(0)
"""),
    md("""
## 1. Pixel masks

`PixelMask(mask, noise_sigma)` keeps the measured pixels and adds noise there:
`y = M ⊙ x + ε`. `dust_mask` erases each pixel independently (the corruption of Ambient
Diffusion, Daras et al. 2023); `box_mask` erases random rectangles (a harder, structured
corruption: whole regions are never seen). Below: the scikit-image *camera* photo,
downsampled to 128², with 60 % dust, with two 40-pixel boxes, and with dust plus noise.
"""),
    code("""
img = torch.from_numpy(data.camera()[::4, ::4].astype(np.float32) / 255.0)[None, None]  # (1, 1, 128, 128)
dust = O.dust_mask((1, 128, 128), corruption=0.6, generator=g)
boxes = O.box_mask((1, 128, 128), box_size=40, n_boxes=2, generator=g)
ops = {
    "dust 60 %": O.PixelMask(dust),
    "2 boxes": O.PixelMask(boxes),
    "dust 60 % + noise σ=0.1": O.PixelMask(dust, noise_sigma=0.1),
}
fig, ax = plt.subplots(1, 4, figsize=(13, 3.5))
ax[0].imshow(img[0, 0], cmap="gray", vmin=0, vmax=1)
ax[0].set_title("clean x")
for a, (name, op) in zip(ax[1:], ops.items()):
    y = op.measure(img, generator=g)
    a.imshow(y[0, 0], cmap="gray", vmin=0, vmax=1)
    a.set_title(f"y: {name}")
for a in ax:
    a.axis("off")
plt.tight_layout()
print("measured fraction:", {k: round(float(op.mask.float().mean()), 3) for k, op in ops.items()})
"""),
    md("""
## 2. MRI: k-space sampling patterns

`mri_mask(shape, acceleration, kind=...)` draws a mask and its auto-calibration (ACS)
region. Lines are phase-encode **columns** (the fastMRI convention); `"poisson"` is a 2-D
Poisson-disc pattern (3-D acquisitions, where both phase-encode directions are free).
About `1/R` of k-space is sampled; the fully sampled centre holds most of the energy and
is what ESPIRiT uses to estimate the coil maps.
"""),
    code("""
kinds = ["random", "equispaced", "variable_density", "poisson"]
fig, ax = plt.subplots(2, 4, figsize=(12, 6.4))
for row, R in enumerate([4, 8]):
    for col, kind in enumerate(kinds):
        mask, acs = O.mri_mask((128, 128), R, kind=kind, seed=1)
        shown = mask[0].float() + acs[0].float()  # 2 = ACS, 1 = sampled, 0 = skipped
        ax[row, col].imshow(shown, cmap="magma", vmin=0, vmax=2, interpolation="nearest")
        ax[row, col].set_title(f"{kind}, R={R}\\nsampled {float(mask.float().mean()):.3f}")
        ax[row, col].axis("off")
plt.suptitle("k-space masks (bright: ACS)")
plt.tight_layout()
"""),
    md("""
### Coil maps: simulated and estimated

A multi-coil acquisition sees the image through coil sensitivities `S_c`:
`y_c = M ⊙ F(S_c x)`. Below, 8 birdcage coils (sigpy's simulation) on a 128² brain-like
image (an axial slice of the MNI152 T1 template shipped with nilearn) are used to simulate k-space; we
then undersample at R=4 and estimate the maps back with ESPIRiT from the ACS lines only.
ESPIRiT maps are normalised (`Σ|S_c|² = 1` inside the object, 0 outside) and their phase
is relative to coil 0, so they match the truth up to that normalisation: compare the
*patterns*, and the coil-combined image `Σ S_c^* F^{-1} y_c` (which the operator's adjoint
computes).
"""),
    code("""
vol = nibabel.load(str(template_path())).get_fdata(dtype=np.float32)  # MNI152 T1 template (nilearn)
axial = np.rot90(vol[:, :, vol.shape[2] // 2 + 10])  # (218, 182) axial slice, nose up
axial = np.pad(axial, ((0, 0), ((218 - 182) // 2, (218 - 182) // 2)))  # square
brain = resize(axial / axial.max(), (128, 128), anti_aliasing=True)
x_mri = torch.from_numpy(brain).to(torch.complex64)[None, None]  # (1, 1, 128, 128)
maps_true = O.birdcage_maps(8, (128, 128))
mask, acs = O.mri_mask((128, 128), 4, kind="random", center_lines=24, seed=0)
op = O.MultiCoilMRI(maps_true[None], mask, acs=acs)
y = op.forward(x_mri)  # (1, 8, 128, 128) k-space, zero off the mask
maps_est = O.espirit_maps(y[0], calib_width=24)
recon = O.MultiCoilMRI(maps_est[None], mask, acs=acs).adjoint(y)

fig, ax = plt.subplots(3, 4, figsize=(11, 8.5))
for c in range(4):
    ax[0, c].imshow(maps_true[2 * c].abs(), cmap="viridis")
    ax[0, c].set_title(f"birdcage |S_{2 * c}|")
    ax[1, c].imshow(maps_est[2 * c].abs(), cmap="viridis")
    ax[1, c].set_title(f"ESPIRiT |S_{2 * c}|")
ax[2, 0].imshow(x_mri[0, 0].abs(), cmap="gray")
ax[2, 0].set_title("image x")
ax[2, 1].imshow(np.log1p(O.rss(y, dim=1)[0].numpy()), cmap="gray")
ax[2, 1].set_title("log RSS k-space (R=4)")
ax[2, 2].imshow(O.rss(O.ifft2c(y), dim=1)[0], cmap="gray")
ax[2, 2].set_title("zero-filled RSS")
ax[2, 3].imshow(recon[0, 0].abs(), cmap="gray")
ax[2, 3].set_title("A^H y with ESPIRiT maps")
for a in ax.flat:
    a.axis("off")
plt.tight_layout()
"""),
    md("""
## 3. Radio interferometry: uv-coverage and dirty beams

An interferometer measures the sky's Fourier transform at the baselines between its
stations, projected on the sky; as the Earth rotates, each baseline traces an ellipse in
the uv plane. `load_array` gives shipped station positions (ECEF), `earth_rotation_uv`
the tracks. The **dirty beam** (point-spread function) is what a point source looks like
in `A^H y`: its side lobes are the structure any reconstruction has to remove. Sparse
arrays (EHT: 8 stations across the Earth) have very few points and strong side lobes; the
compact VLA-D configuration has dense coverage at low resolution; VLA-A, the same 27 antennas
spread ~35× wider, resolves ~35× finer.

Each array is observed at a typical frequency and a declination where it observes well;
the image pixel is chosen so that the longest baseline sits at 25 % of the grid's Nyquist
frequency (the main lobe then spans a few pixels and the side lobes are visible).
"""),
    code("""
setups = {  # array: (frequency Hz, declination deg, hour-angle range h)
    "eht2017": (230e9, 12.4, (-5.0, 5.0)),  # M87
    "vlba": (15e9, 30.0, (-6.0, 6.0)),
    "vla_a": (1.4e9, 34.0, (-4.0, 4.0)),
    "vla_d": (1.4e9, 34.0, (-4.0, 4.0)),
}
n = 128
fig, ax = plt.subplots(2, 4, figsize=(14, 7))
arrays = {}
for i, (name, (freq, dec, ha)) in enumerate(setups.items()):
    layout = O.load_array(name)
    cov = O.earth_rotation_uv(layout, declination_deg=dec, hour_angle_range_h=ha, n_times=48, frequency_hz=freq)
    uv = cov.uv.float()
    uv_max = float(uv.norm(dim=1).max())
    pixel = 0.25 / (2 * uv_max)  # radians: longest baseline at 25 % of Nyquist
    op = O.Interferometer(uv, (n, n), pixel_scale=pixel)
    point = torch.zeros(1, 1, n, n)
    point[..., n // 2, n // 2] = 1.0
    psf = op.measurements_to_image(op.forward(point))[0, 0]  # unit-peak dirty beam
    arrays[name] = (op, pixel)
    k, lam = (1e6, "Mλ") if uv_max > 1e6 else (1e3, "kλ")
    u, v = uv[:, 0] / k, uv[:, 1] / k
    ax[0, i].plot(np.r_[u, -u], np.r_[v, -v], ".", color="k", markersize=0.5)
    ax[0, i].set_aspect("equal")
    ax[0, i].set_title(f"{name}: {len(layout.stations)} stations, {len(uv)} vis\\n{freq / 1e9:g} GHz, δ={dec}°")
    ax[0, i].set_xlabel(f"u [{lam}]")
    ax[0, i].set_ylabel(f"v [{lam}]")
    ext = n * pixel * 206264.806 / 2  # arcsec
    ext, unit = (ext * 1e6, "µas") if ext < 1e-3 else ((ext * 1e3, "mas") if ext < 1 else (ext, "arcsec"))
    ax[1, i].imshow(psf, cmap="RdBu_r", vmin=-1, vmax=1, extent=[ext, -ext, -ext, ext])
    ax[1, i].set_title(f"dirty beam, min side lobe {float(psf.min()):.2f}")
    ax[1, i].set_xlabel(f"Δα [{unit}]")
plt.tight_layout()
"""),
    md("""
## 4. The adjoint test

Samplers, CG solvers and losses all rely on `A^H` being the exact adjoint of `A` under the
real inner product `Re⟨·,·⟩`. `dot_product_test` checks `Re⟨A x, y⟩ = Re⟨x, A^H y⟩` on
random `x`, `y` and returns the relative error, normalised by `‖A x‖ ‖y‖` (double precision:
1e-15 or below; the NUFFT's forward and adjoint use the same kernel, so they are adjoint to
rounding even though each only approximates the exact DFT to its tolerance).
"""),
    code("""
op_mri = O.MultiCoilMRI(maps_true[None].to(torch.complex128), mask, acs=acs)
op_vla = arrays["vla_d"][0]
for name, op, shape, dtype in [
    ("PixelMask (dust)", O.PixelMask(dust), (1, 1, 128, 128), torch.float64),
    ("MultiCoilMRI (8 coils, R=4)", op_mri, (1, 1, 128, 128), torch.complex128),
    ("Interferometer (VLA-D)", op_vla, (1, 1, 128, 128), torch.float64),
]:
    err = dot_product_test(op, shape, dtype=dtype)
    print(f"{name:30s} relative adjoint error {err:.1e}")
    assert err < 1e-6, name
"""),
]

# ---------------------------------------------------------------------------------------------
MRI = [
    md("""
# 02 · MRI: a prior from undersampled k-space only, then posterior sampling

The MRI workflow end to end, at **smoke-test size** so it runs on a laptop CPU in under a
minute:

1. build the embedded `mri-brain` set (multi-coil k-space simulated from the MNI152 T1
   template shipped with nilearn; training k-space is undersampled at R=4, held-out
   k-space is fully sampled and used for scoring only);
2. read the undersampled training files with `FastMRISlices` (ESPIRiT maps are estimated
   from the ACS lines and cached);
3. train a tiny ambient prior for a few dozen steps with the real trainer;
4. reconstruct a held-out slice at R=4 with the default posterior sampler and with the
   zero-filled and ℓ1-wavelet baselines; show mean, standard deviation, PSNR/SSIM.

**This is a smoke-size run**: a tiny network trained for 40 steps has not learned a brain
prior, and its reconstruction will be poor (probably worse than ℓ1-wavelet). It shows the
API and the shapes. For a real result run `ambient-imaging quickstart` (15 minutes of
training on a laptop; a GPU is faster), which uses exactly these pieces.
"""),
    code("""
%matplotlib inline
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ambient_imaging.datasets import FastMRISlices, fastmri_info, read_fastmri_slice
from ambient_imaging.datasets.embedded.mri_brain import build_mri_brain
from ambient_imaging.reconstruction import MaskSpec, default_method_name, make_method, mri_problem, reconstruct
from ambient_imaging.training import TrainConfig, load_prior, train

plt.rcParams["figure.dpi"] = 80
torch.manual_seed(0)
work = Path(tempfile.mkdtemp(prefix="ambient-mri-"))
print("working in", work)
"""),
    md("""
## 1. Build the data

`size="small"` gives 32×32 slices with 8 coils (every third axial slice of the template).
The training split holds **no** fully sampled k-space: each slice has its own random
column mask.
"""),
    code("""
summary = build_mri_brain(work / "mri-brain", size="small", acceleration=4, progress=False)
print({k: summary[k] for k in ("matrix", "n_coils", "train_slices", "val_slices", "center_lines", "seconds")})
train_files = sorted((work / "mri-brain" / "train").glob("*.h5"))
info = fastmri_info(train_files[0])
print(train_files[0].name, {k: info[k] for k in info if k in ("shape", "coils", "slices", "acceleration")})
"""),
    md("""
## 2. Read the training measurements

Each item of `FastMRISlices` is one slice: `y` (k-space divided by a per-slice scale so that
images are O(1)), the `MultiCoilMRI` operator with ESPIRiT maps and the slice's own mask,
and the scale. Below: the mask of a few slices and `A^H y`, the zero-filled coil-combined
image — what the training loss sees of each slice.
"""),
    code("""
ds = FastMRISlices(work / "mri-brain" / "train")
print(len(ds), "training slices")
fig, ax = plt.subplots(2, 4, figsize=(10, 5))
for i, idx in enumerate(np.linspace(0, len(ds) - 1, 4).astype(int)):
    item = ds[int(idx)]
    op = item["operator"]
    ax[0, i].imshow(op.mask_channels()[0, 0], cmap="gray", interpolation="nearest")
    ax[0, i].set_title(f"slice {idx}: mask")
    ax[1, i].imshow(op.adjoint(item["y"][None])[0, 0].abs(), cmap="gray")
    ax[1, i].set_title(f"A^H y (scale {item['scale']:.2g})")
for a in ax.flat:
    a.axis("off")
plt.tight_layout()
print("y:", tuple(item["y"].shape), item["y"].dtype, "| operator:", op)
"""),
    md("""
## 3. Train a tiny ambient prior (smoke size)

`train(TrainConfig(...))` is what `ambient-imaging train` runs. The ambient loss further
subsamples each measurement (`delta` of the non-ACS lines dropped) and asks the network to
predict the *original* measured lines from the further-corrupted ones, so the prior is
learned without any fully sampled data. 40 steps of the `tiny` network take ~10-20 s on
one core.
"""),
    code("""
run_dir = work / "run"
cfg = TrainConfig(data=str(work / "mri-brain" / "train"), operator="mri", out=str(run_dir), loss="ambient",
                  network="tiny", steps=40, batch_size=4, lr=1e-3, warmup_steps=5, checkpoint_every=40,
                  ema_halflife_images=50.0, log_every=10, progress=False, seed=0)
result = train(cfg, verbose=False)
print(result.summary())
prior = load_prior(run_dir)
print("prior:", prior.family, "image", prior.image_shape, "complex" if prior.is_complex else "real",
      "| δ =", prior.delta, "| mask channels:", prior.mask_channels)
"""),
    code("""
import csv

rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
steps = [int(r["step"]) for r in rows]
loss = [float(r["loss"]) for r in rows]
plt.figure(figsize=(4, 2.5))
plt.plot(steps, loss, "o-")
plt.xlabel("step")
plt.ylabel("training loss")
plt.title("smoke-size training")
plt.tight_layout()
"""),
    md("""
## 4. Reconstruct a held-out slice

The held-out file is fully sampled. `mri_problem` — the builder the training dataset uses too —
undersamples one slice with `MaskSpec` (the one rule that turns R into a mask; the same spec and
key give the same mask everywhere), estimates ESPIRiT maps from the *measured* ACS lines, carries
the ACS as protected rows of the operator, and keeps the fully sampled reference for scoring.
`reconstruct` applies and undoes the prior's normalisation, scores against the reference and
reports the data fidelity (reduced χ², ≈ 1 for a fit at the noise level). The prior's default
sampler is chosen from what the prior is (A-DPS, `adps`, for an ambient prior).
"""),
    code("""
val_file = sorted((work / "mri-brain" / "val").glob("*.h5"))[0]
sl = read_fastmri_slice(val_file, 0)
problem = mri_problem(sl["kspace"], mask_spec=MaskSpec("random", 4, seed=123), key=f"{val_file.name}:0")
print(problem.op, {k: problem.meta[k] for k in ("acceleration", "acs_lines", "noise_sigma")})
reference = problem.reference[0, 0].abs().numpy()

default = default_method_name(prior)
gen = torch.Generator().manual_seed(0)
results = {
    "zero-filled": reconstruct(problem, make_method("zero-filled"), name="zero-filled"),
    "ℓ1-wavelet": reconstruct(problem, make_method("l1-wavelet"), name="l1-wavelet"),
    default: reconstruct(problem, make_method(default, prior, steps=12), prior, name=default, samples=4,
                         generator=gen),
}
for name, res in results.items():
    m = res.metrics
    print(f"{name:14s} PSNR {m['psnr']:5.2f} dB  SSIM {m['ssim']:.3f}  χ²_red {m['chi2_red']:7.2f}  "
          f"{m['seconds']:.1f} s")
"""),
    code("""
fig, ax = plt.subplots(1, 5, figsize=(15, 3.4))
vmax = reference.max()
ax[0].imshow(reference, cmap="gray", vmin=0, vmax=vmax)
ax[0].set_title("fully sampled reference")
for a, (name, res) in zip(ax[1:4], results.items()):
    a.imshow(res.mean[0].abs(), cmap="gray", vmin=0, vmax=vmax)
    a.set_title(f"{name} posterior mean" if name == default else name)
im = ax[4].imshow(results[default].std[0], cmap="magma")
ax[4].set_title(f"{default} posterior std")
plt.colorbar(im, ax=ax[4], fraction=0.046)
for a in ax:
    a.axis("off")
plt.tight_layout()
"""),
    md("""
The posterior std map is the per-pixel spread of the 4 samples: where the measurements
constrain the image (and the prior is confident) it is small. With a prior trained this
briefly it mostly reflects the untrained network. Run `ambient-imaging quickstart` for a
properly trained prior and the same comparison on all held-out slices.
"""),
]

# ---------------------------------------------------------------------------------------------
ASTRONOMY = [
    md("""
# 03 · Astronomy: masked sky images (FITS) and interferometric imaging

Two astronomical measurement models:

1. **A masked, noisy sky image** — a patch of the Hubble Deep Field (shipped with
   scikit-image) with cosmic-ray-like "dust" pixels, a satellite streak and noise, written to
   FITS with a celestial WCS and a `MASK` extension, then read back as training measurements
   with `FITSImages`.
2. **Interferometric imaging** — the same patch observed by the VLA in D configuration
   (real station positions, Earth-rotation synthesis) with thermal noise; the dirty image
   `A^H y` versus a regularised maximum-likelihood (RML) image with total-variation and
   positivity, and the reduced χ² of each.
"""),
    code("""
%matplotlib inline
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from astropy.wcs import WCS
from skimage import data
from skimage.color import rgb2gray

from ambient_imaging import operators as O
from ambient_imaging.datasets import FITSImages, read_fits_image, write_fits_image
from ambient_imaging.metrics import psnr
from ambient_imaging.sampling import RMLTV, ZeroFilled, run_method

plt.rcParams["figure.dpi"] = 80
g = torch.Generator().manual_seed(0)
work = Path(tempfile.mkdtemp(prefix="ambient-sky-"))
"""),
    md("""
## 1. A masked Hubble Deep Field patch, through FITS

The corruption: 20 % of pixels lost independently, plus a 3-pixel-wide diagonal streak
(both marked invalid in the mask), plus Gaussian noise. The file carries a TAN-projection
WCS centred on the HDF-N field (RA 12h36m49s, Dec +62°12′58″, 0.04″ pixels) and the noise
level in its header; `read_fits_image` returns the data, the WCS, the validity mask and σ.
"""),
    code("""
hdf = rgb2gray(data.hubble_deep_field())[300:556, 400:656].astype(np.float64)  # 256² patch, [0, 1]
h, w = hdf.shape
valid = O.dust_mask((1, h, w), corruption=0.2, generator=g)[0, 0].numpy()
rr, cc = np.mgrid[:h, :w]
streak = np.abs((rr - 0.45 * cc) - 60) < 1.5  # a satellite trail
valid &= ~streak
sigma = 0.02
observed = np.where(valid, hdf + sigma * np.random.default_rng(0).standard_normal(hdf.shape), 0.0)

wcs = WCS(naxis=2)
wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
wcs.wcs.crval = [189.2042, 62.2161]  # HDF-N
wcs.wcs.crpix = [w / 2 + 0.5, h / 2 + 0.5]
wcs.wcs.cdelt = [-0.04 / 3600, 0.04 / 3600]
path = write_fits_image(work / "hdf_patch.fits", observed.astype(np.float32), wcs=wcs, noise_sigma=sigma,
                        extra={"MASK": valid}, history=["HDF-N patch with synthetic dust, streak and noise"])
sky = read_fits_image(path)
print(path.name, sky.data.shape, "| valid", f"{sky.mask.mean():.3f}", "| σ =", sky.noise_sigma,
      f"({sky.noise_source})", "| centre", sky.wcs.pixel_to_world(w / 2, h / 2).to_string("hmsdms"))
"""),
    code("""
fig = plt.figure(figsize=(12, 4.2))
a0 = fig.add_subplot(1, 3, 1, projection=sky.wcs)
a0.imshow(hdf, cmap="gray", origin="lower", vmin=0, vmax=0.6)
a0.set_title("clean patch (never seen by training)")
a1 = fig.add_subplot(1, 3, 2, projection=sky.wcs)
a1.imshow(sky.data, cmap="gray", origin="lower", vmin=0, vmax=0.6)
a1.set_title("FITS data (masked + noise)")
a2 = fig.add_subplot(1, 3, 3, projection=sky.wcs)
a2.imshow(sky.mask, cmap="gray", origin="lower")
a2.set_title("FITS MASK (white = valid)")
for a in (a0, a1, a2):
    a.coords[0].set_axislabel("RA")
    a.coords[1].set_axislabel("Dec")
plt.tight_layout()
"""),
    md("""
`FITSImages` cuts such files into patches of inpainting measurements — what an ambient
prior trains on (`ambient-imaging train --operator mask --data <folder of FITS>`). Each
item has `y`, a `PixelMask` operator with the file's mask and noise (normalised by the
patch's scale), and the patch's own WCS.
"""),
    code("""
patches = FITSImages(work, patch_size=64)
print(len(patches), "patches of 64²")
fig, ax = plt.subplots(1, 4, figsize=(10, 2.8))
for a, i in zip(ax, [0, 5, 10, 15]):
    item = patches[i]
    a.imshow(item["y"][0], cmap="gray", origin="lower")
    a.set_title(f"patch {item['meta']['origin']}\\nσ/scale = {float(item['operator'].noise_sigma):.3f}", fontsize=9)
    a.axis("off")
plt.tight_layout()
"""),
    md("""
## 2. Interferometric imaging with the VLA (D configuration)

We place a 64² downsampled version of the patch on the sky with 2″ pixels and observe it
at 8.4 GHz (declination +34°, 8 hours of Earth rotation, 27 antennas, 351 baselines). The
longest D-configuration baseline (~1 km) resolves about 7″, so the 2″ pixels are finer than
the data can constrain: the dirty image is the sky convolved with the dirty beam (with its
side lobes), and the RML image (TV + positivity, FISTA) deconvolves it.
"""),
    code("""
sky64 = torch.from_numpy(hdf.reshape(64, 4, 64, 4).mean(axis=(1, 3))).float()[None, None]  # (1, 1, 64, 64)
pixel = 2.0 / 206264.806  # 2 arcsec in radians
cov = O.earth_rotation_uv(O.load_array("vla_d"), declination_deg=34.0, hour_angle_range_h=(-4, 4),
                          n_times=32, frequency_hz=8.4e9)
clean_vis = O.Interferometer(cov.uv.float(), (64, 64), pixel_scale=pixel).forward(sky64)
sigma_vis = 0.05 * float(clean_vis.abs().mean())  # thermal noise, 5 % of the mean |V|
op = O.Interferometer(cov.uv.float(), (64, 64), pixel_scale=pixel, noise_sigma=sigma_vis)
y = op.measure(sky64, generator=g)
print(f"{y.shape[1]} visibilities, |uv|max = {cov.uv.norm(dim=1).max() / 1e3:.1f} kλ, σ = {sigma_vis:.3g}")

dirty = run_method(y, op, None, ZeroFilled())
rml = run_method(y, op, None, RMLTV(lamda=3e-3, steps=300))
truth = sky64[0, 0].numpy()
for name, rec in [("dirty image", dirty), ("RML (TV + positivity)", rml)]:
    print(f"{name:22s} χ²_red {rec.info['chi2_red'][0]:9.2f}   residual ‖Ax−y‖/‖y‖ {rec.info['residual_rel'][0]:.3f}")
print(f"RML PSNR against the true sky: {psnr(truth, rml.mean[0, 0].numpy()):.2f} dB")
"""),
    code("""
fig, ax = plt.subplots(1, 4, figsize=(14, 3.6))
uvk = cov.uv / 1e3
ax[0].plot(np.r_[uvk[:, 0], -uvk[:, 0]], np.r_[uvk[:, 1], -uvk[:, 1]], ",k")
ax[0].set_aspect("equal")
ax[0].set_title("VLA-D uv coverage")
ax[0].set_xlabel("u [kλ]")
ax[1].imshow(truth, cmap="afmhot", origin="lower")
ax[1].set_title("true sky")
ax[2].imshow(dirty.mean[0, 0], cmap="afmhot", origin="lower")
ax[2].set_title(f"dirty image (χ²_red {dirty.info['chi2_red'][0]:.3g})")
ax[3].imshow(rml.mean[0, 0], cmap="afmhot", origin="lower", vmin=0, vmax=truth.max())
ax[3].set_title(f"RML-TV (χ²_red {rml.info['chi2_red'][0]:.2f})")
for a in ax[1:]:
    a.axis("off")
plt.tight_layout()
"""),
    md("""
The dirty image is in units of the dirty beam (unit-peak beam: a point source keeps its
flux as the peak), not of the sky, so its χ² is huge: it is not a model of the data. The
RML image fits the visibilities close to the noise level (χ²_red ≈ 1) but smooths what
the coverage leaves unconstrained — which is where a learned prior, trained with
`--operator interferometry` on such visibilities, adds information and posterior samples
quantify what is left uncertain.
"""),
]

# ---------------------------------------------------------------------------------------------
MEMORIZATION = [
    md("""
# 04 · Memorisation: does training on corrupted data copy the training set less?

Diffusion models trained on small datasets reproduce their training images (Somepalli et
al. 2023, Carlini et al. 2023). Ambient Diffusion (Daras et al. 2023, Sec. 5.2) showed that
priors trained on corrupted images memorise less; the Tweedie variant (Daras et al. 2024)
does the same with noisy data. `run_memorization_study` trains one prior per corruption
level on the LFW faces shipped with scikit-image, draws unconditional samples and measures
for each sample the similarity to its nearest training image (and sample quality).

Here it runs in **quick mode** (16-px faces, a tiny network, 3 training steps per level,
4 samples): the numbers show the table and the plots, not a result. The full study is

```
ambient-imaging study memorization --out memorization-study --minutes 10
```

(see `docs/memorization.md`; a GPU makes the default settings practical).
"""),
    code("""
%matplotlib inline
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

from ambient_imaging.studies import format_table, run_memorization_study

out = Path(tempfile.mkdtemp(prefix="ambient-memo-")) / "study"
report = run_memorization_study(out, quick=True, progress=False, verbose=False, seed=0)
print(format_table(report))
"""),
    md("""
The table has one row per level: the clean baseline (corruption 0), the ambient levels
(fraction of pixels erased) and the noisy-data levels (σ_n). Memorisation columns compare
each sample with its nearest training face; quality columns score the samples. The same
numbers are in `report.json` / `report.csv` in the study folder.
"""),
    code("""
print(sorted(p.name for p in out.iterdir()))
print(json.dumps(report["settings"], indent=1, default=str)[:800])
"""),
    md("""
Below, for each level, the distribution of the similarity between each sample and its
nearest training face (1 = an exact copy). Memorisation shows up as mass near 1; training
on corrupted data should move it left. (The figure is shown with `display(fig)`, which works
whatever matplotlib backend is active.)
"""),
    code("""
fig, ax = plt.subplots(figsize=(6, 3))
for r in report["levels"]:
    ax.hist(r["similarity"], bins=np.linspace(0, 1, 21), histtype="step", linewidth=2,
            label=f"{r['name']} ({r['loss']})")
ax.set_xlabel("similarity to the nearest training face")
ax.set_ylabel("samples")
ax.legend(fontsize=8)
fig.tight_layout()
display(fig)
plt.close(fig)
"""),
    md("""
The study also writes its own summary plot (memorisation and held-out denoising error
against the corruption level) and, per level, the samples above their nearest training faces:
"""),
    code("""
display(Image(filename=str(out / "memorization.png")))
for png in sorted(out.glob("samples_*.png"))[:2]:
    print(png.name)
    display(Image(filename=str(png)))
"""),
]

NOTEBOOKS = {
    "01_operators_tour.ipynb": OPERATORS_TOUR,
    "02_mri.ipynb": MRI,
    "03_astronomy.ipynb": ASTRONOMY,
    "04_memorization.ipynb": MEMORIZATION,
}


def build() -> None:
    """Write every notebook next to this script (no outputs, deterministic metadata)."""
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"  # stable ids: clean diffs
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    build()
