"""Where MAE hides patches: random, tube, frames or parts (docs/design.md §7).

Each strategy is a pure function that draws, from an optional torch.Generator, a score per
patch (N, L) in the patch grid's row-major order. `MaskedAutoencoder.random_masking` keeps the
`int(L * (1 - mask_ratio))` lowest-scoring patches and hides the rest, so every strategy hides
exactly the requested count; a strategy only decides which patches score high:

- random: uniform scores (MAE's);
- tube:   whole patch columns (joints) through every row (all of time), in random column order;
- frames: one contiguous block of whole patch rows (a stretch of time);
- parts:  whole body-part bands, in random part order, over a random contiguous block of rows.

A structured strategy hides whole units (columns, rows, parts) as far as the count allows; the
last unit is hidden in part (its patches at random), which is how the ratio stays exact.

Actors (`halves`, `copies`: one bool per sample). In a `stacked` image each actor's time runs
down its own half, so `frames` and `parts` draw their block of rows in a half-height grid and
hide it in both halves (`tile_halves`): patch (r, c) and its twin (r + h/2, c) rank next to
each other, so both are hidden, or both kept, except one pair when the hidden count is odd
(its bottom patch hidden, its top kept). A single actor with `repeat` fill has a copy of
itself in the bottom half (`copies`): every strategy then draws in the half grid and tiles,
so no hidden patch has its identical twin visible, but for that one odd pair, which
`MaskedAutoencoder.loss_mask` leaves out of the loss. A grid with an odd number of rows (80
px: 5 rows, each half 2.5) has no patch-aligned halves and no exact twins: the whole grid.
Scores are drawn outside `forward` (see `MaskedAutoencoder.sample_noise`), so a compiled model
sees tensors only and a seeded generator makes every step's mask reproducible and resumable."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..vocab import Masking, values

STRATEGIES = values(Masking)


def hidden_count(length: int, mask_ratio: float) -> int:
    """Patches hidden per sample: what `random_masking` does not keep."""
    return length - int(length * (1 - mask_ratio))


def random_scores(n: int, grid: tuple[int, int], generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.rand(n, grid[0] * grid[1], device=device, generator=generator)


def tube_scores(n: int, grid: tuple[int, int], generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Column k of a random column order scores in [k, k + 1): whole columns go first."""
    h, w = grid
    order = torch.rand(n, w, device=device, generator=generator).argsort(dim=1).argsort(dim=1)
    within = torch.rand(n, h, w, device=device, generator=generator)
    return (order[:, None, :] + within).reshape(n, h * w)


