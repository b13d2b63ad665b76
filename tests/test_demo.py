"""The README's first command: the demo runs end to end on CPU (smallest settings)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end(tmp_path):
    s2i = Path(sys.executable).parent / "s2i"
    env = {**os.environ, "SAMPLES": "48", "CLASSES": "4", "SIZE": "32", "EPOCHS": "1", "LINEAR_EPOCHS": "5",
           "BATCH": "16", "S2I": str(s2i)}
    out = tmp_path / "demo"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), str(out)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = out / "runs" / "pretrain"
    sample = np.asarray(Image.open(out / "sample.png").convert("RGB"))
    assert sample.shape[0] > 32 and sample.std() > 0  # a drawn picture, not an empty file
    assert list(run.glob("recon-*.png")) and list(run.glob("confusion-*.png"))
    results = json.loads((run / "results.json").read_text())["results"]
    baseline = json.loads((out / "runs" / "ntu120-scratch-vit_tiny" / "results.json").read_text())["results"]
    # both probes scored the same test side of the xsub protocol
    assert results["xsub-linear"]["n_test"] == baseline["xsub-linear"]["n_test"] > 0
    # and the 10 %-label probe beside the full one, for both
    assert results["xsub-linear-f0.1-s0"]["n_train"] < results["xsub-linear"]["n_train"]
    assert baseline["xsub-linear-f0.1-s0"]["n_train"] == results["xsub-linear-f0.1-s0"]["n_train"]
    assert "Pictures:" in result.stdout and str(run) in result.stdout
