"""Text that came from outside (file names, sample names, store attributes, parts of a file)
made safe to print as one line: control characters, terminal escape sequences, line and
paragraph separators, bidirectional overrides and undecodable bytes (lone surrogates from a
non-UTF-8 file name) become visible escapes (`\\x1b`, `\\u202e`, `\\udcff`), and a long text
is cut to a bound, so that a hostile name can neither drive the terminal nor flood a log."""
from __future__ import annotations

import re

# What never reaches a terminal as is: C0 and C1 controls (ESC starts every terminal
# sequence), DEL, line/paragraph separators, bidi marks and overrides, BOM, and lone
# surrogates (they cannot be encoded as UTF-8: printing one raises UnicodeEncodeError).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
MAX_LINE = 600  # characters of one message line: the head and tail of a longer one are kept


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object) -> str:
    """`text` with every unsafe character shown as an escape (idempotent: escapes are plain text)."""
    return _UNSAFE.sub(_escape, str(text))


def one_line(text: object, limit: int = MAX_LINE) -> str:
    """`visible(text)` cut to about `limit` characters: its start and its end (which usually
    says what to do) are kept, and how much was cut is said in between."""
    shown = visible(text)
    if len(shown) <= limit:
        return shown
    head, tail = limit * 2 // 3, limit // 4
    return f"{shown[:head]} … ({len(shown) - head - tail} characters cut) … {shown[-tail:]}"
