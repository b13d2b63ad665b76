"""Toyota Smarthome (trimmed), LCR-Net skeletons (formats.md §5). No real file was available:
this reader follows the documented layout and is tested only on files its tests write.

One JSON per video, `<Activity>[.<Sub>]_pXX_rYY_vZZ_cWW.json` (v1.1) or `..._pose3d.json`
(v1.2), `{"frames": [[{"pose2d": 26 floats, "pose3d": 39 floats, ("cumscore")}, ...], ...]}`.
We read pose3d (metres), 13 LCR-Net joints. LCR-Net's 3D poses are in the camera's frame, y
pointing down as in the image (its demo draws them upright only by viewing the 3D axes from
below, elev -90; third-party loaders negate y): we negate y, so y (G) means "up" as in every
other format. The flat vector is planar by default
(x0..x12, y0..y12, z0..z12: the official json_to_npz.py and the Toyota skeleton baseline,
YangDi666/2s-AGCN-For-Daily-Living data_gen/smarthome_gendata.py, read it so); the reader
option `vectors=interleaved` reads (x0, y0, z0, x1, ...) as some third-party loaders do.

Per frame we keep up to two detections: by descending `cumscore` where the file has it
(v1.1), else in file order (v1.2 has no score). Frames with no detection are dropped."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..encoder.skeletons import LCRNET13
from .base import (DatasetFormat, FormatError, Item, Rejection, Sequence, check_options, checked, duplicate, json_numbers,
                   named_files, parse_json, top_two_per_frame)

NAME = re.compile(r"^([A-Za-z]+(?:\.[A-Za-z]+)?)_p(\d+)_r(\d+)_v(\d+)_c(\d+)(?:_pose3d)?$")
JOINTS = 13
META_FIELDS = ("subject", "repetition", "video", "camera", "cv_label")  # cv_label: index in the 19 cross-view
# classes, -1 for the other 12
VECTOR_LAYOUTS = ("planar", "interleaved")

# The 31 classes of the cross-subject protocol, in the order (= label index) of the Toyota
# skeleton baseline's `action_classes` (YangDi666/2s-AGCN-For-Daily-Living smarthome_gendata.py).
TOYOTA_CLASS_NAMES = (
    "Cook.Cleandishes", "Cook.Cleanup", "Cook.Cut", "Cook.Stir", "Cook.Usestove", "Cutbread",
    "Drink.Frombottle", "Drink.Fromcan", "Drink.Fromcup", "Drink.Fromglass", "Eat.Attable", "Eat.Snack",
    "Enter", "Getup", "Laydown", "Leave", "Makecoffee.Pourgrains", "Makecoffee.Pourwater",
    "Maketea.Boilwater", "Maketea.Insertteabag", "Pour.Frombottle", "Pour.Fromcan", "Pour.Fromkettle",
    "Readbook", "Sitdown", "Takepills", "Uselaptop", "Usetelephone", "Usetablet", "Walk", "WatchTV",
)
# The 19 classes the cross-view protocols use (same source, `action_cv`).
CROSS_VIEW_CLASSES = (
    "Cutbread", "Drink.Frombottle", "Drink.Fromcan", "Drink.Fromcup", "Drink.Fromglass", "Eat.Attable",
    "Eat.Snack", "Enter", "Getup", "Leave", "Pour.Frombottle", "Pour.Fromcan", "Readbook", "Sitdown",
    "Takepills", "Uselaptop", "Usetablet", "Usetelephone", "Walk",
)
XSUB_TRAIN_SUBJECTS = (3, 4, 6, 7, 9, 12, 13, 15, 17, 19, 25)  # test: every other subject
XVIEW1_TRAIN_CAMERAS = (1,)
XVIEW2_TRAIN_CAMERAS = (1, 3, 4, 6, 7)  # as the dataset paper defines it (the baseline script tests subject ids)
XVIEW_TEST_CAMERAS = (2,)  # camera 5 is the validation view: on neither side


def parse_video(data: bytes, vectors: str = "planar") -> Sequence:
    """JSON bytes -> (T, 2, 13, 3) float32 of up to two detections per frame, frames with
    none dropped, and the actor count."""
    doc = parse_json(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise FormatError("JSON has no 'frames' list")
    poses, scores, frame_of = [], [], []
    for t, frame in enumerate(doc["frames"]):
        if not isinstance(frame, list):
            raise FormatError(f"frame {t}: not a list of detections")
        for person in frame:
            if not isinstance(person, dict) or "pose3d" not in person:
                raise FormatError(f"frame {t}: a detection has no 'pose3d'")
            poses.append(person["pose3d"])
            scores.append(person.get("cumscore", 0.0))
            frame_of.append(t)
    if not poses:
        raise FormatError("nobody is detected in any frame")
    pose, score = json_numbers(poses), json_numbers(scores, np.float64)
    if pose is None or score is None or pose.shape != (len(poses), 3 * JOINTS) or score.shape != (len(poses),):
        for p, vec in enumerate(poses):  # find the first bad detection for the message
            a, b = json_numbers(vec), json_numbers(scores[p], np.float64)
            if a is None or b is None or b.shape != ():
                raise FormatError(f"frame {frame_of[p]}: 'pose3d' or 'cumscore' is not numeric")
            if a.shape != (3 * JOINTS,):
                raise FormatError(f"frame {frame_of[p]}: 'pose3d' has {a.size} values, not {3 * JOINTS}")
        raise FormatError("'pose3d' or 'cumscore' is not numeric")
    if not np.all(np.isfinite(pose)):
        raise FormatError("'pose3d' holds a non-finite value")
    if not np.all(np.isfinite(score)):
        raise FormatError("'cumscore' is not a finite number")
    joints = pose.reshape(-1, 3, JOINTS).transpose(0, 2, 1) if vectors == "planar" else pose.reshape(-1, JOINTS, 3)
    joints = joints * np.array([1, -1, 1], dtype=joints.dtype)  # the camera's y points down: make it "up"
    # by descending cumscore; without one (all 0) in file order
    order, slot, t = top_two_per_frame(np.asarray(frame_of, dtype=np.int64), score)
    seq = np.zeros((t[-1] + 1, 2, JOINTS, 3), dtype=np.float32)
    seq[t, slot] = joints[order]
    present = np.any(seq != 0, axis=(2, 3))
    return checked(seq[present[:, 0] | present[:, 1]], 2 if np.any(seq[:, 1] != 0) else 1)


class ToyotaFormat(DatasetFormat):
    name = "toyota"
    skeleton = LCRNET13
    class_names = TOYOTA_CLASS_NAMES
    meta_fields = META_FIELDS
    protocols = ("xsub", "xview1", "xview2")
    persons = "main"  # one subject per video
    max_file_mb = 256.0  # a long video's detections
    options = {"vectors": "layout of the flat pose3d vectors: planar (x0..x12, y0..y12, z0..z12; the "
                          "official reading, default) or interleaved (x0, y0, z0, x1, ...)"}

    def __init__(self, **options: str):
        check_options(self.name, self.options, options)
        self.vectors = options.get("vectors", "planar")
        if self.vectors not in VECTOR_LAYOUTS:
            raise ValueError(f"toyota reader option vectors={self.vectors!r}: choose planar or interleaved")
        self.description = (
            "Toyota Smarthome trimmed, LCR-Net pose3d (13 joints, metres; no real file was available to check "
            f"against): <Activity>_pXX_rYY_vZZ_cWW[_pose3d].json under RAW; vectors {self.vectors}; 31 classes. "
            "Protocols xsub (train subjects 3 4 6 7 9 12 13 15 17 19 25), xview1 (train camera 1, test camera 2), "
            "xview2 (train cameras 1 3 4 6 7, test camera 2); cross-view uses only its 19 classes, labels stay "
            "in the 31-class space")

    def find_items(self, raw: Path):
        found, rejected = named_files(raw, ".json", NAME, "<Activity>_pXX_rYY_vZZ_cWW[_pose3d].json",
                                       self.max_file_bytes)
        items, seen = [], {}
        for path, stem, m in found:
            activity = m.group(1)
            name = stem.removesuffix("_pose3d")
            subject, repetition, video, camera = map(int, m.groups()[1:])
            if activity not in TOYOTA_CLASS_NAMES:
                rejected.append(Rejection(stem, f"activity {activity!r} is not one of the 31 Toyota Smarthome classes"))
            elif name in seen:
                rejected.append(duplicate(path, seen[name]))  # another folder, or both v1.1 .json and v1.2 _pose3d
            elif max(subject, repetition, video, camera) > 32767:
                rejected.append(Rejection(stem, "a number in the name does not fit a small integer"))
            else:
                cv_label = CROSS_VIEW_CLASSES.index(activity) if activity in CROSS_VIEW_CLASSES else -1
                items.append(Item(name, path, TOYOTA_CLASS_NAMES.index(activity),
                                  {"subject": subject, "repetition": repetition, "video": video, "camera": camera,
                                   "cv_label": cv_label}))
                seen[name] = path
        items.sort(key=lambda it: it.name)
        return items, rejected, {}

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        try:
            return [parse_video(data, self.vectors)] * len(items)
        except FormatError as exc:
            return [exc] * len(items)

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]]:
        subject, camera = np.asarray(meta["subject"]), np.asarray(meta["camera"])
        cv_class = np.asarray(meta["cv_label"]) >= 0
        test = np.isin(camera, XVIEW_TEST_CAMERAS) & cv_class
        return {"xsub": np.isin(subject, XSUB_TRAIN_SUBJECTS),
                "xview1": (np.isin(camera, XVIEW1_TRAIN_CAMERAS) & cv_class, test),
                "xview2": (np.isin(camera, XVIEW2_TRAIN_CAMERAS) & cv_class, test)}
