"""Issue 22 for ``reconstruct``, one block per class: settings travel with outputs (1), sizes checked first (3),
results checked before success (4), no flag ignored silently (5), inputs validated before work (6), errors
that name their file or flag (7), interrupted outputs (8). Classical methods on tiny files: seconds."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
import torch
from _toy_mri import coil_maps, fft2c, phantom

from ambient_imaging.cli import main

N = 32


def _run(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _mri_file(path, slices: int = 2, coils: int = 2, scale: float = 1.0, zero: bool = False, rss: bool = False):
    """A fully sampled fastMRI-layout file of ``slices`` slices (``coils`` = 1: single-coil layout)."""
    maps = coil_maps(max(coils, 2), N, N, torch.complex64)[0][:coils]
    x = phantom(N).to(torch.complex64)[0, 0]
    k = np.stack([fft2c(maps * x * (1 + 0.1 * s)).numpy() for s in range(slices)]) * scale
    if zero:
        k[:] = 0
    if coils == 1:
        k = k[:, 0]
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=k.astype(np.complex64))
        if rss:
            f.create_dataset("reconstruction_rss", data=np.zeros((slices, N, N), np.float32))
    return path


@pytest.fixture
def mri(tmp_path):
    return _mri_file(tmp_path / "scan.h5")


def _zf(data, out, *flags):
    return ["reconstruct", "--data", data, "--out", out, "--sampler", "zero-filled", *flags]


# ---------------------------------------------------------------------- 1 + 8: settings, interrupted outputs
def test_rerun_with_other_settings_is_refused_with_the_overwrite_command(mri, tmp_path, capsys):
    """Before: the same command with ``--acceleration 2`` printed "done already (skipped)" and kept R=4."""
    out = tmp_path / "r.nc"
    assert _run(_zf(mri, out, "--acceleration", 4), capsys)[0] == 0
    rec = json.loads(out.with_suffix(".metrics.json").read_text())
    assert rec["settings"]["acceleration"] == 4.0 and rec["settings"]["method"] == "zero-filled"
    assert set(rec["artefacts"]) == {"r.nc", "r.png", "r.metrics.json"}
    code, _, err = _run(_zf(mri, out, "--acceleration", 2), capsys)
    assert code == 1 and "other settings" in err and "acceleration: 4.0 there, 2.0 now" in err
    assert "--acceleration 2 --overwrite" in err
    code, _, err = _run(_zf(mri, out, "--acceleration", 4), capsys)
    assert code == 0 and "done already" in err
    code, _, err = _run(_zf(mri, out, "--acceleration", 2, "--overwrite"), capsys)
    assert code == 0 and json.loads(out.with_suffix(".metrics.json").read_text())["settings"]["acceleration"] == 2.0


def test_an_output_missing_its_figure_is_redone_and_temporaries_go(mri, tmp_path, capsys):
    """Before: a kill between metrics.json and the PNG left an output "finished" without its figure, and hidden
    temporaries of killed writes stayed."""
    out = tmp_path / "r.nc"
    assert _run(_zf(mri, out), capsys)[0] == 0
    out.with_suffix(".png").unlink()
    stale = tmp_path / ".r.nc.~tmpdead.nc"
    stale.write_bytes(b"half-written")
    code, _, err = _run(_zf(mri, out), capsys)
    assert code == 0 and "done already" not in err
    assert out.with_suffix(".png").is_file() and not stale.exists()


# ---------------------------------------------------------------------- 3: sizes and counts
def test_slices_error_is_short_and_gives_the_range(mri, tmp_path, capsys):
    """Before: ``--slices 0-10000000`` listed every invalid index (an 89 MB message)."""
    code, _, err = _run(_zf(mri, tmp_path / "r.nc", "--slices", "0-10000000"), capsys)
    assert code == 1 and "valid: 0-1" in err and len(err) < 300


def test_sample_memory_is_checked_before_sampling():
    """Before: ``--samples 1e9`` reached an allocation and gave a memory traceback."""
    from types import SimpleNamespace

    from ambient_imaging.reconstruction.checks import check_sample_memory

    prob = SimpleNamespace(meta={"shape": (320, 320)}, y=torch.zeros(1, 16, 640, 320, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"--samples 1000000000.*needs about .* available"):
        check_sample_memory(prob, 10**9)
    check_sample_memory(prob, 8)


# ---------------------------------------------------------------------- 4: results checked
@pytest.mark.parametrize("kind", ["zero_kspace", "zero_rss"])
def test_empty_data_and_nan_scores_warn_and_fail_under_strict(tmp_path, capsys, kind):
    """Before: an all-zero 1-coil k-space gave an all-zero image and NaN χ², an all-zero reconstruction_rss
    NaN PSNR/SSIM/NMSE, with exit 0 and no warning."""
    src = _mri_file(tmp_path / "z.h5", slices=1, coils=1, zero=kind == "zero_kspace", rss=kind == "zero_rss")
    code, _, err = _run(_zf(src, tmp_path / "a.nc"), capsys)
    assert code == 0 and "warning" in err
    assert ("every measurement is zero" in err) if kind == "zero_kspace" else ("not finite" in err)
    code, _, err = _run(_zf(src, tmp_path / "b.nc", "--strict"), capsys)
    assert code == 1 and "error" in err


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_kspace_outside_float32_range_is_refused(tmp_path, capsys, scale):
    """Before: k-space scaled by 1e±30 gave NaN residuals (float32 under/overflow) and exit 0."""
    src = _mri_file(tmp_path / "s.h5", slices=1, scale=scale)
    code, _, err = _run(_zf(src, tmp_path / "r.nc"), capsys)
    assert code == 1 and "float32" in err and "s.h5" in err
    assert not (tmp_path / "r.nc").exists()


def _single_baseline_uvfits(path):
    from test_cli_reconstruct import _write_uvfits  # one BASELINE code for every row

    g = np.random.default_rng(0)
    m = 200
    uv = g.normal(size=(m, 2)) * 2e9
    vis = (g.normal(size=m) + 1j * g.normal(size=m)).astype(np.complex64)
    _write_uvfits(path, uv, vis, np.full(m, 0.1))
    return path


def test_single_baseline_cannot_constrain_an_image(tmp_path, capsys):
    """Before: a single-baseline UVFITS ran ``rml-tv`` to χ² 1.29 with no warning."""
    src = _single_baseline_uvfits(tmp_path / "one.uvfits")
    args = ["reconstruct", "--data", src, "--sampler", "rml-tv", "--fov", "160uas", "--npix", 16]
    code, _, err = _run([*args, "--out", tmp_path / "a.fits"], capsys)
    assert code == 0 and "1 baseline(s) cannot constrain" in err
    code, _, err = _run([*args, "--out", tmp_path / "b.fits", "--strict"], capsys)
    assert code == 1 and "baseline" in err


# ---------------------------------------------------------------------- 5: no flag ignored silently
def test_flags_that_do_not_apply_are_named(mri, tmp_path, capsys):
    """Before: ``--coils N`` ≥ the file's coils, ``--steps`` with zero-filled and ``--fov`` on MRI were ignored."""
    code, _, err = _run(_zf(mri, tmp_path / "a.nc", "--coils", 8, "--steps", 5), capsys)
    assert code == 0
    assert "--coils 8" in err and "2 coils" in err
    assert "--steps 5 does not apply to --sampler zero-filled" in err
    code, _, err = _run(_zf(mri, tmp_path / "b.nc", "--fov", "100uas"), capsys)
    assert code == 1 and "--fov applies to interferometric visibilities, not to MRI k-space" in err
    uv = _single_baseline_uvfits(tmp_path / "one.uvfits")
    code, _, err = _run(["reconstruct", "--data", uv, "--fov", "160uas", "--out", tmp_path / "c.fits",
                         "--acceleration", 4], capsys)
    assert code == 1 and "--acceleration applies to MRI k-space" in err


