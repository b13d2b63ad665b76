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
import multiprocessing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from .. import store
from ..version import __version__
from ..encoder import skeletons
from ..encoder.encoding import Encoding, dataset_limits, encode
from ..encoder.streams import StreamError, parse_streams, stream_power
from ..formats import DatasetFormat, Item, Rejection, get_format, split_sides
from ..formats.base import file_problem
from ..views.progress import progress_bar
from .config import ConvertConfig
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


def convert(dataset: str, raw: Path | str, out: Path | str, **options: Any) -> ConvertReport:
    """Convert RAW into the store OUT; `options` are ConvertConfig fields (size, layout_name,
    persons, fill, norm, streams, workers, resume, overwrite, ...)."""
    return run_conversion(ConvertConfig(dataset, Path(raw), str(out), **options))


@dataclass
class Discovered:
    """What discovery found: the samples to convert, and what it skipped."""

    items: list[Item]
    rejected: list[Rejection]
    ignored: dict[str, int]
    files: int  # every file discovery saw (converted, rejected or ignored)


@dataclass
class Tally:
    """What the shard tasks of this run did, summed as they finish."""

    input_bytes: int = 0
    files: int = 0
    worker_rss: float = 0.0
    task_cpu: float = 0.0
    failed: tuple[ShardTask, BaseException] | None = None


