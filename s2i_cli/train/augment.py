"""Skeleton-space augmentation (docs/design.md §7): the store keeps each sample's selected,
centred skeleton, so the loader can rotate, scale, crop in time and mirror the skeleton itself
and re-encode it with the Numba kernel on the fly, instead of distorting finished images.

- rotate: random angles in [-0.3, 0.3] rad about x, y and z (2D formats: about z only), as MAMP;
- scale:  each coordinate axis by a random factor in [0.9, 1.1] (a no-op under per-sample
          `channel` normalisation, which rescales every axis anyway);
- crop:   a random contiguous 50-100 % of the frames (MAMP's valid crop), resized to the full
          height by the row map as every sequence is;
- mirror: with probability 0.5, every "left X" joint swaps with "right X" (limbs and face) and x
          is negated.

Every draw comes from (seed, epoch, sample index), so an epoch's images are reproducible and a
resumed run sees the same ones. Absent joints and actors are all-zero and stay zero (every op
is linear about the origin)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..encoder import skeletons
from ..encoder.encoding import Encoding, encode
from ..vocab import Augment, parse_augment, values  # noqa: F401 - parse_augment: its home is vocab

AUGMENTS = values(Augment)
ROTATE = 0.3  # rad, each axis
SCALE = 0.1
CROP = (0.5, 1.0)
MIN_CROP_FRAMES = 64  # CTR-GCN's valid_crop_resize keeps min(max(floor(p * T), 64), T) frames


def rotation(angles: np.ndarray) -> np.ndarray:
    """R = Rz Ry Rx for angles (ax, ay, az) in radians."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def augment_sequence(seq: np.ndarray, ops: Sequence[str], rng: np.random.Generator,
                     skeleton: skeletons.Skeleton) -> np.ndarray:
    """One centred (T, 2, V, C) sequence through `ops`; returns a new float32 array."""
    seq = np.array(seq, dtype=np.float32, copy=True)
    dims = 2 if skeleton.is_2d else 3  # a 2D format's third channel is a confidence, never moved
    if "crop" in ops and len(seq) > 1:  # at least MIN_CROP_FRAMES where the clip has them, as CTR-GCN and MAMP
        length = max(min(MIN_CROP_FRAMES, len(seq)), int(round(rng.uniform(*CROP) * len(seq))))
        start = int(rng.integers(0, len(seq) - length + 1))
        seq = seq[start:start + length]
    linear = np.eye(dims)
    if "rotate" in ops:
        angles = rng.uniform(-ROTATE, ROTATE, 3)
        linear = (rotation(angles) if dims == 3 else rotation(np.array([0.0, 0.0, angles[2]]))[:2, :2]) @ linear
    if "scale" in ops:
        linear = np.diag(rng.uniform(1 - SCALE, 1 + SCALE, dims)) @ linear
    if "mirror" in ops and rng.uniform() < 0.5:
        seq = seq[:, :, skeletons.mirror_joints(skeleton)]
        linear = np.diag([-1.0] + [1.0] * (dims - 1)) @ linear
    if not np.array_equal(linear, np.eye(dims)):
        seq[..., :dims] = seq[..., :dims] @ linear.T.astype(np.float32)
    return seq


def encode_augmented(seqs: Sequence[np.ndarray], actors: Sequence[int], indices: Sequence[int], enc: Encoding,
                     ops: Sequence[str], seed: int, epoch: int) -> np.ndarray:
    """Images (N, 3, S, S) uint8 of stored sequences, each augmented from (seed, epoch, index),
    encoded on one thread (this runs in DataLoader workers)."""
    if ops:
        seqs = [augment_sequence(s, ops, np.random.default_rng([seed, epoch, int(i), 11]), enc.skeleton)
                for s, i in zip(seqs, indices)]
    return encode(seqs, actors, enc, parallel=False)[0]
