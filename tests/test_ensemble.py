"""Score ensembles (s2i_cli/eval/ensemble.py): identical score files give the single run, weights
are applied, runs that did not score the same thing are refused with one line."""
import numpy as np
import pytest

from s2i_cli.eval.ensemble import EnsembleError, combine, find_scores, join, load_scores, parse_weights, save_scores
from s2i_cli.eval.metrics import topk_accuracy

CLASSES = [f"class {c}" for c in range(6)]


def write_run(run_dir, scores, labels, names, *, protocol="xsub", mode="finetune", dataset="ntu120", stream="joint",
              classes=CLASSES):
    run_dir.mkdir(parents=True, exist_ok=True)
    save_scores(run_dir, f"{protocol}-{mode}", names=names, labels=labels, scores=scores, protocol=protocol, mode=mode,
                dataset=dataset, stream=stream, class_names=classes)
    return run_dir


@pytest.fixture
def sample():
    rng = np.random.default_rng(0)
    names = np.array([f"S001C001P{p:03d}R001A{a:03d}" for p in range(1, 6) for a in range(1, 7)])
    labels = np.array([a - 1 for p in range(1, 6) for a in range(1, 7)])
    return names, labels, rng.normal(size=(len(names), len(CLASSES))).astype(np.float32)


def test_identical_runs_equal_the_single_run(tmp_path, sample):
    names, labels, scores = sample
    a = write_run(tmp_path / "A", scores, labels, names)
    shuffled = np.random.default_rng(1).permutation(len(names))  # another row order, same samples
    b = write_run(tmp_path / "B", scores[shuffled], labels[shuffled], names[shuffled])
    runs = join([find_scores(a, "xsub", None), find_scores(b, "xsub", "finetune")])
    np.testing.assert_array_equal(runs[1].names, names)
    probs = combine(runs, [1.0, 1.0])
    single = combine(runs[:1], [1.0])
    np.testing.assert_allclose(probs / 2, single, rtol=1e-6)
    assert topk_accuracy(probs, runs[0].labels) == topk_accuracy(scores, labels)


def test_weights_are_applied(tmp_path, sample):
    names, labels, _ = sample
    n, k = len(names), len(CLASSES)
    right = np.full((n, k), -5.0, dtype=np.float32)
    right[np.arange(n), labels] = 5.0  # run A is always right
    wrong = np.full((n, k), -5.0, dtype=np.float32)
    wrong[np.arange(n), (labels + 1) % k] = 8.0  # run B is always wrong, and more confident
    runs = join([load_scores(write_run(tmp_path / "A", right, labels, names) / "scores-xsub-finetune.npz"),
                 load_scores(write_run(tmp_path / "B", wrong, labels, names) / "scores-xsub-finetune.npz")])
    assert topk_accuracy(combine(runs, [1.0, 1.0]), labels)[1] == 0.0
    assert topk_accuracy(combine(runs, [0.9, 0.1]), labels)[1] == 1.0
    assert topk_accuracy(combine(runs, [0.0, 1.0]), labels)[1] == 0.0
    assert parse_weights("0.6, 0.4", 2) == [0.6, 0.4] and parse_weights(None, 3) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("change, reason", [
    (dict(protocol="xset"), "evaluated with protocol xset, .* with xsub: ensemble runs of one protocol"),
    (dict(dataset="ntu60"), "with dataset ntu60"),
    (dict(classes=CLASSES[:5]), "scores 5 classes"),
    (dict(drop=1), "scored other test samples than .* \\(29 vs 30"),
    (dict(rename=True), "scored other test samples .* e.g. "),
    (dict(relabel=True), "other labels"),
])
def test_mismatched_runs_are_refused(tmp_path, sample, change, reason):
    names, labels, scores = sample
    a = write_run(tmp_path / "A", scores, labels, names)
    kw = {key: change[key] for key in ("protocol", "dataset") if key in change}
    if "classes" in change:
        kw["classes"] = change["classes"]
        scores = scores[:, :5]
    if "drop" in change:
        names, labels, scores = names[1:], labels[1:], scores[1:]
    if "rename" in change:
        names = np.array([n.replace("S001", "S002") if i == 3 else n for i, n in enumerate(names)])
    if "relabel" in change:
        labels = labels.copy()
        labels[4] = (labels[4] + 1) % len(CLASSES)
    b = write_run(tmp_path / "B", scores, labels, names, **kw)
    proto = kw.get("protocol", "xsub")
    with pytest.raises(EnsembleError, match=reason) as info:
        join([find_scores(a, "xsub", None), find_scores(b, proto, None)])
    assert "\n" not in str(info.value)