# ---------------------------------------------------------------------- 6: inputs validated before work
@pytest.mark.parametrize("spec", ["1,0", "0,0,0", "1,0,1"])
def test_slices_in_any_order(mri, tmp_path, capsys, spec):
    """Before: ``--slices 1,0`` or ``0,0,0`` failed after every slice was reconstructed (h5py's order rule)."""
    out = tmp_path / "r.nc"
    code, _, err = _run(_zf(mri, out, "--slices", spec), capsys)
    assert code == 0, err
    got = [s["slice"] for s in json.loads(out.with_suffix(".metrics.json").read_text())["slices"]]
    assert got == sorted(set(int(v) for v in spec.split(",")))


@pytest.mark.parametrize("crop", ["1", "2,2", "0"])
def test_tiny_crop_fails_before_work(mri, tmp_path, capsys, monkeypatch, crop):
    """Before: ``--crop 1`` failed in SSIM after all the work."""
    import ambient_imaging.reconstruction.run as run

    monkeypatch.setattr(run, "reconstruct", lambda *a, **k: pytest.fail("work started"))
    code, _, err = _run(_zf(mri, tmp_path / "r.nc", "--crop", crop), capsys)
    assert code == 1 and "--crop" in err and "at least 7" in err


def test_folder_run_skips_a_bad_file_with_a_summary(tmp_path, capsys):
    """Before: a folder ``reconstruct`` stopped at its first bad file."""
    data = tmp_path / "data"
    data.mkdir()
    _mri_file(data / "b_good.h5")
    with h5py.File(data / "a_bad.h5", "w") as f:
        f.create_dataset("image", data=np.zeros((2, 4, 4)))
    out = tmp_path / "out"
    code, _, err = _run(_zf(data, out), capsys)
    assert code == 0, err
    assert (out / "b_good.nc").is_file() and not (out / "a_bad.nc").exists()
    assert "skipped 1 of 2 files" in err and "a_bad.h5" in err
    code, _, err = _run(_zf(data, tmp_path / "out2", "--strict"), capsys)
    assert code == 1 and "a_bad.h5" in err


