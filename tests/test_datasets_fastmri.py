"""fastMRI reader/writer, ESPIRiT cache, streaming, bad input, normalisation and the mri-brain builder."""

from __future__ import annotations

import gc
import os
import tracemalloc
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import ambient_imaging.datasets.fastmri as fm
from ambient_imaging.datasets import collate_measurements
from ambient_imaging.datasets.fastmri import (
    FastMRISlices,
    acs_from_lines,
    fastmri_info,
    parse_ismrmrd_header,
    read_fastmri_slice,
    undersample_file,
    write_fastmri,
)
from ambient_imaging.datasets.normalize import measurement_scale
from ambient_imaging.operators import MultiCoilMRI, PixelMask, birdcage_maps, fft2c, mri_mask

H = W = 32


def _phantom(slices: int, coils: int, seed: int = 0) -> np.ndarray:
    """Fully sampled multi-coil k-space of smooth random blobs ``(S, Nc, H, W)``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    imgs = []
    for _ in range(slices):
        c = torch.rand(3, generator=g) * 0.4 - 0.2
        img = torch.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (0.3 + c[2]) ** 2) * (xx**2 + yy**2 < 0.8)
        imgs.append(img.to(torch.complex64) * torch.exp(1j * (xx + 0.5 * yy)))
    x = torch.stack(imgs)[:, None]
    maps = birdcage_maps(coils, (H, W))[None] if coils > 1 else torch.ones(1, 1, H, W, dtype=torch.complex64)
    return fft2c(maps * x).numpy()


@pytest.fixture
def mc_file(tmp_path: Path) -> Path:
    return write_fastmri(tmp_path / "mc.h5", _phantom(3, 4), reconstruction_rss=np.ones((3, H, W), np.float32))


# ---- round trips ---------------------------------------------------------------------------
def test_write_read_multicoil_stored_mask(tmp_path: Path) -> None:
    k = _phantom(2, 4)
    mask = np.zeros(W, bool)
    mask[::4] = True
    mask[W // 2 - 5 : W // 2 + 5] = True
    p = write_fastmri(tmp_path / "a.h5", k * mask, mask=mask, attrs={"patient_id": "p1"})
    sl = read_fastmri_slice(p, 1)
    assert sl["mask_stored"] and sl["kspace"].shape == (4, H, W) and sl["kspace"].dtype == np.complex64
    np.testing.assert_array_equal(sl["mask"], mask)
    np.testing.assert_allclose(sl["kspace"], (k * mask)[1], rtol=1e-6)
    info = fastmri_info(p)
    assert info["coils"] == 4 and info["slices"] == 2 and info["attrs"]["patient_id"] == "p1"
    assert info["acceleration"] == pytest.approx(W / mask.sum())
    assert info["acs_lines"] == 10
    assert info["header"]["encoded_matrix"] == (H, W, 1)
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_single_coil_derived_mask(tmp_path: Path) -> None:
    k = _phantom(2, 1)[:, 0]  # (S, H, W)
    lines = np.zeros(W, bool)
    lines[W // 2 - 4 : W // 2 + 4] = True
    lines[[1, 5, 25]] = True
    p = write_fastmri(tmp_path / "sc.h5", k * lines)
    sl = read_fastmri_slice(p, 0)
    assert not sl["mask_stored"] and sl["kspace"].shape == (1, H, W)
    np.testing.assert_array_equal(sl["mask"], lines)
    ds = FastMRISlices(p, sens_maps=None)
    item = ds[1]
    op = item["operator"]
    assert op.n_coils == 1 and op.acs is not None and int(op.acs.sum()) == 8
    torch.testing.assert_close(op.restrict(item["y"][None])[0], item["y"])


def test_acs_from_lines() -> None:
    lines = np.zeros(20, bool)
    lines[[0, 8, 9, 10, 11, 12, 15]] = True
    np.testing.assert_array_equal(np.flatnonzero(acs_from_lines(lines)), [8, 9, 10, 11, 12])
    assert not acs_from_lines(np.zeros(20, bool)).any()


def test_ismrmrd_header_parse_namespace_and_missing() -> None:
    xml = (
        '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
        "<encodedSpace><matrixSize><x>640</x><y>368</y><z>1</z></matrixSize>"
        "<fieldOfView_mm><x>280.0</x><y>203.8</y><z>4.5</z></fieldOfView_mm></encodedSpace>"
        "<reconSpace><matrixSize><x>320</x><y>320</y></matrixSize></reconSpace></encoding></ismrmrdHeader>"
    )
    h = parse_ismrmrd_header(xml.encode())
    assert h["encoded_matrix"] == (640, 368, 1) and h["encoded_fov_mm"] == (280.0, 203.8, 4.5)
    assert h["recon_matrix"] == (320, 320, None) and h["recon_fov_mm"] is None
    assert parse_ismrmrd_header(None)["encoded_matrix"] is None
    with pytest.raises(ValueError, match="not valid XML"):
        parse_ismrmrd_header("<broken")


# ---- dataset ---------------------------------------------------------------------------------
def test_dataloader_workers(tmp_path: Path) -> None:
    for i in range(3):
        k = _phantom(2, 1, seed=i)[:, 0]
        write_fastmri(tmp_path / f"f{i}.h5", k)
    ds = FastMRISlices(tmp_path, sens_maps=None, reference="rss")
    assert len(ds) == 6
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_measurements)
    batches = list(loader)
    assert [len(b) for b in batches] == [3, 3]
    b = batches[0]
    assert b.y.shape == (3, 1, H, W) and b.op.batch_size == 3 and b.reference.shape == (3, 1, H, W)
    # scale normalises the low-res ACS image to p99 = 1; the reference follows the same scale
    low = b.op.with_rows(b.op.default_keep()).adjoint(b.y).abs()
    torch.testing.assert_close(torch.quantile(low.flatten(1), 0.99, dim=1), torch.ones(3), rtol=1e-4, atol=1e-4)
    assert {m["file"] for bb in batches for m in bb.meta} == {str(tmp_path / f"f{i}.h5") for i in range(3)}


def test_memory_flat_over_many_files(tmp_path: Path) -> None:
    """Index memory and open handles stay bounded: compare 20 vs 200 tiny files."""
    k = (np.ones((1, 1, 8, 8)) * (1 + 1j)).astype(np.complex64)
    for i in range(200):
        write_fastmri(tmp_path / f"t{i:03d}.h5", k)
    files = sorted(tmp_path.glob("*.h5"))

    def peak_iter(n: int) -> tuple[int, int]:
        ds = FastMRISlices(files[:n], sens_maps=None)
        gc.collect()
        tracemalloc.start()
        for i in range(len(ds)):
            ds[i]
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        handles = ds.open_handles()
        ds.close()
        return peak, handles

    p20, h20 = peak_iter(20)
    p200, h200 = peak_iter(200)
    assert h20 <= fm._MAX_OPEN and h200 <= fm._MAX_OPEN
    assert p200 < 1.5 * p20 + 64_000, (p20, p200)  # iteration memory does not scale with the file count


def test_espirit_cache_reused_and_invalidated(mc_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ambient_imaging.operators.espirit_sets as es

    calls = {"n": 0}
    real = es.espirit_eigen

    def spy(*a, **kw):
        calls["n"] += 1
        return real(*a, **kw)

    monkeypatch.setattr(es, "espirit_eigen", spy)
    item = FastMRISlices(mc_file)[0]
    assert calls["n"] == 3  # one per slice, first use
    sidecar = mc_file.with_name("mc.maps.h5")
    assert sidecar.is_file()
    maps = item["operator"].sens_maps[0]
    inside = (maps.abs() ** 2).sum(0) > 0.5
    torch.testing.assert_close((maps.abs() ** 2).sum(0)[inside], torch.ones(int(inside.sum())), atol=1e-3, rtol=0)
    FastMRISlices(mc_file)[2]
    assert calls["n"] == 3  # second load: cached
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the sidecar is not taken for a data file by folder or glob scans
        assert len(FastMRISlices(str(mc_file.parent / "*.h5"))) == len(FastMRISlices(mc_file.parent)) == 3
    # the data file changes -> cache is stale -> recomputed
    write_fastmri(mc_file, _phantom(3, 4, seed=5))
    os.utime(mc_file, ns=(1, 1))
    FastMRISlices(mc_file)[0]
    assert calls["n"] == 6
    with pytest.raises(FileNotFoundError, match="sensitivity-map cache"):
        write_fastmri(mc_file, _phantom(3, 4, seed=6))
        FastMRISlices(mc_file, sens_maps="cache-only")[0]


def test_cache_dir_and_prepare(mc_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    res = fm.prepare_folder(mc_file, cache_dir=cache)
    assert res["computed"] == 1 and len(list(cache.glob("*.maps.h5"))) == 1
    assert fm.prepare_folder(mc_file, cache_dir=cache)["cached"] == 1
    item = FastMRISlices(mc_file, sens_maps="cache-only", cache_dir=cache)[1]
    assert item["operator"].sens_maps.shape == (1, 4, H, W)


def test_undersample_file(mc_file: Path, tmp_path: Path) -> None:
    out = undersample_file(mc_file, tmp_path / "r4.h5", acceleration=4, center_fraction=0.25, seed=1)
    info = fastmri_info(tmp_path / "r4.h5")
    assert info["mask_stored"] and abs(info["acceleration"] - 4) < 1.0 and out["acceleration"] == info["acceleration"]
    sl = read_fastmri_slice(tmp_path / "r4.h5", 0)
    assert np.all(sl["kspace"][:, :, ~sl["mask"]] == 0) and np.all(np.abs(sl["kspace"][:, :, sl["mask"]]).sum(1) > 0)
    ds = FastMRISlices(tmp_path / "r4.h5", reference="rss")
    assert ds[0]["meta"]["acceleration"] == pytest.approx(info["acceleration"])
    # same seed, same mask; the source is untouched
    undersample_file(mc_file, tmp_path / "r4b.h5", acceleration=4, center_fraction=0.25, seed=1)
    np.testing.assert_array_equal(read_fastmri_slice(tmp_path / "r4b.h5", 0)["mask"], sl["mask"])
    assert fastmri_info(mc_file)["acceleration"] == 1.0


# ---- bad input -------------------------------------------------------------------------------
def _bad(tmp_path: Path, name: str, **datasets) -> Path:
    p = tmp_path / name
    with h5py.File(p, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return p


@pytest.mark.parametrize(
    ("case", "exc", "msg"),
    [
        ("not_hdf5", ValueError, "not a readable HDF5"),
        ("truncated", ValueError, "not a readable HDF5"),
        ("no_kspace", ValueError, "no 'kspace' dataset"),
        ("rank", ValueError, "must have shape"),
        ("real", ValueError, "must be complex"),
        ("mask_width", ValueError, "'mask' width 5 does not match the k-space width 8"),
        ("nan", ValueError, "slice 1 holds NaN or Inf"),
    ],
)
def test_bad_input(tmp_path: Path, case: str, exc: type, msg: str) -> None:
    good = np.ones((2, 2, 8, 8), np.complex64)
    if case == "not_hdf5":
        p = tmp_path / "x.h5"
        p.write_text("hello")
    elif case == "truncated":
        p = write_fastmri(tmp_path / "x.h5", good)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    elif case == "no_kspace":
        p = _bad(tmp_path, "x.h5", other=np.zeros(3))
    elif case == "rank":
        p = _bad(tmp_path, "x.h5", kspace=np.ones((8, 8), np.complex64))
    elif case == "real":
        p = _bad(tmp_path, "x.h5", kspace=np.ones((2, 8, 8), np.float32))
    elif case == "mask_width":
        p = _bad(tmp_path, "x.h5", kspace=good, mask=np.ones(5, np.float32))
    else:
        bad = np.ones((3, 8, 8), np.complex64)  # single-coil
        bad[1, 3, 3] = np.nan
        p = _bad(tmp_path, "x.h5", kspace=bad)
    with pytest.raises(exc, match=msg) as err:
        if case == "nan":
            FastMRISlices(p, sens_maps=None, strict=True)[0]  # slice 0 is fine
            FastMRISlices(p, sens_maps=None, strict=True)[1]
        else:
            FastMRISlices(p, sens_maps=None, strict=True)
    assert str(p) in str(err.value)


def test_broken_file_skipped_with_warning(tmp_path: Path) -> None:
    write_fastmri(tmp_path / "good.h5", _phantom(2, 1)[:, 0])
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    with pytest.warns(RuntimeWarning, match="broken.h5"):
        ds = FastMRISlices(tmp_path, sens_maps=None)
    assert len(ds) == 2 and ds.skipped[0][0].endswith("broken.h5")
    with pytest.raises(ValueError, match="broken.h5"):
        FastMRISlices(tmp_path, sens_maps=None, strict=True)
    with pytest.raises(FileNotFoundError):
        FastMRISlices(tmp_path / "nope", sens_maps=None)


# ---- normalisation ---------------------------------------------------------------------------
def test_measurement_scale_independent_of_acceleration() -> None:
    k = torch.from_numpy(_phantom(1, 4))
    maps = birdcage_maps(4, (H, W))
    maps = maps / (maps.abs() ** 2).sum(0).sqrt()
    scales = []
    for r in (2, 3, 4):
        mask, acs = mri_mask((H, W), r, center_lines=6, generator=torch.Generator().manual_seed(r))
        op = MultiCoilMRI(maps[None], mask[:, 0], acs=acs[:, 0])
        scales.append(float(measurement_scale(op.restrict(k), op)[0]))
    assert max(scales) == pytest.approx(min(scales), rel=1e-6)
    # closed form for a pixel mask: percentile over measured pixels only
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    m = x >= 8
    s = measurement_scale(PixelMask(m)(x), PixelMask(m), percentile=50)
    assert float(s[0]) == pytest.approx(11.5)
    with pytest.warns(RuntimeWarning, match="zero"):
        assert float(measurement_scale(torch.zeros(1, 1, 4, 4), PixelMask(m))[0]) == 1.0


# ---- embedded mri-brain ----------------------------------------------------------------------
def test_build_mri_brain_small(tmp_path: Path) -> None:
    from ambient_imaging.datasets.embedded.mri_brain import build_mri_brain

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = build_mri_brain(tmp_path / "a", size="small", acceleration=4, progress=False)
    train = sorted((tmp_path / "a" / "train").glob("*.h5"))
    val = sorted((tmp_path / "a" / "val").glob("*.h5"))
    assert train and val and (tmp_path / "a" / "build.json").is_file()
    assert s["train_slices"] == sum(fastmri_info(p)["slices"] for p in train)
    for p in train:
        with h5py.File(p) as f:
            k, mask = f["kspace"][()], f["mask"][()] != 0
            assert "reconstruction_rss" not in f
        assert mask.ndim == 2 and mask.shape == (k.shape[0], k.shape[-1])  # one mask per slice
        for i in range(k.shape[0]):  # no training slice is fully sampled; unsampled columns are zero
            assert 2.5 < mask.shape[1] / mask[i].sum() < 6
            assert np.all(k[i][..., ~mask[i]] == 0)
    for p in val:
        info = fastmri_info(p)
        assert info["acceleration"] == 1.0 and "reconstruction_rss" in info["datasets"]
    # deterministic for a seed
    s2 = build_mri_brain(tmp_path / "b", size="small", acceleration=4, progress=False)
    with h5py.File(train[0]) as f1, h5py.File(tmp_path / "b" / "train" / train[0].name) as f2:
        np.testing.assert_array_equal(f1["kspace"][()], f2["kspace"][()])
    assert s2["bytes"] == s["bytes"]


def test_undersample_per_slice_masks_and_noise_estimate(mc_file: Path, tmp_path: Path) -> None:
    undersample_file(mc_file, tmp_path / "p.h5", acceleration=2, center_fraction=0.25, seed=3, same_mask=False)
    with h5py.File(tmp_path / "p.h5") as f:
        m = f["mask"][()] != 0
    assert m.shape == (3, W) and not np.all(m == m[:1])  # one mask per slice
    ds = FastMRISlices(tmp_path / "p.h5")
    for i in range(3):
        np.testing.assert_array_equal(ds[i]["operator"].mask[0, 0].numpy(), m[i])
    # robust noise estimate on pure complex noise of known sigma (E|n|^2 = sigma^2)
    rng = np.random.default_rng(0)
    sigma = 0.3
    n = (rng.standard_normal((1, 64, 64)) + 1j * rng.standard_normal((1, 64, 64))) * sigma / np.sqrt(2)
    write_fastmri(tmp_path / "noise.h5", n[None].astype(np.complex64)[:, 0])
    est = FastMRISlices(tmp_path / "noise.h5", sens_maps=None, noise_sigma="estimate")[0]["meta"]["noise_sigma"]
    assert est == pytest.approx(sigma, rel=0.1)


# ---- header from a file, retrospective undersampling, complex reference ----------------------
def test_read_fastmri_header_from_file(tmp_path: Path) -> None:
    p = write_fastmri(tmp_path / "h.h5", _phantom(1, 2), fov_mm=(220.0, 200.0))
    h = fm.read_fastmri_header(p)
    assert h["encoded_matrix"] == (H, W, 1) and h["recon_fov_mm"] == (220.0, 200.0, 1.0)
    with h5py.File(tmp_path / "nohdr.h5", "w") as f:
        f.create_dataset("kspace", data=_phantom(1, 2))
    assert fm.read_fastmri_header(tmp_path / "nohdr.h5") == {
        "encoded_matrix": None, "recon_matrix": None, "encoded_fov_mm": None, "recon_fov_mm": None,
        "encoding_limits": {}, "kspace_encoding_step_1": None}


def test_retrospective_acceleration_and_complex_reference(mc_file: Path, tmp_path: Path) -> None:
    from ambient_imaging.operators import ifft2c

    ds = FastMRISlices(mc_file, acceleration=4, center_fraction=0.1875, mask_seed=7, reference=True)
    masks = []
    full_k = torch.from_numpy(_phantom(3, 4))
    for i in range(3):
        it = ds[i]
        op, y = it["operator"], it["y"]
        m = op.mask[0].reshape(-1, W)[0]
        masks.append(m)
        assert it["meta"]["retrospective"] and 3.0 <= it["meta"]["acceleration"] <= 5.5
        assert int(op.acs.sum()) == 6  # round(0.1875 * 32) centre lines
        assert torch.all(y[..., ~m] == 0) and torch.all(y[..., m].abs().sum(1) > 0)
        torch.testing.assert_close(y * it["scale"], full_k[i] * m, rtol=1e-5, atol=1e-5)
        # reference = SENSE combination of the fully sampled coil images with the operator's maps
        want = (op.sens_maps[0].conj() * ifft2c(full_k[i])).sum(0, keepdim=True) / it["scale"]
        assert it["reference"].dtype == torch.complex64 and it["reference"].shape == (1, H, W)
        torch.testing.assert_close(it["reference"], want, rtol=1e-4, atol=1e-5)
    assert not torch.equal(masks[0], masks[1])  # one mask per slice
    again = FastMRISlices(mc_file, acceleration=4, center_fraction=0.1875, mask_seed=7)
    assert torch.equal(again[1]["operator"].mask[0].reshape(-1, W)[0], masks[1])  # deterministic
    other = FastMRISlices(mc_file, acceleration=4, center_fraction=0.1875, mask_seed=8)
    assert not all(torch.equal(other[i]["operator"].mask[0].reshape(-1, W)[0], masks[i]) for i in range(3))
    # the scale depends on the ACS only: identical at R = 2 and R = 4 (same centre fraction)
    r2 = FastMRISlices(mc_file, acceleration=2, center_fraction=0.1875, mask_seed=7)
    for i in range(3):
        assert r2[i]["scale"] == pytest.approx(ds[i]["scale"], rel=1e-6)
        assert r2[i]["meta"]["acceleration"] < ds[i]["meta"]["acceleration"]
    # an already undersampled file keeps its own mask; reference=True then is an error naming the file
    undersample_file(mc_file, tmp_path / "r2.h5", acceleration=2, center_fraction=0.25, seed=0)
    stored = read_fastmri_slice(tmp_path / "r2.h5", 0)["mask"]
    it = FastMRISlices(tmp_path / "r2.h5", acceleration=8)[0]
    np.testing.assert_array_equal(it["operator"].mask[0].reshape(-1, W)[0].numpy(), stored)
    assert not it["meta"]["retrospective"]
    with pytest.raises(ValueError, match="r2.h5.*undersampled"):
        FastMRISlices(tmp_path / "r2.h5", reference=True)[0]


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    from ambient_imaging.io import atomic_write

    p = atomic_write(tmp_path / "a.txt", lambda t: t.write_text("one"))
    assert p.read_text() == "one"

    def broken(t: Path) -> None:
        t.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "a.txt", broken)
    assert p.read_text() == "one" and sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


def test_build_embedded_names() -> None:
    from ambient_imaging.datasets.embedded import EMBEDDED, build_embedded

    assert {d.name for d in EMBEDDED} == {"mri-brain", "sky-hdf", "faces", "eht-crescents"}
    with pytest.raises(ValueError, match="mri-brain, sky-hdf, faces"):
        build_embedded("mri_brain", "/nonexistent")
