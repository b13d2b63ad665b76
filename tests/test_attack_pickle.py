"""The pickle reader and the importers, attacked on purpose (issue 19): a generator per attack
class builds hostile files opcode by opcode, and each is converted by `s2i convert` in a child
process under a memory cap (address space) and a time limit. Every case must end in a
non-zero exit with exactly one line on stderr, or in a correct conversion; never a signal,
an abort (134), a segmentation fault (139), a timeout or a traceback; and nothing the file
asks to run may run.

The default run sends a representative of every variant through `s2i convert` and every
generated case through the reader in this process (milliseconds each); the long setting
(S2I_ATTACK_LONG=1, or `-m slow`) sends every generated case through `s2i convert`."""
from __future__ import annotations

import io
import os
import pickle
import pickletools
import resource
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from s2i_cli.formats import safe_pickle

S2I = str(Path(sys.executable).with_name("s2i"))
AS_LIMIT = 3 << 30  # the child's address space
TIMEOUT = float(os.environ.get("S2I_ATTACK_TIMEOUT", "300"))  # a hang guard: a cold CLI start on a loaded 2-core machine passed 60 s
LONG = bool(os.environ.get("S2I_ATTACK_LONG"))
FLAG = "ran"  # what a command in the file would create, in the folder the conversion runs in

# --------------------------------------------------------------------------- an assembler


def u(text: str) -> bytes:  # BINUNICODE
    raw = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def by(raw: bytes) -> bytes:  # BINBYTES
    return b"B" + struct.pack("<I", len(raw)) + raw


def i(n: int) -> bytes:  # BININT, or LONG1 beyond 32 bits
    if -2**31 <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw if len(raw) < 256 else b"\x8b" + struct.pack("<i", len(raw)) + raw


def put(k: int) -> bytes:
    return b"r" + struct.pack("<I", k)


def get(k: int) -> bytes:
    return b"j" + struct.pack("<I", k)


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def glob(module: str, name: str, route: str = "GLOBAL") -> bytes:
    if route == "STACK_GLOBAL":
        return u(module) + u(name) + b"\x93"
    return b"c" + f"{module}\n{name}\n".encode("utf-8", "surrogatepass")


def dtype(code: str, order: str = "<", elsize: int = -1, align: int = -1, flags: int = 0, state: bytes | None = None,
          build: bool = True) -> bytes:
    ops = glob("numpy", "dtype") + u(code) + b"\x89\x88\x87R"
    if build:
        ops += (state if state is not None else tup(i(3), u(order), b"NNN", i(elsize), i(align), i(flags))) + b"b"
    return ops


def array(shape: tuple, dtype_ops: bytes, raw_ops: bytes, fortran: bool = False) -> bytes:
    """An ndarray as NumPy pickles it: _reconstruct(ndarray, (0,), b'b') then BUILD."""
    return (glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + tup(i(0)) + by(b"b")
            + b"\x87R" + tup(i(1), tup(*(i(d) for d in shape)), dtype_ops, b"\x88" if fortran else b"\x89", raw_ops)
            + b"b")


PLACEHOLDER = "@PAYLOAD@"


def document(payload: bytes | None, where: str = "keypoint") -> bytes:
    """A small, valid pyskl 3D file with `payload` (opcodes leaving one value) in place of one
    sample's `where` (or of the whole annotation list: where="annotations")."""
    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"S001C001P001R001A00{k + 1}", "label": k, "total_frames": 6,
             "keypoint": (rng.normal(size=(1, 6, 25, 3)) + 3).astype(np.float16)} for k in range(3)]
    doc = {"split": {"xsub_train": [a["frame_dir"] for a in anns[:2]], "xsub_val": [anns[2]["frame_dir"]]},
           "annotations": anns}
    if payload is None:
        return pickle.dumps(doc, protocol=2)
    if where == "annotations":
        doc["annotations"] = PLACEHOLDER
    else:
        anns[1][where] = PLACEHOLDER
    data = pickle.dumps(doc, protocol=2)
    marker = u(PLACEHOLDER)
    assert data.count(marker) == 1
    return data.replace(marker, payload)


@dataclass
class Case:
    name: str
    data: bytes | Callable[[], bytes]  # a callable: made when the case runs (the big ones)
    expect: str = "refused"  # "refused": one line, exit 2; "any": that, or a conversion
    fragment: str = ""  # in the one line, when refused
    dataset: str = "pyskl"
    rep: bool = False  # sent through `s2i convert` in the default run too
    flag: bool = False  # the file tries to create FLAG
    inprocess: bool = True  # safe to read in this process (not a would-be crash)
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- the generators


