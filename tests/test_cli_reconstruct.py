"""The sample / reconstruct / evaluate commands on tiny data (classical paths and tiny trained priors)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from _toy_mri import coil_maps, fft2c, mri_class, phantom

import ambient_imaging.operators as ops
from ambient_imaging.cli import main
from ambient_imaging.datasets import load_reconstruction
from ambient_imaging.operators import PixelMask

N = 32


@pytest.fixture(autouse=True)
def _mri_operator(monkeypatch):
    """Use MultiCoilMRI when it exists; until then the stand-in with the same contract."""
    if not hasattr(ops, "MultiCoilMRI"):
        monkeypatch.setattr(ops, "MultiCoilMRI", mri_class(), raising=False)


@pytest.fixture(scope="module")
def fastmri_file(tmp_path_factory):
    """A fully sampled 2-slice, 4-coil fastMRI-layout file."""
    path = tmp_path_factory.mktemp("data") / "file_brain_toy.h5"
    maps = coil_maps(4, N, N, torch.complex64)[0]
    x = phantom(N).to(torch.complex64)[0, 0]
    g = torch.Generator().manual_seed(0)
    ks = []
    for s in range(2):
        img = x * (1.0 + 0.2 * s)
        k = fft2c(maps * img)
        k = k + 1e-3 * torch.complex(torch.randn(k.shape, generator=g), torch.randn(k.shape, generator=g))
        ks.append(k.numpy())
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=np.stack(ks).astype(np.complex64))
        f.attrs["acquisition"] = "AXT2"
    return path


def _run(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _train_tiny(run_dir, family: str):
    """A 2-step training run through the trainer API (a real run directory for load_prior)."""
    from ambient_imaging.training import TrainConfig, Trainer, build_network
    from ambient_imaging.training.losses import AmbientLoss

    g = torch.Generator().manual_seed(0)
    items = []
    if family == "mask":
        for _ in range(4):
            m = torch.rand(1, 1, 16, 16, generator=g) > 0.3
            x = torch.rand(1, 16, 16, generator=g) * 2 - 1
            items.append({"y": x * m[0], "operator": PixelMask(m), "scale": 1.0})
        shape, is_complex, rule = (1, 16, 16), False, "affine [0,1] -> [-1,1]"
    else:
        maps = coil_maps(4, N, N, torch.complex64)
        x = phantom(N).to(torch.complex64)
        for i in range(4):
            cols = torch.rand(N, generator=g) < 0.4
            cols[N // 2 - 3 : N // 2 + 3] = True
            op = ops.MultiCoilMRI(maps, cols[None, None, :].expand(1, N, N).clone())
            items.append({"y": op.forward(x * (1 + 0.1 * i))[0], "operator": op, "scale": 1.0})
        shape, is_complex, rule = (1, N, N), True, "none"
    cfg = TrainConfig(data="test", operator=family, out=str(run_dir), steps=2, batch_size=2, network="tiny",
                      checkpoint_every=2, log_every=1, progress=False, device="cpu", warmup_steps=1)
    net = build_network(cfg, shape, is_complex, 1)
    info = {"family": family, "image_shape": list(shape), "is_complex": is_complex, "mask_channels": 1,
            "noise_sigma": 0.0, "delta": 0.1, "corruption": 0.3 if family == "mask" else 0.0,
            "sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 0.5, "scale_rule": rule, "loss": "ambient"}
    Trainer(cfg, items, net, AmbientLoss(delta=0.1), run_dir=run_dir, prior_info=info).fit()
    return run_dir


@pytest.fixture(scope="module")
def mask_prior(tmp_path_factory):
    pytest.importorskip("ambient_imaging.training.losses")
    return _train_tiny(tmp_path_factory.mktemp("runs") / "mask", "mask")


@pytest.fixture(scope="module")
def mri_prior(tmp_path_factory):
    pytest.importorskip("ambient_imaging.training.losses")
    mp = pytest.MonkeyPatch()
    if not hasattr(ops, "MultiCoilMRI"):
        mp.setattr(ops, "MultiCoilMRI", mri_class(), raising=False)
    try:
        return _train_tiny(tmp_path_factory.mktemp("runs") / "mri", "mri")
    finally:
        mp.undo()


def test_classical_mri_paths_and_evaluate(fastmri_file, tmp_path, capsys):

    res = tmp_path / "results"
    code, out, err = _run(["reconstruct", "--data", fastmri_file, "--sampler", "zero-filled", "--out",
                           res / "zf.nc", "--acceleration", 3, "--center-lines", 6], capsys)
    assert code == 0, err
    assert "psnr" in out and "file_brain_toy.h5" in out
    with load_reconstruction(res / "zf.nc") as ds:
        assert ds["mean"].dims == ("slice", "y", "x") and ds.sizes["slice"] == 2
        assert "reference" in ds and "std" in ds
    zf = json.loads((res / "zf.metrics.json").read_text())
    assert len(zf["slices"]) == 2 and 2 <= zf["slices"][0]["acceleration"] <= 8

    code, out, err = _run(["reconstruct", "--data", fastmri_file, "--sampler", "l1-wavelet", "--out",
                           res / "l1.h5", "--acceleration", 3, "--center-lines", 6, "--slices", "1"], capsys)
    assert code == 0, err
    with h5py.File(res / "l1.h5") as f:
        assert f["reconstruction"].shape == (1, N, N) and f["reconstruction"].dtype == np.float32
    l1 = json.loads((res / "l1.metrics.json").read_text())["slices"][0]
    assert l1["slice"] == 1 and l1["psnr"] > l1["psnr_zero_filled"]

    code, out, err = _run(["reconstruct", "--data", fastmri_file, "--sampler", "sense", "--out", res / "sense.nc",
                           "--acceleration", 1, "--crop", 20], capsys)
    assert code == 0, err
    sense = json.loads((res / "sense.metrics.json").read_text())["slices"][0]
    # fully sampled: the RSS estimate keeps every measured sample, so it is the RSS target itself
    # (NMSE 0; PSNR infinite, null in JSON)
    assert sense["nmse"] < 1e-10 and (sense["psnr"] is None or sense["psnr"] > 100)

    code, out, err = _run(["evaluate", res, "--out", tmp_path / "table.csv"], capsys)
    assert code == 0, err
    lines = (tmp_path / "table.csv").read_text().strip().splitlines()
    assert len(lines) == 4 and "psnr" in lines[0]
    assert (tmp_path / "table.png").stat().st_size > 0
    assert "l1-wavelet" in out


def test_folder_of_files(fastmri_file, tmp_path, capsys):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.h5", "b.h5"):
        shutil.copy(fastmri_file, folder / name)
    code, out, err = _run(["reconstruct", "--data", folder, "--sampler", "zero-filled", "--out", tmp_path / "out",
                           "--slices", "0"], capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "a.nc").exists() and (tmp_path / "out" / "b.metrics.json").exists()
    code, _, err = _run(["reconstruct", "--data", folder, "--out", tmp_path / "one.nc"], capsys)
    assert code == 1 and "must be a folder" in err
    # files with different slice counts (the embedded set's last held-out file has 1 slice):
    # --slices applies per file and a file without them is skipped
    with h5py.File(fastmri_file) as src, h5py.File(folder / "c.h5", "w") as dst:
        dst.create_dataset("kspace", data=src["kspace"][:1])
    code, out, err = _run(["reconstruct", "--data", folder, "--sampler", "zero-filled", "--out",
                           tmp_path / "out2", "--slices", "0-1"], capsys)
    assert code == 0, err
    assert len(json.loads((tmp_path / "out2" / "c.metrics.json").read_text())["slices"]) == 1
    assert len(json.loads((tmp_path / "out2" / "a.metrics.json").read_text())["slices"]) == 2
    code, out, err = _run(["reconstruct", "--data", folder, "--sampler", "zero-filled", "--out",
                           tmp_path / "out3", "--slices", "5"], capsys)
    assert code == 1 and "no file" in err
    code, out, err = _run(["reconstruct", "--data", folder / "c.h5", "--sampler", "zero-filled", "--out",
                           tmp_path / "c.nc", "--slices", "1"], capsys)
    assert code == 1 and "out of range" in err  # a single file stays strict


def test_posterior_mri_with_tiny_prior(fastmri_file, mri_prior, tmp_path, capsys):

    for sampler in ("mmps", "dps", "adps", "onestep", "daps"):
        out_file = tmp_path / f"{sampler}.nc"
        code, out, err = _run(["reconstruct", "--prior", mri_prior, "--data", fastmri_file, "--sampler", sampler,
                               "--samples", 2, "--steps", 2, "--slices", "0", "--out", out_file], capsys)
        assert code == 0, err
        with load_reconstruction(out_file) as ds:  # dims (sample, slice, y, x)
            assert ds["samples"].shape == (2, 1, N, N) and ds["samples"].dtype.kind == "c"
            assert np.isfinite(ds["mean"].values).all()
        row = json.loads(out_file.with_suffix(".metrics.json").read_text())["slices"][0]
        assert row["nfe"] >= 1 and np.isfinite(row["psnr"])


def test_calibrate_on_validation_files(fastmri_file, mri_prior, tmp_path, capsys):
    """--calibrate DIR fits one split-conformal scale on validation files; metrics report raw and
    calibrated coverage, spread-skill, CRPS and interval width; the record is reused with --calibration."""
    import shutil

    val = tmp_path / "val"
    val.mkdir()
    shutil.copy(fastmri_file, val / "val_brain.h5")
    out_file = tmp_path / "cal.nc"
    code, out, err = _run(["reconstruct", "--prior", mri_prior, "--data", fastmri_file, "--sampler", "daps",
                           "--samples", 3, "--steps", 3, "--slices", "0", "--calibrate", val, "--out", out_file],
                          capsys)
    assert code == 0, err
    record = json.loads(out_file.with_suffix(".calibration.json").read_text())
    assert record["kind"] == "split-conformal" and record["q"] > 0 and record["slices"] == 2
    assert record["method"] == "daps"
    metrics = json.loads(out_file.with_suffix(".metrics.json").read_text())
    row = metrics["slices"][0]
    for key in ("coverage_raw", "coverage", "spread_skill", "crps", "interval_width", "coverage_90"):
        assert np.isfinite(row[key]), key
    assert metrics["calibration"]["q"] == record["q"]
    assert "coverage" in out  # the printed table
    # the saved record is reused as is
    code, out, err = _run(["reconstruct", "--prior", mri_prior, "--data", fastmri_file, "--sampler", "daps",
                           "--samples", 3, "--steps", 3, "--slices", "1", "--out", tmp_path / "again.nc",
                           "--calibration", out_file.with_suffix(".calibration.json")], capsys)
    assert code == 0, err
    again = json.loads((tmp_path / "again.metrics.json").read_text())
    assert again["calibration"]["q"] == record["q"] and np.isfinite(again["slices"][0]["coverage"])
    code, _, err = _run(["reconstruct", "--data", fastmri_file, "--sampler", "zero-filled", "--calibrate", val,
                         "--out", tmp_path / "zf.nc"], capsys)
    assert code == 1 and "no uncertainty" in err


def test_other_matrix_size_and_coil_count(mri_prior, tmp_path, capsys):
    """A prior trained on 32x32 / 4 coils reconstructs a 3-coil 24x40 file (sizes travel through padding)."""
    maps = coil_maps(3, 24, 40, torch.complex64)[0]
    img = torch.nn.functional.interpolate(phantom(48).real.float(), size=(24, 40))[0, 0].to(torch.complex64)
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=fft2c(maps * img)[None].numpy())
    out_file = tmp_path / "other.nc"
    args = ["reconstruct", "--prior", mri_prior, "--data", path, "--sampler", "mmps", "--steps", 2, "--samples", 2,
            "--out", out_file]
    code, out, err = _run(args, capsys)  # another matrix: refused, with the commands that make a matching prior
    assert code == 1 and "--matrix 24,40" in err and "--allow-size-mismatch" in err and not out_file.exists()
    code, out, err = _run([*args, "--allow-size-mismatch"], capsys)
    assert code == 0, err

    with load_reconstruction(out_file) as ds:
        assert ds["mean"].shape == (1, 24, 40) and np.isfinite(ds["mean"].values).all()


def test_sample_command(mask_prior, tmp_path, capsys):

    for sampler in ("fixed-mask", "heun", "euler"):
        out_file = tmp_path / f"s_{sampler}.nc"
        code, out, err = _run(["sample", "--prior", mask_prior, "--n", 3, "--steps", 3, "--sampler", sampler,
                               "--out", out_file, "--device", "cpu"], capsys)
        assert code == 0, err
        with load_reconstruction(out_file) as ds:
            assert ds["samples"].shape == (3, 1, 16, 16)
            assert int(ds.attrs["nfe"]) == (3 if sampler == "euler" else 5)
        assert out_file.with_suffix(".png").stat().st_size > 0
    code, _, err = _run(["sample", "--prior", mask_prior, "--n", 2, "--sampler", "truncated", "--out",
                         tmp_path / "t.nc"], capsys)
    assert code == 1 and "noisy data" in err


def test_fits_inpainting(mask_prior, tmp_path, capsys):
    from astropy.io import fits

    # 20x20: not the 16x16 the prior was trained on, and not a multiple of the network stride
    img = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    img[4:8, 4:8] = np.nan
    hdr = fits.Header()
    hdr["CTYPE1"], hdr["CTYPE2"], hdr["OBJECT"] = "RA---SIN", "DEC--SIN", "toy"
    src = tmp_path / "sky.fits"
    fits.PrimaryHDU(img, header=hdr).writeto(src)
    for sampler, extra in (("zero-filled", []), ("mmps", ["--prior", mask_prior, "--steps", 2, "--samples", 2])):
        out_file = tmp_path / f"in_{sampler}.fits"
        code, out, err = _run(["reconstruct", "--data", src, "--sampler", sampler, "--out", out_file, *extra], capsys)
        assert code == 0, err
        with fits.open(out_file) as hdul:
            assert hdul[0].header["OBJECT"] == "toy" and hdul["STD"].data.shape == (20, 20)
            assert np.isfinite(hdul[0].data).all()
            obs = ~np.isnan(img)
            if sampler == "zero-filled":
                np.testing.assert_allclose(hdul[0].data[obs], img[obs], rtol=1e-6)


def test_bad_inputs(fastmri_file, mask_prior, tmp_path, capsys):
    code, _, err = _run(["reconstruct", "--prior", mask_prior, "--data", fastmri_file, "--sampler", "mmps",
                         "--out", tmp_path / "x.nc", "--steps", 2], capsys)
    assert code == 1 and "cannot reconstruct multi-coil MRI" in err
    code, _, err = _run(["reconstruct", "--data", fastmri_file, "--sampler", "mmps", "--out", tmp_path / "x.nc"],
                        capsys)
    assert code == 1 and "needs --prior" in err
    code, _, err = _run(["reconstruct", "--data", tmp_path / "missing.h5", "--out", tmp_path / "x.nc"], capsys)
    assert code == 1 and "missing.h5" in err
    code, _, err = _run(["reconstruct", "--data", fastmri_file, "--out", tmp_path / "x.nc", "--slices", "0,7"],
                        capsys)
    assert code == 1 and "out of range" in err
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("image", data=np.zeros((2, 4, 4)))
    code, _, err = _run(["reconstruct", "--data", bad, "--out", tmp_path / "x.nc"], capsys)
    assert code == 1 and "no 'kspace'" in err and "bad.h5" in err
    assert not (tmp_path / "x.nc").exists()
    code, _, err = _run(["evaluate", tmp_path / "nothing"], capsys)
    assert code == 1


def test_api_rejects_mismatched_priors_and_coils(mask_prior):
    from ambient_imaging.sampling import MMPS
    from ambient_imaging.sampling import run_method as reconstruct
    from ambient_imaging.training import load_prior

    prior = load_prior(mask_prior)
    maps = coil_maps(4, N, N, torch.complex64)
    op = ops.MultiCoilMRI(maps, torch.ones(1, N, N, dtype=torch.bool))
    with pytest.raises(ValueError, match="3 coils|do not fit|coil"):
        reconstruct(torch.zeros(1, 3, N, N, dtype=torch.complex64), op)
    with pytest.raises(ValueError, match="cannot reconstruct"):
        reconstruct(torch.zeros(1, 4, N, N, dtype=torch.complex64), op, prior, MMPS(steps=2))
    # right family, wrong number type: a real-image prior on complex images
    prior.family = "mri"
    with pytest.raises(TypeError, match="real images"):
        reconstruct(torch.zeros(1, 4, N, N, dtype=torch.complex64), op, prior, MMPS(steps=2))


def _write_uvfits(path, uv, vis, sigma, freq=230e9, ra=187.7, dec=12.39):
    from astropy.io import fits

    m = len(uv)
    data = np.zeros((m, 1, 1, 1, 1, 1, 3), dtype=np.float32)
    data[..., 0] = vis.real.reshape(m, 1, 1, 1, 1, 1)
    data[..., 1] = vis.imag.reshape(m, 1, 1, 1, 1, 1)
    data[..., 2] = (1.0 / sigma**2).reshape(m, 1, 1, 1, 1, 1)
    pars = [uv[:, 0] / freq, uv[:, 1] / freq, np.zeros(m), np.full(m, 258.0), np.full(m, 2457854.5)]
    gd = fits.GroupData(data, parnames=["UU", "VV", "WW", "BASELINE", "DATE"], pardata=pars, bitpix=-32)
    hdu = fits.GroupsHDU(gd)
    for i, (ct, cv) in enumerate((("COMPLEX", 1.0), ("STOKES", 1.0), ("FREQ", freq), ("IF", 1.0), ("RA", ra),
                                  ("DEC", dec)), start=2):
        hdu.header[f"CTYPE{i}"], hdu.header[f"CRVAL{i}"] = ct, cv
    hdu.header["OBJECT"] = "M87-toy"
    hdu.writeto(path)


def test_uvfits_imaging(tmp_path, capsys):
    from astropy.io import fits

    from ambient_imaging.operators import Interferometer
    from ambient_imaging.reconstruction import parse_angle

    npix, fov = 16, "160uas"
    pixel = parse_angle(fov) / npix
    assert pixel == pytest.approx(10e-6 / 3600 * np.pi / 180)
    g = torch.Generator().manual_seed(0)
    m = 300
    r = (0.45 / pixel) * torch.sqrt(torch.rand(m, generator=g, dtype=torch.float64))
    th = 2 * np.pi * torch.rand(m, generator=g, dtype=torch.float64)
    uv = torch.stack([r * torch.cos(th), r * torch.sin(th)], 1)
    yy, xx = torch.meshgrid(torch.arange(npix, dtype=torch.float64), torch.arange(npix, dtype=torch.float64),
                            indexing="ij")
    ring = torch.exp(-((torch.sqrt((yy - 8) ** 2 + (xx - 8) ** 2) - 4) ** 2) / 1.5)[None, None]
    sigma = 0.05
    op = Interferometer(uv, (npix, npix), pixel, noise_sigma=sigma)
    vis = op.measure(ring, g)[0].numpy()
    src = tmp_path / "obs.uvfits"
    _write_uvfits(src, uv.numpy(), vis, np.full(m, sigma))
    chi = {}
    for sampler in ("zero-filled", "rml-tv"):
        out_file = tmp_path / f"{sampler}.fits"
        code, out, err = _run(["reconstruct", "--data", src, "--sampler", sampler, "--fov", fov, "--npix", npix,
                               "--out", out_file], capsys)
        assert code == 0, err
        assert "chi2_red" in out
        with fits.open(out_file) as hdul:
            h = hdul[0].header
            assert h["CTYPE1"] == "RA---SIN" and h["CRVAL1"] == pytest.approx(187.7)
            assert h["CDELT2"] == pytest.approx(np.degrees(pixel)) and hdul[0].data.shape == (npix, npix)
        chi[sampler] = json.loads(out_file.with_suffix(".metrics.json").read_text())["slices"][0]["chi2_red"]
    # the RML image fits the data at about the noise level; the dirty image does not
    assert chi["rml-tv"] < 3 and chi["rml-tv"] < chi["zero-filled"]
    code, _, err = _run(["reconstruct", "--data", src, "--out", tmp_path / "x.fits"], capsys)
    assert code == 1 and "--fov" in err


def test_closure_rml_cli_on_gain_corrupted_vlbi(tmp_path, capsys):
    """EHT-like UVFITS with random station phases: closure RML fits (χ² ≤ 1.5) and writes an east-left FITS
    ring with WCS; complex-visibility RML-TV warns, and --strict makes that an error."""
    from astropy.io import fits

    from ambient_imaging.datasets.simulate_vlbi import UAS, simulate_eht

    uv = tmp_path / "eht.uvfits"
    simulate_eht((32, 32), 160 * UAS, n_times=40, seed=1, path=uv)
    out = tmp_path / "ring.fits"
    code, printed, err = _run(["reconstruct", "--data", uv, "--sampler", "rml", "--data-terms", "cphase,logcamp",
                               "--fov", "160uas", "--npix", 32, "--out", out], capsys)
    assert code == 0, err
    m = json.loads(out.with_suffix(".metrics.json").read_text())
    assert m["chi2_cphase"] <= 1.5 and m["chi2_logcamp"] <= 1.5, m
    with fits.open(out) as hdul:
        h = hdul[0].header
        assert h["CDELT1"] < 0 < h["CDELT2"] and h["BUNIT"] == "JY/PIXEL" and h["CTYPE1"].startswith("RA")
        assert float(hdul[0].data.sum()) > 0
    code, _, err = _run(["reconstruct", "--data", uv, "--sampler", "rml-tv", "--fov", "160uas", "--npix", 32,
                         "--out", tmp_path / "tv.fits", "--strict"], capsys)
    assert code == 1 and "chi2" in err


def test_absurd_visibility_flags_are_refused_before_work(tmp_path, capsys):
    from ambient_imaging.datasets.simulate_vlbi import UAS, simulate_eht

    uv = tmp_path / "eht.uvfits"
    simulate_eht((16, 16), 160 * UAS, n_times=6, seed=2, path=uv)
    for flags, msg in ((["--fov", "1e-9uas"], "synthesized beams"), (["--fov", "160uas", "--npix", 100000], "npix"),
                       (["--fov", "160uas", "--device", "bogus"], "device")):
        code, _, err = _run(["reconstruct", "--data", uv, "--sampler", "rml-tv", "--out", tmp_path / "x.fits", *flags],
                            capsys)
        assert code == 1 and msg in err, err
    assert not (tmp_path / "x.fits").exists()
