"""``ambient-imaging train`` end to end, and configuration validation."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ambient_imaging.cli import main
from ambient_imaging.training import TrainConfig, load_prior
from ambient_imaging.training.config import write_toml

FAST = ["--network", "tiny", "--batch-size", "4", "--device", "cpu", "--no-progress"]


def test_train_faces_mask(tmp_path, capsys):
    out = tmp_path / "faces"
    rc = main(["train", "--data", "faces", "--operator", "mask", "--corruption", "0.5", "--steps", "3",
               "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert str(out.resolve()) in captured.err and "done: step 3" in captured.out
    prior = load_prior(out)
    assert prior.family == "mask" and prior.corruption == 0.5 and prior.mask_channels == 1
    assert prior.step == 3 and not prior.is_complex and prior.image_shape[0] == 1
    assert "[-1, 1]" in prior.scale_rule
    x = torch.zeros(2, *prior.image_shape)
    assert torch.isfinite(prior.denoiser(x, 1.0, torch.ones(2, 1, *prior.image_shape[1:]))).all()
    cfg = TrainConfig.load(out / "config.toml")
    assert cfg.steps == 3 and cfg.batch_size == 4 and cfg.loss == "ambient" and cfg.network == "tiny"

    # the same command again resumes the run (nothing to do: it is finished)
    rc = main(["train", "--data", "faces", "--operator", "mask", "--corruption", "0.5", "--steps", "3",
               "--out", str(out), *FAST])
    assert rc == 0 and "resuming the run" in capsys.readouterr().err and load_prior(out).step == 3
    # a run of other settings is refused, with the exact commands to continue or replace it
    rc = main(["train", "--data", "faces", "--operator", "mask", "--steps", "3", "--lr", "0.01", "--out", str(out),
               *FAST])
    err = capsys.readouterr().err
    assert rc == 1 and "other settings (lr: 0.0002 in the run, 0.01 now)" in err
    cmd = f"ambient-imaging train --data faces --operator mask --out {out} --steps 3 --batch-size 4 --network tiny"
    assert f"continue that run with its own settings: {cmd}" in err and "--lr 0.01 --no-progress --resume" in err
    assert f"To replace it: {cmd}" in err and "--lr 0.01 --no-progress --overwrite" in err
    # --resume continues (the config comes from the run; --steps extends it)
    assert main(["train", "--out", str(out), "--resume", "--steps", "5", "--no-progress"]) == 0
    assert load_prior(out).step == 5
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,images,loss,lr,grad_norm,images_per_s,seconds")
    assert [int(r.split(",")[0]) for r in rows[1:]] == [3, 5]  # log_every=10: a row at each stop
    # changing the operator on resume is refused; --overwrite starts afresh
    rc = main(["train", "--out", str(out), "--resume", "--operator", "noise", "--no-progress"])
    assert rc == 1 and "differs" in capsys.readouterr().err
    assert main(["train", "--data", "faces", "--operator", "mask", "--steps", "1", "--out", str(out),
                 "--overwrite", *FAST]) == 0
    assert load_prior(out).step == 1


def test_noise_defaults_to_tweedie_and_config_file(tmp_path, capsys):
    cfg_file = tmp_path / "train.toml"
    cfg_file.write_text(write_toml({"train": {"steps": 7, "lr": 5e-4, "noise_sigma": 0.2, "image_size": 16,
                                              "network_overrides": {"model_channels": 8}}}))
    out = tmp_path / "noise"
    rc = main(["train", "--data", "faces", "--operator", "noise", "--config", str(cfg_file), "--steps", "2",
               "--out", str(out), *FAST])
    assert rc == 0, capsys.readouterr().err
    cfg = TrainConfig.load(out / "config.toml")
    assert cfg.loss == "tweedie" and cfg.steps == 2 and cfg.lr == 5e-4  # flag beats file beats default
    assert cfg.network_overrides == {"model_channels": 8}
    prior = load_prior(out)
    assert prior.family == "noise" and prior.noise_sigma == pytest.approx(0.2)
    assert prior.sigma_min == pytest.approx(0.2) and prior.mask_channels == 0 and prior.image_shape == (1, 16, 16)


def test_config_file_alone_is_enough(tmp_path, capsys):
    """A saved config.toml (data and out inside) trains with no --data/--out flags; missing ones are named."""
    out = tmp_path / "from_file"
    cfg_file = tmp_path / "run.toml"
    TrainConfig(data="faces", operator="mask", out=str(out), steps=2, batch_size=4, network="tiny",
                device="cpu", progress=False).save(cfg_file)
    assert main(["train", "--config", str(cfg_file)]) == 0, capsys.readouterr().err
    assert load_prior(out).step == 2
    assert main(["train", "--operator", "mask"]) == 1
    assert "--out is required" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "nodata")]) == 1
    assert "--data is required" in capsys.readouterr().err and not (tmp_path / "nodata").exists()


def test_interferometry_from_npy_yaml_config(tmp_path, capsys):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    sky = np.stack([np.exp(-((xx - rng.uniform(4, 12)) ** 2 + (yy - rng.uniform(4, 12)) ** 2) / 6.0)
                    for _ in range(6)]).astype(np.float32)
    np.save(tmp_path / "sky.npy", sky)
    (tmp_path / "c.yaml").write_text("array: vla_a\nobservation_hours: 2\nuv_times: 6\ndelta: 0.2\n")
    out = tmp_path / "radio"
    rc = main(["train", "--data", str(tmp_path / "sky.npy"), "--operator", "interferometry", "--steps", "2",
               "--config", str(tmp_path / "c.yaml"), "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "vla_a" in err
    prior = load_prior(out)
    assert prior.family == "interferometry" and prior.image_shape == (1, 16, 16) and prior.delta == 0.2


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--delta", "1.5"], "delta"),
        (["--delta", "0"], "delta"),
        (["--noise-sigma", "-1"], "--noise-sigma -1.0: must be a finite number >= 0"),
        (["--lr", "nan"], "--lr nan: must be a finite number > 0"),
        (["--ema-halflife-images", "inf"], "--ema-halflife-images inf"),
        (["--minutes", "nan"], "--minutes nan"),
        (["--seed", "-3"], "--seed -3"),
        (["--checkpoint-every", "0"], "--checkpoint-every 0"),
        (["--device", "bogus"], "--device bogus: not a device"),
        (["--device", "cuda:99"], "--device cuda:99"),
        (["--steps", "0"], "steps"),
        (["--batch-size", "6", "--accumulate", "4"], "divisible"),
        (["--corruption", "1.0"], "corruption"),
        (["--loss", "tweedie"], "noise_sigma"),
    ],
)
def test_bad_values_give_one_clear_error(tmp_path, capsys, flags, message):
    rc = main(["train", "--data", "faces", "--operator", "mask", "--out", str(tmp_path / "r"), "--no-progress",
               *flags])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing written


def test_config_validation_and_files(tmp_path):
    with pytest.raises(ValueError, match="mask, noise, mri, interferometry"):
        TrainConfig(operator="ct").validate()
    with pytest.raises(ValueError, match="unknown setting.*lerning_rate"):
        TrainConfig.from_dict({"lerning_rate": 1.0})
    with pytest.raises(ValueError, match="must be of type int"):
        TrainConfig.from_dict({"steps": "many"})
    with pytest.raises(ValueError, match="newer"):
        TrainConfig(version=99).validate()
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = [")
    with pytest.raises(ValueError, match="bad.toml"):
        TrainConfig.load(bad)
    with pytest.raises(FileNotFoundError):
        TrainConfig.load(tmp_path / "nope.toml")
    cfg = TrainConfig(data="faces", out="x", minutes=1.5, network_overrides={"channel_mult": [1, 2], "gated": True})
    cfg.save(tmp_path / "c.toml")
    assert TrainConfig.load(tmp_path / "c.toml") == cfg


def test_unknown_operator_flag_is_rejected_by_argparse(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", "faces", "--operator", "ct", "--out", str(tmp_path / "z")])
    assert exc.value.code == 2 and "mri" in capsys.readouterr().err


def _write_tiny_fastmri(path, slices: int = 3, coils: int = 4, size: int = 32) -> None:
    """A minimal multi-coil fastMRI-layout file (fully sampled k-space + RSS reconstruction)."""
    import h5py

    try:  # the project's writer, when present, makes a file exactly like fastMRI's
        from ambient_imaging.datasets import write_fastmri  # type: ignore[attr-defined]
    except ImportError:
        write_fastmri = None
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    phantom = ((xx**2 / 0.6 + yy**2 / 0.8) < 1).float() * (1 + 0.2 * torch.randn(slices, size, size, generator=g))
    maps = torch.stack([torch.exp(-((xx - 0.8 * np.cos(a)) ** 2 + (yy - 0.8 * np.sin(a)) ** 2) + 1j * a)
                        for a in np.linspace(0, 2 * np.pi, coils, endpoint=False)])
    coil_imgs = maps[None] * phantom[:, None]
    kspace = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(coil_imgs, dim=(-2, -1)), norm="ortho"),
                                dim=(-2, -1)).to(torch.complex64)
    rss = coil_imgs.abs().pow(2).sum(1).sqrt().float()
    if write_fastmri is not None:
        write_fastmri(path, kspace.numpy(), reconstruction_rss=rss.numpy())
        return
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace.numpy())
        f.create_dataset("reconstruction_rss", data=rss.numpy())
        f.attrs["acquisition"] = "AXT2"
        f.attrs["max"] = float(rss.max())


def test_train_tiny_fastmri_folder(tmp_path, capsys):
    datasets = pytest.importorskip("ambient_imaging.datasets")
    if not hasattr(datasets, "FastMRISlices"):
        pytest.skip("FastMRISlices is not available yet")
    folder = tmp_path / "fastmri"
    folder.mkdir()
    full = tmp_path / "full"
    full.mkdir()
    for name in ("file_a.h5", "file_b.h5"):  # fully sampled files, undersampled 4x like a real scan
        _write_tiny_fastmri(full / name, slices=2)
        datasets.undersample_file(full / name, folder / name, acceleration=3, center_fraction=0.3, seed=len(name))
    out = tmp_path / "mri"
    rc = main(["train", "--data", str(folder), "--operator", "mri", "--steps", "2", "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 0, err
    prior = load_prior(out)
    assert prior.family == "mri" and prior.is_complex and prior.mask_channels == 1
    assert prior.image_shape[0] == 1
    x = torch.zeros(1, *prior.image_shape, dtype=torch.complex64)
    y = prior.denoiser(x, 0.5, torch.ones(1, 1, *prior.image_shape[1:]))
    assert y.dtype == torch.complex64 and torch.isfinite(torch.view_as_real(y)).all()


def test_mask_from_fits_folder(tmp_path, capsys):
    from astropy.io import fits

    folder = tmp_path / "fits"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        fits.PrimaryHDU(rng.normal(10.0, 3.0, (16, 16)).astype(np.float32)).writeto(folder / f"p{i}.fits")
    out = tmp_path / "run"
    rc = main(["train", "--data", str(folder), "--operator", "mask", "--steps", "1", "--out", str(out), *FAST])
    assert rc == 0, capsys.readouterr().err
    prior = load_prior(out)
    assert prior.image_shape == (1, 16, 16) and prior.scale_rule.startswith("affine")
    (folder / "p9.fits").write_bytes(b"not a fits file")
    rc = main(["train", "--data", str(folder), "--operator", "mask", "--steps", "1", "--out", str(tmp_path / "r2"),
               *FAST])
    assert rc == 1 and "p9.fits" in capsys.readouterr().err


class _SlicesStandIn:
    """Minimal reader with the FastMRISlices item contract, to test the train CLI's MRI wiring on its own."""

    def __init__(self, paths, mask_spec=None, acceleration=4, seed=0, **_):
        import h5py

        from ambient_imaging.operators import MultiCoilMRI
        from ambient_imaging.problems import Normalisation

        self.normalisation = Normalisation("measurement")
        acceleration = mask_spec.acceleration if mask_spec is not None else acceleration

        self.items = []
        g = torch.Generator().manual_seed(seed)
        for p in paths:
            with h5py.File(p, "r") as f:
                k = torch.from_numpy(f["kspace"][()])
            for ks in k:
                nc, h, w = ks.shape
                acs = torch.zeros(1, w, dtype=torch.bool)
                acs[:, w // 2 - 2 : w // 2 + 2] = True
                mask = acs | (torch.rand(1, w, generator=g) < 1.0 / acceleration)
                coil_imgs = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(ks, dim=(-2, -1)), norm="ortho"),
                                               dim=(-2, -1))
                maps = coil_imgs / coil_imgs.abs().pow(2).sum(0).sqrt().clamp_min(1e-6)
                op = MultiCoilMRI(maps[None], mask, acs=acs)
                y = op.restrict(ks[None])[0]
                s = float(op.adjoint(y[None]).abs().flatten().quantile(0.99))
                self.items.append({"y": y / s, "operator": op, "scale": s, "meta": {"file": str(p)}})
        self.seen_acceleration = acceleration

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_train_mri_wiring_with_stand_in_reader(tmp_path, capsys, monkeypatch):
    import ambient_imaging.datasets as datasets

    pytest.importorskip("ambient_imaging.operators.mri")
    monkeypatch.setattr(datasets, "FastMRISlices", _SlicesStandIn, raising=False)
    folder = tmp_path / "fastmri"
    folder.mkdir()
    _write_tiny_fastmri(folder / "a.h5", slices=2, size=16)
    _write_tiny_fastmri(folder / "b.h5", slices=2, size=16)
    out = tmp_path / "mri"
    rc = main(["train", "--data", str(folder), "--operator", "mri", "--acceleration", "3", "--steps", "2",
               "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "4 slices from 2 fastMRI file(s)" in err and "4 coils" in err
    prior = load_prior(out)
    assert prior.family == "mri" and prior.is_complex and prior.mask_channels == 1
    assert prior.image_shape == (1, 16, 16) and "measurement_scale" in prior.scale_rule
    rc = main(["train", "--data", str(tmp_path / "nothing"), "--operator", "mri", "--out", str(tmp_path / "x"),
               *FAST])
    assert rc == 1 and "not found" in capsys.readouterr().err


# ---------------------------------------------------------------------- nothing lost (issue 13)
FACES = ["train", "--data", "faces", "--operator", "mask", "--steps", "2", *FAST]


def _checkpoints(run) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def test_overwrite_checks_every_input_before_deleting(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*FACES, "--out", str(out)]) == 0
    before = _checkpoints(out)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 4, 5, 6), dtype=np.float32))  # not an image stack
    for data, message in ((str(tmp_path / "typo"), "not found"), (str(bad), "expected an image stack")):
        rc = main(["train", "--data", data, "--operator", "mask", "--steps", "2", "--out", str(out), "--overwrite",
                   *FAST])
        err = capsys.readouterr().err
        assert rc == 1 and message in err, err
        assert _checkpoints(out) == before and load_prior(out).step == 2  # the old run is intact
    # a folder that holds something else is never emptied
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert main([*FACES, "--out", str(other), "--overwrite"]) == 1
    assert "holds no training run" in capsys.readouterr().err and (other / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("case", ["file", "under-file", "inside-data", "is-data", "unwritable"])
def test_bad_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch, case):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    from skimage.io import imsave

    for i in range(2):
        imsave(imgs / f"{i}.png", np.full((8, 8), 40 * i, dtype=np.uint8))
    note = tmp_path / "notes.txt"
    note.write_text("x")
    out, message = {
        "file": (note, "is an existing file"),
        "under-file": (note / "run", "is a file, so no folder can be created"),
        "inside-data": (imgs / "run", "lies inside the input"),
        "is-data": (imgs, "is the input"),
        "unwritable": (tmp_path / "ro" / "run", "not writable"),
    }[case]
    if case == "unwritable":
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).startswith(str(tmp_path)) else real(p, mode))
    rc = main(["train", "--data", str(imgs), "--operator", "mask", "--steps", "1", "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and "Traceback" not in err, err
    assert note.read_text() == "x" and sorted(p.name for p in imgs.iterdir()) == ["0.png", "1.png"]


def _spawn_train(out, steps: int = 100000) -> subprocess.Popen:
    args = [sys.executable, "-m", "ambient_imaging", *FACES[:-len(FAST)], "--out", str(out), *FAST]
    args[args.index("--steps") + 1] = str(steps)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen(args + ["--checkpoint-every", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(out, proc, step: int = 1, timeout: float = 120.0) -> None:
    from ambient_imaging.training import latest_checkpoint

    t0 = time.time()
    while time.time() - t0 < timeout:
        ck = latest_checkpoint(out) if (out / "checkpoints").is_dir() else None
        if ck is not None and int(ck.name.split("-")[1]) >= step:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the training subprocess never wrote a checkpoint")


def test_second_writer_is_refused_and_killed_run_resumes_with_the_same_command(tmp_path, capsys):
    """Two ``train`` processes into one --out: the second gets 'in use by PID …'; after kill -9 the same
    command resumes (stale lock taken over, half-written checkpoint folders removed)."""
    out = tmp_path / "run"
    proc = _spawn_train(out)
    try:
        _wait_for_checkpoint(out, proc, step=2)
        for extra in ([], ["--resume"], ["--overwrite"]):
            rc = main([*FACES, "--out", str(out), *extra])
            err = capsys.readouterr().err
            assert rc == 1 and f"run folder {out} is in use by PID {proc.pid} on " in err, err
        assert proc.poll() is None  # the first writer was not disturbed
    finally:
        proc.kill()
        proc.wait()
    step = load_prior(out).step
    assert step >= 2
    orphan = out / "checkpoints" / ".step-99999999.abc123"
    orphan.mkdir()
    (orphan / "net.safetensors").write_bytes(b"half")
    with pytest.warns(RuntimeWarning, match=f"stale lock of PID {proc.pid}"):
        rc = main([*FACES, "--out", str(out), "--steps", str(step + 2), "--checkpoint-every", "1"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"resuming the run in {out} from step {step}" in err
    assert load_prior(out).step == step + 2 and not orphan.exists()
    assert not (out / ".ambient-imaging.lock").exists()


def test_interrupted_run_message_and_same_command_resume(tmp_path, capsys, monkeypatch):
    """Ctrl-C: the CLI says 're-run the same command'; the same command then continues."""
    from ambient_imaging.training import trainer as trainer_mod

    out = tmp_path / "run"
    real_fit = trainer_mod.Trainer._fit

    def interrupted(self, resume):
        real_fit(self, resume)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod.Trainer, "_fit", interrupted)
    assert main([*FACES, "--out", str(out)]) == 130
    assert "re-run the same command" in capsys.readouterr().err
    monkeypatch.setattr(trainer_mod.Trainer, "_fit", real_fit)
    assert main([*FACES, "--out", str(out), "--steps", "4"]) == 0
    assert "from step 2" in capsys.readouterr().err and load_prior(out).step == 4
