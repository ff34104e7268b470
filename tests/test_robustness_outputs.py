"""Issue 22, classes 1, 7 and 8 for outputs: settings travel with every output, "finished" means every
artefact exists, killed writers' temporaries are cleaned, ``evaluate`` names malformed files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from ambient_imaging.reconstruction.evaluate import collect_metrics, sample_to_file, write_csv
from ambient_imaging.reconstruction.outputs import OutputRecord, command_line, json_safe, output_settings


@dataclass
class Opts:
    """A stand-in with the shape of ``ReconstructOptions`` (a dataclass of flags)."""

    method: str | None = None
    acceleration: float | None = None
    samples: int = 8
    selfcal: bool = False
    strict: bool = False
    overwrite: bool = False
    progress: bool = True


def _write_output(target, settings, figure=True):
    target.write_bytes(b"volume")
    if figure:
        target.with_suffix(".png").write_bytes(b"png")
    target.with_suffix(".metrics.json").write_text(json.dumps({"file": "f.h5", "slices": []}))
    return OutputRecord(target, settings)


# ---------------------------------------------------------------------- class 1: settings travel
def test_settings_are_recorded_and_compared(tmp_path):
    """Before: a re-run with ``--acceleration 8`` printed "done already (skipped)" and kept the R=4 result."""
    target = tmp_path / "rec.nc"
    r4 = output_settings(Opts(method="l1-wavelet", acceleration=4.0), None, tmp_path / "f.h5")
    rec = _write_output(target, r4)
    assert not rec.finished()  # not sealed yet: written, but not known to be complete
    rec.seal()
    stored = json.loads(target.with_suffix(".metrics.json").read_text())
    assert stored["settings"]["acceleration"] == 4.0 and stored["settings"]["method"] == "l1-wavelet"
    assert sorted(stored["artefacts"]) == ["rec.metrics.json", "rec.nc", "rec.png"]
    assert "strict" not in stored["settings"] and "overwrite" not in stored["settings"]
    assert OutputRecord(target, r4).skip(overwrite=False, command="unused")
    r8 = output_settings(Opts(method="l1-wavelet", acceleration=8.0), None, tmp_path / "f.h5")
    cmd = command_line(tmp_path / "f.h5", target, None, Opts(method="l1-wavelet", acceleration=8.0))
    assert cmd.endswith("--sampler l1-wavelet --acceleration 8 --overwrite")
    with pytest.raises(ValueError, match="other settings") as err:
        OutputRecord(target, r8).skip(overwrite=False, command=cmd)
    assert "acceleration: 4.0 there, 8.0 now" in str(err.value) and cmd in str(err.value)
    assert not OutputRecord(target, r8).skip(overwrite=True, command=cmd)  # --overwrite redoes it


def test_command_line_keeps_only_what_was_asked(tmp_path):
    prior = SimpleNamespace(run_dir=tmp_path / "run dir", step=3)
    cmd = command_line("d.h5", "o.nc", prior, Opts(selfcal=True, strict=True, overwrite=True))
    assert cmd == f"ambient-imaging reconstruct --prior '{tmp_path / 'run dir'}' --data d.h5 --out o.nc --selfcal " \
                  "--strict --overwrite"
    s = output_settings(Opts(), prior, None)
    assert s["prior"].endswith("run dir") and s["prior_step"] == 3


# ---------------------------------------------------------------------- class 8: interrupted outputs
def test_an_output_without_its_figure_is_not_finished(tmp_path):
    """Before: a kill between ``metrics.json`` and the figure left the output counted as finished."""
    target = tmp_path / "rec.nc"
    settings = output_settings(Opts(), None, None)
    rec = _write_output(target, settings)
    rec.seal()
    assert rec.finished()
    target.with_suffix(".png").unlink()  # the figure a killed run never wrote (or lost)
    assert not rec.finished() and not rec.skip(overwrite=False, command="")
    unsealed = _write_output(tmp_path / "other.nc", settings, figure=False)  # killed before sealing
    assert not unsealed.finished()


def test_killed_writers_temporaries_are_cleaned(tmp_path):
    """Before: hidden temporaries of killed writes stayed in output folders for ever."""
    target = tmp_path / "rec.nc"
    mine = [tmp_path / n for n in (".rec.nc.~tmpab12.nc", ".rec.metrics.json.~tmpcd.json", ".rec.png.~tmpx.png")]
    theirs = [tmp_path / ".other.nc.~tmpzz.nc", tmp_path / "rec.nc.~tmp.keep", tmp_path / ".rec.nc.notes"]
    for p in mine + theirs:
        p.write_bytes(b"x")
    gone = OutputRecord(target, {}).clean()
    assert sorted(gone) == sorted(mine)
    assert all(p.exists() for p in theirs)


def test_non_utf8_names_are_escaped_in_outputs():
    """Before: a file name of another encoding stopped the writers with a bare codec error."""
    name = b"scan\xff.h5".decode("utf-8", "surrogateescape")
    assert json_safe({"file": name}) == {"file": "scan\\xff.h5"}
    json.dumps(json_safe({"file": name}), ensure_ascii=False).encode("utf-8")  # no UnicodeEncodeError


# ---------------------------------------------------------------------- class 7: evaluate
@pytest.mark.parametrize("text", ["[1, 2]", '{"slices": 3}', '{"slices": [1]}', "{not json", b"\xff\xfe"])
def test_evaluate_skips_malformed_metrics_naming_them(tmp_path, text):
    """Before: a malformed ``*.metrics.json`` gave a traceback (AttributeError/TypeError)."""
    bad = tmp_path / "bad.metrics.json"
    bad.write_bytes(text if isinstance(text, bytes) else text.encode())
    (tmp_path / "good.metrics.json").write_text(json.dumps({"file": "g.h5", "method": "zero-filled",
                                                             "slices": [{"slice": 0, "psnr": 30.0}]}))
    skipped: list = []
    with pytest.warns(RuntimeWarning, match="bad.metrics.json"):
        rows = collect_metrics(tmp_path, skipped=skipped)
    assert [r["result"] for r in rows] == ["good"] and rows[0]["psnr"] == 30.0
    assert skipped and skipped[0][0].endswith("bad.metrics.json")
    (tmp_path / "good.metrics.json").unlink()
    with pytest.raises(ValueError, match="bad.metrics.json"), pytest.warns(RuntimeWarning):
        collect_metrics(tmp_path)


def test_evaluate_prints_the_closure_chi2s_and_ring_metrics_of_visibility_results(tmp_path, capsys):
    """Before: ``evaluate`` on closure-imaging results showed only the complex-visibility χ² (thousands, as it
    must be with station gains), not the closure χ²'s or the ring that the fit is judged by."""
    import argparse

    from ambient_imaging.cli.reconstruct import run_evaluate

    row = {"slice": 0, "chi2_red": 6700.0, "chi2_cphase": 1.22, "chi2_logcamp": 0.66, "ring_diameter_uas": 35.7,
           "ring_depth": 0.16, "ring_radial_scatter": 0.07, "seconds": 8.6}
    (tmp_path / "m87.metrics.json").write_text(json.dumps({"file": "m87.uvfits", "method": "rml", "slices": [row]}))
    run_evaluate(argparse.Namespace(results=str(tmp_path), out=None))
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    for col in ("chi2_cphase", "chi2_logcamp", "ring_diameter_uas", "ring_depth", "ring_radial_scatter"):
        assert col in header
    assert "ring_diameter_uas_std" not in header and "psnr" not in header
    assert "35.7" in out and "1.22" in out


