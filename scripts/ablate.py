"""The ablation table: what the encoder learns from, factor by factor (docs/design.md §7).

    python scripts/ablate.py --mode cpu --out ablation          # minutes on a CPU, synthetic NTU60 (smoke run)
    python scripts/ablate.py --store ucla.zarr --protocol xview --out ablation-ucla   # a store you converted
    python scripts/ablate.py --raw nwucla ../shared/data/nwucla-full --protocol xview --fill zero,repeat
    python scripts/ablate.py --mode gpu --out ablation --init mae_pretrain_vit_base.pth   # a researcher's run

Where the images come from: `--store PATH`, a store you made with `s2i convert` (its fill and
norm are the store's; --fill/--norm cannot vary); `--raw DATASET RAWDIR`, raw files of any
dataset `s2i convert` reads, converted once per (fill, norm, stream) with `--layout aligned`
(part bands on the patch grid, which part masking needs); neither: `s2i synth ntu60` (the
synthetic smoke run). `--protocol` names the split (default: xsub for the synthetic set, else
the store's first protocol): pretraining uses its train side only, the probes its test side.

For every cell of the grid (masking x single-actor fill x normalisation x augmentation x stream
x initialisation: random, or `--init` weights such as MAE's mae_pretrain_vit_base.pth) and every
seed: pretrain on the protocol's train side, then the linear probe with `--fraction` (10 %) and
100 % of the labels (and `--knn`: the k-NN probe); beside it the same probes on a random-init
encoder over the same images. Seeds vary the pretraining (weights, masks, data order) and the
10 % label subset. Beside both, the same probe on each store's raw pixels (no encoder): how far
the classes are linearly separable already. Results: mean +- std over seeds of top-1 and mean
per-class accuracy, as a markdown table (ablation.md, with the command) and a bar chart
(ablation.png), plus every number in ablation.json.

Masking, augmentation and initialisation are pretraining options. Everything runs through the
`s2i` command line (one process; its option names are the interface), so the table measures
exactly what users run. Options of `s2i pretrain` the script does not set itself go through
`--pretrain-args "..."` (e.g. "--mask-ratio 0.9 --warmup-epochs 10").

--grid oat (default) varies one factor at a time around the first value of each list (the
base cell); --grid full runs every combination. --resume skips runs whose results exist."""
from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = {  # the two settings: CPU minutes, and a researcher's GPU run
    "cpu": dict(model="vit_tiny", size=80, samples=600, classes=10, epochs=80, batch=32, blr=1.5e-3,
                decoder=(128, 2, 4), probe_epochs=100, workers=0, threads=1),
    "gpu": dict(model="vit_small", size=224, samples=6000, classes=60, epochs=40, batch=256, blr=1.5e-4,
                decoder=(512, 8, 16), probe_epochs=100, workers=8, threads=None),
}
FRACTION = 0.1


@dataclass(frozen=True)
class Cell:
    masking: str
    fill: str
    norm: str
    augment: str
    stream: str
    init: str  # "random" or a weights path

    def name(self) -> str:
        init = "random" if self.init == "random" else Path(self.init).stem
        return f"{self.masking}-{self.fill}-{self.norm}-{self.augment.replace(',', '+')}-{self.stream}-{init}"

    def store_key(self) -> str:
        return f"{self.fill}-{self.norm}-{self.stream}"


def cells(lists: dict[str, list[str]], grid: str) -> list[Cell]:
    """Every combination (full), or the base cell and one factor changed at a time (oat)."""
    keys = list(lists)
    if grid == "full":
        return [Cell(**dict(zip(keys, combo))) for combo in itertools.product(*lists.values())]
    base = {k: v[0] for k, v in lists.items()}
    out = [Cell(**base)]
    for k in keys:
        out += [Cell(**{**base, k: v}) for v in lists[k][1:]]
    return out


def s2i(*args: object) -> None:
    """Run one `s2i` command in this process; a failure stops the ablation with its message."""
    from s2i_cli.cli import app

    argv = [str(a) for a in args]
    print("$ s2i " + " ".join(argv), flush=True)
    code = app(argv, standalone_mode=False)
    if code not in (None, 0):
        raise SystemExit(f"s2i {argv[0]} failed (exit {code})")


