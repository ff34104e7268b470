"""Classical baselines (and optionally priors) on the two shared real 8-coil brain scans, fastMRI scoring.

Scans: ``brain230x180_8ch.h5`` (full field of view) and ``brain230x126_8ch_reducedfov.h5`` (reduced
field of view: the head wraps around, two ESPIRiT map sets needed), from ``--data-dir``
(default ``../shared/data`` beside the repository; never committed).

Masks: fastMRI random lines (``MaskSpec("random", R)``), centre fraction 0.08 at R=4 and 0.04 at
R=8 (fastMRI's pairs) with at least 8 centre lines (ESPIRiT needs them: 0.04 of 126 columns is
5), seed ``--seed`` (0), one mask per scan and R (key ``"<file name>:0"``), shared by every row.

Rows per scan and R, each scored as fastMRI does (``reconstruction_rss`` on the reconSpace crop,
data range = its max; the M image components are combined by root-sum-of-squares over the map sets,
as BART ``pics`` output is): zero-filled, CG-SENSE, ℓ1-wavelet, TV — at the default (λ by k-space
cross-validation) and at an oracle λ (grid search against the reference: *not* a usable rule) —
with one and with two ESPIRiT map sets; BART ``ecalib -m1/-m2`` + ``pics -l1`` / ``pics -l2`` on
the same undersampled k-space (same calibration block and kernel as ours, λ tuned on the same grid
against the reference) when ``bart`` is on PATH; with ``--prior RUN_DIR`` (repeatable) the
prior's ``onestep`` and its default sampler (one set of maps, as training reads files).

    OMP_NUM_THREADS=1 python benchmarks/real_scan.py [--prior runs/brain230x180] [--accelerations 4,8]

Writes ``benchmarks/results/real_scan.md`` and ``.json``: rows ``{scan, R, method, prior, default,
maps, psnr, ssim, nmse, seconds_per_slice, lamda}`` (``prior`` null for classical rows).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ambient_imaging.datasets.cfl import read_cfl, write_cfl
from ambient_imaging.datasets.fastmri import FastMRIFile, FastMRIOptions
from ambient_imaging.metrics.fastmri import fastmri_volume_metrics
from ambient_imaging.problems import MaskSpec, Problem
from ambient_imaging.sampling import SENSE, TV, L1Wavelet, ZeroFilled
from ambient_imaging.sampling.baselines import SENSE_GRID, SPARSE_GRID, _per_sample
from ambient_imaging.sampling.lamda_cv import cg_path

HERE = Path(__file__).resolve().parent
SCANS = {"full-fov": "brain230x180_8ch.h5", "reduced-fov": "brain230x126_8ch_reducedfov.h5"}
#: fastMRI's (acceleration → centre fraction) pairs
CENTER_FRACTION = {4.0: 0.08, 8.0: 0.04}
#: BART's λ grid (``pics -r``; BART scales the data itself)
BART_GRID = (1e-3, 3e-3, 1e-2, 3e-2)


def mask_spec(accel: float, width: int, seed: int) -> MaskSpec:
    """fastMRI random lines with fastMRI's centre fraction at ``accel`` (at least 8 lines)."""
    frac = CENTER_FRACTION.get(float(accel), 0.32 / float(accel))
    return MaskSpec("random", float(accel), center_lines=max(8, round(frac * width)), seed=seed)


def reference(path: Path) -> np.ndarray:
    """The file's ``reconstruction_rss`` of slice 0 (its reconSpace is the whole matrix for both scans)."""
    with h5py.File(path, "r") as f:
        return np.asarray(f["reconstruction_rss"][0], dtype=np.float64)


