"""The one progress bar of every long command: conversion, pretraining, fine-tuning, feature extraction."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(enabled: bool, console: Console | None = None) -> Progress:
    """A rich Progress on stderr: description, bar, done/total, the task's `info` text, elapsed time, ETA.

    Use it as a context manager and add tasks with `info=""`; disabled, it draws nothing."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console or Console(stderr=True), disable=not enabled)
