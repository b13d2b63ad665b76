"""The one S2I encoding kernel: gather joints through a column map and a per-sample row
map, blend, min-max normalise per channel, quantise to uint8 (docs/design.md §2)."""
import numpy as np
from numba import njit, prange


@njit(nogil=True, cache=True)
def _value_range(joints, base, frames, read_actor, used, c):
    lo = np.inf
    hi = -np.inf
    for f in range(frames):
        for a in range(2):
            if read_actor[a]:
                for j in range(joints.shape[2]):
                    if used[j]:
                        v = joints[base + f, a, j, c]
                        lo = min(lo, v)
                        hi = max(hi, v)
    return lo, hi


@njit(parallel=True, nogil=True, cache=True)
def encode_batch(joints, offsets, row_actor, row_f0, row_f1, row_w, col_idx, col_w, used, out, norm):
    """joints (F, 2, V, C) float32 holds every sample's frames; sample n is frames
    offsets[n]:offsets[n+1]. Row maps are (N, H) (frame indices relative to the sample),
    the column map (W, K). Writes out (N, 3, H, W) uint8 and norm (N, 3, 2) = per-channel
    (min, max) over the used joints of the actors the rows read."""
    n_samples, _, height, width = out.shape
    n_joints = joints.shape[2]
    for n in prange(n_samples):
        base = offsets[n]
        read_actor = np.zeros(2, dtype=np.bool_)
        for h in range(height):
            read_actor[row_actor[n, h]] = True
        blended = np.empty(n_joints, dtype=np.float64)  # one output row's joints, time-interpolated
        for c in range(3):
            lo, hi = _value_range(joints, base, offsets[n + 1] - base, read_actor, used, c)
            norm[n, c, 0] = lo
            norm[n, c, 1] = hi
            scale = 255.0 / (hi - lo) if hi > lo else 0.0
            for h in range(height):
                a = row_actor[n, h]
                f0 = base + row_f0[n, h]
                f1 = base + row_f1[n, h]
                rw = row_w[n, h]
                for j in range(n_joints):
                    blended[j] = (1.0 - rw) * joints[f0, a, j, c] + rw * joints[f1, a, j, c]
                for w in range(width):
                    v = 0.0
                    for k in range(col_idx.shape[1]):
                        v += col_w[w, k] * blended[col_idx[w, k]]
                    q = (v - lo) * scale
                    out[n, c, h, w] = np.uint8(min(max(np.floor(q + 0.5), 0.0), 255.0))
