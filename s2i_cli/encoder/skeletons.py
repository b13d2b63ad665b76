"""Skeleton definitions, body parts, and the column and row maps that drive the one
encoding kernel (docs/design.md §2).

A column map says, for every output column, which joints it blends and with what
weights (up to four taps: a bilinear blend of two joints, each of which may be a virtual
joint averaged from two real ones). A row map says, for every output row, which actor
and which two frames it blends. New layouts are new maps, never new kernels."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..vocab import FILL_DEFAULT, Fill, Layout, Persons, values

PART_NAMES = ("torso", "left arm", "right arm", "left leg", "right leg")
LAYOUTS = values(Layout)
PERSONS = values(Persons)
FILLS = values(Fill)  # what `stacked` puts in the bottom half when there is one actor
PATCH = 16  # the `aligned` layout's band edges fall on this patch grid (every model here is patch 16)
TAPS = 4

JointRef = int | tuple[int, int]  # a real joint, or the mean of two (a virtual joint)


@dataclass(frozen=True)
class Skeleton:
    """A dataset's joint list in its native order, its five body parts (each ordered
    proximal to distal), the joint that coordinates are centred on, and its bones."""

    name: str
    joints: tuple[str, ...]
    parts: tuple[tuple[JointRef, ...], ...]
    centre: JointRef
    bones: tuple[tuple[int, int], ...]  # (child, parent), 0-based, for drawing
    channels: tuple[str, str, str] = ("x", "y", "z")
    parents: tuple[int, ...] = ()  # each joint's parent for the bone stream; () = from `bones`

    def __post_init__(self) -> None:
        assert len(self.parts) == len(PART_NAMES), self.name

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def is_2d(self) -> bool:
        return self.channels[2] == "confidence"

    def parent_index(self) -> np.ndarray:
        """Each joint's parent for the bone stream (the root is its own parent, so its bone
        is zero): `parents` when given, else `bones` read as (child, parent) pairs. Either
        way they must form one tree: every joint reaches the one root."""
        parent = np.array(self.parents or range(self.num_joints), dtype=np.int64)
        if not self.parents:
            for child, par in self.bones:
                if parent[child] != child:
                    raise ValueError(f"skeleton {self.name}: joint {child} has two parents in `bones`; give `parents`")
                parent[child] = par
        roots = np.flatnonzero(parent == np.arange(self.num_joints))
        for j in range(self.num_joints):
            k = j
            for _ in range(self.num_joints):
                k = parent[k]
            if len(roots) != 1 or k != roots[0]:
                raise ValueError(f"skeleton {self.name}: its bones are not one tree (joint {j} does not reach a single root)")
        return parent

    def arranged(self) -> tuple[JointRef, ...]:
        """The parts' joints side by side: the columns of the `concat` layout."""
        return tuple(ref for part in self.parts for ref in part)


NTU25 = Skeleton(
    name="ntu25",
    joints=("spine base", "spine mid", "neck", "head", "left shoulder", "left elbow", "left wrist",
            "left hand", "right shoulder", "right elbow", "right wrist", "right hand", "left hip",
            "left knee", "left ankle", "left foot", "right hip", "right knee", "right ankle",
            "right foot", "spine shoulder", "left hand tip", "left thumb", "right hand tip",
            "right thumb"),
    parts=((3, 2, 20, 1, 0), (4, 5, 6, 7, 21, 22), (8, 9, 10, 11, 23, 24), (12, 13, 14, 15),
           (16, 17, 18, 19)),
    centre=1,
    bones=((0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8),
           (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17),
           (19, 18), (21, 22), (22, 7), (23, 24), (24, 11)),
)

# Every other skeleton fills NTU25's part slots by meaning (torso: head, neck, spine-shoulder,
# spine-mid, spine-base; arm: shoulder, elbow, wrist, hand, hand-tip, thumb; leg: hip, knee,
# ankle, foot), so each part has the same number of refs as in NTU25 and the same body point
# lands in the same columns in both layouts. A slot with no real joint takes a virtual joint
# (the mean of two) or repeats the nearest real joint along its chain (a hand for the
# hand-tip and thumb, an ankle for the foot). docs/formats.md has the tables.

