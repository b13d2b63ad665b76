"""The one S2I encoding kernel: gather joints through a column map and a per-sample row
map, blend, normalise per channel, quantise to uint8 (docs/design.md §2).

`value_ranges` gives each sample's per-channel (min, max); s2i_cli/streams.py turns them
into each stream's (lo, hi) (min-max or isotropic for joints, fixed dataset limits, symmetric
for differences) and `quantise_batch` fills the images. Each has a one-thread twin
(`*_serial`) with the same per-sample body, for DataLoader worker processes, where an OpenMP
pool must not start (docs/design.md §7)."""
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


@njit(nogil=True, cache=True)
def _sample_ranges(joints, base, frames, row_actor, used, norm):
    """norm (3, 2) of one sample: per-channel (min, max) over the actors its rows read."""
    read_actor = np.zeros(2, dtype=np.bool_)
    for h in range(row_actor.shape[0]):
        read_actor[row_actor[h]] = True
    for c in range(3):
        lo, hi = _value_range(joints, base, frames, read_actor, used, c)
        norm[c, 0] = lo
        norm[c, 1] = hi


@njit(parallel=True, nogil=True, cache=True)
def value_ranges(joints, offsets, row_actor, used, norm):
    """norm (N, 3, 2) = per-channel (min, max) of sample n's frames offsets[n]:offsets[n+1],
    over the used joints of the actors its rows (row_actor, (N, H)) read."""
    for n in prange(norm.shape[0]):
        _sample_ranges(joints, offsets[n], offsets[n + 1] - offsets[n], row_actor[n], used, norm[n])


@njit(nogil=True, cache=True)
def value_ranges_serial(joints, offsets, row_actor, used, norm):
    for n in range(norm.shape[0]):
        _sample_ranges(joints, offsets[n], offsets[n + 1] - offsets[n], row_actor[n], used, norm[n])


@njit(nogil=True, cache=True)
def _level(v, lo, scale, p):
    """One value's grey level: linear in [lo, hi], or the signed power law of quantise_batch."""
    q = (v - lo) * scale
    if p != 1.0:
        u = min(max(q / 127.5 - 1.0, -1.0), 1.0)
        r = np.sqrt(abs(u)) if p == 0.5 else abs(u) ** p  # sqrt: ~5x faster than pow
        q = (np.sign(u) * r + 1.0) * 127.5
    return np.uint8(min(max(np.floor(q + 0.5), 0.0), 255.0))


@njit(nogil=True, cache=True)
def _quantise_sample(joints, base, row_actor, row_f0, row_f1, row_w, col_idx, col_w, norm, power, out):
    """One sample's (3, H, W) image; see quantise_batch. Row by row, the three channels together
    (each tap's index and weight read once for all three)."""
    _, height, width = out.shape
    n_joints = joints.shape[2]
    blended = np.empty((n_joints, 3), dtype=np.float64)  # one output row's joints, time-interpolated
    lo = np.empty(3, dtype=np.float64)
    scale = np.empty(3, dtype=np.float64)
    p = np.empty(3, dtype=np.float64)
    for c in range(3):
        lo[c] = norm[c, 0]
        hi = np.float64(norm[c, 1])
        scale[c] = 255.0 / (hi - lo[c]) if hi > lo[c] else 0.0
        p[c] = power[c]
    for h in range(height):
        a = row_actor[h]
        f0 = base + row_f0[h]
        f1 = base + row_f1[h]
        rw = row_w[h]
        for j in range(n_joints):
            for c in range(3):
                blended[j, c] = (1.0 - rw) * joints[f0, a, j, c] + rw * joints[f1, a, j, c]
        for w in range(width):
            v0 = 0.0
            v1 = 0.0
            v2 = 0.0
            for k in range(col_idx.shape[1]):
                t = col_w[w, k]
                j = col_idx[w, k]
                v0 += t * blended[j, 0]
                v1 += t * blended[j, 1]
                v2 += t * blended[j, 2]
            out[0, h, w] = _level(v0, lo[0], scale[0], p[0])
            out[1, h, w] = _level(v1, lo[1], scale[1], p[1])
            out[2, h, w] = _level(v2, lo[2], scale[2], p[2])


@njit(nogil=True, cache=True)
def _refuse_empty(offsets):
    """A sample with no frames would make its rows read frame -1 (the previous sample's last)."""
    for n in range(len(offsets) - 1):
        if offsets[n + 1] <= offsets[n]:
            raise ValueError("quantise_batch: a sample has no frames")


@njit(parallel=True, nogil=True, cache=True)
def quantise_batch(joints, offsets, row_actor, row_f0, row_f1, row_w, col_idx, col_w, norm, power, out):
    """joints (F, 2, V, C) float32 holds every sample's frames; sample n is frames
    offsets[n]:offsets[n+1]. Row maps are (N, H) (frame indices relative to the sample),
    the column map (W, K). Writes out (N, 3, H, W) uint8, channel c of sample n mapping
    [norm[n, c, 0], norm[n, c, 1]] to [0, 255] (a flat channel, lo == hi, to 0; values
    outside clip): linearly when power[c] == 1, else u = 2 t - 1 in [-1, 1] becomes
    sign(u) |u| ** power[c] first (a signed power law that gives small differences more grey levels).
    A sample with no frames has no rows to read: it is refused (ValueError) before anything is written."""
    _refuse_empty(offsets)
    for n in prange(out.shape[0]):
        _quantise_sample(joints, offsets[n], row_actor[n], row_f0[n], row_f1[n], row_w[n], col_idx, col_w,
                         norm[n], power, out[n])


@njit(nogil=True, cache=True)
def quantise_batch_serial(joints, offsets, row_actor, row_f0, row_f1, row_w, col_idx, col_w, norm, power, out):
    _refuse_empty(offsets)
    for n in range(out.shape[0]):
        _quantise_sample(joints, offsets[n], row_actor[n], row_f0[n], row_f1[n], row_w[n], col_idx, col_w,
                         norm[n], power, out[n])
