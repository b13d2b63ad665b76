"""The s2i Zarr v3 store's schema (docs/design.md §3): format version, codecs, the per-sample
arrays, where a store lives, creating its arrays at their final size, and the zarrs pipeline
settings that writes (`writes.py`) and reads (`reads.py`) use.

A store lives in a local directory or at a URL (`s3://bucket/out.zarr`, through zarr's
FsspecStore; `storage_options` carry the endpoint and credentials). The store knows arrays
and attributes, not raw formats or torch."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from .header import (FORMAT_VERSION, FRAMES_CHUNK, MEAN_FRAMES, OLDEST_READABLE, SHARD, HeaderError,  # noqa: F401
                     StoreHeader, frame_region)

# Images: plain zstd-3 on each sample's inner chunk. Blosc's zstd (its blocks, a context per
# call) took 2.3x the CPU for a slightly lower ratio (scripts/bench_convert.py; docs/design.md §3).
_IMAGE_CODEC = ZstdCodec(level=3)
# Bone and motion images (noisier): zstd-1 compresses them 8-11 % less tightly than zstd-3
# at about 0.6 of its time per image (docs/design.md §3).
_DIFFERENCE_IMAGE_CODEC = ZstdCodec(level=1)
_ARRAY_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
# Skeleton frames: about as many bytes as the images, and Blosc zstd-3 took ~0.45 ms a sample
# for 2.2x; lz4 with byte shuffle takes a tenth of that for 1.95x (docs/design.md §3).
_JOINTS_CODEC = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


class StoreError(Exception):
    """A store that cannot be used; the message is one line naming the problem and the fix."""


Location = str | Path  # a local directory or a URL such as s3://bucket/out.zarr


def sample_schema(height: int, width: int, meta_fields: list[str], streams: tuple[str, ...] = ("joint",)
                  ) -> dict[str, tuple[tuple[int, ...], str, tuple[str, ...]]]:
    """Every per-sample array, slot i for discovered sample i: path -> (shape after the sample
    axis, dtype, dimension names). The one table that create, write_shard and the converter
    iterate: a new per-sample array is one line here. `valid` is False in the slot of a
    rejected file (its name, label and metadata are kept, the rest is zero). Each stream
    besides joint adds its images and norm (`stream_paths`)."""
    extra = {}
    for stream in streams:
        if stream != "joint":
            images, norm = stream_paths(stream)
            extra[images] = ((3, height, width), "uint8", ("sample", "channel", "row", "column"))
            extra[norm] = ((3, 2), "float32", ("sample", "channel", "bound"))
    return {
        "images": ((3, height, width), "uint8", ("sample", "channel", "row", "column")),
        "valid": ((), "bool", ("sample",)),
        "label": ((), "int16", ("sample",)),
        "name": ((), "str", ("sample",)),
        "frames": ((), "int32", ("sample",)),
        "actors": ((), "int8", ("sample",)),
        "norm": ((3, 2), "float32", ("sample", "channel", "bound")),
        "skeleton/start": ((), "int64", ("sample",)),
        **{f"meta/{f}": ((), "int16", ("sample",)) for f in meta_fields},
        **extra,
    }


def root_schema(root: zarr.Group) -> dict[str, tuple[tuple[int, ...], str, tuple[str, ...]]]:
    height, width = root["images"].shape[2:]
    header = read_header(root)
    return sample_schema(height, width, list(header.meta_fields), tuple(header.streams))


def read_header(root: zarr.Group) -> StoreHeader:
    """The store's header (its `s2i` attributes, typed and checked): the one reader of them.
    StoreError naming the store and the field for attributes of the wrong type."""
    try:
        return StoreHeader.from_attrs(root.attrs.get("s2i"), where(root))
    except HeaderError as exc:
        raise StoreError(str(exc)) from exc


def where(root: zarr.Group) -> str:
    """The store's location as a user named it: a local folder, or the URL of one in object storage."""
    store = root.store
    if isinstance(store, zarr.storage.LocalStore):
        return str(store.root)
    fs = getattr(store, "fs", None)
    protocol = getattr(fs, "protocol", "") if fs is not None else ""
    protocol = protocol[0] if isinstance(protocol, (tuple, list)) else protocol
    path = getattr(store, "path", "")
    return f"{protocol}://{path}" if protocol else str(store)


def empty_block(schema: dict, m: int) -> dict[str, np.ndarray]:
    """Zeroed per-sample arrays for `m` slots (names empty), to be filled by the caller."""
    return {path: (np.full(m, "", dtype=object) if dtype == "str" else np.zeros((m, *tail), dtype=dtype))
            for path, (tail, dtype, _) in schema.items()}


