"""The difference-streams kernel (kernels/differences.py) against the plain NumPy expressions
it replaced, value for value (float32): random 3D sequences with absent actors and frames,
2D ones with undetected joints, several samples back to back (a motion never crosses a
sample's end), and each output alone or with the others."""
import numpy as np
import pytest
from s2i_cli.kernels.differences import difference_streams

from s2i_cli.encoder import skeletons


def numpy_streams(joints, offsets, parent, is_2d):
    """{stream: (F, 2, V, C)} as whole-array NumPy: mask, parent gather, products."""
    if is_2d:
        mask = joints[..., 2] > 0
    else:
        mask = np.broadcast_to(np.any(joints != 0, axis=(2, 3))[:, :, None], joints.shape[:3])

    def motion(values, present):
        out = np.zeros_like(values)
        out[:-1] = (values[1:] - values[:-1]) * (present[:-1] & present[1:])[..., None]
        out[offsets[1:] - 1] = 0.0
        return out

    both = mask & mask[:, :, parent]
    bone = (joints - joints[:, :, parent]) * both[..., None]
    out = {"bone": bone, "motion": motion(joints, mask), "bone-motion": motion(bone, both)}
    if is_2d:
        for values in out.values():
            values[..., 2] = joints[..., 2]
    return out


@pytest.mark.parametrize("skel", [skeletons.NTU25, skeletons.OPENPOSE18, skeletons.NWUCLA20])
def test_kernel_equals_numpy(skel):
    rng = np.random.default_rng(skel.num_joints)
    frames = np.array([5, 1, 12, 3])
    offsets = np.r_[0, np.cumsum(frames)]
    joints = rng.normal(size=(offsets[-1], 2, skel.num_joints, 3)).astype(np.float32)
    if skel.is_2d:
        joints[..., 2] = np.where(rng.uniform(size=joints.shape[:3]) < 0.3, 0.0, rng.uniform(size=joints.shape[:3]))
    else:
        joints[rng.uniform(size=joints.shape[:2]) < 0.3] = 0.0  # an actor absent from a frame
    want = numpy_streams(joints, offsets, skel.parent_index(), skel.is_2d)
    every = {s: np.empty_like(joints) for s in want}
    difference_streams(joints, offsets, skel.parent_index(), skel.is_2d, every["bone"], every["motion"],
                       every["bone-motion"])
    for stream, values in want.items():
        assert np.array_equal(every[stream], values), stream
        alone = {s: np.empty_like(joints) if s == stream else np.empty((0, *joints.shape[1:]), np.float32)
                 for s in want}
        difference_streams(joints, offsets, skel.parent_index(), skel.is_2d, alone["bone"], alone["motion"],
                           alone["bone-motion"])
        assert np.array_equal(alone[stream], values), stream
    assert not every["motion"][offsets[1:] - 1, ..., :2].any()  # each sample's last frame
