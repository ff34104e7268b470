"""``ambient-imaging data``: list/build the embedded datasets, prepare fastMRI folders, inspect files."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``data list|build|prepare|info``."""
    p = subparsers.add_parser("data", help="embedded datasets and measurement files",
                              description="Build embedded datasets, prepare fastMRI folders, inspect files.")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    ls = sub.add_parser("list", help="list the embedded datasets")
    ls.set_defaults(func=_list)

    b = sub.add_parser("build", help="build an embedded dataset into a folder")
    b.add_argument("name", help="dataset name (see `data list`)")
    b.add_argument("--out", required=True, type=Path, help="output folder")
    b.add_argument("--size", default=None, choices=("small", "default"), help="size preset (default: the set's)")
    b.add_argument("--seed", type=int, default=0, help="random seed (the build is deterministic for a seed)")
    b.add_argument("--acceleration", type=float, default=None, help="undersampling factor R (mri-brain; default 4)")
    b.add_argument("--clean-fraction", type=float, default=None,
                   help="mri-brain: fraction of training files written fully sampled (a mixed set; default 0)")
    b.add_argument("--slices-per-file", type=int, default=None, metavar="N",
                   help="mri-brain: training slices per file (default 16): fewer make more files, so that "
                        "--clean-fraction can be set finely (e.g. 2 with --clean-fraction 0.05)")
    b.add_argument("--matrix", default=None, metavar="H,W",
                   help="mri-brain: build at a scan's matrix (readout H x phase encode W, e.g. 230,180) from the "
                        "template at its native 1 mm, in several orientations (default: the 64x64 axial set)")
    b.add_argument("--coils", type=int, default=None, help="mri-brain: receive coils (default 8)")
    b.add_argument("--snr", type=float, default=None,
                   help="mri-brain: noise level as p99(|image|) / sigma of the complex k-space noise (default 40)")
    b.add_argument("--orientations", default=None,
                   help="mri-brain with --matrix: planes of the template, any of axial,coronal,sagittal (default all)")
    b.add_argument("--force", action="store_true", help="replace a different existing build in --out")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)

    pr = sub.add_parser("prepare", help="estimate and cache ESPIRiT coil maps for a fastMRI folder")
    pr.add_argument("path", help="a file, folder or glob of fastMRI HDF5 files")
    pr.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default: next to the data)")
    pr.add_argument("--workers", type=int, default=1, help="parallel processes (1 to the number of CPUs)")
    pr.add_argument("--strict", action="store_true", help="stop at the first broken file")
    pr.add_argument("--acs-lines", type=int, default=None,
                    help="ESPIRiT calibration width (default: each slice's ACS, at most 24; part of the cache key)")
    pr.set_defaults(func=_prepare)

    i = sub.add_parser("info", help="describe a fastMRI HDF5 file (or a folder of fastMRI or FITS files: its mix "
                       "of kinds, e.g. fully sampled and undersampled, complete and masked, clean and noisy)")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=_info)


def _list(args: argparse.Namespace) -> int:
    from ambient_imaging.datasets.embedded import EMBEDDED, card_path

    width = max(len(d.name) for d in EMBEDDED)
    for d in EMBEDDED:
        print(f"{d.name:<{width}}  {d.description}")
        print(f"{'':<{width}}  default size: {d.default_size}; card: {card_path(d)}")
    return 0


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def _same_build(old: dict[str, Any], want: dict[str, Any]) -> bool:
    old = {**old, "dataset": old.get("dataset", old.get("name"))}  # builders record "dataset" or "name"
    return all(old.get(k) == v for k, v in want.items() if v is not None)


