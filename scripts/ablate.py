"""The ablation table: what the encoder learns from, factor by factor (docs/design.md §7).

    python scripts/ablate.py --mode cpu --out ablation          # minutes on a CPU, synthetic NTU60
    python scripts/ablate.py --mode gpu --out ablation --init mae_pretrain_vit_base.pth   # a researcher's run
    python scripts/ablate.py --mode cpu --grid full --masking random,tube --fill zero,repeat

For every cell of the grid (masking x single-actor fill x normalisation x augmentation x stream
x initialisation: random, or `--init` weights such as MAE's mae_pretrain_vit_base.pth) and every
seed: pretrain on the xsub train side, then the xsub linear probe with 10 % and 100 % of the
labels; beside it the same probes on a random-init encoder over the same images. Seeds vary the
pretraining (weights, masks, data order) and the 10 % label subset. Beside both, the same probe on
each store's raw pixels (no encoder): how far the classes are linearly separable already. Results: mean +- std over
seeds of top-1 and mean per-class accuracy, as a markdown table (ablation.md) and a bar chart
(ablation.png), plus every number in ablation.json.

Fill and normalisation are properties of the images, so each (fill, norm) gets its own store,
converted once from the same raw files with `--layout aligned` (part bands on the patch grid,
which part masking needs; the same layout in every cell). Masking, augmentation and
initialisation are pretraining options. Everything runs through the `s2i` command line (one
process; its option names are the interface), so the table measures exactly what users run.

--grid oat (default) varies one factor at a time around the first value of each list (the
base cell); --grid full runs every combination. --resume skips runs whose results exist."""
from __future__ import annotations

import argparse
import itertools
import json
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


def probe(args: list[object], folder_of, seed: int, resume: bool) -> dict[str, dict[str, float]]:
    """The xsub linear probe at 100 % and FRACTION of the labels; {"full": ..., "few": ...};
    folder_of() names the folder the results land in."""
    few_key = f"xsub-linear-f{FRACTION:g}-s{seed}"
    folder = folder_of()
    have = results(folder)
    if not (resume and "xsub-linear" in have):
        s2i("evaluate", *args, "--protocol", "xsub", "--mode", "linear", "--seed", seed, "--no-progress")
    if not (resume and few_key in have):
        s2i("evaluate", *args, "--protocol", "xsub", "--mode", "linear", "--seed", seed, "--fraction", FRACTION,
            "--no-progress")
    have = results(folder_of())
    return {"full": scores(have["xsub-linear"]), "few": scores(have[few_key])}


def pixel_probe(store: Path, seeds: int, epochs: int, stream: str = "joint") -> dict[str, dict[str, list[float]]]:
    """The same xsub linear probe on the images' raw pixels (normalised as the encoders get them,
    flattened): no encoder at all. Where it is high, the classes are linearly separable in pixel
    space, a random-init encoder (random projections of its patches) keeps most of that, and what
    pretraining adds can only show where labels are few. {"few": ..., "full": ...} over seeds."""
    import numpy as np
    import torch

    from s2i_cli.data import normalize
    from s2i_cli.evaluate import random_subset
    from s2i_cli.metrics import confusion_matrix, per_class_accuracy
    from s2i_cli.probe import predict_linear, train_linear_head
    from s2i_cli.store import open_store, split_indices, stream_arrays

    root = open_store(store)
    train, test = split_indices(root, "xsub", "train"), split_indices(root, "xsub", "test")
    labels = np.asarray(root["label"][:], dtype=np.int64)
    classes = len(root.attrs["s2i"]["class_names"])
    images = np.asarray(stream_arrays(root, stream)[0][:])  # a CPU-mode store: tens of MB
    pixels = {side: normalize(torch.as_tensor(images[idx])).flatten(1).numpy()
              for side, idx in (("train", train), ("test", test))}
    out = {frac: {"top1": [], "mean_class": []} for frac in ("few", "full")}
    for seed in range(seeds):
        for frac, keep in (("few", random_subset(len(train), FRACTION, seed)), ("full", np.arange(len(train)))):
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


