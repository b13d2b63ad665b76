"""Masked-autoencoder pretraining on an s2i store: one loop, read top to bottom (nanoGPT style).

AdamW with MAE's weight-decay groups, linear warm-up then cosine decay set every optimizer step,
gradient accumulation, bf16 autocast on CUDA only, optional torch.compile, DDP when launched by
torchrun (RANK/WORLD_SIZE/LOCAL_RANK in the environment; nccl on GPUs, gloo on CPU).

Exact resume: the data order comes from (seed, epoch) (see data.BlockDataset), every micro-step
draws its random numbers (mask, DiffMAE noise) from a generator seeded by (seed, rank, step,
micro-step), outside the (possibly compiled) model, and the checkpoint holds
the model, optimizer and step, so `--resume` continues with the same numbers an uninterrupted
run would have produced (same world size, batch size and worker count; the run's config.json
supplies them)."""
from __future__ import annotations

import datetime
import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console

from .data import denormalize, make_loader, normalize
from .mae import MaskedAutoencoder, load_weights
from .store import StoreError, absolute, open_store, split_indices
from .training import LossGuard, atomic_save, cosine_lr, rng_state, set_rng_state

console = Console(stderr=True)
CHECKPOINT = "checkpoint-last.pt"
DEFAULT_EPOCHS = 100
# settings a resumed run takes from its config.json, whatever the call says
RESUMED = ("model", "batch_size", "accum", "lr", "blr", "min_lr", "weight_decay", "warmup_epochs", "mask_ratio",
           "protocol", "seed", "objective", "decoder_dim", "decoder_depth", "decoder_heads", "norm_pix_loss",
           "temporal_crop", "buffer_blocks", "workers")


