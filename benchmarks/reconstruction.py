"""Reconstruction quality and speed on held-out fully sampled MRI slices (R = 4 and R = 8).

One run, one mask per slice shared by every method (``MaskSpec.sample(key="<file>:<slice>")``,
the rule training and ``reconstruct`` use), then:

* classical: zero-filled, CG-SENSE, L1-wavelet (λ chosen on one extra held-out slice that is
  not scored, :func:`~ambient_imaging.sampling.choose_lambda`);
* for each prior given — ``--ambient-prior`` (trained on undersampled k-space only),
  ``--naive-prior`` (``A^H y`` treated as clean) and ``--oracle-prior`` (trained on the fully
  sampled images: evaluation only) — its **default** sampler plus ``--samplers`` (one-step,
  A-DPS, MMPS, DPS).

PSNR / SSIM / NMSE on magnitude images against the coil-combined fully sampled reference
(fastMRI conventions: SSIM 7×7, data range = reference max), 2σ coverage of the posterior
samples (fraction of pixels inside the object — reference above 5 % of its maximum — with
``|ref − mean| ≤ 2·std`` on magnitudes; 95.4 % if calibrated), seconds per slice and network
evaluations (NFE) per sample.

    python benchmarks/reconstruction.py --ambient-prior runs/amb --naive-prior runs/naive \\
        --oracle-prior runs/oracle --max-slices 6 --samples 4

Without ``--data`` the embedded ``mri-brain`` set is built into ``benchmarks/.cache`` and its
held-out split is used. Writes ``benchmarks/results/reconstruction.md`` and ``.json`` (``--out``).
The JSON is ``{"date", "machine", "args", "rows": [{"R", "method", "prior", "default", "psnr",
"ssim", "nmse", "coverage", "seconds_per_slice", "nfe", ...}, ...]}`` (means over slices).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ambient_imaging.datasets.fastmri import fastmri_info, read_fastmri_slice
from ambient_imaging.metrics import coverage
from ambient_imaging.reconstruction import (
    MaskSpec,
    default_method_name,
    make_method,
    mri_problem,
    reconstruct,
)
from ambient_imaging.sampling import choose_lambda

HERE = Path(__file__).resolve().parent


def embedded_set(name: str) -> Path:
    """``benchmarks/.cache/NAME``, built the first time (no downloads)."""
    from ambient_imaging.datasets import build_embedded

    cache = HERE / ".cache" / name
    if not (cache / "build.json").is_file():
        build_embedded(name, cache)
    return cache


def heldout_slices(data: str | None, n: int) -> list[tuple[Path, int, dict]]:
    """``(file, slice, slice dict)`` of up to ``n`` fully sampled slices, central slices first."""
    root = Path(data) if data else embedded_set("mri-brain") / "val"
    files = sorted(root.rglob("*.h5")) if root.is_dir() else [root]
    files = [f for f in files if not f.name.endswith(".maps.h5")]
    out = []
    for f in files:
        s_n = int(fastmri_info(f)["slices"])
        mid = s_n // 2
        for s in sorted(range(s_n), key=lambda i: abs(i - mid)):
            sl = read_fastmri_slice(f, s)
            if sl["mask_stored"] and not np.all(sl["mask"]):
                break  # undersampled file: not usable as ground truth
            out.append((f, s, sl))
            if len(out) >= n:
                return out
    return out


def support_coverage(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """2σ coverage on magnitudes inside the object (reference > 5 % of its max)."""
    s = samples[:, 0].abs().cpu().numpy()
    r = reference[0, 0].abs().cpu().numpy()
    if s.shape[0] < 2:
        return float("nan")
    inside = r > 0.05 * r.max()
    return coverage(s[:, inside], r[inside])


def object_psnr(mean: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR inside the object only (reference above 5 % of its maximum; data range = reference max):
    the background, zero in the ESPIRiT-cropped reference, otherwise dominates whole-image PSNR."""
    from ambient_imaging.metrics import psnr

    r = reference[0, 0].abs().cpu().numpy()
    e = mean[0].abs().cpu().numpy()
    inside = r > 0.05 * r.max()
    return psnr(r * inside, e * inside, maxval=float(r.max()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="held-out fully sampled fastMRI file or folder")
    ap.add_argument("--ambient-prior", default=None, help="run dir: prior trained on undersampled k-space only")
    ap.add_argument("--naive-prior", default=None, help="run dir: naive prior (A^H y treated as clean)")
    ap.add_argument("--oracle-prior", default=None, help="run dir: prior trained on fully sampled images")
    ap.add_argument("--accelerations", default="4,8")
    ap.add_argument("--mask-kind", default="random")
    ap.add_argument("--max-slices", type=int, default=6)
    ap.add_argument("--samples", type=int, default=4, help="posterior samples per slice")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: each sampler's)")
    ap.add_argument("--mmps-steps", type=int, default=None,
                    help="steps of the covariance samplers (mmps, ambient-mmps; default --steps): each step costs "
                         "a conjugate-gradient solve of vector-Jacobian products")
    ap.add_argument("--samplers", default="onestep,adps,dps", help="extra samplers run for every prior "
                    "(dps is skipped for ambient priors: it would feed them all-ones masks)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results" / "reconstruction.md"))
    args = ap.parse_args()

    device = torch.device(args.device)
    data = heldout_slices(args.data, args.max_slices + 1)
    if len(data) < 2:
        sys.exit("need at least 2 fully sampled slices (one chooses λ, the rest are scored)")
    val = data.pop()  # λ is chosen here; this slice is not scored
    priors = {}
    from ambient_imaging.training import load_prior

    for pname, run in (("ambient", args.ambient_prior), ("naive", args.naive_prior), ("oracle", args.oracle_prior)):
        if run:
            priors[pname] = load_prior(run, device)
    extra = [s.strip() for s in args.samplers.split(",") if s.strip()]
    per: dict[tuple, dict[str, list[float]]] = {}
    lam = None

    def record(key: tuple, **vals: float) -> None:
        r = per.setdefault(key, {})
        for k, v in vals.items():
            r.setdefault(k, []).append(float(v))

    for accel in (float(a) for a in args.accelerations.split(",")):
        spec = MaskSpec(args.mask_kind, accel, seed=args.seed)

        def problem(f: Path, s: int, sl: dict, spec: MaskSpec = spec):
            return mri_problem(sl["kspace"], mask_spec=spec, key=f"{f.name}:{s}", where=f"{f}: slice {s}",
                               meta={"file": f.name, "slice": s})

        if lam is None:
            vp = problem(*val)
            y_n, op_n, scale = vp.normalised()
            lam, scores = choose_lambda(y_n, op_n, vp.reference / scale)
            print(f"L1-wavelet λ = {lam:g} (PSNR by λ on the validation slice: {scores})", file=sys.stderr)
        for f, s, sl in data:
            prob = problem(f, s, sl)
            runs = [("zero-filled", "none", False, make_method("zero-filled")),
                    ("sense", "none", False, make_method("sense")),
                    ("l1-wavelet", "none", False, make_method("l1-wavelet", lamda=lam))]
            for pname, prior in priors.items():
                default = default_method_name(prior)
                names = [default] + [n for n in extra if n != default]
                for n in names:
                    if (n == "adps" and prior.mask_channels == 0) or (n == "dps" and pname == "ambient"):
                        continue
                    steps = args.mmps_steps if n in ("mmps", "ambient-mmps") and args.mmps_steps else args.steps
                    runs.append((n, pname, n == default, make_method(n, prior, steps=steps)))
            for name, pname, is_default, method in runs:
                prior = priors.get(pname)
                gen = torch.Generator(device=device).manual_seed(args.seed)
                t0 = time.perf_counter()
                res = reconstruct(prob, method, prior, name=name, samples=args.samples, generator=gen)
                secs = time.perf_counter() - t0
                cov = support_coverage(res.samples, prob.reference) if prior is not None else float("nan")
                record((accel, name, pname, is_default), psnr=res.metrics["psnr"], ssim=res.metrics["ssim"],
                       nmse=res.metrics["nmse"], psnr_object=object_psnr(res.mean, prob.reference),
                       coverage=cov, seconds_per_slice=secs, nfe=res.metrics["nfe"])
            print(f"R={accel:g} {f.name} slice {s} done", file=sys.stderr)

    rows = []
    for (accel, name, pname, is_default), vals in per.items():
        row = {"R": accel, "method": name, "prior": pname, "default": is_default}
        for k, v in vals.items():
            a = np.asarray([x for x in v if math.isfinite(x)])
            row[k] = float(a.mean()) if a.size else None
            if k in ("psnr", "ssim") and a.size:
                row[f"{k}_std"] = float(a.std())
        rows.append(row)

    def f(v, d=2):
        return "—" if v is None else f"{v:.{d}f}"

    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads")
    lines = [
        "# Reconstruction benchmark (held-out embedded mri-brain slices)",
        "",
        f"{dt.date.today().isoformat()}, {machine}, torch {torch.__version__}. {len(data)} scored slices, "
        f"{args.samples} posterior samples per slice, masks `{MaskSpec(args.mask_kind, 4, seed=args.seed).kind}` "
        "lines with the default centre (one mask per slice, shared by all methods). Priors: "
        + ", ".join(f"{k}={getattr(v, 'run_dir', '')}" for k, v in priors.items())
        + ". PSNR/SSIM/NMSE on magnitudes vs the coil-combined reference; coverage = fraction of object pixels "
        "with |ref − mean| ≤ 2·std (95.4 % if calibrated). `default` marks a prior's default sampler.",
        "",
        "| R | prior | method | default | PSNR (dB) | PSNR object (dB) | SSIM | NMSE | 2σ coverage | s / slice | NFE |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['R']:g} | {r['prior']} | {r['method']} | {'yes' if r['default'] else ''} | "
                     f"{f(r.get('psnr'))} ± {f(r.get('psnr_std'))} | {f(r.get('psnr_object'))} | "
                     f"{f(r.get('ssim'), 3)} | {f(r.get('nmse'), 4)} | "
                     f"{f(None if r.get('coverage') is None else 100 * r['coverage'], 1)} | "
                     f"{f(r.get('seconds_per_slice'))} | {f(r.get('nfe'), 0)} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine, "args": vars(args),
         "rows": rows}, indent=2))
    print(text)


if __name__ == "__main__":
    main()
