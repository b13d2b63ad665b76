"""Importers of prebuilt files: the restricted unpickler, pyskl annotation pickles and
CTR-GCN's .npz files, checked against the same samples converted from raw NTU files."""
import io
import multiprocessing
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from s2i_cli import layout, safe_pickle, store
from s2i_cli.cli import app
from s2i_cli.convert import convert
from s2i_cli.formats import FormatError, get_format
from s2i_cli.formats.ctrgcn import npz_members, read_rows, real_frames
from s2i_cli.formats.ntu import parse_name, parse_skeleton, split_masks
from s2i_cli.formats.pyskl import split_protocols
from s2i_cli.info import store_summary
from s2i_kernels.ntu_select import select_actors
from tests.conftest import shared_data
from tests.ctrgcn_reference import two_actors

# --------------------------------------------------------------------------- restricted unpickler


class Reduce:
    """Pickles as a call of `func(*args)`: what a malicious file does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_plain_data_and_numpy_arrays_load_under_every_protocol():
    doc = {"a": np.arange(12, dtype=np.float16).reshape(2, 3, 2), "f": np.asfortranarray(np.eye(3)),
           "mixed": [1, 2.5, "x", (None, True), {3, 4}, frozenset({5}), 1 + 2j, b"\xff\x00", bytearray(b"ab")],
           "scalar": np.int64(7), "strings": np.array(["ab", "c"])}
    for protocol in (2, 3, 4, 5):
        got = safe_pickle.load(io.BytesIO(pickle.dumps(doc, protocol=protocol)))
        assert got["a"].dtype == np.float16 and np.array_equal(got["a"], doc["a"])
        assert np.array_equal(got["f"], doc["f"]) and got["mixed"] == doc["mixed"]
        assert got["scalar"] == 7 and got["scalar"].dtype == np.int64 and got["strings"].tolist() == ["ab", "c"]


def test_numpy1_and_numpy2_module_spellings_both_load():
    data = pickle.dumps({"k": np.ones((2, 2), np.float16)}, protocol=2)
    assert b"numpy._core.multiarray" in data  # written by NumPy 2
    numpy1 = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    for blob in (data, numpy1):
        assert np.array_equal(safe_pickle.load(io.BytesIO(blob))["k"], np.ones((2, 2)))


@pytest.mark.parametrize("make", [
    lambda flag: Reduce(os.system, f"touch {flag}"),
    lambda flag: Reduce(exec, f"open({str(flag)!r}, 'w').close()"),
    lambda flag: Reduce(eval, f"open({str(flag)!r}, 'w')"),
    lambda flag: Reduce(open, str(flag), "w"),
    lambda flag: Reduce(getattr, "text", "upper"),
    lambda flag: Reduce(__import__, "os"),
    lambda flag: Reduce(np.save, str(flag), np.zeros(1)),
    lambda flag: Reduce(np.load, str(flag)),
    lambda flag: Reduce(np.frombuffer, b"\0" * 8),
    lambda flag: np.array([1, "x"], dtype=object),  # object arrays: arbitrary objects inside
    lambda flag: Reduce(np.fromfile, "/etc/hostname"),
], ids=["os.system", "builtins.exec", "builtins.eval", "builtins.open", "builtins.getattr", "builtins.__import__",
        "numpy.save", "numpy.load", "numpy.frombuffer", "object array", "numpy.fromfile"])
def test_pickles_calling_anything_else_are_refused_without_running_it(make, tmp_path):
    flag = tmp_path / "ran"
    blob = pickle.dumps({"annotations": [make(flag)]}, protocol=2)
    with pytest.raises(safe_pickle.PickleRefused) as info:
        safe_pickle.load(io.BytesIO(blob))
    assert not flag.exists()
    assert "\n" not in str(info.value)


def test_refusal_names_the_class_and_a_file_gives_one_line(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps([Reduce(os.system, "true")], protocol=2))
    with pytest.raises(ValueError, match=r"refused to load posix\.system") as info:
        safe_pickle.load_path(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_allowed_globals_refuse_arguments_they_do_not_expect():
    import _codecs

    from numpy._core.multiarray import _reconstruct
    for bad in (Reduce(_codecs.encode, "abc", "zlib_codec"),  # only str -> latin1 bytes
                Reduce(_reconstruct, np.ma.MaskedArray, (0,), b"b"),  # another class
                Reduce(np.dtype, "O"),  # object dtype
                Reduce(np.ndarray, (2,), "f4", b"\0" * 8)):  # the class called directly
        with pytest.raises(safe_pickle.PickleRefused):
            safe_pickle.load(io.BytesIO(pickle.dumps(bad, protocol=2)))


def test_truncated_or_garbage_pickle_is_a_one_line_error(tmp_path):
    good = pickle.dumps({"annotations": [{"keypoint": np.ones((1, 5, 25, 3), np.float16)}]}, protocol=2)
    for name, data in {"cut.pkl": good[: len(good) // 2], "text.pkl": b"hello world\n", "empty.pkl": b""}.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError) as info:
            safe_pickle.load_path(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- .npz reading


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_rows_are_read_lazily_and_match(tmp_path, compressed):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 300, 150)).astype(np.float32)
    y = np.eye(60)[rng.integers(0, 60, 7)]
    path = tmp_path / "a.npz"
    (np.savez_compressed if compressed else np.savez)(path, x_train=x, y_train=y)
    members = npz_members(path)
    assert set(members) == {"x_train", "y_train"} and members["x_train"].compressed == compressed
    assert members["x_train"].shape == (7, 300, 150) and members["x_train"].dtype == np.float32
    rows = np.array([5, 2, 3])
    assert np.array_equal(read_rows(path, members["x_train"], rows), x[rows])
    assert np.array_equal(read_rows(path, members["y_train"], np.arange(7)), y)


def test_npz_real_length_and_second_body():
    frames = np.zeros((300, 150), np.float32)
    frames[:40, :75] = 1.0
    frames[10:20, 75:] = 2.0  # body 2 present in some frames
    seq, actors = real_frames(frames)
    assert seq.shape == (40, 2, 25, 3) and actors == 2 and np.all(seq[10:20, 1] == 2) and np.all(seq[20:, 1] == 0)
    frames[10:20, 75:] = 0.0
    assert real_frames(frames)[1] == 1
    with pytest.raises(FormatError, match="all zeros"):
        real_frames(np.zeros((300, 150), np.float32))
    frames[3, 7] = np.nan
    with pytest.raises(FormatError, match="non-finite"):
        real_frames(frames)


def test_truncated_or_foreign_npz_is_a_one_line_error(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x_train=np.ones((3, 300, 150), np.float32), y_train=np.eye(60)[:3])
    data = good.read_bytes()
    cases = {"cut.npz": data[: len(data) // 2], "text.npz": b"not a zip", "empty.npz": b""}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ValueError) as info:
            npz_members(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)
    # a zip whose central directory is intact but whose data was cut: the array does not fit
    cut = tmp_path / "hole.npz"
    with zipfile.ZipFile(cut, "w") as zf:
        zf.writestr("y_train.npy", (lambda b: (np.save(b, np.eye(60)[:3]), b.getvalue())[1])(io.BytesIO()))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (3, 300, 150)})
        zf.writestr("x_train.npy", header.getvalue() + b"\0" * 100)
    with pytest.raises(ValueError, match="truncated"):
        npz_members(cut)
