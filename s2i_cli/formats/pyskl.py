"""pyskl's annotation pickles (pyskl `tools/data/README.md`; formats.md "Importers").

`{"split": {split name: [frame_dir, ...]}, "annotations": [{"frame_dir", "total_frames",
"label", "keypoint": M×T×V×C, "keypoint_score": M×T×V (2D only), "img_shape"}, ...]}`.
3D files hold NTU's 25 Kinect joints (xyz, camera coordinates, float16, not centred); 2D
files hold COCO-17 keypoints from HRNet (x, y in pixels) with a score per joint.

A pickle cannot be read in parts, so discovery unpickles the whole file once (with the
restricted unpickler: never `pickle.load`), checks every sample, and writes the kept
frames of each to one flat spill file (`<cache_dir>/keypoints.float16`: raw values in the
file's dtype,
about the size of the keypoints in the pickle), with what discovery learnt (skeleton,
metadata fields, classes) in `reader.json` beside it. Items point into that file, so a
shard, in this process or another, reads only its own samples through a memory map; the
unpickled annotations are dropped as soon as the spill is written. Peak memory is the
unpickling's (about 1.4× the file size for float16 protocol-2 files,
`scripts/bench_formats.py --importers` measures it).

Per sample: the first two persons are kept (pyskl's `FormatGCNInput(num_person=2)` does the
same), frames with nobody are dropped, and in 2D a joint with score 0 is missing (x = y = 0,
as for Kinetics-skeleton). Split pairs become protocols: `xsub_train`/`xsub_val` -> `xsub`
(train/test), `train1`/`test1` -> `split1`, `train`/`val` -> `release`; each is a metadata
column (0 train, 1 test, -1 neither). Sample names are `frame_dir`; NTU names also give
NTU's metadata fields and class names."""
from __future__ import annotations

import ctypes
import json
import re
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

from ..encoder.skeletons import COCO17, NTU25, SKELETONS, Skeleton
from ..safe_text import visible
from . import safe_pickle
from .base import (MAX_CLASSES, DatasetFormat, FormatError, Item, Rejection, Sequence, check_options, checked,
                   duplicate)
from .ntu import META_FIELDS as NTU_META_FIELDS
from .ntu import parse_name
from .ntu_names import NTU_CLASS_NAMES

OPTIONS = {"cache_dir": "folder for the spill file of unpacked keypoints (default: a new folder in the system's "
                        "temporary folder, removed at exit); needs about the keypoints' size in the pickle"}
SPLIT_KEY = re.compile(r"^(?P<a>.*)(?P<side>train|val|test)(?P<b>.*)$")  # the last train/val/test
PERSONS = 2
# the spill may hold at most this times the pickle's size plus SPILL_CONSTANT: a pyskl file's
# keypoints spill at most at twice their size in it (float16 files stay float16; two persons
# of M are kept); a file that names one array for many samples (the memo lets it) spilled far
# more than it holds (487 KB -> 300 MB): the samples past the bound are rejected, with why
SPILL_PER_FILE_BYTE, SPILL_CONSTANT = 4, 16 << 20
STATE = "reader.json"  # beside the spill file: the skeleton, fields and classes discovery found
KINDS = {(25, 3, False): NTU25, (17, 2, True): COCO17}  # (joints, channels, has scores) -> skeleton


def split_protocols(split: dict) -> dict[str, dict[str, set[str]]]:
    """pyskl's split lists -> {protocol: {"train": names, "test": names}}; ValueError for a
    key that is no `<p>_train`, `<p>_val` or `<p>_test` (or `train<n>` ...), or a list that
    is not of frame_dir strings."""
    protocols: dict[str, dict[str, set[str]]] = {}
    seen: dict[tuple[str, str], str] = {}
    for key, names in split.items():
        m = SPLIT_KEY.match(key) if isinstance(key, str) else None
        if m is None:
            raise ValueError(f"split {shown(key)} is not named <protocol>_train, <protocol>_val or <protocol>_test")
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"split {key!r} is {shown(names)}, not a list of frame_dir strings")
        protocol = (m["a"].rstrip("_") + m["b"]) or "release"
        protocol = f"split{protocol}" if protocol.isdigit() else protocol
        side = "train" if m["side"] == "train" else "test"
        if (protocol, side) in seen:
            raise ValueError(f"splits {seen[(protocol, side)]!r} and {key!r} are both the {side} side of {protocol}")
        seen[(protocol, side)] = key
        protocols.setdefault(protocol, {"train": set(), "test": set()})[side] = set(names)
    return protocols


