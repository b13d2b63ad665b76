"""Dataset readers: one module per dataset. Each knows its files, names, metadata, splits
and how raw bytes become joint sequences; none knows the store (docs/design.md §6).

The contract every reader fulfils (see `DatasetFormat`):
- `discover(raw, missing_list)` lists the samples (`Item`s, sorted, one per output sample)
  and what it skipped, without reading skeleton data;
- `read_items(path, data, items)` turns one file's bytes into, per item, either a
  selected sequence `(T, 2, V, C)` float32 with its actor count, or a `FormatError`;
- `splits(meta)` gives each protocol's boolean training mask from the metadata columns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..layout import Skeleton


@dataclass(frozen=True)
class Item:
    """One output sample: its name, the file it comes from, label and metadata."""

    name: str
    path: Path
    label: int  # 0-based class index
    meta: dict[str, int] = field(default_factory=dict, hash=False)
    extra: tuple = ()  # reader-specific, e.g. an interval inside a long sequence


@dataclass(frozen=True)
class Rejection:
    """A discovered file or sample that is not in the store, and why."""

    name: str
    reason: str
    line: int = 0  # 1-based line of the problem; 0 when not tied to a line

    def as_dict(self) -> dict:
        return {"name": self.name, "reason": self.reason, "line": self.line}


class FormatError(Exception):
    """Bad input in one file: the reason, and the 1-based line where it was found (0: none)."""

    def __init__(self, reason: str, line: int = 0):
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason = reason
        self.line = line


Sequence = tuple[np.ndarray, int]  # (T, 2, V, C) float32 selected sequence, number of actors


class DatasetFormat:
    """What every dataset reader provides. Subclasses set the attributes and the methods."""

    name: str
    skeleton: Skeleton
    class_names: tuple[str, ...]
    meta_fields: tuple[str, ...]
    protocols: tuple[str, ...]
    persons: str = "stacked"  # default persons mode
    description: str = ""

    def discover(self, raw: Path, missing_list: Path | None = None) -> tuple[list[Item], list[Rejection], dict[str, int]]:
        """Items sorted by name, rejections, and counts of files deliberately ignored by reason."""
        raise NotImplementedError

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        raise NotImplementedError

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError


def get_format(dataset: str) -> DatasetFormat:
    """The reader for a dataset name, e.g. `ntu120`."""
    from . import ntu

    formats = {"ntu60": ntu.NTU60, "ntu120": ntu.NTU120}
    if dataset not in formats:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(formats)}")
    return formats[dataset]


DATASET_NAMES = ("ntu60", "ntu120")
