"""Posterior samplers against the analytic Gaussian toy (``ambient_imaging.sampling.toy``).

* MMPS with the exact plain denoiser reproduces the exact posterior (real and complex images,
  multi-coil MRI) and does not degrade with more steps; with the old truncated CG it did not.
* AmbientMMPS with the exact *ambient* denoiser ``E[x | Ã x_t, Ã]`` reproduces the exact
  posterior mean and the covariance that is identifiable from ``Ã ⊆ A`` (exact covariance
  minus ``Cov[x | A x]``); MMPS fed the same prior through ``Ã = A.subsample(δ)`` diverges.
* Every ``Ã`` any sampler draws keeps the operator's protected rows; no ambient prior is ever
  shown an all-ones mask by the default samplers.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch

from ambient_imaging.sampling import (
    ADPS,
    DAPS,
    DPS,
    MMPS,
    AmbientMMPS,
    OneStep,
    make_method,
)
from ambient_imaging.sampling.toy import moment_errors, toy_problem

K = 200


def _check(err: dict[str, float], mean_rel: float = 0.05, mean_z: float = 5.0, diag_mean: float = 0.15,
           diag_max: float = 0.5) -> None:
    assert err["mean_rel"] < mean_rel, err
    assert err["mean_z"] < mean_z, err
    assert abs(err["diag_ratio"] - 1) < diag_mean, err
    assert err["diag_rel"] < diag_max, err


@pytest.mark.parametrize("kind,cplx", [("pixel", False), ("pixel", True)])
def test_mmps_exact_posterior_and_no_degradation_with_steps(kind, cplx):
    toy, op, x, y, _ = toy_problem(kind, is_complex=cplx, noise_sigma=0.1)
    mean, cov = toy.posterior(y, op)
    net = toy.denoiser()
    ratios = []
    for steps in (25, 100, 200):
        rec = MMPS(steps=steps)(net, y, op, samples=K, generator=torch.Generator().manual_seed(0))
        err = moment_errors(rec.samples[0], mean, cov)
        print(kind, cplx, steps, err)
        _check(err)
        ratios.append(err["diag_ratio"])
    assert abs(ratios[2] - 1) <= abs(ratios[0] - 1) + 0.03  # more steps: not worse


def test_mmps_multicoil_mri_exact_and_truncated_cg_was_not():
    toy, op, x, y, _ = toy_problem("mri", noise_sigma=0.02)
    mean, cov = toy.posterior(y, op)
    net = toy.denoiser()
    rec = MMPS(steps=25)(net, y, op, samples=K, generator=torch.Generator().manual_seed(0))
    assert rec.samples.dtype == torch.complex128
    _check(moment_errors(rec.samples[0], mean, cov))
    # the root cause of the old failures: CG stopped after 5 iterations from zero every step
    old = MMPS(steps=25, cg_iters=5, warm_start=False)(net, y, op, samples=K,
                                                       generator=torch.Generator().manual_seed(0))
    err = moment_errors(old.samples[0], mean, cov)
    assert err["diag_ratio"] > 1.5 or err["mean_z"] > 8, err


def test_complex_noise_convention():
    # E|ε|² = σ² for complex measurements; the posterior uses σ²/2 per real component
    toy, op, x, y, _ = toy_problem("mri", noise_sigma=0.3, seed=3)
    g = torch.Generator().manual_seed(1)
    eps = op.measure(x.expand(400, -1, -1, -1).contiguous(), g) - op.forward(x)
    support = op.restrict(torch.ones_like(eps)).abs() > 0
    assert abs(float((eps.abs() ** 2)[support].mean()) / 0.09 - 1) < 0.05


@pytest.mark.parametrize("kind", ["pixel", "mri"])
def test_ambient_mmps_is_consistent_for_ambient_priors(kind):
    toy, op, x, y, make_op = toy_problem(kind, noise_sigma=0.1)
    mean, cov = toy.posterior(y, op)
    _, reachable = toy.row_space_posterior(y, op)
    amb = toy.ambient_denoiser(make_op)
    k = K if kind == "pixel" else 120
    rec = AmbientMMPS(steps=20)(amb, y, op, samples=k, mask_channels=1, generator=torch.Generator().manual_seed(0))
    err = moment_errors(rec.samples[0], mean, reachable)
    print(kind, "ambient-mmps vs identifiable posterior", err,
          "variance vs exact", moment_errors(rec.samples[0], mean, cov)["diag_ratio"])
    _check(err)
    # the prior only ever saw A's own mask (no all-ones mask)
    assert all(torch.equal(m, op.mask_channels().float().expand_as(m)) for m in amb.masks)


def test_every_sampler_keeps_protected_rows():
    toy, op, x, y, make_op = toy_problem("mri", noise_sigma=0.1)
    acs = op.acs  # (1, W) protected lines
    samplers = [ADPS(steps=3, delta=0.5), AmbientMMPS(steps=3), AmbientMMPS(steps=3, subsample_delta=0.5),
                OneStep()]
    for sampler in samplers:
        amb = toy.ambient_denoiser(make_op)
        rec = sampler(amb, y, op, samples=4, mask_channels=1, generator=torch.Generator().manual_seed(1))
        assert torch.isfinite(rec.samples).all()
        masks = amb.masks or [op.mask_channels()]
        for m in masks:
            lines = m[:, 0, 0, :] > 0.5  # (B, W)
            assert torch.all(lines[:, acs[0]]), (type(sampler).__name__, lines)
            assert torch.all(lines <= op.mask[:, 0, :]), type(sampler).__name__  # rows of Ã ⊆ rows of A
            assert not torch.all(lines), type(sampler).__name__  # never an all-ones mask


def test_dps_warns_once_about_all_ones_masks():
    toy, op, x, y, make_op = toy_problem("pixel", noise_sigma=0.1)
    from ambient_imaging.sampling import mmps as mmps_module

    mmps_module._WARNED.discard("dps-ones")
    with pytest.warns(UserWarning, match="all-ones"):
        DPS(steps=2)(toy.denoiser(), y, op, mask_channels=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DPS(steps=2)(toy.denoiser(), y, op, mask_channels=1)  # once per process


def test_default_posterior_sampler_per_prior_type():
    ambient = SimpleNamespace(mask_channels=1, delta=0.1, sigma_min=0.01, sigma_max=80.0, noise_sigma=0.0,
                              config={"loss": "ambient"})
    naive = SimpleNamespace(mask_channels=1, delta=0.0, sigma_min=0.002, sigma_max=80.0, noise_sigma=0.03,
                            config={"loss": "naive"})
    tweedie = SimpleNamespace(mask_channels=0, delta=0.0, sigma_min=0.1, sigma_max=80.0, noise_sigma=0.1,
                              config={"loss": "tweedie"})
    from ambient_imaging.reconstruction import default_method, default_method_name

    s = default_method(ambient).for_prior(ambient)  # A-DPS: one Ã = A.subsample(δ) per sample (2026-12-07)
    assert isinstance(s, ADPS) and default_method_name(ambient) == s.name == "adps" and s.delta == 0.1
    assert s.sigma_min == 0.01
    mixed = SimpleNamespace(**vars(ambient), info={"data_mix": {"clean_slices": 16, "corrupted_slices": 89}})
    s = default_method(mixed).for_prior(mixed)  # a mixed set: A-DPS too (DAPS on all-ones masks drew the
    assert isinstance(s, ADPS) and s.delta == 0.1  # few complete samples' anatomy onto held-out volumes)
    assert make_method("daps", mixed).mask == "ones"  # DAPS by name still samples it as it learned its complete slices
    for prior, smin in ((naive, 0.03), (tweedie, 0.1)):
        s = default_method(prior).for_prior(prior, steps=7)
        assert type(s) is DAPS and s.name == default_method_name(prior) == "daps" and not s.ambient
        assert s.sigma_min == smin and s.steps == 7  # σ ≥ σ_n of the prior
    assert isinstance(make_method("ambient-mmps", ambient), AmbientMMPS)
    assert type(make_method("mmps", naive)) is MMPS
    assert make_method("adps", ambient).delta == 0.1
    # a δ the user set survives the re-fit run_method does (it used to be overwritten by the prior's)
    import dataclasses

    for name in ("adps", "daps"):
        given = dataclasses.replace(make_method(name, ambient), delta=0.02)
        assert given.fit(ambient).delta == 0.02 and given.fit(ambient).fit(ambient).delta == 0.02
    assert make_method("daps", ambient).delta == 0.1 and make_method("daps", naive).delta == 0.0
    with pytest.raises(ValueError, match="unknown method"):
        make_method("nope", ambient)
    # the objects answer for themselves: which prior types, inputs and options they take
    assert ADPS.suits(ambient) and not DPS.suits(ambient) and DPS.suits(naive)
    assert make_method("zero-filled").serves("visibilities") and not make_method("sense").serves("image")
    assert make_method("l1-wavelet").tunes_lambda and not make_method("zero-filled").is_fit
    with pytest.raises(ValueError, match="--zeta applies to --sampler"):
        make_method("mmps", naive, zeta=1.0)
    with pytest.raises(ValueError, match="needs --prior"):
        make_method("dps")
    for bad in (dict(steps=0), dict(steps=2.5), dict(zeta=0.0), dict(lamda=float("nan")), dict(samples=0)):
        with pytest.raises(ValueError):
            make_method("dps", naive, **bad)


# ----------------------------------------------------------------------------- DAPS and the mask ensemble
def test_daps_plain_prior_close_to_the_closed_form_posterior():
    """DAPS (decoupled annealing, Jacobian-free) with the exact plain denoiser: mean and variance near the
    exact posterior (approximate by design: ``docs/sampling.md`` has the numbers)."""
    from ambient_imaging.sampling import DAPS

    toy, op, x, y, _ = toy_problem("pixel", noise_sigma=0.1)
    mean, cov = toy.posterior(y, op)
    rec = DAPS(steps=200, langevin_steps=10)(toy.denoiser(), y, op, samples=K,
                                              generator=torch.Generator().manual_seed(0))
    err = moment_errors(rec.samples[0], mean, cov)
    assert rec.nfe == 200 and torch.isfinite(rec.samples).all()
    assert err["mean_rel"] < 0.12 and abs(err["diag_ratio"] - 1) < 0.3, err
    # far better than the prior alone or the zero-filled image
    zf = moment_errors(op.measurements_to_image(y).expand(K, -1, -1, -1), mean, cov)
    assert err["mean_rel"] < 0.5 * zf["mean_rel"], (err, zf)


@pytest.mark.parametrize("kind", ["pixel", "mri"])
def test_daps_mean_ending_keeps_the_mean_and_drops_the_invented_last_level_noise(kind):
    """With σ_min held at a noise floor (a prior trained on noisy data), a Langevin sample at the last level adds
    white noise of std ≈ σ_min everywhere the data do not pin; the conditional mean ending (``final="mean"``)
    keeps the posterior mean and brings the variance back towards the exact posterior's."""
    toy, op, _x, y, _ = toy_problem(kind, noise_sigma=0.1)
    mean, cov = toy.posterior(y, op)
    errs = {}
    for final in ("sample", "mean"):
        rec = DAPS(steps=100, langevin_steps=10, final=final, sigma_min=0.05)(
            toy.denoiser(), y, op, samples=150, generator=torch.Generator().manual_seed(0))
        errs[final] = moment_errors(rec.samples[0], mean, cov)
        assert rec.info["final"] == final
    assert abs(errs["mean"]["mean_rel"] - errs["sample"]["mean_rel"]) < 0.01, errs
    assert abs(errs["mean"]["diag_ratio"] - 1) < 0.05 < abs(errs["sample"]["diag_ratio"] - 1), errs
    assert errs["mean"]["diag_rel"] < errs["sample"]["diag_rel"], errs
    with pytest.raises(ValueError, match="final"):
        DAPS(final="mode")


