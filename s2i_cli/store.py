"""The s2i Zarr v3 store (docs/design.md §3): the per-sample schema, create the arrays at their
final size, write one whole shard (any shard, in any order, from any process), record each
shard as done for --resume, finalise, open and validate.

A store lives in a local directory or at a URL (`s3://bucket/out.zarr`, through zarr's
FsspecStore; `storage_options` carry the endpoint and credentials). The store knows arrays
and attributes, not raw formats or torch."""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

FORMAT_VERSION = 3  # 2: sample slots with `valid`, skeleton frame regions per shard, per-shard done records;
# 3: streams (images_<stream>, norm_<stream>, the `streams` attribute). A format-2 store reads as joint-only.
OLDEST_READABLE = 2
SHARD = 256  # samples per shard: the unit of a conversion task, of resume and of a training read block
FRAMES_CHUNK = 8192  # frames per chunk of skeleton/joints
MEAN_FRAMES = 4096  # a shard's frame region holds this many frames per sample on average

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
    return sample_schema(height, width, list(root.attrs["s2i"].get("meta_fields") or []), tuple(stored_streams(root)))


def empty_block(schema: dict, m: int) -> dict[str, np.ndarray]:
    """Zeroed per-sample arrays for `m` slots (names empty), to be filled by the caller."""
    return {path: (np.full(m, "", dtype=object) if dtype == "str" else np.zeros((m, *tail), dtype=dtype))
            for path, (tail, dtype, _) in schema.items()}


