"""Benchmark the PKU-MMD, NW-UCLA, Kinetics-skeleton and Toyota readers (not a test): parse
throughput (MB/s of input, samples/s) of `read_items` on the real sample files replicated
to a few hundred files, against a plain-Python reader of the same files measured in the
same run (what the usual preprocessing scripts do), single-threaded and with a thread pool.

Toyota has no real sample: its files are written here in the documented layout (300 frames,
one or two LCR-Net detections a frame).

    .venv/bin/python scripts/bench_formats.py [--files 300] [--threads 8] [--json out.json]

`scripts/bench_convert.py` can import `bench_format(name, files, threads)` (one row of the
table, a dict) and `replicate(name, files, out_dir)` (a raw folder of `files` samples for
an end-to-end `s2i convert` timing)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

DATASETS = ("pkummd", "nwucla", "kinetics", "toyota")


# --------------------------------------------------------------------------- plain-Python baselines

def plain_pkummd(data: bytes, intervals: list[tuple[int, int]]) -> list:
    rows = [[float(v) for v in line.split()] for line in data.decode().splitlines() if line.strip()]
    return [np.array(rows[a:b + 1], dtype=np.float32).reshape(-1, 2, 25, 3) for a, b in intervals]


def plain_nwucla(data: bytes) -> np.ndarray:
    return np.array(json.loads(data)["skeletons"], dtype=np.float32)


def plain_kinetics(data: bytes) -> np.ndarray:
    """ST-GCN feeder_kinetics.py style: per frame and person, fill an array; sort people by score."""
    doc = json.loads(data)
    frames = doc["data"]
    out = np.zeros((3, len(frames) + 1, 18, 11), dtype=np.float32)
    for frame in frames:
        t = frame["frame_index"]
        for m, person in enumerate(frame["skeleton"][:11]):
            out[0, t, :, m] = person["pose"][0::2]
            out[1, t, :, m] = person["pose"][1::2]
            out[2, t, :, m] = person["score"]
    order = (-out[2].sum(axis=1)).argsort(axis=1)
    for t, s in enumerate(order):
        out[:, t] = out[:, t][:, :, s]
    return out[..., :2]


def plain_toyota(data: bytes) -> np.ndarray:
    """The Toyota skeleton baseline's read_xyz style: a Python loop per joint."""
    doc = json.loads(data)
    out = np.zeros((2, len(doc["frames"]), 13, 3), dtype=np.float32)
    for t, frame in enumerate(doc["frames"]):
        for m, body in enumerate(frame[:2]):
            for j in range(13):
                out[m, t, j] = [body["pose3d"][j], body["pose3d"][j + 13], body["pose3d"][j + 26]]
    return out


# --------------------------------------------------------------------------- sample files

