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

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("S2I_ATTACK_EXAMPLES", "0"))  # 0: the quick setting
MEMORY_CAP = 6 << 30  # address space of the CLI and its children (Numba and zarr reserve some)
# a hang guard, not a timing: a cold CLI start on a loaded 2-core machine took over 60 s
TIME_LIMIT = float(os.environ.get("S2I_ATTACK_TIMEOUT", "300"))


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


# --------------------------------------------------------------------------- special, huge and hostile files

def _sample_name(k: int) -> str:
    return f"S001C001P{k:03d}R001A001"


def special_files(scene: Scene) -> list[tuple[str, str]]:
    """Files in RAW that must be skipped with a reason, unread, while the rest converts:
    (file name, a word of the reason). A FIFO (an open would block forever), /dev/zero and
    /dev/null behind a link (never ends / a device), a socket, a dangling link, a 2 GB sparse
    file (above the bound: never read), a folder named like a sample."""
    raw, made = scene.raw, []
    os.mkfifo(raw / f"{_sample_name(901)}.skeleton")
    made.append((f"{_sample_name(901)}.skeleton", "FIFO"))
    (raw / f"{_sample_name(902)}.skeleton").symlink_to("/dev/zero")
    made.append((f"{_sample_name(902)}.skeleton", "device"))
    (raw / f"{_sample_name(903)}.skeleton").symlink_to("/dev/null")
    made.append((f"{_sample_name(903)}.skeleton", "device"))
    (raw / f"{_sample_name(904)}.skeleton").symlink_to(raw / "nowhere")
    made.append((f"{_sample_name(904)}.skeleton", "cannot read"))
    with open(raw / f"{_sample_name(905)}.skeleton", "wb") as f:
        f.truncate(2 << 30)  # sparse: 2 GB that take no disk
    made.append((f"{_sample_name(905)}.skeleton", "MB bound"))
    import socket
    sock_path = raw / f"{_sample_name(906)}.skeleton"
    if len(str(sock_path)) < 100:  # AF_UNIX paths are short
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(sock_path))
        sock.close()
        made.append((f"{_sample_name(906)}.skeleton", "socket"))
    return made


def rejected_of(store: Path) -> dict[str, str]:
    import json
    attrs = json.loads((store / "zarr.json").read_text())["attributes"]["s2i"]
    return {r["name"]: r["reason"] for r in attrs["rejected"]}


def test_special_and_huge_files_are_skipped_with_a_reason(tmp_path):
    scene = ntu_scene(tmp_path)
    made = special_files(scene)
    if not EXAMPLES:  # quick: the FIFO, /dev/zero, the sparse file
        made = [m for m in made if m[1] in ("FIFO", "MB bound") or "902" in m[0]]
        for name in {p.name for p in scene.raw.iterdir()} - {m[0] for m in made}:
            if name.startswith("S001C001P9"):
                (scene.raw / name).unlink()
    before = scene.before()
    out = tmp_path / "out.zarr"
    result = s2i(*convert_args(scene.raw, out), cwd=scene.work)
    assert_sound(result)
    assert result.rc == 1, result.err  # the three good files converted, the rest rejected
    rejected = rejected_of(out)
    for name, word in made:
        reason = next((r for n, r in rejected.items() if n.endswith(name)), None)
        assert reason is not None and word in reason, (name, rejected)
    scene.assert_untouched(before, out)


def test_the_size_bound_is_raised_with_a_flag(tmp_path):
    scene = ntu_scene(tmp_path, samples=2)
    big = scene.raw / f"{_sample_name(7)}.skeleton"
    big.write_bytes(ntu_bytes(ntu_joints(np.random.default_rng(1), frames=30)))  # ~70 KB
    out = tmp_path / "out.zarr"
    refused = s2i(*convert_args(scene.raw, out, "--max-file-mb", "0.01"), cwd=scene.work)
    assert_sound(refused)
    assert refused.rc == 1 and "MB bound" in rejected_of(out)[str(big)], refused.err
    taken = s2i(*convert_args(scene.raw, out, "--overwrite", "--max-file-mb", "1"), cwd=scene.work)
    assert taken.rc == 0 and not rejected_of(out), taken.err
    assert_refused(s2i(*convert_args(scene.raw, tmp_path / "o2", "--max-file-mb", "0"), cwd=scene.work),
                   "--max-file-mb")


