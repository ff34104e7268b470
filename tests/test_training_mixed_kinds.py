"""Mixed collections by kind (issue 19): complete samples with the gated Tweedie loss, image/FITS folders, --gate."""

from __future__ import annotations

import pytest
import torch
from test_loss_records import FixedSigma, Linear, _minimiser, _mixed_gaussian

from ambient_imaging.training.losses import CompleteLoss, NoiseGate


@pytest.mark.parametrize("sigma", [0.3, 2.0])
def test_complete_loss_gated_is_minimised_by_the_clean_denoiser(sigma):
    """Gaussian toy x ~ N(0, s²), half clean, half y = x + σ_n ε (complete, noisy): E[x | x_t] = s²/(s²+σ²) x_t."""
    s, sigma_n = 1.0, 1.0
    batch = _mixed_gaussian(20000, s, sigma_n)
    right = s**2 / (s**2 + sigma**2)
    gated = CompleteLoss(sigma_dist=FixedSigma(sigma), gate=NoiseGate())
    assert _minimiser(gated, batch) == pytest.approx(right, abs=0.01)
    out = gated.evaluate(Linear(0.5), batch, torch.Generator().manual_seed(9))
    noisy = torch.arange(len(batch)) >= len(batch) // 2
    assert bool(torch.all(out.active[~noisy]))  # clean samples train at every σ
    assert bool(torch.all(out.active[noisy])) == (sigma >= sigma_n)  # noisy ones only at σ ≥ σ_n
    if sigma < sigma_n:
        assert float(out.per_sample[noisy].abs().max()) == 0.0
    # the noisy samples alone (above the crossing point): Tweedie makes the clean denoiser the minimiser
    if sigma >= sigma_n:
        from ambient_imaging.training.losses.mixture import select

        only_noisy = select(batch, torch.nonzero(noisy).reshape(-1).tolist())
        assert _minimiser(gated, only_noisy) == pytest.approx(right, abs=0.01)
    # --gate off: the noisy samples as if clean, at every σ: biased towards the noisy data's denoiser
    off = CompleteLoss(sigma_dist=FixedSigma(sigma), gate=None)
    assert abs(_minimiser(off, batch) - right) > 0.015


def test_complete_loss_checks_its_arguments():
    with pytest.raises(TypeError, match="NoiseGate"):
        CompleteLoss(gate=1.0)
    with pytest.raises(ValueError, match="weighting"):
        CompleteLoss(weighting="floor")


# ---------------------------------------------------------------------- from the command line
def _fits_folder(folder, n_clean=2, n_noisy=1, n_masked=3, size=16):
    """Complete clean (NOISE = 0), complete noisy (NOISE > 0) and masked (MASK HDU) FITS images."""
    import numpy as np

    from ambient_imaging.datasets.fits import write_fits_image

    folder.mkdir()
    rng = np.random.default_rng(0)
    k = 0
    for kind, n in (("clean", n_clean), ("noisy", n_noisy), ("masked", n_masked)):
        for _ in range(n):
            img = rng.uniform(0.2, 0.8, (size, size))
            mask = np.ones((size, size), bool)
            if kind == "masked":
                mask[rng.uniform(size=(size, size)) < 0.3] = False
            sigma = 0.05 if kind != "clean" else 0.0
            if kind != "clean":
                img = img + sigma * rng.standard_normal(img.shape)
            write_fits_image(folder / f"im{k:02d}.fits", (img * mask).astype(np.float32),
                             extra={"MASK": mask} if kind == "masked" else None, noise_sigma=sigma)
            k += 1
    return folder


