"""Masking strategies (s2i_cli/train/masking.py): each hides exactly the requested count and has its
shape (tube: whole columns; frames: one block of rows; parts: whole part bands in a row block),
and is reproducible from a seeded generator."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from s2i_cli.encoder import skeletons
from s2i_cli.train.mae import MaskedAutoencoder
from s2i_cli.train.masking import STRATEGIES, hidden_count, mask_scores
from tests.helpers import TINY_DECODER

GRID = (14, 14)
PARTS = skeletons.patch_column_parts(skeletons.NTU25, "aligned", 224)  # 2/3/3/3/3 patch columns


def hidden(strategy: str, ratio: float = 0.75, n: int = 64, seed: int = 0) -> np.ndarray:
    """(n, h, w) bool: True where `random_masking` hides the patch."""
    net_free = mask_scores(strategy, n, GRID, ratio, torch.Generator().manual_seed(seed), column_parts=PARTS)
    length = GRID[0] * GRID[1]
    keep = int(length * (1 - ratio))
    order = net_free.argsort(dim=1)
    mask = torch.ones(n, length, dtype=torch.bool)
    mask.scatter_(1, order[:, :keep], False)
    return mask.reshape(n, *GRID).numpy()


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9])
def test_exact_ratio_and_reproducible(strategy, ratio):
    m = hidden(strategy, ratio)
    assert (m.reshape(len(m), -1).sum(1) == hidden_count(196, ratio)).all()
    assert np.array_equal(m, hidden(strategy, ratio))
    assert not np.array_equal(m, hidden(strategy, ratio, seed=1))


def test_tube_hides_whole_columns():
    for m in hidden("tube"):
        full = m.all(axis=0)
        partial = m.any(axis=0) & ~full
        assert partial.sum() <= 1 and full.sum() == hidden_count(196, 0.75) // 14


def test_frames_hides_one_block_of_rows():
    for m in hidden("frames"):
        rows = np.flatnonzero(m.any(axis=1))
        assert len(rows) == 11 and rows[-1] - rows[0] == 10  # ceil(147 / 14) contiguous rows
        assert m[rows].all(axis=1).sum() >= 10  # every row but at most one entirely hidden


def test_parts_hides_whole_parts_in_a_row_block():
    part = np.asarray(PARTS)
    starts = set()
    for m in hidden("parts", n=200):
        rows = np.flatnonzero(m.any(axis=1))
        assert rows[-1] - rows[0] + 1 == len(rows)  # one contiguous block of time
        block = m[rows]
        whole = [p for p in range(5) if block[:, part == p].all()]
        touched = [p for p in range(5) if block[:, part == p].any()]
        assert len(touched) - len(whole) <= 1  # at most one part hidden in part
        starts.add(int(rows[0]))
    assert len(starts) > 1  # the block moves in time


@pytest.mark.slow
def test_model_uses_the_strategy_and_refuses_unknown():
    net = MaskedAutoencoder("vit_tiny", 224, **TINY_DECODER, masking="tube")
    noise = net.sample_noise(2, "cpu", torch.Generator().manual_seed(0))
    _, _, mask = net(torch.zeros(2, 3, 224, 224), noise)
    grid = mask.reshape(2, 14, 14)
    assert (grid.all(dim=1).sum(dim=1) == 10).all()  # 147 hidden = 10 whole columns + 7
    with pytest.raises(ValueError, match="unknown masking"):
        MaskedAutoencoder("vit_tiny", 32, **TINY_DECODER, masking="blocks")
    with pytest.raises(ValueError, match="body part"):
        MaskedAutoencoder("vit_tiny", 32, **TINY_DECODER, masking="parts")
