"""Dataset readers: one module per dataset. Each knows its files, names, metadata, splits
and how raw bytes become joint sequences; none knows the store (docs/design.md §6).

The contract every reader fulfils (see `DatasetFormat`):
- `discover(raw, missing_list)` lists the samples (`Item`s, sorted, one per output sample)
  and what it skipped, without reading skeleton data;
- `read_items(path, data, items)` turns one file's bytes into, per item, either a
  selected sequence `(T, 2, V, C)` float32 with its actor count, or a `FormatError`
  (importers of one big file, `whole_files = False`, get no bytes and read only their
  items' part of it, in whatever process the items and the reader were sent to);
- `splits(meta)` gives each protocol's sides from the metadata columns: a boolean training
  mask (every other sample is test), or a pair of disjoint (train, test) masks when some
  samples belong to neither side (Toyota's cross-view protocols, PKU-MMD sequences on no
  split list). `split_sides` turns either into sorted indices.

Readers may take options (`get_format(name, **options)`, e.g. Toyota's vector layout); each
lists the ones it accepts in `options` (name -> help) and rejects others with ValueError.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from . import ctrgcn, kinetics, ntu, nwucla, pkummd, pyskl, toyota
from ..vocab import Dataset, values
from .base import (DatasetFormat, FormatError, Item, Rejection, Sequence, SplitMasks, check_options, named_files,
                   parse_json, split_sides)

# The one list of datasets: name -> reader factory taking the reader options.
FORMATS: dict[str, Callable[..., DatasetFormat]] = {
    "ntu60": partial(ntu.NTUFormat, "ntu60"), "ntu120": partial(ntu.NTUFormat, "ntu120"),
    "pkummd": partial(pkummd.PKUMMDFormat, phase=1), "pkummd2": partial(pkummd.PKUMMDFormat, phase=2),
    "nwucla": nwucla.NWUCLAFormat, "kinetics": kinetics.KineticsFormat, "toyota": toyota.ToyotaFormat,
    "pyskl": pyskl.PysklFormat, "ctrgcn": ctrgcn.CTRGCNFormat,
}
DATASET_NAMES = tuple(FORMATS)
assert DATASET_NAMES == values(Dataset), "vocab.Dataset and FORMATS name the same datasets, in one order"


def get_format(dataset: str, **options: str) -> DatasetFormat:
    """The reader for a dataset name, e.g. `ntu120`, configured with reader `options`."""
    if dataset not in FORMATS:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(FORMATS)}")
    return FORMATS[dataset](**options)


__all__ = ["DATASET_NAMES", "FORMATS", "DatasetFormat", "FormatError", "Item", "Rejection", "Sequence", "SplitMasks",
           "check_options", "get_format", "named_files", "parse_json", "split_sides"]