def dtype_rewrites() -> list[Case]:
    """NumPy's dtype.__setstate__ rewrote a descriptor's item size in place, under an array
    already built with it (memory corruption from a 436-byte file): the reader never calls it."""
    s8 = dtype("S8", "|", 8, 1, 0) + put(900)
    first = array((4,), s8, by(b"A" * 32)) + put(901)
    rebuild = get(900) + tup(i(3), u("|"), b"NNN", i(1 << 20), i(1), i(0)) + b"b0"
    cases = [
        Case("second BUILD on a dtype after an array used it",
             b"(" + first + rebuild + array((4,), get(900), by(b"B" * 32)) + b"l", fragment="only on the arrays and dtypes", rep=True),
        Case("BUILD gives a float32 dtype 4096 bytes per item", array((4,), dtype("f4", elsize=4096), by(b"\0" * 16)),
             fragment="says 4096 bytes"),
        Case("BUILD gives an S dtype more bytes than the data", array((4,), dtype("S8", "|", 1 << 20, 1), by(b"A" * 32)),
             fragment="needs"),
        Case("S dtype of 2**40 bytes per item", array((1,), dtype("S8", "|", 1 << 40, 1), by(b"A" * 8))),
        Case("U dtype with an item size that is no multiple of 4", array((1,), dtype("U2", "<", 7, 4, 8), by(b"A" * 7))),
        Case("dtype alignment lie", array((4,), dtype("f4", align=64), by(b"\0" * 16)), fragment="alignment"),
        Case("dtype with fields in its state", array((1,), dtype("f4", state=tup(i(3), u("<"), b"N", tup(u("a")),
                                                                             b"N", i(-1), i(-1), i(0))), by(b"\0" * 4)),
             fragment="not a plain"),
        Case("BUILD twice on one array", array((1,), dtype("f4"), by(b"\0" * 4)) + tup(i(1), tup(i(2)), dtype("f4"),
                                                                                         b"\x89", by(b"\0" * 8)) + b"b",
             fragment="only on the arrays and dtypes", rep=True),
        Case("BUILD on a dict", b"}" + tup(i(1)) + b"b", fragment="refused BUILD"),
        Case("BUILD on a list (sets its __dict__ in pickle)", b"]}" + b"b", fragment="refused BUILD"),
        Case("BUILD on a global", glob("numpy", "dtype") + b"}b", fragment="refused BUILD"),
        Case("BUILD on a numpy scalar", glob("numpy.core.multiarray", "scalar") + dtype("f4") + by(b"\0" * 4)
             + b"\x86R" + tup(i(3), u("<"), b"NNN", i(64), i(-1), i(0)) + b"b", fragment="refused BUILD"),
        Case("array used before its BUILD", b"(" + glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
             + tup(i(0)) + by(b"b") + b"\x87Rl", fragment="before its BUILD"),
        Case("an array state holding a list (an object array)", glob("numpy.core.multiarray", "_reconstruct")
             + glob("numpy", "ndarray") + tup(i(0)) + by(b"b") + b"\x87R" + tup(i(1), tup(i(1)), dtype("f4"), b"\x89",
                                                                               b"]") + b"b"),
        Case("_reconstruct with a huge placeholder", glob("numpy.core.multiarray", "_reconstruct")
             + glob("numpy", "ndarray") + tup(i(10**12)) + by(b"b") + b"\x87R", fragment="_reconstruct"),
        Case("numpy.ndarray called directly", glob("numpy", "ndarray") + tup(tup(i(2)), u("f4"), by(b"\0" * 8)) + b"R",
             fragment="refused a call"),
    ]
    for code in ("O8", "V8", "M8", "m8", "f16", "c32", "O", "S", "|V16", "a8", "<f4,<f4", "float32"):
        cases.append(Case(f"dtype code {code!r}", array((1,), dtype(code), by(b"\0" * 16)), fragment="numpy.dtype"))
    cases.append(Case("dtype code not a str", glob("numpy", "dtype") + b"]\x89\x88\x87R", fragment="numpy.dtype"))
    return cases


def flag_rewrites() -> list[Case]:
    """A float32 descriptor with REFCOUNT / NEEDS_PYAPI / ITEM_IS_POINTER flags passed every
    check and was converted; the reader makes descriptors afresh and refuses such states."""
    cases = []
    for flags in (0x01, 0x10, 0x1F, 0x08, 0x7FFFFFFF, -1):
        cases.append(Case(f"float32 dtype with flags {flags:#x}", array((4,), dtype("f4", flags=flags), by(b"\0" * 16)),
                          fragment="flags", rep=flags == 0x1F))
    cases.append(Case("U dtype flags of a number type", array((1,), dtype("U1", "<", 4, 4, 0x1F), by(b"\0" * 4)),
                      fragment="flags"))
    return cases


