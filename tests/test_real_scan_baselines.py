"""The classical baselines on a real 8-coil brain scan (``../shared/data``; skipped when absent).

To stay under ~30 s on one thread the scan is taken at half resolution (its central 116×90 k-space
block: the same field of view, :func:`~ambient_imaging.operators.resize_kspace`), undersampled at R=4
with fastMRI random lines (8 centre lines) and scored against the RSS of the fully sampled block.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_imaging.datasets.cfl import read_cfl, write_cfl
from ambient_imaging.metrics.fastmri import fastmri_volume_metrics
from ambient_imaging.operators import ifft2c, resize_kspace
from ambient_imaging.problems import MaskSpec, mri_problem
from ambient_imaging.sampling import L1Wavelet, ZeroFilled

FULL_FOV = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain230x180_8ch.h5"
needs_scan = pytest.mark.skipif(not FULL_FOV.is_file(), reason=f"{FULL_FOV} is not here (shared scans only)")
ITERS = 50


def _scan() -> tuple[np.ndarray, np.ndarray]:
    """Half-resolution k-space ``(8, 116, 90)`` of the full-FOV scan and the RSS of its coil images."""
    import h5py

    with h5py.File(FULL_FOV, "r") as f:
        k = np.asarray(f["kspace"][0])
    k = resize_kspace(k, (116, 90)).astype(np.complex64)
    rss = torch.sqrt((ifft2c(torch.from_numpy(k)).abs() ** 2).sum(0)).numpy()
    return k, rss


def _psnr(ref: np.ndarray, img: torch.Tensor | np.ndarray) -> float:
    a = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    mag = np.sqrt((np.abs(a) ** 2).sum(0)) if a.ndim == 3 else np.abs(a)
    return fastmri_volume_metrics(ref[None], mag[None])["psnr"]


@pytest.fixture(scope="module")
def scan_problem():  # noqa: ANN201
    """The problem, the reference, and the zero-filled and default ℓ1 PSNRs (computed once for both tests)."""
    k, rss = _scan()
    prob = mri_problem(k, mask_spec=MaskSpec("random", 4.0, center_lines=8, seed=0), key="brain230x180_8ch.h5:0",
                       map_sets=1)
    zf = _psnr(rss, ZeroFilled()(prob.y, prob.op).mean[0])
    rec = L1Wavelet(max_iter=ITERS)(prob.y, prob.op)
    print(f"zero-filled {zf:.2f} dB, default l1 {_psnr(rss, rec.mean[0]):.2f} dB (λ {rec.info['lamda'][0]:g})")
    return prob, rss, zf, _psnr(rss, rec.mean[0])


@needs_scan
def test_default_l1_beats_zero_filled_and_is_near_the_oracle_sigpy_recon(scan_problem) -> None:
    import sigpy.mri.app as app

    prob, rss, zf, ours = scan_problem
    y, op = prob.y, prob.op
    # sigpy's own app on the same data and maps, λ tuned against the reference (an oracle, not a rule)
    maps = op.sens_maps[0].numpy()
    w = op.mask_channels()[0, 0].numpy()
    yk = y[0].numpy()
    scale = float(np.percentile(np.abs(op.adjoint(y)[0, 0].numpy()), 99))
    oracle = max(_psnr(rss, scale * app.L1WaveletRecon(yk / scale, maps, lam, weights=w, max_iter=ITERS,
                                                       show_pbar=False).run())
                 for lam in (3e-4, 1e-3, 3e-3, 1e-2))
    # observed (2026-12-06): zero-filled 20.43, default ℓ1 24.44 (λ 1e-3), oracle sigpy 24.44 dB
    print(f"oracle sigpy L1WaveletRecon {oracle:.2f} dB")
    assert ours > zf + 1.0, (ours, zf)
    assert ours > oracle - 1.0, (ours, oracle)


@needs_scan
@pytest.mark.skipif(shutil.which("bart") is None, reason="BART is not installed (apt-get install bart)")
def test_default_l1_within_1db_of_bart_pics_l1_on_the_same_mask(scan_problem, tmp_path: Path) -> None:
    prob, rss, _zf, ours = scan_problem
    rows, cols, kw = prob.meta["calibration"]
    write_cfl(tmp_path / "k", prob.y[0].numpy().transpose(1, 2, 0)[:, :, None, :])
    subprocess.run(["bart", "ecalib", "-m2", "-k", str(kw), "-r", f"{rows}:{cols}", str(tmp_path / "k"),
                    str(tmp_path / "s")], check=True, capture_output=True)
    bart = -np.inf
    for lam in (3e-3, 1e-2, 3e-2):  # BART's best λ on this grid (an oracle for BART)
        subprocess.run(["bart", "pics", "-S", "-l1", "-r", str(lam), str(tmp_path / "k"), str(tmp_path / "s"),
                        str(tmp_path / "x")], check=True, capture_output=True)
        bart = max(bart, _psnr(rss, read_cfl(tmp_path / "x")[:, :, 0, 0, :].transpose(2, 0, 1)))
    print(f"BART pics -l1 {bart:.2f} dB")
    # observed (2026-12-06): BART pics -l1 (ecalib -m2, best λ) 24.13, ours (λ by cross-validation) 24.44 dB
    assert ours > bart - 1.0, (ours, bart)
