"""The options of `s2i pretrain` and `s2i evaluate`, each defined once, with its default.

The CLI's Typer signatures (its --help) take their defaults from these classes and hand their
values over by field name; a pretraining run's config.json is its PretrainConfig plus facts.
Adding an option: a field here, a Typer parameter of the same name, and the code that uses it.
No torch here, so `s2i --help` stays fast."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .. import vocab
from ..vocab import parse_crop

DEFAULT_EPOCHS = 100
ALL_SAMPLES = "all"  # --protocol all: pretrain on every sample, test sides included (marked in config.json)


def default_protocol(protocols: list[str]) -> str | None:
    """The protocol pretrain and evaluate take when none is given: xsub where the store has it
    (NTU120 lists xset first), else the store's first; None for a store without protocols. One
    rule for both, so `s2i pretrain STORE` then `s2i evaluate` evaluate on the side pretraining left out."""
    if "xsub" in protocols:
        return "xsub"
    return protocols[0] if protocols else None


# how --resume treats a field: ALWAYS taken from the run's config.json, whatever the call says;
# UNLESS_GIVEN taken from it when the call leaves the field None
ALWAYS, UNLESS_GIVEN = {"resume": "always"}, {"resume": "unless given"}


@dataclass
class PretrainConfig:
    """Every pretraining option, defined once (the CLI's defaults are these). config.json is this
    dataclass plus facts about the store and the schedule; `metadata` marks what --resume takes over."""
    store: str | None = field(default=None, metadata=UNLESS_GIVEN)
    epochs: int | None = field(default=None, metadata=UNLESS_GIVEN)  # None: DEFAULT_EPOCHS
    model: str = field(default=vocab.MODEL_DEFAULT, metadata=ALWAYS)
    batch_size: int = field(default=64, metadata=ALWAYS)
    accum: int = field(default=1, metadata=ALWAYS)
    lr: float | None = field(default=None, metadata=ALWAYS)  # None: blr * effective batch / 256 (MAE's rule)
    blr: float = field(default=1.5e-4, metadata=ALWAYS)
    min_lr: float = field(default=0.0, metadata=ALWAYS)
    weight_decay: float = field(default=0.05, metadata=ALWAYS)
    warmup_epochs: float = field(default=5.0, metadata=ALWAYS)
    mask_ratio: float = field(default=0.75, metadata=ALWAYS)
    # the protocol whose train side pretraining uses; None: xsub, else the store's first; ALL_SAMPLES: every sample
    protocol: str | None = field(default=None, metadata=ALWAYS)
    seed: int = field(default=0, metadata=ALWAYS)
    objective: str = field(default=vocab.OBJECTIVE_DEFAULT.value, metadata=ALWAYS)
    decoder_dim: int = field(default=512, metadata=ALWAYS)
    decoder_depth: int = field(default=8, metadata=ALWAYS)
    decoder_heads: int = field(default=16, metadata=ALWAYS)
    norm_pix_loss: bool = field(default=True, metadata=ALWAYS)
    temporal_crop: tuple[float, float] | None = field(default=None, metadata=ALWAYS)  # (MIN, MAX) fractions
    masking: str = field(default=vocab.MASKING_DEFAULT.value, metadata=ALWAYS)  # vocab.Masking
    augment: tuple[str, ...] | str = field(default=(), metadata=ALWAYS)  # vocab.Augment, "all" or "none"
    buffer_blocks: int = field(default=4, metadata=ALWAYS)
    workers: int | None = field(default=None, metadata=ALWAYS)  # None: default_workers()
    init: str | None = field(default=None, metadata=ALWAYS)
    stream: str = field(default=vocab.STREAM_DEFAULT.value, metadata=ALWAYS)  # which stored stream's images
    compile: bool = False
    save_every: int | None = None  # epochs between checkpoints; None: when SAVE_SECONDS have passed
    keep_every: int | None = None  # also keep checkpoint-epochNNN.pt every this many epochs
    recon_every: int = 10

    def resumed_from(self, old: dict[str, Any]) -> PretrainConfig:
        """This call's settings with the resumed run's (its config.json) where the fields say so."""
        taken = {f.name: old[f.name] for f in fields(self) if f.name in old and (
            f.metadata.get("resume") == "always" or
            (f.metadata.get("resume") == "unless given" and getattr(self, f.name) is None))}
        if "protocol" in taken and taken["protocol"] is None:  # runs from before the default: every sample
            taken["protocol"] = ALL_SAMPLES
        if taken.get("temporal_crop") is not None:
            taken["temporal_crop"] = tuple(taken["temporal_crop"])
        if taken.get("augment") is not None:
            taken["augment"] = tuple(taken["augment"])
        return PretrainConfig(**{**asdict(self), **taken})


@dataclass(frozen=True)
class EvalConfig:
    """Every evaluation option, defined once (the CLI's defaults are these). None in a field of
    MODE_DEFAULTS means the mode's default."""
    protocol: str | None = None  # None: xsub, else the store's first
    transductive: bool = False  # evaluate even on test samples the run was pretrained on (labelled so)
    run: str | None = None  # None: the newest run; "none": a random-init baseline
    store: str | None = None  # None: the store the run recorded; another: a transfer evaluation
    mode: str = vocab.MODE_DEFAULT.value
    fraction: float | None = None
    seed: int = 0
    init: str | None = None
    model: str | None = None  # None: the run's, else vit_base
    pool: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    layer_decay: float = 0.65
    drop_path: float = 0.1
    label_smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    warmup_epochs: float = 5.0
    temporal_crop: tuple[float, float] | None = None  # finetune: (MIN, MAX) fractions of the frames
    augment: str = vocab.AUGMENT_DEFAULT  # finetune: skeleton-space augmentation (augment.py), re-encoded from the stored skeletons
    balanced: bool = False  # --fraction: class-balanced subset instead of MAMP's random int(N * fraction)
    k: int = 20
    temperature: float = 0.07
    workers: int = 2
    device: str | None = None
    stream: str | None = None  # None: the stream the run was pretrained on (joint for a baseline)

    def __post_init__(self) -> None:  # --temporal-crop F (a float, as before) means F..1
        object.__setattr__(self, "temporal_crop", parse_crop(self.temporal_crop))

    def for_mode(self) -> EvalConfig:
        """This config with its mode's defaults where a field is None (0 is a value, not "unset")."""
        return replace(self, **{k: v for k, v in MODE_DEFAULTS[self.mode].items() if getattr(self, k) is None})


# per-mode defaults, in one place. linear lr None: 0.1 * batch / 256 (train_linear_head); finetune lr
# is the base lr, times batch / 256
MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "linear": {"pool": "token", "epochs": 100, "batch_size": 256, "weight_decay": 0.0},
    "knn": {"pool": "token", "batch_size": 256},
    "finetune": {"pool": "avg", "epochs": 100, "batch_size": 64, "lr": 5e-4, "weight_decay": 0.05},
}
