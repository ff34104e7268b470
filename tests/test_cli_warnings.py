"""Warnings print as one clean line through the CLI (never a Python source line); --strict makes them errors."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
import torch
from _toy_mri import coil_maps, fft2c, phantom

from ambient_imaging.cli import format_warning, one_line_warnings

N = 32


def _file(tmp_path):
    path = tmp_path / "toy.h5"
    maps = coil_maps(4, N, N, torch.complex64)[0]
    k = fft2c(maps * phantom(N).to(torch.complex64)[0, 0])
    g = torch.Generator().manual_seed(0)
    k = k + 1e-3 * torch.complex(torch.randn(k.shape, generator=g), torch.randn(k.shape, generator=g))
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=k.numpy()[None].astype(np.complex64))
    return path


def test_format_and_hook_one_line() -> None:
    assert format_warning("a\n  b\tc") == "warning: a b c"
    out = io.StringIO()
    with one_line_warnings(stream=out):
        warnings.warn("first line\nsecond line", RuntimeWarning, stacklevel=1)
    assert out.getvalue() == "warning: first line second line\n"
    # outside pytest's recorder (a real process), stderr gets the same single line
    code = ("import warnings; from ambient_imaging.cli import one_line_warnings\n"
            "with one_line_warnings():\n    warnings.warn('first\\nsecond', RuntimeWarning)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr == "warning: first second\n"


def test_one_line_warnings_keep_recorders_working() -> None:
    with pytest.warns(RuntimeWarning, match="recorded"), one_line_warnings():
        warnings.warn("recorded", RuntimeWarning, stacklevel=1)


def _cli(args) -> tuple[int, str]:
    """Run the CLI in a real process (pytest records warnings itself inside the test process)."""
    proc = subprocess.run([sys.executable, "-m", "ambient_imaging", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc.returncode, proc.stderr


def test_cli_warning_is_one_clean_line_and_strict_is_an_error(tmp_path) -> None:
    src = _file(tmp_path)
    # an absurd Tikhonov weight: the CG-SENSE image is ~0, far below zero-filled -> the honest check warns
    args = ["reconstruct", "--data", src, "--sampler", "sense", "--lamda", "1e6", "--acceleration", "4"]
    code, err = _cli(args + ["--out", tmp_path / "a.nc"])
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    warned = [ln for ln in lines if ln.startswith("warning: ")]
    assert warned, err
    assert any("below" in ln and "zero-filled" in ln for ln in warned), err
    # nothing else from the warnings machinery: no "RuntimeWarning", no file:line, no echoed source
    assert "RuntimeWarning" not in err and ".py:" not in err and "warnings.warn" not in err, err
    code, err = _cli(args + ["--out", tmp_path / "b.nc", "--strict"])
    assert code == 1 and "error:" in err and "zero-filled" in err