def frames_scores(n: int, grid: tuple[int, int], mask_ratio: float, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """The fewest rows that hold the hidden count, at a random start, score in [1, 2), rising
    row by row: whole rows are hidden and only the block's first row in part."""
    h, w = grid
    rows = math.ceil(hidden_count(h * w, mask_ratio) / w)
    block, start = _row_block(n, h, torch.full((n,), rows, device=device), generator, device)
    within = torch.rand(n, h, w, device=device, generator=generator)
    rank = (torch.arange(h, device=device)[None, :] - start[:, None]).clamp(min=0)  # row's place in the block
    inside = 1.0 + (rank[:, :, None] + within) / h
    return torch.where(block[:, :, None], inside, within).reshape(n, h * w)


def parts_scores(n: int, grid: tuple[int, int], mask_ratio: float, column_parts: Sequence[int],
                 generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """A random block of rows (long enough to hold the hidden count, at most every row); inside
    it, part bands in a random order score in [1, 2), the first part in the order highest."""
    h, w = grid
    part = torch.as_tensor(list(column_parts), device=device, dtype=torch.long)
    if part.shape != (w,):
        raise ValueError(f"column_parts has {part.numel()} entries for a grid {w} patches wide")
    parts = int(part.max()) + 1
    shortest = math.ceil(hidden_count(h * w, mask_ratio) / w)
    rows = shortest + (torch.rand(n, device=device, generator=generator) * (h - shortest + 1)).long().clamp(max=h - shortest)
    block, _ = _row_block(n, h, rows, generator, device)
    rank = torch.rand(n, parts, device=device, generator=generator).argsort(dim=1).argsort(dim=1)  # (n, parts)
    within = torch.rand(n, h, w, device=device, generator=generator)
    inside = 1.0 + (rank[:, part][:, None, :] + within) / parts
    return torch.where(block[:, :, None], inside, within).reshape(n, h * w)


def _row_block(n: int, h: int, rows: torch.Tensor, generator: torch.Generator | None,
               device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, h) bool: a contiguous block of `rows[i]` rows at a uniform random start; and the starts."""
    start = (torch.rand(n, device=device, generator=generator) * (h - rows + 1)).long()
    start = torch.minimum(start, h - rows)
    r = torch.arange(h, device=device)[None, :]
    return (r >= start[:, None]) & (r < (start + rows)[:, None]), start


def mask_scores(strategy: str, n: int, grid: tuple[int, int], mask_ratio: float,
                generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                column_parts: Sequence[int] | None = None, halves: torch.Tensor | None = None,
                copies: torch.Tensor | None = None) -> torch.Tensor:
    """The (N, L) scores of `strategy` (see the module docstring). halves (N,) bool: the image
    stacks two actor halves; copies (N,) bool: its bottom half is a copy of the top (one actor,
    `repeat` fill). Samples with neither draw exactly what they drew before these existed."""
    scores = _grid_scores(strategy, n, grid, mask_ratio, generator, device, column_parts)
    h, w = grid
    if h % 2 or (halves is None and copies is None):
        return scores
    halves = _flags(halves, n, device)
    copies = _flags(copies, n, device) & halves
    per_half = halves if strategy in ("frames", "parts") else copies
    if not bool(per_half.any()):
        return scores
    half = _grid_scores(strategy, n, (h // 2, w), mask_ratio, generator, device, column_parts)
    return torch.where(per_half[:, None], tile_halves(half), scores)


def tile_halves(half: torch.Tensor) -> torch.Tensor:
    """(N, M) scores of a half-height grid -> (N, 2M) scores of the whole grid (top half's
    patches first, row-major) that rank each patch of the top half just below its twin in the
    bottom half: pairs are hidden together, from the highest-scoring pair down."""
    rank = half.argsort(dim=1).argsort(dim=1).to(torch.float32)
    return torch.cat([2 * rank, 2 * rank + 1], dim=1) / (2 * half.shape[1])


def twin_index(grid: tuple[int, int]) -> torch.Tensor | None:
    """(L,) the patch at the same place in the other actor half of a stacked image, or None when
    the grid's rows do not split into two patch-aligned halves."""
    h, w = grid
    if h % 2:
        return None
    length = h * w
    return (torch.arange(length) + length // 2) % length


def _flags(flags: torch.Tensor | None, n: int, device) -> torch.Tensor:
    if flags is None:
        return torch.zeros(n, dtype=torch.bool, device=device)
    return torch.as_tensor(flags, device=device).to(torch.bool).reshape(n)


def _grid_scores(strategy: str, n: int, grid: tuple[int, int], mask_ratio: float, generator, device,
                 column_parts: Sequence[int] | None) -> torch.Tensor:
    if strategy == "random":
        return random_scores(n, grid, generator, device)
    if strategy == "tube":
        return tube_scores(n, grid, generator, device)
    if strategy == "frames":
        return frames_scores(n, grid, mask_ratio, generator, device)
    if strategy == "parts":
        if column_parts is None:
            raise ValueError("parts masking needs the body part of every patch column (the store's layout)")
        return parts_scores(n, grid, mask_ratio, column_parts, generator, device)
    raise ValueError(f"unknown masking {strategy!r}: choose one of {', '.join(STRATEGIES)}")