DEEP = 1_000_000


def nests(depth: int = DEEP) -> list[Case]:
    """Containers nested a million deep through every opcode that builds one or hashes a key:
    a recursive reader, hashing or repr segfaulted or raised RecursionError."""
    n = depth
    def chain(start: bytes, step: bytes, end: bytes = get(0)) -> Callable[[], bytes]:
        return lambda: start + step * n + end

    chains = {  # mark-free: depth grows one container per step (memo 0: the previous level)
        "TUPLE1": chain(b")", b"\x85", b""),
        "APPEND": chain(b"]" + put(0), b"]" + get(0) + b"a" + put(0) + b"0"),
        "SETITEM": chain(b"}" + put(0), b"}" + b"K\x00" + get(0) + b"s" + put(0) + b"0"),
        "APPENDS": chain(b"]" + put(0), b"](" + get(0) + b"e" + put(0) + b"0"),
        "SETITEMS": chain(b"}" + put(0), b"}(" + b"K\x00" + get(0) + b"u" + put(0) + b"0"),
        "FROZENSET": chain(b")" + put(0), b"(" + get(0) + b"\x91" + put(0) + b"0"),
        "ADDITEMS": chain(b")" + put(0), b"\x8f(" + get(0) + b"\x90" + put(0) + b"0"),
        "REDUCE with list args": chain(glob("builtins", "frozenset") + put(1) + b"0)" + put(0),
                                       b"0" + get(1) + b"]" + get(0) + b"a\x85R" + put(0), b""),
        "REDUCE with tuple args": chain(glob("builtins", "frozenset") + put(1) + b"0)" + put(0),
                                        b"0" + get(1) + get(0) + b"\x85\x85R" + put(0), b""),
        "dict key": lambda: b")" + b"\x85" * (n - 1) + b"}" + b"\x85" + b"K\x00s",
    }
    marked = {  # mark-nested: what the old reader took to C recursion
        "DICT": lambda: (b"(K\x00") * n + b"}" + b"d" * n,
        "LIST": lambda: b"(" * n + b"l" * n,
        "TUPLE": lambda: b"(" * n + b"t" * n,
        "INST": lambda: b"(" * n + b"i__main__\nX\n" * n,
        "OBJ": lambda: b"(" * n + glob("builtins", "object") + b"o" * n,
        "FROZENSET marks": lambda: b"(" * n + b"\x91" * n,
        "SETITEMS marks": lambda: (b"}(K\x00") * n + b"}" + b"u" * n,
        "APPENDS marks": lambda: b"](" * n + b"]" + b"e" * n,
        "dict key marks": lambda: b"}(" + b"(" * n + b"t" * n + b"]u",
    }
    reps = ("TUPLE1", "REDUCE with list args", "DICT", "dict key")
    cases = [Case(f"{name} nested {n:,} deep", make, rep=name in reps) for name, make in {**chains, **marked}.items()]
    return cases


def doublings(levels: int = 60) -> list[Case]:
    """Repeated references: each level holds the previous one twice, 2**60 paths in a 1 KB
    file. A walk per path hung; hashing a tuple key of them hangs Python itself."""
    lists = b"]" + put(0) + b"0" + b"".join(b"](" + get(k) + get(k) + b"e" + put(k + 1) + b"0" for k in range(levels))
    tuples = b")" + put(0) + b"0" + b"".join(get(k) + get(k) + b"\x86" + put(k + 1) + b"0" for k in range(levels))
    top = get(levels)
    return [
        Case("lists doubling 60 times as a keypoint", document(lists + top), expect="any", rep=True),
        Case("lists doubling 60 times as the annotations", document(lists + top, "annotations"), expect="any"),
        Case("lists doubling 60 times as a label", document(lists + top, "label"), expect="any"),
        Case("tuple key doubling 60 times", document(tuples + b"}" + top + b"K\x00s"), fragment="steps", rep=True),
        Case("frozenset member doubling 60 times", document(tuples + b"(" + top + b"\x91"), fragment="steps"),
        Case("set() of tuples doubling 60 times", document(tuples + glob("builtins", "set") + b"]" + top + b"a\x85R"),
             fragment="steps"),
        Case("dict key doubling 60 times, the dict through DICT", document(tuples + b"(" + top + b"K\x00d"),
             fragment="steps"),
    ]


