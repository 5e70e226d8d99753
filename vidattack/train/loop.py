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

Progress goes through a callback (`progress(event)`) the CLI turns into a bar and per-epoch lines;
nothing here prints.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidattack.attacks.base import Attack
from vidattack.attacks.registry import attack_class, get_attack_from_text
from vidattack.errors import BadCheckpointError, BadParameterError
from vidattack.models.checkpoint import read_state
from vidattack.models.view import (
    FramePlan,
    ModelView,
    Preprocess,
    _center_crop,
    _resize_short_side,
    plan_frames,
)
from vidattack.train.denoiser import DenoisedNet, Denoiser
from vidattack.train.discriminator import Discriminator, new_discriminator
from vidattack.train.schedules import Schedule, make_schedule

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]


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


@dataclass
class ClipSet:
    """Training-ready clips: `frames` `(N, T', H, W, 3)` uint8 at the network's resolution, `labels`
    `(N,)`, and the frame plan that lays the T' frames out as clips."""

    frames: Tensor
    labels: Tensor
    plan: FramePlan

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Float clips `(B, T', 3, H, W)` in [0, 1] and labels `(B,)`."""
        x = self.frames[idx].permute(0, 1, 4, 2, 3).contiguous().float().div_(255.0)
        return x, self.labels[idx]

    def subset(self, n: int) -> ClipSet:
        return ClipSet(self.frames[:n], self.labels[:n], self.plan)


@dataclass
class TrainResult:
    """The trained view, the per-epoch history and the final held-out accuracies; with a GAN weight,
    also GAT's trained discriminator (needed only to go on training; the model file leaves it out)."""

    view: ModelView
    history: list[dict[str, Any]]
    heldout: dict[str, Any]
    seconds: float
    discriminator: Discriminator | None = None


def training_preprocess(pre: Preprocess) -> Preprocess:
    """The preprocessing of clips `prepare_clips` already resized and cropped: normalisation only."""
    return replace(pre, resize=None, crop=None)


def prepare_clips(
    dataset: Any, preprocess: Preprocess, *, progress: ProgressFn | None = None, what: str = "train"
) -> ClipSet:
    """Decode (or render) every item of a `vidattack.data.datasets.Dataset`, sample the frames the model
    sees and resize/crop them as `preprocess` says. Clips are laid out one after another (clip k is
    frames k*L .. k*L+L-1); a short video with fewer distinct clips repeats its first."""
    length, k = preprocess.clip_len, preprocess.num_clips
    out: Tensor | None = None
    labels = torch.empty(len(dataset), dtype=torch.long)
    for i, item in enumerate(dataset):
        video = item.load_frames()  # (T, H, W, 3) uint8
        plan = plan_frames(int(video.shape[0]), preprocess)
        clips = list(plan.clips) + [plan.clips[0]] * (k - len(plan.clips))
        order = [plan.frame_ids[p] for clip in clips for p in clip]
        frames = video.index_select(0, torch.tensor(order)).permute(0, 3, 1, 2).float()  # (K*L, 3, H, W)
        if preprocess.resize is not None:
            frames = _resize_short_side(frames, preprocess.resize)
        if preprocess.crop is not None:
            frames = _center_crop(frames, preprocess.crop)
        if out is None:
            out = torch.empty(len(dataset), k * length, *frames.shape[-2:], 3, dtype=torch.uint8)
        elif tuple(frames.shape[-2:]) != tuple(out.shape[2:4]):
            # mixed aspect ratios under a short-side resize without crop: cut to the first item's size
            frames = _center_crop(frames, (int(out.shape[2]), int(out.shape[3])))
        out[i] = frames.round().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        labels[i] = int(item.label)
        if progress is not None:
            progress({"event": "load", "what": what, "done": i + 1, "total": len(dataset)})
    if out is None:
        raise BadParameterError(f"expected a {what} data set with at least one video, got none")
    plan = FramePlan(
        num_frames=k * length,
        frame_ids=tuple(range(k * length)),
        clips=tuple(tuple(range(j * length, (j + 1) * length)) for j in range(k)),
    )
    return ClipSet(out, labels, plan)


