"""A pickle reader that builds data, never objects (pyskl's annotation pickles; issue 19).

`pickle.load` runs whatever callable a file names, so an untrusted pickle is a program. This
module does not use the pickle machine at all: it interprets the opcodes itself, and its
only outputs are dicts, lists, tuples, sets, frozensets, str, bytes, bytearray, int, float,
complex, bool, None, NumPy arrays of plain numbers or strings, and NumPy scalars of those.

- Globals are names, never objects. A GLOBAL / STACK_GLOBAL may name only the few things
  NumPy and protocol 2 write (`numpy.core.multiarray._reconstruct`, `numpy.dtype`,
  `multiarray.scalar`, `numeric._frombuffer`, `_codecs.encode`, `set`, `frozenset`,
  `complex`, `bytearray`, in the spellings of NumPy 1 and 2 and Python 2); anything else is
  refused with its (escaped, capped) name before anything happens. REDUCE and NEWOBJ on
  those names run this module's own builders, which check their arguments.
- Arrays are made from checked pieces only: a shape (non-negative Python ints), a dtype from
  a closed list (bool, int/uint 8-64, float 16-64, complex 64/128, bytes `S<n>`, str `U<n>`),
  made afresh from its string with an item size > 0, and raw bytes of exactly the right
  length, copied (`np.frombuffer(...).copy()`). `_reconstruct` and `numpy.dtype` give
  private records; BUILD is allowed on those records only, and reads the state tuple as
  data. NumPy's `__setstate__` is never called on anything (a file that rewrote a
  descriptor's item size that way corrupted memory: issue 19).
- Budgets from the file's size: the opcodes run and items handled (4x the size plus
  1,000,000), the bytes built (4x the size plus 256 MiB: array bytes, strings, container
  slots, memo entries, so copies made through the memo are counted), containers nested at
  most `MAX_DEPTH` deep (every opcode that builds a container or hashes a key checks it, by
  depths recorded as things are built: the reader never recurses), marks nested at most as
  deep. A container is sealed once it is put in another one, so a file cannot grow one that
  is already in place, nor make a cycle; a tuple's hashing cost is recorded when it is
  built (shared parts counted by identity, once), and the costs of all keys hashed count
  against the opcode budget. Error messages quote at most a few dozen characters of the file.

What a file can reach is `load`'s result; `load_file` turns every way a bad file fails into
one ValueError line that starts with the file's name."""
from __future__ import annotations

import codecs
import io
import math
import mmap
import pickle
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..safe_text import one_line

MAX_DEPTH = 100  # containers nested in containers; pyskl's files need 4
MAX_DIMS = 32
BYTES_PER_FILE_BYTE, BYTES_CONSTANT = 4, 256 << 20
NODES_PER_FILE_BYTE, NODES_CONSTANT = 4, 1_000_000
LAZY_TEXT = 1 << 12  # bytes of a str kept in the file until it is used
TRIM = 16 << 20  # bytes of a memory-mapped file read before the pages behind are handed back
QUOTE = 60  # characters of a file's text quoted in a message

# dtype codes an array or scalar may have: (kind, item size); S and U take any size > 0
NUMBER_CODES = frozenset({("b", 1), *(("i", n) for n in (1, 2, 4, 8)), *(("u", n) for n in (1, 2, 4, 8)),
                          ("f", 2), ("f", 4), ("f", 8), ("c", 8), ("c", 16)})
DTYPE_CODE = re.compile(r"([<>|=]?)([biufcSU])(\d{1,9})")
MAX_STRING_ITEM = 1 << 24  # bytes of one S/U item


