"""One MRI file reader: ``reconstruct`` and training turn a fastMRI file into the same problems, and a prior
of another matrix is refused with the commands that make a matching one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ambient_imaging.cli import main
from ambient_imaging.datasets import FastMRISlices
from ambient_imaging.problems import MaskSpec
from ambient_imaging.reconstruction import ReconstructOptions
from ambient_imaging.reconstruction.app import reconstruct_path


@pytest.fixture(scope="module")
def val_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("reader") / "b"
    assert main(["data", "build", "mri-brain", "--matrix", "48,40", "--size", "small", "--coils", "4",
                 "--orientations", "axial", "--out", str(out), "--quiet"]) == 0
    return sorted((out / "val").glob("*.h5"))[0]


def test_training_and_reconstruct_read_a_file_alike(val_file, tmp_path):
    import h5py

    spec = MaskSpec("random", 4.0, seed=3)
    train = FastMRISlices(val_file, mask_spec=spec).problem(0)
    got = []
    opts = ReconstructOptions(method="zero-filled", acceleration=4.0, mask_seed=3, slices="0", progress=False)
    reconstruct_path(val_file, tmp_path / "r.nc", None, opts, say=lambda m: None, collect=got.append)
    rec = got[0].problem
    np.testing.assert_array_equal(rec.op.mask.numpy(), train.op.mask.numpy())  # the same mask
    with h5py.File(val_file) as f:
        declared = float(f.attrs["noise_sigma"])
    assert rec.meta["noise_sigma"] == train.meta["noise_sigma"] == declared  # the file's σ_n, not an estimate
    assert rec.meta["map_sets"] == train.meta["map_sets"] == 1
    assert rec.meta["acs_lines"] == train.meta["acs_lines"] == spec.center_width(40)
    assert rec.meta["band"] == train.meta["band"]
    maps_r, maps_t = rec.op.sens_maps, train.op.sens_maps  # measured ESPIRiT and the training cache: the same maps
    assert maps_r.shape == maps_t.shape
    assert torch.allclose(maps_r.abs(), maps_t.abs(), atol=1e-3)
    summary = json.loads((tmp_path / "r.metrics.json").read_text())
    assert summary["map_sets"] == [1] and summary["noise_sigma"] == [declared]
    assert summary["noise_sigma_source"] == "file"


def test_map_sets_are_told(val_file, tmp_path):
    said: list[str] = []
    opts = ReconstructOptions(method="zero-filled", acceleration=4.0, slices="0", progress=False, map_sets=1)
    reconstruct_path(val_file, tmp_path / "m.nc", None, opts, say=said.append)  # given: one set
    assert any(s.endswith("slice 0: ESPIRiT: 1 map set") for s in said), said
    said.clear()
    opts = ReconstructOptions(method="zero-filled", acceleration=4.0, slices="0", progress=False)
    reconstruct_path(val_file, tmp_path / "a.nc", None, opts, say=said.append)  # default: from the data, told why
    told = [s for s in said if "ESPIRiT:" in s]
    assert len(told) == 1 and ("(full FOV)" in told[0] or "(reduced FOV detected)" in told[0]), said


@pytest.fixture(scope="module")
def small_prior(tmp_path_factory):
    root = tmp_path_factory.mktemp("prior")
    assert main(["data", "build", "mri-brain", "--size", "small", "--out", str(root / "d"), "--quiet"]) == 0
    run = root / "run"
    assert main(["train", "--data", str(root / "d" / "train"), "--operator", "mri", "--out", str(run), "--steps", "1",
                 "--batch-size", "2", "--network", "tiny", "--no-progress", "--device", "cpu"]) == 0
    return run


def test_prior_of_another_matrix_is_refused(small_prior, val_file, tmp_path, capsys):
    out = tmp_path / "x.nc"
    rc = main(["reconstruct", "--prior", str(small_prior), "--data", str(val_file), "--acceleration", "4",
               "--sampler", "onestep", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc != 0
    assert "k-space is 48x40" in err and "trained on 32x32" in err
    assert "ambient-imaging data build mri-brain --matrix 48,40 --coils 4 --out" in err
    assert "ambient-imaging train --data" in err and "--allow-size-mismatch" in err
    assert not out.exists()
    rc = main(["reconstruct", "--prior", str(small_prior), "--data", str(val_file), "--acceleration", "4",
               "--sampler", "onestep", "--slices", "0", "--allow-size-mismatch", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0 and out.exists()
    assert "trained on 32x32" in err  # run anyway, and warned


def test_matching_prior_is_not_refused(small_prior, tmp_path):
    from ambient_imaging.reconstruction.checks import prior_size_refusal
    from ambient_imaging.training import load_prior

    prior = load_prior(small_prior)
    files = sorted((small_prior.parent / "d" / "val").glob("*.h5"))
    assert prior_size_refusal(prior, files) == "" and prior_size_refusal(None, files) == ""
