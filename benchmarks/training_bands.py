"""Per-σ-band diagnostics of MRI ambient training: the old defaults against the new ones (and ablations).

Trains the quickstart's 'tiny' network for the same number of steps under each variant on the
embedded ``mri-brain`` set, and reports per σ band (6 log-spaced bands over 0.002..80):

* ``loss``: the λ(σ)-weighted error (the trainer's ``metrics.csv`` ``loss_s*`` columns), averaged
  over the second half of the run;
* ``gnorm``: the norm of the gradient of the band's mean loss (``gnorm_s*``), averaged over the
  diagnostic steps of the second half (every ``--diag-every`` steps);
* a quality check on the held-out (validation) slices, which have clean references: the NMSE of
  the denoiser output against the reference image, input built from the R=4 validation k-space
  exactly like the training input, at σ ∈ {0.03, 0.1, 0.3, 1, 3}.

    ambient-imaging data build mri-brain --size small --out /tmp/mb_small
    OMP_NUM_THREADS=1 python benchmarks/training_bands.py --data /tmp/mb_small --steps 150

Writes ``benchmarks/results/training_bands.md`` / ``.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from ambient_imaging.datasets import FastMRISlices, collate_measurements
from ambient_imaging.training import TrainConfig, Trainer, build_loss, build_network, seed_everything
from ambient_imaging.training.assembly import resolve_data_settings
from ambient_imaging.training.data import build_training_data
from ambient_imaging.training.losses import AmbientLoss, image_noise_sigma
from ambient_imaging.training.trainer import BAND_COLUMNS, SIGMA_BAND_EDGES

EVAL_SIGMAS = (0.03, 0.1, 0.3, 1.0, 3.0)

VARIANTS = {
    # the defaults before issue 10: σ_n ignored, all rows scored, EDM weight, σ_d = 0.5, fixed δ, ACS protected
    "before": dict(sigma_data=0.5, weighting="edm", heldout=False, extra_acceleration=1.0, mask_domain="kspace",
                   precision="fp32", channels_last=False, cache_items=False, network_overrides={"mid_attention": True},
                   _ignore_noise=True, _fixed_center=True),
    # the new defaults
    "after": dict(),
    "after, mask_domain none": dict(mask_domain="none"),
    "after, weighting floor": dict(weighting="floor"),
    "after, weighting edm": dict(weighting="edm"),
    "after, heldout true": dict(heldout=True),
    "after, heldout false": dict(heldout=False),
    "after, fixed masks": dict(extra_acceleration=1.0, _fixed_center=True),
    "after, sigma_data 0.5": dict(sigma_data=0.5),
    "after, fp32": dict(precision="fp32"),
    "after, tiny with mid attention": dict(network_overrides={"mid_attention": True}),
}


def _train_variant(name: str, data_dir: Path, steps: int, diag_every: int, seed: int, lr: float) -> dict:
    opts = dict(VARIANTS[name])
    ignore_noise = opts.pop("_ignore_noise", False)
    fixed_center = opts.pop("_fixed_center", False)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(data=str(data_dir / "train"), operator="mri", out=tmp, network="tiny", batch_size=8,
                          steps=steps, log_every=max(1, steps // 2), diagnostics_every=diag_every, progress=False,
                          device="cpu", checkpoint_every=10**6, lr=lr, warmup_steps=20, seed=seed,
                          ema_halflife_images=500.0, **opts)
        seed_everything(seed)
        data = build_training_data(cfg)
        cfg, info, _ = resolve_data_settings(cfg, data)
        if fixed_center:
            cfg = cfg.replace(center_lines=[64, 64])  # wider than any ACS: the whole ACS is protected
        seed_everything(seed)
        net = build_network(cfg, data.image_shape, data.is_complex, data.mask_channels)
        loss = build_loss(cfg, data.noise_sigma, data.mask_channels)
        if ignore_noise:
            loss.sigma_n = 0.0
        t0 = time.perf_counter()
        tr = Trainer(cfg, data.dataset, net, loss, run_dir=tmp)
        res = tr.fit()
        wall = time.perf_counter() - t0
        with open(Path(tmp) / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        last = rows[-1]
        bands = {c: float(last[c]) for c in BAND_COLUMNS}
        quality = _quality(tr.ema, data_dir, cfg, loss)
    return {"variant": name, "steps": res.step, "seconds": wall, "img_s": res.images / wall,
            "sigma_data": cfg.sigma_data,
            "sigma_min": 0.002 if ignore_noise else max(0.002, info.get("noise_sigma_image_max", 0.0)),
            "bands": bands, "quality": quality, "loss": float(last["loss"])}


@torch.no_grad()
def _quality(net, data_dir: Path, cfg: TrainConfig, loss: AmbientLoss) -> dict[str, float]:
    """NMSE (dB) of D(input, σ) against the clean reference on the validation slices at R=4."""
    ds = FastMRISlices(data_dir / "val", reference=True, acceleration=4, center_fraction=0.19, mask_seed=1)
    items = [ds[i] for i in range(len(ds))]
    batch = collate_measurements(items)
    y, op, ref = batch.y, batch.op, batch.reference
    g = torch.Generator().manual_seed(123)
    out = {}
    img_like = op.adjoint(y)
    sn = image_noise_sigma(op, y, img_like)
    sn = torch.as_tensor(sn).reshape(-1).expand(y.shape[0])
    for sigma in EVAL_SIGMAS:
        sig = torch.full((y.shape[0],), sigma)
        s = torch.sqrt((sig**2 - sn**2).clamp_min(0))
        eta = torch.complex(torch.randn(img_like.shape, generator=g), torch.randn(img_like.shape, generator=g))
        u = op.measurements_to_image(op.restrict(y + s.reshape(-1, 1, 1, 1) * op.forward(eta)))
        d = net(u, sig, mask=op.mask_channels())
        err = (d - ref).abs().pow(2).sum(dim=(1, 2, 3)) / ref.abs().pow(2).sum(dim=(1, 2, 3))
        out[f"{sigma:g}"] = float(10 * torch.log10(err.mean()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/mb_small", help="an mri-brain build (train/ and val/)")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--diag-every", type=int, default=5)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "training_bands"))
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = []
    for name in args.variants:
        r = _train_variant(name, Path(args.data), args.steps, args.diag_every, args.seed, args.lr)
        results.append(r)
        print(f"{name}: {r['seconds']:.0f} s, loss {r['loss']:.4g}, quality {r['quality']}", file=sys.stderr)
    labels = [f"{a:.3g}–{b:.3g}" for a, b in zip(SIGMA_BAND_EDGES[:-1], SIGMA_BAND_EDGES[1:])]
    nb = len(labels)
    lines = [
        "# Per-σ-band training diagnostics (MRI ambient prior, tiny network)",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), load average {load:.2f} at start (other jobs were running). "
        f"Data: `{args.data}` (embedded mri-brain), batch 8, {args.steps} steps per variant, lr {args.lr}, "
        f"seed {args.seed}; band columns average the second half of each run.",
        "",
        "Command: `OMP_NUM_THREADS=1 python benchmarks/training_bands.py "
        f"--data {args.data} --steps {args.steps}`",
        "",
        "## λ(σ)-weighted loss per σ band",
        "",
        "| variant | " + " | ".join(labels) + " |",
        "|---|" + "---|" * nb,
    ]
    for r in results:
        vals = [r["bands"][c] for c in BAND_COLUMNS[:nb]]
        lines.append(f"| {r['variant']} | " + " | ".join("–" if math.isnan(v) else f"{v:.3g}" for v in vals) + " |")
    lines += ["", "## Gradient norm of the band's mean loss", "", "| variant | " + " | ".join(labels) + " | max/min |",
              "|---|" + "---|" * (nb + 1)]
    for r in results:
        vals = [r["bands"][c] for c in BAND_COLUMNS[nb:]]
        ok = [v for v in vals if not math.isnan(v) and v > 0]
        ratio = max(ok) / min(ok) if ok else float("nan")
        lines.append(f"| {r['variant']} | " + " | ".join("–" if math.isnan(v) else f"{v:.3g}" for v in vals)
                     + f" | {ratio:.1f} |")
    lines += ["", "## Held-out denoising NMSE (dB, lower is better), validation slices at R = 4", "",
              "| variant | σ_data | σ_min | " + " | ".join(f"σ={s:g}" for s in EVAL_SIGMAS) + " | mean |",
              "|---|---|---|" + "---|" * (len(EVAL_SIGMAS) + 1)]
    for r in results:
        q = [r["quality"][f"{s:g}"] for s in EVAL_SIGMAS]
        lines.append(f"| {r['variant']} | {r['sigma_data']:.3g} | {r['sigma_min']:.3g} | "
                     + " | ".join(f"{v:.2f}" for v in q) + f" | {sum(q) / len(q):.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "threads":
                                                    torch.get_num_threads(), "load": load, "results": results},
                                                   indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
