"""The training loop: one epoch of training, evaluation, and the epoch loop with per-epoch
rows and checkpoints (see checkpoint.py). The same code runs single-node and inside each DDP rank; the
distributed path passes its own batch plan and a ``reduce`` that all-reduces metric sums."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

import torch
from tqdm.auto import tqdm

from pgti.data.loader import PreparedData, num_batches
from pgti.engine.checkpoint import save_checkpoint
from pgti.engine.metrics import MetricSums, TargetUnits, masked_mae


class BatchPlan(Protocol):
    """Which batches each split yields in an epoch."""

    def batches(self, split: str, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def num_batches(self, split: str) -> int: ...


@dataclass
class SplitBatches:
    """Single-process plan: training windows shuffled per epoch (seeded), the others in order."""

    data: PreparedData
    batch_size: int
    seed: int = 0
    max_batches: int | None = None

    def batches(self, split: str, epoch: int):
        return self.data.batches(
            split, self.batch_size, shuffle=split == "train", seed=self.seed, epoch=epoch,
            max_batches=self.max_batches,
        )

    def num_batches(self, split: str) -> int:
        return num_batches(self.data.split.size(split), self.batch_size, self.max_batches)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        units: TargetUnits,
        lags: int,
        *,
        lr: float = 1e-3,
        device: torch.device | str = "cpu",
        progress: bool = False,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.model = model
        self.units = units
        self.lags = lags
        self.device = torch.device(device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.progress = progress
        self.reduce = reduce

    def _bar(self, it: Iterable, total: int, desc: str):
        return tqdm(it, total=total, desc=desc, leave=False, disable=not self.progress, dynamic_ncols=True)

    def _reduced(self, sums: MetricSums) -> MetricSums:
        if self.reduce is not None:
            sums.load(self.reduce(sums.tensor()))
        return sums

    def train_epoch(self, batches: Iterable, total: int, desc: str = "train") -> MetricSums:
        self.model.train()
        sums = MetricSums(self.lags, self.device)
        for x, y in self._bar(batches, total, desc):
            self.optimizer.zero_grad(set_to_none=True)
            pred = self.model(x, y)
            loss = masked_mae(pred, y, self.units)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} ({desc})")
            loss.backward()
            self.optimizer.step()
            sums.update(pred.detach(), y, self.units)
        return self._reduced(sums)

    @torch.no_grad()
    def evaluate(self, batches: Iterable, total: int, desc: str = "eval") -> MetricSums:
        self.model.eval()
        sums = MetricSums(self.lags, self.device)
        for x, y in self._bar(batches, total, desc):
            sums.update(self.model(x), y, self.units)
        return self._reduced(sums)

    def state_dict(self) -> dict:
        module = getattr(self.model, "module", self.model)  # unwrap DDP
        return {"model": module.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        getattr(self.model, "module", self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


# --- the epoch loop ----------------------------------------------------------------------------


def fit(
    trainer: Trainer,
    plan: BatchPlan,
    *,
    epochs: int,
    start_epoch: int = 0,
    history: list[dict] | None = None,
    annotate: Callable[[dict], dict] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    checkpoint: Path | None = None,
    fingerprint: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Train ``epochs`` epochs (from ``start_epoch``), validating after each.

    Each epoch's row (``epoch, runtime, t_mae, v_mae, ...``, plus what ``annotate`` adds) is
    committed in order: first the checkpoint, which holds the row in its history, then
    ``on_epoch`` (which appends it to per_epoch_stats.csv). A crash between the two loses no
    epoch: ``--resume`` rewrites the CSV from the checkpoint's history, so every finished epoch
    appears exactly once with the values it had.
    """
    history = list(history or [])
    log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    bar = tqdm(
        range(start_epoch, epochs), desc="epochs", disable=not trainer.progress, dynamic_ncols=True
    )
    for epoch in bar:
        synchronize(trainer.device)
        t0 = time.perf_counter()
        n_train = plan.num_batches("train")
        train = trainer.train_epoch(plan.batches("train", epoch), n_train, f"epoch {epoch} train")
        n_val = plan.num_batches("val")
        val = trainer.evaluate(plan.batches("val", epoch), n_val, f"epoch {epoch} val")
        synchronize(trainer.device)
        runtime = time.perf_counter() - t0
        row = {
            "epoch": epoch,
            "runtime": runtime,
            "t_mae": train.mae(),
            "v_mae": val.mae(),
            "t_mae_all_channels": train.mae_all_channels(),
            "v_mae_all_channels": val.mae_all_channels(),
            "train_batches": n_train,
            "val_batches": n_val,
            "samples_per_s": train.samples / runtime if runtime > 0 else math.nan,
            "lr": trainer.optimizer.param_groups[0]["lr"],
        }
        if annotate is not None:
            row.update(annotate(row))
        history.append(row)
        if checkpoint is not None:
            save_checkpoint(checkpoint, trainer, epoch, history, fingerprint or {})
        if on_epoch is not None:
            on_epoch(row)
        log(
            f"epoch {epoch + 1}/{epochs}  train MAE {row['t_mae']:.4f}  val MAE {row['v_mae']:.4f}  "
            f"({runtime:.1f} s)"
        )
        if not math.isfinite(row["t_mae"]):
            raise FloatingPointError(f"training MAE is {row['t_mae']} after epoch {epoch}")
    return history
