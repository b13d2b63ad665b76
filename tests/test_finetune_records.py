"""Fine-tuning records every setting that changes its result (issue 20, step 5): an augmented
and a plain fine-tune of the same weights are two evaluations, with two result keys, two
checkpoints and two results.json entries that say which is which; and --augment reaches the
loader (this test fails when fine-tuning ignores it)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2i_cli.eval import finetune
from s2i_cli.eval.evaluate import evaluate


@pytest.fixture(scope="module")
def ntu_store(ntu_small_store):
    return ntu_small_store


def test_augment_is_in_the_key_the_checkpoint_and_results_and_reaches_the_loader(ntu_store, tmp_path, monkeypatch,
                                                                                  one_torch_thread):
    calls = []
    real = finetune.make_loader

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(finetune, "make_loader", spy)
    runs = tmp_path / "runs"
    common = dict(protocol="xsub", run="none", store=ntu_store, model="vit_tiny", mode="finetune", epochs=1,
                  batch_size=4, workers=0, progress=False, runs_root=runs, max_steps=1)
    plain = evaluate(**common)
    augmented = evaluate(**common, augment="rotate,mirror")
    assert plain["key"] != augmented["key"] and "aug-rotate+mirror" in augmented["key"]
    assert plain["settings"]["augment"] == [] and augmented["settings"]["augment"] == ["rotate", "mirror"]
    assert plain["settings"]["checkpoint"] != augmented["settings"]["checkpoint"]
    out = Path(plain["out_dir"])
    assert (out / plain["settings"]["checkpoint"]).exists() and (out / augmented["settings"]["checkpoint"]).exists()
    results = json.loads((out / "results.json").read_text())["results"]
    assert {plain["key"], augmented["key"]} <= set(results)
    assert results[augmented["key"]]["settings"]["augment"] == ["rotate", "mirror"]
    # the loader of the augmented fine-tune re-encodes with the asked augmentations
    assert calls[0]["augment"] == () and calls[0]["encoding"] is None
    assert calls[1]["augment"] == ("rotate", "mirror") and calls[1]["encoding"] is not None


def test_the_key_names_what_the_images_are_made_of():
    from s2i_cli.train.config import EvalConfig
    from s2i_cli.eval.finetune import settings_tag

    assert settings_tag(EvalConfig(mode="finetune").for_mode()) == ""
    assert settings_tag(EvalConfig(mode="finetune", mixup=0.8).for_mode()) == ""  # recorded, resumable
    assert settings_tag(EvalConfig(mode="finetune", temporal_crop=0.5).for_mode()) == "-crop0.5-1"
    assert settings_tag(EvalConfig(mode="finetune", augment="all").for_mode()) == "-aug-all"
    assert settings_tag(EvalConfig(mode="finetune", augment="mirror,rotate").for_mode()) == "-aug-rotate+mirror"


def test_a_resume_under_other_settings_is_refused(tmp_path):
    from s2i_cli.eval.finetune import _same_settings
    from s2i_cli.train.plumbing import TrainingError

    state = {"settings": {"mixup": 0.0, "epochs": 1, "temporal_crop": 0.5}}
    _same_settings(state, {"mixup": 0.0, "epochs": 5, "temporal_crop": [0.5, 1.0]}, tmp_path / "c.pt")
    with pytest.raises(TrainingError, match="mixup"):
        _same_settings(state, {"mixup": 0.8, "epochs": 1}, tmp_path / "c.pt")