class PickleRefused(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list, or builds something it may not."""


def _quote(text: Any) -> str:
    """A piece of the file for a message: escaped and cut short (cut before escaping, so a
    64 MB name costs nothing)."""
    if type(text) is _Text:
        text = text.buf[text.start:text.start + QUOTE * 8]
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text[:QUOTE * 2]).decode("utf-8", "backslashreplace")
    elif not isinstance(text, str):
        text = type(text).__name__
    return one_line(text[:QUOTE * 2], QUOTE)


# --------------------------------------------------------------------------- private records


class _Global:
    """An allowed global, as a name: what REDUCE / NEWOBJ will build with it."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


class _Dtype:
    """A `numpy.dtype(code, ...)` the file asked for, not yet a descriptor: kind, item size
    in bytes, byte order ('<', '>', '|' or '='). `descr()` makes a fresh one from a string."""

    __slots__ = ("kind", "size", "order", "built")

    def __init__(self, kind: str, size: int, order: str):
        self.kind, self.size, self.order, self.built = kind, size, order, False

    def descr(self) -> np.dtype:
        if self.kind in "SU":
            if self.size <= 0 or self.size > MAX_STRING_ITEM or self.kind == "U" and self.size % 4:
                raise PickleRefused(f"a dtype {self.kind} of {self.size} bytes per item")
            code = f"{self.kind}{self.size // 4 if self.kind == 'U' else self.size}"
        else:
            code = f"{self.kind}{self.size}"
        dtype = np.dtype((self.order if self.order in "<>" else "") + code)
        if dtype.itemsize <= 0 or dtype.itemsize != self.size or dtype.hasobject or dtype.fields is not None:
            raise PickleRefused(f"a dtype {code} that is not a plain number or string type")
        return dtype


class _Array:
    """`_reconstruct(ndarray, (0,), b'b')`: an array waiting for its BUILD."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None


class _Bytes:
    """A bytes (or bytearray) value, kept as a place in the file (or the str it encodes under
    protocol 2) until it is used: an array copies straight from there, and only a bytes
    value that ends up in the data is made (once: later uses share it)."""

    __slots__ = ("buf", "start", "stop", "text", "mutable", "value")

    def __init__(self, buf: Any = None, start: int = 0, stop: int = 0, text: str | None = None,
                 mutable: bool = False):
        self.buf, self.start, self.stop, self.text, self.mutable, self.value = buf, start, stop, text, mutable, None

    def view(self) -> Any:
        """The bytes, for one use (a slice of the file, or a temporary encoding)."""
        if self.text is not None:
            text = self.text if type(self.text) is str else self.text.decode()
            try:
                return text.encode("latin-1")
            except UnicodeEncodeError:
                raise PickleRefused("_codecs.encode of text that is not latin-1") from None
        return self.buf[self.start:self.stop]


class _Text:
    """A long str (LAZY_TEXT bytes or more), kept as a place in the file until it is used:
    protocol 2 writes an array's bytes as such a str, which only `_codecs.encode` reads,
    so it is decoded for the array and never kept (the memo would keep it to the end)."""

    __slots__ = ("buf", "start", "stop", "value")

    def __init__(self, buf: Any, start: int, stop: int):
        self.buf, self.start, self.stop, self.value = buf, start, stop, None

    def decode(self) -> str:
        return self.value if self.value is not None else str(self.buf[self.start:self.stop], "utf-8", "surrogatepass")


class _Args(tuple):
    """A tuple holding private records (a BUILD state, REDUCE arguments): not data until
    `_data` makes a plain tuple of it."""

    __slots__ = ()


_PRIVATE = (_Global, _Dtype, _Array, _Bytes, _Text, _Args)
_LEAVES = frozenset({str, float, bool, type(None), complex, bytes, np.ndarray})
_MUTABLE = (list, dict, set)
_CONTAINERS = (list, dict, set, tuple, frozenset, _Args)

ALLOWED_GLOBALS: dict[tuple[str, str], str] = {
    **{(mod, name): name for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name in ("_reconstruct", "scalar")},
    **{(mod, "ndarray"): "ndarray" for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray",
                                               "numpy.core.numeric", "numpy._core.numeric")},
    **{(mod, "dtype"): "dtype" for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "_frombuffer"): "_frombuffer" for mod in ("numpy.core.numeric", "numpy._core.numeric")},
    ("_codecs", "encode"): "encode",
    # "__builtin__": protocol-2 files written by Python 2
    **{(mod, name): name for mod in ("builtins", "__builtin__") for name in ("set", "frozenset", "complex",
                                                                             "bytearray", "bytes")},
}


# --------------------------------------------------------------------------- the reader


class Reader:
    """One pass over a pickle held in `data` (bytes, or a memory map of the file)."""

    def __init__(self, data: bytes | mmap.mmap):
        self.source = data
        self.data = memoryview(data).cast("B")
        self.size = len(self.data)
        self.pos = 0
        self.stack: list = []
        self.marks: list[list] = []
        self.memo: dict[int, Any] = {}
        self.info: dict[int, tuple[int, int]] = {}  # id(container) -> (depth, hashing cost)
        self.keep: list = []  # every container made (so the ids in `info` stay theirs)
        self.sealed: set[int] = set()  # ids of mutable containers put in another container
        self.nodes = 0
        self.max_nodes = NODES_PER_FILE_BYTE * self.size + NODES_CONSTANT
        self.built = 0
        self.max_bytes = BYTES_PER_FILE_BYTE * self.size + BYTES_CONSTANT
        self.proto = 0
        self.plain: dict[int, tuple] = {}  # id(_Args) -> its plain tuple
        self.trimmed = 0

    # ----------------------------------------------------------------- budgets

    def charge(self, nbytes: int, nodes: int = 0) -> None:
        self.built += nbytes
        self.nodes += nodes
        if self.nodes > self.max_nodes:
            raise PickleRefused(f"it takes more than {self.max_nodes:,} steps for a {self.size:,}-byte file "
                                f"(the bound is {NODES_PER_FILE_BYTE}x the file plus {NODES_CONSTANT:,})")
        if self.built + 8 * self.nodes > self.max_bytes:
            raise PickleRefused(f"it builds more than {self.max_bytes:,} bytes from a {self.size:,}-byte file "
                                f"(the bound is {BYTES_PER_FILE_BYTE}x the file plus {BYTES_CONSTANT >> 20} MiB)")

    def register(self, obj: Any, depth: int, cost: int) -> None:
        if depth > MAX_DEPTH:
            raise PickleRefused(f"containers nested more than {MAX_DEPTH} deep (a data file needs a few levels)")
        self.info[id(obj)] = (depth, cost)
        self.keep.append(obj)

    def child(self, value: Any) -> tuple[int, int]:
        """(depth, hashing cost) of a value about to go into a container; seals it."""
        if type(value) in _LEAVES:
            return 0, 1
        info = self.info.get(id(value))
        if info is None:
            if type(value) is int:
                return 0, 1 + value.bit_length() // 4096
            return 0, 1
        if isinstance(value, _MUTABLE):
            self.sealed.add(id(value))
        return info

    # ----------------------------------------------------------------- reading the file

    def read(self, n: int) -> memoryview:
        if n < 0:
            raise pickle.UnpicklingError("a negative length")
        end = self.pos + n
        if end > self.size:
            raise EOFError("the pickle ends early")
        piece = self.data[self.pos:end]
        self.pos = end
        return piece

    def readline(self) -> bytes:
        end = self.source.find(b"\n", self.pos)
        if end < 0:
            raise EOFError("the pickle ends early (a line without its end)")
        line = bytes(self.data[self.pos:end])
        self.pos = end + 1
        return line

    def int_of(self, n: int, signed: bool = False) -> int:
        pos = self.pos
        if pos + n > self.size:
            raise EOFError("the pickle ends early")
        self.pos = pos + n
        if n == 1:
            return self.data[pos]
        return int.from_bytes(self.data[pos:pos + n], "little", signed=signed)

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise pickle.UnpicklingError("an opcode takes a value from an empty stack")
        return self.stack.pop()

    def pop_mark(self) -> list:
        if not self.marks:
            raise pickle.UnpicklingError("an opcode needs a MARK that is not there")
        items, self.stack = self.stack, self.marks.pop()
        self.charge(0, len(items))
        return items

    # ----------------------------------------------------------------- values

    def data_of(self, value: Any) -> Any:
        """`value` as data (it goes into a container or is the result): a built array, made
        bytes, a plain tuple; a record that is not data is refused."""
        kind = type(value)
        if kind is _Array:
            if value.array is None:
                raise PickleRefused("an array is used before its BUILD gave it its data")
            return value.array
        if kind is _Bytes:
            if value.value is None:
                raw = value.view()
                self.charge(len(raw) + 40)
                value.value = bytearray(raw) if value.mutable else bytes(raw)
            return value.value
        if kind is _Text:
            if value.value is None:
                self.charge(value.stop - value.start + 64)
                value.value = value.decode()
            return value.value
        if kind is _Args:
            return self.plain_tuple(value)
        if kind is _Global:
            raise PickleRefused(f"{value.name} is used as a value (only data may be stored)")
        if kind is _Dtype:
            raise PickleRefused("a numpy.dtype is used as a value (only arrays of it may be stored)")
        return value

    def plain_tuple(self, args: _Args) -> tuple:
        """A tuple of data for `args` (and the _Args inside it), each made once."""
        made = self.plain
        todo = [args]
        while todo:
            top = todo[-1]
            if id(top) in made:
                todo.pop()
                continue
            inner = [x for x in top if type(x) is _Args and id(x) not in made]
            if inner:
                todo.extend(inner)
                continue
            todo.pop()
            plain = tuple(made[id(x)] if type(x) is _Args else self.data_of(x) for x in top)
            depth, cost = self.info[id(top)]
            self.register(plain, depth, cost)
            made[id(top)] = plain
        return made[id(args)]

    def new_tuple(self, items: list) -> tuple:
        depth, cost = 0, 1
        private = False
        for k, x in enumerate(items):
            kind = type(x)
            if kind is _Array and x.array is not None:
                x = items[k] = x.array
            elif kind in _PRIVATE:
                private = True
            d, c = self.child(x)
            depth, cost = max(depth, d), min(cost + c, 1 << 62)
        value = _Args(items) if private else tuple(items)
        self.charge(40 + 8 * len(items))
        self.register(value, depth + 1, cost)
        return value

    def key(self, value: Any) -> Any:
        """A dict key or set member: data, its hashing cost charged (so repeated hashing of a
        tuple that shares its parts cannot run for ever)."""
        value = self.data_of(value)
        if type(value) in _MUTABLE:
            raise PickleRefused(f"a {type(value).__name__} as a dict key or set member (unhashable)")
        self.charge(0, self.child(value)[1])
        return value

    def into(self, parent: Any, child: Any) -> Any:
        """`child` as data, checked to go into `parent` (its depth grows)."""
        child = self.data_of(child)
        if child is parent:
            raise PickleRefused("a container holds itself (s2i reads data without cycles)")
        depth, _ = self.child(child)
        pdepth, pcost = self.info[id(parent)]
        if depth >= pdepth:
            if depth + 1 > MAX_DEPTH:
                raise PickleRefused(f"containers nested more than {MAX_DEPTH} deep (a data file needs a few levels)")
            self.info[id(parent)] = (depth + 1, pcost)
        return child

    def target(self, kind: type) -> Any:
        """The container an APPEND / SETITEM / ADDITEMS works on: of `kind`, not yet sealed."""
        if not self.stack:
            raise pickle.UnpicklingError("an opcode takes a value from an empty stack")
        parent = self.stack[-1]
        if type(parent) is not kind:
            raise PickleRefused(f"an opcode adds items to a {type(parent).__name__}, not a {kind.__name__}")
        if id(parent) in self.sealed:
            raise PickleRefused(f"a {kind.__name__} grows after it was put in another container")
        return parent

    def new_container(self, value: Any) -> Any:
        self.charge(64)
        self.register(value, 1, 1)
        return value

    # ----------------------------------------------------------------- the loop

    def load(self) -> Any:
        dispatch = DISPATCH
        data = self.data
        size = self.size
        while True:
            if self.pos >= size:
                raise EOFError("the pickle ends before its STOP")
            op = data[self.pos]
            self.pos += 1
            self.nodes += 1
            handler = dispatch.get(op)
            if handler is None:
                raise pickle.UnpicklingError(f"opcode {op:#04x} at byte {self.pos - 1} is no pickle opcode s2i "
                                             "reads")
            if handler is STOP:
                if self.nodes > self.max_nodes:
                    self.charge(0)
                return self.data_of(self.pop())
            handler(self)
            if self.nodes & 0xFFF == 0:
                self.charge(0)
                if self.pos - self.trimmed > TRIM and type(self.source) is mmap.mmap:
                    self.trim()

    def trim(self) -> None:
        """Hand back the pages of the mapped file read so far (they are clean: a later look at
        them reads them again), so the file does not stay resident beside what it built."""
        end = self.pos - self.pos % mmap.PAGESIZE
        try:
            self.source.madvise(mmap.MADV_DONTNEED, self.trimmed, end - self.trimmed)
        except (AttributeError, OSError, ValueError):
            pass
        self.trimmed = end

    # ----------------------------------------------------------------- opcodes

    def op_proto(self) -> None:
        proto = self.int_of(1)
        if proto > pickle.HIGHEST_PROTOCOL:
            raise pickle.UnpicklingError(f"unsupported pickle protocol {proto}")
        self.proto = proto

    def op_frame(self) -> None:
        if self.int_of(8) > self.size - self.pos:
            raise EOFError("the pickle ends inside a frame")

    def op_mark(self) -> None:
        if len(self.marks) >= MAX_DEPTH:
            raise PickleRefused(f"marks nested more than {MAX_DEPTH} deep (a data file needs a few levels)")
        self.marks.append(self.stack)
        self.stack = []

    def op_pop(self) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def op_pop_mark(self) -> None:
        self.pop_mark()

    def op_dup(self) -> None:
        if not self.stack:
            raise pickle.UnpicklingError("DUP on an empty stack")
        self.push(self.stack[-1])

    def op_none(self) -> None:
        self.push(None)

    def op_true(self) -> None:
        self.push(True)

    def op_false(self) -> None:
        self.push(False)

    def op_int(self) -> None:
        line = self.readline()
        if line == b"00":
            self.push(False)
        elif line == b"01":
            self.push(True)
        else:
            self.charge(len(line) + 32)
            self.push(int(line))

    def op_binint(self) -> None:
        self.push(self.int_of(4, signed=True))

    def op_binint1(self) -> None:
        self.push(self.int_of(1))

    def op_binint2(self) -> None:
        self.push(self.int_of(2))

    def op_long(self) -> None:
        line = self.readline()
        self.charge(len(line) + 32)
        self.push(int(line[:-1] if line.endswith(b"L") else line))

    def _long(self, width: int) -> None:
        n = self.int_of(width, signed=width == 4)
        if n < 0:
            raise pickle.UnpicklingError("LONG4 with a negative byte count")
        self.charge(n + 32)
        self.push(int.from_bytes(self.read(n), "little", signed=True))

    def op_long1(self) -> None:
        self._long(1)

    def op_long4(self) -> None:
        self._long(4)

    def op_float(self) -> None:
        self.push(float(self.readline()))

    def op_binfloat(self) -> None:
        self.push(struct.unpack(">d", self.read(8))[0])

    def _text(self, n: int) -> None:
        start = self.pos
        raw = self.read(n)
        if n >= LAZY_TEXT:
            self.charge(64)
            self.stack.append(_Text(self.data, start, start + n))
            return
        self.charge(n + 64)
        self.stack.append(str(raw, "utf-8", "surrogatepass"))

    def op_binunicode(self) -> None:
        self._text(self.int_of(4))

    def op_short_binunicode(self) -> None:
        self._text(self.int_of(1))

    def op_binunicode8(self) -> None:
        self._text(self.int_of(8))

    def op_unicode(self) -> None:
        line = self.readline()
        self.charge(len(line) + 64)
        self.push(str(line, "raw-unicode-escape"))

    def _py2_string(self, raw: Any) -> None:  # Python 2 str: read as ASCII text, as pickle.load does
        self.charge(len(raw) + 64)
        self.push(str(raw, "ascii"))

    def op_string(self) -> None:
        line = self.readline()
        if len(line) < 2 or line[0] != line[-1] or line[0] not in b"\"'":
            raise pickle.UnpicklingError("the STRING opcode argument must be quoted")
        self.charge(len(line))
        self._py2_string(codecs.escape_decode(line[1:-1])[0])

    def op_binstring(self) -> None:
        self._py2_string(self.read(self.int_of(4, signed=True)))

    def op_short_binstring(self) -> None:
        self._py2_string(self.read(self.int_of(1)))

    def _bytes(self, n: int, mutable: bool = False) -> None:
        start = self.pos
        self.read(n)
        self.charge(64)
        self.push(_Bytes(self.data, start, start + n, mutable=mutable))

    def op_binbytes(self) -> None:
        self._bytes(self.int_of(4))

    def op_short_binbytes(self) -> None:
        self._bytes(self.int_of(1))

    def op_binbytes8(self) -> None:
        self._bytes(self.int_of(8))

    def op_bytearray8(self) -> None:
        self._bytes(self.int_of(8), mutable=True)

    # containers

    def op_empty_list(self) -> None:
        self.push(self.new_container([]))

    def op_empty_dict(self) -> None:
        self.push(self.new_container({}))

    def op_empty_set(self) -> None:
        self.push(self.new_container(set()))

    def op_empty_tuple(self) -> None:
        self.push(self.new_tuple([]))

    def op_list(self) -> None:
        items = self.pop_mark()
        value = self.new_container([])
        self.charge(8 * len(items))
        value.extend(self.into(value, x) for x in items)
        self.push(value)

    def op_tuple(self) -> None:
        self.push(self.new_tuple(self.pop_mark()))

    def op_tuple1(self) -> None:
        self.push(self.new_tuple([self.pop()]))

    def op_tuple2(self) -> None:
        b, a = self.pop(), self.pop()
        self.push(self.new_tuple([a, b]))

    def op_tuple3(self) -> None:
        c, b, a = self.pop(), self.pop(), self.pop()
        self.push(self.new_tuple([a, b, c]))

    def op_dict(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise pickle.UnpicklingError("DICT with an odd number of items")
        value = self.new_container({})
        self._set_items(value, items)
        self.push(value)

    def _set_items(self, target: dict, items: list) -> None:
        self.charge(100 * (len(items) // 2))
        for k in range(0, len(items) - 1, 2):
            key = self.into(target, self.key(items[k]))
            target[key] = self.into(target, items[k + 1])

    def op_setitem(self) -> None:
        value, key = self.pop(), self.pop()
        self._set_items(self.target(dict), [key, value])

    def op_setitems(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise pickle.UnpicklingError("SETITEMS with an odd number of items")
        self._set_items(self.target(dict), items)

    def op_append(self) -> None:
        value = self.pop()
        target = self.target(list)
        self.charge(16)
        target.append(self.into(target, value))

    def op_appends(self) -> None:
        items = self.pop_mark()
        target = self.target(list)
        self.charge(16 * len(items))
        target.extend(self.into(target, x) for x in items)

    def op_additems(self) -> None:
        items = self.pop_mark()
        target = self.target(set)
        self.charge(64 * len(items))
        for x in items:
            target.add(self.into(target, self.key(x)))

    def op_frozenset(self) -> None:
        items = self.pop_mark()
        self.push(self.make_set(frozenset, items))

    def make_set(self, kind: type, items: Any) -> Any:
        self.charge(200 + 64 * len(items), len(items))
        depth = 0
        keys = []
        for x in items:
            x = self.key(x)
            depth = max(depth, self.child(x)[0])
            keys.append(x)
        value = kind(keys)
        self.register(value, depth + 1, 1)
        return value

    # memo

    def _put(self, index: int) -> None:
        if not self.stack:
            raise pickle.UnpicklingError("a memo PUT on an empty stack")
        self.charge(100)
        self.memo[index] = self.stack[-1]

    def op_put(self) -> None:
        self._put(int(self.readline()))

    def op_binput(self) -> None:
        self._put(self.int_of(1))

    def op_long_binput(self) -> None:
        self._put(self.int_of(4))

    def op_memoize(self) -> None:
        self._put(len(self.memo))

    def _get(self, index: int) -> None:
        try:
            self.push(self.memo[index])
        except KeyError:
            raise pickle.UnpicklingError(f"memo value {index} is read before it is written") from None

    def op_get(self) -> None:
        self._get(int(self.readline()))

    def op_binget(self) -> None:
        self._get(self.int_of(1))

    def op_long_binget(self) -> None:
        self._get(self.int_of(4))

    # globals and what is built with them

    def _global(self, module: Any, name: Any) -> None:
        if isinstance(module, str) and isinstance(name, str) and (module, name) in ALLOWED_GLOBALS:
            self.push(_Global(ALLOWED_GLOBALS[(module, name)]))
            return
        raise PickleRefused(f"refused to load {_quote(module)}.{_quote(name)}: the file may only hold "
                            "containers, strings, numbers and NumPy arrays")

    def op_global(self) -> None:
        module = self.readline().decode("utf-8", "surrogateescape")
        name = self.readline().decode("utf-8", "surrogateescape")
        self._global(module, name)

    def op_stack_global(self) -> None:
        name, module = self.pop(), self.pop()
        self._global(module, name)

    def op_inst(self) -> None:
        module = self.readline().decode("utf-8", "surrogateescape")
        name = self.readline().decode("utf-8", "surrogateescape")
        raise PickleRefused(f"refused to load {_quote(module)}.{_quote(name)} (INST builds an instance): the file "
                            "may only hold containers, strings, numbers and NumPy arrays")

    def op_obj(self) -> None:
        raise PickleRefused("refused the OBJ opcode (it builds an instance of a class)")

    def op_newobj_ex(self) -> None:
        raise PickleRefused("refused the NEWOBJ_EX opcode (it builds an instance of a class)")

    def op_persid(self) -> None:
        raise PickleRefused("refused a persistent id: the file may only hold plain data")

    def op_ext(self) -> None:
        raise PickleRefused("refused an extension-registry global (EXT opcode)")

    def op_buffer(self) -> None:
        raise PickleRefused("refused an out-of-band buffer (the file must hold its data)")

    def op_reduce(self) -> None:
        args, func = self.pop(), self.pop()
        self.push(self.call(func, args))

    def op_newobj(self) -> None:
        args, cls = self.pop(), self.pop()
        if not (type(cls) is _Global and cls.name in ("complex", "set", "frozenset", "bytearray")):
            raise PickleRefused(f"refused NEWOBJ of {self.what(cls)} (only complex, set, frozenset, bytearray)")
        self.push(self.call(cls, args))

    @staticmethod
    def what(value: Any) -> str:
        return value.name if type(value) is _Global else f"a {type(value).__name__.lstrip('_')}"

    def call(self, func: Any, args: Any) -> Any:
        if type(func) is not _Global:
            raise PickleRefused(f"refused a call of {self.what(func)} (only the allowed globals may be called)")
        if not isinstance(args, tuple):
            raise PickleRefused(f"the arguments of {func.name} are a {type(args).__name__}, not a tuple")
        builder = BUILDERS.get(func.name)
        if builder is None:
            raise PickleRefused(f"refused a call of numpy.{func.name} (only _reconstruct may build an array)")
        return builder(self, *args)

    def op_build(self) -> None:
        state = self.pop()
        if not self.stack:
            raise pickle.UnpicklingError("BUILD on an empty stack")
        target = self.stack[-1]
        if type(target) is _Array and target.array is None:
            target.array = self.array_state(state)
        elif type(target) is _Dtype and not target.built:
            self.dtype_state(target, state)
        else:
            raise PickleRefused(f"refused BUILD on {self.what(target)} (only on the arrays and dtypes this reader "
                                "makes, once)")

    # ----------------------------------------------------------------- numpy, checked

    def array_state(self, state: Any) -> np.ndarray:
        """ndarray's state `(1, shape, dtype, is_fortran, raw bytes)` (older: without the 1)."""
        if not isinstance(state, tuple) or len(state) not in (4, 5) or len(state) == 5 and state[0] != 1:
            raise PickleRefused("an array state that is not (1, shape, dtype, fortran, bytes)")
        shape, dtype, fortran, raw = state[-4:]
        if type(fortran) not in (bool, int) or type(raw) is not _Bytes:
            raise PickleRefused("an array state whose data are not bytes (object arrays are refused)")
        array = self.make_array(raw, dtype, shape, "F" if fortran else "C")
        if not array.dtype.isnative:  # as ndarray.__setstate__ does: the values in native byte order
            array = array.astype(array.dtype.newbyteorder("="), order="K")
        return array

    def make_array(self, raw: Any, dtype: Any, shape: Any, order: str, axes: Any = None) -> np.ndarray:
        if type(dtype) is not _Dtype:
            raise PickleRefused(f"an array whose dtype is {self.what(dtype)}")
        if (not isinstance(shape, tuple) or len(shape) > MAX_DIMS
                or not all(type(d) is int and 0 <= d for d in shape)):
            raise PickleRefused(f"an array shape that is not up to {MAX_DIMS} non-negative integers")
        descr = dtype.descr()
        count = math.prod(shape)
        if math.prod(max(d, 1) for d in shape) > self.max_bytes:
            raise PickleRefused(f"an array of shape {_quote(str(shape))} (more elements than the file can hold)")
        nbytes = count * descr.itemsize
        if type(raw) is not _Bytes:
            raise PickleRefused(f"an array whose data are {self.what(raw)}, not bytes")
        if raw.text is None and raw.stop - raw.start != nbytes:  # before anything is decoded
            raise PickleRefused(f"an array {_quote(str(shape))} of {descr.str} needs {nbytes} bytes, the file "
                                f"gives {raw.stop - raw.start}")
        self.charge(nbytes + 112)
        data = raw.view()
        if len(data) != nbytes:
            raise PickleRefused(f"an array {_quote(str(shape))} of {descr.str} needs {nbytes} bytes, the file "
                                f"gives {len(data)}")
        flat = np.frombuffer(data, dtype=descr, count=count).copy() if count else np.empty(0, descr)
        del data
        if axes is not None:
            if not isinstance(axes, tuple) or sorted(a if type(a) is int else -1 for a in axes) != list(
                    range(len(shape))):
                raise PickleRefused("numpy _frombuffer: an axis order that is not a permutation of the axes")
            return flat.reshape(shape, order="C").transpose(axes)
        return flat.reshape(shape, order=order)

    def dtype_state(self, dtype: _Dtype, state: Any) -> None:
        """numpy.dtype's state `(3, order, None, None, None, elsize, alignment, flags)` (version
        4 adds metadata None): only a plain type's, read as data (never __setstate__)."""
        if (not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] != len(state) - 5
                or state[1] not in ("<", ">", "|", "=") or any(x is not None for x in state[2:5])
                or len(state) == 9 and state[8] is not None
                or not all(type(x) is int for x in state[5:8])):
            raise PickleRefused("a dtype state that is not a plain number or string type's")
        order, elsize, alignment, flags = state[1], state[5], state[6], state[7]
        if dtype.kind in "SU" and elsize != -1:
            dtype.size = elsize
        elif elsize not in (-1, dtype.size):
            raise PickleRefused(f"a dtype {dtype.kind}{dtype.size} whose state says {elsize} bytes per item")
        dtype.order = order
        fresh = dtype.descr()
        if alignment not in (-1, fresh.alignment) or flags not in (0, fresh.flags):
            raise PickleRefused(f"a dtype {fresh.str} with the alignment {alignment} and flags {flags} of another "
                                "type")
        dtype.built = True


