"""PKU-MMD (phases 1 and 2), NW-UCLA, Kinetics-skeleton and Toyota Smarthome readers: the real
sample files in ../shared/data (counts, labels, metadata, splits, decoded images), bad input
per reader, body parts in the same columns across skeletons, Toyota's two vector layouts."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2i_cli import store
from s2i_cli.cli import DATASET_HELP, app
from s2i_cli.convert.flow import convert
from s2i_cli.convert.shard import centre_sequences
from s2i_cli.encoder import skeletons
from s2i_cli.encoder.encoding import Encoding, encode
from s2i_cli.encoder.pixels import decode_image
from s2i_cli.formats import DATASET_NAMES, FormatError, get_format, split_sides
from s2i_cli.formats.kinetics import parse_video as parse_kinetics
from s2i_cli.formats.pkummd import PKUMMD_CLASS_NAMES, parse_sequence, parse_split_text
from s2i_cli.formats.toyota import CROSS_VIEW_CLASSES, TOYOTA_CLASS_NAMES
from s2i_cli.formats.toyota import parse_video as parse_toyota
from tests.helpers import shared_data
from tests.samples import frame_line, pku_tree, toyota_doc

PKU_LABELS = {"0036-L": [(26, 206, 265, 2), (18, 395, 446, 2), (27, 530, 594, 2), (24, 704, 773, 2),
                         (21, 830, 887, 2), (16, 991, 1086, 2), (14, 1144, 1224, 2)]}
KINETICS_LABELS = {"__NrybzYzUg": 0, "__PYrzYbzKE": 173, "__U_scuxNlQ": 58, "__lt03EF4ao": 208,
                   "__u6odV5hrI": 207, "__vOysOPoCY": 207, "__vzEs2wzdQ": 335}


# --------------------------------------------------------------------------- helpers

def plain_rows(path: Path) -> np.ndarray:
    """The baseline reading of a PKU-MMD skeleton file: split lines, float() each token."""
    return np.array([[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()],
                    dtype=np.float32)


def centre_3d(seq: np.ndarray, centre) -> np.ndarray:
    """Independent centring: origin = centre joint of actor 1 in its first non-empty frame."""
    seq = seq.copy()
    present = np.any(seq != 0, axis=(2, 3))
    f = np.flatnonzero(present[:, 0])[0]
    refs = [centre] if isinstance(centre, int) else list(centre)
    origin = seq[f, 0, refs].mean(axis=0)
    for m in range(2):
        seq[present[:, m], m] -= origin
    return seq


def arranged_matrix(skel: skeletons.Skeleton, actor_seq: np.ndarray) -> np.ndarray:
    """(T, V, C) -> (T, columns, C) of the concat layout, virtual joints averaged."""
    cols = [actor_seq[:, r] if isinstance(r, int) else 0.5 * (actor_seq[:, r[0]] + actor_seq[:, r[1]])
            for r in skel.arranged()]
    return np.stack(cols, axis=1)


def check_decodes_to_input(root, i: int, skel: skeletons.Skeleton, expected_seq: np.ndarray) -> None:
    """The stored skeleton equals the expected centred input, and the decoded image (concat
    layout, main persons) equals torch's bilinear resize of it within one quantisation step."""
    seq = store.read_skeleton(root, i)
    np.testing.assert_allclose(seq, expected_seq, atol=1e-5)
    size = root["images"].shape[-1]
    arranged = torch.from_numpy(arranged_matrix(skel, expected_seq[:, 0]).astype(np.float32))
    ref = torch.nn.functional.interpolate(arranged.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                                          align_corners=False)[0].numpy()
    norm = root["norm"][i]
    decoded = decode_image(root["images"][i], norm)
    step = (norm[:, 1] - norm[:, 0]) / 255
    assert np.all(np.abs(decoded - ref) <= step[:, None, None] * 0.5 + 1e-5 + 1e-6 * np.abs(ref))


def convert_concat(dataset: str, raw: Path, out: Path, **kw):
    return convert(dataset, raw, out, size=32, layout_name="concat", persons="main", progress=False, **kw)


# --------------------------------------------------------------------------- PKU-MMD

