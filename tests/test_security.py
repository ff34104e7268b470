"""Loading a checkpoint cannot run code, follow pointers out of its run, or hand back NaN weights."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from ambient_imaging.networks import EDMPrecond, UNet, backbone_classes, register_backbone
from ambient_imaging.training import CheckpointError, latest_checkpoint, load_prior
from ambient_imaging.training.checkpoint import load_checkpoint, remove_orphans


@pytest.fixture
def evil_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``evil_mod.py`` on ``sys.path``: importing it writes a marker file (and defines a plausible class)."""
    marker = tmp_path / "EVIL_RAN"
    name = f"evil_mod_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "class SomeClass:\n"
        "    in_channels = out_channels = stride = 1\n"
        "    @classmethod\n"
        "    def from_config(cls, cfg):\n"
        f"        Path({str(marker)!r}).write_text('from_config ran')\n"
        "        return cls()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield SimpleNamespace(name=name, exists=marker.exists)
    sys.modules.pop(name, None)


def _edit_state(run: Path, edit) -> Path:
    ck = latest_checkpoint(run)
    state_path = ck / "state.json"
    state = json.loads(state_path.read_text())
    edit(state)
    state_path.write_text(json.dumps(state))
    return ck


def test_nested_backbone_naming_a_module_is_never_imported(run, evil_module):
    """The reported exploit: an allowed outer class whose own config names ``evil_mod.SomeClass``."""
    name = evil_module.name

    def edit(state):
        net = state["network"]
        inner = dict(net)
        inner["backbone"] = {"class": f"{name}:SomeClass", "config": {}}
        net["backbone"] = {"class": "ambient_imaging.networks.precond:EDMPrecond", "config": inner}

    _edit_state(run, edit)
    with pytest.raises(CheckpointError, match="not a known backbone"):
        load_prior(run)
    assert not evil_module.exists(), "the checkpoint imported a module"
    assert name not in sys.modules


@pytest.mark.parametrize(
    "cls_path", ["{name}:SomeClass", "{name}.SomeClass", "os:system", "ambient_imaging.cli.train:run"]
)
def test_outer_backbone_outside_the_allow_list_is_refused_without_import(run, evil_module, cls_path):
    name = evil_module.name
    modules_before = set(sys.modules)

    def edit(state):
        state["network"]["backbone"]["class"] = cls_path.format(name=name)

    _edit_state(run, edit)
    with pytest.raises(CheckpointError, match="not a known backbone"):
        load_prior(run)
    assert not evil_module.exists()
    assert set(sys.modules) - modules_before <= {"ambient_imaging.networks.unet"}


def test_from_config_never_imports(evil_module):
    net = EDMPrecond(UNet.tiny(2, 1, model_channels=8), image_channels=1, mask_channels=1)
    cfg = net.config()
    cfg["backbone"] = {"class": f"{evil_module.name}:SomeClass", "config": {}}
    with pytest.raises(ValueError, match="not a known backbone"):
        EDMPrecond.from_config(cfg)
    assert not evil_module.exists()
    # the precond module does not even know how to import
    import ambient_imaging.networks.precond as precond

    assert "importlib" not in vars(precond)


def test_allow_list_and_registration():
    assert backbone_classes()["ambient_imaging.networks.unet:UNet"] is UNet

    class MyNet(UNet):
        pass

    net = EDMPrecond(MyNet.tiny(1, 1, model_channels=8), image_channels=1)
    with pytest.raises(ValueError, match="register_backbone"):
        EDMPrecond.from_config(net.config())
    register_backbone(MyNet)
    assert type(EDMPrecond.from_config(net.config()).backbone) is MyNet
    with pytest.raises(TypeError):
        register_backbone(object)  # type: ignore[arg-type]


@pytest.mark.parametrize("pointer", ["../../other/checkpoints/step-00000001", "/etc", "step-1/../../x", ".."])
def test_latest_pointer_cannot_leave_the_run(run, tmp_path, pointer):
    other = tmp_path / "other"
    (other / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest").write_text(pointer + "\n")
    with pytest.raises(CheckpointError, match="refusing"):
        load_prior(run)


def test_checkpoint_folder_symlinked_out_of_the_run_is_refused(run, tmp_path):
    import shutil

    ck = latest_checkpoint(run)
    elsewhere = tmp_path / "elsewhere" / "step-00000009"
    shutil.copytree(ck, elsewhere)
    (run / "checkpoints" / "step-00000009").symlink_to(elsewhere, target_is_directory=True)
    (run / "checkpoints" / "latest").write_text("step-00000009\n")
    with pytest.raises(CheckpointError, match="links outside"):
        load_prior(run)
    (run / "checkpoints" / "latest").unlink()  # without a pointer: the symlinked folder is ignored
    assert latest_checkpoint(run) == ck


@pytest.mark.parametrize("which", ["ema", "net"])
def test_nan_weights_are_refused_naming_the_checkpoint(run, which):
    ck = latest_checkpoint(run)
    f = ck / f"{which}.safetensors"
    w = load_file(str(f))
    key = next(k for k, t in w.items() if t.is_floating_point() and t.numel() > 1)
    w[key][0] = float("nan") if which == "ema" else float("inf")
    save_file(w, str(f))
    with pytest.raises(CheckpointError, match="NaN or Inf") as err:
        load_checkpoint(ck)
    assert str(ck) in str(err.value) and key in str(err.value)
    if which == "ema":
        with pytest.raises(CheckpointError, match="NaN or Inf"):
            load_prior(run)
    else:
        load_prior(run)  # sampling uses the EMA weights only; they are fine


def test_orphans_of_killed_writes_are_removed(run):
    root = run / "checkpoints"
    (root / ".step-00000005.ab12cd").mkdir()
    (root / ".step-00000005.ab12cd" / "net.safetensors").write_bytes(b"x" * 100)
    (root / ".old-step-00000001").mkdir()
    (run / ".config.toml.~tmpabc.toml").write_text("half")
    (root / ".latest.~tmpxyz.tmp").write_text("half")
    keep = [root / "latest", run / "config.toml", latest_checkpoint(run)]
    gone = remove_orphans(run)
    assert sorted(p.name for p in gone) == sorted(
        [".step-00000005.ab12cd", ".old-step-00000001", ".config.toml.~tmpabc.toml", ".latest.~tmpxyz.tmp"]
    )
    assert all(p.exists() for p in keep)
    torch.manual_seed(0)
    load_prior(run)
