"""What a run writes for a person to watch it: `metrics.jsonl` (one JSON line per epoch),
TensorBoard event files in the run directory (`tensorboard --logdir runs` shows every run),
and `loss.png`, redrawn at each epoch end.

TensorBoard's writer queues events and writes them on its own thread, so a scalar per step
costs a queue put; its import (tensorboard, protobuf) happens here only, never on the
conversion path. A run resumed after a crash writes into the same directory: TensorBoard
shows both files' points, the crashed run's points after the checkpoint replaced by the resumed run's (`purge_step`). TensorBoard
drops a run's points past an earlier step it meets (it takes that for a restart), so whatever
does not continue the pretraining's steps is a run of its own, in a sub-folder:
`runs/NAME/finetune/<key>/` for a fine-tuning, `runs/NAME/eval/` for the evaluations."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..views.curves import draw_loss_curve
from .runs import LOSS_PNG, METRICS

EVAL_LOGS = "eval"  # runs/NAME/eval/: TensorBoard events of the evaluations
FINETUNE_LOGS = "finetune"  # runs/NAME/finetune/<key>/: one fine-tuning's


class RunLog:
    """The run's metrics, TensorBoard events and loss curve; `enabled=False` (ranks other than 0)
    writes nothing."""

    def __init__(self, run_dir: Path, enabled: bool = True, purge_step: int | None = None):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge_step or None)

    def step(self, step: int, **values: float) -> None:
        """Scalars of one optimizer step (loss, lr, grad norm): tags `train/<name>`."""
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"train/{name}", value, step)

    def epoch(self, record: dict[str, Any], metrics: bool = True) -> None:
        """One epoch's record: a line of metrics.jsonl (when `metrics`), its numbers in
        TensorBoard under `epoch/`, and loss.png redrawn from every line so far."""
        if not self.enabled:
            return
        step = int(record["step"])
        for name, value in record.items():
            if isinstance(value, (int, float)) and name not in ("step", "epoch") and value is not None:
                self.writer.add_scalar(f"epoch/{name}", value, step)
        if metrics:
            with open(self.run_dir / METRICS, "a") as f:
                f.write(json.dumps(record) + "\n")
            lines = [json.loads(line) for line in (self.run_dir / METRICS).read_text().splitlines() if line.strip()]
            draw_loss_curve(lines, self.run_dir / LOSS_PNG)
        self.writer.flush()

    def image(self, tag: str, step: int, picture: np.ndarray) -> None:
        """An (H, W, 3) uint8 picture, e.g. the reconstructions."""
        if self.writer is not None:
            self.writer.add_image(tag, picture, step, dataformats="HWC")

    def result(self, key: str, step: int, entry: dict[str, Any]) -> None:
        """An evaluation's top-1, top-5 and mean per-class accuracy, tags `<key>/...` (in the
        run's `eval/` folder)."""
        if self.writer is not None:
            for name in ("top1", "top5", "mean_class"):
                if isinstance(entry.get(name), (int, float)):
                    self.writer.add_scalar(f"{key}/{name}", entry[name], step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