def zero_itemsize() -> list[Case]:
    """A 126-byte pickle built a zero-itemsize array of 2**62 elements and iterated it."""
    return [
        Case("S0 array of 2**62 elements", array((1 << 62,), dtype("S0", "|", 0, 1), by(b"")), rep=True),
        Case("U0 array of 2**62 elements", array((1 << 62,), dtype("U0", "<", 0, 4, 8), by(b""))),
        Case("S1 array given item size 0 by BUILD", array((1 << 62,), dtype("S1", "|", 0, 1), by(b""))),
        Case("float32 array of 2**62 elements, no bytes", array((1 << 62,), dtype("f4"), by(b""))),
        Case("float32 array (0, 2**62)", array((0, 1 << 62), dtype("f4"), by(b"")), fragment="more elements"),
        Case("float32 array (2**31, 2**31) with 16 bytes", array((1 << 31, 1 << 31), dtype("f4"), by(b"\0" * 16))),
        Case("negative dimension", array((-4,), dtype("f4"), by(b"\0" * 16)), fragment="shape"),
        Case("float dimension", glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + tup(i(0))
             + by(b"b") + b"\x87R" + tup(i(1), tup(b"G" + struct.pack(">d", 4.0)), dtype("f4"), b"\x89",
                                          by(b"\0" * 16)) + b"b", fragment="shape"),
        Case("40 dimensions", array((1,) * 40, dtype("f4"), by(b"\0" * 4)), fragment="shape"),
        Case("_frombuffer of S0, 2**62 elements", glob("numpy.core.numeric", "_frombuffer")
             + tup(b"\x96" + struct.pack("<Q", 0), dtype("S0", "|", 0, 1), tup(i(1 << 62)), u("C")) + b"R", rep=True),
        Case("scalar of S0", glob("numpy.core.multiarray", "scalar") + dtype("S0", "|", 0, 1) + by(b"") + b"\x86R"),
    ]


