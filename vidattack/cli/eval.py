"""`vidattack eval`: robustness of a model over a labelled data set and a grid of attacks and budgets.

A thin layer over `vidattack.eval`: parse the options, `load_dataset`, `build_grid`, `run_eval` (or
`merge` for `--merge`), then print the summary rows through the one emitter. `--delivery SPEC`
and `--robust-to SPEC` (`parse_delivery_options`, before anything runs, as `perturb` parses them) go
to `build_grid`: every configuration then also judges each attacked video after that lossy encode
("after delivery" in the table), or attacks through that encode ("robust to" in the table), with
the iterative attacks' default steps raised as `perturb` raises them (`grid_steps`). The options
travel as two values, `GridOptions` and `RunOptions` (`vidattack.eval.options`), built once here.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidattack.cli import delivery as d
from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit
from vidattack.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from rich.console import Console

    from vidattack.eval.options import GridOptions, RunOptions
    from vidattack.eval.summary import SummaryRow
    from vidattack.remote.options import RemoteOptions


# Shared with `perturb --robust-to`; what eval adds: the spec is part of each configuration.
RobustTo = Annotated[
    str | None,
    d.robust_to_option(
        "Raises the iterative attacks' default --steps to 40, as perturb does (the others keep theirs). "
        "Success too is judged on it; records count the real encodes. Part of each configuration "
        "(new rows beside runs without it)."
    ),
]


class ExecutorName(StrEnum):
    """Where the videos are processed."""

    local = "local"
    ray = "ray"


EPS_HELP = (
    "Budgets, comma-separated; one configuration each. Each is the attack's own budget: eps for PGD "
    "(Linf in [0, 1] pixel units, L2 over the whole sampled video), eps_m for MultAV. For a ratio-bounded "
    "attack (multav-linf and its region variants) a value below 1 is an additive budget e and becomes the "
    "ratio bound 1+e, which keeps every pixel within e of its clean value, so one list compares PGD and "
    "MultAV at the same pixel budget; values >= 1 are ratio bounds as given. ATTACK=LIST gives one "
    "attack its own list (repeatable): --eps 1/255,2/255 --eps pgd-l2=1,2."
)


def eval_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="DATASET",
            help="A folder with one subfolder per class, a .csv/.jsonl manifest (path,label) or synthetic:N "
            "(N generated clips per class); with --merge, the eval folders to combine.",
            show_default=False,
        ),
    ],
    attack: Annotated[
        list[str] | None,
        typer.Option(
            "--attack",
            "-a",
            metavar="NAMES",
            help="Attacks, comma-separated (repeatable; see `vidattack attacks`).",
        ),
    ] = None,
    eps: Annotated[list[str] | None, typer.Option("--eps", metavar="LIST", help=EPS_HELP)] = None,
    alpha: Annotated[
        str | None,
        typer.Option(
            metavar="A", help="Every attack's step size (its own parameter; below 1 -> 1+a for MultAV-Linf)."
        ),
    ] = None,
    steps: o.Steps = None,
    set_: o.Settings = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="MODES",
            help="Target modes, comma-separated: untargeted (default), random (a seeded class other than "
            "the label), least-likely, or a LABEL; one configuration each.",
        ),
    ] = None,
    model: o.RemoteModel = None,
    arch: o.Arch = None,
    labels: o.Labels = None,
    trust_checkpoint: o.TrustCheckpoint = False,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed of the grid: each video's attack seed derives from it.")
    ] = 0,
    stop_when_fooled: Annotated[
        float | None,
        typer.Option(
            "--stop-when-fooled",
            metavar="MARGIN",
            min=0.0,
            help="The iterative attacks stop each video once its 8-bit video is fooled by this "
            "log-probability margin (0: as soon as the label flips); records say after which step "
            "(stopped_at). Others run every step; an error when none can. Off: every step.",
        ),
    ] = None,
    robust_to: RobustTo = None,
    delivery: Annotated[
        str | None,
        typer.Option(
            "--delivery",
            metavar="CODEC[:crf=N,preset=P]",
            help="Also encode each written adversarial video with this lossy delivery codec (a yuv420p "
            "copy as a player gets it), classify the decoded copy and report success after delivery. "
            "Part of each configuration (new rows beside runs without it). Example: h264:crf=23.",
            show_default=False,
        ),
    ] = None,
    outputs: Annotated[
        bool,
        typer.Option(
            "--outputs", help="Keep the adversarial videos (and delivery copies) under OUT/videos/KEY/."
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="FOLDER",
            help="Output folder: results.jsonl (resumed when rerun), configs.json, summary.{csv,json,md}, "
            "robust_accuracy.png. Required, except with --merge.",
        ),
    ] = None,
    executor: Annotated[
        ExecutorName, typer.Option(help="local: in this process; ray: videos as Ray tasks.")
    ] = ExecutorName.local,
    ray_address: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="With --executor ray: auto (default) joins a running cluster or starts a local one; or "
            "an address to join.",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="K/N", help="Only the K-th of N deterministic parts of the data set (array jobs)."
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge", help="Combine finished eval folders (shards) into one summary (into --out if given)."
        ),
    ] = False,
    device: o.Device = "auto",
    threads: o.Threads = 0,
    precision: o.PrecisionOption = o.DEFAULT_PRECISION,
    fmt: o.FormatOption = None,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    header_env: o.HeaderEnv = None,
    concurrency: o.Concurrency = 1,
    max_qps: o.MaxQps = None,
    label_only: o.LabelOnly = False,
) -> None:
    """Attack every video of a labelled DATASET with every configuration of a grid (attacks x budgets x
    target modes) and print a summary per configuration: clean and robust accuracy, success rates
    (also after a --delivery encode), queries, perturbation norms and time. Rerunning the same command
    resumes."""
    o.setup_logging(verbose, quiet)
    chosen = o.default_format(fmt)
    show = not quiet and sys.stderr.isatty()
    remote_args = o.RemoteArgs(header_env, concurrency, max_qps, None, label_only)
    if merge:
        given = {
            "--attack": attack,
            "--eps": eps,
            "--alpha": alpha,
            "--steps": steps,
            "--set": set_,
            "--target": target,
            "--model": model,
            "--shard": shard,
            "--stop-when-fooled": stop_when_fooled is not None,
            "--robust-to": robust_to,
            "--delivery": delivery,
            "--outputs": outputs,
            "--executor": executor is not ExecutorName.local,
            "--ray-address": ray_address,
            "--header-env, --concurrency, --max-qps or --label-only": remote_args.given(),
        }
        extra = [name for name, value in given.items() if value]
        if extra:
            raise UsageError(f"--merge combines finished runs; it takes no {', '.join(extra)}")
        rows = _merge(inputs, out)
    else:
        if out is None:
            raise UsageError("expected --out FOLDER (where results.jsonl and the summary go)")
        if len(inputs) != 1:
            raise UsageError(
                f"expected one DATASET, got {len(inputs)} (to combine eval folders, use --merge)"
            )
        if ray_address is not None and executor is not ExecutorName.ray:
            raise UsageError("--ray-address goes with --executor ray")
        from vidattack.data.datasets import parse_shard
        from vidattack.eval.options import GridOptions, RunOptions

        part = parse_shard(shard) if shard is not None else None
        deployed = _deployed(model, labels, executor, remote_args, out, part)
        remote = deployed is not None
        delivery_spec, robust_spec = d.parse_delivery_options(delivery, robust_to, remote=remote)
        attacks = split_list(attack) or ["pgd-linf"]
        grid = GridOptions(
            attacks,
            eps=_budgets(parse_eps(eps), attacks),
            alpha=alpha,
            steps=grid_steps(attacks, steps, robust_to),
            settings=o.parse_sets(set_),
            targets=split_list(target) or ["untargeted"],
            seed=seed,
            stop_when_fooled=stop_when_fooled,
            delivery=delivery_spec,
            robust_to=robust_spec,
            precision=o.checked_precision(precision, device),
        )
        run = RunOptions(
            out,
            executor=executor.value,
            ray_address=ray_address or "auto",
            shard=part,
            device=device,  # resolved in `_run`, as the model is loaded
            save_outputs=outputs,
            threads=threads,
        )
        model_args = {
            "spec": model,
            "arch": arch,
            "labels": labels,
            "trust_checkpoint": trust_checkpoint,
            "remote": deployed,
        }
        rows = _run(inputs[0], model_args, grid, run, show=show)
    records = emit((r.to_dict() for r in rows), chosen, table=summary_table, key="rows")
    if chosen is not o.Format.table and show:
        from vidattack.cli.emit import stderr_console

        summary_table(records, stderr_console())
    raise typer.Exit(1 if any(r.failed for r in rows) else 0)


def _deployed(
    model: str | None,
    labels: Path | None,
    executor: ExecutorName,
    remote: o.RemoteArgs,
    out: Path,
    shard: tuple[int, int] | None,
) -> RemoteOptions | None:
    """The options of a deployed `model`, checked before anything runs; None for a local model (whose
    remote-only options are refused). Eval resumes by default, so its query log does too: a rerun
    replays the answers it holds."""
    from vidattack.remote.transport import is_remote_spec

    if is_remote_spec(model):
        if executor is ExecutorName.ray:
            # its queries are counted, logged and replayed by this process's client, which Ray workers
            # would each copy: one budget, one log
            raise UsageError(
                "a deployed model (http(s):// or cmd:) is attacked from this process: use --executor local, "
                "with --concurrency N for queries in flight at once"
            )
        if labels is None:
            # a deployed model's classes are known only from its answers, and the data set's labels must
            # name them before the first query
            raise UsageError(
                "a deployed model's class names come from its answers: pass --labels FILE with the names "
                "it answers, so that the data set's labels can be matched to them"
            )
    # shards may share a folder; each keeps its own log
    log = out / ("queries.jsonl" if shard is None else f"queries.shard-{shard[0]}-of-{shard[1]}.jsonl")
    return remote.options(model, log, resume=True, overwrite=False)


def split_list(values: Sequence[str] | None) -> list[str]:
    """Repeatable, comma-separated option values as one list (blanks dropped)."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


