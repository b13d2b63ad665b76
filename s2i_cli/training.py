"""Pieces the two training loops (pretrain, fine-tune/linear evaluation) share."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch


def cosine_lr(step: int, total: int, base: float, warmup: int = 0, min_lr: float = 0.0) -> float:
    """Linear warm-up over `warmup` steps, then half-cycle cosine from `base` to `min_lr`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class TrainingError(ValueError):
    """A run that cannot go on (it diverged, a checkpoint is unreadable): one line with the step or file and the fix."""


class LossGuard:
    """Stops a diverging run at once, before a NaN reaches a checkpoint (MAE's engine checks every step).

    `step(loss, n)` checks the previous step's loss: reading it waits only for work the GPU has
    already done, so the check does not drain the queue of the step just launched. `check()`
    reads the pending one: call it before every checkpoint."""

    def __init__(self, checkpoint: Path, saved_step: int | None = None):
        self.checkpoint = Path(checkpoint)
        self.saved_step = saved_step  # step of the last checkpoint written (None: none yet)
        self.pending: tuple[torch.Tensor, int] | None = None

    def step(self, loss: torch.Tensor, step: int) -> None:
        self.check()
        self.pending = (loss.detach(), step)

    def check(self) -> None:
        if self.pending is None:
            return
        loss, step = self.pending
        self.pending = None
        value = loss.item()
        if not math.isfinite(value):
            last = (f"the last good checkpoint is {self.checkpoint} (step {self.saved_step})"
                    if self.saved_step is not None else "no checkpoint was written before it")
            raise TrainingError(f"loss is {value} at step {step}: training diverged and stopped; {last}; "
                                f"lower the learning rate (--lr) and start again or --resume")


def rng_state() -> dict:
    """The global random states a training step may use (drop path: torch; timm's Mixup: numpy)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    if torch.cuda.is_available() and "cuda" in state and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
