"""How exact is the ring diameter of :func:`ambient_imaging.metrics.ring.ring_metrics`?

Analytic rings and crescents with known diameters (the peak-brightness circle) at sub-pixel radii and
centres, on the acceptance command's grid (64 pixels over 160 µas: 2.5 µas per pixel). Two settings of
the same estimator run side by side: REx's (cubic-spline profiles, parabolic peak refinement; the
default) and the bilinear argmax this toolkit used before.

    python benchmarks/ring_estimator.py

Writes ``results/ring_estimator.{md,json}`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
from pathlib import Path

import numpy as np

from ambient_imaging.datasets.simulate_vlbi import UAS, crescent
from ambient_imaging.metrics.ring import ring_metrics

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = {"REx: cubic + parabola (default)": dict(order=3, refine=True),
            "bilinear argmax (before)": dict(order=1, refine=False)}


def rings(seed: int = 0, npix: int = 64, fov_uas: float = 160.0):
    """``(name, image, true diameter µas)``: Gaussian-section rings (FWHM 5, 10, 15 µas) and crescents
    (asymmetry 0.5, bright side south) of diameters 30–50 µas, centres shifted by up to ±1 pixel."""
    px = fov_uas / npix
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:npix, 0:npix].astype(np.float64)
    for d in np.arange(30.0, 50.01, 0.37):
        cy, cx = npix // 2 + rng.uniform(-1, 1), npix // 2 + rng.uniform(-1, 1)
        r = np.hypot(yy - cy, xx - cx) * px
        for fwhm in (5.0, 10.0, 15.0):
            yield f"ring FWHM {fwhm:g}", np.exp(-0.5 * ((r - d / 2) / (fwhm / 2.3548)) ** 2), d
        shift = np.roll(crescent((npix, npix), px * UAS, d * UAS, 0.25, 0.6, 0.5, 180.0).numpy(),
                        (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), (0, 1))
        yield "crescent", shift, d


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    px = 160.0 / 64 * UAS
    errors: dict[str, dict[str, list[float]]] = {s: {} for s in SETTINGS}
    for kind, img, d in rings():
        for name, kw in SETTINGS.items():
            errors[name].setdefault(kind, []).append(ring_metrics(img, px, **kw).ring_diameter_uas - d)
    rows = []
    for name, by_kind in errors.items():
        for kind, e in by_kind.items():
            a = np.asarray(e)
            rows.append({"estimator": name, "images": kind, "n": int(a.size), "bias_uas": float(a.mean()),
                         "rms_uas": float(np.sqrt((a**2).mean())), "max_abs_uas": float(np.abs(a).max())})
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"date": dt.date.today().isoformat(), "machine": platform.machine(), "grid": "64 px over 160 uas"}
    (args.out / "ring_estimator.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["# Ring-diameter estimator on known rings", "",
             f"{meta['date']}, `python benchmarks/ring_estimator.py`. 64 pixels over 160 µas (2.5 µas per pixel); "
             "diameters 30–50 µas in 0.37-µas steps, centres off the grid by up to one pixel (crescents: whole "
             "pixels). Error = measured − true diameter (µas).", "",
             "| estimator | images | n | bias | rms | max abs |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['estimator']} | {r['images']} | {r['n']} | {r['bias_uas']:+.2f} | {r['rms_uas']:.2f} | "
              f"{r['max_abs_uas']:.2f} |" for r in rows]
    (args.out / "ring_estimator.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
