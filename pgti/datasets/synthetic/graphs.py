"""Sensor graphs: positions on a plane, DCRNN's thresholded Gaussian-kernel road graph,
k-nearest-neighbour graphs, station ids, bus lines, and the neighbour mean the simulators use
to spread a signal along edges."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

ADJ_THRESHOLD = 0.1  # DCRNN's normalized_k


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