def amplifications(copies: int = 3000) -> list[Case]:
    """Copy amplification through the memo: 1 MB of bytes stored once, used thousands of
    times (1 MB -> 2.1 GB); every copy counts against the 4x-the-file budget."""
    mb = 1 << 20
    raw = by(b"\x01" * mb) + put(5000)
    one_array = array((mb // 4,), dtype("f4"), get(5000))
    text = u("\x01" * mb) + put(5001)
    encode = glob("_codecs", "encode") + get(5001) + u("latin1") + b"\x86R"
    big = b"](" + b"K\x00" * 100_000 + b"e" + put(5002)
    return [
        Case("one 1 MB buffer as 3000 arrays", b"(" + raw + one_array * copies + b"l", fragment="builds more than",
             rep=True),
        Case("one 1 MB str encoded 3000 times", b"(" + text + encode * copies + b"l", fragment="builds more than"),
        Case("bytearray of one 1 MB buffer 3000 times", b"(" + raw + (glob("builtins", "bytearray") + get(5000)
                                                                      + b"\x85R") * copies + b"l",
             fragment="builds more than"),
        Case("set() of one 100,000-item list 3000 times", b"(" + big + (glob("builtins", "set") + get(5002)
                                                                        + b"\x85R") * copies + b"l",
             fragment=""),
        Case("one 1 MB bytes shared 100,000 times", document(b"(" + raw + b"0" + get(5000) * 100_000 + b"l"),
             expect="any"),
    ]


DENIED = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"),
          ("functools", "partial"), ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"), ("numpy", "load"),
          ("numpy.ctypeslib", "as_array"), ("builtins", "__import__"), ("subprocess", "Popen"),
          ("numpy", "frombuffer"), ("numpy.core.multiarray", "_reconstructx"), ("numpy.core.numeric", "_frombuffer "),
          ("builtins", "object"), ("__main__", "X"), ("numpy.ma.core", "MaskedArray"),
          ("os\x1b[31m\n", "system\u202e"), ("numpy\udcff", "dtype")]
ROUTES = ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ")


def denied_globals() -> list[Case]:
    """Disallowed globals by every route; a call would create FLAG."""
    cases = []
    for module, name in DENIED:
        for route in ROUTES:
            command = u(f"touch {FLAG}")
            if route == "INST":
                if "\n" in module + name:
                    continue
                p = b"(" + command + b"i" + f"{module}\n{name}\n".encode("utf-8", "surrogatepass")
            elif route == "OBJ":
                p = b"(" + glob(module, name, "STACK_GLOBAL") + command + b"o"
            else:
                p = glob(module, name, route) + command + b"\x85R"
            rep = (module, name, route) in (("os", "system", "GLOBAL"), ("os", "system", "INST")) or (module, name, route) == ("os\x1b[31m\n", "system\u202e",
                                                                                 "STACK_GLOBAL")
            cases.append(Case(f"{module}.{name} via {route}", document(p), fragment="refused", flag=True, rep=rep))
    return cases


def huge_messages() -> list[Case]:
    """A 64 MB pickle gave a 268 MB "one-line" error: names and values are quoted cut short."""
    big = "x" * (16 << 20)
    return [
        Case("16 MB module name via STACK_GLOBAL", u(big) + u("system") + b"\x93", fragment="refused", rep=True),
        Case("16 MB name via GLOBAL", b"cos\n" + big.encode() + b"\n", fragment="refused"),
        Case("16 MB dtype code", glob("numpy", "dtype") + u(big) + b"\x89\x88\x87R", fragment="numpy.dtype"),
        Case("16 MB encoding name", glob("_codecs", "encode") + u("a") + u(big) + b"\x86R", fragment="_codecs"),
        Case("a label of 100,000 digits", document(b"L" + b"9" * 100_000 + b"L\n", "label"), expect="any"),
        Case("a label of 5,000 binary digits", document(i(7 ** 6000), "label"), expect="any", rep=True),
        Case("a negative label", document(i(-3), "label"), expect="any"),
        Case("a negative total_frames", document(i(-6), "total_frames"), expect="any"),
        Case("an escape sequence as frame_dir", document(u("\x1b]0;owned\x07"), "frame_dir"), expect="any"),
    ]


def plain() -> list[Case]:
    return [Case("the undamaged document", document(None), expect="any", rep=True)]


def npz_file(members: dict[str, bytes | tuple[bytes, int]], compress: bool = True) -> bytes:
    """A zip of .npy members; a (header, n) member is the header and n zero bytes, written in
    pieces (a bomb is never whole in this process)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            if isinstance(data, bytes):
                zf.writestr(name, data)
                continue
            header, n = data
            with zf.open(name, "w", force_zip64=True) as out:
                out.write(header)
                piece = b"\0" * (1 << 24)
                while n > 0:
                    out.write(piece[:n])
                    n -= len(piece)
    return buf.getvalue()


def npy_header(shape, descr: str = "<f4", fortran: bool = False, raw_dict: str | None = None) -> bytes:
    text = raw_dict or repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    text = text + " " * ((64 - (len(text) + 11) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1")


def npz_bombs() -> list[Case]:
    """CTR-GCN .npz files: members that inflate far beyond the file, headers that lie about
    their counts, keys of mixed types."""
    n = 2_000_000
    zeros = np.zeros((64, 300, 150), np.float32)
    big = 4096  # rows of 300×150 zeros: 737 MB inflated from a ~700 KB member
    streamed = (npy_header((big, 300, 150)), big * 300 * 150 * 4)
    eye = np.eye(60, dtype=np.float32)
    cases = [
        Case("2,000,000 samples declared in 2 KB", npz_file({"x_train.npy": npy_header((n, 300, 150)),
                                                             "y_train.npy": npy_header((n, 60))}), dataset="ctrgcn",
             rep=True),
        Case("a 737 MB member of zeros", lambda: npz_file({"x_train.npy": streamed, "y_train.npy": npy_header(
            (big, 60)) + np.tile(eye[0], (big, 1)).tobytes()}),
             fragment="as a bomb", dataset="ctrgcn", rep=True),
        Case("2,000,000 samples of 0 frames", lambda: npz_file({"x_train.npy": npy_header((n, 0, 150)),
                                                                "y_train.npy": (npy_header((n, 60), "|u1"), n * 60)}),
             fragment="frames per sample", dataset="ctrgcn", rep=True),
        Case("one sample of 100,000 frames", lambda: npz_file({
            "x_train.npy": (npy_header((1, 100_000, 150)), 100_000 * 150 * 4),
            "y_train.npy": npy_header((1, 60)) + eye[:1].tobytes()}), fragment="frames per sample", dataset="ctrgcn"),
        Case("y declares 2**40 rows", npz_file({"x_train.npy": npy_header((64, 300, 150)) + zeros.tobytes(),
                                                "y_train.npy": npy_header((1 << 40, 60))}), dataset="ctrgcn"),
        Case("mixed key types in the header", npz_file({"x_train.npy": npy_header(
            (1,), raw_dict="{'descr': '<f4', 'fortran_order': False, 'shape': (1, 300, 150), 1: 2, (1,): 'x'}")
            + zeros[:1].tobytes(), "y_train.npy": npy_header((1, 60)) + eye[:1].tobytes()}), dataset="ctrgcn",
             rep=True),
        Case("a header of 5000 dims", npz_file({"x_train.npy": npy_header(
            (), raw_dict="{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 5000 + ")}"),
            "y_train.npy": npy_header((1, 60)) + eye[:1].tobytes()}), dataset="ctrgcn"),
        Case("an object dtype", npz_file({"x_train.npy": npy_header((1, 300, 150), "|O"),
                                          "y_train.npy": npy_header((1, 60)) + eye[:1].tobytes()}), dataset="ctrgcn"),
        Case("a zero-itemsize dtype", npz_file({"x_train.npy": npy_header((1 << 62, 300, 150), "|V0"),
                                                "y_train.npy": npy_header((1, 60)) + eye[:1].tobytes()}),
             dataset="ctrgcn"),
        Case("a header declaring more than its bytes", npz_file({"x_train.npy": npy_header((64, 300, 150))
                                                                 + zeros[:1].tobytes(),
                                                                 "y_train.npy": npy_header((64, 60)) + eye[:1].tobytes()},
                                                                compress=False), dataset="ctrgcn"),
    ]
    return cases


def all_cases() -> list[Case]:
    return [*plain(), *dtype_rewrites(), *flag_rewrites(), *nests(), *doublings(), *zero_itemsize(), *amplifications(),
            *denied_globals(), *huge_messages(), *npz_bombs()]


def wrap(case: Case) -> bytes:
    """The case's bytes as a whole file: a payload of opcodes becomes a pickle."""
    data = case.data() if callable(case.data) else case.data
    if case.dataset != "pyskl" or data.startswith(b"\x80\x02"):
        return data
    return b"\x80\x02" + data + b"."


# --------------------------------------------------------------------------- running a case


def run_convert(case: Case, folder: Path) -> subprocess.CompletedProcess:
    raw = folder / ("NTU60_CS.npz" if case.dataset == "ctrgcn" else "ntu60_3danno.pkl")
    flag = folder / FLAG
    raw.write_bytes(wrap(case))

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", COLUMNS="200", PYTHONFAULTHANDLER="")
    try:
        done = subprocess.run([S2I, "convert", case.dataset, str(raw), str(folder / "out.zarr"), "--workers", "1"],
                              capture_output=True, text=True, errors="replace", timeout=TIMEOUT, preexec_fn=limits,
                              env=env, cwd=folder)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case.name}: no answer within {TIMEOUT} s (a hang)")
    assert not flag.exists(), f"{case.name}: the file ran a command"
    return done


