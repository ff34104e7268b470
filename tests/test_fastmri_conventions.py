"""fastMRI conventions on a knee-like file: padding/acquired band, readout oversampling and crop, scoring,
undersampling at fastMRI's R=4/8 settings; each checked against an independent computation."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from _knee_like import KNEE_PADDING, make_knee_like
from skimage.metrics import structural_similarity

from ambient_imaging.datasets.fastmri import (
    FastMRISlices,
    acquired_band,
    band_from_header,
    detect_padding,
    fastmri_info,
    fastmri_reference,
    minimal_ismrmrd_header,
    parse_ismrmrd_header,
    parse_padding,
    read_fastmri,
    scoring_crop,
    undersample_file,
)
from ambient_imaging.metrics import fastmri_scores, fastmri_volume_metrics, summarize_volumes
from ambient_imaging.operators import MultiCoilMRI, apply_band, mri_mask
from ambient_imaging.sampling.baselines import L1Wavelet, ZeroFilled


@pytest.fixture(scope="module")
def knee(tmp_path_factory):
    return make_knee_like(tmp_path_factory.mktemp("knee") / "knee_like.h5")


def _np_ifft2c(k: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _fastmri_padding(xml: bytes) -> tuple[int, int]:
    """fastMRI mri_data._retrieve_metadata, written out independently with ElementTree."""
    ns = {"i": "http://www.ismrm.org/ISMRMRD"}
    root = ET.fromstring(xml)
    enc_y = int(root.find(".//i:encoding//i:encodedSpace//i:matrixSize//i:y", ns).text)
    center = int(root.find(".//i:encodingLimits//i:kspace_encoding_step_1//i:center", ns).text)
    maximum = int(root.find(".//i:encodingLimits//i:kspace_encoding_step_1//i:maximum", ns).text) + 1
    left = enc_y // 2 - center
    return left, left + maximum


# ------------------------------------------------------------------------------- header and band
def test_header_encoding_limits_round_trip():
    xml = minimal_ismrmrd_header((640, 368), padding=(17, 13), recon_matrix=(320, 320))
    h = parse_ismrmrd_header(xml)
    assert h["kspace_encoding_step_1"] == (0, 368 - 13 - 17 - 1, 184 - 17)
    assert h["recon_matrix"] == (320, 320, 1) and h["encoded_matrix"] == (640, 368, 1)
    assert band_from_header(h, 368) == (17, 355) == _fastmri_padding(xml.encode())
    assert band_from_header(parse_ismrmrd_header(minimal_ismrmrd_header((8, 10))), 10) is None
    assert parse_padding("auto") == "auto" and parse_padding(None) == "auto" and parse_padding("none") == "none"
    assert parse_padding("3, 4") == (3, 4) and parse_padding((1, 2)) == (1, 2)
    with pytest.raises(ValueError, match="LEFT,RIGHT"):
        parse_padding("left")
    assert detect_padding(np.r_[np.zeros(3), np.ones(10), np.zeros(2)]) == (3, 13)
    assert detect_padding(np.r_[np.zeros(3), np.ones(4), 0, np.ones(5)]) is None  # a gap inside: undersampled
    assert detect_padding(np.ones(8)) is None


def test_retrieve_metadata_agrees_with_fastmri_package(knee):
    mri_data = pytest.importorskip("fastmri.data.mri_data")
    meta, n = mri_data.SliceDataset._retrieve_metadata(None, knee.path)
    assert (meta["padding_left"], meta["padding_right"]) == knee.band and n == knee.slices
    assert tuple(meta["recon_size"][:2]) == knee.recon


def test_knee_like_file_info(knee):
    info = fastmri_info(knee.path)
    assert info["kspace_shape"] == (2, 15, 640, 368) and info["coils"] == 15
    assert info["band"] == knee.band == (17, 351) and info["padding"] == KNEE_PADDING
    assert info["padding_source"] == "header" and info["padding_note"] == ""
    assert info["fully_sampled"] and info["acceleration"] == 1.0  # padding is not undersampling
    assert info["recon_size"] == (320, 320) and info["readout_oversampling"] == 2.0
    with h5py.File(knee.path) as f:
        assert _fastmri_padding(f["ismrmrd_header"][()]) == knee.band
        k = f["kspace"][0]
    assert not k[..., :17].any() and not k[..., 351:].any() and np.all(np.abs(k[..., 17:351]).max(axis=(0, 1)) > 0)
    # '--padding none' treats the padding as unsampled lines, as before
    assert fastmri_info(knee.path, padding="none")["acceleration"] == pytest.approx(368 / 334)
    data = read_fastmri(knee.path)
    assert data["band"].bounds == (17, 351) and data["fully_sampled"].all() and np.all(data["acceleration"] == 1)


def test_headerless_zero_bands_detected_and_undersampled_detected(tmp_path):
    small = {"coils": 4, "shape": (64, 46), "padding": (3, 2), "recon": (32, 32)}
    p = make_knee_like(tmp_path / "nohdr.h5", header=False, **small).path
    with h5py.File(p) as f:
        assert "ismrmrd_header" not in f
    info = fastmri_info(p)
    assert info["padding_source"] == "detected" and info["band"] == (3, 44) and info["fully_sampled"]
    assert "treated as zero padding" in info["padding_note"] and info["acceleration"] == 1.0
    assert fastmri_info(p, padding="3,2")["padding_source"] == "user"
    assert fastmri_info(p, padding="none")["fully_sampled"] is False
    # truly undersampled files stay undersampled (with or without a header)
    for header in (False, True):
        q = make_knee_like(tmp_path / f"us{header}.h5", header=header, undersample=4, **small).path
        info = fastmri_info(q)
        assert not info["fully_sampled"] and info["acceleration"] > 2.5, info
        assert info["padding_source"] == ("header" if header else "none")
    # a centre-only undersampled file (no stored mask) is not mistaken for padding
    with h5py.File(p) as f:
        k = f["kspace"][()]
    k[..., :15] = 0
    k[..., 31:] = 0
    from ambient_imaging.datasets.fastmri import write_fastmri

    c = write_fastmri(tmp_path / "centre.h5", k, header_xml=False)
    info = fastmri_info(c)
    assert not info["fully_sampled"] and "not as zero padding" in info["padding_note"]


def test_fastmri_slices_band(tmp_path):
    """Padding columns are never operator rows; retrospective masks are zeroed outside the band."""
    p = make_knee_like(tmp_path / "small.h5", coils=4, shape=(48, 40), padding=(4, 3), recon=(24, 24)).path
    ds = FastMRISlices(p, acs_lines=8)
    item = ds[0]
    op = item["operator"]
    rows = op.row_mask()[0]
    assert item["meta"]["band"] == (4, 37) and item["meta"]["acceleration"] == 1.0
    assert item["meta"]["fully_sampled"] and not rows[:4].any() and not rows[37:].any() and rows[4:37].all()
    ds4 = FastMRISlices(p, acceleration=4, center_fraction=0.08, acs_lines=8)
    it4 = ds4[1]
    rows4 = it4["operator"].row_mask()[0]
    assert it4["meta"]["retrospective"] and not rows4[:4].any() and not rows4[37:].any()
    assert it4["meta"]["acceleration"] == pytest.approx(33 / int(rows4.sum()))
    sub = it4["operator"].subsample(0.5, torch.Generator().manual_seed(0))
    assert not sub.row_mask()[0][:4].any() and not sub.row_mask()[0][37:].any()
    assert ds4.padding_notes() == []
    out = undersample_file(p, tmp_path / "r4.h5", acceleration=4, center_fraction=0.08)
    info = fastmri_info(tmp_path / "r4.h5")
    assert out["band"] == (4, 37) and info["band"] == (4, 37) and not info["fully_sampled"]
    assert info["acceleration"] == pytest.approx(out["acceleration"])


# ------------------------------------------------------------------------------- scoring
def test_reference_and_crop(knee):
    ref = fastmri_reference(knee.path)
    assert ref["source"] == "reconstruction_rss" and ref["crop"] == (320, 320)
    assert ref["reference"].shape == (2, 320, 320)
    with h5py.File(knee.path) as f:
        k = f["kspace"][()]
        stored = f["reconstruction_rss"][()]
    own = np.sqrt((np.abs(_np_ifft2c(k)) ** 2).sum(1))[:, 160:480, 24:344]  # centre crop (640-320)//2, (368-320)//2
    np.testing.assert_allclose(ref["reference"], stored)
    np.testing.assert_allclose(stored, own, rtol=1e-4, atol=1e-6 * own.max())
    assert scoring_crop({"recon_matrix": (320, 320, 1)}, (640, 368)) == (320, 320)
    assert scoring_crop({"recon_matrix": None}, (640, 368)) is None
    assert scoring_crop({}, (640, 368), "100,80") == (100, 80) and scoring_crop({}, (64, 64), "none") is None
    with pytest.raises(ValueError, match="does not fit"):
        scoring_crop({}, (64, 64), (80, 80))


def _independent_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    dr = gt.max()
    return {
        "nmse": float(np.sum((gt - pred) ** 2) / np.sum(gt**2)),
        "psnr": float(10 * np.log10(dr**2 / np.mean((gt - pred) ** 2))),
        "ssim": float(np.mean([structural_similarity(g, p, data_range=dr, win_size=7) for g, p in zip(gt, pred)])),
    }


def test_fastmri_metrics_match_evaluate_py():
    g = np.random.default_rng(0)
    gt = np.abs(g.standard_normal((3, 40, 40))) + 1
    pred = gt + 0.1 * g.standard_normal(gt.shape)
    ours = fastmri_volume_metrics(gt, pred)
    ind = _independent_metrics(gt, pred)
    assert abs(ours["psnr"] - ind["psnr"]) < 1e-9 and abs(ours["nmse"] - ind["nmse"]) < 1e-12
    assert abs(ours["ssim"] - ind["ssim"]) < 1e-12
    sc = fastmri_scores(gt, pred, crop=(30, 30))
    assert sc["crop"] == [30, 30] and len(sc["slices"]) == 3
    assert abs(np.mean([s["ssim"] for s in sc["slices"]]) - sc["volume"]["ssim"]) < 1e-12
    summ = summarize_volumes([ours, fastmri_volume_metrics(gt, gt * 0.9)])
    assert summ["psnr"]["n"] == 2 and summ["ssim"]["std"] > 0
    evaluate = pytest.importorskip("fastmri.evaluate")
    assert abs(np.asarray(evaluate.ssim(gt, pred)).item() - ours["ssim"]) < 1e-12
    assert abs(np.asarray(evaluate.psnr(gt, pred)).item() - ours["psnr"]) < 1e-9
    assert abs(np.asarray(evaluate.nmse(gt, pred)).item() - ours["nmse"]) < 1e-12


@pytest.mark.parametrize("r,cf", [(4, 0.08), (8, 0.04)])
def test_knee_like_zero_filled_scores_match_independent(knee, r, cf):
    """Read, undersample as fastMRI (same seed → same mask), zero-fill, score on the reconSpace crop: the
    library path equals numpy/skimage written out in the test to 0.01 dB."""
    data = read_fastmri(knee.path)
    band, (h, w) = data["band"], data["kspace"].shape[-2:]
    mask, _ = mri_mask((h, w), r, center_fraction=cf, kind="random", rng=np.random.RandomState(42))
    mask = apply_band(mask, band.bounds)[0]
    op = MultiCoilMRI(torch.from_numpy(knee.maps)[None], mask[None])
    y = torch.from_numpy(data["kspace"]) * mask
    rec = torch.cat([ZeroFilled()(y[i : i + 1], op).samples[:, 0] for i in range(knee.slices)])
    ref = fastmri_reference(knee.path)
    ours = fastmri_scores(ref["reference"], rec.abs()[:, 0].numpy(), crop=ref["crop"])
    achieved = band.columns / int(mask[0, band.lo : band.hi].sum())
    assert abs(achieved - r) < 0.25 * r
    # independent: h5py + numpy + skimage only
    with h5py.File(knee.path) as f:
        k, gt, xml = f["kspace"][()], f["reconstruction_rss"][()].astype(np.float64), f["ismrmrd_header"][()]
    lo, hi = _fastmri_padding(xml)
    u = np.random.RandomState(42).uniform(size=w)
    c = round(w * cf)
    lines = u < (w / r - c) / (w - c)
    lines[(w - c + 1) // 2 : (w - c + 1) // 2 + c] = True
    lines[:lo] = False
    lines[hi:] = False
    img = np.abs((knee.maps.conj()[None] * _np_ifft2c(k * lines)).sum(1))
    top, left = (h - 320) // 2, (w - 320) // 2
    ind = _independent_metrics(gt, img[:, top : top + 320, left : left + 320])
    assert abs(ours["volume"]["psnr"] - ind["psnr"]) < 0.01
    assert abs(ours["volume"]["ssim"] - ind["ssim"]) < 1e-4
    assert abs(ours["volume"]["nmse"] - ind["nmse"]) < 1e-4 * ind["nmse"]
    assert ours["volume"]["psnr"] > 20  # a sane zero-filled image of the object


def test_l1_wavelet_scores_match_sigpy(tmp_path):
    """L1-wavelet through our baseline and scoring vs sigpy's L1WaveletRecon called directly (small knee-like
    file: sigpy on 15×640×368 costs ~1 s per iteration on one core)."""
    import sigpy.mri.app as app

    from ambient_imaging.sampling.baselines import data_scale

    kl = make_knee_like(tmp_path / "small_knee.h5", coils=15, shape=(96, 56), padding=(3, 3), recon=(48, 48))
    data = read_fastmri(kl.path)
    band = data["band"]
    mask, _ = mri_mask((96, 56), 4, center_fraction=0.08, kind="random", rng=np.random.RandomState(0))
    mask = apply_band(mask, band.bounds)[0]
    op = MultiCoilMRI(torch.from_numpy(kl.maps)[None], mask[None])
    y = torch.from_numpy(data["kspace"][:1]) * mask
    rec = L1Wavelet(lamda=1e-3, max_iter=20)(y, op).samples[:, 0, 0].abs().numpy()
    ref = fastmri_reference(kl.path, slices=[0])
    ours = fastmri_scores(ref["reference"], rec, crop=ref["crop"])
    w = mask[0].numpy().astype(np.float64)
    # the baseline's λ is relative to the data scale (99th percentile of |A^H y|): sigpy gets λ·s
    lam = 1e-3 * float(data_scale(y, op)[0])
    ind_img = np.abs(app.L1WaveletRecon(data["kspace"][0] * w, kl.maps, lam, weights=w, max_iter=20,
                                        show_pbar=False).run())
    with h5py.File(kl.path) as f:
        gt = f["reconstruction_rss"][:1].astype(np.float64)
    ind = _independent_metrics(gt, ind_img[None, 24:72, 4:52])
    assert abs(ours["volume"]["psnr"] - ind["psnr"]) < 0.01 and abs(ours["volume"]["ssim"] - ind["ssim"]) < 1e-4


def test_knee_like_generator_api(tmp_path):
    kl = make_knee_like(tmp_path / "k.h5", slices=1, coils=2, shape=(32, 24), padding=(2, 1), recon=(16, 16))
    assert kl.band == (2, 23) and kl.maps.shape == (2, 32, 24) and isinstance(kl.path, Path)
    assert acquired_band(kl.path).bounds == (2, 23)
