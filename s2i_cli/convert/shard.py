"""One shard of a conversion: what every task shares (`Plan`), the task, and its work: read,
parse, select, centre, encode and write one whole shard (every array), then record it as
done (docs/design.md §1)."""
from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numba
import numpy as np

from .. import store
from ..encoder import skeletons
from ..encoder.encoding import Encoding, encode_many
from ..formats import DatasetFormat, FormatError, Item, Rejection
from ..formats.base import read_file
from ..safe_text import visible


@dataclass(frozen=True)
class Plan:
    """What every shard task shares, sent to worker processes and Dask workers: the reader as
    discovery left it (importers learn their skeleton and fields from the file), plain values."""

    fmt: DatasetFormat
    store: str
    storage_options: tuple[tuple[str, str], ...]
    encoding: Encoding  # of the shards (ConvertConfig.encoding)
    shard: int
    streams: tuple[str, ...] = ("joint",)  # joint first, then bone, motion, bone-motion as asked


@dataclass(frozen=True)
class ShardTask:
    index: int  # shard number: slots [index * shard, index * shard + len(items))
    items: tuple[Item, ...]


@dataclass(frozen=True)
class ShardResult:
    index: int
    files: int  # items handled (the progress bar's unit)
    written: int
    rejected: tuple[tuple[int, Rejection], ...]  # (slot, rejection)
    input_bytes: int
    peak_rss_mb: float  # of the process that ran the task, so far
    cpu_seconds: float  # the task's own CPU time (a shared machine's wall time says little)


def read_group(fmt: DatasetFormat, path: Path, items: list[Item]) -> tuple[list, int]:
    """Read one file and turn it into its items' sequences or FormatErrors."""
    if not fmt.whole_files:  # an importer's reader reads only its items' part of one big file
        return fmt.read_items(path, b"", items), 0
    try:  # a regular file within the format's bound (discovery checked; this re-checks the open file)
        data = read_file(path, fmt.max_file_bytes)
    except FormatError as exc:
        return [exc] * len(items), 0
    return fmt.read_items(path, data, items), len(data)


def centre_sequences(fmt: DatasetFormat, seqs: list[tuple[np.ndarray, int]]) -> list[np.ndarray]:
    skel = fmt.skeleton
    return [skeletons.centre_sequence(s, a, skel.centre, skel.is_2d) for s, a in seqs]


def encode_shard(plan: Plan, fmt: DatasetFormat, items: tuple[Item, ...], schema: dict
                 ) -> tuple[dict, list[tuple[int, Rejection]], int]:
    """Read, parse, select, centre and encode one shard's items into a block of every
    per-sample array (`store.sample_schema`); a rejected file's slot keeps its name, label
    and metadata and is marked not valid."""
    results, nbytes = [], 0
    for path, group in groupby(items, key=lambda it: it.path):
        group = list(group)
        seqs, n = read_group(fmt, path, group)
        results += seqs
        nbytes += n
    block = store.empty_block(schema, len(items))
    block["name"][:] = [it.name for it in items]
    block["label"][:] = [it.label for it in items]
    for path in schema:
        if path.startswith("meta/"):
            block[path][:] = [it.meta[path[5:]] for it in items]
    good = [k for k, r in enumerate(results) if not isinstance(r, FormatError)]
    empty = np.zeros((0, 2, fmt.skeleton.num_joints, 3), dtype=np.float32)
    block["skeletons"] = [empty] * len(items)
    if good:
        centred = centre_sequences(fmt, [results[k] for k in good])
        # one-thread kernels: a task has one core, parallelism is across tasks
        encoded = encode_many(centred, [results[k][1] for k in good], plan.encoding, plan.streams, parallel=False)
        for stream, values in encoded.items():  # each stream's images and norm, from the one parse
            for path, v in zip(store.stream_paths(stream), values):
                if len(good) == len(items):  # every file read (the usual case): no copy of the images
                    block[path] = v
                else:
                    block[path][good] = v
        block["valid"][good] = True
        block["frames"][good] = [len(s) for s in centred]
        block["actors"][good] = [results[k][1] for k in good]
        for k, seq in zip(good, centred):
            block["skeletons"][k] = seq
    rejected = [(k, Rejection(it.name, visible(r.reason), r.line)) for k, (it, r) in enumerate(zip(items, results))
                if isinstance(r, FormatError)]
    return block, rejected, nbytes


def convert_shard(plan: Plan, task: ShardTask) -> ShardResult:
    """The task: encode one shard, write all its arrays, then record it as done. Runs in a
    worker process (or a Dask worker) with one Numba thread: parallelism is across tasks."""
    cpu = time.process_time()
    numba.set_num_threads(1)
    fmt = plan.fmt
    root = store.open_group(plan.store, dict(plan.storage_options), mode="r+")  # per task: a worker outlives runs
    start = task.index * plan.shard
    block, rejected, nbytes = encode_shard(plan, fmt, task.items, store.root_schema(root))
    slots = [(start + k, r) for k, r in rejected]
    store.write_shard(root, start, block)
    written = len(task.items) - len(rejected)
    store.mark_done(root, task.index, {"written": written, "input_bytes": nbytes, "pid": os.getpid(),
                                       "rejected": [{"item": i, **r.as_dict()} for i, r in slots]})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    return ShardResult(task.index, len(task.items), written, tuple(slots), nbytes, peak, time.process_time() - cpu)


def warm_kernels(fmt: DatasetFormat, items: list[Item], plan: Plan) -> None:
    """Compile (or load from Numba's cache) the format's parse and select kernels and the
    one-thread encode kernels in this process before workers start, so that on a cold cache
    they load it instead of each compiling."""
    seqs = [r for r in read_group(fmt, items[0].path, items[:1])[0] if not isinstance(r, FormatError)]
    if seqs:
        encode_many(centre_sequences(fmt, seqs), [a for _, a in seqs], plan.encoding, plan.streams, parallel=False)