def _dtype(reader: Reader, code: Any = None, align: Any = False, copy: Any = False) -> _Dtype:
    m = DTYPE_CODE.fullmatch(code) if isinstance(code, str) else None
    if m is None or type(align) not in (bool, int) or type(copy) not in (bool, int):
        raise PickleRefused(f"numpy.dtype({_quote(code)}): only a plain number or string type given by its code")
    order, kind, size = m.group(1) or "=", m.group(2), int(m.group(3))
    if kind == "U":
        size *= 4
    if kind not in "SU" and (kind, size) not in NUMBER_CODES:
        raise PickleRefused(f"numpy.dtype({_quote(code)}): only bool, int, uint, float, complex, S and U types")
    reader.charge(64)
    return _Dtype(kind, size, order if order != "=" or kind not in "SU" else "|")


def _reconstruct(reader: Reader, subtype: Any = None, shape: Any = None, tag: Any = None) -> _Array:
    # ndarray.__reduce__ writes an empty placeholder; the shape, dtype and data come with BUILD
    if not (type(subtype) is _Global and subtype.name == "ndarray") or shape != (0,) or type(shape) is not tuple:
        raise PickleRefused(f"_reconstruct of {reader.what(subtype)} (only numpy.ndarray with shape (0,) is allowed)")
    if type(tag) not in (_Bytes, str):
        raise PickleRefused("_reconstruct with a type tag that is not bytes")
    reader.charge(64)
    return _Array()


