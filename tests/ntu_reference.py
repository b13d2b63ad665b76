"""A plain-Python reader of NTU `.skeleton` files: the slow, obviously-correct reference
that the Numba parser is tested against (formats.md §1.2)."""
from pathlib import Path

import numpy as np


def read_skeleton(path: Path) -> list[list[dict]]:
    """Return frames; each frame a list of bodies {"id": int, "joints": (25, 12) float64}."""
    lines = Path(path).read_text().split("\n")
    lines = [ln.strip() for ln in lines if ln.strip()]
    pos = 0
    frame_count = int(lines[pos]); pos += 1
    frames = []
    for _ in range(frame_count):
        body_count = int(lines[pos]); pos += 1
        bodies = []
        for _ in range(body_count):
            info = lines[pos].split(); pos += 1
            joint_count = int(lines[pos]); pos += 1
            joints = np.array([[float(v) for v in lines[pos + j].split()] for j in range(joint_count)])
            pos += joint_count
            bodies.append({"id": int(info[0]), "joints": joints})
        frames.append(bodies)
    return frames
