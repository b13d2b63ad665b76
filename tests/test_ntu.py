"""NTU conversion: parser, actor selection, layouts, decoding, splits, bad input, resume."""
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2i_cli import store
from s2i_cli.cli import app
from s2i_cli.convert.flow import convert
from s2i_cli.convert.shard import centre_sequences
from s2i_cli.encoder import skeletons
from s2i_cli.encoder.encoding import Encoding, encode
from s2i_cli.encoder.pixels import decode_image
from s2i_cli.formats import FormatError, get_format
from s2i_cli.formats.ntu import parse_name, parse_skeleton, read_missing_list, split_masks
from s2i_cli.kernels.ntu_select import select_actors
from tests.helpers import shared_data
from tests.ctrgcn_reference import two_actors
from tests.ntu_reference import read_skeleton
from tests.stores import assert_stores_equal, done_records

TWO_PERSON = ["S001C001P001R001A050", "S001C003P008R002A058", "S017C003P020R002A054", "S017C003P020R002A055",
              "S017C003P020R002A056", "S017C003P020R002A057", "S017C003P020R002A058"]


def ntu_files(ntu_dir):
    return sorted(ntu_dir.glob("*.skeleton"))


def test_parser_matches_plain_reader_on_every_real_file(ntu_dir):
    files = ntu_files(ntu_dir)
    assert len(files) == 16
    assert any(b"\r\n" in f.read_bytes()[:200] for f in files) and any(b"\r\n" not in f.read_bytes()[:200] for f in files)
    for path in files:
        frames = read_skeleton(path)
        body_frame, body_id, joints = parse_skeleton(path.read_bytes())
        expected = [(f, b["id"], b["joints"][:, :3]) for f, bodies in enumerate(frames) for b in bodies]
        assert len(body_id) == len(expected), path.name
        assert body_frame.tolist() == [e[0] for e in expected]
        assert body_id.tolist() == [e[1] for e in expected]  # exact 64-bit IDs
        assert np.array_equal(joints, np.stack([e[2] for e in expected]).astype(np.float32)), path.name


def test_body_ids_exceed_float_precision(ntu_dir):
    _, body_id, _ = parse_skeleton((ntu_dir / "S001C001P001R001A050.skeleton").read_bytes())
    assert body_id.dtype == np.int64 and body_id.max() > 2**53
    assert len(set(body_id.tolist())) == 2


@pytest.mark.parametrize("name", TWO_PERSON + ["S001C001P001R001A001"])
def test_actor_selection_matches_published_rules(ntu_dir, name):
    path = ntu_dir / f"{name}.skeleton"
    seq, actors = select_actors(*parse_skeleton(path.read_bytes()))
    ref = two_actors(path)
    assert seq.shape[0] == ref.shape[0]
    assert np.array_equal(seq[:, 0].reshape(len(seq), 75), ref[:, :75])
    if ref.shape[1] == 150 and np.any(ref[:, 75:]):
        assert actors == 2
        assert np.array_equal(seq[:, 1].reshape(len(seq), 75), ref[:, 75:])
    else:
        assert actors == 1


def test_selection_drops_short_bodies_and_merges_non_overlapping():
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(25, 3)).astype(np.float32)
    pose[:, 1] *= 4  # tall and thin: passes the spread filter
    # body 1: frames 0-29 (big motion); body 2: frames 0-29 (small motion); body 3: frames 40-49, too short
    # (<= 11 frames); body 4: frames 30-59, after body 1 -> merged into actor 1's slot
    records = []
    for f in range(60):
        if f < 30:
            records += [(f, 1, pose + f * 0.05), (f, 2, pose + 0.001 * f)]
        else:
            records += [(f, 4, pose + 0.01 * f)]
        if 40 <= f < 50:
            records.append((f, 3, pose + 5))
    frames = np.array([r[0] for r in records], dtype=np.int32)
    ids = np.array([r[1] for r in records], dtype=np.int64)
    joints = np.stack([r[2] for r in records]).astype(np.float32)
    seq, actors = select_actors(frames, ids, joints)
    assert actors == 2 and len(seq) == 60
    assert np.allclose(seq[5, 0], pose + 0.25) and np.allclose(seq[5, 1], pose + 0.005)
    assert np.allclose(seq[45, 0], pose + 0.45) and not np.any(seq[45, 1])


