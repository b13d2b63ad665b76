"""PKU-MMD phase 1 and phase 2 (formats.md §3): long Kinect v2 sequences, one skeleton file
per sequence (one line per frame, 150 floats = 2 persons x 25 NTU-order joints x xyz) and
one label file (`label,start,end,confidence` per action instance). Every labelled interval
is one sample, cut from the sequence with both ends inclusive.

Frame numbers in the label files are taken as 0-based line indices of the skeleton file
(third-party converters read them that way and report start 0 in the data); an interval
that ends at or past the last line is rejected, never clipped."""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
from ..kernels import rows_parse

from ..encoder.skeletons import NTU25
from .base import (ALL_ZERO, MAX_COORDINATE, DatasetFormat, FormatError, Item, Rejection, Sequence, check_options,
                   checked, duplicate, read_file, regular_files, walk)

PHASE1_NAME = re.compile(r"^(\d{4})-([LMR])$")
PHASE2_NAME = re.compile(r"^A(\d{2})N(\d{2})-([LMR])$")
LABEL_LINE = re.compile(rb"^\s*[+-]?\d+(\s*,\s*[+-]?\d+){3}\s*,?\s*$")  # label,start,end,confidence
SPLIT_FILE = re.compile(r"^cross[-_](subject|view)(?:[-_]?v2)?\.txt$", re.IGNORECASE)
VIEWS = {"L": 0, "M": 1, "R": 2}
BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark, which some editors put first in a label file
VALUES = 150  # per line: person 1 then person 2, 25 joints, x y z
UNLISTED, TRAIN, TEST = -1, 0, 1

# The 51 classes, in the order of the dataset's Actions.xlsx (columns Label, Action; labels
# 1..51), read from the copy in shared/data/pkummd/phase1/split/Actions.xlsx (AntonioSTO/
# is-rtmac data/splits/Actions.xlsx). Phase 2 labels use the same ids (41 of the 51 occur).
PKUMMD_CLASS_NAMES = (
    "bow", "brushing hair", "brushing teeth", "check time (from watch)", "cheer up", "clapping",
    "cross hands in front (say stop)", "drink water", "drop", "eat meal/snack", "falling",
    "giving something to other person", "hand waving", "handshaking", "hopping (one foot jumping)",
    "hugging other person", "jump up", "kicking other person", "kicking something",
    "make a phone call/answer phone", "pat on back of other person", "pickup", "playing with phone/tablet",
    "point finger at the other person", "pointing to something with finger", "punching/slapping other person",
    "pushing other person", "put on a hat/cap", "put something inside pocket", "reading",
    "rub two hands together", "salute", "sitting down", "standing up", "take off a hat/cap",
    "take off glasses", "take off jacket", "take out something from pocket", "taking a selfie",
    "tear up paper", "throw", "touch back (backache)", "touch chest (stomachache/heart pain)",
    "touch head (headache)", "touch neck (neckache)", "typing on a keyboard",
    "use a fan (with hand or paper)/feeling warm", "wear jacket", "wear on glasses", "wipe face", "writing",
)


def parse_split_text(text: str) -> dict[str, int]:
    """An official split file (`Training videos:` / names / `Validataion videos:` (sic) /
    names; comma-separated, trailing comma) -> name -> TRAIN or TEST."""
    sides: dict[str, int] = {}
    side = None
    for line in text.splitlines():
        head = line.strip().lower()
        if head.startswith("train"):
            side = TRAIN
        elif head.startswith(("valid", "test")):
            side = TEST
        elif side is not None:
            for name in line.split(","):
                if name.strip():
                    sides[name.strip()] = side
    return sides


