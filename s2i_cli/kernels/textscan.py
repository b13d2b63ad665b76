"""Tokenising primitives over raw bytes (uint8 arrays) for the text-format parsers.

Each returns the value, the new position and an ok flag; none allocates, and each costs
time in proportion to the bytes it reads, whatever they say. Floats are parsed as an
integer mantissa and a power of ten, which is correctly rounded (equal to Python's
float()) for the up-to-15-digit tokens skeleton files hold."""
import numpy as np
from numba import njit

SPACE, TAB, CR, LF = 32, 9, 13, 10
POW10 = np.array([10.0 ** k for k in range(23)])
INT64_MAX = np.int64(2**63 - 1)
# Beyond 10**±400 an up-to-18-digit mantissa is 0 or inf in float64 already: exponents are
# saturated there, so a token like 1e999999999999999999 costs as much as 1e400.
MAX_EXP10 = 400


@njit(nogil=True, cache=True)
def skip_blanks(data, pos):
    """Skip spaces, tabs and CRs on the current line (never a newline)."""
    n = len(data)
    while pos < n and (data[pos] == SPACE or data[pos] == TAB or data[pos] == CR):
        pos += 1
    return pos


@njit(nogil=True, cache=True)
def end_of_line(data, pos):
    """If only blanks remain on this line, return (True, position after the newline)."""
    pos = skip_blanks(data, pos)
    if pos >= len(data):
        return True, pos
    if data[pos] == LF:
        return True, pos + 1
    return False, pos


@njit(nogil=True, cache=True)
def _token_end(data, pos):
    return pos >= len(data) or data[pos] == SPACE or data[pos] == TAB or data[pos] == CR or data[pos] == LF


@njit(nogil=True, cache=True)
def read_int(data, pos):
    """An optionally signed decimal integer on the current line whose magnitude fits int64
    (up to 2**63 - 1: 64-bit body IDs); a larger one is not ok."""
    pos = skip_blanks(data, pos)
    n = len(data)
    neg = False
    if pos < n and (data[pos] == 45 or data[pos] == 43):  # '-' '+'
        neg = data[pos] == 45
        pos += 1
    value = np.int64(0)
    digits = 0
    fits = True
    while pos < n and 48 <= data[pos] <= 57:
        d = np.int64(data[pos] - 48)
        if value > (INT64_MAX - d) // 10:
            fits = False  # keep scanning to the token's end, so the caller's position stays right
        else:
            value = value * 10 + d
        digits += 1
        pos += 1
    if digits == 0 or not fits or not _token_end(data, pos):
        return np.int64(0), pos, False
    return (-value if neg else value), pos, True


@njit(nogil=True, cache=True)
def scale10(mantissa, exp10):
    """mantissa * 10**exp10, correctly rounded while both factors are exact doubles; the
    exponent saturates at ±MAX_EXP10 (0 or inf), so the loops run at most 19 times."""
    exp10 = min(max(exp10, -MAX_EXP10), MAX_EXP10)
    value = float(mantissa)
    while exp10 > 22:
        value *= 1e22
        exp10 -= 22
    while exp10 < -22:
        value /= 1e22
        exp10 += 22
    return value * POW10[exp10] if exp10 >= 0 else value / POW10[-exp10]


@njit(nogil=True, cache=True)
def read_float(data, pos):
    """A decimal float token (`-0.8514767`, `3`, `1.5e-05`) on the current line."""
    pos = skip_blanks(data, pos)
    n = len(data)
    neg = False
    if pos < n and (data[pos] == 45 or data[pos] == 43):
        neg = data[pos] == 45
        pos += 1
    mantissa = np.int64(0)
    exp10 = 0
    digits = 0
    while pos < n and 48 <= data[pos] <= 57:
        mantissa = mantissa * 10 + (data[pos] - 48)
        digits += 1
        pos += 1
    if pos < n and data[pos] == 46:  # '.'
        pos += 1
        while pos < n and 48 <= data[pos] <= 57:
            mantissa = mantissa * 10 + (data[pos] - 48)
            exp10 -= 1
            digits += 1
            pos += 1
    if digits == 0 or digits > 18:  # > 18 digits could overflow the mantissa: not a skeleton value
        return 0.0, pos, False
    if pos < n and (data[pos] == 101 or data[pos] == 69):  # 'e' 'E'
        e, pos, ok = read_int(data, pos + 1) if pos + 1 < n and data[pos + 1] != SPACE else (np.int64(0), pos, False)
        if not ok:
            return 0.0, pos, False
        exp10 += min(max(e, -MAX_EXP10), MAX_EXP10)  # saturated first: the sum cannot overflow
    if not _token_end(data, pos):
        return 0.0, pos, False
    value = scale10(mantissa, exp10)
    return (-value if neg else value), pos, True

# byte classes for skip_fields: 0 other, 1 digit, 2 sign/point/exponent, 3 blank, 4 newline
BYTE_CLASS = np.zeros(256, dtype=np.uint8)
BYTE_CLASS[48:58] = 1
for _c in b"+-.eE":
    BYTE_CLASS[_c] = 2
for _c in b" \t\r":
    BYTE_CLASS[_c] = 3
BYTE_CLASS[10] = 4


@njit(nogil=True, cache=True)
def skip_fields(data, pos):
    """Consume the rest of the line (and its newline), validating without converting:
    returns (position after the line, number of tokens, all tokens numeric-looking).
    One table lookup per byte: the fields we do not keep cost little."""
    n = len(data)
    tokens = 0
    ok = True
    in_token = False
    has_digit = False
    while pos < n:
        k = BYTE_CLASS[data[pos]]
        pos += 1
        if k == 1 or k == 2:
            if not in_token:
                in_token = True
                has_digit = False
                tokens += 1
            if k == 1:
                has_digit = True
        else:
            if in_token and not has_digit:
                ok = False
            in_token = False
            if k == 4:
                return pos, tokens, ok
            if k == 0:
                ok = False
    if in_token and not has_digit:
        ok = False
    return pos, tokens, ok