def check_outcome(case: Case, done: subprocess.CompletedProcess) -> None:
    where = f"{case.name}: exit {done.returncode}, stderr {done.stderr[-2000:]!r}"
    assert done.returncode >= 0 and done.returncode not in (134, 139), where
    assert "Traceback" not in done.stderr + done.stdout, where
    if done.returncode in (0, 1):  # converted (1: some samples rejected, each with its reason)
        assert case.expect == "any", where
        return
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, where
    assert len(lines[0]) < 1000 and "\x1b" not in lines[0] and "\u202e" not in lines[0], where
    assert case.fragment in lines[0], where


def owns(array: np.ndarray) -> bool:
    """The array's memory is its own (a copy), not the file's nor a bytes object's."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array.base is None


def check_in_process(case: Case) -> None:
    """The reader alone, in this process: one line (a ValueError), or data of the allowed kinds."""
    data = wrap(case)
    if case.dataset != "pyskl":
        return
    try:
        got = safe_pickle.load_file(io.BytesIO(data), "f.pkl")
    except ValueError as exc:
        text = str(exc)
        assert text.startswith("f.pkl: ") and "\n" not in text and len(text) < 1000, (case.name, text[:300])
        assert case.expect == "any" or case.fragment in text, (case.name, text)
        return
    assert case.expect == "any", (case.name, "read without an error")
    stack = [got]
    seen = set()
    while stack:  # every value is of the allowed kinds (by identity: shared parts once)
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, dict):
            stack += [*x.keys(), *x.values()]
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack += list(x)
        elif isinstance(x, np.ndarray):
            assert x.dtype.kind in "biufcSU" and not x.dtype.hasobject and owns(x), case.name
        else:
            assert isinstance(x, (str, bytes, bytearray, int, float, complex, np.generic)) or x is None, (case.name, x)


CASES = all_cases()
IDS = [c.name for c in CASES]


@pytest.mark.parametrize("case", [c for c in CASES if c.inprocess], ids=[c.name for c in CASES if c.inprocess])
def test_every_case_in_process_is_one_line_or_data(case):
    check_in_process(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.rep], ids=[c.name for c in CASES if c.rep])
def test_representatives_through_convert(case, tmp_path):
    check_outcome(case, run_convert(case, tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="the long setting: S2I_ATTACK_LONG=1")
@pytest.mark.parametrize("case", [c for c in CASES if not c.rep], ids=[c.name for c in CASES if not c.rep])
def test_every_case_through_convert(case, tmp_path):
    check_outcome(case, run_convert(case, tmp_path))


# --------------------------------------------------------------------------- what must still load


def keypoint_docs() -> list[dict]:
    rng = np.random.default_rng(3)
    docs = []
    for dt in (np.float32, np.float16, np.int16, np.int64, np.uint8):
        kp = (rng.normal(size=(2, 7, 25, 3)) * 50).astype(dt)
        docs.append({"split": {"xsub_train": ["a"], "xsub_val": ["b"]},
                     "annotations": [{"frame_dir": "a", "label": 0, "total_frames": 7, "keypoint": kp,
                                      "img_shape": (1080, 1920), "original_shape": (1080, 1920)},
                                     {"frame_dir": "b", "label": np.int64(1), "total_frames": 7,
                                      "keypoint": np.asfortranarray(kp), "keypoint_score": kp[..., 0].astype(np.float16),
                                      "flags": [True, None, 1.5, b"raw", "\u00e9\u4e2d", (1, (2, 3))]}]})
    return docs


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
                and a.flags.f_contiguous == b.flags.f_contiguous)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy.core, as NumPy 1 wrote it
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("spelling", ["numpy._core", "numpy.core"])
def test_real_pyskl_style_pickles_load_as_pickle_load_does(protocol, spelling):
    for doc in keypoint_docs():
        data = pickle.dumps(doc, protocol=protocol)
        if spelling == "numpy.core":  # as NumPy 1 wrote them
            data = data.replace(b"numpy._core", b"numpy.core")
            if protocol >= 4:  # STACK_GLOBAL: the module name is a counted str
                data = data.replace(b"\x8c\x16numpy.core.multiarray", b"\x8c\x15numpy.core.multiarray")
                data = data.replace(b"\x8c\x13numpy.core.numeric", b"\x8c\x12numpy.core.numeric")
                data = pickletools.optimize(data)  # its frames again of the right length
        expected = pickle.loads(data)
        got = safe_pickle.loads(data)
        assert same(got, expected), (protocol, spelling)
        for ann in got["annotations"]:
            assert ann["keypoint"].flags.writeable and owns(ann["keypoint"])


def test_big_endian_and_string_arrays_and_scalars_load_as_pickle_load_does():
    doc = {"be": np.arange(6, dtype=">f4").reshape(2, 3), "s": np.array([b"ab", b"c"]), "u": np.array(["x", "yz\u00e9"]),
           "scalars": [np.float16(1.5), np.int8(-3), np.bool_(True), np.str_("ok"), np.complex64(1 + 2j)],
           "empty": np.zeros((0, 3), np.float32), "set": {1, (2, 3)}, "fs": frozenset({"a"}), "ba": bytearray(b"x")}
    for protocol in (2, 3, 4, 5):
        data = pickle.dumps(doc, protocol=protocol)
        expected, got = pickle.loads(data), safe_pickle.loads(data)
        assert same({k: v for k, v in got.items() if k not in ("set", "fs", "ba", "scalars")},
                    {k: v for k, v in expected.items() if k not in ("set", "fs", "ba", "scalars")}), protocol
        assert got["set"] == expected["set"] and got["fs"] == expected["fs"] and got["ba"] == expected["ba"]
        assert [(type(x), x) for x in got["scalars"]] == [(type(x), x) for x in expected["scalars"]]


# --------------------------------------------------------------------------- importer budgets


def test_one_keypoint_array_named_by_many_samples_spills_within_the_bound(tmp_path):
    """A 487 KB pyskl file naming one keypoint array for every sample spilled 300 MB; the
    spill now stops at 4x the file plus 16 MB, the samples beyond rejected with the reason."""
    from s2i_cli.formats import get_format, pyskl

    kp = (np.random.default_rng(0).normal(size=(2, 300, 25, 3)) + 3).astype(np.float16)  # 90 KB
    anns = [{"frame_dir": f"v{k:04d}", "label": k % 5, "total_frames": 300, "keypoint": kp} for k in range(3000)]
    path = tmp_path / "shared.pkl"
    path.write_bytes(pickle.dumps({"annotations": anns}, protocol=2))
    size = path.stat().st_size
    assert size < 500_000
    fmt = get_format("pyskl", cache_dir=str(tmp_path / "cache"))
    items, rejected, _ = fmt.discover(path)
    bound = pyskl.SPILL_PER_FILE_BYTE * size + pyskl.SPILL_CONSTANT
    assert 0 < len(items) < 3000 and len(items) + len(rejected) == 3000
    assert all("the spill would pass" in r.reason for r in rejected)
    assert sum(f.stat().st_size for f in (tmp_path / "cache").iterdir()) < bound + 10_000


def test_the_spill_is_bounded_by_the_file_size(tmp_path, monkeypatch):
    from s2i_cli.formats import get_format, pyskl

    monkeypatch.setattr(pyskl, "SPILL_CONSTANT", 0)
    monkeypatch.setattr(pyskl, "SPILL_PER_FILE_BYTE", 0.5)
    rng = np.random.default_rng(1)
    anns = [{"frame_dir": f"v{k}", "label": 0, "total_frames": 10,
             "keypoint": (rng.normal(size=(1, 10, 25, 3)) + 3).astype(np.float16)} for k in range(10)]
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps({"annotations": anns}, protocol=2))
    items, rejected, _ = get_format("pyskl", cache_dir=str(tmp_path / "c")).discover(path)
    assert 0 < len(items) < 10 and all("the spill would pass" in r.reason for r in rejected)


@pytest.mark.parametrize("field, value, reason", [
    ("label", 7 ** 6000, "label an integer of 16845 bits"), ("label", -3, "label -3 is not an integer"),
    ("total_frames", -6, "total_frames -6"), ("total_frames", 10 ** 5000, "total_frames an integer of"),
], ids=["label of 5,000 digits", "negative label", "negative total_frames", "total_frames of 5,000 digits"])
def test_huge_and_negative_numbers_reject_their_sample(tmp_path, field, value, reason):
    from s2i_cli.formats import get_format

    rng = np.random.default_rng(2)
    anns = [{"frame_dir": f"v{k}", "label": 0, "total_frames": 6,
             "keypoint": (rng.normal(size=(1, 6, 25, 3)) + 3).astype(np.float16)} for k in range(2)]
    anns[1][field] = value
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps({"annotations": anns}, protocol=2))
    items, rejected, _ = get_format("pyskl", cache_dir=str(tmp_path / "c")).discover(path)
    assert [it.name for it in items] == ["v0"] and [r.name for r in rejected] == ["v1"]
    assert reason in rejected[0].reason and len(rejected[0].reason) < 200, rejected[0].reason


def test_npz_discovery_reads_headers_and_compressed_labels_a_block_at_a_time(tmp_path, monkeypatch):
    """y is read READ_CHUNK bytes at a time, x not at all: discovery of a compressed file."""
    from s2i_cli.formats import ctrgcn, get_format

    monkeypatch.setattr(ctrgcn, "READ_CHUNK", 1000)
    rng = np.random.default_rng(3)
    x = np.zeros((50, 300, 150), np.float32)
    x[:, :20] = rng.normal(size=(50, 20, 150))
    y = np.eye(60, dtype=np.float32)[rng.integers(0, 60, 50)]
    path = tmp_path / "NTU60_CS.npz"
    np.savez_compressed(path, x_train=x, y_train=y)
    reads = []
    real = ctrgcn.iter_rows

    def counting(p, member, start, stop):
        reads.append(member.name)
        for first, block in real(p, member, start, stop):
            assert block.nbytes <= max(1000, int(np.prod(member.shape[1:])) * member.dtype.itemsize)
            yield first, block
    monkeypatch.setattr(ctrgcn, "iter_rows", counting)
    fmt = get_format("ctrgcn")
    items, rejected, _ = fmt.discover(path)
    assert len(items) == 50 and not rejected and reads == ["y_train"]
    assert [it.label for it in items] == list(np.argmax(y, axis=1))
    got = fmt.read_items(path, b"", items[10:20])
    assert all(np.array_equal(s, ctrgcn.real_frames(x[10 + k])[0]) for k, (s, _) in enumerate(got))


def test_a_malicious_checkpoint_says_it_holds_code_not_that_it_is_corrupt(tmp_path):
    import torch

    from s2i_cli.train.plumbing import TrainingError, load_checkpoint

    class Run:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'ran'}",)

    for legacy in (True, False):
        path = tmp_path / f"evil{legacy}.pt"
        torch.save({"model": Run()}, path, _use_new_zipfile_serialization=not legacy)
        with pytest.raises(TrainingError) as info:
            load_checkpoint(path, "train again")
        text = str(info.value)
        assert "holds code or Python objects" in text and "system" in text and "corrupt" not in text, text
        assert "\n" not in text and not (tmp_path / "ran").exists()
