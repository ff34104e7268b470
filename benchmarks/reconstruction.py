"""Reconstruction quality, speed and calibration on held-out fully sampled MRI slices (R = 4 and 8).

One run, one mask per slice shared by every method (``MaskSpec.sample(key="<file>:<slice>")``,
the rule training and ``reconstruct`` use), then:

* classical: zero-filled, CG-SENSE, L1-wavelet (λ chosen on one extra held-out slice that is
  not scored, :func:`~ambient_imaging.sampling.choose_lambda`);
* for each prior given — ``--ambient-prior`` (trained on undersampled k-space only),
  ``--naive-prior`` (``A^H y`` treated as clean) and ``--oracle-prior`` (trained on the fully
  sampled images: evaluation only) — its **default** sampler plus ``--samplers`` (one-step,
  A-DPS, DPS, DAPS, DAPS through the fresh-mask ensemble ``daps:ensemble=4``, MMPS, ...; a
  sampler that does not suit the prior's type is skipped).

Whole-image scoring against the RSS of the fully sampled coil images (fastMRI's convention;
SSIM 7×7, data range = reference max), every method's image mapped the same way to its estimate of
that target (:meth:`~ambient_imaging.operators.MultiCoilMRI.rss_estimate`: measured k-space kept, the
noise floor of the unmeasured part added), and PSNR inside the object (reference above 5 % of its
maximum) as a second column. Uncertainty (posterior samplers, ≥ 2 samples): split-conformal
calibration of the std map on ``--calibration-slices`` held-out slices that are not scored, drawn
like the scored ones (``--split exchangeable``: round-robin over the volumes, then a seeded random split; one
scale ``q`` per R, prior and method), then on the scored slices ``coverage`` (calibrated 2σ),
``coverage_raw``, ``spread_skill``, ``crps`` and ``interval_width`` (``metrics.calibration``);
seconds per slice and network evaluations (NFE) per sample.

    python benchmarks/reconstruction.py --ambient-prior runs/amb --naive-prior runs/naive \\
        --oracle-prior runs/oracle --max-slices 6 --calibration-slices 4 --samples 4

Without ``--data`` the embedded ``mri-brain`` set is built into ``benchmarks/.cache`` and its
held-out split is used. Writes ``benchmarks/results/reconstruction.md`` and ``.json`` (``--out``).
The JSON is ``{"date", "machine", "args", "rows": [{"R", "method", "prior", "default", "psnr",
"ssim", "nmse", "coverage", "coverage_raw", "spread_skill", "crps", "interval_width",
"seconds_per_slice", "nfe", ...}, ...]}`` (means over the scored slices, ``*_std`` their spread).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
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
from ambient_imaging.metrics.calibration import Calibration
from ambient_imaging.reconstruction import (
    MaskSpec,
    default_method_name,
    make_method,
    mri_problem,
    reconstruct,
)
from ambient_imaging.reconstruction.run import display_magnitude, target_reference
from ambient_imaging.sampling import MMPS, SENSE, TV, L1Wavelet, Method, choose_lambda, get_method

HERE = Path(__file__).resolve().parent


def embedded_set(name: str) -> Path:
    """``benchmarks/.cache/NAME``, built the first time (no downloads)."""
    from ambient_imaging.datasets import build_embedded

    cache = HERE / ".cache" / name
    if not (cache / "build.json").is_file():
        build_embedded(name, cache)
    return cache


def _volume_slices(f: Path):
    """``(file, slice, slice dict)`` of one volume's fully sampled slices, central slices first."""
    s_n = int(fastmri_info(f)["slices"])
    mid = s_n // 2
    for s in sorted(range(s_n), key=lambda i: abs(i - mid)):
        sl = read_fastmri_slice(f, s)
        if sl["mask_stored"] and not np.all(sl["mask"]):
            return  # undersampled file: not usable as ground truth
        yield f, s, sl


def heldout_slices(data: str | None, n: int, interleave: bool = True) -> list[tuple[Path, int, dict]]:
    """``(file, slice, slice dict)`` of up to ``n`` fully sampled slices, central slices first.

    ``interleave``: round-robin over the volumes (every volume gives its central slice before any gives
    its second), so that the slices span the held-out subjects; otherwise volume by volume."""
    root = Path(data) if data else embedded_set("mri-brain") / "val"
    files = sorted(root.rglob("*.h5")) if root.is_dir() else [root]
    volumes = [_volume_slices(f) for f in files if not f.name.endswith(".maps.h5")]
    out: list[tuple[Path, int, dict]] = []
    while volumes and len(out) < n:
        for v in list(volumes):
            got = next(v, None)
            if got is None:
                volumes.remove(v)
            else:
                out.append(got)
            if len(out) >= n or not interleave and got is not None:
                break
    return out


