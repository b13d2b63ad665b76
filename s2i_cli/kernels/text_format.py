"""Write skeleton values as text exactly as C's '%.7G' does, for `s2i synth`'s `.skeleton` files.

Python's '%.7G' costs ~0.4 µs a number, and a file holds ~30,000 numbers per body per
100 frames: formatting in Python was three quarters of the synthesiser's run time. These
kernels write the same text (tested against '%.7G') in one pass."""
import numpy as np
from numba import njit

from .textscan import POW10

_LF, _ZERO, _DOT, _MINUS, _PLUS, _E = 10, 48, 46, 45, 43, 69


@njit(nogil=True, cache=True, error_model="numpy")
def write_frames(values, prefixes, separators, separator_lengths):
    """The frames of a `.skeleton` file (formats.md §1.2) as ASCII bytes (uint8): per frame
    the body count (1-9) and per body its prefix, then each value and the separator that
    follows it. One `_write_g7` call site: each one inlined costs seconds of compile time."""
    frames, bodies, fields = values.shape
    out = np.empty(frames * (2 + bodies * (prefixes.shape[1] + fields * (16 + separators.shape[1]))), np.uint8)
    digits = np.empty(7, np.uint8)
    pos = 0
    for f in range(frames):
        out[pos] = _ZERO + bodies
        out[pos + 1] = _LF
        pos += 2
        for b in range(bodies):
            # byte loops rather than slice assignment: same speed, a fraction of the compile time
            for c in range(prefixes.shape[1]):
                out[pos + c] = prefixes[b, c]
            pos += prefixes.shape[1]
            for i in range(fields):
                pos = _write_g7(values[f, b, i], out, pos, digits)
                for c in range(separator_lengths[i]):
                    out[pos + c] = separators[i, c]
                pos += separator_lengths[i]
    return out[:pos]


@njit(nogil=True, cache=True, error_model="numpy")
def _write_g7(x, out, pos, digits):
    """Write finite x at out[pos:] as C's '%.7G' does (7 significant digits, trailing zeros
    dropped, exponent form below 1E-4 and from 1E+7 on); return the end position.
    `digits` is a 7-byte scratch buffer."""
    if x == 0.0:  # -0.0 too: the exporter never writes "-0"
        out[pos] = _ZERO
        return pos + 1
    if x < 0.0:
        out[pos] = _MINUS
        pos += 1
        x = -x
    exponent = int(np.floor(np.log10(x)))
    mantissa = _mantissa7(x, exponent)
    if mantissa >= 10_000_000:  # log10 landed below a power of ten, or rounding carried over
        exponent += 1
        mantissa = _mantissa7(x, exponent)
    elif mantissa < 1_000_000:
        exponent -= 1
        mantissa = _mantissa7(x, exponent)
    mantissa = np.uint64(mantissa)  # unsigned: division by 10 compiles to a multiply
    for i in range(6, -1, -1):
        digits[i] = _ZERO + mantissa % np.uint64(10)
        mantissa //= np.uint64(10)
    significant = 7
    while digits[significant - 1] == _ZERO:
        significant -= 1
    if exponent < -4 or exponent >= 7:
        return _write_exponent_form(digits, significant, exponent, out, pos)
    if exponent >= 0:
        for i in range(exponent + 1):  # integer part, zero-padded past the last digit
            out[pos] = digits[i] if i < significant else _ZERO
            pos += 1
        first_fraction = exponent + 1
    else:
        out[pos] = _ZERO
        pos += 1
        first_fraction = 0
    if significant > first_fraction:
        out[pos] = _DOT
        pos += 1
        for _ in range(-exponent - 1):
            out[pos] = _ZERO
            pos += 1
        for i in range(first_fraction, significant):
            out[pos] = digits[i]
            pos += 1
    return pos


@njit(nogil=True, cache=True, error_model="numpy")
def _write_exponent_form(digits, significant, exponent, out, pos):
    """d.dddddE±XX, as '%.7G' writes numbers below 1E-4 or from 1E+7 on."""
    out[pos] = digits[0]
    pos += 1
    if significant > 1:
        out[pos] = _DOT
        pos += 1
        for i in range(1, significant):
            out[pos] = digits[i]
            pos += 1
    out[pos] = _E
    out[pos + 1] = _MINUS if exponent < 0 else _PLUS
    pos += 2
    magnitude = abs(exponent)
    if magnitude >= 100:
        out[pos] = _ZERO + magnitude // 100
        pos += 1
    out[pos] = _ZERO + magnitude // 10 % 10
    out[pos + 1] = _ZERO + magnitude % 10
    return pos + 2


@njit(nogil=True, cache=True)
def _mantissa7(x, exponent):
    """x / 10**(exponent - 6) rounded to an integer: the 7 leading decimal digits of x > 0.

    The scaled value is one rounding away from the exact one; where that rounding lands
    exactly on a half, the exact product's error term (Dekker's two-product) says which way
    the true value lies, so the result matches correctly rounded decimal conversion."""
    k = 6 - exponent
    if 0 <= k <= 22:
        scaled = x * POW10[k]
        residual = _product_error(x, POW10[k], scaled)  # x * 10**k - scaled, exactly
    elif -22 <= k < 0:
        scaled = x / POW10[-k]
        high = scaled * POW10[-k]
        # has the sign of x / 10**-k - scaled (x - high is exact: the two are within a factor 2)
        residual = (x - high) - _product_error(scaled, POW10[-k], high)
    else:  # far outside any joint value; plain rounding is close enough
        return np.int64(np.rint(x * 10.0 ** k))
    rounded = np.rint(scaled)
    if abs(scaled - rounded) == 0.5:
        if residual > 0:
            rounded = np.floor(scaled) + 1
        elif residual < 0:
            rounded = np.floor(scaled)
    return np.int64(rounded)


@njit(nogil=True, cache=True)
def _product_error(a, b, high):
    """a * b - high exactly, for high = fl(a * b) (Dekker's two-product with Veltkamp splits)."""
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    return ((a_hi * b_hi - high) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


@njit(nogil=True, cache=True)
def _split(a):
    t = 134217729.0 * a  # 2**27 + 1
    high = t - (t - a)
    return high, a - high
