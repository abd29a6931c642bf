"""Synthetic stand-ins for the nine datasets, written in the real files' formats.

The files are what the real ones are (see ``pgti.datasets.formats``), so every reader, storage
and benchmark runs on them unchanged. The values are simulated so that there is something to
learn and a naive "repeat the last value" forecast can be beaten:

- Traffic (METR-LA, PeMS-Bay, PeMS-All-LA, PeMS): sensors at random points of a plane, a road
  graph from a thresholded Gaussian kernel of road distances (as DCRNN's ``gen_adj_mx.py``), and
  speeds in mph: free flow, weekday rush hours (per-sensor strength and timing), day-to-day
  variation, incidents, congestion that spreads along the graph's edges with a lag, AR(1) noise,
  and about 6% zeros for missing readings (isolated, sensor outages, network outages).
- Chickenpox: weekly case counts per county with yearly seasonality and neighbour coupling,
  standardised per county as the real file is.
- Windmill: hourly power output in [0, 1] from a wind field of weather fronts crossing the
  plane (so neighbours are correlated with a lag), a diurnal cycle, noise and maintenance stops.
- Montevideo bus: stops along winding bus lines (links between consecutive stops, weighted by
  their distance in metres, and lines joining the network at both ends), hourly passenger
  inflow: Poisson counts of a per-stop popularity x a weekday or weekend daily profile (morning
  and evening peaks mixed per stop) x a day factor shared by the stops of a line.
- Pedal Me: weekly deliveries per area (growth, season, shared and local AR(1) noise), written
  as the real values look: week 0 as log counts, later weeks as log week-on-week changes (our
  reading of the published values, not a documented transform); every ordered pair of areas is
  an edge, weighted exp(-distance / scale), self loops 1.
- England COVID: daily cases, an epidemic wave per region whose peak moves across the plane,
  a weekend reporting dip, Poisson counts; one mobility graph per day (k-nearest regions and
  self loops, gravity-model flows that fall after a lockdown, about half the pairs each day).

These three are generated whole (their real sizes are small) and are not chunked.

Everything random is drawn per fixed block of time steps from a generator keyed by
(seed, dataset, stream, block), and the only state carried from one block to the next is the
AR(1) noise. So the output depends only on the arguments (not on chunk sizes), a shorter series
is a prefix of a longer one, and memory stays bounded: series are produced and written a chunk
of rows at a time.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np

from pgti.data.windows import num_windows, split_windows
from pgti.datasets import pgt_json
from pgti.datasets.registry import DatasetSpec, get_spec
from pgti.errors import InputError

TIMESTAMP_UNITS = ("us", "ns")
MIN_NODES = 2
ADJ_THRESHOLD = 0.1  # DCRNN's normalized_k
CHUNK_ELEMENTS = 8 << 20  # values per generated chunk of rows (bounds memory)

# Random streams: one generator per (seed, dataset, stream, key).
_S_LAYOUT, _S_GRAPH, _S_PARAMS, _S_CELLS, _S_EVENTS, _S_DAYS = range(1, 7)

# Real county names of the chickenpox data (Hungary), in the order of the real node_ids.
CHICKENPOX_COUNTIES = (
    "BACS", "BARANYA", "BEKES", "BORSOD", "BUDAPEST", "CSONGRAD", "FEJER", "GYOR", "HAJDU",
    "HEVES", "JASZ", "KOMAROM", "NOGRAD", "PEST", "SOMOGY", "SZABOLCS", "TOLNA", "VAS",
    "VESZPREM", "ZALA",
)


def _rng(seed: int, dataset: str, stream: int, key: int = 0) -> np.random.Generator:
    code = zlib.crc32(dataset.encode())
    return np.random.default_rng(np.random.SeedSequence([seed, code, stream, key]))


# --- sizes and validation -----------------------------------------------------------------------


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


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="step", unit_scale=True, leave=False,
        disable=not (enabled and sys.stderr.isatty()),
    )


# --- graphs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SensorGraph:
    """A directed weighted graph over sensors at 2-D positions (edges as DCRNN's adj_mx[src, dst])."""

    positions: np.ndarray  # (N, 2) float64
    src: np.ndarray  # (E,) int64
    dst: np.ndarray  # (E,) int64
    weight: np.ndarray  # (E,) float32, self loops included with weight 1

    @property
    def num_nodes(self) -> int:
        return len(self.positions)

    @property
    def num_edges(self) -> int:
        return len(self.src)

    def dense(self) -> np.ndarray:
        """The N x N float32 adjacency, built in place from the edge list (one N x N array)."""
        n = self.num_nodes
        adj = np.zeros((n, n), dtype=np.float32)
        adj[self.src, self.dst] = self.weight
        return adj

    def incoming(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR by destination, self loops dropped, weights normalised to sum 1 per node:
        (indptr (N+1,), sources (nnz,), weights (nnz,) float32). Row j averages j's in-neighbours."""
        keep = self.src != self.dst
        src, dst, w = self.src[keep], self.dst[keep], self.weight[keep].astype(np.float64)
        order = np.lexsort((src, dst))
        src, dst, w = src[order], dst[order], w[order]
        counts = np.bincount(dst, minlength=self.num_nodes)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        total = np.bincount(dst, weights=w, minlength=self.num_nodes)
        w = w / total[dst]
        return indptr, src, w.astype(np.float32)


def sensor_layout(num_nodes: int, rng: np.random.Generator) -> np.ndarray:
    """Sensor positions, uniform on a square of side sqrt(N) (unit density, units ~ km)."""
    side = np.sqrt(num_nodes)
    return rng.uniform(0.0, side, size=(num_nodes, 2))


def neighbour_pairs(positions: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs (i, j), i != j, closer than ``radius``, found through a grid of cells of
    side ``radius`` (each point is compared with the 3 x 3 cells around it only).
    Returns (i, j, euclidean distance), sorted by (i, j)."""
    n = len(positions)
    cell = np.floor((positions - positions.min(axis=0)) / radius).astype(np.int64)
    ny = int(cell[:, 1].max()) + 1
    key = cell[:, 0] * ny + cell[:, 1]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    parts_i, parts_j = [], []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            cx, cy = cell[:, 0] + dx, cell[:, 1] + dy
            other = cx * ny + cy
            lo = np.searchsorted(sorted_key, other, side="left")
            hi = np.searchsorted(sorted_key, other, side="right")
            count = np.where((cy >= 0) & (cy < ny), hi - lo, 0)
            total = int(count.sum())
            if total == 0:
                continue
            first = np.cumsum(count) - count
            offset = np.arange(total) - np.repeat(first, count)
            parts_i.append(np.repeat(np.arange(n), count))
            parts_j.append(order[np.repeat(lo, count) + offset])
    i = np.concatenate(parts_i)
    j = np.concatenate(parts_j)
    dist = np.linalg.norm(positions[i] - positions[j], axis=1)
    keep = (i != j) & (dist < radius)
    i, j, dist = i[keep], j[keep], dist[keep]
    order = np.lexsort((j, i))
    return i[order], j[order], dist[order]


def gaussian_kernel_adjacency(
    positions: np.ndarray,
    rng: np.random.Generator,
    *,
    candidates: float = 40.0,
    detour: float = 0.3,
    threshold: float = ADJ_THRESHOLD,
) -> SensorGraph:
    """DCRNN's sensor graph: w_ij = exp(-(d_ij / sigma)^2) over road distances d_ij, sigma the
    standard deviation of the distances, weights below ``threshold`` set to 0, self loops 1.

    Road distances are measured only between sensors within a radius holding ``candidates``
    sensors on average (DCRNN's distance table also lists nearby pairs only); a road distance
    is the straight-line distance times a random detour factor 1 + Exp(``detour``), drawn per
    direction, so the graph is asymmetric. The defaults give about 8-9 edges per node with self
    loops (PeMS-Bay: 2,694 for 325 sensors).
    """
    n = len(positions)
    radius = float(np.sqrt(candidates / np.pi))
    i, j, dist = neighbour_pairs(positions, radius)
    road = dist * (1.0 + rng.exponential(detour, size=len(dist)))
    if len(road):
        sigma = road.std() or 1.0
        w = np.exp(-np.square(road / sigma))
        keep = w >= threshold
        i, j, w = i[keep], j[keep], w[keep]
    else:
        w = road
    loops = np.arange(n)
    src = np.concatenate([i, loops])
    dst = np.concatenate([j, loops])
    weight = np.concatenate([w, np.ones(n)]).astype(np.float32)
    order = np.lexsort((dst, src))
    return SensorGraph(positions, src[order], dst[order], weight[order])


def knn_graph(positions: np.ndarray, k: int, *, kernel: bool) -> SensorGraph:
    """Symmetric k-nearest-neighbour graph with self loops; weights 1, or a Gaussian kernel
    exp(-(d / sigma)^2) of the distance (sigma = mean neighbour distance) when ``kernel``."""
    n = len(positions)
    k = min(k, n - 1)
    # Grow the search radius until every node has k candidates.
    radius = float(np.sqrt((k + 1) * 2.0 / np.pi))
    while True:
        i, j, dist = neighbour_pairs(positions, radius)
        if np.bincount(i, minlength=n).min() >= k:
            break
        radius *= 1.5
    order = np.lexsort((dist, i))
    i, j, dist = i[order], j[order], dist[order]
    rank = np.arange(len(i)) - np.repeat(np.searchsorted(i, np.arange(n)), np.bincount(i, minlength=n))
    near = rank < k
    i, j, dist = i[near], j[near], dist[near]
    pairs = {}
    for a, b, d in zip(i.tolist(), j.tolist(), dist.tolist()):
        pairs[(a, b)] = d
        pairs[(b, a)] = d
    for a in range(n):
        pairs[(a, a)] = 0.0
    keys = sorted(pairs)
    src = np.array([a for a, _ in keys], dtype=np.int64)
    dst = np.array([b for _, b in keys], dtype=np.int64)
    d = np.array([pairs[key] for key in keys])
    if kernel:
        sigma = d[src != dst].mean() or 1.0
        weight = np.exp(-np.square(d / sigma))
    else:
        weight = np.ones(len(d))
    return SensorGraph(positions, src, dst, weight.astype(np.float32))


def sensor_ids(num_nodes: int, rng: np.random.Generator) -> list[str]:
    """Distinct six-digit station ids, like Caltrans PeMS ids ('400001', '773869')."""
    return [str(v) for v in rng.choice(np.arange(400000, 1000000), size=num_nodes, replace=False)]


class NeighbourMean:
    """x -> y with y[:, j] the weighted mean of x over j's in-neighbours (x is (T, N) float32),
    a sparse CSR product in torch (row-parallel, each row summed in a fixed order)."""

    def __init__(self, graph: SensorGraph):
        import torch

        indptr, sources, weights = graph.incoming()
        self.has_in = np.diff(indptr) > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR is in beta"
            self._matrix = torch.sparse_csr_tensor(
                torch.from_numpy(indptr), torch.from_numpy(sources), torch.from_numpy(weights),
                size=(graph.num_nodes, graph.num_nodes), check_invariants=False,
            )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        xt = torch.from_numpy(np.ascontiguousarray(x.T, dtype=np.float32))
        return (self._matrix @ xt).numpy().T


def _run_intervals(length: int, n: int, rows, starts, ends, values=None, dtype=np.float32) -> np.ndarray:
    """(length, n) array with ``values`` (or 1) added on rows [starts, ends) of column ``rows``."""
    diff = np.zeros((length + 1, n), dtype=np.float64 if values is not None else np.int32)
    if len(rows):
        v = np.ones(len(rows), dtype=diff.dtype) if values is None else values
        np.add.at(diff, (starts, rows), v)
        np.add.at(diff, (ends, rows), -v)
    return np.cumsum(diff, axis=0)[:length].astype(dtype)


class _AR1:
    """AR(1) noise e_t = rho e_{t-1} + sqrt(1 - rho^2) sigma z_t, state carried across calls."""

    def __init__(self, rho: float, sigma, n: int):
        self.rho = np.float32(rho)
        self.scale = (np.sqrt(1.0 - rho**2) * np.asarray(sigma)).astype(np.float32)
        self.state = np.zeros(n, dtype=np.float32)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        out = np.empty_like(z)
        e = self.state
        for t in range(len(z)):
            e = self.rho * e + self.scale * z[t]
            out[t] = e
        self.state = e
        return out


def _epoch_seconds(start: str) -> int:
    return int(np.datetime64(start, "s").astype(np.int64))


# --- traffic -------------------------------------------------------------------------------------


class TrafficSimulator:
    """Loop-detector speeds (mph) for a sensor graph, produced block by block.

    speed = free_flow * (1 - drop(c)) + AR(1) noise (larger in congestion) + white noise, where
    the congestion c at a sensor is its own demand (rush-hour profile x day factor + incidents)
    plus, ``lag`` steps later, a share ``beta`` of its in-neighbours' congestion (two hops).
    Then zeros for missing readings.
    """

    block_days = 2
    beta = 0.6
    lag_seconds = 600
    p_isolated = 0.01  # isolated missing readings
    outage_fraction = 0.055  # sensor outages (runs of 2 steps to 6 hours)
    p_network_outage = 0.1  # per block: every sensor down for 15 min - 1 h
    incidents_per_sensor_day = 0.1

    def __init__(self, graph: SensorGraph, *, start: str, step_seconds: int, seed: int, dataset: str):
        self.n = n = graph.num_nodes
        self.step = step_seconds
        self.start_s = _epoch_seconds(start)
        self.seed, self.dataset = seed, dataset
        self.steps_per_day = max(1, round(86400 / step_seconds))
        self.block = self.block_days * self.steps_per_day
        self.lag = max(1, round(self.lag_seconds / step_seconds))
        self.history = 2 * self.lag
        self.incident_steps = (max(1, 900 // step_seconds), max(2, 7200 // step_seconds))  # 15 min - 2 h
        self.neighbour_mean = NeighbourMean(graph)

        rng = _rng(seed, dataset, _S_PARAMS)
        self.free_flow = rng.uniform(58.0, 72.0, n).astype(np.float32)
        strength = 1.2 * rng.beta(1.5, 2.5, n)
        # Neighbouring sensors are congested alike.
        smooth = self.neighbour_mean(strength[None, :])[0]
        strength = np.where(self.neighbour_mean.has_in, 0.5 * strength + 0.5 * smooth, strength)
        morning_share = rng.uniform(0.1, 0.9, n)
        shift = rng.normal(0.0, 0.3, n)  # hours
        self.noise_sigma = rng.uniform(1.5, 3.0, n).astype(np.float32)

        hours = (np.arange(self.steps_per_day) * step_seconds / 3600.0)[:, None]

        def bump(centre, width):
            return np.exp(-0.5 * np.square((hours - centre) / width))

        weekday = strength * (
            morning_share * bump(7.75 + shift, 0.8) + (1 - morning_share) * bump(17.25 + shift, 1.1)
        )
        weekend = strength * 0.3 * bump(14.0 + shift, 2.5)
        self.demand = np.stack([weekday, weekend]).astype(np.float32)  # (2, steps_per_day, N)
        self.night_bonus = (2.0 * bump(3.5, 1.5)[:, 0]).astype(np.float32)  # faster at night
        self.noise = _AR1(0.9, self.noise_sigma, n)

    # Randomness keyed by block or day, so any chunking gives the same series.

    def _block_events(self, b: int):
        """Incidents starting in block b: (sensor, start, end, severity)."""
        if b < 0:
            return (np.zeros(0, np.int64),) * 3 + (np.zeros(0),)
        rng = _rng(self.seed, self.dataset, _S_EVENTS, b)
        rate = self.incidents_per_sensor_day / self.steps_per_day
        count = rng.poisson(rate * self.n * self.block)
        sensor = rng.integers(0, self.n, count)
        start = b * self.block + rng.integers(0, self.block, count)
        duration = rng.integers(self.incident_steps[0], self.incident_steps[1] + 1, count)
        severity = rng.uniform(0.4, 1.2, count)
        return sensor, start, start + duration, severity

    def _day_factors(self, first_day: int, last_day: int) -> np.ndarray:
        out = np.empty((last_day - first_day + 1, self.n), dtype=np.float32)
        for k, day in enumerate(range(first_day, last_day + 1)):
            rng = _rng(self.seed, self.dataset, _S_DAYS, max(day, 0))
            network = rng.lognormal(0.0, 0.2)
            out[k] = network * rng.lognormal(0.0, 0.12, self.n)
        return out

    def _local_congestion(self, t0: int, t1: int) -> np.ndarray:
        t = np.arange(t0, t1, dtype=np.int64)
        seconds = self.start_s + t * self.step
        day = np.floor_divide(seconds, 86400)
        weekend = ((day + 3) % 7 >= 5).astype(np.int64)  # 1970-01-01 was a Thursday
        tod = (seconds % 86400) // self.step
        u = self.demand[weekend, tod]
        rel_day = day - self.start_s // 86400
        factors = self._day_factors(int(rel_day[0]), int(rel_day[-1]))
        u *= factors[rel_day - rel_day[0]]
        first_block = (t0 - self.incident_steps[1]) // self.block
        events = [self._block_events(b) for b in range(first_block, (t1 - 1) // self.block + 1)]
        sensor, start, end, severity = (np.concatenate(x) for x in zip(*events))
        hit = (start < t1) & (end > t0)
        if hit.any():
            s = np.clip(start[hit], t0, t1) - t0
            e = np.clip(end[hit], t0, t1) - t0
            u += _run_intervals(t1 - t0, self.n, sensor[hit], s, e, severity[hit])
        return u

    def _missing(self, rng: np.random.Generator) -> np.ndarray:
        """(block, N) bool mask of missing readings for one block."""
        L, n = self.block, self.n
        missing = rng.random((L, n), dtype=np.float32) < self.p_isolated
        lo, hi = 2, max(3, 21600 // self.step)
        mean_run = (hi - lo) / np.log(hi / lo)
        runs = rng.poisson(self.outage_fraction * L / mean_run, n)
        sensor = np.repeat(np.arange(n), runs)
        length = np.exp(rng.uniform(np.log(lo), np.log(hi), len(sensor))).astype(np.int64)
        length = np.minimum(length, L)
        start = rng.integers(0, L - length + 1)
        missing |= _run_intervals(L, n, sensor, start, start + length, dtype=np.int32) > 0
        if rng.random() < self.p_network_outage:
            length = int(rng.integers(max(1, 900 // self.step), 3600 // self.step + 1))
            start = int(rng.integers(0, L - length + 1))
            missing[start : start + length] = True
        return missing

    def chunks(self, num_timesteps: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (t0, rows) with rows the (t1 - t0, N) float64 speeds, in order."""
        blocks_per_chunk = int(np.clip(CHUNK_ELEMENTS // (self.block * self.n), 1, 16))
        rows_per_chunk = blocks_per_chunk * self.block
        h, lag = self.history, self.lag
        for t0 in range(0, num_timesteps, rows_per_chunk):
            t1 = t0 + rows_per_chunk  # whole blocks; trimmed on output
            u = self._local_congestion(t0 - h, t1)
            hop1 = self.neighbour_mean(u)
            hop2 = self.neighbour_mean(hop1)
            c = u[h:] + self.beta * hop1[h - lag : h - lag + rows_per_chunk]
            c += self.beta**2 * hop2[h - 2 * lag : h - 2 * lag + rows_per_chunk]
            drop = 0.92 * (1.0 - np.exp(-1.3 * c))
            tod = ((self.start_s + np.arange(t0, t1) * self.step) % 86400) // self.step
            speed = self.free_flow * (1.0 - drop) + self.night_bonus[tod][:, None]
            n_out = min(t1, num_timesteps) - t0
            for b0 in range(0, rows_per_chunk, self.block):
                if t0 + b0 >= num_timesteps:
                    break
                rng = _rng(self.seed, self.dataset, _S_CELLS, (t0 + b0) // self.block)
                rows = slice(b0, b0 + self.block)
                z = rng.standard_normal((self.block, self.n), dtype=np.float32)
                white = rng.standard_normal((self.block, self.n), dtype=np.float32)
                speed[rows] += self.noise(z) * (1.0 + 1.5 * drop[rows]) + 0.7 * white
                missing = self._missing(rng)
                np.clip(speed[rows], 3.0, 85.0, out=speed[rows])
                speed[rows][missing] = 0.0
            out = np.round(speed[:n_out].astype(np.float64), 1)
            yield t0, out


# --- DCRNN files ---------------------------------------------------------------------------------


def _str_type(size: int, utf8: bool) -> h5py.h5t.TypeID:
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(max(1, size))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    tid.set_cset(h5py.h5t.CSET_UTF8 if utf8 else h5py.h5t.CSET_ASCII)
    return tid


def _set_attr(obj, name: str, value, *, utf8: bool = True) -> None:
    """Set an attribute as PyTables writes it: bytes as NULLTERM fixed strings (empty ones with a
    null dataspace), bool-like flags as an 8-bit bitfield, numbers as numpy scalars."""
    if isinstance(value, bytes):
        tid = _str_type(len(value), utf8)
        if value:
            space = h5py.h5s.create(h5py.h5s.SCALAR)
            aid = h5py.h5a.create(obj.id, name.encode(), tid, space)
            aid.write(np.array(value, dtype=f"S{len(value)}"), mtype=tid)
        else:
            h5py.h5a.create(obj.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.NULL))
    elif name == "transposed":
        space = h5py.h5s.create(h5py.h5s.SCALAR)
        aid = h5py.h5a.create(obj.id, name.encode(), h5py.h5t.NATIVE_B8, space)
        aid.write(np.array(int(value), dtype=np.uint8), mtype=h5py.h5t.NATIVE_B8)
    else:
        obj.attrs.create(name, value)


def _array_attrs(ds, extra: dict) -> None:
    for key, value in {
        "CLASS": b"ARRAY", "VERSION": b"2.4", "TITLE": b"", "FLAVOR": b"numpy", "transposed": 1,
    }.items():
        _set_attr(ds, key, value)
    for key, (value, utf8) in extra.items():
        _set_attr(ds, key, value, utf8=utf8)


def _string_dataset(group: h5py.Group, name: str, values: list[bytes]) -> h5py.Dataset:
    width = max(1, max((len(v) for v in values), default=1))
    tid = _str_type(width, utf8=False)
    space = h5py.h5s.create_simple((len(values),))
    dsid = h5py.h5d.create(group.id, name.encode(), tid, space)
    dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(values, dtype=f"S{width}"), mtype=tid)
    return h5py.Dataset(dsid)


def _pandas_freq_pickle(step_seconds: int) -> bytes:
    """The index frequency as pandas stores it (a protocol-0 pickle of the offset)."""
    import pandas as pd

    return pickle.dumps(pd.tseries.frequencies.to_offset(pd.Timedelta(seconds=step_seconds)), protocol=0)


class DCRNNH5Writer:
    """Writes a DCRNN series file, laid out as ``DataFrame.to_hdf(path, key="df", format="fixed")``
    writes it, a slab of rows at a time: ``/df/block0_values`` is a contiguous (T, N) float64
    array, ``axis0``/``block0_items`` the sensor ids, ``axis1`` int64 timestamps.

    ``timestamp_unit`` "us" writes axis1 kind 'datetime64[us]' (pandas >= 2); "ns" writes kind
    'datetime64' in nanoseconds, as the older pandas that wrote DCRNN's files did.
    """

    def __init__(
        self, path: str | Path, sensor_ids: list[str], *, num_timesteps: int, start: str,
        step_seconds: int, timestamp_unit: str = "us",
    ):
        if timestamp_unit not in TIMESTAMP_UNITS:
            raise InputError(f"timestamp unit must be one of {TIMESTAMP_UNITS}, got {timestamp_unit!r}")
        self.num_timesteps = num_timesteps
        self._file = f = h5py.File(path, "w")
        for key, value in {"CLASS": b"GROUP", "PYTABLES_FORMAT_VERSION": b"2.1", "TITLE": b"", "VERSION": b"1.0"}.items():
            _set_attr(f, key, value)
        g = f.create_group("df")
        for key, value in {
            "CLASS": b"GROUP", "TITLE": b"", "VERSION": b"1.0", "pandas_type": b"frame",
            "encoding": b"UTF-8", "errors": b"strict", "ndim": np.int64(2), "nblocks": np.int64(1),
            "axis0_variety": b"regular", "axis1_variety": b"regular", "block0_items_variety": b"regular",
        }.items():
            _set_attr(g, key, value)
        ids = [s.encode() for s in sensor_ids]
        string_attrs = {"kind": (b"string", True), "name": (b"N.", False), "nan_rep": (b"", True)}
        _array_attrs(_string_dataset(g, "axis0", ids), string_attrs)
        per_second = 1_000_000 if timestamp_unit == "us" else 1_000_000_000
        stamps = (_epoch_seconds(start) + np.arange(num_timesteps, dtype=np.int64) * step_seconds) * per_second
        axis1 = g.create_dataset("axis1", data=stamps)
        _array_attrs(axis1, {
            "kind": (b"datetime64[us]" if timestamp_unit == "us" else b"datetime64", True),
            "name": (b"N.", False),
            "index_class": (b"datetime", True),
            "freq": (_pandas_freq_pickle(step_seconds), False),
        })
        _array_attrs(_string_dataset(g, "block0_items", ids), string_attrs)
        self._values = g.create_dataset("block0_values", shape=(num_timesteps, len(ids)), dtype=np.float64)
        _array_attrs(self._values, {})

    def write(self, t0: int, rows: np.ndarray) -> None:
        self._values[t0 : t0 + len(rows)] = rows

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except (OSError, RuntimeError):
            if exc_type is None:
                raise
            # Closing after a failed write (a full disk) fails too; the first error is the one to report.


def write_dcrnn_h5(
    path: str | Path, sensor_ids: list[str], series: np.ndarray | Iterable[tuple[int, np.ndarray]], *,
    num_timesteps: int | None = None, start: str, step_seconds: int, timestamp_unit: str = "us",
) -> None:
    """Write a DCRNN series file from a (T, N) array or from (t0, rows) chunks."""
    if isinstance(series, np.ndarray):
        num_timesteps = len(series)
        series = [(0, series)]
    with DCRNNH5Writer(
        path, sensor_ids, num_timesteps=num_timesteps, start=start, step_seconds=step_seconds,
        timestamp_unit=timestamp_unit,
    ) as writer:
        for t0, rows in series:
            writer.write(t0, rows)


class _Py2Str:
    """Raw bytes to pickle as a Python 2 ``str`` (opcode BINSTRING), straight from a buffer."""

    def __init__(self, data: memoryview):
        self.data = data


class _Py2StylePickler(pickle._Pickler):
    """Protocol 2, with ndarray data stored as a Python 2 str, as in DCRNN's own pickles.

    Python 3's protocol 2 stores bytes as ``_codecs.encode(text, "latin1")``, which needs the
    data several times over in memory (a 0.5 GB adjacency took 2.4 GB); this writes the array's
    buffer once, directly. Loads with ``pickle.load(f, encoding="latin1")`` as the real files do.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: _Py2Str) -> None:
        self.write(pickle.BINSTRING + len(obj.data).to_bytes(4, "little"))
        self.write(obj.data)

    dispatch[_Py2Str] = save_py2_str

    def reducer_override(self, obj):
        if type(obj) is np.ndarray and not obj.dtype.hasobject and obj.nbytes < 2**32:
            rebuild, args, _ = np.zeros(0, obj.dtype).__reduce__()
            data = np.ascontiguousarray(obj)
            state = (1, data.shape, data.dtype, False, _Py2Str(memoryview(data).cast("B")))
            return rebuild, args, state
        return NotImplemented


def write_adjacency_pickle(path: str | Path, sensor_ids: list[str], adj: np.ndarray) -> None:
    """``[sensor_ids, sensor_id_to_ind, adj_mx]`` with pickle protocol 2, as DCRNN's files."""
    id_to_ind = {s: i for i, s in enumerate(sensor_ids)}
    with open(path, "wb") as f:
        _Py2StylePickler(f, protocol=2).dump([list(sensor_ids), id_to_ind, adj])


# --- chickenpox and windmill ---------------------------------------------------------------------


def chickenpox_series(num_nodes: int, num_timesteps: int, graph: SensorGraph, *, start: str, seed: int) -> np.ndarray:
    """Weekly case counts, standardised per county (as the real FX): a yearly season peaking in
    spring, holiday dips, county size, and log-rate AR(1) noise coupled to the neighbours."""
    dataset = "chickenpox"
    rng = _rng(seed, dataset, _S_PARAMS)
    size = rng.lognormal(3.5, 0.5, num_nodes)
    weeks = np.arange(num_timesteps)
    day_of_year = ((_epoch_seconds(start) // 86400 + 7 * weeks) % 365.25)
    season = 1.2 * np.cos(2 * np.pi * (day_of_year - 75) / 365.25)
    holiday = np.where((day_of_year > 355) | (day_of_year < 4), -0.7, 0.0)
    summer = np.where((day_of_year > 180) & (day_of_year < 240), -0.4, 0.0)
    indptr, sources, weights = graph.incoming()
    targets = np.repeat(np.arange(num_nodes), np.diff(indptr))
    x = np.zeros(num_nodes)
    log_rate = np.empty((num_timesteps, num_nodes))
    noise = _rng(seed, dataset, _S_CELLS).standard_normal((num_timesteps, num_nodes))
    for t in range(num_timesteps):
        neighbours = np.bincount(targets, weights=weights * x[sources], minlength=num_nodes)
        x = 0.6 * x + 0.25 * neighbours + 0.3 * noise[t]
        log_rate[t] = x
    log_rate += (season + holiday + summer)[:, None] + np.log(size)
    counts = _rng(seed, dataset, _S_EVENTS).poisson(np.exp(log_rate)).astype(np.float64)
    std = counts.std(axis=0)
    return (counts - counts.mean(axis=0)) / np.where(std > 0, std, 1.0)


class WindmillSimulator:
    """Hourly power output in [0, 1]: the cube of wind speed between cut-in (3 m/s) and rated
    (12 m/s) speed. Wind = site mean + weather fronts (plane waves crossing the plane, so
    neighbours follow each other) x winter-heavy season + diurnal cycle + regional and local
    AR(1) noise. Maintenance stops give runs of zeros."""

    block_hours = 168
    p_maintenance = 0.01  # per windmill and week

    def __init__(self, positions: np.ndarray, *, start: str, step_seconds: int, seed: int):
        self.dataset = "windmill-large"
        self.seed, self.step = seed, step_seconds
        self.positions = positions
        self.n = n = len(positions)
        self.start_s = _epoch_seconds(start)
        self.block = max(1, round(self.block_hours * 3600 / step_seconds))
        rng = _rng(seed, self.dataset, _S_PARAMS)
        self.site_mean = rng.uniform(6.0, 8.5, n)
        side = max(1.0, float(np.sqrt(n)))
        waves = 6
        angle = rng.uniform(0, 2 * np.pi, waves)
        self.direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        self.wavelength = rng.uniform(1.5, 4.0, waves) * side
        self.speed = rng.uniform(0.2, 0.6, waves) * side / 24.0  # crosses the plane in 2-5 days
        self.amplitude = rng.uniform(0.6, 1.6, waves)
        self.phase = rng.uniform(0, 2 * np.pi, waves)
        self.regional = _AR1(0.97, 1.2, 1)
        self.local = _AR1(0.9, 0.8, n)

    def chunks(self, num_timesteps: int) -> Iterator[tuple[int, np.ndarray]]:
        blocks_per_chunk = int(np.clip(CHUNK_ELEMENTS // (self.block * self.n), 1, 16))
        rows_per_chunk = blocks_per_chunk * self.block
        along = self.positions @ self.direction.T  # (N, waves)
        for t0 in range(0, num_timesteps, rows_per_chunk):
            t1 = min(t0 + rows_per_chunk, num_timesteps)
            power = np.empty((t1 - t0, self.n))
            for b0 in range(t0, t1, self.block):
                b1 = min(b0 + self.block, t1)
                hours = (self.start_s + np.arange(b0, b1) * self.step) / 3600.0
                fronts = np.zeros((b1 - b0, self.n))
                for k in range(len(self.phase)):
                    arg = (along[:, k][None, :] - self.speed[k] * hours[:, None]) / self.wavelength[k]
                    fronts += self.amplitude[k] * np.cos(2 * np.pi * arg + self.phase[k])
                season = 1.0 + 0.3 * np.cos(2 * np.pi * (hours / 24.0 - 15) / 365.25)
                diurnal = 0.7 * np.sin(2 * np.pi * (hours % 24 - 9) / 24)
                rng = _rng(self.seed, self.dataset, _S_CELLS, b0 // self.block)
                regional = self.regional(rng.standard_normal((self.block, 1)).astype(np.float32))
                local = self.local(rng.standard_normal((self.block, self.n)).astype(np.float32))
                m = b1 - b0
                wind = self.site_mean + season[:, None] * (fronts + regional[:m]) + diurnal[:, None] + local[:m]
                p = np.clip((np.clip(wind, 0, None) ** 3 - 27.0) / (12.0**3 - 27.0), 0.0, 1.0)
                p[wind > 25.0] = 0.0  # cut-out
                down = rng.random(self.n) < self.p_maintenance
                length = rng.integers(6, 49, self.n)
                first = rng.integers(0, self.block, self.n)
                for i in np.flatnonzero(down):  # b0 is a block start
                    p[first[i] : first[i] + length[i], i] = 0.0
                power[b0 - t0 : b1 - t0] = p
            yield t0, np.round(power, 6)


def _write_json_stream(f, key: str, rows: Iterable[np.ndarray], first: bool) -> None:
    f.write(("{" if first else ", ") + json.dumps(key) + ": [")
    sep = ""
    for block in rows:
        for row in block.tolist():
            f.write(sep + json.dumps(row))
            sep = ", "
    f.write("]")


def write_windmill_json(path: str | Path, series: Iterable[tuple[int, np.ndarray]], graph: SensorGraph) -> None:
    """``{"block": T x N, "edges": E x 2, "weights": E}``, the block streamed chunk by chunk."""
    with open(path, "w") as f:
        _write_json_stream(f, "block", (rows for _, rows in series), first=True)
        edges = np.stack([graph.src, graph.dst], axis=1)
        f.write(', "edges": ' + json.dumps(edges.tolist()))
        f.write(', "weights": ' + json.dumps(graph.weight.astype(np.float64).tolist()) + "}")


def write_chickenpox_json(path: str | Path, graph: SensorGraph, node_names: list[str], fx: np.ndarray) -> None:
    """``{"edges": E x 2, "node_ids": {name: idx}, "FX": T x N}``."""
    obj = {
        "edges": np.stack([graph.src, graph.dst], axis=1).tolist(),
        "node_ids": {name: i for i, name in enumerate(node_names)},
        "FX": np.round(fx, 12).tolist(),
    }
    with open(path, "w") as f:
        json.dump(obj, f)


# --- Montevideo bus, Pedal Me, England COVID (layouts in pgti/datasets/pgt_json.py) --------------


def _weekday(start: str, num_timesteps: int, step_seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """(hour of day as a float, day index from the start) of each step."""
    seconds = _epoch_seconds(start) + np.arange(num_timesteps, dtype=np.int64) * step_seconds
    return (seconds % 86400) / 3600.0, seconds // 86400


def _is_weekend(days_since_epoch: np.ndarray) -> np.ndarray:
    return (days_since_epoch + 3) % 7 >= 5  # 1970-01-01 was a Thursday (Monday = 0 makes it 3)


def bus_lines(num_nodes: int, rng: np.random.Generator) -> tuple[np.ndarray, list[list[int]], list[tuple[int, int, float]]]:
    """Stops on bus lines: (positions (N, 2) in metres, the stops of each line in order, links).

    Lines of 20-60 stops wind from a random point, stops 150-600 m apart. Consecutive stops are
    linked; every line after the first also starts from and ends at the nearest stop of an
    earlier line, so the network is connected and has about N + (lines - 2) links (the real one:
    690 for 675 stops). Link weight: the distance in metres, rounded to 0.1.
    """
    lengths = []
    while sum(lengths) < num_nodes:
        lengths.append(int(rng.integers(20, 61)))
    lengths[-1] -= sum(lengths) - num_nodes
    if lengths[-1] < 2 and len(lengths) > 1:
        lengths[-2] += lengths.pop()
    side = 10_000.0 * np.sqrt(num_nodes / 675)
    positions = np.empty((num_nodes, 2))
    lines, links = [], []

    def link(a: int, b: int) -> None:
        links.append((a, b, max(0.1, round(float(np.linalg.norm(positions[a] - positions[b])), 1))))

    def nearest(stop: int, among: int) -> int:
        """The stop nearest to ``stop`` among stops 0 .. among - 1."""
        return int(np.argmin(np.linalg.norm(positions[:among] - positions[stop], axis=1)))

    first = 0
    for length in lengths:
        stops = list(range(first, first + length))
        point, heading = rng.uniform(0, side, 2), rng.uniform(0, 2 * np.pi)
        for stop in stops:
            positions[stop] = point
            heading += rng.normal(0.0, 0.3)
            point = point + rng.uniform(150, 600) * np.array([np.cos(heading), np.sin(heading)])
        for a, b in zip(stops, stops[1:]):
            link(a, b)
        if first > 0:  # join the earlier lines at both ends
            link(nearest(stops[0], first), stops[0])
            link(stops[-1], nearest(stops[-1], first))
        lines.append(stops)
        first += length
    return positions, lines, links


def bus_inflow(num_timesteps: int, lines: list[list[int]], *, start: str, step_seconds: int, seed: int) -> np.ndarray:
    """(T, N) hourly passenger counts at the stops."""
    dataset = "montevideo-bus"
    n = sum(len(line) for line in lines)
    rng = _rng(seed, dataset, _S_PARAMS)
    popularity = rng.lognormal(-1.0, 1.3, n)
    morning_share = rng.uniform(0.2, 0.8, n)
    line_of = np.repeat(np.arange(len(lines)), [len(line) for line in lines])
    hour, day = _weekday(start, num_timesteps, step_seconds)
    weekend = _is_weekend(day)

    def bump(centre, width):
        return np.exp(-0.5 * np.square((hour[:, None] - centre) / width))

    service = 1.0 / (1.0 + np.exp(-(hour[:, None] - 5.5) * 3.0))  # buses from about 5:30
    weekday_profile = (morning_share * bump(7.5, 1.2) + (1 - morning_share) * bump(18.0, 1.5)
                       + 0.5 * bump(13.0, 2.5) + 0.08)
    weekend_profile = 0.3 * bump(12.0, 3.0) + 0.25 * bump(19.0, 2.0) + 0.05
    profile = service * np.where(weekend[:, None], weekend_profile, weekday_profile)
    first_day = day[0]
    num_days = int(day[-1] - first_day) + 1
    day_noise = _rng(seed, dataset, _S_DAYS).normal(0.0, 0.15, (num_days, len(lines)))
    day_factor = np.exp(day_noise)[(day - first_day)[:, None], line_of[None, :]]
    rate = 3.0 * popularity * profile * day_factor
    return _rng(seed, dataset, _S_CELLS).poisson(rate).astype(np.int64)


def write_montevideo_bus(path: Path, num_nodes: int, num_timesteps: int, spec: DatasetSpec, seed: int) -> None:
    positions, lines, links = bus_lines(num_nodes, _rng(seed, spec.name, _S_GRAPH))
    y = bus_inflow(num_timesteps, lines, start=spec.start, step_seconds=spec.step_seconds, seed=seed)
    stops = 5000 + np.arange(num_nodes)  # bus_stop numbers, consecutive along lines as in the real file
    utm = np.round(positions + np.array([575_000.0, 6_135_000.0])).astype(np.int64)  # UTM 21S metres
    pgt_json.write_montevideo_json(path, stops.tolist(), utm[:, 0].tolist(), utm[:, 1].tolist(), y, links)


def write_pedalme(path: Path, num_nodes: int, num_timesteps: int, spec: DatasetSpec, seed: int) -> None:
    dataset = spec.name
    positions = sensor_layout(num_nodes, _rng(seed, dataset, _S_LAYOUT))
    src, dst = np.divmod(np.arange(num_nodes * num_nodes), num_nodes)  # every ordered pair, row-major
    distance = np.linalg.norm(positions[src] - positions[dst], axis=1)
    scale = distance[src != dst].mean() / 2 if num_nodes > 1 else 1.0
    weight = np.exp(-distance / scale)
    rng = _rng(seed, dataset, _S_PARAMS)
    size = rng.lognormal(2.5, 0.6, num_nodes)
    weeks = np.arange(num_timesteps)
    day_of_year = (_epoch_seconds(spec.start) // 86400 + 7 * weeks) % 365.25
    trend = 0.02 * weeks + 0.2 * np.cos(2 * np.pi * (day_of_year - 330) / 365.25)
    noise = _rng(seed, dataset, _S_CELLS).standard_normal((num_timesteps, num_nodes + 1))
    shared = _AR1(0.7, 0.3, 1)(noise[:, :1].astype(np.float32))  # city-wide weeks
    local = _AR1(0.5, 0.4, num_nodes)(noise[:, 1:].astype(np.float32))
    log_rate = np.log(size) + trend[:, None] + shared + local
    counts = 1 + _rng(seed, dataset, _S_EVENTS).poisson(np.exp(log_rate))
    x = np.log(counts.astype(np.float64))
    x[1:] = x[1:] - x[:-1].copy()
    pgt_json.write_pedalme_json(path, np.stack([src, dst], axis=1), np.round(weight, 12), np.round(x, 12))


def england_covid_cases(positions: np.ndarray, population: np.ndarray, num_timesteps: int, *,
                        start: str, seed: int) -> np.ndarray:
    """(T, N) daily case counts: a wave per region peaking earlier on one side of the plane."""
    dataset = "england-covid"
    n = len(positions)
    rng = _rng(seed, dataset, _S_PARAMS)
    angle = rng.uniform(0, 2 * np.pi)
    along = positions @ np.array([np.cos(angle), np.sin(angle)])
    along = (along - along.mean()) / (along.std() or 1.0)
    peak = 25.0 + 4.0 * along + rng.normal(0.0, 2.0, n)
    width = rng.uniform(10.0, 16.0, n)
    t = np.arange(num_timesteps)[:, None]
    wave = np.exp(-0.5 * np.square((t - peak) / width))
    _, day = _weekday(start, num_timesteps, 86400)
    reporting = np.where(_is_weekend(day), 0.7, 1.05)[:, None]
    noise = np.exp(_rng(seed, dataset, _S_DAYS).normal(0.0, 0.2, (num_timesteps, n)))
    rate = 40.0 * population * wave * reporting * noise
    return _rng(seed, dataset, _S_CELLS).poisson(rate).astype(np.int64)


def england_covid_mobility(positions: np.ndarray, population: np.ndarray, num_timesteps: int, *,
                           start: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """One graph per day, (E_t x 2 pairs, E_t flows): self loops every day (people staying in
    their region), and about half of the k-nearest-region pairs, gravity-model flows x a
    mobility level that falls after a lockdown on day 20 (23 March 2020 from the real start)
    and at weekends."""
    dataset = "england-covid"
    n = len(positions)
    graph = knn_graph(positions, min(12, n - 1), kernel=False)
    src, dst = graph.src, graph.dst
    loop = src == dst
    distance = np.linalg.norm(positions[src] - positions[dst], axis=1)
    flow = np.where(loop, 1e5 * population[src], 2e3 * population[src] * population[dst] / (distance**2 + 0.5))
    rng = _rng(seed, dataset, _S_GRAPH)
    flow = flow * rng.uniform(0.5, 1.5, len(flow))
    _, day = _weekday(start, num_timesteps, 86400)
    weekend = _is_weekend(day)
    daily = []
    for t in range(num_timesteps):
        level = (1.0 if t < 20 else 0.35 + 0.65 * np.exp(-(t - 20) / 3.0)) * (0.7 if weekend[t] else 1.0)
        day_rng = _rng(seed, dataset, _S_EVENTS, t)
        keep = loop | (day_rng.random(len(flow)) < 0.3 + 0.3 * level)
        people = np.maximum(1.0, np.round(flow * level * np.exp(day_rng.normal(0.0, 0.3, len(flow)))))
        daily.append((np.stack([src[keep], dst[keep]], axis=1), people[keep]))
    return daily


def write_england_covid(path: Path, num_nodes: int, num_timesteps: int, spec: DatasetSpec, seed: int) -> None:
    positions = sensor_layout(num_nodes, _rng(seed, spec.name, _S_LAYOUT))
    population = _rng(seed, spec.name, _S_PARAMS, 1).lognormal(0.0, 0.5, num_nodes)
    population /= population.mean()
    y = england_covid_cases(positions, population, num_timesteps, start=spec.start, seed=seed)
    daily = england_covid_mobility(positions, population, num_timesteps, start=spec.start, seed=seed)
    pgt_json.write_england_covid_json(path, y, daily)


PGT_JSON_WRITERS = {
    pgt_json.MONTEVIDEO_FORMAT: write_montevideo_bus,
    pgt_json.PEDALME_FORMAT: write_pedalme,
    pgt_json.ENGLAND_COVID_FORMAT: write_england_covid,
}


# --- entry point ---------------------------------------------------------------------------------


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
        raise InputError(f"{' and '.join(existing)} already {verb}; use --force to overwrite")

    positions = sensor_layout(n, _rng(seed, name, _S_LAYOUT))
    graph_rng = _rng(seed, name, _S_GRAPH)
    with atomic_outputs(paths) as temps:
        if spec.format in PGT_JSON_WRITERS:
            PGT_JSON_WRITERS[spec.format](temps[0], n, t, spec, seed)
        elif spec.format == "chickenpox-json":
            graph = knn_graph(positions, 3, kernel=False)
            names = [
                CHICKENPOX_COUNTIES[i] if n <= len(CHICKENPOX_COUNTIES) else f"COUNTY_{i:05d}"
                for i in range(n)
            ]
            fx = chickenpox_series(n, t, graph, start=spec.start, seed=seed)
            write_chickenpox_json(temps[0], graph, names, fx)
        elif spec.format == "windmill-json":
            graph = knn_graph(positions, 10, kernel=True)
            sim = WindmillSimulator(positions, start=spec.start, step_seconds=spec.step_seconds, seed=seed)
            with _progress(t, f"{name} series", progress) as bar:
                def chunks():
                    for t0, rows in sim.chunks(t):
                        yield t0, rows
                        bar.update(len(rows))
                write_windmill_json(temps[0], chunks(), graph)
        else:
            graph = gaussian_kernel_adjacency(positions, graph_rng)
            ids = sensor_ids(n, graph_rng)
            sim = TrafficSimulator(graph, start=spec.start, step_seconds=spec.step_seconds, seed=seed, dataset=name)
            with DCRNNH5Writer(
                temps[0], ids, num_timesteps=t, start=spec.start, step_seconds=spec.step_seconds,
                timestamp_unit=timestamp_unit,
            ) as writer, _progress(t, f"{name} series", progress) as bar:
                for t0, rows in sim.chunks(t):
                    writer.write(t0, rows)
                    bar.update(len(rows))
            adj = graph.dense()
            write_adjacency_pickle(temps[1], ids, adj)
            del adj
    return paths