def sample_sequence(ann: dict, skeleton: Skeleton) -> tuple[np.ndarray, int]:
    """One annotation -> (T, actors, V, C) float32 of its kept frames (C = 3: xyz, or x, y,
    score), and the actor count; FormatError with the reason otherwise."""
    kp = ann.get("keypoint")
    if not isinstance(kp, np.ndarray) or kp.dtype.kind != "f" or kp.ndim != 4:
        raise FormatError("'keypoint' is not a float array M×T×V×C")
    m, t, v, c = kp.shape
    two_d = skeleton.is_2d
    if (v, c) != (skeleton.num_joints, 2 if two_d else 3) or m == 0 or t == 0:
        raise FormatError(f"'keypoint' is {m}×{t}×{v}×{c}; this file's samples are M×T×{skeleton.num_joints}×"
                          f"{2 if two_d else 3} ({skeleton.name})")
    total = ann.get("total_frames", t)
    if not _is_int(total) or total != t:
        raise FormatError(f"total_frames {shown(total)} but 'keypoint' has {t} frames")
    kp = kp[:PERSONS]
    if two_d:
        score = ann.get("keypoint_score")
        if not isinstance(score, np.ndarray) or score.shape != (m, t, v) or score.dtype.kind not in "fiu":
            raise FormatError(f"'keypoint_score' is not an M×T×V array ({m}×{t}×{v})")
        score = score[:PERSONS].astype(kp.dtype)
        seq = np.concatenate([kp * (score > 0)[..., None], score[..., None]], axis=-1)
        present = score > 0
    else:
        seq = kp
        present = np.any(kp != 0, axis=-1)
    if two_d and np.any(score < 0):
        raise FormatError("a negative keypoint_score")
    frames = np.any(present, axis=(0, 2))  # somebody is there (NaN != 0: present, for checked() to see)
    seq = seq[:, frames].transpose(1, 0, 2, 3)
    actors = 2 if len(present) > 1 and np.any(present[1, frames]) else 1
    return checked(seq[:, :actors].astype(np.float32), actors)  # float32: float16 cannot hold checked()'s bound


