"""Reading images through zarrs' codec pipeline (store.stream_arrays, local stores): the same
arrays, bit for bit, as zarr-python's pipeline on real NTU images; DataLoader workers forked
after the parent read through zarrs give the same batches (and do not hang); a store at a URL
keeps zarr-python's pipeline."""
from __future__ import annotations

import subprocess
import sys
from unittest import mock

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader

from s2i_cli import store
from s2i_cli.train.loader import BlockDataset, make_loader
from tests.helpers import shared_data
from tests.stores import make_store, pipeline

pytestmark = [pytest.mark.filterwarnings("ignore:Consolidated metadata"), pytest.mark.slow]


@pytest.mark.parametrize("stream", ["joint", "bone"])
def test_zarrs_reads_are_bit_exact_on_real_images(ntu_sharded_store, stream):
    root = store.open_store(ntu_sharded_store)
    images, norm, _ = store.stream_arrays(root, stream)
    with mock.patch.dict(store._ZARRS, clear=True):  # the same arrays through zarr-python's pipeline
        plain_images, plain_norm, _ = store.stream_arrays(store.open_store(ntu_sharded_store), stream)
    assert pipeline(images) == pipeline(norm) == "ZarrsCodecPipeline"
    assert pipeline(plain_images) == pipeline(plain_norm) == "BatchedCodecPipeline"
    everything = plain_images[:]
    assert everything.any() and everything.shape[0] == images.shape[0] > 8
    for key in (slice(None), slice(3, 13), slice(8, 12), 5, -1):  # whole, across shards, one shard, one sample
        assert np.array_equal(images[key], plain_images[key]), key
        assert np.array_equal(norm[key], plain_norm[key]), key
    pick = [1, 9, 14]
    assert np.array_equal(images.oindex[pick], everything[pick])
    valid = store.valid_indices(root)
    loaded = next(iter(make_loader(ntu_sharded_store, valid, len(valid), shuffle=False, workers=0, stream=stream)))
    assert np.array_equal(loaded[0].numpy(), everything[loaded[2].numpy()])


def batches(loader: DataLoader) -> list[tuple[torch.Tensor, ...]]:
    return [tuple(b) for b in loader]


def test_forked_workers_read_through_zarrs_after_the_parent_did(tmp_path):
    """The parent reads through zarrs first (which starts rayon's global pool in it); forked
    workers then read runs of two shards each (block = 2 shards): several chunks per read,
    which entered the inherited pool, whose threads a fork does not copy, and waited forever
    before the reads were made one chunk at a time. A timeout turns such a hang into a failure."""
    path = make_store(tmp_path / "s.zarr", n=3 * store.SHARD, size=8, classes=3)
    parent = store.stream_arrays(store.open_store(path), "joint")[0]
    assert pipeline(parent) == "ZarrsCodecPipeline"
    everything = parent[:]  # several shards, in this process
    idx = np.arange(10, 3 * store.SHARD - 7)
    got = {}
    for workers in (0, 2):
        dataset = BlockDataset(path, idx, shuffle=False, batch_size=50, block=2 * store.SHARD)
        got[workers] = batches(DataLoader(dataset, batch_size=50, num_workers=workers,
                                          timeout=60 if workers else 0))
    assert len(got[0]) == len(got[2]) == -(-len(idx) // 50)
    for (a_img, a_lab, a_idx), (b_img, b_lab, b_idx) in zip(got[0], got[2]):
        assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab) and torch.equal(a_idx, b_idx)
    assert torch.cat([b[2] for b in got[2]]).tolist() == idx.tolist()
    assert np.array_equal(torch.cat([b[0] for b in got[2]]).numpy(), everything[idx])


def test_a_store_at_a_url_keeps_zarr_python_s_pipeline(tmp_path):
    """zarrs has no fsspec store: a URL's arrays read through zarr-python's own pipeline, also
    right after a local store's were opened through zarrs (the setting does not leak)."""
    local = make_store(tmp_path / "s.zarr", n=20, size=8, classes=2)
    url = "memory://reads/s.zarr"
    source = store.open_store(local)
    target = zarr.open_group(zarr.storage.FsspecStore.from_url(url), mode="w")
    target.attrs.update(source.attrs.asdict())
    for path in ("images", "norm"):
        a = source[path]
        target.create_array(path, shape=a.shape, dtype=a.dtype, chunks=a.chunks, shards=a.shards)[:] = a[:]
    local_images = store.stream_arrays(source, "joint")[0]
    remote_images = store.stream_arrays(store.open_group(url), "joint")[0]
    assert pipeline(local_images) == "ZarrsCodecPipeline"
    assert pipeline(remote_images) == "BatchedCodecPipeline"
    assert np.array_equal(remote_images[:], local_images[:])
    assert zarr.config.get("codec_pipeline.path") != "zarrs.ZarrsCodecPipeline"


def test_without_zarrs_installed_the_same_store_converts_and_reads(ntu_sharded_store, tmp_path):
    """A host without zarrs (the GPU host's wheel set has none) converts and reads through
    zarr-python's pipeline: the same arrays as the zarrs-written store, no error."""
    code = f"""
import importlib.metadata as md, sys
sys.modules["zarrs"] = None  # as if not installed: find_spec gives None, and zarr sees no zarrs entry point
md.entry_points = lambda: md.EntryPoints(e for d in md.distributions() for e in d.entry_points
                                        if not e.value.startswith("zarrs"))
import numpy as np
from s2i_cli import store
from s2i_cli.convert.flow import convert
assert not store.HAVE_ZARRS
convert("ntu120", {str(shared_data("ntu"))!r}, {str(tmp_path / "plain.zarr")!r}, size=224, shard=4, workers=1,
        streams=("joint", "bone"), progress=False)
for stream in ("joint", "bone"):
    mine = store.stream_arrays(store.open_store({str(tmp_path / "plain.zarr")!r}), stream)
    theirs = store.stream_arrays(store.open_store({str(ntu_sharded_store)!r}), stream)
    assert type(mine[0]._async_array.codec_pipeline).__name__ == "BatchedCodecPipeline"
    assert np.array_equal(mine[0][:], theirs[0][:]) and np.array_equal(mine[1][:], theirs[1][:])
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