@pytest.mark.parametrize("kind", ["pixel", "mri"])
def test_daps_ambient_prior_matches_the_full_posterior_mean(kind):
    """An ambient prior seen through A's own mask: DAPS gets the FULL posterior mean (null space of A
    included) and the identifiable covariance (``Cov[x | y] − Cov[x | A x]``)."""
    from ambient_imaging.sampling import DAPS

    toy, op, x, y, make_op = toy_problem(kind, noise_sigma=0.1)
    mean, cov = toy.posterior(y, op)
    _, reachable = toy.row_space_posterior(y, op)
    k = 150 if kind == "pixel" else 60
    sampler = DAPS(ambient=True, steps=60 if kind == "mri" else 100)
    rec = sampler(toy.ambient_denoiser(make_op), y, op, samples=k, mask_channels=1,
                  generator=torch.Generator().manual_seed(0))
    full, ident = moment_errors(rec.samples[0], mean, cov), moment_errors(rec.samples[0], mean, reachable)
    assert full["mean_rel"] < 0.08 and full["mean_z"] < 5, full  # z: the error in posterior standard errors
    assert abs(ident["diag_ratio"] - 1) < 0.3, ident
    assert full["diag_ratio"] < 0.8  # the null-space term Cov[x | A x] is not identifiable (docs/sampling.md)


