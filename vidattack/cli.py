"""The `vidattack` command: a thin layer over the library.

It parses options, calls library functions, prints data to stdout (table, JSON or JSON lines) and
everything else (progress, logs, errors) to stderr. Exit codes: 0 every input processed, 1 some failed,
2 usage error. torch is imported only inside commands so `vidattack --help` stays instant.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from vidattack.commands import Threads

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

app = typer.Typer(
    name="vidattack",
    help="Adversarial attacks against video recognition models, on real video files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _fail(message: str, code: int = 2) -> NoReturn:
    _stderr().print(f"[bold red]Error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _default_format(fmt: Format | None) -> Format:
    if fmt is not None:
        return fmt
    return Format.table if sys.stdout.isatty() else Format.jsonl


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    if verbose:
        import av.logging

        av.logging.set_level(av.logging.VERBOSE)


def _write(line: str) -> None:
    # plain writes: Rich's Progress must not capture stdout, or JSON never reaches a pipe
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _parse_sets(values: list[str] | None) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in values or []:
        if "=" not in item:
            _fail(f"expected --set KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        settings[key.strip().replace("-", "_")] = value.strip()
    return settings


def _progress(enabled: bool) -> Progress | None:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_stderr(),
        redirect_stdout=False,
        redirect_stderr=False,
        transient=True,
    )


def _fmt_float(v: Any, digits: int = 4) -> str:
    return f"{v:.{digits}g}" if isinstance(v, int | float) else str(v)


def _summary_table(rows: list[dict[str, Any]], console: Console) -> None:
    from rich.table import Table

    table = Table(title="vidattack perturb", title_style="bold", header_style="bold")
    for col in ("input", "clean -> adversarial", "success", "after encode", "Linf", "queries", "time"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if r.get("status") != "ok":
            table.add_row(r["input"], f"[red]error: {r['error']}[/]", "-", "-", "-", "-", "-")
            continue
        pert = r["perturbation"]
        table.add_row(
            Path(r["input"]).name,
            f"{r['clean']['label']} ({r['clean']['confidence']:.2f}) -> "
            f"{r['reencoded']['label']} ({r['reencoded']['confidence']:.2f})",
            "[green]yes[/]" if r["success"] else "[red]no[/]",
            "[green]yes[/]" if r["success_after_encode"] else "[red]no[/]",
            f"{pert['linf'] * 255:.1f}/255",
            str(r["queries"]),
            f"{r['timing']['total']:.1f}s",
        )
    console.print(table)


def _emit(records: list[dict[str, Any]], fmt: Format, summary: Any) -> None:
    from vidattack.report import to_json

    if fmt is Format.json:
        _write(to_json({"results": records}))
    elif fmt is Format.table:
        from rich.console import Console

        summary(records, Console(highlight=False))


@app.command()
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
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Model: bundled name, ARCH:WEIGHTS, TorchScript or .safetensors file, torchvision:ARCH. Default: tiny-c3d.",
        ),
    ] = None,
    arch: Annotated[
        str | None, typer.Option(help="Architecture for a .safetensors/.pth state dict (e.g. r3d_18).")
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="Class names, one per line (or a JSON list).")] = None,
    trust_checkpoint: Annotated[
        bool,
        typer.Option(
            "--trust-checkpoint",
            help="Allow full pickle loading of the checkpoint (only for files you trust).",
        ),
    ] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("vidattack-out"),
    eps: Annotated[
        str | None, typer.Option(help="Budget in [0, 1] pixel units; fractions allowed: 4/255.")
    ] = None,
    alpha: Annotated[str | None, typer.Option(help="Step size (fractions allowed) or auto.")] = None,
    steps: Annotated[str | None, typer.Option(help="Number of iterations.")] = None,
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="Targeted attack toward this label or class index.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the attack's random generator.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Threads = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Any other attack parameter, KEY=VALUE (repeatable)."),
    ] = None,
    apply: Annotated[
        Path | None,
        typer.Option("--apply", help="Apply a saved universal perturbation instead of attacking."),
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option(
            "--format", "-f", help="Output format: table when stdout is a terminal, jsonl otherwise."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or summary on stderr.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logs, FFmpeg's own messages.")
    ] = False,
) -> None:
    """Attack videos and write S.adv.mp4, S.heatmap.mp4, S.heatmap.png and S.report.json for each."""
    _setup_logging(verbose, quiet)
    fmt = _default_format(fmt)
    settings = _parse_sets(set_)
    for key, value in (("eps", eps), ("alpha", alpha), ("steps", steps)):
        if value is not None:
            settings[key] = value

    from vidattack.attacks.registry import get_attack_from_text
    from vidattack.batch import expand_inputs, run_batch
    from vidattack.errors import VidattackError
    from vidattack.models import load_model
    from vidattack.pipeline import perturb_file, resolve_device, set_cpu_threads

    try:
        atk = get_attack_from_text(attack, settings) if apply is None else None
        if apply is not None and settings:
            _fail("--apply takes no attack parameters")
        set_cpu_threads(threads)
        dev = resolve_device(device)
        view = load_model(model, arch=arch, labels=labels, trust_checkpoint=trust_checkpoint, device=dev)
        if target is not None:
            try:
                view.index_of(target)
            except ValueError as e:
                _fail(str(e))
        items = expand_inputs(inputs, exclude=out)
    except VidattackError as e:
        _fail(str(e), 2)
    if not items:
        _fail("no video files found in the inputs")

    show = not quiet and sys.stderr.isatty()
    progress = _progress(show)
    records: list[dict[str, Any]] = []

    def job(item: Any) -> dict[str, Any]:
        task = progress.add_task(f"{item.path.name}", total=None) if progress else None

        def tick(done: int, total: int) -> None:
            if progress is not None and task is not None:
                progress.update(task, completed=done, total=total)

        try:
            return perturb_file(
                item.path,
                atk if atk is not None else attack,
                model=view,
                out_dir=out,
                target=target,
                seed=seed,
                overwrite=overwrite,
                device=dev,
                progress=tick,
                stem=item.stem,
                universal=apply,
            )
        finally:
            if progress is not None and task is not None:
                progress.remove_task(task)

    from vidattack.report import to_json

    err = _stderr()
    with progress if progress is not None else _nullcontext():
        overall = (
            progress.add_task("videos", total=len(items)) if progress is not None and len(items) > 1 else None
        )
        for record in run_batch(items, job):
            records.append(record)
            if record["status"] != "ok":
                err.print(
                    f"[bold red]Error:[/] {record['input']}: {record['error']}", soft_wrap=True, markup=True
                )
            if fmt is Format.jsonl:
                _write(to_json(record, indent=None))
            if progress is not None and overall is not None:
                progress.advance(overall)
    _emit(records, fmt, _summary_table)
    if fmt is not Format.table and show:
        _summary_table(records, err)
    failed = sum(r["status"] != "ok" for r in records)
    raise typer.Exit(1 if failed else 0)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@app.command()
def predict(
    inputs: Annotated[
        list[str], typer.Argument(help="Video files, folders or - for paths on stdin.", show_default=False)
    ],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model spec (see `vidattack models`).")
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture for a state-dict checkpoint.")] = None,
    labels: Annotated[Path | None, typer.Option(help="Class names file.")] = None,
    trust_checkpoint: Annotated[
        bool, typer.Option("--trust-checkpoint", help="Allow full pickle loading.")
    ] = False,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many classes to list.")] = 5,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Threads = 0,
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="table, json or jsonl.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs.")] = False,
) -> None:
    """Print the model's prediction for each video (index, label, confidence, top-k)."""
    _setup_logging(verbose, False)
    fmt = _default_format(fmt)
    from vidattack.batch import expand_inputs, run_batch
    from vidattack.errors import VidattackError
    from vidattack.models import load_model
    from vidattack.pipeline import predict_file, resolve_device, set_cpu_threads
    from vidattack.report import to_json

    try:
        set_cpu_threads(threads)
        dev = resolve_device(device)
        view = load_model(model, arch=arch, labels=labels, trust_checkpoint=trust_checkpoint, device=dev)
        items = expand_inputs(inputs)
    except VidattackError as e:
        _fail(str(e), 2)
    if not items:
        _fail("no video files found in the inputs")
    records = []
    err = _stderr()
    for record in run_batch(
        items, lambda it: {"status": "ok", **predict_file(it.path, model=view, device=dev, top_k=top_k)}
    ):
        records.append(record)
        if record["status"] != "ok":
            err.print(
                f"[bold red]Error:[/] {record['input']}: {record['error']}", soft_wrap=True, markup=True
            )
        if fmt is Format.jsonl:
            _write(to_json(record, indent=None))

    def table(rows: list[dict[str, Any]], console: Console) -> None:
        from rich.table import Table

        t = Table(header_style="bold")
        for col in ("input", "label", "confidence", f"top {top_k}"):
            t.add_column(col, overflow="fold")
        for r in rows:
            if r["status"] != "ok":
                t.add_row(r["input"], f"[red]error: {r['error']}[/]", "-", "-")
            else:
                tops = ", ".join(f"{x['label']} {x['confidence']:.2f}" for x in r["top"])
                t.add_row(Path(r["input"]).name, r["label"], f"{r['confidence']:.3f}", tops)
        console.print(t)

    _emit(records, fmt, table)
    raise typer.Exit(1 if any(r["status"] != "ok" for r in records) else 0)


