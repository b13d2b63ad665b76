"""Benchmark what TensorBoard logging costs a pretraining step (not a test): the time of one
step's `RunLog.step` (loss, lr and the grad norm every 10 steps, as pretrain.py writes them)
against the time of one optimizer step of the tiny ViT the tests use, in the same run.

    .venv/bin/python scripts/bench_runlog.py [--steps 200]"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2i_cli.train.mae import MaskedAutoencoder  # noqa: E402
from s2i_cli.train.runlog import RunLog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = MaskedAutoencoder("vit_tiny", 32, decoder_dim=64, decoder_depth=2, decoder_heads=4)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    images = torch.randn(16, 3, 32, 32)

    def train_step() -> float:
        loss, _, _ = net(images)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(5):
        train_step()
    t0 = time.perf_counter()
    for _ in range(20):
        train_step()
    step_s = (time.perf_counter() - t0) / 20
    with tempfile.TemporaryDirectory() as tmp, RunLog(Path(tmp)) as log:
        t0 = time.perf_counter()
        for step in range(1, args.steps + 1):
            norm = {"grad_norm": 1.0} if step % 10 == 0 else {}
            log.step(step, loss=1.0 / step, lr=1e-4, **norm)
        log_s = (time.perf_counter() - t0) / args.steps
    print(f"tiny ViT step (batch 16, 32 px, 1 thread): {1e3 * step_s:.2f} ms; RunLog.step: {1e6 * log_s:.1f} us "
          f"= {100 * log_s / step_s:.2f} % of the step")


if __name__ == "__main__":
    main()
