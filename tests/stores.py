"""Small synthetic s2i stores for tests, written through the real store API.

`make_store(tmp_path / "s.zarr")` gives a complete store (dataset "synthetic") whose images
show their class clearly (a class template plus noise) when `separable`, else pure noise."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from s2i_cli import store
from s2i_cli.store import SHARD, create_store, finalize, write_shard

JOINTS = 25


def pipeline(array) -> str:
    """The name of the codec pipeline a zarr array reads through (fixed when it is opened)."""
    return type(array._async_array.codec_pipeline).__name__


def class_templates(classes: int, size: int, seed: int = 0) -> np.ndarray:
    """(classes, 3, size, size) float32 templates in [40, 215]: blocky, smooth, distinct."""
    rng = np.random.default_rng(10_000 + seed)
    coarse = rng.uniform(40.0, 215.0, size=(classes, 3, 4, 4)).astype(np.float32)
    reps = -(-size // 4)
    return np.repeat(np.repeat(coarse, reps, axis=2), reps, axis=3)[:, :, :size, :size]


def make_store(path: Path, n: int = 64, size: int = 32, classes: int = 4, protocols=("xsub",),
               seed: int = 0, separable: bool = True, noise: float = 20.0, swapped: tuple[str, ...] = ()) -> Path:
    """Write a complete s2i store of `n` samples of (3, size, size) images and return its path.

    Labels are `i % classes`; every protocol's split puts half of each class in train and the
    other half in test (alternating by occurrence, so both sides are sorted and disjoint); a
    protocol in `swapped` has the two sides the other way round (its test side is the others' train side).
    `noise` is the standard deviation of the pixel noise (real S2I images are smooth: use ~3)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % classes).astype(np.int16)
    templates = class_templates(classes, size, seed)
    attrs = {
        "dataset": "synthetic",
        "image_size": [size, size],
        "class_names": [f"class {c}" for c in range(classes)],
        "layout": "parts",
        "persons": "stacked",
        "fill": "repeat",  # one actor each: the bottom half is (would be) a copy, so masking mirrors
        "command": "tests.stores.make_store",
    }
    root = create_store(path, n=n, height=size, width=size, joints=JOINTS, channels=3,
                        meta_fields=[], attrs=attrs)
    for start in range(0, n, SHARD):
        stop = min(start + SHARD, n)
        m = stop - start
        lab = labels[start:stop]
        jitter = rng.normal(0.0, noise, size=(m, 3, size, size)).astype(np.float32)
        if separable:
            images = templates[lab] + jitter
        else:
            images = rng.uniform(0.0, 255.0, size=(m, 3, size, size)).astype(np.float32)
        frames = rng.integers(8, 13, size=m).astype(np.int32)
        block = {
            "images": np.clip(np.rint(images), 0, 255).astype(np.uint8),
            "label": lab,
            "name": [f"S{i:06d}" for i in range(start, stop)],
            "frames": frames,
            "actors": np.ones(m, dtype=np.int8),
            "norm": np.tile(np.array([[-1.0, 1.0]], dtype=np.float32), (m, 3, 1)),
            "skeletons": [rng.normal(0.0, 0.3, size=(int(t), 2, JOINTS, 3)).astype(np.float32) for t in frames],
        }
        write_shard(root, start, block)
    splits = {}
    for protocol in protocols:
        occurrence = np.arange(n) // classes  # k-th sample of its class
        train = np.flatnonzero(occurrence % 2 == 0).astype(np.int64)
        test = np.flatnonzero(occurrence % 2 == 1).astype(np.int64)
        splits[protocol] = {"train": test, "test": train} if protocol in swapped else {"train": train, "test": test}
    finalize(root, splits)
    return path


def assert_stores_equal(a: Path, b: Path):
    ra, rb = store.open_store(a), store.open_store(b)
    arrays = ["images", "valid", "label", "name", "frames", "actors", "norm", "skeleton/start",
              "meta/setup", "meta/camera", "meta/subject", "meta/replication", "splits/xsub/train", "splits/xset/test"]
    for name in arrays:
        assert np.array_equal(ra[name][:], rb[name][:]), name
    for i in store.valid_indices(ra):  # the frames written (the rest of each region is never-written fill)
        assert np.array_equal(store.read_skeleton(ra, i), store.read_skeleton(rb, i)), i
    assert ra.attrs["s2i"]["rejected"] == rb.attrs["s2i"]["rejected"]


def done_records(out: Path) -> list[dict]:
    """The per-shard done records written so far (a record being written is skipped)."""
    import json

    records = []
    for meta in (out / "progress").glob("*/zarr.json"):
        try:
            records.append(json.loads(meta.read_text())["attributes"])
        except (OSError, ValueError, KeyError):
            pass
    return records
