"""Traffic (METR-LA, PeMS-Bay, PeMS-All-LA, PeMS): sensors at random points of a plane, a road
graph from a thresholded Gaussian kernel of road distances (as DCRNN's ``gen_adj_mx.py``), and
speeds in mph: free flow, weekday rush hours (per-sensor strength and timing), day-to-day
variation, incidents, congestion that spreads along the graph's edges with a lag, AR(1) noise,
and about 6% zeros for missing readings (isolated, sensor outages, network outages). Written a
chunk of rows at a time in the DCRNN format (:mod:`pgti.datasets.formats.dcrnn_h5`).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from pgti.datasets.formats import dcrnn_h5
from pgti.datasets.synthetic.common import (
    AR1,
    CHUNK_ELEMENTS,
    S_CELLS,
    S_DAYS,
    S_EVENTS,
    S_GRAPH,
    S_LAYOUT,
    S_PARAMS,
    epoch_seconds,
    progress_bar,
    run_intervals,
    stream_rng,
)
from pgti.datasets.synthetic.graphs import NeighbourMean, SensorGraph, gaussian_kernel_adjacency, sensor_ids, sensor_layout


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
        self.start_s = epoch_seconds(start)
        self.seed, self.dataset = seed, dataset
        self.steps_per_day = max(1, round(86400 / step_seconds))
        self.block = self.block_days * self.steps_per_day
        self.lag = max(1, round(self.lag_seconds / step_seconds))
        self.history = 2 * self.lag
        self.incident_steps = (max(1, 900 // step_seconds), max(2, 7200 // step_seconds))  # 15 min - 2 h
        self.neighbour_mean = NeighbourMean(graph)

        rng = stream_rng(seed, dataset, S_PARAMS)
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
        self.noise = AR1(0.9, self.noise_sigma, n)

    # Randomness keyed by block or day, so any chunking gives the same series.

    def _block_events(self, b: int):
        """Incidents starting in block b: (sensor, start, end, severity)."""
        if b < 0:
            return (np.zeros(0, np.int64),) * 3 + (np.zeros(0),)
        rng = stream_rng(self.seed, self.dataset, S_EVENTS, b)
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
            rng = stream_rng(self.seed, self.dataset, S_DAYS, max(day, 0))
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
            u += run_intervals(t1 - t0, self.n, sensor[hit], s, e, severity[hit])
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
        missing |= run_intervals(L, n, sensor, start, start + length, dtype=np.int32) > 0
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
                rng = stream_rng(self.seed, self.dataset, S_CELLS, (t0 + b0) // self.block)
                rows = slice(b0, b0 + self.block)
                z = rng.standard_normal((self.block, self.n), dtype=np.float32)
                white = rng.standard_normal((self.block, self.n), dtype=np.float32)
                speed[rows] += self.noise(z) * (1.0 + 1.5 * drop[rows]) + 0.7 * white
                missing = self._missing(rng)
                np.clip(speed[rows], 3.0, 85.0, out=speed[rows])
                speed[rows][missing] = 0.0
            out = np.round(speed[:n_out].astype(np.float64), 1)
            yield t0, out


def synthesize(request) -> None:
    """The series (``request.paths[0]``) and the sensor graph (``request.paths[1]``)."""
    spec, n, t, seed = request.spec, request.num_nodes, request.num_timesteps, request.seed
    positions = sensor_layout(n, stream_rng(seed, spec.name, S_LAYOUT))
    graph_rng = stream_rng(seed, spec.name, S_GRAPH)
    graph = gaussian_kernel_adjacency(positions, graph_rng)
    ids = sensor_ids(n, graph_rng)
    sim = TrafficSimulator(graph, start=spec.start, step_seconds=spec.step_seconds, seed=seed, dataset=spec.name)
    with progress_bar(t, f"{spec.name} series", request.progress) as bar:
        def chunks():
            for t0, rows in sim.chunks(t):
                yield t0, rows
                bar.update(len(rows))
        dcrnn_h5.write(request.paths, ids, chunks(), graph.dense, num_timesteps=t, start=spec.start,
                       step_seconds=spec.step_seconds, timestamp_unit=request.timestamp_unit)
