"""`s2i evaluate`: metrics by hand, labelled subsets, k-NN, and the linear probe / fine-tuning of a
briefly pretrained tiny MAE on clearly separable synthetic classes (CPU, small)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from s2i_cli.cli import app
from s2i_cli.eval import evaluate as ev
from s2i_cli.eval import metrics, probe
from s2i_cli.train.config import EvalConfig
from s2i_cli.train.runs import CHECKPOINT
from tests.helpers import FAST, TINY
from tests.stores import make_store



pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def store(probe_store):
    return probe_store


@pytest.fixture(scope="module")
def run(tmp_path_factory, store):
    """A vit_tiny MAE pretrained for a handful of steps (tiny decoder) on the store."""
    from s2i_cli.train.pretrain import pretrain

    runs = tmp_path_factory.mktemp("runs")
    return pretrain(store, runs / "tiny", epochs=1, batch_size=16, max_steps=4, **TINY)


# ------------------------------------------------------------------ metrics by hand

def test_topk_accuracy_hand_made():
    scores = np.array([
        [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],   # label 0: top-1 hit
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],   # label 1: rank 5 of 6 -> top-5 hit only
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],   # label 5: rank 6 -> miss
        [0.1, 0.2, 0.9, 0.3, 0.0, 0.0],   # label 3: rank 2 -> top-5 hit
    ])
    labels = np.array([0, 1, 5, 3])
    acc = metrics.topk_accuracy(scores, labels, (1, 2, 5))
    assert acc[1] == pytest.approx(1 / 4)
    assert acc[2] == pytest.approx(2 / 4)
    assert acc[5] == pytest.approx(3 / 4)
    # top-5 with fewer than 5 classes is every sample
    assert metrics.topk_accuracy(scores[:, :3], np.array([0, 1, 2, 2]), (5,))[5] == 1.0


def test_confusion_matrix_and_per_class(tmp_path):
    pred = np.array([0, 0, 1, 2, 2, 2])
    labels = np.array([0, 1, 1, 2, 2, 0])
    m = metrics.confusion_matrix(pred, labels, 4)
    assert m.tolist() == [[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    acc = metrics.per_class_accuracy(m)
    assert acc[:3].tolist() == [0.5, 0.5, 1.0] and np.isnan(acc[3])
    png = metrics.plot_confusion(m, ["a", "b", "c", "d"], tmp_path / "cm.png", "t")
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape[0] > 100 and picture.shape[1] > 100 and picture.std() > 0  # a drawn figure, not blank


def test_balanced_subset_is_class_balanced_and_reproducible():
    labels = np.repeat(np.arange(5), [100, 50, 20, 3, 1])
    pick = ev.balanced_subset(labels, 0.1, seed=3)
    counts = np.bincount(labels[pick], minlength=5)
    assert counts.tolist() == [10, 5, 2, 1, 1]  # 10 %, at least one of every class
    assert np.array_equal(pick, ev.balanced_subset(labels, 0.1, seed=3))
    assert not np.array_equal(pick, ev.balanced_subset(labels, 0.1, seed=4))
    assert np.all(np.diff(pick) > 0)
    assert np.bincount(labels[ev.balanced_subset(labels, 0.001, seed=0)]).tolist() == [1] * 5
    with pytest.raises(ev.EvaluateError):
        ev.balanced_subset(labels, 0.0)


def test_knn_predict_votes_for_the_nearest_class():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5
    train_y = np.repeat(np.arange(3), 30)
    train_x = centres[train_y] + rng.normal(size=(90, 16))
    test_y = np.array([0, 1, 2, 2, 1, 0])
    test_x = centres[test_y] + rng.normal(size=(6, 16))
    scores = probe.knn_predict(train_x, train_y, test_x, 3, k=20, temperature=0.07, chunk=4)
    assert scores.shape == (6, 3)
    assert scores.argmax(1).tolist() == test_y.tolist()


def test_linear_head_learns_features_not_shuffled_labels():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 32)) * 3
    y = np.repeat(np.arange(4), 40)
    x = centres[y] + rng.normal(size=(160, 32))
    train, test = np.arange(160) % 2 == 0, np.arange(160) % 2 == 1
    head = probe.train_linear_head(x[train], y[train], 4, epochs=20, batch_size=32)
    assert metrics.topk_accuracy(probe.predict_linear(head, x[test]), y[test])[1] >= 0.95
    shuffled = rng.permutation(y[train])
    head = probe.train_linear_head(x[train], shuffled, 4, epochs=20, batch_size=32)
    assert metrics.topk_accuracy(probe.predict_linear(head, x[test]), y[test])[1] <= 0.6


# ------------------------------------------------------------- on a pretrained run

def test_linear_probe_of_pretrained_run_is_accurate(run, store):
    entry = ev.evaluate(protocol="xsub", run=run, mode="linear", epochs=30, **FAST)
    assert entry["top1"] >= 0.9
    assert entry["top5"] == 1.0  # 4 classes
    assert entry["n_train"] == 64 and entry["n_test"] == 64
    doc = json.loads((run / "results.json").read_text())
    assert doc["results"]["xsub-linear"]["top1"] == entry["top1"]
    assert set(doc["results"]["xsub-linear"]["per_class"]) == {f"class {c}" for c in range(4)}
    assert (run / "confusion-xsub-linear.png").exists()
    cache = list(run.glob("features-xsub-token-*.npz"))
    assert len(cache) == 1
    stamp = cache[0].stat().st_mtime_ns

    # the same cached features with shuffled train labels: a head that cannot generalise
    with np.load(cache[0]) as f:
        train_x, train_y, test_x, test_y = f["train_x"], f["train_y"], f["test_x"], f["test_y"]
    shuffled = np.random.default_rng(0).permutation(train_y)
    head = probe.train_linear_head(train_x, shuffled, 4, epochs=30)
    assert metrics.topk_accuracy(probe.predict_linear(head, test_x), test_y)[1] < 0.6

    # knn and a semi-supervised linear probe reuse the cache
    knn = ev.evaluate(protocol="xsub", run=run, mode="knn", k=5, **FAST)
    assert knn["top1"] >= 0.9
    semi = ev.evaluate(protocol="xsub", run=run, mode="linear", fraction=0.25, seed=1, epochs=30, **FAST)
    assert semi["n_train"] == 16 and semi["key"] == "xsub-linear-f0.25-s1"
    assert cache[0].stat().st_mtime_ns == stamp

    # a newer checkpoint gets fresh features, and the stale cache goes
    later = (run / CHECKPOINT).stat().st_mtime + 10
    os.utime(run / CHECKPOINT, (later, later))
    ev.evaluate(protocol="xsub", run=run, mode="knn", k=5, **FAST)
    fresh = list(run.glob("features-xsub-token-*.npz"))
    assert len(fresh) == 1 and fresh[0] != cache[0]


def test_finetune_checkpoints_and_resumes(run):
    args = dict(protocol="xview", run=run, mode="finetune", epochs=1, batch_size=32, warmup_epochs=1, **FAST)
    entry = ev.evaluate(**args)
    assert entry["settings"]["epochs"] == 1
    checkpoint = run / "finetune-xview-finetune-last.pt"
    state = torch.load(checkpoint, weights_only=False)
    assert (state["epoch"], state["step"]) == (0, 2)  # 64 train samples, batches of 32
    with pytest.raises(ev.EvaluateError, match="--resume"):
        ev.evaluate(**args)
    resumed = ev.evaluate(**{**args, "epochs": 2}, resume=True)  # one more epoch
    state = torch.load(checkpoint, weights_only=False)
    assert (state["epoch"], state["step"]) == (1, 4)
    assert resumed["key"] == "xview-finetune"
    # TensorBoard: the fine-tuning's steps (the resumed one's continue them), the evaluation, the pretraining
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    runs = EventMultiplexer().AddRunsFromDirectory(str(run)).Reload()  # what `tensorboard --logdir` shows
    assert [e.step for e in runs.Scalars("finetune/xview-finetune", "train/loss")] == [1, 2, 3, 4]
    assert "xview-finetune/top1" in runs.Runs()["eval"]["scalars"]
    assert runs.Scalars(".", "epoch/loss")  # the pretraining's curve is untouched


def test_finetune_stopped_mid_epoch_resumes_mid_epoch(run, tmp_path):
    """--max-steps in the middle of an epoch, then --resume: the same weights as one uninterrupted run."""
    for name in ("whole", "part"):
        shutil.copytree(run, tmp_path / name, ignore=shutil.ignore_patterns("results.json", "features-*", "finetune-*",
                                                                           "confusion-*"))
    args = dict(protocol="xview", mode="finetune", epochs=1, batch_size=16, warmup_epochs=1, **FAST)  # 4 steps
    ev.evaluate(run=tmp_path / "whole", **args)
    ev.evaluate(run=tmp_path / "part", max_steps=2, **args)  # stopped half-way through the epoch
    ev.evaluate(run=tmp_path / "part", resume=True, **args)
    a = torch.load(tmp_path / "whole" / "finetune-xview-finetune-last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "finetune-xview-finetune-last.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_random_init_baseline_gets_its_own_directory(store, tmp_path):
    entry = ev.evaluate(protocol="xsub", run="none", store=store, model="vit_tiny", mode="knn",
                        runs_root=tmp_path / "runs", **FAST)
    out = tmp_path / "runs" / "s-scratch-vit_tiny"
    assert entry["out_dir"] == str(out) and entry["weights"] is None
    assert "xsub-knn" in json.loads((out / "results.json").read_text())["results"]
    with pytest.raises(ev.EvaluateError, match="--store"):
        ev.evaluate(run="none", model="vit_tiny", runs_root=tmp_path / "runs", **FAST)


def test_init_weights_alone_and_transfer_to_another_store(run, store, tmp_path):
    init = ev.evaluate(protocol="xsub", init=run / CHECKPOINT, store=store, model="vit_tiny", mode="knn",
                       runs_root=tmp_path / "runs", **FAST)
    assert init["out_dir"] == str(tmp_path / "runs" / "s-init-checkpoint-last-vit_tiny")
    assert init["top1"] >= 0.9
    other = make_store(tmp_path / "other.zarr", n=48, size=32, classes=3, seed=5)
    transfer = ev.evaluate(protocol="xsub", run=run, store=other, mode="knn", k=5, **FAST)
    assert transfer["key"].startswith("xsub-knn-on-synthetic-") and len(transfer["per_class"]) == 3


def test_store_with_other_image_size_is_refused(run, tmp_path):
    other = make_store(tmp_path / "big.zarr", n=16, size=48, classes=4)
    with pytest.raises(ev.EvaluateError, match="image size mismatch"):
        ev.evaluate(run=run, store=other, **FAST)


# --------------------------------------------------------------------------- the CLI

def test_cli_evaluate_takes_the_newest_run(run, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for name in ("older", "newer"):
        shutil.copytree(run, runs / name, ignore=shutil.ignore_patterns("results.json", "features-*", "finetune-*",
                                                                      "confusion-*"))
    old = (runs / "older" / CHECKPOINT).stat().st_mtime - 3600
    os.utime(runs / "older" / CHECKPOINT, (old, old))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--protocol", "xsub"])
    assert result.exit_code == 0, result.output
    assert (runs / "newer" / "results.json").exists()
    assert not (runs / "older" / "results.json").exists()
    assert "top-1" in result.output

    result = CliRunner().invoke(app, ["evaluate", "--summary"])
    assert result.exit_code == 0, result.output
    assert "newer" in result.output and "xsub-linear" in result.output


def test_cli_unknown_protocol_lists_the_store_protocols(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--protocol", "xset", "--run", str(run)])
    assert result.exit_code == 2
    assert "xset" in result.output and "xsub, xview" in result.output
    assert "Traceback" not in result.output


def test_cli_without_runs_says_to_pretrain(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["evaluate", "--protocol", "xsub"])
    assert result.exit_code == 2
    assert "s2i pretrain" in result.output


def test_mode_defaults_fill_only_what_is_unset():
    cfg = EvalConfig(mode="finetune", lr=0.0, weight_decay=0.0).for_mode()  # 0 is a value, not "unset"
    assert (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.pool, cfg.epochs) == (0.0, 0.0, 64, "avg", 100)
    linear = EvalConfig(mode="linear").for_mode()
    assert (linear.lr, linear.batch_size, linear.pool, linear.weight_decay) == (None, 256, "token", 0.0)


def test_random_subset_is_mamps_int_n_ratio_and_reproducible():
    pick = ev.random_subset(101, 0.1, seed=3)
    assert len(pick) == 10 and len(set(pick.tolist())) == 10 and np.all(np.diff(pick) > 0)  # int(101 * 0.1)
    assert np.array_equal(pick, ev.random_subset(101, 0.1, seed=3))
    assert not np.array_equal(pick, ev.random_subset(101, 0.1, seed=4))
    assert len(ev.random_subset(5, 0.01)) == 1
    with pytest.raises(ev.EvaluateError, match="fraction"):
        ev.random_subset(10, 1.5)


@pytest.mark.slow
def test_cli_seeds_report_mean_and_std_with_mean_class_accuracy(store, tmp_path):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["evaluate", "--run", "none", "--store", str(store), "--model", "vit_tiny",
                                      "--protocol", "xsub", "--fraction", "0.25", "--seeds", "2", "--epochs", "5",
                                      "--workers", "0", "--no-progress", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert "top-1 over seeds 0..1:" in result.output and "mean per-class over seeds 0..1:" in result.output
    results = json.loads(next(runs.glob("*/results.json")).read_text())["results"]
    assert set(results) == {"xsub-linear-f0.25-s0", "xsub-linear-f0.25-s1"}
    entry = results["xsub-linear-f0.25-s0"]
    per_class = [a for a in entry["per_class"].values() if a is not None]
    assert entry["mean_class"] == pytest.approx(np.mean(per_class)) and entry["n_train"] == 16
    balanced = ev.evaluate(protocol="xsub", run="none", store=store, model="vit_tiny", fraction=0.25, balanced=True,
                           epochs=5, runs_root=runs, **FAST)
    assert balanced["key"] == "xsub-linear-f0.25-s0-balanced"


# ------------------------------------------------------------------ pretraining never sees the test side unsaid

def _cli(args: list[str]):
    return CliRunner().invoke(app, args)


def test_default_pretraining_then_evaluate_never_uses_a_pretraining_sample_unsaid(tmp_path):
    """`s2i pretrain STORE` then `s2i evaluate --protocol P`: for every protocol, either the test
    side is disjoint from the pretraining samples, or evaluate refuses in one line, or (asked
    with --transductive) the result is labelled transductive in results.json and --summary."""
    store = make_store(tmp_path / "s.zarr", n=64, size=32, classes=4, protocols=("xsub", "xview"),
                       swapped=("xview",))  # xview's test side is xsub's train side
    runs_dir = str(tmp_path / "runs")
    tiny = ["--model", "vit_tiny", "--epochs", "1", "--batch-size", "16", "--max-steps", "1", "--decoder-dim", "64",
            "--decoder-depth", "1", "--decoder-heads", "4", "--workers", "0", "--no-progress", "--runs-dir", runs_dir]
    result = _cli(["pretrain", str(store), *tiny])
    assert result.exit_code == 0, result.output
    assert "the train side of protocol xsub" in " ".join(result.output.split())
    run = ev.runs.newest_run(tmp_path / "runs")
    config = json.loads((run / "config.json").read_text())
    assert config["protocol"] == "xsub" and config["all_samples"] is False and config["train_samples"] == 32
    assert config["stores"] == [{"store": str(store.resolve()), "protocol": "xsub", "dataset": "synthetic",
                                 "train_samples": 32}]
    from s2i_cli.store import open_store, split_indices
    root = open_store(store)
    pretrained = set(split_indices(root, "xsub", "train").tolist())
    evaluate = ["evaluate", "--mode", "knn", "--k", "3", "--workers", "0", "--no-progress", "--runs-dir", runs_dir]
    for protocol in ("xsub", "xview"):
        test = set(split_indices(root, protocol, "test").tolist())
        result = _cli([*evaluate, "--protocol", protocol])
        if test & pretrained:
            assert result.exit_code == 2, result.output
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and "--transductive" in lines[0] and "32 of the 32 test samples" in lines[0]
        else:
            assert result.exit_code == 0, result.output
    results = json.loads((run / "results.json").read_text())["results"]
    assert set(results) == {"xsub-knn"} and results["xsub-knn"]["transductive"] is False
    # asked for: evaluated, and labelled
    result = _cli([*evaluate, "--protocol", "xview", "--transductive"])
    assert result.exit_code == 0, result.output
    entry = json.loads((run / "results.json").read_text())["results"]["xview-knn-transductive"]
    assert entry["transductive"] is True and entry["pretrained_test_samples"] == 32
    summary = _cli(["evaluate", "--summary", "--runs-dir", runs_dir])
    assert "xview-knn-transductive" in summary.output
    # --transductive on a disjoint side changes nothing
    result = _cli([*evaluate, "--protocol", "xsub", "--transductive"])
    assert result.exit_code == 0 and "xsub-knn-transductive" not in json.loads((run / "results.json").read_text())["results"]

    # every sample only when asked, marked as such; then every test side needs --transductive
    result = _cli(["pretrain", str(store), *tiny, "--protocol", "all", "--run-dir", str(tmp_path / "runs" / "all")])
    assert result.exit_code == 0, result.output
    assert "every sample, test sides included" in " ".join(result.output.split())
    config = json.loads((tmp_path / "runs" / "all" / "config.json").read_text())
    assert config["protocol"] == "all" and config["all_samples"] is True and config["train_samples"] == 64
    for protocol in ("xsub", "xview"):
        result = _cli([*evaluate, "--protocol", protocol, "--run", str(tmp_path / "runs" / "all")])
        assert result.exit_code == 2 and "--transductive" in result.output
    # its checkpoint given alone (--init) is checked against its run too
    result = _cli([*evaluate, "--protocol", "xsub", "--init", str(tmp_path / "runs" / "all" / CHECKPOINT),
                   "--store", str(store), "--model", "vit_tiny"])
    assert result.exit_code == 2 and "--transductive" in result.output


def test_runs_from_before_the_default_pretrained_on_every_sample(run, tmp_path):
    """A config.json with protocol null (the old default: every sample) counts as --protocol all."""
    old = tmp_path / "old"
    shutil.copytree(run, old)
    config = json.loads((old / "config.json").read_text())
    for key in ("stores", "all_samples"):
        config.pop(key)
    config["protocol"] = None
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(ev.EvaluateError, match="every sample"):
        ev.evaluate(protocol="xsub", run=old, mode="knn", k=5, **FAST)
    assert ev.evaluate(protocol="xsub", run=old, mode="knn", k=5, transductive=True, **FAST)["transductive"]
