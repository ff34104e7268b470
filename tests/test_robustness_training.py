"""Issue 22 for ``train`` (classes 5, 6 and 7) and issue 18's "one RunLock, one resolve_device"."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_robustness_reconstruct import _mri_file

import ambient_imaging

PACKAGE = Path(ambient_imaging.__file__).resolve().parent


# ---------------------------------------------------------------------- 6: a training folder of one layout
def test_mixed_matrix_sizes_and_coil_counts_are_named_before_collation(tmp_path):
    """Before: ``train`` on a folder mixing coil counts died in batch collation, naming no file."""
    from ambient_imaging.training import TrainConfig
    from ambient_imaging.training.data import build_training_data

    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.h5", "b.h5"):
        _mri_file(data / name)
    _mri_file(data / "odd.h5", coils=3)
    with pytest.raises(ValueError, match=r"1 of 3 files differ .*odd\.h5 3 coils 32x32"):
        build_training_data(TrainConfig(data=str(data), operator="mri", out=str(tmp_path / "run")))


# ---------------------------------------------------------------------- issue 18: one resolve_device
def _definitions(name: str) -> list[str]:
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(PACKAGE)}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name]
    return found


def test_one_resolve_device():
    """Before: ``devices.resolve_device`` and ``training.distributed.resolve_device`` had different rules
    (``--device meta`` trained; ``auto`` never chose Apple MPS in training)."""
    from ambient_imaging import devices
    from ambient_imaging.training import distributed

    assert _definitions("resolve_device") == ["devices.py:" + str(devices.resolve_device.__code__.co_firstlineno)]
    assert distributed.resolve_device is devices.resolve_device
    with pytest.raises(ValueError, match="unsupported device type 'meta'"):
        distributed.resolve_device("meta")


def test_one_run_lock_class():
    assert [d.split(":")[0] for d in _definitions("RunLock")] == ["locks.py"]


# ---------------------------------------------------------------------- 3: batch size against memory
def test_batch_memory_is_measured_and_checked():
    """Before: ``--batch-size 100000`` reached the allocator (a memory traceback); now one forward pass of one
    item measures the activations and the batch is refused with both amounts."""
    import torch

    from ambient_imaging.limits import activation_bytes, check_batch_memory
    from ambient_imaging.networks import EDMPrecond, UNet

    net = EDMPrecond(UNet.tiny(1, 1), image_channels=1)
    per = activation_bytes(net, torch.zeros(1, 1, 16, 16), torch.tensor([1.0]))
    assert 2**16 < per < 2**26
    check_batch_memory(8, per, available=2**34)
    with pytest.raises(ValueError, match=r"--batch-size 100000: a batch of 100000 items .* needs about .* GiB"):
        check_batch_memory(100000, per, available=2**34)


# ---------------------------------------------------------------------- 5 + 7: train flags checked first
FAST = ["--network", "tiny", "--batch-size", "4", "--device", "cpu", "--no-progress", "--steps", "1"]


def _train(args, capsys):
    from ambient_imaging.cli import main

    code = main(["train", *[str(a) for a in args]])
    out = capsys.readouterr()
    return code, out.out, out.err


def _undersampled_folder(tmp_path):
    import h5py
    import numpy as np

    folder = tmp_path / "under"
    folder.mkdir()
    src = _mri_file(folder / "a.h5")
    with h5py.File(src, "r+") as f:
        w = f["kspace"].shape[-1]
        mask = np.zeros(w, bool)
        mask[::4] = True
        mask[w // 2 - 4: w // 2 + 4] = True
        k = f["kspace"][()]
        k[..., ~mask] = 0
        f["kspace"][...] = k
        f.create_dataset("mask", data=mask)
    return folder


@pytest.mark.parametrize(("flags", "message"), [
    (["--operator", "mri", "--corruption", "0.3"], "--corruption applies to --operator mask"),
    (["--operator", "mri", "--image-size", "64"], "--image-size applies to --operator mask"),
    (["--operator", "mri", "--acceleration", "8"], "--acceleration 8: the files of --data are undersampled already"),
    (["--operator", "mri", "--seed", str(2**70)], "--seed must be between 0 and 4294967295"),
    (["--operator", "mri", "--num-workers", "10000"], "--num-workers must be between 0 and"),
])
def test_train_flags_that_cannot_apply_are_refused_before_work(tmp_path, capsys, flags, message):
    """Before: these flags were ignored (yet written into config.toml), or failed late naming no flag."""
    folder = _undersampled_folder(tmp_path)
    out = tmp_path / "run"
    code, _, err = _train(["--data", folder, "--out", out, *flags, *FAST], capsys)
    assert code == 1 and message in err, err
    assert not (out / "config.toml").exists()


def test_train_batch_size_against_memory(tmp_path, capsys):
    """Before: ``--batch-size 100000`` gave a memory-allocation traceback."""
    out = tmp_path / "run"
    args = ["--data", "faces", "--operator", "mask", "--out", out, *FAST, "--batch-size", "100000"]
    code, _, err = _train(args, capsys)
    assert code == 1 and "--batch-size 100000: a batch of 100000 items" in err, err
    assert not (out / "checkpoints").exists()


def test_one_run_lock_per_training_run(tmp_path, capsys, monkeypatch):
    """Before: ``train`` locked its run folder twice (in the CLI and again in ``Trainer.fit``)."""
    from ambient_imaging import locks

    calls = []
    real = locks.RunLock.acquire

    def counted(self):
        calls.append(str(self.folder))
        return real(self)

    monkeypatch.setattr(locks.RunLock, "acquire", counted)
    out = tmp_path / "run"
    code, _, err = _train(["--data", "faces", "--operator", "mask", "--out", out, *FAST], capsys)
    assert code == 0, err
    assert calls == [str(out)]