def test_concat_layout_equals_torch_bilinear(ntu_dir):
    fmt = get_format("ntu120")
    seq, actors = fmt.read_items(None, (ntu_dir / "S001C001P001R001A002.skeleton").read_bytes(), [None])[0]
    size = 64
    centred = centre_sequences(fmt, [(seq, actors)])
    images, norm = encode(centred, [actors], Encoding(fmt.skeleton, "concat", size, "main", norm="channel"))
    arranged = centred[0][:, 0][:, list(skeletons.NTU25.arranged())]  # T x 25 x 3
    ref = torch.nn.functional.interpolate(torch.from_numpy(arranged).permute(2, 0, 1)[None], size=(size, size),
                                          mode="bilinear", align_corners=False)[0].numpy()
    lo, hi = norm[0, :, 0], norm[0, :, 1]
    assert np.allclose(lo, centred[0][:, 0].reshape(-1, 3).min(axis=0))
    expected = (ref - lo[:, None, None]) / (hi - lo)[:, None, None] * 255
    assert np.abs(images[0].astype(np.float64) - expected).max() <= 1.0


def test_parts_layout_puts_each_part_in_its_band():
    seq = np.zeros((10, 2, 25, 3), dtype=np.float32)
    for p, part in enumerate(skeletons.NTU25.parts):
        for j in part:
            seq[:, 0, j, :] = p + 1  # every joint of part p holds value p + 1
    seq[:, 0, 1, :] = 1  # centre joint (torso) -> centring keeps the torso at 0
    centred = centre_sequences(get_format("ntu120"), [(seq, 1)])
    images, norm = encode(centred, [1], Encoding(skeletons.NTU25, "parts", 60, "main"))
    decoded = decode_image(images[0], norm[0])
    edges = skeletons.band_edges(60)
    for p in range(5):
        band = decoded[:, :, edges[p]:edges[p + 1]]
        assert np.allclose(band, p, atol=0.02), skeletons.PART_NAMES[p]


def test_decoding_returns_centred_coordinates():
    # a grid that needs no resampling: 25 frames, 25 columns, concat, one actor
    rng = np.random.default_rng(1)
    seq = np.zeros((25, 2, 25, 3), dtype=np.float32)
    seq[:, 0] = rng.normal(size=(25, 25, 3))
    centred = centre_sequences(get_format("ntu120"), [(seq, 1)])
    images, norm = encode(centred, [1], Encoding(skeletons.NTU25, "concat", 25, "main"))
    decoded = decode_image(images[0], norm[0])  # (3, T, 25) in arranged joint order
    expected = centred[0][:, 0][:, list(skeletons.NTU25.arranged())].transpose(2, 0, 1)
    step = (norm[0, :, 1] - norm[0, :, 0]) / 255
    assert np.all(np.abs(decoded - expected) <= step[:, None, None] / 2 + 1e-6)
    assert np.allclose(centred[0][0, 0, 1], 0)  # centred on spine-mid of the first frame


