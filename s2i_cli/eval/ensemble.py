"""Score ensembles over runs (docs/design.md §4, `s2i evaluate --ensemble`).

Evaluating a run saves its per-sample class scores on the test side beside results.json,
as `scores-<key>.npz` (sample names, labels, scores, and what was evaluated). An ensemble
loads one such file per run, joins them by sample name, refuses runs that did not score the
same thing (another protocol, another mode, other samples or labels, another class count)
with a one-line reason, and sums the runs' softmax probabilities with the given weights:
how the multi-stream skeleton methods (joint, bone, motion, bone-motion) report results."""
from __future__ import annotations

import hashlib
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

SCORES = "scores-{key}.npz"


class EnsembleError(Exception):
    """Runs that cannot be ensembled, or a missing or unreadable score file; one line."""


@dataclass(frozen=True)
class RunScores:
    """One run's test-side scores: softmax(scores) are its class probabilities."""

    run: str  # the run directory, as the user named it
    key: str  # the evaluation it came from, e.g. "xsub-finetune"
    protocol: str
    mode: str
    dataset: str
    stream: str
    names: np.ndarray  # (N,) sample names
    labels: np.ndarray  # (N,) int64
    scores: np.ndarray  # (N, K) float32
    class_names: tuple[str, ...]


def save_scores(out_dir: Path, key: str, *, names: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                protocol: str, mode: str, dataset: str, stream: str, class_names: list[str]) -> Path:
    """Write out_dir/scores-<key>.npz (temporary file, then rename). k-NN votes are saved as
    log-probabilities, so softmax gives back their normalised votes."""
    from ..files import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to the temporary name
            np.savez(f, names=np.asarray([str(n) for n in names], dtype=str),
                     labels=np.asarray(labels, dtype=np.int64), scores=np.asarray(scores, dtype=np.float32),
                     protocol=protocol, mode=mode, dataset=dataset, stream=stream, key=key,
                     class_names=np.asarray(class_names, dtype=str))

    return atomic_write(Path(out_dir) / SCORES.format(key=key), write)


def load_scores(path: Path, run: str | None = None) -> RunScores:
    """Read a score file without unpickling anything; a bad file is a one-line EnsembleError."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            scores = RunScores(run=run or path.parent.name, key=str(data["key"]), protocol=str(data["protocol"]),
                               mode=str(data["mode"]), dataset=str(data["dataset"]), stream=str(data["stream"]),
                               names=data["names"], labels=data["labels"].astype(np.int64),
                               scores=data["scores"].astype(np.float32),
                               class_names=tuple(str(c) for c in data["class_names"]))
    except (OSError, KeyError, ValueError) as exc:
        raise EnsembleError(f"{path}: not a readable score file ({exc}); re-run its `s2i evaluate`") from exc
    if scores.scores.ndim != 2 or len(scores.scores) != len(scores.names) or len(scores.labels) != len(scores.names):
        raise EnsembleError(f"{path}: names, labels and scores disagree in length; re-run its `s2i evaluate`")
    return scores


def find_scores(run_dir: Path, protocol: str | None, mode: str | None) -> RunScores:
    """The run's test scores of a whole-training-set evaluation on its own store, for
    `protocol` and `mode` (either may be None when the run has only one)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise EnsembleError(f"--ensemble: no run directory {run_dir}")
    found = []
    for path in sorted(run_dir.glob(SCORES.format(key="*"))):
        with np.load(path, allow_pickle=False) if zipfile.is_zipfile(path) else nullcontext({}) as data:
            what = {k: str(data[k]) for k in ("key", "protocol", "mode") if k in data}
        if len(what) < 3:
            raise EnsembleError(f"{path}: not a readable score file; re-run its `s2i evaluate`")
        if what["key"] == f"{what['protocol']}-{what['mode']}" and protocol in (None, what["protocol"]) \
                and mode in (None, what["mode"]):
            found.append((path, what["key"]))
    asked = " ".join(f"--{k} {v}" for k, v in (("protocol", protocol), ("mode", mode)) if v)
    if not found:
        raise EnsembleError(f"{run_dir} has no saved test scores{' for ' + asked if asked else ''}: run "
                            f"`s2i evaluate --run {run_dir}{' ' + asked if asked else ''}` first")
    if len(found) > 1:
        raise EnsembleError(f"{run_dir} has test scores of several evaluations ({', '.join(k for _, k in found)}): "
                            f"pass --protocol and --mode")
    return load_scores(found[0][0], run=str(run_dir))


