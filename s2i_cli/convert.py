"""`s2i convert`: raw files -> S2I store, one shard-aligned batch at a time (docs/design.md §1).

discover -> read (thread pool) -> parse + select (Numba, nogil, in the pool) -> centre ->
encode (one parallel Numba kernel per batch) -> write whole shards. Memory is bounded by
one batch plus one shard whatever the dataset size. Progress is recorded after every
shard, so an interrupted run continues with --resume."""
from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import numba
import numpy as np
import zarr

from . import __version__, layout, store
from .encoding import Encoding, encode
from .formats import DatasetFormat, FormatError, Item, Rejection, get_format, split_sides


class ConvertError(Exception):
    """A conversion that cannot start; the message is one line."""


@dataclass
class ConvertReport:
    store: Path
    dataset: str
    discovered: int
    written: int
    rejected: list[Rejection]
    ignored: dict[str, int]
    splits: dict[str, tuple[int, int]]
    input_bytes: int
    image_bytes: int  # uncompressed size of the images array
    image_stored: int  # its compressed size on disk
    store_bytes: int  # bytes on disk, everything
    seconds: float
    resumed_from: int = 0  # samples already in the store when a --resume started
    protocols: list[str] = field(default_factory=list)


@dataclass
class Encoded:
    """Encoded samples waiting to be written, with the index of the item each came from."""

    item: np.ndarray
    images: np.ndarray
    label: np.ndarray
    name: list[str]
    frames: np.ndarray
    actors: np.ndarray
    norm: np.ndarray
    meta: dict[str, np.ndarray]
    skeletons: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.item)

    def split(self, n: int) -> tuple[Encoded, Encoded]:
        def part(sl: slice) -> Encoded:
            return Encoded(self.item[sl], self.images[sl], self.label[sl], self.name[sl], self.frames[sl],
                           self.actors[sl], self.norm[sl], {k: v[sl] for k, v in self.meta.items()},
                           self.skeletons[sl])
        return part(slice(0, n)), part(slice(n, None))

    @staticmethod
    def concat(blocks: list[Encoded]) -> Encoded:
        first = blocks[0]
        return Encoded(np.concatenate([b.item for b in blocks]), np.concatenate([b.images for b in blocks]),
                       np.concatenate([b.label for b in blocks]), [n for b in blocks for n in b.name],
                       np.concatenate([b.frames for b in blocks]), np.concatenate([b.actors for b in blocks]),
                       np.concatenate([b.norm for b in blocks]),
                       {k: np.concatenate([b.meta[k] for b in blocks]) for k in first.meta},
                       [s for b in blocks for s in b.skeletons])


def items_digest(items: list[Item]) -> str:
    """Identifies the discovered sample list, so --resume refuses a different one."""
    h = hashlib.sha1()
    for it in items:
        h.update(f"{it.name}\t{it.extra}\n".encode())
    return h.hexdigest()


def read_group(fmt: DatasetFormat, path: Path, items: list[Item]) -> tuple[list, int]:
    """Read one file and turn it into its items' sequences (runs in the thread pool)."""
    if not fmt.whole_files:
        return fmt.read_items(path, b"", items), 0
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [FormatError(f"cannot read file: {exc.strerror or exc}")] * len(items), 0
    return fmt.read_items(path, data, items), len(data)