NWUCLA20 = Skeleton(
    name="nwucla20",  # Kinect v1 (formats.md §2): shoulder centre ~ Kinect v2 spine-shoulder
    joints=("hip centre", "spine", "shoulder centre", "head", "left shoulder", "left elbow", "left wrist",
            "left hand", "right shoulder", "right elbow", "right wrist", "right hand", "left hip", "left knee",
            "left ankle", "left foot", "right hip", "right knee", "right ankle", "right foot"),
    parts=((3, (3, 2), 2, 1, 0), (4, 5, 6, 7, 7, 7), (8, 9, 10, 11, 11, 11), (12, 13, 14, 15),
           (16, 17, 18, 19)),
    centre=1,  # spine (CTR-GCN centres NW-UCLA on it too)
    bones=((0, 1), (1, 2), (3, 2), (4, 2), (5, 4), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9), (11, 10),
           (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18)),
)

OPENPOSE18 = Skeleton(
    name="openpose18",  # OpenPose COCO-18, 2D (formats.md §4); its neck is the shoulders' midpoint
    joints=("nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow",
            "left wrist", "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle",
            "right eye", "left eye", "right ear", "left ear"),
    # spine-mid: the midpoint of a torso diagonal (right shoulder, left hip) is the torso's centre
    parts=((0, (0, 1), 1, (2, 11), (8, 11)), (5, 6, 7, 7, 7, 7), (2, 3, 4, 4, 4, 4), (11, 12, 13, 13),
           (8, 9, 10, 10)),
    centre=1,  # the neck: the joint OpenPose detects most often (hips are often out of frame)
    bones=((4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2), (5, 1),
           (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)),
    channels=("x", "y", "confidence"),
)

COCO17 = Skeleton(
    name="coco17",  # COCO keypoints, 2D (HRNet in pyskl's files; formats.md "Importers")
    joints=("nose", "left eye", "right eye", "left ear", "right ear", "left shoulder", "right shoulder",
            "left elbow", "right elbow", "left wrist", "right wrist", "left hip", "right hip", "left knee",
            "right knee", "left ankle", "right ankle"),
    # no neck joint: neck and spine-shoulder are both the shoulders' midpoint (OpenPose's neck);
    # spine-mid: the midpoint of the torso diagonal (right shoulder, left hip), as for OpenPose
    parts=((0, (5, 6), (5, 6), (6, 11), (11, 12)), (5, 7, 9, 9, 9, 9), (6, 8, 10, 10, 10, 10), (11, 13, 15, 15),
           (12, 14, 16, 16)),
    centre=(5, 6),  # the shoulders' midpoint: OpenPose-18's neck, Kinetics' centre
    # pyskl's `coco` graph (child, parent), rooted at the nose
    bones=((15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6), (5, 0),
           (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)),
    channels=("x", "y", "confidence"),
)

LCRNET13 = Skeleton(
    name="lcrnet13",  # LCR-Net 13 joints, pose3d (formats.md §5)
    joints=("right ankle", "left ankle", "right knee", "left knee", "right hip", "left hip", "right wrist",
            "left wrist", "right elbow", "left elbow", "right shoulder", "left shoulder", "head"),
    # no neck joint: neck and spine-shoulder are both the shoulders' midpoint
    parts=((12, (10, 11), (10, 11), (10, 5), (4, 5)), (11, 9, 7, 7, 7, 7), (10, 8, 6, 6, 6, 6), (5, 3, 1, 1),
           (4, 2, 0, 0)),
    centre=(10, 5),  # spine-mid: the midpoint of the torso diagonal (right shoulder, left hip)
    bones=((0, 2), (2, 4), (1, 3), (3, 5), (4, 5), (4, 10), (5, 11), (10, 11), (6, 8), (8, 10), (7, 9),
           (9, 11), (12, 10), (12, 11)),
    # the drawing bones hold two loops (hips, shoulders); the bone stream's tree hangs every
    # limb from its shoulder and both shoulders from the head, the one joint on the midline
    parents=(2, 3, 4, 5, 10, 11, 8, 9, 10, 11, 12, 12, 12),
)

SKELETONS = {s.name: s for s in (NTU25, NWUCLA20, OPENPOSE18, COCO17, LCRNET13)}  # the store's `skeleton` attr -> definition


