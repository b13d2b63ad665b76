"""NTU RGB+D 60 / 120 `.skeleton` files (formats.md §1)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from ..kernels import ntu_parse, ntu_select

from ..encoder.skeletons import NTU25
from .base import (MAX_COORDINATE, MB, DatasetFormat, FormatError, Item, Sequence, check_options, checked, duplicate,
                   named_files, read_file)
from .ntu_names import NTU_CLASS_NAMES

NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")
META_FIELDS = ("setup", "camera", "subject", "replication")

XSUB60_TRAIN = frozenset({1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38})
XSUB120_TRAIN = XSUB60_TRAIN | {45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81,
                                82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103}
XVIEW_TRAIN_CAMERAS = frozenset({2, 3})


@dataclass(frozen=True)
class Variant:
    """What tells NTU RGB+D 60 and 120 apart: name ranges and protocols (formats.md §1)."""

    setups: int
    subjects: int
    actions: int
    protocols: tuple[str, ...]
    xsub_train: frozenset[int]  # X-Sub training subjects; every other subject is a test subject


VARIANTS = {"ntu60": Variant(17, 40, 60, ("xsub", "xview"), XSUB60_TRAIN),
            "ntu120": Variant(32, 106, 120, ("xsub", "xset"), XSUB120_TRAIN)}


def parse_name(stem: str) -> dict[str, int] | None:
    """`S001C002P003R001A004` -> setup, camera, subject, replication, action (fixed offsets)."""
    m = NAME.match(stem)
    if m is None:
        return None
    return dict(zip((*META_FIELDS, "action"), map(int, m.groups())))


def sample_name(setup: int, camera: int, subject: int, replication: int, action: int) -> str:
    """The inverse of `parse_name`: `S001C002P003R001A004`."""
    return f"S{setup:03d}C{camera:03d}P{subject:03d}R{replication:03d}A{action:03d}"


def read_missing_list(path: Path | None, dataset: str) -> set[str]:
    """Sample names on a missing-skeleton list: the shipped official one, or `path` (with or
    without the official header: lines that are not sample names are ignored)."""
    if path is None:
        fname = "NTU_RGBD_samples_with_missing_skeletons.txt" if dataset == "ntu60" else \
            "NTU_RGBD120_samples_with_missing_skeletons.txt"
        text = resources.files(__package__).joinpath(fname).read_text()
    else:
        try:
            text = read_file(Path(path), 64 * MB).decode(errors="replace")
        except FormatError as exc:
            raise ValueError(f"missing-skeleton list {path}: {exc.reason}") from None
    names = (line.strip().removesuffix(".skeleton") for line in text.splitlines())
    return {name for name in names if NAME.match(name)}


def split_masks(dataset: str, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Training-side masks of the benchmark protocols (formats.md §1.4)."""
    xsub = np.isin(np.asarray(meta["subject"]), list(VARIANTS[dataset].xsub_train))
    if dataset == "ntu60":
        return {"xsub": xsub, "xview": np.isin(np.asarray(meta["camera"]), list(XVIEW_TRAIN_CAMERAS))}
    return {"xsub": xsub, "xset": np.asarray(meta["setup"]) % 2 == 0}


def parse_skeleton(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw bytes -> (body_frame, body_id, joints) of every body record, or FormatError."""
    buf = np.frombuffer(data, dtype=np.uint8)
    cap = ntu_parse.capacity(len(buf))
    body_frame = np.empty(cap, dtype=np.int32)
    body_id = np.empty(cap, dtype=np.int64)
    joints = np.empty((cap, ntu_parse.JOINTS, 3), dtype=np.float32)
    status, line, _frames, bodies = ntu_parse.parse_ntu(buf, body_frame, body_id, joints, MAX_COORDINATE)
    if status == ntu_parse.OUT_OF_RANGE:
        raise FormatError(f"{ntu_parse.REASONS[status]} ±{MAX_COORDINATE:g} (formats.md)", int(line))
    if status != ntu_parse.OK:
        raise FormatError(ntu_parse.REASONS[status], int(line))
    return body_frame[:bodies], body_id[:bodies], joints[:bodies]


class NTUFormat(DatasetFormat):
    skeleton = NTU25
    meta_fields = META_FIELDS
    persons = "stacked"

    def __init__(self, name: str, **options: str):
        check_options(name, self.options, options)
        variant = VARIANTS[name]
        self.name = name
        self.max_setup = variant.setups
        self.max_action = variant.actions
        self.class_names = NTU_CLASS_NAMES[:variant.actions]
        self.protocols = variant.protocols
        self.description = (f"NTU RGB+D {variant.actions}: *.skeleton files under RAW (recursive), setups "
                            f"1-{variant.setups}, actions 1-{variant.actions}; protocols {', '.join(self.protocols)}")

    def discover(self, raw: Path, missing_list: Path | None = None):
        missing = read_missing_list(missing_list, self.name)
        found, rejected = named_files(raw, ".skeleton", NAME, "SsssCcccPpppRrrrAaaa.skeleton",
                                       self.max_file_bytes)
        items, seen = [], {}
        ignored = {"on the missing-skeleton list": 0, f"outside {self.name} (setup or action)": 0}
        for path, stem, _ in found:
            meta = parse_name(stem)
            if stem in seen:
                rejected.append(duplicate(path, seen[stem]))
            elif stem in missing:
                ignored["on the missing-skeleton list"] += 1
            elif not (1 <= meta["setup"] <= self.max_setup and 1 <= meta["action"] <= self.max_action):
                ignored[f"outside {self.name} (setup or action)"] += 1
            else:
                action = meta.pop("action")
                items.append(Item(stem, path, action - 1, meta))
                seen[stem] = path
        return items, rejected, {k: v for k, v in ignored.items() if v}

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        try:
            body_frame, body_id, joints = parse_skeleton(data)
            return [checked(*ntu_select.select_actors(body_frame, body_id, joints))]
        except FormatError as exc:
            return [exc]
        except ValueError as exc:
            return [FormatError(str(exc))]

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return split_masks(self.name, meta)
