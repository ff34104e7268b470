"""CorruptedImages (synthetic corruption drawn once), image folders, and the embedded faces set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ambient_imaging.datasets import collate_measurements
from ambient_imaging.datasets.embedded.faces import build_faces, faces_array, load_faces
from ambient_imaging.datasets.images import CorruptedImages, load_image_folder
from ambient_imaging.operators import GaussianNoise, PixelMask


def _images(n=6, c=1, h=32, w=32):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(0))


def test_masks_deterministic_and_fraction():
    imgs = _images(n=6)
    a = CorruptedImages(imgs, corruption=0.4, seed=3)
    b = CorruptedImages(imgs, corruption=0.4, seed=3)
    c = CorruptedImages(imgs, corruption=0.4, seed=4)
    for i in range(len(a)):
        assert torch.equal(a[i]["operator"].mask, b[i]["operator"].mask)
        assert torch.equal(a[i]["y"], b[i]["y"])
        assert torch.equal(a[i]["y"], a[i]["y"])  # same every access (drawn once)
    assert not torch.equal(a[0]["operator"].mask, c[0]["operator"].mask)
    assert not torch.equal(a[0]["operator"].mask, a[1]["operator"].mask)  # per image
    frac = 1 - torch.cat([a[i]["operator"].mask.float().flatten() for i in range(len(a))]).mean()
    assert float(frac) == pytest.approx(0.4, abs=0.03)  # 6144 pixels: std ≈ 0.006
    # a prefix of the images gets the same corruption (depends on (seed, index) only)
    d = CorruptedImages(imgs[:2], corruption=0.4, seed=3)
    assert torch.equal(d[1]["operator"].mask, a[1]["operator"].mask)


def test_items_have_no_clean_image_and_consistent_operator():
    imgs = _images(n=3, c=3)
    ds = CorruptedImages(imgs, corruption=0.3, noise_sigma=0.1, seed=0)
    it = ds[1]
    assert set(it) == {"y", "operator", "scale", "meta"}
    assert it["y"].shape == (3, 32, 32) and it["scale"] == 1.0 and it["meta"] == {"index": 1}
    op = it["operator"]
    assert isinstance(op, PixelMask) and op.mask.shape == (1, 1, 32, 32) and op.noise_sigma == 0.1
    m = op.mask[0]
    assert torch.all(it["y"][:, ~m[0]] == 0)  # missing pixels are zero, noise only on measured ones
    clean = ds.clean(1)
    assert clean.min() >= -1 and clean.max() <= 1  # value_range (-1, 1)
    torch.testing.assert_close(clean, imgs[1] * 2 - 1)
    resid = (it["y"] - clean * m)[:, m[0]]
    assert float(resid.std()) == pytest.approx(0.1, rel=0.1)
    ev = ds.evaluation_view()
    assert torch.equal(ev[1]["reference"], clean) and torch.equal(ev[1]["y"], it["y"])
    batch = collate_measurements([ds[0], ds[2]])
    assert batch.y.shape == (2, 3, 32, 32) and batch.reference is None
    assert collate_measurements([ev[0], ev[2]]).reference.shape == (2, 3, 32, 32)


def test_noise_only():
    ds = CorruptedImages(_images(n=2), noise_sigma=0.2, seed=1, value_range=(0, 1))
    op = ds[0]["operator"]
    assert isinstance(op, GaussianNoise) and op.noise_sigma == 0.2
    assert float((ds[0]["y"] - ds.clean(0)).std()) == pytest.approx(0.2, rel=0.1)


def test_image_folder(tmp_path):
    from skimage import io as skio

    rng = np.random.default_rng(0)
    for k in range(3):
        skio.imsave(tmp_path / f"im{k}.png", (rng.random((20, 24)) * 255).astype(np.uint8), check_contrast=False)
    np.save(tmp_path / "im3.npy", rng.random((20, 24)).astype(np.float32))
    x = load_image_folder(tmp_path)
    assert x.shape == (4, 1, 20, 24) and 0 <= float(x.min()) and float(x.max()) <= 1
    ds = CorruptedImages(tmp_path, corruption=0.5)
    assert len(ds) == 4
    stack = rng.random((5, 12, 10)).astype(np.float32)
    np.save(tmp_path / "stack.npy", stack)
    ds2 = CorruptedImages(tmp_path / "stack.npy", corruption=0.2, value_range=(0, 1))
    assert len(ds2) == 5 and ds2[0]["y"].shape == (1, 12, 10)
    np.testing.assert_array_equal(ds2.evaluation_images()[:, 0].numpy(), stack)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got values"):
        CorruptedImages(torch.full((1, 1, 4, 4), 2.0))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        CorruptedImages(torch.rand(4, 4))
    with pytest.raises(ValueError, match="corruption must be in"):
        CorruptedImages(torch.rand(1, 1, 4, 4), corruption=1.0)
    with pytest.raises(ValueError, match="noise_sigma must be >= 0"):
        CorruptedImages(torch.rand(1, 1, 4, 4), noise_sigma=-1)
    with pytest.raises(TypeError, match="real floats"):
        CorruptedImages(torch.ones(1, 1, 4, 4, dtype=torch.int64))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nope\.npy: no such file"):
        CorruptedImages(tmp_path / "nope.npy")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"x\.txt: expected a folder of images or a \.npy stack"):
        CorruptedImages(tmp_path / "x.txt")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"flat\.npy: expected an \(N, H, W\)"):
        CorruptedImages(tmp_path / "flat.npy")
    (tmp_path / "flat.npy").unlink()
    (tmp_path / "x.txt").unlink()
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"bad\.png: cannot read image"):
        load_image_folder(tmp_path)


def test_faces_builder(tmp_path):
    faces = faces_array()
    assert faces.shape == (100, 25, 25) and faces.dtype == np.float32
    from skimage import data

    raw = np.asarray(data.lfw_subset())
    np.testing.assert_array_equal(faces, raw[:100].astype(np.float32))  # the first 100 of 200 are the faces
    s = build_faces(tmp_path, progress=False)
    assert s["n_train"] == 80 and s["n_heldout"] == 20
    assert json.loads((tmp_path / "build.json").read_text())["n_train"] == 80
    train, held = load_faces(tmp_path)
    assert train.shape == (80, 1, 25, 25) and held.shape == (20, 1, 25, 25) and train.dtype == np.float32
    assert 0 <= train.min() and train.max() <= 1
    # disjoint split covering distinct faces
    all_ = np.concatenate([train, held]).reshape(100, -1)
    assert len({r.tobytes() for r in all_}) == 100
    t2, h2 = load_faces(None)  # in memory, same split
    np.testing.assert_array_equal(t2, train)
    np.testing.assert_array_equal(h2, held)
    t3, _ = load_faces(None, seed=1)
    assert not np.array_equal(t3, train)
    ts, hs = load_faces(None, subset="small")
    assert ts.shape[0] == 40 and hs.shape[0] == 10
    tr, hr = load_faces(tmp_path, size=32)
    assert tr.shape == (80, 1, 32, 32) and hr.shape == (20, 1, 32, 32)
    assert 0 <= tr.min() and tr.max() <= 1
    assert abs(float(tr.mean()) - float(train.mean())) < 0.01  # a resize keeps the mean brightness
    with pytest.raises(ValueError, match="size must be one of"):
        build_faces(tmp_path / "x", size="huge", progress=False)
    with pytest.raises(ValueError, match="size must be positive"):
        load_faces(None, size=0)
    with pytest.raises(FileNotFoundError, match="train.npy"):
        load_faces(tmp_path / "empty")
    ds = CorruptedImages(torch.from_numpy(train), corruption=0.5)
    assert ds[0]["y"].shape == (1, 25, 25)


def test_image_collection_reads_mixed_folders(tmp_path):
    from astropy.io import fits
    from PIL import Image

    from ambient_imaging.datasets.images import load_image_collection, read_image_file

    d = tmp_path / "c"
    d.mkdir()
    Image.fromarray(np.full((10, 20), 255, np.uint8)).save(d / "a.png")  # wide: centre-cropped to 10x10
    Image.fromarray(np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 200).save(d / "b.png")  # 16-bit
    np.save(d / "c.npy", np.linspace(-5, 5, 64).reshape(8, 8))
    fits.PrimaryHDU(np.ones((9, 9), np.float32)).writeto(d / "d.fits")
    imgs = load_image_collection(d, 8)
    assert imgs.shape == (4, 1, 8, 8) and imgs.dtype == torch.float32
    assert float(imgs[0].min()) == pytest.approx(1.0)  # 8-bit white
    assert 0.0 <= float(imgs.min()) and float(imgs.max()) <= 1.0
    c = read_image_file(d / "c.npy")
    assert c.shape == (8, 8, 1) and c.min() == 0.0 and c.max() == 1.0  # float outside [0, 1]: min-max
    b = read_image_file(d / "b.png")
    assert b.max() == pytest.approx(255 * 200 / 65535)
    Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(d / "e.png")  # RGBA: alpha dropped, 3 channels
    assert load_image_collection(d, 8).shape == (5, 3, 8, 8)


def test_image_collection_errors(tmp_path):
    from ambient_imaging.datasets.images import load_image_collection

    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_image_collection(tmp_path / "missing", 8)
    (tmp_path / "e").mkdir()
    with pytest.raises(ValueError, match="no images"):
        load_image_collection(tmp_path / "e", 8)
    (tmp_path / "e" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"x\.jpg: cannot read image"):
        load_image_collection(tmp_path / "e", 8)
    (tmp_path / "e" / "x.jpg").unlink()
    np.save(tmp_path / "e" / "y.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"y\.npy: cannot read image \(expected"):
        load_image_collection(tmp_path / "e", 8)