@pytest.fixture(scope="module")
def pku_dir() -> Path:
    return shared_data("pkummd")


def test_pku_parser_matches_plain_reader_on_every_real_file(pku_dir):
    files = sorted(pku_dir.rglob("skeleton/*.txt"))
    assert [f.name for f in files] == ["0036-L.txt", "0160-L.txt", "A10N08-L.txt"]
    for path, rows in zip(files, (1261, 2566, 1040)):
        seq = parse_sequence(path.read_bytes())
        assert seq.shape == (rows, 2, 25, 3)
        assert np.array_equal(seq.reshape(rows, 150), plain_rows(path)), path.name
    assert np.all(parse_sequence((files[1]).read_bytes())[:, 1] == 0)  # 0160-L: one person
    absent = np.all(parse_sequence(files[0].read_bytes())[:, 0] == 0, axis=(1, 2))
    assert absent.sum() == 20  # 0036-L: 20 frames without person 1


def test_pku_discovery_labels_meta_and_official_splits(pku_dir):
    items, rejected, ignored = get_format("pkummd").discover(pku_dir)
    assert not rejected and ignored == {"files of PKU-MMD phase 2 (use s2i convert pkummd2)": 1}
    assert len(items) == 23 and [it.name for it in items][:2] == ["0036-L_001", "0036-L_002"]
    first = [it for it in items if it.name.startswith("0036-L")]
    assert [(it.label + 1, *it.extra[:2], it.meta["confidence"]) for it in first] == PKU_LABELS["0036-L"]
    assert first[0].meta == {"sequence": 36, "view": 0, "confidence": 2, "xsub": 0, "xview": 0}
    weak = [it for it in items if it.meta["confidence"] == 1]
    assert [it.name for it in weak] == ["0160-L_005"] and weak[0].label == 41  # "42,970,1093,1"
    assert PKUMMD_CLASS_NAMES[first[0].label] == "punching/slapping other person"
    assert len(PKUMMD_CLASS_NAMES) == 51 and PKUMMD_CLASS_NAMES[-1] == "writing"


def test_pku_official_split_files_parse_with_their_typo_and_trailing_comma(pku_dir):
    for name, sizes in (("cross-subject.txt", (944, 132)), ("cross-view.txt", (717, 359))):
        sides = parse_split_text((pku_dir / "phase1" / "split" / name).read_text())
        train = [n for n, s in sides.items() if s == 0]
        assert (len(train), len(sides) - len(train)) == sizes
    view = parse_split_text((pku_dir / "phase1" / "split" / "cross-view.txt").read_text())
    assert all((s == 1) == n.endswith("-M") for n, s in view.items())


@pytest.mark.slow
def test_pku_real_files_convert_and_decode_to_their_input(pku_dir, tmp_path):
    report = convert_concat("pkummd", pku_dir, tmp_path / "pku.zarr")
    assert report.written == 23 and not report.rejected
    assert report.splits == {"xsub": (23, 0), "xview": (23, 0)}  # both sequences are training ones
    root = store.open_store(tmp_path / "pku.zarr")
    names = list(root["name"][:])
    rows = {stem: plain_rows(pku_dir / "phase1" / "skeleton" / f"{stem}.txt").reshape(-1, 2, 25, 3)
            for stem in ("0036-L", "0160-L")}
    items = {it.name: it for it in get_format("pkummd").discover(pku_dir)[0]}
    for i, name in enumerate(names):
        it = items[name]
        start, end, _ = it.extra
        seg = rows[name[:6]][start:end + 1]
        seg = seg[np.any(seg != 0, axis=(1, 2, 3))]
        assert root["label"][i] == it.label and root["frames"][i] == len(seg)
        assert root["actors"][i] == (2 if name.startswith("0036") else 1)
        assert root["meta/confidence"][i] == it.meta["confidence"] and root["meta/sequence"][i] == int(name[:4])
        check_decodes_to_input(root, i, skeletons.NTU25, centre_3d(seg, 1))
    assert root.attrs["s2i"]["class_names"][0] == "bow"


