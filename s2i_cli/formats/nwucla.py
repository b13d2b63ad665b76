"""Northwestern-UCLA Multiview Action3D, the CTR-GCN "all_sqe" JSON release (formats.md §2):
one file `aAA_sSS_eEE_vVV.json` per sample, `{"file_name", "skeletons": T x 20 x [x, y, z],
"label": 1..10}`, one person, Kinect v1 joints in metres."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..encoder.skeletons import NWUCLA20
from .base import (DatasetFormat, FormatError, Item, Rejection, Sequence, check_options, checked, duplicate,
                   json_numbers, named_files, parse_json)

NAME = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})$")
ACTIONS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)  # a07 and a10 do not exist; label = position + 1
NWUCLA_CLASS_NAMES = ("pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
                      "stand up", "donning", "doffing", "throw", "carry")
META_FIELDS = ("subject", "episode", "view")
XVIEW_TRAIN_VIEWS = (1, 2)  # test: view 3 (CTR-GCN feeder_ucla.py)
JOINTS = 20


def parse_sample(data: bytes, label: int | None = None) -> np.ndarray:
    """JSON bytes -> (T, 20, 3) float32, or FormatError. `label` (0-based), when given, must
    agree with the file's own 1-based `label`."""
    doc = parse_json(data)
    if not isinstance(doc, dict) or "skeletons" not in doc:
        raise FormatError("JSON has no 'skeletons' key")
    frames = doc["skeletons"]
    if not isinstance(frames, list) or not frames:
        raise FormatError("'skeletons' is not a non-empty list of frames")
    joints = json_numbers(frames)
    if joints is None:
        raise FormatError("'skeletons' is not T frames x 20 joints x 3 numbers (ragged or not numeric)")
    if joints.ndim != 3 or joints.shape[1:] != (JOINTS, 3):
        raise FormatError(f"'skeletons' has shape {joints.shape}, not T x {JOINTS} x 3")
    if not np.all(np.isfinite(joints)):
        raise FormatError("'skeletons' holds a non-finite value")
    if label is not None and "label" in doc and (type(doc["label"]) is not int or doc["label"] != label + 1):
        raise FormatError(f"the file's label {doc['label']!r} disagrees with its name (action -> label {label + 1})")
    return joints


class NWUCLAFormat(DatasetFormat):
    name = "nwucla"
    skeleton = NWUCLA20
    class_names = NWUCLA_CLASS_NAMES
    meta_fields = META_FIELDS
    protocols = ("xview",)
    persons = "main"  # one person per sample
    options: dict[str, str] = {}
    description = ("NW-UCLA (CTR-GCN all_sqe JSON): aAA_sSS_eEE_vVV.json files under RAW (recursive), "
                   "actions a01-a06 a08 a09 a11 a12 -> labels 1-10; protocol xview (train views 1, 2; test view 3)")

    def __init__(self, **options: str):
        check_options(self.name, self.options, options)

    def find_items(self, raw: Path):
        found, rejected = named_files(raw, ".json", NAME, "aAA_sSS_eEE_vVV.json", self.max_file_bytes)
        items, seen = [], {}
        for path, stem, m in found:
            action, subject, episode, view = map(int, m.groups())
            if action not in ACTIONS:
                rejected.append(Rejection(stem, f"action a{action:02d} is not an NW-UCLA action "
                                                "(a01-a06, a08, a09, a11, a12)"))
            elif stem in seen:
                rejected.append(duplicate(path, seen[stem]))
            else:
                items.append(Item(stem, path, ACTIONS.index(action),
                                  {"subject": subject, "episode": episode, "view": view}))
                seen[stem] = path
        return items, rejected, {}

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        out: list[Sequence | FormatError] = []
        for item in items:
            try:
                joints = parse_sample(data, item.label)
                keep = np.any(joints != 0, axis=(1, 2))
                seq = np.zeros((int(keep.sum()), 2, JOINTS, 3), dtype=np.float32)
                seq[:, 0] = joints[keep]
                out.append(checked(seq, 1))
            except FormatError as exc:
                out.append(exc)
        return out

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"xview": np.isin(np.asarray(meta["view"]), XVIEW_TRAIN_VIEWS)}
