"""scripts/ablate.py's pixel-space reference: the xsub linear probe on raw pixels, and its
columns in the table."""
import importlib.util
import sys
from pathlib import Path

import pytest

from tests.stores import make_store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablate():
    spec = importlib.util.spec_from_file_location("ablate", ROOT / "scripts" / "ablate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ablate"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["ablate"]


def test_pixel_probe_separates_what_pixels_separate_and_nothing_else(ablate, tmp_path):
    separable = make_store(tmp_path / "s.zarr", n=80, size=16, classes=4)
    noise = make_store(tmp_path / "n.zarr", n=80, size=16, classes=4, separable=False)
    good = ablate.pixel_probe(separable, seeds=2, epochs=30)
    bad = ablate.pixel_probe(noise, seeds=2, epochs=30)
    assert len(good["few"]["top1"]) == len(good["full"]["mean_class"]) == 2
    assert min(good["full"]["top1"]) > 90 and max(bad["full"]["top1"]) < 60  # chance: 25 %
    # 10 % of 40 training samples: 4 labels, so few is at most as good as full on average
    assert sum(good["few"]["top1"]) <= sum(good["full"]["top1"])


def test_table_puts_pixels_beside_both_probes(ablate):
    few_full = {f: {"top1": [50.0, 60.0], "mean_class": [50.0, 60.0]} for f in ("few", "full")}
    row = {"name": "x", "cell": {"masking": "random", "fill": "zero", "norm": "channel", "augment": "none",
                                 "stream": "joint", "init": "random"},
           "pretrained": few_full, "random_init": few_full, "pixels": few_full}
    text = ablate.table([row], 2, "setting")
    head, rule, line = text.splitlines()[2:5]
    assert head.count("|") == rule.count("|") == line.count("|") == 16
    assert "pixels 10 %" in head and line.endswith("| 55.0 ± 7.1 | 55.0 ± 7.1 |")


def test_table_names_the_protocol_and_fraction_and_adds_knn_columns(ablate):
    few_full = {f: {"top1": [50.0, 60.0], "mean_class": [50.0, 60.0]} for f in ("few", "full", "knn")}
    row = {"name": "x", "cell": {"masking": "random", "fill": "zero", "norm": "channel", "augment": "none",
                                 "stream": "joint", "init": "random"},
           "pretrained": few_full, "random_init": few_full, "pixels": few_full}
    text = ablate.table([row], 2, "setting", protocol="xview", fraction=0.2)
    title, _, head, rule, line = text.splitlines()[:5]
    assert "xview" in title and "20 % top-1" in head and "kNN" in head
    assert head.count("|") == rule.count("|") == line.count("|") == 18


def test_ablate_runs_on_a_given_store_and_protocol(ablate, tmp_path, monkeypatch, capsys):
    """--store and --protocol: no conversion, pretraining on that protocol's train side, probes on it."""
    store = make_store(tmp_path / "s.zarr", n=48, size=32, classes=4, protocols=("xview",))
    out = tmp_path / "abl"
    monkeypatch.setattr(sys, "argv", ["ablate.py", "--store", str(store), "--protocol", "xview", "--out", str(out),
                                      "--masking", "random", "--augment", "none", "--seeds", "1", "--epochs", "1",
                                      "--batch", "8", "--probe-epochs", "2", "--knn", "--decoder", "32,1,2"])
    ablate.main()
    text = (out / "ablation.md").read_text()
    assert "protocol xview" in text and "--store" in text and "kNN" in text
    (config,) = (out / "runs").glob("random-*-s0/config.json")
    assert not (out / "stores").exists()
    assert '"xview"' in config.read_text()
