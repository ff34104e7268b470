"""Package discovery (metadata is in pyproject.toml).

The top-level folders `operators/` (instrument definitions as data: array
layouts, sampling presets) and `datasets/` (dataset cards) are not Python
packages; they are installed as the data-only packages
`ambient_imaging._instruments` and `ambient_imaging._cards`, so that
`importlib.resources` finds them in editable and regular installs alike.
"""

from setuptools import find_packages, setup

DATA = ["*.md", "*.txt", "*.cfg", "*.csv", "*.json", "*.toml", "*/*"]

setup(
    packages=find_packages(include=["ambient_imaging", "ambient_imaging.*"])
    + ["ambient_imaging._instruments", "ambient_imaging._cards"],
    package_dir={
        "ambient_imaging._instruments": "operators",
        "ambient_imaging._cards": "datasets",
    },
    package_data={
        "ambient_imaging": ["py.typed"],
        "ambient_imaging._instruments": DATA,
        "ambient_imaging._cards": DATA,
    },
)
