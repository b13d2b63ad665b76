"""s2i: Skeleton-to-Image conversion, pretraining and evaluation.

The Python API (`s2i_cli/api.py`) is reachable from here, loaded on first use so that
`import s2i_cli` and the command line stay fast: `open_store`, `dataset`, `load_encoder`,
`normalize`, `Store`. The package itself is the top layer, a front: nothing in s2i_cli
imports it (the version lives in `version.py`)."""
from .version import __version__

API = ("Store", "dataset", "load_encoder", "normalize", "open_store")


def __getattr__(name: str):
    if name in API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 's2i_cli' has no attribute {name!r}")