def parse_eps(values: Sequence[str] | None) -> list[str] | dict[str, list[str]]:
    """`--eps` values: `LIST` for every attack, `ATTACK=LIST` for one (which then ignores the common
    list). Returns the common list, or a mapping from attack to its list with `*` for the rest."""
    common: list[str] = []
    own: dict[str, list[str]] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if sep:  # numbers hold no "=", so this names an attack
            if not name.strip():
                raise UsageError(f"expected --eps LIST or ATTACK=LIST, got {value!r}")
            own.setdefault(name.strip(), []).extend(split_list([rest]))
        else:
            common.extend(split_list([value]))
    if not own:
        return common
    return {**own, "*": common}


def _budgets(eps: list[str] | dict[str, list[str]], attacks: Sequence[str]) -> Any:
    if isinstance(eps, list):
        return eps
    unknown = [name for name in eps if name != "*" and name not in attacks]
    if unknown:
        raise UsageError(
            f"--eps {unknown[0]}=...: {unknown[0]} is not among the attacks {', '.join(attacks)}"
        )
    return {name: eps.get(name) or eps["*"] for name in attacks}


def grid_steps(
    attacks: Sequence[str], steps: str | None, robust_to: str | None
) -> str | dict[str, str | None] | None:
    """`--steps` as given, or (with `--robust-to` and no `--steps`) each attack's own: the iterative
    ones raised to `ROBUST_STEPS` as `perturb` raises them, the others left at their defaults."""
    own = {name: d.robust_steps(name, steps, robust_to) for name in attacks}
    return steps if set(own.values()) == {steps} else own