def _scalar(reader: Reader, dtype: Any = None, data: Any = None) -> Any:
    if type(dtype) is not _Dtype or type(data) is not _Bytes:
        raise PickleRefused("numpy scalar: only a number or string dtype with its bytes is allowed")
    descr = dtype.descr()
    reader.charge(descr.itemsize + 64)
    raw = data.view()
    if len(raw) != descr.itemsize:
        raise PickleRefused(f"numpy scalar of {descr.str} with {len(raw)} bytes")
    return np.frombuffer(raw, dtype=descr, count=1)[0]


def _frombuffer(reader: Reader, buf: Any = None, dtype: Any = None, shape: Any = None, order: Any = "C",
                axis_order: Any = None) -> np.ndarray:
    """Protocol 5's spelling of an array: its bytes in a (bytearray) buffer; an array
    contiguous only in a permuted axis order (a transposed one) comes as order "K" with
    that `axis_order`."""
    if type(buf) is not _Bytes or order not in ("C", "F", "K"):
        raise PickleRefused("numpy _frombuffer: only a bytes buffer, a dtype, a shape and an order are allowed")
    axes = axis_order if order == "K" and axis_order is not None else None
    return reader.make_array(buf, dtype, shape, "F" if order == "F" else "C", axes)


def _encode(reader: Reader, text: Any = None, encoding: Any = "utf-8") -> _Bytes:
    """Protocol 2's spelling of a bytes object: `_codecs.encode(str, 'latin1')`."""
    if type(text) not in (str, _Text) or encoding not in ("latin1", "latin-1"):
        raise PickleRefused(f"_codecs.encode of a {type(text).__name__}, {_quote(encoding)} (only str, 'latin1')")
    reader.charge(64)
    return _Bytes(text=text)


