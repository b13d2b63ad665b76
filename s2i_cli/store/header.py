"""The store header: the root group's `s2i` attributes as one typed value (docs/design.md §3).

`StoreHeader` is the only reader of those attributes. `from_attrs` checks every field's type
(a crafted or damaged store is one line naming the store and the field, never a traceback
deep in a command), fills what older formats did not record (`_upgrade`: every format-version
default in one place) and keeps keys it does not know, so a header read and written back
loses nothing. `to_attrs` is what `store.create_store` and `store.update_attrs` write.

Knows JSON values and the vocabulary, not Zarr, numpy or torch."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

from ..vocab import FILL_DEFAULT, Layout, Norm, Persons

FORMAT_VERSION = 4  # 2: sample slots with `valid`, skeleton frame regions per shard, per-shard done records;
# 3: streams (images_<stream>, norm_<stream>, the `streams` attribute). A format-2 store reads as joint-only.
# 4: a finished store's skeleton/joints holds its frames back to back (the regions are a staging array
# while converting). Read the same way: joints[start[i]:start[i] + frames[i]].
STREAMS_VERSION = 3  # the first format with streams: what `s2i encode` makes of a format-2 store
OLDEST_READABLE = 2
SHARD = 256  # samples per shard: the unit of a conversion task, of resume and of a training read block
FRAMES_CHUNK = 8192  # frames per chunk of skeleton/joints
MEAN_FRAMES = 4096  # a shard's frame region holds this many frames per sample on average
JOINT_ONLY = {"joint": [1.0, 1.0, 1.0]}  # the streams of a store made before streams (format 2)


class HeaderError(ValueError):
    """Store attributes of the wrong type or shape, or of a format this s2i cannot read; the
    message is one line naming the store (and the field)."""


def frame_region(shard: int) -> int:
    """Frames reserved in skeleton/joints for one shard: whole chunks, so no two shards share one.
    Chunks never written cost nothing on disk."""
    return -(-shard * MEAN_FRAMES // FRAMES_CHUNK) * FRAMES_CHUNK


# --------------------------------------------------------------------------- the checks

def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool))


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _counts(v: Any) -> bool:
    return isinstance(v, list) and all(_int(x) and x >= 0 for x in v)


def _rejection(v: Any) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("reason"), str)
            and (v.get("line") is None or _int(v.get("line"))))


def _streams(v: Any) -> bool:
    return (isinstance(v, dict) and len(v) > 0 and "joint" in v and all(
        isinstance(k, str) and isinstance(p, list) and len(p) == 3 and all(_number(x) for x in p)
        for k, p in v.items()))


def _limits(v: Any) -> bool:
    return v is None or (isinstance(v, list) and len(v) == 3 and all(
        isinstance(r, list) and len(r) == 2 and all(_number(x) for x in r) for r in v))


# field -> (what it must be, for the message; the check)
_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "format_version": ("an integer", _int),
    "complete": ("true or false", lambda v: isinstance(v, bool)),
    "shard": ("a positive integer", lambda v: _int(v) and v > 0),
    "frame_region": ("a positive integer", lambda v: _int(v) and v > 0),
    "image_size": ("[height, width], positive integers", lambda v: _counts(v) and len(v) == 2 and min(v) > 0),
    "meta_fields": ("a list of strings", _strings),
    "dataset": ("a string", lambda v: isinstance(v, str)),
    "description": ("a string", lambda v: isinstance(v, str)),
    "skeleton": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "joint_names": ("a list of strings", _strings),
    "bones": ("a list of [child, parent] joint indices",
              lambda v: isinstance(v, list) and all(_counts(b) and len(b) == 2 for b in v)),
    "part_names": ("a list of strings", _strings),
    "channels": ("a list of 3 strings", lambda v: _strings(v) and len(v) == 3),
    "layout": ("a string", lambda v: isinstance(v, str)),
    "bands": ("a list of column indices", _counts),
    "persons": (" or ".join(Persons), lambda v: v in tuple(Persons)),
    "fill": ("a string", lambda v: isinstance(v, str)),
    "norm": ("a string", lambda v: isinstance(v, str)),
    "norm_limits": ("null or 3 [min, max] pairs", _limits),
    "class_names": ("a list of strings", _strings),
    "streams": ("an object {stream: [3 numbers]} with joint", _streams),
    "samples": ("null or a count (an integer >= 0)", lambda v: v is None or (_int(v) and v >= 0)),
    "protocols": ("a list of strings", _strings),
    "rejected": ("a list of {name, reason, line}", lambda v: isinstance(v, list) and all(map(_rejection, v))),
    "ignored": ("an object {reason: count}",
                lambda v: isinstance(v, dict) and all(_int(n) and n >= 0 for n in v.values())),
    "source_files": ("null or a count (an integer >= 0)", lambda v: v is None or (_int(v) and v >= 0)),
    "source_root": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "command": ("a string", lambda v: isinstance(v, str)),
    "tool_version": ("a string", lambda v: isinstance(v, str)),
    "items_digest": ("a string", lambda v: isinstance(v, str)),
}
_REQUIRED = ("format_version", "shard", "image_size")


@dataclass(frozen=True)
class StoreHeader:
    """A store's `s2i` attributes. Defaults are what a store that does not record a field
    means by it (older formats); convert writes every field."""

    format_version: int
    shard: int
    image_size: tuple[int, int]  # (height, width)
    complete: bool = False
    frame_region: int = 0  # 0: store.frame_region(shard)
    meta_fields: tuple[str, ...] = ()
    dataset: str = "unknown"
    description: str = ""
    skeleton: str | None = None
    joint_names: tuple[str, ...] = ()
    bones: tuple[tuple[int, int], ...] = ()
    part_names: tuple[str, ...] = ()
    channels: tuple[str, str, str] = ("x", "y", "z")
    layout: str = Layout.PARTS.value
    bands: tuple[int, ...] = ()
    persons: str = Persons.STACKED.value
    fill: str = FILL_DEFAULT.value
    norm: str = Norm.CHANNEL.value  # stores made before --norm were scaled per channel
    norm_limits: tuple[tuple[float, float], ...] | None = None
    class_names: tuple[str, ...] = ()
    streams: dict[str, list[float]] = field(default_factory=lambda: dict(JOINT_ONLY))
    samples: int | None = None  # written when the store is complete
    protocols: tuple[str, ...] = ()
    rejected: tuple[dict[str, Any], ...] = ()
    ignored: dict[str, int] = field(default_factory=dict)
    source_files: int | None = None
    source_root: str | None = None
    command: str = ""
    tool_version: str = ""
    items_digest: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # keys this s2i does not know, kept as they are

    # ------------------------------------------------------------------ reading

    @classmethod
    def from_attrs(cls, attrs: Any, where: str = "the store") -> StoreHeader:
        """The header of attributes `attrs` (the `s2i` object), checked; HeaderError naming
        `where` and the field otherwise. Fields a format did not record get their defaults."""
        if not isinstance(attrs, dict):
            raise HeaderError(f"{where}: its 's2i' attributes are a JSON {type(attrs).__name__}, not an object")
        for name in _REQUIRED:
            if name not in attrs:
                raise HeaderError(f"{where} is a Zarr store but not an s2i store (no {name} in its 's2i' attributes)")
        _check_version(attrs, where)
        for name, value in attrs.items():
            what, check = _CHECKS.get(name, (None, None))
            if check is not None and not check(value):
                shown = repr(value)
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise HeaderError(f"{where}: store attribute s2i.{name} is {shown}, not {what}: the store is damaged "
                                  "or was not made by s2i; convert it again")
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: _frozen(v) if k not in ("streams", "ignored") else dict(v) for k, v in attrs.items() if k in known}
        header = cls(**values, extra={k: v for k, v in attrs.items() if k not in known})
        return header._upgrade()

    def _upgrade(self) -> StoreHeader:
        """Format-version upgrades, in one place. The field defaults above are what a store
        that lacks a field means by it (format 2 has no `streams`: joint only); here what a
        default cannot say."""
        if not self.frame_region:
            return replace(self, frame_region=frame_region(self.shard))
        return self

    # ------------------------------------------------------------------ writing

    def to_attrs(self) -> dict[str, Any]:
        """The JSON object written as the store's `s2i` attributes (unknown keys kept)."""
        out = {f.name: _json(getattr(self, f.name)) for f in fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    def updated(self, **changes: Any) -> StoreHeader:
        """This header with `changes` (known fields, or extra keys), checked as on reading."""
        return StoreHeader.from_attrs({**self.to_attrs(), **{k: _json(v) for k, v in changes.items()}})

    # ------------------------------------------------------------------ derived facts

    @property
    def height(self) -> int:
        return self.image_size[0]

    @property
    def width(self) -> int:
        return self.image_size[1]

    @property
    def is_2d(self) -> bool:
        """A 2D format's third channel is the detection confidence."""
        return self.channels[2] == "confidence"

    @property
    def stacked(self) -> bool:
        return self.persons == Persons.STACKED

    def class_name(self, label: int) -> str:
        """The name of class `label`: the stored one, else "class N" (the one derivation)."""
        return self.class_names[label] if 0 <= label < len(self.class_names) else f"class {label}"

    def class_list(self, count: int = 0) -> list[str]:
        """Every class name, at least `count` of them (labels past the stored names: "class N")."""
        return [self.class_name(c) for c in range(max(count, len(self.class_names)))]

    def rejection_reason(self, name: str) -> str | None:
        return next((r["reason"] for r in self.rejected if r.get("name") == name), None)


def as_header(value: StoreHeader | dict[str, Any], where: str = "the store") -> StoreHeader:
    """A header as it is, or the header of an `s2i` attributes object (checked)."""
    return value if isinstance(value, StoreHeader) else StoreHeader.from_attrs(value, where)


def _check_version(attrs: dict[str, Any], where: str) -> None:
    """HeaderError for a format this s2i cannot read, naming what to do."""
    version = attrs["format_version"]
    what, check = _CHECKS["format_version"]
    if not check(version):
        raise HeaderError(f"{where}: store attribute s2i.format_version is {version!r:.60}, not {what}: the store is "
                          "damaged or was not made by s2i; convert it again")
    if version > FORMAT_VERSION:
        raise HeaderError(f"{where} has store format {version}, newer than this s2i ({FORMAT_VERSION}): upgrade s2i")
    if version < OLDEST_READABLE:
        command = attrs.get("command")
        again = command if isinstance(command, str) and command else "s2i convert DATASET RAW OUT"
        raise HeaderError(f"{where} has store format {version}, older than this s2i's ({FORMAT_VERSION}): "
                          f"convert it again with `{again} --overwrite`")


def _frozen(value: Any) -> Any:
    """JSON lists -> tuples (the header is immutable); objects stay dicts."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _json(value: Any) -> Any:
    """Tuples -> lists, numpy scalars and arrays -> Python values, recursively."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, str):
        return str(value)  # an enum member as its plain value
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return value


__all__ = ["FORMAT_VERSION", "STREAMS_VERSION", "OLDEST_READABLE", "HeaderError", "StoreHeader", "frame_region"]