def pretrain(store: str | Path | None, run_dir: str | Path | None = None, *, model: str = "vit_base",
             epochs: int | None = None, batch_size: int = 64, accum: int = 1, lr: float | None = None,
             blr: float = 1.5e-4, min_lr: float = 0.0, weight_decay: float = 0.05, warmup_epochs: float = 5.0,
             mask_ratio: float = 0.75, protocol: str | None = None, init: str | Path | None = None,
             workers: int | None = None, seed: int = 0, compile: bool = False, resume: bool = False,
             objective: str = "mae", max_steps: int | None = None, decoder_dim: int = 512,
             decoder_depth: int = 8, decoder_heads: int = 16, norm_pix_loss: bool = True,
             temporal_crop: tuple[float, float] | None = None, buffer_blocks: int = 4,
             runs_root: str | Path = "runs", recon_every: int = 1, progress: bool = True) -> Path:
    """Pretrain a masked autoencoder on the train side of `protocol` (None: every sample) and
    return the run directory (config.json, checkpoint-last.pt, metrics.jsonl, recon-epochNNN.png).

    lr None means blr * batch_size * accum * world_size / 256 (MAE's rule). epochs/workers None
    mean 100 and this process's share of the cores (at most 8), or the resumed run's. max_steps stops early (after a checkpoint) without changing
    the schedule, which is planned for `epochs`."""
    # --- processes and devices ---
    ddp, rank, world, local_rank, owns_group = _setup_distributed()
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    master = rank == 0
    bar = None
    try:
        # --- run directory and settings ---
        settings = dict(model=model, batch_size=batch_size, accum=accum, lr=lr, blr=blr, min_lr=min_lr,
                        weight_decay=weight_decay, warmup_epochs=warmup_epochs, mask_ratio=mask_ratio,
                        protocol=protocol, seed=seed, objective=objective, decoder_dim=decoder_dim,
                        decoder_depth=decoder_depth, decoder_heads=decoder_heads, norm_pix_loss=norm_pix_loss,
                        temporal_crop=list(temporal_crop) if temporal_crop else None,
                        buffer_blocks=buffer_blocks, workers=workers)
        checkpoint = None
        if resume:
            run_dir = _find_run(run_dir, runs_root)
            old = json.loads((run_dir / "config.json").read_text())
            settings.update({k: old[k] for k in RESUMED if k in old})
            epochs = old["epochs"] if epochs is None else epochs
            store = old["store"] if store is None else store
            if old.get("world_size", 1) != world:
                raise ValueError(f"run {run_dir} was trained with {old.get('world_size', 1)} processes, this is "
                                 f"{world}: resume with the same torchrun --nproc_per_node")
            checkpoint = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
        elif store is None:
            raise ValueError("no store given: pass the store made by `s2i convert` (or --resume a run)")
        epochs = DEFAULT_EPOCHS if epochs is None else int(epochs)
        workers = default_workers(world) if settings["workers"] is None else int(settings["workers"])
        settings["workers"] = workers
        s = settings
        if epochs < 1 or s["batch_size"] < 1 or s["accum"] < 1:
            raise ValueError("epochs, batch size and accum must be at least 1")

        # --- data ---
        store = absolute(store)  # a directory or a URL
        root = open_store(store)
        attrs = root.attrs["s2i"]
        height, width = (int(v) for v in attrs["image_size"])
        img_size = height if height == width else [height, width]
        if resume and old["img_size"] != img_size:
            raise ValueError(f"store {store} holds {height}x{width} images but run {run_dir} was trained on "
                             f"{old['img_size']}: resume with the run's store ({old['store']}) or start a new run")
        indices = split_indices(root, s["protocol"], "train")
        if len(indices) == 0:
            raise StoreError(f"{store} has no training samples for protocol {s['protocol']!r}")

        # --- model (checks the image size against the patch size) ---
        torch.manual_seed(s["seed"])
        net = MaskedAutoencoder(s["model"], img_size, mask_ratio=s["mask_ratio"], decoder_dim=s["decoder_dim"],
                                decoder_depth=s["decoder_depth"], decoder_heads=s["decoder_heads"],
                                norm_pix_loss=s["norm_pix_loss"], objective=s["objective"])
        if init is not None and checkpoint is None:
            report = load_weights(net, Path(init))
            if master:
                console.print(f"init {init}: loaded {len(report['loaded'])} tensors, "
                              f"{len(report['missing'])} missing, {len(report['unexpected'])} unexpected, "
                              f"{len(report['mismatched'])} mismatched")
            if not report["loaded"]:
                raise ValueError(f"{init} shares no weights with {s['model']}: pass a checkpoint of the same model")

        # --- data loader and schedule ---
        crop = tuple(s["temporal_crop"]) if s["temporal_crop"] else None
        loader = make_loader(store, indices, s["batch_size"], shuffle=True, workers=workers, seed=s["seed"],
                             temporal_crop=crop, drop_last=True, buffer_blocks=s["buffer_blocks"])
        micro_per_epoch = len(loader)
        steps_per_epoch = micro_per_epoch // s["accum"]
        if steps_per_epoch == 0:
            raise ValueError(f"{len(loader.dataset)} training samples per process fill no optimizer step of "
                             f"{s['batch_size']} x {s['accum']}: lower --batch-size or --accum")
        total_steps = epochs * steps_per_epoch
        # warm-up takes at most half the run, so a short run still decays
        warmup_steps = min(total_steps // 2, int(round(s["warmup_epochs"] * steps_per_epoch)))
        eff_batch = s["batch_size"] * s["accum"] * world
        peak_lr = s["lr"] if s["lr"] is not None else s["blr"] * eff_batch / 256

        # --- optimizer ---
        net.to(device)
        decay, no_decay = [], []
        for name, p in net.named_parameters():
            if not p.requires_grad:
                continue
            skip = p.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in ("pos_embed", "cls_token", "mask_token")
            (no_decay if skip else decay).append(p)
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": s["weight_decay"]},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=peak_lr, betas=(0.9, 0.95),
                                      fused=device.type == "cuda")
        step = 0
        if checkpoint is not None:
            net.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            step = int(checkpoint["step"])
            set_rng_state(checkpoint.get("rng"))
        model_ = torch.compile(net) if compile else net
        if ddp:
            model_ = torch.nn.parallel.DistributedDataParallel(model_, device_ids=[local_rank] if device.type == "cuda" else None)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

        def lr_at(it: int) -> float:
            return cosine_lr(it, total_steps, peak_lr, warmup=warmup_steps, min_lr=s["min_lr"])

        # --- run directory ---
        if not resume:
            run_dir = _new_run_dir(run_dir, runs_root, attrs.get("dataset", "store"), ddp)
        config = {"store": str(store), "dataset": attrs.get("dataset"), "class_names": list(attrs.get("class_names", [])),
                  "img_size": img_size, "patch_size": net.patch, "epochs": epochs, "world_size": world,
                  "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "warmup_steps": warmup_steps,
                  "peak_lr": peak_lr, "effective_batch": eff_batch, "train_samples": int(len(indices)),
                  "init": old.get("init") if resume else (str(init) if init else None), **s}
        if master:
            run_dir.mkdir(parents=True, exist_ok=True)
            config["created"] = old.get("created") if resume else datetime.datetime.now().isoformat(timespec="seconds")
            _atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2))
            params = sum(p.numel() for p in net.parameters()) / 1e6
            console.print(f"pretrain {s['objective']} {s['model']} ({params:.1f} M params) on {device}"
                          f"{f' x{world}' if ddp else ''}: {len(indices)} samples, {steps_per_epoch} steps/epoch x "
                          f"{epochs} epochs, batch {eff_batch}, lr {peak_lr:.2e}, run {run_dir}"
                          + (f", resuming at step {step}" if resume else ""))

        # --- training loop ---
        last_step = total_steps if max_steps is None else min(total_steps, int(max_steps))
        generator = torch.Generator(device=device)
        if step >= last_step and master:
            console.print(f"nothing to do: {run_dir} is at step {step} of {last_step} (pass more --epochs to extend it)")
        bar = _progress_bar(master and progress and step < last_step)
        task = bar.add_task("pretrain", total=last_step, completed=step, loss=float("nan"), ips=0.0) if bar else None
        images_per_step = s["batch_size"] * s["accum"] * world
        timer_start, timer_step = None, step
        guard = LossGuard(run_dir / CHECKPOINT, saved_step=step if checkpoint is not None else None)
        while step < last_step:
            epoch = step // steps_per_epoch
            first = step - epoch * steps_per_epoch
            loader.dataset.set_epoch(epoch, skip_batches=first * s["accum"])
            batches = iter(loader)
            model_.train()
            loss_sum = torch.zeros((), device=device)
            loss_count = 0
            for _ in range(first, steps_per_epoch):
                step_loss = torch.zeros((), device=device)
                lr_now = lr_at(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr_now
                for micro in range(s["accum"]):
                    images, _, _ = next(batches)
                    imgs = normalize(images.to(device, non_blocking=True))
                    generator.manual_seed(_step_seed(s["seed"], rank, step, micro))
                    if ddp:
                        model_.require_backward_grad_sync = micro == s["accum"] - 1
                    with autocast:
                        loss, _, _ = model_(imgs, noise=net.sample_noise(len(imgs), device, generator))
                    (loss / s["accum"]).backward()
                    step_loss += loss.detach()
                    loss_count += 1
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                guard.step(step_loss, step)
                loss_sum += step_loss
                if timer_start is None:  # time from the end of the first step (start-up and compile excluded)
                    timer_start, timer_step = time.perf_counter(), step
                if bar:
                    elapsed = time.perf_counter() - timer_start
                    ips = (step - timer_step) * images_per_step / elapsed if elapsed > 0 else 0.0
                    fields = {"ips": ips}
                    if step % 10 == 0 or step == last_step or step == timer_step:
                        fields["loss"] = loss.item()
                    bar.update(task, completed=step, **fields)
                if step >= last_step:
                    break
            del batches  # stops the loader's workers
            guard.check()
            # --- end of an epoch (or of the run): metrics, picture, checkpoint ---
            totals = torch.stack([loss_sum, torch.tensor(float(loss_count), device=device)])
            if ddp:
                dist.all_reduce(totals)
            epochs_done = step // steps_per_epoch
            if master:
                elapsed = time.perf_counter() - timer_start if timer_start else 0.0
                record = {"epoch": epochs_done, "step": step, "loss": (totals[0] / totals[1].clamp(min=1)).item(),
                          "lr": lr_now, "images_per_s": round((step - timer_step) * images_per_step / elapsed, 2)
                          if elapsed > 0 else None, "time": datetime.datetime.now().isoformat(timespec="seconds")}
                with open(run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                epoch_end = step % steps_per_epoch == 0
                if (epoch_end and epochs_done % max(1, recon_every) == 0) or step >= last_step:
                    save_reconstruction(net, root, indices[:4], run_dir / f"recon-epoch{epochs_done:03d}.png",
                                        device, s["seed"])
                state = {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "scaler": None,
                         "scheduler": {"kind": "warmup-cosine", "step": step, "warmup_steps": warmup_steps,
                                       "total_steps": total_steps, "peak_lr": peak_lr, "min_lr": s["min_lr"]},
                         "epoch": epochs_done, "step": step, "config": config, "rng": rng_state()}
                atomic_save(state, run_dir / CHECKPOINT)
                guard.saved_step = step
                if not bar:
                    console.print(f"epoch {epochs_done} step {step}/{total_steps} loss {record['loss']:.4f} "
                                  f"lr {lr_now:.2e} {record['images_per_s'] or 0:.1f} img/s")
            if ddp:
                dist.barrier()
        return Path(run_dir)
    finally:
        if bar:
            bar.stop()
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


# --- helpers ---

def default_workers(world: int = 1) -> int:
    """DataLoader workers per process: this process's share of the cores, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) // world))


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


def _find_run(run_dir: str | Path | None, runs_root: str | Path) -> Path:
    if run_dir is not None:
        run_dir = Path(run_dir)
        if not (run_dir / CHECKPOINT).is_file() or not (run_dir / "config.json").is_file():
            raise ValueError(f"{run_dir} has no {CHECKPOINT} and config.json to resume: check --run-dir")
        return run_dir
    runs = sorted(Path(runs_root).glob(f"*/{CHECKPOINT}"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise ValueError(f"no run to resume under {runs_root}/: pass --run-dir, or drop --resume to start one")
    return runs[-1].parent


def _new_run_dir(run_dir: str | Path | None, runs_root: str | Path, dataset: str, ddp: bool) -> Path:
    if run_dir is None:
        name = [f"{dataset}-{datetime.datetime.now():%Y%m%d-%H%M%S}"]
        if ddp:  # every rank must use rank 0's clock
            dist.broadcast_object_list(name, src=0)
        run_dir = Path(runs_root) / name[0]
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT).exists():
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it or another --run-dir")
    return run_dir


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[ips]:.1f} img/s"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console)
    bar.start()
    return bar


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@torch.no_grad()
def save_reconstruction(net: MaskedAutoencoder, root, indices: np.ndarray, path: Path, device: torch.device,
                        seed: int = 0) -> None:
    """A PNG of three rows: the input, the masked input (grey = removed), the reconstruction with
    the visible patches pasted back (MAE's visualisation). DiffMAE decodes from pure noise."""
    from PIL import Image

    images = torch.from_numpy(np.stack([root["images"][int(i)] for i in indices])).to(device)
    was_training = net.training
    net.eval()
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    x = normalize(images)
    timestep = None if net.objective == "mae" else len(net.alpha_bar) - 1
    with torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext():
        _, pred, mask = net(x, noise=net.sample_noise(len(x), device, generator, timestep))
    pred = pred.float()
    if net.norm_pix_loss:  # undo the per-patch normalisation with the input's patch statistics
        patches = net.patchify(x)
        pred = pred * (patches.var(dim=-1, keepdim=True) + 1e-6) ** 0.5 + patches.mean(dim=-1, keepdim=True)
    recon = net.unpatchify(pred)
    keep = net.unpatchify(mask.unsqueeze(-1).expand(-1, -1, net.patch ** 2 * 3))  # 1 = removed
    masked = denormalize(x * (1 - keep))
    masked[keep.bool().expand_as(masked)] = 128
    pasted = denormalize(x * (1 - keep) + recon * keep)
    rows = [torch.cat(list(r), dim=2) for r in (images, masked, pasted)]  # each (3, H, n*W)
    grid = torch.cat(rows, dim=1).permute(1, 2, 0).cpu().numpy()
    picture = Image.fromarray(grid)
    scale = max(1, 128 // images.shape[2])
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    tmp = path.with_name(path.name + ".tmp.png")
    picture.save(tmp)
    os.replace(tmp, path)
    net.train(was_training)
