"""`s2i pretrain`: the block loader, the MAE/DiffMAE model, weight loading, the training loop
(loss falls, exact resume, two-process DDP on CPU) and the CLI's errors. CPU, tiny models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from typer.testing import CliRunner

from s2i_cli.cli import app
from s2i_cli.store import StoreError, open_store, split_indices
from s2i_cli.train.loader import BlockDataset, make_loader, normalize
from s2i_cli.train.mae import MaskedAutoencoder, build_encoder, load_weights
from s2i_cli.train.plumbing import CheckpointWriter, Schedule, set_lr
from s2i_cli.train.pretrain import pretrain
from tests.stores import make_store

REPO = Path(__file__).resolve().parents[1]
TINY = dict(model="vit_tiny", decoder_dim=64, decoder_depth=1, decoder_heads=4, workers=0, progress=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("store") / "s.zarr", n=64, size=32, classes=4)


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    """More than two shards, so blocks, groups and partial shards all occur."""
    return make_store(tmp_path_factory.mktemp("big") / "b.zarr", n=700, size=16, classes=5)


# ------------------------------------------------------------------ loader

@pytest.mark.parametrize("workers", [0, 2])
def test_loader_yields_every_index_once(big_store, workers):
    idx = split_indices(open_store(big_store), "xsub", "train")
    loader = make_loader(big_store, idx, 32, shuffle=True, workers=workers, seed=3)
    orders = []
    for epoch in (0, 1):
        loader.dataset.set_epoch(epoch)
        batches = list(loader)
        got = torch.cat([b[2] for b in batches]).numpy()
        assert sorted(got.tolist()) == idx.tolist()
        assert len(batches) == len(loader)
        images, labels, index = batches[0]
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)
        assert labels.tolist() == (index % 5).tolist()
        orders.append(got)
    assert not np.array_equal(orders[0], orders[1])  # a new order each epoch
    assert not np.array_equal(orders[0], np.sort(orders[0]))
    plain = make_loader(big_store, idx, 50, shuffle=False, workers=workers)
    assert torch.cat([b[2] for b in plain]).tolist() == idx.tolist()


def test_loader_resume_skip_and_ranks(big_store):
    idx = np.arange(700)
    loader = make_loader(big_store, idx, 32, shuffle=True, workers=2, seed=1)
    loader.dataset.set_epoch(4)
    full = [b[2] for b in loader]
    loader.dataset.set_epoch(4, skip_batches=5)  # a mid-epoch resume reads only what is left
    rest = [b[2] for b in loader]
    assert len(rest) == len(full) - 5 and all(torch.equal(a, b) for a, b in zip(full[5:], rest))
    # workers partition the epoch: each reads only its own samples
    ds = BlockDataset(big_store, idx, shuffle=True, batch_size=32)
    shares = [ds.worker_order(w, 3)[0] for w in range(3)]
    assert sorted(np.concatenate(shares).tolist()) == idx.tolist()
    # three DDP ranks: equal lengths, together every index (two pads repeat the start)
    parts = [[int(s[2]) for s in BlockDataset(big_store, idx, shuffle=True, rank=r, world_size=3)] for r in range(3)]
    assert [len(p) for p in parts] == [234] * 3
    assert set(sum(parts, [])) == set(idx.tolist())


def test_temporal_crop_keeps_shape_and_halves(store):
    ds = BlockDataset(store, np.arange(8), shuffle=False, temporal_crop=(0.5, 0.5))
    plain = BlockDataset(store, np.arange(8), shuffle=False)
    for (a, _, i), (b, _, j) in zip(ds, plain):
        assert i == j and a.shape == b.shape == (3, 32, 32) and a.dtype == torch.uint8
    with pytest.raises(ValueError):
        BlockDataset(store, np.arange(8), shuffle=False, temporal_crop=(0.0, 1.0))


def test_normalize():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    y = normalize(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y[0, :, 0, 0], (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]))


# ------------------------------------------------------------------ model

def test_mae_shapes_and_diffmae_gradients():
    torch.manual_seed(0)
    net = MaskedAutoencoder("vit_tiny", (32, 48), decoder_dim=64, decoder_depth=1, decoder_heads=4, objective="diffmae")
    x = torch.randn(3, 3, 32, 48)
    assert torch.equal(net.unpatchify(net.patchify(x)), x)
    loss, pred, mask = net(x)
    assert pred.shape == (3, 6, 16 * 16 * 3) and mask.sum(1).tolist() == [5.0, 5.0, 5.0]
    loss.backward()
    assert net.noise_embed.weight.grad.abs().sum() > 0 and net.time_embed[0].weight.grad.abs().sum() > 0
    assert not net.encoder.pos_embed.requires_grad  # MAE's fixed sin-cos table
    with pytest.raises(ValueError, match="multiple of the patch size"):
        MaskedAutoencoder("vit_tiny", 40)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_weights_from_timm(tmp_path, suffix):
    src = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=7)
    sd = src.state_dict()
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save(sd, path)
    else:
        from safetensors.torch import save_file
        save_file(sd, str(path))
    mae = MaskedAutoencoder("vit_tiny", 32, decoder_dim=64, decoder_depth=1, decoder_heads=4)
    report = load_weights(mae, path)
    assert torch.equal(mae.encoder.blocks[3].attn.qkv.weight, sd["blocks.3.attn.qkv.weight"])
    assert "encoder.pos_embed" in report["loaded"] and {"encoder.head.weight", "encoder.head.bias"} <= set(report["unexpected"])
    expected = timm.layers.resample_abs_pos_embed(sd["pos_embed"], new_size=[2, 2], num_prefix_tokens=1)
    assert torch.allclose(mae.encoder.pos_embed, expected)
    assert all(k.startswith(("mask_token", "decoder_")) for k in report["missing"])
    enc = build_encoder("vit_tiny", 32, num_classes=7)  # a bare encoder with a head of the same shape
    report = load_weights(enc, path)
    assert report["missing"] == [] and torch.equal(enc.head.weight, sd["head.weight"])


# The keys and shapes of MAE's released checkpoints (facebookresearch/mae, README "Pre-trained
# checkpoints"), written out so the test does not derive the "release" from our own model.
# mae_pretrain_vit_base.pth is {"model": encoder state dict}: no head, no fc_norm, no decoder.
_VIT_B_BLOCK = {"norm1.weight": (768,), "norm1.bias": (768,), "attn.qkv.weight": (2304, 768),
                "attn.qkv.bias": (2304,), "attn.proj.weight": (768, 768), "attn.proj.bias": (768,),
                "norm2.weight": (768,), "norm2.bias": (768,), "mlp.fc1.weight": (3072, 768),
                "mlp.fc1.bias": (3072,), "mlp.fc2.weight": (768, 3072), "mlp.fc2.bias": (768,)}
MAE_PRETRAIN_VIT_BASE = {"cls_token": (1, 1, 768), "pos_embed": (1, 197, 768),
                         "patch_embed.proj.weight": (768, 3, 16, 16), "patch_embed.proj.bias": (768,),
                         **{f"blocks.{b}.{k}": s for b in range(12) for k, s in _VIT_B_BLOCK.items()},
                         "norm.weight": (768,), "norm.bias": (768,)}
# mae_visualize_vit_base.pth adds the 512 x 8 decoder under MAE's names.
_DEC_BLOCK = {k.replace("768", "512"): tuple(512 if d == 768 else 1536 if d == 2304 else 2048 if d == 3072 else d
                                             for d in s) for k, s in _VIT_B_BLOCK.items()}
MAE_VISUALIZE_VIT_BASE = {**MAE_PRETRAIN_VIT_BASE, "mask_token": (1, 1, 512), "decoder_pos_embed": (1, 197, 512),
                          "decoder_embed.weight": (512, 768), "decoder_embed.bias": (512,),
                          **{f"decoder_blocks.{b}.{k}": s for b in range(8) for k, s in _DEC_BLOCK.items()},
                          "decoder_norm.weight": (512,), "decoder_norm.bias": (512,),
                          "decoder_pred.weight": (768, 512), "decoder_pred.bias": (768,)}


def _release(keys: dict[str, tuple[int, ...]], path: Path) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(s, generator=g) for k, s in keys.items()}
    torch.save({"model": sd}, path)
    return sd


def test_load_weights_mae_pretrain_release(tmp_path):
    assert len(MAE_PRETRAIN_VIT_BASE) == 150
    sd = _release(MAE_PRETRAIN_VIT_BASE, tmp_path / "mae_pretrain_vit_base.pth")
    mae = MaskedAutoencoder("vit_base", 224, decoder_dim=64, decoder_depth=1, decoder_heads=4)
    report = load_weights(mae, tmp_path / "mae_pretrain_vit_base.pth")
    assert report["unexpected"] == [] and report["mismatched"] == []
    assert len(report["loaded"]) == 150 and all(k.startswith(("mask_token", "decoder_")) for k in report["missing"])
    assert torch.equal(mae.encoder.blocks[11].mlp.fc2.weight, sd["blocks.11.mlp.fc2.weight"])
    assert torch.equal(mae.encoder.pos_embed, sd["pos_embed"])
    with pytest.raises(ValueError, match="no weights file"):
        load_weights(mae, tmp_path / "absent.pth")


def test_load_weights_mae_visualize_release(tmp_path):
    sd = _release(MAE_VISUALIZE_VIT_BASE, tmp_path / "mae_visualize_vit_base.pth")
    mae = MaskedAutoencoder("vit_base", 224)  # MAE's decoder: 512 x 8, 16 heads
    report = load_weights(mae, tmp_path / "mae_visualize_vit_base.pth")
    assert report["missing"] == [] and report["unexpected"] == [] and report["mismatched"] == []
    assert torch.equal(mae.decoder_blocks[7].attn.qkv.weight, sd["decoder_blocks.7.attn.qkv.weight"])
    assert torch.equal(mae.decoder_pred.bias, sd["decoder_pred.bias"])


def test_mae_conventions_as_released():
    """MAE's util/pos_embed.py: the first half of the channels encodes the column (x), the second
    the row; every LayerNorm (encoder, decoder blocks, decoder_norm) has eps 1e-6."""
    from s2i_cli.train.mae import sincos_pos_embed
    emb = sincos_pos_embed(8, (2, 3))[0]  # dim 8: each axis 4 channels, omega = (1, 1/100)
    assert emb.shape == (7, 8) and torch.equal(emb[0], torch.zeros(8))
    for r in range(2):
        for c in range(3):
            x = emb[1 + r * 3 + c]
            om = torch.tensor([1.0, 0.01])
            col = torch.cat([torch.sin(c * om), torch.cos(c * om)])
            row = torch.cat([torch.sin(r * om), torch.cos(r * om)])
            assert torch.allclose(x, torch.cat([col, row]), atol=1e-6), (r, c)
    net = MaskedAutoencoder("vit_tiny", 32, decoder_dim=64, decoder_depth=2, decoder_heads=4)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 12 + 1 + 2 * 2 + 1 and {m.eps for m in norms} == {1e-6}


# ------------------------------------------------------------------ training loop

def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_loss_falls_and_run_layout(store, tmp_path):
    run = pretrain(store, tmp_path / "run", epochs=4, batch_size=16, lr=2e-3, warmup_epochs=1, **TINY)
    losses = [m["loss"] for m in _metrics(run)]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0]
    config = json.loads((run / "config.json").read_text())
    assert config["store"] == str(store.absolute()) and config["img_size"] == 32 and config["model"] == "vit_tiny"
    assert config["dataset"] == "synthetic" and config["class_names"][0] == "class 0" and config["protocol"] is None
    # columns input, masked, reconstruction under a 24-px title band; rows: the first 4 training
    # samples, 32 px scaled x7 to 224 px, 8-px gaps
    recon = np.asarray(Image.open(run / "recon-epoch004.png"))
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
    assert [e.step for e in events.Scalars("epoch/loss")] == [4, 8, 12, 16]
    assert np.allclose([e.value for e in events.Scalars("epoch/loss")], losses)
    assert events.Images("reconstruction")
    ckpt = torch.load(run / "checkpoint-last.pt", weights_only=True)
    assert ckpt["step"] == 16 and ckpt["epoch"] == 4
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
    run = pretrain(store, tmp_path / "diff", objective="diffmae", epochs=2, batch_size=16, max_steps=2, **TINY)
    (record,) = _metrics(run)
    assert record["step"] == 2 and np.isfinite(record["loss"]) and (run / "recon-epoch000.png").is_file()
    enc = build_encoder("vit_tiny", 32)
    assert load_weights(enc, run / "checkpoint-last.pt")["missing"] == []


def test_torchrun_two_processes(store, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "s2i_cli.cli", "pretrain", str(store), "--run-dir", str(tmp_path / "ddp"), "--model", "vit_tiny",
           "--decoder-dim", "64", "--decoder-depth", "1", "--decoder-heads", "4", "--batch-size", "8",
           "--epochs", "1", "--max-steps", "1", "--workers", "0", "--no-progress"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ddp" / "checkpoint-last.pt", weights_only=True)
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert ckpt["step"] == 1 and config["world_size"] == 2 and config["effective_batch"] == 16
    assert config["steps_per_epoch"] == 4  # 64 samples / 2 ranks / 8 per batch


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


# ------------------------------------------------------------------ engine pieces

def test_set_lr_honours_lr_scale_and_schedule():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.AdamW([{"params": [params[0]], "lr_scale": 0.25}, {"params": [params[1]]}], lr=1.0)
    set_lr(optimizer, 0.4)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.4]
    schedule = Schedule(peak_lr=1.0, steps_per_epoch=10, total_steps=100, warmup_steps=10, min_lr=0.0)
    assert schedule.lr(0) == pytest.approx(0.1) and schedule.lr(9) == pytest.approx(1.0)
    assert schedule.lr(55) == pytest.approx(0.5) and schedule.lr(100) == pytest.approx(0.0)


def test_param_groups_decay_what_mae_decays():
    net = MaskedAutoencoder("vit_tiny", 32, decoder_dim=64, decoder_depth=1, decoder_heads=4)
    decay, no_decay = net.param_groups(0.05)
    names = {id(p): n for n, p in net.named_parameters()}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {"encoder.cls_token", "mask_token", "encoder.blocks.0.norm1.weight", "decoder_embed.bias"} <= undecayed
    assert all(p.ndim >= 2 for p in decay["params"]) and "encoder.pos_embed" not in undecayed  # frozen: in neither


def test_persistent_workers_take_each_epoch_order(big_store):
    loader = make_loader(big_store, np.arange(700), 64, shuffle=True, workers=2, seed=5)
    first = iter(loader)
    loader.dataset.set_epoch(0)
    a = torch.cat([b[2] for b in first])
    loader.dataset.set_epoch(1)
    second = iter(loader)
    b = torch.cat([b[2] for b in second])
    assert second is first  # the same workers, not respawned
    fresh = make_loader(big_store, np.arange(700), 64, shuffle=True, workers=2, seed=5)  # workers started for epoch 1
    fresh.dataset.set_epoch(1)
    assert torch.equal(b, torch.cat([x[2] for x in fresh])) and not torch.equal(a, b)


def test_checkpoint_writer_writes_off_thread_and_keeps(tmp_path):
    weights = torch.ones(3)
    with CheckpointWriter() as writer:
        writer.save({"w": weights, "step": 1}, tmp_path / "last.pt", keep=tmp_path / "kept.pt")
        weights += 1  # training goes on: the copy taken at save() is what gets written
    assert torch.equal(torch.load(tmp_path / "last.pt", weights_only=True)["w"], torch.ones(3))
    assert (tmp_path / "kept.pt").samefile(tmp_path / "last.pt")
    assert not list(tmp_path.glob("*.tmp"))