def test_pku_intervals_are_inclusive_and_absent_frames_dropped(tmp_path):
    # frames 0..5: person 1 holds value f+1 except frame 2 (absent); person 2 appears in frame 4
    lines = [frame_line(f + 1.0) for f in range(6)]
    lines[2] = frame_line(0.0)
    lines[4] = frame_line(5.0, 9.0)
    raw = pku_tree(tmp_path, ("\n".join(lines) + "\n").encode(),
                   "1,0,3,2\n2,4,5,1\n3,5,6,2\n60,1,2,2\n4,3,2,2\nx,1,2\n5,2,2,1\n")
    fmt = get_format("pkummd")
    items, rejected, _ = fmt.discover(raw)
    assert {r.name: r.line for r in rejected} == {"0002-L_004": 4, "0002-L_005": 5, "0002-L_006": 6}
    assert [it.extra[:2] for it in items] == [(0, 3), (4, 5), (5, 6), (2, 2)]
    assert all(it.meta["xsub"] == 0 for it in items)  # 0002-L is a training video of the shipped lists
    results = fmt.read_items(items[0].path, (raw / "skeleton" / "0002-L.txt").read_bytes(), items)
    seq, actors = results[0]
    assert actors == 1 and seq[:, 0, 0, 0].tolist() == [1.0, 2.0, 4.0]  # frames 0, 1, 3: ends inclusive
    seq, actors = results[1]
    assert actors == 2 and seq[:, 1, 0, 0].tolist() == [9.0, 0.0]
    assert isinstance(results[2], FormatError) and "past the sequence's last frame 5" in results[2].reason
    assert isinstance(results[3], FormatError) and "no skeleton" in results[3].reason


def test_pku_label_files_are_told_apart_by_folder_name_or_content(tmp_path):
    raw = tmp_path / "raw"
    (raw / "a").mkdir(parents=True)
    (raw / "b").mkdir()
    (raw / "a" / "0002-L.txt").write_text(frame_line(1.0) + "\n" + frame_line(2.0) + "\n")
    (raw / "b" / "0002-L.txt").write_text("3,0,1,2\n")  # no 'label' in the folder name: sniffed
    items, rejected, _ = get_format("pkummd").discover(raw)
    assert not rejected and [(it.name, it.label, it.path.parent.name) for it in items] == [("0002-L_001", 2, "a")]


PKU_BAD = {
    "truncated": ("1 2 3", "truncated", 2),
    "too few": ("1 2 3\n", "too few values", 2),
    "too many": (frame_line(1.0) + " 7\n", "more values", 2),
    "bad number": (frame_line(1.0).replace("1.000000", "1.0x0", 1) + "\n", "not a number", 2),
    "blank line": ("\n" + frame_line(1.0) + "\n", "blank line", 2),
    "empty": ("", "empty file", 1),
}


def test_pku_bad_skeleton_files_are_rejected_with_reason_and_line(tmp_path):
    for case, (tail, reason, line) in PKU_BAD.items():
        data = (frame_line(1.0) + "\n" + tail).encode() if case != "empty" else b""
        with pytest.raises(FormatError) as exc:
            parse_sequence(data)
        assert reason in exc.value.reason and exc.value.line == line, case
    # a bad file rejects its intervals; the good one converts
    raw = pku_tree(tmp_path, (frame_line(1.0) + "\n" + frame_line(2.0) + "\n").encode(), "1,0,1,2\n")
    pku_tree(tmp_path, (frame_line(1.0) + "\n1 2 3\n").encode(), "1,0,1,2\n2,1,1,1\n", stem="0003-L")
    (raw / "skeleton" / "0004-L.txt").write_bytes(b"1 2\n")  # no label file
    result = CliRunner().invoke(app, ["convert", "pkummd", str(raw), str(tmp_path / "o.zarr"), "--no-progress",
                                      "--size", "16"])
    assert result.exit_code == 1, result.output
    root = store.open_store(tmp_path / "o.zarr")
    assert list(root["name"][:]) == ["0002-L_001", "0003-L_001", "0003-L_002"]  # a slot per interval
    assert list(root["name"][:][root["valid"][:]]) == ["0002-L_001"]  # the rejected ones' marked not valid
    rejected = {r["name"]: r for r in root.attrs["s2i"]["rejected"]}
    assert set(rejected) == {"0003-L_001", "0003-L_002", "0004-L"}
    assert "too few values" in rejected["0003-L_001"]["reason"] and rejected["0003-L_001"]["line"] == 2
    assert "no label file" in rejected["0004-L"]["reason"]


