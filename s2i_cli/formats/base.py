"""What every dataset reader shares: the reader contract (`DatasetFormat`), the values it
passes around (`Item`, `Rejection`, `FormatError`, `Sequence`) and the pieces several
readers use (file discovery by name pattern, duplicate names, the two best detections per
frame, JSON parsing with a line number, reader options, split sides)."""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..encoder.skeletons import Skeleton
from ..safe_text import visible


@dataclass(frozen=True)
class Item:
    """One output sample: its name, the file it comes from, label and metadata."""

    name: str
    path: Path
    label: int  # 0-based class index
    meta: dict[str, int] = field(default_factory=dict, hash=False)
    extra: tuple = ()  # reader-specific, e.g. an interval inside a long sequence


@dataclass(frozen=True)
class Rejection:
    """A discovered file or sample that is not in the store, and why."""

    name: str
    reason: str
    line: int = 0  # 1-based line of the problem; 0 when not tied to a line

    def as_dict(self) -> dict:
        return {"name": self.name, "reason": self.reason, "line": self.line}


class FormatError(Exception):
    """Bad input in one file: the reason, and the 1-based line where it was found (0: none)."""

    def __init__(self, reason: str, line: int = 0):
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason = reason
        self.line = line


Sequence = tuple[np.ndarray, int]  # (T, 2, V, C) float32 selected sequence, number of actors

# Every stored joint value lies within ±MAX_COORDINATE. Real ones are metres (Kinect: under
# 10), normalised pixels or confidences (Kinetics: 0-1); the bound leaves room for files in
# millimetres or pixels and keeps centring and min-max scaling in float32 far from overflow.
MAX_COORDINATE = 1e6
ALL_ZERO = "every frame is all zeros"
# labels an importer accepts are below this (pyskl's largest file, Kinetics-400, has 400
# classes): the store lists a name per class, so a corrupt label of 10**18 must not ask for
# that many
MAX_CLASSES = 10_000
SplitMasks = np.ndarray | tuple[np.ndarray, np.ndarray]  # train mask, or (train mask, test mask)


class DatasetFormat:
    """What every dataset reader provides. Subclasses set the attributes and implement
    `find_items` (or `discover`, when they take a missing-skeleton list), `read_items` and
    `splits`."""

    name: str
    skeleton: Skeleton
    class_names: tuple[str, ...]
    meta_fields: tuple[str, ...]
    protocols: tuple[str, ...]
    persons: str = "stacked"  # default persons mode
    description: str = ""
    options: dict[str, str] = {}  # reader options it accepts: name -> help
    raw_is_file = False  # True: RAW is one file (an importer's pickle or .npz), not a folder
    # the largest file (sample, label or split file) read, in MB: checked with stat before
    # anything is read (`read_file`); `s2i convert --max-file-mb` raises it. None: no bound
    # (the importers, whose one file is the whole dataset and whose reader sets its own budgets)
    max_file_mb: float | None = 64.0
    whole_files = True  # False: read_items gets no bytes and reads only its items' part of the file

    def discover(self, raw: Path, missing_list: Path | None = None) -> tuple[list[Item], list[Rejection], dict[str, int]]:
        """Items sorted by name, rejections, and counts of files deliberately ignored by reason.
        Only NTU ships a missing-skeleton list; every other reader refuses one."""
        if missing_list is not None:
            raise ValueError("--missing-list applies to NTU only")
        return self.find_items(Path(raw))

    def find_items(self, raw: Path) -> tuple[list[Item], list[Rejection], dict[str, int]]:
        raise NotImplementedError

    @property
    def max_file_bytes(self) -> int | None:
        """`max_file_mb` in bytes; None for an importer (RAW is one file: its reader's budgets apply)."""
        return None if self.raw_is_file or self.max_file_mb is None else int(self.max_file_mb * MB)

    def samples(self, raw: Path, missing_list: Path | None = None) -> tuple[list[Item], list[Rejection], dict[str, int]]:
        """`discover`, then every sample name screened (`name_problem`: names are data, never
        paths) and every rejection made printable and storable (`visible`: a non-UTF-8 file
        name's undecodable bytes and control characters as escapes). What `s2i convert` calls."""
        items, rejected, ignored = self.discover(raw, missing_list)
        kept = []
        for item in items:
            problem = name_problem(item.name)
            if problem is None:
                kept.append(item)
            else:
                rejected.append(Rejection(item.name, f"{problem} ({item.path.name})"))
        return kept, [Rejection(visible(r.name), visible(r.reason), r.line) for r in rejected], ignored

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        raise NotImplementedError

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, SplitMasks]:
        raise NotImplementedError


