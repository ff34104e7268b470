"""DPS with closure likelihoods on a toy Gaussian prior (analytic denoiser)."""

from __future__ import annotations

import torch
from _closure_toy import N, closure_toy

from ambient_imaging.sampling.likelihood_dps import LikelihoodDPS


def test_closure_dps_runs_and_moves_towards_the_data():
    y, op, net = closure_toy(0.02)
    g = torch.Generator().manual_seed(0)
    # (the step is per reduced χ²: since the intra-site triangles left the closure phases (cp_uv_min), 0.001
    # overshoots on this toy; 0.0001 is stable)
    rec = LikelihoodDPS("cphase,logcamp", steps=30, zeta=0.0001)(net, y, op, samples=2, generator=g)
    assert rec.samples.shape == (1, 2, 1, N, N) and torch.isfinite(rec.samples).all()
    assert set(rec.info["chi2_samples"][0]) == {"chi2_cphase", "chi2_logcamp"}
    prior_only = LikelihoodDPS("cphase,logcamp", steps=30, zeta=0.0)(net, y, op, samples=2,
                                                                     generator=torch.Generator().manual_seed(0))
    # the likelihood gradient pulls the closure phases towards the data (a toy prior: loose check)
    assert rec.info["chi2_cphase"][0] < 0.5 * prior_only.info["chi2_cphase"][0]
    assert rec.info["chi2_logcamp"][0] < prior_only.info["chi2_logcamp"][0]
