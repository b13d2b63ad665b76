"""Dataset readers: one module per dataset. Each knows its files, names, metadata, splits
and how raw bytes become joint sequences; none knows the store (docs/design.md §6).

The contract every reader fulfils (see `DatasetFormat`):
- `discover(raw, missing_list)` lists the samples (`Item`s, sorted, one per output sample)
  and what it skipped, without reading skeleton data;
- `read_items(path, data, items)` turns one file's bytes into, per item, either a
  selected sequence `(T, 2, V, C)` float32 with its actor count, or a `FormatError`;
- `splits(meta)` gives each protocol's sides from the metadata columns: a boolean training
  mask (every other sample is test), or a pair of disjoint (train, test) masks when some
  samples belong to neither side (Toyota's cross-view protocols, PKU-MMD sequences on no
  split list). `split_sides` turns either into sorted indices.

Readers may take options (`get_format(name, **options)`, e.g. Toyota's vector layout); each
lists the ones it accepts in `options` (name -> help) and rejects others with ValueError.
"""
from __future__ import annotations

import re
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
    options: dict[str, str] = {}  # reader options it accepts: name -> help

    def discover(self, raw: Path, missing_list: Path | None = None) -> tuple[list[Item], list[Rejection], dict[str, int]]:
        """Items sorted by name, rejections, and counts of files deliberately ignored by reason."""
        raise NotImplementedError

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        raise NotImplementedError

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, SplitMasks]:
        raise NotImplementedError


SplitMasks = np.ndarray | tuple[np.ndarray, np.ndarray]  # train mask, or (train mask, test mask)


DUPLICATE = "sample name seen before in another folder; the first copy is kept"


def named_files(raw: Path, suffix: str, pattern: re.Pattern, expected: str) -> tuple[list[tuple[Path, str, re.Match]], list[Rejection]]:
    """Files under `raw` (recursive) named `<stem><suffix>`, sorted by name then folder, as
    (path, stem, match); a stem that `pattern` does not match is rejected, the reason
    saying that the name should look like `expected`."""
    found, rejected = [], []
    for path in sorted(Path(raw).rglob(f"*{suffix}"), key=lambda p: (p.name, str(p))):
        stem = path.name[: -len(suffix)]
        match = pattern.match(stem)
        if match is None:
            rejected.append(Rejection(path.name, f"file name is not {expected}"))
        else:
            found.append((path, stem, match))
    return found, rejected


def split_sides(masks: dict[str, SplitMasks]) -> dict[str, dict[str, np.ndarray]]:
    """`splits()` output -> {protocol: {"train": indices, "test": indices}}, sorted int64."""
    sides = {}
    for protocol, m in masks.items():
        if isinstance(m, tuple):
            train, test = (np.asarray(x, dtype=bool) for x in m)
            if np.any(train & test):
                raise ValueError(f"protocol {protocol}: a sample is on both sides")
        else:
            train = np.asarray(m, dtype=bool)
            test = ~train
        sides[protocol] = {"train": np.flatnonzero(train), "test": np.flatnonzero(test)}
    return sides


def get_format(dataset: str, **options: str) -> DatasetFormat:
    """The reader for a dataset name, e.g. `ntu120`, configured with reader `options`."""
    from . import kinetics, ntu, nwucla, pkummd, toyota

    formats = {"ntu60": lambda: ntu.NTU60, "ntu120": lambda: ntu.NTU120,
               "pkummd": lambda **o: pkummd.PKUMMDFormat(phase=1, **o),
               "pkummd2": lambda **o: pkummd.PKUMMDFormat(phase=2, **o),
               "nwucla": nwucla.NWUCLAFormat, "kinetics": kinetics.KineticsFormat, "toyota": toyota.ToyotaFormat}
    if dataset not in formats:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(formats)}")
    fmt = formats[dataset]
    if options and dataset.startswith("ntu"):
        raise ValueError(f"{dataset} takes no reader options (got {', '.join(sorted(options))})")
    return fmt(**options)


def check_options(dataset: str, accepted: dict[str, str], options: dict[str, str]) -> None:
    """ValueError naming the accepted options when `options` holds another."""
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        ok = ", ".join(accepted) or "none"
        raise ValueError(f"{dataset} has no reader option {', '.join(unknown)} (it accepts: {ok})")


DATASET_NAMES = ("ntu60", "ntu120", "pkummd", "pkummd2", "nwucla", "kinetics", "toyota")


def parse_json(data: bytes):
    """JSON bytes -> Python object, or FormatError with the 1-based line of the syntax error.
    orjson when installed (about 3x faster than json on the skeleton files), else json."""
    try:
        return _json_loads(data)
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text: {exc.reason}") from None
    except ValueError as exc:  # json.JSONDecodeError and orjson.JSONDecodeError
        msg, line, col = getattr(exc, "msg", str(exc)), getattr(exc, "lineno", 0), getattr(exc, "colno", 0)
        raise FormatError(f"bad JSON: {msg}" + (f" (column {col})" if col else ""), line) from None
    except RecursionError:
        raise FormatError("bad JSON: nested too deeply") from None


try:
    from orjson import loads as _json_loads
except ImportError:  # pragma: no cover - orjson is a dependency; json is the fallback
    from json import loads as _json_loads
