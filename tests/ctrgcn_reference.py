"""A direct transcription, for testing, of the published CTR-GCN/SGN actor selection
(data/ntu*/get_raw_skes_data.py + get_raw_denoised_data.py, as described in
formats.md §1.7), written over the plain reader's output with dicts and lists the way the
original scripts are, independent of s2i's vectorised implementation."""
from pathlib import Path

import numpy as np

from tests.ntu_reference import read_skeleton


def raw_bodies(path):
    frames = read_skeleton(path)
    bodies, idx = {}, 0
    for bodies_in_frame in frames:
        if not bodies_in_frame:
            continue  # frames without bodies are dropped and not counted
        for body in bodies_in_frame:
            joints = body["joints"][:, :3].astype(np.float32)
            if body["id"] not in bodies:
                bodies[body["id"]] = {"joints": joints, "interval": [idx]}
            else:
                bodies[body["id"]]["joints"] = np.vstack((bodies[body["id"]]["joints"], joints))
                bodies[body["id"]]["interval"].append(idx)
        idx += 1
    for b in bodies.values():
        b["motion"] = np.sum(np.var(b["joints"], axis=0))
    return bodies, idx


def denoise(bodies):
    for ident in list(bodies):
        if len(bodies[ident]["interval"]) <= 11:
            del bodies[ident]
    if len(bodies) == 1:
        return list(bodies.items())
    for ident in list(bodies):
        if len(bodies) == 1:
            break
        pts = bodies[ident]["joints"].reshape(-1, 25, 3).astype(np.float64)
        valid = [i for i in range(len(pts)) if pts[i, :, 0].max() - pts[i, :, 0].min() <= 0.8 * (pts[i, :, 1].max() - pts[i, :, 1].min())]
        noise = len(pts) - len(valid)
        if noise == 0:
            continue
        if noise / float(len(pts)) >= 0.69754:
            del bodies[ident]
        else:
            j = bodies[ident]["joints"].reshape(-1, 25, 3)[valid].reshape(-1, 3)
            bodies[ident]["motion"] = min(bodies[ident]["motion"], np.sum(np.var(j, axis=0)))
    return sorted(bodies.items(), key=lambda kv: kv[1]["motion"], reverse=True)


def two_actors(path):
    """(T, 150) float32 joints like CTR-GCN's denoised output, all-zero frames removed."""
    bodies, num_frames = raw_bodies(path)
    if len(bodies) == 1:
        body = next(iter(bodies.values()))
        out = np.zeros((num_frames, 75), dtype=np.float32)
        s = body["interval"][0]
        out[s:s + len(body["interval"])] = body["joints"].reshape(-1, 75)
        return out
    ranked = denoise(bodies)
    out = np.zeros((num_frames, 150), dtype=np.float32)
    _, a1 = ranked[0]
    s1 = a1["interval"][0]
    e1 = s1 + len(a1["interval"]) - 1
    out[s1:e1 + 1, :75] = a1["joints"].reshape(-1, 75)
    s2, e2 = 0, 0
    for _, b in ranked[1:]:
        s = b["interval"][0]
        e = s + len(b["interval"]) - 1
        if min(e1, e) - max(s1, s) <= 0:
            out[s:e + 1, :75] = b["joints"].reshape(-1, 75)
            s1, e1 = min(s, s1), max(e, e1)
        elif min(e2, e) - max(s2, s) <= 0:
            out[s:e + 1, 75:] = b["joints"].reshape(-1, 75)
            s2, e2 = min(s, s2), max(e, e2)
    return out[np.any(out != 0, axis=1)]


def ctrgcn_rows(path: Path) -> np.ndarray:
    """CTR-GCN's seq_transformation of one raw file: denoised (T, 150), centred on body 1's
    spine-mid in its first frame, body-2 frames where it is absent kept at zero, padded to 300."""
    joints = two_actors(path)
    if joints.shape[1] == 75:
        joints = np.hstack([joints, np.zeros_like(joints)])
    missing = [np.all(joints[:, k:k + 75] == 0, axis=1) for k in (0, 75)]
    first = np.flatnonzero(~missing[0])[0]
    joints = joints - np.tile(joints[first, 3:6], 50)
    for k, gone in zip((0, 75), missing):
        joints[gone, k:k + 75] = 0
    out = np.zeros((300, 150), np.float32)
    out[:len(joints)] = joints
    return out
