"""Streams: S2I images of the joint positions and of their differences (docs/design.md §2).

Every stream is computed from the selected, centred sequence (what `skeleton/` stores), per
frame t, actor m and joint j, before any temporal resizing:
- `joint`: the position itself;
- `bone`: the position minus its parent's along the skeleton's bone tree
  (`Skeleton.parent_index`); the root's bone is zero;
- `motion`: the position at t+1 minus the position at t; a sample's last frame is zero;
- `bone-motion`: the motion of the bones.
A difference with a missing end (an actor absent from a frame, a 2D joint of confidence 0)
is zero, never a jump from the origin. For 2D formats the third channel stays the joint's
detection confidence in every stream. Columns that read a virtual joint (the mean of two)
get the mean of their bones or motions: every stream goes through the same column and row
maps and the same kernel as the joint stream.

Scaling (measured and argued in docs/design.md §2): the joint stream keeps its per-channel
min-max. A difference stream is scaled symmetrically around zero (0 is mid-grey in every
sample) by one factor s for all spatial channels (a bone's or a motion's direction is
kept): the sample's largest absolute value, but never less than FLOOR of the sample's body
extent (the joint stream's largest spatial range), so a near-static clip's sensor noise is
not blown up to full contrast. Motion streams then pass through a signed square root
(POWER): their largest values are tracking glitches tens of times the typical motion,
which a linear scale would squeeze into a few grey levels. `norm` holds (-s, s) and the
power is per stream, so `pixels.decode_image` decodes every image back to metres, exactly
(within quantisation) and with no clipping."""
from __future__ import annotations

import numpy as np
from ..kernels.differences import difference_streams
from ..kernels.encode import quantise_batch, quantise_batch_serial, value_ranges, value_ranges_serial

from . import skeletons
from ..vocab import FILL_DEFAULT, NORM_DEFAULT, Norm, Stream, StreamError, parse_streams, values  # noqa: F401

STREAMS = values(Stream)
FLOOR = 0.05  # of the body extent (per frame for motion): docs/design.md §2
POWER = {"joint": 1.0, "bone": 1.0, "motion": 0.5, "bone-motion": 0.5}
# the joint stream's scaling (docs/design.md §2): per-sample min-max of each channel; per sample
# one scale for the coordinate channels (the body keeps its proportions); fixed dataset-wide limits
NORMS = values(Norm)


def stream_values(joints: np.ndarray, offsets: np.ndarray, stream: str, skel: skeletons.Skeleton) -> np.ndarray:
    """(F, 2, V, C) float32 of one stream for the samples whose frames `offsets` delimit."""
    return streams_values(joints, offsets, (stream,), skel)[stream]


def streams_values(joints: np.ndarray, offsets: np.ndarray, streams: tuple[str, ...], skel: skeletons.Skeleton
                   ) -> dict[str, np.ndarray]:
    """`stream_values` of several streams of the same frames, the difference streams in one
    pass of the kernel (kernels/differences.py)."""
    joints = np.ascontiguousarray(joints, dtype=np.float32)
    skip = np.empty((0, *joints.shape[1:]), dtype=np.float32)
    diffs = {s: np.empty_like(joints) if s in streams else skip for s in STREAMS[1:]}
    if set(streams) - {"joint"}:
        difference_streams(joints, np.asarray(offsets, dtype=np.int64), skel.parent_index(), skel.is_2d,
                           diffs["bone"], diffs["motion"], diffs["bone-motion"])
    return {s: joints if s == "joint" else diffs[s] for s in streams}


def stream_power(stream: str, is_2d: bool) -> np.ndarray:
    """(3,) the quantisation's power per channel: POWER on the spatial channels, 1 elsewhere
    (a 2D confidence)."""
    power = np.full(3, POWER[stream])
    if is_2d:
        power[2] = 1.0
    return power


