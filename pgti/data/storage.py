"""One batching interface, four storages.

``storage.gather(starts)`` returns the batch ``(X, Y)``, each (B, L, N, F) float32, for the
windows starting at ``starts``: X = rows [s, s + L), Y = rows [s + L, s + 2L).

- :class:`BaseStorage` materialises every (input, target) window pair up front, as the standard
  PyTorch Geometric Temporal workflow does (about 2L times the series). The memory baseline.
- :class:`IndexStorage` keeps one float32 copy of the series and gathers a batch with one
  vectorised ``index_select`` of whole windows per X and Y. With ``device="cuda"`` the series is copied to the
  GPU once (chunk by chunk, never whole on the host) and batches are built there: this is
  GPU-index-batching, with no per-batch host-to-device copy.
- :class:`LazyIndexStorage` leaves the series on disk and reads, per batch, only the rows the
  batch's windows cover.

All three build rows with the same :class:`~pgti.data.features.FeatureBuilder`, so for the same
starts they return bitwise-identical batches.
"""

from __future__ import annotations

import numpy as np
import torch

from pgti.data.features import FeatureBuilder, chunk_rows
from pgti.datasets.formats import RowReader

MODES = ("base", "index", "lazy-index")


class IndexStorage:
    """``build_in_place`` says how the series is filled: True builds each chunk of rows straight
    into the series through a numpy view (host memory only; the default on the CPU); False
    builds each chunk in a small host buffer and copies it over (the default on any other
    device, where the whole series never sits on the host). Both give the same bits, so the
    copying branch a GPU takes is tested on the CPU with ``build_in_place=False``."""

    def __init__(self, rows: RowReader, features: FeatureBuilder, lags: int, device="cpu", *,
                 build_in_place: bool | None = None):
        self.lags = lags
        self.device = torch.device(device)
        if build_in_place is None:
            build_in_place = self.device.type == "cpu"
        elif build_in_place and self.device.type != "cpu":
            raise ValueError(f"build_in_place needs host memory; the series goes to {self.device}")
        t, n, f = rows.num_timesteps, rows.num_nodes, features.num_features
        self.series = torch.empty((t, n, f), dtype=torch.float32, device=self.device)
        step = chunk_rows(n)
        for t0 in range(0, t, step):
            t1 = min(t0 + step, t)
            if build_in_place:
                features.build(rows.read(t0, t1), t0, out=self.series[t0:t1].numpy())
            else:  # one small host chunk at a time
                self.series[t0:t1].copy_(torch.from_numpy(features.build(rows.read(t0, t1), t0)))
        # Every L-step window as a zero-copy view, (T - L + 1, L, N, F): window s is the
        # contiguous block of rows [s, s + L). A batch is then one index_select of B such
        # blocks per X and Y (about 1.4x faster than selecting B x L single rows).
        self._windows = self.series.as_strided((t - lags + 1, lags, n, f), (n * f, n * f, f, 1))

    @property
    def nbytes(self) -> int:
        return self.series.numel() * self.series.element_size()

    def gather(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.as_tensor(starts, device=self.device)
        return self._windows.index_select(0, starts), self._windows.index_select(0, starts + self.lags)


class BaseStorage:
    """Every window materialised: X_all[s] = series[s:s+L], Y_all[s] = series[s+L:s+2L]."""

    def __init__(self, rows: RowReader, features: FeatureBuilder, lags: int, num_windows: int):
        self.lags = lags
        self.device = torch.device("cpu")
        series = IndexStorage(rows, features, lags).series.numpy()
        view = np.lib.stride_tricks.sliding_window_view(series, lags, axis=0)  # (T-L+1, N, F, L)
        view = view.transpose(0, 3, 1, 2)  # (T-L+1, L, N, F)
        self.x = torch.from_numpy(np.ascontiguousarray(view[:num_windows]))
        self.y = torch.from_numpy(np.ascontiguousarray(view[lags : lags + num_windows]))
        del series, view  # the materialised windows are all that base keeps

    @property
    def nbytes(self) -> int:
        return 2 * self.x.numel() * self.x.element_size()

    def gather(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.as_tensor(starts, device=self.device)
        return self.x.index_select(0, starts), self.y.index_select(0, starts)


class LazyIndexStorage:
    """Reads, for each batch, the merged row ranges its windows cover, straight from disk."""

    def __init__(self, rows: RowReader, features: FeatureBuilder, lags: int):
        self.rows = rows
        self.features = features
        self.lags = lags
        self.device = torch.device("cpu")

    @property
    def nbytes(self) -> int:
        return 0

    def gather(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        starts = np.asarray(torch.as_tensor(starts).cpu(), dtype=np.int64)
        span = 2 * self.lags
        # Merge overlapping [s, s + 2L) ranges into runs; read each run once.
        order = np.unique(starts)
        breaks = np.flatnonzero(np.diff(order) > span) + 1
        run_starts = order[np.r_[0, breaks]]
        run_ends = order[np.r_[breaks - 1, len(order) - 1]] + span
        # Build every run straight into one block (no per-run copies to concatenate).
        run_offset = np.r_[0, np.cumsum(run_ends - run_starts)]
        block = np.empty((run_offset[-1], self.rows.num_nodes, self.features.num_features), np.float32)
        for a, b, off in zip(run_starts, run_ends, run_offset):
            self.features.build(self.rows.read(a, b), a, out=block[off : off + (b - a)])
        # Position of each window's first row in the block.
        run_of = np.searchsorted(run_starts, starts, side="right") - 1
        first = run_offset[run_of] + (starts - run_starts[run_of])
        steps = np.arange(self.lags)
        x = block[first[:, None] + steps]
        y = block[first[:, None] + (steps + self.lags)]
        return torch.from_numpy(x), torch.from_numpy(y)
