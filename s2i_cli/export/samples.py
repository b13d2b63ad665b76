"""What both writers need from a store: the protocols to write, and each side's samples as
(name, label, actors, skeleton) one shard read at a time."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import zarr

from .. import store


SIDES = ("train", "test")


class ExportError(Exception):
    """An export that cannot be made; the message is one line naming the problem and the fix."""


@dataclass(frozen=True)
class Sample:
    name: str
    label: int
    actors: int  # 1 or 2: the second actor slot of a single-actor sample is not written out
    joints: np.ndarray  # (T, actors, V, C) float32, no NaN


def protocols_to_write(root: zarr.Group, protocol: str | None) -> list[str]:
    """The protocols an export writes: the one asked for, or every protocol of the store."""
    have = list(store.read_header(root).protocols)
    if protocol is None:
        if not have:
            raise ExportError("this store has no protocol (no train/test split) to export")
        return have
    if protocol not in have:
        raise ExportError(f"protocol {protocol!r} is not in this store; it has: {', '.join(have) or 'none'}")
    return [protocol]


def side_samples(root: zarr.Group, protocol: str, side: str) -> Iterator[Sample]:
    """The samples of one protocol side in slot order."""
    return samples_at(root, store.split_indices(root, protocol, side))


def on_any_side(root: zarr.Group, protocols: list[str]) -> np.ndarray:
    """Every slot on a train or test side of `protocols`, sorted, once."""
    return np.unique(np.concatenate([store.split_indices(root, p, side) for p in protocols for side in SIDES]))


def samples_at(root: zarr.Group, indices: np.ndarray) -> Iterator[Sample]:
    """The samples at sorted slot `indices`, reading each shard's skeletons once (one slice)."""
    shard = store.read_header(root).shard
    names, labels, actors = root["name"], root["label"], root["actors"]
    for block in np.split(indices, np.flatnonzero(np.diff(indices // shard)) + 1):
        if not len(block):
            continue
        lo, hi = int(block[0]), int(block[-1]) + 1
        sequences = store.read_skeletons(root, lo, hi)
        block_names, block_labels, block_actors = names[lo:hi], labels[lo:hi], np.asarray(actors[lo:hi])
        for i in block - lo:
            m = max(1, min(2, int(block_actors[i])))
            joints = np.nan_to_num(np.asarray(sequences[i][:, :m], dtype=np.float32), nan=0.0)
            yield Sample(str(block_names[i]), int(block_labels[i]), m, joints)


def check_out(out: Path, files: list[str], overwrite: bool) -> None:
    """OUT is a folder (made if absent); an export never replaces a file unless --overwrite,
    and then only the files it writes itself."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file: give a folder for the exported files")
    there = [f for f in files if (out / f).exists()]
    if there and not overwrite:
        raise ExportError(f"{out / there[0]} exists: pass --overwrite to replace the exported files")
