"""fastMRI-layout HDF5: header, zero-padding band, scoring reference, reader, writer, ESPIRiT cache,
the one file → problems function, and the streaming training Dataset.

File layout (as distributed by fastMRI):

* ``kspace``: ``(slices, coils, H, W)`` complex64 (single-coil: ``(slices, H, W)``); phase
  encodes are the columns (``W``).
* ``mask`` (optional): ``(W,)`` sampled columns, ``(H, W)``, or per slice ``(slices, W)`` /
  ``(slices, H, W)``. Without it the mask is derived from which columns hold non-zero data.
* ``reconstruction_rss`` / ``reconstruction_esc`` (optional): ``(slices, h, w)`` references.
* ``ismrmrd_header``: ISMRMRD XML (encoded/recon matrix and FOV), and attributes
  (``acquisition``, ``max``, ``norm``, ``patient_id``, ``noise_sigma``, ...).

Modules, one idea each: :mod:`.layout` (open, validate, read a slice), :mod:`.header` (ISMRMRD),
:mod:`.band` (zero padding), :mod:`.reference` (scoring reference and crop), :mod:`.reader`
(whole-file reading and summary), :mod:`.writer` (writing, retrospective undersampling),
:mod:`.maps` (ESPIRiT sidecar cache), :mod:`.problems` (:func:`fastmri_problems`: the one reader
of files into :class:`~ambient_imaging.problems.Problem` s, used by training and reconstruction)
and :mod:`.dataset` (:class:`FastMRISlices`).

Sensitivity maps are estimated by ESPIRiT from the ACS on first use and cached in a sidecar
``<name>.maps.h5`` next to the data (or under ``cache_dir`` when the folder is read-only),
validated by the source file's size, mtime and k-space shape.
"""

from ambient_imaging.metrics.image import center_crop
from ambient_imaging.problems import acs_from_lines, derive_line_mask, estimate_noise_sigma

from .band import BAND_SOURCES, AcquiredBand, acquired_band, band_from_header, detect_padding, parse_padding
from .dataset import MAX_OPEN, FastMRISlices
from .header import minimal_ismrmrd_header, parse_ismrmrd_header, read_fastmri_header, recon_size
from .layout import check_layout, open_fastmri, read_fastmri_slice
from .maps import load_or_compute_maps, maps_cache_path, prepare_folder
from .problems import MAP_SOURCES, FastMRIFile, FastMRIOptions, fastmri_problems, file_noise_sigma
from .reader import fastmri_info, read_fastmri
from .reference import fastmri_reference, scoring_crop
from .writer import undersample_file, write_fastmri

_MAX_OPEN = MAX_OPEN  # the old private name (tests of the handle bound)

__all__ = [
    "FastMRISlices",
    "FastMRIFile",
    "FastMRIOptions",
    "fastmri_problems",
    "file_noise_sigma",
    "MAP_SOURCES",
    "AcquiredBand",
    "BAND_SOURCES",
    "acquired_band",
    "band_from_header",
    "detect_padding",
    "parse_padding",
    "recon_size",
    "center_crop",
    "scoring_crop",
    "fastmri_reference",
    "parse_ismrmrd_header",
    "read_fastmri_header",
    "read_fastmri",
    "estimate_noise_sigma",
    "minimal_ismrmrd_header",
    "fastmri_info",
    "read_fastmri_slice",
    "open_fastmri",
    "check_layout",
    "write_fastmri",
    "undersample_file",
    "prepare_folder",
    "load_or_compute_maps",
    "maps_cache_path",
    "derive_line_mask",
    "acs_from_lines",
    "MAX_OPEN",
]
