"""`s2i info` and `s2i show` on real NTU files (../shared/data/ntu beside the repository),
on a hand-made 2D store and on the synthetic test store."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from s2i_cli.cli import app
from s2i_cli.convert.flow import convert
from s2i_cli.encoder import skeletons
from s2i_cli.formats import DATASET_NAMES
from s2i_cli.views.info import store_summary
from s2i_cli.views.show import (GIF_DPI, GIF_FIGSIZE, IMAGE_BOX, IMAGE_LEFT, IMAGE_TOP, PNG_SIZE, Painter, load_sample,
                                reconstruct, render_animation, render_sample)
from s2i_cli.encoder.pixels import decode_image
from s2i_cli.store import create_store, finalize, open_store, write_shard

from tests.helpers import shared_data
from tests.stores import make_store

# where each dataset's sample files live under shared/data (datasets without files are skipped)
DATA_FOLDERS = {"ntu60": "ntu", "ntu120": "ntu", "pkummd": "pkummd", "pkummd2": "pkummd", "nwucla": "nwucla",
                "kinetics": "kinetics_skeleton", "toyota": "toyota"}
WIDE = {"COLUMNS": "200"}  # rich wraps at 80 columns without a terminal


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env=WIDE)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.verify()
    with Image.open(path) as im:
        return im.size


def shown_fraction(png: Path, image: np.ndarray) -> float:
    """How much of the S2I image (3, H, W) the PNG shows pixel for pixel at its integer
    enlargement (band and actor lines cover the rest)."""
    h, w = image.shape[1:]
    k = IMAGE_BOX // max(h, w)
    big = np.repeat(np.repeat(np.asarray(image).transpose(1, 2, 0), k, axis=0), k, axis=1)
    shown = np.asarray(Image.open(png).convert("RGB"))[IMAGE_TOP:IMAGE_TOP + h * k, IMAGE_LEFT:IMAGE_LEFT + w * k]
    return float(np.mean(np.all(shown == big, axis=-1)))


@pytest.fixture
def texts_inside(monkeypatch) -> list[str]:
    """Checks every figure `render_sample` saves: each title, label and text drawn lies inside
    the figure, and no two of them (tick labels aside) overlap. Returns the offenders found."""
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    bad: list[str] = []
    save = Figure.savefig

    def checked(fig, *args, **kwargs):
        fig.canvas.draw()
        renderer, box = fig.canvas.get_renderer(), fig.bbox
        ticks = {id(t) for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()}
        drawn = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        extents = [(t.get_text(), t.get_window_extent(renderer)) for t in drawn]
        bad.extend(f"{text!r} at {e.x0:.0f}..{e.x1:.0f} x {e.y0:.0f}..{e.y1:.0f} is outside the figure"
                   for text, e in extents if e.x0 < box.x0 or e.y0 < box.y0 or e.x1 > box.x1 or e.y1 > box.y1)
        labels = [(text, e) for t, (text, e) in zip(drawn, extents) if id(t) not in ticks]
        bad.extend(f"{a!r} overlaps {b!r}" for i, (a, ea) in enumerate(labels) for b, eb in labels[i + 1:]
                   if ea.overlaps(eb))
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", checked)
    return bad


@pytest.mark.slow
def test_every_text_is_inside_the_figure(ntu_dir, tmp_path, texts_inside):
    """Regression: the curves' one-line title ('right hand tip, actor 1: image column 122 decoded
    (dots) over bone-motion from skeleton/ (lines)') ran 140 px past the figure's right edge."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("S001C001P001R001A001", "S001C001P001R001A050"):  # one actor (right hand tip), two actors
        (raw / f"{name}.skeleton").symlink_to(ntu_dir / f"{name}.skeleton")
    convert("ntu60", raw, tmp_path / "n.zarr", progress=False, workers=1, streams=("bone", "motion", "bone-motion"))
    root = open_store(tmp_path / "n.zarr")
    for index in (0, 1):
        for stream in ("joint", "bone", "motion", "bone-motion"):
            render_sample(root, index, tmp_path / f"{index}-{stream}.png", stream=stream)
    assert texts_inside == []


