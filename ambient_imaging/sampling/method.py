"""What every reconstruction method declares about itself, and the one place its options are checked.

A method (posterior sampler or classical baseline) is a small class deriving from :class:`Method`.
It says what it is called (``name``), whether it needs a trained prior (``needs_prior``), which
inputs it serves (``kinds``: ``"mri"`` k-space, masked ``"image"``, interferometric
``"visibilities"``), whether its result is a fit to be judged by the honest-fit checks (``is_fit``;
the zero-filled / dirty image is not), which user options it takes (``options``: ``steps``,
``lamda``, ``zeta``, ``data_terms``, ``selfcal``) and whether it runs on measurements normalised to
O(1) images (``normalised``, so that a relative λ means the same for every file).
:meth:`Method.for_prior` builds one for a prior with validated options; the registry
(:mod:`ambient_imaging.sampling.registry`) maps names to classes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

__all__ = ["Method", "KINDS", "KIND_WORDS", "check_number", "check_options", "OPTION_FLAGS"]

#: the input kinds a method can serve
KINDS = frozenset({"mri", "image", "visibilities"})
#: how the kinds read in an error message
KIND_WORDS = {"mri": "MRI k-space", "image": "masked images", "visibilities": "interferometric visibilities"}
#: the command-line flag of each option
OPTION_FLAGS = {"steps": "--steps", "lamda": "--lamda", "zeta": "--zeta", "samples": "--samples",
                "data_terms": "--data-terms", "selfcal": "--selfcal", "flux": "--flux",
                "logcamp_noise": "--logcamp-noise"}


def check_number(name: str, value: float | None, *, minimum: float = 0.0, strict: bool = False,
                 maximum: float = math.inf) -> float | None:
    """``value`` as a float, or a clear ``ValueError`` (NaN, infinite, out of range); ``None`` passes."""
    if value is None:
        return None
    v = float(value)
    ok = math.isfinite(v) and (v > minimum if strict else v >= minimum) and v <= maximum
    if not ok:
        rng = f"{'>' if strict else '>='} {minimum:g}" + (f" and <= {maximum:g}" if math.isfinite(maximum) else "")
        raise ValueError(f"{name} must be a finite number {rng}, got {value}")
    return v


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def check_options(**options: Any) -> dict[str, Any]:
    """The user's numbers, validated once (``steps``, ``samples``: integers ≥ 1; ``lamda`` ≥ 0;
    ``zeta`` > 0); ``None`` means "the method's default" and is dropped. Other options pass."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        flag = OPTION_FLAGS.get(key, key)
        if key in ("steps", "samples"):
            value = _count(flag, value)
        elif key == "lamda":
            value = check_number(flag, value)
        elif key == "zeta":
            value = check_number(flag, value, strict=True)
        out[key] = value
    return out


class Method:
    """Base of every reconstruction method: its declarations and :meth:`for_prior`."""

    #: the ``--sampler`` name (the registry's key)
    name: ClassVar[str] = ""
    #: True for posterior samplers (they need ``--prior``)
    needs_prior: ClassVar[bool] = False
    #: the input kinds it serves
    kinds: ClassVar[frozenset[str]] = KINDS
    #: True when its result is a fit of the data (judged by the honest-fit checks)
    is_fit: ClassVar[bool] = True
    #: the user options it takes (constructor fields of the same names, except where
    #: :meth:`for_prior` says otherwise)
    options: ClassVar[frozenset[str]] = frozenset()
    #: True when it runs on measurements normalised to O(1) images (a relative λ)
    normalised: ClassVar[bool] = False
    #: options that are an error (not silently ignored) when given to a method that does not take them
    _REFUSED: ClassVar[tuple[str, ...]] = ("zeta", "data_terms", "selfcal", "flux", "logcamp_noise")

    @classmethod
    def takes(cls, option: str) -> bool:
        """Whether the method takes ``option`` (``"steps"``, ``"lamda"``, ``"zeta"``, ...)."""
        return option in cls.options

    @property
    def tunes_lambda(self) -> bool:
        """Whether ``--lamda`` sets this method's regularisation."""
        return self.takes("lamda")

    @classmethod
    def serves(cls, kind: str) -> bool:
        """Whether the method reconstructs inputs of ``kind`` (``"mri"``, ``"image"``, ``"visibilities"``)."""
        return kind in cls.kinds

    @classmethod
    def accepted(cls, prior: Any | None = None, **options: Any) -> dict[str, Any]:
        """The validated options this method takes (numbers checked once, here); a clear error for a
        prior-less posterior sampler and for options that only other methods take (``--zeta``,
        ``--data-terms``, ``--selfcal``); other options (``--steps`` for zero-filled, ...) are ignored."""
        from .registry import method_names, methods_taking

        opts = check_options(**options)
        if opts.get("selfcal") is False:
            opts.pop("selfcal")
        if cls.needs_prior and prior is None:
            raise ValueError(f"--sampler {cls.name} needs --prior RUN_DIR (a trained prior); classical methods "
                             f"({', '.join(method_names(needs_prior=False))}) do not")
        for key in cls._REFUSED:
            if key in opts and not cls.takes(key):
                users = "/".join(methods_taking(key))
                raise ValueError(f"{OPTION_FLAGS[key]} applies to --sampler {users}, not to {cls.name}")
        return {k: v for k, v in opts.items() if cls.takes(k)}

    @classmethod
    def for_prior(cls, prior: Any | None = None, **options: Any) -> Method:
        """The method set up for ``prior`` (``None`` for classical methods) with the user's options
        (``steps``, ``lamda``, ``zeta``, ...; ``None``: the default), validated here, once."""
        return cls(**cls.accepted(prior, **options))