def combine(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Magnitude of an image ``(M, H, W)`` / ``(H, W)``: root-sum-of-squares over the M components."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.sqrt((np.abs(a) ** 2).sum(0)) if a.ndim == 3 else np.abs(a)


def scores(ref: np.ndarray, img: torch.Tensor | np.ndarray) -> dict[str, float]:
    """fastMRI's volume metrics of one slice (data range = the reference's max)."""
    return fastmri_volume_metrics(ref[None], combine(img)[None])


def load_problem(path: Path, spec: MaskSpec, sets: int) -> Problem:
    """Slice 0 of ``path`` undersampled by ``spec``, maps from the measured ACS (``sets`` ESPIRiT sets)."""
    with FastMRIFile(path, FastMRIOptions(mask_spec=spec, map_sets=sets, maps="measured")) as fh:
        return fh.problem(0)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def sense_oracle(prob: Problem, ref: np.ndarray, max_iter: int = 30) -> tuple[str, torch.Tensor]:
    """CG-SENSE at the (λ, iterations) of :data:`SENSE_GRID` × 1..``max_iter`` closest to the reference."""
    y, op = prob.y, prob.op
    rhs = op.adjoint(y)
    best: tuple[float, str, torch.Tensor] = (-math.inf, "", rhs)
    for lam in SENSE_GRID:
        lam_b = _per_sample(torch.full((1,), lam, dtype=torch.float64), rhs)
        for n, x in enumerate(cg_path(lambda v, lam_b=lam_b: op.normal(v) + lam_b * v, rhs, max_iter), start=1):
            p = scores(ref, x[0])["psnr"]
            if p > best[0]:
                best = (p, f"{lam:g}@{n}", x[0])
    return best[1], best[2]


def classical_rows(prob: Problem, ref: np.ndarray, grid: tuple[float, ...], max_iter: int) -> list[dict]:
    """Zero-filled, CG-SENSE, ℓ1-wavelet and TV at the default and the oracle λ on one problem."""
    rows = []
    y, op = prob.y, prob.op
    (zf, secs) = timed(lambda: ZeroFilled()(y, op).mean[0])
    rows.append({"method": "zero-filled", "default": True, **scores(ref, zf), "seconds_per_slice": secs})
    rec, secs = timed(lambda: SENSE()(y, op))
    rows.append({"method": "cg-sense", "default": True, **scores(ref, rec.mean[0]), "seconds_per_slice": secs,
                 "lamda": f"{rec.info['lamda'][0]:g}@{rec.info['cg_iterations']}"})
    (lam_it, img), secs = timed(lambda: sense_oracle(prob, ref))
    rows.append({"method": "cg-sense", "default": False, **scores(ref, img), "seconds_per_slice": secs,
                 "lamda": lam_it})
    for cls in (L1Wavelet, TV):
        rec, secs = timed(lambda cls=cls: cls(max_iter=max_iter)(y, op))
        rows.append({"method": cls.name, "default": True, **scores(ref, rec.mean[0]), "seconds_per_slice": secs,
                     "lamda": rec.info["lamda"][0]})
        best: dict[str, Any] = {"psnr": -math.inf}
        for lam in grid:
            rec, secs = timed(lambda cls=cls, lam=lam: cls(lamda=lam, max_iter=max_iter)(y, op))
            sc = scores(ref, rec.mean[0])
            if sc["psnr"] > best["psnr"]:
                best = {**sc, "seconds_per_slice": secs, "lamda": lam}
        rows.append({"method": cls.name, "default": False, **best})
    return rows


def bart_rows(prob: Problem, ref: np.ndarray, sets: tuple[int, ...] = (1, 2)) -> list[dict]:
    """BART ``ecalib -mM`` (our calibration block and kernel) + ``pics -l1/-l2`` at the best λ of
    :data:`BART_GRID` on the problem's undersampled k-space (empty without ``bart``)."""
    if shutil.which("bart") is None:
        return []
    rows, (r_rows, r_cols, kw) = [], prob.meta["calibration"]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_cfl(d / "k", prob.y[0].numpy().transpose(1, 2, 0)[:, :, None, :])  # BART: (x, y, z, coil)
        for m in sets:
            t0 = time.perf_counter()
            subprocess.run(["bart", "ecalib", f"-m{m}", "-k", str(kw), "-r", f"{r_rows}:{r_cols}", str(d / "k"),
                            str(d / "s")], check=True, capture_output=True)
            t_cal = time.perf_counter() - t0
            for reg in ("-l1", "-l2"):
                best: dict[str, Any] = {"psnr": -math.inf}
                for lam in BART_GRID:
                    t0 = time.perf_counter()
                    subprocess.run(["bart", "pics", "-S", reg, "-r", str(lam), str(d / "k"), str(d / "s"),
                                    str(d / "x")], check=True, capture_output=True)
                    secs = time.perf_counter() - t0 + t_cal
                    sc = scores(ref, read_cfl(d / "x")[:, :, 0, 0, :].transpose(2, 0, 1))
                    if sc["psnr"] > best["psnr"]:
                        best = {**sc, "seconds_per_slice": secs, "lamda": lam}
                rows.append({"method": f"bart pics {reg}", "default": False, "maps": m, **best})
    return rows


def prior_rows(path: Path, spec: MaskSpec, ref: np.ndarray, run_dir: str, device: str, steps: int | None
               ) -> list[dict]:
    """``onestep`` and the default sampler of the prior in ``run_dir`` (one map set, as training reads files)."""
    from ambient_imaging.reconstruction import default_method_name, make_method, reconstruct
    from ambient_imaging.training import load_prior

    prior = load_prior(run_dir, device)
    prob = load_problem(path, spec, 1)
    rows = []
    for name in dict.fromkeys(("onestep", default_method_name(prior))):
        opts = {"steps": steps} if steps and name != "onestep" else {}
        method = make_method(name, prior, **opts)
        gen = torch.Generator(device=device).manual_seed(0)
        res, secs = timed(lambda method=method, name=name, gen=gen: reconstruct(prob, method, prior, name=name,
                                                                                  generator=gen, target="rss"))
        rows.append({"method": name, "prior": str(run_dir), "default": name == default_method_name(prior),
                     "maps": 1, **scores(ref, res.mean), "seconds_per_slice": secs})
    return rows


def write_report(rows: list[dict], args: argparse.Namespace, out: Path) -> None:
    """The Markdown table and the JSON beside it (a row measured again replaces the older one: ``--append``)."""
    latest = {(r["scan"], r["R"], r["method"], r.get("prior"), r["default"], r.get("maps")): r for r in rows}
    rows[:] = list(latest.values())
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads"
    cmd = "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?") + " python " + " ".join(sys.argv)
    lines = [
        "# Real scans: classical baselines vs BART (fastMRI scoring)", "",
        f"{dt.datetime.now().isoformat(timespec='minutes')}, {machine}, torch {torch.__version__}. Command: "
        f"`{cmd}`. Masks: random lines, centre fraction 0.08 (R=4) / 0.04 (R=8), at least 8 centre lines, seed "
        f"{args.seed}. PSNR/SSIM/NMSE vs `reconstruction_rss` (whole matrix = reconSpace), magnitude = RSS over "
        "the map sets. `default` = λ by k-space cross-validation; otherwise λ tuned against the reference "
        "(oracle, not a usable rule). BART: `ecalib` with our calibration block and kernel, λ oracle-tuned.", "",
        "| scan | R | method | prior | default | maps | λ | PSNR | SSIM | NMSE | s / slice |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lam = r.get("lamda")
        lam_s = "" if lam is None else (lam if isinstance(lam, str) else f"{lam:g}")
        lines.append(f"| {r['scan']} | {r['R']:g} | {r['method']} | {r['prior'] or ''} | "
                     f"{'yes' if r['default'] else ''} | {r['maps']} | {lam_s} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{r['nmse']:.4f} | {r['seconds_per_slice']:.1f} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(
        {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine, "command": cmd,
         "args": vars(args), "rows": rows}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--scans", default=",".join(SCANS), help="comma-separated subset of " + ", ".join(SCANS))
    ap.add_argument("--accelerations", default="4,8")
    ap.add_argument("--maps", default="1,2", help="ESPIRiT map sets to run the classical rows with")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-iter", type=int, default=100, help="ℓ1-wavelet / TV iterations")
    ap.add_argument("--grid", default=",".join(f"{v:g}" for v in SPARSE_GRID), help="oracle λ grid (ℓ1, TV)")
    ap.add_argument("--prior", action="append", default=[], help="run dir of a trained prior (repeatable)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps of the prior rows (default: its own)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-bart", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "real_scan.md"))
    ap.add_argument("--append", action="store_true", help="keep the rows already in the output's JSON")
    args = ap.parse_args()
    grid = tuple(float(v) for v in args.grid.split(","))
    old = Path(args.out).with_suffix(".json")
    rows: list[dict] = json.loads(old.read_text())["rows"] if args.append and old.is_file() else []
    for key in args.scans.split(","):
        path = Path(args.data_dir) / SCANS[key]
        if not path.is_file():
            sys.exit(f"{path}: not found (the shared scans live in ../shared/data; pass --data-dir)")
        ref = reference(path)
        for accel in (float(a) for a in args.accelerations.split(",")):
            spec = mask_spec(accel, ref.shape[-1], args.seed)
            base = {"scan": key, "R": accel, "prior": None}
            for m in (int(v) for v in args.maps.split(",")):
                prob = load_problem(path, spec, m)
                rows += [{**base, "maps": m, **r} for r in classical_rows(prob, ref, grid, args.max_iter)]
                if m == 2 and not args.no_bart:
                    rows += [{**base, **r} for r in bart_rows(prob, ref)]
                write_report(rows, args, Path(args.out))
                print(f"{key} R={accel:g} maps={m} done", file=sys.stderr, flush=True)
            for run in args.prior:
                rows += [{**base, **r} for r in prior_rows(path, spec, ref, run, args.device, args.steps)]
                write_report(rows, args, Path(args.out))
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
