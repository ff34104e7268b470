"""MultiCoilMRI throughput vs sigpy's equivalent linop, on the same data.

    python benchmarks/bench_mri.py [--device cpu|cuda] [--threads N] [--repeats R]

8 coils, 320x320, batch 4, complex64, a random fastMRI line mask (R=4, 8 % ACS),
one set of random maps per sample. Ours: ``A.adjoint(A.forward(x))`` (two separate
calls, as a sampler does). sigpy: ``Multiply(maps) → FFT(center=True) → Multiply(mask)``
on the whole batch (maps ``(B, Nc, H, W)``, image ``(B, 1, H, W)``) and its ``.H``, on CPU
numpy arrays. Times are medians over ``repeats`` forward+adjoint pairs after a warm-up, the
implementations timed interleaved so that load from other processes affects them alike.

Threads: ``torch.set_num_threads(N)`` governs our FFT (MKL/pocketfft in torch) and
elementwise kernels; sigpy calls ``numpy.fft``, which is single-threaded whatever N is,
so the fair comparison is N = 1 (the default here); larger N is reported as is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ambient_imaging.operators import MultiCoilMRI, mri_mask  # noqa: E402

B, NC, H, W = 4, 8, 320, 320


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fns: list, device: str, repeats: int) -> list[float]:
    """Median seconds per call of each function, timed interleaved (a shared machine's load hits all alike)."""
    for fn in fns:  # warm-up
        fn()
    _sync(device)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    maps = torch.complex(torch.randn(B, NC, H, W, generator=g), torch.randn(B, NC, H, W, generator=g))
    maps = maps / maps.abs().pow(2).sum(1, keepdim=True).sqrt()
    x = torch.complex(torch.randn(B, 1, H, W, generator=g), torch.randn(B, 1, H, W, generator=g))
    mask, acs = mri_mask((H, W), 4, center_fraction=0.08, batch=B, generator=g)
    return maps, x, mask, acs


def run(device: str = "cpu", repeats: int = 7, threads: int | None = None) -> list[dict]:
    """Benchmark rows: ms per forward+adjoint for MultiCoilMRI and for sigpy, and their ratio.

    ``threads=None`` keeps the caller's ``torch.get_num_threads()`` (reported in the rows).
    """
    import sigpy as sp

    if threads is not None:
        torch.set_num_threads(threads)
    n_threads = torch.get_num_threads()
    maps, x, mask, acs = _data()
    op = MultiCoilMRI(maps, mask, acs=acs).to(device)
    xd = x.to(device)
    maps_np, x_np = maps.numpy(), x.numpy()
    mask_np = mask[:, None].numpy().astype(np.float32)
    a = sp.linop.Multiply((B, NC, H, W), mask_np) * sp.linop.FFT((B, NC, H, W), axes=(-2, -1), center=True) \
        * sp.linop.Multiply((B, 1, H, W), maps_np)
    ah = a.H
    with torch.no_grad():
        t_ours, t_normal, t_sigpy = _time(
            [lambda: op.adjoint(op.forward(xd)), lambda: op.normal(xd), lambda: ah(a(x_np))], device, repeats
        )
        ours = op.adjoint(op.forward(xd)).cpu().numpy()
    ref = ah(a(x_np))
    rel = float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))
    case = f"MRI {NC}-coil {H}x{W} batch {B} complex64, fwd+adj"
    return [
        {"case": case, "impl": f"MultiCoilMRI ({device})", "threads": n_threads, "ms": 1e3 * t_ours,
         "ratio_vs_sigpy": t_ours / t_sigpy, "rel_err_vs_sigpy": rel},
        {"case": case.replace("fwd+adj", "normal"), "impl": f"MultiCoilMRI.normal ({device})", "threads": n_threads,
         "ms": 1e3 * t_normal, "ratio_vs_sigpy": t_normal / t_sigpy},
        {"case": case, "impl": "sigpy linop (numpy fft, 1 thread)", "threads": 1, "ms": 1e3 * t_sigpy,
         "ratio_vs_sigpy": 1.0},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (numpy's FFT is single-threaded)")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rows = run(args.device, args.repeats, args.threads)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
