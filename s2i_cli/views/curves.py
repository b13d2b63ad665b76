"""The loss curve of a run (`loss.png`), drawn from its `metrics.jsonl` records: loss per epoch
on a log scale, the learning rate on a second axis."""
from __future__ import annotations

from pathlib import Path

from ..files import atomic_write


def draw_loss_curve(records: list[dict], path: Path, title: str = "") -> Path:
    """A 900 x 500 px PNG of loss and lr against epoch; rewritten whole (atomically) each call."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    ax.plot(epochs, [r["loss"] for r in records], marker="o" if len(records) < 30 else None, color="tab:blue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:blue")
    if all(r["loss"] > 0 for r in records):
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    lr = ax.twinx()
    lr.plot(epochs, [r["lr"] for r in records], color="tab:orange", alpha=0.7)
    lr.set_ylabel("learning rate", color="tab:orange")
    ax.set_title(title or path.parent.name)
    fig.tight_layout()

    def save(tmp: Path) -> None:
        fig.savefig(tmp, format="png")

    try:
        return atomic_write(path, save)
    finally:
        plt.close(fig)
