"""Measurement datasets: files in, ``(measurements, operator)`` out."""

from .batch import MeasurementBatch, collate_measurements

__all__ = ["MeasurementBatch", "collate_measurements"]

# fastMRI HDF5, normalisation, labelled outputs, embedded sets
from .embedded import EMBEDDED, EmbeddedDataset, build_embedded, get_embedded  # noqa: E402
from .fastmri import (  # noqa: E402
    FastMRISlices,
    fastmri_info,
    parse_ismrmrd_header,
    prepare_folder,
    read_fastmri_header,
    read_fastmri_slice,
    undersample_file,
    write_fastmri,
)
from .normalize import measurement_scale  # noqa: E402
from .outputs import (  # noqa: E402
    load_netcdf,
    load_reconstruction,
    reconstruction_dataset,
    save_fastmri_reconstruction,
    save_netcdf,
)

__all__ += [
    "FastMRISlices",
    "fastmri_info",
    "parse_ismrmrd_header",
    "prepare_folder",
    "read_fastmri_slice",
    "undersample_file",
    "write_fastmri",
    "measurement_scale",
    "reconstruction_dataset",
    "save_netcdf",
    "load_netcdf",
    "save_fastmri_reconstruction",
    "EMBEDDED",
    "EmbeddedDataset",
    "get_embedded",
    "build_embedded",
    "read_fastmri_header",
    "load_reconstruction",
]

# astronomy (FITS images, UVFITS visibilities) and synthetic-corruption image sets
from .embedded.faces import build_faces, load_faces  # noqa: E402
from .fits import FITSImages, SkyImage, read_fits_image, write_fits_image  # noqa: E402
from .images import CorruptedImages, load_image_folder  # noqa: E402
from .uvfits import Visibilities, read_uvfits, simulate_observation, write_uvfits  # noqa: E402

__all__ += [
    "load_faces",
    "build_faces",
    "FITSImages",
    "SkyImage",
    "read_fits_image",
    "write_fits_image",
    "CorruptedImages",
    "load_image_folder",
    "Visibilities",
    "read_uvfits",
    "write_uvfits",
    "simulate_observation",
]
