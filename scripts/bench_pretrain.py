"""Throughput of pretraining: the block loader against naive per-sample reads, MAE steps, and
what epoch ends cost in a whole run.

    python scripts/bench_pretrain.py                       # synthetic 224px store, CPU here, < 2 min
    python scripts/bench_pretrain.py --store out.zarr      # a real store
    python scripts/bench_pretrain.py --pipelines --store out.zarr --workers 0,2   # zarrs vs zarr-python reads
    python scripts/bench_pretrain.py --e2e --models vit_tiny --size 32 --batch 16 --workers 2 --threads 1 \
        --decoder 128x2x4                                  # CPU, ~2 min
    python scripts/bench_pretrain.py --e2e --models vit_small --batch 256 --workers 8  # a GPU

Loader: images/s over one epoch of `--n` samples for workers 0, 1, 2 (best of two epochs),
for `make_loader` (shard-aligned block reads + shuffle buffer) and for a naive
map-style Dataset reading one sample per `images[i]` with DataLoader(shuffle=True), in the
same process on the same store; the ratio is block / naive. Then the same block loader reading
through zarrs' codec pipeline (Rust) against zarr-python's own, on the same store, one epoch of
each in turn, best of --rounds: images/s for each worker count, and images per CPU-second of a
one-thread workers-0 loader (one worker's capacity, whatever else the machine runs) for each
stored stream. `--pipelines` runs only that comparison. Training: images/s of
fwd + bwd + AdamW steps of the MAE (decoder 512 x 8) on random batches, bf16 autocast on
CUDA only.

--e2e instead runs `pretrain` itself for --epochs epochs of --steps steps on a synthetic store
of exactly that many batches, and reads metrics.jsonl: step throughput (inside epochs) and run
throughput (wall clock, epoch ends included) of the same run; run / step is what epoch ends
cost (target >= 90 % for epochs of 20+ steps). Twice: with the default checkpoint cadence
(every few minutes, and at the end) and with --save-every 1 (a checkpoint every epoch, the
worst case).

--augment: the loader that re-encodes the stored skeletons on the fly (augment.py: rotate,
scale, crop, mirror; one-thread Numba kernel per worker) against the same loader reading the
stored images, per worker, on an `s2i synth` NTU60 store converted at --size (or --store when
it has a known skeleton). Floor: 1,000 img/s per worker at 224 px."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from contextlib import nullcontext
from unittest import mock
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from s2i_cli import store as s2i_store  # noqa: E402
from s2i_cli.encoder.encoding import store_encoding  # noqa: E402
from s2i_cli.store import open_store, stored_streams  # noqa: E402
from s2i_cli.train.augment import AUGMENTS  # noqa: E402
from s2i_cli.train.loader import make_loader, normalize  # noqa: E402
from s2i_cli.train.mae import MaskedAutoencoder  # noqa: E402

warnings.filterwarnings("ignore", message="Consolidated metadata")


class PerSample(Dataset):
    """The naive baseline: one zarr read per sample."""

    def __init__(self, store: Path, indices: np.ndarray):
        self.store, self.indices, self.images = str(store), indices, None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        if self.images is None:
            import zarr
            self.images = zarr.open_group(self.store, mode="r")["images"]
        i = int(self.indices[k])
        return torch.from_numpy(self.images[i]), i


def rate(loader, epochs: int = 2, clock=time.perf_counter) -> float:
    """Best images/s of `epochs` passes (a busy shared machine only ever makes a pass slower).
    clock=time.process_time with a workers=0 loader gives images per CPU-second: what one worker
    can deliver, whatever else the machine runs (wall-clock rates there only say how busy it is)."""
    best = 0.0
    for epoch in range(epochs):
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(epoch)
        start, count = clock(), 0
        for batch in loader:
            count += len(batch[0])
        best = max(best, count / (clock() - start))
    return best


def bench_loader(store: Path, batch: int, workers_list: list[int]) -> list[dict]:
    n = open_store(store)["label"].shape[0]
    indices = np.arange(n)
    rows = []
    for workers in workers_list:
        block = rate(make_loader(store, indices, batch, shuffle=True, workers=workers))
        naive = rate(DataLoader(PerSample(store, indices), batch_size=batch, shuffle=True, num_workers=workers))
        rows.append({"workers": workers, "block_img_s": round(block, 1), "naive_img_s": round(naive, 1),
                     "ratio": round(block / naive, 2)})
        print(f"loader  workers {workers}: block {block:8.1f} img/s   naive per-sample {naive:8.1f} img/s   "
              f"ratio {block / naive:5.2f}x", flush=True)
    return rows


def read_pipelines() -> dict:
    """name -> a context the loader is built and iterated in: the readers' own choice for a
    local store (zarrs' codec pipeline, store._ZARRS) or, with that emptied, zarr-python's.
    Active when the loader's workers fork, it holds in them too."""
    return {"zarrs": nullcontext, "zarr-python": lambda: mock.patch.dict(s2i_store._ZARRS, clear=True)}


def epoch_rate(loader, epoch: int, clock=time.perf_counter) -> float:
    loader.dataset.set_epoch(epoch)
    start, count = clock(), 0
    for batch in loader:
        count += len(batch[0])
    return count / (clock() - start)


def compare_pipelines(store: Path, batch: int, workers: int, rounds: int, stream: str = "joint",
                      clock=time.perf_counter) -> dict[str, float]:
    """Best images/s of each read pipeline, one epoch of each in turn (a drifting shared machine
    weighs on both alike); each loader persists, so its workers open the store once."""
    indices = np.arange(open_store(store)["label"].shape[0])
    contexts = read_pipelines()
    loaders, best = {}, dict.fromkeys(contexts, 0.0)
    for epoch in range(rounds):
        for name, context in contexts.items():
            with context():
                if name not in loaders:
                    loaders[name] = make_loader(store, indices, batch, shuffle=True, workers=workers, stream=stream)
                best[name] = max(best[name], epoch_rate(loaders[name], epoch, clock))
    if workers == 0:  # the loaders read in this process: check each read through the pipeline it is named for
        from tests.stores import pipeline

        used = {name: pipeline(loader.dataset._open()[0]) for name, loader in loaders.items()}
        assert used == {"zarrs": "ZarrsCodecPipeline", "zarr-python": "BatchedCodecPipeline"}, used
    return best


def bench_pipelines(store: Path, batch: int, workers_list: list[int], rounds: int) -> list[dict]:
    rows = []
    for workers in workers_list:
        r = compare_pipelines(store, batch, workers, rounds)
        rows.append({"workers": workers, "zarrs_img_s": round(r["zarrs"], 1),
                     "zarr_python_img_s": round(r["zarr-python"], 1), "ratio": round(r["zarrs"] / r["zarr-python"], 2)})
        print(f"reads   workers {workers}: zarrs {r['zarrs']:8.1f} img/s   zarr-python {r['zarr-python']:8.1f} img/s   "
              f"ratio {r['zarrs'] / r['zarr-python']:5.2f}x", flush=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker (torch gives each one thread)
    for stream in stored_streams(open_store(store)):
        r = compare_pipelines(store, batch, 0, rounds, stream, clock=time.process_time)
        rows.append({"per_cpu_second": True, "stream": stream, "zarrs_img_per_cpu_s": round(r["zarrs"], 1),
                     "zarr_python_img_per_cpu_s": round(r["zarr-python"], 1),
                     "ratio": round(r["zarrs"] / r["zarr-python"], 2)})
        print(f"reads   per CPU-second, {stream} images: zarrs {r['zarrs']:8.1f} img/s   zarr-python "
              f"{r['zarr-python']:8.1f} img/s   ratio {r['zarrs'] / r['zarr-python']:5.2f}x", flush=True)
    torch.set_num_threads(threads)
    return rows


def bench_augment(store: Path, batch: int, workers_list: list[int]) -> list[dict]:
    # images/s of the re-encoding loader (every augmentation) against reading the stored images
    root = open_store(store)
    n = root["label"].shape[0]
    indices = np.arange(n)
    enc = store_encoding(s2i_store.read_header(root))
    rows = []
    for workers in workers_list:
        stored = rate(make_loader(store, indices, batch, shuffle=True, workers=workers))
        made = rate(make_loader(store, indices, batch, shuffle=True, workers=workers, encoding=enc, augment=AUGMENTS))
        per = made / max(1, workers)
        rows.append({"workers": workers, "augmented_img_s": round(made, 1), "stored_img_s": round(stored, 1),
                     "ratio": round(made / stored, 2), "augmented_per_worker": round(per, 1)})
        print(f"augment workers {workers}: re-encoded + augmented {made:8.1f} img/s ({per:7.1f} per worker)   "
              f"stored images {stored:8.1f} img/s   ratio {made / stored:5.2f}x", flush=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker (torch gives each one thread)
    stored = rate(make_loader(store, indices, batch, shuffle=True, workers=0), clock=time.process_time)
    made = rate(make_loader(store, indices, batch, shuffle=True, workers=0, encoding=enc, augment=AUGMENTS),
                clock=time.process_time)
    torch.set_num_threads(threads)
    rows.append({"per_cpu_second": True, "augmented_img_per_cpu_s": round(made, 1),
                 "stored_img_per_cpu_s": round(stored, 1), "ratio": round(made / stored, 2)})
    print(f"augment per CPU-second (one worker's capacity): re-encoded + augmented {made:8.1f} img/s   "
          f"stored images {stored:8.1f} img/s   ratio {made / stored:5.2f}x", flush=True)
    return rows


def synth_store(folder: Path, n: int, size: int) -> Path:
    # an `s2i synth` NTU60 set converted at `size`: real skeletons for the loader to re-encode
    from s2i_cli.convert.flow import convert
    from s2i_cli.formats.synth import synthesize

    synthesize("ntu60", folder / "raw", samples=n, seed=0, classes=10)
    return convert("ntu60", folder / "raw", folder / "synth.zarr", size=size, progress=False).store


def bench_steps(model: str, size: int, batch: int, steps: int, device: torch.device, compile: bool) -> dict:
    torch.manual_seed(0)
    net = MaskedAutoencoder(model, size).to(device)
    step_fn = torch.compile(net) if compile else net
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=device.type == "cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    times = []
    for _ in range(steps + 1):  # the first step (allocation, compilation) is not counted
        start = time.perf_counter()
        with autocast:
            loss, _, _ = step_fn(normalize(images))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    per_step = float(np.mean(times[1:]))
    row = {"model": model, "batch": batch, "first_step_s": round(times[0], 3), "step_s": round(per_step, 3),
           "img_s": round(batch / per_step, 1), "device": str(device)}
    if device.type == "cuda":
        row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        torch.cuda.reset_peak_memory_stats()
    print(f"train   {model:9s} batch {batch:4d} on {device}: first step {times[0]:.2f} s, then {per_step:.3f} s/step"
          f" = {batch / per_step:8.1f} img/s" + (f", peak {row['peak_mem_gib']} GiB" if "peak_mem_gib" in row else ""),
          flush=True)
    return row


def bench_e2e(model: str, size: int, batch: int, steps: int, epochs: int, workers: int, compile: bool,
              decoder: tuple[int, int, int], tmp: Path) -> list[dict]:
    """Run/step throughput of whole `pretrain` runs (see the module docstring)."""
    from s2i_cli.train.pretrain import pretrain
    from tests.stores import make_store

    store = make_store(tmp / f"e2e-{size}.zarr", n=batch * steps, size=size, classes=10, noise=3.0)
    rows = []
    for label, save_every in (("default checkpoints", None), ("--save-every 1", 1)):
        run = pretrain(store, tmp / f"e2e-{model}-{save_every}", model=model, epochs=epochs, batch_size=batch,
                       workers=workers, compile=compile, warmup_epochs=0, save_every=save_every, progress=False,
                       decoder_dim=decoder[0], decoder_depth=decoder[1], decoder_heads=decoder[2])
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        ratio = last["run_images_per_s"] / last["step_images_per_s"]
        rows.append({"model": model, "checkpoints": label, "epochs": epochs, "steps_per_epoch": steps,
                     "step_img_s": last["step_images_per_s"], "run_img_s": last["run_images_per_s"],
                     "run_over_step": round(ratio, 3)})
        print(f"pretrain {model} batch {batch}, {epochs} epochs x {steps} steps, {label}: step "
              f"{last['step_images_per_s']:.1f} img/s, run {last['run_images_per_s']:.1f} img/s, "
              f"run/step {100 * ratio:.1f} %", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, help="an s2i store (default: a synthetic one in a temporary folder)")
    p.add_argument("--n", type=int, default=768, help="samples in the synthetic store")
    p.add_argument("--size", type=int, default=224, help="image size of the synthetic store")
    p.add_argument("--loader-batch", type=int, default=64)
    p.add_argument("--workers", default="0,1,2", help="worker counts to measure, comma-separated")
    p.add_argument("--models", default="vit_tiny,vit_base", help="encoders to time, comma-separated ('' skips)")
    p.add_argument("--batch", type=int, help="training batch (default 8 on CPU, 64 on CUDA)")
    p.add_argument("--steps", type=int, help="timed training steps (default 2 on CPU, 20 on CUDA); --e2e: steps per "
                                             "epoch (default 24)")
    p.add_argument("--epochs", type=int, default=4, help="--e2e: epochs of each run")
    p.add_argument("--decoder", default="512x8x16", help="--e2e: decoder width x depth x heads (MAE's: 512x8x16)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--e2e", action="store_true", help="run whole `pretrain` runs: run / step throughput")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--augment", action="store_true", help="only the re-encoding loader against stored images")
    p.add_argument("--pipelines", action="store_true", help="only the block loader through zarrs against zarr-python")
    p.add_argument("--rounds", type=int, default=3, help="epochs of each read pipeline, taken in turn (best counts)")
    p.add_argument("--json", type=Path, help="write the numbers here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device} ({name}); torch {torch.__version__}", flush=True)
    batch = args.batch or (64 if device.type == "cuda" else 8)
    tmp = tempfile.TemporaryDirectory(prefix="s2i-bench-")
    if args.augment:
        store = args.store
        if store is None:
            start = time.perf_counter()
            store = synth_store(Path(tmp.name), args.n, args.size)
            print(f"synthetic NTU60 store: {args.n} samples at {args.size} px in {time.perf_counter() - start:.1f} s",
                  flush=True)
        rows = bench_augment(store, args.loader_batch, [int(w) for w in args.workers.split(",") if w != ""])
        if args.json:
            args.json.write_text(json.dumps({"device_name": name, "augment": rows}, indent=2))
        tmp.cleanup()
        return
    results = {"device": str(device), "device_name": name}
    if args.e2e:
        decoder = tuple(int(v) for v in args.decoder.split("x"))
        results["e2e"] = [bench_e2e(m, args.size, batch, args.steps or 24, args.epochs, int(args.workers.split(",")[-1]),
                                    args.compile, decoder, Path(tmp.name)) for m in args.models.split(",") if m]
    else:
        steps = args.steps or (20 if device.type == "cuda" else 2)
        store = args.store
        if store is None:
            from tests.stores import make_store

            start = time.perf_counter()
            store = make_store(Path(tmp.name) / "bench.zarr", n=args.n, size=args.size, classes=10, noise=3.0)
            print(f"synthetic store: {args.n} x 3x{args.size}x{args.size} written in "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        size = int(open_store(store).attrs["s2i"]["image_size"][0])
        results["store"] = str(store)
        workers = [int(w) for w in args.workers.split(",") if w != ""]
        if not args.pipelines:
            results["loader"] = bench_loader(store, args.loader_batch, workers)
        results["reads"] = bench_pipelines(store, args.loader_batch, workers, args.rounds)
        if not args.pipelines:
            results["train"] = [bench_steps(m, size, batch, steps, device, args.compile)
                                for m in args.models.split(",") if m]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