def test_pku_phase2_real_file_with_and_without_split_files(pku_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(pku_dir / "phase2", raw)
    (raw / "label").mkdir()
    (raw / "label" / "A10N08-L.txt").write_text("12,10,99,2\n12,500,1039,1\n")
    report = convert("pkummd2", raw, tmp_path / "a.zarr", size=16, progress=False)
    assert report.written == 2 and report.splits == {}  # no split files: no protocols derived
    root = store.open_store(tmp_path / "a.zarr")
    assert list(root["meta/a_number"][:]) == [10, 10] and list(root["meta/n_number"][:]) == [8, 8]
    assert list(root["meta/view"][:]) == [0, 0] and list(root["meta/xsub"][:]) == [-1, -1]
    rows = plain_rows(raw / "skeleton" / "A10N08-L.txt")
    assert list(root["actors"][:]) == [1 + int(np.any(rows[a:b + 1, 75:] != 0)) for a, b in ((10, 99), (500, 1039))]
    assert list(root["frames"][:]) == [90, 540]
    (raw / "split").mkdir()
    (raw / "split" / "cross_subject_v2.txt").write_text("Training videos: \nA10N08-L, A01N01-L, \n"
                                                        "Validataion videos: \nA01N02-L, \n")
    report = convert("pkummd2", raw, tmp_path / "b.zarr", size=16, progress=False)
    assert report.splits == {"xsub": (2, 0)}
    with pytest.raises(ValueError, match="missing-list"):
        get_format("pkummd2").discover(raw, missing_list=raw / "x.txt")


# --------------------------------------------------------------------------- NW-UCLA

@pytest.fixture(scope="module")
def ucla_dir() -> Path:
    return shared_data("nwucla")


def test_nwucla_real_files_convert_and_decode_to_their_input(ucla_dir, tmp_path):
    fmt = get_format("nwucla")
    items, rejected, _ = fmt.discover(ucla_dir)
    assert len(items) == 31 and not rejected
    assert sorted({it.label for it in items}) == list(range(10))
    assert [it.label for it in items if it.name.startswith("a08_")] == [6, 6, 6]
    assert [it.label for it in items if it.name.startswith("a12_")] == [9, 9, 9]
    report = convert_concat("nwucla", ucla_dir, tmp_path / "u.zarr")
    assert report.written == 31 and report.splits == {"xview": (20, 11)}
    root = store.open_store(tmp_path / "u.zarr")
    train = set(root["splits/xview/train"][:].tolist())
    for i, name in enumerate(root["name"][:]):
        doc = json.loads((ucla_dir / f"{name}.json").read_text())
        joints = np.array(doc["skeletons"], dtype=np.float32)
        assert root["label"][i] == doc["label"] - 1 and root["frames"][i] == len(joints)
        view = int(name[-2:])
        assert root["meta/view"][i] == view and (i in train) == (view in (1, 2))
        assert root["meta/subject"][i] == int(name[5:7]) and root["meta/episode"][i] == int(name[9:11])
        seq = np.zeros((len(joints), 2, 20, 3), dtype=np.float32)
        seq[:, 0] = joints
        check_decodes_to_input(root, i, skeletons.NWUCLA20, centre_3d(seq, 1))
    assert root["frames"][list(root["name"][:]).index("a02_s09_e04_v03")] == 1
    assert root.attrs["s2i"]["persons"] == "main"


def test_nwucla_bad_files_are_rejected(ucla_dir, tmp_path):
    good = (ucla_dir / "a01_s01_e00_v01.json").read_text()
    doc = json.loads(good)
    short = dict(doc, skeletons=[f[:19] for f in doc["skeletons"]])
    cases = {
        "a01_s02_e00_v01": (good[:500], "bad JSON"),
        "a01_s03_e00_v01": (json.dumps(short), "not T x 20 x 3"),
        "a01_s04_e00_v01": (json.dumps(dict(doc, label=3)), "disagrees with its name"),
        "a01_s05_e00_v01": (json.dumps(dict(doc, skeletons=[])), "non-empty list"),
        "a01_s06_e00_v01": (json.dumps({"x": 1}), "no 'skeletons'"),
        "a01_s07_e00_v01": (json.dumps(dict(doc, skeletons=[[["a", 1, 2]] * 20])), "not numeric"),
    }
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(ucla_dir / "a01_s01_e00_v01.json", raw)
    for name, (text, _) in cases.items():
        (raw / f"{name}.json").write_text(text)
    (raw / "a07_s01_e00_v01.json").write_text(good)
    (raw / "notes.json").write_text("{}")
    report = convert("nwucla", raw, tmp_path / "o.zarr", size=16, progress=False)
    assert report.written == 1
    reasons = {r.name: r.reason for r in report.rejected}
    for name, (_, fragment) in cases.items():
        assert fragment in reasons[name], name
    assert "not an NW-UCLA action" in reasons["a07_s01_e00_v01"] and "notes.json" in reasons


# --------------------------------------------------------------------------- Kinetics

@pytest.fixture(scope="module")
def kinetics_dir() -> Path:
    return shared_data("kinetics_skeleton")


def plain_kinetics(path: Path) -> tuple[np.ndarray, int]:
    """Independent reading: per frame the two people with the largest summed score."""
    doc = json.loads(path.read_text())
    frames = []
    for frame in sorted(doc["data"], key=lambda f: f["frame_index"]):
        people = [p for p in frame["skeleton"] if sum(p["score"]) > 0]
        people.sort(key=lambda p: -np.float32(np.array(p["score"], dtype=np.float32).sum()))
        if people:
            out = np.zeros((2, 18, 3), dtype=np.float32)
            for m, p in enumerate(people[:2]):
                out[m, :, 0], out[m, :, 1], out[m, :, 2] = p["pose"][0::2], p["pose"][1::2], p["score"]
                out[m, :, 1] *= -1  # s2i turns image y (down) into y up
            frames.append(out)
    seq = np.stack(frames)
    seq[..., :2][seq[..., 2] == 0] = 0
    return seq, 2 if np.any(seq[:, 1, :, 2] > 0) else 1


def centre_2d(seq: np.ndarray, centre: int) -> np.ndarray:
    seq = seq.copy()
    f = np.flatnonzero(seq[:, 0, centre, 2] > 0)[0]
    origin = seq[f, 0, centre, :2].copy()
    det = seq[..., 2] > 0
    seq[..., :2][det] -= origin
    return seq


def test_kinetics_real_files_convert_and_decode_to_their_input(kinetics_dir, tmp_path):
    fmt = get_format("kinetics")
    items, rejected, ignored = fmt.discover(kinetics_dir)
    assert not rejected and not ignored
    assert {it.name: it.label for it in items} == KINETICS_LABELS
    assert fmt.class_names[173] == "jumpstyle dancing" and len(fmt.class_names) == 400
    report = convert_concat("kinetics", kinetics_dir, tmp_path / "k.zarr")
    assert report.written == 7 and report.splits == {"release": (0, 7)}
    root = store.open_store(tmp_path / "k.zarr")
    assert root.attrs["s2i"]["channels"] == ["x", "y", "confidence"]
    for i, name in enumerate(root["name"][:]):
        seq, actors = plain_kinetics(kinetics_dir / "kinetics_val" / f"{name}.json")
        assert root["frames"][i] == len(seq) and root["actors"][i] == actors
        assert root["meta/split"][i] == 1 and root["label"][i] == KINETICS_LABELS[name]
        stored = store.read_skeleton(root, i)
        missing = stored[..., 2] == 0
        assert np.all(stored[..., :2][missing] == 0)  # missing joints stay at 0 after centring
        check_decodes_to_input(root, i, skeletons.OPENPOSE18, centre_2d(seq, 1))
    many = parse_kinetics((kinetics_dir / "kinetics_val" / "__PYrzYbzKE.json").read_bytes())[0]
    assert many.shape[0] == 299  # up to 11 people a frame, two kept


def kinetics_tree(kinetics_dir: Path, tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(kinetics_dir, raw)
    return raw


def test_kinetics_bad_files_labels_and_options(kinetics_dir, tmp_path):
    raw = kinetics_tree(kinetics_dir, tmp_path)
    doc = json.loads((raw / "kinetics_val" / "__NrybzYzUg.json").read_text())
    bad_pose = json.loads(json.dumps(doc))
    bad_pose["data"][2]["skeleton"][0]["pose"] = bad_pose["data"][2]["skeleton"][0]["pose"][:30]
    labels = json.loads((raw / "kinetics_val_label_subset.json").read_text())
    cases = {"badjson0001": ("{\"data\": [", "bad JSON"), "badpose0001": (json.dumps(bad_pose), "36 and 18"),
             "nobody00001": (json.dumps({"data": [{"frame_index": 1, "skeleton": []}]}), "nobody"),
             "dupframe001": (json.dumps({"data": doc["data"][:3] + doc["data"][2:4]}), "twice"),
             "noskeleton1": (json.dumps(doc), None), "unlisted001": (json.dumps(doc), "not in")}
    for vid, (text, _) in cases.items():
        (raw / "kinetics_val" / f"{vid}.json").write_text(text)
        if vid != "unlisted001":
            labels[vid] = {"has_skeleton": vid != "noskeleton1", "label": "abseiling", "label_index": 0}
    labels["wronglabel1"] = {"has_skeleton": True, "label": "air drumming", "label_index": 0}
    (raw / "kinetics_val" / "wronglabel1.json").write_text(json.dumps(doc))
    (raw / "kinetics_val_label_subset.json").write_text(json.dumps(labels))
    report = convert("kinetics", raw, tmp_path / "o.zarr", size=16, progress=False)
    assert report.written == 7 and report.ignored == {"has_skeleton false in the label file": 1}
    reasons = {r.name: r.reason for r in report.rejected}
    for vid, (_, fragment) in cases.items():
        if fragment:
            assert fragment in reasons[vid], vid
    assert "disagrees with label_index" in reasons["wronglabel1"]
    # two candidate label files: ambiguous unless the option names one
    shutil.copy(raw / "kinetics_val_label_subset.json", raw / "kinetics_val_label_other.json")
    with pytest.raises(ValueError, match="val_labels"):
        get_format("kinetics").discover(raw)
    fmt = get_format("kinetics", val_labels=str(raw / "kinetics_val_label_other.json"))
    assert len(fmt.discover(raw)[0]) == 11  # 7 real + 4 bad ones found at read time
    with pytest.raises(ValueError, match="no reader option"):
        get_format("kinetics", labels="x")
    (raw / "kinetics_val_label_subset.json").unlink()
    (raw / "kinetics_val_label_other.json").unlink()
    with pytest.raises(ValueError, match="no kinetics_val_label"):
        get_format("kinetics").discover(raw)


def test_2d_centring_leaves_missing_joints_at_zero():
    seq = np.zeros((3, 2, 18, 3), dtype=np.float32)
    seq[:, 0, :, :2] = 0.5
    seq[:, 0, :, 2] = 1.0
    seq[0, 0, 1] = 0  # the neck is missing in frame 0: origin comes from frame 1
    seq[1, 0, 1, :2] = (0.25, 0.75)
    seq[:, 0, 7] = 0  # a joint never detected
    out = skeletons.centre_sequence(seq, 1, skeletons.OPENPOSE18.centre, True)
    assert np.all(out[:, 0, 7] == 0) and np.all(out[0, 0, 1] == 0)
    assert np.allclose(out[1, 0, 1, :2], 0) and np.allclose(out[0, 0, 0, :2], (0.25, -0.25))
    assert np.array_equal(out[..., 2], seq[..., 2])


# --------------------------------------------------------------------------- body parts across skeletons

def ntu_pose_with_nwucla_joints(rng) -> tuple[np.ndarray, np.ndarray]:
    """A random NTU-25 sequence whose joints NW-UCLA lacks are what NW-UCLA's slots read
    (neck = mean(head, spine-shoulder), hand tips and thumbs = hands), and the same pose as
    NW-UCLA-20."""
    ntu = rng.normal(size=(20, 2, 25, 3)).astype(np.float32)
    ntu[:, 1] = 0
    ntu[:, 0, 2] = 0.5 * (ntu[:, 0, 3] + ntu[:, 0, 20])
    ntu[:, 0, [21, 22]] = ntu[:, 0, [7]]
    ntu[:, 0, [23, 24]] = ntu[:, 0, [11]]
    to_ntu = [0, 1, 20, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]  # NW-UCLA joint -> NTU joint
    return ntu, ntu[:, :, to_ntu]


@pytest.mark.parametrize("layout_name", ["parts", "concat"])
def test_same_pose_as_ntu25_and_nwucla20_gives_the_same_bands(layout_name):
    ntu, ucla = ntu_pose_with_nwucla_joints(np.random.default_rng(3))
    (img_ntu, norm_ntu), (img_ucla, norm_ucla) = (
        encode(centre_sequences(fmt, [(seq, 1)]), [1], Encoding(fmt.skeleton, layout_name, 60, "main"))
        for fmt, seq in ((get_format("ntu120"), ntu), (get_format("nwucla"), ucla)))
    assert np.allclose(norm_ntu, norm_ucla, atol=1e-5)
    edges = skeletons.band_edges(60)
    for p in range(5):
        a, b = img_ntu[0][:, :, edges[p]:edges[p + 1]], img_ucla[0][:, :, edges[p]:edges[p + 1]]
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, skeletons.PART_NAMES[p]


def test_every_skeleton_fills_the_ntu_part_slots():
    for skel in (skeletons.NWUCLA20, skeletons.OPENPOSE18, skeletons.LCRNET13):
        assert [len(p) for p in skel.parts] == [len(p) for p in skeletons.NTU25.parts], skel.name
        refs = [j for r in skel.arranged() for j in ([r] if isinstance(r, int) else r)]
        assert all(0 <= j < skel.num_joints for j in refs)
        assert all(0 <= c < skel.num_joints and 0 <= p < skel.num_joints for c, p in skel.bones)
    assert skeletons.OPENPOSE18.is_2d and not skeletons.LCRNET13.is_2d


# --------------------------------------------------------------------------- Toyota Smarthome


def test_toyota_y_points_up_in_the_store(tmp_path):
    """LCR-Net writes a standing person with the head at negative y (the camera's y points
    down); the store keeps y up, as for every format: head above ankles, G brighter at the top."""
    raw = tmp_path / "raw"
    raw.mkdir()
    body = np.zeros((13, 3), dtype=np.float32)  # LCR-Net order: ankles 0-1, knees 2-3, hips 4-5, ..., head 12
    body[:, 1] = [0.8, 0.8, 0.4, 0.4, 0.0, 0.0, 0.0, 0.0, -0.3, -0.3, -0.45, -0.45, -0.7]
    body[:, 0] = np.linspace(-0.2, 0.2, 13)
    body[:, 2] = 3.0
    frames = [[{"pose2d": [0.0] * 26, "pose3d": body.T.reshape(-1).tolist(), "cumscore": 5.0}]] * 4
    (raw / "Walk_p03_r00_v01_c01.json").write_text(json.dumps({"frames": frames}))
    convert_concat("toyota", raw, tmp_path / "t.zarr")
    seq = store.read_skeleton(store.open_store(tmp_path / "t.zarr"), 0)[:, 0]
    head, ankles = seq[:, 12, 1], seq[:, [0, 1], 1]
    assert np.all(head > ankles.max(axis=1) + 1.0)


def test_toyota_planar_and_interleaved_files_give_the_same_joints():
    rng = np.random.default_rng(0)
    planar, expected = toyota_doc(rng)
    inter = toyota_doc(np.random.default_rng(0), vectors="interleaved")[0]
    a, actors = parse_toyota(json.dumps(planar).encode(), "planar")
    b, _ = get_format("toyota", vectors="interleaved").read_items(None, json.dumps(inter).encode(), [None])[0]
    assert actors == 2 and np.array_equal(a, expected) and np.array_equal(b, expected)
    wrong, _ = parse_toyota(json.dumps(planar).encode(), "interleaved")
    assert not np.array_equal(wrong, expected)
    no_score, exp2 = toyota_doc(np.random.default_rng(1), cumscore=False)  # v1.2: file order
    assert np.array_equal(parse_toyota(json.dumps(no_score).encode())[0], exp2)
    with pytest.raises(ValueError, match="planar or interleaved"):
        get_format("toyota", vectors="xyz")


def test_toyota_files_convert_with_their_protocols(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(5)
    names = ["Walk_p03_r00_v01_c01", "Walk_p02_r00_v01_c02", "Cook.Cut_p03_r00_v01_c01",
             "Cook.Cut_p02_r00_v01_c02_pose3d", "Drink.Fromcup_p04_r01_v02_c05", "Readbook_p10_r00_v03_c03"]
    docs = {}
    for name in names:
        docs[name], _ = toyota_doc(rng)
        (raw / f"{name}.json").write_text(json.dumps(docs[name]))
    (raw / "Jump_p02_r00_v01_c01.json").write_text("{}")
    (raw / "Walk_p03_r00_v01_c01_pose3d.json").write_text("{}")  # the same sample twice
    (raw / "Walk_p04_r00_v01_c01.json").write_text(json.dumps({"frames": [[{"pose3d": [1.0] * 26}]]}))
    report = convert_concat("toyota", raw, tmp_path / "t.zarr")
    assert report.written == 6
    reasons = {Path(r.name).name: r.reason for r in report.rejected}
    assert "not one of the 31" in reasons["Jump_p02_r00_v01_c01"]
    assert "seen before" in reasons["Walk_p03_r00_v01_c01_pose3d.json"]
    assert "26 values, not 39" in reasons["Walk_p04_r00_v01_c01"]
    root = store.open_store(tmp_path / "t.zarr")
    order = list(root["name"][:])
    assert [n for n, ok in zip(order, root["valid"][:]) if ok] == sorted(n.removesuffix("_pose3d") for n in names)

    def side(protocol, s):
        return sorted(order[i] for i in root[f"splits/{protocol}/{s}"][:])

    assert side("xsub", "train") == ["Cook.Cut_p03_r00_v01_c01", "Drink.Fromcup_p04_r01_v02_c05",
                                     "Walk_p03_r00_v01_c01"]
    assert side("xview1", "train") == ["Walk_p03_r00_v01_c01"]  # Cook.Cut is not a cross-view class
    assert side("xview1", "test") == side("xview2", "test") == ["Walk_p02_r00_v01_c02"]
    assert side("xview2", "train") == ["Readbook_p10_r00_v03_c03", "Walk_p03_r00_v01_c01"]  # camera 5: neither
    i = order.index("Walk_p03_r00_v01_c01")
    assert TOYOTA_CLASS_NAMES[root["label"][i]] == "Walk"
    assert root["meta/cv_label"][i] == CROSS_VIEW_CLASSES.index("Walk") and root["meta/camera"][i] == 1
    _, expected = toyota_doc(np.random.default_rng(5))
    check_decodes_to_input(root, i, skeletons.LCRNET13, centre_3d(expected, skeletons.LCRNET13.centre))


def test_toyota_bad_files_are_rejected():
    cases = {b"[1, 2": "bad JSON", b"[]": "no 'frames'", b'{"frames": [{}]}': "not a list",
             b'{"frames": [[{"pose2d": []}]]}': "no 'pose3d'", b'{"frames": [[], []]}': "nobody",
             b'{"frames": [[{"pose3d": ["a"]}]]}': "not numeric"}
    for data, fragment in cases.items():
        with pytest.raises(FormatError, match=fragment):
            parse_toyota(data)


# --------------------------------------------------------------------------- contract and CLI

def test_every_dataset_is_registered_and_in_the_help():
    for name in DATASET_NAMES:
        fmt = get_format(name)
        assert fmt.name == name and name in DATASET_HELP
        for protocol in fmt.protocols:
            assert protocol in DATASET_HELP, (name, protocol)
    with pytest.raises(ValueError, match="takes no reader options"):
        get_format("ntu60", vectors="planar")
    sides = split_sides({"b": (np.array([True, False, False]), np.array([False, False, True]))})
    assert sides["b"]["train"].tolist() == [0] and sides["b"]["test"].tolist() == [2]
    result = CliRunner().invoke(app, ["convert", "--help"])
    assert result.exit_code == 0 and "toyota" in result.output
