"""What the simulators share: random streams keyed by (seed, dataset, stream, key), AR(1) noise
carried across blocks, interval sums, calendar helpers and the progress bar.

Everything random is drawn per fixed block of time steps from a generator keyed by
(seed, dataset, stream, block), and the only state carried from one block to the next is the
AR(1) noise. So the output depends only on the arguments (not on chunk sizes), a shorter series
is a prefix of a longer one, and memory stays bounded.
"""

from __future__ import annotations

import sys
import zlib

import numpy as np

from pgti.datasets.formats.base import epoch_seconds

__all__ = ["AR1", "CHUNK_ELEMENTS", "S_CELLS", "S_DAYS", "S_EVENTS", "S_GRAPH", "S_LAYOUT", "S_PARAMS",
           "epoch_seconds", "hour_and_day", "is_weekend", "progress_bar", "run_intervals", "stream_rng"]

CHUNK_ELEMENTS = 8 << 20  # values per generated chunk of rows (bounds memory)

# Random streams: one generator per (seed, dataset, stream, key).
S_LAYOUT, S_GRAPH, S_PARAMS, S_CELLS, S_EVENTS, S_DAYS = range(1, 7)


def stream_rng(seed: int, dataset: str, stream: int, key: int = 0) -> np.random.Generator:
    code = zlib.crc32(dataset.encode())
    return np.random.default_rng(np.random.SeedSequence([seed, code, stream, key]))


def run_intervals(length: int, n: int, rows, starts, ends, values=None, dtype=np.float32) -> np.ndarray:
    """(length, n) array with ``values`` (or 1) added on rows [starts, ends) of column ``rows``."""
    diff = np.zeros((length + 1, n), dtype=np.float64 if values is not None else np.int32)
    if len(rows):
        v = np.ones(len(rows), dtype=diff.dtype) if values is None else values
        np.add.at(diff, (starts, rows), v)
        np.add.at(diff, (ends, rows), -v)
    return np.cumsum(diff, axis=0)[:length].astype(dtype)


class AR1:
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


def hour_and_day(start: str, num_timesteps: int, step_seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """(hour of day as a float, day index from the start) of each step."""
    seconds = epoch_seconds(start) + np.arange(num_timesteps, dtype=np.int64) * step_seconds
    return (seconds % 86400) / 3600.0, seconds // 86400


def is_weekend(days_since_epoch: np.ndarray) -> np.ndarray:
    return (days_since_epoch + 3) % 7 >= 5  # 1970-01-01 was a Thursday (Monday = 0 makes it 3)


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit="step", unit_scale=True, leave=False,
        disable=not (enabled and sys.stderr.isatty()),
    )