def toyota_files(out: Path, count: int = 4, frames: int = 300, seed: int = 0) -> list[Path]:
    """Made-up Toyota LCR-Net JSON files (planar pose3d), named like the release's."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        doc = {"frames": [], "njts": 13, "K": 2}
        for t in range(frames):
            people = []
            for m in range(1 + (t % 3 == 0)):
                pose = np.round(rng.normal(size=39), 6).tolist()
                people.append({"pose2d": np.round(rng.uniform(0, 640, 26), 3).tolist(), "pose3d": pose,
                               "cumscore": float(np.round(rng.uniform(1, 9), 4))})
            doc["frames"].append(people)
        path = out / f"Walk_p{3 + k:02d}_r00_v{k:02d}_c01.json"
        path.write_text(json.dumps(doc))
        paths.append(path)
    return paths


def sample_files(name: str, scratch: Path) -> list[Path]:
    if name == "pkummd":
        return sorted((DATA / "pkummd" / "phase1" / "skeleton").glob("*.txt"))
    if name == "nwucla":
        return sorted((DATA / "nwucla").glob("*.json"))
    if name == "kinetics":
        return sorted((DATA / "kinetics_skeleton" / "kinetics_val").glob("*.json"))
    return toyota_files(scratch / "toyota")


def replicate(name: str, files: int, out: Path) -> Path:
    """A raw folder of `files` samples (symbolic links to the sample files under new names)
    that `s2i convert NAME` reads; returns it."""
    from s2i_cli.formats.nwucla import ACTIONS

    out.mkdir(parents=True, exist_ok=True)
    src = sample_files(name, out.parent / f"_{out.name}_sources")  # generated Toyota files live beside RAW
    for k in range(files):
        s = src[k % len(src)]
        if name == "pkummd":
            (out / "skeleton").mkdir(exist_ok=True)
            (out / "label").mkdir(exist_ok=True)
            stem = f"{1 + k // 3:04d}-{'LMR'[k % 3]}"
            os.symlink(s, out / "skeleton" / f"{stem}.txt")
            os.symlink(DATA / "pkummd" / "phase1" / "label" / s.name, out / "label" / f"{stem}.txt")
        elif name == "nwucla":
            action = int(s.name[1:3])
            os.symlink(s, out / f"a{action:02d}_s{1 + k // 300:02d}_e{(k // 3) % 100:02d}_v{1 + k % 3:02d}.json")
            assert action in ACTIONS
        elif name == "kinetics":
            (out / "kinetics_val").mkdir(exist_ok=True)
            os.symlink(s, out / "kinetics_val" / f"v{k:010d}.json")
        else:
            os.symlink(s, out / f"Walk_p{3 + k % 20:02d}_r{k // 140:02d}_v{k % 7:02d}_c{1 + k % 7:02d}.json")
    if name == "kinetics":
        labels = json.loads((DATA / "kinetics_skeleton" / "kinetics_val_label_subset.json").read_text())
        entries = list(labels.values())
        (out / "kinetics_val_label.json").write_text(json.dumps(
            {f"v{k:010d}": entries[sorted(labels).index(src[k % len(src)].name[:-5])] for k in range(files)}))
    return out


# --------------------------------------------------------------------------- timing

def _jobs(name: str, files: list[Path], count: int):
    """(data, reader call, baseline call, samples) for `count` replicated files."""
    from s2i_cli.formats import get_format

    fmt = get_format(name)
    blobs = {f: f.read_bytes() for f in files}
    if name == "pkummd":
        items = {f: [it for it in fmt.discover(DATA / "pkummd")[0] if it.path.name == f.name] for f in files}
    jobs = []
    for k in range(count):
        f = files[k % len(files)]
        data = blobs[f]
        if name == "pkummd":
            its = items[f]
            jobs.append((data, lambda d=data, i=its: fmt.read_items(None, d, i),
                         lambda d=data, i=its: plain_pkummd(d, [it.extra[:2] for it in i]), len(its)))
        else:
            from s2i_cli.formats import Item
            from s2i_cli.formats.nwucla import ACTIONS

            item = Item(f.stem, f, ACTIONS.index(int(f.name[1:3])) if name == "nwucla" else 0)
            base = {"nwucla": plain_nwucla, "kinetics": plain_kinetics, "toyota": plain_toyota}[name]
            jobs.append((data, lambda d=data, i=item: fmt.read_items(None, d, [i]), lambda d=data: base(d), 1))
    return jobs


def _rate(calls, nbytes: int, samples: int, threads: int, min_seconds: float) -> tuple[float, float]:
    reps, elapsed = 0, 0.0
    t0 = time.perf_counter()
    while elapsed < min_seconds or reps == 0:
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda c: c(), calls))
        else:
            for c in calls:
                c()
        reps += 1
        elapsed = time.perf_counter() - t0
    return nbytes * reps / elapsed / 1e6, samples * reps / elapsed


def bench_format(name: str, files: int = 300, threads: int = 1, min_seconds: float = 2.0,
                 scratch: Path | None = None) -> dict:
    """Parse throughput of one reader and of its plain-Python baseline on `files` files."""
    with tempfile.TemporaryDirectory() as tmp:
        src = sample_files(name, Path(scratch or tmp))
        jobs = _jobs(name, src, files)
        for data, ours, base, _ in jobs[: len(src)]:  # warm up (JIT cache) and check both parse
            results = ours()
            assert not any(isinstance(r, Exception) for r in results), results
            base()
        nbytes = sum(len(j[0]) for j in jobs)
        samples = sum(j[3] for j in jobs)
        row = {"dataset": name, "files": files, "input_mb": nbytes / 1e6, "samples": samples}
        for threads_used in sorted({1, threads}):
            mb, sps = _rate([j[1] for j in jobs], nbytes, samples, threads_used, min_seconds)
            bmb, bsps = _rate([j[2] for j in jobs], nbytes, samples, threads_used, min_seconds)
            key = "" if threads_used == 1 else f"_{threads_used}t"
            row.update({f"mb_s{key}": mb, f"samples_s{key}": sps, f"plain_mb_s{key}": bmb,
                        f"plain_samples_s{key}": bsps, f"ratio{key}": mb / bmb})
        return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=300, help="replicated files per dataset")
    ap.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1), help="threads for the pooled run")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timing per measurement")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    rows = []
    print(f"{'dataset':9} {'files':>5} {'MB':>7} {'samples':>7} | {'ours MB/s':>9} {'samples/s':>9} | "
          f"{'plain MB/s':>10} {'samples/s':>9} | {'ratio':>5} | {args.threads}t MB/s  plain {args.threads}t  ratio")
    for name in args.datasets.split(","):
        r = bench_format(name, args.files, args.threads, args.seconds)
        rows.append(r)
        t = f"_{args.threads}t" if args.threads > 1 else ""
        print(f"{name:9} {r['files']:5d} {r['input_mb']:7.1f} {r['samples']:7d} | {r['mb_s']:9.1f} "
              f"{r['samples_s']:9.0f} | {r['plain_mb_s']:10.1f} {r['plain_samples_s']:9.0f} | {r['ratio']:5.1f} | "
              f"{r.get('mb_s' + t, r['mb_s']):9.1f}  {r.get('plain_mb_s' + t, r['plain_mb_s']):11.1f}  "
              f"{r.get('ratio' + t, r['ratio']):5.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
