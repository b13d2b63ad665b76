"""Bone, motion and bone-motion images (s2i_cli/encoder/streams.py) against an independent NumPy
reference computed from the stored skeletons of real files (NTU single- and two-person,
NW-UCLA, Kinetics): the same resize as the joint stream (torch's bilinear interpolation),
the documented scaling, within one quantisation step; and every image decodes back."""

import numpy as np
import pytest
import torch

from s2i_cli import store
from s2i_cli.convert.flow import convert
from s2i_cli.encoder import skeletons, streams
from s2i_cli.encoder.pixels import decode_image
from tests.helpers import shared_data

SIZE = 32

# Bone pairs as the published code lists them (1-based (child, parent); the root pairs with
# itself or is absent): CTR-GCN graph/ntu_rgb_d.py, graph/ucla.py, ST-GCN's OpenPose layout.
NTU_PAIRS = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
             (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23),
             (21, 21), (23, 8), (24, 25), (25, 12)]
UCLA_PAIRS = [(1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11),
              (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19)]
OPENPOSE_PAIRS = [(5, 4), (4, 3), (8, 7), (7, 6), (14, 13), (13, 12), (11, 10), (10, 9), (12, 6), (9, 3), (6, 2),
                  (3, 2), (1, 2), (16, 1), (15, 1), (18, 16), (17, 15)]


def parents_from(pairs: list[tuple[int, int]], joints: int) -> list[int]:
    parent = list(range(joints))
    for child, par in pairs:
        parent[child - 1] = par - 1
    return parent


# ------------------------------------------------------------------ the reference

def present_mask(seq: np.ndarray, is_2d: bool) -> np.ndarray:
    """(T, 2, V): detected 2D joints; for 3D, every joint of an actor present in the frame."""
    if is_2d:
        return seq[..., 2] > 0
    mask = np.zeros(seq.shape[:3], dtype=bool)
    for t in range(seq.shape[0]):
        for m in range(2):
            mask[t, m, :] = bool(np.any(seq[t, m] != 0))
    return mask


def reference_stream(seq: np.ndarray, stream: str, parent: list[int], is_2d: bool) -> np.ndarray:
    """One stream of one sample, joint by joint and frame by frame."""
    spatial = 2 if is_2d else 3
    ok = present_mask(seq, is_2d)
    values = seq.astype(np.float64).copy()
    if stream in ("bone", "bone-motion"):
        bone = np.zeros_like(values)
        bone_ok = np.zeros_like(ok)
        for j, p in enumerate(parent):
            bone_ok[:, :, j] = ok[:, :, j] & ok[:, :, p]
            bone[:, :, j, :spatial] = np.where(bone_ok[:, :, j, None], values[:, :, j, :spatial] - values[:, :, p, :spatial], 0)
        values[..., :spatial], ok = bone[..., :spatial], bone_ok
    if stream in ("motion", "bone-motion"):
        moved = np.zeros_like(values)
        for t in range(len(values) - 1):
            both = ok[t] & ok[t + 1]
            moved[t, ..., :spatial] = np.where(both[..., None], values[t + 1, ..., :spatial] - values[t, ..., :spatial], 0)
        values[..., :spatial] = moved[..., :spatial]
    return values


