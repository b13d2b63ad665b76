"""Pieces the two training loops (pretrain, fine-tune/linear evaluation) share."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

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
