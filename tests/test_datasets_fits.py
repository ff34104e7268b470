"""FITS reader/writer, the FITSImages patch dataset, and the embedded sky-hdf builder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS

from ambient_imaging.datasets import collate_measurements
from ambient_imaging.datasets.fits import FITSImages, estimate_noise, read_fits_image, write_fits_image
from ambient_imaging.operators import PixelMask


def _wcs(h: int, w: int) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [w / 2, h / 2]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    return wcs


def test_round_trip_data_wcs_mask_provenance(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(40, 50)).astype(np.float32)
    mask = rng.random((40, 50)) > 0.2
    wcs = _wcs(40, 50)
    p = write_fits_image(
        tmp_path / "a.fits", img, wcs=wcs, extra={"MASK": mask, "STD": np.abs(img)}, unit="Jy/beam",
        provenance={"tool": "ambient-imaging", "version": "0.1", "prior": "run1", "sampler": "edm"},
        history=["made by a test"], noise_sigma=0.5,
    )  # fmt: skip
    assert not list(tmp_path.glob(".a.fits*"))  # no temp file left
    im = read_fits_image(p)
    np.testing.assert_allclose(im.data, np.where(mask, img, 0), atol=0)
    assert np.array_equal(im.mask, mask)
    assert im.noise_sigma == 0.5 and im.noise_source == "header:NOISE"
    assert im.unit == "Jy/beam"
    np.testing.assert_allclose(im.wcs.pixel_to_world_values(3, 7), wcs.pixel_to_world_values(3, 7), rtol=1e-12)
    assert im.header["AI_TOOL"] == "ambient-imaging" and im.header["AI_SAMPLER"] == "edm"
    assert "made by a test" in str(im.header["HISTORY"])
    with fits.open(p) as h:
        assert [x.name for x in h] == ["PRIMARY", "MASK", "STD"]


def test_stack_written(tmp_path):
    stack = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    src = fits.Header()
    src["OBJECT"], src["TELESCOP"], src["CRVAL1"] = "M87", "EHT", 999.0
    mask = np.ones((4, 5), bool)
    mask[0, 0] = False
    write_fits_image(tmp_path / "s.fits", torch.from_numpy(stack), wcs=_wcs(4, 5), header=src,
                     std=stack.std(0), mask=mask, provenance={"prior": "runs/faces", "sampler": "dps"})  # fmt: skip
    with fits.open(tmp_path / "s.fits") as h:
        np.testing.assert_array_equal(h[0].data, stack)
        assert [x.name for x in h] == ["PRIMARY", "STD", "MASK"]
        np.testing.assert_allclose(h["STD"].data, stack.std(0))
        np.testing.assert_array_equal(h["MASK"].data, mask.astype(np.uint8))
        hdr = h[0].header
        assert hdr["OBJECT"] == "M87" and hdr["TELESCOP"] == "EHT"
        assert hdr["CRVAL1"] == 150.0  # the WCS comes from wcs=, not from the copied header
        assert hdr["AI_TOOL"] == "ambient-imaging" and hdr["AI_PRIOR"] == "runs/faces" and "DATE" in hdr
        assert "sampler=dps" in str(hdr["HISTORY"])
    with pytest.raises(ValueError, match=r"s\.fits: image has shape \(3, 4, 5\); need 2-D"):
        read_fits_image(tmp_path / "s.fits")  # a (K, H, W) stack is not one sky image


def test_nan_convention_and_estimated_noise(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.normal(0, 0.3, size=(128, 128))
    img[10:20, 5:9] = np.nan
    img[0, 0] = np.inf
    fits.PrimaryHDU(img).writeto(tmp_path / "n.fits")
    im = read_fits_image(tmp_path / "n.fits")
    assert not im.mask[10:20, 5:9].any() and not im.mask[0, 0]
    assert im.mask.sum() == 128 * 128 - 41
    assert np.all(im.data[~im.mask] == 0) and np.isfinite(im.data).all()
    assert im.noise_source == "estimate"
    assert im.noise_sigma == pytest.approx(0.3, rel=0.08)


def test_separate_mask_file_and_dq_weight_conventions(tmp_path):
    img = np.ones((16, 16), np.float32)
    m = np.ones((16, 16), np.uint8)
    m[:4] = 0
    fits.PrimaryHDU(img).writeto(tmp_path / "i.fits")
    fits.PrimaryHDU(m).writeto(tmp_path / "m.fits")
    im = read_fits_image(tmp_path / "i.fits", mask=tmp_path / "m.fits", noise_sigma=0.1)
    assert im.mask.sum() == 12 * 16 and im.noise_sigma == 0.1
    dq = np.zeros((16, 16), np.int16)
    dq[0, :3] = 4  # flagged
    wht = np.ones((16, 16))
    wht[5, 5] = 0.0
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, name="SCI"), fits.ImageHDU(dq, name="DQ")]).writeto(
        tmp_path / "dq.fits"
    )
    fits.HDUList([fits.PrimaryHDU(img), fits.ImageHDU(wht, name="WHT")]).writeto(tmp_path / "w.fits")
    assert read_fits_image(tmp_path / "dq.fits").mask.sum() == 256 - 3
    assert not read_fits_image(tmp_path / "w.fits").mask[5, 5]
    assert read_fits_image(tmp_path / "w.fits", mask=None).mask.all()


def test_radio_four_axis_image(tmp_path):
    h = fits.Header()
    for k, (ct, cv, cd) in enumerate(
        [("RA---SIN", 201.0, -1e-3), ("DEC--SIN", -43.0, 1e-3), ("FREQ", 1.4e9, 1e6), ("STOKES", 1.0, 1.0)], start=1
    ):
        h[f"CTYPE{k}"], h[f"CRVAL{k}"], h[f"CDELT{k}"], h[f"CRPIX{k}"] = ct, cv, cd, 1.0
    h["BUNIT"] = "JY/BEAM"
    h["RMS"] = 0.002
    data = np.random.default_rng(2).normal(size=(1, 1, 20, 30)).astype(np.float32)
    fits.PrimaryHDU(data, header=h).writeto(tmp_path / "r.fits")
    im = read_fits_image(tmp_path / "r.fits")
    assert im.data.shape == (20, 30) and im.wcs.naxis == 2 and im.wcs.has_celestial
    assert im.noise_sigma == 0.002 and im.noise_source == "header:RMS"
    np.testing.assert_allclose(im.wcs.wcs.crval, [201.0, -43.0])


def test_bad_inputs(tmp_path):
    (tmp_path / "x.fits").write_text("not fits at all" * 100)
    with pytest.raises(ValueError, match=r"x\.fits: not a FITS file"):
        read_fits_image(tmp_path / "x.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]).writeto(
        tmp_path / "t.fits"
    )
    with pytest.raises(ValueError, match=r"t\.fits: no image data in any HDU"):
        read_fits_image(tmp_path / "t.fits")
    fits.PrimaryHDU(np.full((4, 4), np.nan)).writeto(tmp_path / "nan.fits")
    with pytest.raises(ValueError, match=r"nan\.fits: all 16 pixels are masked"):
        read_fits_image(tmp_path / "nan.fits")
    fits.PrimaryHDU(np.ones((4, 4))).writeto(tmp_path / "i.fits")
    fits.PrimaryHDU(np.ones((5, 4))).writeto(tmp_path / "m.fits")
    with pytest.raises(ValueError, match=r"m\.fits: mask has shape \(5, 4\)"):
        read_fits_image(tmp_path / "i.fits", mask=tmp_path / "m.fits")
    with pytest.raises(FileNotFoundError, match="missing.fits"):
        read_fits_image(tmp_path / "missing.fits")
    with pytest.raises(ValueError, match=r"image must be \(H, W\)"):
        write_fits_image(tmp_path / "o.fits", np.ones(5))
    assert not (tmp_path / "o.fits").exists()


def test_patch_dataset_items(tmp_path):
    rng = np.random.default_rng(3)
    img = rng.normal(1.0, 0.05, size=(48, 64))
    img[:16, :16] = np.nan  # the first patch is fully invalid → skipped
    wcs = _wcs(48, 64)
    fits.PrimaryHDU(img, header=wcs.to_header()).writeto(tmp_path / "a.fits")
    ds = FITSImages(tmp_path, patch_size=16, min_valid_fraction=0.5, read_kwargs={"noise_sigma": 0.05})
    assert len(ds) == 3 * 4 - 1
    origins = [tuple(m) for m in (ds[k]["meta"]["origin"] for k in range(len(ds)))]
    assert (0, 0) not in origins
    k = origins.index((16, 32))
    it = ds[k]
    assert set(it) == {"y", "operator", "scale", "meta"}  # no clean image
    assert it["y"].shape == (1, 16, 16)
    op = it["operator"]
    assert isinstance(op, PixelMask) and op.mask.shape == (1, 1, 16, 16) and op.mask.all()
    valid = np.isfinite(img)
    assert it["scale"] == pytest.approx(np.percentile(np.abs(img[valid]), 99), rel=1e-9)  # per image
    assert all(ds[j]["scale"] == it["scale"] for j in range(len(ds)))
    dp = FITSImages(tmp_path, patch_size=16, scale="patch", read_kwargs={"noise_sigma": 0.05})
    assert dp[k]["scale"] == pytest.approx(np.percentile(np.abs(img[16:32, 32:48]), 99), rel=0.05)
    d1 = FITSImages(tmp_path, patch_size=16, scale=1.0, read_kwargs={"noise_sigma": 0.05})
    assert d1[k]["scale"] == 1.0 and d1[k]["operator"].noise_sigma == pytest.approx(0.05)
    assert op.noise_sigma == pytest.approx(0.05 / it["scale"])
    torch.testing.assert_close(it["y"] * it["scale"], torch.from_numpy(img[16:32, 32:48]).float()[None])
    # the patch WCS: pixel (0, 0) of the patch is pixel (32, 16) (x, y) of the image
    pw = it["meta"]["wcs"]
    np.testing.assert_allclose(pw.pixel_to_world_values(0, 0), wcs.pixel_to_world_values(32, 16), rtol=1e-12)
    # a partly masked patch: mask and y agree
    it2 = ds[origins.index((0, 16))]
    assert it2["operator"].mask.all()
    batch = collate_measurements([ds[0], ds[1]])
    assert batch.y.shape == (2, 1, 16, 16) and batch.reference is None
    assert torch.equal(batch.op.forward(batch.y), batch.y)


def test_patch_dataset_bad_inputs(tmp_path):
    fits.PrimaryHDU(np.ones((8, 8))).writeto(tmp_path / "a.fits")
    with pytest.raises(ValueError, match="smaller than patch_size"):
        FITSImages(tmp_path, patch_size=16)
    with pytest.raises(FileNotFoundError):
        FITSImages(tmp_path / "nothing_here", patch_size=4)
    with pytest.raises(ValueError, match="scale must be 'image', 'patch' or a positive number"):
        FITSImages(tmp_path, patch_size=4, scale="max")
    with pytest.raises(ValueError, match="scale must be 'image', 'patch' or a positive number"):
        FITSImages(tmp_path, patch_size=4, scale=0.0)


def test_estimate_noise_ignores_smooth_structure():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:200, :200]
    img = 5 * np.sin(xx / 200.0) + rng.normal(0, 0.1, (200, 200))
    assert estimate_noise(img, np.ones_like(img, bool)) == pytest.approx(0.1, rel=0.1)


def test_sky_hdf_small(tmp_path):
    import time

    from ambient_imaging.datasets.embedded.sky_hdf import build_sky_hdf
    from ambient_imaging.datasets.uvfits import read_uvfits

    t0 = time.perf_counter()
    s = build_sky_hdf(tmp_path, size="small", progress=False, arrays=("vla_d",))
    assert time.perf_counter() - t0 < 20
    assert s["n_train"] == 24 and s["n_heldout"] == 8
    assert json.loads((tmp_path / "build.json").read_text())["n_train"] == 24
    assert len(list((tmp_path / "train").glob("*.fits"))) == 24
    ds = FITSImages(tmp_path / "train", patch_size=64)
    assert len(ds) == 24
    im = read_fits_image(tmp_path / "train" / "train_0000.fits")
    assert 0.7 < im.mask.mean() < 0.95  # 10% dust + streaks/boxes
    assert im.noise_sigma == pytest.approx(0.02) and im.wcs.has_celestial
    clean = np.load(tmp_path / "heldout_clean.npy")
    assert clean.shape == (8, 64, 64)
    # the simulated visibilities are F(patch[:, ::-1]) + noise of std 0.01·Σpatch per component
    hv = read_uvfits(tmp_path / "uv" / "vla_d" / "heldout" / "heldout_0000.uvfits")
    ps = s["visibilities"]["vla_d"]["pixel_scale_rad"]
    y, op = hv.to_operator((64, 64), pixel_scale=ps)
    model = op.forward(torch.from_numpy(clean[0][:, ::-1].copy()).double()[None, None])
    r = (y - model)[0].numpy()
    sig = 0.01 * float(clean[0].sum())
    assert np.std(r.real) == pytest.approx(sig, rel=0.1) and np.std(r.imag) == pytest.approx(sig, rel=0.1)
    files = sorted((tmp_path / "uv" / "vla_d" / "train").glob("*.uvfits"))
    assert len(files) == 4
    vis = read_uvfits(files[0])
    assert len(vis) == s["visibilities"]["vla_d"]["n_vis"]
    assert vis.antennas is not None and len(vis.antennas["names"]) == 27
    # deterministic in seed
    s2 = build_sky_hdf(tmp_path / "again", size="small", progress=False, arrays=())
    a = read_fits_image(tmp_path / "again" / "train" / "train_0003.fits")
    b = read_fits_image(tmp_path / "train" / "train_0003.fits")
    np.testing.assert_array_equal(a.data, b.data)
    assert s2["n_uvfits"] == 0


def test_hdu_selection_and_explicit_mask_hdu(tmp_path):
    sci = np.arange(36, dtype=np.float32).reshape(6, 6)
    bpm = np.zeros((6, 6), np.uint8)
    bpm[2, 3] = 1  # bad-pixel map: non-zero = bad
    keep = np.ones((6, 6), np.uint8)
    keep[0] = 0
    fits.HDUList(
        [fits.PrimaryHDU(), fits.ImageHDU(sci * 2, name="OTHER"), fits.ImageHDU(sci, name="SCI"),
         fits.ImageHDU(bpm, name="BPM"), fits.ImageHDU(keep, name="MYMASK")]
    ).writeto(tmp_path / "m.fits")  # fmt: skip
    im = read_fits_image(tmp_path / "m.fits", hdu="SCI")
    assert im.data[1, 1] == 7 and not im.mask[2, 3] and im.mask.sum() == 35
    im2 = read_fits_image(tmp_path / "m.fits", hdu="SCI", mask_hdu="MYMASK")
    assert im2.mask.sum() == 30 and im2.mask[2, 3]
    assert read_fits_image(tmp_path / "m.fits").data[1, 1] == 14  # first image HDU by default
    with pytest.raises(ValueError, match=r"m\.fits: no HDU 'NOPE'"):
        read_fits_image(tmp_path / "m.fits", hdu="NOPE")
