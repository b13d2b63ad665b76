"""Benchmark NTU conversion (not a test). Every ratio is against a baseline measured in the
same run, on the same files:

- parse MB/s of the Numba kernel against a plain-Python `str.split` reader;
- end to end: `s2i convert` (all cores, one shard task per worker process) against the
  plain-Python parse-only reader (read + parse every file, one process; target >= 3x);
- `--workers N` (all cores) against `--workers 1` (target >= 1.7x on 2 cores), beside the
  machine's ceiling for it: N `--workers 1` conversions side by side against one, back to back;
- peak memory of a conversion of N and 4N files, the parent and the largest worker
  (it must not grow with N), joint alone and with four streams;
- `--streams joint,bone,motion,bone-motion` against joint alone, all cores (the extra
  streams reuse the one parse; target < 2x): the median of `--repeats` back-to-back pairs,
  then where an extra stream's time goes (its encode and its images' shard write, per file)
  and the floor with the fastest compressor; `--streams-only` runs just this comparison.

The real sample files in ../shared/data/ntu are replicated under new sample names (as
symbolic links) to reach N files.

    .venv/bin/python scripts/bench_convert.py [--files 2625] [--size 224] [--shard 256] [--streams-only] [--repeats 3]
        [--finish-only]   (the finishing step's share: compacting skeleton/joints, format 4)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NTU = ROOT.parent / "shared" / "data" / "ntu"


def plain_python_read(data: bytes) -> list:
    """The baseline: what the usual preprocessing scripts do (ST-GCN's ntu_read_skeleton:
    split lines, float() every field)."""
    lines = data.decode().split("\n")
    pos, frames = 1, []
    for _ in range(int(lines[0])):
        count = int(lines[pos]); pos += 1
        bodies = []
        for _ in range(count):
            info = [float(v) for v in lines[pos].split()]; pos += 1
            joints = int(lines[pos]); pos += 1
            bodies.append((info, [[float(v) for v in lines[pos + j].split()] for j in range(joints)]))
            pos += joints
        frames.append(bodies)
    return frames


def replicate(files: list[Path], n: int, out: Path) -> None:
    """n symbolic links to the real files, named as distinct NTU120 samples."""
    out.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        src = files[k % len(files)]
        action = int(src.name[17:20])
        setup, subject, camera = 1 + k % 32, 1 + (k // 32) % 106, 1 + (k // (32 * 106)) % 3
        rep = 1 + k // (32 * 106 * 3)
        os.symlink(src, out / f"S{setup:03d}C{camera:03d}P{subject:03d}R{rep:03d}A{action:03d}.skeleton")


def bench_parse(files: list[Path], seconds: float = 3.0) -> tuple[float, float, float]:
    """MB/s of the plain reader, the kernel on one thread, and the kernel on all cores
    (threads: the kernel releases the GIL, as in `s2i convert`)."""
    from concurrent.futures import ThreadPoolExecutor

    from s2i_cli.formats.ntu import parse_skeleton

    blobs = [f.read_bytes() for f in files]
    parse_skeleton(blobs[0])  # compile / load the JIT cache outside the timing

    def rate(run_all) -> float:
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            run_all()
            done += sum(map(len, blobs))
        return done / (time.perf_counter() - t0) / 1e6

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        threaded = rate(lambda: list(pool.map(parse_skeleton, blobs)))
    return (rate(lambda: [plain_python_read(b) for b in blobs]), rate(lambda: [parse_skeleton(b) for b in blobs]),
            threaded)


def plain_read_all(raw: Path) -> tuple[float, float]:
    """Seconds (wall, CPU) for the baseline to read and parse every file under `raw` once."""
    t0, c0 = time.perf_counter(), time.process_time()
    for path in sorted(raw.iterdir()):
        plain_python_read(path.read_bytes())
    return time.perf_counter() - t0, time.process_time() - c0


def machine_ceiling(raw: Path, tmp: Path, args, cores: int) -> float:
    """What `cores` processes doing this work at once get from this machine right now: one
    single-process conversion (`--workers 1`), then `cores` of them side by side into stores
    of their own, back to back (the machine's speed drifts between minutes), as cores x the
    one's time over the slowest of them. A shared or virtual machine gives less than `cores`
    (memory traffic, clocks): the ceiling for `--workers N` vs `--workers 1`."""
    from concurrent.futures import ThreadPoolExecutor

    def run(k: int) -> float:
        return convert_in_subprocess(raw, tmp / f"side{k}.zarr", args.size, 1, args.shard)["seconds"]

    alone = run(0)
    with ThreadPoolExecutor(cores) as pool:
        together = list(pool.map(run, range(cores)))
    return cores * alone / max(together)


def convert_in_subprocess(raw: Path, out: Path, size: int, workers: int, shard: int,
                          streams: tuple[str, ...] = ("joint",)) -> dict:
    """One `convert` in a fresh process (cold start included, as a user runs it). Peak memory:
    the parent's, and the largest of the worker processes' (each reports its own)."""
    code = (
        "import json, resource, sys, time; from pathlib import Path; from s2i_cli.convert.flow import convert;"
        f"t=time.perf_counter(); r=convert('ntu120', Path({str(raw)!r}), Path({str(out)!r}), size={size}, "
        f"workers={workers}, shard={shard}, overwrite=True, progress=False, streams={streams!r});"
        "print(json.dumps({'files': r.written, 'seconds': time.perf_counter()-t, 'store_bytes': r.store_bytes,"
        " 'image_bytes': r.image_bytes, 'image_stored': r.image_stored,"
        " 'parent_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024,"
        " 'worker_mb': r.worker_rss_mb, 'task_cpu': r.task_cpu_seconds,"
        " 'parent_cpu': resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def slot_costs(store_dir: Path, tmp: Path, n: int = 100_000) -> None:
    """Rejected files keep their slots (docs/design.md §1). Measure what that costs for n
    samples (the `valid` array: bytes, and the read a loader does), against compacting: the
    images shifted by one slot into a fresh store, as an early bad file would force."""
    import zarr

    from s2i_cli import store

    valid = np.ones(n, dtype=bool)
    valid[np.random.default_rng(0).choice(n, n // 300, replace=False)] = False
    group = zarr.open_group(str(tmp / "valid.zarr"), mode="w")
    arr = group.create_array("valid", shape=(n,), dtype="bool", chunks=(store.SHARD,),
                             compressors=store._ARRAY_CODEC)
    arr[:] = valid
    t0 = time.perf_counter()
    store.valid_indices(group)
    read = time.perf_counter() - t0
    print(f"slots: `valid` for {n} samples ({n // 300} rejected): {arr.nbytes_stored() / 1e3:.0f} KB on disk, "
          f"read + indices {read * 1e3:.0f} ms")
    root = store.open_store(store_dir)
    images = root["images"]
    m = images.shape[0] - 1
    out = zarr.open_group(str(tmp / "compact.zarr"), mode="w").create_array(
        "images", shape=(m, *images.shape[1:]), dtype="uint8", chunks=images.chunks, shards=images.shards,
        compressors=store._IMAGE_CODEC)
    t0 = time.perf_counter()
    for a in range(0, m, store.SHARD):  # read shifted by one, write whole shards
        b = min(m, a + store.SHARD)
        out[a:b] = images[a + 1:b + 1]
    per = (time.perf_counter() - t0) / m
    print(f"compacting instead: images alone rewritten at {per * 1e3:.2f} ms per sample, "
          f"{per * n:.0f} s for {n} samples")


def bench_streams(raw: Path, tmp: Path, args, cores: int) -> None:
    """Four streams from the one parse against joint alone, same files, all cores: `args.repeats`
    pairs, each pair back to back (this machine's speed drifts between minutes), and their median."""
    from s2i_cli.encoder.streams import STREAMS

    warm = tmp / "warm"  # Numba compiles each kernel once after an install: not a cost of either side
    replicate(sorted(NTU.glob("*.skeleton")), 16, warm)
    convert_in_subprocess(warm, tmp / "warm.zarr", args.size, cores, args.shard, STREAMS)
    walls, cpus = [], []
    for _ in range(args.repeats):
        joint = convert_in_subprocess(raw, tmp / "joint.zarr", args.size, cores, args.shard)
        four = convert_in_subprocess(raw, tmp / "streams.zarr", args.size, cores, args.shard, STREAMS)
        walls.append(four["seconds"] / joint["seconds"])
        cpus.append(four["task_cpu"] / joint["task_cpu"])
        n = four["files"]
        print(f"convert --workers {cores} {n} files, joint only: {joint['seconds']:6.2f} s ({n / joint['seconds']:.1f} "
              f"files/s); --streams {','.join(STREAMS)}: {four['seconds']:6.2f} s ({n / four['seconds']:.1f} files/s), "
              f"largest worker {four['worker_mb']:.0f} MB vs {joint['worker_mb']:.0f} MB: {walls[-1]:.2f}x the wall "
              f"time, {cpus[-1]:.2f}x the tasks' CPU time")
    print(f"four streams vs joint alone, median of {len(walls)} pairs: {np.median(walls):.2f}x the wall time "
          f"(target < 2x), {np.median(cpus):.2f}x the tasks' CPU time (what idle cores would see); "
          f"store {four['store_bytes'] / joint['store_bytes']:.2f}x the bytes")
    stream_costs(tmp / "streams.zarr", joint["task_cpu"] / joint["files"], args.shard)


def stream_costs(store_dir: Path, joint_ms: float, shard: int, repeats: int = 3) -> None:
    """Where an extra stream's time goes, per file, in this process on one shard of stored
    skeletons (fastest of `repeats`): its encode (values, scale, quantise: `encode_many` with
    and without it) and its images' shard write through the store's codec, against a
    joint-only file's whole task (`joint_ms`: CPU seconds per file of the joint-only tasks
    above). Then the floor no codec choice gets under: the same encode plus raw LZ4, the
    fastest compressor measured (docs/design.md §3), with no store overhead at all."""
    import numcodecs
    import zarr

    from s2i_cli import store
    from s2i_cli.encoder.encoding import Encoding, encode_many
    from s2i_cli.formats import get_format
    from s2i_cli.encoder.streams import STREAMS

    root = store.open_store(store_dir)
    m = min(shard, int(root["images"].shape[0]))
    seqs, actors = store.read_skeletons(root, 0, m), list(root["actors"][:m])
    enc = Encoding(get_format("ntu120").skeleton, persons=root.attrs["s2i"]["persons"], norm=root.attrs["s2i"]["norm"])

    def fastest(work) -> float:
        best = np.inf
        for _ in range(repeats):
            t = time.process_time()
            work()
            best = min(best, time.process_time() - t)
        return best / m * 1e3  # ms per file

    extra = len(STREAMS) - 1
    encoded = encode_many(seqs, actors, enc, STREAMS, parallel=False)
    encode_ms = (fastest(lambda: encode_many(seqs, actors, enc, STREAMS, parallel=False))
                 - fastest(lambda: encode_many(seqs, actors, enc, ("joint",), parallel=False))) / extra
    out = zarr.open_group(str(store_dir.parent / "costs.zarr"), mode="w")
    schema = store.sample_schema(*root["images"].shape[2:], [], STREAMS)
    write_ms, lz4_ms = [], []
    for stream in STREAMS[1:]:
        path = store.stream_paths(stream)[0]
        images = encoded[stream][0]

        def write() -> None:
            store._create_array(out, path, schema[path], m, m, overwrite=True)
            with store._whole_chunk_writes(out):
                out[path][:] = images
        write_ms.append(fastest(write))
        lz4_ms.append(fastest(lambda: [numcodecs.LZ4().encode(image) for image in images]))
    write, lz4 = float(np.mean(write_ms)), float(np.mean(lz4_ms))
    print(f"an extra stream, per file: encode {encode_ms:.2f} ms + images' shard write {write:.2f} ms "
          f"({', '.join(f'{s} {w:.2f}' for s, w in zip(STREAMS[1:], write_ms))}) = {encode_ms + write:.2f} ms, "
          f"against {joint_ms * 1e3:.2f} ms for a joint-only file's whole task: four streams at "
          f"~{1 + extra * (encode_ms + write) / (joint_ms * 1e3):.2f}x; the floor with raw LZ4 ({lz4:.2f} ms "
          f"an image) and no store overhead: {1 + extra * (encode_ms + lz4) / (joint_ms * 1e3):.2f}x")


def bench_finish(raw: Path, tmp: Path, args, cores: int) -> None:
    """The finishing step's share of a conversion: compacting the skeleton frames (format 4)
    timed inside a whole `convert` in this process, against that conversion's wall time."""
    sys.path.insert(0, str(ROOT))
    from s2i_cli.convert.flow import convert
    from s2i_cli.store import writes

    real, spent = writes.compact_skeletons, []

    def timed(root) -> None:
        t0 = time.perf_counter()
        real(root)
        spent.append(time.perf_counter() - t0)

    writes.compact_skeletons = timed
    t0 = time.perf_counter()
    convert("ntu120", raw, tmp / "finish.zarr", size=args.size, shard=args.shard, workers=cores, progress=False)
    wall = time.perf_counter() - t0
    writes.compact_skeletons = real
    print(f"finishing: compacting the skeleton frames took {spent[0]:.2f} s of the {wall:.2f} s conversion "
          f"({100 * spent[0] / wall:.1f} %, target <= 10 %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2625,
                        help="N: files of the smaller conversion (the larger is 4N); 2,625 as issue 12 measured")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--shard", type=int, default=256, help="samples per shard (one task)")
    parser.add_argument("--streams-only", action="store_true", help="only compare four streams with joint alone")
    parser.add_argument("--repeats", type=int, default=3, help="back-to-back pairs of the streams comparison")
    parser.add_argument("--finish-only", action="store_true", help="only time the finishing step (frame compaction)")
    args = parser.parse_args()
    files = sorted(NTU.glob("*.skeleton"))
    if not files:
        sys.exit(f"no sample files in {NTU}")
    cores = os.cpu_count() or 1

    if args.streams_only or args.finish_only:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw"
            replicate(files, args.files, raw)
            (bench_streams if args.streams_only else bench_finish)(raw, Path(tmp), args, cores)
        return

    plain, kernel, threaded = bench_parse(files)
    print(f"parse  plain-Python str.split reader:      {plain:7.1f} MB/s")
    print(f"parse  s2i Numba kernel, 1 thread:         {kernel:7.1f} MB/s   ratio {kernel / plain:.1f}x")
    print(f"parse  s2i Numba kernel, {cores} threads:        {threaded:7.1f} MB/s   ratio {threaded / plain:.1f}x")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = args.files
        raw = tmp / f"raw{n}"
        replicate(files, n, raw)
        mb = sum(f.stat().st_size for f in raw.iterdir()) / 1e6
        base, base_cpu = plain_read_all(raw)
        print(f"baseline: plain-Python read + parse of {n} files ({mb:.0f} MB), 1 process: {base:6.2f} s "
              f"({n / base:6.1f} files/s), {base_cpu:.2f} CPU s")
        one = convert_in_subprocess(raw, tmp / "one.zarr", args.size, 1, args.shard)
        every = convert_in_subprocess(raw, tmp / "all.zarr", args.size, cores, args.shard)
        for label, r in ((f"--workers 1", one), (f"--workers {cores}", every)):
            print(f"convert {label:12s} {n} files, size {args.size}: {r['seconds']:6.2f} s  "
                  f"{r['files'] / r['seconds']:6.1f} files/s  {mb / r['seconds']:5.1f} MB/s  "
                  f"peak RSS parent {r['parent_mb']:.0f} MB, largest worker {r['worker_mb']:.0f} MB; CPU s: tasks "
                  f"{r['task_cpu']:.2f}, parent {r['parent_cpu']:.2f}")
        print(f"end to end, --workers {cores} vs the plain-Python parse-only reader: {base / every['seconds']:.2f}x "
              f"(target >= 3x)")
        print(f"--workers {cores} vs --workers 1: {one['seconds'] / every['seconds']:.2f}x (target >= 1.7x on 2 cores); "
              f"{cores} --workers 1 conversions side by side run at {machine_ceiling(raw, tmp, args, cores):.2f}x "
              "one (this machine's ceiling for that ratio)")
        # on a machine shared with other work, wall time measures the neighbours too: the CPU
        # seconds say what the same run would take on idle cores (tasks spread over the workers)
        idle = every["parent_cpu"] + every["task_cpu"] / cores
        print(f"CPU: tasks {every['task_cpu'] / n * 1e3:.2f} ms per file vs the plain reader's {base_cpu / n * 1e3:.2f}; "
              f"on {cores} idle cores the run would take ~{idle:.1f} s: {base_cpu / idle:.2f}x the plain reader's CPU "
              f"time, --workers {cores} vs 1 ~{one['parent_cpu'] / idle:.2f}x (--workers 1 runs its tasks in the parent)")
        print(f"load average during the run (other processes share this machine): {os.getloadavg()[0]:.1f}")
        print(f"image compression {every['image_bytes'] / every['image_stored']:.1f}x")
        slot_costs(tmp / "all.zarr", tmp)
        # before bench_streams: its per-stream costs run in this process, and Linux keeps a
        # process's peak RSS across exec, so a subprocess started after them reports this one's
        raw4 = tmp / f"raw{4 * n}"
        replicate(files, 4 * n, raw4)
        large = convert_in_subprocess(raw4, tmp / "large.zarr", args.size, cores, args.shard)
        print(f"convert --workers {cores} {4 * n} files: {large['files'] / large['seconds']:6.1f} files/s, peak RSS "
              f"parent {large['parent_mb']:.0f} MB, largest worker {large['worker_mb']:.0f} MB")
        print(f"peak memory 4N / N: parent {large['parent_mb'] / every['parent_mb']:.2f}, worker "
              f"{large['worker_mb'] / max(every['worker_mb'], 1):.2f} (flat in N means ~1.0)")
        from s2i_cli.encoder.streams import STREAMS
        small4, large4 = (convert_in_subprocess(r, tmp / f"mem{k}.zarr", args.size, cores, args.shard, STREAMS)
                          for k, r in ((1, raw), (4, raw4)))
        print(f"the same with --streams {','.join(STREAMS)}: peak RSS {small4['parent_mb']:.0f} -> "
              f"{large4['parent_mb']:.0f} MB parent, {small4['worker_mb']:.0f} -> {large4['worker_mb']:.0f} MB "
              f"largest worker: 4N / N {large4['parent_mb'] / small4['parent_mb']:.2f}, "
              f"{large4['worker_mb'] / max(small4['worker_mb'], 1):.2f}")
        bench_streams(raw, tmp, args, cores)

    bench_formats = ROOT / "scripts" / "bench_formats.py"
    if bench_formats.exists():
        subprocess.run([sys.executable, str(bench_formats)], check=False)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
