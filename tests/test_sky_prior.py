"""The VLBI sky prior path: the eht-crescents build, training through simulated EHT visibilities, and
``reconstruct --prior`` with closure likelihoods (``likelihood-dps``) on a UVFITS file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ambient_imaging.datasets.simulate_vlbi import UAS, crescent, simulate_eht

N = 64
FOV = 160 * UAS


def test_eht_crescents_build(tmp_path):
    """Sums to 1, all three kinds, the scales recorded, deterministic."""
    from ambient_imaging.datasets.embedded import build_embedded

    s = build_embedded("eht-crescents", tmp_path, size="small", progress=False)
    x = np.load(tmp_path / "train.npy")
    assert x.shape == (s["n_train"], N, N) and x.dtype == np.float32
    assert np.allclose(x.sum(axis=(1, 2)), 1.0, atol=1e-4) and (x >= 0).all()
    assert s["train_kinds"]["crescent"] > s["train_kinds"]["gaussian"] > 0 and s["train_kinds"]["hdf"] > 0
    assert abs(s["pixel_scale_rad"] - 2.5 * UAS) < 1e-18 and s["flux_per_image"] > 1
    again = np.load(build_embedded("eht-crescents", tmp_path / "b", size="small", progress=False) and
                    tmp_path / "b" / "train.npy")
    assert np.array_equal(x, again)  # deterministic in the seed


@pytest.fixture(scope="module")
def crescents(tmp_path_factory):
    from ambient_imaging.datasets.embedded import build_embedded

    root = tmp_path_factory.mktemp("crescents")
    build_embedded("eht-crescents", root, size="small", progress=False)
    return root


def test_uv_route_observes_crescents_at_their_scale(crescents):
    """``sky_observation = "uv"``: each sky image is seen through simulated gridded EHT visibilities at the
    build's pixel scale, normalised to the build's k."""
    from ambient_imaging.training.config import TrainConfig
    from ambient_imaging.training.data import build_training_data

    cfg = TrainConfig(data=str(crescents), operator="interferometry", array="eht2017", declination=12.39,
                      observation_hours=8.0, out="unused")
    data = build_training_data(cfg)
    item = getattr(data.dataset, "dataset", data.dataset)[0]  # the simulation (reference kept for tests)
    op = item["operator"]
    assert abs(op.pixel_scale - 2.5 * UAS) < 1e-18 and data.mask_channels == 1
    assert 0 < int(op.mask.sum()) < 0.05 * N * N  # sparse: a few dozen uv cells of 4096
    assert abs(float(item["reference"].sum()) - 300) < 1e-2


@pytest.fixture(scope="module")
def sky_prior(crescents, tmp_path_factory):
    """A one-step sky prior (tiny network): eht-crescents seen only through Gaussian noise (tweedie)."""
    from ambient_imaging.cli import main

    root = tmp_path_factory.mktemp("sky")
    cfg = root / "sky.toml"
    cfg.write_text(f'steps = 1\nlog_every = 1\n[data]\npath = "{crescents}"\noperator = "interferometry"\n'
                   'sky_observation = "noise"\nnoise_sigma = 0.1\n[loss]\nname = "tweedie"\n[network]\n'
                   'preset = "tiny"\nsigma_data = 0.34\noverrides = { model_channels = 8, channel_mult = [1] }\n'
                   '[optim]\nbatch_size = 2\n')
    assert main(["train", "--config", str(cfg), "--out", str(root / "run"), "--no-progress"]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def eht_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("skyobs") / "crescent.uvfits"
    return simulate_eht((N, N), FOV, image=crescent((N, N), FOV / N), n_times=12, seed=3, path=path)


def test_sky_prior_records_its_scales(sky_prior):
    from ambient_imaging.interferometry.flux import parse_flux_rule
    from ambient_imaging.reconstruction.methods import default_method_name
    from ambient_imaging.sampling.likelihood_dps import LikelihoodDPS
    from ambient_imaging.sampling.registry import make_method
    from ambient_imaging.training import load_prior

    prior = load_prior(sky_prior)
    k, pix = parse_flux_rule(prior.scale_rule[prior.scale_rule.find("total_flux k="):])
    assert k == 300 and abs(pix - 2.5 * UAS) < 1e-15
    assert default_method_name(prior) == "likelihood-daps"
    m = make_method("likelihood-dps", prior, steps=3, flux=0.6)
    assert isinstance(m, LikelihoodDPS) and m.flux_per_image == 300 and m.total_flux == 0.6
    assert m.delta is None and m.sigma_min >= 0.1  # a plain Tweedie prior: x_t itself, never below σ_n


def test_flux_option_is_applied_in_the_priors_units(sky_prior, eht_file):
    """``--flux`` is in Jy; run_method hands the sampler ``y / F``: ``for_data`` converts it."""
    import torch

    from ambient_imaging.sampling import run_method
    from ambient_imaging.sampling.registry import make_method
    from ambient_imaging.training import load_prior

    prior = load_prior(sky_prior)
    y, op = eht_file.vis.to_operator((N, N), fov=FOV)
    y, op = y.to(torch.complex64), op.to(dtype=torch.float32)
    m = make_method("likelihood-dps", prior, steps=2, flux=0.6).for_data(y, op)
    rec = run_method(y, op, prior, m, samples=1, generator=torch.Generator().manual_seed(0))
    assert abs(rec.info["total_flux"][0] * m.file_flux - 0.6) < 1e-6


def test_reconstruct_with_sky_prior_writes_samples_and_ring_spread(sky_prior, eht_file, tmp_path, capsys):
    from astropy.io import fits

    from ambient_imaging.cli import main

    out = tmp_path / "post.fits"
    code = main(["reconstruct", "--prior", str(sky_prior), "--data", str(eht_file.path), "--data-terms",
                 "cphase,logcamp", "--fov", "160uas", "--npix", str(N), "--samples", "2", "--steps", "4",
                 "--flux", "0.6", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    m = json.loads(out.with_suffix(".metrics.json").read_text())
    assert m["method"] == "likelihood-daps"  # the sky prior's default
    for key in ("chi2_cphase", "chi2_logcamp", "ring_diameter_uas", "ring_depth", "ring_radial_scatter",
                "ring_position_angle_deg", "ring_diameter_uas_std", "ring_depth_std"):
        assert key in m, key
    with fits.open(out) as hdul:
        names = [h.name for h in hdul]
        assert hdul[0].header["CDELT1"] < 0 and "STD" in names and "SAMPLES" in names
        assert hdul["SAMPLES"].data.shape[0] == 2 and np.isfinite(hdul[0].data).all()


def test_failed_posterior_fit_warns_and_strict_errors(sky_prior, eht_file, tmp_path, capsys):
    from ambient_imaging.cli import main

    args = ["reconstruct", "--prior", str(sky_prior), "--data", str(eht_file.path), "--fov", "160uas", "--npix",
            str(N), "--samples", "2", "--steps", "3", "--sampler", "likelihood-dps", "--zeta", "1e-9"]
    with pytest.warns(RuntimeWarning, match="chi2_"):
        assert main([*args, "--out", str(tmp_path / "a.fits")]) == 0
    assert main([*args, "--strict", "--out", str(tmp_path / "b.fits")]) != 0
    assert "chi2_" in capsys.readouterr().err
