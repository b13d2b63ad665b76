"""pyskl's annotation pickle (`tools/data/README.md`; what its `ntu_preproc.py` writes):
`{"split": {"<protocol>_train": [frame_dir, ...], "<protocol>_val": [...]}, "annotations":
[{"frame_dir", "label", "total_frames", "keypoint": M×T×V×C float32}, ...]}`, M the sample's
actors. 3D skeletons keep xyz; a 2D store (x, y, confidence) writes `keypoint` M×T×V×2 and
`keypoint_score` M×T×V, as pyskl's HRNet files hold them. Coordinates are the store's: the
selected actors, centred on the main actor's spine-mid in its first frame.

`pickle.dump` needs the whole list in memory. The file is written instead by the pure-Python
pickler one annotation at a time (protocol 4, no memo: the annotations share nothing, and a
memo would hold every array until the end), inside a hand-written `{..., "annotations": [`
frame, so memory is one shard whatever N; `pickle.load` reads it as it reads any pyskl file."""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import zarr

from ..store import read_header, split_indices
from .samples import SIDES, Sample, check_out, on_any_side, protocols_to_write, samples_at

BATCH = 256  # annotations per APPENDS: pickle's own batch size for lists


def annotation(sample: Sample, two_d: bool) -> dict:
    """One pyskl annotation from a stored sample."""
    keypoint = np.ascontiguousarray(sample.joints.transpose(1, 0, 2, 3))  # (M, T, V, C)
    ann = {"frame_dir": sample.name, "label": sample.label, "total_frames": int(keypoint.shape[1])}
    if two_d:
        ann["keypoint"] = np.ascontiguousarray(keypoint[..., :2])
        ann["keypoint_score"] = np.ascontiguousarray(keypoint[..., 2])
    else:
        ann["keypoint"] = keypoint
    return ann


def write_pickle(root: zarr.Group, protocols: list[str], path: Path, advance: Callable[[int], None]) -> int:
    """The whole pickle, annotations streamed; returns how many it holds: every sample on a side
    of the protocols, once, in slot order."""
    two_d = read_header(root).channels[2] != "z"
    names = np.asarray(root["name"][:])
    split = {f"{p}_{'train' if side == 'train' else 'val'}": [str(n) for n in names[split_indices(root, p, side)]]
             for p in protocols for side in SIDES}
    indices = on_any_side(root, protocols)
    tmp = path.with_name(path.name + ".partial")
    try:
        with open(tmp, "wb") as f:
            p = pickle._Pickler(f, protocol=4)  # the pure-Python one: its save() writes one object into an open frame
            p.fast = True  # no memo (see the module docstring)
            p.write(pickle.PROTO + bytes([4]))
            # no framing (optional in protocol 4): each write goes straight to the file
            p.write(pickle.EMPTY_DICT)
            p.save("split")
            p.save(split)
            p.write(pickle.SETITEM)
            p.save("annotations")
            p.write(pickle.EMPTY_LIST)
            batch = 0
            for sample in samples_at(root, indices):
                if batch == 0:
                    p.write(pickle.MARK)
                p.save(annotation(sample, two_d))
                advance(1)
                batch += 1
                if batch == BATCH:
                    p.write(pickle.APPENDS)
                    batch = 0
            if batch:
                p.write(pickle.APPENDS)
            p.write(pickle.SETITEM)
            p.write(pickle.STOP)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(indices)


def plan_pyskl(root: zarr.Group, out: Path, protocol: str | None, overwrite: bool) -> tuple[str, list[str]]:
    """(file name, protocols) to write, or ExportError before anything is written."""
    protocols = protocols_to_write(root, protocol)
    name = f"{read_header(root).dataset}.pkl"
    check_out(out, [name], overwrite)
    return name, protocols


def export_pyskl(root: zarr.Group, out: Path, protocol: str | None, overwrite: bool,
                 advance: Callable[[int], None] = lambda n: None) -> dict[str, int]:
    """The annotation pickle `<dataset>.pkl` into the folder `out`; {file name: samples}."""
    name, protocols = plan_pyskl(root, out, protocol, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    return {name: write_pickle(root, protocols, out / name, advance)}