def symmetric_norm(ranges: np.ndarray, joint_ranges: np.ndarray, is_2d: bool) -> np.ndarray:
    """(N, 3, 2) (-s, s) on the spatial channels: s = max(largest |value|, FLOOR * body
    extent), one s for all of them; a 2D confidence channel keeps its own (min, max)."""
    spatial = 2 if is_2d else 3
    extent = (joint_ranges[:, :spatial, 1] - joint_ranges[:, :spatial, 0]).max(axis=1)
    peak = np.abs(ranges[:, :spatial]).max(axis=(1, 2))
    s = np.maximum(peak, FLOOR * extent)
    s = np.where(s > 0, s, 1.0)  # an all-zero stream (a one-frame motion) is mid-grey
    norm = ranges.astype(np.float32, copy=True)
    norm[:, :spatial, 0] = -s[:, None]
    norm[:, :spatial, 1] = s[:, None]
    return norm


def joint_norm(ranges: np.ndarray, norm: str, limits: np.ndarray | None, is_2d: bool) -> np.ndarray:
    """(N, 3, 2) (lo, hi) of the joint stream from its per-channel (min, max) `ranges`:
    `channel` keeps them; `isotropic` widens the spatial channels to the widest one's range,
    each centred in it; `dataset` uses `limits` (3, 2) for every sample (values outside clip)."""
    if norm == "channel":
        return ranges
    out = ranges.astype(np.float32, copy=True)
    if norm == "isotropic":
        spatial = 2 if is_2d else 3
        widest = (ranges[:, :spatial, 1] - ranges[:, :spatial, 0]).max(axis=1)[:, None]
        mid = (ranges[:, :spatial, 0] + ranges[:, :spatial, 1]) / 2
        out[:, :spatial, 0], out[:, :spatial, 1] = mid - widest / 2, mid + widest / 2
    elif norm == "dataset":
        out[:] = np.asarray(limits, dtype=np.float32)[None]
    else:
        raise ValueError(f"unknown normalisation {norm!r}: choose one of {', '.join(NORMS)}")
    return out


def encode_streams(skel: skeletons.Skeleton, centred: list[np.ndarray], actors: list[int], size: int,
                   layout_name: str, persons: str, streams: tuple[str, ...] = ("joint",), fill: str = FILL_DEFAULT.value,
                   norm: str = NORM_DEFAULT.value, limits: np.ndarray | None = None,
                   parallel: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{stream: (images (N, 3, size, size) uint8, norm (N, 3, 2) float32)} for a batch of
    centred sequences, each stream through the same maps and quantisation kernel. fill: the
    single-actor bottom half of `stacked` (skeletons.row_map); norm, limits: the joint stream's
    scaling (joint_norm); parallel=False runs the one-thread kernels (DataLoader workers)."""
    col_idx, col_w = skeletons.column_map(skel, layout_name, size)
    taps = int(np.flatnonzero((col_w != 0).any(axis=0)).max()) + 1  # NTU needs 2 of the 4 tap slots: half the work
    col_idx, col_w = np.ascontiguousarray(col_idx[:, :taps]), np.ascontiguousarray(col_w[:, :taps])
    ranges_kernel, quantise_kernel = (value_ranges, quantise_batch) if parallel else (value_ranges_serial,
                                                                                      quantise_batch_serial)
    maps = [skeletons.row_map(len(s), a, size, persons, fill) for s, a in zip(centred, actors)]
    row_actor, row_f0, row_f1, row_w = (np.stack([m[k] for m in maps]) for k in range(4))
    row_w = row_w.astype(np.float32)
    offsets = np.zeros(len(centred) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in centred])
    joints = np.concatenate(centred).astype(np.float32, copy=False)
    used = skeletons.used_joints(skel)
    joint_ranges = np.empty((len(centred), 3, 2), dtype=np.float32)
    ranges_kernel(joints, offsets, row_actor, used, joint_ranges)
    out = {}
    for stream, values in streams_values(joints, offsets, streams, skel).items():
        if stream == "joint":
            scale = joint_norm(joint_ranges, norm, limits, skel.is_2d)
        else:
            scale = np.empty_like(joint_ranges)
            ranges_kernel(values, offsets, row_actor, used, scale)
            scale = symmetric_norm(scale, joint_ranges, skel.is_2d)
        images = np.empty((len(centred), 3, size, size), dtype=np.uint8)
        quantise_kernel(values, offsets, row_actor, row_f0, row_f1, row_w, col_idx, col_w, scale,
                        stream_power(stream, skel.is_2d), images)
        out[stream] = (images, scale)
    return out
