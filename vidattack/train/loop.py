"""Adversarial training (Madry et al. 2018) of a video classifier, with any registered white-box attack
as the inner maximisation and the budget schedules and denoiser of Kinfu and Vidal (CVPRW 2022).

    min_theta E_(x,y) [ max_{delta in B_eps} CE(F(x + delta; theta), y) ]            (eq. 5)

Each batch: draw the budget from the schedule, run the attack against the *current* weights (the
network wrapped in a `ModelView` bound to the clips' frame plan, exactly what attacks see at test
time), then take one optimiser step on the cross-entropy of the adversarial clips (plus, with the
denoiser, GAT's reconstruction loss, eq. 14, and with a GAN weight, a discriminator step (eq. 11)
before it and the denoiser's GAN loss in it (eq. 12)).

Design choices, each a deliberate one:

- The attack runs with the network in **eval mode** (BatchNorm on its running statistics), training
  resumes in train mode for the update. The attack then maximises the loss of the function that will be
  deployed and attacked, each clip's perturbation does not depend on its batch-mates, and the five or
  so attack forwards per batch do not pull BatchNorm's running statistics around. This is what most
  PyTorch Madry-AT code does (TRADES, MART, Rice et al.'s `model.eval()` before PGD in their evaluation
  and the common `robustness` library's default); the original TF code had no BatchNorm switch to make.
- The attack goes through the library's template, so the training examples are what an attack would
  write: projected into the threat model and quantized to 8 bits, and labelled with the true labels
  (`labels=y`), never with the model's predictions (the latter leaks the model's errors into training).
- Training is purely adversarial (the paper's AT, eq. 5), with no clean term.
- Clips are prepared once: each item's frames are sampled by the model's frame plan and resized and
  cropped as the model's preprocessing says, so batches are uniform tensors at the network's resolution
  and the attack perturbs the pixels the network sees. The saved model keeps the full preprocessing.

The pieces live beside this loop: the settings (`config`), the prepared clips (`clips`), the inner
attack and the accuracies measured with it (`inner`), GAT's terms (`gat`) and the resumable state
(`state`).

Progress goes through a callback (`progress(event)`) the CLI turns into a bar and per-epoch lines;
nothing here prints.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vidattack.errors import BadParameterError
from vidattack.models.denoiser import DenoisedNet, Denoiser
from vidattack.models.view import BoundModel, ModelView
from vidattack.train.clips import ClipSet, training_preprocess
from vidattack.train.config import TrainConfig, TrainEventFn
from vidattack.train.discriminator import Discriminator, new_discriminator
from vidattack.train.gat import discriminator_step, generator_gan_loss, kept_output
from vidattack.train.inner import InnerAttack, budget_losses, clean_accuracy, robust_accuracy
from vidattack.train.schedules import Schedule, make_schedule
from vidattack.train.state import TrainingState

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """The trained view, the per-epoch history and the final held-out accuracies; with a GAN weight,
    also GAT's trained discriminator (needed only to go on training; the model file leaves it out)."""

    view: ModelView
    history: list[dict[str, Any]]
    heldout: dict[str, Any]
    seconds: float
    discriminator: Discriminator | None = None


