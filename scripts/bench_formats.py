"""Benchmark the PKU-MMD, NW-UCLA, Kinetics-skeleton and Toyota readers (not a test): parse
throughput (MB/s of input, samples/s) of `read_items` on the real sample files replicated
to a few hundred files, against a plain-Python reader of the same files measured in the
same run (what the usual preprocessing scripts do), single-threaded and with a thread pool.

Toyota has no real sample: its files are written here in the documented layout (300 frames,
one or two LCR-Net detections a frame).

    .venv/bin/python scripts/bench_formats.py [--files 300] [--threads 8] [--json out.json]

`--importers MB` measures instead the importers' peak memory against the input file's size:
a pyskl-style NTU 3D pickle (float16, protocol 2) and a CTR-GCN .npz of about MB megabytes
each are written, then each step runs in a fresh process that reports its peak resident
memory above what the imports took: plain `pickle.load` and `np.load(...)["x_train"]` (what
the usual feeders do: the baseline), s2i's discovery, one shard's `read_items`, and a whole
`s2i convert` (64 px images).

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


# --------------------------------------------------------------------------- importers: peak memory

def importer_files(out: Path, mb: float, seed: int = 0) -> tuple[Path, Path]:
    """A pyskl NTU 3D pickle and a CTR-GCN NTU60_CS.npz of about `mb` MB each: smooth random
    walks in camera coordinates (x, y within a metre, z 2-4 m), 1-2 persons, 30-300 frames."""
    import pickle

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    annotations, size, k = [], 0, 0
    while size < mb * 1e6 * 0.67:  # protocol 2 stores float16 bytes as UTF-8: ~1.5 bytes a byte
        m, t = int(rng.integers(1, 3)), int(rng.integers(30, 301))
        walk = np.cumsum(rng.normal(0, 0.01, size=(m, t, 25, 3)), axis=1) + [0.0, 0.0, 3.0]
        name = f"S{1 + k // 120:03d}C00{1 + k % 3}P{1 + k % 40:03d}R001A{1 + k % 60:03d}"  # all different
        annotations.append({"frame_dir": name, "label": k % 60, "total_frames": t, "img_shape": (1080, 1920),
                            "keypoint": walk.astype(np.float16)})
        size += walk.size * 2
        k += 1
    pkl = out / "ntu60_3danno.pkl"
    names = [a["frame_dir"] for a in annotations]
    with open(pkl, "wb") as f:
        pickle.dump({"split": {"xsub_train": names[::2], "xsub_val": names[1::2]}, "annotations": annotations}, f,
                    protocol=2)
    n = max(1, int(mb * 1e6 / (300 * 150 * 4)))
    x = np.zeros((n, 300, 150), np.float32)
    for i in range(n):
        t = int(rng.integers(30, 301))
        x[i, :t, :75] = np.cumsum(rng.normal(0, 0.01, size=(t, 75)), axis=0)
    npz = out / "NTU60_CS.npz"
    np.savez(npz, x_train=x[: n // 2], y_train=np.eye(60)[np.arange(n // 2) % 60],
             x_test=x[n // 2:], y_test=np.eye(60)[np.arange(n - n // 2) % 60])
    return pkl, npz


def _peak_step(step: str, path: str, out: str) -> tuple[float, float, str]:
    """Run one step in this (fresh) process: (peak RSS MB above the imports', seconds, note)."""
    import pickle

    from s2i_cli.convert.flow import convert
    from s2i_cli.formats import get_format

    def status(key: str) -> float:  # MB, from /proc/self/status (Linux)
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
        return int(line.split()[1]) / 1e3

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current size, past the imports
    name = "pyskl" if path.endswith(".pkl") else "ctrgcn"
    fmt = get_format(name)
    base, t0, note = status("VmRSS"), time.perf_counter(), ""
    if step == "baseline":  # what the usual feeders do
        if name == "pyskl":
            with open(path, "rb") as f:
                note = f"{len(pickle.load(f)['annotations'])} samples"
        else:
            note = f"x_train {np.load(path)['x_train'].shape}"
    elif step == "discover":
        items = fmt.discover(Path(path))[0]
        note = f"{len(items)} items"
    elif step == "shard":  # one shard read in a process that did not discover (a worker)
        items = pickle.loads(Path(out).read_bytes())
        seqs = fmt.read_items(items[0].path, b"", items)
        note = f"{len(seqs)} samples read"
    elif step == "convert":
        report = convert(name, Path(path), Path(out), size=64, progress=False, overwrite=True)
        note = f"{report.written} samples written"
    return status("VmHWM") - base, time.perf_counter() - t0, note


def bench_importers(mb: float) -> list[dict]:
    import pickle
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from s2i_cli.formats import get_format

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pkl, npz = importer_files(Path(tmp), mb)
        for path in (pkl, npz):
            name = "pyskl" if path == pkl else "ctrgcn"
            fmt = get_format(name)
            shard = Path(tmp) / f"{name}.items"
            items = fmt.discover(path)[0]  # the parent's discovery: its spill file serves the shard step
            shard.write_bytes(pickle.dumps(items[:256]))
            size = path.stat().st_size / 1e6
            for step in ("baseline", "discover", "shard", "convert"):
                target = str(shard) if step == "shard" else str(Path(tmp) / f"{name}.zarr")
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    extra, seconds, note = pool.submit(_peak_step, step, str(path), target).result()
                rows.append({"format": name, "step": step, "file_mb": size, "peak_mb": extra,
                             "peak_per_file": extra / size, "seconds": seconds, "note": note})
            del fmt, items
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=300, help="replicated files per dataset")
    ap.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1), help="threads for the pooled run")
    ap.add_argument("--seconds", type=float, default=2.0, help="minimum timing per measurement")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--importers", type=float, metavar="MB",
                    help="measure the pyskl / ctrgcn importers' peak memory on files of about MB megabytes instead")
    args = ap.parse_args()
    if args.importers:
        rows = bench_importers(args.importers)
        print(f"{'format':7} {'step':9} {'file MB':>8} {'peak MB':>8} {'peak/file':>9} {'s':>6}  note")
        for r in rows:
            print(f"{r['format']:7} {r['step']:9} {r['file_mb']:8.0f} {r['peak_mb']:8.0f} {r['peak_per_file']:9.2f} "
                  f"{r['seconds']:6.1f}  {r['note']}")
        base = {r["format"]: r["peak_mb"] for r in rows if r["step"] == "baseline"}
        for r in rows:
            if r["step"] == "convert":
                print(f"{r['format']}: whole convert peak / baseline load peak = {r['peak_mb'] / base[r['format']]:.2f}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return
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