def test_fifo_in_pkummd_raw_does_not_hang(tmp_path):
    """A FIFO as a label file and one as a skeleton file: discovery opens label candidates."""
    from tests.samples import pku_bytes

    raw, work = tmp_path / "raw", tmp_path / "work"
    for folder in (raw / "skeleton", raw / "label", work):
        folder.mkdir(parents=True)
    rows = np.random.default_rng(0).normal(size=(20, 150)).astype(np.float32)
    (raw / "skeleton" / "0002-L.txt").write_bytes(pku_bytes(rows))
    (raw / "label" / "0002-L.txt").write_text("3,0,9,1\n")
    os.mkfifo(raw / "skeleton" / "0003-L.txt")
    (raw / "label" / "0003-L.txt").write_text("3,0,9,1\n")
    os.mkfifo(raw / "0004-M.txt")
    os.mkfifo(raw / "cross-subject.txt")
    out = tmp_path / "out.zarr"
    result = s2i(*convert_args(raw, out, dataset="pkummd"), cwd=work)
    assert_sound(result)
    assert result.rc == 1 and any("FIFO" in r for r in rejected_of(out).values()), result.err


def deep_raw(root: Path, levels: int) -> Path:
    """RAW with one sample `levels` folders down (and one at the top)."""
    raw = root / "raw"
    deep = str(raw)
    os.mkdir(deep)
    for _ in range(levels):  # one at a time: Path.mkdir(parents=True) recurses, once per level
        deep += "/d"
        os.mkdir(deep)
    deep = Path(deep)
    rng = np.random.default_rng(0)
    (deep / f"{_sample_name(1)}.skeleton").write_bytes(ntu_bytes(ntu_joints(rng, frames=4)))
    (raw / f"{_sample_name(2)}.skeleton").write_bytes(ntu_bytes(ntu_joints(rng, frames=4)))
    return raw


def remove_deep(top: Path) -> None:
    """Remove a deep tree bottom up, without recursion (shutil.rmtree, and so pytest's clean-up
    of old temporary folders, recurses once per level)."""
    folders = [str(top)]
    while True:
        inner = [e.path for e in os.scandir(folders[-1]) if e.is_dir(follow_symlinks=False)]
        if not inner:
            break
        folders += inner[:1]
    for folder in reversed(folders):
        for entry in os.scandir(folder):
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)
        os.rmdir(folder)


@pytest.mark.parametrize("dataset", ["ntu60", "pkummd", "kinetics"])
def test_a_raw_folder_1200_levels_deep(tmp_path, dataset):
    raw = deep_raw(tmp_path, 1200)
    (tmp_path / "work").mkdir()
    try:
        result = s2i(*convert_args(raw, tmp_path / "out.zarr", dataset=dataset), cwd=tmp_path / "work")
    finally:
        remove_deep(raw)
    assert_sound(result)
    if dataset == "ntu60":  # both found, the deep one too
        assert result.rc == 0, result.err
        import zarr
        assert sorted(map(str, zarr.open_group(tmp_path / "out.zarr", mode="r")["name"][:])) == \
            [_sample_name(1), _sample_name(2)]
    else:
        assert result.rc == 2, result.err


STRICT_UTF8 = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict", "PYTHONUTF8": "0"}


def hostile_names(scene: Scene) -> list[bytes]:
    """File names (bytes) that are not UTF-8, that hold terminal escape sequences, bidi
    overrides or rich markup, each with NTU-looking content; plus a non-UTF-8 folder holding
    a good sample."""
    raw = os.fsencode(scene.raw)
    data = ntu_bytes(ntu_joints(np.random.default_rng(5), frames=4))
    names = [b"S001C001P050R001A001\xff.skeleton", b"\xc3\x28bad.skeleton",
             b"\x1b]0;pwned\x07S001C001P051R001A001.skeleton", b"\x1b[2J\x1b[31mred.skeleton",
             "S001\u202eC001.skeleton".encode(), b"[blink]markup[bold red].skeleton", b"\r\nforged line.skeleton"]
    rng = random.Random(7)  # the long setting: EXAMPLES more, drawn from bytes that hurt
    alphabet = [bytes([c]) for c in (*range(1, 32), 127, *range(128, 256))] + [b"[", b"]", b"\\", b"..", b"%s", b"S001"]
    for k in range(EXAMPLES):
        names.append(b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) + b"%d.skeleton" % k)
    for name in names:
        with open(raw + b"/" + name, "wb") as f:
            f.write(data)
    os.mkdir(raw + b"/fold\xfeer")
    with open(raw + b"/fold\xfeer/S001C001P052R001A001.skeleton", "wb") as f:
        f.write(data)
    return names