def train(
    view: ModelView,
    train_set: ClipSet,
    heldout: ClipSet | None,
    config: TrainConfig,
    *,
    progress: TrainEventFn | None = None,
    checkpoint: Path | None = None,
    resume: Path | None = None,
) -> TrainResult:
    """Train `view.net` in place on `train_set` as `config` says; returns it in eval mode, frozen.

    `view.preprocess` is the model's real preprocessing; the clips were prepared with it
    (`prepare_clips`). With `checkpoint`, the full training state is written there after every epoch;
    `resume` continues from such a file (the same settings are required, the epochs already done are
    skipped and the run ends where an uninterrupted one would).
    """
    _check_config(config, train_set)
    torch.manual_seed(config.seed)
    attacker = InnerAttack(config) if config.attack is not None else None
    eps = config.eps if config.eps is not None else (attacker.eps_default if attacker else 0.0)
    schedule: Schedule = make_schedule(
        config.schedule,
        eps=eps,
        budgets=config.budgets,
        epochs=config.epochs,
        xi=config.xi,
        seed=config.seed,
        direction=config.direction,
    )
    eval_eps = (
        config.eval_eps
        if config.eval_eps is not None
        else (eps if config.schedule == "fixed" else max(schedule.budgets))
    )
    net = view.net
    if config.denoiser and not isinstance(net, DenoisedNet):
        net = DenoisedNet(Denoiser(layout=view.preprocess.layout), net)
    net.requires_grad_(True)
    work_view = ModelView(
        net=net, preprocess=training_preprocess(view.preprocess), labels=view.labels, name=view.name
    )
    run = _Run(config, work_view, train_set, attacker, progress)
    state = _new_state(net, schedule, config, run.batches, view.preprocess.layout)
    run.denoiser = _gat_denoiser(net, config, state.disc)
    if resume is not None:
        state.restore(resume, config)
        _emit(progress, event="resume", epoch=state.epoch, epochs=config.epochs)

    adapt_set = train_set.subset(min(config.adapt_size, len(train_set)))
    eval_set = heldout.subset(min(config.eval_size, len(heldout))) if heldout is not None else None
    t0 = time.perf_counter()
    for epoch in range(state.epoch, config.epochs):
        row = run.epoch(state, epoch)
        if attacker is not None and schedule.wants_update(epoch):
            losses = budget_losses(work_view, adapt_set, attacker, schedule.budgets, seed=epoch)
            schedule.update(losses)
            row["budget_losses"] = losses
        if hasattr(schedule, "probs"):
            row["probs"] = [round(float(p), 4) for p in getattr(schedule, "probs")]  # noqa: B009
        if eval_set is not None:
            net.eval()
            row["clean_acc"] = clean_accuracy(work_view, eval_set)
            if attacker is not None:
                row["robust_acc"] = robust_accuracy(work_view, eval_set, attacker, eval_eps, seed=17)
                row["robust_eps"] = eval_eps
        row["seconds"] = time.perf_counter() - t0
        state.history.append(row)
        state.epoch = epoch + 1
        if checkpoint is not None:  # before reporting: an epoch reported done is an epoch saved
            state.save(checkpoint, config)
        _emit(progress, event="epoch", **row, epochs=config.epochs)
    return _result(view, work_view, heldout, eval_set, config, eval_eps, state, t0)


def _check_config(config: TrainConfig, train_set: ClipSet) -> None:
    if config.epochs < 1:
        raise BadParameterError(f"expected at least one epoch, got {config.epochs}")
    if config.batch_size < 1:
        raise BadParameterError(f"expected a batch size of at least 1, got {config.batch_size}")
    if len(train_set) < 1:
        raise BadParameterError("expected a non-empty training set")
    if config.schedule != "fixed" and config.attack is None:
        raise BadParameterError(f"--schedule {config.schedule} needs --adversarial ATTACK")
    if not config.gamma_gan >= 0:  # also refuses NaN
        raise BadParameterError(f"expected a GAN weight of at least 0, got {config.gamma_gan}")
    if config.gamma_gan > 0 and not config.denoiser:
        raise BadParameterError("--gan-weight needs --denoiser (the GAN term trains GAT's denoiser)")


def _new_state(
    net: torch.nn.Module,
    schedule: Schedule,
    config: TrainConfig,
    batches: int,
    layout: Literal["NCTHW", "NTCHW"],
) -> TrainingState:
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lr_sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=config.epochs * batches, pct_start=0.15
    )
    disc: Discriminator | None = None
    d_opt: torch.optim.Optimizer | None = None
    if config.gamma_gan > 0:
        # Built only with a GAN weight and from its own seed: with gamma_2 = 0 nothing here runs and no
        # random number is drawn, so such runs are the same, to the bit, as before D existed.
        disc = new_discriminator(seed=config.seed, layout=layout)
        # D's own Adam with APE-GAN's beta_1 = 0.5 (DCGAN's: the default 0.9 made GAN training
        # oscillate), at the run's peak learning rate and without the one-cycle schedule, so that D
        # learns to tell clean from restored clips from the first steps on, while G's rate warms up
        d_opt = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(config.seed)
    return TrainingState(net, opt, lr_sched, schedule, g, disc, d_opt)


def _gat_denoiser(
    net: torch.nn.Module, config: TrainConfig, disc: Discriminator | None
) -> torch.nn.Module | None:
    # GAT's losses read the denoiser's output: each step keeps it while the classifier runs
    gat_losses = config.denoiser and (config.gamma_mse > 0 or disc is not None)
    return net.denoiser if gat_losses and isinstance(net, DenoisedNet) else None


