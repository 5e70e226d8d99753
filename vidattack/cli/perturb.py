"""`vidattack perturb`: attack videos, write the adversarial video, pictures and report for each."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidattack.cli import batching as b
from vidattack.cli import delivery as d
from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit, yes_no
from vidattack.errors import BadParameterError

if TYPE_CHECKING:
    from rich.console import Console

    from vidattack.attacks.base import Attack
    from vidattack.cli.options import Budget
    from vidattack.cli.progress import BatchProgress


def perturb(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT",
            help="Video files, folders (searched recursively) or - for paths on stdin.",
            show_default=False,
        ),
    ],
    attack: Annotated[
        str, typer.Option("--attack", "-a", metavar="NAME", help="Attack name (see `vidattack attacks`).")
    ] = "pgd-linf",
    model: o.Model = None,
    arch: o.Arch = None,
    labels: o.Labels = None,
    trust_checkpoint: o.TrustCheckpoint = False,
    out: o.Out = Path("vidattack-out"),
    eps: o.Eps = None,
    alpha: o.Alpha = None,
    steps: o.Steps = None,
    target: o.Target = None,
    seed: o.Seed = 0,
    device: o.Device = "auto",
    threads: o.Threads = 0,
    set_: o.Settings = None,
    apply: Annotated[
        Path | None,
        typer.Option(
            "--apply",
            metavar="PERT",
            help="Apply a universal perturbation file from `vidattack universal` instead of an attack.",
        ),
    ] = None,
    fmt: o.FormatOption = None,
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    batch_size: b.BatchSize = None,
    stop_when_fooled: b.StopWhenFooled = None,
    delivery: d.Delivery = None,
    robust_to: d.RobustTo = None,
) -> None:
    """Attack videos; write the adversarial video, its pictures and a report for each.

    For each input S.mp4 (S.avi, ...) these files go into --out:

    \b
      S.adv.mp4      the adversarial video, lossless, audio copied
      S.heatmap.mp4  the change per pixel as a colour video with a colour bar
      S.heatmap.png  contact sheet: clean, adversarial, change, frames spread
                     over the video
      S.frames.png   mean change per frame (and per-frame classes, CNN+RNN)
      S.curve.png    the attack's loss per step (white-box) or per query
                     (black-box), when the attack records one
      S.report.json  every number measured, written last: its presence means
                     the job finished
      S.delivery.mp4 with --delivery: a lossy copy that plays everywhere

    Records go to stdout (a table on a terminal, JSON lines otherwise); progress, warnings and errors
    go to stderr. Exit status: 0 when every input was processed, 1 when some failed, 2 for a usage
    error.
    """
    from vidattack.models import load_model
    from vidattack.pipeline import resolve_device, resolve_target, set_cpu_threads
    from vidattack.pipeline.batch import expand_inputs

    o.setup_logging(verbose, quiet)
    chosen = o.default_format(fmt)
    budget = o.parse_budget(eps, alpha, steps)
    delivery_spec, robust_spec = d.parse_delivery_options(delivery, robust_to)
    atk = build_attack(attack, o.parse_sets(set_), budget, apply)
    atk.check_stop_when_fooled(stop_when_fooled)  # refused before any model is loaded
    set_cpu_threads(threads)
    dev = resolve_device(device)
    view = load_model(model, arch=arch, labels=labels, trust_checkpoint=trust_checkpoint, device=dev)
    resolve_target(view, target)  # checked once, before the first input
    items = expand_inputs(inputs, exclude=out)
    if not items:
        raise BadParameterError("expected video files in the inputs, found none")

    show = not quiet and sys.stderr.isatty()
    progress = _progress(len(items)) if show else None
    job_args = {"model": view, "out_dir": out, "target": target, "seed": seed, "overwrite": overwrite}
    job_args |= {"delivery": delivery_spec, "robust_to": robust_spec}
    with progress if progress is not None else nullcontext():
        # the pipelined engine: decoding and writing overlap the attack, same records in input order
        run = b.run_engine(
            items, atk, dev, job_args, progress, batch_size=batch_size, stop_when_fooled=stop_when_fooled
        )
        records = emit(run, chosen, table=summary_table)
    if chosen is not o.Format.table and show:
        from vidattack.cli.emit import stderr_console

        summary_table(records, stderr_console())
    raise typer.Exit(1 if any(r["status"] != "ok" for r in records) else 0)


def build_attack(name: str, settings: dict[str, str], budget: Budget, apply: Path | None) -> Attack:
    """The attack the options name: a registered one, or the universal perturbation in `--apply`."""
    if apply is None:
        from vidattack.attacks.registry import get_attack_from_text

        return get_attack_from_text(name, settings, eps=budget.eps, alpha=budget.alpha, steps=budget.steps)
    if settings or budget != type(budget)():
        raise BadParameterError("expected no attack parameters with --apply (the file holds them)")
    from vidattack.attacks.universal import UniversalAttack
    from vidattack.perturbation_file import load_perturbation

    return UniversalAttack(perturbation=load_perturbation(apply))


def _progress(total: int) -> BatchProgress:
    from vidattack.cli.progress import BatchProgress

    return BatchProgress(total)


def summary_table(rows: list[Record], console: Console) -> None:
    """One row per input: labels before and after (the file's own label too when writing changed it),
    success, success after encode, Linf, queries, time."""
    from rich.table import Table

    table = Table(title="vidattack perturb", title_style="bold", header_style="bold")
    for col in ("input", "clean -> adversarial", "success", "after encode", "Linf", "queries", "time"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if r.get("status") != "ok":
            table.add_row(cell(r["input"]), cell(f"error: {r['error']}", "red"), *["-"] * 5)
            continue
        pert = r["perturbation"]
        clean, adv, file = r["clean"], r["adversarial"], r["reencoded"]
        labels = f"{clean['label']} ({clean['confidence']:.2f}) -> {adv['label']} ({adv['confidence']:.2f})"
        if file["index"] != adv["index"]:
            labels += f"; file: {file['label']} ({file['confidence']:.2f})"
        table.add_row(
            cell(Path(r["input"]).name),
            cell(labels),
            yes_no(r["success"]),
            yes_no(r["success_after_encode"]),
            f"{pert['linf'] * 255:.1f}/255",
            str(r["queries"]),
            f"{r['timing']['total']:.1f}s",
        )
    console.print(table)
