"""Importers of prebuilt files: the restricted unpickler, pyskl annotation pickles and
CTR-GCN's .npz files, checked against the same samples converted from raw NTU files."""
import io
import multiprocessing
import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from s2i_cli import store
from s2i_cli.cli import app
from s2i_cli.convert.flow import convert
from s2i_cli.encoder import skeletons
from s2i_cli.formats import safe_pickle
from s2i_cli.formats import FormatError, get_format
from s2i_cli.formats.ctrgcn import npz_members, read_rows, real_frames
from s2i_cli.formats.ntu import parse_name, parse_skeleton, split_masks
from s2i_cli.formats.pyskl import split_protocols
from s2i_cli.kernels.ntu_select import select_actors
from s2i_cli.views.info import store_summary
from tests.samples import within
from tests.ctrgcn_reference import ctrgcn_rows

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
           "scalar": np.int64(7), "strings": np.array(["ab", "c"]),
           "transposed": np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2)}  # protocol 5: order "K" + axis order
    for protocol in (2, 3, 4, 5):
        got = safe_pickle.load(io.BytesIO(pickle.dumps(doc, protocol=protocol)))
        assert got["a"].dtype == np.float16 and np.array_equal(got["a"], doc["a"])
        assert np.array_equal(got["f"], doc["f"]) and got["mixed"] == doc["mixed"]
        assert got["scalar"] == 7 and got["scalar"].dtype == np.int64 and got["strings"].tolist() == ["ab", "c"]
        assert np.array_equal(got["transposed"], doc["transposed"])


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
                Reduce(np.ndarray, (2,), "f4", b"\0" * 8),  # the class called directly
                Reduce(_reconstruct, np.ndarray, (10**12,), b"b"),  # a huge placeholder
                Reduce(bytearray, 10**10)):  # ten gigabytes of zeros
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
    with pytest.raises(FormatError, match="not finite"):
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


# --------------------------------------------------------------------------- pyskl and CTR-GCN against raw NTU


@pytest.fixture(scope="module")
def ntu_store(ntu_dir, ntu60_store) -> tuple[Path, zarr.Group]:
    """The real NTU files and `s2i convert ntu60` of them (48 px)."""
    return ntu_dir, zarr.open_group(str(ntu60_store), mode="r")


def selected(path: Path) -> tuple[np.ndarray, int]:
    """The repo's own parse + selection of one raw file: (T, 2, 25, 3) camera coordinates."""
    return select_actors(*parse_skeleton(path.read_bytes()))


def write_pyskl(path: Path, raw: Path) -> list[str]:
    """A pyskl-style NTU 3D pickle of every NTU60 file under `raw`, as pyskl releases them:
    float16 camera coordinates (not centred), M×T×25×3, protocol 2, xsub/xview split lists."""
    names, annotations = [], []
    for f in sorted(raw.glob("*.skeleton")):
        seq, actors = selected(f)
        kp = seq[:, :actors].transpose(1, 0, 2, 3).astype(np.float16)
        annotations.append({"frame_dir": f.stem, "label": parse_name(f.stem)["action"] - 1, "img_shape": (1080, 1920),
                            "original_shape": (1080, 1920), "total_frames": kp.shape[1], "keypoint": kp})
        names.append(f.stem)
    meta = {k: np.array([parse_name(n)[k] for n in names]) for k in ("subject", "camera", "setup")}
    split = {}
    for protocol, train in split_masks("ntu60", meta).items():
        split[f"{protocol}_train"] = [n for n, t in zip(names, train) if t]
        split[f"{protocol}_val"] = [n for n, t in zip(names, train) if not t]
    path.write_bytes(pickle.dumps({"split": split, "annotations": annotations}, protocol=2))
    return names


