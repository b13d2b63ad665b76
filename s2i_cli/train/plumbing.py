"""The plumbing every training loop here shares (pretraining, fine-tuning, the linear head): the
learning-rate schedule and its setting on parameter groups, bf16 autocast, the finite-loss guard,
random states, files written atomically, and checkpoints written off the training thread."""
from __future__ import annotations

import math
import os
import pickle
import re
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_write
from ..safe_text import one_line


class TrainingError(ValueError):
    """A run that cannot go on (it diverged, a checkpoint is unreadable): one line with the step or file and the fix."""


# --- learning rate ---

def cosine_lr(step: int, total: int, base: float, warmup: int = 0, min_lr: float = 0.0) -> float:
    """Linear warm-up over `warmup` steps, then half-cycle cosine from `base` to `min_lr`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class Schedule:
    """A run's plan in optimizer steps: warm-up then cosine from `peak_lr` to `min_lr` over `total_steps`."""
    peak_lr: float
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    min_lr: float = 0.0

    def lr(self, step: int) -> float:
        return cosine_lr(step, self.total_steps, self.peak_lr, warmup=self.warmup_steps, min_lr=self.min_lr)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr, scaled by its `lr_scale` (timm's layer-decay groups carry one), as MAE's lr_sched."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def autocast(device: torch.device):
    """bf16 autocast on CUDA only: on these CPUs bf16 is ~50x slower (stack-notes)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()


# --- the finite-loss guard ---

class LossGuard:
    """Stops a diverging run at once, before a NaN reaches a checkpoint (MAE's engine checks every step).

    `step(loss, n)` checks the previous step's loss: reading it waits only for work the GPU has
    already done, so the check does not drain the queue of the step just launched. `check()`
    reads the pending one: call it before every checkpoint."""

    def __init__(self, checkpoint: Path, saved_step: int | None = None):
        self.checkpoint = Path(checkpoint)
        self.saved_step = saved_step  # step of the last checkpoint written (None: none yet)
        self.pending: tuple[torch.Tensor, int] | None = None
        self.last = float("nan")  # the last loss checked (for a progress bar: reading it costs nothing)

    def step(self, loss: torch.Tensor, step: int) -> None:
        self.check()
        self.pending = (loss.detach(), step)

    def check(self) -> None:
        if self.pending is None:
            return
        loss, step = self.pending
        self.pending = None
        value = self.last = loss.item()
        if not math.isfinite(value):
            last = (f"the last good checkpoint is {self.checkpoint} (step {self.saved_step})"
                    if self.saved_step is not None else "no checkpoint was written before it")
            raise TrainingError(f"loss is {value} at step {step}: training diverged and stopped; {last}; "
                                f"lower the learning rate (--lr) and start again or --resume")


# --- random states ---

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


# --- files ---

def save_checkpoint(state: dict, path: Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


# what torch's weights-only unpickler says of a global it refuses (zip or legacy checkpoints)
UNSUPPORTED_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL (\S+)", re.IGNORECASE)


def load_checkpoint(path: Path, fix: str) -> dict:
    """A checkpoint's dict, read weights-only (never an untrusted pickle). A file that cannot be
    read raises one TrainingError line naming it, what is wrong and `fix` (what to do)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}: {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        refused = UNSUPPORTED_GLOBAL.search(str(exc)) if isinstance(exc, pickle.UnpicklingError) else None
        if refused or zipfile.is_zipfile(path) and "weights only" in str(exc).lower():
            what = f" ({one_line(refused.group(1), 80)})" if refused else ""
            raise TrainingError(f"{path} holds code or Python objects besides tensors{what}, which s2i refuses to "
                                f"load (an untrusted pickle could run them): save a plain state dict") from exc
        reason = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else type(exc).__name__
        raise TrainingError(f"{path} is truncated or corrupt ({reason[:120]}): {fix}") from exc
    if not isinstance(state, dict):
        raise TrainingError(f"{path} holds a {type(state).__name__}, not a checkpoint dict: {fix}")
    return state


def restore_training_state(state: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           path: Path, fix: str) -> int:
    """Load a checkpoint's weights, optimizer and random state into a run; the step it reached.

    An optimizer state of another parameter-group layout (a checkpoint of another version) is
    a one-line TrainingError naming `path` and `fix`."""
    model.load_state_dict(state["model"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except ValueError as exc:
        raise TrainingError(f"{path}: its optimizer state does not fit this version's parameter groups ({exc}): "
                            f"{fix}") from exc
    set_rng_state(state.get("rng"))
    return int(state["step"])


def to_cpu(obj: Any) -> Any:
    """A copy of `obj` (nested dicts, lists, tuples) whose tensors are detached CPU copies."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes checkpoints on a background thread while training goes on: `save` copies the state to
    the CPU (the one pause training takes), waits for the previous write, and hands the copy over.
    Errors come back at the next `save` or at `close`; leaving the `with` block waits for the last write."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: Future | None = None

    def save(self, state: dict, path: Path, keep: Path | None = None) -> None:
        """Write `state` to `path`; `keep` also names the written file (a hard link, no copy)."""
        state = to_cpu(state)
        self.wait()
        self._pending = self._pool.submit(self._write, state, Path(path), keep)

    @staticmethod
    def _write(state: dict, path: Path, keep: Path | None) -> None:
        save_checkpoint(state, path)
        if keep is not None:
            keep.unlink(missing_ok=True)
            os.link(path, keep)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)
