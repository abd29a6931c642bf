"""A restricted unpickler for DCRNN adjacency pickles, which are untrusted input.

A pickle can name any importable callable and have it called while loading. The adjacency
format (``[sensor_ids, sensor_id_to_ind, adj_mx]``, written by Python 2 with protocol 2) needs
only containers, strings and numbers (pickle opcodes, no imports) plus the names numpy uses to
rebuild an ndarray. Those names resolve to stand-ins that check the array's header (shape, plain
element type, byte count) and build it from the raw bytes themselves; every other name is refused
before it is imported.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np

from pgti.errors import InputError

# An array's elements, at most (2**31 floats = 8 GiB): a header claiming more is refused before
# any allocation.
MAX_ELEMENTS = 2**31
_DTYPE_KINDS = set("biufSU")  # bool, ints, floats, byte and text strings: never objects or records

# What a truncated or corrupt pickle raises while its opcodes are read.
_CORRUPT = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, struct.error, MemoryError, OverflowError)


class _Bad(Exception):
    """A numpy object whose pickled state is not one an adjacency pickle can hold."""


class _DType:
    """Stands in for ``numpy.dtype(spec, align, copy)`` + BUILD(state): only plain element types."""

    def __init__(self, spec=None, align=False, copy=True):
        if not isinstance(spec, str):
            raise _Bad(f"dtype {spec!r}")
        try:
            self.dtype = np.dtype(spec)
        except TypeError:
            raise _Bad(f"dtype {spec!r}") from None
        if self.dtype.kind not in _DTYPE_KINDS or self.dtype.fields is not None or self.dtype.subdtype is not None:
            raise _Bad(f"dtype {spec!r}")

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, elsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 5 or any(v is not None for v in state[2:5]):
            raise _Bad("a structured or sub-array dtype")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])
        elif state[1] not in ("|", "="):
            raise _Bad(f"byte order {state[1]!r}")


class _Array:
    """Stands in for ``numpy.core.multiarray._reconstruct(ndarray, shape, typecode)`` + BUILD:
    the array is made by us, from the raw bytes, after its header is checked."""

    def __init__(self, subtype=None, shape=None, typecode=None):
        if subtype is not _NDArray:
            raise _Bad("an array subclass")
        self.array = None

    def __setstate__(self, state):
        # (version, shape, dtype, is_fortran, raw data)
        if not isinstance(state, tuple) or len(state) != 5:
            raise _Bad("array state")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DType) or not isinstance(shape, tuple) or not all(
                type(d) is int and d >= 0 for d in shape):
            raise _Bad("array shape or dtype")
        if isinstance(raw, str):  # Python 2's str, read with encoding="latin1"
            raw = raw.encode("latin1")
        if not isinstance(raw, (bytes, bytearray)):
            raise _Bad("array data that is not raw bytes")
        count = int(np.prod(shape, dtype=np.float64))
        if count > MAX_ELEMENTS or len(raw) != count * dtype.dtype.itemsize:
            raise _Bad(f"{len(raw)} data bytes for shape {shape} of {dtype.dtype}")
        self.array = np.frombuffer(bytes(raw), dtype=dtype.dtype).reshape(shape, order="F" if fortran else "C").copy()


class _NDArray:
    """Stands in for ``numpy.ndarray``, which a pickle names only as _reconstruct's first argument."""


def _scalar(dtype, raw=b""):
    """Stands in for ``numpy.core.multiarray.scalar(dtype, raw bytes)``."""
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    if not isinstance(dtype, _DType) or not isinstance(raw, bytes) or len(raw) != dtype.dtype.itemsize:
        raise _Bad("scalar")
    return np.frombuffer(raw, dtype=dtype.dtype)[0]


def _latin1(text, encoding="utf-8", errors="strict"):
    """Stands in for ``_codecs.encode``: Python 3 pickles bytes as encode(text, "latin1")."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Bad(f"_codecs.encode with {encoding!r}")
    return text.encode("latin1")


# (module, name) a numpy-array pickle of protocol <= 4 refers to, and what we put in its place.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): _NDArray,
    ("numpy", "dtype"): _DType,
    ("_codecs", "encode"): _latin1,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names in ``_ALLOWED``, to stand-ins that check their arguments; numpy's
    own constructors never see the file's bytes (random damage to an array's header can make
    them fail inside numpy)."""

    def __init__(self, file, *, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise InputError(
                f"refusing to load {self._source}: the pickle references {module}.{name}, "
                f"which an adjacency pickle never needs (only lists, dicts, strings and numpy arrays)"
            )
        return _ALLOWED[module, name]


def _resolve(obj, depth: int = 0):
    """Replace the stand-ins by what they stand for (arrays, dtypes), in lists, tuples and dicts."""
    if depth > 50:
        raise _Bad("nesting deeper than 50")
    if isinstance(obj, _Array):
        if obj.array is None:
            raise _Bad("an array without data")
        return obj.array
    if isinstance(obj, _DType):
        return obj.dtype
    if isinstance(obj, (_NDArray, type)) or callable(obj):
        raise _Bad("a bare numpy name")
    if isinstance(obj, list):
        return [_resolve(v, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, depth + 1) for v in obj)
    if isinstance(obj, dict):
        return {_resolve(k, depth + 1): _resolve(v, depth + 1) for k, v in obj.items()}
    return obj


def load_untrusted_pickle(path: str | Path):
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read pickle {path}: {exc.strerror or exc}") from None
    try:
        return _resolve(RestrictedUnpickler(io.BytesIO(data), source=str(path)).load())
    except InputError:
        raise
    except _Bad as exc:
        raise InputError(f"refusing to load {path}: it holds {exc}, which an adjacency pickle never does") from None
    except (*_CORRUPT, RecursionError) as exc:  # truncated or corrupt file
        raise InputError(f"cannot read pickle {path}: {type(exc).__name__}: {exc}") from None
