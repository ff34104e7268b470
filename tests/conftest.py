"""Fixtures shared by several test files."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A real one-step training run, made once per session (a template: tests copy it with ``run``)."""
    sys.path.insert(0, str(TESTS))
    from test_checkpoint import run_child

    run = tmp_path_factory.mktemp("template") / "run"
    run_child(str(run), 1, resume=False)
    return run


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`trained_run` that a test may tamper with."""
    dst = tmp_path / "prior"
    shutil.copytree(trained_run, dst)
    return dst
