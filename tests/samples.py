"""Small valid input files for every reader, written from arrays, and a way to call each
reader on raw bytes: the seeds that tests/test_bad_input.py and tests/test_fuzz.py damage.
Nothing here needs the real sample data."""
from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Callable
from itertools import groupby
from pathlib import Path

import numpy as np

from s2i_cli.formats import FormatError, Item, Sequence, get_format
from s2i_cli.formats.kinetics import kinetics_class_names, read_labels
from s2i_cli.formats.pkummd import read_label_lines

BODY_ID = 72057594037931101  # a real-looking 64-bit ID (2**56 + a few thousand)


def ntu_bytes(joints: np.ndarray, body_ids: tuple[int, ...] = (BODY_ID, BODY_ID + 1)) -> bytes:
    """An NTU `.skeleton` file (formats.md §1.2) with every body of `joints` (T, B, 25, 3) in
    every frame. Line numbers: 1 frame count; per frame its body count, then per body its
    info line, the joint count and 25 joint lines (frame 0, body 0, joint j is line 5 + j)."""
    lines = [str(len(joints))]
    for frame in joints:
        lines.append(str(len(frame)))
        for b, body in enumerate(frame):
            lines += [f"{body_ids[b]} 0 1 1 1 1 0 0.05 -0.1 2", "25"]
            lines += [f"{x:.7g} {y:.7g} {z:.7g} 250.1 180.2 960.5 540.3 0.1 0.2 0.3 0.9 2" for x, y, z in body]
    return ("\r\n".join(lines) + "\r\n").encode()


def ntu_joints(rng: np.random.Generator, frames: int = 3, bodies: int = 1) -> np.ndarray:
    joints = rng.normal(size=(frames, bodies, 25, 3)).astype(np.float32)
    joints[..., 1] *= 4  # tall and thin, as people are: passes the selection's spread filter
    return joints


def pku_bytes(rows: np.ndarray) -> bytes:
    """A PKU-MMD skeleton file: one line of 150 values per frame (formats.md §3)."""
    return "".join(" ".join(f"{v:.6f}" for v in row) + " \n" for row in rows.reshape(len(rows), -1)).encode()


def nwucla_bytes(joints: np.ndarray, label: int = 1) -> bytes:
    """An NW-UCLA all_sqe JSON (formats.md §2) of joints (T, 20, 3); `label` is 1-based."""
    return json.dumps({"file_name": "a01_s01_e01_v01", "skeletons": joints.tolist(), "label": label}).encode()


def kinetics_doc(rng: np.random.Generator, frames: int = 4, people: int = 2) -> dict:
    """A Kinetics-skeleton video JSON (formats.md §4): OpenPose 18 joints, x y in 0-1, scores."""
    data = []
    for t in range(frames):
        skeleton = [{"pose": np.round(rng.uniform(0.1, 0.9, 36), 3).tolist(),
                     "score": np.round(rng.uniform(0.2, 1.0, 18), 3).tolist()} for _ in range(people)]
        data.append({"frame_index": t + 1, "skeleton": skeleton})
    return {"data": data, "label": "abseiling", "label_index": 0}


# --------------------------------------------------------------------------- readers on bytes

def _item(name: str, label: int = 0, extra: tuple = ()) -> Item:
    return Item(name, Path(name), label, {}, extra)


def read_ntu(data: bytes) -> list[Sequence | FormatError]:
    return get_format("ntu120").read_items(Path("S001C001P001R001A001.skeleton"), data, [_item("S001C001P001R001A001")])


def read_pkummd(data: bytes) -> list[Sequence | FormatError]:
    """Three labelled intervals of one sequence: the start, the middle, past the end."""
    items = [_item("0002-L_001", 0, (0, 1, 1)), _item("0002-L_002", 1, (1, 2, 2)), _item("0002-L_003", 2, (2, 40, 3))]
    return get_format("pkummd").read_items(Path("0002-L.txt"), data, items)


def read_pkummd_labels(data: bytes) -> list | FormatError:
    """Label file bytes as discovery reads them: its rows, or the FormatError it rejects."""
    try:
        return read_label_lines(data)
    except FormatError as exc:
        return exc


def read_kinetics_labels(data: bytes) -> dict | FormatError:
    """A Kinetics label JSON as discovery reads it: id -> entry or reason, or the FormatError."""
    try:
        return read_labels(data, kinetics_class_names())
    except FormatError as exc:
        return exc


def read_nwucla(data: bytes) -> list[Sequence | FormatError]:
    return get_format("nwucla").read_items(Path("a01_s01_e01_v01.json"), data, [_item("a01_s01_e01_v01")])


def read_kinetics(data: bytes) -> list[Sequence | FormatError]:
    return get_format("kinetics").read_items(Path("x.json"), data, [_item("x")])


def read_toyota(data: bytes) -> list[Sequence | FormatError]:
    return get_format("toyota").read_items(Path("Walk_p03_r00_v01_c01.json"), data, [_item("Walk_p03_r00_v01_c01")])


