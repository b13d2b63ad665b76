"""The one S2I encoding kernel: gather joints through a column map and a per-sample row
map, blend, normalise per channel, quantise to uint8 (docs/design.md §2).

`value_ranges` gives each sample's per-channel (min, max); s2i_cli/streams.py turns them
into each stream's (lo, hi) (min-max for joints, symmetric for differences) and
`quantise_batch` fills the images."""
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
def value_ranges(joints, offsets, row_actor, used, norm):
    """norm (N, 3, 2) = per-channel (min, max) of sample n's frames offsets[n]:offsets[n+1],
    over the used joints of the actors its rows (row_actor, (N, H)) read."""
    for n in prange(norm.shape[0]):
        read_actor = np.zeros(2, dtype=np.bool_)
        for h in range(row_actor.shape[1]):
            read_actor[row_actor[n, h]] = True
        for c in range(3):
            lo, hi = _value_range(joints, offsets[n], offsets[n + 1] - offsets[n], read_actor, used, c)
            norm[n, c, 0] = lo
            norm[n, c, 1] = hi


@njit(parallel=True, nogil=True, cache=True)
def quantise_batch(joints, offsets, row_actor, row_f0, row_f1, row_w, col_idx, col_w, norm, power, out):
    """joints (F, 2, V, C) float32 holds every sample's frames; sample n is frames
    offsets[n]:offsets[n+1]. Row maps are (N, H) (frame indices relative to the sample),
    the column map (W, K). Writes out (N, 3, H, W) uint8, channel c of sample n mapping
    [norm[n, c, 0], norm[n, c, 1]] to [0, 255] (a flat channel, lo == hi, to 0): linearly
    when power[c] == 1, else u = 2 t - 1 in [-1, 1] becomes sign(u) |u| ** power[c] first
    (a signed power law that gives small differences more grey levels)."""
    n_samples, _, height, width = out.shape
    n_joints = joints.shape[2]
    for n in prange(n_samples):
        base = offsets[n]
        blended = np.empty(n_joints, dtype=np.float64)  # one output row's joints, time-interpolated
        for c in range(3):
            lo = np.float64(norm[n, c, 0])
            hi = np.float64(norm[n, c, 1])
            scale = 255.0 / (hi - lo) if hi > lo else 0.0
            p = np.float64(power[c])
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
                    if p != 1.0:
                        u = min(max(q / 127.5 - 1.0, -1.0), 1.0)
                        q = (np.sign(u) * np.abs(u) ** p + 1.0) * 127.5
                    out[n, c, h, w] = np.uint8(min(max(np.floor(q + 0.5), 0.0), 255.0))

