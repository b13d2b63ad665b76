"""The synthetic NTU generator: real-format files, every protocol populated, learnable classes.

Split lists and format rules are restated here from shared/formats.md §1 rather than
imported, so the generator is checked against the spec, not against itself."""
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from s2i_cli.formats.ntu_names import NTU_CLASS_NAMES, NTU_TWO_PERSON_ACTIONS
from s2i_cli.formats.synth import _format_sample, synthesize
from tests.ntu_reference import read_skeleton

NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})\.skeleton")
NTU60_XSUB_TRAIN = {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN | {
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86,
    89, 91, 92, 93, 94, 95, 97, 98, 100, 103}
LIMITS = {"ntu60": (17, 40, 60), "ntu120": (32, 106, 120)}  # setups, subjects, actions
LEAF_JOINTS = [3, 15, 19, 21, 22, 23, 24]  # 0-based: head, feet, hand tips, thumbs


def fields(path: Path) -> dict[str, int]:
    match = NAME.fullmatch(path.name)
    assert match, path.name
    return dict(zip(("setup", "camera", "subject", "replication", "action"), map(int, match.groups())))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, list[Path]]:
    root = tmp_path_factory.mktemp("synth")
    return {dataset: synthesize(dataset, root / dataset, 200, seed=0) for dataset in LIMITS}


@pytest.mark.parametrize("dataset", LIMITS)
def test_names_parse_are_unique_in_range_and_balanced(generated, dataset):
    paths = generated[dataset]
    setups, subjects, actions = LIMITS[dataset]
    assert len({p.name for p in paths}) == len(paths) == 200
    meta = [fields(p) for p in paths]
    assert all(1 <= m["setup"] <= setups and 1 <= m["camera"] <= 3 and 1 <= m["subject"] <= subjects
               and 1 <= m["replication"] <= 2 and 1 <= m["action"] <= actions for m in meta)
    per_class = Counter(m["action"] for m in meta)
    assert len(per_class) == actions and max(per_class.values()) - min(per_class.values()) <= 1


@pytest.mark.parametrize("dataset, protocol", [
    ("ntu60", "xsub"), ("ntu60", "xview"), ("ntu120", "xsub"), ("ntu120", "xset")])
def test_every_protocol_has_training_and_test_samples(generated, dataset, protocol):
    train_subjects = NTU60_XSUB_TRAIN if dataset == "ntu60" else NTU120_XSUB_TRAIN
    is_train = {
        "xsub": lambda m: m["subject"] in train_subjects,
        "xview": lambda m: m["camera"] in (2, 3),
        "xset": lambda m: m["setup"] % 2 == 0,
    }[protocol]
    sides = Counter(is_train(fields(p)) for p in generated[dataset])
    assert sides[True] >= 40 and sides[False] >= 40, sides


def test_files_follow_the_ntu_grammar(generated):
    paths = generated["ntu60"][::40] + generated["ntu120"][::40] + [
        p for p in generated["ntu120"][:120] if fields(p)["action"] in NTU_TWO_PERSON_ACTIONS][:3]
    for path in paths:
        frames = read_skeleton(path)
        assert 40 <= len(frames) <= 120
        expected_bodies = 2 if fields(path)["action"] in NTU_TWO_PERSON_ACTIONS else 1
        ids = {body["id"] for frame in frames for body in frame}
        assert len(ids) == expected_bodies and all(i > 2**53 for i in ids)
        for frame in frames:
            assert len(frame) == expected_bodies
            for body in frame:
                joints = body["joints"]
                assert joints.shape == (25, 12)
                assert np.all((joints[:, 2] > 1.5) & (joints[:, 2] < 5.0))  # camera z in metres
                assert set(joints[:, 11]) <= {1.0, 2.0}
                assert not joints[LEAF_JOINTS, 7:11].any()
                norms = np.linalg.norm(np.delete(joints, LEAF_JOINTS, axis=0)[:, 7:11], axis=1)
                np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_lines_and_numbers_are_printed_like_the_kinect_exporter(generated):
    for path in generated["ntu120"][:30:5]:
        data = path.read_bytes()
        assert data.endswith(b"\n") and b"\r" not in data
        for line in data.decode("ascii").splitlines():
            tokens = line.split()
            assert len(tokens) in (1, 10, 12), line
            if len(tokens) == 10:  # body info: ID, clipedEdges 0, ..., isResticted 0, trackingState 2
                assert int(tokens[0]) > 2**53
                assert (tokens[1], tokens[6], tokens[9]) == ("0", "0", "2")
                tokens = tokens[1:]
            # Up to 7 significant digits, integers without a dot: what every real file satisfies.
            assert all("%.7G" % float(t) == t for t in tokens), line


