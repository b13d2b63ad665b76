"""Collect the NW-UCLA xview numbers of docs/results.md from the runs' results.json (mean ± std over seeds).

    .venv/bin/python runs-log/collect.py      (run from the worktree root, after the commands in docs/results.md)"""
import glob, json, statistics, sys
from pathlib import Path


def top1(folder, key):
    p = Path(folder) / "results.json"
    if not p.exists():
        return None
    r = json.loads(p.read_text())["results"].get(key)
    return None if r is None else 100 * r["top1"]


def fmt(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.1f} (1 seed)"
    return f"{statistics.fmean(vals):.1f} ± {statistics.stdev(vals):.1f} ({len(vals)})"


def row(name, folders):
    """folders: one per seed (index = seed)."""
    full = [top1(f, "xview-linear") for f in folders]
    few = [top1(f, f"xview-linear-f0.1-s{s}") for s, f in enumerate(folders)]
    knn = [top1(f, "xview-knn") for f in folders]
    return f"| {name} | {fmt(full)} | {fmt(few)} | {fmt(knn)} |", full, few, knn


if __name__ == "__main__":
    print("| encoder | linear 100 % | linear 10 % | kNN |")
    print("| --- | --- | --- | --- |")
    for stream in ("joint", "bone", "motion", "bone-motion"):
        folders = [next(iter(glob.glob(f"exp/abl-ucla/baselines/repeat-isotropic-{stream}-s{s}/*-scratch-*")), "-")
                   for s in range(3)]
        print(row(f"random init, {stream}", folders)[0])
    for run in sys.argv[1:]:  # one pretraining run: 100 % and kNN once, 10 % over label-subset seeds 0-2
        _, full, few, knn = row(run, [run] * 3)
        print(f"| {run} | {fmt(full[:1])} | {fmt(few)} | {fmt(knn[:1])} |")
