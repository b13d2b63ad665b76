"""Evaluation of a frozen encoder: its features over a store (cached in the run directory), a
linear head trained on them (MAE's linear probe: BatchNorm without affine, then Linear), and
cosine k-NN with temperature-weighted votes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from rich.progress import Progress
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..files import atomic_write
from ..store import StoreError, absolute, is_url, split_indices
from ..train.loader import make_loader, normalize
from ..train.plumbing import Schedule, autocast, set_lr
from ..views.progress import progress_bar

if TYPE_CHECKING:
    from ..train.config import EvalConfig


def run_over_store(fn: Callable[[torch.Tensor], torch.Tensor], store_path: Path, indices: np.ndarray, *,
                   batch_size: int, device: torch.device, workers: int, progress: Progress, what: str,
                   stream: str = "joint") -> np.ndarray:
    """Apply `fn` to every normalised image (of `stream`) of `indices`; rows come back in `indices` order."""
    indices = np.asarray(indices, dtype=np.int64)
    order = np.argsort(indices, kind="stable")
    sorted_idx = indices[order]
    out = None
    loader = make_loader(store_path, indices, batch_size, shuffle=False, workers=workers, stream=stream)
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
        raise StoreError(f"no samples for {what}: the split is empty")
    return out


def extract_features(encoder: VisionTransformer, store_path: Path, indices: np.ndarray, *, batch_size: int = 256,
                     device: torch.device | None = None, workers: int = 0,
                     progress: Progress | None = None, stream: str = "joint") -> np.ndarray:
    """(len(indices), D) float32 features of the frozen encoder, in `indices` order, pooled the
    encoder's own way (its global_pool: class token or mean patch token)."""
    device = device or torch.device("cpu")
    encoder.eval().to(device)
    return run_over_store(lambda x: encoder.forward_head(encoder.forward_features(x), pre_logits=True), store_path,
                          indices, batch_size=batch_size, device=device, workers=workers,
                          progress=progress or progress_bar(False), what="features", stream=stream)


def features_cache_path(out_dir: Path, *, store_path: Path, protocol: str, weights: Path | None,
                        model: str, pool: str, seed: int, stream: str = "joint") -> Path:
    """features-<protocol>-<pool>[-<stream>]-<store hash>-<weights hash>.npz in the run directory.

    The store hash names the store's path; the weights hash its modification time, the weights
    file and its modification time, the model (and the seed of a random init), so a newer
    checkpoint or a re-converted store is never served stale features."""
    store_path = absolute(store_path)

    def mtime(p: Path) -> int:
        return p.stat().st_mtime_ns if p.exists() else 0

    def digest(value: Any, n: int) -> str:
        return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:n]

    state = {"store_mtime": 0 if is_url(store_path) else mtime(Path(store_path) / "zarr.json"), "model": model,
             "weights": str(Path(weights).resolve()) if weights else None,
             "weights_mtime": mtime(Path(weights)) if weights else None, "seed": None if weights else seed}
    tag = "" if stream == "joint" else f"-{stream}"  # streams keep their own caches
    return Path(out_dir) / f"features-{protocol}-{pool}{tag}-{digest(str(store_path), 6)}-{digest(state, 8)}.npz"


def cached_features(encoder_fn: Callable[[], nn.Module], cache: Path, store_path: Path, sides: dict[str, np.ndarray],
                    labels: np.ndarray, *, batch_size: int, device: torch.device, workers: int,
                    progress: Progress, stream: str = "joint") -> dict[str, np.ndarray]:
    """{"train_x", "train_y", "train_index", "test_x", ...}: from `cache` if it holds these indices, else extracted."""
    if cache.exists():
        with np.load(cache) as data:
            found = dict(data)
        if all(np.array_equal(found.get(f"{side}_index"), idx) for side, idx in sides.items()):
            return found
    encoder = encoder_fn()
    found = {}
    for side, idx in sides.items():
        found[f"{side}_x"] = extract_features(encoder, store_path, idx, batch_size=batch_size, device=device,
                                              workers=workers, progress=progress, stream=stream)
        found[f"{side}_y"] = labels[idx].astype(np.int64)
        found[f"{side}_index"] = idx
    cache.parent.mkdir(parents=True, exist_ok=True)
    for stale in cache.parent.glob(cache.name.rsplit("-", 1)[0] + "-*.npz"):
        stale.unlink()  # same store, protocol and pool, older weights: hundreds of MB each on NTU120
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: given a name, np.savez would append ".npz"
            np.savez(f, **found)

    atomic_write(cache, write)
    return found


