"""The file system and the processes, attacked (issue 19): `--overwrite` pointed at raw data
and at things s2i did not make, hostile sample names, special and huge files, deep folders,
crafted stores and run directories, non-UTF-8 names, a `kill -9` of a conversion.

Each case runs the real CLI in a subprocess under a time limit and an address-space cap and
must end in one error line and a non-zero exit, or a correct conversion: never a traceback,
an abort (134) or a segmentation fault (139), a timeout, a write outside OUT and the current
folder, or a deleted file (a sentinel tree beside RAW is compared before and after).
Generators make the cases; S2I_ATTACK_EXAMPLES=N runs N of each generated kind (default:
a few, under a minute in all)."""
from __future__ import annotations

import hashlib
import os
import random
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.samples import ntu_bytes, ntu_joints

EXAMPLES = int(os.environ.get("S2I_ATTACK_EXAMPLES", "0"))  # 0: the quick setting
MEMORY_CAP = 6 << 30  # address space of the CLI and its children (Numba and zarr reserve some)
TIME_LIMIT = 60.0


@dataclass
class Outcome:
    rc: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def s2i(*args: str | Path, cwd: Path, env: dict | None = None, timeout: float = TIME_LIMIT) -> Outcome:
    """The real CLI (`python -m s2i_cli.cli`) in `cwd`, capped; a timeout fails the test."""
    environment = {**os.environ, "COLUMNS": "200", **(env or {})}
    try:
        done = subprocess.run([sys.executable, "-m", "s2i_cli.cli", *map(str, args)], cwd=cwd, env=environment,
                              capture_output=True, timeout=timeout, preexec_fn=_cap_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"s2i {' '.join(map(str, args))} ran past {timeout:.0f} s")
    return Outcome(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))


def assert_sound(result: Outcome) -> None:
    """No crash of any kind; an error is one line."""
    assert result.rc not in (134, 139, -6, -9, -11), result.err[-2000:]
    assert "Traceback" not in result.err and "Traceback" not in result.out, result.err[-3000:]
    if result.rc >= 2:
        assert len(result.error_lines) == 1 and result.error_lines[0].startswith("error: "), result.err[-2000:]
        assert "\x1b" not in result.err, result.err


def assert_refused(result: Outcome, *words: str) -> None:
    assert_sound(result)
    assert result.rc == 2, result.err[-2000:]
    for word in words:
        assert word in result.err, result.err


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[str, bytes]]:
    """Every entry under `root` (not following links) but those under `skip`: kind and content digest."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not any((here / d) == s or s in (here / d).parents for s in skip)]
        for name in dirs + files:
            path = here / name
            if any(path == s or s in path.parents for s in skip):
                continue
            if path.is_symlink():
                seen[str(path)] = ("link", os.readlink(path).encode(errors="surrogateescape"))
            elif path.is_file():
                seen[str(path)] = ("file", hashlib.sha1(path.read_bytes()).digest())
            elif path.is_dir():
                seen[str(path)] = ("dir", b"")
            else:
                seen[str(path)] = ("special", b"")
    return seen


@dataclass
class Scene:
    """tmp_path laid out for one attack: RAW with NTU files, a sentinel tree of unrelated files
    beside it, and a working folder (the CLI's current folder)."""

    root: Path
    raw: Path
    work: Path

    def before(self) -> dict:
        return snapshot(self.root)

    def assert_untouched(self, before: dict, *outs: Path) -> None:
        """Nothing outside OUTs and the working folder was written, and nothing was deleted."""
        skip = (*outs, self.work)
        after = snapshot(self.root, skip)
        kept = {k: v for k, v in before.items() if not any(Path(k) == s or s in Path(k).parents for s in skip)}
        assert after == kept, (set(after) ^ set(kept)) or "a file changed"


def ntu_scene(root: Path, samples: int = 3, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    raw, work, sentinel = root / "raw", root / "work", root / "sentinel"
    for folder in (raw, work, sentinel / "deep" / "er"):
        folder.mkdir(parents=True)
    for k in range(samples):
        (raw / f"S001C001P{k + 1:03d}R001A{k % 60 + 1:03d}.skeleton").write_bytes(ntu_bytes(ntu_joints(rng, frames=4)))
    (raw / "notes.txt").write_text("unrelated notes beside the raw files")
    (sentinel / "keep.txt").write_text("must survive")
    (sentinel / "deep" / "er" / "keep.bin").write_bytes(bytes(range(256)))
    return Scene(root, raw, work)


def convert_args(raw: Path, out: Path | str, *extra: str, dataset: str = "ntu60") -> list:
    return ["convert", dataset, raw, out, "--size", "16", "--workers", "1", "--no-progress", *extra]


# --------------------------------------------------------------------------- --overwrite


def overwrite_targets(scene: Scene) -> list[tuple[str, Path]]:
    """OUTs that --overwrite must refuse: RAW itself and through a symlink, a folder holding
    RAW, one inside it, a folder of other files, a file, a symlink to a file, a dangling link,
    a folder with a zarr.json that is not an s2i store's."""
    root, raw = scene.root, scene.raw
    other = root / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    (root / "a-file").write_text("not a folder")
    (root / "raw-link").symlink_to(raw)
    (root / "file-link").symlink_to(root / "a-file")
    (root / "dangling").symlink_to(root / "nowhere")
    zarr_like = root / "zarr-like"
    zarr_like.mkdir()
    (zarr_like / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    (zarr_like / "data.bin").write_bytes(b"\0" * 10)
    return [("is RAW", raw), ("is RAW", root / "raw-link"), ("holds RAW", root), ("lies inside RAW", raw / "sub"),
            ("not an s2i store", other), ("not a folder", root / "a-file"), ("not a folder", root / "file-link"),
            ("symbolic link to nothing", root / "dangling"), ("not an s2i store", zarr_like)]


def test_overwrite_refuses_what_s2i_did_not_make(tmp_path):
    scene = ntu_scene(tmp_path)
    targets = overwrite_targets(scene)
    if not EXAMPLES:  # quick: RAW, the folder holding it and two others, drawn
        targets = targets[:3] + random.Random(0).sample(targets[3:], 2)
    before = scene.before()
    for words, out in targets:
        assert_refused(s2i(*convert_args(scene.raw, out, "--overwrite"), cwd=scene.work), words)
    for words, out in targets[:3]:  # without --overwrite too: a store there would mix with the raw files
        assert_refused(s2i(*convert_args(scene.raw, out), cwd=scene.work), words)
    scene.assert_untouched(before)


def test_overwrite_replaces_an_s2i_store_and_an_empty_folder(tmp_path):
    scene = ntu_scene(tmp_path)
    out, empty = tmp_path / "out.zarr", tmp_path / "empty"
    empty.mkdir()
    assert s2i(*convert_args(scene.raw, out), cwd=scene.work).rc == 0
    (out / "stray.txt").write_text("inside the store: goes with it")
    before = scene.before()
    for target in (out, empty):
        result = s2i(*convert_args(scene.raw, target, "--overwrite"), cwd=scene.work)
        assert_sound(result)
        assert result.rc == 0 and (target / "zarr.json").is_file(), result.err
    assert not (out / "stray.txt").exists()
    scene.assert_untouched(before, out, empty)