def _bytearray(reader: Reader, data: Any = None, encoding: Any = None) -> bytearray:
    """bytearray as pickles write it (bytes, or str + 'latin-1' under protocol 2), never
    `bytearray(n)`: a hostile file would have it allocate n zero bytes."""
    if data is None:
        raw = b""
    elif type(data) is _Bytes and encoding is None:
        raw = data.view()
    elif isinstance(data, str) and encoding in ("latin1", "latin-1"):
        raw = data.encode("latin-1")
    else:
        raise PickleRefused(f"bytearray of a {type(data).__name__} (only bytes, or str with 'latin-1')")
    reader.charge(len(raw) + 64)
    return bytearray(raw)


def _empty_bytes(reader: Reader) -> _Bytes:
    """Protocol 2's spelling of b"": `bytes()` (no other call of bytes: `bytes(n)` allocates)."""
    return _Bytes(b"", 0, 0)


def _complex(reader: Reader, real: Any = 0.0, imag: Any = 0.0) -> complex:
    if type(real) not in (int, float) or type(imag) not in (int, float):
        raise PickleRefused("complex of anything but two numbers")
    return complex(real, imag)


def _set_of(kind: type):
    def build(reader: Reader, items: Any = ()) -> Any:
        items = reader.data_of(items)
        if type(items) not in (list, tuple):
            raise PickleRefused(f"{kind.__name__} of a {type(items).__name__} (only of a list or tuple)")
        return reader.make_set(kind, items)
    return build


