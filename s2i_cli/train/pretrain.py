"""Masked-autoencoder pretraining on an s2i store: one loop, read top to bottom (nanoGPT style).

AdamW with MAE's weight-decay groups, linear warm-up then cosine decay set every optimizer step,
gradient accumulation, bf16 autocast on CUDA only, optional torch.compile, DDP when launched by
torchrun (RANK/WORLD_SIZE/LOCAL_RANK in the environment; nccl on GPUs, gloo on CPU).

Exact resume: the data order comes from (seed, epoch) (see data.BlockDataset), every micro-step
draws its random numbers (mask, DiffMAE noise) from a generator seeded by (seed, rank, step,
micro-step), outside the (possibly compiled) model, and the checkpoint holds the model,
optimizer and step, so `--resume` continues with the same numbers an uninterrupted run would
have produced (same world size, batch size and worker count; the run's config.json supplies them).

Epoch ends cost next to nothing: the checkpoint is written every `save_every` epochs (by default
when a few minutes have passed) and always at the end, on a background thread; reconstructions
every `recon_every` epochs; the loader's workers live for the whole run."""
from __future__ import annotations

import datetime
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console

from ..encoder.encoding import training_view
from ..files import atomic_write
from ..store import StoreError, absolute, class_names, open_store, read_header, split_indices, stream_arrays
from ..views.progress import progress_bar
from . import runs
from .augment import parse_augment
from .config import ALL_SAMPLES, DEFAULT_EPOCHS, PretrainConfig, default_protocol
from .loader import denormalize, make_loader, normalize
from .mae import MaskedAutoencoder, load_weights
from .runlog import RunLog
from .plumbing import CheckpointWriter, LossGuard, Schedule, autocast, rng_state, restore_training_state, set_lr

