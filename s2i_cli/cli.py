"""The `s2i` command line. Each command parses its options, calls one function, prints.

Heavy imports (numba, zarr, torch) happen inside the commands so `s2i --help` is fast."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from .train.config import DEFAULT_EPOCHS, MODE_DEFAULTS, EvalConfig, PretrainConfig

app = typer.Typer(
    name="s2i",
    help="Skeleton-to-Image: convert skeleton action datasets to S2I images in Zarr, "
    "pretrain a masked autoencoder on them, and evaluate it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring paragraphs re-flow to the terminal width
)
console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit (no traceback for user errors): control characters
    and terminal sequences shown as escapes, the length capped (safe_text)."""
    from rich.markup import escape

    from .safe_text import one_line

    console.print(f"[bold red]error:[/] {escape(one_line(message))}", soft_wrap=True, emoji=False, highlight=False)
    raise typer.Exit(code)


def key_values(pairs: Optional[list[str]], option: str) -> dict[str, str]:
    """Repeated KEY=VALUE options -> a dict, or a one-line error."""
    if any("=" not in p for p in pairs or []):
        fail(f"{option} takes KEY=VALUE")
    return dict(p.split("=", 1) for p in pairs or [])


# --- convert / synth / info / show ---
DATASET_HELP = (
    "ntu60 | ntu120: NTU RGB+D .skeleton files (protocols xsub, xview / xsub, xset). "
    "pkummd: PKU-MMD phase 1, skeleton + label NNNN-V.txt, one sample per labelled interval (xsub, xview from the "
    "official split files). "
    "pkummd2: PKU-MMD phase 2, AxxNyy-V.txt (xsub, xview only if the release's split files are under RAW; none "
    "are derived). "
    "nwucla: NW-UCLA all_sqe JSON (xview: views 1, 2 train, 3 test). "
    "kinetics: Kinetics-skeleton kinetics_{train,val}/*.json + kinetics_{train,val}_label*.json, 2D + confidence "
    "(release: train vs val). "
    "toyota: Toyota Smarthome LCR-Net JSON, pose3d, planar vectors unless reader option vectors=interleaved "
    "(xsub, xview1, xview2). "
    "pyskl: a pyskl annotation pickle as RAW (NTU 3D or HRNet COCO-17 2D; protocols from its split lists, e.g. "
    "xsub_train/xsub_val -> xsub). "
    "ctrgcn: a CTR-GCN NTU .npz as RAW (x_train/x_test; protocol from the file name: NTU60_CS xsub, NTU60_CV "
    "xview, NTU120_CSet xset; else release). docs/formats.md has the layouts")