BUILDERS = {"dtype": _dtype, "_reconstruct": _reconstruct, "scalar": _scalar, "_frombuffer": _frombuffer,
            "encode": _encode, "bytearray": _bytearray, "bytes": _empty_bytes, "complex": _complex, "set": _set_of(set),
            "frozenset": _set_of(frozenset)}

STOP = object()
_OPS = {
    pickle.PROTO: Reader.op_proto, pickle.FRAME: Reader.op_frame, pickle.STOP: STOP,
    pickle.MARK: Reader.op_mark, pickle.POP: Reader.op_pop, pickle.POP_MARK: Reader.op_pop_mark,
    pickle.DUP: Reader.op_dup,
    pickle.NONE: Reader.op_none, pickle.NEWTRUE: Reader.op_true, pickle.NEWFALSE: Reader.op_false,
    pickle.INT: Reader.op_int, pickle.BININT: Reader.op_binint, pickle.BININT1: Reader.op_binint1,
    pickle.BININT2: Reader.op_binint2, pickle.LONG: Reader.op_long, pickle.LONG1: Reader.op_long1,
    pickle.LONG4: Reader.op_long4, pickle.FLOAT: Reader.op_float, pickle.BINFLOAT: Reader.op_binfloat,
    pickle.STRING: Reader.op_string, pickle.BINSTRING: Reader.op_binstring,
    pickle.SHORT_BINSTRING: Reader.op_short_binstring,
    pickle.UNICODE: Reader.op_unicode, pickle.BINUNICODE: Reader.op_binunicode,
    pickle.SHORT_BINUNICODE: Reader.op_short_binunicode, pickle.BINUNICODE8: Reader.op_binunicode8,
    pickle.BINBYTES: Reader.op_binbytes, pickle.SHORT_BINBYTES: Reader.op_short_binbytes,
    pickle.BINBYTES8: Reader.op_binbytes8, pickle.BYTEARRAY8: Reader.op_bytearray8,
    pickle.EMPTY_LIST: Reader.op_empty_list, pickle.EMPTY_DICT: Reader.op_empty_dict,
    pickle.EMPTY_SET: Reader.op_empty_set, pickle.EMPTY_TUPLE: Reader.op_empty_tuple,
    pickle.LIST: Reader.op_list, pickle.TUPLE: Reader.op_tuple, pickle.TUPLE1: Reader.op_tuple1,
    pickle.TUPLE2: Reader.op_tuple2, pickle.TUPLE3: Reader.op_tuple3, pickle.DICT: Reader.op_dict,
    pickle.SETITEM: Reader.op_setitem, pickle.SETITEMS: Reader.op_setitems,
    pickle.APPEND: Reader.op_append, pickle.APPENDS: Reader.op_appends,
    pickle.ADDITEMS: Reader.op_additems, pickle.FROZENSET: Reader.op_frozenset,
    pickle.PUT: Reader.op_put, pickle.BINPUT: Reader.op_binput, pickle.LONG_BINPUT: Reader.op_long_binput,
    pickle.MEMOIZE: Reader.op_memoize, pickle.GET: Reader.op_get, pickle.BINGET: Reader.op_binget,
    pickle.LONG_BINGET: Reader.op_long_binget,
    pickle.GLOBAL: Reader.op_global, pickle.STACK_GLOBAL: Reader.op_stack_global,
    pickle.INST: Reader.op_inst, pickle.OBJ: Reader.op_obj, pickle.NEWOBJ_EX: Reader.op_newobj_ex,
    pickle.PERSID: Reader.op_persid, pickle.BINPERSID: Reader.op_persid,
    pickle.EXT1: Reader.op_ext, pickle.EXT2: Reader.op_ext, pickle.EXT4: Reader.op_ext,
    pickle.NEXT_BUFFER: Reader.op_buffer, pickle.READONLY_BUFFER: Reader.op_buffer,
    pickle.REDUCE: Reader.op_reduce, pickle.NEWOBJ: Reader.op_newobj, pickle.BUILD: Reader.op_build,
}
DISPATCH = {code[0]: handler for code, handler in _OPS.items()}


