"""Execute the exploration notebooks in ``notebooks/`` top to bottom and fail on any cell error.

Each notebook runs in a fresh kernel of *this* interpreter (a kernelspec is installed into a
temporary directory when the environment has none), in a temporary working directory, with
``MPLBACKEND=Agg`` and ``OMP_NUM_THREADS=1``. A notebook whose modules are not importable
is skipped with the reason.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 300

# notebook -> modules it needs beyond the core package
REQUIRES: dict[str, tuple[str, ...]] = {
    "01_operators_tour.ipynb": ("ambient_imaging.operators", "ambient_imaging.datasets.embedded.mri_brain"),
    "02_mri.ipynb": ("ambient_imaging.datasets.fastmri", "ambient_imaging.datasets.embedded.mri_brain",
                     "ambient_imaging.training", "ambient_imaging.sampling"),
    "03_astronomy.ipynb": ("ambient_imaging.datasets.fits", "ambient_imaging.sampling"),
    "04_memorization.ipynb": ("ambient_imaging.studies.memorization",),
}


def _missing(modules: tuple[str, ...]) -> str | None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:  # a colleague's module not there yet
            return f"{name} not importable ({e})"
    return None


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the kernels: a ``python3`` kernelspec for ``sys.executable`` on JUPYTER_PATH."""
    from ipykernel.kernelspec import install

    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    # a private kernelspec pointing at this interpreter: robust in a fresh venv, and never a
    # different Python found first on the user's kernel path
    install(kernel_name="python3", prefix=str(jupyter_dir))
    env = dict(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join([str(jupyter_dir / "share" / "jupyter"), env.get("JUPYTER_PATH", "")])
    env.update(MPLBACKEND="Agg", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1",
               PYTHONWARNINGS="ignore::DeprecationWarning")
    return env


def _run(path: Path, cwd: Path, env: dict[str, str]) -> float:
    nb = nbformat.read(path, as_version=4)
    old = dict(os.environ)
    os.environ.update(env)  # the kernel manager starts the kernel with os.environ
    try:
        client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                         resources={"metadata": {"path": str(cwd)}})
        t0 = time.perf_counter()
        client.execute(cwd=str(cwd))
        return time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_notebooks_are_stored_without_outputs() -> None:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert {p.name for p in paths} >= set(REQUIRES), "a notebook is missing"
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{p.name}: stored with outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REQUIRES))
def test_notebook_runs(name: str, kernel_env: dict[str, str], tmp_path: Path) -> None:
    reason = _missing(REQUIRES[name])
    if reason:
        pytest.skip(reason)
    try:
        seconds = _run(NOTEBOOKS / name, tmp_path, kernel_env)
    except nbclient.exceptions.CellExecutionError as e:  # the traceback of the failing cell
        pytest.fail(f"{name}: a cell failed\n{e}", pytrace=False)
    print(f"{name}: {seconds:.1f} s", file=sys.stderr)
