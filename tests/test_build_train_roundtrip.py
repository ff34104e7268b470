"""Every ``ambient-imaging data build NAME --out DIR`` output is accepted by ``ambient-imaging train --data DIR``."""

from __future__ import annotations

import pytest

from ambient_imaging.cli import main
from ambient_imaging.training import load_prior

FAST = ["--steps", "1", "--batch-size", "2", "--network", "tiny", "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("builds")
    out = {}
    for name in ("faces", "sky-hdf", "mri-brain"):
        d = root / name
        assert main(["data", "build", name, "--out", str(d), "--size", "small", "--quiet"]) == 0, name
        out[name] = d
    return out


@pytest.mark.parametrize(
    "name,operator,extra",
    [
        ("faces", "mask", ["--corruption", "0.5"]),
        ("sky-hdf", "mask", ["--corruption", "0.5", "--image-size", "16"]),
        ("sky-hdf", "interferometry", []),
        ("mri-brain", "mri", []),
    ],
)
def test_build_folder_trains(builds, tmp_path, capsys, name, operator, extra):
    run = tmp_path / "run"
    rc = main(["train", "--data", str(builds[name]), "--operator", operator, "--out", str(run), *extra, *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    prior = load_prior(run)
    assert prior.step == 1 and prior.family == operator


def test_mri_brain_train_subfolder_still_works(builds, tmp_path, capsys):
    rc = main(["train", "--data", str(builds["mri-brain"] / "train"), "--operator", "mri", "--out",
               str(tmp_path / "run"), *FAST])
    assert rc == 0, capsys.readouterr().err


def test_resolve_build_folder(builds, tmp_path):
    from ambient_imaging.training.data import resolve_build_folder

    assert resolve_build_folder(builds["faces"]) == (builds["faces"] / "train.npy", "faces")
    assert resolve_build_folder(builds["sky-hdf"])[0] == builds["sky-hdf"] / "train"
    assert resolve_build_folder(tmp_path) == (tmp_path, None)
