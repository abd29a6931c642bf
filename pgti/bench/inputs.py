"""Where a benchmark's dataset comes from: the real files when present at the real size,
otherwise synthetic data in the real format, generated once into a cache directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py

from pgti.bench.runner import run_task
from pgti.bench.sizes import Shape, shape_of
from pgti.datasets.formats import find_h5_key
from pgti.datasets.registry import get_spec, resolve_files
from pgti.errors import InputError


def default_cache_dir() -> Path:
    """``$PGTI_BENCH_CACHE``, else /work/bench-cache where /work is writable, else
    ~/.cache/pgti-bench. Outside the repository: full-size synthetic PeMS is ~9.4 GB."""
    env = os.environ.get("PGTI_BENCH_CACHE")
    if env:
        return Path(env)
    if os.access("/work", os.W_OK):
        return Path("/work/bench-cache")
    return Path.home() / ".cache" / "pgti-bench"


@dataclass(frozen=True)
class BenchData:
    name: str
    data_dir: Path
    source: str  # "real" | "synthetic"
    shape: Shape


def _real_shape(name: str, paths) -> Shape:
    spec = get_spec(name)
    if spec.is_traffic:
        with h5py.File(paths[0], "r") as f:
            t, n = f[find_h5_key(paths[0])]["block0_values"].shape
        return shape_of(spec, n, t)
    return shape_of(spec)  # JSON: the registry's size (parsing it to check costs more than it tells)


def sized(name: str, max_nodes: int | None, max_timesteps: int | None) -> tuple[int | None, int | None]:
    """(nodes, timesteps) to ask for: None where the real size is within the cap."""
    spec = get_spec(name)
    nodes = None if max_nodes is None or spec.num_nodes <= max_nodes else max_nodes
    steps = None if max_timesteps is None or spec.num_timesteps <= max_timesteps else max_timesteps
    return nodes, steps


def locate(
    name: str,
    *,
    data_dir: str | Path = "data",
    cache_dir: str | Path | None = None,
    nodes: int | None = None,
    timesteps: int | None = None,
    seed: int = 0,
    log=print,
) -> BenchData:
    """The dataset at the requested size (the real one when ``nodes``/``timesteps`` are None).

    Real files in ``data_dir`` are used only at the real size; otherwise synthetic files are
    read from (or first generated, in a fresh process, into) ``cache_dir/<name>-<N>x<T>/``.
    """
    spec = get_spec(name)
    if nodes is None and timesteps is None:
        try:
            paths = resolve_files(spec, data_dir)
            return BenchData(name, Path(data_dir), "real", _real_shape(name, paths))
        except InputError:
            pass
    shape = shape_of(spec, nodes, timesteps)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = cache / f"{name}-{shape.num_nodes}x{shape.num_timesteps}"
    if not all(p.is_file() for p in spec.default_paths(directory)):
        log(f"generating synthetic {name} ({shape.num_nodes} nodes x {shape.num_timesteps} steps) "
            f"into {directory} ...")
        outcome = run_task("generate", {"name": name, "data_dir": str(directory), "nodes": shape.num_nodes,
                                        "timesteps": shape.num_timesteps, "seed": seed})
        if not outcome.ok:
            raise InputError(f"could not generate synthetic {name} in {directory}: {outcome.message}")
        log(f"  done in {outcome.result['seconds']:.0f} s")
    return BenchData(name, directory, "synthetic", shape)
