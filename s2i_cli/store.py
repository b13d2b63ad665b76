"""The s2i Zarr v3 store (docs/design.md §3): create it at its final size, write whole
shards, record progress for --resume, finalise, open and validate.

The store knows arrays and attributes, not raw formats or torch."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

FORMAT_VERSION = 1
SHARD = 256  # samples per shard: the unit of a write, of resume and of a training read block
FRAMES_CHUNK = 8192  # frames per chunk of the ragged skeleton/joints array

_IMAGE_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="noshuffle")  # typesize 1: shuffle is moot
_ARRAY_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


class StoreError(Exception):
    """A store that cannot be used; the message is one line naming the problem and the fix."""


def create_store(path: Path, *, n: int, height: int, width: int, joints: int, channels: int,
                 meta_fields: list[str], attrs: dict[str, Any], overwrite: bool = False,
                 shard: int = SHARD) -> zarr.Group:
    """Create every array at its final size `n` (shrunk by `finalize` if files are rejected)."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise StoreError(f"{path} already exists: pass --resume to continue it or --overwrite to replace it")
        shutil.rmtree(path)
    root = zarr.open_group(str(path), mode="w-", zarr_format=3)
    per_sample = dict(chunks=(shard,), compressors=_ARRAY_CODEC)
    root.create_array("images", shape=(n, 3, height, width), dtype="uint8",
                      chunks=(1, 3, height, width), shards=(shard, 3, height, width),
                      compressors=_IMAGE_CODEC, dimension_names=("sample", "channel", "row", "column"))
    root.create_array("label", shape=(n,), dtype="int16", dimension_names=("sample",), **per_sample)
    root.create_array("name", shape=(n,), dtype=str, dimension_names=("sample",), chunks=(shard,))
    root.create_array("frames", shape=(n,), dtype="int32", dimension_names=("sample",), **per_sample)
    root.create_array("actors", shape=(n,), dtype="int8", dimension_names=("sample",), **per_sample)
    root.create_array("norm", shape=(n, 3, 2), dtype="float32", chunks=(shard, 3, 2),
                      compressors=_ARRAY_CODEC, dimension_names=("sample", "channel", "bound"))
    meta = root.create_group("meta")
    for field in meta_fields:
        meta.create_array(field, shape=(n,), dtype="int16", dimension_names=("sample",), **per_sample)
    skel = root.create_group("skeleton")
    offsets = skel.create_array("offsets", shape=(n + 1,), dtype="int64", dimension_names=("sample_edge",),
                                **per_sample)
    offsets[0] = 0
    skel.create_array("joints", shape=(0, 2, joints, channels), dtype="float32",
                      chunks=(FRAMES_CHUNK, 2, joints, channels), compressors=_ARRAY_CODEC,
                      dimension_names=("frame", "actor", "joint", "xyz"))
    root.attrs["s2i"] = {**attrs, "format_version": FORMAT_VERSION, "complete": False, "shard": shard,
                         "progress": {"items_done": 0, "samples_written": 0, "frames_written": 0},
                         "rejected": []}
    return root


def write_shard(root: zarr.Group, start: int, block: dict[str, Any]) -> None:
    """Write samples [start, start + len) of every per-sample array and append their skeletons.

    `block` holds images, label, name, frames, actors, norm, meta (dict of field -> array),
    skeletons (list of (T, 2, V, C) float32). `start` is a multiple of the shard size, so each
    image shard is written once, whole (or the last, partial one)."""
    m = len(block["label"])
    stop = start + m
    root["images"][start:stop] = block["images"]
    root["label"][start:stop] = block["label"]
    root["name"][start:stop] = np.array(block["name"], dtype=object)
    root["frames"][start:stop] = block["frames"]
    root["actors"][start:stop] = block["actors"]
    root["norm"][start:stop] = block["norm"]
    for field, values in block["meta"].items():
        root["meta"][field][start:stop] = values
    joints = root["skeleton/joints"]
    first = int(root["skeleton/offsets"][start])
    lengths = np.array([len(s) for s in block["skeletons"]], dtype=np.int64)
    total = first + int(lengths.sum())
    joints.resize((total, *joints.shape[1:]))
    if total > first:
        joints[first:total] = np.concatenate(block["skeletons"])
    root["skeleton/offsets"][start + 1:stop + 1] = first + np.cumsum(lengths)


def update_attrs(root: zarr.Group, **changes: Any) -> None:
    """Merge `changes` into the root's `s2i` attributes (written as one JSON document)."""
    attrs = dict(root.attrs["s2i"])
    attrs.update(changes)
    root.attrs["s2i"] = json.loads(json.dumps(attrs))  # fails loudly on numpy scalars


def truncate_to_progress(root: zarr.Group) -> dict[str, int]:
    """Drop skeleton frames written after the last recorded shard (a crash mid-write)."""
    progress = root.attrs["s2i"]["progress"]
    joints = root["skeleton/joints"]
    joints.resize((progress["frames_written"], *joints.shape[1:]))
    return progress


def finalize(root: zarr.Group, count: int, splits: dict[str, dict[str, np.ndarray]]) -> None:
    """Shrink every per-sample array to `count`, write the splits, mark complete, consolidate."""
    for name in ("images", "label", "name", "frames", "actors", "norm"):
        arr = root[name]
        arr.resize((count, *arr.shape[1:]))
    for _, arr in root["meta"].arrays():
        arr.resize((count,))
    root["skeleton/offsets"].resize((count + 1,))
    group = root.require_group("splits")
    for protocol, sides in splits.items():
        proto = group.require_group(protocol)
        for side, idx in sides.items():
            idx = np.asarray(idx, dtype=np.int64)
            proto.create_array(side, shape=idx.shape, dtype="int64", chunks=(max(len(idx), 1),),
                               dimension_names=("sample_index",), overwrite=True)[:] = idx
    update_attrs(root, complete=True, samples=count, protocols=sorted(splits))
    with warnings.catch_warnings():  # v3 consolidated metadata works in zarr-python; the spec lags
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(root.store)


