"""Benchmark `s2i export` (not a test): peak memory and time of writing CTR-GCN's .npz and
pyskl's pickle from a store, against the usual way measured in the same run: gather every
sample into the padded arrays / annotation list, then `np.savez` / `pickle.dump` (what
CTR-GCN's `seq_transformation.py` and pyskl's `ntu_preproc.py` do at their end).

A store of synthetic NTU60 samples is made first (`s2i synth` + `s2i convert`, 32 px, joint
stream); each step then runs in a fresh process that reports its peak resident memory above
what its imports took, and its wall time.

    .venv/bin/python scripts/bench_export.py [--samples 1500] [--keep DIR]"""
from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(kind: str, store: str, out: str) -> None:
    """One measured step, in this (fresh) process; prints a JSON line."""
    import zarr

    from s2i_cli import store as st
    from s2i_cli.export import Target, export
    from s2i_cli.export.ctrgcn import frame_rows
    from s2i_cli.export.pyskl import annotation
    from s2i_cli.export.samples import samples_at, side_samples

    root = st.open_store(store)
    base, t0 = peak_mb(), time.perf_counter()
    if kind == "s2i-ctrgcn":
        export(root, Path(out), Target.ctrgcn, "xsub")
    elif kind == "s2i-pyskl":
        export(root, Path(out), Target.pyskl, "xsub")
    elif kind == "whole-ctrgcn":  # the whole padded arrays, then np.savez
        arrays = {}
        for side in ("train", "test"):
            samples = list(side_samples(root, "xsub", side))
            arrays[f"x_{side}"] = np.stack([frame_rows(s.joints, 300) for s in samples])
            arrays[f"y_{side}"] = np.eye(60)[[s.label for s in samples]]
        np.savez(Path(out) / "NTU60_CS.npz", **arrays)
    elif kind == "whole-pyskl":  # the whole annotation list, then pickle.dump
        anns = [annotation(s, False) for s in samples_at(root, st.valid_indices(root))]
        with open(Path(out) / "ntu60.pkl", "wb") as f:
            pickle.dump({"split": {}, "annotations": anns}, f, protocol=4)
    print(json.dumps({"kind": kind, "seconds": time.perf_counter() - t0, "peak_mb": peak_mb() - base}))


def run_step(kind: str, store: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, __file__, "--step", kind, str(store), str(out)],
                            capture_output=True, text=True, check=True)
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["file_mb"] = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    return row


def make_store(work: Path, samples: int) -> Path:
    s2i = [sys.executable, "-m", "s2i_cli"]
    store = work / f"ntu-{samples}.zarr"
    if not store.exists():
        raw = work / f"raw-{samples}"
        subprocess.run(s2i + ["synth", "ntu60", str(raw), "--samples", str(samples)], check=True, capture_output=True)
        subprocess.run(s2i + ["convert", "ntu60", str(raw), str(store), "--size", "32", "--no-progress"],
                       check=True, capture_output=True)
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1500, help="N: the table is made at N and 4N samples")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--step", nargs=3, metavar=("KIND", "STORE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        return step(*args.step)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_export_"))
    print("synthetic NTU60 samples, protocol xsub; peak memory above the imports, fresh process each")
    print(f"{'samples':>7} {'step':<14} {'seconds':>8} {'peak MB':>8} {'file MB':>8}")
    rows = {}
    for n in (args.samples, 4 * args.samples):
        store = make_store(work, n)
        for kind in ("whole-ctrgcn", "s2i-ctrgcn", "whole-pyskl", "s2i-pyskl"):
            rows[n, kind] = r = run_step(kind, store, work / f"{kind}-{n}")
            print(f"{n:>7} {kind:<14} {r['seconds']:8.1f} {r['peak_mb']:8.0f} {r['file_mb']:8.0f}")
    n, big = args.samples, 4 * args.samples
    for fmt in ("ctrgcn", "pyskl"):
        w, s = rows[big, f"whole-{fmt}"], rows[big, f"s2i-{fmt}"]
        growth = rows[big, f"s2i-{fmt}"]["peak_mb"] / max(rows[n, f"s2i-{fmt}"]["peak_mb"], 1)
        print(f"{fmt} at {big} samples: peak memory {w['peak_mb'] / max(s['peak_mb'], 1):.1f}x lower than the "
              f"baseline, {w['seconds'] / s['seconds']:.2f}x its speed; s2i's peak at 4x the samples: {growth:.2f}x")


if __name__ == "__main__":
    main()