def release_freed_memory() -> None:
    """Hand the unpickled file's freed memory back to the system. Its many small arrays were
    malloc'ed from the heap, and glibc keeps freed heap pages resident: measured, the process
    stayed 400 MB larger after a 284 MB pickle was dropped, and the conversion's own memory
    came on top of it (scripts/bench_formats.py --importers). Elsewhere than glibc: a no-op."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def shown(value) -> str:
    """A value from the file, for a one-line reason: a short repr of a number or string, else
    its type (the repr of a deeply nested list from a corrupt file would recurse too deep)."""
    if isinstance(value, int) and value.bit_length() > 64:  # repr of 5,000 digits raises ValueError
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, (int, float, str, bytes, np.generic)) or value is None:
        text = visible(repr(value[:60] if isinstance(value, (str, bytes)) else value))
        return text if len(text) <= 40 else f"{text[:37]}..."
    return f"a {type(value).__name__}"


class PysklFormat(DatasetFormat):
    name = "pyskl"
    persons = "stacked"
    options = OPTIONS
    raw_is_file = True
    whole_files = False
    description = ("pyskl annotation pickle given as RAW (NTU 3D: ntu25; HRNet 2D: coco17 + score); samples named "
                   "by frame_dir, protocols from the file's split lists")

    def __init__(self, **options: str):
        check_options(self.name, self.options, options)
        self.cache_dir = options.get("cache_dir")
        self.skeleton = NTU25
        self.class_names: tuple[str, ...] = ()
        self.meta_fields: tuple[str, ...] = ()
        self.protocols: tuple[str, ...] = ()

    def find_items(self, raw: Path):
        path = Path(raw)
        if not path.is_file():
            raise ValueError(f"{path} is not a file: give a pyskl annotation pickle (e.g. ntu60_3danno.pkl) as RAW")
        doc = safe_pickle.load_path(path)
        annotations, split = self._parts(path, doc)
        self.skeleton = self._skeleton(path, annotations)
        try:
            protocols = split_protocols(split)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        try:
            found = self._discover(path, annotations, protocols, path.stat().st_size)
        except MemoryError:
            raise ValueError(f"{path}: not enough memory to unpack its samples") from None
        del doc, annotations  # from here on the spill file holds the samples
        release_freed_memory()
        return found

    @staticmethod
    def _parts(path: Path, doc) -> tuple[list, dict]:
        if isinstance(doc, list):  # mmaction's older layout: the annotations alone
            doc = {"annotations": doc, "split": {}}
        if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
            raise ValueError(f"{path}: not a pyskl annotation file (no 'annotations' list)")
        split = doc.get("split", {})
        if not isinstance(split, dict):
            raise ValueError(f"{path}: 'split' is not a dict of split name -> frame_dir list")
        anns = doc["annotations"]
        if anns and all(isinstance(a, dict) and "raw_file" in a and "keypoint" not in a for a in anns[:100]):
            raise ValueError(f"{path}: the Kinetics-400 variant (keypoints in separate raw_file kpfiles) is not "
                             "supported: s2i reads pickles whose annotations hold 'keypoint' arrays")
        return anns, split

    @staticmethod
    def _skeleton(path: Path, annotations: list) -> Skeleton:
        for ann in annotations:
            kp = ann.get("keypoint") if isinstance(ann, dict) else None
            if isinstance(kp, np.ndarray) and kp.ndim == 4:
                key = (kp.shape[2], kp.shape[3], "keypoint_score" in ann)
                if key not in KINDS:
                    raise ValueError(f"{path}: keypoints of {key[0]} joints × {key[1]} values "
                                     f"{'with' if key[2] else 'without'} scores: s2i reads 25 × 3 (NTU 3D) or "
                                     "17 × 2 with keypoint_score (COCO-17 2D)")
                return KINDS[key]
        raise ValueError(f"{path}: no annotation has a 'keypoint' array M×T×V×C")

    def _discover(self, path: Path, annotations: list, protocols: dict, file_size: int):
        names = [a.get("frame_dir") if isinstance(a, dict) and isinstance(a.get("frame_dir"), str) else ""
                 for a in annotations]
        ntu = bool(names) and all((f := parse_name(n)) is not None and 1 <= f["action"] <= len(NTU_CLASS_NAMES)
                                  for n in names)
        meta_ntu = NTU_META_FIELDS if ntu else ()
        self.meta_fields = (*meta_ntu, *protocols)
        self.protocols = tuple(protocols)
        dtype = np.float16 if all(isinstance(a, dict) and getattr(a.get("keypoint"), "dtype", None) == np.float16
                                  for a in annotations) else np.float32
        spill_path = self._spill_dir() / f"keypoints.{np.dtype(dtype).name}"  # raw values; the suffix is the dtype
        items, rejected, seen, labels = [], [], {}, []
        offset = 0
        itemsize = np.dtype(dtype).itemsize
        max_spill = SPILL_PER_FILE_BYTE * file_size + SPILL_CONSTANT
        with open(spill_path, "wb") as spill:
            for k, (ann, name) in enumerate(zip(annotations, names)):
                try:
                    label, meta = self._label_meta(ann, name, ntu, protocols)
                    if name in seen:
                        rejected.append(duplicate(name, f"annotation {seen[name]}"))
                        continue
                    seq, actors = sample_sequence(ann, self.skeleton)
                    if (offset + seq.size) * itemsize > max_spill:
                        raise FormatError(f"the spill would pass {max_spill:,} bytes ({SPILL_PER_FILE_BYTE}x the "
                                          f"file's {file_size:,} plus {SPILL_CONSTANT >> 20} MiB)")
                except FormatError as exc:
                    rejected.append(Rejection(name or f"annotation {k}", exc.reason))
                    continue
                seen[name] = k
                seq.astype(dtype, copy=False).tofile(spill)
                items.append(Item(name, spill_path, label, meta, (k, offset, len(seq), actors)))
                labels.append(label)
                offset += seq.size
        named = set().union(*(s["train"] | s["test"] for s in protocols.values())) if protocols else set()
        ignored = {"named in a split list but not in annotations": len(named - set(names))}
        if ntu:
            top = max((parse_name(n)["action"] for n in names), default=0)
            self.class_names = NTU_CLASS_NAMES[:60 if top <= 60 else 120]
        else:
            self.class_names = tuple(f"class {c}" for c in range(max(labels, default=-1) + 1))
        self._save_state(spill_path.parent)
        items.sort(key=lambda it: it.name)
        return items, rejected, {k: v for k, v in ignored.items() if v}

    def _spill_dir(self) -> Path:
        if self.cache_dir:
            folder = Path(self.cache_dir)
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        folder = Path(tempfile.mkdtemp(prefix="s2i-pyskl-"))
        weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
        return folder

    def _label_meta(self, ann, name: str, ntu: bool, protocols: dict) -> tuple[int, dict[str, int]]:
        if not isinstance(ann, dict) or not name or "\n" in name:
            raise FormatError("not a dict with a 'frame_dir' string of one line")
        label = ann.get("label")
        if not _is_int(label) or not 0 <= label < MAX_CLASSES:
            raise FormatError(f"label {shown(label)} is not an integer in 0-{MAX_CLASSES - 1}")
        meta: dict[str, int] = {}
        if ntu:
            fields = parse_name(name)
            if fields["action"] != label + 1:
                raise FormatError(f"label {label} disagrees with the name's action A{fields['action']:03d}")
            meta = {f: fields[f] for f in NTU_META_FIELDS}
        for protocol, sides in protocols.items():
            train, test = name in sides["train"], name in sides["test"]
            if train and test:
                raise FormatError(f"in both the train and the test list of {protocol}")
            meta[protocol] = 0 if train else 1 if test else -1
        return int(label), meta

    def _save_state(self, folder: Path) -> None:
        """What discovery learnt from the file, beside the spill: a reader made afresh in a
        worker process (from the dataset name and options only) takes it up in read_items."""
        state = {"skeleton": self.skeleton.name, "meta_fields": list(self.meta_fields),
                 "protocols": list(self.protocols), "class_names": list(self.class_names)}
        (folder / STATE).write_text(json.dumps(state))
        self._state_dir = folder

    def _load_state(self, folder: Path) -> None:
        state = json.loads((folder / STATE).read_text())
        self.skeleton = SKELETONS[state["skeleton"]]
        self.meta_fields, self.protocols, self.class_names = (
            tuple(state[k]) for k in ("meta_fields", "protocols", "class_names"))
        self._state_dir = folder

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        if getattr(self, "_state_dir", None) != path.parent:
            self._load_state(path.parent)
        flat = np.memmap(path, dtype=path.suffix[1:], mode="r")
        out: list[Sequence | FormatError] = []
        v, c = self.skeleton.num_joints, 3
        for it in items:
            _, offset, frames, actors = it.extra
            part = np.asarray(flat[offset: offset + frames * actors * v * c], dtype=np.float32)
            seq = np.zeros((frames, PERSONS, v, c), dtype=np.float32)
            seq[:, :actors] = part.reshape(frames, actors, v, c)
            out.append((seq, actors))
        return out

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {p: (np.asarray(meta[p]) == 0, np.asarray(meta[p]) == 1) for p in self.protocols}
