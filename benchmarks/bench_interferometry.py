"""Interferometer throughput and accuracy: our torch NUFFT vs finufft vs a direct DFT.

    python benchmarks/bench_interferometry.py [--device cpu|cuda] [--threads N] [--quick]

A 128x128 real sky, 10,000 and 100,000 random uv points inside the grid's
Nyquist band, batch 1 and 4 (one coverage shared by the batch). Times are the
median of a few forward+adjoint pairs through :class:`Interferometer`
(plans built once, as in training and sampling); "plan" is the one-off cost
of a new coverage. finufft (the reference library) runs on CPU numpy arrays;
the direct DFT (exact sum, ``O(M·H·W)``) is timed for 10k points and gives the
reference values for the accuracy column (checked on 2,000 points at 100k).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ambient_imaging.operators import Interferometer  # noqa: E402
from ambient_imaging.operators.nufft import NUFFTPlan, default_eps, direct_dft2d, direct_dft2d_adjoint  # noqa: E402

SHAPE = (128, 128)
PIX = 1e-6


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, device: str, reps: int) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def run(device: str = "cpu", sizes: tuple[int, ...] = (10_000, 100_000), batches: tuple[int, ...] = (1, 4),
        reps: int = 3) -> list[dict]:
    """Benchmark rows (one dict per implementation, size, batch and precision)."""
    rows: list[dict] = []
    g = torch.Generator().manual_seed(0)
    for m in sizes:
        uv = (torch.rand(m, 2, generator=g, dtype=torch.float64) - 0.5) / PIX  # |u| <= 1/(2Δ)
        n_check = min(m, 2000)
        for b in batches:
            x = torch.rand(b, 1, *SHAPE, generator=g, dtype=torch.float64)
            y = torch.randn(b, m, generator=g, dtype=torch.complex128)
            ref_fwd = direct_dft2d(x[:, 0], uv[:n_check] * PIX)
            ref_adj = direct_dft2d_adjoint(y[:, :n_check], uv[:n_check] * PIX, SHAPE).real
            results = {}
            for impl, backend, dev in (("ours (torch NUFFT)", "torch", device), ("finufft", "finufft", "cpu")):
                for prec, dt in (("double", torch.float64), ("single", torch.float32)):
                    op = Interferometer(uv.to(dev), SHAPE, PIX, backend=backend)
                    xs, ys = x.to(dev, dt), y.to(dev, torch.complex128 if dt == torch.float64 else torch.complex64)
                    t = _time(lambda op=op, xs=xs, ys=ys: (op.forward(xs), op.adjoint(ys)), dev, reps)
                    # accuracy: forward on the first n_check points, adjoint with only those rows non-zero
                    sub = Interferometer(uv[:n_check].to(dev), SHAPE, PIX, backend=backend)
                    err_f = _rel(sub.forward(xs).cpu().to(torch.complex128), ref_fwd)
                    err_a = _rel(sub.adjoint(ys[:, :n_check])[:, 0].cpu().double(), ref_adj)
                    row = {
                        "operator": "Interferometer 128x128",
                        "M": m,
                        "batch": b,
                        "impl": impl,
                        "device": dev,
                        "precision": prec,
                        "fwd+adj ms": 1e3 * t,
                        "rel err fwd": err_f,
                        "rel err adj": err_a,
                    }
                    if backend == "torch":
                        pts = (uv.to(dev) * PIX).to(dt)
                        build = lambda pts=pts: NUFFTPlan(SHAPE, pts, default_eps(pts.dtype))  # noqa: E731
                        row["plan ms"] = 1e3 * _time(build, dev, 1)
                    results[(backend, prec)] = row
                    rows.append(row)
            for prec in ("double", "single"):
                ours, ref = results[("torch", prec)], results[("finufft", prec)]
                ours["time / finufft"] = ours["fwd+adj ms"] / ref["fwd+adj ms"]
            if m <= 10_000:
                xs = x.to(device)
                ys = y.to(device)
                pts = (uv * PIX).to(device)
                t = _time(lambda xs=xs, ys=ys, pts=pts: (direct_dft2d(xs[:, 0], pts),
                                                          direct_dft2d_adjoint(ys, pts, SHAPE)), device, 1)
                rows.append({
                    "operator": "Interferometer 128x128", "M": m, "batch": b, "impl": "direct DFT", "device": device,
                    "precision": "double", "fwd+adj ms": 1e3 * t, "rel err fwd": 0.0, "rel err adj": 0.0,
                })
                for prec in ("double", "single"):
                    results[("torch", prec)]["time / direct DFT"] = results[("torch", prec)]["fwd+adj ms"] / (1e3 * t)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="10k points, batch 1 only")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kw = {"sizes": (10_000,), "batches": (1,)} if args.quick else {}
    rows = run(device=args.device, **kw)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
