"""Kinetics-skeleton, the ST-GCN release (formats.md §4): OpenPose COCO-18 2D poses per video,
`kinetics_{train,val}/<youtube id>.json`, labels in `kinetics_{train,val}_label.json`.

Each frame lists up to 11 detected people with no identity across frames. Per frame we keep
the two with the highest summed joint confidence (ST-GCN's feeder does the same, after its
cap of the first five in file order, which we drop): with no tracking there is no "person
over the video" to rank, so a per-video choice would have to invent identities. The cost is
that the two slots can swap people between frames when their scores cross. Coordinates
are the release's (x / width, y / height) with y negated, so y points up as in every other
format (G means "up" in every image); a joint with confidence 0 is missing and
gets x = y = 0 (as in ST-GCN); frames with nobody are dropped; frame_index is 1-based."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from ..encoder.skeletons import OPENPOSE18
from .base import (ALL_ZERO, DatasetFormat, FormatError, Item, Rejection, Sequence, check_options, checked, duplicate,
                   json_numbers, parse_json, read_file, regular_files, top_two_per_frame, walk)

SPLITS = ("train", "val")
JOINTS = 18
META_FIELDS = ("split",)  # 0: kinetics_train, 1: kinetics_val
OPTIONS = {
    "train_labels": "label JSON of kinetics_train (default: kinetics_train_label.json under RAW, or the one "
                    "kinetics_train_label*.json there)",
    "val_labels": "label JSON of kinetics_val (default: kinetics_val_label.json under RAW, or the one "
                  "kinetics_val_label*.json there, e.g. kinetics_val_label_subset.json)",
}


def kinetics_class_names() -> tuple[str, ...]:
    """The 400 classes; line n of ST-GCN's resource/kinetics_skeleton/label_name.txt is label_index n-1."""
    text = resources.files(__package__).joinpath("kinetics_label_name.txt").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def parse_video(data: bytes) -> Sequence:
    """One video's JSON bytes -> (T, 2, 18, 3) float32 (x, y, confidence) of the two most
    confident people per frame, frames with nobody dropped, and the actor count."""
    doc = parse_json(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise FormatError("JSON has no 'data' list of frames")
    frame_index, poses, scores, frame_of = [], [], [], []
    for k, frame in enumerate(doc["data"]):
        if not isinstance(frame, dict) or not isinstance(frame.get("skeleton"), list):
            raise FormatError(f"frame entry {k} has no 'skeleton' list")
        index = frame.get("frame_index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 1:
            raise FormatError(f"frame entry {k}: frame_index {index!r} is not a 1-based integer")
        frame_index.append(index)
        for person in frame["skeleton"]:
            try:
                poses.append(person["pose"])
                scores.append(person["score"])
            except (KeyError, TypeError):
                raise FormatError(f"frame {index}: a person lacks 'pose' or 'score'") from None
            frame_of.append(k)
    if len(set(frame_index)) != len(frame_index):
        raise FormatError("a frame_index occurs twice")
    if not poses:
        raise FormatError("nobody is detected in any frame")
    pose, score = _people_arrays(poses, scores, frame_index, frame_of)
    total = score.sum(axis=1)
    # rank frames by frame_index, people within a frame by summed confidence (ties: file order)
    frame_rank = np.empty(len(frame_index), dtype=np.int64)
    frame_rank[np.argsort(frame_index, kind="stable")] = np.arange(len(frame_index))
    person_frame = frame_rank[np.asarray(frame_of, dtype=np.int64)]
    order, slot, t = top_two_per_frame(person_frame, total, keep=total > 0)
    if not len(order):
        raise FormatError(f"{ALL_ZERO} (nobody is detected in any frame)")
    seq = np.zeros((t[-1] + 1, 2, JOINTS, 3), dtype=np.float32)
    seq[t, slot, :, 0] = pose[order, 0::2]
    seq[t, slot, :, 1] = -pose[order, 1::2]  # image y points down: negate so y (G) means "up" as in NTU
    seq[t, slot, :, 2] = score[order]
    seq[..., :2][seq[..., 2] == 0] = 0.0
    return checked(seq, 2 if np.any(seq[:, 1, :, 2] > 0) else 1)


def _people_arrays(poses: list, scores: list, frame_index: list, frame_of: list) -> tuple[np.ndarray, np.ndarray]:
    """Every person's pose (P, 36) and score (P, 18) as float32, or FormatError naming the frame."""
    pose, score = json_numbers(poses), json_numbers(scores)
    if pose is None or score is None or pose.shape != (len(poses), 2 * JOINTS) or score.shape != (len(poses), JOINTS):
        for p, (ps, sc) in enumerate(zip(poses, scores)):  # find the first bad person for the message
            a, b = json_numbers(ps), json_numbers(sc)
            if a is None or b is None:
                raise FormatError(f"frame {frame_index[frame_of[p]]}: 'pose' or 'score' is not a list of numbers")
            if a.shape != (2 * JOINTS,) or b.shape != (JOINTS,):
                raise FormatError(f"frame {frame_index[frame_of[p]]}: a person has {a.size} pose and {b.size} score "
                                  f"values, not {2 * JOINTS} and {JOINTS}")
        raise FormatError("'pose' and 'score' are not lists of numbers")
    if not (np.all(np.isfinite(pose)) and np.all(np.isfinite(score))) or np.any(score < 0):
        raise FormatError("a non-finite value or a negative score")
    return pose, score


def read_labels(data: bytes, class_names: tuple[str, ...]) -> dict[str, tuple[int, bool] | str]:
    """A label JSON's bytes -> id -> (label_index, has_skeleton), or the reason the entry is
    unusable; FormatError when the file itself is not a JSON object keyed by video id."""
    doc = parse_json(data)
    if not isinstance(doc, dict):
        raise FormatError("not a JSON object keyed by video id")
    out: dict[str, tuple[int, bool] | str] = {}
    for vid, entry in doc.items():
        index = entry.get("label_index") if isinstance(entry, dict) else None
        has_skeleton = entry.get("has_skeleton", True) if isinstance(entry, dict) else True
        if type(index) is not int or not 0 <= index < len(class_names):
            out[vid] = f"label_index {index!r} is not in 0-{len(class_names) - 1}"
        elif entry.get("label") not in (None, class_names[index]):
            out[vid] = (f"label {entry.get('label')!r} disagrees with label_index {index} "
                        f"({class_names[index]!r} in label_name.txt)")
        elif not isinstance(has_skeleton, bool):
            out[vid] = f"has_skeleton {has_skeleton!r} is not true or false"
        else:
            out[vid] = (index, has_skeleton)
    return out


def _label_file(raw: Path, split: str, given: str | None, files: list[Path]) -> Path | None:
    if given:
        path = Path(given)
        if not path.is_file():
            raise ValueError(f"{split}_labels {given} is not a file")
        return path
    found = sorted(p for p in files if p.name.startswith(f"kinetics_{split}_label") and p.name.endswith(".json"))
    exact = [p for p in found if p.name == f"kinetics_{split}_label.json"]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    if found:
        raise ValueError(f"several kinetics_{split}_label*.json under {raw} ({', '.join(p.name for p in found)}): "
                         f"choose one with the reader option {split}_labels=PATH")
    return None


class KineticsFormat(DatasetFormat):
    name = "kinetics"
    skeleton = OPENPOSE18
    meta_fields = META_FIELDS
    protocols = ("release",)
    persons = "stacked"
    options = OPTIONS
    description = ("Kinetics-skeleton (ST-GCN release, OpenPose 18 joints, 2D + confidence): kinetics_train/ and "
                   "kinetics_val/ folders of <id>.json under RAW with kinetics_{train,val}_label*.json; "
                   "protocol release (train = kinetics_train, test = kinetics_val); "
                   "videos whose label entry has has_skeleton false are skipped")

    def __init__(self, **options: str):
        check_options(self.name, self.options, options)
        self.label_paths = {s: options.get(f"{s}_labels") for s in SPLITS}
        self.class_names = kinetics_class_names()

    def find_items(self, raw: Path):
        items, rejected, seen = [], [], {}
        ignored = {"has_skeleton false in the label file": 0, "in the label file but no JSON file": 0}
        every, dirs, rejected = walk(raw)
        for d in dirs:  # a linked kinetics_train/ (the walk lists links to folders without entering them)
            if d.name in {f"kinetics_{s}" for s in SPLITS} and d.is_symlink():
                try:
                    every += [p for p in d.iterdir() if not p.is_dir()]
                except OSError as exc:
                    rejected.append(Rejection(str(d), f"cannot list the folder: {exc.strerror or exc}"))
        every, refused = regular_files([p for p in every if p.name.endswith(".json")], self.max_file_bytes)
        rejected += refused
        folders = {s: {d for d in dirs if d.name == f"kinetics_{s}"} for s in SPLITS}
        for split_index, split in enumerate(SPLITS):
            files = sorted((f for f in every if f.parent in folders[split]), key=lambda p: (p.name, str(p)))
            if not files:
                continue
            label_path = _label_file(raw, split, self.label_paths[split], every)
            if label_path is None:
                raise ValueError(f"no kinetics_{split}_label*.json under {raw} for the {len(files)} files in "
                                 f"kinetics_{split}/: add it or give the reader option {split}_labels=PATH")
            labels = self._read_labels(label_path)
            names = set()
            for path in files:
                vid = path.name[:-5]
                names.add(vid)
                entry = labels.get(vid)
                if vid in seen:
                    rejected.append(duplicate(path, seen[vid]))  # another folder or split
                elif entry is None:
                    rejected.append(Rejection(vid, f"not in {label_path.name}"))
                elif isinstance(entry, str):
                    rejected.append(Rejection(vid, f"{label_path.name}: {entry}"))
                elif not entry[1]:
                    ignored["has_skeleton false in the label file"] += 1
                else:
                    items.append(Item(vid, path, entry[0], {"split": split_index}))
                    seen[vid] = path
            ignored["in the label file but no JSON file"] += sum(
                1 for vid, e in labels.items() if vid not in names and not isinstance(e, str) and e[1])
        if not any(folders.values()):
            raise ValueError(f"no kinetics_train/ or kinetics_val/ folder under {raw}")
        items.sort(key=lambda it: it.name)
        return items, rejected, {k: v for k, v in ignored.items() if v}

    def _read_labels(self, path: Path) -> dict[str, tuple[int, bool] | str]:
        try:
            return read_labels(read_file(path, self.max_file_bytes), self.class_names)
        except FormatError as exc:
            raise ValueError(f"label file {path}: {exc}") from None

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        try:
            return [parse_video(data)] * len(items)
        except FormatError as exc:
            return [exc] * len(items)

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"release": np.asarray(meta["split"]) == 0}
