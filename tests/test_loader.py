"""The block loader (s2i_cli/train/loader.py): every index once per epoch, a new order each
epoch, mid-epoch resume, worker and DDP-rank partitions, persistent workers, temporal crop,
normalisation. Synthetic stores (tests/conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from s2i_cli.store import open_store, split_indices
from s2i_cli.train.loader import BlockDataset, make_loader, normalize


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_yields_every_index_once(big_store, workers):
    idx = split_indices(open_store(big_store), "xsub", "train")
    loader = make_loader(big_store, idx, 32, shuffle=True, workers=workers, seed=3)
    orders = []
    for epoch in (0, 1):
        loader.dataset.set_epoch(epoch)
        batches = list(loader)
        got = torch.cat([b[2] for b in batches]).numpy()
        assert sorted(got.tolist()) == idx.tolist()
        assert len(batches) == len(loader)
        images, labels, index = batches[0]
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)
        assert labels.tolist() == (index % 5).tolist()
        orders.append(got)
    assert not np.array_equal(orders[0], orders[1])  # a new order each epoch
    assert not np.array_equal(orders[0], np.sort(orders[0]))
    plain = make_loader(big_store, idx, 50, shuffle=False, workers=workers)
    assert torch.cat([b[2] for b in plain]).tolist() == idx.tolist()

def test_loader_resume_skip_and_ranks(big_store):
    idx = np.arange(700)
    loader = make_loader(big_store, idx, 32, shuffle=True, workers=2, seed=1)
    loader.dataset.set_epoch(4)
    full = [b[2] for b in loader]
    loader.dataset.set_epoch(4, skip_batches=5)  # a mid-epoch resume reads only what is left
    rest = [b[2] for b in loader]
    assert len(rest) == len(full) - 5 and all(torch.equal(a, b) for a, b in zip(full[5:], rest))
    # workers partition the epoch: each reads only its own samples
    ds = BlockDataset(big_store, idx, shuffle=True, batch_size=32)
    shares = [ds.worker_order(w, 3)[0] for w in range(3)]
    assert sorted(np.concatenate(shares).tolist()) == idx.tolist()
    # three DDP ranks: equal lengths, together every index (two pads repeat the start)
    parts = [[int(s[2]) for s in BlockDataset(big_store, idx, shuffle=True, rank=r, world_size=3)] for r in range(3)]
    assert [len(p) for p in parts] == [234] * 3
    assert set(sum(parts, [])) == set(idx.tolist())

def test_persistent_workers_take_each_epoch_order(big_store):
    loader = make_loader(big_store, np.arange(700), 64, shuffle=True, workers=2, seed=5)
    first = iter(loader)
    loader.dataset.set_epoch(0)
    a = torch.cat([b[2] for b in first])
    loader.dataset.set_epoch(1)
    second = iter(loader)
    b = torch.cat([b[2] for b in second])
    assert second is first  # the same workers, not respawned
    fresh = make_loader(big_store, np.arange(700), 64, shuffle=True, workers=2, seed=5)  # workers started for epoch 1
    fresh.dataset.set_epoch(1)
    assert torch.equal(b, torch.cat([x[2] for x in fresh])) and not torch.equal(a, b)

def test_temporal_crop_keeps_shape_and_halves(synthetic_store):
    ds = BlockDataset(synthetic_store, np.arange(8), shuffle=False, temporal_crop=(0.5, 0.5))
    plain = BlockDataset(synthetic_store, np.arange(8), shuffle=False)
    for (a, _, i), (b, _, j) in zip(ds, plain):
        assert i == j and a.shape == b.shape == (3, 32, 32) and a.dtype == torch.uint8
    with pytest.raises(ValueError):
        BlockDataset(synthetic_store, np.arange(8), shuffle=False, temporal_crop=(0.0, 1.0))

def test_normalize():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    y = normalize(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y[0, :, 0, 0], (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]))