def seeds(rng: np.random.Generator) -> dict[str, tuple[bytes, Callable[[bytes], list]]]:
    """Reader name -> (a small valid file, the function that reads such bytes)."""
    pku = np.zeros((4, 2, 25, 3), dtype=np.float32)
    pku[:, 0] = rng.normal(size=(4, 25, 3))
    pku[1:3, 1] = rng.normal(size=(2, 25, 3))
    toyota, _ = toyota_doc(rng, frames=4)
    return {
        "ntu": (ntu_bytes(ntu_joints(rng)), read_ntu),
        "pkummd": (pku_bytes(pku), read_pkummd),
        "pkummd labels": (b"1,0,1,2\r\n12,2,3,1\r\n", read_pkummd_labels),
        "nwucla": (nwucla_bytes(rng.normal(size=(3, 20, 3)).round(4)), read_nwucla),
        "kinetics": (json.dumps(kinetics_doc(rng)).encode(), read_kinetics),
        "kinetics labels": (json.dumps({"vid1": {"has_skeleton": True, "label": "abseiling", "label_index": 0},
                                        "vid2": {"has_skeleton": False, "label_index": 399}}).encode(),
                            read_kinetics_labels),
        "toyota": (json.dumps(toyota).encode(), read_toyota),
    }


def within(seconds: float, fn: Callable, *args):
    """fn(*args), failing the test when it has not returned after `seconds` (a hang): it runs
    on a daemon thread, so a hung kernel cannot stop the test run from ending."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # handed to the caller as it is
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(fn, '__name__', fn)} still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


# --------------------------------------------------------------------------- importers (a whole file each)

def pyskl_doc(rng: np.random.Generator) -> dict:
    """A small pyskl 3D annotation dict (formats.md "Importers"): three NTU-named samples,
    float16 camera coordinates, one with a second person, and a split pair."""
    anns = []
    for k, (name, persons) in enumerate((("S001C001P001R001A001", 1), ("S001C001P002R001A002", 2),
                                         ("S002C001P001R001A003", 1))):
        kp = (ntu_joints(rng, frames=4 + k, bodies=persons).transpose(1, 0, 2, 3) * 0.3 + 3).astype(np.float16)
        anns.append({"frame_dir": name, "label": k, "total_frames": 4 + k, "keypoint": kp})
    return {"split": {"xsub_train": [anns[0]["frame_dir"], anns[1]["frame_dir"]],
                      "xsub_val": [anns[2]["frame_dir"]]}, "annotations": anns}


def ctrgcn_arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A small CTR-GCN .npz's arrays: (N, frames, 150) zero-padded rows, one-hot labels."""
    x = np.zeros((3, 12, 150), np.float32)
    x[0, :5, :75] = rng.normal(size=(5, 75))
    x[1, :8] = rng.normal(size=(8, 150))  # two bodies
    x[2, :3, :75] = rng.normal(size=(3, 75))
    return {"x_train": x[:2], "y_train": np.eye(60, dtype=np.float32)[[4, 7]], "x_test": x[2:],
            "y_test": np.eye(60, dtype=np.float32)[[9]]}


def npz_bytes(arrays: dict[str, bytes | np.ndarray], compressed: bool = False) -> bytes:
    """A .npz as np.savez(_compressed) writes it, from arrays or ready `.npy` bytes (which may lie)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            if isinstance(value, np.ndarray):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, value, allow_pickle=True)  # object arrays too: the reader refuses them
                value = buf.getvalue()
            zf.writestr(name + ".npy", value)
    return out.getvalue()


def import_bytes(dataset: str, data: bytes, folder: Path) -> str | tuple:
    """An importer's whole run on one file of these bytes: the one-line ValueError discovery
    raises, or (reader, items, rejections, each item's Sequence | FormatError)."""
    path = folder / ("NTU60_CS.npz" if dataset == "ctrgcn" else "ntu60_3danno.pkl")
    path.write_bytes(data)
    fmt = get_format(dataset, **({"cache_dir": str(folder / "cache")} if dataset == "pyskl" else {}))
    try:
        items, rejected, _ = fmt.discover(path)
    except ValueError as exc:
        return str(exc)
    results = []
    for spill, group in groupby(items, key=lambda it: it.path):
        results += fmt.read_items(spill, b"", list(group))
    return fmt, items, rejected, results


def toyota_doc(rng, frames: int = 12, vectors: str = "planar", cumscore: bool = True) -> tuple[dict, np.ndarray]:
    """A made-up LCR-Net JSON and the (T, 2, 13, 3) joints the reader gives for it, y negated
    (two detections in the odd frames, the better-scored listed second; no detection in frame 3)."""
    joints = rng.normal(size=(frames, 2, 13, 3)).astype(np.float32)
    joints[::2, 1] = 0

    def vec(j):
        return (j.T.reshape(-1) if vectors == "planar" else j.reshape(-1)).tolist()

    out = []
    for t in range(frames):
        people = [{"pose2d": [0.0] * 26, "pose3d": vec(joints[t, 0])}]
        if cumscore:
            people[0]["cumscore"] = 5.0
        if t % 2:
            other = {"pose2d": [0.0] * 26, "pose3d": vec(joints[t, 1])}
            if cumscore:
                other["cumscore"] = 1.0
            people = [other, people[0]] if cumscore else people + [other]
        out.append([] if t == 3 else people)
    keep = np.arange(frames) != 3
    return {"frames": out, "njts": 13, "K": 2}, joints[keep] * np.array([1, -1, 1], dtype=np.float32)


def pku_tree(tmp_path: Path, skeleton: bytes, labels: str, stem: str = "0002-L") -> Path:
    raw = tmp_path / "raw"
    (raw / "skeleton").mkdir(parents=True, exist_ok=True)
    (raw / "label").mkdir(exist_ok=True)
    (raw / "skeleton" / f"{stem}.txt").write_bytes(skeleton)
    (raw / "label" / f"{stem}.txt").write_text(labels)
    return raw


def frame_line(p1: float, p2: float = 0.0) -> str:
    return " ".join(["%.6f" % p1] * 75 + ["%.6f" % p2] * 75)