def _build(args: argparse.Namespace) -> int:
    from ambient_imaging.datasets.embedded import get_embedded
    from ambient_imaging.limits import check_seed

    check_seed(args.seed)
    entry = get_embedded(args.name)
    size = args.size or entry.default_size
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    want = {"dataset": entry.name, "size": size, "seed": args.seed}
    if entry.accepts_acceleration:
        want["acceleration"] = float(args.acceleration if args.acceleration is not None else 4.0)
        if args.clean_fraction is not None:
            if not 0.0 <= args.clean_fraction <= 1.0:
                raise ValueError(f"--clean-fraction {args.clean_fraction}: must be in [0, 1]")
            want["clean_fraction"] = float(args.clean_fraction)
        if args.slices_per_file is not None:
            if args.matrix is not None:
                raise ValueError("--slices-per-file applies to the 64x64 axial build, not to --matrix builds")
            want["slices_per_file"] = int(args.slices_per_file)
        want.update(_mri_options(args))
    elif any(v is not None for v in (args.acceleration, args.clean_fraction, args.matrix, args.coils, args.snr,
                                     args.orientations, args.slices_per_file)):
        raise ValueError(f"--acceleration / --clean-fraction / --slices-per-file / --matrix / --coils / --snr / "
                         "--orientations do not "
                         f"apply to {entry.name}")
    meta = out / "build.json"
    if out.is_dir() and any(out.iterdir()):
        old: dict[str, Any] = {}
        if meta.is_file():
            try:
                old = json.loads(meta.read_text())
            except ValueError:
                old = {}
        if not _same_build(old, want) and not args.force:
            name = old.get("dataset", old.get("name"))
            what = f"a {name} build ({old.get('size')}, seed {old.get('seed')})" if old else "other files"
            raise ValueError(f"{out} already holds {what}; choose another --out or pass --force to replace it")
        for f in old.get("files", []):  # replace: remove the files of the previous build only
            name = f.get("file") if isinstance(f, dict) else f
            if name and (out / name).is_file():
                (out / name).unlink()
    kw: dict[str, Any] = {"size": size, "seed": args.seed, "progress": not args.quiet}
    if entry.accepts_acceleration:
        kw["acceleration"] = want["acceleration"]
        for key in ("clean_fraction", "slices_per_file"):
            if key in want:
                kw[key] = want[key]
        kw.update({k: want[k] for k in ("matrix", "n_coils", "snr", "orientations") if k in want})
    t0 = time.perf_counter()
    summary = entry.builder(out, **kw)
    secs = time.perf_counter() - t0
    n_files, n_bytes = _count(out)
    print(f"built {entry.name} ({size}, seed {args.seed}) in {out}")
    print(f"  files: {n_files}, size: {_fmt_bytes(n_bytes)}, time: {secs:.1f} s")
    for key in ("train_slices", "val_slices", "n_train", "n_heldout", "acceleration", "matrix", "n_coils",
                "center_lines", "orientations", "pixel_spacing_mm"):
        if key in summary and (key not in ("center_lines", "orientations", "pixel_spacing_mm")
                               or "orientations" in summary):
            print(f"  {key.replace('_', ' ')}: {summary[key]}")
    return 0


def _mri_options(args: argparse.Namespace) -> dict[str, Any]:
    """The mri-brain flags given (``--matrix`` / ``--coils`` / ``--snr`` / ``--orientations``), checked;
    left out when not given, so the default build stays what it was."""
    from ambient_imaging.datasets.embedded.mri_brain_matrix import ORIENTATIONS, parse_matrix

    out: dict[str, Any] = {}
    if args.matrix is not None:
        out["matrix"] = list(parse_matrix(args.matrix))
    if args.coils is not None:
        if not 1 <= args.coils <= 64:
            raise ValueError(f"--coils {args.coils}: must be in 1..64")
        out["n_coils"] = int(args.coils)
    if args.snr is not None:
        if not 0 < args.snr < 1e6:
            raise ValueError(f"--snr {args.snr}: must be a positive number (p99 of the image over the noise sigma)")
        out["snr"] = float(args.snr)
    if args.orientations is not None:
        names = [o.strip() for o in args.orientations.split(",") if o.strip()]
        if not names or any(o not in ORIENTATIONS for o in names):
            raise ValueError(f"--orientations {args.orientations}: give some of {','.join(ORIENTATIONS)}")
        if args.matrix is None:
            raise ValueError("--orientations applies to a --matrix build (the default set is axial only)")
        out["orientations"] = names
    return out


