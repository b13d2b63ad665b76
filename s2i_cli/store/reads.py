"""Reading an s2i store: open and validate a finished one, its splits, samples, skeletons
and streams."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr

from .schema import (HeaderError, Location, StoreHeader, read_header, StoreError, _zarrs_reads, exists, is_url,
                     open_group, stored_streams, stream_paths)

def store_bytes(location: Location) -> int | None:
    """Bytes on disk of a local store, everything; None for one at a URL."""
    if is_url(location) or not Path(location).is_dir():
        return None
    total, stack = 0, [str(location)]
    while stack:  # no recursion (Path.rglob recurses once per level: a crafted deep folder broke it)
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return total


# What a reader of a whole per-sample array (`s2i info`, `s2i show --name`) will walk: a store
# is data from elsewhere, and zarr reads one chunk after another, so a crafted store of 2^26
# one-element chunks would keep it busy for hours. A store s2i writes has one chunk per shard
# (`--shard-size` samples), and convert refuses a shard size that makes more than MAX_CHUNKS.
MAX_CHUNKS = 1 << 16  # chunks of one per-sample array (NTU-120 at the default shard: 446)
MAX_SAMPLES = 20_000_000  # sample slots (Kinetics-400: 300,000)
SAMPLE_ARRAYS = ("valid", "label", "name", "frames", "actors")


def check_layout(root: zarr.Group) -> None:
    """StoreError unless the per-sample arrays that commands read whole are what s2i writes:
    one dimension of the same length, at most MAX_SAMPLES slots, in at most MAX_CHUNKS chunks
    each (inner chunks of a sharded array counted). Only metadata is read."""
    n = None
    for path in SAMPLE_ARRAYS:
        try:
            array = root[path]
            shape, chunks = tuple(array.shape), int(array.nchunks)
        except Exception as exc:  # noqa: BLE001 - missing, a group, unreadable metadata
            raise StoreError(f"this store's {path} array is missing or unreadable ({type(exc).__name__}): "
                             "not a store s2i wrote; convert again") from None
        if len(shape) != 1 or (n is not None and shape[0] != n):
            raise StoreError(f"this store's {path} array has shape {shape}, not ({n if n is not None else 'N'},): "
                             "not a store s2i wrote; convert again")
        n = shape[0]
        if n > MAX_SAMPLES:
            raise StoreError(f"this store claims {n:,} samples, more than s2i reads ({MAX_SAMPLES:,})")
        if chunks > MAX_CHUNKS:
            raise StoreError(f"this store's {path} array is cut into {chunks:,} chunks, more than s2i walks "
                             f"({MAX_CHUNKS:,}; a store s2i writes has one per shard): not a store s2i wrote; "
                             "convert again with a larger --shard-size")


def open_store(location: Location, storage_options: dict | None = None) -> zarr.Group:
    """Open a finished s2i store read-only, or raise StoreError saying what is wrong."""
    if not exists(location, storage_options):
        raise StoreError(f"no store at {location}: make one with `s2i convert DATASET RAW {location}`")
    try:
        root = open_group(location, storage_options)
    except Exception as exc:  # zarr raises several types for a non-store directory
        raise StoreError(f"{location} is not a Zarr store ({type(exc).__name__}): point at the output of `s2i convert`") from exc
    attrs = root.attrs.get("s2i")
    if not isinstance(attrs, dict) or "format_version" not in attrs:
        raise StoreError(f"{location} is a Zarr store but not an s2i store (no 's2i' attributes)")
    try:  # types, format version (header.py): one line naming the store and the field
        header = StoreHeader.from_attrs(attrs, str(location))
    except HeaderError as exc:
        raise StoreError(str(exc)) from exc
    if not header.complete:
        raise StoreError(f"{location} is an unfinished conversion: run the same `s2i convert` with --resume")
    return root


def valid_indices(root: zarr.Group) -> np.ndarray:
    """Indices of the slots that hold a sample (rejected files' slots are left out)."""
    return np.flatnonzero(np.asarray(root["valid"][:], dtype=bool)).astype(np.int64)


def split_indices(root: zarr.Group, protocol: str | None, side: str) -> np.ndarray:
    """Sample indices of one side (train/test) of a protocol; `None` means every valid sample."""
    if protocol is None:
        return valid_indices(root)
    protocols = read_header(root).protocols
    if protocol not in protocols:
        raise StoreError(f"protocol {protocol!r} is not in this store; it has: {', '.join(protocols) or 'none'}")
    return np.asarray(root[f"splits/{protocol}/{side}"][:], dtype=np.int64)


def check_sample(root: zarr.Group, index: int) -> None:
    """StoreError when slot `index` holds no sample (its file was rejected), naming the reason."""
    if not bool(root["valid"][index]):
        name = str(root["name"][index])
        why = read_header(root).rejection_reason(name) or "rejected"
        raise StoreError(f"sample {index} ({name}) is not in the store: its file was rejected ({why})")


def read_skeleton(root: zarr.Group, index: int) -> np.ndarray:
    """The selected, centred sequence of one sample: (T, 2, V, C) float32."""
    return read_skeletons(root, index, index + 1)[0]


def read_skeletons(root: zarr.Group, lo: int, hi: int) -> list[np.ndarray]:
    """The sequences of samples lo..hi-1 (a training block): one slice read per shard they
    touch, since a shard's samples lie back to back in its frame region."""
    start = np.asarray(root["skeleton/start"][lo:hi], dtype=np.int64)
    frames = np.asarray(root["frames"][lo:hi], dtype=np.int64)
    joints, out = root["skeleton/joints"], []
    shard = read_header(root).shard
    a = lo
    while a < hi:
        b = min(hi, (a // shard + 1) * shard)
        s, f = start[a - lo:b - lo], frames[a - lo:b - lo]
        span = joints[int(s[0]):int(s[-1] + f[-1])]
        out += np.split(span, (s - s[0])[1:])
        a = b
    return out


def class_names(root: zarr.Group) -> list[str]:
    """Every class of the store: its recorded names, and "class N" for labels past them (the
    one derivation: evaluate, info, show and pretraining's config.json use it)."""
    labels = root["label"][:]
    return read_header(root).class_list(int(np.max(labels)) + 1 if len(labels) else 0)


def image_bytes(root: zarr.Group) -> tuple[int, int]:
    """(uncompressed, stored) bytes of every stream's images array together: what the
    conversion summary and `s2i info` report as the images' size and compression."""
    arrays = [root[stream_paths(stream)[0]] for stream in stored_streams(root)]
    return sum(int(a.nbytes) for a in arrays), sum(int(a.nbytes_stored()) for a in arrays)


def stream_arrays(root: zarr.Group, stream: str) -> tuple[zarr.Array, zarr.Array, np.ndarray]:
    """(images, norm, power) of one stream, or StoreError naming the streams there are."""
    from ..vocab import Stream, values

    STREAMS = values(Stream)

    if stream not in STREAMS:
        raise StoreError(f"unknown stream {stream!r}: choose from {', '.join(STREAMS)}")
    have = stored_streams(root)
    if stream not in have:
        raise StoreError(f"this store has no {stream} stream (it has {', '.join(have)}): "
                         f"add it with `s2i encode STORE --streams {stream}`")
    images, norm = stream_paths(stream)
    with _zarrs_reads(root):  # the arrays are opened in it: zarr reads the setting then
        return root[images], root[norm], np.asarray(have[stream], dtype=np.float64)
