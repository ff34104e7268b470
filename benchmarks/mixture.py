"""Mixed training sets (issue 19): ambient vs mixture vs clean-few vs oracle priors on held-out mri-brain.

Four priors, same network (``--network``) and budget (``--minutes`` each), trained from the
embedded ``mri-brain`` training files built at R=4:

* ``ambient``   — every training file undersampled (``--clean-fraction 0``);
* ``mixture``   — 10 % of the files fully sampled, 90 % undersampled (``--clean-fraction 0.1``);
* ``clean-few`` — only that 10 % (the fully sampled files of the mixture build);
* ``oracle``    — every file fully sampled (``--clean-fraction 1``).

``clean-few`` and ``oracle`` train with ``--loss oracle`` (plain EDM on the fully sampled images):
a folder of fully sampled files alone would otherwise be undersampled retrospectively at
``--acceleration`` (4) and trained with the ambient loss, i.e. it would not be clean training.

``--curve`` adds priors at clean fractions 0.05 and 0.25 (0, 0.1 and 1 are the ones above). Each
prior is scored by ``benchmarks/reconstruction.py`` (held-out split, R=4 and R=8, fastMRI
whole-image scoring, its default sampler plus ``--samplers``; the classical CG-SENSE/L1 rows come
with it). Writes ``benchmarks/results/mixture.{md,json}``: rows ``R, prior, method, default, psnr, ssim``.

    OMP_NUM_THREADS=1 nice python benchmarks/mixture.py --minutes 3 --network tiny > mixture.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sh(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run([sys.executable, *cmd], check=True)


def build(cache: Path, fraction: float, seed: int) -> Path:
    out = cache / f"mri-brain-clean{fraction:g}"
    sh("-m", "ambient_imaging", "data", "build", "mri-brain", "--clean-fraction", f"{fraction:g}", "--seed",
       str(seed), "--out", str(out), "--quiet")
    return out


def clean_only(build_dir: Path, cache: Path) -> Path:
    """A folder holding only the fully sampled training files of a mixed build (the clean-few set)."""
    meta = json.loads((build_dir / "build.json").read_text())
    dst = cache / f"{build_dir.name}-clean-only"
    dst.mkdir(parents=True, exist_ok=True)
    for n in meta["clean_files"]:
        src = build_dir / "train" / f"mni152_train_{n:03d}.h5"
        if not (dst / src.name).exists():
            (dst / src.name).symlink_to(src)
    return dst


def train(data: Path, out: Path, args, loss: str | None = None) -> Path:
    sh("-m", "ambient_imaging", "train", "--data", str(data), "--operator", "mri", "--network", args.network,
       "--minutes", f"{args.minutes:g}", "--steps", "1000000", "--batch-size", str(args.batch_size),
       "--device", args.device, "--seed", str(args.seed), "--out", str(out), "--no-progress",
       *(["--loss", loss] if loss else []))
    return out


def score(name: str, run: Path, heldout: Path, args, cache: Path) -> list[dict]:
    out = cache / f"score-{name}.md"
    sh(str(HERE / "reconstruction.py"), "--data", str(heldout), "--ambient-prior", str(run), "--samplers",
       args.samplers, "--max-slices", str(args.max_slices), "--calibration-slices", "1", "--samples", "2",
       "--device", args.device, "--out", str(out))
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    keep = []
    for r in rows:
        prior = r.get("prior") or "classical"
        keep.append({"R": r["R"], "prior": name if prior not in ("classical", None, "") else "classical",
                     "method": r["method"], "default": bool(r.get("default", False)), "psnr": r["psnr"],
                     "ssim": r["ssim"]})
    return keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0, help="training budget per prior")
    ap.add_argument("--network", default="tiny")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samplers", default="onestep")
    ap.add_argument("--max-slices", type=int, default=4)
    ap.add_argument("--curve", action="store_true", help="also clean fractions 0.05 and 0.25")
    ap.add_argument("--cache", default=str(HERE / ".cache" / "mixture"))
    ap.add_argument("--out", default=str(HERE / "results" / "mixture.md"))
    ap.add_argument("--scored", default=None, help="skip training: take the rows of a reconstruction-benchmark "
                    "JSON whose priors are named ambient / mixture / clean-few / oracle (benchmarks/"
                    "reconstruction.py --prior NAME=RUN ...) and write the mixture table from them")
    ap.add_argument("--fraction", action="append", default=[], metavar="NAME=F",
                    help="with --scored: the clean fraction of prior NAME's training slices (repeatable; e.g. "
                         "mixture=0.152): adds the curve of the default sampler's PSNR against the clean fraction")
    args = ap.parse_args()
    if args.scored:
        write(rows_from(Path(args.scored)), args, json.loads(Path(args.scored).read_text()))
        return
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    fractions = [0.0, 0.1, 1.0] + ([0.05, 0.25] if args.curve else [])
    builds = {f: build(cache, f, args.seed) for f in fractions}
    sets = {"ambient": builds[0.0], "mixture": builds[0.1], "clean-few": clean_only(builds[0.1], cache),
            "oracle": builds[1.0], **{f"clean{f:g}": builds[f] for f in fractions if f in (0.05, 0.25)}}
    heldout = builds[0.0] / "val"
    rows: list[dict] = []
    for name, data in sets.items():
        clean = name in ("clean-few", "oracle")  # clean training: plain EDM on the fully sampled images
        run = train(data, cache / (f"run-{name}-oracle-loss" if clean else f"run-{name}"), args,
                    "oracle" if clean else None)
        got = score(name, run, heldout, args, cache)
        rows += [r for r in got if r["prior"] != "classical" or name == "ambient"]
    write(rows, args, None)


def rows_from(scored: Path) -> list[dict]:
    """The issue's rows (``R, prior, method, default, psnr, ssim`` + spreads) of a reconstruction-benchmark JSON."""
    rows = []
    for r in json.loads(scored.read_text())["rows"]:
        prior = "classical" if r.get("prior") in (None, "", "none") else r["prior"]
        rows.append({"R": r["R"], "prior": prior, "method": r["method"], "default": bool(r.get("default")),
                     "psnr": r["psnr"], "ssim": r["ssim"], "psnr_std": r.get("psnr_std"),
                     "ssim_std": r.get("ssim_std")})
    return rows


