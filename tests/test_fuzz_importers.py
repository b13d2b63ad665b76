"""The fuzz suite of tests/test_fuzz.py, for the importers (issue 13 on issue 14's readers):
damaged pyskl annotation pickles and CTR-GCN .npz files go through a whole import, discovery
then reading every item, and for each file: no exception escapes but the one-line ValueError
that discovery documents, it returns within a time bound, every rejection has a reason,
every item's label names one of the reader's classes, and every sample read is finite and
has a frame. The same seeded, bounded budget (S2I_FUZZ_EXAMPLES)."""
from __future__ import annotations

import io
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2i_cli.encoder import skeletons
from s2i_cli.formats import FormatError, Item, Rejection
from s2i_cli.formats.base import MAX_COORDINATE
from tests.fuzzing import DELETE, FUZZ, TIME_LIMIT, edited, flipped, paths, truncated
from tests.samples import ctrgcn_arrays, import_bytes, npz_bytes, pyskl_doc, within

pytestmark = pytest.mark.slow  # 30 seeded examples per case; S2I_FUZZ_EXAMPLES=3000 for a long run

RNG = np.random.default_rng(14)
DOC = pyskl_doc(RNG)
ARRAYS = ctrgcn_arrays(RNG)
DEEP = "<deep>"  # stands for 100,000 nested lists, spliced into the pickle (pickle.dumps itself would recurse)
SEEDS = {"pyskl": pickle.dumps(DOC, protocol=2), "pyskl protocol 5": pickle.dumps(DOC, protocol=5),
         "ctrgcn": npz_bytes(ARRAYS), "ctrgcn compressed": npz_bytes(ARRAYS, compressed=True)}


# --------------------------------------------------------------------------- the properties

def check_import(dataset: str, data: bytes) -> None:
    """The promises an importer keeps on any file."""
    with tempfile.TemporaryDirectory() as folder:
        got = within(TIME_LIMIT, import_bytes, dataset, data, Path(folder))
    if isinstance(got, str):  # the whole file refused: one line that names it
        assert got and "\n" not in got and ("ntu60_3danno.pkl" in got or "NTU60_CS.npz" in got), got
        return
    fmt, items, rejected, results = got
    for r in rejected:
        assert isinstance(r, Rejection) and r.name and r.reason and "\n" not in r.reason, r
    assert len({it.name for it in items}) == len(items) and len(results) == len(items)
    for it, result in zip(items, results):
        assert isinstance(it, Item) and type(it.label) is int and 0 <= it.label < len(fmt.class_names), it
        assert "\n" not in it.name and all(type(v) is int for v in it.meta.values()), it
        if isinstance(result, FormatError):
            assert result.reason and "\n" not in result.reason
            continue
        seq, actors = result
        assert seq.dtype == np.float32 and seq.ndim == 4 and seq.shape[1] == 2 and len(seq) >= 1, seq.shape
        assert np.all(np.abs(seq) <= MAX_COORDINATE) and np.any(seq) and actors in (1, 2)  # finite, bounded
        skel = fmt.skeleton  # what conversion stores next: the centred sequence, finite too
        assert np.all(np.isfinite(skeletons.centre_sequence(seq, actors, skel.centre, skel.is_2d)))


def test_the_seeds_import_whole():
    for name, data in SEEDS.items():
        dataset = name.split()[0]
        fmt, items, rejected, results = import_bytes(dataset, data, Path(tempfile.mkdtemp()))
        assert len(items) == 3 and not rejected and not any(isinstance(r, FormatError) for r in results), name
        assert sorted(a for _, a in results) == [1, 1, 2]
        check_import(dataset, data)


# --------------------------------------------------------------------------- byte-level damage

HUGE_OPS = [b"X\xff\xff\xff\x7f", b"B\xff\xff\xff\x7f", b"\x8b\xff\xff\xff\x7f", b"r\xff\xff\xff\x0f",
            b"j\xff\xff\xff\x0f", b"\x8e\xff\xff\xff\xff\xff\xff\xff\x7f", b"(" * 50_000, b"]" * 50_000]


@st.composite
def huge_sizes(draw, data: bytes) -> bytes:
    """An opcode declaring a huge length, memo index or depth, inserted anywhere."""
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.sampled_from(HUGE_OPS)) + data[at:]


MUTATIONS = {"truncated": truncated, "flipped": flipped, "huge sizes": huge_sizes}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize("name", list(SEEDS))
def test_damaged_bytes(name, mutation):
    dataset = name.split()[0]

    @FUZZ
    @given(MUTATIONS[mutation](SEEDS[name]))
    def run(damaged: bytes) -> None:
        check_import(dataset, damaged)

    run()


# --------------------------------------------------------------------------- pyskl structure

class LyingArray:
    """Pickles as NumPy writes an array, but with a shape its data does not fill."""

    def __init__(self, shape: tuple[int, ...], dtype: str = "<f2", data: bytes = b"\0" * 16):
        self.shape, self.dtype, self.data = shape, dtype, data

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct
        return _reconstruct, (np.ndarray, (0,), b"b"), (1, self.shape, np.dtype(self.dtype), False, self.data)


def kp(*shape: int, value: float | None = None, dtype=np.float16) -> np.ndarray:
    out = RNG.normal(size=shape).astype(dtype) if value is None else np.full(shape, value, dtype)
    return out


