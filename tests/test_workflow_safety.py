"""Workflow fixes of issue 13: literal file names, sidecars ignored, errors naming their file, devices, outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_imaging.cli import main
from ambient_imaging.datasets.io import expand_paths, is_sidecar
from ambient_imaging.devices import resolve_device
from ambient_imaging.paths import check_output_dir, check_output_file, overlaps


# ---------------------------------------------------------------------- file names and sidecars
def test_file_names_are_literal_before_globs(tmp_path):
    odd = tmp_path / "scan[1].h5"
    odd.write_bytes(b"x")
    (tmp_path / "scan1.h5").write_bytes(b"y")  # what the glob "scan[1].h5" would match instead
    assert expand_paths(odd) == [odd]
    assert expand_paths(str(tmp_path / "scan?.h5")) == [tmp_path / "scan1.h5"]  # a real glob still works
    with pytest.raises(FileNotFoundError, match="no files match"):
        expand_paths(str(tmp_path / "none[2].h5"))


def test_our_sidecars_are_not_data(tmp_path):
    for name in ("a.h5", "a.maps.h5", "sub/b.h5", "sub/b-1234.maps.h5", ".a.h5.~tmpxyz.h5", ".cache/c.h5"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert expand_paths(tmp_path) == [tmp_path / "a.h5", tmp_path / "sub" / "b.h5"]
    assert expand_paths(str(tmp_path / "*.h5")) == [tmp_path / "a.h5"]
    assert is_sidecar("x.maps.h5") and is_sidecar(".lock") and is_sidecar("r.metrics.json")
    assert not is_sidecar("file_brain_AXT2_200_2000019.h5")


# ---------------------------------------------------------------------- outputs
def test_output_checks(tmp_path, monkeypatch):
    data = tmp_path / "k.h5"
    data.write_bytes(b"raw k-space")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "x.h5").write_bytes(b"x")
    link = tmp_path / "link.h5"
    link.symlink_to(data)
    with pytest.raises(ValueError, match="is the input"):
        check_output_file(data, inputs=[data])
    with pytest.raises(ValueError, match="is the input"):
        check_output_file(link, inputs=[data])  # the same file through a link
    with pytest.raises(ValueError, match="lies inside the input"):
        check_output_file(folder / "rec.nc", inputs=[folder])
    with pytest.raises(ValueError, match="existing folder"):
        check_output_file(folder, inputs=[data])
    with pytest.raises(ValueError, match="unsupported output type"):
        check_output_file(tmp_path / "rec.txt", suffixes=(".nc", ".h5"))
    with pytest.raises(ValueError, match="existing file"):
        check_output_dir(data)
    with pytest.raises(ValueError, match="lies inside"):
        check_output_dir(folder / "out", inputs=[folder])
    assert check_output_file(tmp_path / "new" / "rec.nc", inputs=[data, None, "faces"]) == tmp_path / "new" / "rec.nc"
    assert overlaps(folder / "a" / "b", folder) and not overlaps(folder, folder / "a")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p).startswith(str(tmp_path)) else real(p, m))
    with pytest.raises(ValueError, match="not writable"):
        check_output_file(tmp_path / "rec.nc")


# ---------------------------------------------------------------------- devices
def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="--device bogus: not a device; use one of cpu"):
        resolve_device("bogus")
    with pytest.raises(ValueError, match="unsupported device type 'meta'"):
        resolve_device("meta")
    with pytest.raises(ValueError, match="--device cuda:99"):
        resolve_device("cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="use --device cpu"):
            resolve_device("cuda")


# ---------------------------------------------------------------------- errors that name their file
def test_truncated_fits_and_uvfits_name_the_file(tmp_path):
    from astropy.io import fits

    from ambient_imaging.datasets.fits import read_fits_image

    full = tmp_path / "sky.fits"
    fits.PrimaryHDU(np.ones((64, 64), np.float32)).writeto(full)
    cut = tmp_path / "cut.fits"
    cut.write_bytes(full.read_bytes()[:6000])
    with pytest.warns(Warning), pytest.raises(ValueError, match=f"{cut}: truncated or corrupt FITS file"):
        read_fits_image(cut)

    from test_datasets_uvfits import _simulated

    from ambient_imaging.datasets.uvfits import read_uvfits, write_uvfits

    uv = write_uvfits(tmp_path / "obs.uvfits", _simulated()[3])
    cut = tmp_path / "cut.uvfits"
    cut.write_bytes(uv.read_bytes()[: uv.stat().st_size // 2])
    with pytest.warns(Warning), pytest.raises(ValueError, match=f"{cut}: truncated or corrupt UVFITS file"):
        read_uvfits(cut)


def test_espirit_failure_names_what_it_was_given():
    from ambient_imaging.operators import espirit_maps

    k = torch.zeros(4, 32, 32, dtype=torch.complex64)  # no calibration data at all
    with pytest.raises(ValueError, match="brain1.h5 slice 3: ESPIRiT coil-map estimation failed: the central"):
        espirit_maps(k, calib_width=12, where="brain1.h5 slice 3")


def test_data_info_reports_non_finite_kspace(tmp_path, capsys):
    import h5py
    from test_cli_train import _write_tiny_fastmri

    f = tmp_path / "a.h5"
    _write_tiny_fastmri(f, slices=2, size=16)
    assert main(["data", "info", str(f)]) == 0
    assert "all finite" in capsys.readouterr().out
    with h5py.File(f, "r+") as h:
        k = h["kspace"][()]
        k[1, 0, 3, 3] = np.nan
        k[1, 1, 4, 4] = np.inf
        h["kspace"][...] = k
    rc = main(["data", "info", str(f)])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "k-space holds 1 NaN and 1 Inf values (slices 1)" in text and str(f) in text, text
    assert rc in (0, 1)  # reported as a warning, or as the error that names the file


def test_sidecar_next_to_data_is_not_read_as_data(tmp_path):
    """`data prepare FOLDER` writes X.maps.h5 next to X.h5: scanning the folder finds X.h5 only."""
    from test_cli_train import _write_tiny_fastmri

    _write_tiny_fastmri(tmp_path / "x.h5", slices=1, size=16)
    assert main(["data", "prepare", str(tmp_path)]) == 0
    assert (tmp_path / "x.maps.h5").exists() and expand_paths(tmp_path) == [tmp_path / "x.h5"]
    Path(tmp_path / "x.maps.h5").unlink()
