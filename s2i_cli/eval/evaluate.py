"""Evaluate a pretrained encoder on a store's protocol (docs/design.md §4, `s2i evaluate`).

Three modes, all ending in the same metrics (top-1, top-5, per-class accuracy, a confusion
matrix) written to `results.json` and a PNG in the run directory:

- `linear`: frozen encoder; features of both sides are extracted once and cached in the run
  directory, then a linear head is trained on them (probe.py);
- `knn`: cosine k-NN with temperature-weighted votes on the same cached features (probe.py);
- `finetune`: the whole encoder plus a new head, checkpointed so `--resume` continues it (finetune.py).

Weights come from a pretraining run (`runs/NAME/checkpoint-last.pt`), from a file alone
(`init=PATH`, e.g. ImageNet weights) or from nothing (`run="none"`, random init), so a user
can see what pretraining adds. This module picks the run, store, samples and weights, and
hands over; results.py files the outcome."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape

from ..store import StoreError, absolute, class_names, open_store, read_header, split_indices, stream_arrays
from ..train import runs
from ..train.config import ALL_SAMPLES, EvalConfig, default_protocol
from ..views.progress import progress_bar
from .ensemble import save_scores
from .finetune import finetuned_scores, settings_tag
from .probe import frozen_scores
from .results import result_key, write_results
from ..vocab import Mode, Pool, values

MODES = values(Mode)
POOLS = values(Pool)  # class token, or the mean of the patch tokens


class EvaluateError(ValueError):
    """A user error (mismatched store, unknown mode, nothing to resume, ...): one line with the fix."""


def store_facts(root) -> dict[str, Any]:
    """What evaluation needs from a store's header: dataset, image size, class names."""
    header = read_header(root)
    _, _, height, width = root["images"].shape
    return {"dataset": header.dataset, "img_size": height if height == width else (height, width),
            "class_names": class_names(root), "protocols": list(header.protocols)}


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
    """The protocol asked for, or `xsub` (else the store's first) when none was (config.default_protocol)."""
    if protocol is not None:
        return protocol
    if facts["protocols"]:
        return default_protocol(facts["protocols"])
    raise EvaluateError("the store has no protocols (no splits): it cannot be evaluated")


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