def table(rows: list[dict], seeds: int, setting: str) -> str:
    head = ("| masking | fill | norm | augment | stream | init | 10 % top-1 | 10 % mean-class | 100 % top-1 "
            "| 100 % mean-class | random-init 10 % | random-init 100 % | gain at 10 % | pixels 10 % | pixels 100 % |")
    lines = [f"Linear probe, xsub, top-1 and mean per-class accuracy in %, mean ± std over {seeds} seeds; "
             f"{setting}.", "", head, "|" + " --- |" * 15]
    for r in rows:
        c, p, b = r["cell"], r["pretrained"], r["random_init"]
        gain = [x - y for x, y in zip(p["few"]["top1"], b["few"]["top1"])]
        init = "random" if c["init"] == "random" else Path(c["init"]).name
        lines.append(f"| {c['masking']} | {c['fill']} | {c['norm']} | {c['augment']} | {c['stream']} | {init} | "
                     f"{fmt(p['few']['top1'])} | {fmt(p['few']['mean_class'])} | {fmt(p['full']['top1'])} | "
                     f"{fmt(p['full']['mean_class'])} | {fmt(b['few']['top1'])} | {fmt(b['full']['top1'])} | "
                     f"{fmt(gain)} | {fmt(r['pixels']['few']['top1'])} | {fmt(r['pixels']['full']['top1'])} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: Path, title: str) -> None:
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
    ax.set_ylabel("xsub linear-probe top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, 118)  # room for the legend above the bars
    ax.legend(fontsize=8, ncols=5, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, default="cpu")
    p.add_argument("--out", type=Path, default=Path("ablation"))
    p.add_argument("--raw", type=Path, help="raw NTU60 files (default: `s2i synth ntu60` into OUT/raw)")
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
    p.add_argument("--resume", action="store_true", help="skip runs and probes whose results exist")
    args = p.parse_args()
    cfg = dict(MODES[args.mode])
    for key in ("samples", "classes", "epochs", "batch", "size", "probe_epochs", "workers", "threads", "model"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if cfg["threads"]:  # measured: on 2 shared cores, 2 intra-op threads stall for seconds per step; 1 does not
        import torch
        torch.set_num_threads(cfg["threads"])
    lists = {"masking": args.masking.split(","), "fill": args.fill.split(","), "norm": args.norm.split(","),
             "augment": args.augment.split(";"), "stream": args.stream.split(","), "init": args.init.split(",")}
    grid = cells(lists, args.grid)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    setting = (f"{args.mode} mode: {cfg['model']}, {cfg['size']} px, decoder {cfg['decoder'][0]}x{cfg['decoder'][1]}, "
               f"{cfg['epochs']} epochs, batch {cfg['batch']}, synthetic NTU60 {cfg['samples']} samples / "
               f"{cfg['classes']} classes" if args.raw is None else f"{args.mode} mode on {args.raw}")
    print(f"ablation: {len(grid)} cells x {args.seeds} seeds ({setting})", flush=True)

    raw = args.raw
    if raw is None:
        raw = out / "raw"
        if not (args.resume and raw.exists()):
            s2i("synth", "ntu60", raw, "--samples", cfg["samples"], "--classes", cfg["classes"], "--seed", 0)
    stores = {}
    for cell in grid:
        key = cell.store_key()
        if key in stores:
            continue
        stores[key] = out / "stores" / f"{key}.zarr"
        if not (args.resume and (stores[key] / "zarr.json").exists()):
            stream = [] if cell.stream == "joint" else ["--streams", f"joint,{cell.stream}"]
            s2i("convert", "ntu60", raw, stores[key], "--size", cfg["size"], "--layout", "aligned", "--fill",
                cell.fill, "--norm", cell.norm, "--overwrite", "--no-progress", *stream)

    pixels = {}  # the pixel-space reference of each store (and stream)
    for cell in grid:
        if cell.store_key() not in pixels:
            pixels[cell.store_key()] = pixel_probe(stores[cell.store_key()], args.seeds, cfg["probe_epochs"],
                                                   cell.stream)
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
                    "--decoder-heads", heads, "--protocol", "xsub", "--seed", seed, "--masking", cell.masking,
                    "--augment", cell.augment, "--workers", cfg["workers"], "--no-progress", *init, *stream)
            per_seed["pretrained"].append(probe(["--run", run, "--epochs", cfg["probe_epochs"]], lambda: run, seed,
                                              args.resume))
            # the same probe on a random-init encoder over the same images, one folder per seed
            base = out / "baselines" / f"{cell.store_key()}-s{seed}"
            per_seed["random_init"].append(probe(["--run", "none", "--store", store, "--model", cfg["model"],
                                                  "--stream", cell.stream, "--epochs", cfg["probe_epochs"],
                                                  "--runs-dir", base],
                                                 lambda: next(base.glob("*-scratch-*"), base), seed, args.resume))
        for who in per_seed:
            row[who] = {frac: {metric: [s[frac][metric] for s in per_seed[who]] for metric in ("top1", "mean_class")}
                        for frac in ("few", "full")}
        rows.append(row)
        (out / "ablation.json").write_text(json.dumps({"setting": setting, "config": cfg, "rows": rows}, indent=2))

    minutes = (time.time() - started) / 60
    md = table(rows, args.seeds, setting) + f"\nWall time {minutes:.0f} min. Command: `python scripts/ablate.py " \
                                            f"{' '.join(sys.argv[1:])}`\n"
    (out / "ablation.md").write_text(md)
    chart(rows, out / "ablation.png", setting)
    print(md, flush=True)
    print(f"wrote {out / 'ablation.md'}, {out / 'ablation.png'}, {out / 'ablation.json'}")


if __name__ == "__main__":
    main()