def frame_region(shard: int) -> int:
    """Frames reserved in skeleton/joints for one shard: whole chunks, so no two shards share one.
    Chunks never written cost nothing on disk."""
    return -(-shard * MEAN_FRAMES // FRAMES_CHUNK) * FRAMES_CHUNK


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
    `attrs["streams"]` ({stream: power}, as `stored_streams`) says which streams get arrays."""
    if exists(location, storage_options):
        if not overwrite:
            raise StoreError(f"{location} already exists: pass --resume to continue it or --overwrite to replace it")
        check_replaceable(location, storage_options)
    if not is_url(location):  # a symlinked OUT: zarr clears and fills the folder it points to
        location = Path(location).resolve()
    header = {**attrs, "format_version": FORMAT_VERSION, "complete": False, "shard": shard,
              "frame_region": frame_region(shard), "meta_fields": list(meta_fields), "rejected": []}
    try:  # the `s2i` attributes from the first write on: a store cut short is still one s2i made
        root = zarr.open_group(_store(location, storage_options, False), mode="w", zarr_format=3,
                               attributes={"s2i": header})
    except OSError as exc:
        raise StoreError(f"cannot create {location}: {exc.strerror or exc}") from exc
    streams = tuple(attrs.get("streams") or ("joint",))
    for path, spec in sample_schema(height, width, meta_fields, streams).items():
        _create_array(root, path, spec, n, shard)
    region = header["frame_region"]
    root.create_array("skeleton/joints", shape=(-(-n // shard) * region, 2, joints, channels), dtype="float32",
                      chunks=(FRAMES_CHUNK, 2, joints, channels), compressors=_JOINTS_CODEC, fill_value=np.nan,
                      dimension_names=("frame", "actor", "joint", "xyz"))
    root.create_group("progress")
    return root


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
            _create_array(root, path, schema[path], n, int(root.attrs["s2i"]["shard"]), overwrite=True)


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
    update_attrs(root, streams={**stored_streams(root), **streams}, format_version=FORMAT_VERSION)
    consolidate(root)


def write_shard(root: zarr.Group, start: int, block: dict[str, Any]) -> None:
    """Write slots [start, start + m) of every per-sample array and the shard's skeletons.

    `block` holds each `sample_schema` array but `skeleton/start` (computed here) and `valid`
    (default: every slot valid), and `skeletons`: per slot a (T, 2, V, C) float32 sequence,
    T = frames (0 for a rejected slot). `start` is a multiple of the shard size, so this
    writes whole shards and frame regions that no other shard touches."""
    shard, region = root.attrs["s2i"]["shard"], root.attrs["s2i"]["frame_region"]
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
        root["skeleton/joints"][first:first + total] = np.concatenate([s for s in block["skeletons"] if len(s)])


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
    """Merge `changes` into the root's `s2i` attributes (written as one JSON document)."""
    attrs = dict(root.attrs["s2i"])
    attrs.update(changes)
    root.attrs["s2i"] = json.loads(json.dumps(attrs))  # fails loudly on numpy scalars


def finalize(root: zarr.Group, splits: dict[str, dict[str, np.ndarray]],
             rejected: list[dict[str, Any]] | None = None) -> None:
    """Write the splits (indices of valid slots) and the rejected files, mark the store
    complete, drop the per-shard records and consolidate the metadata."""
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


def store_bytes(location: Location) -> int | None:
    """Bytes on disk of a local store, everything; None for one at a URL."""
    if is_url(location) or not Path(location).is_dir():
        return None
    return sum(f.stat().st_size for f in Path(location).rglob("*") if f.is_file())


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
    version = attrs["format_version"]
    if version > FORMAT_VERSION:
        raise StoreError(f"{location} has store format {version}, newer than this s2i ({FORMAT_VERSION}): upgrade s2i")
    if version < OLDEST_READABLE:
        again = attrs.get("command") or "s2i convert DATASET RAW OUT"
        raise StoreError(f"{location} has store format {version}, older than this s2i's ({FORMAT_VERSION}): "
                         f"convert it again with `{again} --overwrite`")
    if not attrs.get("complete"):
        raise StoreError(f"{location} is an unfinished conversion: run the same `s2i convert` with --resume")
    return root


def valid_indices(root: zarr.Group) -> np.ndarray:
    """Indices of the slots that hold a sample (rejected files' slots are left out)."""
    return np.flatnonzero(np.asarray(root["valid"][:], dtype=bool)).astype(np.int64)


def split_indices(root: zarr.Group, protocol: str | None, side: str) -> np.ndarray:
    """Sample indices of one side (train/test) of a protocol; `None` means every valid sample."""
    if protocol is None:
        return valid_indices(root)
    protocols = root.attrs["s2i"].get("protocols", [])
    if protocol not in protocols:
        raise StoreError(f"protocol {protocol!r} is not in this store; it has: {', '.join(protocols) or 'none'}")
    return np.asarray(root[f"splits/{protocol}/{side}"][:], dtype=np.int64)


def check_sample(root: zarr.Group, index: int) -> None:
    """StoreError when slot `index` holds no sample (its file was rejected), naming the reason."""
    if not bool(root["valid"][index]):
        name = str(root["name"][index])
        why = next((r["reason"] for r in root.attrs["s2i"].get("rejected", []) if r.get("name") == name), "rejected")
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
    shard = root.attrs["s2i"]["shard"]
    a = lo
    while a < hi:
        b = min(hi, (a // shard + 1) * shard)
        s, f = start[a - lo:b - lo], frames[a - lo:b - lo]
        span = joints[int(s[0]):int(s[-1] + f[-1])]
        out += np.split(span, (s - s[0])[1:])
        a = b
    return out


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


def image_bytes(root: zarr.Group) -> tuple[int, int]:
    """(uncompressed, stored) bytes of every stream's images array together: what the
    conversion summary and `s2i info` report as the images' size and compression."""
    arrays = [root[stream_paths(stream)[0]] for stream in stored_streams(root)]
    return sum(int(a.nbytes) for a in arrays), sum(int(a.nbytes_stored()) for a in arrays)


def stream_arrays(root: zarr.Group, stream: str) -> tuple[zarr.Array, zarr.Array, np.ndarray]:
    """(images, norm, power) of one stream, or StoreError naming the streams there are."""
    from .streams import STREAMS

    if stream not in STREAMS:
        raise StoreError(f"unknown stream {stream!r}: choose from {', '.join(STREAMS)}")
    have = stored_streams(root)
    if stream not in have:
        raise StoreError(f"this store has no {stream} stream (it has {', '.join(have)}): "
                         f"add it with `s2i encode STORE --streams {stream}`")
    images, norm = stream_paths(stream)
    with _zarrs_reads(root):  # the arrays are opened in it: zarr reads the setting then
        return root[images], root[norm], np.asarray(have[stream], dtype=np.float64)
