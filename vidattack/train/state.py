"""The state a training run changes as it goes, written after every epoch (`--checkpoint`) and read back
(`--resume`) so that a resumed run ends where an uninterrupted one would."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidattack.errors import BadCheckpointError, BadParameterError
from vidattack.files import atomic_path
from vidattack.train.config import TrainConfig
from vidattack.train.discriminator import Discriminator
from vidattack.train.schedules import Schedule


@dataclass
class TrainingState:
    """The network and everything beside it that moves during training: optimiser, learning-rate and
    budget schedules, the batch-order generator, GAT's discriminator and its optimiser (with a GAN
    weight), the per-epoch history and the number of epochs done."""

    net: nn.Module
    opt: torch.optim.Optimizer
    lr_sched: Any
    schedule: Schedule
    generator: torch.Generator
    disc: Discriminator | None = None
    d_opt: torch.optim.Optimizer | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0

    def save(self, path: Path, config: TrainConfig) -> None:
        """Write the state and the settings that made it to `path`, atomically."""
        state = {
            "epoch": self.epoch,
            "net": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "lr_sched": self.lr_sched.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "history": self.history,
            "config": config.to_dict(),
        }
        if self.disc is not None and self.d_opt is not None:  # GAT's D is training state too
            state["discriminator"] = self.disc.state_dict()
            state["d_optimizer"] = self.d_opt.state_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def restore(self, path: Path, config: TrainConfig) -> None:
        """Continue from a state `save` wrote; the settings must be `config`'s (epochs included)."""
        from vidattack.models.checkpoint import read_state

        state = read_state(path)  # named errors, never a full pickle load
        saved = TrainConfig.from_dict(state["config"])
        if saved.to_dict() | {"epochs": 0} != config.to_dict() | {"epochs": 0}:
            raise BadParameterError(f"expected the settings of the run in {path}, got different ones")
        if saved.epochs != config.epochs:
            raise BadParameterError(f"expected {saved.epochs} epochs as in {path}, got {config.epochs}")
        try:
            self.net.load_state_dict(state["net"])
        except RuntimeError as e:
            raise BadCheckpointError(f"the network in {path} does not fit: {str(e).splitlines()[0]}") from e
        self.opt.load_state_dict(state["optimizer"])
        self.lr_sched.load_state_dict(state["lr_sched"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        if self.disc is not None and self.d_opt is not None:
            if "discriminator" not in state:
                raise BadCheckpointError(f"expected a discriminator in {path}, got none")
            self.disc.load_state_dict(state["discriminator"])
            self.d_opt.load_state_dict(state["d_optimizer"])
        self.history = list(state["history"])
        self.epoch = int(state["epoch"])
