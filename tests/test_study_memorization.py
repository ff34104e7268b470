"""``ambient-imaging study memorization``: end to end (quick), resume, and bad input."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from ambient_imaging.cli import main
from ambient_imaging.studies import (
    StudyLevel,
    benchmark_rows,
    format_table,
    markdown_table,
    run_memorization_study,
    study_levels,
)

QUICK = ["--quick", "--device", "cpu", "--no-progress"]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _check_interval(fig, lo=-math.inf, hi=math.inf):
    assert lo <= fig["ci_low"] <= fig["value"] <= fig["ci_high"] <= hi, fig
    assert len(fig["per_seed"]) == 2 and fig["seeds"]["min"] <= fig["seeds"]["max"]


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
    assert report["settings"]["seeds"] == [0, 1]
    for r in report["levels"]:
        assert r["steps"] == 3 and r["trained_now"] and r["samples"] == 16 and r["seeds_used"] == [0, 1]
        _check_interval(r["frac_above_0.90"], 0.0, 1.0)
        _check_interval(r["frac_above_0.95"], 0.0, 1.0)
        assert r["frac_above_0.95"]["value"] <= r["frac_above_0.90"]["value"]
        assert r["frac_above_0.90"]["ci_high"] > 0  # Wilson: never [0, 0], even with no hit
        _check_interval(r["similarity_mean"], -1.0, 1.0 + 1e-9)
        _check_interval(r["l2_ratio_mean"], 0.0, 1.0 + 1e-9)  # nearest ≤ second nearest
        _check_interval(r["kid"])
        assert r["denoise_mse"]["value"] > 0 and len(r["denoise_mse"]["per_seed"]) == 2
        assert (out / f"copies_{r['name']}.png").stat().st_size > 1000
        for seed in (0, 1):
            assert (out / "runs" / r["name"] / f"seed-{seed}" / "study_result.json").is_file()
    # the memorisation numbers are those of the saved samples against the saved training faces
    from ambient_imaging.metrics import memorization

    train = np.load(out / "data" / "train.npy")
    per_seed = [np.load(out / "runs" / "mask-0.8" / f"seed-{s}" / "study_samples.npy") for s in (0, 1)]
    assert per_seed[0].shape == (8, 1, 16, 16) and per_seed[0].min() >= 0 and per_seed[0].max() <= 1
    assert not np.array_equal(per_seed[0], per_seed[1])  # two seeds: two priors, two sample sets
    mem = memorization(np.concatenate(per_seed), train)
    row = next(r for r in report["levels"] if r["name"] == "mask-0.8")
    assert row["similarity_mean"]["value"] == pytest.approx(float(mem.similarity.mean()), abs=1e-6)
    assert row["frac_above_0.90"]["value"] == pytest.approx(float(np.mean(mem.similarity > 0.9)))
    # the faces not used for training are held out (80 - 32 training + 20 held-out)
    assert report["n_train"] == 32 and report["n_heldout"] == 68
    assert np.load(out / "data" / "heldout.npy").shape == (68, 1, 16, 16)
    assert (out / "memorization.png").stat().st_size > 1000 and (out / "tradeoff.png").stat().st_size > 1000
    with open(out / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["kind"] + "-" + r["level"] for r in rows] == names
    assert all(float(r["frac_above_0.90_ci_low"]) <= float(r["frac_above_0.90"]) for r in rows)
    assert all(math.isfinite(float(r["kid"])) for r in rows)
    # benchmark rows: the columns the benchmark table promises
    bench = benchmark_rows(report)
    assert [(b["kind"], b["level"], b["samples"], b["seeds"]) for b in bench][:2] == [("mask", 0.0, 16, 2),
                                                                                      ("mask", 0.8, 16, 2)]
    for b in bench:
        assert b["ci_low"] <= b["frac_above_0.90"] <= b["ci_high"]
        assert b["quality_ci"][0] <= b["quality"] <= b["quality_ci"][1]
    assert markdown_table(bench).count("\n") == len(bench) + 1
    # the printed table has one line per level
    for name in names:
        assert name in captured.out
    assert "KID" in captured.out and str(out / "report.json") in captured.out
    assert not list(out.rglob("*.tmp*"))  # atomic writes leave nothing behind


def test_rerun_skips_finished_levels_and_resumes_unfinished(tmp_path, capsys):
    out = tmp_path / "memo"
    args = ["study", "memorization", "--out", str(out), "--kind", "mask", "--levels", "0,0.6", "--seeds", "1", *QUICK]
    assert main([*args, "--steps", "2"]) == 0
    run = out / "runs" / "mask-0.6" / "seed-0"
    ck = run / "checkpoints"
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
    steps_logged = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().split()[1:]]
    assert steps_logged == [2, 4]

    # an interrupted level (no completion marker yet) resumes rather than restarts
    (run / "study_level.json").unlink()
    report = run_memorization_study(out, corruption=(0.0, 0.6), steps=5, quick=True, device="cpu", n_seeds=1,
                                    progress=False, verbose=False)
    assert [(r["steps"], r["trained_now"]) for r in report["levels"]] == [(5, True), (5, True)]
    steps_logged = [int(r.split(",")[0]) for r in (run / "metrics.csv").read_text().split()[1:]]
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
    args = ["study", "memorization", "--out", str(out), "--levels", "0,0.6", "--seeds", "1", *QUICK]
    monkeypatch.setattr(training, "train", train_until_second_level)
    assert main(args) == 130
    assert "resume" in capsys.readouterr().err
    assert (out / "runs" / "mask-0" / "seed-0" / "study_level.json").is_file() and not (out / "report.json").exists()
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
        (["--seeds", "0"], "n_seeds"),
        (["--data", "/nonexistent/images"], "no such folder"),
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


def _image_folder(folder, n=8):
    """A mixed folder: PNGs of different sizes (grey and RGB), a float .npy, a FITS image."""
    from astropy.io import fits
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n - 2):
        h, w = (20 + 3 * i, 24 + i)
        a = (rng.random((h, w, 3) if i % 2 else (h, w)) * 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"img{i:02d}.png")
    np.save(folder / "z_array.npy", rng.normal(size=(30, 30)))  # float outside [0, 1]: min-max scaled
    fits.PrimaryHDU(rng.normal(size=(28, 28)).astype(np.float32)).writeto(folder / "z_sky.fits")
    (folder / "notes.txt").write_text("not an image: ignored")
    return folder


def test_study_on_an_image_folder(tmp_path, capsys):
    data = _image_folder(tmp_path / "imgs")
    out = tmp_path / "memo"
    rc = main(["study", "memorization", "--out", str(out), "--data", str(data), "--levels", "0",
               "--seeds", "1", "--image-size", "12", "--train-images", "4", *QUICK])
    assert rc == 0, capsys.readouterr().err
    train, held = np.load(out / "data" / "train.npy"), np.load(out / "data" / "heldout.npy")
    # 8 images, 20 % (2) held out, the first 4 of the other 6 trained on: RGB present -> 3 channels
    assert train.shape == (4, 3, 12, 12) and held.shape == (4, 3, 12, 12)
    assert train.min() >= 0 and train.max() <= 1
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["data"] == str(data.resolve()) and report["levels"][0]["samples"] == 8


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "no images"),
    (lambda d: (d / "broken.png").write_bytes(b"not a png"), "broken.png: cannot read image"),
])
def test_bad_image_folders_give_one_line_errors(tmp_path, capsys, make, message):
    data = tmp_path / "imgs"
    data.mkdir()
    make(data)
    rc = main(["study", "memorization", "--out", str(tmp_path / "memo"), "--data", str(data), *QUICK])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err
    assert len([ln for ln in err.strip().splitlines() if ln.strip()]) == 1
