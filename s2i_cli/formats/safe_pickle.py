"""A restricted unpickler for data files made by other tools (pyskl's annotation pickles).

`pickle.load` runs whatever callable a file names, so an untrusted pickle is a program.
`load` resolves only a short allow-list of globals, and the ones it allows check their
arguments, so a file can build builtins containers, strings, numbers and NumPy arrays of
numbers and nothing else. Any other global (`os.system`, `builtins.exec`, `numpy.load`, ...)
is refused with `PickleRefused` naming it, before anything is called.

What the allow-list covers: NumPy arrays as `ndarray.__reduce__` writes them
(`_reconstruct(ndarray, (0,), b'b')` then `__setstate__`; protocol 5: `_frombuffer`), their dtypes (`numpy.dtype`),
NumPy scalars (`multiarray.scalar`), both spellings of NumPy's module (`numpy.core` in files
written by NumPy 1, `numpy._core` by NumPy 2), bytes under protocol 2 (`_codecs.encode(str,
'latin1')`), and the builtins that protocol 2 builds by a call (set, frozenset, complex,
bytearray). Dicts, lists, tuples, str, int, float, bool and None need no global at all."""
from __future__ import annotations

import _codecs
import builtins
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# dtype kinds an array may have: bool, signed, unsigned, float, complex, bytes, str.
# Object arrays are refused: they are how a pickle would smuggle arbitrary objects.
NUMBER_KINDS = frozenset("biufcSU")


class PickleRefused(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list, or builds something it may not."""


class _NDArrayType:
    """Stands for `numpy.ndarray` in a pickle: only `_reconstruct` may use it (calling the
    real class from a pickle could build arrays over arbitrary buffers and strides)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise PickleRefused("refused a call of numpy.ndarray (only _reconstruct may build an array)")


NDARRAY = _NDArrayType()


def _dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    if not isinstance(obj, str):
        raise PickleRefused(f"numpy.dtype({obj!r}): only a dtype given by its code is allowed")
    dtype = np.dtype(obj, align=bool(align), copy=bool(copy))
    _check_dtype(dtype)
    return dtype


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in NUMBER_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise PickleRefused(f"an array of dtype {dtype} (only arrays of numbers or strings are allowed)")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # ndarray.__reduce__ always writes an empty placeholder; the real shape and data come with
    # __setstate__ (so a file cannot ask for a huge allocation here)
    if subtype is not NDARRAY or shape != (0,):
        raise PickleRefused(f"_reconstruct of {subtype!r}, shape {shape!r} (only numpy.ndarray, (0,) is allowed)")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes):
        raise PickleRefused("numpy scalar: only a number dtype with its bytes is allowed")
    _check_dtype(dtype)
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any, axis_order: Any = None) -> np.ndarray:
    """Protocol 5's spelling of an array: its bytes in a (bytearray / PickleBuffer) buffer;
    an array contiguous only in a permuted axis order (a transposed one) comes as order "K"
    with that `axis_order`."""
    if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)) or not isinstance(dtype, np.dtype):
        raise PickleRefused("numpy _frombuffer: only a bytes buffer and a number dtype are allowed")
    _check_dtype(dtype)
    array = np.frombuffer(buf, dtype=dtype)
    if order == "K" and axis_order is not None:
        if not isinstance(axis_order, tuple) or sorted(axis_order) != list(range(len(shape))):
            raise PickleRefused(f"numpy _frombuffer: axis order {axis_order!r} is not a permutation of the axes")
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order="F" if order == "F" else "C")


def _bytearray(data: Any = b"", encoding: Any = None) -> bytearray:
    """bytearray as pickles write it (bytes, or str + 'latin-1' under protocol 2), never
    `bytearray(n)`: a corrupt or hostile file would have it allocate n zero bytes."""
    if isinstance(data, bytes) and encoding is None:
        return bytearray(data)
    if isinstance(data, str) and encoding in ("latin1", "latin-1"):
        return bytearray(data, "latin-1")
    raise PickleRefused(f"bytearray of {type(data).__name__} (only bytes, or str with 'latin-1')")


