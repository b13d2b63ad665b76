"""Writing an s2i store: one whole shard (any shard, in any order, from any process), its done
record for --resume, stream arrays and records, attributes, and the finishing touches
(splits, rejected list, consolidated metadata)."""
from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import zarr

from .header import STREAMS_VERSION
from .schema import (STAGING, create_frames, HeaderError, StoreError, read_header, _whole_chunk_writes, root_schema, stored_streams,
                     stream_paths)

def write_streams(root: zarr.Group, start: int, m: int, good: np.ndarray,
                  encoded: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write slots [start, start + m) of each stream's images and norm: encoded[stream] holds
    the samples of slots start + good; the other slots (rejected files) stay zero."""
    with _whole_chunk_writes(root):  # the arrays are opened in it: zarr reads the setting then
        for stream, values in encoded.items():
            for path, v in zip(stream_paths(stream), values):
                block = np.zeros((m, *v.shape[1:]), dtype=v.dtype)
                block[good] = v
                root[path][start:start + m] = block


def record_streams(root: zarr.Group, streams: dict[str, list[float]]) -> None:
    """List `streams` ({stream: power}) in the store's attributes, once their arrays are written."""
    version = max(read_header(root).format_version, STREAMS_VERSION)  # a format-3 store stays 3: its frames keep their regions
    update_attrs(root, streams={**stored_streams(root), **streams}, format_version=version)
    consolidate(root)


def write_shard(root: zarr.Group, start: int, block: dict[str, Any]) -> None:
    """Write slots [start, start + m) of every per-sample array and the shard's skeletons.

    `block` holds each `sample_schema` array but `skeleton/start` (computed here) and `valid`
    (default: every slot valid), and `skeletons`: per slot a (T, 2, V, C) float32 sequence,
    T = frames (0 for a rejected slot). `start` is a multiple of the shard size, so this
    writes whole shards and frame regions (of the staging array) that no other shard touches."""
    header = read_header(root)
    shard, region = header.shard, header.frame_region
    if start % shard:
        raise ValueError(f"shard writes start at a multiple of {shard}, not {start}")
    m = len(block["label"])
    lengths = np.array([len(s) for s in block["skeletons"]], dtype=np.int64)
    total = int(lengths.sum())
    if total > region:
        raise StoreError(f"shard {start // shard} holds {total} skeleton frames, more than its region of "
                         f"{region}: convert with a smaller --shard-size")
    first = start // shard * region
    block = {**block, "skeleton/start": first + np.cumsum(lengths) - lengths,
             "valid": np.asarray(block.get("valid", np.ones(m, dtype=bool)), dtype=bool)}
    with _whole_chunk_writes(root):  # the arrays are opened in it: zarr reads the setting then
        for path, (_, dtype, _) in root_schema(root).items():
            values = block[path]
            root[path][start:start + m] = np.asarray(values, dtype=object) if dtype == "str" else values
    if total:
        root[STAGING][first:first + total] = np.concatenate([s for s in block["skeletons"] if len(s)])


def mark_done(root: zarr.Group, index: int, record: dict[str, Any]) -> None:
    """Record shard `index` as written (after its arrays): one small node of its own, so
    shards finishing in any order, in any process, never rewrite each other's records."""
    root["progress"].create_group(f"{index:06d}", attributes=json.loads(json.dumps(record)), overwrite=True)


def done_shards(root: zarr.Group) -> dict[int, dict[str, Any]]:
    """The records of the shards written so far; a record cut short by a crash does not count."""
    done = {}
    for key in root["progress"].group_keys():
        try:
            done[int(key)] = dict(root[f"progress/{key}"].attrs)
        except Exception:  # noqa: BLE001 - a half-written record is a shard to redo
            continue
    return done


def update_attrs(root: zarr.Group, **changes: Any) -> None:
    """Merge `changes` into the root's header, checked (only a header this s2i reads is
    written), as one JSON document."""
    try:
        header = read_header(root).updated(**changes)
    except HeaderError as exc:
        raise StoreError(str(exc)) from exc
    root.attrs["s2i"] = json.loads(json.dumps(header.to_attrs()))  # fails loudly on numpy scalars


COPY_FRAMES = 1 << 16  # frames per read/write while compacting (2 actors x 25 joints x 3: 39 MB)


def staging_starts(frames: np.ndarray, shard: int, region: int) -> np.ndarray:
    """Where write_shard put each slot's frames in the staging array: shard k's back to back from
    k x region. Derived from the frame counts alone, so a compaction that starts over never
    needs skeleton/start (which it rewrites)."""
    frames = np.asarray(frames, dtype=np.int64)
    starts = np.empty_like(frames)
    for first in range(0, len(frames), shard):
        f = frames[first:first + shard]
        starts[first:first + shard] = first // shard * region + np.cumsum(f) - f
    return starts


def compact_skeletons(root: zarr.Group) -> None:
    """Copy every shard's frames from the staging regions into `skeleton/joints` of exactly the
    stored frames, rewrite `skeleton/start`, then drop the staging array. Idempotent until the
    staging array goes: a conversion killed here completes with --resume (it starts over)."""
    if STAGING not in root:  # compacted already (a run killed after dropping it), or a format-3 store
        return
    header, staging = read_header(root), root[STAGING]
    frames = np.asarray(root["frames"][:], dtype=np.int64)
    old = staging_starts(frames, header.shard, header.frame_region)
    new = np.cumsum(frames) - frames
    joints = create_frames(root, "skeleton/joints", int(frames.sum()), *staging.shape[2:])
    for first in range(0, len(frames), header.shard):  # one shard's run of frames at a time
        n, src, dst = int(frames[first:first + header.shard].sum()), int(old[first]), int(new[first])
        for a in range(0, n, COPY_FRAMES):
            b = min(n, a + COPY_FRAMES)
            joints[dst + a:dst + b] = staging[src + a:src + b]
    root["skeleton/start"][:] = new
    del root[STAGING]


def finalize(root: zarr.Group, splits: dict[str, dict[str, np.ndarray]],
             rejected: list[dict[str, Any]] | None = None) -> None:
    """Compact the skeleton frames, write the splits (indices of valid slots) and the rejected
    files, mark the store complete, drop the per-shard records and consolidate the metadata."""
    compact_skeletons(root)
    group = root.require_group("splits")
    for protocol, sides in splits.items():
        proto = group.require_group(protocol)
        for side, idx in sides.items():
            idx = np.asarray(idx, dtype=np.int64)
            proto.create_array(side, shape=idx.shape, dtype="int64", chunks=(max(len(idx), 1),),
                               dimension_names=("sample_index",), overwrite=True)[:] = idx
    samples = int(np.count_nonzero(root["valid"][:]))
    changes = {"complete": True, "samples": samples, "protocols": sorted(splits)}
    update_attrs(root, **changes, **({"rejected": rejected} if rejected is not None else {}))
    if "progress" in root:
        del root["progress"]
    consolidate(root)


def consolidate(root: zarr.Group) -> None:
    """Write the consolidated metadata (xarray and dask open the store from it)."""
    with warnings.catch_warnings():  # v3 consolidated metadata works in zarr-python; the spec lags
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(root.store)