def _count(folder: Path) -> tuple[int, int]:
    files = [f for f in folder.rglob("*") if f.is_file() and not f.name.startswith(".")]
    return len(files), sum(f.stat().st_size for f in files)


def _prepare(args: argparse.Namespace) -> int:
    from ambient_imaging.datasets.fastmri import prepare_folder

    res = prepare_folder(args.path, cache_dir=args.cache_dir, workers=args.workers, strict=args.strict,
                         acs_lines=args.acs_lines)
    print(
        f"{res['files']} files: {res['computed']} maps computed, {res['cached']} already cached, "
        f"{res['single_coil']} single-coil (no maps), {len(res['skipped'])} skipped"
    )
    for name, why in res["skipped"]:
        print(f"  skipped {name}: {why}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from ambient_imaging.datasets.checks import nonfinite_kspace
    from ambient_imaging.datasets.fastmri import fastmri_info

    if Path(args.file).is_dir():
        return _folder_info(args)
    try:
        info = fastmri_info(args.file)
    except ValueError as err:
        bad = nonfinite_kspace(args.file) if Path(args.file).is_file() else {"nan": 0, "inf": 0}
        if bad["nan"] or bad["inf"]:
            raise ValueError(f"{err} (in all: {_nonfinite_text(bad)})") from err
        raise
    info["nonfinite"] = nonfinite_kspace(args.file)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    hdr = info["header"]
    print(f"file:          {info['file']}")
    print(f"k-space:       {info['kspace_shape']} ({info['slices']} slices, {info['coils']} coils"
          f"{', single-coil' if info['single_coil'] else ''})")
    print(f"matrix:        {info['matrix'][0]} x {info['matrix'][1]} (H x W; phase encodes along W)")
    print(f"mask:          {'stored' if info['mask_stored'] else 'derived from non-zero columns'}; "
          f"sampled {100 * info['sampled_fraction']:.1f}% (R = {info['acceleration']:.2f}), "
          f"{info['acs_lines']} ACS lines (middle slice)")
    print(f"header matrix: encoded {hdr['encoded_matrix']}, recon {hdr['recon_matrix']}")
    print(f"header FOV mm: encoded {hdr['encoded_fov_mm']}, recon {hdr['recon_fov_mm']}")
    print(f"datasets:      {', '.join(info['datasets'])}")
    if info["attrs"]:
        print("attributes:    " + ", ".join(f"{k}={v}" for k, v in info["attrs"].items()))
    bad = info["nonfinite"]
    if bad["nan"] or bad["inf"]:
        print(f"WARNING:       {_nonfinite_text(bad)}; training and reconstruction refuse them")
    else:
        print("values:        all finite" + ("" if bad.get("checked", 0) >= bad.get("total", 0) else
                                             f" (checked {bad['checked']} of {bad['total']} slices, evenly spaced)"))
    return 0


def _folder_info(args: argparse.Namespace) -> int:
    """``data info DIR``: the mix of kinds in a fastMRI or FITS folder (what training will do with it)."""
    from ambient_imaging.training.mix import folder_report

    rep = folder_report(Path(args.file))
    if args.json:
        print(json.dumps({k: rep[k] for k in ("folder", "files", "format", "mix", "training")}, indent=2))
        return 0
    print(f"folder:        {rep['folder']} ({rep['files']} {rep['format']} files)")
    print(f"mix:           {rep['describe']}")
    print(f"training:      {rep['training']}")
    return 0


def _nonfinite_text(bad: dict[str, Any]) -> str:
    where = ", ".join(map(str, bad["slices"][:10])) + (", ..." if len(bad["slices"]) > 10 else "")
    return f"k-space holds {bad['nan']} NaN and {bad['inf']} Inf values (slices {where})"
