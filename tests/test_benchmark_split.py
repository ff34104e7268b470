"""The reconstruction benchmark's held-out split: slices span the volumes, and the calibration slices
are drawn like the scored ones (split conformal's exchangeability), reproducibly."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_reconstruction", ROOT / "benchmarks" / "reconstruction.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fake_volumes(bench, monkeypatch, sizes: dict[str, int]):
    """``heldout_slices`` over fake volumes ``name -> slice count`` (central slices first)."""
    def volume(f: Path):
        n = sizes[f.name]
        for s in sorted(range(n), key=lambda i: abs(i - n // 2)):
            yield f, s, {}
    monkeypatch.setattr(bench, "_volume_slices", volume)


def test_heldout_slices_round_robin_over_volumes(bench, monkeypatch, tmp_path):
    for name in ("a.h5", "b.h5", "c.h5", "b.maps.h5"):
        (tmp_path / name).write_bytes(b"")
    fake_volumes(bench, monkeypatch, {"a.h5": 5, "b.h5": 1, "c.h5": 3})
    got = [(f.name, s) for f, s, _ in bench.heldout_slices(str(tmp_path), 6)]
    assert got == [("a.h5", 2), ("b.h5", 0), ("c.h5", 1), ("a.h5", 1), ("c.h5", 0), ("a.h5", 3)]
    ordered = [(f.name, s) for f, s, _ in bench.heldout_slices(str(tmp_path), 7, interleave=False)]
    assert ordered == [("a.h5", 2), ("a.h5", 1), ("a.h5", 3), ("a.h5", 0), ("a.h5", 4), ("b.h5", 0), ("c.h5", 1)]
    assert len(bench.heldout_slices(str(tmp_path), 100)) == 9  # every slice, then stops


def test_split_heldout_exchangeable_and_ordered(bench):
    pool = list(range(11))
    scored, cal, val = bench.split_heldout(pool, 4, None)
    assert (scored, cal, val) == ([0, 1, 2, 3, 4, 5], [6, 7, 8, 9], 10)  # the earlier protocol, by position
    scored, cal, val = bench.split_heldout(pool, 4, 0)
    assert sorted(scored + cal + [val]) == pool and len(scored) == 6 and len(cal) == 4
    assert (scored, cal, val) == bench.split_heldout(pool, 4, 0)  # reproducible
    assert (scored, cal, val) != bench.split_heldout(pool, 4, 1)
    assert scored != [0, 1, 2, 3, 4, 5]
