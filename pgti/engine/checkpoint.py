"""Checkpoints: what a run saves after each epoch, and how a file someone hands us is read back.

A checkpoint is untrusted input (people pass them around with their results), so it holds only
what ``torch.load(weights_only=True)`` admits: tensors, numbers, strings, lists and dicts. Loading
never executes code from the file; a file that is not a pgti checkpoint, is truncated, or was
made by a run on other data or another model is refused with an :class:`InputError` that names
the file and what differs.

Layout (``FORMAT``, version ``VERSION``)::

    {"format": "pgti-checkpoint", "version": 2,
     "fingerprint": {"dataset", "model", "num_nodes", "num_features", "lags", "features",
                     "graph", "split"},
     "epoch": last finished epoch, "history": [per-epoch rows as in per_epoch_stats.csv],
     "rng": torch CPU RNG state (uint8 tensor), "model": state_dict (the last epoch's weights),
     "optimizer": state_dict ({} for a model without parameters),
     "scheduler": MultiStepLR state with its milestones as a plain dict, or None (no decay),
     "best": {"epoch", "v_mae", "model": state_dict} (lowest validation MAE so far) or None}

Version 2 added "scheduler" and "best"; a version-1 file is refused with that said.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from pgti.errors import InputError
from pgti.observability.outputs import write_atomic

CHECKPOINT = "checkpoint.pt"
FORMAT = "pgti-checkpoint"
VERSION = 2

# What a checkpoint that is not ours, or is damaged, makes torch.load raise.
_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile,
                KeyError, AttributeError, IndexError, TypeError, UnicodeDecodeError)


def graph_digest(edge_index: Any, edge_weight: Any) -> str:
    """A short hash of the graph (edge list and weights, as stored), to tell graphs apart."""
    h = hashlib.sha256()
    for t in (edge_index, edge_weight):
        a = np.ascontiguousarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t))
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def fingerprint(data, model: str) -> dict[str, Any]:
    """What must match for a checkpoint to continue a run: the data (dataset, shapes, features,
    graph, split sizes) and the model. ``data`` is a :class:`~pgti.data.loader.PreparedData`."""
    return {
        "dataset": data.spec.name,
        "model": model,
        "num_nodes": int(data.num_nodes),
        "num_features": int(data.num_features),
        "lags": int(data.lags),
        "features": list(data.features.feature_names),
        "graph": graph_digest(data.edge_index, data.edge_weight),
        "split": [int(data.split.size(s)) for s in ("train", "val", "test")],
    }


@dataclass
class Checkpoint:
    """A checkpoint read and checked for shape (not yet for the run it will continue)."""

    path: Path
    state: dict

    @property
    def epochs_done(self) -> int:
        return int(self.state["epoch"]) + 1

    @property
    def history(self) -> list[dict]:
        return [dict(row) for row in self.state["history"]]

    @property
    def fingerprint(self) -> dict:
        return dict(self.state["fingerprint"])

    def check_matches(self, expected: Mapping[str, Any]) -> None:
        """Refuse a checkpoint made by a run on other data or with another model."""
        found = self.fingerprint
        differ = [k for k in expected if found.get(k) != expected[k]]
        if differ:
            detail = "; ".join(f"{k}: checkpoint {found.get(k)!r}, this run {expected[k]!r}" for k in differ)
            raise InputError(f"checkpoint {self.path} was made by a different run ({detail})")

    def restore(self, trainer) -> tuple[int, list[dict]]:
        """Load weights, optimiser, schedule, best weights and RNG into ``trainer``; return
        (next epoch, history)."""
        try:
            trainer.load_state_dict(self.state)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"checkpoint {self.path} does not fit this model: {first}") from None
        torch.set_rng_state(self.state["rng"])
        return self.epochs_done, self.history


def save_checkpoint(path: Path, trainer, epoch: int, history: list[dict], fingerprint: Mapping[str, Any]) -> None:
    """Write atomically and durably: a crash (or a full disk) mid-write leaves the previous
    checkpoint in place, and the new one is on disk before this returns."""
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, "fingerprint": dict(fingerprint), "epoch": int(epoch),
             "history": [dict(r) for r in history], "rng": torch.get_rng_state(), **trainer.state_dict()}
    buffer = io.BytesIO()  # serialised in memory first, so a failed write is a plain OSError
    torch.save(state, buffer)
    write_atomic(path, buffer.getbuffer())


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read ``path`` without executing anything in it, and check that it is a pgti checkpoint."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as exc:
        raise InputError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    except _LOAD_ERRORS:
        raise InputError(
            f"{path} is not a pgti checkpoint (it is damaged, truncated, or holds objects other "
            f"than tensors, numbers, strings, lists and dicts)"
        ) from None
    _check_layout(path, state)
    return Checkpoint(path, state)


def _plain(value: Any) -> bool:
    """Numbers, strings, None, and lists and dicts of them."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in value.items())
    return False


def _weights(state_dict: dict) -> bool:
    """A module's state: tensors, and plain data under its ``_extra_state`` keys (a model's
    counters, such as DCRNN's batches seen for scheduled sampling)."""
    return all(isinstance(v, torch.Tensor) or (str(k).endswith("_extra_state") and _plain(v))
               for k, v in state_dict.items())


def _check_layout(path: Path, state: Any) -> None:
    def bad(what: str) -> InputError:
        return InputError(f"{path} is not a pgti checkpoint: {what}")

    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise bad(f"no {FORMAT!r} format tag")
    if state.get("version") != VERSION:
        raise bad(f"version {state.get('version')!r}, this pgti reads version {VERSION}")
    for key, kind in (("fingerprint", dict), ("history", list), ("model", dict), ("optimizer", dict),
                      ("epoch", int), ("rng", torch.Tensor)):
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise bad(f"{key!r} is missing or not a {kind.__name__}")
    if state["epoch"] < 0 or len(state["history"]) != state["epoch"] + 1:
        raise bad(f"epoch {state['epoch']} with {len(state['history'])} history rows")
    if not all(isinstance(row, dict) for row in state["history"]):
        raise bad("history rows are not dicts")
    if state["rng"].dtype != torch.uint8 or state["rng"].dim() != 1:
        raise bad("'rng' is not a CPU RNG state")
    if not _weights(state["model"]):
        raise bad("'model' holds values that are not tensors")
    for key in ("scheduler", "best"):
        if key not in state or not (state[key] is None or isinstance(state[key], dict)):
            raise bad(f"{key!r} is missing or neither a dict nor None")
    scheduler = state["scheduler"]
    if scheduler is not None and not (isinstance(scheduler.get("milestones"), dict)
                                      and isinstance(scheduler.get("last_epoch"), int)):
        raise bad("'scheduler' is not a learning-rate schedule's state")
    best = state["best"]
    if best is not None:
        if not (isinstance(best.get("epoch"), int) and not isinstance(best.get("epoch"), bool)
                and 0 <= best["epoch"] <= state["epoch"]):
            raise bad(f"'best' epoch {best.get('epoch')!r} is not one of the epochs done")
        if not isinstance(best.get("v_mae"), float):
            raise bad("'best' has no validation MAE")
        if not isinstance(best.get("model"), dict) or not _weights(best["model"]):
            raise bad("'best' weights are missing or hold values that are not tensors")