def _run(
    dataset: str, model_args: Mapping[str, Any], grid: GridOptions, run: RunOptions, *, show: bool
) -> list[SummaryRow]:
    from dataclasses import replace

    from vidattack.attacks.registry import attack_class
    from vidattack.data.datasets import load_dataset
    from vidattack.eval import run_eval
    from vidattack.models import load_model
    from vidattack.models.capabilities import check_fits
    from vidattack.pipeline import resolve_device, set_cpu_threads
    from vidattack.pipeline.delivery import check_robust_to

    set_cpu_threads(run.threads)
    dev = resolve_device(run.device)
    view = load_model(
        model_args["spec"],
        arch=model_args["arch"],
        labels=model_args["labels"],
        trust_checkpoint=model_args["trust_checkpoint"],
        device=dev,
        remote=model_args["remote"],
    )
    for name in grid.attacks:  # an ONNX model has no gradients: refused before any video is decoded
        check_fits(attack_class(name), view, view.name)
    check_robust_to(grid.robust_to, view)  # a deployed model: one EOT draw per request
    configs = grid.configs(view)
    data = load_dataset(dataset, view.labels)
    progress = o.progress_bars(show)
    start = time.perf_counter()
    with progress if progress is not None else nullcontext():
        done = run_eval(
            data,
            configs,
            view,
            replace(run, device=str(dev)),
            progress=_ticker(progress, f"eval {run.out_dir}"),
        )
    if show:
        from rich.text import Text

        from vidattack.cli.emit import stderr_console

        failed = f", {done.failed} failed" if done.failed else ""
        stderr_console().print(
            Text(
                f"{done.written} records written, {done.skipped} already in {done.files['results']}{failed} "
                f"({time.perf_counter() - start:.1f}s); summary in {done.files['md']}, page {done.files['html']}"
            ),
            soft_wrap=True,
        )
    return done.rows