def test_number_formatting_matches_printf_g7_on_edge_cases():
    rng = np.random.default_rng(0)
    edge = [1.0, 2.0, 201.0, 0.5, 1e-4, 9.9999996e-5, -4.248406e-05, 1e-5, 1e-7, 9999999.4,
            9999999.6, 1234567.5, 2345678.5, 12345678.0, 1e7, 1e100, -1.5e-100, 0.00012345675]
    values = np.concatenate([edge, rng.normal(0, 1, 100), 10 ** rng.uniform(-9, 9, 100),
                             (rng.integers(10**6, 10**7, 88) * 10 + 5) / 10.0 ** rng.integers(-2, 12, 88)])
    assert values.size == 306
    text = _format_sample([2**56 + 12345], values.reshape(1, 1, 306)).decode("ascii")
    tokens = text.split()
    assert tokens[:3] == ["1", "1", str(2**56 + 12345)]
    written = tokens[4:8] + tokens[9:11] + tokens[13:]  # skip the constant fields and "25"
    assert written == ["%.7G" % v for v in values]
    assert _format_sample([2**56], np.full((1, 1, 306), -0.0)).split()[4] == b"0"  # never "-0"


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    first = synthesize("ntu120", tmp_path / "a", 6, seed=7, classes=6)
    again = synthesize("ntu120", tmp_path / "b", 6, seed=7, classes=6)
    other = synthesize("ntu120", tmp_path / "c", 6, seed=8, classes=6)
    assert [p.name for p in first] == [p.name for p in again]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(first, again))
    assert not any(p.read_bytes() == q.read_bytes() for p, q in zip(first, other))


def yaw_invariant_features(path: Path) -> np.ndarray:
    """Main body's joints relative to its spine mid, 16 frames: heights and horizontal
    distances, which the camera's rotation about the vertical axis leaves unchanged."""
    xyz = np.array([frame[0]["joints"][:, :3] for frame in read_skeleton(path)])
    xyz = xyz[np.linspace(0, len(xyz) - 1, 16).round().astype(int)]
    rel = xyz - xyz[:, 1:2]
    return np.concatenate([rel[..., 1].ravel(), np.linalg.norm(rel[..., [0, 2]], axis=-1).ravel()])


@pytest.mark.slow
def test_classes_move_differently_enough_to_learn(tmp_path):
    paths = synthesize("ntu120", tmp_path, 40, seed=1, classes=5)
    x = np.array([yaw_invariant_features(p) for p in paths])
    y = np.array([fields(p)["action"] for p in paths])
    correct = 0
    for i in range(len(x)):  # leave-one-out nearest class mean
        others = np.arange(len(x)) != i
        means = {c: x[others & (y == c)].mean(axis=0) for c in set(y)}
        correct += min(means, key=lambda c: np.linalg.norm(x[i] - means[c])) == y[i]
    assert correct / len(x) >= 0.85


def test_class_subset_and_progress(tmp_path):
    calls = []
    paths = synthesize("ntu60", tmp_path, 8, classes=4, progress=calls.append)
    actions = {fields(p)["action"] for p in paths}
    assert len(actions) == 4 and actions & NTU_TWO_PERSON_ACTIONS
    assert calls == [1] * 8
    assert {fields(p)["action"] for p in synthesize("ntu60", tmp_path / "one", 2, classes=1)} == {1}


@pytest.mark.parametrize("kwargs", [
    dict(dataset="ntu30", samples=5), dict(dataset="ntu60", samples=0),
    dict(dataset="ntu60", samples=5, classes=0), dict(dataset="ntu60", samples=5, classes=61),
    dict(dataset="ntu60", samples=5, seed=-1), dict(dataset="ntu60", samples=5000, classes=1)])
def test_bad_arguments_are_refused(tmp_path, kwargs):
    with pytest.raises(ValueError):
        synthesize(out_dir=tmp_path, **kwargs)
    assert not list(tmp_path.glob("*.skeleton"))


def test_class_names():
    assert len(NTU_CLASS_NAMES) == 120
    assert NTU_CLASS_NAMES[0] == "drink water" and NTU_CLASS_NAMES[59] == "walking apart from each other"
    assert NTU_CLASS_NAMES[119] == "finger-guessing game (playing rock-paper-scissors)"
    assert NTU_TWO_PERSON_ACTIONS == set(range(50, 61)) | set(range(106, 121))
