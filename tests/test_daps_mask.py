"""DAPS ``mask``: how a mask-conditioned prior is evaluated (through A's mask, or all-ones channels)."""

from __future__ import annotations

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
    for setting, want_ones in (("auto", False), ("ones", True)):
        net = Net()
        den = DAPS(ambient=True, mask=setting).denoiser(net, op, 1, None, 1)
        den(x, 1.0)
        got = net.masks[-1]
        assert got is not None and bool((got == 1).all()) == want_ones, setting
    assert DAPS(mask="ones").fit(None).mask == "ones"
    with pytest.raises(ValueError, match="mask must be 'auto' or 'ones'"):
        DAPS(mask="all")
