"""DAPS ``mask``: how a mask-conditioned prior is evaluated (through A's mask, or all-ones channels)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ambient_imaging.operators import MultiCoilMRI, birdcage_maps
from ambient_imaging.sampling import DAPS


class Net:
    """Records the mask channels it is given; returns x (a stand-in denoiser)."""

    def __init__(self):
        self.masks = []

    def __call__(self, x, sigma, mask=None):
        self.masks.append(mask)
        return x


def test_mask_ones_feeds_all_ones_channels_and_auto_feeds_a_mask() -> None:
    maps = birdcage_maps(4, (16, 16), dtype=torch.complex64)[None]
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[..., ::3] = True
    op = MultiCoilMRI(maps, mask)
    x = torch.randn(1, 1, 16, 16, dtype=torch.complex64)
    for setting, want_ones in (("auto", False), ("operator", False), ("ones", True)):
        net = Net()
        den = DAPS(ambient=True, mask=setting).denoiser(net, op, 1, None, 1)
        den(x, 1.0)
        got = net.masks[-1]
        assert got is not None and bool((got == 1).all()) == want_ones, setting
    assert DAPS(mask="ones").fit(None).mask == "ones"
    with pytest.raises(ValueError, match="mask must be 'auto', 'operator' or 'ones'"):
        DAPS(mask="all")


def _prior(data_mix):
    return SimpleNamespace(config={"loss": "ambient"}, mask_channels=1, delta=0.1, sigma_min=0.002, sigma_max=80.0,
                           noise_sigma=0.0, info={"data_mix": data_mix} if data_mix is not None else {})


@pytest.mark.parametrize(("data_mix", "want"), [
    ({"clean_slices": 16, "corrupted_slices": 89}, "ones"),  # a mixed set: it learned complete slices too
    ({"clean_slices": 0, "corrupted_slices": 105}, "operator"),  # purely ambient
    (None, "operator"),  # a prior from before mixed sets
])
def test_fit_resolves_auto_by_what_the_prior_learned(data_mix, want) -> None:
    assert DAPS().fit(_prior(data_mix)).mask == want
    assert DAPS(mask="operator").fit(_prior(data_mix)).mask == "operator"  # an explicit choice stays
