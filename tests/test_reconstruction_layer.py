"""The reconstruction layer: one mask rule, structured normalisation, one problem builder, a clean import graph."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ambient_imaging.problems import MaskSpec, Normalisation, mri_problem
from ambient_imaging.reconstruction import ReconstructOptions, mask_spec_for, reconstruct_path

ROOT = Path(__file__).resolve().parents[1] / "ambient_imaging"


# ----------------------------------------------------------------------------- MaskSpec
def test_maskspec_is_deterministic_and_keyed():
    spec = MaskSpec("random", 4, seed=3)
    a = spec.sample((32, 64), key="f.h5:1")
    assert a.dtype == torch.bool and a.shape == (32, 64)
    assert torch.equal(a, MaskSpec("random", 4, seed=3).sample((32, 64), key="f.h5:1"))
    assert not torch.equal(a, spec.sample((32, 64), key="f.h5:2"))
    assert not torch.equal(a, spec.replace(seed=4).sample((32, 64), key="f.h5:1"))
    # default centre: max(8 % of W, 8) lines, capped at W/R; explicit fractions follow fastMRI exactly
    assert spec.center_width(64) == 8 and spec.center_width(320) == 26
    assert MaskSpec("random", 8).center_width(32) == 4
    assert MaskSpec("random", 4, center_fraction=0.08).center_width(64) == 5
    mask, acs = spec.sample_with_acs((32, 64), key=0)
    assert bool((acs <= mask).all()) and int(acs[0].sum()) == 8
    assert MaskSpec.from_dict(spec.to_dict()) == spec


def test_maskspec_band_zeroes_padding_and_rejects_nonsense():
    m, acs = MaskSpec("random", 4).sample_with_acs((16, 64), key="k", band=(10, 54))
    assert not m[:, :10].any() and not m[:, 54:].any() and acs[0].sum() == 8
    for bad in (dict(acceleration=0.5), dict(acceleration=float("nan")), dict(kind="nope"),
                dict(center_lines=0), dict(center_lines=4, center_fraction=0.1)):
        with pytest.raises(ValueError):
            MaskSpec(**bad)


def _kspace(seed: int = 0, nc: int = 4, n: int = 32) -> np.ndarray:
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] - n / 2
    img = (np.exp(-(xx**2 + yy**2) / (2 * (n / 5) ** 2)) * (1 + 0.2 * g.standard_normal((n, n)))).astype(np.complex64)
    maps = np.stack([np.exp(1j * (c + 1) * xx / n) for c in range(nc)]).astype(np.complex64) / np.sqrt(nc)
    from ambient_imaging.operators import fft2c

    k = fft2c(torch.from_numpy(maps * img)).numpy()
    return (k + 1e-3 * (g.standard_normal(k.shape) + 1j * g.standard_normal(k.shape))).astype(np.complex64)


def test_training_items_and_reconstruction_problems_share_masks(tmp_path):
    """FastMRISlices (training), the embedded builder's rule and mri_problem (reconstruct) give one mask."""
    from ambient_imaging.datasets import FastMRISlices, write_fastmri

    k = np.stack([_kspace(i) for i in range(2)])
    path = write_fastmri(tmp_path / "full.h5", k)
    spec = MaskSpec("random", 4, seed=5)
    ds = FastMRISlices(path, mask_spec=spec)
    for s in range(2):
        train_op = ds[s]["operator"]
        prob = mri_problem(k[s], mask_spec=spec, key=f"full.h5:{s}", maps=np.ones_like(k[s]) / 2)
        want = spec.sample((32, 32), key=f"full.h5:{s}")
        assert torch.equal(train_op.mask[0], want) and torch.equal(prob.op.mask[0], want)
        # the protected rows (ACS) travel with both operators
        assert torch.equal(train_op.acs[0], prob.op.acs[0]) and int(prob.op.acs.sum()) == 8
        assert prob.meta["retrospective"] and prob.reference is not None


def test_undersampled_file_keeps_its_mask_and_acs():
    k = _kspace(1)
    lines = MaskSpec("random", 4, seed=9).sample((32, 32), key="x")[0].numpy()
    prob = mri_problem(k * lines, mask_spec=MaskSpec("random", 8), maps=np.ones_like(k) / 2)
    assert np.array_equal(prob.op.mask[0, 0].numpy(), lines) and prob.op.acs is not None
    assert not prob.meta["fully_sampled"] and prob.reference is None and prob.meta["notes"]


