"""`s2i convert`: raw files -> S2I store, one shard per task (docs/design.md §1).

The parent discovers the samples, creates the store at its final size (one slot per
discovered sample, one skeleton frame region per shard) and hands out shards. A task
reads, parses, selects, centres, encodes and writes one whole shard (every array), records
it as done, and returns its rejections and counts. Tasks run in worker processes (a
forkserver pool, `--workers N`), on a Dask cluster (`--dask N`, `--scheduler ADDRESS`), or
in this process (`--workers 1`). They may finish in any order: `--resume` redoes exactly
the shards without a done record. The parent then writes the splits and the rejected list
and marks the store complete."""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import zarr

from .. import __version__, store
from ..encoder import skeletons
from ..encoder.encoding import Encoding, dataset_limits, encode
from ..encoder.streams import StreamError, parse_streams, stream_power
from ..formats import DatasetFormat, Item, Rejection, get_format, split_sides
from ..formats.base import file_problem
from ..views.progress import progress_bar
from .executors import run_dask, run_inline, run_processes, worker_context
from .shard import Plan, ShardTask, warm_kernels


class ConvertError(Exception):
    """A conversion that cannot start; the message is one line."""


class ConvertFailed(ConvertError):
    """A conversion that started and stopped (a shard task failed): the store is resumable."""


@dataclass
class ConvertReport:
    store: str
    dataset: str
    discovered: int
    written: int
    rejected: list[Rejection]
    ignored: dict[str, int]
    splits: dict[str, tuple[int, int]]
    input_bytes: int
    image_bytes: int  # uncompressed size of the images arrays (every stream)
    image_stored: int  # their compressed size on disk
    store_bytes: int | None  # bytes on disk, everything (None for a store at a URL)
    seconds: float
    resumed_from: int = 0  # samples already in the store when a --resume started
    worker_rss_mb: float = 0.0  # the largest peak resident memory of a process that ran a task
    task_cpu_seconds: float = 0.0  # CPU time of this run's tasks, all processes together


