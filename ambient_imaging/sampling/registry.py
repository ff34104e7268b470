"""The one registry of reconstruction methods: ``--sampler`` name → method class.

Every method class declares itself (:class:`~ambient_imaging.sampling.method.Method`: ``name``,
``needs_prior``, ``kinds``, ``is_fit``, ``options``); this module only lists them. It is the only
place where a method's name is looked up; everything else asks the method object.
"""

from __future__ import annotations

from typing import Any

from .ambient_mmps import AmbientMMPS
from .baselines import RMLTV, SENSE, TV, L1Wavelet, ZeroFilled
from .daps import DAPS
from .dps import ADPS, DPS
from .isotropic import IsotropicMMPS
from .likelihood_daps import LikelihoodDAPS
from .likelihood_dps import LikelihoodDPS
from .method import Method
from .mmps import MMPS
from .onestep import OneStep
from .rml import RML

__all__ = ["METHODS", "get_method", "method_names", "methods_taking", "make_method"]

#: every method, by name, in the order the CLI lists them (posterior samplers first)
METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (AmbientMMPS, ADPS, DAPS, DPS, LikelihoodDPS, LikelihoodDAPS, MMPS, IsotropicMMPS,
                               OneStep, ZeroFilled, SENSE, L1Wavelet, TV, RML, RMLTV)
}


def method_names(*, needs_prior: bool | None = None, kind: str | None = None) -> tuple[str, ...]:
    """The registered names, optionally only posterior samplers (``needs_prior=True``), only classical
    methods (``False``) or only those serving inputs of ``kind``."""
    return tuple(n for n, c in METHODS.items()
                 if (needs_prior is None or c.needs_prior == needs_prior) and (kind is None or c.serves(kind)))


def methods_taking(option: str) -> tuple[str, ...]:
    """The names of the methods that take ``option`` (e.g. ``"zeta"``)."""
    return tuple(n for n, c in METHODS.items() if c.takes(option))


def get_method(name: str) -> type[Method]:
    """The method class called ``name`` (a clear error naming the choices otherwise)."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


def make_method(name: str, prior: Any | None = None, **options: Any) -> Method:
    """``get_method(name).for_prior(prior, **options)``: the method set up for ``prior`` with the user's
    options (``steps``, ``lamda``, ``zeta``, ``data_terms``, ``selfcal``), validated once."""
    return get_method(name).for_prior(prior, **options)
