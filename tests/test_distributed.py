"""DDP with 2 gloo processes on CPU: loss decreases, ranks stay identical, only rank 0 writes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from ambient_imaging.training import init_distributed, latest_checkpoint, load_prior
from ambient_imaging.training.distributed import all_reduce_mean, cleanup_distributed

WORLD = 2
STEPS = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, root: str) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_trainer import make_trainer

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    ctx = init_distributed("cpu")
    assert ctx.distributed and ctx.rank == rank and ctx.world_size == WORLD
    try:
        assert float(all_reduce_mean(torch.tensor(float(rank)), ctx)) == 0.5
        run = Path(root) / ("run" if rank == 0 else f"would-be-run-of-rank{rank}")
        tr = make_trainer(run, steps=STEPS, lr=1e-2, batch_size=8, checkpoint_every=10, ctx=ctx)
        assert tr.micro_batch == 4
        res = tr.fit()
        assert res.step == STEPS
        params = {k: v.detach().clone().contiguous() for k, v in tr.net.state_dict().items()}
        save_file(params, str(Path(root) / f"params-rank{rank}.safetensors"))
    finally:
        cleanup_distributed(ctx)


def test_ddp_two_gloo_processes(tmp_path):
    from test_trainer import TinyMasked, ambient_loss, tiny_net

    from ambient_imaging.datasets import collate_measurements

    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    p0 = load_file(str(tmp_path / "params-rank0.safetensors"))
    p1 = load_file(str(tmp_path / "params-rank1.safetensors"))
    assert all(torch.equal(p0[k], p1[k]) for k in p0)  # ranks in sync
    assert not (tmp_path / "would-be-run-of-rank1").exists()  # only rank 0 wrote files
    run = tmp_path / "run"
    assert latest_checkpoint(run).name == f"step-{STEPS:08d}"
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, STEPS + 1))
    assert int(rows[-1].split(",")[1]) == STEPS * 8  # images counted over both ranks
    prior = load_prior(run, ema=False)
    assert all(torch.equal(prior.denoiser.state_dict()[k], p0[k]) for k in p0)
    # the loss went down (fixed σ/noise draws over the whole set, vs. a fresh network)
    ds = TinyMasked()
    batch = collate_measurements([ds[i] for i in range(len(ds))])
    batch.reference = None

    def fixed_loss(net) -> float:
        with torch.no_grad():
            gens = [torch.Generator().manual_seed(100 + s) for s in range(4)]
            return float(torch.stack([ambient_loss()(net, batch, generator=g).mean() for g in gens]).mean())

    torch.manual_seed(0)
    assert fixed_loss(prior.denoiser) < 0.9 * fixed_loss(tiny_net())
