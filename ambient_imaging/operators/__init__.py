"""Forward operators: ``y = A x + ε`` for every instrument family.

See :mod:`ambient_imaging.operators.base` for the contract.
"""

from .base import LinearOperator, SubsamplingOperator, dihedral, real_inner
from .composite import ComposedOperator, ScaledOperator, stack
from .pixels import GaussianNoise, PixelMask, box_mask, dust_mask

__all__ = [
    "LinearOperator",
    "SubsamplingOperator",
    "ComposedOperator",
    "ScaledOperator",
    "stack",
    "real_inner",
    "dihedral",
    "PixelMask",
    "GaussianNoise",
    "dust_mask",
    "box_mask",
]

# interferometry: NUFFT operators, array layouts, Earth-rotation uv-coverage
from .interferometry import GriddedInterferometer, Interferometer  # noqa: E402
from .nufft import nufft2d_type1, nufft2d_type2  # noqa: E402
from .uvcoverage import ArrayLayout, UVCoverage, earth_rotation_uv, list_arrays, load_array  # noqa: E402

__all__ += [
    "Interferometer",
    "GriddedInterferometer",
    "nufft2d_type2",
    "nufft2d_type1",
    "ArrayLayout",
    "UVCoverage",
    "load_array",
    "list_arrays",
    "earth_rotation_uv",
]

# MRI: Cartesian multi-coil SENSE operator, k-space masks, coil maps
from .coils import coil_compression_matrix, compress_coils, resize_kspace, size_mismatch_note  # noqa: E402
from .espirit import birdcage_maps, espirit_maps, rss  # noqa: E402
from .mri import MultiCoilMRI, fft2c, ifft2c  # noqa: E402
from .mri_masks import MASK_KINDS, apply_band, mask_presets, mri_mask  # noqa: E402

__all__ += [
    "MultiCoilMRI",
    "fft2c",
    "ifft2c",
    "mri_mask",
    "apply_band",
    "MASK_KINDS",
    "compress_coils",
    "resize_kspace",
    "size_mismatch_note",
    "coil_compression_matrix",
    "mask_presets",
    "espirit_maps",
    "birdcage_maps",
    "rss",
]