def items_digest(items: list[Item]) -> str:
    """Identifies the discovered sample list, so --resume refuses a different one."""
    h = hashlib.sha1()
    for it in items:
        h.update(f"{it.name}\t{it.extra}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- the conversion


def store_attrs(fmt: DatasetFormat, raw: Path, items: list[Item], enc: Encoding,
                ignored: dict[str, int], discovered: int, command: str, streams: tuple[str, ...]) -> dict:
    skel, size, layout_name, persons = fmt.skeleton, enc.size, enc.layout, enc.persons
    return {
        "dataset": fmt.name, "description": fmt.description, "skeleton": skel.name,
        "joint_names": list(skel.joints), "bones": [list(b) for b in skel.bones],
        "part_names": list(skeletons.PART_NAMES), "layout": layout_name,
        "bands": skeletons.part_edges(skel, layout_name, size).tolist() if layout_name != "concat" else [0, size],
        "persons": persons, "fill": enc.fill, "norm": enc.norm, "image_size": [size, size],
        "channels": list(skel.channels),
        "class_names": list(fmt.class_names), "meta_fields": list(fmt.meta_fields),
        "command": command, "tool_version": __version__, "source_root": str(Path(raw).resolve()),
        "source_files": discovered, "ignored": ignored, "items_digest": items_digest(items),
        "streams": {s: stream_power(s, skel.is_2d).tolist() for s in streams},
    }


def open_for_resume(out: str, storage_options: dict, attrs: dict) -> zarr.Group:
    """Reopen an interrupted store, refusing one made from other files or options."""
    try:
        root = store.open_group(out, storage_options, mode="r+")
        old = store.read_header(root).to_attrs()
    except Exception as exc:
        raise ConvertError(f"{out} is not an s2i store that can be resumed ({exc}); use --overwrite") from exc
    if old["format_version"] != store.FORMAT_VERSION:
        raise ConvertError(f"cannot resume {out}: it has store format {old['format_version']}, this s2i "
                           f"writes {store.FORMAT_VERSION}; use --overwrite to start again")
    for key in ("dataset", "layout", "persons", "fill", "norm", "image_size", "items_digest", "streams"):
        if old.get(key) != attrs[key]:
            raise ConvertError(f"cannot resume {out}: its {key} differs from this run's "
                               "(other files or options); use --overwrite to start again")
    if old["complete"]:
        raise ConvertError(f"{out} is already complete: nothing to resume (--overwrite converts it again)")
    return root


def check_apart(raw: Path, out: str) -> None:
    """ConvertError when OUT is RAW, lies inside it or holds it (paths resolved, symlinks
    followed): writing a store there would mix it with the raw files, and replacing it
    (--overwrite) would delete them."""
    if store.is_url(out):
        return
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name: zarrs, which writes the shards, takes UTF-8 paths only
        raise ConvertError(f"OUT {out} is not a UTF-8 path: choose an OUT whose name is UTF-8 text") from None
    try:
        r, o = Path(raw).resolve(), Path(out).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ConvertError(f"cannot resolve RAW {raw} or OUT {out}: {exc}") from exc
    if o == r or r in o.parents or o in r.parents:
        where = "is" if o == r else "lies inside" if r in o.parents else "holds"
        raise ConvertError(f"OUT {out} {where} RAW {raw} (resolved: {o}, {r}): "
                           "write the store to a folder of its own, outside RAW")
    if os.path.lexists(out) and not o.exists():
        raise ConvertError(f"OUT {out} is a symbolic link to nothing ({o}): remove it or choose another OUT")
    if o.exists() and not o.is_dir():
        raise ConvertError(f"OUT {out} exists and is not a folder: choose another OUT (s2i never replaces a file)")


def convert(dataset: str, raw: Path, out: Path | str, *, size: int = 224, layout_name: str = "parts",
            persons: str | None = None, fill: str = "repeat", norm: str = "isotropic", workers: int | None = None,
            resume: bool = False,
            overwrite: bool = False, limit: int | None = None, missing_list: Path | None = None,
            shard: int = store.SHARD, reader_options: dict[str, str] | None = None, progress: bool = True,
            command: str = "", scheduler: str | None = None, dask_workers: int | None = None,
            storage_options: dict[str, str] | None = None, streams: tuple[str, ...] = ("joint",),
            max_file_mb: float | None = None) -> ConvertReport:
    started = time.perf_counter()
    try:  # joint always: its images set the store's size and are what a plain `s2i pretrain` reads
        streams = parse_streams(",".join(("joint", *streams)))
    except StreamError as exc:
        raise ConvertError(str(exc)) from exc
    fmt = get_format(dataset, **(reader_options or {}))
    if max_file_mb is not None:  # raises (or lowers) the format's bound on one file's size
        if not max_file_mb > 0:
            raise ConvertError(f"--max-file-mb {max_file_mb}: give a positive number of megabytes")
        fmt.max_file_mb = float(max_file_mb)
    persons = persons or fmt.persons
    if layout_name not in skeletons.LAYOUTS:
        raise ConvertError(f"unknown layout {layout_name!r}: choose one of {', '.join(skeletons.LAYOUTS)}")
    if persons not in skeletons.PERSONS:
        raise ConvertError(f"unknown persons mode {persons!r}: choose one of {', '.join(skeletons.PERSONS)}")
    if size < 8:
        raise ConvertError(f"--size {size} is too small: use at least 8 (224 for ViT-B/16)")
    try:  # --norm dataset: shards are encoded per channel, then rescaled once the training split is known
        enc = Encoding(fmt.skeleton, layout_name, size, persons, fill, "channel" if norm == "dataset" else norm)
    except ValueError as exc:
        raise ConvertError(str(exc)) from exc
    raw, out = Path(raw), str(out)
    if not (raw.is_file() if fmt.raw_is_file else raw.is_dir()):
        what = "file" if fmt.raw_is_file else "folder"
        if raw.exists():  # a FIFO or a device (its open could block or never end), or the other kind
            kind = file_problem(os.stat(raw), None) or "a file" if fmt.raw_is_file else "not a folder"
            raise ConvertError(f"raw {what} {raw} is {kind}")
        raise ConvertError(f"raw {what} {raw} does not exist")
    if resume and overwrite:
        raise ConvertError("--resume and --overwrite exclude each other: pick one")
    check_apart(raw, out)
    if scheduler and dask_workers:
        raise ConvertError("--scheduler and --dask exclude each other: pick one")
    storage_options = dict(storage_options or {})

    workers = workers or os.cpu_count() or 1
    # worker processes: their server starts now, importing and warming while discovery runs
    context = worker_context() if workers > 1 and not (scheduler or dask_workers) else None
    items, rejected, ignored = fmt.samples(raw, missing_list)
    discovered = len(items) + len(rejected) + sum(ignored.values())
    if limit is not None:
        items = items[:limit]
    if not items:
        raise ConvertError(f"no {fmt.name} samples found under {raw}" + (f" ({discovered} files skipped)" if discovered else ""))
    if shard >= 1 and -(-len(items) // shard) > store.MAX_CHUNKS:  # readers refuse finer grids (store.check_layout)
        raise ConvertError(f"--shard-size {shard} cuts {len(items)} samples into more than {store.MAX_CHUNKS} shards: "
                           f"use at least {-(-len(items) // store.MAX_CHUNKS)}")
    attrs = {**store_attrs(fmt, raw, items, enc, ignored, discovered, command, streams), "norm": norm}

    if resume and store.exists(out, storage_options):
        root = open_for_resume(out, storage_options, attrs)
        shard = store.read_header(root).shard
    else:
        try:
            root = store.create_store(out, n=len(items), height=size, width=size, joints=fmt.skeleton.num_joints,
                                      channels=3, meta_fields=list(fmt.meta_fields), attrs=attrs,
                                      overwrite=overwrite, shard=shard, storage_options=storage_options)
        except store.StoreError as exc:
            raise ConvertError(str(exc)) from exc
    done = store.done_shards(root)
    resumed_from = sum(int(r.get("written", 0)) for r in done.values())
    tasks = [ShardTask(k, tuple(items[k * shard:(k + 1) * shard])) for k in range(-(-len(items) // shard))
             if k not in done]
    plan = Plan(fmt, out,
                tuple(sorted(storage_options.items())), size, layout_name, persons, fill, enc.norm, shard, streams)

    if scheduler or dask_workers:
        outcomes = run_dask(plan, tasks, scheduler, dask_workers)
    elif context is not None and len(tasks) > 1:
        warm_kernels(fmt, items, plan)
        outcomes = run_processes(plan, tasks, min(workers, len(tasks)), context)
    else:
        outcomes = run_inline(plan, tasks)
    failed: list[tuple[ShardTask, BaseException]] = []
    input_bytes = files = 0
    worker_rss = task_cpu = 0.0
    with progress_bar(progress) as bar:
        bar_task = bar.add_task(f"converting {fmt.name}", total=len(items), completed=len(items) - sum(
            len(t.items) for t in tasks), info="")
        t0 = time.perf_counter()
        for task, result in outcomes:
            if isinstance(result, BaseException):
                failed.append((task, result))
                break  # stops submitting; the tasks already running finish and record themselves
            input_bytes += result.input_bytes
            files += result.files
            worker_rss = max(worker_rss, result.peak_rss_mb)
            task_cpu += result.cpu_seconds
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.update(bar_task, advance=result.files,
                       info=f"{files / elapsed:.0f} files/s  {input_bytes / elapsed / 1e6:.1f} MB/s")
        outcomes.close()
    if failed:
        task, exc = failed[0]
        first = task.index * shard
        missing = -(-len(items) // shard) - len(store.done_shards(root))
        raise ConvertFailed(f"shard {task.index} (samples {first}–{first + len(task.items) - 1}, from "
                            f"{task.items[0].name}) failed: {str(exc) or type(exc).__name__}; {missing} shard(s) "
                            f"not written: run the same command with --resume to finish {out}")

    records = store.done_shards(root)
    run_rejected = [Rejection(r["name"], r["reason"], r["line"])
                    for k in sorted(records) for r in records[k].get("rejected", [])]
    valid = np.asarray(root["valid"][:], dtype=bool)
    meta = {f: np.asarray(root[f"meta/{f}"][:]) for f in fmt.meta_fields}
    masks = fmt.splits(meta) if valid.any() else {}
    splits = split_sides({p: (_only(m[0], valid), _only(m[1], valid)) if isinstance(m, tuple)
                          else (_only(m, valid), _only(~np.asarray(m, dtype=bool), valid))
                          for p, m in masks.items()})
    all_rejected = rejected + run_rejected
    if norm == "dataset" and valid.any():
        apply_dataset_limits(root, valid, splits, enc, shard)
    store.finalize(root, splits, [r.as_dict() for r in all_rejected])
    image_total, image_stored = store.image_bytes(root)
    return ConvertReport(
        store=out, dataset=fmt.name, discovered=discovered, written=int(valid.sum()), rejected=all_rejected,
        ignored=ignored, splits={p: (len(s["train"]), len(s["test"])) for p, s in splits.items()},
        input_bytes=input_bytes, image_bytes=image_total,
        image_stored=image_stored, store_bytes=store.store_bytes(out),
        seconds=time.perf_counter() - started, resumed_from=resumed_from, worker_rss_mb=worker_rss,
        task_cpu_seconds=task_cpu)


def apply_dataset_limits(root: zarr.Group, valid: np.ndarray, splits: dict, enc: Encoding, shard: int,
                         most: int = 4096) -> None:
    """`--norm dataset`: limits from the first protocol's training side (at most `most` samples),
    then every valid slot's image re-encoded from its stored skeleton with them, shard by shard
    (idempotent, so --resume of an interrupted pass redoes it), and the limits recorded in the
    attributes (`norm_limits`)."""
    train = next(iter(splits.values()))["train"] if splits else np.flatnonzero(valid)
    chosen = np.sort(np.random.default_rng(0).choice(train, min(len(train), most), replace=False))
    seqs = []
    for lo in range(0, len(valid), shard):
        wanted = chosen[(chosen >= lo) & (chosen < lo + shard)]
        if len(wanted):
            block = store.read_skeletons(root, int(wanted[0]), int(wanted[-1]) + 1)
            seqs += [block[int(i - wanted[0])] for i in wanted]
    limits = dataset_limits(seqs, enc.skeleton)
    enc = replace(enc, norm="dataset", limits=tuple(map(tuple, limits.tolist())))
    for lo in range(0, len(valid), shard):
        hi = min(lo + shard, len(valid))
        keep = np.flatnonzero(valid[lo:hi])
        if not len(keep):
            continue
        block = store.read_skeletons(root, lo, hi)
        images, norm = np.asarray(root["images"][lo:hi]), np.asarray(root["norm"][lo:hi])
        images[keep], norm[keep] = encode([block[k] for k in keep], np.asarray(root["actors"][lo:hi])[keep], enc)
        root["images"][lo:hi], root["norm"][lo:hi] = images, norm  # the whole shard, once
    store.update_attrs(root, norm_limits=limits.tolist())


def _only(mask: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A split mask restricted to the slots that hold a sample."""
    return np.asarray(mask, dtype=bool) & valid

