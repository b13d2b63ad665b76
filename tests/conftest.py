"""Fixtures shared by the test modules: the sample data folders, one cached conversion per
kind of store, the synthetic stores, and one torch thread. Plain helpers live in
tests/helpers.py, tests/samples.py, tests/stores.py and tests/fuzzing.py; no test module
imports another.

A conversion fixture converts once per session (`converted` caches by its arguments), so
every module that reads the same kind of store reads the same store: tests must not write
into them (convert their own, or copy, to change one)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import shared_data
from tests.stores import make_store

# A test that asks for one of these converts the real sample files (once per session, but at
# up to 224 px), pretrains a run or writes hundreds of files: it belongs to the slow set,
# which `pytest -m "not slow"` leaves out. Other slow tests carry @pytest.mark.slow.
SLOW_FIXTURES = {"converted", "ntu_store", "ntu_sharded_store", "ntu_small_store", "ntu60_store",
                 "run", "runs", "small_run",  # test_evaluate, test_stream_runs, test_pretrain: pretrained runs
                 "generated",  # test_synth: 2 x 200 synthetic files
                 "api_folder"}  # test_api: a conversion and a pretraining run


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ntu_dir() -> Path:
    return shared_data("ntu")


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """`converted(dataset, folder, **options)`: the store `s2i convert` makes of
    ../shared/data/FOLDER with those options, made once per session (workers=1 unless said)."""
    from s2i_cli.convert.flow import convert

    made: dict[tuple, Path] = {}

    def get(dataset: str, folder: str, **options) -> Path:
        raw = shared_data(folder)
        options = {"workers": 1, "progress": False, **options}
        key = (dataset, folder, tuple(sorted((k, repr(v)) for k, v in options.items())))
        if key not in made:
            out = tmp_path_factory.mktemp("converted") / f"{dataset}.zarr"
            convert(dataset, raw, out, **options)
            made[key] = out
        return made[key]

    return get


@pytest.fixture(scope="session")
def ntu_store(converted) -> Path:
    """The real NTU files at 224 px, joint images, one shard: what `s2i show` and `s2i info` look at."""
    return converted("ntu120", "ntu", command="s2i convert ntu120 NTU ntu.zarr")


@pytest.fixture(scope="session")
def ntu_sharded_store(converted) -> Path:
    """The real NTU files at 224 px in shards of 4, joint (zstd-3) and bone (zstd-1) images:
    reads across shards and streams."""
    return converted("ntu120", "ntu", size=224, shard=4, streams=("joint", "bone"))


@pytest.fixture(scope="session")
def ntu_small_store(converted) -> Path:
    """The real NTU files at 32 px with joint, bone and motion images: what training and
    evaluation on real skeletons (re-encoding loader, streams, ensembles) run on."""
    return converted("ntu120", "ntu", size=32, streams=("joint", "bone", "motion"))


@pytest.fixture(scope="session")
def ntu60_store(converted) -> Path:
    """The real NTU files as `s2i convert ntu60` at 48 px: what importers are compared with."""
    return converted("ntu60", "ntu", size=48)


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> Path:
    """64 synthetic samples (4 classes, 32 px, protocol xsub) whose images show their class."""
    return make_store(tmp_path_factory.mktemp("synthetic") / "s.zarr", n=64, size=32, classes=4)


@pytest.fixture(scope="session")
def probe_store(tmp_path_factory) -> Path:
    """128 synthetic samples (4 classes, 32 px, protocols xsub and xview): what probes and
    fine-tuning are checked on."""
    return make_store(tmp_path_factory.mktemp("probe") / "s.zarr", n=128, size=32, classes=4,
                      protocols=("xsub", "xview"))


@pytest.fixture(scope="session")
def big_store(tmp_path_factory) -> Path:
    """700 synthetic samples of 16 px: more than two shards, so blocks, groups and partial
    shards all occur in the loader."""
    return make_store(tmp_path_factory.mktemp("big") / "b.zarr", n=700, size=16, classes=5)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two threads slow a tiny ViT step ten-fold."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