VALUES = st.one_of(
    st.none(), st.booleans(), st.sampled_from(["1.5", "", "S001C001P001R001A001", "x_train", "a\nb", "train"]),
    st.integers(-(2**64), 2**64), st.sampled_from([2**63 - 1, 10**18, 59, 60, 119, 120, 999, -1, 0]),
    st.floats(), st.sampled_from([np.int64(3), np.uint64(2**64 - 1), np.float16(2), np.bool_(True)]),
    st.lists(st.floats(-2, 2), max_size=5), st.just([["S001C001P001R001A001"]]), st.just({}), st.just([]),
    st.just(DEEP), st.just(DOC["annotations"][0]["keypoint"].tolist()),  # keypoint as a list
    st.sampled_from([kp(1, 4, 25, 3), kp(4, 25, 3), kp(1, 1, 4, 25, 3), kp(1, 0, 25, 3), kp(0, 4, 25, 3),
                     kp(1, 4, 17, 2), kp(1, 4, 25, 2), kp(3, 4, 25, 3), kp(1, 4, 25, 3, dtype=np.float64),
                     kp(1, 4, 25, 3, value=np.nan), kp(1, 4, 25, 3, value=np.inf), kp(1, 4, 25, 3, value=0),
                     kp(1, 4, 25, 3, value=65504), kp(1, 4, 25, 3, value=1e300, dtype=np.float64),
                     kp(1, 4, 25, 3, value=3e38, dtype=np.float32), kp(1, 4, 25, 3, value=-3e38, dtype=np.float32),
                     np.ones((1, 4, 25, 3), np.int16), np.ones((1, 4, 25, 3), np.complex64), np.array(["a", "b"]),
                     np.ones((1, 4, 25, 3), bool), np.ones((1, 4, 25), np.float16), np.array(3.5),
                     np.ones((1, 4, 25, 3), ">f4")]),
    st.sampled_from([LyingArray((10**12, 25, 3)), LyingArray((2**62, 2**62)), LyingArray((-1,)),
                     LyingArray((1, 4, 25, 3), data=b"\0" * 600)]),
)


def pyskl_bytes(doc, protocol: int = 2) -> bytes:
    data = pickle.dumps(doc, protocol=protocol)
    deep = pickle.dumps(DEEP, protocol=protocol)[2:-1]  # the string's opcode, as in the document
    deep = deep[:-2] if deep[-2:-1] == b"q" else deep  # without its memo store
    return data.replace(deep, b"(" * 100_000 + b"l" * 100_000)


def test_pyskl_wrong_keys_types_shapes_and_values():
    spots = list(paths(DOC))  # arrays are leaves

    @FUZZ
    @given(st.lists(st.tuples(st.sampled_from(spots), st.one_of(VALUES, st.just(DELETE))), min_size=1, max_size=3),
           st.sampled_from([2, 5]))
    def run(edits, protocol) -> None:
        check_import("pyskl", pyskl_bytes(edited(DOC, edits), protocol))

    run()


# --------------------------------------------------------------------------- CTR-GCN structure

def lying_npy(array: np.ndarray, shape: tuple[int, ...]) -> bytes:
    """`.npy` bytes of `array`'s data under a header that declares `shape`."""
    buf = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(array)
    np.lib.format.write_array_header_1_0(buf, {**header, "shape": shape})
    buf.write(array.tobytes())
    return buf.getvalue()


X, Y = ARRAYS["x_train"], ARRAYS["y_train"]
NPZ_VALUES = st.sampled_from([
    X[:, :, :75], X[0], X[None], X.astype(np.float64) * 1e300, X.astype(np.float16), X.astype(np.int32),
    X.astype(bool), X.astype(np.complex64), X.astype(object), X.astype(">f4"), np.full_like(X, np.nan),
    np.full_like(X, np.inf), np.full_like(X, 3e38), np.zeros_like(X), X[:, :0], X[:0], np.asfortranarray(X),
    np.array(["a", "b"]), Y[:1], Y * 2, Y[:, :1], np.array([4.0, 7.5]), np.array([4, -1]), np.array([4, 10**18]),
    np.array([np.nan, 1.0]), np.array([3.0, 1e300]), np.array([3, 2**63 - 1], np.uint64), Y.astype(bool), Y[:, None],
    np.zeros_like(Y), Y.astype("U1"), np.ones((2, 10**5), np.int8),
    lying_npy(X, (10**12, 12, 150)), lying_npy(X, (2, 10**9, 150)), lying_npy(Y, (10**9, 60)),
    lying_npy(Y, (10**12,)), lying_npy(X, (-1, 12, 150)), lying_npy(X, (2, 12, 149)), lying_npy(Y, ()),
    b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}", b"", b"not a numpy file",
])


def test_ctrgcn_wrong_keys_types_shapes_and_values():
    @FUZZ
    @given(st.lists(st.tuples(st.sampled_from([*ARRAYS, "x_val", "data"]), st.one_of(NPZ_VALUES, st.just(DELETE))),
                    min_size=1, max_size=3), st.booleans())
    def run(edits, compressed) -> None:
        arrays = dict(ARRAYS)
        for key, value in edits:
            if value is DELETE:
                arrays.pop(key, None)
            else:
                arrays[key] = value
        check_import("ctrgcn", npz_bytes(arrays, compressed))

    run()
