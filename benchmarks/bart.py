"""BART's ``pics`` as a reconstruction method of this toolkit, for benchmark cross-checks (not a dependency).

``BartPics(reg="l1", lamda=λ)(y, op)`` writes the multi-coil k-space ``y`` and the operator's own coil maps
(one set) to ``.cfl`` files, runs ``bart pics -S -R <W|T>:3:0:λ`` (ℓ1-wavelet or total variation along x and
y) or ``-l2 -r λ`` (Tikhonov, i.e. CG-SENSE), and returns BART's image. Same data, same maps, same mask as
our classical rows: the solver is the only difference, so a BART row shows whether our ℓ1-wavelet / TV /
SENSE rows are what the field's reference implementation reaches. λ is BART's (on its own data scaling,
``-S`` rescales the result); ``reconstruction.py --bart`` picks it on the validation slice
(:func:`~ambient_imaging.sampling.choose_lambda` over :data:`BART_GRID`).

Conventions (checked 2026-12-07 on a held-out ``mri-brain`` slice): BART's centred unitary FFT equals
``MultiCoilMRI``'s (``fftshift(fft2(ifftshift(·)))``, orthonormal): on fully sampled k-space, ``-l2`` with
λ = 1e-6 returned the SENSE-1 image ``Σ_c S_c^* F^H y_c / Σ_c |S_c|²`` to a relative 1e-6 on the maps' support.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ambient_imaging.datasets.cfl import read_cfl, write_cfl
from ambient_imaging.sampling.denoiser import Reconstruction
from ambient_imaging.sampling.method import Method

__all__ = ["BartPics", "bart_available", "BART_GRID"]

#: λ grid for BART rows (BART's scaling), as in ``real_scan.py``
BART_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)


def bart_available() -> bool:
    """Whether the ``bart`` command is on PATH (``apt-get install bart``)."""
    return shutil.which("bart") is not None


@dataclass
class BartPics(Method):
    """``bart pics`` with the operator's maps (module docs). ``reg``: ``"l1"`` (wavelets), ``"tv"`` or ``"l2"``."""

    name = "bart-pics"
    normalised = True  # tuned and run on the same normalised data as the other classical rows
    reg: str = "l1"
    lamda: float = 1e-3
    max_iter: int = 100

    def __post_init__(self):
        if self.reg not in ("l1", "tv", "l2"):
            raise ValueError(f"BartPics: reg must be 'l1', 'tv' or 'l2', got {self.reg!r}")

    def label(self) -> str:
        return f"bart-pics-{self.reg}"

    def flags(self) -> list[str]:
        """``pics`` regularisation flags."""
        if self.reg == "l2":
            return ["-l2", "-r", f"{self.lamda:g}"]
        kind = "W" if self.reg == "l1" else "T"
        return ["-R", f"{kind}:3:0:{self.lamda:g}"]

    def __call__(self, y: Tensor, op) -> Reconstruction:
        if not bart_available():
            raise RuntimeError("bart is not on PATH (apt-get install bart)")
        maps = op.sens_maps
        if maps.ndim != 4:
            raise ValueError(f"BartPics: one set of coil maps (B, Nc, H, W) expected, got {tuple(maps.shape)}")
        out = []
        with tempfile.TemporaryDirectory(prefix="bart-") as tmp:
            d = Path(tmp)
            for b in range(y.shape[0]):
                k = y[b].detach().cpu().numpy()  # (Nc, H, W)
                s = maps[b if maps.shape[0] > 1 else 0].detach().cpu().numpy()
                write_cfl(d / "k", k.transpose(1, 2, 0)[:, :, None, :])  # BART: (x, y, z, coil)
                write_cfl(d / "s", s.transpose(1, 2, 0)[:, :, None, :])
                subprocess.run(["bart", "pics", "-S", "-i", str(self.max_iter), *self.flags(), str(d / "k"),
                                str(d / "s"), str(d / "x")], check=True, capture_output=True)
                out.append(torch.from_numpy(np.ascontiguousarray(read_cfl(d / "x")[:, :, 0, 0, 0])))
        x = torch.stack(out).to(y.device, dtype=y.dtype)
        rec = Reconstruction(x[:, None, None], nfe=0)  # (B, K=1, M=1, H, W)
        rec.info["method"] = self.label()
        return rec
