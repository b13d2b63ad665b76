"""Torch datasets over an s2i store: shard-aligned block reads with a shuffle buffer.

Single-sample zarr reads cost milliseconds of overhead each, so `BlockDataset` plans an epoch
at the index level first (pure numpy, deterministic in seed + epoch) and then reads runs of
neighbouring samples with one slice read each:

1. blocks: the sorted indices grouped by `idx // block` (block = the store's shard, 256);
   when shuffling, the block order is permuted from (seed, epoch);
2. DDP: the sequence is padded by wrap-around to a multiple of the world size (as
   DistributedSampler does) and rank r takes the r-th contiguous part;
3. DataLoader workers: the rank's part is cut into batches; when shuffling, worker w takes a
   contiguous run of whole batches (so it reads only its own blocks), else batch b goes to worker
   b % workers (so the loader's round robin yields index order). Either way every worker but
   one yields whole batches, the loader yields exactly ceil(len / batch) batches in a fixed
   order, and every rank the same number;
4. shuffle buffer: each worker cuts its samples into pieces at block edges and permutes the
   samples inside each group of `buffer_blocks` pieces, reading one group at a time.

Each worker opens the store itself (once per process). With an `encoding`, the images are not
read but made: the worker reads the stored skeletons block by block and re-encodes them (after
skeleton-space augmentation, augment.py) on one thread with the Numba kernel."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..encoder.encoding import Encoding
from ..encoder.skeletons import actor_rows
from ..store import SHARD, absolute, open_group, read_header, read_skeletons, stream_arrays
from .augment import encode_augmented

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SPARSE = 0.25  # read a run's samples one by one when they fill less than this of its span
_GAP = 16  # indices further apart than this start a new slice read
MIN_CROP_FRAMES = 64  # a temporal crop keeps at least this many of a clip's frames (CTR-GCN, MAMP)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) on any device -> float32 normalised with the ImageNet mean and std."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images.float() - mean) / std


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """The inverse of `normalize`, to uint8."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images.float() * std + mean).round().clamp(0, 255).to(torch.uint8)


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def round_robin_resume(counts: list[int], skip: int) -> tuple[list[int], int]:
    """The DataLoader takes one batch from each worker in turn, passing over exhausted ones.
    After it has yielded `skip` batches: how many each worker gave, and whose turn is next."""
    order = [(r, w) for r in range(max(counts, default=0)) for w in range(len(counts)) if r < counts[w]]
    done = [0] * len(counts)
    for _, w in order[:skip]:
        done[w] += 1
    return done, (order[skip][1] if skip < len(order) else 0)


