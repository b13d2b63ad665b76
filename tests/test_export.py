"""`s2i export`: the store's skeletons out as CTR-GCN's .npz and pyskl's pickle, checked by
converting the export back (`convert ctrgcn|pyskl`) and by reading it as the GCN tools do."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from s2i_cli import store
from s2i_cli.cli import app
from s2i_cli.convert.flow import convert
from s2i_cli.export.ctrgcn import file_name, frame_rows
from tests.ctrgcn_reference import ctrgcn_rows
from tests.helpers import shared_data


@pytest.fixture(scope="module")
def ntu60(converted) -> tuple[Path, zarr.Group]:
    """`s2i convert ntu60` of the real NTU sample files (protocols xsub, xview)."""
    out = converted("ntu60", "ntu", size=32)
    return out, zarr.open_group(str(out), mode="r")


def export(*args: str) -> str:
    result = CliRunner().invoke(app, ["export", *args])
    assert result.exit_code == 0, result.output
    return result.output


def side(root: zarr.Group, protocol: str, name: str) -> list[int]:
    return root[f"splits/{protocol}/{name}"][:].tolist()


def test_ctrgcn_export_reads_as_ctrgcn_feeder_and_converts_back(ntu60, tmp_path):
    path, ref = ntu60
    export(str(path), str(tmp_path / "x"), "--to", "ctrgcn")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["NTU60_CS.npz", "NTU60_CV.npz"]
    # what CTR-GCN's feeders/feeder_ntu.py does with the file
    npz = np.load(tmp_path / "x" / "NTU60_CS.npz")
    data, label = npz["x_train"], np.where(npz["y_train"] > 0)[1]
    n, t, _ = data.shape
    data = data.reshape((n, t, 2, 25, 3)).transpose(0, 4, 1, 3, 2)
    train = side(ref, "xsub", "train")
    assert data.shape == (len(train), 3, 300, 25, 2) and npz["y_train"].shape == (len(train), 60)
    assert label.tolist() == ref["label"].get_orthogonal_selection((np.array(train),)).tolist()
    assert npz["x_test"].shape == (len(side(ref, "xsub", "test")), 300, 150)
    # the rows CTR-GCN's own scripts make of the same raw files (selection, centring, padding)
    names = ref["name"][:].tolist()
    for which in ("train", "test"):
        for row, i in zip(npz[f"x_{which}"], side(ref, "xsub", which)):
            assert np.allclose(row, ctrgcn_rows(shared_data("ntu") / f"{names[i]}.skeleton"), atol=1e-5), names[i]
    # back through the importer: the same skeletons, labels, actors and sides
    convert("ctrgcn", tmp_path / "x" / "NTU60_CS.npz", tmp_path / "c.zarr", size=32, progress=False)
    got = zarr.open_group(str(tmp_path / "c.zarr"), mode="r")
    names = got["name"][:].tolist()
    for j, name in enumerate(names):
        which, row = name.split("_")
        i = side(ref, "xsub", which)[int(row)]
        assert got["label"][j] == ref["label"][i] and got["actors"][j] == ref["actors"][i], name
        a, b = store.read_skeleton(got, j), store.read_skeleton(ref, i)
        m = int(ref["actors"][i])
        assert a.shape[0] == b.shape[0] and np.allclose(a[:, :m], b[:, :m], atol=1e-6), name
    assert len(side(got, "xsub", "train")) == len(train)


def test_pyskl_export_loads_with_pickle_and_converts_back(ntu60, tmp_path):
    path, ref = ntu60
    export(str(path), str(tmp_path / "p"), "--to", "pyskl")
    pkl = tmp_path / "p" / "ntu60.pkl"
    with open(pkl, "rb") as f:
        doc = pickle.load(f)  # plain pickle, as pyskl's mmcv.load
    valid = store.valid_indices(ref).tolist()
    assert [a["frame_dir"] for a in doc["annotations"]] == [str(ref["name"][i]) for i in valid]
    assert set(doc["split"]) == {"xsub_train", "xsub_val", "xview_train", "xview_val"}
    first = doc["annotations"][0]
    assert first["keypoint"].shape == (int(ref["actors"][valid[0]]), first["total_frames"], 25, 3)
    convert("pyskl", pkl, tmp_path / "q.zarr", size=32, progress=False)
    got = zarr.open_group(str(tmp_path / "q.zarr"), mode="r")
    assert got["name"][:].tolist() == ref["name"].get_orthogonal_selection((np.array(valid),)).tolist()
    for j, i in enumerate(valid):
        assert got["label"][j] == ref["label"][i] and got["actors"][j] == ref["actors"][i]
        m = int(ref["actors"][i])
        assert np.allclose(store.read_skeleton(got, j)[:, :m], store.read_skeleton(ref, i)[:, :m], atol=1e-6)
    for protocol in ("xsub", "xview"):
        for s in ("train", "test"):
            want = {str(ref["name"][i]) for i in side(ref, protocol, s)}
            assert {str(got["name"][i]) for i in side(got, protocol, s)} == want


def test_export_refuses_what_it_cannot_write_in_one_line(ntu60, tmp_path):
    path, _ = ntu60
    export(str(path), str(tmp_path / "x"), "--to", "ctrgcn", "--protocol", "xsub")
    again = CliRunner().invoke(app, ["export", str(path), str(tmp_path / "x"), "--to", "ctrgcn", "--protocol", "xsub"])
    assert again.exit_code == 2 and "--overwrite" in again.output and len(again.output.strip().splitlines()) == 1
    export(str(path), str(tmp_path / "x"), "--to", "ctrgcn", "--protocol", "xsub", "--overwrite")
    for args, words in ((["--protocol", "xset"], "not in this store"), (["--to", "gcn"], "is not one of 'ctrgcn', 'pyskl'")):
        bad = CliRunner().invoke(app, ["export", str(path), str(tmp_path / "y"), *args])
        assert bad.exit_code == 2 and words in bad.output, bad.output
    (tmp_path / "file").write_text("x")
    bad = CliRunner().invoke(app, ["export", str(path), str(tmp_path / "file")])
    assert bad.exit_code == 2 and "is a file" in bad.output


def test_file_names_follow_ctrgcn():
    assert [file_name(p, 60) for p in ("xsub", "xview")] == ["NTU60_CS.npz", "NTU60_CV.npz"]
    assert [file_name(p, 120) for p in ("xsub", "xset", "other")] == ["NTU120_CSub.npz", "NTU120_CSet.npz",
                                                                        "NTU120_other.npz"]


def test_frame_rows_pad_zero_and_resample_long_samples():
    joints = np.arange(10 * 1 * 25 * 3, dtype=np.float32).reshape(10, 1, 25, 3) + 1
    rows = frame_rows(joints, 12)
    assert rows.shape == (12, 150) and np.array_equal(rows[:10, :75], joints.reshape(10, 75))
    assert not rows[10:].any() and not rows[:, 75:].any()
    short = frame_rows(joints, 4)
    assert np.array_equal(short[:, :75], joints[[0, 3, 6, 9]].reshape(4, 75))
