"""CTR-GCN's NTU `.npz` files (`data/ntu*/seq_transformation.py`; formats.md "Importers").

`np.savez(NTU60_CS.npz, x_train=, y_train=, x_test=, y_test=)`: `x_*` is (N, 300, 150)
float32, each frame = 2 bodies × 25 NTU joints × xyz, zero-padded in time and centred on body
1's spine-mid in its first frame; `y_*` is one-hot (N, classes). The file holds no sample
names: samples are named `<split>_<row>` (`train_000042` is row 42 of `x_train`).

The arrays are never loaded whole: an uncompressed member (what `np.savez` writes) is
memory-mapped straight from the zip, so a shard reads only its rows; a compressed member
(`np.savez_compressed`) is streamed from its start to the last row a shard needs."""
from __future__ import annotations

import math
import re
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..encoder.skeletons import NTU25
from .base import MAX_CLASSES, DatasetFormat, FormatError, Item, Rejection, Sequence, check_options, checked
from .ntu_names import NTU_CLASS_NAMES

SPLITS = ("train", "test")
BODIES, JOINTS, XYZ = 2, 25, 3
# the protocol a file holds, from CTR-GCN's file names (seq_transformation.py)
PROTOCOL_OF_NAME = {"CS": "xsub", "CV": "xview", "CSub": "xsub", "CSet": "xset"}
NAME = re.compile(r"^NTU(?:60|120)_(CS|CV|CSub|CSet)$", re.IGNORECASE)
# how a damaged zip fails while it is read: zipfile raises NotImplementedError for an unknown
# compression method and RuntimeError for the "encrypted" flag
ZIP_ERRORS = (zipfile.BadZipFile, ValueError, EOFError, zlib.error, NotImplementedError, RuntimeError)
DEFLATE_RATIO = 1032  # deflate's largest expansion: a member cannot honestly hold more than this times its size
# what an x member plausibly inflates to: CTR-GCN's rows are zero-padded skeletons, which
# deflate about 3-10x; 100x would be 99 % padding. Beyond it the file is refused as a bomb.
X_RATIO = 100
MAX_FRAMES = 10_000  # frames per row of an x member (CTR-GCN pads to 300)
READ_CHUNK = 1 << 24  # bytes decompressed at a time


@dataclass(frozen=True)
class NpyMember:
    """Where one `.npy` array lies inside a `.npz`: its data offset in the zip (stored
    members), dtype, shape and order."""

    name: str
    offset: int  # byte offset of the array data in the zip file (stored members only)
    compressed: bool
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool
    deflated: int = 0  # the member's compressed size in the zip


