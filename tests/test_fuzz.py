"""Property-based and mutation tests of every reader (issue 13): damaged copies of small
valid files (tests/samples.py) go straight to each reader's read function, and for every
one: no exception escapes, it returns within a time bound, a rejection has a reason (and,
from the text parsers, the line), and anything accepted is finite and has a frame.

Seeded (derandomized) and bounded: S2I_FUZZ_EXAMPLES examples per test (default 30, a few
seconds per reader). A longer run: `S2I_FUZZ_EXAMPLES=3000 pytest tests/test_fuzz.py`."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2i_cli.encoder import skeletons
from s2i_cli.formats import FormatError, get_format
from s2i_cli.formats.base import MAX_COORDINATE
from s2i_cli.formats.ntu import parse_skeleton
from s2i_cli.formats.pkummd import parse_sequence
from tests.fuzzing import FUZZ, TIME_LIMIT, edited, flipped, paths, truncated
from tests.samples import seeds, within

pytestmark = pytest.mark.slow  # 30 seeded examples per case; S2I_FUZZ_EXAMPLES=3000 for a long run

SEEDS = seeds(np.random.default_rng(13))
TEXT = {"ntu": parse_skeleton, "pkummd": parse_sequence}  # the parse step, whose rejections carry a line
JSON_READERS = ("nwucla", "kinetics", "toyota", "kinetics labels")
SKELETONS = {name: get_format(dataset).skeleton for name, dataset in
             (("ntu", "ntu120"), ("pkummd", "pkummd"), ("nwucla", "nwucla"), ("kinetics", "kinetics"), ("toyota", "toyota"))}

NUMBER = re.compile(rb"(?<![\w.+-])[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(?![\w.])")  # whole tokens, not "3" of pose3d
NASTY = [b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"1e999999999999999999", b"-1e999999999999999999",
         b"1e-999999999999999999", b"1e308", b"-1e308", b"3.4e38", b"1e39", b"1e6", b"-1000001", b"", b" ",
         b"1" * 30, b"9" * 19, b"9223372036854775807", b"9223372036854775808", b"-0", b"0x1F", b"1,5", b"1e",
         b"e5", b".", b"-", b"+-1", b"1.2.3", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf1"]


# --------------------------------------------------------------------------- the properties

def check_reader(name: str, data: bytes) -> None:
    """The promises every reader keeps on any bytes."""
    _, read = SEEDS[name]
    results = within(TIME_LIMIT, read, data)
    if isinstance(results, FormatError):  # a label file that is not one
        assert results.reason and name.endswith("labels")
        return
    if name == "pkummd labels":
        for number, row in results:
            assert number >= 1 and (isinstance(row, str) and row or len(row) == 4 and all(type(v) is int for v in row))
        return
    if name == "kinetics labels":
        for entry in results.values():
            assert isinstance(entry, str) and entry or type(entry[0]) is int and type(entry[1]) is bool
        return
    for result in results:
        if isinstance(result, FormatError):
            assert result.reason and type(result.line) is int and result.line >= 0
            continue
        seq, actors = result
        assert seq.dtype == np.float32 and seq.ndim == 4 and seq.shape[1] == 2 and len(seq) >= 1, seq.shape
        assert np.all(np.abs(seq) <= MAX_COORDINATE) and np.any(seq) and actors in (1, 2)  # finite, bounded
        skel = SKELETONS[name]  # what conversion stores next: the centred sequence, finite too
        assert np.all(np.isfinite(skeletons.centre_sequence(seq, actors, skel.centre, skel.is_2d)))
    if name in TEXT:
        try:
            within(TIME_LIMIT, TEXT[name], data)
        except FormatError as exc:
            assert exc.line >= 1, exc.reason


DEEP = "<deep>"  # stands for 5,000 nested lists, spliced into the text (json.dumps itself would recurse)


def check_json(name: str, doc) -> None:
    text = json.dumps(doc).replace(json.dumps(DEEP), "[" * 5000 + "0.5" + "]" * 5000)
    check_reader(name, text.encode())


# --------------------------------------------------------------------------- byte-level damage

@st.composite
def lines_edited(draw, data: bytes) -> bytes:
    """Lines deleted, duplicated, swapped or emptied (lying about the counts the file declares)."""
    lines = data.split(b"\n")
    for op, i, j in draw(st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "swap", "empty"]),
                                            st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=4)):
        if not lines:
            break
        i, j = i % len(lines), j % len(lines)
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        else:
            lines[i] = b""
    return b"\n".join(lines)


@st.composite
def numbers_replaced(draw, data: bytes) -> bytes:
    """Number tokens replaced by NaN, infinities, huge or long-exponent values, empty or
    malformed tokens, or random integers (a count that lies)."""
    spans = [m.span() for m in NUMBER.finditer(data)]
    if not spans:
        return data
    replacement = st.one_of(st.sampled_from(NASTY), st.integers(-(2**70), 2**70).map(lambda v: str(v).encode()),
                            st.floats(allow_nan=True, allow_infinity=True).map(lambda v: repr(v).encode()))
    chosen = draw(st.lists(st.tuples(st.integers(0, len(spans) - 1), replacement), min_size=1, max_size=4))
    out = data
    for k, token in sorted({k: t for k, t in chosen}.items(), reverse=True):  # right to left: spans stay valid
        a, b = spans[k]
        out = out[:a] + token + out[b:]
    return out


@st.composite
def zeroed(draw, data: bytes) -> bytes:
    """Most or all decimal values (coordinates, not counts or labels) set to 0: bodies,
    frames or whole files that hold nothing."""
    fraction = draw(st.sampled_from([1.0, 0.95, 0.5]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))

    def zero(m: re.Match) -> bytes:
        return b"0" if b"." in m.group(0) and rng.random() < fraction else m.group(0)

    return NUMBER.sub(zero, data)


MUTATIONS = {"truncated": truncated, "flipped": flipped, "lines": lines_edited, "numbers": numbers_replaced,
             "zeroed": zeroed}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize("name", list(SEEDS))
def test_damaged_bytes(name, mutation):
    data = SEEDS[name][0]
    check_reader(name, data)  # the seed itself is fine, and the reader is compiled before the clock runs

    @FUZZ
    @given(MUTATIONS[mutation](data))
    def run(damaged: bytes) -> None:
        check_reader(name, damaged)

    run()


# --------------------------------------------------------------------------- JSON structure

def nested(depth: int):
    node = [0.5]
    for _ in range(depth):
        node = [node]
    return node


JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.sampled_from(["1.5", "", "nan", "[]"]),
    st.integers(-(2**64), 2**64), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([3.4e38, -3.4e38, 1e308, 1e6, 1e-320, 0.0]),
    st.lists(st.floats(-2, 2), max_size=60), st.dictionaries(st.sampled_from(["pose", "score", "pose3d", "x"]),
                                                            st.integers(), max_size=3),
    st.sampled_from([50, 70]).map(nested), st.just(DEEP),  # numpy stops at 64 dimensions; orjson at 1024 levels
    st.sampled_from([10, 39, 200_000]).map(lambda n: [0.25] * n),  # huge arrays
)


@pytest.mark.parametrize("name", JSON_READERS)
def test_wrong_json_types_deep_nesting_and_huge_arrays(name):
    doc = json.loads(SEEDS[name][0])
    places = list(paths(doc))

    @FUZZ
    @given(st.lists(st.tuples(st.sampled_from(places), JSON_VALUES), min_size=1, max_size=3))
    def run(edits) -> None:
        check_json(name, edited(doc, edits))

    run()


def test_a_very_deep_document_is_a_bad_json_not_a_crash():
    for name in JSON_READERS:
        check_reader(name, b"[" * 100_000 + b"]" * 100_000)
        check_reader(name, b'{"skeletons": ' + b"[" * 3000 + b"]" * 3000 + b"}")
