"""Mixed training sets: fully sampled + undersampled fastMRI files train one prior (issue 19)."""

from __future__ import annotations

import json

import pytest
from test_cli_train import FAST, _write_tiny_fastmri

from ambient_imaging.cli import main
from ambient_imaging.training import load_prior

datasets = pytest.importorskip("ambient_imaging.datasets")


def _mixed(tmp_path, n_clean=1, n_under=2):
    full, under, mixed = tmp_path / "full", tmp_path / "under", tmp_path / "mixed"
    for d in (full, under, mixed):
        d.mkdir()
    for i in range(n_clean + n_under):
        _write_tiny_fastmri(full / f"f{i}.h5", slices=2)
    for i in range(n_clean):
        (mixed / f"f{i}.h5").write_bytes((full / f"f{i}.h5").read_bytes())
    for i in range(n_clean, n_clean + n_under):
        datasets.undersample_file(full / f"f{i}.h5", under / f"f{i}.h5", acceleration=3, center_fraction=0.3, seed=i)
        (mixed / f"f{i}.h5").write_bytes((under / f"f{i}.h5").read_bytes())
    for i in range(n_clean, n_clean + n_under):
        (full / f"f{i}.h5").unlink()
    return full, under, mixed


def test_mixed_folder_trains_and_records_the_mix(tmp_path, capsys):
    _full, _under, mixed = _mixed(tmp_path)
    assert main(["data", "info", str(mixed), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["mix"]["clean_slices"] == 2 and rep["mix"]["corrupted_slices"] == 4
    out = tmp_path / "run"
    rc = main(["train", "--data", str(mixed), "--operator", "mri", "--steps", "2", "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "mixed set" in err and "MixtureLoss" in err
    mix = load_prior(out).info["data_mix"]
    assert mix["clean_files"] == 1 and mix["corrupted_files"] == 2
    assert mix["clean_fraction"] == pytest.approx(1 / 3, abs=1e-3)


def test_data_info_folder_text(tmp_path, capsys):
    _full, _under, mixed = _mixed(tmp_path)
    assert main(["data", "info", str(mixed)]) == 0
    out = capsys.readouterr().out
    assert "2 fully sampled slice(s) in 1 file(s)" in out and "ambient loss" in out


def test_clean_data_flag_trains_both(tmp_path, capsys):
    full, under, _mixed_dir = _mixed(tmp_path)
    out = tmp_path / "run2"
    rc = main(["train", "--data", str(under), "--clean-data", str(full), "--operator", "mri", "--steps", "1",
               "--out", str(out), *FAST])
    assert rc == 0, capsys.readouterr().err
    assert load_prior(out).info["data_mix"]["clean_slices"] == 2


def test_bad_combinations_are_one_line_errors(tmp_path, capsys):
    full, under, mixed = _mixed(tmp_path)
    # --clean-data holding undersampled files
    rc = main(["train", "--data", str(under), "--clean-data", str(under), "--operator", "mri", "--steps", "1",
               "--out", str(tmp_path / "a"), *FAST])
    errs = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert rc != 0 and len(errs) == 1 and "--clean-data" in errs[0] and "undersampled" in errs[0]
    # a mixed set with a loss that cannot tell the kinds apart
    rc = main(["train", "--data", str(mixed), "--operator", "mri", "--loss", "naive", "--steps", "1",
               "--out", str(tmp_path / "b"), *FAST])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "mixed set" in err


def test_build_mri_brain_with_clean_fraction(tmp_path, capsys):
    out = tmp_path / "brain"
    assert main(["data", "build", "mri-brain", "--size", "small", "--clean-fraction", "0.5", "--out", str(out),
                 "--quiet"]) == 0
    meta = json.loads((out / "build.json").read_text())
    capsys.readouterr()
    assert main(["data", "info", str(out), "--json"]) == 0
    mix = json.loads(capsys.readouterr().out)["mix"]
    assert mix["clean_files"] == len(meta["clean_files"]) > 0 and mix["corrupted_files"] > 0
    assert main(["data", "build", "mri-brain", "--size", "small", "--clean-fraction", "2", "--out",
                 str(tmp_path / "b")]) != 0
    assert "--clean-fraction 2.0: must be in [0, 1]" in capsys.readouterr().err


def test_build_mri_brain_slices_per_file_sets_the_clean_fraction_finely(tmp_path, capsys):
    """Fewer slices per file make more files, so a small clean fraction is not rounded to zero files."""
    coarse, fine = tmp_path / "coarse", tmp_path / "fine"
    args = ["data", "build", "mri-brain", "--size", "small", "--clean-fraction", "0.2", "--quiet"]
    assert main([*args, "--out", str(coarse)]) == 0
    assert main([*args, "--slices-per-file", "1", "--out", str(fine)]) == 0
    a, b = (json.loads((p / "build.json").read_text()) for p in (coarse, fine))
    assert b["slices_per_file"] == 1 and b["train_slices"] == a["train_slices"]
    n_fine = len(list((fine / "train").glob("*[0-9].h5")))
    assert n_fine == b["train_slices"] and len(b["clean_files"]) == round(0.2 * n_fine)
    assert len(b["clean_files"]) > len(a["clean_files"])
    capsys.readouterr()
    assert main([*args, "--slices-per-file", "0", "--out", str(tmp_path / "bad")]) != 0
    assert "slices_per_file must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # refused before anything is written
