"""The `s2i` command line. Each command parses its options, calls one function, prints.

Heavy imports (numba, zarr, torch) happen inside the commands so `s2i --help` is fast."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

app = typer.Typer(
    name="s2i",
    help="Skeleton-to-Image: convert skeleton action datasets to S2I images in Zarr, "
    "pretrain a masked autoencoder on them, and evaluate it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit (no traceback for user errors)."""
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


# --- convert / synth / info / show (lead) ---
DATASET_HELP = ("ntu60 | ntu120 (NTU RGB+D .skeleton files; protocols xsub+xview / xsub+xset)")


@app.command()
def convert(
    dataset: Annotated[str, typer.Argument(help=DATASET_HELP)],
    raw: Annotated[Path, typer.Argument(help="Folder of raw files (searched recursively), e.g. the unzipped nturgbd_skeletons_*.zip")],
    out: Annotated[Path, typer.Argument(help="Output Zarr store (a directory), e.g. out.zarr")],
    size: Annotated[int, typer.Option(help="Image height and width in pixels")] = 224,
    layout: Annotated[str, typer.Option(help="parts: each body part resized into its own band of columns (formats interchangeable); concat: the parts' joints side by side, resized as a whole")] = "parts",
    persons: Annotated[Optional[str], typer.Option(help="stacked: actor 1 in the top half, actor 2 in the bottom half; main: actor 1 only. Default: the dataset's (stacked for NTU)")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Threads for reading/parsing and encoding (default: all cores)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted conversion into OUT")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Convert only the first N samples (a quick try)")] = None,
    missing_list: Annotated[Optional[Path], typer.Option(help="A missing-skeleton list to skip instead of the official one shipped with s2i (with or without its header)")] = None,
    shard_size: Annotated[int, typer.Option(help="Samples per shard: the unit of writing, resume and training reads")] = 256,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
) -> None:
    """Convert a raw skeleton dataset into an S2I Zarr store (images, labels, metadata, skeletons, splits).

    Every file ends up in the store or in the store's list of rejected files with the
    reason and line. Exit status: 0 all converted; 1 some files were rejected (the rest
    converted; see the summary or `s2i info`); 2 nothing converted (bad arguments or input).
    """
    import sys

    from .convert import ConvertError, convert as run_convert
    from .report import print_convert_report

    try:
        report = run_convert(dataset, raw, out, size=size, layout_name=layout, persons=persons, workers=workers,
                             resume=resume, overwrite=overwrite, limit=limit, missing_list=missing_list,
                             shard=shard_size, progress=progress, command=" ".join(["s2i", *sys.argv[1:]]))
    except (ConvertError, ValueError) as exc:
        fail(str(exc))
    print_convert_report(report)
    if report.rejected:
        raise typer.Exit(1)


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
    from rich.progress import Progress

    from .synth import synthesize

    try:
        with Progress(console=console) as bar:
            task = bar.add_task(f"writing {dataset} files", total=samples)
            paths = synthesize(dataset, out_dir, samples, seed=seed, classes=classes,
                               progress=lambda k: bar.advance(task, k))
    except ValueError as exc:
        fail(str(exc))
    console.print(f"wrote {len(paths)} files to {out_dir}")


# --- pretrain (issue 4) ---


# --- evaluate (issue 5) ---
@app.command()
def evaluate(
    protocol: Annotated[Optional[str], typer.Option(help="split protocol of the store (xsub, xview, xset); default xsub, else the store's first")] = None,
    run: Annotated[Optional[str], typer.Option(help="run directory (default: the newest under --runs-dir); 'none' for a random-init baseline")] = None,
    store: Annotated[Optional[Path], typer.Option(help="store to evaluate on (default: the one the run recorded); another one for transfer")] = None,
    mode: Annotated[str, typer.Option(help="linear (frozen features + linear head), knn, or finetune")] = "linear",
    fraction: Annotated[Optional[float], typer.Option(help="use this fraction of the train labels, class-balanced (semi-supervised)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the labelled subset, head init and shuffling")] = 0,
    init: Annotated[Optional[Path], typer.Option(help="evaluate these weights alone (e.g. ImageNet .pth/.safetensors), without a run")] = None,
    model: Annotated[Optional[str], typer.Option(help="vit_tiny/vit_small/vit_base, for --run none or --init (default: the run's, else vit_base)")] = None,
    pool: Annotated[Optional[str], typer.Option(help="token (class token) or avg (mean patch token); default token for linear/knn, avg for finetune")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="epochs of the linear head or of fine-tuning (default 100)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="batch size (default 256 linear, 64 finetune)")] = None,
    lr: Annotated[Optional[float], typer.Option(help="linear: SGD lr (default 0.1*batch/256); finetune: base lr, times batch/256 (default 5e-4)")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="weight decay (default 0 linear, 0.05 finetune)")] = None,
    layer_decay: Annotated[float, typer.Option(help="finetune: layer-wise lr decay")] = 0.65,
    drop_path: Annotated[float, typer.Option(help="finetune: stochastic depth rate")] = 0.1,
    label_smoothing: Annotated[float, typer.Option(help="finetune: label smoothing")] = 0.1,
    mixup: Annotated[float, typer.Option(help="finetune: mixup alpha (0 = off)")] = 0.0,
    cutmix: Annotated[float, typer.Option(help="finetune: cutmix alpha (0 = off)")] = 0.0,
    warmup_epochs: Annotated[int, typer.Option(help="finetune: linear warm-up epochs")] = 5,
    k: Annotated[int, typer.Option(help="knn: neighbours")] = 20,
    temperature: Annotated[float, typer.Option(help="knn: vote temperature")] = 0.07,
    resume: Annotated[bool, typer.Option(help="finetune: continue this evaluation's fine-tuning checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option(help="finetune: start again over an existing fine-tuning checkpoint")] = False,
    max_steps: Annotated[Optional[int], typer.Option(help="finetune: stop after this many steps (smoke tests)")] = None,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes")] = 2,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, cpu (default: cuda when present)")] = None,
    runs_dir: Annotated[Path, typer.Option(help="where runs live")] = Path("runs"),
    summary: Annotated[bool, typer.Option("--summary", help="print every run's results.json side by side and exit")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Evaluate a pretrained encoder on a protocol: linear probe, k-NN or fine-tuning; top-1/top-5,
    per-class accuracy and a confusion matrix, saved in the run's results.json."""
    from s2i_cli.evaluate import EvaluateError, results_table, summary_table
    from s2i_cli.evaluate import evaluate as run_evaluation
    from s2i_cli.store import StoreError

    out = Console()
    try:
        if summary:
            out.print(summary_table(runs_dir))
            return
        entry = run_evaluation(protocol=protocol, run=run, store=store, mode=mode, fraction=fraction, seed=seed,
                               init=init, model=model, runs_root=runs_dir, pool=pool, k=k, temperature=temperature,
                               epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                               layer_decay=layer_decay, drop_path=drop_path, label_smoothing=label_smoothing,
                               mixup=mixup, cutmix=cutmix, warmup_epochs=warmup_epochs, workers=workers,
                               device=device, resume=resume, overwrite=overwrite, max_steps=max_steps,
                               progress=progress, console=console)
    except (EvaluateError, StoreError) as exc:
        fail(str(exc))
    out.print(results_table(entry))
    console.print(f"results: {Path(entry['out_dir']) / 'results.json'}")


if __name__ == "__main__":
    app()