def _latin1(text: Any, encoding: Any = "utf-8") -> bytes:
    """Protocol 2's spelling of a bytes object: `_codecs.encode(str, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PickleRefused(f"_codecs.encode with {type(text).__name__}, {encoding!r} (only str, 'latin1')")
    return _codecs.encode(text, "latin1")


class _Call:
    """An allowed function as the unpickler sees it: a pickle's BUILD opcode sets attributes
    on whatever it is given, and must not change these (e.g. a function's __defaults__)."""

    __slots__ = ("_func", "_name")

    def __init__(self, func: Any, name: str):
        object.__setattr__(self, "_func", func)
        object.__setattr__(self, "_name", name)

    def __setattr__(self, key: str, value: Any) -> None:
        raise PickleRefused(f"refused to modify {self._name}")

    def __call__(self, *args: Any) -> Any:
        return self._func(*args)

    def __repr__(self) -> str:
        return self._name


_NUMPY = {"_reconstruct": _reconstruct, "dtype": _dtype, "scalar": _scalar}
ALLOWED: dict[tuple[str, str], Any] = {
    **{(mod, name): _Call(func, f"numpy.{name}") for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name, func in _NUMPY.items()},
    **{(mod, "ndarray"): NDARRAY for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray",
                                             "numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "dtype"): _Call(_dtype, "numpy.dtype"),
    **{(mod, "_frombuffer"): _Call(_frombuffer, "numpy._frombuffer")
       for mod in ("numpy.core.numeric", "numpy._core.numeric")},
    ("_codecs", "encode"): _Call(_latin1, "_codecs.encode"),
    # types are immutable, and protocol 2 builds some with NEWOBJ, which needs the type itself;
    # "__builtin__": protocol-2 files written by Python 2
    **{(mod, name): getattr(builtins, name) for mod in ("builtins", "__builtin__")
       for name in ("set", "frozenset", "complex")},
    **{(mod, "bytearray"): _Call(_bytearray, "bytearray") for mod in ("builtins", "__builtin__")},
}


MAX_KEY_DEPTH = 1000  # tuples nested in a dict key or set member; Python's own recursion limit


def _check_hashed(values: Any) -> None:
    """Dict keys and set members are hashed as they are stored, and hashing a tuple recurses
    in C with no depth check: a key nested 2,000,000 tuples deep (a 4 MB file) crashed the
    process with a segmentation fault. Refuse one nested deeper than MAX_KEY_DEPTH."""
    stack = [(v, 1) for v in values if type(v) is tuple]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_KEY_DEPTH:
            raise PickleRefused(f"a dict key or set member nested more than {MAX_KEY_DEPTH} tuples deep")
        stack.extend((v, depth + 1) for v in value if type(v) is tuple)


def _set_members(func: Any, args: Any) -> Any:
    """What `set(args[0])` or `frozenset(args[0])` would hash; nothing for any other call."""
    if (func is set or func is frozenset) and isinstance(args, tuple) and args and isinstance(args[0], (list, tuple)):
        return args[0]
    return ()


# what each opcode hashes, read off the stack before it runs (after a MARK, `stack` holds
# only what was pushed since)
_HASHES: dict[int, Any] = {
    pickle.SETITEM[0]: lambda u: u.stack[-2:-1],
    pickle.SETITEMS[0]: lambda u: u.stack[0::2],
    pickle.ADDITEMS[0]: lambda u: u.stack,
    pickle.FROZENSET[0]: lambda u: u.stack,
    pickle.REDUCE[0]: lambda u: _set_members(u.stack[-2], u.stack[-1]),
    pickle.NEWOBJ[0]: lambda u: _set_members(u.stack[-2], u.stack[-1]),
    pickle.NEWOBJ_EX[0]: lambda u: _set_members(u.stack[-3], u.stack[-2]),
}


def _guarded(load: Any, hashes: Any) -> Any:
    def guarded(self: pickle._Unpickler) -> None:
        _check_hashed(hashes(self))
        load(self)
    return guarded


class RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, its globals only from `ALLOWED`. Not the C one: its memo is
    an array indexed by numbers read from the file, so a corrupt LONG_BINPUT index
    (175,726,962, from one flipped byte) made it allocate 2.7 GB; this one's memo is a dict.
    On pyskl's files it is about as fast: the time goes into decoding the arrays' bytes."""

    dispatch = {**pickle._Unpickler.dispatch,
                **{op: _guarded(pickle._Unpickler.dispatch[op], hashes) for op, hashes in _HASHES.items()}}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise PickleRefused(f"refused to load {module}.{name}: the file may only hold containers, strings, "
                                "numbers and NumPy arrays") from None

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("refused a persistent id: the file may only hold plain data")


def load(file: BinaryIO) -> Any:
    """Unpickle `file` with the allow-list and check every array in the result."""
    obj = RestrictedUnpickler(file).load()
    _check_arrays(obj)
    return obj


def load_path(path: Path) -> Any:
    """`load` of a file, with a one-line ValueError for a file that is not a readable pickle."""
    try:
        with open(path, "rb") as f:
            return load_file(f, str(path))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def load_file(file: BinaryIO, name: str) -> Any:
    """`load`, with every way a bad file fails as a one-line ValueError starting with `name`."""
    try:
        return load(file)
    except PickleRefused as exc:
        raise ValueError(f"{name}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, struct.error) as exc:
        raise ValueError(f"{name}: not a complete pickle ({exc or 'ends early'})") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeDecodeError, OverflowError) as exc:
        raise ValueError(f"{name}: a malformed pickle ({type(exc).__name__}: {exc})") from None
    except MemoryError:
        raise ValueError(f"{name}: not enough memory to unpickle it") from None


def _check_arrays(obj: Any) -> None:
    """Every array in the result has a number dtype (a pickle's __setstate__ could change it)."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, np.ndarray):
            _check_dtype(x.dtype)
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
