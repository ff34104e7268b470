"""fastmri_info reads a file once per version: a mixed training set asks for it twice."""

import numpy as np

from ambient_imaging.datasets.fastmri import fastmri_info
from ambient_imaging.datasets.fastmri import reader as R
from ambient_imaging.datasets.fastmri.writer import write_fastmri


def test_fastmri_info_is_read_once_per_file_version_and_callers_cannot_corrupt_the_cache(tmp_path):
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((3, 2, 16, 12)) + 1j * rng.standard_normal((3, 2, 16, 12))).astype(np.complex64)
    path = write_fastmri(tmp_path / "a.h5", k)
    R._fastmri_info.cache_clear()
    first = fastmri_info(path)
    first["slices"] = -1  # a caller's edit stays its own
    second = fastmri_info(str(path))
    assert second["slices"] == 3 and second["fully_sampled"] and second["file"] == str(path)
    assert R._fastmri_info.cache_info().misses == 1 and R._fastmri_info.cache_info().hits == 1
    k[:, :, :, ::2] = 0  # rewritten undersampled: a new version is read again
    write_fastmri(path, k, mask=(np.arange(12) % 2 == 1))
    assert not fastmri_info(path)["fully_sampled"]
    assert R._fastmri_info.cache_info().misses == 2
