"""Benchmark NTU conversion (not a test): parse MB/s of the Numba kernel against a plain
Python `str.split` reader measured in the same run, end-to-end `s2i convert` files/s with
all cores, and peak memory of a conversion of N and 4N files (it must not grow with N).

The real sample files in ../shared/data/ntu are replicated under new sample names (as
symbolic links) to reach N files.

    .venv/bin/python scripts/bench_convert.py [--files 500] [--size 224]
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


def convert_in_subprocess(raw: Path, out: Path, size: int) -> dict:
    code = (
        "import json, resource, sys, time; from pathlib import Path; from s2i_cli.convert import convert;"
        f"t=time.perf_counter(); r=convert('ntu120', Path({str(raw)!r}), Path({str(out)!r}), size={size}, overwrite=True, progress=False);"
        "print(json.dumps({'files': r.written, 'seconds': time.perf_counter()-t, 'store_bytes': r.store_bytes,"
        " 'image_bytes': r.image_bytes, 'image_stored': r.image_stored, 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500, help="N: files of the smaller conversion (the larger is 4N)")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    files = sorted(NTU.glob("*.skeleton"))
    if not files:
        sys.exit(f"no sample files in {NTU}")

    plain, kernel, threaded = bench_parse(files)
    print(f"parse  plain-Python str.split reader:      {plain:7.1f} MB/s")
    print(f"parse  s2i Numba kernel, 1 thread:         {kernel:7.1f} MB/s   ratio {kernel / plain:.1f}x")
    print(f"parse  s2i Numba kernel, {os.cpu_count()} threads:        {threaded:7.1f} MB/s   ratio {threaded / plain:.1f}x")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {}
        for n in (args.files, 4 * args.files):
            raw = tmp / f"raw{n}"
            replicate(files, n, raw)
            results[n] = convert_in_subprocess(raw, tmp / f"out{n}.zarr", args.size)
            r = results[n]
            mb = sum(f.stat().st_size for f in raw.iterdir()) / 1e6
            print(f"convert {n:5d} files ({mb:6.0f} MB, {os.cpu_count()} cores, size {args.size}): "
                  f"{r['files'] / r['seconds']:6.1f} files/s  {mb / r['seconds']:5.1f} MB/s  "
                  f"peak RSS {r['peak_rss_mb']:6.0f} MB  image compression {r['image_bytes'] / r['image_stored']:.1f}x")
        small, large = results[args.files], results[4 * args.files]
        print(f"peak memory 4N / N: {large['peak_rss_mb'] / small['peak_rss_mb']:.2f} (flat in N means ~1.0)")

    bench_formats = ROOT / "scripts" / "bench_formats.py"
    if bench_formats.exists():
        subprocess.run([sys.executable, str(bench_formats)], check=False)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
