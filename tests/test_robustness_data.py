"""Issue 22 for the ``data`` commands: sizes and counts checked first (class 3), bad files skipped with a
summary (class 6), errors that name their file (class 7)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from _toy_mri import coil_maps, fft2c, phantom

from ambient_imaging.cli import main
from ambient_imaging.limits import check_memory, check_seed, check_workers, cpu_count, parse_index_list, shown


def _run(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _good_file(path, n: int = 16, coils: int = 4):
    maps = coil_maps(coils, n, n, torch.complex64)[0]
    x = phantom(n).to(torch.complex64)[0, 0]
    k = fft2c(maps * x).numpy()[None]
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=k.astype(np.complex64))
    return path


# ---------------------------------------------------------------------- the validators themselves
def test_validators_give_short_messages():
    with pytest.raises(ValueError, match=r"--slices 0-10000000: out of range; the data has 2 slices \(valid: 0-1\)"):
        parse_index_list("0-10000000", 2)
    assert parse_index_list("3,1,1,0-1", 5) == [0, 1, 3]
    assert parse_index_list("0-10000000", 3, strict=False) == [0, 1, 2]
    with pytest.raises(ValueError, match="between 0 and 4294967295") as err:
        check_seed(2**70)
    assert len(str(err.value)) < 120
    with pytest.raises(ValueError, match=f"--workers must be between 1 and {cpu_count()}"):
        check_workers(10000)
    with pytest.raises(ValueError, match="needs about 95.4 GiB, but only 1.0 GiB"):
        check_memory(8 * 8 * 40000 * 40000, "one slice", "f.h5", available=2**30)
    assert shown(b"scan\xff.h5") == "scan\\xff.h5"


# ---------------------------------------------------------------------- data info
def test_info_on_a_group_names_the_file(tmp_path, capsys):
    """Before: ``data info`` on a file whose ``kspace`` is a group gave an ``AttributeError`` traceback."""
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as f:
        f.create_group("kspace")
    code, _, err = _run(["data", "info", path], capsys)
    assert code == 1
    assert str(path) in err and "not a dataset" in err


def test_info_samples_a_file_claiming_a_billion_slices(tmp_path, capsys):
    """Before: every one of the 10⁹ (unallocated) slices was scanned for NaN: the command hung."""
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", shape=(10**9, 2, 8, 8), dtype=np.complex64, chunks=(1, 2, 8, 8))
    code, out, _ = _run(["data", "info", path], capsys)
    assert code == 0
    assert "checked 256 of 1000000000 slices" in out


def test_info_refuses_a_matrix_too_large_for_memory(tmp_path, capsys):
    """Before: a (1, 8, 40000, 40000) k-space gave a memory-allocation traceback."""
    path = tmp_path / "wide.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", shape=(1, 8, 40000, 40000), dtype=np.complex64, chunks=(1, 1, 64, 64))
    code, _, err = _run(["data", "info", path], capsys)
    assert code == 1
    assert str(path) in err and "GiB" in err and "available" in err


# ---------------------------------------------------------------------- data prepare
@pytest.mark.parametrize("workers", [10000, 0, -3])
def test_prepare_workers_are_bounded(tmp_path, capsys, workers):
    """Before: ``--workers 10000`` forked thousands of processes; 0 and -3 were accepted silently."""
    _good_file(tmp_path / "a.h5")
    code, _, err = _run(["data", "prepare", tmp_path, "--workers", workers], capsys)
    assert code == 1
    assert f"--workers must be between 1 and {cpu_count()}" in err
    assert not list(tmp_path.glob("*.maps.h5"))


def test_prepare_skips_a_bad_file_and_lists_it(tmp_path, capsys):
    """Before: a non-strict ``data prepare`` stopped the folder at its first bad file."""
    data = tmp_path / "data"
    data.mkdir()
    _good_file(data / "b_good.h5")
    bad = _good_file(data / "a_bad.h5")
    with h5py.File(bad, "r+") as f:
        k = f["kspace"][()]
        k[0, 0, 3, 3] = np.nan
        f["kspace"][...] = k
    code, out, _ = _run(["data", "prepare", data], capsys)
    assert code == 0
    assert "1 maps computed" in out and "1 skipped" in out
    assert f"skipped {bad}: k-space slice 0 holds NaN or Inf values" in out
    with pytest.raises(ValueError, match="a_bad.h5"):
        from ambient_imaging.datasets.fastmri import prepare_folder

        prepare_folder(data, strict=True)


# ---------------------------------------------------------------------- FITS images
def test_fits_header_claiming_a_huge_image_is_refused_unread(tmp_path):
    """Before: a header claiming 200000x200000 pixels gave a MemoryError traceback while being read."""
    from astropy.io import fits

    from ambient_imaging.datasets.fits import read_fits_image

    hdr = fits.Header()
    hdr["SIMPLE"], hdr["BITPIX"], hdr["NAXIS"], hdr["NAXIS1"], hdr["NAXIS2"] = True, -32, 2, 200000, 200000
    path = tmp_path / "huge.fits"
    hdr.tofile(path)
    with pytest.raises(ValueError, match=r"huge\.fits: an HDU of 200000x200000 values .* available"):
        read_fits_image(path)


@pytest.mark.parametrize("value", [-1.0, "lots"])
def test_fits_noise_card_must_be_a_noise_level(tmp_path, value):
    """Before: a NOISE card of -1 was accepted as the noise level; "lots" failed naming neither file nor card."""
    from astropy.io import fits

    from ambient_imaging.datasets.fits import read_fits_image

    img = np.ones((8, 8), np.float32)
    img[0, 0] = np.nan
    hdu = fits.PrimaryHDU(img)
    hdu.header["NOISE"] = value
    hdu.writeto(tmp_path / "n.fits")
    with pytest.raises(ValueError, match=r"n\.fits: header card NOISE"):
        read_fits_image(tmp_path / "n.fits")
