"""Compatibility with torch-geometric-temporal 0.56.2 without torch-sparse.

torch-geometric-temporal's package ``__init__`` imports every layer, and one of them
(``evolvegcno``) does ``from torch_sparse import SparseTensor``. torch-sparse has no wheels for
current torch and takes about 16 minutes to build, and nothing this project uses from
torch-geometric-temporal needs it. When the real ``torch_sparse`` is absent we register a
minimal stand-in module that exports PyG's own placeholder ``torch_geometric.typing.SparseTensor``
(the same object PyG itself uses when torch-sparse is missing). With the real package
installed, this module does nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def ensure_torch_sparse() -> bool:
    """Make ``import torch_sparse`` succeed. Returns True if the stand-in was installed."""
    if "torch_sparse" in sys.modules or importlib.util.find_spec("torch_sparse") is not None:
        return False
    from torch_geometric.typing import SparseTensor

    stand_in = types.ModuleType("torch_sparse")
    stand_in.SparseTensor = SparseTensor
    stand_in.__doc__ = "pgti.compat stand-in: only SparseTensor, PyG's placeholder."
    stand_in.__pgti_stand_in__ = True
    sys.modules["torch_sparse"] = stand_in
    return True


def import_torch_geometric_temporal():
    """Import and return ``torch_geometric_temporal``, installing the stand-in if needed."""
    ensure_torch_sparse()
    return importlib.import_module("torch_geometric_temporal")
