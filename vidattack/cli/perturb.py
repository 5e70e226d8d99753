"""`vidattack perturb`: attack videos, write the adversarial video, pictures and report for each."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidattack.budget import Budget, attack_with_budget, parse_budget
from vidattack.cli import batching as b
from vidattack.cli import delivery as d
from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit, print_error, print_note, yes_no
from vidattack.errors import BadParameterError

if TYPE_CHECKING:
    from rich.console import Console

    from vidattack.attacks.base import Attack
    from vidattack.cli.progress import BatchProgress
    from vidattack.models.view import ModelView
    from vidattack.page import PageUpdater
    from vidattack.pipeline.names import Planned
    from vidattack.pipeline.spec import JobSpec


def perturb(
    inputs: o.Inputs,
    attack: Annotated[
        str, typer.Option("--attack", "-a", metavar="NAME", help="Attack name (see `vidattack attacks`).")
    ] = "pgd-linf",
    model: o.RemoteModel = None,
    arch: o.Arch = None,
    labels: o.Labels = None,
    trust_checkpoint: o.TrustCheckpoint = False,
    out: o.Out = Path("vidattack-out"),
    name: o.Name = "{stem}",
    outputs: o.OutputKinds = "all",
    eps: o.Eps = None,
    alpha: o.Alpha = None,
    steps: o.Steps = None,
    target: o.Target = None,
    seed: o.Seed = 0,
    device: o.Device = "auto",
    threads: o.Threads = 0,
    precision: o.PrecisionOption = o.DEFAULT_PRECISION,
    max_memory: o.MaxMemory = None,
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
    resume: o.Resume = False,
    null: o.Null = False,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    batch_size: b.BatchSize = None,
    stop_when_fooled: b.StopWhenFooled = None,
    delivery: d.Delivery = None,
    robust_to: d.RobustTo = None,
    header_env: o.HeaderEnv = None,
    concurrency: o.Concurrency = 1,
    max_qps: o.MaxQps = None,
    start: o.Start = None,
    label_only: o.LabelOnly = False,
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
      S.clean.preview.mp4, S.adv.preview.mp4
                     H.264 yuv420p previews for the page (lossy)
      index.html     the run's page: every video side by side with its
                     pictures and predictions; open it in a browser

    S is the input's name without its last suffix (clip.2020.mp4 gives clip.2020), or --name; files
    found in subfolders of a folder input go to the same subfolders of --out. Every option, the names
    of all outputs and --out are checked before the first input. Ctrl-C (or SIGTERM) stops after the
    writes under way, removing unfinished files; run the same command with --resume to continue.

    Records go to stdout (a table on a terminal, JSON lines otherwise); progress, warnings and errors
    go to stderr. Exit status: 0 when every input was processed, 1 when some failed, 2 for a usage
    error, 130/143 when stopped by SIGINT/SIGTERM.
    """
    from vidattack.pipeline.signals import Interrupted, InterruptGuard

    o.setup_logging(verbose, quiet)
    args = PerturbArgs(
        inputs=inputs,
        attack=attack,
        model=model,
        arch=arch,
        labels=labels,
        trust_checkpoint=trust_checkpoint,
        out=out,
        name=name,
        outputs=outputs,
        eps=eps,
        alpha=alpha,
        steps=steps,
        target=target,
        seed=seed,
        device=device,
        threads=threads,
        max_memory=max_memory,
        set_=set_,
        apply=apply,
        overwrite=overwrite,
        resume=resume,
        null=null,
        stop_when_fooled=stop_when_fooled,
        delivery=delivery,
        robust_to=robust_to,
        remote=o.RemoteArgs(header_env, concurrency, max_qps, start, label_only),
        precision=precision,
    )
    with InterruptGuard() as guard:
        try:
            with guard.interruptible():
                planned, spec, view = _prepare(args)
        except Interrupted as e:
            print_error(f"interrupted ({e.name}) before the first input; nothing was written")
            raise typer.Exit(e.exit_code) from None
        chosen = o.default_format(fmt)
        show = not quiet and sys.stderr.isatty()
        progress = _progress(len(planned)) if show else None
        state = b.BatchState(len(planned))
        with progress if progress is not None else nullcontext():
            # the pipelined engine: decoding and writing overlap the attack, same records in input order
            run = b.run_engine(planned, spec, view, progress, guard=guard, state=state, batch_size=batch_size)
            page = _page_updater(outputs, out, len(planned))
            # the table waits until the bars are gone: printed under a live display, it left the last
            # bar frozen on screen with the table's title written onto it (#26)
            records = emit(run if page is None else page.follow(run), chosen, table=lambda *_: None)
    if chosen is o.Format.table or show:
        from vidattack.cli.emit import stderr_console, stdout_console

        summary_table(records, stdout_console() if chosen is o.Format.table else stderr_console())
    if not quiet:
        _say_what_was_done(state, out, resume)
        if show or chosen is o.Format.table:  # for a person; a script reading JSON has the records
            _say_totals(records, out, page, where=state.interrupted is None)  # (an interruption says where)
    if state.interrupted is not None:
        raise typer.Exit(state.interrupted.exit_code)
    raise typer.Exit(1 if any(r["status"] != "ok" for r in records) else 0)


