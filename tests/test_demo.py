"""The README's first command: the demo runs end to end on CPU (smallest settings)."""
import json
import os
import subprocess
import sys
from pathlib import Path

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
    assert (out / "sample.png").stat().st_size > 0
    assert list(run.glob("recon-*.png")) and list(run.glob("confusion-*.png"))
    results = json.loads((run / "results.json").read_text())["results"]
    assert 0.0 <= results["xsub-linear"]["top1"] <= 1.0
    assert "Pictures:" in result.stdout and str(run) in result.stdout
