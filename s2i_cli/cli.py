"""The `s2i` command line. Each command parses its options, calls one function, prints.

Heavy imports (numba, zarr, torch) happen inside the commands so `s2i --help` is fast."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
try:  # typer >= 0.22 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer
    from click.exceptions import UsageError
from typer.core import TyperCommand, TyperGroup

from . import vocab
from .train.config import DEFAULT_EPOCHS, MODE_DEFAULTS, EvalConfig, PretrainConfig
from .options import (AugmentOpt, BatchOpt, ConvertStreams, CropOpt, DatasetArg, EncodeStreams, EpochsOpt,
                      EvalModelOpt, EvalStreamOpt, FillOpt, InitOpt, LayoutOpt, LrOpt, MaskingOpt, MaxStepsOpt, ModelOpt,
                      ModeOpt, NormOpt, ObjectiveOpt, PersonsOpt, PoolOpt, ProgressOpt, ProtocolOpt, ResumeOpt,
                      RunsDirOpt, SeedOpt, SizeOpt, StorageOpt, StreamOpt, WarmupOpt, WeightDecayOpt, WorkersOpt)
from .vocab import parse_crop

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit (no traceback for user errors): control characters
    and terminal sequences shown as escapes, the length capped (safe_text)."""
    from rich.markup import escape

    from .safe_text import one_line

    console.print(f"[bold red]error:[/] {escape(one_line(message))}", soft_wrap=True, emoji=False, highlight=False)
    raise typer.Exit(code)


def _usage_error(exc: Exception, where: str) -> None:
    """A value Typer refused (a choice, a range, a missing argument): one line, exit 2."""
    message = " ".join(exc.format_message().replace("Value error, ", "").split())  # Typer's lists span lines
    fail(f"{message} (see `{where} --help`)")


class OneLineCommand(TyperCommand):
    """A command whose parse errors are one line (`fail`) instead of Typer's usage box."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:
            _usage_error(exc, f"s2i {info_name}")


class OneLineGroup(TyperGroup):
    """The `s2i` group: an unknown command or option is one line too."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:
            _usage_error(exc, "s2i")

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            _usage_error(exc, "s2i")


app = typer.Typer(
    name="s2i",
    help="Skeleton-to-Image: convert skeleton action datasets to S2I images in Zarr, "
    "pretrain a masked autoencoder on them, and evaluate it.",
    cls=OneLineGroup,
    no_args_is_help=True,
    add_completion=True,  # `s2i --install-completion`: the choices of vocab.py complete in the shell
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring paragraphs re-flow to the terminal width
)


def command(*args: Any, **kwargs: Any):
    """app.command with OneLineCommand: every command's bad option is one line, exit 2."""
    return app.command(*args, cls=OneLineCommand, **kwargs)


def key_values(pairs: Optional[list[str]], option: str) -> dict[str, str]:
    """Repeated KEY=VALUE options -> a dict, or a one-line error."""
    if any("=" not in p for p in pairs or []):
        fail(f"{option} takes KEY=VALUE")
    return dict(p.split("=", 1) for p in pairs or [])


DATASET_HELP = vocab.DATASET_HELP  # (tests read it)