@dataclass(frozen=True)
class PerturbArgs:
    """The options of one `vidattack perturb` call that decide its jobs, as given (text)."""

    inputs: list[str]
    attack: str
    model: str | None
    arch: str | None
    labels: Path | None
    trust_checkpoint: bool
    out: Path
    name: str
    outputs: str
    eps: str | None
    alpha: str | None
    steps: str | None
    target: str | None
    seed: int
    device: str
    threads: int
    max_memory: str | None
    set_: list[str] | None
    apply: Path | None
    overwrite: bool
    resume: bool
    null: bool
    stop_when_fooled: float | None
    delivery: str | None
    robust_to: str | None
    remote: o.RemoteArgs  # an http(s):// or cmd: model's options, and hsja's --start
    precision: str = "auto"


def _prepare(args: PerturbArgs) -> tuple[list[Planned], JobSpec, ModelView]:
    """Every check that can fail for all inputs alike, done once before the first input (usage errors,
    exit 2): options, attack, model, target, --out, names of all outputs; the one `JobSpec` of them."""
    from vidattack.models import load_model
    from vidattack.models.capabilities import check_fits
    from vidattack.pipeline.batch import expand_inputs
    from vidattack.pipeline.names import NameTemplate, plan_outputs
    from vidattack.pipeline.outputs import parse_outputs
    from vidattack.pipeline.spec import UNTARGETED, JobSpec, check_target
    from vidattack.precision import resolve_for_model
    from vidattack.remote.transport import is_remote_spec
    from vidattack.runtime import check_seed, resolve_device, set_cpu_threads

    check_seed(args.seed)
    set_cpu_threads(args.threads)
    memory = o.parse_size(args.max_memory, "--max-memory")
    kinds = parse_outputs(args.outputs)
    if args.resume and "report" not in kinds:
        raise BadParameterError(
            "expected --outputs with report for --resume (the report is how a finished input is recognised)"
        )
    template = NameTemplate(args.name)
    steps = d.robust_steps(args.attack, args.steps, args.robust_to) if args.apply is None else args.steps
    budget = parse_budget(args.eps, args.alpha, steps)
    remote = is_remote_spec(args.model)
    delivery_spec, robust_spec = d.parse_delivery_options(args.delivery, args.robust_to, remote=remote)
    atk = build_attack(args.attack, args.remote.settings(o.parse_sets(args.set_)), budget, args.apply)
    atk.check_stop_when_fooled(args.stop_when_fooled)  # refused before any model is loaded
    o.checked_precision(args.precision, args.device)  # refused before any model is loaded
    o.check_out_folder(args.out)
    dev = resolve_device(args.device)
    view = load_model(
        args.model,
        arch=args.arch,
        labels=args.labels,
        trust_checkpoint=args.trust_checkpoint,
        device=dev,
        remote=args.remote.options(args.model, args.out / "queries.jsonl", args.resume, args.overwrite),
    )
    check_fits(atk, view, view.name)  # an ONNX model has no gradients: refused before any decoding
    spec = JobSpec(
        attack=atk,
        target=check_target(args.target, view),
        seed=args.seed,
        stop_when_fooled=args.stop_when_fooled,
        delivery=delivery_spec,
        robust_to=robust_spec,
        kinds=kinds,
        device=str(dev),
        precision=resolve_for_model(args.precision, dev, view.net),
        max_memory=memory,
        overwrite=args.overwrite,
        resume=args.resume,
    )
    items = expand_inputs(args.inputs, exclude=args.out, null=args.null, skip_own_outputs=True)
    if not items:
        raise BadParameterError("expected video files in the inputs, found none")
    target = None if spec.target == UNTARGETED else spec.target
    planned = plan_outputs(
        items, args.out, template, kinds, attack=atk, model=view.name, seed=args.seed, target=target
    )
    return planned, spec, view


