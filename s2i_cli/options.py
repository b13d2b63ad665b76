"""The command line's option declarations, each written once (`Annotated` aliases) and used by
every command that takes the option: `s2i pretrain` and `s2i evaluate` share theirs, as do
`convert`, `encode` and `show` (docs/design.md §5).

Choices, defaults and help texts come from vocab.py; these declarations add how Typer parses
and checks them, so a bad value is refused (one line, exit 2, cli.OneLineCommand) before any
file is read: enums by Typer, comma lists and ranges by the callbacks here. Imports typer
and vocab only."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import vocab
from .vocab import parse_crop
from .vocab import (Dataset, Fill, Layout, Masking, Mode, Norm, Objective, Persons, Pool, Stream)


def _checked(parse, keep_text: bool = True):
    """A Typer callback: `parse` (from vocab) checks the value, a ValueError becomes Typer's one
    line with exit 2; the option is handed on as given (`keep_text`) or as parsed."""
    def callback(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = parse(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        return value if keep_text else parsed

    return callback


_streams = _checked(vocab.parse_streams)  # --streams: the one parser, handed on as given
_augment = _checked(vocab.parse_augment)
_model = _checked(vocab.check_model, keep_text=False)


_crop = _checked(parse_crop)


def _complete(choices):
    return lambda incomplete: [c for c in choices if c.startswith(incomplete)]


# --------------------------------------------------------------------------- convert, encode, show, info

DatasetArg = Annotated[Dataset, typer.Argument(help=vocab.DATASET_HELP, show_default=False)]
SizeOpt = Annotated[int, typer.Option(min=8, help="Image height and width in pixels (224 for ViT-B/16)")]
LayoutOpt = Annotated[Layout, typer.Option(help=vocab.LAYOUT_HELP)]
PersonsOpt = Annotated[Optional[Persons], typer.Option(help=vocab.PERSONS_HELP, show_default=False)]
FillOpt = Annotated[Fill, typer.Option(help=vocab.FILL_HELP)]
NormOpt = Annotated[Norm, typer.Option(help=vocab.NORM_HELP)]
ConvertStreams = Annotated[str, typer.Option(callback=_streams, autocompletion=_complete(vocab.values(Stream)),
                                             help=f"Streams to store side by side, from the one parse: "
                                                  f"{vocab.STREAMS_HELP}")]
EncodeStreams = Annotated[str, typer.Option(callback=_streams, autocompletion=_complete(vocab.values(Stream)),
                                            help="Streams to add (those the store has are left as they are): "
                                                 f"{vocab.STREAMS_HELP}")]
StorageOpt = Annotated[Optional[list[str]], typer.Option(
    help="KEY=VALUE for a store at a URL (fsspec/s3fs), repeatable: endpoint_url=http://HOST:9000, key=..., "
         "secret=...; or the usual AWS_* environment variables")]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars")]

# --------------------------------------------------------------------------- pretrain and evaluate

StreamOpt = Annotated[Stream, typer.Option(
    help="Which stream's images: joint, bone, motion or bone-motion (`s2i encode` adds them to a store)")]
EvalStreamOpt = Annotated[Optional[Stream], typer.Option(
    help="Evaluate on this stream's images (default: the one the run was pretrained on; joint for a baseline)",
    show_default=False)]
ModelOpt = Annotated[str, typer.Option(callback=_model, autocompletion=_complete(vocab.MODELS),
                                       help=vocab.MODEL_HELP)]
EvalModelOpt = Annotated[Optional[str], typer.Option(
    callback=_model, autocompletion=_complete(vocab.MODELS),
    help=f"{vocab.MODEL_HELP}; for --run none or --init (default: the run's, else {vocab.MODEL_DEFAULT})")]
ProtocolOpt = Annotated[Optional[str], typer.Option(
    autocompletion=_complete(vocab.PROTOCOLS),
    help=f"Split protocol of the store ({', '.join(vocab.PROTOCOLS)}, or a pyskl file's own). pretrain: train on its "
         f"train side only (default {vocab.PROTOCOL_DEFAULT}, else the store's first; 'all': every sample, test "
         f"sides included, marked in config.json, and evaluate then needs --transductive); evaluate: default {vocab.PROTOCOL_DEFAULT}, else the store's first")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the weights, data order, masks, label subset and head")]
InitOpt = Annotated[Optional[Path], typer.Option(
    help="Start from (pretrain) or evaluate alone (evaluate) these weights: MAE release .pth, timm "
         ".pth/.safetensors, or a run's checkpoint-last.pt")]
EpochsOpt = Annotated[Optional[int], typer.Option(min=1, help="Epochs; the cosine schedule spans them")]
BatchOpt = Annotated[Optional[int], typer.Option(min=1, help="Images per step (per process)")]
LrOpt = Annotated[Optional[float], typer.Option(help="Peak learning rate")]
WeightDecayOpt = Annotated[Optional[float], typer.Option(help="AdamW weight decay (not on biases, norms, tokens)")]
WarmupOpt = Annotated[float, typer.Option(min=0.0, help="Epochs of linear learning-rate warm-up")]
CropOpt = Annotated[Optional[str], typer.Option(
    callback=_crop, metavar="MIN[,MAX]",
    help="Crop a random MIN..MAX fraction of the frames (rows), resized back, e.g. 0.5,1.0 (MIN alone: MIN..1)")]
AugmentOpt = Annotated[str, typer.Option(callback=_augment, help=vocab.AUGMENT_HELP)]
WorkersOpt = Annotated[Optional[int], typer.Option(min=0, help="DataLoader worker processes (per process)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue where the last checkpoint left off")]
MaxStepsOpt = Annotated[Optional[int], typer.Option(
    min=1, help="Stop after this many optimizer steps (checkpointed; the schedule still spans --epochs)")]
RunsDirOpt = Annotated[Path, typer.Option(help="Where runs live: new ones are created there, the newest is looked for")]
MaskingOpt = Annotated[Masking, typer.Option(help=vocab.MASKING_HELP)]
ObjectiveOpt = Annotated[Objective, typer.Option(help=vocab.OBJECTIVE_HELP)]
ModeOpt = Annotated[Optional[Mode], typer.Option(
    help=f"linear (frozen features + linear head), knn, or finetune (default {vocab.MODE_DEFAULT}; with --ensemble: "
         "the runs' one mode)", show_default=False)]
PoolOpt = Annotated[Optional[Pool], typer.Option(help="token (class token) or avg (mean patch token)",
                                                 show_default=False)]
