"""An evaluation's results: the key it is filed under, results.json in the run directory (one
entry per evaluation, merged), and the tables `s2i evaluate` prints."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from ..files import atomic_write
from ..train.runs import RESULTS, RunError
from .metrics import confusion_matrix, per_class_accuracy, plot_confusion, topk_accuracy


def result_key(protocol: str, mode: str, fraction: float | None, seed: int, transfer_tag: str | None) -> str:
    key = f"{protocol}-{mode}"
    if fraction is not None and fraction < 1.0:
        key += f"-f{fraction:g}-s{seed}"
    if transfer_tag:
        key += f"-on-{transfer_tag}"
    return key


def save_result(out_dir: Path, key: str, entry: dict[str, Any]) -> Path:
    """Merge `entry` under `key` into out_dir/results.json (other evaluations are kept)."""
    path = Path(out_dir) / RESULTS
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc.setdefault("run", Path(out_dir).name)
    doc.setdefault("results", {})[key] = entry
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(doc, indent=2, allow_nan=True)))


def load_all_results(runs_root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{run name: {result key: entry}} for every runs_root/*/results.json, by run name."""
    found = {}
    for path in sorted(Path(runs_root).glob(f"*/{RESULTS}")):
        try:
            found[path.parent.name] = json.loads(path.read_text()).get("results", {})
        except json.JSONDecodeError:
            continue
    return found


def write_results(out_dir: Path, key: str, scores: np.ndarray, test_y: np.ndarray, class_names: list[str],
                  facts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Top-1/top-5, per-class accuracy and the confusion matrix (PNG and JSON) into out_dir/results.json."""
    acc = topk_accuracy(scores, test_y, (1, 5))
    matrix = confusion_matrix(scores.argmax(axis=1), test_y, len(class_names))
    per_class = per_class_accuracy(matrix)
    png = plot_confusion(matrix, class_names, out_dir / f"confusion-{key}.png",
                         f"{out_dir.name} {key}: top-1 {100 * acc[1]:.1f} %")
    present = per_class[~np.isnan(per_class)]
    entry = {"key": key, "run": out_dir.name, "dataset": facts["dataset"], **fields, "top1": acc[1], "top5": acc[5],
             "mean_class": float(present.mean()) if len(present) else float("nan"),  # Toyota's headline metric
             "per_class": {name: (None if np.isnan(a) else float(a)) for name, a in zip(class_names, per_class)},
             "confusion": matrix.tolist(), "confusion_png": png.name, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    save_result(out_dir, key, entry)
    from ..train.runlog import EVAL_LOGS, RunLog  # tensorboard: imported only when a result is written

    with RunLog(out_dir / EVAL_LOGS) as log:  # TensorBoard: the run's curves and its evaluations in one place
        log.result(key, 0, entry)
    return {**entry, "out_dir": str(out_dir)}


def results_table(entry: dict[str, Any], worst: int = 5) -> Table:
    """One evaluation: top-1/top-5 and the classes it gets most wrong."""
    table = Table(title=escape(f"{entry['run']}: {entry['key']} on {entry['dataset']}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("top-1", f"{100 * entry['top1']:.2f} %")
    table.add_row("top-5", f"{100 * entry['top5']:.2f} %")
    if "mean_class" in entry:
        table.add_row("mean per-class accuracy", f"{100 * entry['mean_class']:.2f} %")
    table.add_row("train / test samples", f"{entry['n_train']} / {entry['n_test']}")
    table.add_row("weights", escape(str(entry["weights"] or "random init")))
    if entry.get("transductive"):
        table.add_row("[bold]transductive[/]", f"{entry.get('pretrained_test_samples')} test samples were pretrained on")
    per_class = [(acc, name) for name, acc in entry["per_class"].items() if acc is not None]
    for acc, name in sorted(per_class)[:worst]:
        table.add_row(f"[dim]worst: {escape(name)}[/]", f"{100 * acc:.1f} %")
    table.add_row("confusion matrix", escape(entry["confusion_png"]))
    return table


def summary_table(runs_root: Path) -> Table:
    """Every evaluation (rows) of every run (columns): top-1 / top-5 in percent."""
    found = load_all_results(runs_root)
    if not found:
        raise RunError(f"no results under {runs_root}/: run `s2i evaluate` first")
    keys = sorted({key for results in found.values() for key in results})
    table = Table(title=escape(f"results under {runs_root}/ (top-1 / top-5 / mean per-class %)"))
    table.add_column("evaluation")
    for run in found:
        table.add_column(escape(run), justify="right")
    for key in keys:
        cells = []
        for results in found.values():
            entry = results.get(key)
            mean_class = f" / {100 * entry['mean_class']:.1f}" if entry and "mean_class" in entry else ""
            cells.append(f"{100 * entry['top1']:.1f} / {100 * entry['top5']:.1f}{mean_class}" if entry else "-")
        table.add_row(key, *cells)
    return table


def seeds_lines(entries: list[dict[str, Any]]) -> list[str]:
    """Mean ± std of top-1 and mean per-class accuracy over evaluations of several seeds (none for one)."""
    if len(entries) < 2:
        return []
    import statistics

    first, last = entries[0]["seed"], entries[-1]["seed"]
    return [f"{name} over seeds {first}..{last}: {statistics.fmean(v):.2f} ± {statistics.stdev(v):.2f} %"
            for name, v in (("top-1", [100 * e["top1"] for e in entries]),
                            ("mean per-class", [100 * e["mean_class"] for e in entries]))]
