"""`TrainConfig`: everything that decides a training run, as one value (stored in the model's metadata
and in the resumable training state, which must match it to resume), and `TrainEventFn`, the callback
a run reports its progress through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: Training progress: dict events with "event" one of "load" (`what`, `done`, `total`), "batch"
#: (`epoch`, `epochs`, `batch`, `batches`, `loss`, `eps`), "epoch" (the epoch's history row) and
#: "resume" (`epoch`, `epochs`). Not the pipeline's `ProgressFn`: a run's events are its own.
TrainEventFn = Callable[[dict[str, Any]], None]


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in the model's `training` metadata).

    `attack` None trains on clean clips. `eps`/`alpha`/`steps` set the attack's common options (its own
    budget, step and iterations; `eps_m`/`alpha_m` for MultAV); `alpha` may be a number, `auto` (the
    paper's 0.2 (eps + 1)/255 for Linf PGD) or `eps` (alpha = eps, the paper's AT/AAT/CAT setting).
    `attack_settings` are any other attack parameters as text (`--set`). `schedule` is `fixed`,
    `adaptive` (AAT) or `curriculum` (CAT) over `budgets` (default {0, 2, .., 12}/255). `eval_eps` is
    the budget of the held-out robust accuracy (default `eps`, else the largest budget). With
    `denoiser`, GAT's loss weighs the reconstruction MSE by `gamma_mse` (gamma_1) and the denoiser's
    GAN loss against a discriminator by `gamma_gan` (gamma_2; 0, the default, builds no discriminator).
    """

    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    attack: str | None = None
    attack_settings: dict[str, str] = field(default_factory=dict)
    eps: float | None = None
    alpha: float | str | None = None
    steps: int | None = None
    schedule: Literal["fixed", "adaptive", "curriculum"] = "fixed"
    budgets: tuple[float, ...] | None = None
    xi: int = 10
    direction: Literal["up", "down"] = "up"
    adapt_size: int = 32
    denoiser: bool = False
    gamma_mse: float = 1.0
    gamma_gan: float = 0.0
    eval_size: int = 50
    eval_eps: float | None = None
    init: str | None = None
    arch: str | None = None
    data: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budgets"] = list(self.budgets) if self.budgets is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("budgets") is not None:
            kw["budgets"] = tuple(kw["budgets"])
        return cls(**kw)
