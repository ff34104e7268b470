"""Interferometry as astronomers' tools see it: closure quantities, station gains, flux units.

* :mod:`.closures` — closure phases / log closure amplitudes in torch (ehtim's σ's, debiasing,
  averaging), differentiable through the NUFFT.
* :mod:`.gains` — station-based complex gains: simulation and self-calibration.
* :mod:`.flux` — total flux from the shortest baselines and the Jy/pixel prior normalisation.

Likelihood objects live in :mod:`ambient_imaging.sampling.likelihoods`, the RML imager in
:mod:`ambient_imaging.sampling.rml`. Conventions: ``docs/interferometry.md``.
"""

from .closures import (
    CP_UV_MIN,
    ClosureData,
    ClosureIndex,
    closure_data,
    closure_index,
    closure_phases,
    component_sigma,
    debias_amplitudes,
    integration_groups,
    log_closure_amplitudes,
)
from .flux import (
    FLUX_RULE,
    check_pixel_scale,
    estimate_total_flux,
    flux_rule,
    flux_scale,
    gaussian_image,
    parse_flux_rule,
)
from .gains import StationGains, gain_products, random_station_gains, solve_gains, station_slots

__all__ = [
    "CP_UV_MIN",
    "ClosureIndex",
    "ClosureData",
    "closure_index",
    "closure_data",
    "closure_phases",
    "log_closure_amplitudes",
    "debias_amplitudes",
    "integration_groups",
    "component_sigma",
    "estimate_total_flux",
    "FLUX_RULE",
    "flux_rule",
    "parse_flux_rule",
    "flux_scale",
    "check_pixel_scale",
    "gaussian_image",
    "StationGains",
    "station_slots",
    "random_station_gains",
    "gain_products",
    "solve_gains",
]