console = Console(stderr=True)
GRAD_NORM_EVERY = 10  # steps between gradient-norm readings (one pass over the grads, logged to TensorBoard)
SAVE_SECONDS = 300.0  # without --save-every, a checkpoint when this long has passed since the last one
def pretrain(store: str | Path | None = None, run_dir: str | Path | None = None, *, resume: bool = False,
             max_steps: int | None = None, runs_root: str | Path = "runs", progress: bool = True,
             **options: Any) -> Path:
    """Pretrain a masked autoencoder on the train side of `protocol` (None: xsub, else the store's first;
    config.ALL_SAMPLES: every sample, test sides included, marked in config.json) and return
    the run directory (see runs.py). `options` are PretrainConfig fields. max_steps stops early (with
    a checkpoint) without changing the schedule, which is planned for `epochs`."""
    cfg = PretrainConfig(store=str(store) if store is not None else None, **options)
    ddp, rank, world, local_rank, owns_group = _setup_distributed()
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        # --- settings: the call's, or the resumed run's ---
        old, checkpoint = {}, None
        if resume:
            run_dir, old, checkpoint = _resumed_run(run_dir, runs_root, world)
            cfg = cfg.resumed_from(old)
        cfg = _resolve(cfg, world)
        root, indices, img_size, cfg = _training_data(cfg, old, run_dir)
        actors = ActorHalves.of_store(root)
        # MAE decays the class and mask tokens (MaskedAutoencoder.param_groups); a run from before
        # did not and resumes with its own groups (its optimizer state fits only those)
        decay_tokens = bool(old.get("token_weight_decay", False)) if old else True
        net, model, loader, schedule, optimizer, step = _training_parts(cfg, root, indices, img_size, checkpoint,
                                                                        run_dir, device, ddp, rank, world, local_rank, decay_tokens)

        # --- the run directory, then the loop ---
        if not resume:
            run_dir = _new_run_dir(run_dir, runs_root, read_header(root).dataset, ddp)
        run_dir = Path(run_dir)
        config = {**_config_json(cfg, root, indices, img_size, net, schedule, world, old),
                  "token_weight_decay": decay_tokens}
        last_step = schedule.total_steps if max_steps is None else min(schedule.total_steps, int(max_steps))
        loop = Loop(model, net, optimizer, loader, schedule, cfg, device, rank, ddp,
                    LossGuard(run_dir / runs.CHECKPOINT, step if checkpoint is not None else None),
                    Throughput(cfg.batch_size * cfg.accum * world),
                    RunLog(run_dir, enabled=rank == 0, purge_step=step + 1 if checkpoint is not None else None), actors)
        if rank == 0:
            runs.write_config(run_dir, config)
            _announce(cfg, net, device, world, len(indices), schedule, run_dir, step, last_step, resume)
        show_bar = rank == 0 and progress and step < last_step
        with CheckpointWriter() as writer, progress_bar(show_bar, console) as bar, loop.log:
            task = bar.add_task("pretrain", total=last_step, completed=step, info="")
            last_save = time.monotonic()
            while step < last_step:
                step, loss = train_one_epoch(loop, step, last_step, bar, task)
                last_save = end_of_epoch(loop, step, last_step, loss, root, indices, run_dir, writer, last_save,
                                         verbose=not show_bar)
        return run_dir
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _training_parts(cfg: PretrainConfig, root, indices: np.ndarray, img_size, checkpoint: dict | None, run_dir,
                    device: torch.device, ddp: bool, rank: int, world: int, local_rank: int,
                    decay_tokens: bool = True):
    """(net, model, loader, schedule, optimizer, step): the model (it checks the image size
    against the patch size), the data loader (stored images, or with --augment the stored
    skeletons augmented and re-encoded), the optimizer, restored from a resumed checkpoint."""
    try:
        encoding, column_parts = training_view(read_header(root), cfg.masking, cfg.augment)  # parts masking's columns
    except ValueError as exc:
        raise ValueError(f"{cfg.store}: {exc}") from exc
    if encoding is not None:  # augmented images are made of the run's stream
        encoding = replace(encoding, stream=cfg.stream)
    torch.manual_seed(cfg.seed)
    net = MaskedAutoencoder(cfg.model, img_size, mask_ratio=cfg.mask_ratio, decoder_dim=cfg.decoder_dim,
                            decoder_depth=cfg.decoder_depth, decoder_heads=cfg.decoder_heads,
                            norm_pix_loss=cfg.norm_pix_loss, objective=cfg.objective, masking=cfg.masking,
                            column_parts=column_parts)
    loader = make_loader(cfg.store, indices, cfg.batch_size, shuffle=True, workers=cfg.workers, seed=cfg.seed,
                         temporal_crop=cfg.temporal_crop, drop_last=True, buffer_blocks=cfg.buffer_blocks,
                         encoding=encoding, augment=cfg.augment, stream=cfg.stream)
    schedule = _schedule(cfg, len(loader), world)
    if checkpoint is None and cfg.init is not None:
        _load_init(net, cfg, rank == 0)
    net.to(device)
    optimizer = torch.optim.AdamW(net.param_groups(cfg.weight_decay, decay_tokens), lr=schedule.peak_lr,
                                  betas=(0.9, 0.95), fused=device.type == "cuda")
    step = _restore(checkpoint, net, optimizer, run_dir)
    model = torch.compile(net) if cfg.compile else net
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None)
    return net, model, loader, schedule, optimizer, step


# --- the loop ---

@dataclass
class Loop:
    """What one epoch of pretraining works with (net is the bare model, model may be compiled/DDP)."""
    model: torch.nn.Module
    net: MaskedAutoencoder
    optimizer: torch.optim.Optimizer
    loader: Any
    schedule: Schedule
    cfg: PretrainConfig
    device: torch.device
    rank: int
    ddp: bool
    guard: LossGuard
    meter: Throughput
    log: RunLog
    actors: ActorHalves


@dataclass
class ActorHalves:
    """Per sample index: whether its image stacks two actor halves, and whether the bottom half
    is a copy of the top (`stacked`, one actor, `repeat` fill): what masking.py respects."""
    halves: torch.Tensor  # (N,) bool
    copies: torch.Tensor  # (N,) bool

    @classmethod
    def of_store(cls, root) -> ActorHalves:
        attrs = root.attrs["s2i"]
        actors = torch.from_numpy(np.asarray(root["actors"][:], dtype=np.int64))
        halves = torch.full(actors.shape, attrs.get("persons") == "stacked", dtype=torch.bool)
        return cls(halves, halves & (attrs.get("fill") == "repeat") & (actors == 1))

    def of(self, index: torch.Tensor, device) -> dict[str, torch.Tensor]:
        index = index.cpu()
        return {"halves": self.halves[index].to(device), "copies": self.copies[index].to(device)}