# --------------------------------------------------------------------------- names and files

MB = 1 << 20
MAX_NAME = 255  # characters of a sample name (a file name's limit on every common file system)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")


def name_problem(name: object) -> str | None:
    """Why a sample name cannot be stored, or None. Names are data, never paths: `s2i show`
    and whoever reads a store may make a file name of one, so none holds a path separator,
    `..`, a control or bidirectional character, or an undecodable byte (a non-UTF-8 file
    name), and none is empty or longer than MAX_NAME."""
    if not isinstance(name, str) or not name:
        return "the sample name is empty"
    if "/" in name or "\\" in name:
        return "the sample name holds a path separator"
    if ".." in name:
        return "the sample name holds '..'"
    if _CONTROL.search(name):
        return "the sample name holds a control character or an undecodable byte"
    if len(name) > MAX_NAME:
        return f"the sample name is longer than {MAX_NAME} characters"
    return None


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def file_problem(st: os.stat_result, limit: int | None) -> str | None:
    """Why a file with this stat (its target's, links followed) is not read, or None: only
    regular files are (a FIFO would block forever, /dev/zero never ends), up to `limit` bytes."""
    if not stat.S_ISREG(st.st_mode):
        return f"{_kind(st.st_mode)}, not a regular file: s2i reads only regular files"
    if limit is not None and st.st_size > limit:
        return (f"{st.st_size / MB:,.1f} MB, above the {limit / MB:g} MB bound for one file of this dataset: "
                "raise it with --max-file-mb if the file is genuine")
    return None


