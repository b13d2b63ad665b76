"""`s2i encode STORE --streams bone,motion`: add streams to a finished store from its stored
skeletons, without the raw files (docs/design.md §3).

Shard by shard: read the shard's skeletons in one slice, encode the new streams with the
store's own encoding (skeleton, layout, size, persons, fill: `encoding.store_encoding`) and
the same function `s2i convert --streams` uses, and write their images and norm into the
stream's arrays. A stream is recorded in the store's attributes only after its last shard is
written, so an interrupted run leaves the store as it was (the next run overwrites the
partial arrays)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import store
from ..encoder.encoding import encode_many, store_encoding
from ..encoder.streams import stream_power
from ..views.progress import progress_bar


class EncodeError(Exception):
    """A store that cannot take new streams; the message is one line."""


@dataclass
class EncodeReport:
    store: str
    added: list[str]  # streams written by this run
    present: list[str]  # streams the store already had (left as they are)
    samples: int
    seconds: float


def encode(location: store.Location, streams: tuple[str, ...], *, storage_options: dict | None = None,
           progress: bool = True) -> EncodeReport:
    started = time.perf_counter()
    root = store.open_store(location, storage_options)  # a finished store of this format, or StoreError
    have = store.stored_streams(root)
    new = tuple(s for s in streams if s not in have)
    samples = int(np.count_nonzero(root["valid"][:]))
    if not new:
        return EncodeReport(str(location), [], list(streams), samples, time.perf_counter() - started)
    header = store.read_header(root)
    try:
        enc = store_encoding(header, norm="channel")  # the joint stream's scaling plays no part in the others
    except ValueError as exc:
        raise EncodeError(str(exc)) from exc
    root = store.open_group(location, storage_options, mode="r+")
    store.create_stream_arrays(root, new)
    slots, shard = root["valid"].shape[0], header.shard
    with progress_bar(progress) as bar:
        task = bar.add_task(f"encoding {', '.join(new)}", total=slots, info="")
        for lo in range(0, slots, shard):
            hi = min(lo + shard, slots)
            good = np.flatnonzero(root["valid"][lo:hi])
            if len(good):
                seqs = store.read_skeletons(root, lo, hi)
                actors = np.asarray(root["actors"][lo:hi], dtype=np.int64)
                encoded = encode_many([seqs[k] for k in good], actors[good], enc, new)
                store.write_streams(root, lo, hi - lo, good, encoded)
            bar.update(task, completed=hi)
    store.record_streams(root, {s: stream_power(s, enc.skeleton.is_2d).tolist() for s in new})
    return EncodeReport(str(location), list(new), [s for s in streams if s in have], samples,
                        time.perf_counter() - started)
