"""The quantisation kernel (kernels/encode.py) against a plain NumPy reference of the same
arithmetic: blend the row's frames, add the column taps in order, scale, apply the power law,
round, all in float32 as the kernel computes. Bit-identical for the linear and square-root
laws (the kernel blocks rows and copies repeated rows, which must change no pixel), within
one grey level for another power and of a float64 computation; the serial and parallel
kernels give the same images."""
import numpy as np
import pytest
from s2i_cli.kernels.encode import quantise_batch, quantise_batch_serial

from s2i_cli.encoder import skeletons


def reference(joints, offsets, row_actor, row_f0, row_f1, row_w, col_idx, col_w, norm, power, dtype=np.float32):
    """(N, 3, H, W) uint8, pixel by pixel as quantise_batch documents it, in `dtype` NumPy
    (float32: the kernel's own arithmetic, operation for operation)."""
    n_samples, height = row_actor.shape
    out = np.empty((n_samples, 3, height, col_idx.shape[0]), dtype=np.uint8)
    one = dtype(1.0)
    for n in range(n_samples):
        w = row_w[n].astype(dtype)[:, None, None]
        f0, f1, a = offsets[n] + row_f0[n], offsets[n] + row_f1[n], row_actor[n]
        rows = (one - w) * joints[f0, a].astype(dtype) + w * joints[f1, a].astype(dtype)  # (H, V, 3)
        values = np.zeros((height, col_idx.shape[0], 3), dtype=dtype)
        for k in range(col_idx.shape[1]):  # taps added in order, as the kernel adds them
            values = values + col_w[:, k].astype(dtype)[None, :, None] * rows[:, col_idx[:, k]]
        for c in range(3):
            lo, hi = dtype(norm[n, c, 0]), dtype(norm[n, c, 1])
            if not hi > lo:
                out[n, c] = 0  # a flat channel
                continue
            u = (values[..., c] - dtype(0.5) * (lo + hi)) * (dtype(2.0) / (hi - lo))  # [lo, hi] -> [-1, 1]
            if power[c] != 1.0:
                u = np.sign(u) * np.abs(np.clip(u, -one, one)) ** dtype(power[c])
            out[n, c] = np.clip(np.floor((u + one) * dtype(127.5) + dtype(0.5)), 0, 255)
    return out


def batch(rng, height, frames=(7, 30, 1), persons="stacked", fill="repeat"):
    """Random two-actor values (differences: signed) and each sample's row maps and norm."""
    seqs = [rng.normal(0, 0.3, (f, 2, 25, 3)).astype(np.float32) for f in frames]
    actors = [1 + k % 2 for k in range(len(frames))]
    maps = [skeletons.row_map(f, a, height, persons, fill) for f, a in zip(frames, actors)]
    row_actor, row_f0, row_f1, row_w = (np.stack([m[k] for m in maps]) for k in range(4))
    offsets = np.r_[0, np.cumsum(frames)].astype(np.int64)
    joints = np.concatenate(seqs)
    lo = np.stack([s.min(axis=(0, 1, 2)) for s in seqs])
    norm = np.stack([lo, lo + rng.uniform(0.2, 1.0, lo.shape).astype(np.float32)], axis=2)  # some values clip
    norm[-1, 1, 1] = norm[-1, 1, 0]  # a flat channel
    return joints, offsets, row_actor, row_f0, row_f1, row_w.astype(np.float32), norm


@pytest.mark.parametrize("power", [(1.0, 1.0, 1.0), (0.5, 0.5, 1.0), (0.5, 2.0, 1.0)])
@pytest.mark.parametrize("height, persons, fill", [(37, "stacked", "repeat"), (32, "stacked", "zero"),
                                                    (20, "main", "repeat")])
def test_kernel_equals_the_numpy_reference(power, height, persons, fill):
    rng = np.random.default_rng(height)
    joints, offsets, row_actor, row_f0, row_f1, row_w, norm = batch(rng, height, persons=persons, fill=fill)
    col_idx, col_w = skeletons.column_map(skeletons.NWUCLA20, "parts", 41)  # virtual joints: four taps
    power = np.array(power)
    args = (joints, offsets, row_actor, row_f0, row_f1, row_w, col_idx, col_w, norm, power)
    serial = np.empty((len(offsets) - 1, 3, height, 41), dtype=np.uint8)
    parallel = np.empty_like(serial)
    quantise_batch_serial(*args, serial)
    quantise_batch(*args, parallel)
    want = reference(*args)
    assert np.array_equal(serial, parallel)
    exact = power != 2.0  # pow may differ from NumPy's in the last bit; sqrt and the linear law do not
    assert np.array_equal(serial[:, exact], want[:, exact])
    assert np.abs(serial.astype(int) - want.astype(int)).max() <= 1
    assert np.abs(serial.astype(int) - reference(*args, dtype=np.float64).astype(int)).max() <= 1
    assert np.all(serial[-1, :, :, :][norm[-1, :, 0] == norm[-1, :, 1]] == 0)  # the flat channel


def test_repeated_rows_anywhere_are_copied_exactly():
    """Rows equal to any earlier row (not only `stacked`'s repeated half) come out as that row,
    and rows that differ in a single field (actor, either frame, the weight) are computed."""
    rng = np.random.default_rng(3)
    height = 120
    joints = rng.normal(size=(6, 2, 25, 3)).astype(np.float32)
    row_actor = rng.integers(0, 2, (1, height))
    row_f0 = rng.integers(0, 3, (1, height))
    row_f1 = rng.integers(0, 3, (1, height)) + 3
    row_w = rng.choice(np.array([0.0, 0.25, 0.5], np.float32), (1, height))
    col_idx, col_w = skeletons.column_map(skeletons.NTU25, "concat", 30)
    norm = np.tile(np.array([-2.0, 2.0], np.float32), (1, 3, 1))
    args = (joints, np.array([0, 6]), row_actor, row_f0, row_f1, row_w, col_idx, col_w, norm, np.array([1.0, 0.5, 1.0]))
    keys = list(zip(row_actor[0], row_f0[0], row_f1[0], row_w[0]))
    assert len(set(keys)) < height / 2  # many repeats, most not adjacent
    out = np.empty((1, 3, height, 30), dtype=np.uint8)
    quantise_batch_serial(*args, out)
    assert np.array_equal(out, reference(*args))


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_zero_is_mid_grey_in_every_sample(power):
    """Regression: a difference stream's 0 is mid-grey (docs/design.md §2), but the kernel
    measured values from lo: (0 + s) * 255 / (2 s) fell a hair below 127.5 for some s, and
    zero motion or bones came out 127 in about one sample in seven."""
    rng = np.random.default_rng(0)
    n = 200
    s = rng.uniform(0.001, 0.5, n).astype(np.float32)
    joints = np.zeros((n, 2, 25, 3), dtype=np.float32)  # one frame per sample, every difference 0
    rows = np.zeros((n, 4), dtype=np.int64)
    norm = np.repeat(np.stack([-s, s], axis=1)[:, None], 3, axis=1)
    col_idx, col_w = skeletons.column_map(skeletons.NTU25, "parts", 10)
    out = np.empty((n, 3, 4, 10), dtype=np.uint8)
    quantise_batch_serial(joints, np.arange(n + 1), rows, rows, rows, np.zeros((n, 4), np.float32), col_idx, col_w,
                          norm, np.full(3, power), out)
    assert np.all(out == 128)