def encode_sequences(fmt: DatasetFormat, seqs: list[tuple[np.ndarray, int]], size: int, layout_name: str,
                     persons: str, fill: str = "repeat", norm: str = "channel",
                     ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Centre each selected sequence and encode the batch with one kernel call."""
    skel = fmt.skeleton
    centred = [layout.centre_sequence(s, a, skel.centre, skel.is_2d) for s, a in seqs]
    images, norm = encode(centred, [a for _, a in seqs], Encoding(skel, layout_name, size, persons, fill, norm))
    return images, norm, centred


def encode_batch_items(fmt: DatasetFormat, batch: list[tuple[int, Item, object]], enc: Encoding,
                       ) -> tuple[Encoded | None, list[tuple[int, Rejection]]]:
    """Split a batch's results into encoded samples and rejections (with item indices)."""
    good = [(i, it, r) for i, it, r in batch if not isinstance(r, FormatError)]
    rejected = [(i, Rejection(it.name, r.reason, r.line)) for i, it, r in batch if isinstance(r, FormatError)]
    if not good:
        return None, rejected
    images, norm, centred = encode_sequences(fmt, [r for _, _, r in good], enc.size, enc.layout, enc.persons,
                                             enc.fill, enc.norm)
    items = [it for _, it, _ in good]
    return Encoded(
        item=np.array([i for i, _, _ in good], dtype=np.int64), images=images,
        label=np.array([it.label for it in items], dtype=np.int16), name=[it.name for it in items],
        frames=np.array([len(s) for s in centred], dtype=np.int32),
        actors=np.array([r[1] for _, _, r in good], dtype=np.int8), norm=norm,
        meta={f: np.array([it.meta[f] for it in items], dtype=np.int16) for f in fmt.meta_fields},
        skeletons=centred,
    ), rejected


def store_attrs(fmt: DatasetFormat, raw: Path, items: list[Item], enc: Encoding,
                ignored: dict[str, int], discovered: int, command: str) -> dict:
    skel, size, layout_name, persons = fmt.skeleton, enc.size, enc.layout, enc.persons
    return {
        "dataset": fmt.name, "description": fmt.description, "skeleton": skel.name,
        "joint_names": list(skel.joints), "bones": [list(b) for b in skel.bones],
        "part_names": list(layout.PART_NAMES), "layout": layout_name,
        "bands": layout.part_edges(skel, layout_name, size).tolist() if layout_name != "concat" else [0, size],
        "persons": persons, "fill": enc.fill, "norm": enc.norm, "image_size": [size, size], "channels": list(skel.channels),
        "class_names": list(fmt.class_names), "meta_fields": list(fmt.meta_fields),
        "command": command, "tool_version": __version__, "source_root": str(Path(raw).resolve()),
        "source_files": discovered, "ignored": ignored, "items_digest": items_digest(items),
    }


_BEFORE_CHOICES = {"fill": "repeat", "norm": "channel"}  # what stores made before these options hold


def open_for_resume(out: Path, attrs: dict) -> zarr.Group:
    """Reopen an interrupted store, refusing one made from other files or options."""
    try:
        root = zarr.open_group(str(out), mode="r+")
        old = root.attrs["s2i"]
    except Exception as exc:
        raise ConvertError(f"{out} is not an s2i store that can be resumed ({exc}); use --overwrite") from exc
    for key in ("dataset", "layout", "persons", "fill", "norm", "image_size", "items_digest"):
        if old.get(key, _BEFORE_CHOICES.get(key)) != attrs[key]:
            raise ConvertError(f"cannot resume {out}: its {key} differs from this run's "
                               "(other files or options); use --overwrite to start again")
    return root


def read_batches(pool: ThreadPoolExecutor, fmt: DatasetFormat, items: list[Item], first: int, shard: int):
    """Yield (batch, bytes read): batches of whole files, about one shard of items each, as
    [(item index, item, sequence or FormatError)]. Two batches are read ahead, so the pool
    parses the next while the caller encodes and writes this one."""
    todo = list(enumerate(items))[first:]
    batches: list[list[list[tuple[int, Item]]]] = []
    for _, group in groupby(todo, key=lambda t: t[1].path):
        group = list(group)
        # a reader of parts of one big file takes it a shard at a time
        step = len(group) if fmt.whole_files else shard
        for part in (group[k:k + step] for k in range(0, len(group), step)):
            if not batches or sum(len(g) for g in batches[-1]) >= shard:
                batches.append([])
            batches[-1].append(part)

    def submit(batch):
        return [(g, pool.submit(read_group, fmt, g[0][1].path, [it for _, it in g])) for g in batch]

    in_flight = deque(submit(b) for b in batches[:2])
    queue = deque(batches[2:])
    while in_flight:
        futures = in_flight.popleft()
        if queue:
            in_flight.append(submit(queue.popleft()))
        batch, nbytes = [], 0
        for group, fut in futures:
            results, n = fut.result()
            nbytes += n
            batch += [(i, it, r) for (i, it), r in zip(group, results)]
        yield batch, nbytes


class ShardWriter:
    """Buffers encoded samples and writes whole shards in order on one background thread,
    the store's only writer, recording progress after each shard for --resume. Writing
    overlaps with the encoding of the next batch."""

    def __init__(self, root: zarr.Group, shard: int, state: dict):
        self.root, self.shard = root, shard
        self.written = state["samples_written"]
        self.rejected = [(r["item"], Rejection(r["name"], r["reason"], r["line"])) for r in state.get("rejected", [])]
        self.pending: list[Encoded] = []
        self.pending_count = 0
        self.next_item = state["items_done"]
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s2i-writer")
        self.writes: deque = deque()
        self.failed = False

    def add(self, encoded: Encoded | None, rejections: list[tuple[int, Rejection]], next_item: int) -> None:
        while self.writes and self.writes[0].done():
            self.writes.popleft().result()  # a failed write stops the conversion here
        self.rejected += rejections
        self.next_item = next_item
        if encoded is not None:
            self.pending.append(encoded)
            self.pending_count += len(encoded)
        self._flush(final=False)

    def close(self) -> tuple[int, list[Rejection]]:
        self._flush(final=True)
        if not self.writes:  # nothing left to write: record that every item was seen
            self.writes.append(self.thread.submit(self._record, self.written, self.next_item))
        while self.writes:
            self.writes.popleft().result()
        self.thread.shutdown()
        return self.written, [r for _, r in self.rejected]

    def _flush(self, final: bool) -> None:
        while self.pending and (self.pending_count >= self.shard or final):
            block, rest = Encoded.concat(self.pending).split(self.shard)
            self.pending, self.pending_count = ([rest], len(rest)) if len(rest) else ([], 0)
            start, self.written = self.written, self.written + len(block)
            # resume restarts at the first item still pending, or after everything seen so far
            done_items = int(rest.item[0]) if len(rest) else self.next_item
            self.writes.append(self.thread.submit(self._write, start, block, done_items))
            while len(self.writes) > 2:  # bound memory: at most two shards queued
                self.writes.popleft().result()

    def _write(self, start: int, block: Encoded, done_items: int) -> None:
        if self.failed:  # a shard after a failed one must not be recorded as progress
            return
        try:
            store.write_shard(self.root, start, {
                "images": block.images, "label": block.label, "name": block.name, "frames": block.frames,
                "actors": block.actors, "norm": block.norm, "meta": block.meta, "skeletons": block.skeletons})
            self._record(start + len(block), done_items)
        except BaseException:
            self.failed = True
            raise

    def _record(self, written: int, done_items: int) -> None:
        store.update_attrs(self.root, progress={
            "items_done": done_items, "samples_written": written,
            "frames_written": int(self.root["skeleton/offsets"][written]),
            "rejected": [{"item": i, **r.as_dict()} for i, r in list(self.rejected) if i < done_items]})


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def convert(dataset: str, raw: Path, out: Path, *, size: int = 224, layout_name: str = "parts",
            persons: str | None = None, fill: str = "repeat", norm: str = "channel", workers: int | None = None, resume: bool = False,
            overwrite: bool = False, limit: int | None = None, missing_list: Path | None = None,
            shard: int = store.SHARD, reader_options: dict[str, str] | None = None, progress: bool = True,
            command: str = "") -> ConvertReport:
    started = time.perf_counter()
    fmt = get_format(dataset, **(reader_options or {}))
    persons = persons or fmt.persons
    if layout_name not in layout.LAYOUTS:
        raise ConvertError(f"unknown layout {layout_name!r}: choose one of {', '.join(layout.LAYOUTS)}")
    if persons not in layout.PERSONS:
        raise ConvertError(f"unknown persons mode {persons!r}: choose one of {', '.join(layout.PERSONS)}")
    if size < 8:
        raise ConvertError(f"--size {size} is too small: use at least 8 (224 for ViT-B/16)")
    if norm == "dataset":
        raise ConvertError("--norm dataset needs the training split's limits before encoding: convert with "
                           "channel or isotropic and train with `s2i pretrain --norm dataset` (re-encodes)")
    try:
        enc = Encoding(fmt.skeleton, layout_name, size, persons, fill, norm)
    except ValueError as exc:
        raise ConvertError(str(exc)) from exc
    raw, out = Path(raw), Path(out)
    if not (raw.is_file() if fmt.raw_is_file else raw.is_dir()):
        raise ConvertError(f"raw {'file' if fmt.raw_is_file else 'folder'} {raw} does not exist")
    if resume and overwrite:
        raise ConvertError("--resume and --overwrite exclude each other: pick one")

    items, rejected, ignored = fmt.discover(raw, missing_list)
    discovered = len(items) + len(rejected) + sum(ignored.values())
    if limit is not None:
        items = items[:limit]
    if not items:
        raise ConvertError(f"no {fmt.name} samples found under {raw}" + (f" ({discovered} files skipped)" if discovered else ""))
    attrs = store_attrs(fmt, raw, items, enc, ignored, discovered, command)

    if resume and out.exists():
        root = open_for_resume(out, attrs)
        state = store.truncate_to_progress(root)
    else:
        try:
            root = store.create_store(out, n=len(items), height=size, width=size, joints=fmt.skeleton.num_joints,
                                      channels=3, meta_fields=list(fmt.meta_fields), attrs=attrs,
                                      overwrite=overwrite, shard=shard)
        except store.StoreError as exc:
            raise ConvertError(str(exc)) from exc
        state = root.attrs["s2i"]["progress"]
    shard = root.attrs["s2i"]["shard"]
    resumed_from = state["samples_written"]

    workers = workers or os.cpu_count() or 1
    numba.set_num_threads(max(1, min(workers, numba.config.NUMBA_NUM_THREADS)))
    writer = ShardWriter(root, shard, state)
    bar = _progress(progress)
    first_item = state["items_done"]
    input_bytes = 0
    with bar, ThreadPoolExecutor(max_workers=workers) as pool:
        task = bar.add_task(f"converting {fmt.name}", total=len(items), completed=first_item, mb=0.0, rate=0.0)
        t0 = time.perf_counter()
        for batch, nbytes in read_batches(pool, fmt, items, first_item, shard):
            input_bytes += nbytes
            encoded, rejections = encode_batch_items(fmt, batch, enc)
            writer.add(encoded, rejections, next_item=batch[-1][0] + 1)
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.update(task, completed=batch[-1][0] + 1, mb=input_bytes / elapsed / 1e6,
                       rate=(batch[-1][0] + 1 - first_item) / elapsed)
        written, run_rejected = writer.close()

    meta = {f: root["meta"][f][:written] for f in fmt.meta_fields}
    splits = split_sides(fmt.splits(meta)) if written else {}
    all_rejected = rejected + run_rejected
    store.update_attrs(root, rejected=[r.as_dict() for r in all_rejected])
    store.finalize(root, written, splits)
    return ConvertReport(
        store=out, dataset=fmt.name, discovered=discovered, written=written, rejected=all_rejected,
        ignored=ignored, splits={p: (len(s["train"]), len(s["test"])) for p, s in splits.items()},
        input_bytes=input_bytes, image_bytes=int(root["images"].nbytes),
        image_stored=int(root["images"].nbytes_stored()), store_bytes=dir_bytes(out),
        seconds=time.perf_counter() - started, resumed_from=resumed_from, protocols=sorted(splits))


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:.0f} files/s  {task.fields[mb]:.1f} MB/s"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled)
