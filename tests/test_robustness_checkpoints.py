"""Issue 22, classes 2, 3 and 7 for checkpoints: nothing is read from outside the run, tampered metadata
are refused naming the file and the field, a network too large for its weights is never allocated."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import pytest

from ambient_imaging.training import CheckpointError, latest_checkpoint, load_prior
from ambient_imaging.training import checkpoint as ckmod


@pytest.fixture
def opened(monkeypatch):
    """Every path opened through ``open`` or safetensors' ``load_file`` (resolved), in order."""
    seen: list[str] = []
    real_open, real_load = builtins.open, ckmod.load_file

    def spy_open(file, *a, **k):
        if isinstance(file, (str, Path)):
            seen.append(str(Path(file).resolve()))
        return real_open(file, *a, **k)

    def spy_load(file, *a, **k):
        seen.append(str(Path(file).resolve()))
        return real_load(file, *a, **k)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(ckmod, "load_file", spy_load)
    return seen


# ---------------------------------------------------------------------- class 2: links out of the run
def test_symlinked_checkpoints_folder_of_another_run_is_refused(run, tmp_path):
    """Before: ``checkpoints/`` → another run's loaded that run's weights and exited 0."""
    other = tmp_path / "other"
    shutil.copytree(run, other)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").symlink_to(other / "checkpoints")
    with pytest.raises(CheckpointError, match="links outside the run folder"):
        load_prior(run)
    with pytest.raises(CheckpointError, match="links outside the run folder"):
        latest_checkpoint(run)


def test_symlinked_state_json_is_refused(run, tmp_path):
    """Before: a ``state.json`` linking to a copy outside the run was used."""
    ck = latest_checkpoint(run)
    outside = tmp_path / "state.json"
    shutil.copy(ck / "state.json", outside)
    (ck / "state.json").unlink()
    (ck / "state.json").symlink_to(outside)
    with pytest.raises(CheckpointError, match="links outside the run folder"):
        load_prior(run)


@pytest.mark.parametrize("name", ["ema.safetensors", "config.toml"])
def test_links_to_system_files_are_refused_before_being_opened(run, tmp_path, opened, name):
    """Before: ``ema.safetensors``/``config.toml`` → ``/etc/passwd`` were opened and parsed, then refused."""
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0:root:/root:/bin/bash\n")
    where = run if name == "config.toml" else latest_checkpoint(run)
    (where / name).unlink()
    (where / name).symlink_to(target)
    with pytest.raises(CheckpointError, match="links outside the run folder"):
        load_prior(run)
    assert str(target.resolve()) not in opened


def test_a_run_folder_reached_through_a_link_still_loads(run, tmp_path):
    """The run folder itself may be a link (``runs/latest`` → ``runs/2026-12-02``): its contents are inside it."""
    link = tmp_path / "current"
    link.symlink_to(run)
    assert load_prior(link).step == 1


# ---------------------------------------------------------------------- class 7: tampered metadata
def _edit_prior(run: Path, **changes) -> Path:
    ck = latest_checkpoint(run)
    path = ck / "state.json"
    state = json.loads(path.read_text())
    state["prior"].update(changes)
    path.write_text(json.dumps(state))
    return path


@pytest.mark.parametrize(("field", "value"), [
    ("image_shape", [1, 0, 0]),
    ("image_shape", 16),
    ("mask_channels", [1]),
    ("mask_channels", "two"),
    ("sigma_data", -0.5),
    ("noise_sigma", -1.0),
    ("sigma_max", 0.0),
    ("delta", 1.5),
    ("is_complex", "yes"),
    ("family", 3),
])
def test_tampered_prior_metadata_names_file_and_field(run, field, value):
    """Before: wrong types gave bare ``TypeError``s naming nothing; NaN/negative σ and 0×0 were accepted."""
    path = _edit_prior(run, **{field: value})
    with pytest.raises(CheckpointError, match=rf"state\.json: field '{field}'") as err:
        load_prior(run)
    assert str(path) in str(err.value)


def test_nan_sigma_is_refused(run):
    ck = latest_checkpoint(run)
    path = ck / "state.json"
    text = path.read_text()
    state = json.loads(text)
    state["prior"]["sigma_min"] = float("nan")
    path.write_text(json.dumps(state))  # json writes NaN
    with pytest.raises(CheckpointError, match="field 'sigma_min' must be a finite number"):
        load_prior(run)


def test_prior_table_of_the_wrong_type(run):
    ck = latest_checkpoint(run)
    path = ck / "state.json"
    state = json.loads(path.read_text())
    state["prior"] = ["not", "a", "table"]
    path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="field 'prior' must be a table"):
        load_prior(run)


# ---------------------------------------------------------------------- class 3: network widths
def _set_width(net: dict, value: int) -> bool:
    """Set every ``model_channels`` found in a (nested) network record."""
    hit = False
    for k, v in net.items():
        if k == "model_channels":
            net[k] = value
            hit = True
        elif isinstance(v, dict):
            hit = _set_width(v, value) or hit
    return hit


@pytest.mark.parametrize("width", [4096, 10**9])
def test_huge_network_width_is_refused_before_allocation(run, width):
    """Before: a huge ``model_channels`` in ``state.json`` allocated the network (memory-allocation traceback)."""
    ck = latest_checkpoint(run)
    path = ck / "state.json"
    state = json.loads(path.read_text())
    assert _set_width(state["network"], width)
    path.write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match="field 'network'"):
        load_prior(run)
