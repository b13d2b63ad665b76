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


# ------------------------------------------------------------------ actors: halves and copies

def single_actor_images(size: int, n: int = 6, fill: str = "repeat", seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) uint8 S2I images of one moving actor, `stacked`, `aligned` layout, as
    `s2i convert` makes them (encoding.encode)."""
    from s2i_cli.encoder.encoding import Encoding, encode

    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n):
        t = int(rng.integers(40, 90))
        seq = np.zeros((t, 2, 25, 3), np.float32)
        walk = np.cumsum(rng.normal(0, 0.02, size=(t, 25, 3)), axis=0)
        seq[:, 0] = rng.normal(0, 0.3, size=(1, 25, 3)) + walk  # body 2 absent
        seqs.append(seq)
    images, _ = encode(seqs, [1] * n, Encoding(skeletons.NTU25, "aligned", size, "stacked", fill, "isotropic"))
    return torch.from_numpy(images)


def hidden_and_loss(net: MaskedAutoencoder, n: int, seed: int, **flags) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden from the encoder, reconstructed by the loss), (n, L) bool, as the model masks."""
    noise = net.sample_noise(n, "cpu", torch.Generator().manual_seed(seed), **flags)
    length = net.grid[0] * net.grid[1]
    keep = int(length * (1 - net.mask_ratio))
    hidden = torch.ones(n, length, dtype=torch.bool)
    hidden.scatter_(1, noise["mask"].argsort(dim=1)[:, :keep], False)
    return hidden, net.loss_mask(hidden.float(), noise.get("copies")).bool()


def copied_from_a_visible_twin(net: MaskedAutoencoder, images: torch.Tensor, hidden: torch.Tensor,
                               loss: torch.Tensor) -> int:
    """Patches the loss asks for whose identical twin (same place, other actor half) is visible."""
    patches = net.patchify(images.float())
    twin = (torch.arange(patches.shape[1]) + patches.shape[1] // 2) % patches.shape[1]
    identical = (patches == patches[:, twin]).all(dim=-1)
    return int((loss & ~hidden[:, twin] & identical).sum())


@pytest.mark.parametrize("size", [224, 128, 96])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_masked_patch_has_its_identical_twin_visible(strategy, size):
    """Single actor, `stacked`, `repeat` fill: the bottom half is the top half again, so each
    patch has an identical twin; with the store's copy flag no patch the loss asks for has its
    twin visible, for every strategy, and the encoder still sees the exact count."""
    images = single_actor_images(size)
    n = len(images)
    assert torch.equal(images[:, :, :size // 2], images[:, :, size // 2:])  # the copy is exact
    net = MaskedAutoencoder("vit_tiny", size, decoder_dim=32, decoder_depth=1, decoder_heads=4, masking=strategy,
                            column_parts=skeletons.patch_column_parts(skeletons.NTU25, "aligned", size))
    length = net.grid[0] * net.grid[1]
    flags = dict(halves=torch.ones(n, dtype=torch.bool), copies=torch.ones(n, dtype=torch.bool))
    for seed in range(5):
        hidden, loss = hidden_and_loss(net, n, seed, **flags)
        assert (hidden.sum(dim=1) == hidden_count(length, 0.75)).all()  # the exact count
        assert copied_from_a_visible_twin(net, images, hidden, loss) == 0
        assert (hidden.sum(dim=1) - loss.sum(dim=1) <= 1).all()  # at most the one odd pair is left out of the loss
    if size == 224:  # without the flag (what masking did before): copies leak
        hidden, _ = hidden_and_loss(net, n, 0)
        assert copied_from_a_visible_twin(net, images, hidden, hidden) > 0
    # the model's own forward pass takes the flag (and its loss leaves the same patches out)
    noise = net.sample_noise(n, "cpu", torch.Generator().manual_seed(0), **flags)
    _, _, mask = net(images.float() / 255, noise)
    assert torch.equal(mask.bool(), hidden_and_loss(net, n, 0, **flags)[1])


@pytest.mark.parametrize("strategy", ["frames", "parts"])
def test_time_blocks_are_drawn_per_actor_half(strategy):
    """Two actors, `stacked`: frames and parts hide one block of time in each actor's half, the
    same block in both (all but one patch when the hidden count is odd), at the exact count."""
    n = 64
    halves = torch.ones(n, dtype=torch.bool)
    scores = mask_scores(strategy, n, GRID, 0.75, torch.Generator().manual_seed(0), column_parts=PARTS, halves=halves)
    keep = int(196 * 0.25)
    hidden = torch.ones(n, 196, dtype=torch.bool)
    hidden.scatter_(1, scores.argsort(dim=1)[:, :keep], False)
    hidden = hidden.reshape(n, *GRID).numpy()
    assert (hidden.reshape(n, -1).sum(1) == hidden_count(196, 0.75)).all()
    starts = set()
    for m in hidden:
        top, bottom = m[:7], m[7:]
        assert (top != bottom).sum() <= 1
        rows = np.flatnonzero(top.any(axis=1))
        assert rows[-1] - rows[0] + 1 == len(rows)  # one contiguous block of the half's time
        starts.add(int(rows[0]))
        if strategy == "frames":
            assert len(rows) == 6  # ceil(74 / 14) rows of each half
    assert strategy == "frames" or len(starts) > 1
    # without halves (a `main` image): the block runs over the whole grid, as before
    whole = mask_scores(strategy, n, GRID, 0.75, torch.Generator().manual_seed(0), column_parts=PARTS)
    assert torch.equal(whole, mask_scores(strategy, n, GRID, 0.75, torch.Generator().manual_seed(0),
                                          column_parts=PARTS, halves=torch.zeros(n, dtype=torch.bool)))


def test_odd_grids_have_no_twins():
    """80 px: 5 patch rows, halves of 2.5: no exact twins, masking over the whole grid."""
    flags = dict(halves=torch.ones(4, dtype=torch.bool), copies=torch.ones(4, dtype=torch.bool))
    g = torch.Generator
    for strategy in STRATEGIES:
        parts = skeletons.patch_column_parts(skeletons.NTU25, "aligned", 80)
        assert torch.equal(mask_scores(strategy, 4, (5, 5), 0.75, g().manual_seed(0), column_parts=parts, **flags),
                           mask_scores(strategy, 4, (5, 5), 0.75, g().manual_seed(0), column_parts=parts))