def train_one_epoch(loop: Loop, step: int, last_step: int, bar, task) -> tuple[int, float]:
    """Optimizer steps from `step` to the end of its epoch (or `last_step`): (the step reached, mean loss)."""
    cfg, per_epoch = loop.cfg, loop.schedule.steps_per_epoch
    epoch, first = divmod(step, per_epoch)
    loop.meter.start_epoch()
    loop.loader.dataset.set_epoch(epoch, skip_batches=first * cfg.accum)
    batches = iter(loop.loader)
    loop.model.train()
    generator = torch.Generator(device=loop.device)
    loss_sum, loss_count = torch.zeros((), device=loop.device), 0
    while step < min(last_step, (epoch + 1) * per_epoch):
        set_lr(loop.optimizer, loop.schedule.lr(step))
        step_loss = torch.zeros((), device=loop.device)
        for micro in range(cfg.accum):
            images, _, index = next(batches)
            imgs = normalize(images.to(loop.device, non_blocking=True))
            generator.manual_seed(_step_seed(cfg.seed, loop.rank, step, micro))
            if loop.ddp:
                loop.model.require_backward_grad_sync = micro == cfg.accum - 1
            noise = loop.net.sample_noise(len(imgs), loop.device, generator, **loop.actors.of(index, loop.device))
            with autocast(loop.device):
                loss, _, _ = loop.model(imgs, noise=noise)
            (loss / cfg.accum).backward()
            step_loss += loss.detach()
        grad_norm = None
        if loop.rank == 0 and (step + 1) % GRAD_NORM_EVERY == 0:  # max_norm=inf: measured, never clipped
            grad_norm = torch.nn.utils.clip_grad_norm_(loop.net.parameters(), float("inf")).item()
        loop.optimizer.step()
        loop.optimizer.zero_grad(set_to_none=True)
        step += 1
        loop.guard.step(step_loss / cfg.accum, step)
        loss_sum += step_loss
        loss_count += cfg.accum
        loop.meter.step_done()
        loop.log.step(step, loss=loop.guard.last, lr=loop.schedule.lr(step - 1),
                      **({"grad_norm": grad_norm} if grad_norm is not None else {}))
        bar.update(task, completed=step, info=f"loss {loop.guard.last:.4f}  {loop.meter.step_rate():.1f} img/s")
    loop.guard.check()  # before anything is saved
    totals = torch.stack([loss_sum, torch.tensor(float(loss_count), device=loop.device)])
    if loop.ddp:
        dist.all_reduce(totals)
    loop.meter.end_epoch()
    return step, (totals[0] / totals[1].clamp(min=1)).item()


def end_of_epoch(loop: Loop, step: int, last_step: int, loss: float, root, indices: np.ndarray, run_dir: Path,
                 writer: CheckpointWriter, last_save: float, verbose: bool) -> float:
    """Metrics every epoch; a checkpoint and reconstructions only when due (always at the run's end).
    Returns when the last checkpoint was started (time.monotonic())."""
    cfg, done = loop.cfg, step >= last_step
    epochs_done, into_epoch = divmod(step, loop.schedule.steps_per_epoch)

    def every(n: int | None) -> bool:  # at the end of every n-th epoch
        return bool(n) and into_epoch == 0 and epochs_done % n == 0

    if loop.rank == 0:
        if done or every(cfg.recon_every):
            picture = save_reconstruction(loop.net, root, indices[:4], runs.recon_png(run_dir, epochs_done),
                                          loop.device, cfg.seed, cfg.stream, loop.actors)
            loop.log.image("reconstruction", step, picture)
        due = every(cfg.save_every) if cfg.save_every else time.monotonic() - last_save >= SAVE_SECONDS
        if done or due:
            kept = runs.kept_checkpoint(run_dir, epochs_done) if every(cfg.keep_every) else None
            writer.save({"model": loop.net.state_dict(), "optimizer": loop.optimizer.state_dict(), "step": step,
                         "epoch": epochs_done, "rng": rng_state()}, run_dir / runs.CHECKPOINT, keep=kept)
            loop.guard.saved_step, last_save = step, time.monotonic()
        record = {"epoch": epochs_done, "step": step, "loss": loss, "lr": loop.schedule.lr(step - 1),
                  **loop.meter.record(), "time": datetime.datetime.now().isoformat(timespec="seconds")}
        loop.log.epoch(record)
        if verbose:
            console.print(f"epoch {epochs_done} step {step}/{loop.schedule.total_steps} loss {loss:.4f} "
                          f"lr {record['lr']:.2e} {record['step_images_per_s'] or 0:.1f} img/s")
    if loop.ddp:
        dist.barrier()
    return last_save


