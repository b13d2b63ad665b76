"""A store's skeletons out to the files GCN tools train on (`s2i export`): CTR-GCN's NTU
`.npz` (`ctrgcn.py`) and pyskl's annotation pickle (`pyskl.py`), streamed shard by shard
from the stored, selected and centred sequences (`samples.py`), so memory stays flat in the
number of samples."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import zarr

from .ctrgcn import FRAMES, export_ctrgcn, plan_ctrgcn
from .pyskl import export_pyskl, plan_pyskl
from ..vocab import Export as Target  # the formats `s2i export` writes, declared in the vocabulary
from ..store import split_indices
from .samples import SIDES, ExportError, on_any_side


def samples_to_write(root: zarr.Group, out: Path, to: Target, protocol: str | None = None, frames: int = FRAMES,
                     overwrite: bool = False) -> int:
    """How many samples an export writes (a progress bar's total), after checking everything it
    can before writing: ExportError otherwise."""
    if to == Target.ctrgcn:
        files = plan_ctrgcn(root, out, protocol, frames, overwrite)
        return sum(len(split_indices(root, p, side)) for p in files.values() for side in SIDES)
    return len(on_any_side(root, plan_pyskl(root, out, protocol, overwrite)[1]))


def export(root: zarr.Group, out: Path, to: Target, protocol: str | None = None, frames: int = FRAMES,
           overwrite: bool = False, advance: Callable[[int], None] = lambda n: None) -> dict:
    """Write the store's skeletons as `to` into the folder `out`; {file name: what it holds}."""
    if to == Target.ctrgcn:
        return export_ctrgcn(root, out, protocol, frames, overwrite, advance)
    return export_pyskl(root, out, protocol, overwrite, advance)


__all__ = ["ExportError", "FRAMES", "Target", "export", "samples_to_write"]
