"""A closure-imaging toy for the likelihood samplers: a crescent observed with EHT-like coverage, and an
exact Gaussian prior (analytic denoiser) centred on a blob."""

from __future__ import annotations

import torch

from ambient_imaging.datasets.simulate_vlbi import UAS, crescent, simulate_eht

N = 16
FOV = 160 * UAS


class GaussianPrior:
    """Exact denoiser of x ~ N(mu, s²): D(x, σ) = (s² x + σ² mu) / (s² + σ²)."""

    def __init__(self, mu: torch.Tensor, s: float):
        self.mu, self.s = mu, s

    def __call__(self, x, sigma, mask=None):
        s2 = self.s**2
        sg = torch.as_tensor(sigma).reshape(-1, 1, 1, 1).to(x.dtype) ** 2
        return (s2 * x + sg * self.mu.to(x.dtype)) / (s2 + sg)


def closure_toy(s: float):
    """``(y, op, prior)``: a 16×16 crescent through 20 EHT integrations, and a Gaussian prior of std ``s``
    centred on a broad blob (not the truth)."""
    truth = crescent((N, N), FOV / N)
    sim = simulate_eht((N, N), FOV, image=truth, n_times=20, seed=2)
    y, op = sim.vis.to_operator((N, N), fov=FOV)
    blob = crescent((N, N), FOV / N, diameter_rad=30 * UAS, width_frac=0.8, asymmetry=0.0, flux=1.0)
    return y, op, GaussianPrior(blob[None, None], s)
