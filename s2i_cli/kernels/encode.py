"""The one S2I encoding kernel: gather joints through a column map and a per-sample row
map, blend, normalise per channel, quantise to uint8 (docs/design.md §2).

`value_ranges` gives each sample's per-channel (min, max); s2i_cli/encoder/streams.py turns them
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


# float32 constants: arithmetic stays in float32 (a float64 literal would promote it). The
# inputs are float32, and float32 halves the block's bytes and doubles the vector width:
# 1.3x (linear) and 1.6x (square root) faster than float64, and a pixel differs by one level
# in ~1e-5 of them (a value within float32 rounding of a level's edge).
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_LEVEL = np.float32(127.5)
_WHITE = np.float32(255.0)
_ZERO = np.float32(0.0)


@njit(nogil=True, cache=True)
def _level(v, centre, k, p):
    """One value's grey level: u = (v - centre) * k is its place in [-1, 1] (centre and k from
    the channel's [lo, hi]); linear for p == 1, else the signed power law of quantise_batch.
    Measured from the centre, not from lo, so that a value halfway (0 in a difference stream's
    symmetric range) is exactly mid-grey 128: (0 - lo) * 255 / (hi - lo) rounds to a hair
    below 127.5 for some ranges, which gave 127. _levels_linear and _levels_sqrt compute
    exactly this, many values at a time."""
    u = (v - centre) * k
    if p != 1.0:
        u = min(max(u, -_ONE), _ONE)
        u = np.sign(u) * abs(u) ** np.float32(p)
    return np.uint8(min(max(np.floor((u + _ONE) * _LEVEL + _HALF), _ZERO), _WHITE))


@njit(nogil=True, cache=True)
def _levels_linear(values, centre, k, out):
    """_level with p == 1 over a block's values: no branch in the loop, so LLVM vectorises it."""
    for i in range(values.shape[0]):
        u = (values[i] - centre) * k
        out[i] = np.uint8(min(max(np.floor((u + _ONE) * _LEVEL + _HALF), _ZERO), _WHITE))


@njit(nogil=True, cache=True)
def _levels_sqrt(values, centre, k, out):
    """_level with p == 0.5 (the motion streams) over a block's values: sqrt is ~5x faster than
    pow, and sign(u) * r as a select (r is 0 where u is 0) keeps the loop branch-free."""
    for i in range(values.shape[0]):
        u = min(max((values[i] - centre) * k, -_ONE), _ONE)
        r = np.sqrt(abs(u))
        out[i] = np.uint8(min(max(np.floor(((r if u >= _ZERO else -r) + _ONE) * _LEVEL + _HALF), _ZERO), _WHITE))


@njit(nogil=True, cache=True)
def _levels(values, centre, k, p, out):
    """A block's grey levels: the power is per channel, so its branch is taken once per block."""
    if p == 1.0:
        _levels_linear(values, centre, k, out)
    elif p == 0.5:
        _levels_sqrt(values, centre, k, out)
    else:
        for i in range(values.shape[0]):
            out[i] = _level(values[i], centre, k, p)


BLOCK = 64  # output rows quantised together: their (W, BLOCK) float32 values (57 KB at 224 px) stay in L2


@njit(nogil=True, cache=True)
def _first_equal_rows(row_actor, row_f0, row_f1, row_w):
    """(H,) for each row the first row with the same actor, frames and weight (itself if none
    is before it). `stacked` with one actor and fill=repeat draws the top half twice: those
    rows are copied, not recomputed. Rows are grouped by f0 (a stable sort), so each is
    compared only with the few rows that read the same frame."""
    first = np.arange(row_f0.shape[0])
    order = np.argsort(row_f0, kind="mergesort")
    for i in range(1, order.shape[0]):
        h = order[i]
        k = i - 1
        while k >= 0 and row_f0[order[k]] == row_f0[h]:
            g = order[k]  # g < h: the sort is stable
            if row_actor[g] == row_actor[h] and row_f1[g] == row_f1[h] and row_w[g] == row_w[h]:
                first[h] = first[g]
                break
            k -= 1
    return first


@njit(nogil=True, cache=True)
def _blend_rows(joints, base, rows, row_actor, row_f0, row_f1, row_w, blended):
    """blended (3, V, len(rows)): the listed rows' joints, time-interpolated, rows innermost so
    that a column's taps read contiguous vectors of rows (no per-pixel gather)."""
    for i in range(rows.shape[0]):
        h = rows[i]
        a, f0, f1, rw = row_actor[h], base + row_f0[h], base + row_f1[h], row_w[h]
        for j in range(joints.shape[2]):
            for c in range(3):
                blended[c, j, i] = (_ONE - rw) * joints[f0, a, j, c] + rw * joints[f1, a, j, c]


@njit(nogil=True, cache=True)
def _resample_columns(blended, tap_idx, tap_w, values):
    """values (W, rows) = sum over taps of weight * joint, one column at a time over all the
    block's rows (a vector loop); tap by tap from 0.0 as one pixel at a time would add them,
    so the sums are bit-identical."""
    for w in range(values.shape[0]):
        values[w, :] = _ZERO
        for k in range(tap_idx.shape[1]):
            t = tap_w[w, k]
            joint = blended[tap_idx[w, k]]
            for i in range(values.shape[1]):
                values[w, i] += t * joint[i]


@njit(nogil=True, cache=True)
def _quantise_sample(joints, base, row_actor, row_f0, row_f1, row_w, col_idx, col_w, norm, power, out):
    """One sample's (3, H, W) image; see quantise_batch. Its distinct rows BLOCK at a time:
    blend their joints, then per channel resample every column over the block's rows,
    quantise, and write the (W, rows) tile transposed into out[c]; then copy repeated rows."""
    _, height, width = out.shape
    n_joints = joints.shape[2]
    first = _first_equal_rows(row_actor, row_f0, row_f1, row_w)
    distinct = np.flatnonzero(first == np.arange(height))
    # flat scratch, reshaped per block: C-contiguous whatever the block's row count, so the loops vectorise
    blended_buf = np.empty(3 * n_joints * BLOCK, dtype=np.float32)
    values_buf = np.empty(width * BLOCK, dtype=np.float32)
    tile_buf = np.empty(width * BLOCK, dtype=np.uint8)
    for b0 in range(0, distinct.shape[0], BLOCK):
        rows = distinct[b0:b0 + BLOCK]
        n_rows = rows.shape[0]
        blended = blended_buf[:3 * n_joints * n_rows].reshape((3, n_joints, n_rows))
        _blend_rows(joints, base, rows, row_actor, row_f0, row_f1, row_w, blended)
        values, tile = values_buf[:width * n_rows], tile_buf[:width * n_rows]
        for c in range(3):
            lo = np.float32(norm[c, 0])
            hi = np.float32(norm[c, 1])
            if hi > lo:
                _resample_columns(blended[c], col_idx, col_w, values.reshape((width, n_rows)))
                _levels(values, _HALF * (lo + hi), np.float32(2.0) / (hi - lo), np.float64(power[c]), tile)
            else:
                tile[:] = 0  # a flat channel
            for i in range(n_rows):
                for w in range(width):
                    out[c, rows[i], w] = tile[w * n_rows + i]
    for h in range(height):
        if first[h] != h:
            out[:, h] = out[:, first[h]]


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