def test_splits_give_published_sizes():
    names = gzip.open(shared_data("ntu", "NTU_RGBD120_available_skeleton_names.txt.gz"), "rt").read().split()
    assert len(names) == 113945
    metas = [parse_name(n) for n in names]
    meta = {k: np.array([m[k] for m in metas]) for k in ("setup", "camera", "subject")}
    m120 = split_masks("ntu120", meta)
    assert (m120["xsub"].sum(), (~m120["xsub"]).sum()) == (63026, 50919)
    assert (m120["xset"].sum(), (~m120["xset"]).sum()) == (54468, 59477)
    in60 = meta["setup"] <= 17
    assert in60.sum() == 56578
    m60 = split_masks("ntu60", {k: v[in60] for k, v in meta.items()})
    assert (m60["xsub"].sum(), (~m60["xsub"]).sum()) == (40091, 16487)
    assert (m60["xview"].sum(), (~m60["xview"]).sum()) == (37646, 18932)


def test_missing_lists_with_and_without_header(tmp_path):
    official = read_missing_list(None, "ntu120")
    assert len(official) == 535 and len(read_missing_list(None, "ntu60")) == 302
    headerless = tmp_path / "missing.txt"
    headerless.write_text("S001C002P005R002A008\nS001C002P006R001A008.skeleton\n")
    assert read_missing_list(headerless, "ntu60") == {"S001C002P005R002A008", "S001C002P006R001A008"}


def test_ntu60_keeps_its_setups_and_actions_and_skips_missing(ntu_dir, tmp_path):
    raw = tmp_path / "raw"
    (raw / "a").mkdir(parents=True)
    for name in ["S001C001P001R001A001", "S017C003P020R002A058"]:
        shutil.copy(ntu_dir / f"{name}.skeleton", raw / "a" / f"{name}.skeleton")
    shutil.copy(ntu_dir / "S001C001P001R001A002.skeleton", raw / "S018C001P001R001A002.skeleton")  # NTU120 only
    shutil.copy(ntu_dir / "S001C001P001R001A002.skeleton", raw / "S001C001P001R001A061.skeleton")  # NTU120 only
    shutil.copy(ntu_dir / "S001C001P001R001A002.skeleton", raw / "S001C002P005R002A008.skeleton")  # on the list
    items, rejected, ignored = get_format("ntu60").discover(raw)
    assert [it.name for it in items] == ["S001C001P001R001A001", "S017C003P020R002A058"]
    assert items[1].label == 57 and items[1].meta == {"setup": 17, "camera": 3, "subject": 20, "replication": 2}
    assert ignored == {"on the missing-skeleton list": 1, "outside ntu60 (setup or action)": 2}
    assert not rejected


