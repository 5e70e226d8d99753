"""`vidattack train`: train a video classifier, clean or adversarially (Madry AT, AAT, CAT, GAT)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit, stderr_console
from vidattack.errors import BadParameterError, OutputExistsError
from vidattack.text import levels

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from vidattack.train import TrainConfig, TrainResult


def _budgets(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    from vidattack.attacks.params import parse_number

    try:
        return tuple(parse_number(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise BadParameterError(f"budgets: {e}") from None


def train(
    data: Annotated[
        str, typer.Option(help="DATASET: class folder, .csv/.jsonl manifest or synthetic:N[:SEED].")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="The model file to write (.safetensors); a folder for a HuggingFace --init."
        ),
    ],
    arch: Annotated[
        str | None,
        typer.Option(help="Train a fresh network: tiny-c3d, tiny-lrcn or a torchvision arch (r3d_18)."),
    ] = None,
    init: Annotated[str | None, typer.Option(help="Fine-tune this model instead (any --model spec).")] = None,
    heldout: Annotated[
        str | None, typer.Option(help="DATASET for held-out accuracies (default: 10% of --data kept out).")
    ] = None,
    adversarial: Annotated[
        str | None,
        typer.Option(help="White-box attack for the inner maximisation (pgd-linf, multav-linf...)."),
    ] = None,
    eps: o.Eps = None,
    alpha: Annotated[
        str | None, typer.Option(help="The attack's step size: a number, auto, or eps (alpha = eps).")
    ] = None,
    steps: o.Steps = None,
    settings: o.Settings = None,
    schedule: Annotated[
        str, typer.Option(help="Budget schedule: fixed (Madry AT), adaptive (AAT) or curriculum (CAT).")
    ] = "fixed",
    budgets: Annotated[
        str | None,
        typer.Option(help="Budgets of adaptive/curriculum, comma-separated (default 0,2/255,..,12/255)."),
    ] = None,
    xi: Annotated[
        int, typer.Option(min=1, help="AAT: epochs between adaptations of the budget distribution.")
    ] = 10,
    direction: Annotated[str, typer.Option(help="CAT: budgets go up or down.")] = "up",
    denoiser: Annotated[
        bool, typer.Option("--denoiser", help="GAT: train a denoising pre-processor with it.")
    ] = False,
    gan_weight: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="GAT: weight gamma_2 of the denoiser's GAN loss against a 3D discriminator trained "
            "beside it (needs --denoiser; the MSE weight gamma_1 is 1). 0 leaves the GAN out. The "
            "paper gives no value; APE-GAN's code weighs 0.3 against 0.7 on the reconstruction loss.",
        ),
    ] = 0.0,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training clips.")] = 5,
    batch_size: Annotated[int, typer.Option(min=1, help="Clips per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, one-cycle).")] = 1e-3,
    seed: Annotated[
        int, typer.Option(help="Seed of the weights, data order, attacks and held-out split.")
    ] = 0,
    eval_size: Annotated[
        int, typer.Option(min=0, help="Held-out clips attacked for the robust accuracy each epoch.")
    ] = 50,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the run saved in this training-state file.")
    ] = None,
    overwrite: o.Overwrite = False,
    trust_checkpoint: o.TrustCheckpoint = False,
    threads: o.Threads = 0,
    precision: o.PrecisionOption = o.DEFAULT_PRECISION,
    fmt: o.FormatOption = None,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
) -> None:
    """Train a model on a labelled DATASET, clean or adversarially, and write a .safetensors model that
    every other command loads (--model OUT); a HuggingFace folder given as --init is written back as a
    folder. Progress and per-epoch loss and clean/robust accuracy go to stderr; the training state is
    saved after every epoch to OUT.resume.pt for --resume."""
    from vidattack.pipeline import set_cpu_threads
    from vidattack.train import TrainConfig, train_model

    o.setup_logging(verbose, quiet)
    chosen = o.default_format(fmt)
    set_cpu_threads(threads)
    if out.exists() and not overwrite and resume is None:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    if schedule not in ("fixed", "adaptive", "curriculum"):
        raise BadParameterError(f"expected --schedule fixed, adaptive or curriculum, got {schedule!r}")
    if direction not in ("up", "down"):
        raise BadParameterError(f"expected --direction up or down, got {direction!r}")
    scope = o.precision_scope(precision, "cpu")  # refused before any data is read
    # --eps means what it means in perturb and eval (`vidattack.budget`: 1 + e for MultAV's ratio)
    budget = o.parse_budget(eps, alpha, steps, alpha_words=("auto", "eps"))
    if adversarial is not None:
        from vidattack.attacks.registry import attack_class

        budget = budget.for_attack(attack_class(adversarial))
    alpha_value = budget.alpha
    if adversarial is None and (eps or alpha or steps or settings or schedule != "fixed"):
        raise BadParameterError("--eps, --alpha, --steps, --set and --schedule need --adversarial ATTACK")
    if gan_weight > 0 and not denoiser:
        raise BadParameterError("--gan-weight needs --denoiser (the GAN term trains GAT's denoiser)")
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        attack=adversarial,
        attack_settings=o.parse_sets(settings),
        eps=budget.eps,
        alpha=alpha_value,
        steps=budget.steps,
        schedule=schedule,  # type: ignore[arg-type]
        budgets=_budgets(budgets),
        xi=xi,
        direction=direction,  # type: ignore[arg-type]
        denoiser=denoiser,
        gamma_gan=gan_weight,
        eval_size=eval_size,
    )
    progress = _Progress(o.progress_bars(not quiet), stderr_console(), quiet)
    bars = progress.bars
    state = out.with_name(out.name + ".resume.pt")
    if bars is not None:
        bars.start()
    try:
        with scope:  # training runs on the CPU; the attacks inside it at --precision
            result = train_model(
                config,
                data=data,
                heldout=heldout,
                out=out,
                arch=arch,
                init=init,
                progress=progress,
                checkpoint=state,
                resume=resume,
                trust_checkpoint=trust_checkpoint,
            )
    finally:
        if bars is not None:
            bars.stop()
    state.unlink(missing_ok=True)
    emit([_record(out, config, result)], chosen, table=_table, key=None)


def _record(out: Path, config: TrainConfig, result: TrainResult) -> Record:
    return {
        "status": "ok",
        "out": str(out),
        "arch": config.arch,
        "attack": config.attack,
        "schedule": config.schedule,
        "epochs": config.epochs,
        "seconds": round(result.seconds, 1),
        "heldout": result.heldout,
        "history": result.history,
    }


class _Progress:
    """The training callback: a bar for loading and for each epoch's batches, a line per epoch."""

    def __init__(self, bars: Progress | None, console: Console, quiet: bool) -> None:
        self.bars, self.console, self.quiet = bars, console, quiet
        self.task: dict[str, Any] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if self.bars is not None and kind in ("load", "batch"):
            what = (
                f"loading {event['what']} clips"
                if kind == "load"
                else f"epoch {event['epoch']}/{event['epochs']}"
            )
            total = event["total"] if kind == "load" else event["batches"]
            done = event["done"] if kind == "load" else event["batch"]
            if self.task.get("what") != what:
                if "id" in self.task:
                    self.bars.remove_task(self.task["id"])
                self.task.update(what=what, id=self.bars.add_task(what, total=total))
            desc = what if kind == "load" else f"{what} loss {event['loss']:.3f} eps {levels(event['eps'])}"
            self.bars.update(self.task["id"], completed=done, description=desc)
        elif kind == "epoch" and not self.quiet:
            parts = [
                f"epoch {event['epoch']}/{event['epochs']}",
                f"loss {event['loss']:.4f}",
                f"train acc {event['train_acc']:.3f}",
            ]
            if "d_loss" in event:
                parts.append(f"discriminator loss {event['d_loss']:.4f}")
            if "clean_acc" in event:
                parts.append(f"held-out clean acc {event['clean_acc']:.3f}")
            if "robust_acc" in event:
                parts.append(f"robust acc {event['robust_acc']:.3f} (eps {levels(event['robust_eps'])})")
            if "probs" in event:
                parts.append("P(eps) " + " ".join(f"{p:.2f}" for p in event["probs"]))
            parts.append(f"{event['seconds']:.0f}s")
            self._print(", ".join(parts))
        elif kind == "resume" and not self.quiet:
            self._print(f"resuming after epoch {event['epoch']}/{event['epochs']}")

    def _print(self, line: str) -> None:
        # through the bars' console while they show: it prints above the live bars, not onto them
        (self.bars.console if self.bars is not None else self.console).print(line, soft_wrap=True)


def _table(rows: list[Record], console: Console) -> None:
    from rich.table import Table

    t = Table(header_style="bold")
    for col in ("model", "attack", "held-out clean", "held-out robust", "seconds"):
        t.add_column(col)
    for r in rows:
        h = r["heldout"]
        robust = h.get("robust")
        t.add_row(
            cell(r["out"]),
            cell(r["attack"] or "clean"),
            cell(f"{h.get('clean', float('nan')):.3f}"),
            cell("-" if robust is None else f"{robust:.3f}"),
            cell(r["seconds"]),
        )
    console.print(t)
