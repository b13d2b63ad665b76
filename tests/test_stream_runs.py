"""Training on a stream and ensembling runs: `s2i pretrain --stream bone` trains on the bone
images, evaluation saves per-sample test scores with its results, `s2i evaluate --ensemble`
joins two runs (the usual table, results.json, --summary)."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from s2i_cli.cli import app
from s2i_cli.eval import evaluate as ev
from s2i_cli.eval.ensemble import load_scores
from s2i_cli.eval.metrics import topk_accuracy
from s2i_cli.store import open_store, split_indices
from tests.helpers import FAST, TINY

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]
SHORT = dict(epochs=1, batch_size=2, max_steps=2)


@pytest.fixture(scope="module")
def runs(ntu_small_store, tmp_path_factory):
    """The real NTU files with joint, bone and motion images, and a tiny run pretrained on joint and on bone."""
    from s2i_cli.train.pretrain import pretrain

    tmp = tmp_path_factory.mktemp("stream-runs")
    joint = pretrain(ntu_small_store, tmp / "runs" / "joint", **TINY, **SHORT)
    bone = pretrain(ntu_small_store, tmp / "runs" / "bone", stream="bone", **TINY, **SHORT)
    return ntu_small_store, joint, bone


def test_pretrain_and_evaluate_use_the_run_stream(runs):
    out, joint, bone = runs
    assert json.loads((bone / "config.json").read_text())["stream"] == "bone"
    assert json.loads((joint / "config.json").read_text())["stream"] == "joint"
    entry = ev.evaluate(protocol="xsub", run=bone, mode="knn", k=3, **FAST)
    assert entry["stream"] == "bone" and entry["key"] == "xsub-knn"
    scores = load_scores(bone / entry["scores_file"])
    root = open_store(out)
    test = split_indices(root, "xsub", "test")
    assert scores.stream == "bone" and scores.mode == "knn" and scores.protocol == "xsub"
    assert [str(n) for n in scores.names] == [str(n) for n in np.asarray(root["name"][:])[test]]
    np.testing.assert_array_equal(scores.labels, np.asarray(root["label"][:])[test])
    assert topk_accuracy(scores.scores, scores.labels)[1] == entry["top1"]
    on_joint = ev.evaluate(protocol="xsub", run=bone, mode="knn", k=3, stream="joint", **FAST)
    assert on_joint["key"] == "xsub-knn-joint"  # another stream than the run's keeps its own result
    assert not np.array_equal(load_scores(bone / on_joint["scores_file"]).scores, scores.scores)
    with pytest.raises(Exception, match="no bone-motion stream .*s2i encode"):
        ev.evaluate(protocol="xsub", run=bone, mode="knn", stream="bone-motion", **FAST)


def test_cli_ensemble_of_two_runs(runs, tmp_path):
    _, joint, bone = runs
    for run in (joint, bone):
        ev.evaluate(protocol="xsub", run=run, mode="linear", epochs=2, **FAST)
    runs_dir = joint.parent
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--protocol", "xsub", "--mode", "linear", "--ensemble",
                                 f"{joint},{bone}", "--weights", "0.6,0.4", "--runs-dir", str(runs_dir)])
    assert result.exit_code == 0, result.output
    assert "ensemble" in result.output and "joint" in result.output and "bone" in result.output
    doc = json.loads((runs_dir / "ensemble-joint+bone" / "results.json").read_text())
    entry = doc["results"]["xsub-linear-w0.6+0.4"]
    assert [m["stream"] for m in entry["ensemble"]] == ["joint", "bone"]
    summary = CliRunner(env={"COLUMNS": "240"}).invoke(app, ["evaluate", "--summary", "--runs-dir", str(runs_dir)])
    assert summary.exit_code == 0 and "ensemble-joint+bone" in summary.output
    ev.evaluate(protocol="xsub", run=bone, mode="knn", k=3, **FAST)
    refused = runner.invoke(app, ["evaluate", "--protocol", "xsub", "--ensemble", f"{joint},{bone}",
                                  "--runs-dir", str(runs_dir)])
    assert refused.exit_code == 2 and "several evaluations" in refused.output  # knn and linear: which?
    result = runner.invoke(app, ["pretrain", str(runs[0]), "--stream", "bone-motion", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no bone-motion stream" in result.output