def corrupt_variants(good: bytes) -> dict[str, tuple[bytes, str, int]]:
    """name -> (bytes, expected reason fragment, expected line)."""
    lines = good.decode().split("\n")
    bad_token = list(lines)
    bad_token[5] = bad_token[5].replace(bad_token[5].split()[1], "abc", 1)
    bad_joints = list(lines)
    bad_joints[3] = "24"
    lying = ["9999999"] + lines[1:]
    empty_frames = "3\n0\n0\n0\n"
    return {
        "S001C001P001R001A101": (good[: len(good) // 2], "truncated", 0),
        "S001C001P001R001A102": ("\n".join(bad_token).encode(), "not a number", 6),
        "S001C001P001R001A103": ("\n".join(bad_joints).encode(), "joint count", 4),
        "S001C001P001R001A104": ("\n".join(lying).encode(), "frame count", 1),
        "S001C001P001R001A105": (b"", "empty file", 1),
        "S001C001P001R001A106": (empty_frames.encode(), "no body in any frame", 0),
    }


def test_each_bad_input_is_rejected_with_line_and_reason(ntu_dir, tmp_path):
    good = (ntu_dir / "S001C001P001R001A001.skeleton").read_bytes()
    fmt = get_format("ntu120")
    for name, (data, reason, line) in corrupt_variants(good).items():
        (err,) = fmt.read_items(None, data, [None])
        assert isinstance(err, FormatError), name
        assert reason in err.reason, name
        if line:
            assert err.line == line, name


def test_bad_files_are_reported_and_the_rest_converts(ntu_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(ntu_dir, raw, ignore=shutil.ignore_patterns("*.txt", "*.gz"))
    good = (ntu_dir / "S001C001P001R001A001.skeleton").read_bytes()
    variants = corrupt_variants(good)
    for name, (data, _, _) in variants.items():
        (raw / f"{name}.skeleton").write_bytes(data)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    result = CliRunner().invoke(app, ["convert", "ntu120", str(raw), str(tmp_path / "out.zarr"), "--no-progress"])
    assert result.exit_code == 1, result.output
    root = store.open_store(tmp_path / "out.zarr")
    assert root["images"].shape[0] == 16 + len(variants)  # a slot per discovered sample
    assert len(store.valid_indices(root)) == root.attrs["s2i"]["samples"] == 16
    bad = {str(n) for n in root["name"][:][~root["valid"][:]]}
    assert bad == set(variants)  # the rejected files' slots are the ones marked not valid
    xsub = np.concatenate([root["splits/xsub/train"][:], root["splits/xsub/test"][:]])
    assert sorted(xsub) == list(store.valid_indices(root))  # splits hold only valid slots
    rejected = {r["name"]: r for r in root.attrs["s2i"]["rejected"]}
    assert set(rejected) == set(variants)
    for name, (_, reason, line) in variants.items():
        assert reason in rejected[name]["reason"]
        if line:
            assert rejected[name]["line"] == line
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before  # raw input untouched


def test_missing_or_empty_raw_is_one_line_error(tmp_path):
    runner = CliRunner()
    for raw in (tmp_path / "nope", tmp_path):
        result = runner.invoke(app, ["convert", "ntu120", str(raw), str(tmp_path / "o.zarr")])
        assert result.exit_code == 2
        assert "error:" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_existing_store_needs_resume_or_overwrite(ntu_dir, tmp_path):
    out = tmp_path / "o.zarr"
    convert("ntu120", ntu_dir, out, size=32, limit=2, progress=False)
    result = CliRunner().invoke(app, ["convert", "ntu120", str(ntu_dir), str(out), "--size", "32", "--limit", "2"])
    assert result.exit_code == 2 and "--resume" in result.output
    (out / "stray.txt").write_text("left over")  # --overwrite replaces the whole folder
    convert("ntu120", ntu_dir, out, size=32, limit=3, overwrite=True, progress=False)
    assert not (out / "stray.txt").exists() and store.open_store(out)["images"].shape == (3, 3, 32, 32)


@pytest.mark.slow
def test_resume_after_crash_equals_uninterrupted(ntu_dir, tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    shutil.copytree(ntu_dir, raw, ignore=shutil.ignore_patterns("*.txt", "*.gz"))
    (raw / "S001C001P001R001A107.skeleton").write_bytes(b"2\n1\n")  # a rejected file in the middle
    opts = dict(size=32, shard=4, progress=False, workers=1)  # in this process, where the patch applies
    convert("ntu120", raw, tmp_path / "full.zarr", **opts)

    real_write = store.write_shard
    calls = {"n": 0}

    def crashing_write(root, start, block):
        calls["n"] += 1
        if calls["n"] == 3:
            real_write(root, start, {k: (v[:2] if k != "meta" else {f: x[:2] for f, x in v.items()}) for k, v in block.items()})
            raise KeyboardInterrupt("killed mid-shard")
        real_write(root, start, block)

    monkeypatch.setattr(store, "write_shard", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        convert("ntu120", raw, tmp_path / "resumed.zarr", **opts)
    monkeypatch.setattr(store, "write_shard", real_write)
    with pytest.raises(store.StoreError, match="unfinished"):
        store.open_store(tmp_path / "resumed.zarr")
    report = convert("ntu120", raw, tmp_path / "resumed.zarr", resume=True, **opts)
    assert report.resumed_from == 7  # shards 0 and 1: 8 slots, one of them the rejected A107
    assert_stores_equal(tmp_path / "full.zarr", tmp_path / "resumed.zarr")


def replicated_raw(ntu_dir: Path, raw: Path, n: int = 96) -> Path:
    """`n` links to the real files under distinct sample names."""
    raw.mkdir()
    for k in range(n):
        src = sorted(ntu_dir.glob("*.skeleton"))[k % 16]
        (raw / f"S{1 + k % 32:03d}C001P{1 + k // 32:03d}R001{src.name[16:20]}.skeleton").symlink_to(src)
    return raw


def start_and_kill(cmd: list[str], out: Path, kill) -> int:
    """Start `s2i convert` into `out`, call `kill(proc, records)` once 4 shards are recorded;
    returns the exit status."""
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        records = done_records(out)
        if len(records) >= 4:
            kill(proc, records)
            break
        time.sleep(0.005)
    _, err = proc.communicate()
    start_and_kill.stderr = err
    return proc.returncode


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted(ntu_dir, tmp_path):
    """A real kill: SIGKILL the whole `s2i convert` once some shards are written."""
    import subprocess
    import sys

    raw = replicated_raw(ntu_dir, tmp_path / "raw")
    opts = ["--size", "32", "--shard-size", "2", "--workers", "1", "--no-progress"]
    cmd = [sys.executable, "-m", "s2i_cli.cli", "convert", "ntu120", str(raw)]
    out = tmp_path / "killed.zarr"
    assert start_and_kill([*cmd, str(out), *opts], out, lambda proc, _: proc.kill()) == -9
    assert 4 <= len(done_records(out)) < 48, "conversion was not killed midway"
    with pytest.raises(store.StoreError, match="unfinished"):
        store.open_store(out)
    assert subprocess.run([*cmd, str(out), *opts, "--resume"]).returncode == 0
    assert subprocess.run([*cmd, str(tmp_path / "full.zarr"), *opts]).returncode == 0
    assert_stores_equal(tmp_path / "full.zarr", out)


@pytest.mark.slow
def test_sigkill_of_one_worker_fails_the_run_and_resume_completes_it(ntu_dir, tmp_path):
    """kill -9 of one worker process: the run names a shard, exits 3 and leaves a store that
    --resume completes equal to an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys

    raw = replicated_raw(ntu_dir, tmp_path / "raw")
    opts = ["--size", "32", "--shard-size", "2", "--workers", "2", "--no-progress"]
    cmd = [sys.executable, "-m", "s2i_cli.cli", "convert", "ntu120", str(raw)]
    out = tmp_path / "killed.zarr"
    pids = set()

    def kill_worker(proc, records):
        pid = next(r["pid"] for r in records if r["pid"] != proc.pid)  # a worker (the run takes shard 0 itself)
        pids.add(pid)
        os.kill(pid, signal.SIGKILL)

    assert start_and_kill([*cmd, str(out), *opts], out, kill_worker) == 3
    err = start_and_kill.stderr.strip()
    assert pids and "shard" in err and "worker process died" in err and "--resume" in err, err
    # one line from s2i. Python's resource tracker may add a "leaked semaphore objects" warning: the
    # workers' own locks (Numba's threading-layer init RLock, numcodecs' blosc mutex) are named
    # semaphores under the forkserver start method, and the killed worker (SIGKILL) and its sibling
    # (SIGTERMed by the broken pool, by CPython's design) never run the finalizers that unregister
    # them; the tracker unlinks them, so nothing is left in /dev/shm (the parent's are all released)
    assert err.splitlines()[0].startswith("error: shard") and "Traceback" not in err, err
    with pytest.raises(store.StoreError, match="unfinished"):
        store.open_store(out)
    assert subprocess.run([*cmd, str(out), *opts, "--resume"]).returncode == 0
    assert subprocess.run([*cmd, str(tmp_path / "full.zarr"), *opts, "--workers", "1"]).returncode == 0
    assert_stores_equal(tmp_path / "full.zarr", out)
