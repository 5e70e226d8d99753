"""`vidattack perturb`: attack videos, write the adversarial video, pictures and report for each."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidattack.cli import batching as b
from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit, print_error, yes_no
from vidattack.errors import BadParameterError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from vidattack.attacks.base import Attack
    from vidattack.cli.options import Budget


def perturb(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Video files, folders (searched recursively) or - for paths on stdin.", show_default=False
        ),
    ],
    attack: Annotated[
        str, typer.Option("--attack", "-a", help="Attack name (see `vidattack attacks`).")
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
            "--apply", help="Apply a universal perturbation learned by `vidattack universal` instead."
        ),
    ] = None,
    fmt: o.FormatOption = None,
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    # -- issue #12 (engine): batching and early stop --------------------------------------------------
    batch_size: b.BatchSize = None,
    stop_when_fooled: b.StopWhenFooled = None,
) -> None:
    """Attack videos and write S.adv.mp4, S.heatmap.mp4, S.heatmap.png, S.frames.png, S.curve.png and
    S.report.json for each."""
    from vidattack.models import load_model
    from vidattack.pipeline import resolve_device, resolve_target, set_cpu_threads
    from vidattack.pipeline.batch import expand_inputs

    o.setup_logging(verbose, quiet)
    chosen = o.default_format(fmt)
    budget = o.parse_budget(eps, alpha, steps)
    atk = build_attack(attack, o.parse_sets(set_), budget, apply)
    atk.check_stop_when_fooled(stop_when_fooled)  # issue #12: refused before any model is loaded
    set_cpu_threads(threads)
    dev = resolve_device(device)
    view = load_model(model, arch=arch, labels=labels, trust_checkpoint=trust_checkpoint, device=dev)
    resolve_target(view, target)  # checked once, before the first input
    items = expand_inputs(inputs, exclude=out)
    if not items:
        raise BadParameterError("expected video files in the inputs, found none")

    show = not quiet and sys.stderr.isatty()
    progress = o.progress_bars(show)
    job_args = {"model": view, "out_dir": out, "target": target, "seed": seed, "overwrite": overwrite}
    with progress if progress is not None else nullcontext():
        # issue #12: the pipelined engine instead of the sequential `_run`
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


def _run(items: list[Any], atk: Attack, dev: Any, job_args: dict[str, Any], progress: Progress | None) -> Any:
    """Each item's record, in order; errors become error records (one stderr line each)."""
    from vidattack.pipeline import perturb_file
    from vidattack.pipeline.batch import run_batch

    overall = progress.add_task("videos", total=len(items)) if progress and len(items) > 1 else None

    def job(item: Any) -> Record:
        task = progress.add_task(item.path.name, total=None) if progress is not None else None

        def tick(done: int, total: int) -> None:
            if progress is not None and task is not None:
                progress.update(task, completed=done, total=total)

        try:
            return perturb_file(item.path, atk, device=dev, progress=tick, stem=item.stem, **job_args)
        finally:
            if progress is not None and task is not None:
                progress.remove_task(task)

    for record in run_batch(items, job):
        if record["status"] != "ok":
            print_error(f"{record['input']}: {record['error']}")
        if progress is not None and overall is not None:
            progress.advance(overall)
        yield record


def summary_table(rows: list[Record], console: Console) -> None:
    """One row per input: labels before and after, success, Linf, queries, time."""
    from rich.table import Table

    table = Table(title="vidattack perturb", title_style="bold", header_style="bold")
    for col in ("input", "clean -> adversarial", "success", "after encode", "Linf", "queries", "time"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if r.get("status") != "ok":
            table.add_row(cell(r["input"]), cell(f"error: {r['error']}", "red"), *["-"] * 5)
            continue
        pert = r["perturbation"]
        table.add_row(
            cell(Path(r["input"]).name),
            cell(
                f"{r['clean']['label']} ({r['clean']['confidence']:.2f}) -> "
                f"{r['reencoded']['label']} ({r['reencoded']['confidence']:.2f})"
            ),
            yes_no(r["success"]),
            yes_no(r["success_after_encode"]),
            f"{pert['linf'] * 255:.1f}/255",
            str(r["queries"]),
            f"{r['timing']['total']:.1f}s",
        )
    console.print(table)