def test_show_by_index_writes_a_png_of_the_documented_size(ntu_store, tmp_path):
    out = tmp_path / "sample.png"
    result = invoke("show", str(ntu_store), "--index", "6", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert png_size(out) == PNG_SIZE == (1600, 900)
    # the S2I image is in the picture pixel for pixel, enlarged 3x (nearest); band lines aside
    assert IMAGE_BOX // 224 == 3 and shown_fraction(out, open_store(ntu_store)["images"][6]) > 0.95


def test_show_by_name_default_output(ntu_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "S017C003P020R002A054"  # 42 frames, two actors
    result = invoke("show", str(ntu_store), "--name", name)
    assert result.exit_code == 0, result.output
    root = open_store(ntu_store)
    index = [str(n) for n in root["name"][:]].index(name)
    assert png_size(tmp_path / f"{name}.png") == PNG_SIZE
    assert shown_fraction(tmp_path / f"{name}.png", root["images"][index]) > 0.95


def test_animation(ntu_store, tmp_path):
    s = load_sample(open_store(ntu_store), 11)
    render_animation(s, Painter(s), tmp_path / "a.gif", max_frames=12)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.size == (int(GIF_FIGSIZE[0] * GIF_DPI), int(GIF_FIGSIZE[1] * GIF_DPI)) == (1000, 500)
        assert gif.n_frames == 12


def test_show_refuses_bad_index_name_and_store(ntu_store, tmp_path):
    result = invoke("show", str(ntu_store), "--index", "16", "--out", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and "out of range" in result.output and "16 samples" in result.output
    result = invoke("show", str(ntu_store), "--name", "S999C001P001R001A001")
    assert result.exit_code == 2 and "no sample named" in result.output
    result = invoke("show", str(tmp_path / "missing.zarr"))
    assert result.exit_code == 2 and "no store at" in result.output
    assert not (tmp_path / "x.png").exists()


def test_image_decodes_to_the_stored_skeleton(ntu_store):
    root = open_store(ntu_store)
    for index in (0, 6):
        s = load_sample(root, index)
        assert s.skel is skeletons.NTU25
        expected = reconstruct(s.skel, s.header, s.seq, s.actors, *s.image.shape[1:])
        step = (s.norm[:, 1] - s.norm[:, 0]) / 255.0
        err = np.abs(decode_image(s.image, s.norm) - expected).reshape(3, -1).max(axis=1)
        assert np.all(err <= 0.5 * step + 1e-5), (err, step)


def test_store_summary_counts_agree_with_the_store(ntu_store):
    root = open_store(ntu_store)
    summary = store_summary(root)
    json.dumps(summary)  # plain values only
    labels = root["label"][:]
    n = len(labels)
    assert summary["samples"] == n == 16 == summary["attrs_samples"]
    assert summary["dataset"] == "ntu120" and summary["classes"] == 120
    counts = {r["index"]: r["count"] for r in summary["class_counts"]}
    assert counts == {c: int(np.sum(labels == c)) for c in range(120)}
    assert sum(counts.values()) == n
    for protocol in ("xsub", "xset"):
        sides = summary["splits"][protocol]
        assert sides == {side: root[f"splits/{protocol}/{side}"].shape[0] for side in ("train", "test")}
        assert sides["train"] + sides["test"] == n
    assert summary["splits"]["xsub"] == {"train": 9, "test": 7}
    assert sum(summary["actors"].values()) == n and summary["actors"]["2"] == 7
    total = summary["frames"]["total"]  # the frames back to back, nothing else
    assert root["skeleton/joints"].shape[0] == total and np.isfinite(root["skeleton/joints"][:]).all()
    assert summary["skeleton_shape"] == [total, 2, 25, 3] and summary["skeleton_bytes"] == total * 2 * 25 * 3 * 4
    assert summary["rejected"] == [] and summary["ignored"] == {}
    assert summary["image_bytes"] == n * 3 * 224 * 224
    assert 0 < summary["image_bytes_on_disk"] < summary["image_bytes"] and summary["compression"] > 1
    assert summary["bytes_on_disk"] > summary["image_bytes_on_disk"]


def test_info_prints_splits_classes_and_a_rejected_file(tmp_path, ntu_dir):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("S001C001P001R001A001", "S001C001P001R001A002", "S017C003P020R002A054"):
        shutil.copy(ntu_dir / f"{name}.skeleton", raw)
    data = (ntu_dir / "S001C001P001R001A004.skeleton").read_bytes()
    (raw / "S001C001P001R001A004.skeleton").write_bytes(data[:3000])  # truncated copy
    store = tmp_path / "s.zarr"
    report = convert("ntu120", raw, store, progress=False)
    assert [r.name for r in report.rejected] == ["S001C001P001R001A004"]
    line = report.rejected[0].line

    result = invoke("info", str(store))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "split xsub" in out and "train 2 / test 1" in out
    assert "split xset" in out and "train 0 / test 3" in out
    assert "drink water" in out and "point finger at the other person" in out
    assert "S001C001P001R001A004" in out and report.rejected[0].reason in out and f" {line} " in out
    assert "compression" in out and "on disk" in out

    summary = json.loads(invoke("info", str(store), "--json").output)
    assert summary["samples"] == 3 and summary["rejected"][0]["line"] == line
    assert invoke("info", str(store), "--all").output.count("│") > out.count("│")  # every class listed


def test_info_refuses_what_is_not_a_finished_store(tmp_path):
    result = invoke("info", str(tmp_path / "missing.zarr"))
    assert result.exit_code == 2 and "no store at" in result.output
    (tmp_path / "plain").mkdir()
    result = invoke("info", str(tmp_path / "plain"))
    assert result.exit_code == 2 and "not a Zarr store" in result.output
    create_store(tmp_path / "half.zarr", n=4, height=8, width=8, joints=25, channels=3, meta_fields=[],
                 attrs={"dataset": "ntu60"})
    result = invoke("info", str(tmp_path / "half.zarr"))
    assert result.exit_code == 2 and "unfinished" in result.output
    assert len(result.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- other stores

OPENPOSE18 = ("nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow",
              "left wrist", "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle",
              "right eye", "left eye", "right ear", "left ear")
OPENPOSE_BONES = ((1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 1), (9, 8), (10, 9), (11, 1),
                  (12, 11), (13, 12), (14, 0), (15, 0), (16, 14), (17, 15))


def make_2d_store(path: Path, layout_name: str = "concat") -> Path:
    """A Kinetics-like store made by hand: 18 joints in pixels (y down), confidence third,
    one actor (`main`), some joints of confidence 0."""
    rng = np.random.default_rng(1)
    pose = np.array([[0, -60], [0, -45], [-15, -45], [-22, -25], [-25, -5], [15, -45], [22, -25], [25, -5],
                     [-10, 0], [-11, 25], [-12, 50], [10, 0], [11, 25], [12, 50], [-4, -63], [4, -63],
                     [-8, -60], [8, -60]], dtype=np.float32)
    seqs = []
    for t_len in (30, 20):
        seq = np.zeros((t_len, 2, 18, 3), dtype=np.float32)
        wave = np.sin(np.linspace(0, 3 * np.pi, t_len))[:, None]
        seq[:, 0, :, :2] = pose + rng.normal(0, 0.5, (t_len, 18, 2))
        seq[:, 0, 4, 1] -= 30 * wave[:, 0]
        seq[:, 0, :, 2] = rng.uniform(0.3, 1.0, (t_len, 18))
        seq[::3, 0, 16:, :] = 0.0  # ears not detected in every third frame
        seqs.append(seq)
    size = 64
    attrs = {"dataset": "kinetics-like", "skeleton": "openpose18-test", "joint_names": list(OPENPOSE18),
             "bones": [list(b) for b in OPENPOSE_BONES], "part_names": list(skeletons.PART_NAMES),
             "layout": layout_name, "bands": [0, size], "persons": "main", "image_size": [size, size],
             "channels": ["x", "y", "confidence"], "class_names": ["wave", "stand"], "meta_fields": [],
             "command": "tests", "ignored": {"no pose": 2}}
    root = create_store(path, n=2, height=size, width=size, joints=18, channels=3, meta_fields=[], attrs=attrs)
    images = rng.integers(0, 256, (2, 3, size, size), dtype=np.uint8)
    norm = np.array([[[-25, 25], [-63, 50], [0, 1]]] * 2, dtype=np.float32)
    write_shard(root, 0, {"images": images, "label": np.array([0, 1], np.int16), "name": ["clip_a", "clip_b"],
                          "frames": np.array([30, 20], np.int32), "actors": np.array([1, 1], np.int8),
                          "norm": norm, "skeletons": seqs})
    finalize(root, {})
    return path


@pytest.mark.slow
def test_show_and_info_on_a_2d_store(tmp_path):
    store = make_2d_store(tmp_path / "k.zarr")
    root = open_store(store)
    out = render_sample(root, 0, tmp_path / "k.png", animate=tmp_path / "k.gif", max_animation_frames=8)
    assert png_size(out) == PNG_SIZE and shown_fraction(out, root["images"][0]) > 0.9
    with Image.open(tmp_path / "k.gif") as gif:
        assert gif.n_frames == 8
    s = load_sample(root, 0)
    paint = Painter(s)
    assert paint.flip and not paint.mirror  # image coordinates: y down, x right
    assert not paint.ok[0, 0, 16] and paint.ok[1, 0, 16]  # confidence 0 is not drawn
    assert paint.part[4] == 2 and paint.part[13] == 3  # parts guessed from the joint names
    summary = store_summary(root)
    assert summary["splits"] == {} and summary["ignored"] == {"no pose": 2}
    result = invoke("info", str(store))
    assert result.exit_code == 0 and "2 (no pose)" in result.output and "splits" in result.output


def test_show_on_the_synthetic_test_store(tmp_path):
    store = make_store(tmp_path / "s.zarr", n=8, size=32)
    out = render_sample(open_store(store), -1, tmp_path / "s.png")
    assert png_size(out) == PNG_SIZE
    assert shown_fraction(out, open_store(store)["images"][-1]) > 0.9


# No real sample files exist for these (formats.md): toyota has none at all, the one PKU-MMD
# phase-2 sample comes without a label file, and no pyskl pickle or CTR-GCN .npz is small
# enough to keep; tests/test_formats.py and tests/test_importers.py cover them on files they write.
NO_REAL_SAMPLES = {"toyota", "pkummd2", "pyskl", "ctrgcn"}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", [d for d in DATASET_NAMES if d != "ntu120" and d not in NO_REAL_SAMPLES])
def test_show_every_dataset(dataset, tmp_path, texts_inside):
    """Every dataset reader's store renders (a few samples from its sample files; ntu120: the tests above)."""
    folder = shared_data(DATA_FOLDERS[dataset])
    store = tmp_path / f"{dataset}.zarr"
    convert(dataset, folder, store, limit=3, progress=False)
    out = render_sample(open_store(store), -1, tmp_path / f"{dataset}.png")
    assert png_size(out) == PNG_SIZE and shown_fraction(out, open_store(store)["images"][-1]) > 0.95
    assert texts_inside == []


@pytest.mark.slow
def test_show_toyota_from_written_files(tmp_path):
    """No real Toyota file exists: render a store made from files written like the reader's tests."""
    import json

    import numpy as np

    from tests.samples import toyota_doc

    raw = tmp_path / "raw"
    raw.mkdir()
    doc, _ = toyota_doc(np.random.default_rng(0), frames=20)
    (raw / "Walk_p03_r00_v01_c01.json").write_text(json.dumps(doc))
    convert("toyota", raw, tmp_path / "t.zarr", progress=False)
    out = render_sample(open_store(tmp_path / "t.zarr"), 0, tmp_path / "t.png")
    assert png_size(out) == PNG_SIZE and shown_fraction(out, open_store(tmp_path / "t.zarr")["images"][0]) > 0.95
