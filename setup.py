"""Package discovery (metadata is in pyproject.toml).

The top-level folders `operators/` (instrument definitions as data: array
layouts, sampling presets) and `datasets/` (dataset cards) are not Python
packages; they are installed as the data-only packages
`ambient_imaging._instruments` and `ambient_imaging._cards`, so that
`importlib.resources` finds them in editable and regular installs alike.
"""

from pathlib import Path

from setuptools import find_packages, setup

DATA = ["*.md", "*.txt", "*.cfg", "*.csv", "*.json", "*.toml"]
DATA_ROOTS = {"ambient_imaging._instruments": "operators", "ambient_imaging._cards": "datasets"}


def data_packages() -> dict[str, str]:
    """Every folder under a data root as its own package (setuptools warns about folders it is not told of)."""
    here = Path(__file__).parent
    packages = {}
    for name, root in DATA_ROOTS.items():
        for folder in sorted(p for p in [here / root, *(here / root).rglob("*")] if p.is_dir()):
            rel = folder.relative_to(here / root).parts
            packages[".".join((name, *rel))] = "/".join((root, *rel))
    return packages


DATA_PACKAGES = data_packages()

setup(
    packages=find_packages(include=["ambient_imaging", "ambient_imaging.*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
    package_data={"ambient_imaging": ["py.typed"], **{name: DATA for name in DATA_PACKAGES}},
)