def split_heldout(pool: list, n_calibration: int, seed: int | None) -> tuple[list, list, tuple]:
    """``(scored, calibration, validation)`` slices of ``pool``.

    With a ``seed``, a seeded random split: split-conformal calibration assumes the calibration slices
    exchangeable with the scored ones, which a split by position (one volume scored, another
    calibrating) is not. Without, by position: the last slice chooses λ, the ``n_calibration`` before it
    calibrate, the rest are scored (the protocol of ``results/reconstruction_ordered.md``)."""
    if seed is not None:
        pool = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    *rest, val = pool
    cut = len(rest) - n_calibration
    return rest[:cut], rest[cut:], val


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


def parse_samplers(spec: str) -> list[tuple[str, dict]]:
    """``"onestep,daps,daps:ensemble=4"`` → ``[("onestep", {}), ("daps", {}), ("daps", {"ensemble": 4})]``."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, rest = part.partition(":")
        fields = {}
        for kv in filter(None, rest.split(";")):
            k, _, v = kv.partition("=")
            v = v.strip()
            try:
                fields[k.strip()] = int(v) if v.isdigit() else float(v)
            except ValueError:  # a word, e.g. daps:mask=ones
                fields[k.strip()] = v
        out.append((name.strip(), fields))
    return out


def label(name: str, fields: dict) -> str:
    """A row's method label: the registry name plus any changed fields."""
    return name + "".join(f"[{k}={v:g}]" if isinstance(v, (int, float)) else f"[{k}={v}]" for k, v in fields.items())


def tune_classical(vp, bart: bool = False) -> dict[str, Method]:
    """The classical methods at their defaults (λ by k-space cross-validation) and tuned on the
    validation slice ``vp`` against its reference (not scored): CG-SENSE over λ × iterations,
    L1-wavelet and TV over λ (:func:`~ambient_imaging.sampling.choose_lambda`); with ``bart``, BART's
    ``pics`` (ℓ1-wavelet, TV, ℓ2) with the same maps, λ tuned the same way (``benchmarks/bart.py``)."""
    y_n, op_n, scale = vp.normalised()
    ref = vp.reference / scale
    out: dict[str, Method] = {"zero-filled": make_method("zero-filled"), "sense": make_method("sense"),
                              "l1-wavelet": make_method("l1-wavelet"), "tv": make_method("tv")}
    best = (-math.inf, None)
    for iters in (5, 10, 20, 40):
        lam, scores = choose_lambda(y_n, op_n, ref, grid=(0.0, 1e-3, 1e-2, 3e-2, 0.1, 0.3), method=SENSE,
                                    max_iter=iters)
        if scores[lam] > best[0]:
            best = (scores[lam], SENSE(lamda=lam, max_iter=iters))
    out["sense[tuned]"] = best[1]
    for name, cls in (("l1-wavelet", L1Wavelet), ("tv", TV)):
        lam, scores = choose_lambda(y_n, op_n, ref, method=cls)
        out[f"{name}[tuned]"] = cls(lamda=lam)
    if bart:
        from bart import BART_GRID, BartPics, bart_available

        if not bart_available():
            sys.exit("--bart: the bart command is not on PATH (apt-get install bart)")
        for reg in ("l1", "tv", "l2"):
            lam, _ = choose_lambda(y_n, op_n, ref, grid=BART_GRID, method=functools.partial(BartPics, reg=reg))
            out[f"bart-pics-{reg}[tuned]"] = BartPics(reg=reg, lamda=lam)
    print("classical, tuned on the validation slice: "
          + ", ".join(f"{k}: {v}" for k, v in out.items() if k.endswith("[tuned]")), file=sys.stderr)
    return out


def method_runs(priors: dict, extra: list[tuple[str, dict]], args, classical: dict[str, Method]) -> list[tuple]:
    """``(label, prior name, default?, method)`` for the classical rows and every prior's samplers."""
    runs = [(name, "none", False, m) for name, m in classical.items()]
    only_default = set(filter(None, args.default_only.split(",")))
    for pname, prior in priors.items():
        default = default_method_name(prior)
        mine = [("onestep", {})] if pname in only_default else extra
        for name, fields in [(default, {})] + [e for e in mine if e != (default, {})]:
            cls = get_method(name)
            if not cls.suits(prior):  # e.g. A-DPS needs an ambient prior, DPS feeds all-ones masks
                continue
            steps = args.mmps_steps if issubclass(cls, MMPS) and args.mmps_steps else args.steps
            method = make_method(name, prior, steps=steps)
            if fields:
                method = dataclasses.replace(method, **fields)
            runs.append((label(name, fields), pname, name == default and not fields, method))
    return runs


