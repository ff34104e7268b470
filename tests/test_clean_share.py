"""``--clean-share``: batches that hold a fixed number of a mixed set's clean samples (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
from test_cli_train import FAST
from test_training_mixture import _mixed

from ambient_imaging.cli import main
from ambient_imaging.training import TrainConfig, load_prior
from ambient_imaging.training.batches import StratifiedBatchSampler, clean_batch_size
from ambient_imaging.training.data import ResumableBatchSampler
from ambient_imaging.training.mix import resolve_clean_share


def _groups():
    flags = np.zeros(20, dtype=bool)
    flags[[3, 11]] = True  # two clean items in twenty: 10 % of the set
    return flags, [np.flatnonzero(flags), np.flatnonzero(~flags)]


def test_every_batch_holds_the_asked_number_of_clean_items():
    flags, groups = _groups()
    s = StratifiedBatchSampler(groups, [2, 6], seed=3)
    stream = iter(s)
    for _ in range(30):
        batch = next(stream)
        assert len(batch) == 8 and int(flags[batch].sum()) == 2
    # the corrupted group is streamed in epochs: every corrupted item once per 18 draws
    drawn = [i for k in range(3) for i in s.batch(k)[2:]]
    assert sorted(drawn) == sorted(groups[1].tolist())


def test_resumes_where_it_stopped_and_shards_by_rank():
    _flags, groups = _groups()
    full = StratifiedBatchSampler(groups, [1, 3], seed=0)
    later = iter(StratifiedBatchSampler(groups, [1, 3], seed=0, start_batch=7))
    assert next(later) == full.batch(7) and next(later) == full.batch(8)
    r0 = StratifiedBatchSampler(groups, [1, 3], seed=0, rank=0, world_size=2)
    r1 = StratifiedBatchSampler(groups, [1, 3], seed=0, rank=1, world_size=2)
    corrupted0 = {i for k in range(2) for i in r0.batch(k)[1:]}
    corrupted1 = {i for k in range(2) for i in r1.batch(k)[1:]}
    assert not corrupted0 & corrupted1  # one epoch of the 18 corrupted items, split between the ranks
    assert r0.batch(0)[0] != r1.batch(0)[0]


def test_uniform_sampling_is_unchanged_by_the_new_sampler():
    # the default stream is the one every earlier run used (same seeds, same batches)
    s = ResumableBatchSampler(20, 4, seed=0)
    assert s.batch(0) == ResumableBatchSampler(20, 4, seed=0, start_batch=0).batch(0)


@pytest.mark.parametrize(("batch", "share", "want"), [(8, 0.5, 4), (8, 0.1, 1), (8, 0.99, 7), (4, 0.3, 1), (2, 0.5, 1)])
def test_clean_batch_size_rounds_and_keeps_both_kinds(batch, share, want):
    assert clean_batch_size(batch, share) == want


def test_bad_shares_and_batches_are_refused():
    with pytest.raises(ValueError, match="at least 2 items"):
        clean_batch_size(1, 0.5)
    for bad in (0.0, 1.0, -0.2, float("nan"), "half", True):
        with pytest.raises(ValueError, match="clean_share"):
            TrainConfig(data="x", clean_share=bad).validate()
    with pytest.raises(ValueError, match="group 1 is empty"):
        StratifiedBatchSampler([np.arange(3), np.array([], dtype=int)], [1, 1])


def test_fastmri_items_know_whether_they_are_fully_sampled(tmp_path):
    from ambient_imaging.datasets import FastMRISlices

    _full, _under, mixed = _mixed(tmp_path)
    ds = FastMRISlices(mixed)
    flags = ds.fully_sampled_items()
    assert flags.shape == (len(ds),) and int(flags.sum()) == 2
    assert [bool(ds[i]["meta"]["fully_sampled"]) for i in range(len(ds))] == flags.tolist()


def test_cli_trains_with_a_clean_share_and_records_it(tmp_path, capsys):
    _full, _under, mixed = _mixed(tmp_path)
    out = tmp_path / "run"
    rc = main(["train", "--data", str(mixed), "--operator", "mri", "--steps", "2", "--clean-share", "0.5",
               "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "a share 0.5 of every batch is clean" in err
    rec = load_prior(out).info["data_mix"]["batch_clean"]
    want = {"rule": "0.5", "clean_share": 0.5, "clean_per_batch": 2, "batch": 4,
            "natural_share": pytest.approx(1 / 3, abs=1e-3)}
    assert rec == want


def test_auto_oversamples_a_few_clean_samples_and_uniform_does_not(tmp_path, capsys):
    _full, _under, mixed = _mixed(tmp_path, n_clean=1, n_under=3)  # 2 of 8 slices clean
    rc = main(["train", "--data", str(mixed), "--operator", "mri", "--steps", "1", "--out", str(tmp_path / "a"), *FAST])
    assert rc == 0, capsys.readouterr().err
    rec = load_prior(tmp_path / "a").info["data_mix"]["batch_clean"]
    assert rec["rule"] == "auto" and rec["clean_share"] == 0.5 and rec["clean_per_batch"] == 2
    rc = main(["train", "--data", str(mixed), "--operator", "mri", "--steps", "1", "--clean-share", "uniform",
               "--out", str(tmp_path / "b"), *FAST])
    err = capsys.readouterr().err
    assert rc == 0 and "drawn uniformly" in err, err
    assert "batch_clean" not in load_prior(tmp_path / "b").info["data_mix"]


def test_resolve_clean_share_rules():
    few, many = np.arange(10) < 2, np.arange(10) < 7
    assert resolve_clean_share("auto", few, 8) == 0.5
    assert resolve_clean_share("auto", few, 1) is None  # a one-item batch cannot hold both kinds: uniform
    assert resolve_clean_share("auto", many, 8) is None  # clean already half or more: uniform
    assert resolve_clean_share("auto", None, 8) is None and resolve_clean_share("uniform", few, 8) is None
    assert resolve_clean_share(0.25, few, 8) == 0.25
    with pytest.raises(ValueError, match="one kind"):
        resolve_clean_share(0.25, np.zeros(4, dtype=bool), 8)


def test_cli_refuses_a_clean_share_on_one_kind(tmp_path, capsys):
    _full, under, _mixed_dir = _mixed(tmp_path)
    rc = main(["train", "--data", str(under), "--operator", "mri", "--steps", "1", "--clean-share", "0.5",
               "--out", str(tmp_path / "a"), *FAST])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and "--clean-share applies to a mixed set" in err
    assert not (tmp_path / "a" / "checkpoints").exists()
    rc = main(["train", "--data", str(under), "--operator", "mri", "--steps", "1", "--clean-share", "1.5",
               "--out", str(tmp_path / "b"), *FAST])
    assert rc != 0 and "clean_share" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", str(under), "--clean-share", "half", "--out", str(tmp_path / "c"), *FAST])
    assert "expected auto or uniform or a number" in capsys.readouterr().err
    # auto on a set of one kind: nothing to oversample, no error
    rc = main(["train", "--data", str(under), "--operator", "mri", "--steps", "1", "--out", str(tmp_path / "d"), *FAST])
    assert rc == 0, capsys.readouterr().err