def resized(skel: skeletons.Skeleton, values: np.ndarray, actors: int) -> np.ndarray:
    """(3, SIZE, SIZE) of the `concat` layout, `stacked` persons: each actor's arranged
    (T, columns) matrix resized by torch into its half of the rows."""
    halves = []
    for m, rows in ((0, SIZE // 2), (1 if actors > 1 else 0, SIZE - SIZE // 2)):
        cols = [values[:, m, r] if isinstance(r, int) else 0.5 * (values[:, m, r[0]] + values[:, m, r[1]])
                for r in skel.arranged()]
        matrix = torch.from_numpy(np.stack(cols, axis=1)).permute(2, 0, 1)[None]  # (1, C, T, columns)
        halves.append(torch.nn.functional.interpolate(matrix, size=(rows, SIZE), mode="bilinear",
                                                      align_corners=False)[0].numpy())
    return np.concatenate(halves, axis=1)


def reference_image(skel: skeletons.Skeleton, seq: np.ndarray, actors: int, stream: str, parent: list[int]) -> np.ndarray:
    """Float pixel values (3, SIZE, SIZE) before rounding: the scaling of docs/design.md §2."""
    is_2d = skel.is_2d
    spatial = 2 if is_2d else 3
    used = sorted({j for r in skel.arranged() for j in ([r] if isinstance(r, int) else r)})
    read = [0, 1] if actors > 1 else [0]
    joint_vals = seq[:, read][:, :, used]
    values = reference_stream(seq, stream, parent, is_2d)
    vals = values[:, read][:, :, used]
    image = resized(skel, values, actors)
    q = np.empty_like(image)
    if stream == "joint":
        lo, hi = vals.min(axis=(0, 1, 2)), vals.max(axis=(0, 1, 2))
        for c in range(3):
            q[c] = (image[c] - lo[c]) * (255.0 / (hi[c] - lo[c]) if hi[c] > lo[c] else 0.0)
        return q
    extent = max(joint_vals[..., c].max() - joint_vals[..., c].min() for c in range(spatial))
    s = max(np.abs(vals[..., :spatial]).max(), 0.05 * extent) or 1.0
    power = 0.5 if "motion" in stream else 1.0
    for c in range(spatial):
        u = np.clip(image[c] / s, -1, 1)
        q[c] = (np.sign(u) * np.abs(u) ** power + 1.0) * 127.5
    if is_2d:
        lo, hi = vals[..., 2].min(), vals[..., 2].max()
        q[2] = (image[2] - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)
    return q


# ------------------------------------------------------------------ the tests

CASES = {  # dataset, raw folder, file names (None: all), skeleton, published parents
    "ntu": ("ntu120", ("ntu",), ["S001C001P001R001A001", "S001C001P001R001A050", "S017C003P020R002A055"],
            skeletons.NTU25, parents_from(NTU_PAIRS, 25)),
    "nwucla": ("nwucla", ("nwucla",), None, skeletons.NWUCLA20, parents_from(UCLA_PAIRS, 20)),
    "kinetics": ("kinetics", ("kinetics_skeleton",), None, skeletons.OPENPOSE18, parents_from(OPENPOSE_PAIRS, 18)),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def stored(request, tmp_path_factory):
    dataset, raw, names, skel, parent = CASES[request.param]
    out = tmp_path_factory.mktemp(request.param) / "s.zarr"
    convert(dataset, shared_data(*raw), out, size=SIZE, layout_name="concat", persons="stacked", norm="channel",
            progress=False)  # the reference scales the joint stream per channel
    root = store.open_store(out)
    all_names = [str(n) for n in root["name"][:]]
    index = [all_names.index(n) for n in names] if names else list(range(len(all_names)))
    return root, index, skel, parent


def test_bone_trees_are_the_published_ones(stored):
    _, _, skel, parent = stored
    assert skel.parent_index().tolist() == parent


def test_streams_equal_the_reference_within_one_step(stored):
    root, index, skel, parent = stored
    seqs = [store.read_skeleton(root, i) for i in index]
    actors = [int(root["actors"][i]) for i in index]
    if skel is skeletons.NTU25:
        assert actors == [1, 2, 2]  # one single-person and two two-person samples
    encoded = streams.encode_streams(skel, seqs, actors, SIZE, "concat", "stacked", streams.STREAMS,
                                     norm="channel")
    np.testing.assert_array_equal(encoded["joint"][0], root["images"][index])  # the stored joint images
    for stream in streams.STREAMS:
        images, norm = encoded[stream]
        for k, (seq, a) in enumerate(zip(seqs, actors)):
            ref = reference_image(skel, seq, a, stream, parent)
            diff = np.abs(images[k].astype(np.float64) - ref)
            assert diff.max() <= 1.0 + 1e-6, (stream, k, diff.max())
            decoded = decode_image(images[k], norm[k], streams.stream_power(stream, skel.is_2d))
            requantised = decoded[None]  # decode -> quantise gives the same image back
            power = streams.stream_power(stream, skel.is_2d)
            for c in range(3):
                lo, hi = norm[k, c]
                t = (requantised[0, c] - lo) / (hi - lo) if hi > lo else np.zeros_like(requantised[0, c])
                if power[c] != 1:
                    u = 2 * t - 1
                    t = (np.sign(u) * np.abs(u) ** power[c] + 1) / 2
                assert np.abs(np.floor(t * 255 + 0.5) - images[k, c]).max() <= (0 if hi > lo else 255)
        if stream != "joint":  # a difference stream is symmetric around zero on the spatial channels
            spatial = 2 if skel.is_2d else 3
            assert np.all(norm[:, :spatial, 0] == -norm[:, :spatial, 1]) and np.all(norm[:, :spatial, 1] > 0)


def test_last_frame_of_motion_and_root_bone_are_zero():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 2, 25, 3)).astype(np.float32), rng.normal(size=(3, 2, 25, 3)).astype(np.float32)
    joints, offsets = np.concatenate([a, b]), np.array([0, 5, 8])
    motion = streams.stream_values(joints, offsets, "motion", skeletons.NTU25)
    np.testing.assert_allclose(motion[:4], a[1:] - a[:-1], atol=1e-6)
    assert np.all(motion[4] == 0) and np.all(motion[7] == 0)  # the last frame of each sample
    np.testing.assert_allclose(motion[5:7], b[1:] - b[:-1], atol=1e-6)
    bone = streams.stream_values(joints, offsets, "bone", skeletons.NTU25)
    assert np.all(bone[:, :, 20] == 0)  # spine shoulder, the root
    np.testing.assert_allclose(bone[:, :, 3], joints[:, :, 3] - joints[:, :, 2], atol=1e-6)  # head - neck


def test_missing_ends_give_zero_differences_and_2d_keeps_confidence():
    seq = np.zeros((3, 2, 18, 3), dtype=np.float32)
    seq[:, 0, :, :2] = np.arange(3 * 18 * 2, dtype=np.float32).reshape(3, 18, 2)
    seq[:, 0, :, 2] = 0.9
    seq[1, 0, 4, :] = 0  # right wrist missing in frame 1
    offsets = np.array([0, 3])
    bone = streams.stream_values(seq, offsets, "bone", skeletons.OPENPOSE18)
    motion = streams.stream_values(seq, offsets, "motion", skeletons.OPENPOSE18)
    assert np.all(bone[1, 0, 4, :2] == 0)  # its own bone
    assert np.all(motion[0, 0, 4, :2] == 0) and np.all(motion[1, 0, 4, :2] == 0)  # into and out of frame 1
    assert np.all(bone[:, 1, :, :2] == 0) and np.all(motion[:, 1, :, :2] == 0)  # an absent actor
    for values in (bone, motion):
        np.testing.assert_array_equal(values[..., 2], seq[..., 2])  # confidence, not a difference


def test_near_static_clip_stays_near_grey():
    """Sensor noise alone must not fill the grey range: the floor bounds the contrast."""
    rng = np.random.default_rng(1)
    pose = rng.uniform(-0.8, 0.8, size=(1, 1, 25, 3)).astype(np.float32)
    seq = np.zeros((60, 2, 25, 3), dtype=np.float32)
    seq[:, :1] = pose + rng.normal(0, 0.001, size=(60, 1, 25, 3)).astype(np.float32)  # 1 mm jitter
    images, _ = streams.encode_streams(skeletons.NTU25, [seq], [1], SIZE, "parts", "stacked", ("motion",))["motion"]
    assert np.abs(images.astype(int) - 128).max() < 64


def test_parse_streams():
    assert streams.parse_streams("joint, bone,joint") == ("joint", "bone")
    with pytest.raises(streams.StreamError, match="unknown stream bones: choose from joint, bone"):
        streams.parse_streams("joint,bones")


def test_every_skeleton_has_one_bone_tree():
    assert len(skeletons.SKELETONS) >= 4
    for skel in skeletons.SKELETONS.values():
        parent = skel.parent_index()
        assert len(parent) == skel.num_joints
        drawn = {frozenset(b) for b in skel.bones}
        assert all(frozenset((j, p)) in drawn for j, p in enumerate(parent) if j != p), skel.name
    broken = skeletons.Skeleton(name="loop", joints=("a", "b", "c"), parts=((0,), (1,), (2,), (0,), (1,)), centre=0,
                             bones=((0, 1), (1, 2), (2, 0)))
    with pytest.raises(ValueError, match="not one tree"):
        broken.parent_index()