def write(rows: list[dict], args, source: dict | None) -> None:
    """``mixture.{md,json}``."""
    out = Path(args.out)
    about = {"args": vars(args)} if source is None else {"date": source.get("date"), "machine": source.get("machine"),
                                                          "scored": args.scored, "benchmark_args": source.get("args")}
    out.with_suffix(".json").write_text(json.dumps({**about, "rows": rows}, indent=2))
    head = (f"{args.network} network, {args.minutes:g} min per prior on {args.device}" if source is None else
            f"priors scored by `benchmarks/reconstruction.py` ({args.scored}; {source.get('date')}, "
            f"{source.get('machine')})")
    lines = [f"# Mixed training sets (issue 19)\n\n{head}; held-out embedded mri-brain, fastMRI whole-image "
             "scoring.\n", "| R | prior | method | default | PSNR | SSIM |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['R']:g} | {r['prior']} | {r['method']} | {'yes' if r['default'] else ''} | {r['psnr']:.2f} | "
              f"{r['ssim']:.3f} |" for r in rows]
    lines += curve(rows, args)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def curve(rows: list[dict], args) -> list[str]:
    """Markdown lines: each prior's default-sampler PSNR / SSIM against its clean fraction (``--fraction``)."""
    frac = {}
    for spec in getattr(args, "fraction", []) or []:
        name, _, f = spec.partition("=")
        frac[name] = float(f)
    if not frac:
        return []
    lines = ["", "## PSNR against the clean fraction (default sampler; clean fraction of the training slices)", "",
             "| clean fraction | prior | " + " | ".join(f"R={r:g} PSNR / SSIM" for r in sorted({x['R'] for x in rows}))
             + " |", "|---|---|" + "---|" * len({x["R"] for x in rows})]
    for name, f in sorted(frac.items(), key=lambda t: t[1]):
        cells = []
        for accel in sorted({x["R"] for x in rows}):
            r = next((x for x in rows if x["prior"] == name and x["default"] and x["R"] == accel), None)
            cells.append("—" if r is None else f"{r['psnr']:.2f} / {r['ssim']:.3f}")
        lines.append(f"| {100 * f:.1f} % | {name} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