class BlockDataset(IterableDataset):
    """Yields (image uint8 (3, H, W), label int64, index int64) for `indices` of a store.

    shuffle: permute block order and samples inside groups of `buffer_blocks` blocks, from
    (seed, epoch) alone, so a resumed run sees the same order. temporal_crop=(lo, hi): crop a
    random contiguous range of lo..hi of the rows (the same range in each person's half when
    persons are stacked) and resize it back to the full height. `batch_size` (set by
    make_loader) lets the worker split hand out whole batches; rank/world_size default to the
    torch.distributed process group, if any. encoding: re-encode the stored skeletons with it
    (another fill, normalisation or layout than the store's), augmented by `augment` (augment.py
    op names) drawn from (seed, epoch, index). stream: which stored stream's images to read
    (`store.stream_paths`: joint, bone, motion, bone-motion)."""

    def __init__(self, store: str | Path, indices: np.ndarray, *, shuffle: bool, seed: int = 0,
                 buffer_blocks: int = 4, temporal_crop: tuple[float, float] | None = None,
                 batch_size: int = 1, block: int = SHARD, rank: int | None = None,
                 world_size: int | None = None, encoding: Encoding | None = None, augment: tuple[str, ...] = (),
                 stream: str = "joint"):
        super().__init__()
        self.stream = stream
        self.store = absolute(store)  # a directory or a URL (credentials from the AWS_* environment)
        self.indices = np.unique(np.asarray(indices, dtype=np.int64))  # sorted, once each
        if len(self.indices) != len(np.asarray(indices)):
            raise ValueError("indices must be distinct")
        if temporal_crop is not None:
            lo, hi = temporal_crop
            if not 0.0 < lo <= hi <= 1.0:
                raise ValueError(f"temporal crop {temporal_crop} must satisfy 0 < min <= max <= 1")
        self.shuffle = shuffle
        self.seed = int(seed)
        self.buffer_blocks = max(1, int(buffer_blocks))
        self.temporal_crop = temporal_crop
        if augment and encoding is None:
            raise ValueError("skeleton augmentation re-encodes: pass the encoding to use")
        self.encoding = encoding
        self.augment = tuple(augment)
        self.batch_size = max(1, int(batch_size))
        self.block = int(block)
        r, w = _dist_rank_world()
        self.rank = r if rank is None else int(rank)
        self.world_size = w if world_size is None else int(world_size)
        # (epoch, batches to skip) in shared memory: persistent DataLoader workers see each new
        # epoch's set_epoch without being respawned
        self._order = torch.zeros(2, dtype=torch.int64).share_memory_()
        self._pid = None
        self._arrays = None

    # --- planning (index level, no I/O) ---
    def __len__(self) -> int:
        """Samples this rank yields per epoch."""
        n = len(self.indices)
        return -(-n // self.world_size) if self.world_size > 1 else n

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Choose the epoch's order; `skip_batches` drops the loader's first batches without reading
        them (mid-epoch resume; needs the same batch size and worker count as the run resumed).
        Call it before iterating the loader: its workers read it when the new epoch starts."""
        self._order[0] = int(epoch)
        self._order[1] = int(skip_batches)

    @property
    def epoch(self) -> int:
        return int(self._order[0])

    @property
    def skip_batches(self) -> int:
        return int(self._order[1])

    def epoch_order(self) -> np.ndarray:
        """The epoch's sample sequence over all ranks: blocks (runs of indices in one shard) in a
        random order from (seed, epoch) when shuffling, each block in index order."""
        idx = self.indices
        if len(idx) == 0:
            return idx
        block_of = idx // self.block
        starts = np.flatnonzero(np.r_[True, block_of[1:] != block_of[:-1]])
        blocks = np.split(idx, starts[1:])
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(blocks))
            blocks = [blocks[b] for b in order]
        return np.concatenate(blocks)

    def rank_order(self) -> np.ndarray:
        """This rank's contiguous part of the epoch sequence, padded by wrap-around like
        DistributedSampler so every rank has len(self) samples."""
        seq = self.epoch_order()
        if self.world_size == 1 or len(seq) == 0:
            return seq
        per = len(self)
        seq = np.concatenate([seq, np.resize(seq, per * self.world_size - len(seq))])
        return seq[self.rank * per:(self.rank + 1) * per]

    def worker_batches(self, num_workers: int) -> list[np.ndarray]:
        """The batch numbers (over the rank's part) each worker yields, in order. Shuffled: a
        contiguous run each, so a worker reads only its own blocks. In order: batch b goes to worker
        b % num_workers, so the loader's round robin gives the batches in index order."""
        nb = -(-len(self) // self.batch_size)
        if self.shuffle:
            return [np.arange(w * nb // num_workers, (w + 1) * nb // num_workers) for w in range(num_workers)]
        return [np.arange(w, nb, num_workers) for w in range(num_workers)]

    def worker_order(self, worker: int, num_workers: int) -> tuple[np.ndarray, np.ndarray]:
        """The indices this DataLoader worker yields, in order, and the read group of each: its
        samples cut into pieces at block edges, `buffer_blocks` pieces a group, shuffled inside a
        group (from seed, epoch, rank, worker, group) when shuffling."""
        seq = self.rank_order()
        plan = self.worker_batches(num_workers)
        done, turn = round_robin_resume([len(b) for b in plan], self.skip_batches)
        # the loader always asks worker 0 first: after a skip, worker w plays the part of
        # worker (w + turn) so the batches keep their uninterrupted order
        role = (worker + turn) % num_workers
        batches = plan[role]
        pos = (batches[:, None] * self.batch_size + np.arange(self.batch_size)[None, :]).ravel()
        mine = seq[pos[pos < len(seq)]]
        if len(mine) == 0:
            return mine, mine
        block_of = mine // self.block
        piece = np.cumsum(np.r_[0, (block_of[1:] != block_of[:-1]) | (np.diff(mine) < 0)])
        gid = piece // self.buffer_blocks
        if self.shuffle:
            starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1], True])
            for g, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
                rng = np.random.default_rng([self.seed, self.epoch, self.rank, role, g])
                mine[a:b] = rng.permutation(mine[a:b])
        skip = done[role] * self.batch_size
        return mine[skip:], gid[skip:]

    # --- reading ---
    def _open(self):
        if self._pid != os.getpid():  # one handle per process (fork-safe for remote stores)
            root = open_group(self.store)
            self._arrays = (stream_arrays(root, self.stream)[0], np.asarray(root["label"][:], dtype=np.int64),
                            read_header(root).stacked, root,
                            np.asarray(root["actors"][:], dtype=np.int64),
                            np.asarray(root["frames"][:], dtype=np.int64))
            self._pid = os.getpid()
        return self._arrays

    def runs(self, wanted: np.ndarray):
        """(lo, hi, members, dense) per run of nearby wanted indices inside one block (a shard):
        dense runs are read with one slice, sparse ones one sample at a time."""
        wanted = np.unique(wanted)
        breaks = np.flatnonzero((np.diff(wanted) > _GAP) | (np.diff(wanted // self.block) != 0)) + 1
        for members in np.split(wanted, breaks):
            lo, hi = int(members[0]), int(members[-1]) + 1
            yield lo, hi, members, len(members) >= _SPARSE * (hi - lo)

    def read(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """Images of `wanted` indices: stored ones (one slice per dense run), or re-encoded."""
        if self.encoding is not None:
            return self.encode(wanted)
        images = self._open()[0]
        out: dict[int, np.ndarray] = {}
        for lo, hi, members, dense in self.runs(wanted):
            span = images[lo:hi] if dense else None
            for i in members:
                out[int(i)] = span[int(i) - lo] if dense else images[int(i)]
        return out

    def encode(self, wanted: np.ndarray, piece: int = 64) -> dict[int, np.ndarray]:
        """Images of `wanted` indices made from their stored skeletons, `piece` samples per kernel call."""
        root, actors = self._open()[3:5]
        seqs: dict[int, np.ndarray] = {}
        for lo, hi, members, dense in self.runs(wanted):
            span = read_skeletons(root, lo, hi) if dense else None
            for i in members:
                seqs[int(i)] = span[int(i) - lo] if dense else read_skeletons(root, int(i), int(i) + 1)[0]
        order = sorted(seqs)
        out: dict[int, np.ndarray] = {}
        for k in range(0, len(order), piece):
            idx = order[k:k + piece]
            images = encode_augmented([seqs[i] for i in idx], actors[idx], idx, self.encoding, self.augment,
                                      self.seed, self.epoch)
            out.update(zip(idx, images))
        return out

    def crop(self, image: np.ndarray, index: int, stacked: bool, frames: int = 0) -> torch.Tensor:
        """Random temporal crop (rows), resized back with linear interpolation; uint8 in and out.
        It keeps at least MIN_CROP_FRAMES of the clip's `frames` where the clip has them (all of
        a shorter one), as CTR-GCN's and MAMP's valid crop-resize."""
        lo, hi = self.temporal_crop
        rng = np.random.default_rng([self.seed, self.epoch, index, 7])
        frac = rng.uniform(lo, hi)
        if frames > 0:
            frac = max(frac, min(1.0, MIN_CROP_FRAMES / frames))
        height = image.shape[1]
        halves = actor_rows(height, "stacked" if stacked and height >= 4 else "main")
        offset = rng.uniform()
        x = torch.from_numpy(image).float()
        parts = []
        for top, bottom in halves:
            rows = bottom - top
            length = min(rows, max(2, int(round(frac * rows))))
            start = top + int(offset * (rows - length + 1))
            piece = x[:, start:start + length].unsqueeze(0)
            parts.append(torch.nn.functional.interpolate(piece, size=(rows, x.shape[2]), mode="bilinear",
                                                         align_corners=False)[0])
        return torch.cat(parts, dim=1).round().clamp(0, 255).to(torch.uint8)

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        seq, gid = self.worker_order(worker, num_workers)
        if len(seq) == 0:
            return
        _, labels, stacked, _, _, frames = self._open()
        cuts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1], True])
        for a, b in zip(cuts[:-1], cuts[1:]):  # one group (a buffer of blocks) at a time
            chunk = seq[a:b]
            images = self.read(chunk)
            for i in chunk:
                i = int(i)
                img = (self.crop(images[i], i, stacked, int(frames[i])) if self.temporal_crop
                       else torch.from_numpy(images[i]))
                yield img, torch.tensor(labels[i], dtype=torch.int64), torch.tensor(i, dtype=torch.int64)


def make_loader(store: str | Path, indices: np.ndarray, batch_size: int, *, shuffle: bool, workers: int,
                seed: int = 0, temporal_crop: tuple[float, float] | None = None, drop_last: bool = False,
                buffer_blocks: int = 4, encoding: Encoding | None = None, augment: tuple[str, ...] = (),
                stream: str = "joint") -> DataLoader:
    """A DataLoader over a BlockDataset (reach it as `loader.dataset`, call its set_epoch per epoch).
    Batches are (images uint8 (B, 3, H, W), labels int64 (B,), indices int64 (B,)). Its workers
    persist from epoch to epoch (no respawn, the store stays open). A `stream` the store lacks
    is a StoreError here, in the calling process, naming `s2i encode`."""
    if stream != "joint" and encoding is None:
        stream_arrays(open_group(absolute(store)), stream)
    if encoding is not None:  # compile (or load) the one-thread kernel here, not in every worker at once
        encode_augmented([np.zeros((2, 2, encoding.skeleton.num_joints, 3), np.float32)], [1], [0], encoding, (), 0, 0)
    dataset = BlockDataset(store, indices, shuffle=shuffle, seed=seed, buffer_blocks=buffer_blocks,
                           temporal_crop=temporal_crop, batch_size=batch_size, encoding=encoding, augment=augment,
                           stream=stream)
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, drop_last=drop_last,
                      pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
                      prefetch_factor=4 if workers > 0 else None,
                      generator=torch.Generator().manual_seed(seed))  # workers' seeds: not from the global RNG