def join(runs: list[RunScores]) -> list[RunScores]:
    """The runs with their rows in the first run's sample order, or EnsembleError saying why
    they cannot be ensembled."""
    first = runs[0]
    if len(set(first.names.tolist())) != len(first.names):
        raise EnsembleError(f"{first.run}: its score file names a sample twice; re-run its `s2i evaluate`")
    order = np.argsort(first.names)
    joined = [first]
    for r in runs[1:]:
        for what in ("protocol", "mode", "dataset"):
            if getattr(r, what) != getattr(first, what):
                raise EnsembleError(f"{r.run} was evaluated with {what} {getattr(r, what)}, {first.run} with "
                                    f"{getattr(first, what)}: ensemble runs of one {what}")
        if r.scores.shape[1] != first.scores.shape[1]:
            raise EnsembleError(f"{r.run} scores {r.scores.shape[1]} classes, {first.run} "
                                f"{first.scores.shape[1]}: ensemble runs of one store")
        pos = order[np.searchsorted(first.names, r.names, sorter=order).clip(0, len(order) - 1)]
        same = (len(r.names) == len(first.names) and len(set(r.names.tolist())) == len(r.names)
                and np.array_equal(first.names[pos], r.names))
        if not same:
            extra = sorted(set(r.names.tolist()) ^ set(first.names.tolist()))
            raise EnsembleError(f"{r.run} scored other test samples than {first.run} ({len(r.names)} vs "
                                f"{len(first.names)}{', e.g. ' + extra[0] if extra else ''}): ensemble runs "
                                f"evaluated on stores with the same samples")
        rows = np.empty(len(pos), dtype=np.int64)
        rows[pos] = np.arange(len(pos))  # row of r holding first's sample i
        if not np.array_equal(r.labels[rows], first.labels):
            raise EnsembleError(f"{r.run} gives some test samples other labels than {first.run}: "
                                f"ensemble runs evaluated on stores with the same labels")
        joined.append(replace(r, names=r.names[rows], labels=r.labels[rows], scores=r.scores[rows]))
    return joined


def parse_weights(text: str | None, count: int) -> list[float]:
    """"0.6,0.6,0.4" -> [0.6, 0.6, 0.4]; None -> equal weights. One per run, none negative."""
    if text is None:
        return [1.0] * count
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise EnsembleError(f"--weights {text}: give numbers separated by commas, e.g. 0.6,0.6,0.4") from None
    if len(weights) != count:
        raise EnsembleError(f"--weights gives {len(weights)} weights for {count} runs: give one per run")
    if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) == 0:
        raise EnsembleError(f"--weights {text}: weights must be finite, not negative, and not all zero")
    return weights


def softmax(scores: np.ndarray) -> np.ndarray:
    z = scores.astype(np.float64) - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def combine(runs: list[RunScores], weights: list[float]) -> np.ndarray:
    """(N, K) sum over runs of weight × softmax(scores): the ensemble's class scores."""
    return sum(w * softmax(r.scores) for r, w in zip(runs, weights))


def ensemble_dir(runs_root: Path, runs: list[RunScores]) -> Path:
    """runs/ensemble-A+B+C: where an ensemble's results.json and confusion matrix go."""
    name = "ensemble-" + "+".join(Path(r.run).name for r in runs)
    if len(name) > 96:
        name = f"{name[:80]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return Path(runs_root) / name


def evaluate_ensemble(run_dirs: list[Path], *, protocol: str | None, mode: str | None, weights: str | None,
                      runs_root: Path) -> dict[str, Any]:
    """Join the runs' test scores, sum their weighted softmax probabilities, and write the
    ensemble's results (top-1/top-5 of each run and of the ensemble) like an evaluation's."""
    from .metrics import topk_accuracy
    from .results import write_results

    if len(run_dirs) < 2:
        raise EnsembleError("--ensemble needs two or more runs, e.g. --ensemble runs/A,runs/B")
    runs = join([find_scores(d, protocol, mode) for d in run_dirs])
    w = parse_weights(weights, len(runs))
    members = []
    for r, weight in zip(runs, w):
        acc = topk_accuracy(r.scores, r.labels, (1, 5))
        members.append({"run": r.run, "stream": r.stream, "weight": weight, "top1": acc[1], "top5": acc[5]})
    first = runs[0]
    key = first.key if len(set(w)) == 1 else f"{first.key}-w{'+'.join(f'{x:g}' for x in w)}"
    out_dir = ensemble_dir(runs_root, runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_results(out_dir, key, combine(runs, w), first.labels, list(first.class_names),
                         {"dataset": first.dataset}, protocol=first.protocol, mode=first.mode, ensemble=members,
                         n_test=len(first.labels))


def ensemble_table(entry: dict[str, Any]) -> Table:
    """Each run's top-1/top-5 and weight, then the ensemble's."""
    table = Table(title=escape(f"{entry['run']}: {entry['key']} on {entry['dataset']}, "
                               f"{entry['n_test']} test samples"))
    for column in ("run", "stream", "weight", "top-1", "top-5"):
        table.add_column(column, justify="left" if column in ("run", "stream") else "right")
    for m in entry["ensemble"]:
        table.add_row(escape(m["run"]), m["stream"], f"{m['weight']:g}", f"{100 * m['top1']:.2f} %",
                      f"{100 * m['top5']:.2f} %")
    table.add_row("[bold]ensemble[/]", "", "", f"[bold]{100 * entry['top1']:.2f} %[/]",
                  f"[bold]{100 * entry['top5']:.2f} %[/]")
    table.add_row("confusion matrix", "", "", "", escape(entry["confusion_png"]))
    return table