def find_skeleton(header: Any) -> Skeleton | None:
    """The Skeleton definition a store was made with (for its column map and body parts),
    found by name in `SKELETONS`; None for an unknown one or another joint count. `header`: a
    store header (store.StoreHeader; the encoder reads its `skeleton` and `joint_names`)."""
    skel = SKELETONS.get(header.skeleton) if header.skeleton is not None else None
    if skel is None or skel.num_joints != len(header.joint_names or skel.joints):
        return None
    return skel


def resize_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weight of linear resampling n_in -> n_out, exactly as
    torch.nn.functional.interpolate(mode="bilinear", align_corners=False) computes them:
    out[i] = (1 - w) * in[i0] + w * in[i1]."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = np.where(i1 > i0, src - i0, 0.0)
    return i0, i1, w


def band_edges(width: int, parts: int = len(PART_NAMES), align: int = 1) -> np.ndarray:
    """Column edges of the `parts` layout: bands as equal as integer widths allow. With align > 1
    (the `aligned` layout) every edge is a multiple of `align` and the four limbs get equal bands,
    the torso the rest (224 px, align 16: 32/48/48/48/48), so part masking hides whole patches
    and a mirrored image swaps equal bands."""
    if align <= 1:
        return np.round(np.linspace(0, width, parts + 1)).astype(np.int64)
    cells = width // align
    limb = (cells - 1) // (parts - 1)
    if width % align or limb < 1:
        raise ValueError(f"the aligned layout needs a width that is a multiple of {align} and at least "
                         f"{parts * align} px; got {width}")
    widths = [cells - limb * (parts - 1)] + [limb] * (parts - 1)
    return np.r_[0, np.cumsum(widths)].astype(np.int64) * align


def part_edges(skeleton: Skeleton, layout: str, width: int) -> np.ndarray:
    """(6,) column edges of the five parts in an image of `layout` (concat: in proportion to
    each part's joint count)."""
    if layout == "parts":
        return band_edges(width)
    if layout == "aligned":
        return band_edges(width, align=PATCH)
    if layout == "concat":
        counts = np.r_[0, np.cumsum([len(p) for p in skeleton.parts])]
        return np.round(counts / counts[-1] * width).astype(np.int64)
    raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")