def _store(location: Location, storage_options: dict | None, read_only: bool):
    text = str(location)
    if "://" in text:
        # no listings cache: other processes add shards' done records while this one runs
        options = {"use_listings_cache": False, **(storage_options or {})}
        return zarr.storage.FsspecStore.from_url(text, storage_options=options, read_only=read_only)
    return zarr.storage.LocalStore(text, read_only=read_only)


def is_url(location: Location) -> bool:
    return "://" in str(location)


def absolute(location: Location) -> str:
    """A URL as it is, a local path made absolute: what a run records and workers open."""
    return str(location) if is_url(location) else str(Path(location).absolute())


def open_group(location: Location, storage_options: dict | None = None, mode: str = "r") -> zarr.Group:
    """The root group at a directory or URL (no checks: `open_store` is the checked way in).
    For writing, the consolidated metadata is not used: it would hide arrays added since."""
    return zarr.open_group(_store(location, storage_options, mode == "r"), mode=mode,
                           **({} if mode == "r" else {"use_consolidated": False}))


def exists(location: Location, storage_options: dict | None = None) -> bool:
    if not is_url(location):
        return Path(location).exists()
    try:
        open_group(location, storage_options)
        return True
    except Exception:  # FileNotFoundError / GroupNotFoundError, depending on the backend
        return False