# --------------------------------------------------------------------------- entry points


def loads(data: Any) -> Any:
    """The data in a pickle held in memory."""
    return Reader(data if isinstance(data, (bytes, mmap.mmap)) else bytes(data)).load()


def load(file: BinaryIO) -> Any:
    """The data in the pickle `file`: memory-mapped when it is a regular file, else read."""
    try:
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return loads(file.read())
    try:
        reader = Reader(mapped)
        try:
            return reader.load()
        finally:
            reader.data.release()
            del reader
    finally:
        try:
            mapped.close()
        except BufferError:  # a view is still held somewhere (an error's traceback): the GC closes it
            pass


def load_path(path: Path) -> Any:
    """`load` of a file, with a one-line ValueError for a file that is not a readable pickle."""
    try:
        with open(path, "rb") as f:
            return load_file(f, str(path))
    except OSError as exc:
        raise ValueError(f"{one_line(path)}: cannot read it ({exc.strerror or exc})") from None


def load_file(file: BinaryIO, name: str) -> Any:
    """`load`, with every way a bad file fails as a one-line ValueError starting with `name`."""
    name = one_line(name)
    try:
        return load(file)
    except PickleRefused as exc:
        raise ValueError(one_line(f"{name}: {exc}")) from None
    except (pickle.UnpicklingError, EOFError, struct.error) as exc:
        raise ValueError(one_line(f"{name}: not a complete pickle ({exc or 'ends early'})")) from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeDecodeError, OverflowError,
            RecursionError) as exc:
        raise ValueError(one_line(f"{name}: a malformed pickle ({type(exc).__name__}: {_quote(str(exc))})")) from None
    except MemoryError:
        raise ValueError(f"{name}: not enough memory to unpickle it") from None