def read_label_lines(data: bytes) -> list[tuple[int, tuple[int, int, int, int] | str]]:
    """Label file bytes -> per non-blank line (1-based number, (label, start, end, confidence)
    or the reason it is bad); FormatError when they are not UTF-8 text. A leading byte order
    mark is not part of line 1."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text: {exc.reason}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4 or not all(re.fullmatch(r"[+-]?\d{1,9}", f) for f in fields):
            rows.append((number, "label line is not four integers label,start,end,confidence"))
            continue
        label, start, end, confidence = map(int, fields)
        if not 1 <= label <= len(PKUMMD_CLASS_NAMES):
            rows.append((number, f"action label {label} is outside 1-{len(PKUMMD_CLASS_NAMES)}"))
        elif start < 0 or end < start:
            rows.append((number, f"interval {start}-{end} is empty or negative"))
        elif not -32768 <= confidence <= 32767:
            rows.append((number, f"confidence {confidence} does not fit a small integer"))
        else:
            rows.append((number, (label, start, end, confidence)))
    return rows


def parse_sequence(data: bytes) -> np.ndarray:
    """Skeleton file bytes -> (T, 2, 25, 3) float32, or FormatError with the line."""
    buf = np.frombuffer(data, dtype=np.uint8)
    out = np.empty((rows_parse.count_lines(buf), VALUES), dtype=np.float32)
    status, line, rows = rows_parse.parse_rows(buf, out, MAX_COORDINATE)
    if status != rows_parse.OK:
        reason = rows_parse.REASONS[status]
        if status in (rows_parse.TOO_FEW, rows_parse.EXTRA_VALUES):
            reason += f" (each line holds {VALUES} values: 2 persons x 25 joints x xyz)"
        elif status == rows_parse.OUT_OF_RANGE:
            reason += f" ±{MAX_COORDINATE:g} (formats.md)"
        elif status == rows_parse.BAD_NUMBER and b"," in data.split(b"\n", int(line))[int(line) - 1]:
            reason += " (a comma on the line: values are separated by blanks and use a decimal point)"
        raise FormatError(reason, int(line))
    return out[:rows].reshape(rows, 2, 25, 3)


def cut_interval(seq: np.ndarray, start: int, end: int) -> Sequence:
    """Frames start..end (inclusive) -> (T, 2, 25, 3) with all-zero frames dropped, and the
    actor count. An all-zero person in a frame is absent; a second person present only
    while the first is absent takes the first slot."""
    if end >= len(seq):
        raise FormatError(f"interval {start}-{end} ends past the sequence's last frame {len(seq) - 1}")
    seg = seq[start:end + 1]
    present = np.any(seg != 0, axis=(2, 3))  # (T, 2)
    if not present[:, 0].any() and present[:, 1].any():
        seg, present = seg[:, ::-1], present[:, ::-1]
    keep = present.any(axis=1)
    if not keep.any():
        raise FormatError(f"{ALL_ZERO} (no skeleton in frames {start}-{end})")
    seg = np.ascontiguousarray(seg[keep])
    return checked(seg, 2 if present[keep, 1].any() else 1)


def _is_label_file(path: Path, limit: int | None) -> bool:
    """A label file sits in a folder named *label* (the release's Train_Label_PKU_final/), or
    its first line is four comma-separated integers (`label,start,end,confidence`). A
    skeleton file whose first line merely holds a comma (decimal commas, binary garbage)
    stays a skeleton file, so its own parse error is what gets reported."""
    if "label" in path.parent.name.lower():
        return True
    try:
        head = read_file(path, limit, head=256)
    except FormatError:
        return False
    return LABEL_LINE.match(head.removeprefix(BOM).split(b"\n", 1)[0]) is not None


def _find_split_files(texts: list[Path]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {"subject": [], "view": []}
    for path in sorted(texts):
        m = SPLIT_FILE.match(path.name)
        if m:
            found[m.group(1).lower()].append(path)
    return found


class PKUMMDFormat(DatasetFormat):
    skeleton = NTU25
    class_names = PKUMMD_CLASS_NAMES
    protocols = ("xsub", "xview")
    persons = "stacked"
    options: dict[str, str] = {}
    max_file_mb = 256.0  # a long sequence's skeleton file: the release's largest is about 10 MB

    def __init__(self, phase: int = 1, **options: str):
        check_options(f"pkummd{'' if phase == 1 else phase}", self.options, options)
        self.phase = phase
        if phase == 1:
            self.name = "pkummd"
            self.pattern = PHASE1_NAME
            self.meta_fields = ("sequence", "view", "confidence", "xsub", "xview")
            self.description = (
                "PKU-MMD phase 1: skeleton files NNNN-V.txt (one line per frame, 150 values) and label files "
                "of the same name (in a folder whose name contains 'label', e.g. Train_Label_PKU_final/, or "
                "told apart by their comma-separated lines), anywhere under RAW; one sample per labelled "
                "interval (ends inclusive). Protocols xsub, xview from the official split files "
                "cross-subject.txt / cross-view.txt (found under RAW, else the copies shipped with s2i); "
                "meta xsub/xview: 0 train, 1 test, -1 on no list")
        else:
            self.name = "pkummd2"
            self.pattern = PHASE2_NAME
            self.meta_fields = ("a_number", "n_number", "view", "confidence", "xsub", "xview")
            self.description = (
                "PKU-MMD phase 2: skeleton files AxxNyy-V.txt and label files of the same name (folder name "
                "containing 'label', or comma-separated lines) under RAW; one sample per labelled interval "
                "(ends inclusive), labels in phase 1's 51-class id space. Protocols xsub, xview only from "
                "split files found under RAW (cross_subject_v2.txt / cross_view_v2.txt or cross-subject.txt / "
                "cross-view.txt): s2i ships none for phase 2 and derives none; without them the store has no "
                "splits")

    # --- discovery -------------------------------------------------------------------

    def _split_lists(self, raw: Path, texts: list[Path]) -> dict[str, dict[str, int]]:
        found = _find_split_files(texts)
        lists = {}
        for protocol, kind in (("xsub", "subject"), ("xview", "view")):
            sides = self._sides([self._split_text(p) for p in found[kind]], protocol, raw)
            if not sides and self.phase == 1:  # none under RAW (or only phase 2's): the shipped official lists
                shipped = resources.files(__package__).joinpath(f"pkummd_cross-{kind}.txt").read_text()
                sides = self._sides([shipped], protocol, raw)
            lists[protocol] = sides
        return lists

    def _split_text(self, path: Path) -> str:
        try:
            return read_file(path, self.max_file_bytes).decode(errors="replace")
        except FormatError as exc:
            raise ValueError(f"split file {path}: {exc.reason}") from None

    def _sides(self, texts: list[str], protocol: str, raw: Path) -> dict[str, int]:
        sides: dict[str, int] = {}
        for text in texts:
            for name, side in parse_split_text(text).items():
                if not self.pattern.match(name):
                    continue  # the other phase's list
                if sides.setdefault(name, side) != side:
                    raise ValueError(f"the {protocol} split files under {raw} put {name} on both sides")
        return sides

    def _name_meta(self, stem: str) -> dict[str, int]:
        m = self.pattern.match(stem)
        if self.phase == 1:
            return {"sequence": int(m.group(1)), "view": VIEWS[m.group(2)]}
        return {"a_number": int(m.group(1)), "n_number": int(m.group(2)), "view": VIEWS[m.group(3)]}

    def find_items(self, raw: Path):
        skeletons: dict[str, Path] = {}
        labels: dict[str, Path] = {}
        rejected: list[Rejection] = []
        ignored: dict[str, int] = {}
        files, _, rejected = walk(raw)
        texts, refused = regular_files([p for p in files if p.name.endswith(".txt")], self.max_file_bytes)
        rejected += refused
        for path in sorted(texts, key=lambda p: (p.name, str(p))):
            stem = path.name[:-4]
            if not self.pattern.match(stem):
                other = PHASE2_NAME if self.phase == 1 else PHASE1_NAME
                if other.match(stem):
                    other_name = "pkummd2" if self.phase == 1 else "pkummd"
                    key = f"files of PKU-MMD phase {2 if self.phase == 1 else 1} (use s2i convert {other_name})"
                    ignored[key] = ignored.get(key, 0) + 1
                continue  # split lists, READMEs: not sequence files
            target = labels if _is_label_file(path, self.max_file_bytes) else skeletons
            if stem in target:
                rejected.append(duplicate(path, target[stem]))
            else:
                target[stem] = path
        lists = self._split_lists(raw, texts)
        items: list[Item] = []
        for stem in sorted(set(skeletons) | set(labels)):
            if stem not in labels:
                rejected.append(Rejection(stem, "skeleton file has no label file of the same name"))
                continue
            if stem not in skeletons:
                rejected.append(Rejection(stem, "label file has no skeleton file of the same name"))
                continue
            try:
                rows = read_label_lines(read_file(labels[stem], self.max_file_bytes))
            except FormatError as exc:
                rejected.append(Rejection(stem, f"cannot read the label file: {exc.reason}"))
                continue
            if not rows:
                rejected.append(Rejection(stem, "label file holds no action instance"))
                continue
            meta = self._name_meta(stem)
            sides = {p: lists[p].get(stem, UNLISTED) for p in self.protocols}
            for number, row in rows:
                name = f"{stem}_{number:03d}"
                if isinstance(row, str):
                    rejected.append(Rejection(name, f"{row} ({labels[stem].name})", number))
                    continue
                label, start, end, confidence = row
                items.append(Item(name, skeletons[stem], label - 1, {**meta, "confidence": confidence, **sides},
                                  extra=(start, end, number)))
        return items, rejected, ignored

    # --- reading ---------------------------------------------------------------------

    def read_items(self, path: Path, data: bytes, items: list[Item]) -> list[Sequence | FormatError]:
        try:
            seq = parse_sequence(data)
        except FormatError as exc:
            return [exc] * len(items)
        out: list[Sequence | FormatError] = []
        for item in items:
            start, end, number = item.extra
            try:
                out.append(cut_interval(seq, start, end))
            except FormatError as exc:
                out.append(FormatError(f"{exc.reason} (label line {number})"))
        return out

    def splits(self, meta: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        masks = {}
        for protocol in self.protocols:
            side = np.asarray(meta[protocol])
            if np.any(side != UNLISTED):
                masks[protocol] = (side == TRAIN, side == TEST)
        return masks
