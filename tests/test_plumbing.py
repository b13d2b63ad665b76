"""The training loops' plumbing (s2i_cli/train/plumbing.py): learning-rate setting and schedule,
checkpoints written off the training thread."""
from __future__ import annotations

import pytest
import torch

from s2i_cli.train.plumbing import CheckpointWriter, Schedule, set_lr


def test_set_lr_honours_lr_scale_and_schedule():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.AdamW([{"params": [params[0]], "lr_scale": 0.25}, {"params": [params[1]]}], lr=1.0)
    set_lr(optimizer, 0.4)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.4]
    schedule = Schedule(peak_lr=1.0, steps_per_epoch=10, total_steps=100, warmup_steps=10, min_lr=0.0)
    assert schedule.lr(0) == pytest.approx(0.1) and schedule.lr(9) == pytest.approx(1.0)
    assert schedule.lr(55) == pytest.approx(0.5) and schedule.lr(100) == pytest.approx(0.0)

def test_checkpoint_writer_writes_off_thread_and_keeps(tmp_path):
    weights = torch.ones(3)
    with CheckpointWriter() as writer:
        writer.save({"w": weights, "step": 1}, tmp_path / "last.pt", keep=tmp_path / "kept.pt")
        weights += 1  # training goes on: the copy taken at save() is what gets written
    assert torch.equal(torch.load(tmp_path / "last.pt", weights_only=True)["w"], torch.ones(3))
    assert (tmp_path / "kept.pt").samefile(tmp_path / "last.pt")
    assert not list(tmp_path.glob("*.tmp"))
