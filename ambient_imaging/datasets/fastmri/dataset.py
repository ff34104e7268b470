"""The streaming training Dataset: one item per k-space slice of a set of fastMRI files."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from ambient_imaging.problems import MaskSpec, Normalisation, Problem

from ..io import scan_files
from .band import BAND_SOURCES, AcquiredBand, acquired_band, parse_padding
from .layout import check_layout, open_fastmri
from .problems import FastMRIFile, FastMRIOptions
from .reader import fastmri_info

__all__ = ["FastMRISlices", "MAX_OPEN"]

MAX_OPEN = 8  # open HDF5 handles kept per worker process


class FastMRISlices(Dataset):
    """One item per k-space slice of a set of fastMRI-layout files, streamed from disk.

    Args:
        paths: a file, a folder (``*.h5`` recursively; ``*.maps.h5`` sidecars ignored), a glob, or a list.
        sens_maps: ``"espirit"`` (estimate from the ACS on first use, cache in a sidecar),
            ``"cache-only"`` (use ``data prepare`` caches; missing is an error) or ``None``
            (single-coil files only).
        cache_dir: where the maps cache lives when not next to the data.
        acs_lines: ESPIRiT calibration width (default: the file's contiguous ACS, capped at 24).
        transform: optional callable applied to each item dict.
        strict: a broken file raises instead of being skipped with a warning.
        reference: ``False``/``None`` (default: training never sees clean data); ``True``: add
            ``item["reference"]``, the coil-combined complex image ``Σ_c conj(S_c)·F^{-1}k_c``
            (``(1, H, W)`` complex, divided by the scale; needs a fully sampled slice, e.g. with
            ``acceleration``); ``"rss"``: ``(1, h, w)`` real from ``reconstruction_rss`` or, for a
            fully sampled slice, the RSS of its coil images.
        mask_spec: retrospective undersampling of *fully sampled* slices
            (:class:`~ambient_imaging.problems.MaskSpec`; slices that are already undersampled keep
            their own mask). One mask per slice, ``mask_spec.sample(shape, key="<file name>:<slice>")``:
            the same every epoch, in every worker, and the same rule ``reconstruct`` uses. ESPIRiT
            then calibrates on the mask's centre lines (what the undersampled acquisition has).
        acceleration, center_fraction, mask_kind, mask_seed: shorthand for
            ``mask_spec=MaskSpec(mask_kind, acceleration, center_fraction=..., seed=mask_seed)``.
        noise_sigma: k-space noise std in file units (divided by the scale like ``y``), or
            ``"estimate"``: a robust (MAD) estimate from the outermost 1/16 of readout rows of
            the sampled columns — an over-estimate when those rows still hold signal — or
            ``"auto"`` (default): the file's ``attrs["noise_sigma"]`` when it has one (the embedded
            sets do), else the estimate. ``0`` treats the data as noiseless.
        percentile: percentile for :func:`~ambient_imaging.datasets.normalize.measurement_scale`.
        padding: zero-padding of the phase-encode axis, per file (:func:`acquired_band`):
            ``"auto"`` (header ``encodingLimits``, else detected edge bands of zero columns),
            ``"none"`` or ``(left, right)``. Padding columns are outside the sampling: never in the
            operator's mask (so never rows that ambient subsampling drops or the loss scores), not
            counted as missed lines ("fully sampled" = every column of the band), and excluded from
            the acceleration; retrospective masks are drawn over the full width and zeroed outside
            the band, as fastMRI does. :meth:`padding_notes` lists the files whose padding was detected.
        coils: SVD coil compression to that many virtual coils (maps estimated on them, not cached).
        map_sets: ESPIRiT sets of maps (see :class:`FastMRIOptions`).

    Every option is held in :attr:`options` (a :class:`FastMRIOptions`) and every item is built by
    :meth:`FastMRIFile.problem`, exactly as ``reconstruct`` builds its problems from the same file.

    Items: ``{"y": (Nc, H, W) complex64 k-space / scale, "operator": MultiCoilMRI (batch 1, ACS = the
    contiguous fully sampled centre block of columns), "scale": float, "meta": {...}}``.

    Construction reads only shapes; files are opened lazily in ``__getitem__`` by each worker
    process (a small per-pid handle cache, never shared across ``fork``); the index is two
    compact integer arrays, so memory does not grow with the number of files beyond their paths.
    """

    @property
    def normalisation(self) -> Normalisation:
        """How ``y`` is normalised (stored with a trained prior)."""
        return Normalisation("measurement", percentile=self.percentile)

    @property
    def scale_rule(self) -> str:
        """:meth:`Normalisation.describe` of :attr:`normalisation`."""
        return self.normalisation.describe()

    def __init__(
        self,
        paths: str | Path | Sequence[str | Path],
        sens_maps: str | None = "espirit",
        cache_dir: str | Path | None = None,
        acs_lines: int | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        strict: bool = False,
        reference: str | None = None,
        noise_sigma: float | str = "auto",
        percentile: float = 99.0,
        acceleration: float | None = None,
        center_fraction: float | None = None,
        mask_kind: str = "random",
        mask_seed: int = 0,
        mask_spec: MaskSpec | None = None,
        padding: str | Sequence[int] | None = "auto",
        coils: int | None = None,
        map_sets: int = 1,
    ):
        self.padding = parse_padding(padding)
        if sens_maps not in ("espirit", "cache-only", None):
            raise ValueError(f"FastMRISlices: sens_maps must be 'espirit', 'cache-only' or None, got {sens_maps!r}")
        if reference not in (None, False, True, "rss"):
            raise ValueError(f"FastMRISlices: reference must be True, False or 'rss', got {reference!r}")
        if acceleration is not None and not float(acceleration) >= 1.0:
            raise ValueError(f"FastMRISlices: acceleration must be >= 1, got {acceleration}")
        if mask_spec is None and acceleration is not None:
            mask_spec = MaskSpec(mask_kind, float(acceleration), center_fraction=center_fraction, seed=int(mask_seed))
        self.mask_spec = mask_spec
        self.sens_maps, self.cache_dir, self.acs_lines = sens_maps, cache_dir, acs_lines
        self.transform, self.reference = transform, (None if reference is False else reference)
        self.noise_sigma, self.percentile = noise_sigma, percentile
        self.options = FastMRIOptions(mask_spec=mask_spec, padding=self.padding, coils=coils, noise_sigma=noise_sigma,
                                      maps=sens_maps or "espirit", map_sets=map_sets, acs_lines=acs_lines,
                                      cache_dir=cache_dir, reference=self.reference is not None,
                                      normalisation=self.normalisation)

        def n_slices(p: Path) -> int:
            with open_fastmri(p) as f:
                s, nc, h, w, single = check_layout(f, p)
            if nc > 1 and sens_maps is None:
                raise ValueError(f"{p}: multi-coil k-space needs sens_maps='espirit' or 'cache-only'")
            return s

        found, self.skipped = scan_files(paths, n_slices, strict=strict)
        files, counts = [str(p) for p, _ in found], [c for _, c in found]
        if not files:
            raise ValueError(f"FastMRISlices: no readable fastMRI files in {paths!r}")
        self.files = files
        self._file_idx = np.repeat(np.arange(len(files), dtype=np.int32), counts)
        self._slice_idx = np.concatenate([np.arange(c, dtype=np.int32) for c in counts])
        self._open: dict[int, dict[int, FastMRIFile]] = {}  # pid -> {file index: open file}
        # per-file acquired band, compact (lo, hi, W, source code; lo = -1: not read yet), notes only when set
        self._band_arr = np.full((len(files), 4), -1, dtype=np.int32)
        self._band_notes: dict[int, str] = {}

    def __len__(self) -> int:
        return int(self._file_idx.shape[0])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"] = {}
        return state

    def fastmri_file(self, file_index: int) -> FastMRIFile:
        """This process's open :class:`FastMRIFile` of ``self.files[file_index]`` (at most ``MAX_OPEN`` open;
        only the most recently used one keeps its coil maps in memory)."""
        fi = int(file_index)
        pid = os.getpid()
        cache = self._open.setdefault(pid, {})
        for other in [p for p in self._open if p != pid]:
            self._open.pop(other)  # inherited over fork: drop (never use or close another process's handle)
        if fi not in cache:
            if len(cache) >= MAX_OPEN:
                cache.pop(next(iter(cache))).close()
            h5 = open_fastmri(Path(self.files[fi]))
            cache[fi] = FastMRIFile(self.files[fi], self.options, f=h5, band=self._known_band(fi, h5), own=True)
        for other, fh in cache.items():
            if other != fi:
                fh.release_maps()
        return cache[fi]

    def _known_band(self, fi: int, h5: h5py.File) -> AcquiredBand:
        lo, hi, w, src = (int(v) for v in self._band_arr[fi])
        if lo < 0:
            b = acquired_band(self.files[fi], self.padding, f=h5)
            self._band_arr[fi] = (b.lo, b.hi, b.width, BAND_SOURCES.index(b.source))
            if b.note:
                self._band_notes[fi] = b.note
            return b
        return AcquiredBand(lo, hi, w, BAND_SOURCES[src], self._band_notes.get(fi, ""))

    def band(self, file_index: int) -> AcquiredBand:
        """The acquired band of ``self.files[file_index]`` (computed once: the header, or one slice read)."""
        return self.fastmri_file(file_index).band

    def fully_sampled_items(self) -> np.ndarray:
        """``(N,)`` bool: item ``i`` comes from a fully sampled file (every column of its band; each file judged
        by its middle slice, as :func:`fastmri_info` does; reads one slice per file)."""
        per_file = np.array([bool(fastmri_info(f, self.padding)["fully_sampled"]) for f in self.files])
        return per_file[self._file_idx]

    def padding_notes(self) -> list[str]:
        """One line per file whose padding was detected or whose header limits were ignored (reads every file)."""
        return [b.note for b in (self.band(i) for i in range(len(self.files))) if b.note]

    def close(self) -> None:
        """Close this process's open files."""
        for fh in self._open.pop(os.getpid(), {}).values():
            fh.close()

    def open_handles(self) -> int:
        """Number of HDF5 files this process holds open (bounded by a small constant)."""
        return len(self._open.get(os.getpid(), {}))

    def problem(self, index: int, reference: bool = False) -> Problem:
        """The :class:`~ambient_imaging.problems.Problem` of item ``index`` (file units), built by
        :meth:`FastMRIFile.problem` — the builder ``reconstruct`` uses."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"FastMRISlices: index {index} out of range ({len(self)} slices)")
        index = index % len(self)
        fi, s = int(self._file_idx[index]), int(self._slice_idx[index])
        return self.fastmri_file(fi).problem(s, reference=reference)

    def __getitem__(self, index: int) -> dict[str, Any]:
        prob = self.problem(index, reference=self.reference is not None)
        item = prob.training_item()
        scale = item["scale"]
        if self.reference is True:
            if prob.reference is None:
                raise ValueError(f"{prob.meta['file']}: slice {prob.meta['slice']} is undersampled; "
                                 "reference=True needs fully sampled k-space")
            item["reference"] = prob.reference[0].to(torch.complex64) / scale
        elif self.reference == "rss":
            f = self.fastmri_file(int(self._file_idx[index % len(self)])).h5
            if "reconstruction_rss" in f:
                ref = torch.from_numpy(np.asarray(f["reconstruction_rss"][prob.meta["slice"]], dtype=np.float32))[None]
            elif "rss" in prob.extras:
                ref = prob.extras["rss"][0].float()
            else:
                raise ValueError(f"{prob.meta['file']}: reference='rss' needs 'reconstruction_rss' or a fully "
                                 "sampled file")
            item["reference"] = ref / scale
        return self.transform(item) if self.transform is not None else item