@dataclass
class _Run:
    """What every epoch of one run reads: the settings, the network's training view, the clips, the
    inner attack, the progress callback and (for GAT's losses) the denoiser whose output is kept."""

    config: TrainConfig
    view: ModelView
    train_set: ClipSet
    attacker: InnerAttack | None
    progress: TrainEventFn | None
    denoiser: torch.nn.Module | None = None

    def __post_init__(self) -> None:
        self.batches = math.ceil(len(self.train_set) / self.config.batch_size)
        self.bound: BoundModel = self.view.bind(self.train_set.plan)

    def epoch(self, state: TrainingState, epoch: int) -> dict[str, Any]:
        """One pass over the training clips in the state's seeded order; the epoch's history row."""
        config, net = self.config, self.view.net
        net.train()
        order = torch.randperm(len(self.train_set), generator=state.generator)
        loss_sum, correct, seen, budget_sum, d_loss_sum = 0.0, 0, 0, 0.0, 0.0
        for b in range(self.batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            x, y = self.train_set.batch(idx)
            budget = state.schedule.budget(epoch, b, self.batches) if self.attacker is not None else 0.0
            # one seed per step of the whole run, the same whether or not the run was resumed
            step_seed = config.seed * 1_000_003 + epoch * self.batches + b + 1
            x_in = (
                self.attacker(net, self.view, self.train_set.plan, x, y, budget, step_seed)
                if self.attacker
                else x
            )
            net.train()
            with kept_output(self.denoiser) as restored_out:
                log_p = self.bound(x_in)
            loss = F.nll_loss(log_p, y)
            if self.denoiser is not None:
                loss, d_loss = self._with_gat_terms(loss, state, x, restored_out[0])
                d_loss_sum += d_loss * len(idx)
            state.opt.zero_grad(set_to_none=True)
            loss.backward()
            state.opt.step()
            state.lr_sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((log_p.detach().argmax(1) == y).sum())
            seen += len(idx)
            budget_sum += budget * len(idx)
            _emit(
                self.progress,
                event="batch",
                epoch=epoch + 1,
                epochs=config.epochs,
                batch=b + 1,
                batches=self.batches,
                loss=loss_sum / seen,
                eps=budget,
            )
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": loss_sum / seen,
            "train_acc": correct / seen,
            "mean_eps": budget_sum / seen,
        }
        if state.disc is not None:
            row["d_loss"] = d_loss_sum / seen
        return row

    def _with_gat_terms(
        self, loss: Tensor, state: TrainingState, x: Tensor, restored: Tensor
    ) -> tuple[Tensor, float]:
        """GAT, eq. 14: the denoiser's output should be the clean clip (MSE) and, with a GAN weight,
        pass for a clean clip in the discriminator's eyes. `restored` is the output the classifier
        just saw (the same G(x_in), not a second pass of the denoiser). Returns `loss` with the terms
        added and the discriminator's loss (0 without one)."""
        config = self.config
        clean = self.bound._clip_batch(x)  # (B*K, C, L, h, w) or (B*K, L, C, h, w), as the net takes
        if config.gamma_mse > 0:
            loss = loss + config.gamma_mse * F.mse_loss(restored, clean)
        d_loss = 0.0
        if state.disc is not None and state.d_opt is not None:
            # eq. 11 given G (before G moves), then eq. 12's GAN term given the updated D
            d_loss = discriminator_step(state.disc, state.d_opt, clean, restored.detach())
            loss = loss + config.gamma_gan * generator_gan_loss(state.disc, restored)
        return loss, d_loss


def _result(
    view: ModelView,
    work_view: ModelView,
    heldout: ClipSet | None,
    eval_set: ClipSet | None,
    config: TrainConfig,
    eval_eps: float,
    state: TrainingState,
    t0: float,
) -> TrainResult:
    net = work_view.net
    net.eval()
    result_heldout: dict[str, Any] = {}
    if heldout is not None:
        result_heldout = {"n": len(heldout), "clean": clean_accuracy(work_view, heldout)}
        if config.attack is not None:
            result_heldout.update(
                attack=config.attack,
                eps=eval_eps,
                n_robust=len(eval_set) if eval_set is not None else 0,
                robust=state.history[-1].get("robust_acc") if state.history else None,
            )
    net.requires_grad_(False)
    if state.disc is not None:
        state.disc.eval().requires_grad_(False)
    trained = ModelView(
        net=net,
        preprocess=view.preprocess,
        labels=view.labels,
        name=view.name,
        source=f"trained from {view.source or view.name}",
    )
    return TrainResult(
        trained, state.history, result_heldout, time.perf_counter() - t0, discriminator=state.disc
    )


def _emit(progress: TrainEventFn | None, **event: Any) -> None:
    if progress is not None:
        progress(event)
