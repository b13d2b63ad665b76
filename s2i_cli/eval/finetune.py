"""Fine-tuning evaluation: the whole encoder plus a new head (MAE's main_finetune recipe: layer-wise
lr decay, drop path, label smoothing, optional mixup/cutmix, AdamW with a warmed-up cosine),
checkpointed every epoch and when stopped, so `--resume` continues exactly where it stopped."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataclasses import replace

import numpy as np
import torch
from rich.progress import Progress
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..encoder.encoding import store_encoding
from ..store import open_store, read_header
from ..train.augment import AUGMENTS, parse_augment
from ..train.loader import make_loader, normalize
from ..train.runlog import FINETUNE_LOGS, RunLog
from ..train.plumbing import (CheckpointWriter, LossGuard, Schedule, TrainingError, autocast, load_checkpoint,
                              rng_state, restore_training_state, set_lr)
from .probe import run_over_store

if TYPE_CHECKING:
    from ..train.config import EvalConfig


def finetune(encoder: VisionTransformer, store_path: Path, train_idx: np.ndarray, cfg: EvalConfig, *,
             num_classes: int, checkpoint: Path, resume: bool, max_steps: int | None, device: torch.device,
             progress: Progress, settings: dict[str, Any]) -> VisionTransformer:
    """Train `encoder` (with its classification head) on `train_idx` under `cfg` (mode defaults filled in);
    save `checkpoint` at every epoch end and when max_steps stops it.

    lr = cfg.lr * batch_size / 256, scaled per layer by layer_decay ** depth-from-top (timm's
    groups carry it as lr_scale). temporal_crop=(MIN, MAX) crops a random MIN..MAX of each image's rows."""
    torch.manual_seed(cfg.seed)
    encoder.to(device)
    batch_size = max(1, min(cfg.batch_size, len(train_idx)))
    use_mix = cfg.mixup > 0 or cfg.cutmix > 0
    if use_mix and batch_size % 2:
        batch_size = max(2, batch_size - 1)  # timm's Mixup flips the batch: it must be even
    per_epoch = max(1, len(train_idx) // batch_size)
    total = cfg.epochs * per_epoch
    schedule, optimizer = _optimizer(encoder, cfg, batch_size, per_epoch, total)
    step = _restore(checkpoint, encoder, optimizer, num_classes, settings) if resume else 0
    mixer, criterion = _mixing(cfg, num_classes, use_mix)
    loader = training_loader(cfg, store_path, train_idx, batch_size)
    task = progress.add_task("fine-tune", total=total, completed=min(step, total), info="")
    guard = LossGuard(checkpoint, saved_step=step if resume else None)
    last_step = total if max_steps is None else min(total, max_steps)
    # TensorBoard: a run of its own beside the pretraining's (runs/NAME/finetune/<key>/)
    key = checkpoint.stem.removeprefix("finetune-").removesuffix("-last")
    log = RunLog(checkpoint.parent / FINETUNE_LOGS / key, purge_step=step + 1 if resume else None)
    with CheckpointWriter() as writer, log:
        while step < last_step:
            epoch, first = divmod(step, per_epoch)  # a run stopped mid-epoch resumes mid-epoch
            encoder.train()
            loader.dataset.set_epoch(epoch, skip_batches=first)
            for images, labels, _ in loader:
                images = normalize(images.to(device, non_blocking=True))
                labels = labels.to(device, non_blocking=True)
                if mixer is not None:
                    images, labels = mixer(images, labels)
                set_lr(optimizer, schedule.lr(step))
                with autocast(device):
                    loss = criterion(encoder(images).float(), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                guard.step(loss, step)
                log.step(step, loss=guard.last, lr=schedule.lr(step - 1))
                progress.update(task, advance=1, info=f"epoch {epoch + 1}/{cfg.epochs} loss {guard.last:.3f}")
                if step >= last_step:
                    break
            guard.check()  # before anything is saved
            writer.save({"model": encoder.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                         "step": step, "num_classes": num_classes, "rng": rng_state(), "settings": settings},
                        checkpoint)
            guard.saved_step = step
            log.epoch({"epoch": epoch + 1, "step": step, "loss": guard.last}, metrics=False)
    progress.remove_task(task)
    return encoder.eval()


def _optimizer(encoder: VisionTransformer, cfg: EvalConfig, batch_size: int, per_epoch: int, total: int):
    """(schedule, AdamW): lr = cfg.lr * batch_size / 256, per layer times layer_decay ** depth-from-top."""
    from timm.optim import param_groups_layer_decay

    schedule = Schedule(cfg.lr * batch_size / 256, per_epoch, total, warmup_steps=round(cfg.warmup_epochs * per_epoch))
    groups = param_groups_layer_decay(encoder, weight_decay=cfg.weight_decay,
                                      no_weight_decay_list=encoder.no_weight_decay(), layer_decay=cfg.layer_decay)
    return schedule, torch.optim.AdamW(groups, lr=schedule.peak_lr, betas=(0.9, 0.999))


def _mixing(cfg: EvalConfig, num_classes: int, use_mix: bool):
    """(timm's Mixup or None, the loss): soft targets with mixup/cutmix, else label-smoothed cross-entropy."""
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    if not use_mix:
        return None, nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    return (Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                  num_classes=num_classes), SoftTargetCrossEntropy())


def training_loader(cfg: EvalConfig, store_path: Path, train_idx: np.ndarray, batch_size: int):
    """The shuffled training loader: the stored images of cfg.stream, or with --augment the
    stored skeletons augmented and re-encoded as the store's images were made."""
    augment = parse_augment(cfg.augment)
    encoding = replace(store_encoding(read_header(open_store(store_path))), stream=cfg.stream) if augment else None
    return make_loader(store_path, train_idx, batch_size, shuffle=True, workers=cfg.workers, seed=cfg.seed,
                       drop_last=True, temporal_crop=cfg.temporal_crop, encoding=encoding, augment=augment,
                       stream=cfg.stream)


def _restore(checkpoint: Path, encoder: VisionTransformer, optimizer: torch.optim.Optimizer, num_classes: int,
             settings: dict[str, Any]) -> int:
    """Load a fine-tuning checkpoint's weights, optimizer and random state; the step it reached."""
    if not checkpoint.exists():
        raise TrainingError(f"--resume: no fine-tuning checkpoint at {checkpoint}; run without --resume to start one")
    state = load_checkpoint(checkpoint, fix="pass --overwrite to start the fine-tuning again")
    if state["num_classes"] != num_classes:
        raise TrainingError(f"number of classes mismatch: {checkpoint} was fine-tuned for {state['num_classes']} "
                            f"classes, the store has {num_classes}: pass --overwrite to start again")
    _same_settings(state, settings, checkpoint)
    return restore_training_state(state, encoder, optimizer, checkpoint,
                                  fix="pass --overwrite to start the fine-tuning again")


# the settings that change a fine-tune's result besides the weights, store, protocol, labels,
# seed and stream (which the result key names already) and --augment: results.json and the
# checkpoint record them all; the key and checkpoint name carry what the images are made of
# (`settings_tag`)
TUNED = ("pool", "epochs", "batch_size", "lr", "weight_decay", "layer_decay", "drop_path", "label_smoothing", "mixup",
         "cutmix", "warmup_epochs", "temporal_crop")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def settings_tag(cfg: EvalConfig) -> str:
    """What a fine-tune's result key and checkpoint name add for what it trains on: "-aug-OPS"
    for --augment (rotate+mirror, or all) and "-cropMIN-MAX" for --temporal-crop; "" without
    them, as keys were before. The optimisation settings (TUNED) are recorded in results.json
    and in the checkpoint, and a --resume under other ones is refused (`_same_settings`):
    --epochs may grow on --resume, so they cannot name the checkpoint."""
    ops = parse_augment(cfg.augment)
    tag = f"-aug-{'all' if ops == AUGMENTS else '+'.join(ops)}" if ops else ""
    if cfg.temporal_crop is not None:
        tag += f"-crop{cfg.temporal_crop[0]:g}-{cfg.temporal_crop[1]:g}"
    return tag


def _same_settings(state: dict[str, Any], settings: dict[str, Any], checkpoint: Path) -> None:
    """TrainingError when a checkpoint was fine-tuned under other settings than this call's
    (--epochs and --max-steps aside: a resumed fine-tune may run longer)."""
    old = dict(state.get("settings") or {})
    if isinstance(old.get("temporal_crop"), (int, float)):  # written before crops were (MIN, MAX)
        old["temporal_crop"] = [old["temporal_crop"], 1.0]
    for name, value in settings.items():
        if name in old and name not in ("epochs", "max_steps", "checkpoint") and old[name] != value:
            raise TrainingError(f"{checkpoint} was fine-tuned with {name}={old[name]!r}, this call has {value!r}: "
                                "resume with the same settings, or pass --overwrite to start again")


def finetuned_scores(cfg: EvalConfig, encoder: VisionTransformer, store_path: Path, train_idx: np.ndarray,
                     test_idx: np.ndarray, labels: np.ndarray, num_classes: int, *, checkpoint: Path, resume: bool,
                     max_steps: int | None, device: torch.device,
                     progress: Progress) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fine-tune `encoder` (a new head) and score the test side: (test scores, test labels, settings)."""
    settings = {**{("base_lr" if k == "lr" else k): _plain(getattr(cfg, k)) for k in TUNED},
                "augment": list(parse_augment(cfg.augment)), "max_steps": max_steps, "checkpoint": checkpoint.name}
    nn.init.trunc_normal_(encoder.head.weight, std=2e-5)  # MAE's head init
    nn.init.zeros_(encoder.head.bias)
    encoder = finetune(encoder, store_path, train_idx, cfg, num_classes=num_classes, checkpoint=checkpoint,
                       resume=resume, max_steps=max_steps, device=device, progress=progress, settings=settings)
    scores = run_over_store(encoder, store_path, test_idx, batch_size=cfg.batch_size, device=device,
                            workers=cfg.workers, progress=progress, what="test", stream=cfg.stream)
    return scores, labels[test_idx], settings
