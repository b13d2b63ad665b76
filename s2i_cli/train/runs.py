"""The run directory: what `s2i pretrain` writes and `s2i evaluate` reads, named once.

    runs/NAME/config.json             the run's settings and facts (PretrainConfig + store, schedule)
    runs/NAME/checkpoint-last.pt      {"model", "optimizer", "step", "epoch", "rng"}, weights only
    runs/NAME/checkpoint-epochNNN.pt  earlier checkpoints kept by --keep-every (hard links)
    runs/NAME/metrics.jsonl           one JSON line per epoch
    runs/NAME/loss.png                the loss and lr curves, redrawn each epoch
    runs/NAME/events.out.tfevents.*   TensorBoard: step and epoch scalars, reconstructions, evaluations
    runs/NAME/recon-epochNNN.png      MAE reconstructions
    runs/NAME/results.json, confusion-*.png, features-*.npz, finetune-*-last.pt   (s2i evaluate)

"The newest run" has one meaning: the directory under the runs root holding both config.json
and checkpoint-last.pt whose checkpoint was written last."""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from ..files import atomic_write
from .plumbing import load_checkpoint

CONFIG = "config.json"
CHECKPOINT = "checkpoint-last.pt"
METRICS = "metrics.jsonl"
LOSS_PNG = "loss.png"
RESULTS = "results.json"


class RunError(ValueError):
    """A run directory that cannot be used as asked: one line naming it and the fix."""


def kept_checkpoint(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / f"checkpoint-epoch{epoch:03d}.pt"


def recon_png(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / f"recon-epoch{epoch:03d}.png"


def is_run(run_dir: Path) -> bool:
    return (Path(run_dir) / CONFIG).is_file() and (Path(run_dir) / CHECKPOINT).is_file()


def newest_run(runs_root: Path) -> Path:
    """The run under `runs_root` whose checkpoint-last.pt was written last (RunError when there is none)."""
    runs = [p.parent for p in Path(runs_root).glob(f"*/{CHECKPOINT}") if is_run(p.parent)]
    if not runs:
        raise RunError(f"no pretraining run under {runs_root}/ (a directory with {CONFIG} and {CHECKPOINT}): "
                       f"run `s2i pretrain STORE` first, or pass the run directory")
    return max(runs, key=lambda d: (d / CHECKPOINT).stat().st_mtime_ns)


def new_run_name(dataset: str) -> str:
    return f"{dataset}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json as a dict; a missing or unparsable file is one RunError line naming it."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no {CONFIG}): pass a directory made by `s2i pretrain`")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} does not parse as JSON ({exc}): restore it from a copy, "
                       f"or start a new run (it records the run's store and settings)") from exc
    if not isinstance(config, dict):
        raise RunError(f"{path} holds a JSON {type(config).__name__}, not an object: restore it from a copy")
    check_config(config, path)
    return config


def _is(kinds: str):
    """A check for a JSON value of the kinds named like a type hint: "int | None", "float", "str", "list"."""
    names = {k.strip() for k in kinds.split("|")}

    def check(v: Any) -> bool:
        return ((v is None and "None" in names) or (isinstance(v, bool) and "bool" in names)
                or (not isinstance(v, bool) and isinstance(v, int) and names & {"int", "float"})
                or (isinstance(v, float) and "float" in names) or (isinstance(v, str) and "str" in names)
                or (isinstance(v, list) and names & {"list", "tuple[float, float]", "tuple[str, ...]"}))
    return check


def _size(v: Any) -> bool:
    ints = (lambda x: isinstance(x, int) and not isinstance(x, bool) and x > 0)
    return ints(v) or (isinstance(v, list) and len(v) == 2 and all(map(ints, v)))


# config.json's fields that are not PretrainConfig's (those are checked by their declared types)
_FACTS = {"img_size": ("a positive integer or [height, width]", _size),
          "class_names": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v)),
          "dataset": ("a string", _is("str | None")), "kind": ("a string", _is("str")),
          "patch_size": ("an integer", _is("int")), "world_size": ("an integer", _is("int")),
          "steps_per_epoch": ("an integer", _is("int")), "total_steps": ("an integer", _is("int")),
          "warmup_steps": ("an integer", _is("int")), "peak_lr": ("a number", _is("float")),
          "effective_batch": ("an integer", _is("int")), "train_samples": ("an integer", _is("int")),
          "created": ("a string", _is("str")), "init": ("a string or null", _is("str | None")),
          "stream": ("a string", _is("str"))}


def check_config(config: dict[str, Any], path: Path) -> None:
    """RunError naming the file and the field when a config.json field has the wrong type (a
    damaged or hand-edited file), before evaluate, probe, fine-tune or --resume use it."""
    from dataclasses import fields

    from .config import PretrainConfig

    checks = {f.name: (f"{f.type.replace(' | None', ' or null')}", _is(f.type.replace("tuple[float, float]", "list")
                                                                       .replace("tuple[str, ...]", "list")))
              for f in fields(PretrainConfig)}
    checks.update(_FACTS)
    for name, value in config.items():
        if name in checks and not checks[name][1](value):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise RunError(f"{path}: field {name} is {shown}, not {checks[name][0]}: restore the file from a copy, "
                           "or start a new run")


def write_config(run_dir: Path, config: dict[str, Any]) -> Path:
    return atomic_write(Path(run_dir) / CONFIG, lambda tmp: tmp.write_text(json.dumps(config, indent=2)))


def damaged_checkpoint_fix(run_dir: Path) -> str:
    """What to do when a run's checkpoint-last.pt cannot be read: use a kept earlier one, or start again."""
    kept = sorted(Path(run_dir).glob("checkpoint-epoch*.pt"))
    if kept:
        return (f"copy an earlier checkpoint over it (the newest kept: {kept[-1]}) and --resume, "
                f"or start the run again")
    return "no earlier checkpoint was kept (--keep-every): start the run again"


def load_run_checkpoint(run_dir: Path) -> dict:
    """checkpoint-last.pt of a run, or one line saying it cannot be read and what to do."""
    return load_checkpoint(Path(run_dir) / CHECKPOINT, damaged_checkpoint_fix(run_dir))
