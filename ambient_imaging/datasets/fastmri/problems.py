"""One fastMRI file → :class:`~ambient_imaging.problems.Problem` s: the one reader that training,
``reconstruct``, benchmarks and notebooks use.

:class:`FastMRIOptions` holds every decision about a file (mask protocol for fully sampled slices,
zero-padding band, coil compression, noise level, sensitivity maps and their number of sets);
:class:`FastMRIFile` applies them to one file, slice by slice, through
:func:`~ambient_imaging.problems.mri_problem`. Because the training dataset
(:class:`~ambient_imaging.datasets.FastMRISlices`) and the reconstruction app both go through
:meth:`FastMRIFile.problem`, σ_n, band, crop, coil compression, maps and masks cannot differ
between training and reconstruction of the same file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ambient_imaging.problems import MaskSpec, Normalisation, Problem, mri_problem

from .band import AcquiredBand, acquired_band, parse_padding
from .header import parse_ismrmrd_header
from .layout import check_layout, open_fastmri, read_fastmri_slice
from .maps import load_or_compute_maps
from .reference import scoring_crop

__all__ = ["FastMRIOptions", "FastMRIFile", "fastmri_problems", "file_noise_sigma", "MAP_SOURCES"]

#: where sensitivity maps come from: ``"espirit"`` (the sidecar cache, computed on first use),
#: ``"cache-only"`` (a missing cache is an error), ``"measured"`` (ESPIRiT on each slice's measured
#: ACS, not cached; what coil compression needs)
MAP_SOURCES = ("espirit", "cache-only", "measured")


@dataclass(frozen=True)
class FastMRIOptions:
    """How a fastMRI file becomes problems (the same options in training and reconstruction).

    Args:
        mask_spec: retrospective undersampling of fully sampled slices (``None``: keep them fully
            sampled); an undersampled slice keeps its own mask.
        padding: zero-padding of the phase-encode axis (:func:`acquired_band`): ``"auto"``,
            ``"none"`` or ``(left, right)`` / ``"LEFT,RIGHT"``.
        coils: SVD coil compression to that many virtual coils (``None``: all coils). One matrix
            per file, from its middle slice; maps are then estimated on the virtual coils.
        noise_sigma: k-space noise std in file units, ``"auto"`` (the file's ``attrs["noise_sigma"]``
            when it has one, else the robust estimate) or ``"estimate"`` (always the estimate).
        maps: one of :data:`MAP_SOURCES`.
        map_sets: ESPIRiT sets of maps (soft SENSE for reduced-FOV data): an int ``M >= 1``, or
            ``"auto"`` — two where the second eigenvalue map says the field of view is smaller than
            the object (the image wraps around), else one (maps then come from each slice's measured
            data, not the cache). ``meta["map_sets"]`` records the choice.
        acs_lines: ESPIRiT calibration width (default: the mask's centre lines, capped at 24).
        cache_dir: where the maps cache lives when not next to the data.
        crop: the scoring crop (:func:`scoring_crop`), recorded in ``meta["crop"]``.
        reference: attach the fully sampled reference to each problem (scoring only).
        normalisation: the data's normalisation (default ``Normalisation("measurement")``).
    """

    mask_spec: MaskSpec | None = None
    padding: str | tuple[int, int] = "auto"
    coils: int | None = None
    noise_sigma: float | str = "auto"
    maps: str = "espirit"
    map_sets: int | str = 1
    acs_lines: int | None = None
    cache_dir: str | Path | None = None
    crop: str | Sequence[int] | None = "auto"
    reference: bool = True
    normalisation: Normalisation | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", parse_padding(self.padding))
        if self.maps not in MAP_SOURCES:
            raise ValueError(f"FastMRIOptions: maps must be one of {', '.join(MAP_SOURCES)}, got {self.maps!r}")
        if not (self.noise_sigma in ("estimate", "auto") or isinstance(self.noise_sigma, (int, float))):
            raise ValueError(f"FastMRIOptions: noise_sigma must be a float, 'auto' or 'estimate', "
                             f"got {self.noise_sigma!r}")
        if isinstance(self.noise_sigma, (int, float)) and not float(self.noise_sigma) >= 0:
            raise ValueError(f"FastMRIOptions: noise_sigma must be >= 0, got {self.noise_sigma}")
        if self.coils is not None and int(self.coils) < 1:
            raise ValueError(f"FastMRIOptions: coils must be >= 1, got {self.coils}")
        if self.map_sets != "auto" and not (isinstance(self.map_sets, int) and self.map_sets >= 1):
            raise ValueError(f"FastMRIOptions: map_sets must be an integer >= 1 or 'auto', got {self.map_sets!r}")

    def replace(self, **changes: Any) -> FastMRIOptions:
        """A copy with ``changes``."""
        return replace(self, **changes)


def file_noise_sigma(f: h5py.File, rule: float | str = "auto") -> float | None:
    """The noise std a file declares under ``rule`` (``None``: estimate it from each slice).

    ``"auto"``: ``attrs["noise_sigma"]`` when finite and >= 0, else ``None``; ``"estimate"``: ``None``;
    a number: that number.
    """
    if rule == "estimate":
        return None
    if rule == "auto":
        v = f.attrs.get("noise_sigma")
        try:
            v = float(np.asarray(v).reshape(-1)[0]) if v is not None else None
        except (TypeError, ValueError, IndexError):
            v = None
        return v if v is not None and np.isfinite(v) and v >= 0 else None
    return float(rule)


class FastMRIFile:
    """One fastMRI-layout file and the options that turn its slices into problems.

    ``f``: an open handle of ``path`` to use (closed by :meth:`close` only when ``own``); otherwise
    the file is opened here. ``band``: the acquired band when already known. Construction reads the
    layout, the header and (unless given) the acquired band (one slice).
    """

    def __init__(self, path: str | Path, options: FastMRIOptions | None = None, f: h5py.File | None = None,
                 band: AcquiredBand | None = None, own: bool = False):
        self.path = Path(path)
        self.options = options or FastMRIOptions()
        if f is None and not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        self._own = f is None or own
        self.h5 = open_fastmri(self.path) if f is None else f
        self.slices, self.coils, h, w, self.single_coil = check_layout(self.h5, self.path)
        self.shape = (h, w)
        xml = self.h5["ismrmrd_header"][()] if "ismrmrd_header" in self.h5 else None
        try:
            self.header = parse_ismrmrd_header(xml)
        except ValueError as err:
            raise ValueError(f"{self.path}: {err}") from err
        self.band: AcquiredBand = band if band is not None else acquired_band(
            self.path, self.options.padding, f=self.h5, header=self.header)
        self.noise_sigma = file_noise_sigma(self.h5, self.options.noise_sigma)
        self.crop = scoring_crop(self.header, self.shape, self.options.crop)
        self._matrix: np.ndarray | None = None
        self.energy_kept: float | None = None
        self._maps: tuple[int | None, np.ndarray] | None = None

    def release_maps(self) -> None:
        """Forget the cached coil maps of the file (they are read again on the next use)."""
        self._maps = None

    def close(self) -> None:
        """Close the file if this object owns it."""
        if self._own:
            self.h5.close()

    def __enter__(self) -> FastMRIFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def compressing(self) -> bool:
        """Whether coil compression applies (``options.coils`` below the file's coil count)."""
        return self.options.coils is not None and int(self.options.coils) < self.coils

    def notes(self) -> list[str]:
        """One line per decision worth telling the user (detected padding, coil compression)."""
        out = [f"{self.path.name}: {self.band.note}"] if self.band.note else []
        if self.compressing:
            self.compression_matrix()
            out.append(f"{self.path.name}: {self.coils} coils compressed to {self.options.coils} "
                       f"({100 * float(self.energy_kept):.2f} % of the energy)")
        return out

    def compression_matrix(self) -> np.ndarray | None:
        """The ``(n, Nc)`` coil-compression matrix of the file (from its middle slice), or ``None``."""
        from ambient_imaging.operators import coil_compression_matrix

        if not self.compressing:
            return None
        if self._matrix is None:
            k = read_fastmri_slice(self.path, self.slices // 2, self.h5)["kspace"]
            self._matrix, self.energy_kept = coil_compression_matrix(k, int(self.options.coils))
        return self._matrix

    def calibration(self, fully_sampled: bool = True) -> int | None:
        """The ESPIRiT calibration width asked for (``None``: the slice's contiguous ACS, capped at 24):
        ``options.acs_lines``, else for a fully sampled slice undersampled by ``mask_spec`` its centre
        width (capped at 24: what the undersampled data will hold)."""
        o = self.options
        if o.acs_lines is not None:
            return int(o.acs_lines)
        if o.mask_spec is not None and fully_sampled:
            return min(24, o.mask_spec.center_width(self.shape[1]))
        return None

    def _cached_maps(self, index: int, calib: int | None) -> np.ndarray:
        if self._maps is None or self._maps[0] != calib:
            maps = load_or_compute_maps(self.path, self.options.cache_dir, calib,
                                        compute=self.options.maps == "espirit", f=self.h5,
                                        map_sets=int(self.options.map_sets))  # type: ignore[arg-type]
            self._maps = (calib, maps)
        return self._maps[1][index]

    def problem(self, index: int, reference: bool | None = None) -> Problem:
        """The :class:`Problem` of slice ``index`` (file units) by :func:`mri_problem`
        (``reference``: override ``options.reference``)."""
        from ambient_imaging.operators import compress_coils

        if not 0 <= int(index) < self.slices:
            raise IndexError(f"{self.path}: slice {index} out of range (file has {self.slices})")
        o, s = self.options, int(index)
        sl = read_fastmri_slice(self.path, s, self.h5)
        k = sl["kspace"]
        if self.compressing:
            k = compress_coils(k, int(o.coils), matrix=self.compression_matrix())
        fully = bool(np.all(sl["mask"][..., self.band.lo : self.band.hi]))
        calib = self.calibration(fully)
        maps = None
        if k.shape[0] > 1 and o.maps != "measured" and not self.compressing and o.map_sets != "auto":
            maps = self._cached_maps(s, calib)
        band = self.band.bounds if self.band.source != "none" else None
        return mri_problem(k, stored_mask=sl["mask"] if sl["mask_stored"] else None, mask_spec=o.mask_spec,
                           key=f"{self.path.name}:{s}", band=band, maps=maps, noise_sigma=self.noise_sigma,
                           reference=o.reference if reference is None else bool(reference),
                           normalisation=o.normalisation, where=f"{self.path}: slice {s}",
                           map_sets=o.map_sets, calibration=calib,
                           meta={"file": str(self.path), "slice": s, "crop": self.crop,
                                 "coils_file": self.coils})


def fastmri_problems(path: str | Path, slices: Sequence[int] | None = None,
                     options: FastMRIOptions | None = None, **changes: Any) -> Iterator[Problem]:
    """The problems of ``slices`` (default all) of one fastMRI file, built as training builds them.

    ``changes`` override fields of ``options`` (e.g. ``fastmri_problems(p, mask_spec=MaskSpec(...))``).
    The file stays open while the iterator runs.
    """
    opts = (options or FastMRIOptions()).replace(**changes) if changes else (options or FastMRIOptions())
    with FastMRIFile(path, opts) as fh:
        for s in (range(fh.slices) if slices is None else slices):
            yield fh.problem(int(s))