def train_linear_head(features: np.ndarray, labels: np.ndarray, num_classes: int, *, epochs: int = 100,
                      batch_size: int = 256, lr: float | None = None, weight_decay: float = 0.0, seed: int = 0,
                      device: torch.device | None = None, progress: Progress | None = None) -> nn.Module:
    """BatchNorm1d(affine=False, eps=1e-6) + Linear trained with SGD (momentum 0.9, cosine) on fixed features."""
    device = device or torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.as_tensor(features, dtype=torch.float32, device=device)
    y = torch.as_tensor(labels, dtype=torch.int64, device=device)
    # MAE's main_linprobe.py head: BatchNorm1d(affine=False, eps=1e-6), then Linear (trunc-normal 0.01, zero bias)
    head = nn.Sequential(nn.BatchNorm1d(x.shape[1], affine=False, eps=1e-6),
                         nn.Linear(x.shape[1], num_classes)).to(device)
    nn.init.trunc_normal_(head[1].weight, std=0.01)
    nn.init.zeros_(head[1].bias)
    batch_size = max(2, min(batch_size, len(x)))  # BatchNorm needs two samples
    lr = lr if lr is not None else 0.1 * batch_size / 256
    optimizer = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    per_epoch = max(1, len(x) // batch_size)
    total = epochs * per_epoch
    schedule = Schedule(lr, per_epoch, total, warmup_steps=min(total // 10, 10 * per_epoch))
    progress = progress or progress_bar(False)
    task = progress.add_task("linear head", total=epochs, info="")
    head.train()
    step = 0
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=generator).to(device)
        for b in range(per_epoch):
            batch = perm[b * batch_size:(b + 1) * batch_size]
            set_lr(optimizer, schedule.lr(step))
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


def frozen_scores(cfg: EvalConfig, load_encoder: Callable[[], VisionTransformer], out_dir: Path, store_path: Path,
                  root, protocol: str, train_idx: np.ndarray, test_idx: np.ndarray, labels: np.ndarray,
                  num_classes: int, *, weights: Path | None, device: torch.device,
                  progress: Progress) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Linear probe or k-NN (cfg.mode, its defaults filled in) on cached frozen features:
    (test scores, test labels, settings)."""
    all_train = split_indices(root, protocol, "train")  # cache the whole side; a --fraction subset is cut from it
    cache = features_cache_path(out_dir, store_path=store_path, protocol=protocol, weights=weights, model=cfg.model,
                                pool=cfg.pool, seed=cfg.seed, stream=cfg.stream)
    feats = cached_features(load_encoder, cache, store_path, {"train": all_train, "test": test_idx}, labels,
                            batch_size=cfg.batch_size, device=device, workers=cfg.workers, progress=progress,
                            stream=cfg.stream)
    keep = np.isin(all_train, train_idx)
    train_x, train_y = feats["train_x"][keep], feats["train_y"][keep]
    if cfg.mode == "linear":
        head = train_linear_head(train_x, train_y, num_classes, epochs=cfg.epochs, batch_size=cfg.batch_size,
                                 lr=cfg.lr, weight_decay=cfg.weight_decay, seed=cfg.seed, device=device,
                                 progress=progress)
        scores = predict_linear(head, feats["test_x"], device)
        settings = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "weight_decay": cfg.weight_decay}
    else:
        scores = knn_predict(train_x, train_y, feats["test_x"], num_classes, k=cfg.k, temperature=cfg.temperature,
                             device=device)
        settings = {"k": cfg.k, "temperature": cfg.temperature}
    return scores, feats["test_y"], {"pool": cfg.pool, "features": cache.name, **settings}
