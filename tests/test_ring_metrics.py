"""REx-style ring metrics on analytic crescents, discs and blobs (metrics/ring.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ambient_imaging.datasets.simulate_vlbi import UAS, crescent, ring_diameter
from ambient_imaging.metrics.ring import ring_metrics, ring_report, ring_spread

PX = 2.5 * UAS  # 64 pixels over 160 µas


@pytest.mark.parametrize("d,width,asym,pa", [(40, 0.25, 0.5, 180), (44, 0.2, 0.0, 0), (38, 0.3, 0.8, 90),
                                             (46, 0.25, 0.6, 300)])
def test_crescent_metrics(d, width, asym, pa):
    img = torch.roll(crescent((64, 64), PX, d * UAS, width, 0.6, asym, pa), (3, -2), (0, 1))  # 7.5 µas N, 5 µas W
    m = ring_metrics(img, PX)
    assert abs(m.ring_diameter_uas - d) < 1.5
    assert m.ring_depth < 0.05 and m.ring_radial_scatter < 0.05
    assert abs(m.ring_width_uas - width * d) < 0.35 * width * d
    east, north = m.ring_center_uas
    assert abs(east + 5.0) < 1.0 and abs(north - 7.5) < 1.0
    if asym > 0:
        assert abs((m.ring_position_angle_deg - pa + 180) % 360 - 180) < 5
        assert m.ring_asymmetry > 0.1
    else:
        assert m.ring_asymmetry < 0.02


@pytest.mark.parametrize("d,fwhm,cy,cx", [(35.3, 5.0, 32.3, 31.6), (41.9, 10.0, 31.45, 32.8), (44.7, 12.0, 32.9, 32.1)])
def test_diameter_exact_at_subpixel_radii(d, fwhm, cy, cx):
    """REx's cubic profiles and parabolic peaks: 0.1 µas on a 2.5-µas grid (the bilinear argmax missed by 0.3)."""
    yy, xx = np.mgrid[0:64, 0:64]
    r = np.hypot(yy - cy, xx - cx) * 2.5
    img = np.exp(-0.5 * ((r - d / 2) / (fwhm / 2.3548)) ** 2)
    assert abs(ring_metrics(img, PX).ring_diameter_uas - d) < 0.1
    crisp = torch.roll(crescent((64, 64), PX, d * UAS, 0.25, 0.6, 0.5, 180), (1, -2), (0, 1))
    assert abs(ring_metrics(crisp, PX).ring_diameter_uas - d) < 0.1


def test_depth_of_blurred_ring_disc_and_blob():
    from scipy.ndimage import gaussian_filter

    ring = crescent((64, 64), PX, 40 * UAS, 0.25, 0.6, 0.5, 180).numpy()
    blurred = ring_metrics(gaussian_filter(ring, 20 / 2.355 / 2.5), PX)  # 20 µas blur keeps a shallower hole
    assert 0.2 < blurred.ring_depth < 0.8 and abs(blurred.ring_diameter_uas - 40) < 6
    yy, xx = np.mgrid[0:64, 0:64] - 32
    blob = ring_metrics(np.exp(-(yy**2 + xx**2) / (2 * 6.0**2)), PX)
    assert blob.ring_depth > 0.9  # no hole: not a ring
    disc = ring_metrics((yy**2 + xx**2 <= 8**2).astype(float), PX)
    assert disc.ring_depth > 0.9


def test_spread_report_and_wrappers():
    imgs = np.stack([crescent((64, 64), PX, d * UAS, 0.25, 0.6, 0.5, 180).numpy() for d in (38, 40, 42)])
    s = ring_spread(imgs, PX)
    assert abs(s["ring_diameter_uas"] - 40) < 1.0 and 1.0 < s["ring_diameter_uas_std"] < 2.5
    assert s["ring_position_angle_deg_std"] < 5 and s["ring_samples"] == 3
    rep = ring_report(torch.from_numpy(imgs)[:, None], PX)
    assert {"ring_diameter_uas", "ring_depth", "ring_radial_scatter", "ring_position_angle_deg",
            "ring_diameter_uas_std"} <= set(rep)
    assert "ring_diameter_uas_std" not in ring_report(imgs[:1], PX)
    assert abs(ring_diameter(imgs[1], PX) / UAS - 40) < 1.0
    assert np.isnan(ring_metrics(np.zeros((32, 32)), PX).ring_diameter_uas)
    with pytest.raises(ValueError, match="one image"):
        ring_metrics(np.zeros((2, 3, 8, 8)), PX)
