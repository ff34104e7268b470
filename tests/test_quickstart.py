"""The quickstart end to end at a tiny size: every output exists, metrics are finite, re-running resumes."""

import json
import math

import pytest

from ambient_imaging.cli import main


@pytest.mark.slow
def test_quickstart_tiny_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "qs"
    argv = ["quickstart", "--out", str(out), "--size", "small", "--steps", "2", "--max-slices", "1",
            "--samples", "1", "--sampler-steps", "6", "--network", "tiny", "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    prior_dirs = [p.name for p in (out / "results").glob("prior-*")]
    assert len(prior_dirs) == 1  # the prior's default sampler, e.g. prior-daps
    for method in ("zero-filled", "l1-wavelet", prior_dirs[0]):
        assert method in printed
        files = sorted((out / "results" / method).glob("*.metrics.json"))
        assert files, method
        assert sorted((out / "results" / method).glob("*.nc"))
        for f in files:
            for row in json.loads(f.read_text())["slices"]:
                assert all(math.isfinite(row[k]) for k in ("psnr", "ssim", "nmse", "seconds")), row
    assert (out / "table.md").is_file() and (out / "results" / "metrics.png").is_file()
    assert (out / "prior" / "quickstart-done.json").is_file()
    # held-out slices are split at random into scored ones and calibration ones, never both; the originals kept
    split = json.loads((out / "data" / "heldout" / "split.json").read_text())
    calib, scored = {tuple(c) for c in split["calibration"]}, {tuple(c) for c in split["scored"]}
    import h5py

    def n_slices(folder):
        return sum(h5py.File(f)["kspace"].shape[0] for f in (out / "data" / folder).glob("*.h5"))

    pool = n_slices("heldout")
    assert len(calib) == min(4, pool // 3) >= 1 and scored and not calib & scored
    n_files = len(list((out / "data" / "heldout").glob("*.h5")))
    assert len(scored) == n_files  # --max-slices 1: one scored slice per held-out file, drawn from the pool
    assert n_slices("calibration") == len(calib) and n_slices("val") == len(scored)
    written = json.loads(next((out / "results" / "zero-filled").glob("*.metrics.json")).read_text())
    assert written["slices"]
    # no fully sampled k-space anywhere in what training saw
    import numpy as np

    for f in (out / "data" / "train").glob("*.h5"):
        if f.name.endswith(".maps.h5"):
            continue
        with h5py.File(f) as h:
            k = h["kspace"][()]
        for sl in k:  # each slice: at most ~1/R of the phase-encode columns (+ ACS) were measured
            cols = np.abs(sl).reshape(-1, sl.shape[-1]).sum(0) > 0
            assert cols.mean() < 0.5, f
    # a second run resumes: nothing is rebuilt, retrained or reconstructed again
    stamp = {p: p.stat().st_mtime for p in (out / "results").rglob("*.nc")}
    assert main(argv) == 0
    assert {p: p.stat().st_mtime for p in (out / "results").rglob("*.nc")} == stamp
    assert "already built" in capsys.readouterr().err


def test_quickstart_bad_flags(capsys):
    assert main(["quickstart", "--minutes", "0"]) == 1
    assert "--minutes must be > 0" in capsys.readouterr().err