@app.command()
def convert(
    dataset: Annotated[str, typer.Argument(help=DATASET_HELP)],
    raw: Annotated[Path, typer.Argument(help="Folder of raw files (searched recursively), e.g. the unzipped nturgbd_skeletons_*.zip; for pyskl and ctrgcn the one .pkl or .npz file")],
    out: Annotated[str, typer.Argument(help="Output Zarr store: a directory (out.zarr) or a URL (s3://bucket/out.zarr)")],
    size: Annotated[int, typer.Option(help="Image height and width in pixels")] = 224,
    layout: Annotated[str, typer.Option(help="parts: each body part resized into its own band of columns (formats interchangeable); aligned: parts with band edges on the 16-px patch grid and equal limbs (part masking, mirroring); concat: the parts' joints side by side, resized as a whole")] = "parts",
    persons: Annotated[Optional[str], typer.Option(help="stacked: actor 1 in the top half, actor 2 in the bottom half; main: actor 1 only. Default: the dataset's (stacked for NTU)")] = None,
    fill: Annotated[str, typer.Option(help="stacked with one actor: repeat (actor 1 again in the bottom half) or zero (an empty body at the origin, as CTR-GCN/MAMP pad)")] = "repeat",
    norm: Annotated[str, typer.Option(help="channel: each of x, y, z min-max scaled per sample; isotropic: one per-sample scale for x, y, z (keeps the body's proportions); dataset: fixed limits from the training split (central 99.9 %), the same scale for every sample. Each decodes back to metres. Default isotropic: the ablation (README)")] = "isotropic",
    workers: Annotated[Optional[int], typer.Option(help="Worker processes, each converting one shard at a time (default: all cores; 1: in this process)")] = None,
    dask: Annotated[Optional[int], typer.Option("--dask", help="Run the shard tasks on a local Dask cluster of N worker processes")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Run the shard tasks on the Dask cluster at this scheduler address, e.g. tcp://HOST:8786 (its workers must see RAW and OUT)")] = None,
    storage_option: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE for a store at a URL (fsspec/s3fs), repeatable: endpoint_url=http://HOST:9000, key=..., secret=...; or the usual AWS_* environment variables")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted conversion into OUT")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it is an s2i store (or an empty folder); anything else is refused, and OUT may never be, hold or lie inside RAW")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Convert only the first N samples (a quick try)")] = None,
    missing_list: Annotated[Optional[Path], typer.Option(help="A missing-skeleton list to skip instead of the official one shipped with s2i (with or without its header)")] = None,
    shard_size: Annotated[int, typer.Option(help="Samples per shard: the unit of writing, resume and training reads")] = 256,
    reader_option: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE for the dataset's reader, repeatable: toyota vectors=planar|interleaved; kinetics train_labels=PATH, val_labels=PATH; pyskl cache_dir=DIR")] = None,
    streams: Annotated[str, typer.Option(help="Streams to store side by side, from the one parse: joint (always), bone, motion, bone-motion, comma-separated")] = "joint",
    max_file_mb: Annotated[Optional[float], typer.Option(help="Largest raw file read, in MB (default per dataset: 64; 256 for pkummd, pkummd2 and toyota); larger files are rejected, unread. Only regular files are read: FIFOs, devices and sockets are rejected")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
) -> None:
    """Convert a raw skeleton dataset into an S2I Zarr store (images, labels, metadata, skeletons, splits).

    Every file ends up in the store or in the store's list of rejected files with the
    reason and line. Exit status: 0 all converted; 1 some files were rejected (the rest
    converted; see the summary or `s2i info`); 2 nothing converted (bad arguments or input);
    3 a shard task failed (a worker killed, disk full): OUT is left resumable with --resume.
    """
    import sys

    from .convert.flow import ConvertError, ConvertFailed, convert as run_convert
    from .views.convert_summary import print_convert_report

    options = key_values(reader_option, "--reader-option")
    try:
        report = run_convert(dataset, raw, out, size=size, layout_name=layout, persons=persons, fill=fill, norm=norm,
                             workers=workers,
                             resume=resume, overwrite=overwrite, limit=limit, missing_list=missing_list,
                             shard=shard_size, reader_options=options, progress=progress,
                             command=" ".join(["s2i", *sys.argv[1:]]), scheduler=scheduler, dask_workers=dask,
                             storage_options=key_values(storage_option, "--storage-option"),
                             streams=tuple(streams.split(",")), max_file_mb=max_file_mb)
    except ConvertFailed as exc:
        fail(str(exc), 3)
    except (ConvertError, ValueError) as exc:
        fail(str(exc))
    print_convert_report(report)
    if report.rejected:
        raise typer.Exit(1)


@app.command()
def encode(
    store: Annotated[str, typer.Argument(help="A finished s2i store (the OUT of `s2i convert`): a directory or a URL")],
    streams: Annotated[str, typer.Option(help="Streams to add, comma-separated: bone, motion, bone-motion (those the store has are left as they are)")] = "bone,motion,bone-motion",
    storage_option: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE for a store at a URL, repeatable (as for convert)")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
) -> None:
    """Add streams to a store from its stored skeletons, without the raw files: bone (each joint
    minus its parent), motion (frame t+1 minus frame t), bone-motion. Same arrays as
    `s2i convert --streams`; train on one with `s2i pretrain STORE --stream bone`."""
    from .convert.add_streams import EncodeError, encode as run_encode
    from .store import StoreError
    from .encoder.streams import StreamError, parse_streams

    try:
        report = run_encode(store, parse_streams(streams), progress=progress,
                            storage_options=key_values(storage_option, "--storage-option"))
    except (EncodeError, StoreError, StreamError) as exc:
        fail(str(exc))
    if report.added:
        console.print(f"added {', '.join(report.added)} to {store} ({report.samples} samples, {report.seconds:.1f} s)")
    else:
        console.print(f"{store} already has {', '.join(report.present)}: nothing to add")


@app.command()
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
@app.command()
def info(
    store: Annotated[str, typer.Argument(help="An s2i store (the OUT of `s2i convert`): a directory or a URL")],
    all_: Annotated[bool, typer.Option("--all", help="List every class and every rejected file")] = False,
    top: Annotated[int, typer.Option(help="Classes listed (most samples first) unless --all")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of tables")] = False,
    storage_option: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE for a store at a URL (as for convert)")] = None,
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


@app.command()
def show(
    store: Annotated[str, typer.Argument(help="An s2i store (the OUT of `s2i convert`): a directory or a URL (credentials from AWS_* variables)")],
    index: Annotated[Optional[int], typer.Option(help="Sample index (0-based; negative counts from the end). Default 0")] = None,
    name: Annotated[Optional[str], typer.Option(help="Sample name instead of --index, e.g. S001C001P001R001A001")] = None,
    out: Annotated[Optional[Path], typer.Option(help="PNG to write (1600 x 900 px). Default: NAME.png in the current folder, the sample's name with every character but letters, digits, - _ . made _")] = None,
    animate: Annotated[Optional[Path], typer.Option(help="Also write an animation of the whole sequence, 1000 x 500 px: a .gif (or .webp / .png by the suffix)")] = None,
    frames: Annotated[Optional[int], typer.Option(help="Key frames drawn beside the image (default 4, or 3 when two actors need the width)")] = None,
    stream: Annotated[str, typer.Option(help="Which stream's image: joint, bone, motion or bone-motion (see `s2i info`)")] = "joint",
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
        written = render_sample(root, i, target, animate, keyframes=frames, stream=stream)
    except (StoreError, ShowError) as exc:
        fail(str(exc))
    console.print(f"wrote {one_line(written)}" + (f" and {one_line(animate)}" if animate else ""), markup=False)


@app.command()
def export(
    store: Annotated[str, typer.Argument(help="An s2i store (the OUT of `s2i convert`): a directory or a URL")],
    out: Annotated[Path, typer.Argument(help="Folder for the exported files (made if absent)")],
    to: Annotated[str, typer.Option(help="ctrgcn: CTR-GCN's NTU .npz per protocol (NTU60_CS.npz ...: x_train, "
                                         "y_train, x_test, y_test), read by CTR-GCN, InfoGCN, HD-GCN, MAMP. "
                                         "pyskl: pyskl's / MMAction2's annotation pickle (split + annotations)")] = "ctrgcn",
    protocol: Annotated[Optional[str], typer.Option(help="Export only this protocol (default: every protocol of the store)")] = None,
    frames: Annotated[int, typer.Option(help="ctrgcn: frames per sample, zero-padded (longer samples are resampled)")] = 300,
    overwrite: Annotated[bool, typer.Option(help="Replace exported files of the same names in OUT (nothing else)")] = False,
    storage_option: Annotated[Optional[list[str]], typer.Option(help="KEY=VALUE for a store at a URL (as for convert)")] = None,
) -> None:
    """Write a store's skeletons (selected actors, centred) in the formats GCN tools train on, so
    one `s2i convert` replaces CTR-GCN's or pyskl's preprocessing scripts. Streamed shard by
    shard: memory stays flat in the number of samples."""
    from .export import ExportError, Target, samples_to_write
    from .export import export as export_store
    from .store import StoreError, open_store
    from .views.progress import progress_bar

    if to not in Target.__members__:
        fail(f"--to {to}: choose {' or '.join(Target.__members__)}")
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
    """The command's values that are fields of the `config` dataclass, by name."""
    return {f.name: values[f.name] for f in fields(config) if f.name in values}


def _parse_crop(text: Optional[str]) -> Optional[tuple[float, float]]:
    if not text:
        return None
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = [parts[0], 1.0]
    if len(parts) != 2:
        fail(f"--temporal-crop {text!r}: give MIN or MIN,MAX fractions of the frames, e.g. 0.5,1.0")
    return parts[0], parts[1]


@app.command()
def pretrain(
    store: Annotated[Optional[str], typer.Argument(help="The Zarr store made by `s2i convert`, a directory or a URL (s3://...; credentials from AWS_* variables) (optional with --resume: the run's)")] = P.store,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/DATASET-DATE-TIME; with --resume: the newest run under runs/)")] = None,
    model: Annotated[str, typer.Option(help="Encoder: vit_tiny, vit_small or vit_base (patch 16)")] = P.model,
    epochs: Annotated[Optional[int], typer.Option(help=f"Epochs; the cosine schedule spans them (default {DEFAULT_EPOCHS}, or the resumed run's)")] = P.epochs,
    batch_size: Annotated[int, typer.Option(help="Images per step per process (GPU)")] = P.batch_size,
    accum: Annotated[int, typer.Option(help="Gradient accumulation steps: effective batch = batch size x accum x processes")] = P.accum,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (default: --blr x effective batch / 256)")] = P.lr,
    blr: Annotated[float, typer.Option(help="Base learning rate, scaled by effective batch / 256 when --lr is not given")] = P.blr,
    min_lr: Annotated[float, typer.Option(help="Learning rate at the end of the cosine decay")] = P.min_lr,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (not on biases, norms, tokens)")] = P.weight_decay,
    warmup_epochs: Annotated[float, typer.Option(help="Epochs of linear learning-rate warm-up (at most half the run)")] = P.warmup_epochs,
    mask_ratio: Annotated[float, typer.Option(help="Fraction of patches removed")] = P.mask_ratio,
    masking: Annotated[str, typer.Option(help="Which patches are removed: random (MAE's); tube (whole joint columns through all of time); frames (a block of whole rows: a stretch of time); parts (whole body-part bands over a block of rows; best with a store converted with --layout aligned). The ratio is exact for each")] = P.masking,
    augment: Annotated[str, typer.Option(help="Skeleton-space augmentation, re-encoded on the fly from the stored skeletons: none, all, or a comma list of rotate (±0.3 rad), scale (±10 %), crop (50-100 % of the frames), mirror (swap left/right, negate x)")] = "none",
    protocol: Annotated[Optional[str], typer.Option(help="Train on this protocol's train side only (e.g. xsub); default every sample")] = P.protocol,
    init: Annotated[Optional[Path], typer.Option(help="Start from these weights: MAE release .pth, timm .pth/.safetensors, or a run's checkpoint-last.pt")] = P.init,
    objective: Annotated[str, typer.Option(help="mae (pixel reconstruction) or diffmae (denoise the masked patches at a random diffusion step)")] = P.objective,
    decoder_dim: Annotated[int, typer.Option(help="Decoder width")] = P.decoder_dim,
    decoder_depth: Annotated[int, typer.Option(help="Decoder blocks")] = P.decoder_depth,
    decoder_heads: Annotated[int, typer.Option(help="Decoder attention heads")] = P.decoder_heads,
    norm_pix_loss: Annotated[bool, typer.Option(help="Reconstruct per-patch normalised pixels (MAE's default)")] = P.norm_pix_loss,
    temporal_crop: Annotated[Optional[str], typer.Option(help="Augment: crop a random MIN..MAX fraction of the frames (rows), resized back, e.g. 0.5,1.0")] = None,
    buffer_blocks: Annotated[int, typer.Option(help="Shuffle buffer of the loader, in store shards")] = P.buffer_blocks,
    workers: Annotated[Optional[int], typer.Option(help="DataLoader worker processes per process (default: its share of the cores, at most 8; or the resumed run's)")] = P.workers,
    seed: Annotated[int, typer.Option(help="Seed of the weights, data order and masks")] = P.seed,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model (GPU)")] = P.compile,
    save_every: Annotated[Optional[int], typer.Option(help="Write checkpoint-last.pt every N epochs (default: when 5 minutes have passed since the last; always at the end)")] = P.save_every,
    keep_every: Annotated[Optional[int], typer.Option(help="Also keep checkpoint-epochNNN.pt every N epochs (a hard link: no extra write)")] = P.keep_every,
    recon_every: Annotated[int, typer.Option(help="Write recon-epochNNN.png every N epochs (and at the end)")] = P.recon_every,
    stream: Annotated[str, typer.Option(help="Train on this stream's images: joint, bone, motion or bone-motion (`s2i encode` adds them to a store)")] = P.stream,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --run-dir (or the newest) exactly where its last checkpoint left it")] = False,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many optimizer steps (checkpointed; the schedule still spans --epochs)")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where new runs are created, and where --resume looks for the newest")] = Path("runs"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
) -> None:
    """Pretrain a ViT masked autoencoder (MAE or DiffMAE) on the images of a store.

    Writes config.json, checkpoint-last.pt, metrics.jsonl and recon-epochNNN.png into the run
    directory. For several GPUs launch with
    `torchrun --nproc_per_node N -m s2i_cli.cli pretrain STORE ...`.
    """
    from .store import StoreError, open_store

    options = _options(PretrainConfig, {**locals(), "temporal_crop": _parse_crop(temporal_crop)})
    try:
        if store is not None:
            open_store(store)  # a bad store fails here, before torch is imported
        from .train.pretrain import pretrain as run_pretrain

        run = run_pretrain(run_dir=run_dir, resume=resume, max_steps=max_steps, runs_root=runs_dir,
                           progress=progress, **options)
    except (StoreError, ValueError) as exc:  # RunError and TrainingError are ValueErrors
        fail(str(exc))
    console.print(f"run: {run}")


@app.command()
def evaluate(
    protocol: Annotated[Optional[str], typer.Option(help="split protocol of the store (xsub, xview, xset); default xsub, else the store's first")] = E.protocol,
    run: Annotated[Optional[str], typer.Option(help="run directory (default: the newest under --runs-dir); 'none' for a random-init baseline")] = E.run,
    store: Annotated[Optional[str], typer.Option(help="store to evaluate on, a directory or a URL (default: the one the run recorded); another one for transfer")] = E.store,
    mode: Annotated[Optional[str], typer.Option(help=f"linear (frozen features + linear head), knn, or finetune (default {E.mode}; with --ensemble: the runs' one mode)")] = None,
    fraction: Annotated[Optional[float], typer.Option(help="semi-supervised: a random int(N x F) of the train labels, as MAMP (--balanced: F of each class)")] = E.fraction,
    balanced: Annotated[bool, typer.Option("--balanced", help="with --fraction: the same fraction of every class instead of a random subset")] = E.balanced,
    seed: Annotated[int, typer.Option(help="seed of the labelled subset, head init and shuffling")] = E.seed,
    seeds: Annotated[int, typer.Option(help="run seeds SEED..SEED+K-1 (other label subsets and initialisations) and report mean ± std")] = 1,
    init: Annotated[Optional[Path], typer.Option(help="evaluate these weights alone (e.g. ImageNet .pth/.safetensors), without a run")] = E.init,
    model: Annotated[Optional[str], typer.Option(help="vit_tiny/vit_small/vit_base, for --run none or --init (default: the run's, else vit_base)")] = E.model,
    pool: Annotated[Optional[str], typer.Option(help=f"token (class token) or avg (mean patch token); default {_defaults('pool')}")] = E.pool,
    epochs: Annotated[Optional[int], typer.Option(help=f"epochs of the linear head or of fine-tuning (default {_defaults('epochs')})")] = E.epochs,
    batch_size: Annotated[Optional[int], typer.Option(help=f"batch size (default {_defaults('batch_size')})")] = E.batch_size,
    lr: Annotated[Optional[float], typer.Option(help=f"linear: SGD lr (default 0.1*batch/256); finetune: base lr, times batch/256 (default {MODE_DEFAULTS['finetune']['lr']:g})")] = E.lr,
    weight_decay: Annotated[Optional[float], typer.Option(help=f"weight decay (default {_defaults('weight_decay')})")] = E.weight_decay,
    layer_decay: Annotated[float, typer.Option(help="finetune: layer-wise lr decay")] = E.layer_decay,
    drop_path: Annotated[float, typer.Option(help="finetune: stochastic depth rate")] = E.drop_path,
    label_smoothing: Annotated[float, typer.Option(help="finetune: label smoothing")] = E.label_smoothing,
    mixup: Annotated[float, typer.Option(help="finetune: mixup alpha (0 = off)")] = E.mixup,
    cutmix: Annotated[float, typer.Option(help="finetune: cutmix alpha (0 = off)")] = E.cutmix,
    warmup_epochs: Annotated[int, typer.Option(help="finetune: linear warm-up epochs")] = E.warmup_epochs,
    temporal_crop: Annotated[Optional[float], typer.Option(help="finetune: crop a random F..1 of the frames (rows) and resize back")] = E.temporal_crop,
    augment: Annotated[str, typer.Option(help="finetune: skeleton-space augmentation re-encoded from the stored skeletons (none, all, or rotate,scale,crop,mirror); linear and knn probe cached features of the stored images, never augmented")] = E.augment,
    k: Annotated[int, typer.Option(help="knn: neighbours")] = E.k,
    temperature: Annotated[float, typer.Option(help="knn: vote temperature")] = E.temperature,
    resume: Annotated[bool, typer.Option(help="finetune: continue this evaluation's fine-tuning checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option(help="finetune: start again over an existing fine-tuning checkpoint")] = False,
    max_steps: Annotated[Optional[int], typer.Option(help="finetune: stop after this many steps (checkpointed)")] = None,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes")] = E.workers,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, cpu (default: cuda when present)")] = E.device,
    runs_dir: Annotated[Path, typer.Option(help="where runs live")] = Path("runs"),
    summary: Annotated[bool, typer.Option("--summary", help="print every run's results.json side by side and exit")] = False,
    stream: Annotated[Optional[str], typer.Option(help="evaluate on this stream's images (default: the one the run was pretrained on; joint for a baseline)")] = E.stream,
    ensemble: Annotated[Optional[str], typer.Option(help="runs to ensemble, comma-separated (runs/A,runs/B): their saved test scores of --protocol and --mode, joined by sample name; writes runs/ensemble-A+B/results.json")] = None,
    weights: Annotated[Optional[str], typer.Option(help="--ensemble: one weight per run, comma-separated (default equal), e.g. 0.6,0.6,0.4")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Evaluate a pretrained encoder on a protocol: linear probe, k-NN or fine-tuning; top-1/top-5,
    per-class accuracy and a confusion matrix, saved in the run's results.json."""
    from .eval.ensemble import EnsembleError
    from .eval.evaluate import evaluate as run_evaluation
    from .eval.results import results_table, summary_table
    from .store import StoreError

    options = {**_options(EvalConfig, locals()), "mode": mode or E.mode}
    out = Console()
    try:
        if summary:
            out.print(summary_table(runs_dir))
            return
        if ensemble is not None:
            from .eval.ensemble import ensemble_table, evaluate_ensemble

            entry = evaluate_ensemble([Path(r) for r in ensemble.split(",") if r], protocol=protocol, mode=mode,
                                      weights=weights, runs_root=runs_dir)
            out.print(ensemble_table(entry))
            console.print(f"results: {Path(entry['out_dir']) / 'results.json'}")
            return
        if weights is not None:
            fail("--weights goes with --ensemble")
        if seeds < 1:
            fail("--seeds must be at least 1")
        entries = [run_evaluation(runs_root=runs_dir, resume=resume, overwrite=overwrite, max_steps=max_steps,
                                  progress=progress, console=console, **{**options, "seed": options["seed"] + k})
                   for k in range(seeds)]
    except (StoreError, ValueError, EnsembleError) as exc:  # EvaluateError, RunError and TrainingError are ValueErrors
        fail(str(exc))
    for entry in entries:
        out.print(results_table(entry))
        console.print(f"results: {Path(entry['out_dir']) / 'results.json'}")
    if seeds > 1:
        import statistics
        for name, metric in (("top-1", "top1"), ("mean per-class", "mean_class")):
            values = [100 * e[metric] for e in entries]
            out.print(f"{name} over seeds {options['seed']}..{options['seed'] + seeds - 1}: "
                      f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} %")


if __name__ == "__main__":
    app()
