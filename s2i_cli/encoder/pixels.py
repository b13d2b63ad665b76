"""The pixel maths of the encoder, inverted: stored uint8 images back to coordinates, and
coordinates to the unrounded pixel values the encoder gives them (for checking a stored
image against its skeleton)."""
from __future__ import annotations

import numpy as np


def decode_image(image: np.ndarray, norm: np.ndarray, power: np.ndarray | float = 1.0) -> np.ndarray:
    """uint8 (3, H, W) -> float32 coordinates, inverting the per-channel quantisation: linear
    from [lo, hi], or the difference streams' signed power law where power != 1 (streams.py)."""
    lo, hi = norm[:, 0], norm[:, 1]
    scale = np.where(hi > lo, hi - lo, 1.0)
    t = image.astype(np.float32) / 255.0
    for c, p in enumerate(np.broadcast_to(np.asarray(power, dtype=np.float64), (3,))):
        if p != 1.0:
            u = 2.0 * t[c] - 1.0
            t[c] = (np.sign(u) * np.abs(u) ** (1.0 / p) + 1.0) / 2.0
    return t * scale[:, None, None] + lo[:, None, None]


def quantised_values(values: np.ndarray, norm: np.ndarray, power: np.ndarray | float = 1.0) -> np.ndarray:
    """float (3, H, W) -> the unrounded pixel values (0..255) the encoder gives them: the
    inverse of `decode_image`, for checking a stored image against its skeleton."""
    lo, hi = norm[:, 0, None, None].astype(np.float64), norm[:, 1, None, None].astype(np.float64)
    t = np.where(hi > lo, (values - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    for c, p in enumerate(np.broadcast_to(np.asarray(power, dtype=np.float64), (3,))):
        if p != 1.0:
            u = np.clip(2.0 * t[c] - 1.0, -1.0, 1.0)
            t[c] = (np.sign(u) * np.abs(u) ** p + 1.0) / 2.0
    return t * 255.0
