"""Writing files so that a crash never leaves half of one; no torch, no numpy, so that
`s2i evaluate --summary` and the results tables import nothing heavy."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` then rename tmp to `path`: a crash never leaves half a file (text, JSON, PNG, torch)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    return path