def results(folder: Path) -> dict[str, dict]:
    path = folder / "results.json"
    return json.loads(path.read_text())["results"] if path.exists() else {}


def scores(entry: dict) -> dict[str, float]:
    """Top-1 and mean per-class accuracy (Toyota's headline metric) of one results entry."""
    per_class = [a for a in entry["per_class"].values() if a is not None]
    return {"top1": 100 * entry["top1"], "mean_class": 100 * statistics.fmean(per_class)}


def probe(args: list[object], folder_of, seed: int, resume: bool, protocol: str, fraction: float,
          knn: bool = False) -> dict[str, dict[str, float]]:
    """The linear probe at 100 % and `fraction` of the labels (and the k-NN probe with every
    label when `knn`) on `protocol`; {"full": ..., "few": ..., ["knn": ...]}. folder_of() names
    the folder the results land in."""
    full_key, few_key, knn_key = f"{protocol}-linear", f"{protocol}-linear-f{fraction:g}-s{seed}", f"{protocol}-knn"
    have = results(folder_of())
    common = ["--protocol", protocol, "--seed", seed, "--no-progress"]
    if not (resume and full_key in have):
        s2i("evaluate", *args, "--mode", "linear", *common)
    if not (resume and few_key in have):
        s2i("evaluate", *args, "--mode", "linear", "--fraction", fraction, *common)
    if knn and not (resume and knn_key in have):
        s2i("evaluate", *args, "--mode", "knn", *common)
    have = results(folder_of())
    out = {"full": scores(have[full_key]), "few": scores(have[few_key])}
    if knn:
        out["knn"] = scores(have[knn_key])
    return out


def pixel_probe(store: Path, seeds: int, epochs: int, stream: str = "joint", protocol: str = "xsub",
                fraction: float = FRACTION) -> dict[str, dict[str, list[float]]]:
    """The same linear probe on the images' raw pixels (normalised as the encoders get them,
    flattened): no encoder at all. Where it is high, the classes are linearly separable in pixel
    space, a random-init encoder (random projections of its patches) keeps most of that, and what
    pretraining adds can only show where labels are few. {"few": ..., "full": ...} over seeds."""
    import numpy as np
    import torch

    from s2i_cli.train.loader import normalize
    from s2i_cli.eval.evaluate import random_subset
    from s2i_cli.eval.metrics import confusion_matrix, per_class_accuracy
    from s2i_cli.eval.probe import predict_linear, train_linear_head
    from s2i_cli.store import open_store, split_indices, stream_arrays

    root = open_store(store)
    train, test = split_indices(root, protocol, "train"), split_indices(root, protocol, "test")
    labels = np.asarray(root["label"][:], dtype=np.int64)
    classes = len(root.attrs["s2i"]["class_names"])
    images = np.asarray(stream_arrays(root, stream)[0][:])  # a CPU-mode store: tens of MB
    pixels = {side: normalize(torch.as_tensor(images[idx])).flatten(1).numpy()
              for side, idx in (("train", train), ("test", test))}
    out = {frac: {"top1": [], "mean_class": []} for frac in ("few", "full")}
    for seed in range(seeds):
        for frac, keep in (("few", random_subset(len(train), fraction, seed)), ("full", np.arange(len(train)))):
            head = train_linear_head(pixels["train"][keep], labels[train][keep], classes, epochs=epochs, seed=seed)
            pred = predict_linear(head, pixels["test"]).argmax(1)
            per_class = per_class_accuracy(confusion_matrix(pred, labels[test], classes))
            out[frac]["top1"].append(100 * float((pred == labels[test]).mean()))
            out[frac]["mean_class"].append(100 * float(np.nanmean(per_class)))
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float]) -> str:
    m, s = mean_std(values)
    return f"{m:.1f} ± {s:.1f}"


