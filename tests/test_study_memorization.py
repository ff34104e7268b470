"""``ambient-imaging study memorization``: end to end (quick), resume, and bad input."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from ambient_imaging.cli import main
from ambient_imaging.studies import StudyLevel, format_table, run_memorization_study, study_levels

QUICK = ["--quick", "--device", "cpu", "--no-progress"]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def test_quick_study_both_kinds(tmp_path, capsys):
    out = tmp_path / "memo"
    rc = main(["study", "memorization", "--out", str(out), "--kind", "both", *QUICK])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads((out / "report.json").read_text())
    names = [r["name"] for r in report["levels"]]
    assert names == ["mask-0", "mask-0.8", "noise-0", "noise-0.2"]
    losses = {r["name"]: (r["loss"], r["sampler"]) for r in report["levels"]}
    assert losses == {
        "mask-0": ("oracle", "EDMSampler"),
        "mask-0.8": ("ambient", "FixedMaskSampler"),
        "noise-0": ("oracle", "EDMSampler"),
        "noise-0.2": ("tweedie", "TruncatedSampler"),
    }
    # a common σ grid (Tweedie priors are valid for σ ≥ σ_n = 0.2 only)
    assert min(report["quality_sigmas"]) >= 0.2 and len(report["quality_sigmas"]) >= 3
    for r in report["levels"]:
        assert r["steps"] == 3 and r["trained_now"]
        for key in ("frac_above_0.90", "frac_above_0.95", "similarity_mean", "l2_ratio_mean", "denoise_mse"):
            assert _finite(r[key]), (r["name"], key, r[key])
        assert 0.0 <= r["frac_above_0.95"] <= r["frac_above_0.90"] <= 1.0
        assert -1.0 <= r["similarity_mean"] <= r["similarity_max"] <= 1.0 + 1e-9
        assert 0.0 < r["l2_ratio_mean"] <= 1.0 + 1e-9  # nearest ≤ second nearest
        assert r["denoise_mse"] > 0
        assert (out / f"samples_{r['name']}.png").stat().st_size > 1000
    # the memorisation numbers are those of the saved samples against the saved training faces
    from ambient_imaging.metrics import memorization

    train = np.load(out / "data" / "train.npy")
    samples = np.load(out / "runs" / "mask-0.8" / "study_samples.npy")
    assert samples.shape == (4, 1, 16, 16) and samples.min() >= 0 and samples.max() <= 1
    mem = memorization(samples, train)
    row = next(r for r in report["levels"] if r["name"] == "mask-0.8")
    assert row["similarity_mean"] == pytest.approx(float(mem.similarity.mean()), abs=1e-6)
    assert (out / "memorization.png").stat().st_size > 1000
    with open(out / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["kind"] + "-" + r["level"] for r in rows] == names
    assert all(math.isfinite(float(r["denoise_mse"])) for r in rows)
    # the printed table has one line per level
    for name in names:
        assert name in captured.out
    assert "denoise MSE" in captured.out and str(out / "report.json") in captured.out
    assert not list(out.rglob("*.tmp*"))  # atomic writes leave nothing behind


def test_rerun_skips_finished_levels_and_resumes_unfinished(tmp_path, capsys):
    out = tmp_path / "memo"
    args = ["study", "memorization", "--out", str(out), "--kind", "mask", "--levels", "0,0.6", *QUICK]
    assert main([*args, "--steps", "2"]) == 0
    ck = out / "runs" / "mask-0.6" / "checkpoints"
    before = {p.name: p.stat().st_mtime_ns for p in ck.iterdir()}

    # the same command again: nothing is retrained (checkpoints untouched), the report is rebuilt
    assert main([*args, "--steps", "2"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [r["trained_now"] for r in report["levels"]] == [False, False]
    assert {p.name: p.stat().st_mtime_ns for p in ck.iterdir()} == before

    # a larger budget continues each run from its checkpoint (a fresh run would log only step 4)
    assert main([*args, "--steps", "4"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [(r["steps"], r["trained_now"]) for r in report["levels"]] == [(4, True), (4, True)]
    steps_logged = [int(r.split(",")[0]) for r in (out / "runs" / "mask-0.6" / "metrics.csv").read_text().split()[1:]]
    assert steps_logged == [2, 4]

    # an interrupted level (no completion marker yet) resumes rather than restarts
    (out / "runs" / "mask-0.6" / "study_level.json").unlink()
    report = run_memorization_study(out, corruption=(0.0, 0.6), steps=5, quick=True, device="cpu",
                                    progress=False, verbose=False)
    assert [(r["steps"], r["trained_now"]) for r in report["levels"]] == [(5, True), (5, True)]
    steps_logged = [int(r.split(",")[0]) for r in (out / "runs" / "mask-0.6" / "metrics.csv").read_text().split()[1:]]
    assert steps_logged == [2, 4, 5]
    assert "mask-0.6" in format_table(report)

    # settings that define the priors cannot change inside one study folder
    assert main([*args, "--steps", "4", "--image-size", "12"]) == 1
    assert "different settings" in capsys.readouterr().err


def test_ctrl_c_keeps_finished_levels(tmp_path, capsys, monkeypatch):
    import ambient_imaging.training as training

    real_train = training.train

    def train_until_second_level(cfg, **kw):
        if cfg.corruption > 0:
            raise KeyboardInterrupt
        return real_train(cfg, **kw)

    out = tmp_path / "memo"
    args = ["study", "memorization", "--out", str(out), "--levels", "0,0.6", *QUICK]
    monkeypatch.setattr(training, "train", train_until_second_level)
    assert main(args) == 130
    assert "resume" in capsys.readouterr().err
    assert (out / "runs" / "mask-0" / "study_level.json").is_file() and not (out / "report.json").exists()
    monkeypatch.setattr(training, "train", real_train)
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert [(r["name"], r["trained_now"]) for r in report["levels"]] == [("mask-0", False), ("mask-0.6", True)]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--levels", "0,1.0"], "[0, 1)"),
        (["--levels", "0,0.4,1.5"], "[0, 1)"),
        (["--kind", "noise", "--noise-levels", "0,-0.1"], ">= 0"),
        (["--levels", "0.4,0.4"], "duplicate"),
        (["--delta", "1.0"], "delta"),
        (["--samples", "0"], "n_samples"),
    ],
)
def test_bad_levels_give_clear_errors(tmp_path, capsys, extra, message):
    out = tmp_path / "memo"
    rc = main(["study", "memorization", "--out", str(out), *extra, *QUICK])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err
    assert not out.exists()  # validated before anything is written


def test_levels_api():
    levels = study_levels("both", (0.0, 0.5), (0.0, 0.1))
    assert [lv.name for lv in levels] == ["mask-0", "mask-0.5", "noise-0", "noise-0.1"]
    assert [lv.loss for lv in levels] == ["oracle", "ambient", "oracle", "tweedie"]
    assert StudyLevel("noise", 0.1).config_changes() == {
        "operator": "noise", "corruption": 0.0, "noise_sigma": 0.1, "loss": "tweedie"
    }
    with pytest.raises(ValueError, match="kind"):
        study_levels("blur")
    with pytest.raises(ValueError, match="finite"):
        study_levels("noise", noise_sigmas=(float("nan"),))