# ---------------------------------------------------------------------- 7: errors name their file or flag
@pytest.mark.parametrize("flag", ["--seed", "--mask-seed"])
def test_huge_seed_names_the_flag(mri, tmp_path, capsys, flag):
    """Before: ``--seed 2**70`` gave an overflow message without the flag."""
    code, _, err = _run(_zf(mri, tmp_path / "r.nc", flag, 2**70), capsys)
    assert code == 1 and f"{flag} must be between 0 and 4294967295" in err


def test_non_utf8_file_names_work_end_to_end(tmp_path, capsys):
    """Before: a non-UTF-8 file name stopped ``prepare``/``reconstruct``/``evaluate`` with a bare codec error."""
    data = tmp_path / os.fsdecode(b"caf\xe9")
    data.mkdir()
    _mri_file(data / os.fsdecode(b"scan\xff.h5"))
    out = tmp_path / "out"
    code, _, err = _run(["data", "prepare", data], capsys)
    assert code == 0 and "0 skipped" in capsys.readouterr().out + err or code == 0
    code, _, err = _run(_zf(data, out), capsys)
    assert code == 0, err
    code, printed, err = _run(["evaluate", out], capsys)
    assert code == 0, err
    assert "scan\\xff" in printed


# ---------------------------------------------------------------------- the checks themselves
def test_measurement_and_result_checks():
    from types import SimpleNamespace

    from ambient_imaging.reconstruction.checks import measurement_problems, result_problems, score_problems

    op = SimpleNamespace(mask=torch.zeros(1, 4, 4, dtype=torch.bool))
    prob = SimpleNamespace(y=torch.zeros(1, 2, 4, 4, dtype=torch.complex64), op=op, kind="mri",
                           meta={"file": "f.h5", "slice": 3})
    found = measurement_problems(prob)
    assert any("f.h5 (slice 3): every measurement is zero" in m for m in found)
    assert any("sampling mask is empty" in m for m in found)
    prob.y = torch.full((1, 2, 4, 4), 1e30, dtype=torch.complex64)
    with pytest.raises(ValueError, match="float32"):
        measurement_problems(prob)
    assert result_problems("x", torch.zeros(1, 4, 4), {})[0].startswith("x: the reconstruction is all zero")
    assert score_problems("v", {"psnr": float("inf"), "nmse": 0.0}) == []  # a perfect estimate is a result
    assert "psnr, nmse are not finite" in score_problems("v", {"psnr": -float("inf"), "nmse": float("inf")})[0]