class Throughput:
    """Images per second inside epochs (steps and loader waits: `step`) and over the run's wall
    clock (epoch ends included: `run`), both from the end of the run's first step, so start-up
    and compilation count in neither. run / step is what epoch ends cost."""

    def __init__(self, images_per_step: int):
        self.images_per_step = images_per_step
        self.run_start: float | None = None  # end of the first step
        self.epoch_start = 0.0
        self.inside = 0.0  # seconds inside epochs since run_start
        self.steps = 0  # steps since run_start

    def start_epoch(self) -> None:
        self.epoch_start = time.perf_counter()

    def step_done(self) -> None:
        if self.run_start is None:
            self.run_start = self.epoch_start = time.perf_counter()
        else:
            self.steps += 1

    def end_epoch(self) -> None:
        if self.run_start is not None:
            self.inside += time.perf_counter() - self.epoch_start

    def step_rate(self) -> float:
        elapsed = self.inside + (time.perf_counter() - self.epoch_start if self.run_start is not None else 0.0)
        return self.steps * self.images_per_step / elapsed if self.steps and elapsed > 0 else 0.0

    def record(self) -> dict[str, float | None]:
        run = time.perf_counter() - self.run_start if self.run_start is not None else 0.0
        images = self.steps * self.images_per_step
        return {"step_images_per_s": round(images / self.inside, 2) if self.steps and self.inside > 0 else None,
                "run_images_per_s": round(images / run, 2) if self.steps and run > 0 else None}


# --- settings, data, model: the steps of pretrain() ---

def default_workers(world: int = 1) -> int:
    """DataLoader workers per process: this process's share of the cores, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) // world))


def _resolve(cfg: PretrainConfig, world: int) -> PretrainConfig:
    """The defaults that depend on the machine, filled in; impossible settings refused."""
    if cfg.store is None:
        raise ValueError("no store given: pass the store made by `s2i convert` (or --resume a run)")
    epochs = DEFAULT_EPOCHS if cfg.epochs is None else int(cfg.epochs)
    workers = default_workers(world) if cfg.workers is None else int(cfg.workers)
    if epochs < 1 or cfg.batch_size < 1 or cfg.accum < 1:
        raise ValueError("epochs, batch size and accum must be at least 1")
    for name in ("save_every", "keep_every"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1 epoch")
    init = str(cfg.init) if cfg.init is not None else None
    return PretrainConfig(**{**asdict(cfg), "store": absolute(cfg.store), "epochs": epochs,
                             "workers": workers, "init": init, "augment": parse_augment(cfg.augment)})


def _training_data(cfg: PretrainConfig, old: dict[str, Any], run_dir
                   ) -> tuple[Any, np.ndarray, int | list[int], PretrainConfig]:
    """(the store's root, the training indices, the image size as config.json writes it, cfg with
    the protocol resolved)."""
    root = open_store(cfg.store)
    height, width = read_header(root).image_size
    img_size = height if height == width else [height, width]
    if old and old["img_size"] != img_size:
        raise ValueError(f"store {cfg.store} holds {height}x{width} images but run {run_dir} was trained on "
                         f"{old['img_size']}: resume with the run's store ({old['store']}) or start a new run")
    protocol = pretraining_protocol(root, cfg.protocol, cfg.store)
    indices = pretraining_indices(root, protocol)
    if len(indices) == 0:
        raise StoreError(f"{cfg.store} has no training samples for protocol {protocol!r}")
    return root, indices, img_size, replace(cfg, protocol=protocol)


def pretraining_protocol(root, protocol: str | None, store) -> str:
    """The protocol whose train side pretraining uses: the one asked for, else evaluate's default
    (config.default_protocol: xsub, else the store's first), never every sample by default (the
    test sides would be pretrained on). ALL_SAMPLES stays."""
    if protocol is not None:
        return protocol
    protocols = list(root.attrs["s2i"].get("protocols", []))
    if not protocols:
        raise StoreError(f"{store} has no protocols (no train/test split): pass --protocol {ALL_SAMPLES} to "
                         f"pretrain on every sample")
    return default_protocol(protocols)


def pretraining_indices(root, protocol: str) -> np.ndarray:
    """The samples a run pretrained with `protocol` saw: its train side, or every valid sample (ALL_SAMPLES)."""
    return split_indices(root, None if protocol == ALL_SAMPLES else protocol, "train")


def _schedule(cfg: PretrainConfig, micro_per_epoch: int, world: int) -> Schedule:
    steps_per_epoch = micro_per_epoch // cfg.accum
    if steps_per_epoch == 0:
        raise ValueError(f"the training samples per process fill no optimizer step of {cfg.batch_size} x "
                         f"{cfg.accum}: lower --batch-size or --accum")
    total = cfg.epochs * steps_per_epoch
    peak_lr = cfg.lr if cfg.lr is not None else cfg.blr * cfg.batch_size * cfg.accum * world / 256
    # warm-up takes at most half the run, so a short run still decays
    warmup = min(total // 2, int(round(cfg.warmup_epochs * steps_per_epoch)))
    return Schedule(peak_lr, steps_per_epoch, total, warmup, cfg.min_lr)


def _load_init(net: MaskedAutoencoder, cfg: PretrainConfig, verbose: bool) -> None:
    report = load_weights(net, Path(cfg.init))
    if verbose:
        console.print(f"init {cfg.init}: loaded {len(report['loaded'])} tensors, {len(report['missing'])} missing, "
                      f"{len(report['unexpected'])} unexpected, {len(report['mismatched'])} mismatched")
    if not report["loaded"]:
        raise ValueError(f"{cfg.init} shares no weights with {cfg.model}: pass a checkpoint of the same model")


def _restore(checkpoint: dict | None, net: MaskedAutoencoder, optimizer: torch.optim.Optimizer, run_dir) -> int:
    """Load a resumed run's weights, optimizer and random state; the step to go on from (0 for a new run)."""
    if checkpoint is None:
        return 0
    path = Path(run_dir) / runs.CHECKPOINT
    return restore_training_state(checkpoint, net, optimizer, path,
                                  fix=f"start a new run from its weights with --init {path}")