def test_hostile_file_names_are_rejected_and_printed_escaped(tmp_path):
    scene = ntu_scene(tmp_path)
    names = hostile_names(scene)
    before = scene.before()
    out = tmp_path / "out.zarr"
    result = s2i(*convert_args(scene.raw, out), cwd=scene.work, env=STRICT_UTF8)
    assert_sound(result)
    assert result.rc == 1, result.err
    for text in (result.out, result.err):
        assert "\x1b" not in text and "\u202e" not in text and "\r" not in text.replace("\r\n", "\n"), text
    assert "\\x1b" in result.err + result.out and "\\udcff" in result.err + result.out
    assert len(rejected_of(out)) == len(names)
    info = s2i("info", out, "--all", cwd=scene.work, env=STRICT_UTF8)
    assert_sound(info)
    assert info.rc == 0 and "\x1b" not in info.out and "\\x1b" in info.out, info.err
    scene.assert_untouched(before, out)


def test_non_utf8_raw_and_out_paths(tmp_path):
    """RAW and OUT whose own names are not UTF-8: a conversion or one line, never a traceback."""
    scene = ntu_scene(tmp_path)
    raw = os.fsencode(tmp_path) + b"/r\xffaw"
    os.rename(scene.raw, raw)
    out = os.fsencode(tmp_path) + b"/o\xfeut.zarr"
    result = s2i(*convert_args(os.fsdecode(raw), os.fsdecode(out)), cwd=scene.work, env=STRICT_UTF8)
    assert_sound(result)
    assert result.rc in (0, 2), result.err
    if result.rc == 2:
        assert "\\udc" in result.err


# --------------------------------------------------------------------------- names that look like paths

def test_path_like_sample_names_are_rejected(tmp_path):
    """A pyskl file's frame_dir is a sample name: path separators, '..', control characters
    and undecodable bytes are rejected (the rest converts)."""
    import pickle

    from tests.samples import pyskl_doc

    doc = pyskl_doc(np.random.default_rng(0))
    bad = ["../../../x/y", "/etc/passwd", "a\\b", "..", "S001\x1b[31m", "S001\udcff", "x" * 300]
    template = doc["annotations"][0]
    doc["annotations"] += [{**template, "frame_dir": name} for name in bad]
    work = tmp_path / "work"
    work.mkdir()
    raw = tmp_path / "ntu60_3danno.pkl"
    raw.write_bytes(pickle.dumps(doc, protocol=4))
    out = tmp_path / "out.zarr"
    result = s2i(*convert_args(raw, out, "--reader-option", f"cache_dir={tmp_path / 'cache'}", dataset="pyskl"),
                 cwd=work)
    assert_sound(result)
    if result.rc == 2:  # the pickle reader refused the file: no store, a reason
        return
    assert result.rc == 1, result.err
    import zarr
    names = [str(n) for n in zarr.open_group(out, mode="r")["name"][:]]
    assert not any(n in names for n in bad) and len(names) == 3, names
    reasons = rejected_of(out)
    assert sum("sample name" in r for r in reasons.values()) >= len(bad) - 1, reasons


def test_show_writes_only_a_sanitised_name_in_the_current_folder(tmp_path):
    """A store whose names are paths (a downloaded one, or one edited by hand): `s2i show`
    writes NAME.png made plain, in the current folder, and nothing anywhere else."""
    import zarr

    scene = ntu_scene(tmp_path, samples=3)
    out = tmp_path / "out.zarr"
    assert s2i(*convert_args(scene.raw, out), cwd=scene.work).rc == 0
    root = zarr.open_group(out, mode="r+")
    hostile = ["../../sentinel/pwned", str(tmp_path / "abs" / "pwned"), "\x1b[31mred/.."]
    names = np.asarray(root["name"][:], dtype=object)
    names[: len(hostile)] = hostile
    root["name"][:] = names
    before = scene.before()
    for index in range(len(hostile)):
        result = s2i("show", out, "--index", str(index), cwd=scene.work)
        assert_sound(result)
        assert result.rc == 0, result.err
        assert "\x1b" not in result.err
    written = sorted(p.name for p in scene.work.iterdir())
    assert len(written) == len(hostile) and all("/" not in w and not w.startswith(".") for w in written), written
    assert not (tmp_path / "abs").exists()
    scene.assert_untouched(before, out)


# --------------------------------------------------------------------------- kill -9 of a conversion