def table(rows: list[dict], seeds: int, setting: str, protocol: str = "xsub", fraction: float = FRACTION) -> str:
    pct = f"{100 * fraction:g} %"
    knn = any("knn" in r["pretrained"] for r in rows)
    cols = [f"{pct} top-1", f"{pct} mean-class", "100 % top-1", "100 % mean-class", f"random-init {pct}",
            "random-init 100 %", f"gain at {pct}"] + (["kNN", "random-init kNN"] if knn else []) + \
           [f"pixels {pct}", "pixels 100 %"]
    head = "| masking | fill | norm | augment | stream | init | " + " | ".join(cols) + " |"
    lines = [f"Linear probe, {protocol}, top-1 and mean per-class accuracy in %, mean ± std over {seeds} seeds; "
             f"{setting}.", "", head, "|" + " --- |" * (6 + len(cols))]
    for r in rows:
        c, p, b = r["cell"], r["pretrained"], r["random_init"]
        gain = [x - y for x, y in zip(p["few"]["top1"], b["few"]["top1"])]
        init = "random" if c["init"] == "random" else Path(c["init"]).name
        knn_cells = f"{fmt(p['knn']['top1'])} | {fmt(b['knn']['top1'])} | " if knn else ""
        lines.append(f"| {c['masking']} | {c['fill']} | {c['norm']} | {c['augment']} | {c['stream']} | {init} | "
                     f"{fmt(p['few']['top1'])} | {fmt(p['few']['mean_class'])} | {fmt(p['full']['top1'])} | "
                     f"{fmt(p['full']['mean_class'])} | {fmt(b['few']['top1'])} | {fmt(b['full']['top1'])} | "
                     f"{fmt(gain)} | {knn_cells}{fmt(r['pixels']['few']['top1'])} | "
                     f"{fmt(r['pixels']['full']['top1'])} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: Path, title: str, protocol: str = "xsub") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    bars = [("pretrained, 10 %", "pretrained", "few"), ("random init, 10 %", "random_init", "few"),
            ("pixels, 10 %", "pixels", "few"), ("pretrained, 100 %", "pretrained", "full"),
            ("random init, 100 %", "random_init", "full")]
    x = np.arange(len(rows))
    width = 0.16
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(rows) + 3), 5), dpi=100)
    for k, (label, who, frac) in enumerate(bars):
        stats = [mean_std(r[who][frac]["top1"]) for r in rows]
        ax.bar(x + (k - 2) * width, [m for m, _ in stats], width, yerr=[s for _, s in stats], capsize=3, label=label)
    ax.set_xticks(x, [r["name"].replace("-", "\n") for r in rows], fontsize=7)
    ax.set_ylabel(f"{protocol} linear-probe top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, 118)  # room for the legend above the bars
    ax.legend(fontsize=8, ncols=5, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def store_facts(store: Path) -> dict:
    """fill, norm, streams and protocols of an existing store (`--store`)."""
    from s2i_cli.store import open_store

    attrs = open_store(store).attrs["s2i"]
    return {"fill": attrs.get("fill", "unknown"), "norm": attrs.get("norm", "unknown"), "dataset": attrs.get("dataset", "?"),
            "streams": list(attrs.get("streams", ["joint"])), "protocols": list(attrs.get("protocols", []))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, default="cpu")
    p.add_argument("--out", type=Path, default=Path("ablation"))
    source = p.add_mutually_exclusive_group()
    source.add_argument("--store", type=Path, help="an existing store (s2i convert's OUT): its images, fill and norm")
    source.add_argument("--raw", nargs=2, metavar=("DATASET", "RAWDIR"),
                        help="raw files of DATASET (any `s2i convert` reads) to convert, one store per fill x norm x "
                             "stream (default: `s2i synth ntu60` into OUT/raw)")
    p.add_argument("--protocol", help="split protocol (default: xsub for the synthetic set, else the store's first)")
    p.add_argument("--fraction", type=float, default=FRACTION, help="the few-label probe's share of the train labels")
    p.add_argument("--knn", action="store_true", help="also the k-NN probe (every label) on the same features")
    p.add_argument("--grid", choices=("oat", "full"), default="oat")
    p.add_argument("--masking", default="random,tube,frames,parts")
    p.add_argument("--fill", default="zero,repeat")
    p.add_argument("--norm", default="channel,isotropic,dataset")
    p.add_argument("--augment", default="none,all", help="values of --augment, separated by ';' (e.g. none;rotate,crop)")
    p.add_argument("--stream", default="joint", help="image streams: joint, bone, motion, bone-motion (comma-separated)")
    p.add_argument("--init", default="random", help="random and/or weights files, comma-separated")
    p.add_argument("--seeds", type=int, default=2)
    for key in ("samples", "classes", "epochs", "batch", "size", "probe_epochs", "workers", "threads"):
        p.add_argument(f"--{key.replace('_', '-')}", type=int, help=f"override the mode's {key}")
    p.add_argument("--model", help="override the mode's encoder")
    p.add_argument("--blr", type=float, help="override the mode's base learning rate")
    p.add_argument("--decoder", help="override the mode's decoder: DIM,DEPTH,HEADS (e.g. 128,2,4)")
    p.add_argument("--pretrain-args", default="", help="more `s2i pretrain` options, one string "
                                                       "(e.g. \"--mask-ratio 0.9 --warmup-epochs 10\")")
    p.add_argument("--resume", action="store_true", help="skip runs and probes whose results exist")
    args = p.parse_args()
    cfg = dict(MODES[args.mode])
    for key in ("samples", "classes", "epochs", "batch", "size", "probe_epochs", "workers", "threads", "model", "blr"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.decoder:
        cfg["decoder"] = tuple(int(v) for v in args.decoder.split(","))
        if len(cfg["decoder"]) != 3:
            p.error("--decoder takes DIM,DEPTH,HEADS")
    if not 0 < args.fraction < 1:
        p.error("--fraction must lie in (0, 1)")
    if cfg["threads"]:  # measured: on 2 shared cores, 2 intra-op threads stall for seconds per step; 1 does not
        import torch
        torch.set_num_threads(cfg["threads"])
    extra = shlex.split(args.pretrain_args)
    lists = {"masking": args.masking.split(","), "fill": args.fill.split(","), "norm": args.norm.split(","),
             "augment": args.augment.split(";"), "stream": args.stream.split(","), "init": args.init.split(",")}
    facts = None
    if args.store is not None:  # the store's images: its fill and norm, whatever the lists say
        if not (args.store / "zarr.json").exists():
            p.error(f"--store {args.store}: not an s2i store (no zarr.json)")
        facts = store_facts(args.store)
        lists["fill"], lists["norm"] = [facts["fill"]], [facts["norm"]]
        missing = [s for s in lists["stream"] if s not in facts["streams"]]
        if missing:
            p.error(f"--store {args.store} has no {', '.join(missing)} stream: add it with `s2i encode`")
    protocol = args.protocol or ("xsub" if facts is None and args.raw is None else
                                 facts["protocols"][0] if facts and facts["protocols"] else "xsub")
    grid = cells(lists, args.grid)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    model = (f"{cfg['model']}, {cfg['size']} px, decoder {cfg['decoder'][0]}x{cfg['decoder'][1]}, {cfg['epochs']} "
             f"epochs, batch {cfg['batch']}, blr {cfg['blr']:g}" + (f", {' '.join(extra)}" if extra else ""))
    if args.store is not None:
        model = model.replace(f", {cfg['size']} px", "")  # the store's size
        setting = f"{args.mode} mode: {model}; store {args.store} ({facts['dataset']}), protocol {protocol}"
    elif args.raw is not None:
        setting = f"{args.mode} mode: {model}; {args.raw[0]} from {args.raw[1]}, protocol {protocol}"
    else:
        setting = (f"{args.mode} mode: {model}; synthetic NTU60 {cfg['samples']} samples / {cfg['classes']} classes "
                   f"(a smoke run, not evidence)")
    print(f"ablation: {len(grid)} cells x {args.seeds} seeds ({setting})", flush=True)

    stores = {}
    if args.store is not None:
        stores = {cell.store_key(): args.store for cell in grid}
    else:
        dataset, raw = ("ntu60", out / "raw") if args.raw is None else (args.raw[0], Path(args.raw[1]))
        if args.raw is None and not (args.resume and raw.exists()):
            s2i("synth", "ntu60", raw, "--samples", cfg["samples"], "--classes", cfg["classes"], "--seed", 0)
        for cell in grid:
            key = cell.store_key()
            if key in stores:
                continue
            stores[key] = out / "stores" / f"{key}.zarr"
            if not (args.resume and (stores[key] / "zarr.json").exists()):
                stream = [] if cell.stream == "joint" else ["--streams", f"joint,{cell.stream}"]
                s2i("convert", dataset, raw, stores[key], "--size", cfg["size"], "--layout", "aligned", "--fill",
                    cell.fill, "--norm", cell.norm, "--overwrite", "--no-progress", *stream)

    pixels = {}  # the pixel-space reference of each store (and stream)
    for cell in grid:
        if cell.store_key() not in pixels:
            pixels[cell.store_key()] = pixel_probe(stores[cell.store_key()], args.seeds, cfg["probe_epochs"],
                                                   cell.stream, protocol, args.fraction)
    rows = []
    dim, depth, heads = cfg["decoder"]
    for cell in grid:
        store = stores[cell.store_key()]
        row = {"name": cell.name(), "cell": asdict(cell), "pretrained": {}, "random_init": {},
               "pixels": pixels[cell.store_key()]}
        per_seed = {"pretrained": [], "random_init": []}
        for seed in range(args.seeds):
            run = out / "runs" / f"{cell.name()}-s{seed}"
            if not (args.resume and (run / "checkpoint-last.pt").exists()):
                init = [] if cell.init == "random" else ["--init", cell.init]
                stream = [] if cell.stream == "joint" else ["--stream", cell.stream]
                s2i("pretrain", store, "--run-dir", run, "--model", cfg["model"], "--epochs", cfg["epochs"],
                    "--batch-size", cfg["batch"], "--blr", cfg["blr"], "--decoder-dim", dim, "--decoder-depth", depth,
                    "--decoder-heads", heads, "--protocol", protocol, "--seed", seed, "--masking", cell.masking,
                    "--augment", cell.augment, "--workers", cfg["workers"], "--no-progress", *init, *stream, *extra)
            per_seed["pretrained"].append(probe(["--run", run, "--epochs", cfg["probe_epochs"]], lambda: run, seed,
                                                args.resume, protocol, args.fraction, args.knn))
            # the same probe on a random-init encoder over the same images, one folder per seed
            base = out / "baselines" / f"{cell.store_key()}-s{seed}"
            per_seed["random_init"].append(probe(["--run", "none", "--store", store, "--model", cfg["model"],
                                                  "--stream", cell.stream, "--epochs", cfg["probe_epochs"],
                                                  "--runs-dir", base],
                                                 lambda: next(base.glob("*-scratch-*"), base), seed, args.resume,
                                                 protocol, args.fraction, args.knn))
        for who in per_seed:
            row[who] = {frac: {metric: [s[frac][metric] for s in per_seed[who]] for metric in ("top1", "mean_class")}
                        for frac in per_seed[who][0]}
        rows.append(row)
        (out / "ablation.json").write_text(json.dumps({"setting": setting, "protocol": protocol, "config": cfg,
                                                       "rows": rows}, indent=2))

    minutes = (time.time() - started) / 60
    md = table(rows, args.seeds, setting, protocol, args.fraction) + \
        f"\nWall time {minutes:.0f} min. Command: `python scripts/ablate.py {shlex.join(sys.argv[1:])}`\n"
    (out / "ablation.md").write_text(md)
    chart(rows, out / "ablation.png", setting, protocol)
    print(md, flush=True)
    print(f"wrote {out / 'ablation.md'}, {out / 'ablation.png'}, {out / 'ablation.json'}")


if __name__ == "__main__":
    main()