def calibrate(runs: list[tuple], priors: dict, cal: list, problem, args, device) -> dict[tuple, Calibration]:
    """One split-conformal :class:`Calibration` per posterior run, fitted on the calibration slices."""
    out = {}
    for name, pname, _, method in runs:
        prior = priors.get(pname)
        if prior is None or args.samples < 2 or not cal:
            continue
        scores = []
        for f, s, sl in cal:
            gen = torch.Generator(device=device).manual_seed(args.seed)
            prob = problem(f, s, sl)
            res = reconstruct(prob, method, prior, name=name, samples=args.samples, generator=gen,
                              target=args.target)
            save_samples(args, "calibration", prob, pname, name, res)
            if res.info.get("conformal_scores") is not None:
                scores.append(res.info["conformal_scores"])
        try:
            out[(name, pname)] = Calibration.fit(scores, method=name, prior=pname)
        except ValueError as err:  # e.g. the one-step estimate: std 0, nothing to calibrate
            print(f"{name} ({pname}): not calibrated: {err}", file=sys.stderr)
    return out


def save_samples(args, split: str, prob, pname: str, name: str, res) -> None:
    """``--save-samples DIR``: ``DIR/<split>_R<R>_<prior>_<method>_<file>_<slice>.npz``: the samples as target estimates
    ``(K, H, W)``, the scored reference ``(H, W)`` and the image support, to study calibration offline."""
    if not args.save_samples or res.samples.shape[0] < 2:
        return
    out = Path(args.save_samples)
    out.mkdir(parents=True, exist_ok=True)
    t = res.target_samples
    if t is None:
        t = torch.stack([display_magnitude(x) for x in res.samples])
    support = prob.extras.get("support")
    stem = f"{split}_R{prob.meta['R']:g}_{pname}_{name}_{Path(prob.meta['file']).stem}_{prob.meta['slice']}"
    np.savez_compressed(out / f"{stem}.npz", samples=t.detach().cpu().numpy(),
                        reference=target_reference(prob, args.target),
                        support=np.ones(t.shape[-2:], bool) if support is None else support[0, 0].cpu().numpy())


def score_slice(prob, runs, priors, calibrations, args, device, record) -> dict[str, tuple]:
    """Every run on one scored slice, into ``record``; returns ``{label: (mean, std, calibration)}``
    for the figure."""
    ref = torch.from_numpy(target_reference(prob, args.target))
    shown: dict[str, tuple] = {"reference": (ref, None, None)}
    for name, pname, is_default, method in runs:
        prior = priors.get(pname)
        gen = torch.Generator(device=device).manual_seed(args.seed)
        t0 = time.perf_counter()
        res = reconstruct(prob, method, prior, name=name, samples=args.samples, generator=gen, target=args.target,
                          calibration=calibrations.get((name, pname)))
        secs = time.perf_counter() - t0
        if prior is not None:
            save_samples(args, "scored", prob, pname, name, res)
        m = res.metrics
        unc = {k: m.get(k, float("nan")) for k in ("coverage", "coverage_raw", "coverage_90", "spread_skill", "crps",
                                                   "interval_width", "interval_width_calibrated")}
        record((prob.meta["R"], name, pname, is_default), psnr=m["psnr"], ssim=m["ssim"], nmse=m["nmse"],
               psnr_object=object_psnr(res.mean, prob.reference),
               coverage_object_raw=support_coverage(res.samples, prob.reference) if prior is not None else math.nan,
               seconds_per_slice=secs, nfe=m["nfe"], **unc)
        if pname == "none" or is_default:
            label = name if pname == "none" else f"{pname}: {name}"
            shown[label] = (res.magnitude.cpu(), res.std_magnitude.cpu(), calibrations.get((name, pname)))
    return shown