def random_subset(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted positions of a random int(n * fraction) of n samples (at least one), as MAMP's
    semi-supervised protocol draws them; the same n, fraction and seed give the same subset."""
    if not 0.0 < fraction <= 1.0:
        raise EvaluateError(f"--fraction must be in (0, 1], got {fraction}")
    count = min(n, max(1, int(n * fraction)))
    return np.sort(np.random.default_rng(seed).choice(n, size=count, replace=False))


def pretraining_sides(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(store, protocol) for every store a run pretrained on, protocol config.ALL_SAMPLES for every
    sample. A run from before config.json listed its stores trained on every sample unless it
    recorded a protocol."""
    if config.get("stores"):
        return [(absolute(s["store"]), s.get("protocol") or ALL_SAMPLES) for s in config["stores"]]
    if config.get("store"):
        return [(absolute(config["store"]), config.get("protocol") or ALL_SAMPLES)]
    return []


def pretraining_text(config: dict[str, Any], store_path: str) -> str:
    protocol = dict(pretraining_sides(config)).get(store_path)
    return ("every sample: --protocol all" if protocol == ALL_SAMPLES
            else f"the train side of protocol {protocol}")


def pretrained_test_samples(config: dict[str, Any], run_dir: Path | None, weights: Path | None, store_path: str,
                            root, test_idx: np.ndarray) -> np.ndarray:
    """The test samples (indices) the weights were pretrained on: those of `test_idx` in the
    pretraining samples the run recorded for this store (none for another store, or weights
    with no run). Weights given alone (--init) are checked against the run whose checkpoint
    they are, when their folder holds its config.json."""
    if not config and weights is not None and runs.is_run(weights.parent):
        try:
            config = runs.read_config(weights.parent)
        except runs.RunError:
            return np.zeros(0, dtype=np.int64)
    from ..train.pretrain import pretraining_indices

    for store, protocol in pretraining_sides(config):
        if store == store_path:
            if protocol != ALL_SAMPLES and protocol not in store_facts(root)["protocols"]:
                raise EvaluateError(f"run {run_dir or weights.parent} was pretrained on protocol {protocol} of "
                                    f"{store_path}, which the store no longer has: the store changed since pretraining")
            return np.intersect1d(test_idx, pretraining_indices(root, protocol))
    return np.zeros(0, dtype=np.int64)


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    run_dir = Path(run) if run is not None else runs.newest_run(runs_root)
    config = runs.read_config(run_dir)
    if store is None and not config.get("store"):
        raise EvaluateError(f"{run_dir}/config.json records no store: pass --store STORE")
    weights = run_dir / runs.CHECKPOINT if (run_dir / runs.CHECKPOINT).exists() else config.get("init")
    return run_dir, config, Path(weights) if weights else None


def baseline_dir(runs_root: Path, store_path: Path, model: str, weights: Path | None, stream: str = "joint") -> Path:
    """Where a baseline's results go: runs/<store>-scratch-<model> or runs/<store>-init-<weights>-<model>
    (with -<stream> for a stream other than joint)."""
    tag = "scratch" if weights is None else f"init-{weights.stem}"
    return Path(runs_root) / (f"{Path(store_path).stem}-{tag}-{model}" + ("" if stream == "joint" else f"-{stream}"))


@dataclass
class Target:
    """What one evaluation runs on: the weights (a run's, a file's or none), the store, the samples."""

    run_dir: Path | None  # None: a baseline (random init or --init weights alone)
    config: dict[str, Any]  # the run's config.json ({} for a baseline)
    weights: Path | None
    store_path: str
    recorded_store: bool  # the store is the one the run recorded (not --store)
    root: Any
    facts: dict[str, Any]
    protocol: str
    train_idx: np.ndarray
    test_idx: np.ndarray
    labels: np.ndarray
    seen: np.ndarray  # test samples the weights were pretrained on (pretrained_test_samples)


def evaluate(*, runs_root: str | Path = "runs", resume: bool = False, overwrite: bool = False,
             max_steps: int | None = None, progress: bool = True, console: Console | None = None,
             **options: Any) -> dict[str, Any]:
    """Evaluate one run (or a baseline) on one protocol; write results.json + confusion PNG; return the entry.

    `options` are EvalConfig fields. resume/overwrite continue or restart a fine-tuning
    checkpoint; max_steps stops fine-tuning early (checkpointed)."""
    started = time.time()
    cfg = checked_config(EvalConfig(**options), resume or overwrite)
    console = console or Console(stderr=True)
    runs_root = Path(runs_root)
    cfg, target = choose_target(cfg, runs_root)  # 1. which weights, which store, which samples
    out_dir, key = where_results_go(cfg, target, runs_root)  # 2. where results go, under which key
    device = pick_device(cfg.device)
    console.print(f"evaluating [bold]{escape(out_dir.name)}[/] ({cfg.model}, weights: "
                  f"{escape(str(target.weights or 'random init'))}) on {escape(str(target.store_path))}, protocol "
                  f"{target.protocol}, by {cfg.mode}: {len(target.train_idx)} train / {len(target.test_idx)} test, "
                  f"{len(target.facts['class_names'])} classes, {device}"
                  + (f"; [bold]transductive[/]: {len(target.seen)} test samples were pretrained on" if len(target.seen)
                     else ""))
    with progress_bar(progress, console) as bar:  # 3. scores on the test side
        scores, test_y, settings = scores_on_test(cfg, target, out_dir, key, device=device, resume=resume,
                                               overwrite=overwrite, max_steps=max_steps, progress=bar)
    return file_results(cfg, target, out_dir, key, scores, test_y, settings, str(device), time.time() - started)


def checked_config(cfg: EvalConfig, continues: bool) -> EvalConfig:
    """EvaluateError for a mode or pool this s2i does not know, or --resume/--overwrite outside fine-tuning."""
    if cfg.mode not in MODES:
        raise EvaluateError(f"unknown mode {cfg.mode!r}: use one of {', '.join(MODES)}")
    if cfg.pool is not None and cfg.pool not in POOLS:
        raise EvaluateError(f"unknown pool {cfg.pool!r}: use one of {', '.join(POOLS)}")
    if continues and cfg.mode != "finetune":
        raise EvaluateError("--resume and --overwrite are for --mode finetune (linear and knn reuse cached features)")
    return cfg


def choose_target(cfg: EvalConfig, runs_root: Path) -> tuple[EvalConfig, Target]:
    """The weights, model, store and samples of an evaluation; `cfg` with the run's model and
    stream and the mode's defaults filled in."""
    import timm

    from ..train.mae import MODELS

    run_dir, config, weights = resolve_weights(cfg.run, cfg.init, cfg.store, runs_root)
    if cfg.model is not None and config.get("model") and cfg.model != config["model"]:
        raise EvaluateError(f"--model {cfg.model}, but run {run_dir} is a {config['model']}: drop --model")
    cfg = replace(cfg, model=cfg.model or config.get("model") or "vit_base",
                  stream=cfg.stream or config.get("stream", "joint")).for_mode()
    if MODELS.get(cfg.model, cfg.model) not in timm.list_models("vit_*"):
        raise EvaluateError(f"unknown model {cfg.model!r}: choose one of {', '.join(MODELS)} (or a timm vit_* name)")
    recorded_store = cfg.store is None
    store_path = absolute(cfg.store if cfg.store is not None else config["store"])  # a directory or a URL
    try:
        root = open_store(store_path)
    except StoreError as exc:
        if recorded_store:
            raise StoreError(f"{exc} (the store recorded by run {run_dir}; pass --store to use another)") from exc
        raise
    facts = store_facts(root)
    check_compatible(config, facts, store_path, recorded_store=recorded_store)
    stream_arrays(root, cfg.stream)  # a stream the store lacks: one line naming `s2i encode`
    protocol = choose_protocol(cfg.protocol, facts)
    train_idx, test_idx = split_indices(root, protocol, "train"), split_indices(root, protocol, "test")
    labels = np.asarray(root["label"][:], dtype=np.int64)
    seen = pretrained_test_samples(config, run_dir, weights, store_path, root, test_idx)
    if len(seen) and not cfg.transductive:
        raise EvaluateError(
            f"run {run_dir or weights} was pretrained on {len(seen)} of the {len(test_idx)} test samples of protocol "
            f"{protocol} in {store_path} ({pretraining_text(config, store_path)}): pretrain with --protocol {protocol} "
            f"(its train side), evaluate another protocol, or pass --transductive to evaluate anyway (labelled so)")
    if cfg.fraction is not None:
        train_idx = train_idx[balanced_subset(labels[train_idx], cfg.fraction, cfg.seed) if cfg.balanced
                              else random_subset(len(train_idx), cfg.fraction, cfg.seed)]
    return cfg, Target(run_dir, config, weights, store_path, recorded_store, root, facts, protocol, train_idx,
                       test_idx, labels, seen)


def where_results_go(cfg: EvalConfig, t: Target, runs_root: Path) -> tuple[Path, str]:
    """(the directory results.json goes into, the evaluation's key in it). The key names every
    setting that changes the result: protocol, mode, label fraction and seed, transfer store,
    stream, and for fine-tuning its settings (finetune.settings_tag: --augment and the rest)."""
    out_dir = t.run_dir if t.run_dir is not None else baseline_dir(runs_root, t.store_path, cfg.model, t.weights,
                                                                   cfg.stream)
    if t.run_dir is None and not (out_dir / runs.CONFIG).exists():
        runs.write_config(out_dir, {"kind": "baseline", "store": t.store_path, "model": cfg.model,
                                    "img_size": t.facts["img_size"], "dataset": t.facts["dataset"],
                                    "class_names": t.facts["class_names"],
                                    "init": str(t.weights.resolve()) if t.weights else None, "stream": cfg.stream})
    transfer = None
    if not t.recorded_store and t.config.get("store") and absolute(t.config["store"]) != t.store_path:
        transfer = f"{t.facts['dataset']}-{hashlib.sha1(t.store_path.encode()).hexdigest()[:6]}"
    key = result_key(t.protocol, cfg.mode, cfg.fraction, cfg.seed, transfer) + (
        "-balanced" if cfg.balanced and cfg.fraction is not None else "")
    if t.run_dir is not None and cfg.stream != t.config.get("stream", "joint"):  # a run on another stream than its own
        key += f"-{cfg.stream}"
    if len(t.seen):  # --transductive: the test side overlaps the pretraining samples; never filed as inductive
        key += "-transductive"
    if cfg.mode == "finetune":
        key += settings_tag(cfg)
    return out_dir, key


def encoder_loader(cfg: EvalConfig, t: Target):
    """A function building the encoder with the target's weights (kwargs: timm's, e.g. num_classes)."""
    from ..train.mae import build_encoder, load_weights

    def load(**kwargs):
        torch.manual_seed(cfg.seed)
        try:
            encoder = build_encoder(cfg.model, t.facts["img_size"], **kwargs)
            fix = runs.damaged_checkpoint_fix(t.run_dir) if t.run_dir is not None else "pass a complete weights file"
            report = load_weights(encoder, t.weights, fix=fix) if t.weights is not None else None
        except ValueError as exc:  # unknown model, size not a multiple of the patch, unreadable weights
            raise EvaluateError(str(exc)) from exc
        if report is not None and not any(name.startswith("blocks.") for name in report["loaded"]):
            raise EvaluateError(f"none of the transformer blocks in {t.weights} fit a {cfg.model} encoder: "
                                f"check --model / --init")
        return encoder

    return load


def scores_on_test(cfg: EvalConfig, t: Target, out_dir: Path, key: str, *, device: torch.device, resume: bool,
                overwrite: bool, max_steps: int | None, progress) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(test-side scores, test labels, the settings used) by the mode's method."""
    load_encoder = encoder_loader(cfg, t)
    classes = len(t.facts["class_names"])
    if cfg.mode in ("linear", "knn"):  # the encoder's own pooling, after its final norm (no fc_norm)
        return frozen_scores(cfg, lambda: load_encoder(num_classes=0, global_pool=cfg.pool, fc_norm=False), out_dir,
                             t.store_path, t.root, t.protocol, t.train_idx, t.test_idx, t.labels, classes,
                             weights=t.weights, device=device, progress=progress)
    checkpoint = out_dir / f"finetune-{key}-last.pt"
    if checkpoint.exists() and not (resume or overwrite):
        raise EvaluateError(f"a fine-tuning checkpoint exists at {checkpoint}: pass --resume to continue "
                            f"(or re-evaluate) it, or --overwrite to start again")
    encoder = load_encoder(num_classes=classes, drop_path_rate=cfg.drop_path, global_pool=cfg.pool)
    return finetuned_scores(cfg, encoder, t.store_path, t.train_idx, t.test_idx, t.labels, classes,
                            checkpoint=checkpoint, resume=resume, max_steps=max_steps, device=device,
                            progress=progress)


def file_results(cfg: EvalConfig, t: Target, out_dir: Path, key: str, scores: np.ndarray, test_y: np.ndarray,
                 settings: dict[str, Any], device: str, seconds: float) -> dict[str, Any]:
    """Per-sample test scores (for ensembles), metrics, the confusion plot and results.json: the entry."""
    saved = save_scores(out_dir, key, names=np.asarray(t.root["name"][:])[t.test_idx], labels=test_y,
                        scores=np.log(np.maximum(scores, 1e-30)) if cfg.mode == "knn" else scores,
                        protocol=t.protocol, mode=cfg.mode, dataset=t.facts["dataset"], stream=cfg.stream,
                        class_names=t.facts["class_names"])
    return write_results(out_dir, key, scores, test_y, t.facts["class_names"], t.facts, protocol=t.protocol,
                         mode=cfg.mode, stream=cfg.stream, scores_file=saved.name, fraction=cfg.fraction,
                         seed=cfg.seed, store=t.store_path, weights=str(t.weights) if t.weights else None,
                         n_train=int(len(t.train_idx)), n_test=int(len(t.test_idx)),
                         transductive=bool(len(t.seen)), pretrained_test_samples=int(len(t.seen)),
                         settings={"model": cfg.model, "device": device, **settings}, seconds=round(seconds, 1))


def evaluate_seeds(seeds: int, **kwargs: Any) -> list[dict[str, Any]]:
    """`evaluate` with seeds seed..seed+seeds-1 (other label subsets and initialisations): one entry each."""
    if seeds < 1:
        raise EvaluateError("--seeds must be at least 1")
    seed = kwargs.pop("seed", EvalConfig.seed)
    return [evaluate(**kwargs, seed=seed + k) for k in range(seeds)]