def test_mask_ensemble_estimates_the_plain_denoiser_with_a_known_bias():
    """The fresh-mask ensemble (masks independent of A) against the exact E[x | x_t]: at large σ its
    deviation from the prior mean is the survival rate s times the exact one (derived in docs/sampling.md)."""
    from ambient_imaging.sampling.ensemble import MaskEnsembleDenoiser, fresh_operator

    toy, op, x, y, make_op = toy_problem("pixel", noise_sigma=0.1)
    g = torch.Generator().manual_seed(3)
    fresh = fresh_operator(op, 500, 0.0, g)
    assert fresh.mask.shape[0] == 500 and abs(fresh.mask.float().mean() - op.mask.float().mean()) < 0.03
    assert not torch.equal(fresh.mask[0], fresh.mask[1])  # independent of A and of each other
    s = float(op.mask.float().mean())
    ens = MaskEnsembleDenoiser(toy.ambient_denoiser(make_op), op, k=64, generator=g)
    plain = toy.denoiser()
    sigma = 20.0
    x_t = x + sigma * torch.randn(x.shape, dtype=x.dtype, generator=g)
    mu = toy.mu.reshape(x.shape)
    d_ens, d_plain = ens(x_t, sigma) - mu, plain(x_t, torch.tensor([sigma])) - mu
    ratio = float((d_ens * d_plain).sum() / (d_plain * d_plain).sum())
    assert abs(ratio - s) < 0.15, (ratio, s)
    assert ens.nfe == 64