def test_other_modes_and_missing_scores_are_refused(tmp_path, sample):
    names, labels, scores = sample
    a = write_run(tmp_path / "A", scores, labels, names, mode="linear")
    b = write_run(tmp_path / "B", scores, labels, names, mode="finetune")
    with pytest.raises(EnsembleError, match="mode finetune, .* with linear: ensemble runs of one mode"):
        join([find_scores(a, "xsub", None), find_scores(b, "xsub", None)])
    with pytest.raises(EnsembleError, match="no saved test scores for --protocol xsub --mode knn: run `s2i evaluate"):
        find_scores(a, "xsub", "knn")
    write_run(tmp_path / "A", scores, labels, names, mode="finetune")
    with pytest.raises(EnsembleError, match=r"several evaluations \(xsub-finetune, xsub-linear\): pass --protocol"):
        find_scores(a, "xsub", None)
    assert find_scores(a, None, "linear").mode == "linear"
    (tmp_path / "C").mkdir()
    (tmp_path / "C" / "scores-xsub-linear.npz").write_bytes(b"not a zip")
    with pytest.raises(EnsembleError, match="not a readable score file"):
        find_scores(tmp_path / "C", "xsub", None)
    for text, reason in (("1,x", "numbers separated by commas"), ("1", "1 weights for 2 runs"),
                         ("-1,2", "not negative"), ("0,0", "not all zero")):
        with pytest.raises(EnsembleError, match=reason):
            parse_weights(text, 2)


def test_ensemble_results_are_written_and_summarised(tmp_path, sample):
    from s2i_cli.eval.ensemble import ensemble_table, evaluate_ensemble
    from s2i_cli.eval.results import summary_table

    names, labels, scores = sample
    noise = np.random.default_rng(2).normal(size=scores.shape).astype(np.float32)
    a = write_run(tmp_path / "runs" / "ntu-joint", scores, labels, names)
    b = write_run(tmp_path / "runs" / "ntu-bone", noise, labels, names, stream="bone")
    entry = evaluate_ensemble([a, b], protocol="xsub", mode=None, weights="0.6,0.4", runs_root=tmp_path / "runs")
    out = tmp_path / "runs" / "ensemble-ntu-joint+ntu-bone"
    assert entry["key"] == "xsub-finetune-w0.6+0.4" and (out / "results.json").exists()
    expected = topk_accuracy(0.6 * np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
                             + 0.4 * np.exp(noise) / np.exp(noise).sum(1, keepdims=True), labels)
    assert (entry["top1"], entry["top5"]) == (expected[1], expected[5])
    assert [(m["stream"], m["weight"], m["top1"]) for m in entry["ensemble"]] == [
        ("joint", 0.6, topk_accuracy(scores, labels)[1]), ("bone", 0.4, topk_accuracy(noise, labels)[1])]
    from rich.console import Console
    console = Console(record=True, width=200)
    console.print(ensemble_table(entry))
    console.print(summary_table(tmp_path / "runs"))
    text = console.export_text()
    assert "ensemble" in text and f"{100 * expected[1]:.2f} %" in text
    assert "ensemble-ntu-joint+ntu-bone" in text and "xsub-finetune-w0.6+0.4" in text
    with pytest.raises(EnsembleError, match="two or more runs"):
        evaluate_ensemble([a], protocol="xsub", mode=None, weights=None, runs_root=tmp_path / "runs")