def test_fits_folder_mixing_kinds_trains_each_by_its_kind(tmp_path, capsys):
    import json

    from test_cli_train import FAST

    from ambient_imaging.cli import main
    from ambient_imaging.training import load_prior

    folder = _fits_folder(tmp_path / "sky")
    assert main(["data", "info", str(folder), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["format"] == "FITS" and rep["files"] == 6
    assert rep["mix"]["kinds"] == {"clean": 2, "complete noisy": 1, "masked": 3}
    assert main(["data", "info", str(folder)]) == 0
    assert "2 clean image(s)" in capsys.readouterr().out
    out = tmp_path / "run"
    rc = main(["train", "--data", str(folder), "--steps", "2", "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "mixed set" in err and "noise gate: --gate auto" in err
    info = load_prior(out).info
    assert info["data_mix"]["noisy_complete_slices"] == 1 and info["data_mix"]["corrupted_slices"] == 3
    assert info["gate"]["mode"] == "auto" and info["gate"]["active"] is True
    # --gate off is recorded as such
    out2 = tmp_path / "run_off"
    rc = main(["train", "--data", str(folder), "--steps", "1", "--gate", "off", "--out", str(out2), *FAST])
    assert rc == 0, capsys.readouterr().err
    assert load_prior(out2).info["gate"]["mode"] == "off"
    # the per-σ-band loss columns survive the mixture
    import csv

    rows = list(csv.DictReader(open(out / "metrics.csv")))
    bands = [k for k in rows[-1] if k.startswith("loss_s")]
    assert bands and any(rows[-1][k] not in ("nan", "") for k in bands)


def test_clean_data_beside_noisy_and_masked_images(tmp_path, capsys):
    import numpy as np
    from test_cli_train import FAST

    from ambient_imaging.cli import main
    from ambient_imaging.training import load_prior

    rng = np.random.default_rng(1)
    noisy, clean = tmp_path / "noisy.npy", tmp_path / "clean.npy"
    np.save(noisy, rng.uniform(0, 1, (6, 16, 16)).astype(np.float32))
    np.save(clean, rng.uniform(0, 1, (2, 16, 16)).astype(np.float32))
    out = tmp_path / "noise"
    rc = main(["train", "--data", str(noisy), "--clean-data", str(clean), "--operator", "noise", "--noise-sigma",
               "0.2", "--steps", "2", "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 0, err
    info = load_prior(out).info
    assert info["data_mix"]["kinds"] == {"clean": 2, "complete noisy": 0, "noisy": 6}
    assert info["gate"]["active"] is True
    out = tmp_path / "mask"
    rc = main(["train", "--data", str(noisy), "--clean-data", str(clean), "--operator", "mask", "--corruption",
               "0.4", "--steps", "1", "--out", str(out), *FAST])
    assert rc == 0, capsys.readouterr().err
    info = load_prior(out).info
    assert info["data_mix"]["clean_slices"] == 2 and info["data_mix"]["corrupted_slices"] == 6
    assert info["gate"]["active"] is False  # the clean images carry no noise: nothing to gate
    # a clean set of another size is a one-line error
    np.save(clean, rng.uniform(0, 1, (2, 8, 8)).astype(np.float32))
    rc = main(["train", "--data", str(noisy), "--clean-data", str(clean), "--operator", "mask", "--steps", "1",
               "--out", str(tmp_path / "bad"), *FAST])
    assert rc != 0 and "same size" in capsys.readouterr().err


def test_mri_mix_records_the_gate(tmp_path, capsys):
    from test_cli_train import FAST
    from test_training_mixture import _mixed

    from ambient_imaging.cli import main
    from ambient_imaging.training import load_prior

    _full, _under, mixed = _mixed(tmp_path)
    out = tmp_path / "run"
    rc = main(["train", "--data", str(mixed), "--operator", "mri", "--steps", "1", "--gate-factor", "1.5",
               "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 0, err
    info = load_prior(out).info
    gate = info["gate"]
    assert gate["mode"] == "auto" and gate["factor"] == 1.5
    # the ambient mask ranges are the undersampled slices' (R = 1 and the full width of the fully sampled
    # slices would let Ã protect every line, degenerating the ambient part of the mixture)
    assert info["data_accelerations"][0] > 2 and info["train_center_lines"][1] < 32
    rc = main(["train", "--data", str(mixed), "--operator", "mri", "--steps", "1", "--gate-factor", "0.5",
               "--out", str(tmp_path / "bad"), *FAST])
    assert rc != 0 and "--gate-factor" in capsys.readouterr().err


def test_band_losses_split_by_kind(tmp_path, capsys):
    import math

    from test_cli_train import FAST

    from ambient_imaging.cli import main
    from ambient_imaging.training.mix_diagnostics import run_kind_band_losses

    folder = _fits_folder(tmp_path / "sky")
    out = tmp_path / "run"
    assert main(["train", "--data", str(folder), "--steps", "1", "--out", str(out), *FAST]) == 0, capsys.readouterr()
    res = run_kind_band_losses(out, batches=2, batch_size=6)
    assert set(res) == {"complete", "corrupted", "counts"}
    for kind in ("complete", "corrupted"):
        n = sum(res["counts"][kind].values())
        assert n > 0 and any(math.isfinite(v) for v in res[kind].values())
