"""Synthetic stand-ins for the nine datasets, written in the real files' formats by the format
modules' writers (:mod:`pgti.datasets.formats`), so every reader, storage and benchmark runs on
them unchanged. The values are simulated so that there is something to learn and a naive
"repeat the last value" forecast can be beaten.

- :mod:`~pgti.datasets.synthetic.graphs`: sensor positions and graphs.
- :mod:`~pgti.datasets.synthetic.traffic`: the traffic simulator (the DCRNN-format datasets).
- :mod:`~pgti.datasets.synthetic.signals`: chickenpox, windmill, Montevideo bus, Pedal Me and
  England COVID.
- :mod:`~pgti.datasets.synthetic.common`: random streams and noise. Everything random is drawn
  per fixed block of time steps from a generator keyed by (seed, dataset, stream, block), so the
  output depends only on the arguments (not on chunk sizes), a shorter series is a prefix of a
  longer one, and memory stays bounded.

This module is the entry: :func:`generate` checks the size and the output directory, then runs
the synthesizer of the dataset's format (:data:`SYNTHESIZERS`) into temporary files that are
moved into place only when all are written.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from pgti.data.windows import num_windows, split_windows
from pgti.datasets.formats.dcrnn_h5 import TIMESTAMP_UNITS
from pgti.datasets.registry import DatasetSpec, get_spec
from pgti.datasets.synthetic import signals, traffic
from pgti.errors import InputError

__all__ = ["MIN_NODES", "SYNTHESIZERS", "TIMESTAMP_UNITS", "Request", "atomic_outputs", "generate",
           "min_timesteps", "resolve_size"]

MIN_NODES = 2


@dataclass(frozen=True)
class Request:
    """What a synthesizer writes: ``spec``'s files at ``paths`` (temporary names, in the order
    of the registry layout), ``num_nodes`` x ``num_timesteps``."""

    spec: DatasetSpec
    paths: tuple[Path, ...]
    num_nodes: int
    num_timesteps: int
    seed: int
    progress: bool
    timestamp_unit: str  # of the DCRNN series' index; other formats have no timestamps


SYNTHESIZERS: dict[str, Callable[[Request], None]] = {
    "dcrnn-h5": traffic.synthesize,
    "chickenpox-json": signals.synthesize_chickenpox,
    "windmill-json": signals.synthesize_windmill,
    "montevideo-bus-json": signals.synthesize_montevideo_bus,
    "pedalme-json": signals.synthesize_pedalme,
    "england-covid-json": signals.synthesize_england_covid,
}
"""Format name -> the simulator that writes a dataset of that format. Every dataset of a format
gets its synthetic data from here; a format without an entry has no synthetic data."""


def min_timesteps(spec: DatasetSpec) -> int:
    """Shortest series accepted: 20 x lags, so that even a 10% split holds one input+target
    window of 2 x lags steps. Where the real series is shorter than that (Pedal Me, England
    COVID), the shortest series whose default 70/10/20 split leaves every split non-empty."""
    if 20 * spec.lags <= spec.num_timesteps:
        return 20 * spec.lags
    t = 2 * spec.lags
    while True:
        try:
            split_windows(num_windows(t, spec.lags))
            return t
        except InputError:
            t += 1


def _min_timesteps_reason(spec: DatasetSpec) -> str:
    if 20 * spec.lags <= spec.num_timesteps:
        return (f"20 x lags={spec.lags}: even a 10% split must hold one input+target window of "
                f"2 x lags steps")
    return f"lags={spec.lags}: each part of the default 70/10/20 split must hold a window"


def resolve_size(spec: DatasetSpec, nodes: int | None, timesteps: int | None) -> tuple[int, int]:
    """(num_nodes, num_timesteps): the real size unless given; raises InputError if too small."""
    n = spec.num_nodes if nodes is None else nodes
    t = spec.num_timesteps if timesteps is None else timesteps
    if not isinstance(n, (int, np.integer)) or n < MIN_NODES:
        raise InputError(f"nodes must be an integer >= {MIN_NODES}, got {n!r}")
    lo = min_timesteps(spec)
    if not isinstance(t, (int, np.integer)) or t < lo:
        raise InputError(
            f"timesteps must be an integer >= {lo} for {spec.name} ({_min_timesteps_reason(spec)}), "
            f"got {t!r}"
        )
    return int(n), int(t)


def _prepare_dir(data_dir: str | Path) -> Path:
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create data directory {data_dir}: {exc.strerror or exc}") from None
    if not data_dir.is_dir() or not os.access(data_dir, os.W_OK | os.X_OK):
        raise InputError(f"data directory {data_dir} is not a writable directory")
    return data_dir


@contextmanager
def atomic_outputs(paths: Iterable[Path]) -> Iterator[list[Path]]:
    """Yield temporary paths beside ``paths``; on success move them into place with os.replace,
    on any failure delete them, so a half-written file never carries a dataset's name."""
    paths = [Path(p) for p in paths]
    temps = []
    try:
        for p in paths:
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
            os.close(fd)
            temps.append(Path(tmp))
        yield temps
    except BaseException:
        for t in temps:
            t.unlink(missing_ok=True)
        raise
    mode = 0o666 & ~_umask()  # mkstemp made them 0600; give them a normal file's mode
    for t, p in zip(temps, paths):
        os.chmod(t, mode)
        os.replace(t, p)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def generate(
    name: str,
    data_dir: str | Path,
    *,
    nodes: int | None = None,
    timesteps: int | None = None,
    seed: int = 0,
    progress: bool = True,
    timestamp_unit: str = "us",
    overwrite: bool = False,
) -> tuple[Path, ...]:
    """Write a synthetic ``name`` dataset into ``data_dir`` under its real file names and in its
    real format; return the paths written. The size is the real one unless ``nodes`` /
    ``timesteps`` are given. Existing files are an InputError unless ``overwrite``.
    """
    spec = get_spec(name)
    n, t = resolve_size(spec, nodes, timesteps)
    if timestamp_unit not in TIMESTAMP_UNITS:
        raise InputError(f"timestamp unit must be one of {', '.join(TIMESTAMP_UNITS)}, got {timestamp_unit!r}")
    data_dir = _prepare_dir(data_dir)
    paths = spec.default_paths(data_dir)
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        verb = "exists" if len(existing) == 1 else "exist"
        raise InputError(f"{' and '.join(existing)} already {verb}; pass overwrite=True to replace "
                         f"{'it' if len(existing) == 1 else 'them'}")

    synthesize = SYNTHESIZERS.get(spec.format)
    if synthesize is None:
        raise InputError(f"no synthetic data for {spec.name}: its format {spec.format!r} has no simulator")
    with atomic_outputs(paths) as temps:
        synthesize(Request(spec, tuple(temps), n, t, seed, progress, timestamp_unit))
    return paths
