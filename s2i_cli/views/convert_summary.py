"""Terminal reports (rich tables) of what a command did."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..safe_text import one_line

console = Console(stderr=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def printable(text: object) -> str:
    """Text from a file or a store for a rich table cell: escapes for control characters and
    undecodable bytes, capped (safe_text), and rich markup such as `[red]` shown as written."""
    return escape(one_line(text))


def print_convert_report(report) -> None:
    table = Table(title=escape(f"s2i convert {report.dataset} -> {one_line(report.store)}"), show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("files discovered", str(report.discovered))
    for reason, count in report.ignored.items():
        table.add_row("ignored", f"{count} ({reason})")
    table.add_row("samples written", str(report.written) + (f" ({report.resumed_from} before --resume)" if report.resumed_from else ""))
    for protocol, (train, test) in report.splits.items():
        table.add_row(f"split {protocol}", f"train {train} / test {test}")
    table.add_row("rejected", f"[red]{len(report.rejected)}[/]" if report.rejected else "0")
    ratio = report.image_bytes / report.image_stored if report.image_stored else 0.0
    where = f"{human_bytes(report.store_bytes)} on disk" if report.store_bytes is not None else "in object storage"
    table.add_row("store size", f"{where}; images {human_bytes(report.image_bytes)} "
                  f"uncompressed, {human_bytes(report.image_stored)} stored (compression {ratio:.1f}x)")
    rate = report.input_bytes / report.seconds / 1e6 if report.seconds else 0.0
    table.add_row("wall time", f"{report.seconds:.1f} s ({rate:.1f} MB/s of input read this run)")
    console.print(table)
    if report.rejected:
        rej = Table(title="rejected files", show_lines=False)
        for col in ("file", "line", "reason"):
            rej.add_column(col)
        for r in report.rejected[:50]:
            rej.add_row(printable(r.name), str(r.line or ""), printable(r.reason))
        if len(report.rejected) > 50:
            rej.add_row(f"... and {len(report.rejected) - 50} more (see `s2i info`)", "", "")
        console.print(rej)
