"""A restricted unpickler for DCRNN adjacency pickles, which are untrusted input.

A pickle can name any importable callable and have it called while loading. The adjacency
format (``[sensor_ids, sensor_id_to_ind, adj_mx]``, written by Python 2 with protocol 2) needs
only containers, strings and numbers (pickle opcodes, no imports) plus what numpy uses to
rebuild an ndarray. Everything else is refused before it is imported.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from pgti.errors import InputError

# (module, name) pairs a numpy-array pickle of protocol <= 4 refers to.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    # Python 3 writes bytes in protocol 2 as _codecs.encode(text, "latin1"): pure data.
    ("_codecs", "encode"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, *, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise InputError(
                f"refusing to load {self._source}: the pickle references {module}.{name}, "
                f"which an adjacency pickle never needs (only lists, dicts, strings and numpy arrays)"
            )
        return super().find_class(module, name)


def load_untrusted_pickle(path: str | Path):
    path = Path(path)
    data = path.read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=str(path)).load()
    except InputError:
        raise
    except Exception as exc:  # truncated or corrupt file
        raise InputError(f"cannot read pickle {path}: {type(exc).__name__}: {exc}") from None