def create_store(location: Location, *, n: int, height: int, width: int, joints: int, channels: int,
                 meta_fields: list[str], attrs: dict[str, Any], overwrite: bool = False,
                 shard: int = SHARD, storage_options: dict | None = None) -> zarr.Group:
    """Create every array at its final size: `n` sample slots, and one frame region per shard.
    `attrs["streams"]` ({stream: power}, as `stored_streams`) says which streams get arrays;
    `attrs` become the store's header (header.StoreHeader, checked)."""
    if exists(location, storage_options):
        if not overwrite:
            raise StoreError(f"{location} already exists: pass --resume to continue it or --overwrite to replace it")
        check_replaceable(location, storage_options)
    if not is_url(location):  # a symlinked OUT: zarr clears and fills the folder it points to
        location = Path(location).resolve()
    try:
        header = StoreHeader.from_attrs({**attrs, "format_version": FORMAT_VERSION, "complete": False, "shard": shard,
                                         "frame_region": frame_region(shard), "image_size": [height, width],
                                         "meta_fields": list(meta_fields), "rejected": []}, str(location))
    except HeaderError as exc:
        raise StoreError(str(exc)) from exc
    try:  # the `s2i` attributes from the first write on: a store cut short is still one s2i made
        root = zarr.open_group(_store(location, storage_options, False), mode="w", zarr_format=3,
                               attributes={"s2i": header.to_attrs()})
    except OSError as exc:
        raise StoreError(f"cannot create {location}: {exc.strerror or exc}") from exc
    for path, spec in sample_schema(height, width, meta_fields, tuple(header.streams)).items():
        _create_array(root, path, spec, n, shard)
    create_frames(root, STAGING, -(-n // shard) * header.frame_region, joints, channels)
    root.create_group("progress")
    return root


STAGING = "skeleton/staging"  # the shards' frame regions while converting (§3); compacted into skeleton/joints


def create_frames(root: zarr.Group, path: str, frames: int, joints: int, channels: int) -> zarr.Array:
    """A (frames, 2, joints, channels) float32 skeleton array: the staging regions, or the
    finished store's compact `skeleton/joints` (replaced if it exists: compaction starts over)."""
    return root.create_array(path, shape=(frames, 2, joints, channels), dtype="float32",
                             chunks=(FRAMES_CHUNK, 2, joints, channels), compressors=_JOINTS_CODEC, fill_value=np.nan,
                             dimension_names=("frame", "actor", "joint", "xyz"), overwrite=True)


def check_replaceable(location: Location, storage_options: dict | None = None) -> None:
    """StoreError unless `location` is what --overwrite may remove: an s2i store (a Zarr group
    whose root zarr.json holds `s2i` attributes) or an empty folder. Never anything else: a
    mistyped OUT must not cost a folder of raw data."""
    if is_url(location):
        try:
            if isinstance(open_group(location, storage_options).attrs.get("s2i"), dict):
                return
        except Exception:  # noqa: BLE001 - any unreadable prefix is not a store s2i made
            pass
        raise StoreError(f"{location} is not an s2i store: --overwrite replaces only a store s2i made; "
                         "choose another OUT or remove it yourself")
    path = Path(location)
    if not path.is_dir():
        raise StoreError(f"{location} exists and is not a folder: choose another OUT (s2i replaces only a store it made)")
    if is_s2i_folder(path) or not any(path.iterdir()):
        return
    raise StoreError(f"{location} is not an s2i store (no zarr.json with s2i attributes) and not empty: "
                     "--overwrite replaces only a store s2i made; choose another OUT or remove it yourself")


def is_s2i_folder(path: Path) -> bool:
    """Whether `path` holds a Zarr v3 group whose attributes have an `s2i` object: what
    `create_store` writes first (at most 1 MB of zarr.json is read: a store's is a few KB)."""
    meta = Path(path) / "zarr.json"
    try:
        if not meta.is_file():
            return False
        with open(meta, "rb") as f:
            doc = json.loads(f.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return False
    return (isinstance(doc, dict) and doc.get("node_type") == "group" and isinstance(doc.get("attributes"), dict)
            and isinstance(doc["attributes"].get("s2i"), dict))


def _create_array(root: zarr.Group, path: str, spec: tuple[tuple[int, ...], str, tuple[str, ...]], n: int,
                  shard: int, overwrite: bool = False) -> None:
    tail, dtype, dims = spec
    if dtype == "uint8":  # images: one sample per inner chunk, `shard` samples per stored object
        codec = _IMAGE_CODEC if path == "images" else _DIFFERENCE_IMAGE_CODEC
        layout = dict(chunks=(1, *tail), shards=(shard, *tail), compressors=codec)
    else:
        layout = dict(chunks=(shard, *tail), compressors=None if dtype == "str" else _ARRAY_CODEC)
    root.create_array(path, shape=(n, *tail), dtype=str if dtype == "str" else dtype, dimension_names=dims,
                      overwrite=overwrite, **layout)


def create_stream_arrays(root: zarr.Group, streams: tuple[str, ...]) -> None:
    """Add (or replace) the arrays of `streams` to a finished store, as `create_store` makes them."""
    n, _, height, width = root["images"].shape
    schema = sample_schema(height, width, [], streams)
    for stream in streams:
        for path in stream_paths(stream):
            _create_array(root, path, schema[path], n, read_header(root).shard, overwrite=True)


# zarrs' codec pipeline (Rust, behind zarr-python's codec-pipeline interface): the same chunks
# and codecs, decoded to the same arrays, without zarr-python's per-chunk asyncio and Python
# (docs/design.md §3). One thread and one chunk at a time: zarrs then works in the calling
# thread and never enters rayon's global thread pool. That pool starts in the first process
# to open an array through zarrs, and a DataLoader worker forked from it inherits the pool
# without its threads: a read that entered it (any read of several chunks, by default) would
# wait forever (measured). zarr reads these settings when an array object is made.
_ZARRS = {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline", "threading.max_workers": 1,
          "codec_pipeline.chunk_concurrent_minimum": 1}
# zarrs is a dependency, but a host that runs s2i from copied wheels may not have it (the GPU
# host's set has none: ../shared/stack-notes.md), and zarr fails to open any array whose
# pipeline class it cannot import. There every store keeps zarr-python's pipeline: the same
# arrays, only slower.
HAVE_ZARRS = importlib.util.find_spec("zarrs") is not None


def _zarrs(root: zarr.Group) -> dict[str, Any]:
    """The settings that put a store's arrays on zarrs' pipeline: a local store's when zarrs is
    installed; none for a URL (zarrs has no fsspec S3 store, so those keep zarr-python's own)."""
    return dict(_ZARRS) if HAVE_ZARRS and isinstance(root.store, zarr.storage.LocalStore) else {}


def _whole_chunk_writes(root: zarr.Group) -> Any:
    """Writes of whole shards skip zarr's check of every inner chunk against the fill value
    (an array compare per chunk, a quarter of an image shard's write): an all-zero rejected
    slot is then stored, a few bytes, rather than left out. Into a local store they go
    through zarrs' codec pipeline (`_ZARRS`)."""
    return zarr.config.set({"array.write_empty_chunks": True, **_zarrs(root)})


def _zarrs_reads(root: zarr.Group) -> Any:
    """Arrays of a local store opened in this context read through zarrs' pipeline (`_ZARRS`):
    2.0-2.4x fewer CPU seconds per 224 px image in the training loader (scripts/bench_pretrain.py
    --pipelines), about 2.2x for a single image. Skeleton frames measured no gain and keep zarr-python's."""
    return zarr.config.set(_zarrs(root))


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
    return dict(read_header(root).streams)