def _merge(dirs: list[str], out: Path | None) -> list[SummaryRow]:
    from vidattack.eval import merge

    if out is not None and any(Path(d).resolve() == out.resolve() for d in dirs):
        raise UsageError(f"expected --out to be a new folder, not one of the merged ones: {out}")
    return merge(dirs, out)


def _ticker(progress: Any, description: str) -> Callable[[int, int], None] | None:
    """A `run_eval` progress callback advancing one bar (None when progress is off)."""
    if progress is None:
        return None
    task = progress.add_task(description, total=None)
    first: list[tuple[float, int]] = []  # (when, done) at the first call: records resumed count as done

    def tick(done: int, total: int) -> None:
        now = time.perf_counter()
        if not first:
            first.append((now, done))
        (t0, d0), left = first[0], ""
        if done > d0:  # an ETA from the first finished job on, at the speed of the jobs run so far
            s = int((now - t0) / (done - d0) * (total - done))
            left = f"  ~{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d} left"
        progress.update(task, completed=done, total=total, description=description + left)

    return tick


def summary_table(rows: list[Record], console: Console) -> None:
    """One row per configuration, the columns of `vidattack.eval.rows.COLUMNS` (rates in %; the
    delivery and robust-to ones only when a row has one)."""
    from rich.table import Table

    from vidattack.eval.rows import SummaryRow, format_cell, shown_columns

    typed = [SummaryRow(**r) for r in rows]
    # Columns that say nothing in this grid (no --set, no target modes) are left out, and the median
    # queries (in summary.md and .csv) to keep the table within a terminal's width.
    hidden = {"median_queries"}
    if all(not r.settings for r in typed):
        hidden.add("settings")
    if all(r.target == "untargeted" for r in typed):
        hidden.add("target")
    if not console.is_terminal:  # a file or a pipe gets the table whole, not folded into 80 columns
        console.width = max(console.width, 200)
    shown = [(name, head, f) for name, head, f in shown_columns(typed) if name not in hidden]

    def needed(cols: list[tuple[str, str, str]]) -> int:  # cells and headers whole: words never broken
        widths = [
            max([len(w) for w in head.split()] + [len(format_cell(r, name, f)) for r in typed])
            for name, head, f in cols
        ]
        return sum(widths) + 3 * len(cols) + 1

    # a narrow terminal drops the measures summary.md and summary.html keep, rather than fold words
    dropped = []
    for name in ("mean_l2", "mean_map", "seconds_per_video", "mean_queries", "mean_linf"):
        if needed(shown) <= console.width:
            break
        dropped += [head for n, head, _ in shown if n == name]
        shown = [c for c in shown if c[0] != name]
    caption = f"not shown at this width: {', '.join(dropped)} (see summary.md)" if dropped else None
    table = Table(title="vidattack eval", title_style="bold", header_style="bold", caption=caption)
    for name, head, _ in shown:
        left = name in ("attack", "settings", "target", "robust_to", "delivery")
        table.add_column(head.replace(" ", "\n"), overflow="ellipsis", justify="left" if left else "right")
    for r in typed:
        table.add_row(*[cell(format_cell(r, name, f)) for name, _, f in shown])
    console.print(table)