def build_attack(name: str, settings: dict[str, str], budget: Budget, apply: Path | None) -> Attack:
    """The attack the options name: a registered one, or the universal perturbation in `--apply`."""
    if apply is None:
        return attack_with_budget(name, settings, budget)
    if settings or budget != Budget():
        raise BadParameterError("expected no attack parameters with --apply (the file holds them)")
    from vidattack.attacks.universal import UniversalAttack
    from vidattack.perturbation_file import load_perturbation

    return UniversalAttack(perturbation=load_perturbation(apply))


def _page_updater(outputs: str, out: Path, total: int) -> PageUpdater | None:
    """Draws `OUT/index.html` as videos finish, when `--outputs` keeps the page."""
    from vidattack.page import PageUpdater
    from vidattack.pipeline.outputs import parse_outputs

    return PageUpdater(out, total) if "page" in parse_outputs(outputs) else None


def _say_totals(records: list[Record], out: Path, page: PageUpdater | None, *, where: bool) -> None:
    """On stderr: `N of M fooled`, a --robust-to hint when a delivery undid the attack, and (`where`)
    where the outputs and the page are."""
    from vidattack.cli.totals import outputs_line, robust_to_hint, totals_line

    if any(r.get("status") == "ok" for r in records):  # (a lone failure's error line says it all)
        print_note(totals_line(records))
    hint = robust_to_hint(records)
    if hint is not None:
        print_note(hint)
    if where and any(r.get("status") == "ok" for r in records):
        print_note(outputs_line(out, None if page is None else page.path))


def _progress(total: int) -> BatchProgress:
    from vidattack.cli.progress import BatchProgress

    return BatchProgress(total)


def _say_what_was_done(state: b.BatchState, out: Path, resume: bool) -> None:
    """On stderr: how an interrupted batch ends and how to continue it; what --resume skipped."""
    done = state.attacked + state.skipped + state.failed
    e = state.interrupted
    if e is not None:
        failed = f", {state.failed} failed" if state.failed else ""
        unfinished = " (the unfinished inputs' files were removed)" if done < state.total else ""
        print_error(
            f"interrupted by {e.name}: {done} of {state.total} inputs done{failed}{unfinished}, outputs "
            f"in {out}. To continue, run the same command again with --resume."
        )
    elif resume and state.skipped:
        if state.attacked == 0 and state.failed == 0:
            print_note(f"all {state.total} inputs were already done (--resume); nothing was attacked")
        else:
            print_note(f"{state.skipped} of {state.total} inputs were already done (--resume) and skipped")


def summary_table(rows: list[Record], console: Console) -> None:
    """One row per input: labels before and after (the file's own label too when writing changed it),
    success, success after encode, after delivery (with `--delivery` or `--robust-to`: judged on the
    decoded delivery file), Linf, queries, time."""
    from rich.table import Table

    from vidattack.cli.fit import fit_widths

    delivered = any(isinstance(r.get("delivery"), dict) for r in rows)
    columns = ["input", "clean -> adversarial", "success", "after encode"]
    columns += ["after delivery"] if delivered else []
    columns += ["Linf", "queries", "time"]
    cells = [_summary_row(r, delivered) for r in rows]
    widths = fit_widths(console.width, cells, columns, name=0, labels=1)
    table = Table(title="vidattack perturb", title_style="bold", header_style="bold")
    for col, width in zip(columns, widths, strict=True):
        # a cell wraps at spaces; a word wider than its column (a long file name) is cut with an ellipsis
        table.add_column(col, overflow="ellipsis", width=width)
    for r, row in zip(rows, cells, strict=True):
        failed = r.get("status") != "ok"
        table.add_row(*(cell(text, "red" if failed and i == 1 else "") for i, text in enumerate(row)))
    console.print(table)


def _summary_row(r: Record, delivered: bool) -> list[str]:
    """One input's cells of the summary table, as plain text."""
    if r.get("status") != "ok":
        return [Path(r["input"]).name, f"error: {r['error']}", *["-"] * (6 if delivered else 5)]
    pert = r["perturbation"]
    clean, adv, file = r["clean"], r["adversarial"], r["reencoded"]
    labels = f"{clean['label']} ({clean['confidence']:.2f}) -> {adv['label']} ({adv['confidence']:.2f})"
    if file["index"] != adv["index"]:
        labels += f"; file: {file['label']} ({file['confidence']:.2f})"
    after = [yes_no(r["success"]), yes_no(r["success_after_encode"])]
    if delivered:
        part = r.get("delivery")
        after.append(yes_no(part["success_after_delivery"]) if isinstance(part, dict) else "-")
    time_text = "done before" if r.get("skipped") else f"{r['timing']['total']:.1f}s"
    return [
        Path(r["input"]).name,
        labels,
        *after,
        f"{pert['linf'] * 255:.1f}/255",
        str(r["queries"]),
        time_text,
    ]