def test_pyskl_pickle_from_real_ntu_files_equals_ntu60_conversion(ntu_store, tmp_path):
    raw, ref = ntu_store
    pkl = tmp_path / "ntu60_3danno.pkl"
    write_pyskl(pkl, raw)
    result = CliRunner().invoke(app, ["convert", "pyskl", str(pkl), str(tmp_path / "p.zarr"), "--size", "48",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    got = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")
    n = ref["label"].shape[0]
    assert got["name"][:].tolist() == ref["name"][:].tolist() and n == 16
    assert np.array_equal(got["label"][:], ref["label"][:]) and np.array_equal(got["actors"][:], ref["actors"][:])
    for field in ("setup", "camera", "subject", "replication"):
        assert np.array_equal(got["meta"][field][:], ref["meta"][field][:])
    for protocol in ("xsub", "xview"):
        for side in ("train", "test"):
            assert np.array_equal(got[f"splits/{protocol}/{side}"][:], ref[f"splits/{protocol}/{side}"][:])
    assert got.attrs["s2i"]["skeleton"] == "ntu25" and got.attrs["s2i"]["class_names"] == ref.attrs["s2i"]["class_names"]
    for i in range(n):
        a, b = store.read_skeleton(got, i), store.read_skeleton(ref, i)
        raw_seq = selected(raw / f"{ref['name'][i]}.skeleton")[0]
        # float16 keeps 11 significant bits: a coordinate is off by at most half a float16 step at its
        # magnitude, and centring subtracts an origin off by as much again
        half_step = np.spacing(np.float16(np.abs(raw_seq).max())).astype(np.float32) / 2
        assert a.shape == b.shape and np.abs(a - b).max() <= 2 * half_step, ref["name"][i]
        # an image pixel is a blend of coordinates scaled by 255 / range: the same error, plus one
        # level of rounding at the quantisation
        norm = ref["norm"][i]
        levels = 255 * 2 * half_step / (norm[:, 1] - norm[:, 0]).min()
        diff = np.abs(got["images"][i].astype(int) - ref["images"][i].astype(int))
        assert diff.max() <= int(np.ceil(levels)) + 1, (ref["name"][i], diff.max(), levels)
        assert np.abs(got["norm"][i] - norm).max() <= 2 * half_step


def test_ctrgcn_npz_from_real_ntu_files_equals_ntu60_conversion(ntu_store, tmp_path):
    raw, ref = ntu_store
    names = ref["name"][:].tolist()
    train = ref["splits/xsub/train"][:]
    sides = {"train": [names[i] for i in train], "test": [n for i, n in enumerate(names) if i not in set(train)]}
    arrays = {}
    for side, members in sides.items():
        arrays[f"x_{side}"] = np.stack([ctrgcn_rows(raw / f"{n}.skeleton") for n in members])
        arrays[f"y_{side}"] = np.eye(60)[[parse_name(n)["action"] - 1 for n in members]]
    npz = tmp_path / "NTU60_CS.npz"
    np.savez(npz, **arrays)
    report = convert("ctrgcn", npz, tmp_path / "c.zarr", size=48, progress=False)
    assert report.written == 16 and not report.rejected and report.splits == {"xsub": (len(train), 16 - len(train))}
    got = zarr.open_group(str(tmp_path / "c.zarr"), mode="r")
    got_names = got["name"][:].tolist()
    expected = sorted([f"test_{k:06d}" for k in range(len(sides["test"]))] +
                      [f"train_{k:06d}" for k in range(len(sides["train"]))])
    assert got_names == expected
    for j, name in enumerate(got_names):
        split, row = name.split("_")
        i = names.index(sides[split][int(row)])
        assert got["label"][j] == ref["label"][i] and got["actors"][j] == ref["actors"][i], name
        assert np.allclose(store.read_skeleton(got, j), store.read_skeleton(ref, i), atol=1e-6), name
        assert np.abs(got["images"][j].astype(int) - ref["images"][i].astype(int)).max() <= 1, name
    assert set(got["splits/xsub/train"][:].tolist()) == {k for k, n in enumerate(got_names) if n.startswith("train")}
    summary = store_summary(got)
    assert summary["splits"] == {"xsub": {"train": len(train), "test": 16 - len(train)}}
    assert "<split>_<row>" in summary["description"]
    info = CliRunner().invoke(app, ["info", str(tmp_path / "c.zarr")])
    assert info.exit_code == 0 and "<split>_<row>" in " ".join(info.output.split())


# --------------------------------------------------------------------------- pyskl 2D, splits, bad input


def coco_annotation(rng, name: str, label: int, persons: int = 3, frames: int = 9) -> dict:
    """A made-up HRNet annotation: COCO-17 keypoints in pixels with scores; frame 4 has nobody,
    joint 3 of person 1 is undetected in frame 0."""
    kp = rng.uniform(10, 500, size=(persons, frames, 17, 2)).astype(np.float16)
    score = rng.uniform(0.2, 1.0, size=(persons, frames, 17)).astype(np.float16)
    score[:, 4] = 0
    score[0, 0, 3] = 0
    return {"frame_dir": name, "label": label, "total_frames": frames, "img_shape": (480, 640), "keypoint": kp,
            "keypoint_score": score}


@pytest.mark.slow
def test_pyskl_2d_coco17_file_keeps_two_persons_and_drops_empty_frames(tmp_path):
    rng = np.random.default_rng(1)
    anns = [coco_annotation(rng, f"v_{k:02d}", k % 3, persons=1 if k == 2 else 3) for k in range(6)]
    split = {"train1": ["v_00", "v_01", "v_02"], "test1": ["v_03", "v_04"], "train2": ["v_05"], "test2": ["v_00"]}
    pkl = tmp_path / "hmdb51_hrnet.pkl"
    pkl.write_bytes(pickle.dumps({"split": split, "annotations": anns}, protocol=2))
    fmt = get_format("pyskl")
    items, rejected, ignored = fmt.discover(pkl)
    assert fmt.skeleton is skeletons.COCO17 and fmt.protocols == ("split1", "split2") and not rejected and not ignored
    assert fmt.class_names == ("class 0", "class 1", "class 2") and fmt.meta_fields == ("split1", "split2")
    assert [it.meta for it in items[:2]] == [{"split1": 0, "split2": 1}, {"split1": 0, "split2": -1}]
    (seq, actors), = fmt.read_items(items[0].path, b"", [items[0]])
    kp, score = anns[0]["keypoint"].astype(np.float32), anns[0]["keypoint_score"].astype(np.float32)
    expected = np.concatenate([kp * (score > 0)[..., None], score[..., None]], axis=-1)[:2]
    assert actors == 2 and np.array_equal(seq, np.delete(expected, 4, axis=1).transpose(1, 0, 2, 3))
    assert seq[0, 0, 3].tolist() == [0, 0, 0]  # undetected: x = y = 0
    (seq, actors), = fmt.read_items(items[2].path, b"", [items[2]])
    assert actors == 1 and np.all(seq[:, 1] == 0)
    report = convert("pyskl", pkl, tmp_path / "o.zarr", size=32, progress=False)
    assert report.written == 6 and report.splits == {"split1": (3, 2), "split2": (1, 1)}
    root = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    assert root.attrs["s2i"]["skeleton"] == "coco17" and root.attrs["s2i"]["channels"][2] == "confidence"
    shown = CliRunner().invoke(app, ["show", str(tmp_path / "o.zarr"), "--index", "0", "--out", str(tmp_path / "s.png")])
    assert shown.exit_code == 0 and (tmp_path / "s.png").stat().st_size > 1000, shown.output


def test_split_names_pair_into_protocols():
    got = split_protocols({"xsub_train": ["a"], "xsub_val": ["b"], "xview_train": [], "xview_val": ["a"],
                           "train": ["c"], "val": ["d"], "train3": ["e"], "test3": ["f"], "xval_train": ["g"]})
    assert got == {"xsub": {"train": {"a"}, "test": {"b"}}, "xview": {"train": set(), "test": {"a"}},
                   "release": {"train": {"c"}, "test": {"d"}}, "split3": {"train": {"e"}, "test": {"f"}},
                   "xval": {"train": {"g"}, "test": set()}}
    with pytest.raises(ValueError, match="'fold'"):
        split_protocols({"fold": ["a"]})
    with pytest.raises(ValueError, match="'xsub_val' and 'xsub_test' are both the test side of xsub"):
        split_protocols({"xsub_val": [], "xsub_test": ["a"]})


def ntu_annotation(name: str, frames: int = 20, persons: int = 1) -> dict:
    rng = np.random.default_rng(len(name) + frames)
    kp = rng.normal(0, 0.5, size=(persons, frames, 25, 3)).astype(np.float16) + np.float16(3)
    return {"frame_dir": name, "label": parse_name(name)["action"] - 1, "total_frames": frames, "keypoint": kp}


def test_pyskl_bad_samples_are_rejected_with_their_reason(tmp_path):
    good = ntu_annotation("S001C001P001R001A001")
    bad = {
        "S001C001P001R001A002": dict(ntu_annotation("S001C001P001R001A002"), label=5),
        "S001C001P001R001A003": dict(ntu_annotation("S001C001P001R001A003"), total_frames=99),
        "S001C001P001R001A004": dict(ntu_annotation("S001C001P001R001A004"),
                                     keypoint=np.ones((1, 20, 17, 3), np.float16)),
        "S001C001P001R001A005": dict(ntu_annotation("S001C001P001R001A005"),
                                     keypoint=np.full((1, 20, 25, 3), np.inf, np.float16)),
        "S001C001P001R001A006": dict(ntu_annotation("S001C001P001R001A006"),
                                     keypoint=np.zeros((1, 20, 25, 3), np.float16)),
        "S001C001P001R001A007": {"frame_dir": "S001C001P001R001A007", "label": 6},
        "S001C001P001R001A008": dict(ntu_annotation("S001C001P001R001A008"), label="8"),
    }
    reasons = {"S001C001P001R001A002": "disagrees with the name's action", "S001C001P001R001A003": "total_frames 99",
               "S001C001P001R001A004": "M×T×25×3", "S001C001P001R001A005": "not finite",
               "S001C001P001R001A006": "all zeros", "S001C001P001R001A007": "'keypoint' is not a float array",
               "S001C001P001R001A008": "label '8'", "S001C001P001R001A001": "name seen before"}
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(pickle.dumps({"split": {"xsub_train": list(reasons) + ["S009C001P001R001A001"]},
                                  "annotations": [good, *bad.values(), good]}, protocol=2))
    result = CliRunner().invoke(app, ["convert", "pyskl", str(pkl), str(tmp_path / "o.zarr"), "--size", "16",
                                      "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    root = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    assert root["name"][:].tolist() == ["S001C001P001R001A001"]
    got = {r["name"]: r["reason"] for r in root.attrs["s2i"]["rejected"]}
    assert set(got) == set(reasons)
    for name, fragment in reasons.items():
        assert fragment in got[name], (name, got[name])
    assert root.attrs["s2i"]["ignored"] == {"named in a split list but not in annotations": 1}


@pytest.mark.parametrize("doc, fragment", [
    ({"annotations": [{"frame_dir": "x", "raw_file": "kpfiles/x.pkl", "label": 1}]}, "Kinetics-400 variant"),
    ({"split": {}}, "no 'annotations' list"),
    ([1, 2], "no annotation has a 'keypoint'"),
    ({"annotations": [{"keypoint": np.zeros((1, 2, 18, 2))}]}, "18 joints × 2 values without scores"),
    ({"split": {"fold1": []}, "annotations": [ntu_annotation("S001C001P001R001A001")]}, "'fold1'"),
    ("evil", "refused to load posix.system"),
    ("cut", "not a complete pickle"),
])
def test_pyskl_bad_files_are_one_line_errors(tmp_path, doc, fragment):
    pkl = tmp_path / "in.pkl"
    if doc == "evil":
        pkl.write_bytes(pickle.dumps({"annotations": [Reduce(os.system, f"touch {tmp_path / 'ran'}")]}, protocol=2))
    elif doc == "cut":
        blob = pickle.dumps({"annotations": [ntu_annotation("S001C001P001R001A001")]}, protocol=2)
        pkl.write_bytes(blob[: len(blob) - 40])
    else:
        pkl.write_bytes(pickle.dumps(doc, protocol=2))
    result = CliRunner().invoke(app, ["convert", "pyskl", str(pkl), str(tmp_path / "o.zarr"), "--no-progress"])
    assert result.exit_code == 2 and fragment in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output and not (tmp_path / "ran").exists()
    assert len(result.output.strip().splitlines()) == 1


def test_ctrgcn_bad_rows_are_rejected_and_bad_files_are_one_line_errors(tmp_path):
    x = np.zeros((4, 300, 150), np.float32)
    x[:, :30, :75] = np.random.default_rng(0).normal(size=(4, 30, 75))
    x[1, 5, 0] = np.nan
    x[2] = 0
    y = np.eye(120)[[3, 4, 5, 6]]
    y[3, 7] = 1  # two classes
    npz = tmp_path / "NTU120_CSet.npz"
    np.savez(npz, x_test=x, y_test=y)
    report = convert("ctrgcn", npz, tmp_path / "o.zarr", size=16, progress=False)
    assert report.written == 1 and report.splits == {"xset": (0, 1)}
    assert {r.name: r.reason for r in report.rejected} == {
        "test_000001": "a value is not finite or beyond ±1e+06", "test_000002": "every frame is all zeros",
        "test_000003": "y_test row 3 is not one-hot (or a label in 0-9999)"}
    root = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    assert len(root.attrs["s2i"]["class_names"]) == 120 and root["frames"][0] == 30
    cases = {"wrong.npz": {"x_train": np.zeros((2, 300, 75), np.float32), "y_train": np.eye(60)[:2]},
             "labels.npz": {"x_train": np.zeros((2, 300, 150), np.float32), "y_train": np.eye(60)[:3]},
             "none.npz": {"data": np.zeros(3)}}
    fragments = {"wrong.npz": "not float (N, frames, 150)", "labels.npz": "not one-hot (2, classes)",
                 "none.npz": "no x_train/y_train", "cut.npz": "not a complete .npz", "a.pkl": "is not a .npz file"}
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
    (tmp_path / "cut.npz").write_bytes(npz.read_bytes()[:5000])
    (tmp_path / "a.pkl").write_bytes(b"")
    for name, fragment in fragments.items():
        result = CliRunner().invoke(app, ["convert", "ctrgcn", str(tmp_path / name), str(tmp_path / f"{name}.zarr")])
        assert result.exit_code == 2 and fragment in result.output, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def read_in_child(name, items):
    """A worker's view: a reader made afresh from the dataset name, then the items it is sent."""
    fmt = get_format(name)
    seqs = fmt.read_items(items[0].path, b"", items)
    return seqs, fmt.skeleton.name, fmt.meta_fields, fmt.class_names


@pytest.mark.slow
def test_discovered_items_are_read_in_another_process(tmp_path):
    """A shard converted in a worker process gets its items by pickling and makes its reader
    afresh: the items say where their samples are (file + offset/row), and what discovery
    learnt from the file (pyskl: skeleton, fields, classes) is found from them."""
    rng = np.random.default_rng(2)
    pkl = tmp_path / "a.pkl"
    pkl.write_bytes(pickle.dumps({"split": {"train": ["v0", "v1"], "val": ["v2", "v3"]},
                                  "annotations": [coco_annotation(rng, f"v{k}", k) for k in range(5)]}, protocol=2))
    npz = tmp_path / "b.npz"
    x = np.zeros((5, 300, 150), np.float32)
    x[:, :12] = rng.normal(size=(5, 12, 150))
    np.savez(npz, x_train=x, y_train=np.eye(60)[:5])
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        for name, path in (("pyskl", pkl), ("ctrgcn", npz)):
            fmt = get_format(name)
            items = fmt.discover(path)[0][1:4]
            here = fmt.read_items(items[0].path, b"", items)
            there, skeleton, fields, classes = pool.apply(read_in_child, (name, items))
            assert (skeleton, fields, classes) == (fmt.skeleton.name, fmt.meta_fields, fmt.class_names)
            assert name == "ctrgcn" or (skeleton, fields) == ("coco17", ("release",))
            assert [a for _, a in there] == [a for _, a in here]
            assert all(np.array_equal(s, t) for (s, _), (t, _) in zip(here, there)), name


def test_every_truncation_and_byte_flip_of_a_pickle_is_an_error_or_plain_data():
    """Bad bytes anywhere give ValueError (one line) or data of the allowed kinds, nothing else."""
    blob = pickle.dumps({"split": {"xsub_train": ["a"]}, "annotations": [
        {"frame_dir": "a", "label": 3, "keypoint": np.ones((1, 4, 25, 3), np.float16)}]}, protocol=2)
    rng = np.random.default_rng(0)
    mutants = [blob[:k] for k in range(len(blob))]
    for k in rng.integers(0, len(blob), 400):
        mutant = bytearray(blob)
        mutant[k] = int(rng.integers(0, 256))
        mutants.append(bytes(mutant))
    for mutant in mutants:
        try:
            safe_pickle.load_file(io.BytesIO(mutant), "x.pkl")
        except ValueError as exc:
            assert str(exc).startswith("x.pkl: ") and "\n" not in str(exc)


def test_every_truncation_of_an_npz_is_a_one_line_error(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x_train=np.ones((2, 300, 150), np.float32), y_train=np.eye(60)[:2])
    data = good.read_bytes()
    path = tmp_path / "cut.npz"
    for k in [*range(0, len(data), 9973), *range(len(data) - 400, len(data), 7)]:  # the directory is at the end
        path.write_bytes(data[:k])
        with pytest.raises(ValueError) as info:
            npz_members(path)
        assert "\n" not in str(info.value)


def test_a_huge_memo_index_allocates_nothing():
    """One flipped byte can turn a memo index into 268 million: the C unpickler then grows its
    memo array to 2 GB. The restricted unpickler's memo is a dict."""
    import tracemalloc

    tracemalloc.start()
    try:
        assert safe_pickle.load(io.BytesIO(b"\x80\x02Nr\xff\xff\xff\x0f.")) is None
        assert tracemalloc.get_traced_memory()[1] < 10_000_000
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_importers_convert_in_worker_processes_as_in_one(tmp_path):
    """Shard tasks in two worker processes give the same store as one process."""
    rng = np.random.default_rng(5)
    pkl = tmp_path / "a.pkl"
    pkl.write_bytes(pickle.dumps({"split": {"train": [f"v{k}" for k in range(6)], "val": ["v6", "v7", "v8"]},
                                  "annotations": [coco_annotation(rng, f"v{k}", k % 4) for k in range(9)]},
                                 protocol=2))
    npz = tmp_path / "NTU60_CV.npz"
    x = np.zeros((9, 300, 150), np.float32)
    x[:, :15] = rng.normal(size=(9, 15, 150))
    np.savez(npz, x_train=x[:5], y_train=np.eye(60)[:5], x_test=x[5:], y_test=np.eye(60)[5:9])
    for name, path in (("pyskl", pkl), ("ctrgcn", npz)):
        stores = []
        for workers in (1, 2):
            out = tmp_path / f"{name}{workers}.zarr"
            report = convert(name, path, out, size=16, shard=4, workers=workers, progress=False)
            assert report.written == 9 and not report.rejected, (name, workers)
            stores.append(zarr.open_group(str(out), mode="r"))
        one, two = stores
        assert one["name"][:].tolist() == two["name"][:].tolist()
        for key in ("images", "label", "frames", "actors", "norm"):
            assert np.array_equal(one[key][:], two[key][:]), (name, key)
        for i in range(9):
            assert np.array_equal(store.read_skeleton(one, i), store.read_skeleton(two, i)), (name, i)
        assert one.attrs["s2i"]["protocols"] == two.attrs["s2i"]["protocols"] == [
            "release" if name == "pyskl" else "xview"]


# --------------------------------------------------------------------------- found by tests/test_fuzz_importers.py


def deep_pickle(doc, sentinel: str = "<deep>", depth: int = 100_000) -> bytes:
    """`doc` pickled with every `sentinel` string made a list nested `depth` deep."""
    data = pickle.dumps(doc, protocol=2)
    return data.replace(pickle.dumps(sentinel, protocol=2)[2:-3], b"(" * depth + b"l" * depth)


@pytest.mark.parametrize("where, fragment", [
    ("frame_dir", None), ("label", "label a list is not an integer"), ("total_frames", "total_frames a list"),
    ("split name", "not a list of frame_dir strings"), ("split key", "split 7 is not named <protocol>_train"),
])
@pytest.mark.parametrize("depth", [50, 100_000])
def test_pyskl_deeply_nested_values_are_reasons_not_recursion_errors(tmp_path, where, fragment, depth):
    """Nested 50 deep: the sample's reason; 100,000 deep: the whole file, one line (the
    reader refuses containers nested more than safe_pickle.MAX_DEPTH deep)."""
    ann = ntu_annotation("S001C001P001R001A001")
    other = ntu_annotation("S001C001P001R001A002")
    split = {"xsub_train": ["S001C001P001R001A001"]}
    if where in ("frame_dir", "label", "total_frames"):
        other[where] = "<deep>"
    elif where == "split name":
        split["xsub_train"].append("<deep>")
    else:
        split = {7: ["<deep>"]}
    pkl = tmp_path / "in.pkl"
    pkl.write_bytes(deep_pickle({"split": split, "annotations": [ann, other]}, depth=depth))
    fmt = get_format("pyskl", cache_dir=str(tmp_path / "c"))
    if depth > safe_pickle.MAX_DEPTH:
        with pytest.raises(ValueError, match="nested more than") as info:
            fmt.discover(pkl)
        assert str(info.value).startswith(str(pkl)) and "\n" not in str(info.value)
        return
    if where.startswith("split"):
        with pytest.raises(ValueError, match=fragment) as info:
            fmt.discover(pkl)
        assert str(info.value).startswith(str(pkl)) and "\n" not in str(info.value)
        return
    items, rejected, _ = fmt.discover(pkl)
    assert [it.name for it in items] == ["S001C001P001R001A001"] and len(rejected) == 1
    assert fragment is None and "'frame_dir' string" in rejected[0].reason or fragment in rejected[0].reason


def test_pyskl_labels_are_bounded_and_ntu_names_beyond_120_actions_are_plain_names(tmp_path):
    """A label of 10**18 made discovery build 10**18 class names (it never ended); A500 in an
    NTU-style name gave label 499 beside 120 NTU class names."""
    anns = [dict(coco_annotation(np.random.default_rng(k), f"v{k}", k)) for k in range(3)]
    anns[2]["label"] = 10**18
    pkl = tmp_path / "a.pkl"
    pkl.write_bytes(pickle.dumps({"annotations": anns}, protocol=2))
    fmt = get_format("pyskl", cache_dir=str(tmp_path / "c"))
    items, rejected, _ = within(10, fmt.discover, pkl)
    assert [it.name for it in items] == ["v0", "v1"] and fmt.class_names == ("class 0", "class 1")
    assert rejected[0].reason == "label 1000000000000000000 is not an integer in 0-9999"
    ann = ntu_annotation("S001C001P001R001A001")
    anns = [ann, dict(ann, frame_dir="S001C001P001R001A500", label=499)]
    pkl.write_bytes(pickle.dumps({"annotations": anns}, protocol=2))
    items, rejected, _ = get_format("pyskl", cache_dir=str(tmp_path / "d")).discover(pkl)
    fmt = get_format("pyskl", cache_dir=str(tmp_path / "e"))
    items, rejected, _ = fmt.discover(pkl)
    assert not rejected and len(fmt.class_names) == 500 and fmt.meta_fields == ()
    assert all(it.label < len(fmt.class_names) for it in items)


def npy_with_header(header: str, data: bytes = b"") -> bytes:
    text = header.encode().ljust(64 - 10 - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


@pytest.mark.parametrize("member, fragment", [
    (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, "), "a malformed .npy header"),
    (npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (10**12, 300, 150), }"), "malformed"),
    # over NumPy's 10,000-byte header limit: its reason runs to three lines
    (b"\x93NUMPY\x01\x00" + (10102).to_bytes(2, "little") + b" " * 10101 + b"\n", "Header info length (10102)"),
    ("lying rows", "y_train declares float32 (1000000000, 60)"),
    ("negative", "x_train declares the shape (-1, 300, 150)"),
    ("bzip2", "compressed with zip method 12"),
    ("no classes", "with 1-10000 classes"),
])
def test_npz_headers_that_lie_or_do_not_parse_are_one_line_errors(tmp_path, member, fragment):
    """A header that NumPy's tokenizer chokes on raised tokenize.TokenError; a header (or zip
    entry) declaring rows the member does not hold made discovery allocate and loop over them."""
    x, y = np.zeros((2, 300, 150), np.float32), np.eye(60, dtype=np.float32)[:2]
    path = tmp_path / "a.npz"
    method = zipfile.ZIP_BZIP2 if member == "bzip2" else zipfile.ZIP_DEFLATED
    members = {"x_train": x, "y_train": y}
    if isinstance(member, bytes):
        members["x_train"] = member
    elif member == "lying rows":
        members["y_train"] = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 60), }",
                                             y.tobytes())
    elif member == "negative":
        members["x_train"] = npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 300, 150), }")
    elif member == "no classes":
        members["y_train"] = np.zeros((2, 0), np.float32)
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, value in members.items():
            if isinstance(value, np.ndarray):
                buf = io.BytesIO()
                np.save(buf, value)
                value = buf.getvalue()
            zf.writestr(name + ".npy", value)
    with pytest.raises(ValueError, match=re.escape(fragment)) as info:
        within(10, get_format("ctrgcn").discover, path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_npz_integer_labels_are_bounded(tmp_path):
    """A 1-D label of 10**18 asked for 10**18 class names (the process was killed for memory)."""
    x = np.zeros((2, 300, 150), np.float32)
    x[:, :4] = 1
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.array([4, 10**18]))
    fmt = get_format("ctrgcn")
    items, rejected, _ = within(10, fmt.discover, tmp_path / "a.npz")
    assert [it.label for it in items] == [4] and len(fmt.class_names) == 5
    assert rejected[0].reason == "y_train row 1 is not one-hot (or a label in 0-9999)"


def test_a_corrupt_compressed_npz_member_is_a_rejection_when_read(tmp_path):
    """Discovery reads a compressed member's header only; the damage behind it surfaced as
    zipfile.BadZipFile (a CRC) or zlib.error out of read_items."""
    x = np.zeros((3, 300, 150), np.float32)
    x[:, :20] = np.random.default_rng(0).normal(size=(3, 20, 150))
    path = tmp_path / "a.npz"
    np.savez_compressed(path, x_train=x, y_train=np.eye(60)[:3])
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("x_train.npy")
    data = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
    at = info.header_offset + 30 + name_len + extra_len + info.compress_size // 2
    data[at: at + 8] = bytes(255 - b for b in data[at: at + 8])
    path.write_bytes(bytes(data))
    fmt = get_format("ctrgcn")
    items, rejected, _ = fmt.discover(path)
    results = fmt.read_items(path, b"", items)
    assert len(results) == 3 and all(isinstance(r, FormatError) and "x_train cannot be read" in r.reason
                                     for r in results)


@pytest.mark.parametrize("blob", [
    b"\x80\x02}(" + b"(" * 2_000_000 + b"t" * 2_000_000 + b"]u.",  # a dict key
    b"\x80\x02c__builtin__\nfrozenset\nN" + b"\x85" * 2_000_000 + b"\x85\x85R.",  # a frozenset member
], ids=["dict key", "frozenset member"])
@pytest.mark.slow
def test_a_deeply_nested_key_is_refused_not_a_crash(tmp_path, blob):
    """Hashing a tuple recurses in C without a depth check: a key nested 2,000,000 tuples
    deep (4 MB) killed the process with a segmentation fault. Run in a child, which it killed."""
    path = tmp_path / "deep.pkl"
    path.write_bytes(blob)
    code = ("import sys; from pathlib import Path; from s2i_cli.formats import safe_pickle\n"
            "try: safe_pickle.load_path(Path(sys.argv[1]))\nexcept ValueError as exc: print(exc)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "nested more than 100 deep" in done.stdout, (done.returncode, done.stderr)


def test_ctrgcn_ntu120_repeated_actor_is_one_actor(tmp_path):
    """CTR-GCN's NTU120 seq_transformation.py pads a single actor with itself (hstack((ske, ske))),
    its NTU60 one with zeros: both are one actor, so `--fill zero` applies; a real second body
    (different, or equal to the first only in some frames) stays an actor."""
    rng = np.random.default_rng(0)
    body = rng.normal(0, 0.3, size=(40, 75)).astype(np.float32)
    other = rng.normal(0, 0.3, size=(40, 75)).astype(np.float32)
    partly = other.copy()
    partly[:20] = body[:20]
    x = np.zeros((4, 300, 150), np.float32)
    x[0, :40] = np.hstack([body, body])  # NTU120's padding
    x[1, :40] = np.hstack([body, np.zeros_like(body)])  # NTU60's padding
    x[2, :40] = np.hstack([body, other])  # two actors
    x[3, :40] = np.hstack([body, partly])  # two actors, alike for a while
    npz = tmp_path / "NTU120_CSub.npz"
    np.savez(npz, x_train=x, y_train=np.eye(120)[[3, 3, 50, 50]])
    assert [real_frames(row)[1] for row in x] == [1, 1, 2, 2]
    report = convert("ctrgcn", npz, tmp_path / "z.zarr", size=32, fill="zero", progress=False)
    assert report.written == 4 and not report.rejected
    got = zarr.open_group(str(tmp_path / "z.zarr"), mode="r")
    assert got["actors"][:].tolist() == [1, 1, 2, 2]
    assert not np.any(store.read_skeleton(got, 0)[:, 1])  # the repeat is gone from the stored skeleton
    assert np.array_equal(store.read_skeleton(got, 0), store.read_skeleton(got, 1))
    images = got["images"][:]
    assert np.array_equal(images[0], images[1])  # the same image as NTU60's padding gives
    assert not np.array_equal(images[0, :, :16], images[0, :, 16:])  # --fill zero applied: no copy below
