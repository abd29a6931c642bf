"""The training loop: one epoch of training, evaluation, and the epoch loop with per-epoch
rows and checkpoints (see checkpoint.py). The same code runs single-node (rank 0 of a world of
one) and inside each DDP rank, where ``reduce`` all-reduces the metric sums."""

from __future__ import annotations

import copy
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import torch
from tqdm.auto import tqdm

from pgti.engine.checkpoint import save_checkpoint
from pgti.engine.metrics import MetricSums, TargetUnits, masked_mae


class BatchPlan(Protocol):
    """Which batches each split yields in an epoch (:class:`pgti.data.plan.Plan`)."""

    def batches(self, split: str, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def num_batches(self, split: str) -> int: ...

    def take_data_wait(self) -> float: ...


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """Training and evaluation of one model (a DDP-wrapped one inside a rank).

    The reference recipe's pieces are options: ``lr_decay_epochs`` / ``lr_decay_factor`` (a
    MultiStepLR stepped after each epoch), ``clip_grad_norm`` (the gradients' global norm is
    clipped before each step). A model without trainable parameters (a baseline) has no
    optimiser: its "training" evaluates the loss and changes nothing.

    ``best`` holds the weights of the epoch with the lowest validation MAE so far (on the CPU):
    ``fit`` keeps it, the checkpoint saves it, and :meth:`use_best` puts it back for the test.
    """

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
        lr_decay_epochs: Sequence[int] | None = None,
        lr_decay_factor: float = 0.1,
        clip_grad_norm: float | None = None,
    ):
        self.model = model
        self.units = units
        self.lags = lags
        self.device = torch.device(device)
        self.base_lr = lr
        parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(parameters, lr=lr) if parameters else None
        self.scheduler = None
        if lr_decay_epochs and self.optimizer is not None:
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
                self.optimizer, milestones=sorted(lr_decay_epochs), gamma=lr_decay_factor)
        self.clip_grad_norm = clip_grad_norm
        self.progress = progress
        self.reduce = reduce
        self.best: dict | None = None  # {"epoch", "v_mae", "model": CPU state_dict}

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else self.base_lr

    @property
    def best_epoch(self) -> int | None:
        return None if self.best is None else int(self.best["epoch"])

    def _module(self) -> torch.nn.Module:
        return getattr(self.model, "module", self.model)  # unwrap DDP

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
            if self.optimizer is not None:
                self.optimizer.zero_grad(set_to_none=True)
            pred = self.model(x, y)
            loss = masked_mae(pred, y, self.units)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} ({desc})")
            if self.optimizer is not None:
                loss.backward()
                if self.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
                self.optimizer.step()
            sums.update(pred.detach(), y, self.units)
        return self._reduced(sums)

    def end_epoch(self, epoch: int, v_mae: float) -> bool:
        """After epoch ``epoch``: keep its weights if its validation MAE is the lowest so far
        (True then), and step the learning-rate schedule."""
        improved = math.isfinite(v_mae) and (self.best is None or v_mae < self.best["v_mae"])
        if improved:
            state = self._module().state_dict()
            self.best = {"epoch": int(epoch), "v_mae": float(v_mae),
                         "model": {k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor)
                                   else copy.deepcopy(v) for k, v in state.items()}}  # extra state: plain data
        if self.scheduler is not None:
            self.scheduler.step()
        return improved

    def use_best(self) -> None:
        """Put the weights of the best epoch back into the model (for the test)."""
        if self.best is not None:
            self._module().load_state_dict(self.best["model"])

    @torch.no_grad()
    def evaluate(self, batches: Iterable, total: int, desc: str = "eval") -> MetricSums:
        self.model.eval()
        sums = MetricSums(self.lags, self.device)
        for x, y in self._bar(batches, total, desc):
            sums.update(self.model(x), y, self.units)
        return self._reduced(sums)

    @torch.no_grad()
    def evaluate_with(self, others: Mapping[str, torch.nn.Module], batches: Iterable, total: int,
                      desc: str = "eval") -> dict[str, MetricSums]:
        """Evaluate the model and ``others`` (the baselines) on the same batches, in one pass:
        ``{"model": sums, name: sums, ...}``."""
        models = {"model": self.model, **others}
        for m in models.values():
            m.eval()
        sums = {name: MetricSums(self.lags, self.device) for name in models}
        for x, y in self._bar(batches, total, desc):
            for name, m in models.items():
                sums[name].update(m(x), y, self.units)
        return {name: self._reduced(s) for name, s in sums.items()}

    def state_dict(self) -> dict:
        """Everything a resume needs: only tensors, numbers, strings, lists, dicts and None."""
        scheduler = None
        if self.scheduler is not None:
            scheduler = dict(self.scheduler.state_dict())
            scheduler["milestones"] = {int(k): int(v) for k, v in scheduler["milestones"].items()}
        return {"model": self._module().state_dict(),
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
                "scheduler": scheduler, "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self._module().load_state_dict(state["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if (self.scheduler is None) != (state.get("scheduler") is None):
            raise ValueError("the learning-rate decay (optim.lr_decay_epochs) differs from the checkpoint's run")
        if self.scheduler is not None:
            scheduler = dict(state["scheduler"])
            scheduler["milestones"] = Counter({int(k): int(v) for k, v in scheduler["milestones"].items()})
            mine = (dict(self.scheduler.milestones), float(self.scheduler.gamma))
            theirs = (dict(scheduler["milestones"]), float(scheduler["gamma"]))
            if mine != theirs:
                raise ValueError(f"the learning-rate decay (milestones, factor) {mine} differs from "
                                 f"the checkpoint's run {theirs}")
            self.scheduler.load_state_dict(scheduler)
        best = state.get("best")
        self.best = None if best is None else {"epoch": int(best["epoch"]), "v_mae": float(best["v_mae"]),
                                               "model": dict(best["model"])}


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
    patience: int | None = None,
) -> list[dict]:
    """Train ``epochs`` epochs (from ``start_epoch``), validating after each.

    Each epoch's row (``epoch, runtime, t_mae, v_mae, ...``, plus what ``annotate`` adds) is
    committed in order: first the checkpoint, which holds the row in its history, then
    ``on_epoch`` (which appends it to per_epoch_stats.csv). A crash between the two loses no
    epoch: ``--resume`` rewrites the CSV from the checkpoint's history, so every finished epoch
    appears exactly once with the values it had.

    After each epoch the trainer keeps the weights if the validation MAE is the lowest so far
    and steps its learning-rate schedule. With ``patience`` the loop ends early once that many
    epochs have passed without a new lowest validation MAE (logged).
    """
    history = list(history or [])
    log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))

    def stop_after(epoch: int) -> bool:
        if patience is None or trainer.best_epoch is None or epoch - trainer.best_epoch < patience:
            return False
        log(f"early stopping after epoch {epoch + 1}: validation MAE has not improved for {patience} "
            f"epoch(s) since epoch {trainer.best_epoch + 1} ({trainer.best['v_mae']:.4f})")
        return True

    if start_epoch > 0 and stop_after(start_epoch - 1):  # a resumed run that had stopped early
        return history
    bar = tqdm(
        range(start_epoch, epochs), desc="epochs", disable=not trainer.progress, dynamic_ncols=True
    )
    for epoch in bar:
        synchronize(trainer.device)
        t0 = time.perf_counter()
        lr = trainer.lr
        n_train = plan.num_batches("train")
        plan.take_data_wait()
        train = trainer.train_epoch(plan.batches("train", epoch), n_train, f"epoch {epoch} train")
        data_wait = plan.take_data_wait()
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
            "lr": lr,
            "data_wait_s": data_wait,
        }
        if annotate is not None:
            row.update(annotate(row))
        history.append(row)
        trainer.end_epoch(epoch, row["v_mae"])
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
        if stop_after(epoch):
            break
    return history