def _npy_header(fp) -> tuple[np.dtype, tuple[int, ...], bool]:
    version = np.lib.format.read_magic(fp)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy format version {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, fortran, dtype = read_header(fp)
    except (SyntaxError, tokenize.TokenError, TypeError) as exc:  # NumPy re-parses some headers with tokenize;
        # TypeError: it sorts the header's keys, which fails for keys of mixed types
        raise ValueError(f"a malformed .npy header ({type(exc).__name__})") from None
    except ValueError as exc:  # NumPy's reasons can run to several lines (an oversized header): keep the first
        raise ValueError(f"a malformed .npy header: {str(exc).strip().splitlines()[0]}") from None
    if dtype.hasobject:
        raise ValueError("an array of Python objects (s2i never unpickles them)")
    return dtype, tuple(shape), fortran


def npz_members(path: Path) -> dict[str, NpyMember]:
    """Every `.npy` member of a `.npz` file (name without `.npy`), read from the headers
    only; ValueError (one line) for a file that is not a complete `.npz`."""
    try:
        size = path.stat().st_size
        members = {}
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                with zf.open(info) as fp:
                    dtype, shape, fortran = _npy_header(fp)
                    header = fp.tell()
                compressed = info.compress_type != zipfile.ZIP_STORED
                _check_sizes(info, name, shape, dtype, header, size)
                offset = 0
                if not compressed:  # the local header's extra field may differ from the central one
                    raw.seek(info.header_offset)
                    local = raw.read(30)
                    if len(local) < 30 or local[:4] != b"PK\x03\x04":
                        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
                    name_len, extra_len = struct.unpack("<HH", local[26:30])
                    offset = info.header_offset + 30 + name_len + extra_len + header
                    end = offset + math.prod(shape) * dtype.itemsize
                    if end > size:
                        raise ValueError(f"truncated: {name} needs {end} bytes, the file has {size}")
                members[name] = NpyMember(name, offset, compressed, dtype, shape, fortran, info.compress_size)
        return members
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a complete .npz (zip) file ({exc})") from None
    except ZIP_ERRORS as exc:
        raise ValueError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except MemoryError:
        raise ValueError(f"{path}: not enough memory to read its .npz directory") from None


def _check_sizes(info: zipfile.ZipInfo, name: str, shape: tuple[int, ...], dtype: np.dtype, header: int,
                 size: int) -> None:
    """The sizes a member declares agree: its .npy header's shape with the zip's uncompressed
    size, and that with what its compressed bytes can hold (so a lying header cannot make
    discovery allocate or loop over rows that are not there)."""
    if any(d < 0 for d in shape):
        raise ValueError(f"{name} declares the shape {shape}")
    if dtype.itemsize <= 0:
        raise ValueError(f"{name} declares the dtype {dtype} of 0 bytes per item")
    nbytes = math.prod(shape) * dtype.itemsize
    if header + nbytes != info.file_size:
        raise ValueError(f"{name} declares {dtype} {shape} ({nbytes} bytes) but holds {info.file_size - header}")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"{name} is compressed with zip method {info.compress_type}; np.savez_compressed writes "
                         "deflate (8)")
    if info.compress_size > size or info.file_size > DEFLATE_RATIO * info.compress_size + 1024:
        raise ValueError(f"{name} declares {info.file_size} bytes in {info.compress_size} compressed bytes "
                         f"(the file has {size})")


def read_rows(path: Path, member: NpyMember, rows: np.ndarray) -> np.ndarray:
    """Rows `rows` (first axis) of one member, as an in-memory array: a memory-mapped
    slice for a stored member, else decompressed from the member's start up to the last row."""
    rows = np.asarray(rows, dtype=np.int64)
    if not member.compressed:
        mapped = np.memmap(path, dtype=member.dtype, mode="r", offset=member.offset, shape=member.shape,
                           order="F" if member.fortran else "C")
        return np.array(mapped[rows])
    if member.fortran:
        raise ValueError(f"{member.name}: a compressed Fortran-order array cannot be read by rows")
    out = np.empty((len(rows), *member.shape[1:]), dtype=member.dtype)
    if not len(rows):
        return out
    order = np.argsort(rows, kind="stable")
    at = 0
    for first, block in iter_rows(path, member, int(rows[order[0]]), int(rows[order[-1]]) + 1):
        while at < len(order) and rows[order[at]] < first + len(block):
            out[order[at]] = block[rows[order[at]] - first]
            at += 1
    return out


