"""Shared test helpers: where the real sample data lives, and skipping when it is absent.

The samples are read-only fixtures in ../shared/data (research-only licences: never copied
into the repo). Without them tests skip, except under CI (CI=true), where absence fails."""
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip (fail under CI) when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"sample data {path} is missing under CI")
        pytest.skip(f"sample data {path} is not present")
    return path


@pytest.fixture(scope="session")
def ntu_dir() -> Path:
    return shared_data("ntu")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two threads slow a tiny ViT step ten-fold."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