def _descendants(pid: int) -> set[int]:
    try:
        import psutil
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except ImportError:  # /proc: children by parent pid, transitively
        found, frontier = set(), {pid}
        while frontier:
            parent, frontier = frontier, set()
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        continue
                    if ppid in parent and int(entry) not in found:
                        found.add(int(entry))
                        frontier.add(int(entry))
        return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for an init that may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_convert_leaves_no_process(tmp_path):
    """SIGKILL of `s2i convert --workers 2` mid-run: its forkserver, workers and resource
    tracker are all gone within 10 s (the parent-death signal and the workers' watchdogs)."""
    import signal
    import time

    from s2i_cli.formats.synth import synthesize
    from tests.stores import done_records

    raw, out = tmp_path / "raw", tmp_path / "out.zarr"
    synthesize("ntu60", raw, 120, seed=0)
    proc = subprocess.Popen([sys.executable, "-m", "s2i_cli.cli", *map(str, convert_args(raw, out)[:-3]),
                             "--workers", "2", "--shard-size", "1", "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            seen |= _descendants(proc.pid)
            if any(r.get("pid") not in (None, proc.pid) for r in done_records(out)):
                break  # a worker has converted a shard: the pool is up
            time.sleep(0.05)
        seen |= _descendants(proc.pid)
        assert proc.poll() is None, "the conversion ended before it could be killed"
        assert len(seen) >= 3, seen  # the forkserver, a worker or two, the resource tracker
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(map(_running, seen)):
            time.sleep(0.1)
        assert not [p for p in seen if _running(p)], "processes left after kill -9 of s2i convert"
    finally:
        for pid in seen:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


# --------------------------------------------------------------------------- crafted stores

def crafted_stores(store: Path) -> list:
    """Ways to rewrite a real store's per-sample arrays (metadata only: no chunk is written):
    2^26 one-element chunks, the same inside one shard, a 2-D `valid`, lengths that disagree,
    2^40 slots in one chunk, a deep folder inside the store."""
    import zarr

    def regrid(path: str, shape: tuple, **layout) -> None:
        root = zarr.open_group(store, mode="r+", use_consolidated=False)
        dtype = root[path].dtype
        root.create_array(path, shape=shape, dtype=dtype, overwrite=True, **layout)
        zarr.consolidate_metadata(root.store)

    def deep() -> None:
        folder = str(store / "progress")
        os.makedirs(folder, exist_ok=True)
        for _ in range(1200):
            folder += "/d"
            os.mkdir(folder)

    return [("2^26 chunks", lambda: regrid("valid", (1 << 26,), chunks=(1,))),
            ("2^26 inner chunks", lambda: regrid("label", (1 << 26,), chunks=(1,), shards=(1 << 22,))),
            ("2-D valid", lambda: regrid("valid", (4, 4), chunks=(4, 4))),
            ("lengths disagree", lambda: regrid("frames", (7,), chunks=(7,))),
            ("2^40 slots", lambda: regrid("actors", (1 << 40,), chunks=(1 << 40,))),
            ("deep folder", deep)]


@pytest.mark.parametrize("case", range(6))
def test_crafted_store_gives_one_line_quickly(tmp_path, case):
    import shutil

    scene = ntu_scene(tmp_path, samples=3)
    good = tmp_path / "good.zarr"
    assert s2i(*convert_args(scene.raw, good), cwd=scene.work).rc == 0
    out = tmp_path / "crafted.zarr"
    shutil.copytree(good, out)
    what, craft = crafted_stores(out)[case]
    craft()
    try:
        for command in (["info", out], ["info", out, "--json"], ["show", out, "--name", "S001C001P001R001A001"]):
            result = s2i(*command, cwd=scene.work)
            assert_sound(result)
            if what == "deep folder":
                assert result.rc == 0, (what, result.err)
            else:
                assert result.rc == 2 and "store" in result.err, (what, result.err)
    finally:
        if what == "deep folder":
            remove_deep(out / "progress")


@pytest.mark.parametrize("dataset", ["pyskl", "ctrgcn"])
def test_an_importers_raw_that_is_not_a_regular_file(tmp_path, dataset):
    """An importer's RAW is one file: a FIFO (an open would block), /dev/zero behind a link
    (never ends), a folder: one line each, nothing opened."""
    work = tmp_path / "work"
    work.mkdir()
    name = "NTU60_CS.npz" if dataset == "ctrgcn" else "ntu60_3danno.pkl"
    fifo, zero, folder = tmp_path / "fifo" / name, tmp_path / "zero" / name, tmp_path / "folder" / name
    for path in (fifo, zero, folder):
        path.parent.mkdir()
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    folder.mkdir()
    for raw, word in ((fifo, "FIFO"), (zero, "device"), (folder, "folder")):
        assert_refused(s2i(*convert_args(raw, tmp_path / "out.zarr", dataset=dataset), cwd=work), word, "regular file")
    assert not (tmp_path / "out.zarr").exists()