def iter_rows(path: Path, member: NpyMember, start: int, stop: int):
    """(first row, block of rows) for rows start..stop-1 of a compressed member, decompressed
    READ_CHUNK bytes at a time (a whole member, or a shard's span of it, is never in memory)."""
    row_bytes = math.prod(member.shape[1:]) * member.dtype.itemsize
    per_block = max(1, READ_CHUNK // max(row_bytes, 1))
    with zipfile.ZipFile(path) as zf, zf.open(member.name + ".npy") as fp:
        _npy_header(fp)
        _skip(fp, start * row_bytes)
        row = start
        while row < stop:
            n = min(per_block, stop - row)
            data = fp.read(n * row_bytes)
            if len(data) != n * row_bytes:
                raise ValueError(f"{member.name}: the member ends early")
            yield row, np.frombuffer(data, dtype=member.dtype).reshape(n, *member.shape[1:])
            row += n


def _skip(fp, n: int, chunk: int = 1 << 24) -> None:
    while n > 0:
        got = len(fp.read(min(n, chunk)))
        if not got:
            raise ValueError("the member ends early")
        n -= got


def real_frames(frames: np.ndarray) -> Sequence:
    """One (300, 150) padded row -> (T, 2, 25, 3) float32 with its all-zero frames dropped
    (CTR-GCN pads at the end; its samples have no empty frame inside), and the actor count:
    2 where body 2 is non-zero in some frame and is not body 1 again. CTR-GCN pads a
    single-actor sample two ways: its NTU60 seq_transformation.py writes
    hstack((ske, zeros_like(ske))), its NTU120 one hstack((ske, ske)); a second body equal to
    the first in every frame is that padding, so it is made absent (zero) and the sample has
    one actor, and `--fill` decides what the image's bottom half shows."""
    seq = np.asarray(frames, dtype=np.float32).reshape(len(frames), BODIES, JOINTS, XYZ)
    seq = seq[np.any(seq != 0, axis=(1, 2, 3))]  # NaN != 0: a frame with one stays, for checked() to see
    if len(seq) and np.array_equal(seq[:, 1], seq[:, 0]):  # NTU120's repeated actor (False with a NaN)
        seq = seq.copy()
        seq[:, 1] = 0
    return checked(seq, 2 if np.any(seq[:, 1] != 0) else 1)


def read_labels(path: Path, y: NpyMember) -> tuple[np.ndarray, np.ndarray]:
    """labels_of over the whole member, a block at a time (a y member may inflate ~1000x)."""
    if not y.compressed:
        return labels_of(read_rows(path, y, np.arange(y.shape[0])))
    labels, ok = np.zeros(y.shape[0], np.int64), np.zeros(y.shape[0], bool)
    for first, block in iter_rows(path, y, 0, y.shape[0]):
        labels[first:first + len(block)], ok[first:first + len(block)] = labels_of(block)
    return labels, ok


def labels_of(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-hot rows (or 0-based integer labels below MAX_CLASSES) -> labels, and a mask of the
    valid rows."""
    if y.ndim == 1:
        ok = (y >= 0) & (y < MAX_CLASSES)  # False for NaN
        if y.dtype.kind == "f":
            ok &= y == np.round(y)
        return np.where(ok, y, 0).astype(np.int64), ok
    ok = np.all((y == 0) | (y == 1), axis=1) & (np.sum(y == 1, axis=1) == 1)
    return np.argmax(y, axis=1), ok


class CTRGCNFormat(DatasetFormat):
    name = "ctrgcn"
    skeleton = NTU25
    meta_fields = ("split",)  # 0: x_train, 1: x_test
    persons = "stacked"
    options: dict[str, str] = {}
    raw_is_file = True
    whole_files = False
    description = ("CTR-GCN NTU .npz (x_train/x_test (N, 300, 150), y_* one-hot) given as RAW; samples are named "
                   "<split>_<row> (the file holds no NTU names); protocol from the file name (NTU60_CS: xsub, "
                   "NTU60_CV: xview, NTU120_CSub: xsub, NTU120_CSet: xset; else release)")

    def __init__(self, **options: str):
        check_options(self.name, self.options, options)
        self.class_names = NTU_CLASS_NAMES[:60]
        self.protocols = ("release",)

    def find_items(self, raw: Path):
        path = Path(raw)
        if path.suffix != ".npz" or not path.is_file():
            raise ValueError(f"{path} is not a .npz file: give CTR-GCN's NTU60_CS.npz (or another of its files) as RAW")
        members = npz_members(path)
        splits = [s for s in SPLITS if f"x_{s}" in members and f"y_{s}" in members]
        if not splits:
            raise ValueError(f"{path}: no x_train/y_train or x_test/y_test arrays (it has: "
                             f"{', '.join(sorted(members)) or 'none'})")
        items, rejected, classes = [], [], 0
        for s in splits:
            x, y = members[f"x_{s}"], members[f"y_{s}"]
            if len(x.shape) != 3 or x.shape[2] != BODIES * JOINTS * XYZ or x.dtype.kind != "f":
                raise ValueError(f"{path}: x_{s} is {x.dtype} {x.shape}, not float (N, frames, 150) = 2 bodies × "
                                 "25 joints × xyz")
            self._check_plausible(path, f"x_{s}", x)
            if (len(y.shape) not in (1, 2) or y.shape[0] != x.shape[0] or y.dtype.kind not in "biuf"
                    or len(y.shape) == 2 and not 1 <= y.shape[1] <= MAX_CLASSES):
                raise ValueError(f"{path}: y_{s} is {y.dtype} {y.shape}, not one-hot ({x.shape[0]}, classes) with "
                                 f"1-{MAX_CLASSES} classes")
            try:
                labels, ok = read_labels(path, y)
            except ZIP_ERRORS as exc:  # a compressed member is decompressed only now
                raise ValueError(f"{path}: y_{s} cannot be read ({exc})") from None
            except MemoryError:
                raise ValueError(f"{path}: not enough memory to read y_{s}") from None
            classes = max(classes, y.shape[1] if len(y.shape) == 2 else int(labels.max(initial=-1)) + 1)
            width = max(6, len(str(x.shape[0] - 1)))
            for row in range(x.shape[0]):
                item_name = f"{s}_{row:0{width}d}"
                if ok[row]:
                    items.append(Item(item_name, path, int(labels[row]), {"split": SPLITS.index(s)}, (s, row)))
                else:
                    rejected.append(Rejection(item_name, f"y_{s} row {row} is not one-hot (or a label in 0-{MAX_CLASSES - 1})"))
        self.class_names = (NTU_CLASS_NAMES[:classes] if classes in (60, 120)
                            else tuple(f"class {k}" for k in range(classes)))
        match = NAME.match(path.stem)
        self.protocols = (PROTOCOL_OF_NAME[match.group(1)] if match else "release",)
        self.members = members
        items.sort(key=lambda it: it.name)
        return items, rejected, {}

    @staticmethod
    def _check_plausible(path: Path, name: str, x: NpyMember) -> None:
        """What x declares, checked before anything is allocated for it: frames per row from 1
        to MAX_FRAMES, and (compressed) no more bytes than X_RATIO times its deflated size."""
        rows, frames, _ = x.shape
        if not 1 <= frames <= MAX_FRAMES:
            raise ValueError(f"{path}: {name} declares {frames} frames per sample (s2i reads 1-{MAX_FRAMES:,})")
        if x.compressed:
            inflated = rows * frames * BODIES * JOINTS * XYZ * x.dtype.itemsize
            if inflated > X_RATIO * x.deflated + (1 << 20):
                raise ValueError(f"{path}: {name} declares {inflated:,} bytes in {x.deflated:,} compressed bytes "
                                 f"({inflated // max(x.deflated, 1):,}x; CTR-GCN's padded skeletons deflate about "
                                 f"3-10x, s2i refuses more than {X_RATIO}x as a bomb)")

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        members = getattr(self, "members", None) or npz_members(path)
        out: list[Sequence | FormatError] = []
        for split in SPLITS:
            mine = [k for k, it in enumerate(items) if it.extra[0] == split]
            if not mine:
                continue
            try:
                block = read_rows(path, members[f"x_{split}"], np.array([items[k].extra[1] for k in mine]))
            except ZIP_ERRORS as exc:  # a compressed member is decompressed only now
                out += [(k, FormatError(f"x_{split} cannot be read: {exc}")) for k in mine]
                continue
            except MemoryError:
                out += [(k, FormatError(f"x_{split}: not enough memory to read these rows")) for k in mine]
                continue
            for k, frames in zip(mine, block):
                try:
                    out.append((k, real_frames(frames)))
                except FormatError as exc:
                    out.append((k, exc))
        return [r for _, r in sorted(out, key=lambda t: t[0])]

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {self.protocols[0]: np.asarray(meta["split"]) == 0}
