"""Reconstruction quality and speed on held-out fully sampled MRI slices (R = 4 and R = 8).

For every slice: retrospective 1-D random line masks (fully sampled centre) at each
acceleration, then zero-filled, CG-SENSE, L1-wavelet (λ chosen on the first
slice by :func:`~ambient_imaging.sampling.choose_lambda`) and the posterior
samplers (MMPS, DPS, A-DPS, one-step) with (a) a prior trained on undersampled
data only (``--ambient-prior``) and (b) the naive prior that treats ``A^H y`` as
clean (``--naive-prior``). PSNR/SSIM/NMSE on magnitude images against the
coil-combined fully sampled reference (fastMRI conventions), and seconds per slice.
λ of L1-wavelet is chosen on one extra held-out slice that is not scored.

Interferometry (``--sky``, on by default): the held-out patches of the embedded
``sky-hdf`` set observed by real VLA layouts (its UVFITS files), imaged with the dirty
image and RML-TV (and a posterior sampler with ``--sky-prior``); PSNR/SSIM against the
clean patch (dirty images are in Jy/beam, so their PSNR is only indicative) and the
reduced χ² of the residual visibilities.

    python benchmarks/reconstruction.py --data /path/to/heldout --ambient-prior runs/brain-ambient \\
        --naive-prior runs/brain-naive --device cuda
    python benchmarks/reconstruction.py --max-slices 4      # classical methods only, embedded mri-brain

Without ``--data`` the embedded ``mri-brain`` set is built
(``ambient-imaging data build mri-brain``) into ``benchmarks/.cache`` and its
held-out split is used. Writes ``benchmarks/results/reconstruction.md`` and
``.json`` (``--out`` to change) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ambient_imaging.cli.reconstruct import _coil_maps, _ifft2c, _line_mask, _noise_sigma, _read_fastmri
from ambient_imaging.metrics import nmse, psnr, ssim
from ambient_imaging.sampling import ADPS, DPS, MMPS, SENSE, L1Wavelet, OneStep, ZeroFilled, choose_lambda
from ambient_imaging.sampling.api import reconstruct, robust_scale

HERE = Path(__file__).resolve().parent


def embedded_set(name: str, alternative: str) -> Path:
    """``benchmarks/.cache/NAME``, built with ``ambient-imaging data build NAME`` the first time."""
    cache = HERE / ".cache" / name
    if not (cache / "build.json").is_file():
        from ambient_imaging.cli import main

        if main(["data", "build", name, "--out", str(cache)]) != 0 or not cache.exists():
            sys.exit(f"could not build the embedded {name} set; pass {alternative}")
    return cache


def heldout_files(data: str | None) -> list[Path]:
    """fastMRI files of the held-out split (building the embedded ``mri-brain`` set if needed)."""
    if data is None:
        cache = embedded_set("mri-brain", "--data FOLDER (fully sampled .h5 files)")
        for split in ("test", "val", "heldout", "validation"):
            if (cache / split).is_dir():
                cache = cache / split
                break
        data = str(cache)
    path = Path(data)
    files = sorted(path.rglob("*.h5")) if path.is_dir() else [path]
    if not files:
        sys.exit(f"{path}: no .h5 files")
    return files


def slices(files: list[Path], max_slices: int) -> list[tuple[str, int, torch.Tensor, torch.Tensor]]:
    """(file, slice, k-space (Nc,H,W), coil maps) for up to ``max_slices`` central slices."""
    out = []
    for f in files:
        k, mask, _ = _read_fastmri(f)
        if mask is not None:
            print(f"skipping {f.name}: not fully sampled (has a mask)", file=sys.stderr)
            continue
        s0 = k.shape[0] // 2
        for s in sorted(range(k.shape[0]), key=lambda s: abs(s - s0)):
            kt = torch.from_numpy(k[s]).to(torch.complex64)
            out.append((f.name, s, kt, _coil_maps(kt)))
            if len(out) >= max_slices:
                return out
    return out


def slice_problem(k: torch.Tensor, maps: torch.Tensor, cols: np.ndarray):
    """``(op, y, reference magnitude)`` of one fully sampled slice under the line mask ``cols``."""
    try:
        from ambient_imaging.operators import MultiCoilMRI
    except ImportError:  # not exported yet
        from ambient_imaging.operators.mri import MultiCoilMRI

    op = MultiCoilMRI(maps[None], torch.from_numpy(cols)[None], noise_sigma=_noise_sigma(k.numpy(), cols))
    ref = (maps.conj() * _ifft2c(k)).sum(0).abs()
    return op, op.restrict(k[None]), ref


def sky_benchmark(args: argparse.Namespace, device: torch.device) -> dict:
    """Dirty image, RML-TV (and optionally a posterior sampler) on held-out sky-hdf visibilities."""
    from ambient_imaging.datasets import read_uvfits
    from ambient_imaging.sampling import RMLTV

    root = Path(args.sky_data) if args.sky_data else embedded_set("sky-hdf", "--sky-data FOLDER")
    build = json.loads((root / "build.json").read_text())
    clean = np.load(root / "heldout_clean.npy")
    prior = None
    if args.sky_prior:
        from ambient_imaging.training import load_prior

        prior = load_prior(args.sky_prior, device)
    results: dict[str, dict[str, list[float]]] = {}
    n, n_vis = 0, 0
    for array in (a.strip() for a in args.sky_arrays.split(",") if a.strip()):
        info = build["visibilities"].get(array)
        if info is None:
            sys.exit(f"{root}: no visibilities for array {array!r} (have {sorted(build['visibilities'])})")
        files = sorted((root / "uv" / array / "heldout").glob("*.uvfits"))
        n, n_vis = len(files), int(info["n_vis"])
        for f in files:
            idx = int(f.stem.split("_")[-1])
            truth = clean[idx][:, ::-1].astype(np.float64)  # operator image: +l along +column
            y, op = read_uvfits(f).to_operator(truth.shape, pixel_scale=float(info["pixel_scale_rad"]))
            methods = [("dirty image", None, ZeroFilled()), ("RML-TV", None, RMLTV())]
            if prior is not None:
                methods.append(("MMPS (sky prior)", prior, MMPS()))
            for name, pr, method in methods:
                gen = torch.Generator(device=device).manual_seed(args.seed)
                t0 = time.perf_counter()
                rec = reconstruct(y.to(device), op.to(device), pr, method, samples=args.samples if pr else 1,
                                  generator=gen)
                est = rec.mean[0, 0].real.double().cpu().numpy()
                r = results.setdefault(f"{array} | {name}", {"psnr": [], "ssim": [], "chi2": [], "seconds": []})
                r["psnr"].append(psnr(truth, est))
                r["ssim"].append(ssim(truth, est))
                r["chi2"].append(float(rec.info["chi2_red"][0]))
                r["seconds"].append(time.perf_counter() - t0)
        print(f"sky {array}: {n} patches done", file=sys.stderr)
    return {"n": n, "n_vis": n_vis, "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="held-out fully sampled fastMRI file or folder")
    ap.add_argument("--ambient-prior", default=None, help="run dir of a prior trained on undersampled data only")
    ap.add_argument("--naive-prior", default=None, help="run dir of the naive prior (A^H y treated as clean)")
    ap.add_argument("--accelerations", default="4,8")
    ap.add_argument("--center-lines", type=int, default=None)
    ap.add_argument("--max-slices", type=int, default=16)
    ap.add_argument("--samples", type=int, default=4, help="posterior samples per slice")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: each sampler's)")
    ap.add_argument("--samplers", default="mmps,dps,adps,onestep")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results" / "reconstruction.md"))
    ap.add_argument("--no-sky", dest="sky", action="store_false", help="skip the interferometry part")
    ap.add_argument("--sky-data", default=None, help="a built sky-hdf folder (default: build it into .cache)")
    ap.add_argument("--sky-prior", default=None, help="run dir of a prior for 64x64 sky patches (optional)")
    ap.add_argument("--sky-arrays", default="vla_d,vla_a")
    args = ap.parse_args()

    device = torch.device(args.device)
    data = slices(heldout_files(args.data), args.max_slices + 1)
    if len(data) < 2:
        sys.exit("need at least 2 fully sampled slices (one chooses λ, the rest are scored)")
    val_slice = data.pop()  # λ is chosen here and this slice is not scored
    priors = {}
    if args.ambient_prior or args.naive_prior:
        from ambient_imaging.training import load_prior

        for name, run in (("ambient", args.ambient_prior), ("naive", args.naive_prior)):
            if run:
                priors[name] = load_prior(run, device)
    kw = {} if args.steps is None else {"steps": args.steps}
    sampler_objs = {"mmps": MMPS(**kw), "dps": DPS(**kw), "adps": ADPS(**kw), "onestep": OneStep()}
    wanted = [s.strip() for s in args.samplers.split(",") if s.strip()]

    results: dict[str, dict[str, list[float]]] = {}

    def record(key: str, ref: np.ndarray, est: np.ndarray, seconds: float) -> None:
        r = results.setdefault(key, {"psnr": [], "ssim": [], "nmse": [], "seconds": []})
        r["psnr"].append(psnr(ref, est))
        r["ssim"].append(ssim(ref, est))
        r["nmse"].append(nmse(ref, est))
        r["seconds"].append(seconds)

    lam = None
    for accel in (float(a) for a in args.accelerations.split(",")):
        for i, (fname, s, k, maps) in enumerate(data):
            h, w = k.shape[-2:]
            op, y, ref_t = slice_problem(k, maps, _line_mask(w, accel, args.center_lines, args.seed + 1000 * i + s))
            ref = ref_t.numpy()
            if lam is None:  # λ on the validation slice at the first acceleration
                _, vs, vk, vmaps = val_slice
                vop, vy, vref = slice_problem(vk, vmaps, _line_mask(w, accel, args.center_lines,
                                                                     args.seed + 999_999 + vs))
                sc = robust_scale(vy, vop)
                lam, scores = choose_lambda(vy / sc.to(vy.real.dtype).reshape(-1, 1, 1, 1), vop,
                                            vref[None, None] / sc.float())
                print(f"L1-wavelet λ = {lam:g} (PSNR by λ on the validation slice: {scores})", file=sys.stderr)
            methods = [("zero-filled", None, ZeroFilled()), ("sense", None, SENSE(lamda=1e-3)),
                       ("l1-wavelet", None, L1Wavelet(lamda=lam))]
            for pname, prior in priors.items():
                for sname in wanted:
                    if sname == "adps" and prior.mask_channels == 0:
                        continue  # A-DPS needs an ambient prior (mask channels)
                    methods.append((f"{sname} ({pname} prior)", prior, sampler_objs[sname]))
            for name, prior, method in methods:
                gen = torch.Generator(device=device).manual_seed(args.seed)
                t0 = time.perf_counter()
                rec = reconstruct(y, op, prior, method, samples=args.samples if prior is not None else 1,
                                  generator=gen)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                record(f"R={accel:g} | {name}", ref, rec.mean[0, 0].abs().cpu().numpy(), time.perf_counter() - t0)
            print(f"R={accel:g} {fname} slice {s} done", file=sys.stderr)

    def fmt(v: list[float], digits: int = 2) -> str:
        a = np.asarray([x for x in v if math.isfinite(x)])
        return f"{a.mean():.{digits}f} ± {a.std():.{digits}f}" if a.size else "nan"

    lines = [
        "# Reconstruction benchmark (held-out MRI slices)",
        "",
        f"{len(data)} slices, {args.samples} posterior samples, device {device} "
        f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'}), "
        f"priors: ambient={args.ambient_prior}, naive={args.naive_prior}. Mean ± std over slices; PSNR/SSIM/NMSE "
        "on magnitude vs the coil-combined fully sampled reference (fastMRI conventions, SSIM 7×7, "
        "data range = reference max).",
        "",
        "| acceleration | method | PSNR (dB) | SSIM | NMSE | s / slice |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        accel, name = key.split(" | ")
        lines.append(f"| {accel} | {name} | {fmt(r['psnr'])} | {fmt(r['ssim'], 3)} | {fmt(r['nmse'], 4)} | "
                     f"{fmt(r['seconds'])} |")
    sky = sky_benchmark(args, device) if args.sky else {}
    if sky:
        lines += [
            "",
            "## Interferometry (held-out sky-hdf patches, real VLA layouts)",
            "",
            f"{sky['n']} patches per array, 64×64, {sky['n_vis']} visibilities each (Earth-rotation synthesis ±3 h, "
            "thermal noise). PSNR/SSIM vs the clean patch (data range = its max); the dirty image is in "
            "Jy/beam (indicative only); χ²_red of the residual visibilities (1 = fits to the noise).",
            "",
            "| array | method | PSNR (dB) | SSIM | χ²_red | s / image |",
            "|---|---|---|---|---|---|",
        ]
        for key, r in sky["results"].items():
            array, name = key.split(" | ")
            lines.append(f"| {array} | {name} | {fmt(r['psnr'])} | {fmt(r['ssim'], 3)} | {fmt(r['chi2'], 2)} | "
                         f"{fmt(r['seconds'])} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"args": vars(args), "results": results, "sky": sky}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
