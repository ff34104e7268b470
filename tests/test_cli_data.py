"""``ambient-imaging data list|build|info|prepare`` through ``ambient_imaging.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ambient_imaging.cli import main


def test_data_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("mri-brain", "sky-hdf", "faces"):
        assert name in out
    assert "mri-brain.md" in out


def test_data_build_info_prepare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mb"
    assert main(["data", "build", "mri-brain", "--out", str(out), "--size", "small", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "files:" in text and "MB" in text and "time:" in text
    meta = json.loads((out / "build.json").read_text())
    assert meta["dataset"] == "mri-brain" and meta["acceleration"] == 4.0
    # same build again is fine; a different one is refused without --force
    assert main(["data", "build", "mri-brain", "--out", str(out), "--size", "small", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["data", "build", "mri-brain", "--out", str(out), "--size", "small", "--seed", "2", "--quiet"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["data", "build", "mri-brain", "--out", str(out), "--size", "small", "--seed", "2", "--acceleration",
                 "3", "--force", "--quiet"]) == 0
    assert json.loads((out / "build.json").read_text())["seed"] == 2
    capsys.readouterr()
    train = sorted((out / "train").glob("*.h5"))[0]
    assert main(["data", "info", str(train)]) == 0
    info = capsys.readouterr().out
    n = json.loads((out / "build.json").read_text())["matrix"]
    assert f"({n}, {n}, 1)" in info and "stored" in info and "R = " in info
    assert main(["data", "info", str(out / "nope.h5")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["data", "prepare", str(train), "--cache-dir", str(tmp_path / "c")]) == 0
    assert "1 maps computed" in capsys.readouterr().out


def test_data_build_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "build", "nosuch", "--out", str(tmp_path / "x")]) == 1
    assert "unknown embedded dataset" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["data", "build", "mri-brain", "--out", str(tmp_path / "busy"), "--size", "small"]) == 1
    assert "other files" in capsys.readouterr().err
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