# ----------------------------------------------------------------------------- Normalisation
def test_normalisation_roundtrips():
    from ambient_imaging.operators import PixelMask

    # FITS affine rule: record round trip, apply and undo
    norm = Normalisation.from_range(-3.0, 7.0)
    assert Normalisation.from_dict(norm.to_dict()) == norm
    x = torch.linspace(-3, 7, 16).reshape(1, 1, 4, 4)
    op = PixelMask(torch.ones(1, 1, 4, 4, dtype=torch.bool))
    y_p, op_p = norm.to_prior(op.forward(x), op)
    assert float(y_p.min()) == pytest.approx(-1) and float(y_p.max()) == pytest.approx(1)
    torch.testing.assert_close(norm.image_to_file(y_p), x)
    # the sentence older priors stored parses to the same rule (it used to fall back to identity)
    legacy = Normalisation.from_rule(f"affine x' = (x - {2.0:.6g}) / {5.0:.6g} (training-set range to -1..1)")
    assert legacy == norm
    assert Normalisation.from_rule("images mapped from [0, 1] to [-1, 1] (x' = 2x - 1) before corruption") \
        == Normalisation.unit_range()
    with pytest.raises(ValueError, match="cannot read"):
        Normalisation.from_rule("something else entirely")
    # MRI: per-measurement scale, noise scaled with the data, undone exactly
    prob = mri_problem(_kspace(2), mask_spec=MaskSpec("random", 4), maps=np.ones((4, 32, 32), np.complex64) / 2)
    res = prob.normalisation.resolve(prob.y, prob.op)
    y_p, op_p = res.to_prior(prob.y, prob.op)
    s = float(res.scales(1)[0])
    torch.testing.assert_close(y_p * s, prob.y, rtol=1e-5, atol=1e-7)
    assert op_p.noise_sigma == pytest.approx(prob.op.noise_sigma / s)
    # the scale is a property of the object: the same at R=2 and R=4 (same ACS)
    k = _kspace(2)
    scales = [float(mri_problem(k, mask_spec=MaskSpec("random", r, center_lines=8), key="a",
                                maps=np.ones_like(k) / 2).normalisation.resolve(*_yo(k, r)).scales(1)[0])
              for r in (2, 4)]
    assert scales[0] == pytest.approx(scales[1], rel=1e-6)


def _yo(k, r):
    p = mri_problem(k, mask_spec=MaskSpec("random", r, center_lines=8), key="a", maps=np.ones_like(k) / 2)
    return p.y, p.op


def test_visibility_normalisation_record():
    for kind in ("peak", "flux", "measurement"):
        n = Normalisation(kind)
        assert Normalisation.from_dict(n.to_dict()).kind == kind and not n.resolved


# ----------------------------------------------------------------------------- app checks
def test_outputs_checked_before_work(tmp_path):
    from ambient_imaging.datasets import write_fastmri

    data = write_fastmri(tmp_path / "in" / "a.h5", _kspace(3)[None])
    with pytest.raises(ValueError, match="input file itself"):
        reconstruct_path(data, data, None, ReconstructOptions(method="zero-filled"))
    with pytest.raises(ValueError, match="inside the input folder"):
        reconstruct_path(tmp_path / "in", tmp_path / "in" / "out", None, ReconstructOptions(method="zero-filled"))
    (tmp_path / "dir.nc").mkdir()  # an existing folder is a folder, whatever its name: outputs go inside
    reconstruct_path(data, tmp_path / "dir.nc", None, ReconstructOptions(method="zero-filled", progress=False))
    assert (tmp_path / "dir.nc" / "a.nc").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        reconstruct_path(data, tmp_path / "file", None, ReconstructOptions(method="zero-filled"))
    for bad in (dict(zeta=float("nan")), dict(lamda=-1.0), dict(acceleration=0.5), dict(npix=100000),
                dict(center_lines=0)):
        with pytest.raises(ValueError):
            reconstruct_path(data, tmp_path / "x.nc", None, ReconstructOptions(method="zero-filled", **bad))
    assert not (tmp_path / "x.nc").exists()
    # a finished output is skipped on the next run (resume), redone with overwrite
    rows = reconstruct_path(data, tmp_path / "o.nc", None, ReconstructOptions(method="zero-filled", progress=False))
    assert rows and (tmp_path / "o.metrics.json").is_file()
    said = []
    assert reconstruct_path(data, tmp_path / "o.nc", None, ReconstructOptions(method="zero-filled"),
                            say=said.append) == []
    assert "done already" in said[0]
    metrics = json.loads((tmp_path / "o.metrics.json").read_text())
    assert metrics["mask"]["acceleration"] == 4.0


def test_reconstruct_defaults_to_the_priors_training_masks():
    class P:
        mask_spec = MaskSpec("equispaced_fraction", 6, center_lines=10, seed=0)

    spec = mask_spec_for(ReconstructOptions(), P())
    assert (spec.kind, spec.acceleration, spec.center_lines) == ("equispaced_fraction", 6.0, 10)
    spec = mask_spec_for(ReconstructOptions(acceleration=8), P())
    assert spec.acceleration == 8 and spec.center_lines == 10
    assert mask_spec_for(ReconstructOptions(), None) == MaskSpec()


# ----------------------------------------------------------------------------- architecture
def _imports(path: Path) -> list[tuple[str, list[str]]]:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel.parts[: len(rel.parts) - node.level])
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def test_package_import_graph_has_no_cycle_and_no_private_imports():
    edges: dict[str, set[str]] = {}
    private = []
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT.parent)
        src = rel.parts[1].removesuffix(".py")
        for mod, names in _imports(f):
            parts = mod.split(".")
            if parts[0] != "ambient_imaging" or len(parts) < 2:
                continue
            dst = parts[1]
            if dst != src:
                edges.setdefault(src, set()).add(dst)
                private += [f"{rel}: {mod}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert not private, private
    # depth-first search for a cycle between subpackages
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in edges.get(n, ()):
            if state.get(m) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(stack + [n, m])}")
            if m not in state:
                visit(m, stack + [n])
        state[n] = 2

    for node in list(edges):
        if node not in state:
            visit(node, [])
    # the CLI is thin: no library module imports it
    assert not [s for s, d in edges.items() if "cli" in d and s not in ("__main__",)]