def run_conversion(cfg: ConvertConfig) -> ConvertReport:
    """validate -> discover -> open or create the store -> run the shard tasks -> finish."""
    started = time.perf_counter()
    cfg, fmt = validate(cfg)
    # worker processes: their server starts now, importing and warming while discovery runs
    context = worker_context() if cfg.workers > 1 and not (cfg.scheduler or cfg.dask_workers) else None
    found = discover(cfg, fmt)
    enc = cfg.encoding(fmt.skeleton, cfg.persons)  # after discovery: importers learn their skeleton from the file
    root, shard = open_or_create(cfg, fmt, enc, found)
    done = store.done_shards(root)
    tasks = [ShardTask(k, tuple(found.items[k * shard:(k + 1) * shard])) for k in range(-(-len(found.items) // shard))
             if k not in done]
    plan = Plan(fmt, cfg.out, tuple(sorted(cfg.storage_options.items())), enc, shard, cfg.streams)
    ran = run_tasks(cfg, plan, tasks, found.items, context)
    if ran.failed:
        raise failure(cfg, root, plan, found.items, *ran.failed)
    report = finish(cfg, root, fmt, enc, shard, found, ran)
    report.resumed_from = sum(int(r.get("written", 0)) for r in done.values())
    report.seconds = time.perf_counter() - started
    return report


def validate(cfg: ConvertConfig) -> tuple[ConvertConfig, DatasetFormat]:
    """Check every option before anything is read: the config with the dataset's persons, the
    streams parsed (joint first), the workers counted; the reader. The image choices are
    checked against the reader's skeleton as it is before discovery (an importer's may change)."""
    try:  # joint always: its images set the store's size and are what a plain `s2i pretrain` reads
        streams = parse_streams(",".join(("joint", *cfg.streams)))
    except StreamError as exc:
        raise ConvertError(str(exc)) from exc
    fmt = get_format(cfg.dataset, **(cfg.reader_options or {}))
    if cfg.max_file_mb is not None:  # raises (or lowers) the format's bound on one file's size
        if not cfg.max_file_mb > 0:
            raise ConvertError(f"--max-file-mb {cfg.max_file_mb}: give a positive number of megabytes")
        fmt.max_file_mb = float(cfg.max_file_mb)
    cfg = replace(cfg, persons=cfg.persons or fmt.persons, streams=streams, workers=cfg.workers or os.cpu_count() or 1,
                  storage_options=dict(cfg.storage_options or {}))
    if cfg.layout_name not in skeletons.LAYOUTS:
        raise ConvertError(f"unknown layout {cfg.layout_name!r}: choose one of {', '.join(skeletons.LAYOUTS)}")
    if cfg.persons not in skeletons.PERSONS:
        raise ConvertError(f"unknown persons mode {cfg.persons!r}: choose one of {', '.join(skeletons.PERSONS)}")
    if cfg.size < 8:
        raise ConvertError(f"--size {cfg.size} is too small: use at least 8 (224 for ViT-B/16)")
    try:
        cfg.encoding(fmt.skeleton, cfg.persons)
    except ValueError as exc:
        raise ConvertError(str(exc)) from exc
    check_raw(cfg.raw, fmt)
    if cfg.resume and cfg.overwrite:
        raise ConvertError("--resume and --overwrite exclude each other: pick one")
    check_apart(cfg.raw, cfg.out)
    if cfg.scheduler and cfg.dask_workers:
        raise ConvertError("--scheduler and --dask exclude each other: pick one")
    return cfg, fmt


def check_raw(raw: Path, fmt: DatasetFormat) -> None:
    """ConvertError unless RAW is the kind the format reads (a folder, or an importer's one
    regular file): a FIFO or a device (its open could block or never end) is named, unopened."""
    if raw.is_file() if fmt.raw_is_file else raw.is_dir():
        return
    what = "file" if fmt.raw_is_file else "folder"
    if raw.exists():
        kind = file_problem(os.stat(raw), None) or "a file" if fmt.raw_is_file else "not a folder"
        raise ConvertError(f"raw {what} {raw} is {kind}")
    raise ConvertError(f"raw {what} {raw} does not exist")


def discover(cfg: ConvertConfig, fmt: DatasetFormat) -> Discovered:
    """The samples under RAW (the first --limit of them), or ConvertError when there are none."""
    items, rejected, ignored = fmt.samples(cfg.raw, cfg.missing_list)
    files = len(items) + len(rejected) + sum(ignored.values())
    if cfg.limit is not None:
        items = items[:cfg.limit]
    if not items:
        raise ConvertError(f"no {fmt.name} samples found under {cfg.raw}" + (f" ({files} files skipped)" if files else ""))
    if cfg.shard >= 1 and -(-len(items) // cfg.shard) > store.MAX_CHUNKS:  # readers refuse finer grids (check_layout)
        raise ConvertError(f"--shard-size {cfg.shard} cuts {len(items)} samples into more than {store.MAX_CHUNKS} "
                           f"shards: use at least {-(-len(items) // store.MAX_CHUNKS)}")
    return Discovered(items, rejected, ignored, files)


def open_or_create(cfg: ConvertConfig, fmt: DatasetFormat, enc: Encoding, found: Discovered) -> tuple[zarr.Group, int]:
    """The store to write into and its shard size: the interrupted one (--resume), or a new one."""
    attrs = {**store_attrs(fmt, cfg.raw, found.items, enc, found.ignored, found.files, cfg.command, cfg.streams),
             "norm": cfg.norm}
    if cfg.resume and store.exists(cfg.out, cfg.storage_options):
        root = open_for_resume(cfg.out, cfg.storage_options, attrs)
        return root, store.read_header(root).shard
    try:
        root = store.create_store(cfg.out, n=len(found.items), height=cfg.size, width=cfg.size,
                                  joints=fmt.skeleton.num_joints, channels=3, meta_fields=list(fmt.meta_fields),
                                  attrs=attrs, overwrite=cfg.overwrite, shard=cfg.shard,
                                  storage_options=cfg.storage_options)
    except store.StoreError as exc:
        raise ConvertError(str(exc)) from exc
    return root, cfg.shard


def run_tasks(cfg: ConvertConfig, plan: Plan, tasks: list[ShardTask], items: list[Item],
              context: multiprocessing.context.BaseContext | None) -> Tally:
    """Run the shard tasks where the options say (Dask, worker processes or this process),
    with a progress bar; stops at the first failure (the tasks already running finish)."""
    if cfg.scheduler or cfg.dask_workers:
        outcomes = run_dask(plan, tasks, cfg.scheduler, cfg.dask_workers)
    elif context is not None and len(tasks) > 1:
        warm_kernels(plan.fmt, items, plan)
        outcomes = run_processes(plan, tasks, min(cfg.workers, len(tasks)), context)
    else:
        outcomes = run_inline(plan, tasks)
    ran = Tally()
    with progress_bar(cfg.progress) as bar:
        bar_task = bar.add_task(f"converting {plan.fmt.name}", total=len(items),
                                completed=len(items) - sum(len(t.items) for t in tasks), info="")
        t0 = time.perf_counter()
        for task, result in outcomes:
            if isinstance(result, BaseException):
                ran.failed = (task, result)
                break  # stops submitting; the tasks already running finish and record themselves
            ran.input_bytes += result.input_bytes
            ran.files += result.files
            ran.worker_rss = max(ran.worker_rss, result.peak_rss_mb)
            ran.task_cpu += result.cpu_seconds
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.update(bar_task, advance=result.files,
                       info=f"{ran.files / elapsed:.0f} files/s  {ran.input_bytes / elapsed / 1e6:.1f} MB/s")
        outcomes.close()
    return ran


def failure(cfg: ConvertConfig, root: zarr.Group, plan: Plan, items: list[Item], task: ShardTask,
            exc: BaseException) -> ConvertFailed:
    """The one-line error of a failed shard task: which, why, and --resume to finish."""
    first = task.index * plan.shard
    missing = -(-len(items) // plan.shard) - len(store.done_shards(root))
    return ConvertFailed(f"shard {task.index} (samples {first}–{first + len(task.items) - 1}, from "
                         f"{task.items[0].name}) failed: {str(exc) or type(exc).__name__}; {missing} shard(s) "
                         f"not written: run the same command with --resume to finish {cfg.out}")


def finish(cfg: ConvertConfig, root: zarr.Group, fmt: DatasetFormat, enc: Encoding, shard: int, found: Discovered,
           ran: Tally) -> ConvertReport:
    """Splits, the rejected list (discovery's and every shard's), --norm dataset's rescaling,
    the store marked complete; the report."""
    records = store.done_shards(root)
    run_rejected = [Rejection(r["name"], r["reason"], r["line"])
                    for k in sorted(records) for r in records[k].get("rejected", [])]
    valid = np.asarray(root["valid"][:], dtype=bool)
    meta = {f: np.asarray(root[f"meta/{f}"][:]) for f in fmt.meta_fields}
    masks = fmt.splits(meta) if valid.any() else {}
    splits = split_sides({p: (_only(m[0], valid), _only(m[1], valid)) if isinstance(m, tuple)
                          else (_only(m, valid), _only(~np.asarray(m, dtype=bool), valid))
                          for p, m in masks.items()})
    all_rejected = found.rejected + run_rejected
    store.compact_skeletons(root)  # before anything reads the skeletons back (finalize's first step too)
    if cfg.norm == "dataset" and valid.any():
        apply_dataset_limits(root, valid, splits, enc, shard)
    store.finalize(root, splits, [r.as_dict() for r in all_rejected])
    image_total, image_stored = store.image_bytes(root)
    return ConvertReport(
        store=cfg.out, dataset=fmt.name, discovered=found.files, written=int(valid.sum()), rejected=all_rejected,
        ignored=found.ignored, splits={p: (len(s["train"]), len(s["test"])) for p, s in splits.items()},
        input_bytes=ran.input_bytes, image_bytes=image_total, image_stored=image_stored,
        store_bytes=store.store_bytes(cfg.out), seconds=0.0, worker_rss_mb=ran.worker_rss,
        task_cpu_seconds=ran.task_cpu)


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

