"""What an S2I image shows, as one value (`Encoding`): skeleton, layout, size, persons, the
single-actor fill of `stacked`, the joint stream's normalisation (and its dataset-wide limits)
and the stream; `encode` runs it through streams.encode_streams (docs/design.md §2). Shared
by `convert` (the stored images) and the training loader, which re-encodes the stored
skeletons on the fly (augmentation, or another fill, normalisation, layout or stream than the
store's). Knows numpy, not torch or Zarr."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import skeletons
from .streams import NORMS, STREAMS, encode_streams
from ..vocab import FILL_DEFAULT, LAYOUT_DEFAULT, NORM_DEFAULT, Persons


@dataclass(frozen=True)
class Encoding:
    """Everything that turns a centred sequence into an image. `limits` (3, 2): per-channel
    (min, max) for norm="dataset" (see `dataset_limits`)."""

    skeleton: skeletons.Skeleton
    layout: str = LAYOUT_DEFAULT.value
    size: int = 224
    persons: str = Persons.STACKED.value
    fill: str = FILL_DEFAULT.value
    norm: str = NORM_DEFAULT.value
    limits: tuple[tuple[float, float], ...] | None = None
    stream: str = "joint"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown normalisation {self.norm!r}: choose one of {', '.join(NORMS)}")
        if self.norm == "dataset" and self.limits is None:
            raise ValueError("dataset normalisation needs limits from the training split")
        if self.fill not in skeletons.FILLS:
            raise ValueError(f"unknown fill {self.fill!r}: choose one of {', '.join(skeletons.FILLS)}")
        if self.stream not in STREAMS:
            raise ValueError(f"unknown stream {self.stream!r}: choose one of {', '.join(STREAMS)}")
        skeletons.part_edges(self.skeleton, self.layout, self.size)  # checks the layout name and width


def encode(seqs: Sequence[np.ndarray], actors: Sequence[int], enc: Encoding,
           parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Encode centred (T, 2, V, C) sequences as `enc` says: (N, 3, S, S) uint8 images and the
    (N, 3, 2) float32 (lo, hi) per channel that decode them back to metres (streams.py).
    parallel=False runs on one thread (DataLoader workers: no OpenMP pool in a forked child)."""
    return encode_many(seqs, actors, enc, (enc.stream,), parallel)[enc.stream]


def encode_many(seqs: Sequence[np.ndarray], actors: Sequence[int], enc: Encoding, streams: Sequence[str],
                parallel: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`encode` for several streams of the same sequences at once ({stream: (images, lo-hi)}),
    `enc.stream` aside: the maps and the joint ranges are made once."""
    limits = None if enc.limits is None else np.asarray(enc.limits, dtype=np.float32)
    return encode_streams(enc.skeleton, list(seqs), list(actors), enc.size, enc.layout, enc.persons, tuple(streams),
                          enc.fill, enc.norm, limits, parallel)


def dataset_limits(seqs: Sequence[np.ndarray], skeleton: skeletons.Skeleton, coverage: float = 0.999) -> np.ndarray:
    """Per-channel (min, max) (3, 2) over the training sequences: the central `coverage` of the
    used joints' present values (a few tracking glitches do not set the scale). 2D formats'
    confidence channel keeps [0, 1]."""
    used = skeletons.used_joints(skeleton)
    values = []
    for s in seqs:
        j = s[:, :, used]  # (T, 2, U, C)
        present = np.any(j[..., :2] != 0, axis=-1)
        values.append(j[present])
    flat = np.concatenate(values) if values else np.zeros((1, 3), np.float32)
    tail = (1.0 - coverage) / 2
    limits = np.stack([np.quantile(flat, tail, axis=0), np.quantile(flat, 1 - tail, axis=0)], axis=1)
    if skeleton.is_2d:
        limits[2] = (0.0, 1.0)
    return limits.astype(np.float32)


def store_encoding(header: Any, *, fill: str | None = None, norm: str | None = None, layout_name: str | None = None,
                   limits: np.ndarray | None = None) -> Encoding:
    """The Encoding a store's images were made with (from its header: store.StoreHeader, read
    by attribute, so the encoder never imports the store), with any of fill, normalisation and
    layout replaced: what the loader re-encodes the stored skeletons with."""
    skel = skeletons.find_skeleton(header)  # the store's skeleton by name
    if skel is None:
        raise ValueError(f"s2i has no definition of the store's skeleton {header.skeleton!r}: "
                         "it cannot be re-encoded (train on its stored images: no --augment, fill or norm)")
    height, width = header.image_size
    if height != width:
        raise ValueError(f"re-encoding needs square images; the store has {height}x{width}")
    return Encoding(skel, layout_name or header.layout, width, header.persons, fill or header.fill,
                    norm or header.norm,
                    _limits(limits if limits is not None or norm not in (None, "dataset") else header.norm_limits))


def _limits(limits) -> tuple[tuple[float, float], ...] | None:
    return None if limits is None else tuple(map(tuple, np.asarray(limits, dtype=float).tolist()))


def training_view(header: Any, masking: str, augment: Sequence[str]) -> tuple[Encoding | None, list[int] | None]:
    """What pretraining needs from a store besides its images: the Encoding to re-encode its
    skeletons with when augmenting (None: read the stored images) and, for parts masking, the
    body part of every patch column. Parts masking needs the `aligned` layout: in the others a
    band edge can fall inside a patch column, which then mixes two parts (refused)."""
    encoding = store_encoding(header) if augment else None
    if masking != "parts":
        return encoding, None
    if header.layout != "aligned":
        raise ValueError(f"--masking parts needs a store converted with --layout aligned (band edges on the patch "
                         f"grid); this store has layout {header.layout!r}, whose patch columns can mix two body "
                         f"parts: re-convert it with --layout aligned, or choose another --masking")
    skel = skeletons.find_skeleton(header)
    if skel is None:
        raise ValueError(f"parts masking needs the body parts of skeleton {header.skeleton!r}, which s2i "
                         "does not define: choose another --masking")
    return encoding, skeletons.patch_column_parts(skel, header.layout, header.width)
