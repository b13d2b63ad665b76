"""Choose up to two actors from parsed NTU body records with the CTR-GCN/SGN rules
(formats.md §1.7): drop empty frames, length filter, spread filter, motion ranking,
non-overlapping bodies merged into an actor slot, all-zero frames removed.

Plain NumPy: a sample holds a handful of bodies, so this is cheap next to parsing."""
import numpy as np

NOISE_LEN_THRES = 11
NOISE_SPR_THRES1 = 0.8
NOISE_SPR_THRES2 = 0.69754


def _motion(joints: np.ndarray) -> float:
    """Sum over x, y, z of the variance of all the body's joint coordinates."""
    return float(np.sum(np.var(joints.reshape(-1, 3), axis=0)))


def _group_bodies(body_frame: np.ndarray, body_id: np.ndarray, joints: np.ndarray) -> tuple[list[dict], int]:
    """Per body ID (in order of first appearance): kept-frame interval and packed joints.
    Frame numbers count only frames that hold at least one body."""
    kept, renumbered = np.unique(body_frame, return_inverse=True)  # frames with >= 1 body, ascending
    ids, first, body_of = np.unique(body_id, return_index=True, return_inverse=True)
    out = []
    for k in np.argsort(first, kind="stable"):  # a few bodies: the loop is over bodies, not records
        rows = np.flatnonzero(body_of == k)
        start = int(renumbered[rows[0]])
        out.append({"id": int(ids[k]), "joints": joints[rows], "start": start, "end": start + len(rows) - 1})
    return out, len(kept)


def _valid_frames_by_spread(joints: np.ndarray) -> np.ndarray:
    j = joints.astype(np.float64)  # the published script compares in double precision
    x_spread = j[:, :, 0].max(axis=1) - j[:, :, 0].min(axis=1)
    y_spread = j[:, :, 1].max(axis=1) - j[:, :, 1].min(axis=1)
    return np.flatnonzero(x_spread <= NOISE_SPR_THRES1 * y_spread)


def _denoise(bodies: list[dict]) -> list[dict]:
    """Length filter, then spread filter; returns the survivors ranked by motion."""
    for body in bodies:
        body["motion"] = _motion(body["joints"])
    bodies = [b for b in bodies if len(b["joints"]) > NOISE_LEN_THRES]
    if len(bodies) <= 1:
        return bodies
    survivors = list(bodies)
    for body in bodies:
        if len(survivors) == 1:
            break
        valid = _valid_frames_by_spread(body["joints"])
        noise = len(body["joints"]) - len(valid)
        if noise == 0:
            continue
        if noise / len(body["joints"]) >= NOISE_SPR_THRES2:
            survivors.remove(body)
        else:
            body["motion"] = min(body["motion"], _motion(body["joints"][valid]))
    if len(survivors) == 1:
        return survivors
    return sorted(survivors, key=lambda b: b["motion"], reverse=True)


def select_actors(body_frame: np.ndarray, body_id: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, int]:
    """Parsed body records -> (T, 2, 25, 3) float32 sequence and the number of actors (1 or 2).

    Raises ValueError when no frame holds a body (or every body is filtered out)."""
    if len(body_id) == 0:
        raise ValueError("no body in any frame")
    bodies, num_frames = _group_bodies(body_frame, body_id, joints)
    seq = np.zeros((num_frames, 2, 25, 3), dtype=np.float32)
    if len(bodies) == 1:
        body = bodies[0]
        seq[body["start"]:body["end"] + 1, 0] = body["joints"]
        return seq, 1
    bodies = _denoise(bodies)
    if not bodies:
        raise ValueError("every body is shorter than 12 frames (length filter)")
    actor1 = bodies[0]
    start1, end1 = actor1["start"], actor1["end"]
    seq[start1:end1 + 1, 0] = actor1["joints"]
    start2, end2 = 0, 0  # the actor-2 slot starts as the dummy interval [0, 0]
    for body in bodies[1:]:
        start, end = body["start"], body["end"]
        if min(end1, end) - max(start1, start) <= 0:
            seq[start:end + 1, 0] = body["joints"]
            start1, end1 = min(start, start1), max(end, end1)
        elif min(end2, end) - max(start2, start) <= 0:
            seq[start:end + 1, 1] = body["joints"]
            start2, end2 = min(start, start2), max(end, end2)
    actors = 2 if len(bodies) > 1 and np.any(seq[:, 1] != 0) else 1
    if actors == 1:
        seq[:, 1] = 0
    return seq[np.any(seq != 0, axis=(1, 2, 3))], actors