def _config_json(cfg: PretrainConfig, root, indices: np.ndarray, img_size, net: MaskedAutoencoder,
                 schedule: Schedule, world: int, old: dict[str, Any]) -> dict[str, Any]:
    """config.json: the settings, then what they came to on this store."""
    created = old.get("created") or datetime.datetime.now().isoformat(timespec="seconds")
    return {**asdict(cfg), "dataset": read_header(root).dataset, "class_names": class_names(root),
            "img_size": img_size, "patch_size": net.patch, "world_size": world,
            "steps_per_epoch": schedule.steps_per_epoch, "total_steps": schedule.total_steps,
            "warmup_steps": schedule.warmup_steps, "peak_lr": schedule.peak_lr,
            "effective_batch": cfg.batch_size * cfg.accum * world, "train_samples": int(len(indices)),
            # what evaluate checks its test side against (ALL_SAMPLES: test sides included)
            "all_samples": cfg.protocol == ALL_SAMPLES,
            "stores": [{"store": cfg.store, "protocol": cfg.protocol, "dataset": read_header(root).dataset,
                        "train_samples": int(len(indices))}],
            "created": created}


def _announce(cfg: PretrainConfig, net, device, world: int, samples: int, schedule: Schedule, run_dir: Path,
              step: int, last_step: int, resume: bool) -> None:
    params = sum(p.numel() for p in net.parameters()) / 1e6
    side = ("every sample, test sides included (transductive)" if cfg.protocol == ALL_SAMPLES
            else f"the train side of protocol {cfg.protocol}")
    console.print(f"pretrain {cfg.objective} {cfg.model} ({params:.1f} M params) on {device}"
                  f"{f' x{world}' if world > 1 else ''}: {samples} samples ({side}), {schedule.steps_per_epoch} steps/epoch "
                  f"x {cfg.epochs} epochs, batch {cfg.batch_size * cfg.accum * world}, lr {schedule.peak_lr:.2e}, "
                  f"run {run_dir}" + (f", resuming at step {step}" if resume else ""))
    if step >= last_step:
        console.print(f"nothing to do: {run_dir} is at step {step} of {last_step} (pass more --epochs to extend it)")


# --- processes, run directories, random numbers ---

