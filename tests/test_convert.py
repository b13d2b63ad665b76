"""Conversion as shard tasks: resume with shards done out of order, a failing task named with
its shard, rejected files' slots marked in `valid`, older stores refused with a one-line fix."""
import errno
import shutil

import numpy as np
import zarr
import pytest
from typer.testing import CliRunner

from s2i_cli import store
from s2i_cli.cli import app
from s2i_cli.convert import executors
from s2i_cli.convert.flow import ConvertFailed, convert
from tests.helpers import TINY
from tests.stores import assert_stores_equal, pipeline

OPTS = dict(size=32, shard=2, progress=False, workers=1)  # in this process, where patches apply


@pytest.fixture
def raw(ntu_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(ntu_dir, raw, ignore=shutil.ignore_patterns("*.txt", "*.gz"))
    (raw / "S001C001P001R001A107.skeleton").write_bytes(b"2\n1\n")  # rejected: slot 7, shard 3
    return raw


@pytest.mark.slow
def test_resume_redoes_exactly_the_shards_not_recorded(raw, tmp_path, monkeypatch):
    convert("ntu120", raw, tmp_path / "full.zarr", **OPTS)
    out = tmp_path / "gaps.zarr"

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed before finishing")

    monkeypatch.setattr(store, "compact_skeletons", crash)  # the first step of finishing
    with pytest.raises(KeyboardInterrupt):
        convert("ntu120", raw, out, **OPTS)
    monkeypatch.undo()
    # shards 3 and 5 were in flight when the run died: no record, half-written arrays
    root = store.open_group(out, mode="r+")
    for k in (3, 5):
        shutil.rmtree(out / "progress" / f"{k:06d}")
        root["images"][2 * k:2 * k + 2] = 255
        root["valid"][2 * k:2 * k + 2] = True
        region = root.attrs["s2i"]["frame_region"]
        root["skeleton/staging"][k * region:k * region + 10] = 7.0
    redone = []
    real = executors.convert_shard

    def spy(plan, task):
        redone.append(task.index)
        return real(plan, task)

    monkeypatch.setattr(executors, "convert_shard", spy)
    report = convert("ntu120", raw, out, resume=True, **OPTS)
    assert sorted(redone) == [3, 5]
    assert report.written == 16 and report.resumed_from == 16 - 3  # shards 3 and 5: 4 slots, one rejected
    assert_stores_equal(tmp_path / "full.zarr", out)
    assert "progress" not in store.open_store(out)  # the records go once the store is complete


def test_a_finished_store_holds_its_frames_back_to_back(raw, tmp_path):
    convert("ntu120", raw, tmp_path / "s.zarr", **OPTS)
    root = store.open_store(tmp_path / "s.zarr")
    frames = root["frames"][:].astype(np.int64)
    assert root["skeleton/joints"].shape[0] == frames.sum() and "skeleton/staging" not in root
    assert np.array_equal(root["skeleton/start"][:], np.cumsum(frames) - frames)
    assert np.isfinite(root["skeleton/joints"][:]).all()  # no fill left: every frame is a stored one
    assert root.attrs["s2i"]["format_version"] == store.FORMAT_VERSION == 4


def test_a_run_killed_while_compacting_completes_with_resume(raw, tmp_path, monkeypatch):
    convert("ntu120", raw, tmp_path / "full.zarr", **OPTS)
    out = tmp_path / "o.zarr"
    real, copies = zarr.Array.__setitem__, []

    def killed(self, key, value):  # the third frame copy dies: compaction half done
        if self.path == "skeleton/joints":
            copies.append(key)
            if len(copies) == 3:
                raise KeyboardInterrupt("killed while compacting")
        real(self, key, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", killed)
    with pytest.raises(KeyboardInterrupt):
        convert("ntu120", raw, out, **OPTS)
    monkeypatch.undo()
    with pytest.raises(store.StoreError, match="--resume"):
        store.open_store(out)
    report = convert("ntu120", raw, out, resume=True, **OPTS)
    assert report.written == 16
    assert_stores_equal(tmp_path / "full.zarr", out)
    full, got = store.open_store(tmp_path / "full.zarr"), store.open_store(out)
    assert np.array_equal(full["skeleton/joints"][:], got["skeleton/joints"][:])


@pytest.mark.slow
def test_a_failing_task_names_its_shard_and_leaves_a_resumable_store(raw, tmp_path, monkeypatch):
    convert("ntu120", raw, tmp_path / "full.zarr", **OPTS)
    real = store.write_shard

    def disk_full(root, start, block):
        if start == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(root, start, block)

    monkeypatch.setattr(store, "write_shard", disk_full)
    with pytest.raises(ConvertFailed, match=r"shard 2 \(samples 4–5, from \S+\) failed: .*No space left.*--resume"):
        convert("ntu120", raw, tmp_path / "o.zarr", **OPTS)
    result = CliRunner().invoke(app, ["convert", "ntu120", str(raw), str(tmp_path / "o.zarr"), "--size", "32",
                                      "--shard-size", "2", "--workers", "1", "--no-progress", "--resume"])
    assert result.exit_code == 3 and "shard 2" in result.output and len(result.output.strip().splitlines()) == 1
    with pytest.raises(store.StoreError, match="unfinished"):
        store.open_store(tmp_path / "o.zarr")
    monkeypatch.undo()
    convert("ntu120", raw, tmp_path / "o.zarr", resume=True, **OPTS)
    assert_stores_equal(tmp_path / "full.zarr", tmp_path / "o.zarr")


@pytest.mark.slow
def test_rejected_slots_are_marked_and_left_out(raw, tmp_path):
    from s2i_cli.views.info import store_summary
    from s2i_cli.views.show import load_sample

    convert("ntu120", raw, tmp_path / "o.zarr", **OPTS)
    root = store.open_store(tmp_path / "o.zarr")
    valid = root["valid"][:]
    assert len(valid) == 17 and list(np.flatnonzero(~valid)) == [7]
    assert str(root["name"][7]) == "S001C001P001R001A107" and root["frames"][7] == 0
    assert 7 not in store.split_indices(root, None, "train")
    for protocol in ("xsub", "xset"):
        for side in ("train", "test"):
            assert 7 not in root[f"splits/{protocol}/{side}"][:]
    summary = store_summary(root)
    assert summary["samples"] == 16 and summary["slots"] == 17 and summary["frames"]["min"] > 0
    with pytest.raises(store.StoreError, match="sample 7 .*rejected"):
        load_sample(root, 7)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_older_store_format_is_a_one_line_error_naming_the_command(raw, tmp_path):
    convert("ntu120", raw, tmp_path / "o.zarr", command="s2i convert ntu120 raw o.zarr", **OPTS)
    root = store.open_group(tmp_path / "o.zarr", mode="r+")
    root.attrs["s2i"] = {**root.attrs["s2i"], "format_version": 1}  # raw: update_attrs writes only readable headers
    import zarr
    zarr.consolidate_metadata(root.store)
    result = CliRunner().invoke(app, ["info", str(tmp_path / "o.zarr")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "store format 1" in result.output and "s2i convert ntu120 raw o.zarr --overwrite" in result.output


@pytest.mark.slow
def test_dask_local_cluster_equals_a_local_run(raw, tmp_path):
    """The same shard tasks submitted to a Dask LocalCluster of 2 worker processes (through
    --scheduler's code path) give the store a local run gives, array for array."""
    from distributed import LocalCluster

    convert("ntu120", raw, tmp_path / "local.zarr", **OPTS)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        report = convert("ntu120", raw, tmp_path / "dask.zarr", size=32, shard=2, progress=False,
                         scheduler=cluster.scheduler_address)
    assert report.written == 16 and len(report.rejected) == 1
    assert_stores_equal(tmp_path / "local.zarr", tmp_path / "dask.zarr")


@pytest.fixture
def s3(monkeypatch):
    """A local S3 (moto) on the loopback interface, a bucket `skel`, and AWS_* variables
    pointing at it (what workers and the training loader inherit). Yields the endpoint."""
    import socket
    import subprocess
    import sys
    import time

    s3fs = pytest.importorskip("s3fs")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in dict(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
                           AWS_ENDPOINT_URL=endpoint).items():
        monkeypatch.setenv(key, value)
    deadline = time.time() + 30
    while True:
        try:
            s3fs.S3FileSystem(skip_instance_cache=True, endpoint_url=endpoint).mkdir("skel")
            break
        except Exception:  # noqa: BLE001 - the server is still starting
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def forkserver_before_s3():
    """The workers' forkserver started before the AWS_* variables are set (as by an earlier
    conversion in this process): workers must still take the run's environment."""
    from s2i_cli.convert.executors import worker_context

    worker_context()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_convert_into_object_storage_and_read_it_back(raw, tmp_path, forkserver_before_s3, s3):
    import json

    import xarray as xr

    from s2i_cli.train.loader import make_loader

    url = "s3://skel/ntu.zarr"
    result = CliRunner().invoke(app, ["convert", "ntu120", str(raw), url, "--size", "32", "--shard-size", "4",
                                      "--workers", "2", "--no-progress", "--storage-option", f"endpoint_url={s3}"])
    assert result.exit_code == 1, result.output  # the one rejected file
    convert("ntu120", raw, tmp_path / "local.zarr", size=32, shard=4, progress=False, workers=1)
    assert_stores_equal(tmp_path / "local.zarr", url)

    result = CliRunner().invoke(app, ["info", url, "--json", "--storage-option", f"endpoint_url={s3}"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["samples"] == 16 and summary["slots"] == 17 and len(summary["rejected"]) == 1
    assert summary["path"] == "s3://skel/ntu.zarr" and summary["bytes_on_disk"] is None

    local = store.open_store(tmp_path / "local.zarr")
    train = store.split_indices(store.open_store(url), "xsub", "train")
    loader = make_loader(url, train, len(train), shuffle=False, workers=0)
    images, _, index = next(iter(loader))
    assert np.array_equal(images.numpy(), local["images"][:][index.numpy()])
    assert pipeline(loader.dataset._open()[0]) == "BatchedCodecPipeline"  # zarrs has no S3 store

    from s2i_cli.eval import evaluate as ev
    from s2i_cli.train.pretrain import pretrain  # pretrain and evaluate take the URL

    run = pretrain(url, tmp_path / "run", epochs=1, batch_size=2, **TINY)
    assert json.loads((run / "config.json").read_text())["store"] == url and (run / "checkpoint-last.pt").exists()

    entry = ev.evaluate(protocol="xsub", run="none", store=url, model="vit_tiny", mode="knn", workers=0,
                        progress=False, runs_root=tmp_path / "runs")
    assert entry["store"] == url and (tmp_path / "runs" / "ntu-scratch-vit_tiny" / "results.json").exists()

    ds = xr.open_zarr(url, storage_options={"endpoint_url": s3})
    kept = ds.isel(sample=ds.valid.values)
    assert kept.sizes["sample"] == 16
    assert np.array_equal(kept.images.values, local["images"][:][store.valid_indices(local)])
