"""The other signals, each written in its dataset's format by that format's writer:

- Chickenpox: weekly case counts per county with yearly seasonality and neighbour coupling,
  standardised per county as the real file is.
- Windmill: hourly power output in [0, 1] from a wind field of weather fronts crossing the
  plane (so neighbours are correlated with a lag), a diurnal cycle, noise and maintenance stops;
  streamed a chunk of rows at a time.
- Montevideo bus: stops along winding bus lines (:func:`~pgti.datasets.synthetic.graphs.bus_lines`),
  hourly passenger inflow: Poisson counts of a per-stop popularity x a weekday or weekend daily
  profile (morning and evening peaks mixed per stop) x a day factor shared by the stops of a line.
- Pedal Me: weekly deliveries per area (growth, season, shared and local AR(1) noise), written
  as the real values look: week 0 as log counts, later weeks as log week-on-week changes (our
  reading of the published values, not a documented transform); every ordered pair of areas is
  an edge, weighted exp(-distance / scale), self loops 1.
- England COVID: daily cases, an epidemic wave per region whose peak moves across the plane,
  a weekend reporting dip, Poisson counts; one mobility graph per day (k-nearest regions and
  self loops, gravity-model flows that fall after a lockdown, about half the pairs each day).

The last three are generated whole (their real sizes are small) and are not chunked.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from pgti.datasets.formats import (
    chickenpox_json,
    england_covid_json,
    montevideo_bus_json,
    pedalme_json,
    windmill_json,
)
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
    hour_and_day,
    is_weekend,
    progress_bar,
    stream_rng,
)
from pgti.datasets.synthetic.graphs import SensorGraph, bus_lines, knn_graph, sensor_layout

# Real county names of the chickenpox data (Hungary), in the order of the real node_ids.
CHICKENPOX_COUNTIES = (
    "BACS", "BARANYA", "BEKES", "BORSOD", "BUDAPEST", "CSONGRAD", "FEJER", "GYOR", "HAJDU",
    "HEVES", "JASZ", "KOMAROM", "NOGRAD", "PEST", "SOMOGY", "SZABOLCS", "TOLNA", "VAS",
    "VESZPREM", "ZALA",
)



# --- chickenpox -------------------------------------------------------------------------------------


def chickenpox_series(num_nodes: int, num_timesteps: int, graph: SensorGraph, *, start: str, seed: int) -> np.ndarray:
    """Weekly case counts, standardised per county (as the real FX): a yearly season peaking in
    spring, holiday dips, county size, and log-rate AR(1) noise coupled to the neighbours."""
    dataset = "chickenpox"
    rng = stream_rng(seed, dataset, S_PARAMS)
    size = rng.lognormal(3.5, 0.5, num_nodes)
    weeks = np.arange(num_timesteps)
    day_of_year = ((epoch_seconds(start) // 86400 + 7 * weeks) % 365.25)
    season = 1.2 * np.cos(2 * np.pi * (day_of_year - 75) / 365.25)
    holiday = np.where((day_of_year > 355) | (day_of_year < 4), -0.7, 0.0)
    summer = np.where((day_of_year > 180) & (day_of_year < 240), -0.4, 0.0)
    indptr, sources, weights = graph.incoming()
    targets = np.repeat(np.arange(num_nodes), np.diff(indptr))
    x = np.zeros(num_nodes)
    log_rate = np.empty((num_timesteps, num_nodes))
    noise = stream_rng(seed, dataset, S_CELLS).standard_normal((num_timesteps, num_nodes))
    for t in range(num_timesteps):
        neighbours = np.bincount(targets, weights=weights * x[sources], minlength=num_nodes)
        x = 0.6 * x + 0.25 * neighbours + 0.3 * noise[t]
        log_rate[t] = x
    log_rate += (season + holiday + summer)[:, None] + np.log(size)
    counts = stream_rng(seed, dataset, S_EVENTS).poisson(np.exp(log_rate)).astype(np.float64)
    std = counts.std(axis=0)
    return (counts - counts.mean(axis=0)) / np.where(std > 0, std, 1.0)


def synthesize_chickenpox(request) -> None:
    spec, n, t, seed = request.spec, request.num_nodes, request.num_timesteps, request.seed
    positions = sensor_layout(n, stream_rng(seed, spec.name, S_LAYOUT))
    graph = knn_graph(positions, 3, kernel=False)
    names = [CHICKENPOX_COUNTIES[i] if n <= len(CHICKENPOX_COUNTIES) else f"COUNTY_{i:05d}" for i in range(n)]
    fx = chickenpox_series(n, t, graph, start=spec.start, seed=seed)
    chickenpox_json.write(request.paths[0], np.stack([graph.src, graph.dst], axis=1), names, np.round(fx, 12))


# --- windmill ---------------------------------------------------------------------------------------


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
        self.start_s = epoch_seconds(start)
        self.block = max(1, round(self.block_hours * 3600 / step_seconds))
        rng = stream_rng(seed, self.dataset, S_PARAMS)
        self.site_mean = rng.uniform(6.0, 8.5, n)
        side = max(1.0, float(np.sqrt(n)))
        waves = 6
        angle = rng.uniform(0, 2 * np.pi, waves)
        self.direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        self.wavelength = rng.uniform(1.5, 4.0, waves) * side
        self.speed = rng.uniform(0.2, 0.6, waves) * side / 24.0  # crosses the plane in 2-5 days
        self.amplitude = rng.uniform(0.6, 1.6, waves)
        self.phase = rng.uniform(0, 2 * np.pi, waves)
        self.regional = AR1(0.97, 1.2, 1)
        self.local = AR1(0.9, 0.8, n)

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
                rng = stream_rng(self.seed, self.dataset, S_CELLS, b0 // self.block)
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


def synthesize_windmill(request) -> None:
    spec, t = request.spec, request.num_timesteps
    positions = sensor_layout(request.num_nodes, stream_rng(request.seed, spec.name, S_LAYOUT))
    graph = knn_graph(positions, 10, kernel=True)
    sim = WindmillSimulator(positions, start=spec.start, step_seconds=spec.step_seconds, seed=request.seed)
    with progress_bar(t, f"{spec.name} series", request.progress) as bar:
        def chunks():
            for t0, rows in sim.chunks(t):
                yield t0, rows
                bar.update(len(rows))
        windmill_json.write(request.paths[0], chunks(), np.stack([graph.src, graph.dst], axis=1), graph.weight)


# --- Montevideo bus ---------------------------------------------------------------------------------


def bus_inflow(num_timesteps: int, lines: list[list[int]], *, start: str, step_seconds: int, seed: int) -> np.ndarray:
    """(T, N) hourly passenger counts at the stops."""
    dataset = "montevideo-bus"
    n = sum(len(line) for line in lines)
    rng = stream_rng(seed, dataset, S_PARAMS)
    popularity = rng.lognormal(-1.0, 1.3, n)
    morning_share = rng.uniform(0.2, 0.8, n)
    line_of = np.repeat(np.arange(len(lines)), [len(line) for line in lines])
    hour, day = hour_and_day(start, num_timesteps, step_seconds)
    weekend = is_weekend(day)

    def bump(centre, width):
        return np.exp(-0.5 * np.square((hour[:, None] - centre) / width))

    service = 1.0 / (1.0 + np.exp(-(hour[:, None] - 5.5) * 3.0))  # buses from about 5:30
    weekday_profile = (morning_share * bump(7.5, 1.2) + (1 - morning_share) * bump(18.0, 1.5)
                       + 0.5 * bump(13.0, 2.5) + 0.08)
    weekend_profile = 0.3 * bump(12.0, 3.0) + 0.25 * bump(19.0, 2.0) + 0.05
    profile = service * np.where(weekend[:, None], weekend_profile, weekday_profile)
    first_day = day[0]
    num_days = int(day[-1] - first_day) + 1
    day_noise = stream_rng(seed, dataset, S_DAYS).normal(0.0, 0.15, (num_days, len(lines)))
    day_factor = np.exp(day_noise)[(day - first_day)[:, None], line_of[None, :]]
    rate = 3.0 * popularity * profile * day_factor
    return stream_rng(seed, dataset, S_CELLS).poisson(rate).astype(np.int64)


def synthesize_montevideo_bus(request) -> None:
    spec, num_nodes, seed = request.spec, request.num_nodes, request.seed
    positions, lines, links = bus_lines(num_nodes, stream_rng(seed, spec.name, S_GRAPH))
    y = bus_inflow(request.num_timesteps, lines, start=spec.start, step_seconds=spec.step_seconds, seed=seed)
    stops = 5000 + np.arange(num_nodes)  # bus_stop numbers, consecutive along lines as in the real file
    utm = np.round(positions + np.array([575_000.0, 6_135_000.0])).astype(np.int64)  # UTM 21S metres
    montevideo_bus_json.write(request.paths[0], stops.tolist(), utm[:, 0].tolist(), utm[:, 1].tolist(), y, links)


# --- Pedal Me ---------------------------------------------------------------------------------------


def synthesize_pedalme(request) -> None:
    spec, num_nodes, num_timesteps, seed = request.spec, request.num_nodes, request.num_timesteps, request.seed
    dataset = spec.name
    positions = sensor_layout(num_nodes, stream_rng(seed, dataset, S_LAYOUT))
    src, dst = np.divmod(np.arange(num_nodes * num_nodes), num_nodes)  # every ordered pair, row-major
    distance = np.linalg.norm(positions[src] - positions[dst], axis=1)
    scale = distance[src != dst].mean() / 2 if num_nodes > 1 else 1.0
    weight = np.exp(-distance / scale)
    rng = stream_rng(seed, dataset, S_PARAMS)
    size = rng.lognormal(2.5, 0.6, num_nodes)
    weeks = np.arange(num_timesteps)
    day_of_year = (epoch_seconds(spec.start) // 86400 + 7 * weeks) % 365.25
    trend = 0.02 * weeks + 0.2 * np.cos(2 * np.pi * (day_of_year - 330) / 365.25)
    noise = stream_rng(seed, dataset, S_CELLS).standard_normal((num_timesteps, num_nodes + 1))
    shared = AR1(0.7, 0.3, 1)(noise[:, :1].astype(np.float32))  # city-wide weeks
    local = AR1(0.5, 0.4, num_nodes)(noise[:, 1:].astype(np.float32))
    log_rate = np.log(size) + trend[:, None] + shared + local
    counts = 1 + stream_rng(seed, dataset, S_EVENTS).poisson(np.exp(log_rate))
    x = np.log(counts.astype(np.float64))
    x[1:] = x[1:] - x[:-1].copy()
    pedalme_json.write(request.paths[0], np.stack([src, dst], axis=1), np.round(weight, 12), np.round(x, 12))


# --- England COVID ----------------------------------------------------------------------------------


def england_covid_cases(positions: np.ndarray, population: np.ndarray, num_timesteps: int, *,
                        start: str, seed: int) -> np.ndarray:
    """(T, N) daily case counts: a wave per region peaking earlier on one side of the plane."""
    dataset = "england-covid"
    n = len(positions)
    rng = stream_rng(seed, dataset, S_PARAMS)
    angle = rng.uniform(0, 2 * np.pi)
    along = positions @ np.array([np.cos(angle), np.sin(angle)])
    along = (along - along.mean()) / (along.std() or 1.0)
    peak = 25.0 + 4.0 * along + rng.normal(0.0, 2.0, n)
    width = rng.uniform(10.0, 16.0, n)
    t = np.arange(num_timesteps)[:, None]
    wave = np.exp(-0.5 * np.square((t - peak) / width))
    _, day = hour_and_day(start, num_timesteps, 86400)
    reporting = np.where(is_weekend(day), 0.7, 1.05)[:, None]
    noise = np.exp(stream_rng(seed, dataset, S_DAYS).normal(0.0, 0.2, (num_timesteps, n)))
    rate = 40.0 * population * wave * reporting * noise
    return stream_rng(seed, dataset, S_CELLS).poisson(rate).astype(np.int64)


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
    rng = stream_rng(seed, dataset, S_GRAPH)
    flow = flow * rng.uniform(0.5, 1.5, len(flow))
    _, day = hour_and_day(start, num_timesteps, 86400)
    weekend = is_weekend(day)
    daily = []
    for t in range(num_timesteps):
        level = (1.0 if t < 20 else 0.35 + 0.65 * np.exp(-(t - 20) / 3.0)) * (0.7 if weekend[t] else 1.0)
        day_rng = stream_rng(seed, dataset, S_EVENTS, t)
        keep = loop | (day_rng.random(len(flow)) < 0.3 + 0.3 * level)
        people = np.maximum(1.0, np.round(flow * level * np.exp(day_rng.normal(0.0, 0.3, len(flow)))))
        daily.append((np.stack([src[keep], dst[keep]], axis=1), people[keep]))
    return daily


def synthesize_england_covid(request) -> None:
    spec, num_nodes, num_timesteps, seed = request.spec, request.num_nodes, request.num_timesteps, request.seed
    positions = sensor_layout(num_nodes, stream_rng(seed, spec.name, S_LAYOUT))
    population = stream_rng(seed, spec.name, S_PARAMS, 1).lognormal(0.0, 0.5, num_nodes)
    population /= population.mean()
    y = england_covid_cases(positions, population, num_timesteps, start=spec.start, seed=seed)
    daily = england_covid_mobility(positions, population, num_timesteps, start=spec.start, seed=seed)
    england_covid_json.write(request.paths[0], y, daily)
