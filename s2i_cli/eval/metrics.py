"""Classification metrics of an evaluation: top-k accuracy, the confusion matrix, per-class
accuracy, and the confusion matrix drawn as a PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """{k: fraction of rows whose label is among the k highest scores} (k capped at the class count)."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {k: float("nan") for k in ks}
    ranked = np.argsort(-scores, axis=1, kind="stable")
    return {k: float((ranked[:, :min(k, scores.shape[1])] == labels[:, None]).any(axis=1).mean()) for k in ks}


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: rows are true classes, columns predicted ones."""
    flat = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(pred, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for a class absent from the test side)."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: Path, title: str = "") -> Path:
    """Row-normalised confusion matrix as a PNG with class names on both axes (Agg, no pyplot state).
    Classes that are neither in the test set nor ever predicted are left out, so a store
    holding a few of a dataset's classes gets a readable picture."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    seen = np.flatnonzero((matrix.sum(axis=0) > 0) | (matrix.sum(axis=1) > 0))
    matrix = matrix[np.ix_(seen, seen)]
    class_names = [class_names[i] for i in seen]
    n = len(class_names)
    totals = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    side = max(5.0, 0.25 * n + 3.0)  # a quarter inch per class: 6 pt names stay legible at 120 classes
    font = 9.0 if n <= 20 else 6.0
    names = [name if len(name) <= 32 else name[:31] + "…" for name in class_names]
    fig = Figure(figsize=(side + 1.5, side))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(n), labels=names, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels=names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=font,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