def test_no_invented_signal_where_the_coil_maps_vanish():
    """Where the coil maps vanish, A x = 0 for every x (a known null space) and the reference is 0. A
    prior that has signal there (the toy's) paints it in without the support; with the problem's
    support the sampler leaves (numerically) 0 there, exactly 0 through run_method, and keeps the data fit."""
    from ambient_imaging.operators import MultiCoilMRI
    from ambient_imaging.problems import Normalisation
    from ambient_imaging.sampling import DAPS, DPS, SupportDenoiser, run_method

    toy, op, x, _, _ = toy_problem("mri", noise_sigma=0.05)
    maps = op.sens_maps.clone()
    maps[..., :, 6:] = 0  # no coil sees the last two columns
    support = (maps.abs() ** 2).sum(1, keepdim=True) > 0
    op0 = MultiCoilMRI(maps, op.mask[:, 0, :], noise_sigma=0.05, acs=op.acs)
    y = op0.measure(x, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    free = DPS(steps=30, zeta=0.5)(toy.denoiser(), y, op0, samples=16, generator=g)
    assert float(free.mean[..., 6:].abs().mean()) > 0.05  # the prior alone paints the null space
    held = DPS(steps=30, zeta=0.5)(SupportDenoiser(toy.denoiser(), support), y, op0, samples=16, generator=g)
    assert float(held.samples[..., 6:].abs().max()) < 1e-4  # (the DPS gradient leaks ~1e-6 through D)

    def fit(rec):
        return float(torch.linalg.vector_norm(op0.restrict(op0.forward(rec.mean) - y)))

    assert fit(held) < 1.5 * fit(free) + 1e-3
    prior = SimpleNamespace(denoiser=toy.denoiser(), family="mri", is_complex=True, image_shape=(1, 4, 8),
                            mask_channels=0, normalisation=Normalisation("identity"), sigma_min=0.002,
                            sigma_max=80.0, noise_sigma=0.0, delta=0.0, config={"loss": "oracle"})
    rec = run_method(y, op0, prior, DAPS(steps=20, langevin_steps=5), samples=4, generator=g, support=support)
    assert torch.all(rec.samples[..., 6:] == 0) and torch.isfinite(rec.samples).all()


def test_daps_through_fresh_masks_keeps_the_data_and_the_full_posterior_mean():
    """DAPS with one fresh training-type mask per call (plus A's rows) against the FULL posterior: the mean is
    right (null space included); fresh masks alone overrule the data (docs/sampling.md derives why)."""
    from ambient_imaging.sampling import DAPS

    toy, op, x, y, make_op = toy_problem("pixel", noise_sigma=0.1)
    mean, cov = toy.posterior(y, op)
    g = torch.Generator().manual_seed(0)
    rec = DAPS(ambient=True, ensemble=1, steps=60)(toy.ambient_denoiser(make_op), y, op, samples=100,
                                                   mask_channels=1, generator=g)
    err = moment_errors(rec.samples[0], mean, cov)
    assert err["mean_rel"] < 0.05 and err["mean_z"] < 5, err
    bad = DAPS(ambient=True, ensemble=1, with_own=False, steps=60)(toy.ambient_denoiser(make_op), y, op, samples=100,
                                                                   mask_channels=1, generator=g)
    assert moment_errors(bad.samples[0], mean, cov)["mean_rel"] > 0.3
