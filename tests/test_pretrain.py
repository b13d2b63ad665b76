"""`s2i pretrain` (s2i_cli/train/pretrain.py): the training loop (loss falls, exact resume, a
diverging run stops, DiffMAE, two-process DDP on CPU), the CLI's errors and damaged run
directories. CPU, the tiny model (tests/helpers.py). The loader, model, weights and plumbing
have their own test modules."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from s2i_cli.cli import app
from s2i_cli.store import StoreError, open_store
from s2i_cli.train.mae import MaskedAutoencoder, build_encoder, load_weights
from s2i_cli.train.pretrain import pretrain
from tests.helpers import REPO, TINY
from tests.stores import make_store


pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def store(synthetic_store):
    return synthetic_store


# ------------------------------------------------------------------ training loop

def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_loss_falls_and_run_layout(store, tmp_path):
    run = pretrain(store, tmp_path / "run", epochs=8, batch_size=16, lr=2e-3, warmup_epochs=2, **TINY)
    losses = [m["loss"] for m in _metrics(run)]
    assert len(losses) == 8 and losses[-1] < 0.9 * losses[0]
    config = json.loads((run / "config.json").read_text())
    assert config["store"] == str(store.absolute()) and config["img_size"] == 32 and config["model"] == "vit_tiny"
    assert config["dataset"] == "synthetic" and config["class_names"][0] == "class 0"
    # by default the train side of the store's xsub protocol (32 of 64 samples), never the test side
    assert config["protocol"] == "xsub" and config["all_samples"] is False and config["train_samples"] == 32
    # columns input, masked, reconstruction under a 24-px title band; rows: the first 4 training
    # samples, 32 px scaled x7 to 224 px, 8-px gaps
    recon = np.asarray(Image.open(run / "recon-epoch008.png"))
    assert recon.shape == (24 + 4 * (224 + 8), 8 + 3 * (224 + 8), 3)
    inputs = open_store(store)["images"][:4].transpose(0, 2, 3, 1)
    for r, image in enumerate(inputs):
        top = 24 + r * (224 + 8)
        assert np.array_equal(recon[top:top + 224:7, 8:8 + 224:7], image)
    assert (run / "loss.png").stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run)).Reload()  # what `tensorboard --logdir` reads
    assert [e.step for e in events.Scalars("train/loss")] == list(range(1, 17))
    assert len(events.Scalars("train/lr")) == 16 and len(events.Scalars("train/grad_norm")) == 1
    assert [e.step for e in events.Scalars("epoch/loss")] == list(range(2, 17, 2))
    assert np.allclose([e.value for e in events.Scalars("epoch/loss")], losses)
    assert events.Images("reconstruction")
    ckpt = torch.load(run / "checkpoint-last.pt", weights_only=True)
    assert ckpt["step"] == 16 and ckpt["epoch"] == 8
    enc = build_encoder(config["model"], config["img_size"])  # how evaluate reads a run
    report = load_weights(enc, run / "checkpoint-last.pt")
    assert report["missing"] == [] and torch.equal(enc.blocks[0].mlp.fc1.weight, ckpt["model"]["encoder.blocks.0.mlp.fc1.weight"])


def test_resume_matches_uninterrupted_run(store, tmp_path):
    # 32 xsub train samples, 4 x 2 per step: 4 steps per epoch
    settings = dict(epochs=2, batch_size=4, accum=2, warmup_epochs=1, protocol="xsub", **TINY)
    whole = pretrain(store, tmp_path / "whole", **settings)
    part = pretrain(store, tmp_path / "part", max_steps=1, **settings)  # killed mid-epoch 1
    assert torch.load(part / "checkpoint-last.pt", weights_only=True)["step"] == 1
    part = pretrain(store, tmp_path / "part", max_steps=4, **settings, resume=True)  # to the epoch's end
    part = pretrain(None, tmp_path / "part", resume=True, progress=False)  # the rest, settings from config.json
    a = torch.load(whole / "checkpoint-last.pt", weights_only=True)
    b = torch.load(part / "checkpoint-last.pt", weights_only=True)
    assert a["step"] == b["step"] == 8
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    other = make_store(tmp_path / "48.zarr", n=16, size=48)
    with pytest.raises(ValueError, match="48x48 images"):
        pretrain(other, tmp_path / "part", resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        pretrain(store, tmp_path / "part", **settings)


def test_diverging_run_stops_and_keeps_the_last_good_checkpoint(store, tmp_path, monkeypatch):
    """A loss that turns NaN in the second epoch stops the run at once; the epoch-1 checkpoint stays."""
    real, calls = MaskedAutoencoder.forward_loss, []

    def diverging(self, imgs, pred, mask):
        loss = real(self, imgs, pred, mask)
        if self.training:
            calls.append(1)
            return loss * float("nan") if len(calls) > 4 else loss
        return loss

    monkeypatch.setattr(MaskedAutoencoder, "forward_loss", diverging)
    # 32 xsub train samples, batch 8: 4 steps per epoch; the 5th step diverges
    with pytest.raises(ValueError) as caught:
        pretrain(store, tmp_path / "nan", epochs=2, batch_size=8, warmup_epochs=1, protocol="xsub", save_every=1,
                 **TINY)
    message = str(caught.value)
    assert "\n" not in message and "step 5" in message
    assert str(tmp_path / "nan" / "checkpoint-last.pt") in message and "(step 4)" in message
    ckpt = torch.load(tmp_path / "nan" / "checkpoint-last.pt", weights_only=True)
    assert ckpt["step"] == 4 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_diffmae_pretrain_runs(store, tmp_path):
    run = pretrain(store, tmp_path / "diff", objective="diffmae", epochs=2, batch_size=8, max_steps=2, **TINY)
    (record,) = _metrics(run)
    assert record["step"] == 2 and np.isfinite(record["loss"]) and (run / "recon-epoch000.png").is_file()
    enc = build_encoder("vit_tiny", 32)
    assert load_weights(enc, run / "checkpoint-last.pt")["missing"] == []


def test_torchrun_two_processes(store, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "s2i_cli.cli", "pretrain", str(store), "--run-dir", str(tmp_path / "ddp"), "--model", "vit_tiny",
           "--decoder-dim", "64", "--decoder-depth", "1", "--decoder-heads", "4", "--batch-size", "8",
           "--epochs", "1", "--max-steps", "1", "--workers", "0", "--no-progress", "--protocol", "all"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ddp" / "checkpoint-last.pt", weights_only=True)
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert ckpt["step"] == 1 and config["world_size"] == 2 and config["effective_batch"] == 16
    assert config["steps_per_epoch"] == 4 and config["all_samples"]  # 64 samples / 2 ranks / 8 per batch


# ------------------------------------------------------------------ CLI

def test_cli_missing_store_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["pretrain", str(tmp_path / "absent.zarr")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "no store at" in lines[0] and "s2i convert" in lines[0]


def test_cli_not_a_store_and_bad_size(tmp_path):
    (tmp_path / "plain").mkdir()
    result = CliRunner().invoke(app, ["pretrain", str(tmp_path / "plain")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    odd = make_store(tmp_path / "odd.zarr", n=8, size=24)
    result = CliRunner().invoke(app, ["pretrain", str(odd), "--model", "vit_tiny", "--run-dir", str(tmp_path / "r"),
                                      "--no-progress", "--workers", "0"])
    assert result.exit_code == 2 and "multiple of the patch size" in result.output
    with pytest.raises(StoreError, match="protocol"):
        pretrain(odd, tmp_path / "r2", protocol="xview", **TINY)


# ------------------------------------------------------------------ run directories, damaged

@pytest.fixture(scope="module")
def small_run(store, tmp_path_factory):
    """Two epochs of two steps (32 xsub train samples, batch 16), every checkpoint kept."""
    return pretrain(store, tmp_path_factory.mktemp("runs") / "small", epochs=2, batch_size=16, protocol="xsub",
                    save_every=1, keep_every=1, **TINY)


def _copy_run(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


def _one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert "Traceback" not in result.output and lines[-1].startswith("error:"), result.output
    assert sum(line.startswith("error:") for line in lines) == 1
    return lines[-1]


def test_checkpoints_are_kept_and_the_last_is_always_written(small_run):
    assert torch.load(small_run / "checkpoint-last.pt", weights_only=True)["step"] == 4
    kept = sorted(p.name for p in small_run.glob("checkpoint-epoch*.pt"))
    assert kept == ["checkpoint-epoch001.pt", "checkpoint-epoch002.pt"]
    assert torch.load(small_run / kept[0], weights_only=True)["step"] == 2
    records = _metrics(small_run)
    assert [r["step"] for r in records] == [2, 4]
    assert all(r["step_images_per_s"] > 0 and r["run_images_per_s"] > 0 for r in records[1:])


def test_unparsable_config_is_one_line_naming_the_file(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    (run / "config.json").write_text('{"store": "s.zarr", "model": ')  # cut short
    for args in (["pretrain", "--resume", "--run-dir", str(run), "--no-progress"],
                 ["evaluate", "--run", str(run), "--no-progress", "--workers", "0"]):
        message = _one_line_error(args)
        assert str(run / "config.json") in message and "does not parse" in message


def test_truncated_checkpoint_says_so_and_what_to_do(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    last = run / "checkpoint-last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    message = _one_line_error(["pretrain", "--resume", "--run-dir", str(run), "--no-progress"])
    assert f"{last} is truncated or corrupt" in message
    assert str(run / "checkpoint-epoch002.pt") in message and "--resume" in message  # the newest kept one
    for kept in run.glob("checkpoint-epoch*.pt"):
        kept.unlink()
    message = _one_line_error(["pretrain", "--resume", "--run-dir", str(run), "--no-progress"])
    assert f"{last} is truncated or corrupt" in message and "start the run again" in message
    message = _one_line_error(["evaluate", "--run", str(run), "--protocol", "xsub", "--no-progress", "--workers", "0"])
    assert f"{last} is truncated or corrupt" in message
    # and the kept checkpoint really resumes: copied over the damaged one
    run = _copy_run(small_run, tmp_path / "again")
    (run / "checkpoint-epoch001.pt").replace(run / "checkpoint-last.pt")
    assert torch.load(pretrain(None, run, resume=True, progress=False) / "checkpoint-last.pt",
                      weights_only=True)["step"] == 4


def test_actor_halves_come_from_the_store(tmp_path):
    """Masking's per-sample flags: halves when `stacked`; a copy when also one actor and `repeat` fill."""
    import zarr

    from s2i_cli.train.pretrain import ActorHalves

    path = make_store(tmp_path / "s.zarr", n=8, size=32)
    root = zarr.open_group(str(path), mode="r+")
    root["actors"][:3] = 2
    flags = ActorHalves.of_store(root).of(torch.tensor([0, 5, 7]), "cpu")
    assert flags["halves"].tolist() == [True, True, True] and flags["copies"].tolist() == [False, True, True]
    for change, copies in (({"fill": "zero"}, [False] * 3), ({"persons": "main"}, [False] * 3)):
        root.attrs["s2i"] = {**root.attrs["s2i"], **change}
        flags = ActorHalves.of_store(root).of(torch.tensor([0, 5, 7]), "cpu")
        assert flags["copies"].tolist() == copies
    assert flags["halves"].tolist() == [False] * 3


def test_parts_masking_needs_an_aligned_store(tmp_path):
    store = make_store(tmp_path / "s.zarr", n=8, size=32)  # layout "parts"
    result = CliRunner().invoke(app, ["pretrain", str(store), "--masking", "parts", "--model", "vit_tiny", "--run-dir",
                                      str(tmp_path / "r"), "--no-progress", "--workers", "0"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "--layout aligned" in " ".join(result.output.split()) and "s.zarr" in result.output
