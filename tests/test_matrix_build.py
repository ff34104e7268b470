"""``data build mri-brain --matrix H,W``: the brain set at a scan's matrix (native 1 mm, several orientations)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ambient_imaging.cli import main
from ambient_imaging.datasets.embedded.mri_brain_matrix import parse_matrix, template_planes
from ambient_imaging.problems import MaskSpec


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("matrix") / "b"
    rc = main(["data", "build", "mri-brain", "--matrix", "48,40", "--size", "small", "--coils", "4", "--snr", "30",
               "--orientations", "axial,coronal", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


def test_build_records_everything(build):
    meta = json.loads((build / "build.json").read_text())
    assert meta["matrix"] == [48, 40] and meta["n_coils"] == 4 and meta["snr"] == 30.0
    assert meta["orientations"] == ["axial", "coronal"]
    assert meta["center_lines"] == MaskSpec(acceleration=4.0).center_width(40)  # fastMRI's 8 % of W at R = 4
    assert meta["mask"] == {"kind": "random", "acceleration": 4.0, "seed": 0}
    assert meta["pixel_spacing_mm"] > 1.0 and not meta["native_resolution"]  # the head is downsampled to fit 48x40
    assert meta["field_of_view_mm"] == pytest.approx([48 * meta["pixel_spacing_mm"], 40 * meta["pixel_spacing_mm"]])
    assert set(meta["split"]["per_orientation"]) == {"axial", "coronal"}
    assert "--matrix 48,40" in meta["command"]
    names = [f["file"] for f in meta["files"]]
    assert any("axial" in n for n in names) and any("coronal" in n for n in names)
    assert sum(f["slices"] for f in meta["files"]) == meta["train_slices"] + meta["val_slices"]


def test_files_are_rectangular_and_masked_by_the_reconstruct_rule(build):
    meta = json.loads((build / "build.json").read_text())
    spec = MaskSpec.from_dict(meta["mask"])
    train = sorted((build / "train").glob("*.h5"))
    assert train
    with h5py.File(train[0]) as f:
        k, mask = f["kspace"][()], f["mask"][()]
        assert k.shape[1:] == (4, 48, 40) and f.attrs["noise_sigma"] > 0 and f.attrs["orientation"] == "axial"
        for j in range(k.shape[0]):  # one mask per slice, keyed as reconstruct keys it
            want = spec.sample((48, 40), key=f"{train[0].name}:{j}")[0].numpy()
            np.testing.assert_array_equal(mask[j].astype(bool), want)
            assert not np.abs(k[j][..., ~want]).any()
    val = sorted((build / "val").glob("*.h5"))
    with h5py.File(val[0]) as f:
        assert f["reconstruction_rss"].shape[1:] == (48, 40) and np.abs(f["kspace"][()]).min() > 0


def test_scan_matrix_is_native_1mm():
    planes, mm = template_planes((230, 180), step=40)
    assert mm == 1.0
    for o, (imgs, keep) in planes.items():
        assert imgs.shape[1:] == (230, 180) and len(keep) == imgs.shape[0] > 0, o
        rows, cols = np.where((imgs > 0.05).any(axis=0))
        assert rows.min() > 0 and cols.min() > 0 and rows.max() < 229 and cols.max() < 179, o  # the head fits


def test_parse_matrix():
    assert parse_matrix("230,180") == (230, 180) == parse_matrix("230x180") == parse_matrix((230, 180))
    assert parse_matrix("64") == (64, 64)
    for bad in ("a,b", "1,2,3", "8,8", "230,5000"):
        with pytest.raises(ValueError, match="--matrix"):
            parse_matrix(bad)


def test_cli_refuses_other_build_and_bad_flags(build, tmp_path, capsys):
    rc = main(["data", "build", "mri-brain", "--matrix", "40,40", "--size", "small", "--out", str(build), "--quiet"])
    assert rc != 0 and "already holds" in capsys.readouterr().err
    rc = main(["data", "build", "faces", "--matrix", "40,40", "--out", str(tmp_path / "f")])
    assert rc != 0 and "do not apply to faces" in capsys.readouterr().err
    rc = main(["data", "build", "mri-brain", "--orientations", "axial", "--out", str(tmp_path / "m")])
    assert rc != 0 and "--matrix" in capsys.readouterr().err
    rc = main(["data", "build", "mri-brain", "--matrix", "48,40", "--orientations", "axial,oblique",
               "--out", str(tmp_path / "m")])
    assert rc != 0 and "oblique" in capsys.readouterr().err