def test_evaluate_out_pointing_at_a_folder(tmp_path):
    """Before: ``evaluate --out`` naming an existing folder gave an ``IsADirectoryError`` traceback."""
    (tmp_path / "table").mkdir()
    with pytest.raises(ValueError, match="--out .*table is an existing folder"):
        write_csv(tmp_path / "table", [{"a": 1}])
    assert write_csv(tmp_path / "t.csv", [{"a": 1, "b": float("nan")}]).read_text().splitlines()[1] == "1,nan"


# ---------------------------------------------------------------------- class 3/7: sample --n / --seed
class _NoSampling:
    def __getattr__(self, name):
        raise AssertionError("sampling started")


@pytest.mark.parametrize(("n", "seed", "match"), [
    (10**9, 0, "--n 1000000000: 1000000000 samples of 1x64x64 needs about"),
    (0, 0, "--n must be >= 1"),
    (4, 2**70, "--seed must be between 0 and 4294967295"),
])
def test_sample_counts_and_seeds_are_checked_first(tmp_path, n, seed, match):
    """Before: ``sample --n 1e9`` gave a memory-allocation traceback, ``--seed 2**70`` an overflow naming no flag."""
    prior = SimpleNamespace(image_shape=(1, 64, 64), is_complex=False, denoiser=_NoSampling(), run_dir=tmp_path)
    with pytest.raises(ValueError, match=match):
        sample_to_file(prior, n, _NoSampling(), tmp_path / "s.nc", seed=seed)
    assert not (tmp_path / "s.nc").exists()


def test_fits_provenance_with_non_ascii_paths(tmp_path):
    """Before: a prior folder named ``café`` (or not UTF-8 at all) failed the FITS write after all the work."""
    from astropy.io import fits

    from ambient_imaging.datasets.fits import write_fits_image

    odd = "runs/caf\u00e9/" + b"\xff".decode("utf-8", "surrogateescape")
    out = write_fits_image(tmp_path / "x.fits", np.zeros((8, 8), np.float32), provenance={"prior": odd},
                           history=[f"from {odd}"])
    with fits.open(out) as hdul:
        assert hdul[0].header["AI_PRIOR"] == "runs/caf\\xe9/\\xff"