def _setup_distributed() -> tuple[bool, int, int, int, bool]:
    """(ddp, rank, world_size, local_rank, we initialised the group) from torchrun's environment."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1, dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), False
    world = int(os.environ.get("WORLD_SIZE", 1))
    if "RANK" not in os.environ or world <= 1:
        return False, 0, 1, 0, False
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True, dist.get_rank(), dist.get_world_size(), local_rank, True


def _step_seed(seed: int, rank: int, step: int, micro: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step, micro]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _resumed_run(run_dir: str | Path | None, runs_root: str | Path, world: int) -> tuple[Path, dict, dict]:
    """(the run to resume: --run-dir or the newest, its config.json, its checkpoint)."""
    if run_dir is None:
        run_dir = runs.newest_run(Path(runs_root))
    elif not runs.is_run(Path(run_dir)):
        raise ValueError(f"{run_dir} has no {runs.CHECKPOINT} and {runs.CONFIG} to resume: check --run-dir")
    run_dir = Path(run_dir)
    old = runs.read_config(run_dir)
    if old.get("world_size", 1) != world:
        raise ValueError(f"run {run_dir} was trained with {old.get('world_size', 1)} processes, this is "
                         f"{world}: resume with the same torchrun --nproc_per_node")
    return run_dir, old, runs.load_run_checkpoint(run_dir)


def _new_run_dir(run_dir: str | Path | None, runs_root: str | Path, dataset: str, ddp: bool) -> Path:
    if run_dir is None:
        name = [runs.new_run_name(dataset)]
        if ddp:  # every rank must use rank 0's clock
            dist.broadcast_object_list(name, src=0)
        run_dir = Path(runs_root) / name[0]
    run_dir = Path(run_dir)
    if (run_dir / runs.CHECKPOINT).exists():
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it or another --run-dir")
    return run_dir


@torch.no_grad()
def save_reconstruction(net: MaskedAutoencoder, root, indices: np.ndarray, path: Path, device: torch.device,
                        seed: int = 0, stream: str = "joint", actors: ActorHalves | None = None) -> np.ndarray:
    """A PNG of three labelled columns: the input, the masked input (grey = removed), the
    reconstruction with the visible patches pasted back (MAE's visualisation), one row per
    sample; returned as an (H, W, 3) array for TensorBoard. DiffMAE decodes from pure noise."""
    from PIL import Image

    stored = stream_arrays(root, stream)[0]
    images = torch.from_numpy(np.stack([stored[int(i)] for i in indices])).to(device)
    was_training = net.training
    net.eval()
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    x = normalize(images)
    timestep = None if net.objective == "mae" else len(net.alpha_bar) - 1
    with autocast(device):
        flags = (actors or ActorHalves.of_store(root)).of(torch.as_tensor(np.asarray(indices, dtype=np.int64)), device)
        _, pred, mask = net(x, noise=net.sample_noise(len(x), device, generator, timestep, **flags))
    pred = pred.float()
    if net.norm_pix_loss:  # undo the per-patch normalisation with the input's patch statistics
        patches = net.patchify(x)
        pred = pred * (patches.var(dim=-1, keepdim=True) + 1e-6) ** 0.5 + patches.mean(dim=-1, keepdim=True)
    recon = net.unpatchify(pred)
    keep = net.unpatchify(mask.unsqueeze(-1).expand(-1, -1, net.patch ** 2 * 3))  # 1 = removed
    masked = denormalize(x * (1 - keep))
    masked[keep.bool().expand_as(masked)] = 128
    pasted = denormalize(x * (1 - keep) + recon * keep)
    picture = reconstruction_grid([t.permute(0, 2, 3, 1).cpu().numpy() for t in (images, masked, pasted)])
    atomic_write(path, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
    net.train(was_training)
    return picture


def reconstruction_grid(columns: list[np.ndarray], titles: tuple[str, ...] = ("input", "masked", "reconstruction"),
                        min_side: int = 224) -> np.ndarray:
    """(H', W', 3) uint8: one row per sample, one labelled column per stage, each image scaled up
    (nearest, whole factors) to at least `min_side` px so joints (columns) and time (rows) show."""
    from PIL import Image, ImageDraw

    n, h, w, _ = columns[0].shape
    scale = max(1, -(-min_side // min(h, w)))
    gap, header = 8, 24
    width = len(columns) * (w * scale + gap) + gap
    canvas = Image.new("RGB", (width, header + n * (h * scale + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, (title, images) in enumerate(zip(titles, columns)):
        x = gap + c * (w * scale + gap)
        draw.text((x, 6), title, fill=(0, 0, 0))
        for r, image in enumerate(images):
            tile = Image.fromarray(np.ascontiguousarray(image)).resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (x, header + r * (h * scale + gap)))
    return np.asarray(canvas)
