"""What the fuzz tests share (tests/test_fuzz.py, tests/test_fuzz_importers.py): the example
budget and time bound, hypothesis settings, byte-level damage, and edits of JSON-like documents."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("S2I_FUZZ_EXAMPLES", "30"))
TIME_LIMIT = 5.0  # s per file: the seeds read in well under a millisecond once compiled

FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def truncated(draw, data: bytes) -> bytes:
    return data[:draw(st.integers(0, len(data)))]


@st.composite
def flipped(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for pos, byte in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1,
                                   max_size=8)):
        out[pos] = byte
    return bytes(out)


def paths(node, prefix=()):
    """Every place in a JSON document: the path of keys and indices from the root."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for k, value in enumerate(node):
            yield from paths(value, (*prefix, k))


DELETE = object()  # an edit's value that removes the place instead


def replaced(doc, path, value):
    """`doc` with the value at `path` replaced (or deleted, for DELETE); `doc` itself unchanged."""
    if not path:
        return value
    out = doc.copy()
    if value is DELETE and len(path) == 1:
        del out[path[0]]
    else:
        out[path[0]] = replaced(doc[path[0]], path[1:], value)
    return out


def edited(doc, edits):
    """`doc` with each (path, value) edit made in turn."""
    for path, value in edits:
        try:
            doc = replaced(doc, path, value)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):  # an earlier edit removed or replaced it
            pass
    return doc
