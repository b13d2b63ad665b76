"""Evaluate a pretrained encoder on a store's protocol (docs/design.md §4, `s2i evaluate`).

Three modes, all ending in the same metrics (top-1, top-5, per-class accuracy, a confusion
matrix) written to `results.json` and a PNG in the run directory:

- `linear`: frozen encoder; features of both sides are extracted once and cached in the run
  directory, then a linear head behind BatchNorm1d(affine=False) is trained on them (MAE).
- `knn`: cosine k-NN with temperature-weighted votes on the same cached features.
- `finetune`: the whole encoder plus a new head, layer-wise lr decay, drop path, label
  smoothing, optional mixup/cutmix, AdamW with a warmed-up cosine schedule; checkpointed
  every epoch so `--resume` continues it.

Weights come from a pretraining run (`runs/NAME/checkpoint-last.pt`), from a file alone
(`init=PATH`, e.g. ImageNet weights) or from nothing (`run="none"`, random init), so a user
can see what pretraining adds. The function to call is `evaluate`; `summary_table` puts the
results of several runs side by side."""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from torch import nn

from s2i_cli.store import StoreError, open_store, split_indices
from s2i_cli.training import LossGuard, atomic_save, cosine_lr, rng_state, set_rng_state

MODES = ("linear", "knn", "finetune")
POOLS = ("token", "avg")  # class token, or the mean of the patch tokens
CHECKPOINT = "checkpoint-last.pt"  # what a pretraining run leaves in its directory
RESULTS = "results.json"


class EvaluateError(Exception):
    """A user error (no run, mismatched store, nothing to resume, ...): one line with the fix."""


# ---------------------------------------------------------------- which run, store, weights

def find_newest_run(runs_root: Path) -> Path:
    """The pretraining run under `runs_root` whose checkpoint was written last."""
    runs_root = Path(runs_root)
    candidates = [p.parent for p in runs_root.glob(f"*/{CHECKPOINT}") if (p.parent / "config.json").exists()]
    if not candidates:
        raise EvaluateError(f"no pretraining run under {runs_root}/ (a directory with config.json and {CHECKPOINT}): "
                            f"run `s2i pretrain STORE` first, or pass --run DIR")
    return max(candidates, key=lambda d: (d / CHECKPOINT).stat().st_mtime_ns)


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise EvaluateError(f"{run_dir} is not a run directory (no config.json): "
                            f"pass a directory made by `s2i pretrain`")
    return json.loads(path.read_text())


def store_facts(root) -> dict[str, Any]:
    """What evaluation needs from a store's attributes: dataset, image size, class names."""
    attrs = root.attrs["s2i"]
    _, _, height, width = root["images"].shape
    labels_max = int(root["label"][:].max()) if root["label"].shape[0] else -1
    names = list(attrs.get("class_names") or [str(c) for c in range(labels_max + 1)])
    return {"dataset": attrs.get("dataset", "unknown"), "img_size": height if height == width else (height, width),
            "class_names": names, "protocols": list(attrs.get("protocols", []))}


def size_text(size: int | tuple[int, int] | list[int]) -> str:
    h, w = (size, size) if isinstance(size, int) else size
    return f"{h}x{w}"


def check_compatible(config: dict[str, Any], facts: dict[str, Any], store_path: Path, *, recorded_store: bool) -> None:
    """Refuse a store whose images the run's encoder was not built for (or that changed under it)."""
    run_size = config.get("img_size")
    if run_size is not None and size_text(run_size) != size_text(facts["img_size"]):
        raise EvaluateError(f"image size mismatch: the run was pretrained on {size_text(run_size)} images but store "
                            f"{store_path} holds {size_text(facts['img_size'])}: convert the store with the run's size")
    run_classes = config.get("class_names")
    if recorded_store and run_classes is not None and len(run_classes) != len(facts["class_names"]):
        raise EvaluateError(f"number of classes mismatch: the run recorded {len(run_classes)} classes but store "
                            f"{store_path} now has {len(facts['class_names'])}: the store changed since pretraining; "
                            f"pass --store to evaluate on it anyway")


def choose_protocol(protocol: str | None, facts: dict[str, Any]) -> str:
    """The protocol asked for, or `xsub` (else the store's first) when none was."""
    if protocol is not None:
        return protocol
    if "xsub" in facts["protocols"]:
        return "xsub"
    if facts["protocols"]:
        return facts["protocols"][0]
    raise EvaluateError("the store has no protocols (no splits): it cannot be evaluated")


