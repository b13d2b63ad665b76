"""Parse text made of one record per line, each a fixed number of whitespace-separated
floats (PKU-MMD skeleton files: one line per frame, 150 values; formats.md §3).

Capacity comes from the number of newlines in the bytes, never from anything the file
claims, so memory is bounded by the file size."""
from numba import njit

from .textscan import LF, end_of_line, read_float, skip_blanks

OK, EMPTY, TOO_FEW, BAD_NUMBER, EXTRA_VALUES, BLANK_LINE, TRUNCATED, OUT_OF_RANGE = range(8)
REASONS = (
    "ok",
    "empty file",
    "too few values on the line",
    "not a number",
    "more values on the line than the format has",
    "blank line inside the data",
    "file ends inside a line (truncated)",
    "a value is beyond the coordinate bound",
)


@njit(nogil=True, cache=True)
def count_lines(data):
    """Upper bound on the records: newlines + 1."""
    n = 1
    for c in data:
        if c == LF:
            n += 1
    return n


@njit(nogil=True, cache=True)
def parse_rows(data, out, max_abs):
    """Fill out (R, C) float32 with one row per line of exactly C floats, each within
    ±max_abs (inf is not; a larger value is OUT_OF_RANGE). Returns
    (status, line, rows): status 0 is OK, otherwise an index into REASONS and the 1-based
    line where it happened. Blank lines are allowed only at the end of the file; CRLF and
    trailing blanks are accepted."""
    n = len(data)
    cols = out.shape[1]
    pos = 0
    line = 1
    rows = 0
    while pos < n:
        start = skip_blanks(data, pos)
        if start >= n or data[start] == LF:  # a blank line: only trailing ones are allowed
            q = start
            while q < n and (data[q] == 32 or data[q] == 9 or data[q] == 13 or data[q] == LF):
                q += 1
            if q >= n:
                break
            return BLANK_LINE, line, rows
        for k in range(cols):
            v, pos, ok = read_float(data, pos)
            if not ok:
                p = skip_blanks(data, pos)
                if p >= n:
                    return (TRUNCATED if data[n - 1] != LF else TOO_FEW), line, rows
                return (TOO_FEW if data[p] == LF else BAD_NUMBER), line, rows
            if not abs(v) <= max_abs:
                return OUT_OF_RANGE, line, rows
            out[rows, k] = v
        eol, pos = end_of_line(data, pos)
        if not eol:
            return EXTRA_VALUES, line, rows
        rows += 1
        line += 1
    if rows == 0:
        return EMPTY, 1, 0
    return OK, line, rows
