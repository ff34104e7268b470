"""Labelled reconstruction outputs: xarray/NetCDF and fastMRI leaderboard HDF5 round trips."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ambient_imaging.datasets.outputs import (
    load_netcdf,
    reconstruction_dataset,
    save_fastmri_reconstruction,
    save_netcdf,
    to_complex,
)


def test_complex_netcdf_round_trip(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 2, 5, 4, generator=g, dtype=torch.complex64)
    ds = reconstruction_dataset(s, pixel_spacing=(0.5, 0.25), sampler="heun", steps=18, prior="runs/x")
    assert ds["samples_real"].dims == ("sample", "slice", "y", "x")
    np.testing.assert_allclose(ds["y_mm"].values, (np.arange(5) - 2) * 0.5)
    np.testing.assert_allclose(ds["std"].values, s.abs().numpy().std(axis=0), rtol=1e-5)
    p = save_netcdf(ds, tmp_path / "r.nc")
    back = load_netcdf(p)
    np.testing.assert_array_equal(to_complex(back, "samples").values, s.numpy())
    np.testing.assert_allclose(to_complex(back, "mean").values, s.numpy().mean(axis=0), rtol=1e-6)
    assert back.attrs["sampler"] == "heun" and back.attrs["steps"] == 18 and back.attrs["complex"] == 1
    assert "tool_version" in back.attrs and "date" in back.attrs and back["x_mm"].attrs["units"] == "mm"
    assert not list(tmp_path.glob(".*"))


def test_real_netcdf_and_errors(tmp_path: Path) -> None:
    s = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    ds = reconstruction_dataset(s, mean=s[0], std=np.zeros((1, 3, 3)))
    back = load_netcdf(save_netcdf(ds, tmp_path / "r.nc"))
    np.testing.assert_array_equal(back["samples"].values, s)
    np.testing.assert_array_equal(to_complex(back, "mean").values, s[0])
    with pytest.raises(ValueError, match=r"\(K, S, H, W\)"):
        reconstruction_dataset(s[0])
    with pytest.raises(ValueError, match="mean must be"):
        reconstruction_dataset(s, mean=s)
    with pytest.raises(FileNotFoundError):
        load_netcdf(tmp_path / "missing.nc")


def test_fastmri_reconstruction_file(tmp_path: Path) -> None:
    mag = np.random.default_rng(0).random((2, 6, 6)).astype(np.float32)
    p = save_fastmri_reconstruction(tmp_path / "file1.h5", torch.from_numpy(mag), std=mag / 10, attrs={"R": 4})
    with h5py.File(p) as f:
        np.testing.assert_array_equal(f["reconstruction"][()], mag)
        np.testing.assert_allclose(f["reconstruction_std"][()], mag / 10)
        assert f.attrs["R"] == 4
    with pytest.raises(TypeError, match="real"):
        save_fastmri_reconstruction(tmp_path / "c.h5", mag.astype(np.complex64))
    assert not (tmp_path / "c.h5").exists()


def test_load_reconstruction_reassembles_complex(tmp_path: Path) -> None:
    from ambient_imaging.datasets.outputs import load_reconstruction

    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 1, 4, 3, generator=g, dtype=torch.complex64)
    ref = torch.randn(1, 4, 3, generator=g, dtype=torch.complex64)
    ds = reconstruction_dataset(s, reference=ref, pixel_spacing_mm=1.5, prior="p")
    back = load_reconstruction(save_netcdf(ds, tmp_path / "r.nc"))
    assert set(back.data_vars) == {"samples", "mean", "std", "reference"}
    np.testing.assert_array_equal(back["samples"].values, s.numpy())
    np.testing.assert_array_equal(back["reference"].values, ref.numpy())
    assert back["samples"].dims == ("sample", "slice", "y", "x") and back["mean"].dtype == np.complex64
    np.testing.assert_allclose(back["x_mm"].values, (np.arange(3) - 1) * 1.5)
    with pytest.raises(ValueError, match="reference must be"):
        reconstruction_dataset(s, reference=ref[0])
