"""`s2i info`: what is in a store — dataset, layout, counts per split and class, rejected
and ignored files, bytes on disk, and the command that made it (docs/design.md §3, §4).

`store_summary(root)` gathers everything as plain Python (JSON-ready, testable);
`print_info(summary)` draws it as rich tables."""
from __future__ import annotations

from typing import Any

import numpy as np
import zarr
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..store import check_layout, image_bytes as store_image_bytes, read_header, store_bytes, stored_streams
from .convert_summary import human_bytes, printable

DEFAULT_TOP = 20  # classes listed unless --all


def store_path(root: zarr.Group) -> str | None:
    """Where a store lives: its directory, or its URL when it is in object storage."""
    if getattr(root.store, "root", None) is not None:  # LocalStore
        return str(root.store.root)
    fs = getattr(root.store, "fs", None)  # FsspecStore
    if fs is None:
        return None
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return f"{protocol}://{root.store.path}"


def skeleton_size(root) -> dict:
    """skeleton/joints' shape (a format-4 store: the stored frames, 2, V, C) and its bytes loaded whole."""
    shape = list(root["skeleton/joints"].shape)
    return {"skeleton_shape": shape, "skeleton_bytes": int(np.prod(shape)) * 4}  # float32


def store_summary(root: zarr.Group) -> dict[str, Any]:
    """Everything `s2i info` shows, as plain Python values (ints, strings, lists, dicts).

    Counts come from the arrays themselves (labels, splits, actors, frames of the valid
    slots), not from the attributes, so the summary also checks that the two agree
    (`attrs_samples`)."""
    check_layout(root)  # bounded: a crafted grid of millions of chunks is refused before any read
    header = read_header(root)
    valid = np.asarray(root["valid"][:], dtype=bool)
    labels = np.asarray(root["label"][:], dtype=np.int64)[valid]
    n = int(labels.shape[0])
    names = header.class_list(int(labels.max()) + 1 if n else 0)
    n_classes = len(names)
    counts = np.bincount(labels, minlength=n_classes) if n else np.zeros(n_classes, dtype=np.int64)
    splits = {protocol: {side: int(root[f"splits/{protocol}/{side}"].shape[0]) for side in ("train", "test")}
              for protocol in header.protocols}
    frames = np.asarray(root["frames"][:], dtype=np.int64)[valid]
    actors = np.asarray(root["actors"][:], dtype=np.int64)[valid]
    images, path = root["images"], store_path(root)
    image_bytes, image_disk = store_image_bytes(root)  # every stream's images
    height, width = images.shape[2], images.shape[3]
    return {
        "path": path,
        "dataset": header.dataset,
        "description": header.description,
        "skeleton": header.skeleton,
        "joints": len(header.joint_names) or int(root["skeleton/joints"].shape[2]),
        "channels": list(header.channels),
        "layout": header.layout,
        "bands": list(header.bands),
        "part_names": list(header.part_names),
        "persons": header.persons,
        "image_size": [int(height), int(width)],
        "image_dtype": str(images.dtype),
        "streams": list(stored_streams(root)),
        "samples": n,
        "slots": int(valid.shape[0]),
        "attrs_samples": header.samples,
        "classes": n_classes,
        "class_counts": [{"index": c, "name": names[c], "count": int(counts[c])} for c in range(n_classes)],
        "empty_classes": int(np.sum(counts == 0)),
        "splits": splits,
        "meta_fields": list(header.meta_fields),
        "frames": ({"min": int(frames.min()), "median": float(np.median(frames)), "max": int(frames.max()),
                    "total": int(frames.sum())} if n else {"min": 0, "median": 0.0, "max": 0, "total": 0}),
        "actors": {str(k): int(v) for k, v in zip(*np.unique(actors, return_counts=True))},
        "source_root": header.source_root,
        "source_files": header.source_files,
        "ignored": dict(header.ignored),
        "rejected": [dict(r) for r in header.rejected],
        **skeleton_size(root),
        "image_bytes": image_bytes,
        "image_bytes_on_disk": image_disk,
        "compression": image_bytes / image_disk if image_disk else None,
        "bytes_on_disk": store_bytes(path) if path is not None else None,  # None in object storage
        "shard": header.shard,
        "command": header.command,
        "tool_version": header.tool_version,
        "format_version": header.format_version,
    }


def class_table(summary: dict[str, Any], top: int | None = DEFAULT_TOP) -> Table:
    """Classes by sample count (most first): the first `top` classes that have samples, or
    every class (in class order) when `top` is None."""
    if top is None:
        rows = shown = summary["class_counts"]
    else:
        rows = sorted(summary["class_counts"], key=lambda r: (-r["count"], r["index"]))
        shown = [r for r in rows if r["count"]][:top]
    title = f"samples per class ({summary['classes']} classes" + \
        (f", {summary['empty_classes']} without samples)" if summary["empty_classes"] else ")")
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("class")
    table.add_column("samples", justify="right")
    for r in shown:
        table.add_row(str(r["index"] + 1), r["name"], str(r["count"]) if r["count"] else "[dim]0[/]")
    if len(shown) < len(rows):
        rest = rows[len(shown):]
        empty = sum(1 for r in rest if not r["count"])
        more = f"{len(rest)} more" + (f" ({empty} without samples)" if empty else "") + "; --all lists all"
        table.add_row("…", f"[dim]{more}[/]", f"[dim]{sum(r['count'] for r in rest)}[/]")
    return table


