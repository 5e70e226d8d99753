"""The options of an eval as two values: `GridOptions` (which configurations) and `RunOptions` (how
`run_eval` runs them), each built once (by `vidattack eval` from its options, or by API callers) and
passed whole rather than as a dozen loose parameters through the CLI and the driver."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vidattack.pipeline.spec import UNTARGETED

if TYPE_CHECKING:
    from vidattack.delivery.spec import DeliverySpec
    from vidattack.eval.executors import Executor
    from vidattack.eval.grid import Config
    from vidattack.models.view import ModelView


@dataclass(frozen=True)
class GridOptions:
    """What `build_grid` makes configurations from: the attacks and their budgets (`eps` one list for
    all, or attack -> list), step size, steps (one text for all, or attack -> text: `--robust-to`
    raises only the iterative attacks'), `--set` settings, target modes, seed, early stop, delivery
    and robust-to encodes, and precision. `configs(view)` validates them for a model."""

    attacks: Sequence[str]
    eps: Sequence[str] | Mapping[str, Sequence[str]] = ()
    alpha: str | None = None
    steps: str | Mapping[str, str | None] | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    targets: Sequence[str] = (UNTARGETED,)
    seed: int = 0
    stop_when_fooled: float | None = None
    delivery: DeliverySpec | None = None
    robust_to: DeliverySpec | None = None
    precision: str = "fp32"

    def configs(self, view: ModelView) -> list[Config]:
        """Every configuration of these options for `view` (`build_grid`, which says what each means)."""
        from vidattack.eval.grid import build_grid

        return build_grid(
            self.attacks,
            view,
            eps=self.eps,
            alpha=self.alpha,
            steps=self.steps,
            settings=self.settings,
            targets=self.targets,
            seed=self.seed,
            stop_when_fooled=self.stop_when_fooled,
            delivery=self.delivery,
            robust_to=self.robust_to,
            precision=self.precision,
        )


@dataclass(frozen=True)
class RunOptions:
    """How `run_eval` runs a grid: into `out_dir`, on `executor` (`"local"`, `"ray"` joining
    `ray_address`, or an executor object), over the shard `(K, N)` of the data set or all of it, on
    `device` with `threads` CPU threads per worker. `verify` writes and re-reads each lossless video
    (a `delivery` needs it); `save_outputs` keeps the adversarial videos under `OUT/videos/KEY/`;
    `attack_misclassified` attacks videos the model already gets wrong; `chunk_size` videos go to a
    worker at once; results are fsynced every `fsync_every` records; `info` names entries of the
    attack's `result.info` each record keeps."""

    out_dir: str | Path
    executor: str | Executor = "local"
    ray_address: str | None = "auto"
    shard: tuple[int, int] | None = None
    device: str = "cpu"
    verify: bool = True
    save_outputs: bool = False
    attack_misclassified: bool = False
    chunk_size: int = 1
    threads: int = 0
    fsync_every: int = 16
    info: Sequence[str] = ()
