"""What test modules share (no test module imports another): where the real sample data
lives, and the one tiny-model setting.

The samples are read-only fixtures in ../shared/data (research-only licences: never copied
into the repo). Without them tests skip, except under CI (CI=true), where absence fails."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The one tiny model every training test uses: a vit_tiny encoder and a one-block decoder.
TINY_DECODER = dict(decoder_dim=64, decoder_depth=1, decoder_heads=4)
FAST = dict(workers=0, progress=False)  # no loader processes: they cost more than they save on tiny stores
TINY = dict(model="vit_tiny", **TINY_DECODER, **FAST)  # pretrain(store, run, **TINY, ...)


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip (fail under CI) when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"sample data {path} is missing under CI")
        pytest.skip(f"sample data {path} is not present")
    return path