# ---------------------------------------------------------------------- labelled subsets

def balanced_subset(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted positions into `labels` keeping `fraction` of each class (at least one each).

    The same labels, fraction and seed always give the same subset."""
    if not 0.0 < fraction <= 1.0:
        raise EvaluateError(f"--fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = min(len(members), max(1, int(round(fraction * len(members)))))
        keep.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


# ----------------------------------------------------------------------- device, helpers

def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA only: on these CPUs bf16 is ~50x slower (stack-notes §5)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def make_progress(enabled: bool, console: Console | None = None) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console or Console(stderr=True),
                    disable=not enabled, transient=False)


def run_over_store(fn: Callable[[torch.Tensor], torch.Tensor], store_path: Path, indices: np.ndarray, *,
                   batch_size: int, device: torch.device, workers: int, progress: Progress, what: str) -> np.ndarray:
    """Apply `fn` to every normalised image of `indices`; rows come back in `indices` order."""
    from s2i_cli.data import make_loader, normalize

    indices = np.asarray(indices, dtype=np.int64)
    order = np.argsort(indices, kind="stable")
    sorted_idx = indices[order]
    out = None
    loader = make_loader(store_path, indices, batch_size, shuffle=False, workers=workers)
    task = progress.add_task(what, total=len(indices), info="")
    with torch.no_grad():
        for images, _, index in loader:
            with autocast(device):
                values = fn(normalize(images.to(device, non_blocking=True)))
            values = values.float().cpu().numpy()
            if out is None:
                out = np.zeros((len(indices), *values.shape[1:]), dtype=np.float32)
            rows = order[np.searchsorted(sorted_idx, index.numpy())]
            out[rows] = values
            progress.advance(task, len(values))
    progress.remove_task(task)
    if out is None:
        raise EvaluateError(f"no samples for {what}: the split is empty")
    return out


# ------------------------------------------------------------------- frozen features

def pool_tokens(tokens: torch.Tensor, pool: str, prefix: int) -> torch.Tensor:
    """(B, prefix + L, D) normed tokens -> (B, D): the class token or the mean patch token."""
    return tokens[:, 0] if pool == "token" else tokens[:, prefix:].mean(dim=1)


def extract_features(encoder: nn.Module, store_path: Path, indices: np.ndarray, *, pool: str = "token",
                     batch_size: int = 256, device: torch.device | None = None, workers: int = 0,
                     progress: Progress | None = None) -> np.ndarray:
    """(len(indices), D) float32 features of the frozen encoder, in `indices` order."""
    device = device or torch.device("cpu")
    encoder.eval().to(device)
    prefix = getattr(encoder, "num_prefix_tokens", 1)
    progress = progress or make_progress(False)
    return run_over_store(lambda x: pool_tokens(encoder.forward_features(x), pool, prefix), store_path, indices,
                          batch_size=batch_size, device=device, workers=workers, progress=progress,
                          what="features")


def features_cache_path(out_dir: Path, *, store_path: Path, protocol: str, weights: Path | None,
                        model: str, pool: str, seed: int) -> Path:
    """features-<protocol>-<pool>-<store hash>-<weights hash>.npz in the run directory.

    The store hash names the store's path; the weights hash its modification time, the weights
    file and its modification time, the model (and the seed of a random init), so a newer
    checkpoint or a re-converted store is never served stale features."""
    store_path = Path(store_path).resolve()

    def mtime(p: Path) -> int:
        return p.stat().st_mtime_ns if p.exists() else 0

    def digest(value: Any, n: int) -> str:
        return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:n]

    state = {"store_mtime": mtime(store_path / "zarr.json"), "model": model,
             "weights": str(Path(weights).resolve()) if weights else None,
             "weights_mtime": mtime(Path(weights)) if weights else None, "seed": None if weights else seed}
    return Path(out_dir) / f"features-{protocol}-{pool}-{digest(str(store_path), 6)}-{digest(state, 8)}.npz"


def cached_features(encoder_fn: Callable[[], nn.Module], cache: Path, store_path: Path, sides: dict[str, np.ndarray],
                    labels: np.ndarray, *, pool: str, batch_size: int, device: torch.device, workers: int,
                    progress: Progress) -> dict[str, np.ndarray]:
    """{"train_x", "train_y", "train_index", "test_x", ...}: from `cache` if it holds these indices, else extracted."""
    if cache.exists():
        with np.load(cache) as data:
            found = dict(data)
        if all(np.array_equal(found.get(f"{side}_index"), idx) for side, idx in sides.items()):
            return found
    encoder = encoder_fn()
    found = {}
    for side, idx in sides.items():
        found[f"{side}_x"] = extract_features(encoder, store_path, idx, pool=pool, batch_size=batch_size,
                                              device=device, workers=workers, progress=progress)
        found[f"{side}_y"] = labels[idx].astype(np.int64)
        found[f"{side}_index"] = idx
    cache.parent.mkdir(parents=True, exist_ok=True)
    for stale in cache.parent.glob(cache.name.rsplit("-", 1)[0] + "-*.npz"):
        stale.unlink()  # same store, protocol and pool, older weights: hundreds of MB each on NTU120
    tmp = cache.with_name(cache.stem + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **found)
    tmp.replace(cache)
    return found


# --------------------------------------------------------------------- linear probe

def train_linear_head(features: np.ndarray, labels: np.ndarray, num_classes: int, *, epochs: int = 100,
                      batch_size: int = 256, lr: float | None = None, weight_decay: float = 0.0, seed: int = 0,
                      device: torch.device | None = None, progress: Progress | None = None) -> nn.Module:
    """BatchNorm1d(affine=False) + Linear trained with SGD (momentum 0.9, cosine) on fixed features."""
    device = device or torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.as_tensor(features, dtype=torch.float32, device=device)
    y = torch.as_tensor(labels, dtype=torch.int64, device=device)
    head = nn.Sequential(nn.BatchNorm1d(x.shape[1], affine=False), nn.Linear(x.shape[1], num_classes)).to(device)
    nn.init.trunc_normal_(head[1].weight, std=0.01)
    nn.init.zeros_(head[1].bias)
    batch_size = max(2, min(batch_size, len(x)))  # BatchNorm needs two samples
    lr = lr if lr is not None else 0.1 * batch_size / 256
    optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    per_epoch = max(1, len(x) // batch_size)
    total = epochs * per_epoch
    progress = progress or make_progress(False)
    task = progress.add_task("linear head", total=epochs, info="")
    head.train()
    step = 0
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=generator).to(device)
        for b in range(per_epoch):
            batch = perm[b * batch_size:(b + 1) * batch_size]
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, lr, warmup=min(total // 10, 10 * per_epoch))
            loss = nn.functional.cross_entropy(head(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        progress.update(task, advance=1, info=f"loss {loss.item():.3f}")
    progress.remove_task(task)
    return head.eval()


def predict_linear(head: nn.Module, features: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    device = device or torch.device("cpu")
    with torch.no_grad():
        return head.to(device)(torch.as_tensor(features, dtype=torch.float32, device=device)).float().cpu().numpy()


# ------------------------------------------------------------------------------ k-NN

def knn_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, num_classes: int, *, k: int = 20,
                temperature: float = 0.07, chunk: int = 1024, device: torch.device | None = None) -> np.ndarray:
    """(n_test, num_classes) scores: the k most cosine-similar train samples vote exp(sim / T) each."""
    device = device or torch.device("cpu")
    train = nn.functional.normalize(torch.as_tensor(train_x, dtype=torch.float32, device=device), dim=1)
    labels = torch.as_tensor(train_y, dtype=torch.int64, device=device)
    k = max(1, min(k, len(train)))
    scores = []
    for start in range(0, len(test_x), chunk):
        query = nn.functional.normalize(torch.as_tensor(test_x[start:start + chunk], dtype=torch.float32,
                                                        device=device), dim=1)
        sims, nearest = (query @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(query), num_classes, device=device)
        votes.scatter_add_(1, labels[nearest], (sims / temperature).exp())
        scores.append(votes.cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros((0, num_classes), dtype=np.float32)


# ------------------------------------------------------------------------ fine-tuning

def finetune(encoder: nn.Module, store_path: Path, train_idx: np.ndarray, *, num_classes: int, checkpoint: Path,
             resume: bool = False, epochs: int = 100, batch_size: int = 64, base_lr: float = 5e-4,
             weight_decay: float = 0.05, layer_decay: float = 0.65, label_smoothing: float = 0.1,
             mixup: float = 0.0, cutmix: float = 0.0, warmup_epochs: int = 5, seed: int = 0,
             temporal_crop: float | None = None, device: torch.device | None = None, workers: int = 0,
             max_steps: int | None = None,
             progress: Progress | None = None, settings: dict[str, Any] | None = None) -> nn.Module:
    """Train the whole encoder (with its classification head) on `train_idx`; save `checkpoint` every epoch.

    lr = base_lr * batch_size / 256, scaled per layer by layer_decay ** depth-from-top.
    temporal_crop=F crops a random F..1 of each image's rows (frames) and resizes them back."""
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import param_groups_layer_decay

    from s2i_cli.data import make_loader, normalize

    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    encoder.to(device)
    batch_size = max(1, min(batch_size, len(train_idx)))
    use_mix = mixup > 0 or cutmix > 0
    if use_mix and batch_size % 2:
        batch_size = max(2, batch_size - 1)  # timm's Mixup flips the batch: it must be even
    lr = base_lr * batch_size / 256
    groups = param_groups_layer_decay(encoder, weight_decay=weight_decay,
                                      no_weight_decay_list=encoder.no_weight_decay(), layer_decay=layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
    step = 0
    if resume:
        if not checkpoint.exists():
            raise EvaluateError(f"--resume: no fine-tuning checkpoint at {checkpoint}; "
                                f"run without --resume to start one")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state["num_classes"] != num_classes:
            raise EvaluateError(f"number of classes mismatch: {checkpoint} was fine-tuned for {state['num_classes']} "
                                f"classes, the store has {num_classes}: pass --overwrite to start again")
        encoder.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        set_rng_state(state.get("rng"))
    mixer = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=label_smoothing,
                  num_classes=num_classes) if use_mix else None
    criterion = SoftTargetCrossEntropy() if use_mix else nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    loader = make_loader(store_path, train_idx, batch_size, shuffle=True, workers=workers, seed=seed, drop_last=True,
                         temporal_crop=(temporal_crop, 1.0) if temporal_crop else None)
    per_epoch = max(1, len(train_idx) // batch_size)
    total = epochs * per_epoch
    progress = progress or make_progress(False)
    task = progress.add_task("fine-tune", total=total, completed=min(step, total), info="")
    guard = LossGuard(checkpoint, saved_step=step if resume else None)
    last_step = total if max_steps is None else min(total, max_steps)
    while step < last_step:
        epoch, first = divmod(step, per_epoch)  # a run stopped mid-epoch resumes mid-epoch
        encoder.train()
        loader.dataset.set_epoch(epoch, skip_batches=first)
        for images, labels, _ in loader:
            images = normalize(images.to(device, non_blocking=True))
            labels = labels.to(device, non_blocking=True)
            if mixer is not None:
                images, labels = mixer(images, labels)
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, lr, warmup=warmup_epochs * per_epoch) * group.get("lr_scale", 1.0)
            with autocast(device):
                loss = criterion(encoder(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            guard.step(loss, step)
            progress.update(task, advance=1, info=f"epoch {epoch + 1}/{epochs} loss {loss.item():.3f}")
            if step >= last_step:
                break
        guard.check()
        atomic_save({"model": encoder.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                     "step": step, "num_classes": num_classes, "rng": rng_state(), "settings": settings or {}},
                    checkpoint)
        guard.saved_step = step
    progress.remove_task(task)
    return encoder.eval()


# --------------------------------------------------------------------------- metrics

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


# --------------------------------------------------------------------------- results

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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=True))
    tmp.replace(path)
    return path


def load_all_results(runs_root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """{run name: {result key: entry}} for every runs_root/*/results.json, by run name."""
    found = {}
    for path in sorted(Path(runs_root).glob(f"*/{RESULTS}")):
        try:
            found[path.parent.name] = json.loads(path.read_text()).get("results", {})
        except json.JSONDecodeError:
            continue
    return found


def results_table(entry: dict[str, Any], worst: int = 5) -> Table:
    """One evaluation: top-1/top-5 and the classes it gets most wrong."""
    table = Table(title=escape(f"{entry['run']}: {entry['key']} on {entry['dataset']}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("top-1", f"{100 * entry['top1']:.2f} %")
    table.add_row("top-5", f"{100 * entry['top5']:.2f} %")
    table.add_row("train / test samples", f"{entry['n_train']} / {entry['n_test']}")
    table.add_row("weights", escape(str(entry["weights"] or "random init")))
    per_class = [(acc, name) for name, acc in entry["per_class"].items() if acc is not None]
    for acc, name in sorted(per_class)[:worst]:
        table.add_row(f"[dim]worst: {escape(name)}[/]", f"{100 * acc:.1f} %")
    table.add_row("confusion matrix", escape(entry["confusion_png"]))
    return table


def summary_table(runs_root: Path) -> Table:
    """Every evaluation (rows) of every run (columns): top-1 / top-5 in percent."""
    found = load_all_results(runs_root)
    if not found:
        raise EvaluateError(f"no results under {runs_root}/: run `s2i evaluate` first")
    keys = sorted({key for results in found.values() for key in results})
    table = Table(title=escape(f"results under {runs_root}/ (top-1 / top-5 %)"))
    table.add_column("evaluation")
    for run in found:
        table.add_column(escape(run), justify="right")
    for key in keys:
        cells = []
        for results in found.values():
            entry = results.get(key)
            cells.append(f"{100 * entry['top1']:.1f} / {100 * entry['top5']:.1f}" if entry else "-")
        table.add_row(key, *cells)
    return table


# ------------------------------------------------------------------------ the command

def resolve_weights(run: str | Path | None, init: str | Path | None, store: str | Path | None,
                    runs_root: Path) -> tuple[Path | None, dict[str, Any], Path | None]:
    """(run directory or None for a baseline, its config, the weights file or None for random init)."""
    if init is not None and run is not None and str(run) != "none":
        raise EvaluateError("give --run (a pretraining run) or --init (weights alone), not both")
    if init is not None or str(run) == "none":
        weights = Path(init) if init is not None else None
        if weights is not None and not weights.is_file():
            raise EvaluateError(f"--init {weights}: no such file")
        if store is None:
            raise EvaluateError("without a pretraining run there is no recorded store: pass --store STORE")
        return None, {}, weights
    run_dir = Path(run) if run is not None else find_newest_run(runs_root)
    config = read_run_config(run_dir)
    if store is None and not config.get("store"):
        raise EvaluateError(f"{run_dir}/config.json records no store: pass --store STORE")
    weights = run_dir / CHECKPOINT if (run_dir / CHECKPOINT).exists() else config.get("init")
    return run_dir, config, Path(weights) if weights else None


def baseline_dir(runs_root: Path, store_path: Path, model: str, weights: Path | None) -> Path:
    """Where a baseline's results go: runs/<store>-scratch-<model> or runs/<store>-init-<weights>-<model>."""
    tag = "scratch" if weights is None else f"init-{weights.stem}"
    return Path(runs_root) / f"{Path(store_path).stem}-{tag}-{model}"


def frozen_scores(mode: str, load_encoder: Callable[[], nn.Module], out_dir: Path, store_path: Path, root,
                  protocol: str, train_idx: np.ndarray, test_idx: np.ndarray, labels: np.ndarray, num_classes: int, *,
                  weights: Path | None, model: str, pool: str, seed: int, epochs: int, batch_size: int,
                  lr: float | None, weight_decay: float, k: int, temperature: float, device: torch.device,
                  workers: int, progress: Progress) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Linear probe or k-NN on cached frozen features: (test scores, test labels, settings)."""
    all_train = split_indices(root, protocol, "train")  # cache the whole side; a --fraction subset is cut from it
    cache = features_cache_path(out_dir, store_path=store_path, protocol=protocol, weights=weights, model=model,
                                pool=pool, seed=seed)
    feats = cached_features(load_encoder, cache, store_path, {"train": all_train, "test": test_idx}, labels,
                            pool=pool, batch_size=batch_size, device=device, workers=workers, progress=progress)
    keep = np.isin(all_train, train_idx)
    train_x, train_y = feats["train_x"][keep], feats["train_y"][keep]
    if mode == "linear":
        head = train_linear_head(train_x, train_y, num_classes, epochs=epochs, batch_size=batch_size, lr=lr,
                                 weight_decay=weight_decay, seed=seed, device=device, progress=progress)
        scores = predict_linear(head, feats["test_x"], device)
        settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay}
    else:
        scores = knn_predict(train_x, train_y, feats["test_x"], num_classes, k=k, temperature=temperature,
                             device=device)
        settings = {"k": k, "temperature": temperature}
    return scores, feats["test_y"], {"pool": pool, "features": cache.name, **settings}


def write_results(out_dir: Path, key: str, scores: np.ndarray, test_y: np.ndarray, class_names: list[str],
                  facts: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Top-1/top-5, per-class accuracy and the confusion matrix (PNG and JSON) into out_dir/results.json."""
    acc = topk_accuracy(scores, test_y, (1, 5))
    matrix = confusion_matrix(scores.argmax(axis=1), test_y, len(class_names))
    per_class = per_class_accuracy(matrix)
    png = plot_confusion(matrix, class_names, out_dir / f"confusion-{key}.png",
                         f"{out_dir.name} {key}: top-1 {100 * acc[1]:.1f} %")
    entry = {"key": key, "run": out_dir.name, "dataset": facts["dataset"], **fields, "top1": acc[1], "top5": acc[5],
             "per_class": {name: (None if np.isnan(a) else float(a)) for name, a in zip(class_names, per_class)},
             "confusion": matrix.tolist(), "confusion_png": png.name, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    save_result(out_dir, key, entry)
    return {**entry, "out_dir": str(out_dir)}


def evaluate(*, protocol: str | None = None, run: str | Path | None = None, store: str | Path | None = None,
             mode: str = "linear", fraction: float | None = None, seed: int = 0, init: str | Path | None = None,
             model: str | None = None, runs_root: str | Path = "runs", pool: str | None = None,
             k: int = 20, temperature: float = 0.07, epochs: int | None = None, batch_size: int | None = None,
             lr: float | None = None, weight_decay: float | None = None, layer_decay: float = 0.65,
             drop_path: float = 0.1, label_smoothing: float = 0.1, mixup: float = 0.0, cutmix: float = 0.0,
             warmup_epochs: int = 5, temporal_crop: float | None = None, workers: int = 0,
             device: str | None = None, resume: bool = False, overwrite: bool = False, max_steps: int | None = None,
             progress: bool = True, console: Console | None = None) -> dict[str, Any]:
    """Evaluate one run (or a baseline) on one protocol; write results.json + confusion PNG; return the entry.

    run=None takes the newest run under runs_root; run="none" evaluates a random init, and
    `init` a weights file alone. store=None uses the store the run recorded; another store is
    a transfer evaluation (its results are keyed "...-on-<dataset>-<hash>")."""
    import timm

    from s2i_cli.mae import MODELS as MODELS_BY_NAME
    from s2i_cli.mae import build_encoder, load_weights

    started = time.time()
    console = console or Console(stderr=True)
    if mode not in MODES:
        raise EvaluateError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if pool is not None and pool not in POOLS:
        raise EvaluateError(f"unknown pool {pool!r}: use one of {', '.join(POOLS)}")
    if (resume or overwrite) and mode != "finetune":
        raise EvaluateError("--resume and --overwrite are for --mode finetune (linear and knn reuse cached features)")
    runs_root = Path(runs_root)

    # 1. which weights, which store, which samples
    run_dir, config, weights = resolve_weights(run, init, store, runs_root)
    if model is not None and config.get("model") and model != config["model"]:
        raise EvaluateError(f"--model {model}, but run {run_dir} is a {config['model']}: drop --model")
    model = model or config.get("model") or "vit_base"
    if MODELS_BY_NAME.get(model, model) not in timm.list_models("vit_*"):
        raise EvaluateError(f"unknown model {model!r}: choose one of {', '.join(MODELS_BY_NAME)} (or a timm vit_* name)")
    recorded_store = store is None
    store_path = Path(store if store is not None else config["store"])
    try:
        root = open_store(store_path)
    except StoreError as exc:
        if recorded_store:
            raise StoreError(f"{exc} (the store recorded by run {run_dir}; pass --store to use another)") from exc
        raise
    facts = store_facts(root)
    check_compatible(config, facts, store_path, recorded_store=recorded_store)
    protocol = choose_protocol(protocol, facts)
    train_idx = split_indices(root, protocol, "train")
    test_idx = split_indices(root, protocol, "test")
    labels = np.asarray(root["label"][:], dtype=np.int64)
    class_names = facts["class_names"]
    if fraction is not None:
        train_idx = train_idx[balanced_subset(labels[train_idx], fraction, seed)]

    # 2. where results go
    out_dir = run_dir if run_dir is not None else baseline_dir(runs_root, store_path, model, weights)
    out_dir.mkdir(parents=True, exist_ok=True)
    if run_dir is None and not (out_dir / "config.json").exists():
        (out_dir / "config.json").write_text(json.dumps(
            {"kind": "baseline", "store": str(store_path.resolve()), "model": model, "img_size": facts["img_size"],
             "dataset": facts["dataset"], "class_names": class_names,
             "init": str(weights.resolve()) if weights else None}, indent=2))
    transfer = None
    if not recorded_store and config.get("store") and Path(config["store"]).resolve() != store_path.resolve():
        transfer = f"{facts['dataset']}-{hashlib.sha1(str(store_path.resolve()).encode()).hexdigest()[:6]}"
    key = result_key(protocol, mode, fraction, seed, transfer)
    dev = pick_device(device)
    console.print(f"evaluating [bold]{escape(out_dir.name)}[/] ({model}, weights: "
                  f"{escape(str(weights or 'random init'))}) on {escape(str(store_path))}, protocol {protocol}, "
                  f"by {mode}: {len(train_idx)} train / {len(test_idx)} test, {len(class_names)} classes, {dev}")

    def load_encoder(**kwargs) -> nn.Module:
        torch.manual_seed(seed)
        try:
            encoder = build_encoder(model, facts["img_size"], **kwargs)
            report = load_weights(encoder, weights) if weights is not None else None
        except ValueError as exc:  # unknown model, size not a multiple of the patch, unreadable weights
            raise EvaluateError(str(exc)) from exc
        if report is not None and not any(name.startswith("blocks.") for name in report["loaded"]):
            raise EvaluateError(f"none of the transformer blocks in {weights} fit a {model} encoder: "
                                f"check --model / --init")
        return encoder

    # 3. scores on the test side
    with make_progress(progress, console) as bar:
        if mode in ("linear", "knn"):
            pool = pool or (config.get("global_pool") if config.get("global_pool") in POOLS else "token")
            scores, test_y, settings = frozen_scores(
                mode, lambda: load_encoder(num_classes=0), out_dir, store_path, root, protocol, train_idx, test_idx,
                labels, len(class_names), weights=weights, model=model, pool=pool, seed=seed,
                epochs=epochs if epochs is not None else 100, batch_size=batch_size or 256, lr=lr,
                weight_decay=weight_decay or 0.0, k=k, temperature=temperature, device=dev, workers=workers,
                progress=bar)
        else:
            checkpoint = out_dir / f"finetune-{key}-last.pt"
            if checkpoint.exists() and not (resume or overwrite):
                raise EvaluateError(f"a fine-tuning checkpoint exists at {checkpoint}: pass --resume to continue "
                                    f"(or re-evaluate) it, or --overwrite to start again")
            settings = dict(pool=pool or "avg", epochs=epochs if epochs is not None else 100,
                            batch_size=batch_size or 64, base_lr=lr or 5e-4,
                            weight_decay=weight_decay if weight_decay is not None else 0.05, layer_decay=layer_decay,
                            drop_path=drop_path, label_smoothing=label_smoothing, mixup=mixup, cutmix=cutmix,
                            warmup_epochs=warmup_epochs, temporal_crop=temporal_crop, max_steps=max_steps,
                            checkpoint=checkpoint.name)
            encoder = load_encoder(num_classes=len(class_names), drop_path_rate=drop_path, global_pool=settings["pool"])
            nn.init.trunc_normal_(encoder.head.weight, std=2e-5)  # MAE's head init
            nn.init.zeros_(encoder.head.bias)
            encoder = finetune(encoder, store_path, train_idx, num_classes=len(class_names), checkpoint=checkpoint,
                               resume=resume, epochs=settings["epochs"], batch_size=settings["batch_size"],
                               base_lr=settings["base_lr"], weight_decay=settings["weight_decay"],
                               layer_decay=layer_decay, label_smoothing=label_smoothing, mixup=mixup, cutmix=cutmix,
                               warmup_epochs=warmup_epochs, seed=seed, temporal_crop=temporal_crop, device=dev,
                               workers=workers, max_steps=max_steps, progress=bar, settings=settings)
            scores = run_over_store(encoder, store_path, test_idx, batch_size=settings["batch_size"], device=dev,
                                    workers=workers, progress=bar, what="test")
            test_y = labels[test_idx]

    # 4. metrics, plot, results.json
    return write_results(out_dir, key, scores, test_y, class_names, facts, protocol=protocol, mode=mode,
                         fraction=fraction, seed=seed, store=str(store_path.resolve()),
                         weights=str(weights) if weights else None, n_train=int(len(train_idx)),
                         n_test=int(len(test_idx)), settings={"model": model, "device": str(dev), **settings},
                         seconds=round(time.time() - started, 1))