def patch_column_parts(skeleton: Skeleton, layout: str, width: int, patch: int = PATCH) -> list[int]:
    """The body part (0..4, PART_NAMES) under the centre of every patch column: what part masking hides."""
    centres = np.arange(width // patch) * patch + patch // 2
    return (np.searchsorted(part_edges(skeleton, layout, width), centres, side="right") - 1).tolist()


def mirror_joints(skeleton: Skeleton) -> np.ndarray:
    """(V,) joint permutation that swaps left and right: each "left X" joint with "right X", by
    name, so the face joints (eyes, ears) swap as well as the limbs; midline joints stay. Every
    skeleton fills the arm (leg) slots of `parts` in the same order, so the limb slots swap too."""
    index = {name: j for j, name in enumerate(skeleton.joints)}
    perm = np.arange(skeleton.num_joints)
    for j, name in enumerate(skeleton.joints):
        side, _, rest = name.partition(" ")
        other = {"left": "right", "right": "left"}.get(side)
        if other is not None:
            perm[j] = index[f"{other} {rest}"]
    return perm


def _taps(ref: JointRef) -> list[tuple[int, float]]:
    return [(ref, 1.0)] if isinstance(ref, int) else [(ref[0], 0.5), (ref[1], 0.5)]


def _resample_refs(refs: tuple[JointRef, ...], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Column map resizing a row of joint refs to `width` columns."""
    idx = np.zeros((width, TAPS), dtype=np.int32)
    wt = np.zeros((width, TAPS), dtype=np.float32)
    i0, i1, w = resize_weights(len(refs), width)
    for col in range(width):
        taps = [(j, (1.0 - w[col]) * t) for j, t in _taps(refs[i0[col]])]
        taps += [(j, w[col] * t) for j, t in _taps(refs[i1[col]])]
        for k, (j, t) in enumerate(taps):
            idx[col, k], wt[col, k] = j, t
    return idx, wt


@lru_cache(maxsize=64)
def column_map(skeleton: Skeleton, layout: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(W, 4) joint indices and (W, 4) weights; built once per (skeleton, layout, width)."""
    if layout == "concat":
        return _resample_refs(skeleton.arranged(), width)
    if layout in ("parts", "aligned"):
        edges = part_edges(skeleton, layout, width)
        maps = [_resample_refs(part, int(b - a)) for part, a, b in zip(skeleton.parts, edges[:-1], edges[1:])]
        return np.concatenate([m[0] for m in maps]), np.concatenate([m[1] for m in maps])
    raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")


def used_joints(skeleton: Skeleton) -> np.ndarray:
    """Mask of the joints any column reads: the ones that set an image's value range."""
    mask = np.zeros(skeleton.num_joints, dtype=np.bool_)
    for ref in skeleton.arranged():
        for j, _ in _taps(ref):
            mask[j] = True
    return mask


def actor_rows(height: int, persons: str) -> list[tuple[int, int]]:
    """The image's row bands, one per actor slot, as (first row, end row): `stacked` puts
    actor 1 in the top half and actor 2 in the bottom half, `main` gives actor 1 every row."""
    if persons == "main":
        return [(0, height)]
    if persons == "stacked":
        return [(0, height // 2), (height // 2, height)]
    raise ValueError(f"unknown persons mode {persons!r}: choose one of {', '.join(PERSONS)}")


def row_map(frames: int, actors: int, height: int, persons: str, fill: str = FILL_DEFAULT.value) -> tuple[np.ndarray, ...]:
    """Per output row: actor, two source frames, weight. Each band of `actor_rows` holds
    every frame. With one actor the bottom band of `stacked` is, by `fill`, actor 1 again
    (`repeat`) or the empty second slot, every joint at the origin (`zero`, as CTR-GCN's
    NTU60 script pads an absent body; its NTU120 script repeats the actor): a repeat gives
    every masked patch an identical twin to copy (masking.py masks it alike)."""
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}: choose one of {', '.join(FILLS)}")
    parts = []
    for slot, (first, end) in enumerate(actor_rows(height, persons)):
        f0, f1, w = resize_weights(frames, end - first)
        parts.append((np.full(end - first, slot if actors > 1 or fill == "zero" else 0, dtype=np.int64), f0, f1, w))
    return tuple(np.concatenate(column) for column in zip(*parts))


def centre_sequence(seq: np.ndarray, actors: int, centre: JointRef, is_2d: bool) -> np.ndarray:
    """Subtract the main actor's centre joint in its first valid frame from every present
    joint (x, y, z; for 2D formats x and y only); absent (all-zero) actor frames stay zero.

    2D formats are masked per joint: a joint with confidence 0 is missing and stays (0, 0);
    the origin is the centre joint in the first frame where it was detected (else the mean
    of the joints detected in the main actor's first frame)."""
    seq = seq.astype(np.float32, copy=True)
    if is_2d:
        return _centre_2d(seq, actors, centre)
    dims = 3
    present = np.any(seq[..., :dims] != 0, axis=(2, 3))  # (T, M)
    valid = np.flatnonzero(present[:, 0])
    if len(valid) == 0:
        return seq
    ref = seq[valid[0], 0].copy()  # a copy: the origin must not change as actor 1 is shifted
    origin = ref[centre, :dims] if isinstance(centre, int) else 0.5 * (ref[centre[0], :dims] + ref[centre[1], :dims])
    for m in range(min(actors, seq.shape[1])):
        seq[present[:, m], m, :, :dims] -= origin
    return seq


def _centre_2d(seq: np.ndarray, actors: int, centre: JointRef) -> np.ndarray:
    detected = seq[..., 2] > 0  # (T, M, V)
    main = detected[:, 0]
    if not main.any():
        return seq
    refs = [centre] if isinstance(centre, int) else list(centre)
    has_centre = np.flatnonzero(main[:, refs].all(axis=1))
    if len(has_centre):
        origin = seq[has_centre[0], 0, refs, :2].mean(axis=0)
    else:
        first = np.flatnonzero(main.any(axis=1))[0]
        origin = seq[first, 0, main[first], :2].mean(axis=0)
    for m in range(min(actors, seq.shape[1])):
        seq[:, m, :, :2][detected[:, m]] -= origin
    return seq