@app.command()
def attacks(
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="table or json.")] = None,
) -> None:
    """List every attack with its parameters, defaults, threat model and paper."""
    from vidattack.attacks.registry import attack_class, attack_names
    from vidattack.report import to_json

    described = [attack_class(n).describe() for n in attack_names()]
    fmt = _default_format(fmt)
    if fmt is not Format.table:
        _write(to_json({"attacks": described}))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    for d in described:
        t = Table(
            title=f"[bold]{d['name']}[/]  {d['summary']}",
            title_justify="left",
            show_header=True,
            header_style="bold",
            expand=False,
        )
        t.caption = f"threat: {d['threat']}\npaper: {d['paper']}"
        t.caption_justify = "left"
        for col in ("parameter", "type", "default", "help"):
            t.add_column(col, overflow="fold")
        for p in d["params"]:
            t.add_row(p["name"], p["type"], _fmt_float(p["default"]), p["help"])
        console.print(t)


@app.command()
def models(
    fmt: Annotated[Format | None, typer.Option("--format", "-f", help="table or json.")] = None,
) -> None:
    """List the bundled models and the supported checkpoint architectures."""
    from vidattack.models import list_models
    from vidattack.report import to_json

    info = list_models()
    fmt = _default_format(fmt)
    if fmt is not Format.table:
        _write(to_json(info))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    t = Table(title="bundled models (use --model NAME)", title_justify="left", header_style="bold")
    t.add_column("name")
    t.add_column("description", overflow="fold")
    for name, desc in info.get("bundled", {}).items():
        t.add_row(name, str(desc))
    console.print(t)
    a = Table(
        title="architectures (use --model ARCH:WEIGHTS or torchvision:ARCH)",
        title_justify="left",
        header_style="bold",
    )
    a.add_column("arch")
    a.add_column("preprocess", overflow="fold")
    a.add_column("pretrained", overflow="fold")
    for name, spec in info.get("architectures", {}).items():
        a.add_row(name, str(spec.get("preprocess", "")), str(spec.get("pretrained", "")))
    console.print(a)


def _register_optional_commands() -> None:
    # commands contributed by feature modules; each is a plain Typer command function
    try:
        from vidattack.commands.universal import universal
    except ImportError:
        return
    app.command("universal")(universal)


_register_optional_commands()


def main() -> None:
    """Console-script entry point: library errors that escape a command become one line, exit 2."""
    try:
        app()
    except Exception as e:  # last resort: no traceback for users, the message says what went wrong
        from vidattack.errors import VidattackError

        code = e.exit_code if isinstance(e, VidattackError) else 1
        print(f"Error: {e}", file=sys.stderr)
        raise SystemExit(code) from None


if __name__ == "__main__":
    main()