def read_file(path: Path, limit: int | None, head: int | None = None) -> bytes:
    """A regular file's bytes (its first `head` bytes when given), or FormatError saying why
    not: not a regular file (links followed), larger than `limit`, unreadable. Checked with
    stat before opening, then on the open file itself (no window for a swap), opened
    non-blocking so that a FIFO put in its place cannot hang the open."""
    try:
        problem = file_problem(os.stat(path), limit)
        if problem:
            raise FormatError(problem)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FormatError(f"cannot read file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        problem = file_problem(st, limit)
        if problem:
            raise FormatError(problem)
        with os.fdopen(fd, "rb", closefd=False) as f:
            if head is not None:
                return f.read(head)
            data = f.read() if limit is None else f.read(limit + 1)
        if limit is not None and len(data) > limit:  # grew since the stat
            raise FormatError(f"more than the {limit / MB:g} MB bound for one file of this dataset: "
                              "raise it with --max-file-mb if the file is genuine")
        return data
    except OSError as exc:
        raise FormatError(f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def walk(raw: Path) -> tuple[list[Path], list[Path], list[Rejection]]:
    """Every file and folder under `raw`, without recursion (a tree thousands of levels deep
    is walked like a flat one): (files, folders, folders that could not be listed). As
    `Path.rglob` did, a linked folder is listed among the folders but not entered (no loops,
    no walk of wherever a link points). Files are not checked here (`regular_files`)."""
    files, folders, problems = [], [], []
    stack = [Path(raw)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        is_dir, linked = entry.is_dir(), entry.is_symlink()
                    except OSError:
                        is_dir = linked = False
                    path = Path(entry.path)
                    if is_dir:
                        folders.append(path)
                        if not linked:
                            stack.append(path)
                    else:
                        files.append(path)
        except OSError as exc:
            problems.append(Rejection(str(folder), f"cannot list the folder: {exc.strerror or exc}"))
    return files, folders, problems


def regular_files(paths: list[Path], limit: int | None) -> tuple[list[Path], list[Rejection]]:
    """`paths` split into the regular files of at most `limit` bytes (links followed) and
    rejections of the rest (FIFOs, devices, sockets, dangling links, files too large), each
    with its reason: discovery never opens one of those."""
    kept, rejected = [], []
    for path in paths:
        try:
            problem = file_problem(os.stat(path), limit)
        except OSError as exc:
            problem = f"cannot read file: {exc.strerror or exc}"
        if problem:
            rejected.append(Rejection(str(path), problem))
        else:
            kept.append(path)
    return kept, rejected


def named_files(raw: Path, suffix: str, pattern: re.Pattern, expected: str, limit: int | None = None
                ) -> tuple[list[tuple[Path, str, re.Match]], list[Rejection]]:
    """Regular files of at most `limit` bytes under `raw` (recursive) named `<stem><suffix>`,
    sorted by name then folder, as (path, stem, match); a stem that `pattern` does not match
    is rejected, the reason saying that the name should look like `expected`; so are
    special files and files above the bound (`regular_files`)."""
    files, _, rejected = walk(raw)
    files, refused = regular_files([p for p in files if p.name.endswith(suffix)], limit)
    rejected += refused
    found = []
    for path in sorted(files, key=lambda p: (p.name, str(p))):
        stem = path.name[: -len(suffix)]
        match = pattern.match(stem)
        if match is None:
            rejected.append(Rejection(path.name, f"file name is not {expected}"))
        else:
            found.append((path, stem, match))
    return found, rejected


def duplicate(path: Path | str, first: Path | str) -> Rejection:
    """The rejection of a file whose sample (or sequence) name an earlier file already had."""
    return Rejection(str(path), f"name seen before, in {first}; the first copy is kept")


def top_two_per_frame(frame: np.ndarray, score: np.ndarray,
                      keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of detections with a frame number and a score (`keep`: the ones that count), the two
    with the highest score in each frame, ties in file order. Returns their indices sorted
    by frame, each one's slot (0 or 1) and its output frame (frames with none dropped)."""
    order = np.lexsort((-score, frame))
    if keep is not None:
        order = order[keep[order]]
    sorted_frames = frame[order]
    slot = np.arange(len(order)) - np.searchsorted(sorted_frames, sorted_frames, side="left")
    best = slot < 2
    order, slot = order[best], slot[best]
    _, out_frame = np.unique(frame[order], return_inverse=True)
    return order, slot, out_frame.reshape(-1)


def checked(seq: np.ndarray, actors: int) -> Sequence:
    """A reader's selected sequence as it may be stored, or FormatError: at least one frame
    that is not all zeros (every reader rejects an empty or all-zero sample alike) and every
    value finite and within ±MAX_COORDINATE."""
    if not np.any(seq):
        raise FormatError(ALL_ZERO)
    if not np.all(np.abs(seq) <= MAX_COORDINATE):  # False for NaN too
        raise FormatError(f"a value is not finite or beyond ±{MAX_COORDINATE:g}")
    return seq, actors


def json_numbers(value, dtype=np.float32) -> np.ndarray | None:
    """Nested JSON lists of numbers -> an array of `dtype`; None when they are ragged or hold
    anything but numbers (a string such as "1.5", true, null, an object), which NumPy's own
    conversion would accept or turn into something else."""
    try:
        cells = np.array(value, dtype=object)
        if cells.size and not set(map(type, cells.ravel())) <= {int, float}:  # bool is not int here
            return None
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, which `checked` rejects
            return cells.astype(dtype)
    except (ValueError, TypeError, OverflowError):  # ragged, more than 64 levels, an int beyond float
        return None


def split_sides(masks: dict[str, SplitMasks]) -> dict[str, dict[str, np.ndarray]]:
    """`splits()` output -> {protocol: {"train": indices, "test": indices}}, sorted int64."""
    sides = {}
    for protocol, m in masks.items():
        if isinstance(m, tuple):
            train, test = (np.asarray(x, dtype=bool) for x in m)
            if np.any(train & test):
                raise ValueError(f"protocol {protocol}: a sample is on both sides")
        else:
            train = np.asarray(m, dtype=bool)
            test = ~train
        sides[protocol] = {"train": np.flatnonzero(train), "test": np.flatnonzero(test)}
    return sides


def check_options(dataset: str, accepted: dict[str, str], options: dict[str, str]) -> None:
    """ValueError naming the accepted options when `options` holds another."""
    unknown = sorted(set(options) - set(accepted))
    if unknown and not accepted:
        raise ValueError(f"{dataset} takes no reader options (got {', '.join(unknown)})")
    if unknown:
        raise ValueError(f"{dataset} has no reader option {', '.join(unknown)} (it accepts: {', '.join(accepted)})")


def parse_json(data: bytes):
    """JSON bytes -> Python object, or FormatError with the 1-based line of the syntax error.
    orjson when installed (about 3x faster than json on the skeleton files), else json."""
    try:
        return _json_loads(data)
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text: {exc.reason}") from None
    except ValueError as exc:  # json.JSONDecodeError and orjson.JSONDecodeError
        msg, line, col = getattr(exc, "msg", str(exc)), getattr(exc, "lineno", 0), getattr(exc, "colno", 0)
        raise FormatError(f"bad JSON: {msg}" + (f" (column {col})" if col else ""), line) from None
    except RecursionError:
        raise FormatError("bad JSON: nested too deeply") from None


try:
    from orjson import loads as _json_loads
except ImportError:  # pragma: no cover - orjson is a dependency; json is the fallback
    from json import loads as _json_loads
