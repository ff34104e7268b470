"""Checkpoints: no pickle, atomic, exact resume after SIGKILL, SIGTERM saves, load_prior errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ambient_imaging.training import CheckpointError, latest_checkpoint, load_prior
from ambient_imaging.training.checkpoint import capture_rng, optimizer_from_flat, optimizer_to_flat, restore_rng

TESTS = Path(__file__).resolve().parent
STEPS = 12


def run_child(run_dir: str, steps: int, resume: bool, sleep: float = 0.0) -> None:
    """Entry point of the training subprocess (also used in-process)."""
    from test_trainer import ambient_loss, make_trainer

    torch.set_num_threads(1)
    base = ambient_loss()

    def loss(net, batch, generator=None):
        if sleep:
            time.sleep(sleep)
        return base(net, batch, generator=generator)

    tr = make_trainer(Path(run_dir), loss=loss, steps=steps, checkpoint_every=3, log_every=1)
    res = tr.fit(resume=resume)
    print(f"STOPPED {res.stopped} {res.step}", flush=True)


def _spawn(run_dir: Path, steps: int, resume: bool, sleep: float) -> subprocess.Popen:
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); from test_checkpoint import run_child; "
        f"run_child({str(run_dir)!r}, {steps}, {resume}, {sleep})"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        ck = latest_checkpoint(run_dir)
        if ck is not None and int(ck.name.split("-")[1]) >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("child never reached the checkpoint")


def _weights(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    ck = latest_checkpoint(run_dir)
    return {n: load_file(str(ck / f"{n}.safetensors")) for n in ("net", "ema", "state")}


def _assert_identical(a: dict, b: dict) -> None:
    for part in ("net", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    for k in a["state"]:
        if k.startswith("optim."):
            assert torch.equal(a["state"][k], b["state"][k]), k


def test_resume_after_sigkill_is_bit_exact(tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_child(str(ref), STEPS, resume=False)
    proc = _spawn(killed, STEPS, resume=False, sleep=0.15)
    _wait_for_step(killed, 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ck = latest_checkpoint(killed)
    assert 4 <= int(ck.name.split("-")[1]) < STEPS  # killed mid-way
    run_child(str(killed), STEPS, resume=True)
    _assert_identical(_weights(ref), _weights(killed))
    # the metrics log has each step exactly once, as if never interrupted
    steps = [int(line.split(",")[0]) for line in (killed / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, STEPS + 1))
    assert not [p for p in (killed / "checkpoints").iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_sigterm_checkpoints_and_resumes(tmp_path):
    run = tmp_path / "run"
    proc = _spawn(run, 10_000, resume=False, sleep=0.05)
    _wait_for_step(run, 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    words = out.decode().split()
    assert words[:2] == ["STOPPED", "signal"]
    stopped_at = int(words[2])
    assert latest_checkpoint(run).name == f"step-{stopped_at:08d}"
    # resuming continues from there
    run_child(str(run), stopped_at + 2, resume=True)
    assert load_prior(run).step == stopped_at + 2


def test_checkpoint_files_are_safetensors_and_json_only(tmp_path):
    run_child(str(tmp_path / "r"), 3, resume=False)
    ck = latest_checkpoint(tmp_path / "r")
    names = sorted(p.name for p in ck.iterdir())
    assert names == ["ema.safetensors", "net.safetensors", "state.json", "state.safetensors"]
    for p in ck.iterdir():
        assert not p.read_bytes().startswith(b"\x80")  # not a pickle stream
    state = json.loads((ck / "state.json").read_text())
    assert state["step"] == 3 and state["images"] == 24 and state["config"]["steps"] == 3
    assert state["network"]["backbone"]["class"].startswith("ambient_imaging.networks")
    assert (ck.parent / "latest").read_text().strip() == ck.name


def test_optimizer_and_rng_roundtrip():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.1)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, meta = optimizer_to_flat(opt)
    meta = json.loads(json.dumps(meta))
    opt2 = torch.optim.AdamW(net.parameters(), lr=5.0)
    optimizer_from_flat(opt2, tensors, meta)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid in s1["state"]:
        for k, v in s1["state"][pid].items():
            assert torch.equal(v, s2["state"][pid][k])

    g = torch.Generator().manual_seed(7)
    t, m = capture_rng(g)
    m = json.loads(json.dumps(m))
    a = (torch.rand(3), np.random.rand(3), __import__("random").random(), torch.rand(3, generator=g))
    torch.rand(5), np.random.rand(5), torch.rand(5, generator=g)
    restore_rng(t, m, g)
    b = (torch.rand(3), np.random.rand(3), __import__("random").random(), torch.rand(3, generator=g))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2] and torch.equal(a[3], b[3])


def test_load_prior_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_prior(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a training run"):
        load_prior(tmp_path / "empty")
    run = tmp_path / "nock"
    run.mkdir()
    (run / "config.toml").write_text('data = "x"\n')
    with pytest.raises(CheckpointError, match="no checkpoint yet"):
        load_prior(run)
    run_child(str(tmp_path / "r"), 1, resume=False)
    cfg = tmp_path / "r" / "config.toml"
    cfg.write_text(cfg.read_text().replace("version = 1", "version = 99"))
    with pytest.raises(CheckpointError, match="newer ambient-imaging"):
        load_prior(tmp_path / "r")