def overview_table(summary: dict[str, Any]) -> Table:
    s = summary
    table = Table(title=f"s2i store {s['path'] or ''}", title_justify="left", show_header=False, show_edge=False,
                  pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("dataset", f"{s['dataset']}" + (f" [dim]— {s['description']}[/]" if s["description"] else ""))
    table.add_row("skeleton", f"{s['skeleton'] or '?'} ({s['joints']} joints; channels {', '.join(s['channels'])})")
    h, w = s["image_size"]
    bands = ""
    if s["layout"] == "parts" and s["part_names"] and len(s["bands"]) == len(s["part_names"]) + 1:
        bands = " — " + ", ".join(f"{p} {a}–{b - 1}" for p, a, b in zip(s["part_names"], s["bands"][:-1], s["bands"][1:]))
    table.add_row("layout", f"{s['layout']}{bands}")
    persons = {"stacked": "stacked (actor 1 top half, actor 2 bottom half)", "main": "main (actor 1 only)"}
    table.add_row("persons", persons.get(s["persons"], s["persons"]))
    table.add_row("images", f"{s['slots']} × 3 × {h} × {w} {s['image_dtype']}" +
                  (f" ({s['slots'] - s['samples']} slots of rejected files, marked in `valid`)"
                   if s["slots"] != s["samples"] else ""))
    table.add_row("streams", ", ".join(s["streams"]) + "  [dim](images, images_<stream>; train on one with "
                  "`s2i pretrain --stream`)[/]")
    samples = f"{s['samples']}"
    if s["attrs_samples"] is not None and s["attrs_samples"] != s["samples"]:
        samples += f" [red](attributes say {s['attrs_samples']})[/]"
    table.add_row("samples", samples)
    f = s["frames"]
    table.add_row("frames", f"{f['min']}–{f['max']} per sample (median {f['median']:g}; {f['total']} in all)")
    table.add_row("skeletons", f"skeleton/joints {' × '.join(map(str, s['skeleton_shape']))} float32: "
                               f"{human_bytes(s['skeleton_bytes'])} loaded whole")
    if s["actors"]:
        table.add_row("actors", ", ".join(f"{v} with {k}" for k, v in sorted(s["actors"].items())))
    if s["meta_fields"]:
        table.add_row("metadata", ", ".join(s["meta_fields"]))
    for protocol, sides in s["splits"].items():
        table.add_row(f"split {protocol}", f"train {sides['train']} / test {sides['test']}")
    if not s["splits"]:
        table.add_row("splits", "[dim]none[/]")
    if s["source_files"] is not None:
        table.add_row("source", f"{s['source_files']} files discovered under {s['source_root']}")
    rejected = len(s["rejected"])
    table.add_row("rejected", f"[red]{rejected}[/] (listed below)" if rejected else "0")
    if s["ignored"]:
        for reason, count in s["ignored"].items():
            table.add_row("ignored", f"{count} ({reason})")
    else:
        table.add_row("ignored", "0")
    if s["bytes_on_disk"] is not None:
        table.add_row("on disk", f"{human_bytes(s['bytes_on_disk'])} in all (images, skeletons, labels, "
                      f"metadata)")
    images = f"{human_bytes(s['image_bytes'])} uncompressed → {human_bytes(s['image_bytes_on_disk'])} on disk"
    if s["compression"]:
        images += f" (compression {s['compression']:.1f}×)"
    table.add_row("images arrays" if len(s["streams"]) > 1 else "images array", images)
    if s["shard"]:
        table.add_row("shard", f"{s['shard']} samples per shard")
    made = s["command"] or "?"
    table.add_row("made by", f"{made} [dim](s2i {s['tool_version'] or '?'}, store format {s['format_version']})[/]")
    return table


def rejected_table(summary: dict[str, Any], limit: int | None = 50) -> Table:
    rows = summary["rejected"]
    table = Table(title=f"rejected files ({len(rows)})", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("file")
    table.add_column("line", justify="right")
    table.add_column("reason")
    shown = rows if limit is None else rows[:limit]
    for r in shown:
        table.add_row(printable(r.get("name", "?")), printable(r.get("line") or ""), printable(r.get("reason", "")))
    if len(shown) < len(rows):
        table.add_row("…", "", f"[dim]{len(rows) - len(shown)} more (--all lists every one)[/]")
    return table


def print_info(summary: dict[str, Any], console: Console | None = None, *, top: int | None = DEFAULT_TOP,
               show_all: bool = False) -> None:
    """Print the summary: overview, samples per class, rejected files."""
    console = console or Console()
    parts = [overview_table(summary), Text(""), class_table(summary, None if show_all else top)]
    if summary["rejected"]:
        parts += [Text(""), rejected_table(summary, None if show_all else 50)]
    console.print(Group(*parts))
