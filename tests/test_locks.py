"""RunLock: one writer per output folder, across real processes; stale locks are taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ambient_imaging.locks import LOCK_NAME, RunInUseError, RunLock, lock_owner

HOLDER = """
import sys, time
from ambient_imaging.locks import RunLock
lock = RunLock(sys.argv[1], purpose="train").acquire()
print("LOCKED", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(folder: Path, seconds: float = 30.0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    line = proc.stdout.readline()
    assert line.strip() == "LOCKED", (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def test_lock_file_holds_pid_and_host_and_goes_away(tmp_path):
    run = tmp_path / "run"
    with RunLock(run, purpose="train") as lock:
        assert lock.held
        owner = lock_owner(run)
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert owner["started"] <= time.time()
        with RunLock(run) as again:  # re-entrant in one process
            assert again.held
        assert (run / LOCK_NAME).exists()
    assert not (run / LOCK_NAME).exists()
    assert not lock.held


def test_second_process_gets_a_clear_error(tmp_path):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        with pytest.raises(RunInUseError) as err:
            RunLock(run, purpose="train").acquire()
        msg = str(err.value)
        assert f"run folder {run} is in use by PID {proc.pid} on {socket.gethostname()} (started " in msg
        assert err.value.owner["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()
    # the holder is gone (kill -9: no cleanup ran): its lock is stale and is taken over with a note
    assert (run / LOCK_NAME).exists()
    with pytest.warns(RuntimeWarning, match=f"took over the stale lock of PID {proc.pid}"):
        lock = RunLock(run).acquire()
    assert lock.took_over["pid"] == proc.pid
    assert lock_owner(run)["pid"] == os.getpid()
    lock.release()


def test_holder_exiting_normally_releases(tmp_path):
    run = tmp_path / "run"
    proc = _holder(run, seconds=0.0)
    proc.wait(timeout=30)
    assert not (run / LOCK_NAME).exists()  # released by the interpreter's cleanup (__del__)
    RunLock(run).acquire().release()


def test_sigterm_holder_is_stale_afterwards(tmp_path):
    run = tmp_path / "run"
    proc = _holder(run)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    with pytest.warns(RuntimeWarning, match="stale"):
        RunLock(run).acquire().release()


def test_file_lock_is_per_file(tmp_path):
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    with RunLock.for_file(a, purpose="reconstruct"), RunLock.for_file(b, purpose="reconstruct"):
        assert (tmp_path / f".a.nc{LOCK_NAME}").exists()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("case", ["dead-pid", "live-pid", "other-host"])
def test_without_flock_the_record_decides(tmp_path, monkeypatch, case):
    """File systems without flock: the PID/host record decides (dead PID on this host: stale)."""
    monkeypatch.setattr(RunLock, "_flock", staticmethod(lambda fd: None))
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = {"dead-pid": int(dead.stdout), "live-pid": os.getppid(), "other-host": 1}[case]
    host = "elsewhere.example" if case == "other-host" else socket.gethostname()
    (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host, "started": time.time() - 60}))
    if case == "dead-pid":
        with pytest.warns(RuntimeWarning, match="stale"):
            RunLock(run).acquire().release()
    else:
        with pytest.raises(RunInUseError, match=f"PID {pid} on {host}"):
            RunLock(run).acquire()