def open_store(path: Path | str) -> zarr.Group:
    """Open a finished s2i store read-only, or raise StoreError saying what is wrong."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no store at {path}: make one with `s2i convert DATASET RAW {path}`")
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a non-store directory
        raise StoreError(f"{path} is not a Zarr store ({type(exc).__name__}): point at the output of `s2i convert`") from exc
    attrs = root.attrs.get("s2i")
    if not isinstance(attrs, dict) or "format_version" not in attrs:
        raise StoreError(f"{path} is a Zarr store but not an s2i store (no 's2i' attributes)")
    if attrs["format_version"] > FORMAT_VERSION:
        raise StoreError(f"{path} has store format {attrs['format_version']}, newer than this s2i "
                         f"({FORMAT_VERSION}): upgrade s2i")
    if not attrs.get("complete"):
        raise StoreError(f"{path} is an unfinished conversion: run the same `s2i convert` with --resume")
    return root


def split_indices(root: zarr.Group, protocol: str | None, side: str) -> np.ndarray:
    """Sample indices of one side (train/test) of a protocol; `None` means every sample."""
    if protocol is None:
        return np.arange(root["label"].shape[0], dtype=np.int64)
    protocols = root.attrs["s2i"].get("protocols", [])
    if protocol not in protocols:
        raise StoreError(f"protocol {protocol!r} is not in this store; it has: {', '.join(protocols) or 'none'}")
    return np.asarray(root[f"splits/{protocol}/{side}"][:], dtype=np.int64)


def read_skeleton(root: zarr.Group, index: int) -> np.ndarray:
    """The selected, centred sequence of one sample: (T, 2, V, C) float32."""
    a, b = root["skeleton/offsets"][index:index + 2]
    return root["skeleton/joints"][int(a):int(b)]


def read_skeletons(root: zarr.Group, lo: int, hi: int) -> list[np.ndarray]:
    """The sequences of samples lo..hi-1 with two slice reads (a training block)."""
    offsets = np.asarray(root["skeleton/offsets"][lo:hi + 1], dtype=np.int64)
    frames = root["skeleton/joints"][int(offsets[0]):int(offsets[-1])]
    return np.split(frames, offsets[1:-1] - offsets[0])


def decode_image(image: np.ndarray, norm: np.ndarray, power: np.ndarray | float = 1.0) -> np.ndarray:
    """uint8 (3, H, W) -> float32 coordinates, inverting the per-channel quantisation: linear
    from [lo, hi], or the difference streams' signed power law where power != 1 (streams.py)."""
    lo, hi = norm[:, 0], norm[:, 1]
    scale = np.where(hi > lo, hi - lo, 1.0)
    t = image.astype(np.float32) / 255.0
    for c, p in enumerate(np.broadcast_to(np.asarray(power, dtype=np.float64), (3,))):
        if p != 1.0:
            u = 2.0 * t[c] - 1.0
            t[c] = (np.sign(u) * np.abs(u) ** (1.0 / p) + 1.0) / 2.0
    return t * scale[:, None, None] + lo[:, None, None]


def quantised_values(values: np.ndarray, norm: np.ndarray, power: np.ndarray | float = 1.0) -> np.ndarray:
    """float (3, H, W) -> the unrounded pixel values (0..255) the encoder gives them: the
    inverse of `decode_image`, for checking a stored image against its skeleton."""
    lo, hi = norm[:, 0, None, None].astype(np.float64), norm[:, 1, None, None].astype(np.float64)
    t = np.where(hi > lo, (values - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    for c, p in enumerate(np.broadcast_to(np.asarray(power, dtype=np.float64), (3,))):
        if p != 1.0:
            u = np.clip(2.0 * t[c] - 1.0, -1.0, 1.0)
            t[c] = (np.sign(u) * np.abs(u) ** p + 1.0) / 2.0
    return t * 255.0


def stream_paths(stream: str) -> tuple[str, str]:
    """A stream's images and norm arrays: `images` and `norm` for the joint stream,
    `images_bone`, `norm_bone`, `images_bone_motion`, ... for the others, side by side at
    the root so that `xarray.open_zarr` shows every stream."""
    if stream == "joint":
        return "images", "norm"
    tag = stream.replace("-", "_")
    return f"images_{tag}", f"norm_{tag}"


def stored_streams(root: zarr.Group) -> dict[str, list[float]]:
    """{stream: per-channel power of its quantisation}; a store without the record (made
    before streams) holds the joint stream only."""
    return dict(root.attrs["s2i"].get("streams") or {"joint": [1.0, 1.0, 1.0]})


def stream_arrays(root: zarr.Group, stream: str) -> tuple[zarr.Array, zarr.Array, np.ndarray]:
    """(images, norm, power) of one stream, or StoreError naming the streams there are."""
    have = stored_streams(root)
    if stream not in have:
        raise StoreError(f"this store has no {stream} stream (it has {', '.join(have)}): "
                         f"add it with `s2i encode STORE --streams {stream}`")
    images, norm = stream_paths(stream)
    return root[images], root[norm], np.asarray(have[stream], dtype=np.float64)