# --- convert / encode / synth / info / show ---
@command()
def convert(
    dataset: DatasetArg,
    raw: Annotated[Path, typer.Argument(help="Folder of raw files (searched recursively), e.g. the unzipped nturgbd_skeletons_*.zip; for pyskl and ctrgcn the one .pkl or .npz file")],
    out: Annotated[str, typer.Argument(help="Output Zarr store: a directory (out.zarr) or a URL (s3://bucket/out.zarr)")],
    size: SizeOpt = 224,
    layout: LayoutOpt = vocab.LAYOUT_DEFAULT,
    persons: PersonsOpt = vocab.PERSONS_DEFAULT,
    fill: FillOpt = vocab.FILL_DEFAULT,
    norm: NormOpt = vocab.NORM_DEFAULT,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Worker processes, each converting one shard at a time (default: all cores; 1: in this process)")] = None,
    dask: Annotated[Optional[int], typer.Option("--dask", min=1, help="Run the shard tasks on a local Dask cluster of N worker processes")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Run the shard tasks on the Dask cluster at this scheduler address, e.g. tcp://HOST:8786 (its workers must see RAW and OUT)")] = None,
    storage_option: StorageOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted conversion into OUT")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it is an s2i store (or an empty folder); anything else is refused, and OUT may never be, hold or lie inside RAW")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Convert only the first N samples (a quick try)")] = None,
    missing_list: Annotated[Optional[Path], typer.Option(help="A missing-skeleton list to skip instead of the official one shipped with s2i (with or without its header)")] = None,
    shard_size: Annotated[int, typer.Option(min=1, help="Samples per shard: the unit of writing, resume and training reads")] = 256,
    reader_option: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE for the dataset's reader, repeatable: toyota vectors=planar|interleaved; kinetics train_labels=PATH, val_labels=PATH; pyskl cache_dir=DIR")] = None,
    streams: ConvertStreams = vocab.STREAMS_CONVERT_DEFAULT,
    max_file_mb: Annotated[Optional[float], typer.Option(help="Largest raw file read, in MB (default per dataset: 64; 256 for pkummd, pkummd2 and toyota); larger files are rejected, unread. Only regular files are read: FIFOs, devices and sockets are rejected")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Convert a raw skeleton dataset into an S2I Zarr store (images, labels, metadata, skeletons, splits).

    Every file ends up in the store or in the store's list of rejected files with the
    reason and line. Exit status: 0 all converted; 1 some files were rejected (the rest
    converted; see the summary or `s2i info`); 2 nothing converted (bad arguments or input);
    3 a shard task failed (a worker killed, disk full): OUT is left resumable with --resume.
    """
    import sys

    from .convert.config import ConvertConfig
    from .convert.flow import ConvertError, ConvertFailed, run_conversion
    from .views.convert_summary import print_convert_report

    cfg = ConvertConfig(dataset.value, raw, out, size=size, layout_name=layout.value, persons=vocab.plain(persons),
                        fill=fill.value, norm=norm.value, streams=vocab.parse_streams(streams), workers=workers,
                        dask_workers=dask, scheduler=scheduler,
                        storage_options=key_values(storage_option, "--storage-option"), resume=resume,
                        overwrite=overwrite, limit=limit, missing_list=missing_list, shard=shard_size,
                        reader_options=key_values(reader_option, "--reader-option"), progress=progress,
                        command=" ".join(["s2i", *sys.argv[1:]]), max_file_mb=max_file_mb)
    try:
        report = run_conversion(cfg)
    except ConvertFailed as exc:
        fail(str(exc), 3)
    except (ConvertError, ValueError) as exc:
        fail(str(exc))
    print_convert_report(report)
    if report.rejected:
        raise typer.Exit(1)


@command()
def encode(
    store: Annotated[str, typer.Argument(help="A finished s2i store (the OUT of `s2i convert`): a directory or a URL")],
    streams: EncodeStreams = vocab.STREAMS_ENCODE_DEFAULT,
    storage_option: StorageOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Add streams to a store from its stored skeletons, without the raw files: bone (each joint
    minus its parent), motion (frame t+1 minus frame t), bone-motion. Same arrays as
    `s2i convert --streams`; train on one with `s2i pretrain STORE --stream bone`."""
    from .convert.add_streams import EncodeError, encode as run_encode
    from .store import StoreError
    from .vocab import StreamError, parse_streams

    try:
        report = run_encode(store, parse_streams(streams), progress=progress,
                            storage_options=key_values(storage_option, "--storage-option"))
    except (EncodeError, StoreError, StreamError) as exc:
        fail(str(exc))
    if report.added:
        console.print(f"added {', '.join(report.added)} to {store} ({report.samples} samples, {report.seconds:.1f} s)")
    else:
        console.print(f"{store} already has {', '.join(report.present)}: nothing to add")


@command()
def synth(
    dataset: Annotated[str, typer.Argument(help="ntu60 | ntu120: the naming and class range to imitate")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write SsssCcccPpppRrrrAaaa.skeleton files into")],
    samples: Annotated[int, typer.Option(help="Number of files to write")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same files)")] = 0,
    classes: Annotated[Optional[int], typer.Option(help="Use only this many action classes, spread over the range")] = None,
) -> None:
    """Write a synthetic dataset in the exact NTU .skeleton format (the embedded default).

    Motions come from a small forward-kinematics skeleton with class-dependent movements,
    per-subject proportions, camera rotation and noise; two-person classes have two bodies.
    """
    from .views.progress import progress_bar
    from .formats.synth import synthesize

    try:
        with progress_bar(True, console) as bar:
            task = bar.add_task(f"writing {dataset} files", total=samples, info="")
            paths = synthesize(dataset, out_dir, samples, seed=seed, classes=classes,
                               progress=lambda k: bar.advance(task, k))
    except ValueError as exc:
        fail(str(exc))
    console.print(f"wrote {len(paths)} files to {out_dir}")


# --- info / show ---
@command()
def info(
    store: Annotated[str, typer.Argument(help="An s2i store (the OUT of `s2i convert`): a directory or a URL")],
    all_: Annotated[bool, typer.Option("--all", help="List every class and every rejected file")] = False,
    top: Annotated[int, typer.Option(help="Classes listed (most samples first) unless --all")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of tables")] = False,
    storage_option: StorageOpt = None,
) -> None:
    """Summarise a store: dataset, layout, persons, image size, samples per split and class,
    rejected files (reason, line), ignored files, bytes on disk and compression, the command that made it."""
    import json

    from .views.info import print_info, store_summary
    from .store import StoreError, open_store

    try:
        summary = store_summary(open_store(store, key_values(storage_option, "--storage-option")))
    except StoreError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print_info(summary, Console(), top=top, show_all=all_)


@command()
def show(
    store: Annotated[str, typer.Argument(help="An s2i store (the OUT of `s2i convert`): a directory or a URL (credentials from AWS_* variables)")],
    index: Annotated[Optional[int], typer.Option(help="Sample index (0-based; negative counts from the end). Default 0")] = None,
    name: Annotated[Optional[str], typer.Option(help="Sample name instead of --index, e.g. S001C001P001R001A001")] = None,
    out: Annotated[Optional[Path], typer.Option(help="PNG to write (1600 x 900 px). Default: NAME.png in the current folder, the sample's name with every character but letters, digits, - _ . made _")] = None,
    animate: Annotated[Optional[Path], typer.Option(help="Also write an animation of the whole sequence, 1000 x 500 px: a .gif (or .webp / .png by the suffix)")] = None,
    frames: Annotated[Optional[int], typer.Option(help="Key frames drawn beside the image (default 4, or 3 when two actors need the width)")] = None,
    stream: StreamOpt = vocab.STREAM_DEFAULT,
) -> None:
    """Draw one sample: its S2I image (body-part bands and actors marked) beside its skeleton at
    a few frames, and one joint's channels decoded from the image over the stored skeleton."""
    from .safe_text import one_line
    from .store import StoreError, check_layout, open_store
    from .views.show import ShowError, check_index, default_png, find_index, render_sample

    if index is not None and name is not None:
        fail("give --index or --name, not both")
    if frames is not None and not 1 <= frames <= 8:
        fail(f"--frames {frames}: choose 1 to 8")
    try:
        root = open_store(store)
        check_layout(root)  # find_index reads every name: a bounded walk
        i = find_index(root, name) if name is not None else check_index(root, index or 0)
        target = out or default_png(root["name"][i], i)  # never a path a name in the store makes
        written = render_sample(root, i, target, animate, keyframes=frames, stream=stream.value)
    except (StoreError, ShowError) as exc:
        fail(str(exc))
    console.print(f"wrote {one_line(written)}" + (f" and {one_line(animate)}" if animate else ""), markup=False)


@command()
def export(
    store: Annotated[str, typer.Argument(help="An s2i store (the OUT of `s2i convert`): a directory or a URL")],
    out: Annotated[Path, typer.Argument(help="Folder for the exported files (made if absent)")],
    to: Annotated[vocab.Export, typer.Option(help=vocab.EXPORT_HELP)] = vocab.EXPORT_DEFAULT,
    protocol: Annotated[Optional[str], typer.Option(help="Export only this protocol (default: every protocol of the store)")] = None,
    frames: Annotated[int, typer.Option(help="ctrgcn: frames per sample, zero-padded (longer samples are resampled)")] = 300,
    overwrite: Annotated[bool, typer.Option(help="Replace exported files of the same names in OUT (nothing else)")] = False,
    storage_option: StorageOpt = None,
) -> None:
    """Write a store's skeletons (selected actors, centred) in the formats GCN tools train on, so
    one `s2i convert` replaces CTR-GCN's or pyskl's preprocessing scripts. Streamed shard by
    shard: memory stays flat in the number of samples."""
    from .export import ExportError, Target, samples_to_write
    from .export import export as export_store
    from .store import StoreError, open_store
    from .views.progress import progress_bar

    try:
        root = open_store(store, key_values(storage_option, "--storage-option"))
        total = samples_to_write(root, out, Target(to), protocol, frames, overwrite)
        with progress_bar(True, console) as bar:
            task = bar.add_task(f"export {to}", total=total, info="")
            written = export_store(root, out, Target(to), protocol, frames, overwrite,
                                   lambda n: bar.advance(task, n))
    except (StoreError, ExportError, OSError) as exc:
        fail(str(exc))
    for name, held in written.items():
        console.print(f"wrote {out / name}: {held if isinstance(held, int) else ', '.join(f'{k} {v}' for k, v in held.items())} samples")


# --- pretrain, evaluate ---
def _defaults(name: str) -> str:
    """'256 linear, 64 finetune': a per-mode default for --help, from config.MODE_DEFAULTS."""
    return ", ".join(f"{d[name]} {mode}" for mode, d in MODE_DEFAULTS.items() if name in d)


P, E = PretrainConfig, EvalConfig  # the options' defaults; the parameters below are named as their fields


def _options(config: type, values: dict[str, Any]) -> dict[str, Any]:
    """The command's values that are fields of the `config` dataclass, by name (choices as
    their plain strings, --temporal-crop as (MIN, MAX))."""
    chosen = {f.name: vocab.plain(values[f.name]) for f in fields(config) if f.name in values}
    if "temporal_crop" in chosen:
        chosen["temporal_crop"] = parse_crop(chosen["temporal_crop"])
    return chosen


PRETRAIN_HELP = f"""Pretrain a ViT masked autoencoder (MAE or DiffMAE) on the images of a store.

Writes config.json, checkpoint-last.pt, metrics.jsonl and recon-epochNNN.png into the run
directory. Defaults: --epochs {DEFAULT_EPOCHS} (or the resumed run's), --lr --blr x
effective batch / 256, --workers its share of the cores (at most 8). With --resume the
run's settings come from its config.json. For several GPUs launch with
`torchrun --nproc_per_node N -m s2i_cli.cli pretrain STORE ...`."""


@command(help=PRETRAIN_HELP)
def pretrain(
    store: Annotated[Optional[str], typer.Argument(help="The Zarr store made by `s2i convert`, a directory or a URL (s3://...; credentials from AWS_* variables) (optional with --resume: the run's)")] = P.store,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/DATASET-DATE-TIME; with --resume: the newest run under runs/)")] = None,
    model: ModelOpt = P.model,
    epochs: EpochsOpt = P.epochs,
    batch_size: BatchOpt = P.batch_size,
    accum: Annotated[int, typer.Option(min=1, help="Gradient accumulation steps: effective batch = batch size x accum x processes")] = P.accum,
    lr: LrOpt = P.lr,
    blr: Annotated[float, typer.Option(help="Base learning rate, scaled by effective batch / 256 when --lr is not given")] = P.blr,
    min_lr: Annotated[float, typer.Option(help="Learning rate at the end of the cosine decay")] = P.min_lr,
    weight_decay: WeightDecayOpt = P.weight_decay,
    warmup_epochs: WarmupOpt = P.warmup_epochs,
    mask_ratio: Annotated[float, typer.Option(help="Fraction of patches removed")] = P.mask_ratio,
    masking: MaskingOpt = P.masking,
    augment: AugmentOpt = vocab.AUGMENT_DEFAULT,
    protocol: ProtocolOpt = P.protocol,
    init: InitOpt = P.init,
    objective: ObjectiveOpt = P.objective,
    decoder_dim: Annotated[int, typer.Option(help="Decoder width")] = P.decoder_dim,
    decoder_depth: Annotated[int, typer.Option(help="Decoder blocks")] = P.decoder_depth,
    decoder_heads: Annotated[int, typer.Option(help="Decoder attention heads")] = P.decoder_heads,
    norm_pix_loss: Annotated[bool, typer.Option(help="Reconstruct per-patch normalised pixels (MAE's default)")] = P.norm_pix_loss,
    temporal_crop: CropOpt = None,
    buffer_blocks: Annotated[int, typer.Option(min=1, help="Shuffle buffer of the loader, in store shards")] = P.buffer_blocks,
    workers: WorkersOpt = P.workers,
    seed: SeedOpt = P.seed,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model (GPU)")] = P.compile,
    save_every: Annotated[Optional[int], typer.Option(help="Write checkpoint-last.pt every N epochs (default: when 5 minutes have passed since the last; always at the end)")] = P.save_every,
    keep_every: Annotated[Optional[int], typer.Option(help="Also keep checkpoint-epochNNN.pt every N epochs (a hard link: no extra write)")] = P.keep_every,
    recon_every: Annotated[int, typer.Option(help="Write recon-epochNNN.png every N epochs (and at the end)")] = P.recon_every,
    stream: StreamOpt = P.stream,
    resume: ResumeOpt = False,
    max_steps: MaxStepsOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
    progress: ProgressOpt = True,
) -> None:
    """Pretrain a ViT masked autoencoder (MAE or DiffMAE) on the images of a store (PRETRAIN_HELP)."""
    from .store import StoreError, open_store

    options = _options(PretrainConfig, locals())
    try:
        if store is not None:
            open_store(store)  # a bad store fails here, before torch is imported
        from .train.pretrain import pretrain as run_pretrain

        run = run_pretrain(run_dir=run_dir, resume=resume, max_steps=max_steps, runs_root=runs_dir,
                           progress=progress, **options)
    except (StoreError, ValueError) as exc:  # RunError and TrainingError are ValueErrors
        fail(str(exc))
    console.print(f"run: {run}")


EVALUATE_HELP = f"""Evaluate a pretrained encoder on a protocol: linear probe, k-NN or fine-tuning; top-1/top-5,
per-class accuracy and a confusion matrix, saved in the run's results.json.

Per-mode defaults: --pool {_defaults('pool')}; --epochs {_defaults('epochs')}; --batch-size
{_defaults('batch_size')}; --weight-decay {_defaults('weight_decay')}; --lr linear 0.1 x batch / 256,
finetune {MODE_DEFAULTS['finetune']['lr']:g} x batch / 256. Fine-tuning alone takes --augment and
--temporal-crop (linear and knn probe cached features of the stored images, never augmented), and
its checkpoint is continued by --resume or started again by --overwrite."""


@command(help=EVALUATE_HELP)
def evaluate(
    protocol: ProtocolOpt = E.protocol,
    transductive: Annotated[bool, typer.Option("--transductive", help="evaluate even when the run was pretrained on test samples of the protocol (e.g. pretrain --protocol all); the result is labelled transductive (key suffix -transductive)")] = E.transductive,
    run: Annotated[Optional[str], typer.Option(help="run directory (default: the newest under --runs-dir); 'none' for a random-init baseline")] = E.run,
    store: Annotated[Optional[str], typer.Option(help="store to evaluate on, a directory or a URL (default: the one the run recorded); another one for transfer")] = E.store,
    mode: ModeOpt = None,
    fraction: Annotated[Optional[float], typer.Option(help="semi-supervised: a random int(N x F) of the train labels, as MAMP (--balanced: F of each class)")] = E.fraction,
    balanced: Annotated[bool, typer.Option("--balanced", help="with --fraction: the same fraction of every class instead of a random subset")] = E.balanced,
    seed: SeedOpt = E.seed,
    seeds: Annotated[int, typer.Option(min=1, help="run seeds SEED..SEED+K-1 (other label subsets and initialisations) and report mean ± std")] = 1,
    init: InitOpt = E.init,
    model: EvalModelOpt = E.model,
    pool: PoolOpt = E.pool,
    epochs: EpochsOpt = E.epochs,
    batch_size: BatchOpt = E.batch_size,
    lr: LrOpt = E.lr,
    weight_decay: WeightDecayOpt = E.weight_decay,
    layer_decay: Annotated[float, typer.Option(help="finetune: layer-wise lr decay")] = E.layer_decay,
    drop_path: Annotated[float, typer.Option(help="finetune: stochastic depth rate")] = E.drop_path,
    label_smoothing: Annotated[float, typer.Option(help="finetune: label smoothing")] = E.label_smoothing,
    mixup: Annotated[float, typer.Option(help="finetune: mixup alpha (0 = off)")] = E.mixup,
    cutmix: Annotated[float, typer.Option(help="finetune: cutmix alpha (0 = off)")] = E.cutmix,
    warmup_epochs: WarmupOpt = E.warmup_epochs,
    temporal_crop: CropOpt = None,
    augment: AugmentOpt = E.augment,
    k: Annotated[int, typer.Option(min=1, help="knn: neighbours")] = E.k,
    temperature: Annotated[float, typer.Option(help="knn: vote temperature")] = E.temperature,
    resume: ResumeOpt = False,
    overwrite: Annotated[bool, typer.Option(help="finetune: start again over an existing fine-tuning checkpoint")] = False,
    max_steps: MaxStepsOpt = None,
    workers: WorkersOpt = E.workers,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, cpu (default: cuda when present)")] = E.device,
    runs_dir: RunsDirOpt = Path("runs"),
    summary: Annotated[bool, typer.Option("--summary", help="print every run's results.json side by side and exit")] = False,
    stream: EvalStreamOpt = E.stream,
    ensemble: Annotated[Optional[str], typer.Option(help="runs to ensemble, comma-separated (runs/A,runs/B): their saved test scores of --protocol and --mode, joined by sample name; writes runs/ensemble-A+B/results.json")] = None,
    weights: Annotated[Optional[str], typer.Option(help="--ensemble: one weight per run, comma-separated (default equal), e.g. 0.6,0.6,0.4")] = None,
    progress: ProgressOpt = True,
) -> None:
    """Evaluate a pretrained encoder on a protocol (EVALUATE_HELP)."""
    if summary:
        return _summary(runs_dir)
    if ensemble is not None:
        return _ensemble(ensemble, protocol, vocab.plain(mode), weights, runs_dir)
    if weights is not None:
        fail("--weights goes with --ensemble")
    options = {**_options(EvalConfig, locals()), "mode": vocab.plain(mode) or E.mode}
    from .eval.evaluate import evaluate_seeds
    from .eval.results import results_table, seeds_lines

    entries = _user_errors(lambda: evaluate_seeds(seeds, runs_root=runs_dir, resume=resume, overwrite=overwrite,
                                                  max_steps=max_steps, progress=progress, console=console,
                                                  **options))
    out = Console()
    for entry in entries:
        out.print(results_table(entry))
        console.print(f"results: {Path(entry['out_dir']) / 'results.json'}")
    for line in seeds_lines(entries):
        out.print(line)


def _user_errors(call):
    """call(), with a store, run, evaluation or ensemble error as one line."""
    from .eval.ensemble import EnsembleError
    from .store import StoreError

    try:
        return call()
    except (StoreError, ValueError, EnsembleError) as exc:  # EvaluateError, RunError and TrainingError are ValueErrors
        fail(str(exc))


def _summary(runs_dir: Path) -> None:
    """`s2i evaluate --summary`: every run's results.json side by side (no torch imported)."""
    from .eval.results import summary_table

    Console().print(_user_errors(lambda: summary_table(runs_dir)))


def _ensemble(runs: str, protocol: str | None, mode: str | None, weights: str | None, runs_dir: Path) -> None:
    """`s2i evaluate --ensemble A,B`: the runs' saved test scores, combined."""
    from .eval.ensemble import ensemble_table, evaluate_ensemble

    entry = _user_errors(lambda: evaluate_ensemble([Path(r) for r in runs.split(",") if r], protocol=protocol,
                                                   mode=mode, weights=weights, runs_root=runs_dir))
    Console().print(ensemble_table(entry))
    console.print(f"results: {Path(entry['out_dir']) / 'results.json'}")


if __name__ == "__main__":
    app()