class InnerAttack:
    """The inner maximisation: `config.attack` at a given budget, run on the current weights.

    `attacker(net, view, plan, x, y, eps, seed)` returns the adversarial clips `(B, T', 3, H, W)` for true
    labels `y`; the budget is the attack's own (`eps`, or `eps_m` for MultAV) and a null budget (0, or a
    ratio of 1) returns `x` without running anything. The net is put in eval mode and frozen for the
    attack and restored afterwards.
    """

    def __init__(self, config: TrainConfig) -> None:
        if config.attack is None:
            raise BadParameterError("expected an attack for adversarial training, got none")
        self.name = config.attack
        self.cls: type[Attack] = attack_class(config.attack)
        if not self.cls.white_box:
            raise BadParameterError(
                f"expected a white-box attack for the inner maximisation, got {config.attack} (black-box)"
            )
        self.config = config
        eps_name = self.cls.common_parameter("eps")
        spec = {s.name: s for s in self.cls.params()}[eps_name]
        self.eps_name = eps_name
        self.eps_default = float(spec.default)
        # the budget at which the attack changes nothing: 0 for additive sets, a ratio of 1 for MultAV
        self.null_budget = float(spec.min) if spec.min is not None else 0.0
        self._cache: dict[float, Attack] = {}
        self.get(config.eps if config.eps is not None else self.eps_default)  # fail early on bad settings

    def is_null(self, eps: float) -> bool:
        return eps <= self.null_budget

    def get(self, eps: float) -> Attack:
        if eps not in self._cache:
            alpha = self.config.alpha
            if alpha == "eps":  # the paper's alpha = eps (alpha_m = eps_m for MultAV)
                alpha = eps
            self._cache[eps] = get_attack_from_text(
                self.name, dict(self.config.attack_settings), eps=eps, alpha=alpha, steps=self.config.steps
            )
        return self._cache[eps]

    def __call__(
        self, net: nn.Module, view: ModelView, plan: FramePlan, x: Tensor, y: Tensor, eps: float, seed: int
    ) -> Tensor:
        if self.is_null(eps):
            return x
        was_training = net.training
        grads = [p.requires_grad for p in net.parameters()]
        net.eval()
        net.requires_grad_(False)  # the attack differentiates w.r.t. the input only
        try:
            result = self.get(eps)(view.bind(plan), x, labels=y, seed=seed)
        finally:
            for p, g in zip(net.parameters(), grads, strict=True):
                p.requires_grad_(g)
            net.train(was_training)
        return result.adversarial


@torch.no_grad()
def clean_accuracy(view: ModelView, data: ClipSet, batch: int = 25) -> float:
    """Accuracy of `view` (as it is: set eval mode first) on `data`."""
    bound = view.bind(data.plan)
    correct = 0
    for i in range(0, len(data), batch):
        x, y = data.batch(torch.arange(i, min(i + batch, len(data))))
        correct += int((bound(x).argmax(1) == y).sum())
    return correct / max(len(data), 1)


def robust_accuracy(
    view: ModelView, data: ClipSet, attacker: InnerAttack, eps: float, *, seed: int = 0, batch: int = 25
) -> float:
    """Accuracy on `data` under the attack at budget `eps` (eval mode)."""
    view.net.eval()
    bound = view.bind(data.plan)
    correct = 0
    for i in range(0, len(data), batch):
        idx = torch.arange(i, min(i + batch, len(data)))
        x, y = data.batch(idx)
        x_adv = attacker(view.net, view, data.plan, x, y, eps, seed + i)
        with torch.no_grad():
            correct += int((bound(x_adv).argmax(1) == y).sum())
    return correct / max(len(data), 1)


def _budget_losses(
    view: ModelView, data: ClipSet, attacker: InnerAttack, budgets: Sequence[float], seed: int
) -> list[float]:
    """Eq. 8's numerators: the summed adversarial loss of the current model at every budget."""
    view.net.eval()
    bound = view.bind(data.plan)
    out = []
    for eps in budgets:
        total = 0.0
        for i in range(0, len(data), 16):
            idx = torch.arange(i, min(i + 16, len(data)))
            x, y = data.batch(idx)
            x_adv = attacker(view.net, view, data.plan, x, y, eps, seed + i)
            with torch.no_grad():
                total += float(F.nll_loss(bound(x_adv), y, reduction="sum"))
        out.append(total)
    return out


def _emit(progress: ProgressFn | None, **event: Any) -> None:
    if progress is not None:
        progress(event)