def figure(shown: dict[float, dict[str, tuple]], path: Path) -> None:
    """Per R: the reference, the classical rows, each prior's default mean, and that default's calibrated
    ±2σ half-width (split conformal, :meth:`Calibration.width` per pixel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ambient_imaging.metrics.calibration import interval_scale

    cols = max(len(v) + sum(1 for t in v.values() if t[1] is not None and t[2] is not None) for v in shown.values())
    fig, axes = plt.subplots(len(shown), cols, figsize=(1.9 * cols, 2.1 * len(shown)), squeeze=False)
    for r, (accel, panels) in enumerate(shown.items()):
        vmax = float(panels["reference"][0].max())
        c = 0
        for label, (mean, std, cal) in panels.items():
            axes[r, c].imshow(mean.squeeze().numpy(), cmap="gray", vmin=0, vmax=vmax)
            axes[r, c].set_title(f"R={accel:g} {label}" if c == 0 else label, fontsize=6)
            c += 1
            if std is not None and cal is not None:
                half = cal.q * cal.k * interval_scale(std.squeeze().numpy(), cal.floor)
                axes[r, c].imshow(half, cmap="magma")
                axes[r, c].set_title(f"{label}: calibrated 2σ", fontsize=6)
                c += 1
        for ax in axes[r]:
            ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def summarise(per: dict) -> list[dict]:
    """Means (and spreads of PSNR/SSIM) over the scored slices, one row per (R, method, prior)."""
    rows = []
    for (accel, name, pname, is_default), vals in per.items():
        row = {"R": accel, "method": name, "prior": pname, "default": is_default}
        for k, v in vals.items():
            a = np.asarray([x for x in v if math.isfinite(x)])
            row[k] = float(a.mean()) if a.size else None
            if k in ("psnr", "ssim") and a.size:
                row[f"{k}_std"] = float(a.std())
        rows.append(row)
    return rows


def write_report(rows: list[dict], args, priors: dict, n_scored: int, device) -> str:
    """The Markdown table (and the JSON next to it)."""
    def f(v, d=2):
        return "—" if v is None else f"{v:.{d}f}"

    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads")
    lines = [
        "# Reconstruction benchmark (held-out embedded mri-brain slices)",
        "",
        f"{dt.date.today().isoformat()}, {machine}, torch {torch.__version__}. {n_scored} scored slices, "
        f"{args.calibration_slices} calibration slices ({args.split} split: {getattr(args, 'slices', '')}), "
        f"{args.samples} posterior samples per slice, masks "
        f"`{args.mask_kind}` lines with the default centre (one mask per slice, shared by all methods). Priors: "
        + ", ".join(f"{k}={getattr(v, 'run_dir', '')}" for k, v in priors.items())
        + f". PSNR/SSIM/NMSE on magnitudes vs the {args.target} reference (whole image"
        + ("; every image mapped to its RSS estimate, `MultiCoilMRI.rss_estimate`" if args.target == "rss" else "")
        + "); coverage = calibrated "
        "2σ coverage on the scored slices (split conformal on the calibration slices; nominal 95 %), raw = "
        "uncalibrated. `default` marks a prior's default sampler.",
        "",
        "| R | prior | method | default | PSNR (dB) | PSNR object (dB) | SSIM | NMSE | coverage | coverage raw | "
        "spread-skill | CRPS | width raw / calibrated | s / slice | NFE |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pct = {k: None if r.get(k) is None else 100 * r[k] for k in ("coverage", "coverage_raw")}
        lines.append(f"| {r['R']:g} | {r['prior']} | {r['method']} | {'yes' if r['default'] else ''} | "
                     f"{f(r.get('psnr'))} ± {f(r.get('psnr_std'))} | {f(r.get('psnr_object'))} | "
                     f"{f(r.get('ssim'), 3)} | {f(r.get('nmse'), 4)} | {f(pct['coverage'], 1)} | "
                     f"{f(pct['coverage_raw'], 1)} | {f(r.get('spread_skill'))} | {f(r.get('crps'), 4)} | "
                     f"{f(r.get('interval_width'), 4)} / {f(r.get('interval_width_calibrated'), 4)} | "
                     f"{f(r.get('seconds_per_slice'))} | {f(r.get('nfe'), 0)} |")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine, "args": vars(args),
         "rows": rows}, indent=2))
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="held-out fully sampled fastMRI file or folder")
    ap.add_argument("--ambient-prior", default=None, help="run dir: prior trained on undersampled k-space only")
    ap.add_argument("--naive-prior", default=None, help="run dir: naive prior (A^H y treated as clean)")
    ap.add_argument("--oracle-prior", default=None, help="run dir: prior trained on fully sampled images")
    ap.add_argument("--prior", action="append", default=[], metavar="NAME=RUN",
                    help="another prior to score under NAME (repeatable; e.g. mixture=runs/mix)")
    ap.add_argument("--default-only", default="", help="comma-separated prior names that get only their default "
                    "sampler and the one-step estimate (cheaper rows, e.g. for the mixture benchmark)")
    ap.add_argument("--figure", default=None, help="PNG: reference, classical rows, each prior's default mean and "
                    "its calibrated 2σ half-width on the first scored slice of every R")
    ap.add_argument("--no-classical", action="store_true", help="priors only (the classical rows of the same "
                    "slices and masks come from another run)")
    ap.add_argument("--bart", action="store_true", help="add BART pics rows (ℓ1-wavelet, TV, ℓ2; same maps and masks, "
                    "λ tuned on the validation slice); needs the bart command")
    ap.add_argument("--accelerations", default="4,8")
    ap.add_argument("--mask-kind", default="random")
    ap.add_argument("--max-slices", type=int, default=6, help="scored slices")
    ap.add_argument("--calibration-slices", type=int, default=4, help="held-out slices for the conformal "
                    "calibration of the std maps (not scored)")
    ap.add_argument("--samples", type=int, default=4, help="posterior samples per slice")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: each sampler's)")
    ap.add_argument("--mmps-steps", type=int, default=None,
                    help="steps of the covariance samplers (mmps, ambient-mmps; default --steps): each step costs "
                         "a conjugate-gradient solve of vector-Jacobian products")
    ap.add_argument("--samplers", default="onestep,adps,dps,daps,mmps-iso",
                    help="extra samplers run for every prior that suits them; NAME:FIELD=VALUE changes a field "
                         "(e.g. daps:ensemble=4, the fresh-mask ensemble)")
    ap.add_argument("--target", choices=("rss", "sense1"), default="rss", help="scoring reference")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0, help="masks, samplers and the exchangeable split")
    ap.add_argument("--split", choices=("exchangeable", "ordered"), default="exchangeable",
                    help="exchangeable (default): slices round-robin over the held-out volumes, then a seeded "
                    "random split into scored / calibration / λ slices; ordered: volume by volume, the last "
                    "slice for λ and the ones before it for calibration (results/reconstruction_ordered.md)")
    ap.add_argument("--save-samples", default=None, metavar="DIR", help="write every posterior run's samples "
                    "(as target estimates), reference and support per slice to DIR/*.npz (calibration studies)")
    ap.add_argument("--out", default=str(HERE / "results" / "reconstruction.md"))
    args = ap.parse_args()

    device = torch.device(args.device)
    exchangeable = args.split == "exchangeable"
    pool = heldout_slices(args.data, args.max_slices + args.calibration_slices + 1, interleave=exchangeable)
    if len(pool) < 2 + args.calibration_slices:
        sys.exit("need at least 2 fully sampled slices beyond the calibration slices (one chooses λ)")
    data, cal, val = split_heldout(pool, args.calibration_slices, args.seed if exchangeable else None)
    args.slices = {"scored": [f"{f.name}:{s}" for f, s, _ in data],
                   "calibration": [f"{f.name}:{s}" for f, s, _ in cal], "validation": f"{val[0].name}:{val[1]}"}
    print(f"slices: {args.slices}", file=sys.stderr)
    from ambient_imaging.training import load_prior

    named = [("ambient", args.ambient_prior), ("naive", args.naive_prior), ("oracle", args.oracle_prior)]
    for spec in args.prior:
        name, sep, run = spec.partition("=")
        if not sep or not name or not run:
            sys.exit(f"--prior {spec!r}: expected NAME=RUN_DIR")
        named.append((name, run))
    priors = {p: load_prior(run, device) for p, run in named if run}
    extra = parse_samplers(args.samplers)
    per: dict[tuple, dict[str, list[float]]] = {}
    classical = None
    shown: dict[float, dict[str, tuple]] = {}

    def record(key: tuple, **vals: float) -> None:
        r = per.setdefault(key, {})
        for k, v in vals.items():
            r.setdefault(k, []).append(float(v))

    for accel in (float(a) for a in args.accelerations.split(",")):
        spec = MaskSpec(args.mask_kind, accel, seed=args.seed)

        def problem(f: Path, s: int, sl: dict, spec: MaskSpec = spec, accel: float = accel):
            return mri_problem(sl["kspace"], mask_spec=spec, key=f"{f.name}:{s}", where=f"{f}: slice {s}",
                               meta={"file": f.name, "slice": s, "R": accel})

        if classical is None:  # tuned once, at the first R, on the validation slice
            classical = {} if args.no_classical else tune_classical(problem(*val), bart=args.bart)
        runs = method_runs(priors, extra, args, classical)
        calibrations = calibrate(runs, priors, cal, problem, args, device)
        for i, (f, s, sl) in enumerate(data):
            got = score_slice(problem(f, s, sl), runs, priors, calibrations, args, device, record)
            if i == 0:
                shown[accel] = got
            print(f"R={accel:g} {f.name} slice {s} done", file=sys.stderr)
    print(write_report(summarise(per), args, priors, len(data), device))
    if args.figure:
        figure(shown, Path(args.figure))


if __name__ == "__main__":
    main()
