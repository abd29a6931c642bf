"""The run config: one typed, nested description of a run, from which everything is built.

The command line fills it (:mod:`pgti.engine.cli`, the only place that knows flag names), the
library reads it, and ``config.json`` keeps it whole under ``"config"``, so that
``--config RUN_DIR`` reruns that run exactly. A field is named by its path, e.g.
``batching.batch_size``; an :class:`~pgti.errors.InputError` with ``field=`` set names the field
at fault, and the command line puts the matching flag in front of its message.

``config.json`` is untrusted input: :meth:`RunConfig.from_dict` checks every field's type and
refuses unknown fields in one line naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from pgti.errors import InputError

DEFAULT_RATIOS = (0.7, 0.1, 0.2)


@dataclass
class DataConfig:
    dataset: str = "pems-bay"
    data_dir: str = "data"
    split: tuple[float, float, float] = DEFAULT_RATIOS  # train/val/test ratios of the window starts
    day_of_week: bool = False


@dataclass
class BatchingConfig:
    mode: str = "index"  # a storage name (pgti.data.storages), "auto", or a distributed driver's mode
    gpu: bool = False
    batch_size: int = 64
    max_batches: int | None = None  # cap per epoch and per evaluation
    full_evaluation: bool = False  # with max_batches: cap training only; validate and test on every window
    memory_budget: int | None = None  # bytes, for mode "auto"; None: the memory available now


@dataclass
class ModelConfig:
    name: str = "pgt-dcrnn"  # a built-in name or "package.module:ClassName"
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the constructor


@dataclass
class OptimConfig:
    lr: float = 1e-3
    lr_decay_epochs: list[int] | None = None
    lr_decay_factor: float = 0.1
    clip_grad_norm: float | None = None


@dataclass
class TrainingConfig:
    epochs: int = 100
    seed: int = 0
    patience: int | None = None


@dataclass
class DistributedConfig:
    npar: int = 2  # ranks, one per Dask worker
    dist: bool = False  # join an existing (multi-node) cluster
    cluster_file: str | None = None  # its scheduler file
    worker_timeout: float = 300.0  # seconds to wait for the workers to register
    dist_timeout: float = 300.0  # seconds a rank waits in a collective


@dataclass
class OutputConfig:
    """Where the run goes: not part of what a rerun repeats (``--config`` does not copy it)."""

    output_dir: str | None = None
    overwrite: bool = False
    resume: str | None = None
    quiet: bool = False
    debug: bool = False


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    distributed: DistributedConfig | None = None  # None: single node

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, value: Any, source: str = "config") -> "RunConfig":
        """Build a config from its ``to_dict()`` form, checking every field (``source`` names
        the file in error messages)."""
        return _build(cls, value, source, "")

    def get(self, path: str) -> Any:
        obj: Any = self
        for part in path.split("."):
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
        return obj

    def set(self, path: str, value: Any) -> None:
        """Set the field at ``path`` (``model.options.hidden`` sets a key of the options)."""
        *parents, last = path.split(".")
        obj: Any = self
        for part in parents:
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
            if obj is None and part == "distributed":
                raise InputError(f"{path} is a distributed setting; this run is single-node", field=path)
        if isinstance(obj, dict):
            obj[last] = value
        else:
            setattr(obj, last, value)

    def describe(self) -> str:
        """One line per section, as printed at the start of a run."""
        lines = []
        for section, values in self.to_dict().items():
            if values is None:
                continue
            shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
            lines.append(f"  {section}: {shown}")
        return "config:\n" + "\n".join(lines)


def read_config(path: str | Path) -> RunConfig:
    """The run config saved in a run's ``config.json`` (``path`` may be the run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (give a run's config.json or its directory)",
                         field="config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})", field="config") from None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{path} is not a pgti config.json (not JSON: {str(exc)[:120]})", field="config") from None
    if not isinstance(document, dict) or "config" not in document:
        raise InputError(f"{path} is not a pgti config.json: it has no 'config' section "
                         "(runs written before the typed config cannot be rerun this way)", field="config")
    return RunConfig.from_dict(document["config"], str(path))


# --- checking ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _build(cls, value: Any, source: str, prefix: str):
    if not isinstance(value, dict):
        raise InputError(f"{source}: {prefix.rstrip('.') or 'config'} must be an object, "
                         f"got {type(value).__name__}", field="config")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise InputError(f"{source}: unknown config field(s) {', '.join(prefix + u for u in unknown)}",
                         field="config")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in value:
            kwargs[f.name] = _check(hints[f.name], value[f.name], source, prefix + f.name)
    return cls(**kwargs)


def _check(hint, value: Any, source: str, path: str):
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _check(inner, value, source, path)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, path + ".")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin in (tuple, list):
        args = typing.get_args(hint)
        if isinstance(value, list):
            if origin is tuple:
                if len(value) != len(args):
                    raise InputError(f"{source}: {path} needs {len(args)} values, got {len(value)}", field="config")
                return tuple(_check(a, v, source, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
            return [_check(args[0], v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return dict(value)
    else:  # pragma: no cover - a field type this checker does not know is a bug here
        raise TypeError(f"unchecked config type {hint!r} at {path}")
    raise InputError(f"{source}: {path} must be {_type_name(hint)}, got {json.dumps(value)[:60]}", field="config")


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        return "a list"
    if origin is dict:
        return "an object"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(hint, str(hint))