def train(
    view: ModelView,
    train_set: ClipSet,
    heldout: ClipSet | None,
    config: TrainConfig,
    *,
    progress: ProgressFn | None = None,
    checkpoint: Path | None = None,
    resume: Path | None = None,
) -> TrainResult:
    """Train `view.net` in place on `train_set` as `config` says; returns it in eval mode, frozen.

    `view.preprocess` is the model's real preprocessing; the clips were prepared with it
    (`prepare_clips`). With `checkpoint`, the full training state is written there after every epoch;
    `resume` continues from such a file (the same settings are required, the epochs already done are
    skipped and the run ends where an uninterrupted one would).
    """
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
    bound = work_view.bind(train_set.plan)
    batches = math.ceil(len(train_set) / config.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lr_sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=config.epochs * batches, pct_start=0.15
    )
    disc: Discriminator | None = None
    d_opt: torch.optim.Optimizer | None = None
    if config.gamma_gan > 0:
        # Built only with a GAN weight and from its own seed: with gamma_2 = 0 nothing here runs and no
        # random number is drawn, so such runs are the same, to the bit, as before D existed.
        disc = new_discriminator(seed=config.seed, layout=view.preprocess.layout)
        # D's own Adam with APE-GAN's beta_1 = 0.5 (DCGAN's: the default 0.9 made GAN training
        # oscillate), at the run's peak learning rate and without the one-cycle schedule, so that D
        # learns to tell clean from restored clips from the first steps on, while G's rate warms up
        d_opt = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if resume is not None:
        state = read_state(resume)  # named errors, never a full pickle load
        saved = TrainConfig.from_dict(state["config"])
        if saved.to_dict() | {"epochs": 0} != config.to_dict() | {"epochs": 0}:
            raise BadParameterError(f"expected the settings of the run in {resume}, got different ones")
        if saved.epochs != config.epochs:
            raise BadParameterError(f"expected {saved.epochs} epochs as in {resume}, got {config.epochs}")
        try:
            net.load_state_dict(state["net"])
        except RuntimeError as e:
            raise BadCheckpointError(f"the network in {resume} does not fit: {str(e).splitlines()[0]}") from e
        opt.load_state_dict(state["optimizer"])
        lr_sched.load_state_dict(state["lr_sched"])
        schedule.load_state_dict(state["schedule"])
        g.set_state(state["generator"])
        if disc is not None and d_opt is not None:
            if "discriminator" not in state:
                raise BadCheckpointError(f"expected a discriminator in {resume}, got none")
            disc.load_state_dict(state["discriminator"])
            d_opt.load_state_dict(state["d_optimizer"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        _emit(progress, event="resume", epoch=start_epoch, epochs=config.epochs)

    adapt_set = train_set.subset(min(config.adapt_size, len(train_set)))
    eval_set = heldout.subset(min(config.eval_size, len(heldout))) if heldout is not None else None
    t0 = time.perf_counter()
    step_seed = config.seed * 1_000_003 + start_epoch * batches
    # GAT's losses read the denoiser's output: each step keeps it while the classifier runs
    gat_losses = config.denoiser and (config.gamma_mse > 0 or disc is not None)
    denoiser = net.denoiser if gat_losses and isinstance(net, DenoisedNet) else None
    for epoch in range(start_epoch, config.epochs):
        net.train()
        order = torch.randperm(len(train_set), generator=g)
        loss_sum, correct, seen, budget_sum, d_loss_sum = 0.0, 0, 0, 0.0, 0.0
        for b in range(batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            x, y = train_set.batch(idx)
            budget = schedule.budget(epoch, b, batches) if attacker is not None else 0.0
            step_seed += 1
            x_in = attacker(net, work_view, train_set.plan, x, y, budget, step_seed) if attacker else x
            net.train()
            with _kept_output(denoiser) as restored_out:
                log_p = bound(x_in)
            loss = F.nll_loss(log_p, y)
            if denoiser is not None:
                # GAT, eq. 14: the denoiser's output should be the clean clip (MSE) and, with a GAN
                # weight, pass for a clean clip in the discriminator's eyes. The output is the one the
                # classifier just saw (the same G(x_in), not a second pass of the denoiser).
                clean = bound._clip_batch(x)  # (B*K, C, L, h, w) or (B*K, L, C, h, w), as the net takes
                (restored,) = restored_out
                if config.gamma_mse > 0:
                    loss = loss + config.gamma_mse * F.mse_loss(restored, clean)
                if disc is not None and d_opt is not None:
                    # eq. 11 given G (before G moves), then eq. 12's GAN term given the updated D
                    d_loss_sum += _discriminator_step(disc, d_opt, clean, restored.detach()) * len(idx)
                    loss = loss + config.gamma_gan * _generator_gan_loss(disc, restored)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr_sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((log_p.detach().argmax(1) == y).sum())
            seen += len(idx)
            budget_sum += budget * len(idx)
            _emit(
                progress,
                event="batch",
                epoch=epoch + 1,
                epochs=config.epochs,
                batch=b + 1,
                batches=batches,
                loss=loss_sum / seen,
                eps=budget,
            )
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": loss_sum / seen,
            "train_acc": correct / seen,
            "mean_eps": budget_sum / seen,
        }
        if disc is not None:
            row["d_loss"] = d_loss_sum / seen
        if attacker is not None and schedule.wants_update(epoch):
            losses = _budget_losses(work_view, adapt_set, attacker, schedule.budgets, seed=epoch)
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
        history.append(row)
        if checkpoint is not None:  # before reporting: an epoch reported done is an epoch saved
            _save_state(checkpoint, net, opt, lr_sched, schedule, g, history, epoch + 1, config, disc, d_opt)
        _emit(progress, event="epoch", **row, epochs=config.epochs)

    net.eval()
    result_heldout: dict[str, Any] = {}
    if heldout is not None:
        result_heldout = {"n": len(heldout), "clean": clean_accuracy(work_view, heldout)}
        if attacker is not None:
            result_heldout.update(
                attack=config.attack,
                eps=eval_eps,
                n_robust=len(eval_set) if eval_set is not None else 0,
                robust=history[-1].get("robust_acc") if history else None,
            )
    net.requires_grad_(False)
    if disc is not None:
        disc.eval().requires_grad_(False)
    trained = ModelView(
        net=net,
        preprocess=view.preprocess,
        labels=view.labels,
        name=view.name,
        source=f"trained from {view.source or view.name}",
    )
    return TrainResult(trained, history, result_heldout, time.perf_counter() - t0, discriminator=disc)


@contextlib.contextmanager
def _kept_output(module: nn.Module | None) -> Iterator[list[Tensor]]:
    """The outputs `module` gives while the block runs, in a list (nothing kept for None)."""
    kept: list[Tensor] = []
    hook = module.register_forward_hook(lambda _m, _i, out: kept.append(out)) if module is not None else None
    try:
        yield kept
    finally:
        if hook is not None:
            hook.remove()


def _discriminator_step(disc: Discriminator, opt: torch.optim.Optimizer, real: Tensor, fake: Tensor) -> float:
    """One Adam step of D on eq. 11 for clean clips `real` and the denoiser's `fake` (detached).

    Eq. 11 as printed maximises log D(X) - log D(G(X + delta)), which is unbounded (D(G) -> 0 sends it
    to infinity) and not the discriminator side of eq. 9's GAN. We use the standard GAN discriminator
    objective, max log D(X) + log(1 - D(G(X + delta))) (Goodfellow et al. 2014), which is also what
    APE-GAN's code trains: it pushes D the same way (D(X) up, D(G) down) but is bounded, and written as
    binary cross-entropy on logits (targets 1 for clean, 0 for reconstructed) it is numerically stable.
    Returns the loss (the sum of the two cross-entropies; 2 log 2 ~ 1.386 when D cannot tell them apart).
    """
    real_logit, fake_logit = disc(real), disc(fake)  # (B*K,) each
    loss = F.binary_cross_entropy_with_logits(
        real_logit, torch.ones_like(real_logit)
    ) + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _generator_gan_loss(disc: Discriminator, restored: Tensor) -> Tensor:
    """Eq. 12's GAN term, -log D(G(X + delta)): the non-saturating generator loss, which keeps a strong
    gradient while D still rejects G's output (log(1 - D(G)) would be flat there). D is frozen for
    this forward, so the G/F step's backward leaves D's gradients alone."""
    disc.requires_grad_(False)
    try:
        logit = disc(restored)  # (B*K,)
    finally:
        disc.requires_grad_(True)
    return F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))


def _save_state(
    path: Path,
    net: nn.Module,
    opt: torch.optim.Optimizer,
    lr_sched: Any,
    schedule: Schedule,
    g: torch.Generator,
    history: list[dict[str, Any]],
    epoch: int,
    config: TrainConfig,
    disc: Discriminator | None = None,
    d_opt: torch.optim.Optimizer | None = None,
) -> None:
    from vidattack.files import atomic_path

    state = {
        "epoch": epoch,
        "net": net.state_dict(),
        "optimizer": opt.state_dict(),
        "lr_sched": lr_sched.state_dict(),
        "schedule": schedule.state_dict(),
        "generator": g.get_state(),
        "history": history,
        "config": config.to_dict(),
    }
    if disc is not None and d_opt is not None:  # GAT's D is training state: it resumes with the rest
        state["discriminator"] = disc.state_dict()
        state["d_optimizer"] = d_opt.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
