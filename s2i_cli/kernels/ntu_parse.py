"""Parse an NTU RGB+D `.skeleton` file (formats.md §1.2) from its raw bytes.

Capacity is derived from the file size, never from the counts the file declares, so a
lying frame or body count cannot make us allocate more than the bytes could hold."""
from numba import njit

from .textscan import end_of_line, read_float, read_int, skip_fields

JOINTS = 25
BODY_INFO_VALUES = 10
JOINT_VALUES = 12
MIN_BODY_BYTES = JOINTS * 2 * JOINT_VALUES  # each joint line holds 12 tokens, each at least "0 "
MAX_BODIES_PER_FRAME = 6  # Kinect v2 tracks at most 6 bodies

(OK, TRUNCATED, BAD_NUMBER, BAD_JOINT_COUNT, BAD_FRAME_COUNT, EMPTY, BAD_BODY_COUNT, EXTRA_VALUES, TRAILING,
 OUT_OF_RANGE) = range(10)
REASONS = (
    "ok",
    "file ends early (truncated)",
    "not a number, or too few values on the line",
    "joint count is not 25",
    "frame count is larger than the file can hold",
    "empty file",
    "body count is negative or above 6",
    "more values on the line than the format has",
    "data after the last declared frame",
    "x, y or z is beyond the coordinate bound",
)


def capacity(nbytes: int) -> int:
    """Upper bound on body records a file of `nbytes` can hold."""
    return nbytes // MIN_BODY_BYTES + 1


@njit(nogil=True, cache=True)
def _count_line(data, pos):
    """A line holding one integer: (status, value, position after the line)."""
    value, pos, ok = read_int(data, pos)
    if not ok:
        return BAD_NUMBER, value, pos
    eol, pos = end_of_line(data, pos)
    return (OK if eol else EXTRA_VALUES), value, pos


@njit(nogil=True, cache=True)
def parse_ntu(data, body_frame, body_id, joints, max_abs):
    """Fill body_frame (B,), body_id (B,) int64 and joints (B, 25, 3) float32 with every
    body record in file order; x, y, z beyond ±max_abs (inf included) are OUT_OF_RANGE.
    Returns (status, line, frames, bodies): status 0 is OK, otherwise an index into
    REASONS and the 1-based line where it happened."""
    n = len(data)
    line = 1
    pos = 0
    while pos < n and (data[pos] == 32 or data[pos] == 9 or data[pos] == 13 or data[pos] == 10):
        if data[pos] == 10:
            line += 1
        pos += 1
    if pos >= n:
        return EMPTY, line, 0, 0
    status, frames, pos = _count_line(data, pos)
    if status != OK:
        return status, line, 0, 0
    if frames < 0 or frames > n // 2:  # every frame needs at least "0\n"
        return BAD_FRAME_COUNT, line, 0, 0
    line += 1
    cap = len(body_frame)
    b = 0
    for f in range(frames):
        if pos >= n:
            return TRUNCATED, line, f, b
        status, count, pos = _count_line(data, pos)
        if status != OK:
            return status, line, f, b
        if count < 0 or count > MAX_BODIES_PER_FRAME:
            return BAD_BODY_COUNT, line, f, b
        line += 1
        for _ in range(count):
            if pos >= n:
                return TRUNCATED, line, f, b
            if b >= cap:
                return TRUNCATED, line, f, b
            ident, pos, ok = read_int(data, pos)
            if not ok:
                return BAD_NUMBER, line, f, b
            pos, tokens, ok = skip_fields(data, pos)
            if not ok or tokens < BODY_INFO_VALUES - 1:
                return BAD_NUMBER, line, f, b
            if tokens > BODY_INFO_VALUES - 1:
                return EXTRA_VALUES, line, f, b
            line += 1
            if pos >= n:
                return TRUNCATED, line, f, b
            status, jc, pos = _count_line(data, pos)
            if status != OK:
                return status, line, f, b
            if jc != JOINTS:
                return BAD_JOINT_COUNT, line, f, b
            line += 1
            for j in range(JOINTS):
                if pos >= n:
                    return TRUNCATED, line, f, b
                for k in range(3):  # x, y, z are kept; the other nine fields are only validated
                    v, pos, ok = read_float(data, pos)
                    if not ok:
                        return (TRUNCATED if pos >= n else BAD_NUMBER), line, f, b
                    if not abs(v) <= max_abs:
                        return OUT_OF_RANGE, line, f, b
                    joints[b, j, k] = v
                pos, tokens, ok = skip_fields(data, pos)
                if not ok or tokens < JOINT_VALUES - 3:
                    return (TRUNCATED if pos >= n else BAD_NUMBER), line, f, b
                if tokens > JOINT_VALUES - 3:
                    return EXTRA_VALUES, line, f, b
                line += 1
            body_frame[b] = f
            body_id[b] = ident
            b += 1
    while pos < n:
        c = data[pos]
        if c == 10:
            line += 1
        elif c != 32 and c != 9 and c != 13:
            return TRAILING, line, frames, b
        pos += 1
    return OK, line, frames, b
