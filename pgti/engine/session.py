"""One session builder: from a run config and the prepared data, the storage, the batch plan,
the model and the trainer, for any rank of any world. The single-node runner is rank 0 of a world
of one; every DDP rank and every benchmark call the same function, so what is timed and what is
measured is what trains.

    data = read_dataset(...)                       # features and split, no storage yet
    session = build_session(config, data, storage="index", device=device)
    history = fit(session.trainer, session.plan, epochs=...)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from pgti.config import RunConfig
from pgti.data.loader import PreparedData
from pgti.data.plan import Plan, Sharding
from pgti.data.storages import BuildContext, build_storages
from pgti.engine.metrics import TargetUnits
from pgti.engine.trainer import Trainer
from pgti.nn import build_model
from pgti.nn.baselines import TrainingStatistics


@dataclass
class Session:
    config: RunConfig
    data: PreparedData
    storage: str  # the storage's name (what stats.csv's mode column says)
    plan: Plan
    model: torch.nn.Module  # unwrapped (DDP wraps it inside the trainer)
    trainer: Trainer

    def close(self) -> None:
        self.plan.close()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def model_for(config: RunConfig, data: PreparedData, device: torch.device) -> torch.nn.Module:
    """The config's model on ``data``'s graph, seeded, on ``device``."""
    seed_everything(config.training.seed)
    return build_model(config.model.name, num_nodes=data.num_nodes, num_features=data.num_features,
                       lags=data.lags, edge_index=data.edge_index, edge_weight=data.edge_weight,
                       **config.model.options).to(device)


def fit_model(model: torch.nn.Module, stats: TrainingStatistics | None) -> torch.nn.Module:
    """Give a model that learns from the training statistics (a baseline) its ``fit`` call."""
    fit_hook = getattr(model, "fit", None)
    if callable(fit_hook) and stats is not None:
        fit_hook(stats)
    return model


def build_plan(config: RunConfig, data: PreparedData, *, storage: str, device: torch.device | str = "cpu",
               world: int = 1, rank: int = 0, sharding: str = "global", client=None,
               datasets: dict | None = None) -> Plan:
    """Rank ``rank``'s storage and batch plan: the data side of a session (what a benchmark of
    batch assembly alone needs)."""
    device = torch.device(device)
    data.device = device
    storages = build_storages(storage, BuildContext(data, device, world, rank, client, datasets))
    batching = config.batching
    return Plan(Sharding(sharding, data.split, world, rank, batching.batch_size, config.training.seed,
                         batching.max_batches, batching.full_evaluation), storages, device)


def build_session(
    config: RunConfig,
    data: PreparedData,
    *,
    storage: str,
    device: torch.device | str = "cpu",
    world: int = 1,
    rank: int = 0,
    sharding: str = "global",
    client=None,
    datasets: dict | None = None,
    stats: TrainingStatistics | None = None,
    wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> Session:
    """Build rank ``rank``'s storage and plan (:func:`build_plan`), then the model and trainer.

    ``stats`` fits a baseline model; ``wrap`` wraps a trainable model (DDP); ``reduce`` sums the
    metric sums over the ranks."""
    device = torch.device(device)
    plan = build_plan(config, data, storage=storage, device=device, world=world, rank=rank, sharding=sharding,
                      client=client, datasets=datasets)
    model = fit_model(model_for(config, data, device), stats)
    trainable = any(p.requires_grad for p in model.parameters())
    optim = config.optim
    trainer = Trainer(wrap(model) if wrap is not None and trainable else model, TargetUnits.of(data), data.lags,
                      device=device, progress=progress, reduce=reduce, lr=optim.lr,
                      lr_decay_epochs=optim.lr_decay_epochs, lr_decay_factor=optim.lr_decay_factor,
                      clip_grad_norm=optim.clip_grad_norm)
    return Session(config, data, storage, plan, model, trainer)
