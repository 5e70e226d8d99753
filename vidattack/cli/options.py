"""Option types and parsing shared by the commands: one definition of each common option."""

from __future__ import annotations

import logging
import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vidattack.budget import Budget as Budget  # re-exported: the options parse into it
from vidattack.budget import parse_budget as parse_budget
from vidattack.errors import BadParameterError
from vidattack.pipeline.outputs import KINDS_HELP

if TYPE_CHECKING:
    from rich.progress import Progress

    from vidattack.remote.options import RemoteOptions


class Format(StrEnum):
    """How records go to stdout."""

    table = "table"
    json = "json"
    jsonl = "jsonl"


Inputs = Annotated[
    list[str],
    typer.Argument(
        metavar="INPUT",
        help="Video files, folders (searched recursively) or - for paths on stdin.",
        show_default=False,
    ),
]
# What --model takes in every command; perturb's adds the deployed models (`RemoteModel`).
_MODEL_KINDS = (
    "a bundled name (see `vidattack models`), ARCH:WEIGHTS, a TorchScript or .safetensors file, "
    "torchvision:ARCH, a HuggingFace folder, or a .onnx file (scores only)"
)
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="SPEC",
        help=f"The model: {_MODEL_KINDS}. Default: tiny-c3d.",
    ),
]
Arch = Annotated[
    str | None,
    typer.Option(metavar="ARCH", help="Architecture of a .safetensors or .pth state dict (e.g. r3d_18)."),
]
Labels = Annotated[
    Path | None, typer.Option(metavar="FILE", help="Class names, one per line (or a JSON list).")
]
TrustCheckpoint = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint", help="Allow full pickle loading of the checkpoint (only for files you trust)."
    ),
]
Eps = Annotated[
    str | None,
    typer.Option(
        metavar="EPS",
        help="The attack's budget in [0, 1] pixel units, fractions allowed (4/255); for MultAV an "
        "additive e < 1 becomes the ratio bound 1+e, a value >= 1 is the ratio itself.",
    ),
]
Alpha = Annotated[
    str | None,
    typer.Option(metavar="ALPHA", help="The attack's step size (fractions allowed: 1/255) or auto."),
]
Steps = Annotated[str | None, typer.Option(metavar="N", help="The attack's number of iterations.")]
Target = Annotated[
    str | None,
    typer.Option("--target", "-t", metavar="LABEL", help="Targeted attack toward this label or class index."),
]
Seed = Annotated[int, typer.Option(metavar="N", help="Seed of the attack's random generator.")]
Device = Annotated[
    str, typer.Option(metavar="DEVICE", help="auto (CUDA when available), cpu, cuda or cuda:N.")
]


def _positive_when_given(ctx: typer.Context, param: typer.CallbackParam, value: int) -> int:
    # 0 is the default's internal value (one thread per core); typed on the command line it is a typo
    source = ctx.get_parameter_source(param.name or "")
    if value == 0 and source is not None and source.name == "COMMANDLINE":
        raise typer.BadParameter("expected at least 1 (leave --threads out for one per core), got 0")
    return value


Threads = Annotated[
    int,
    typer.Option(
        metavar="N",
        callback=_positive_when_given,
        show_default=False,
        help="CPU threads for torch (at least 1). Default: one per core. Fewer help on a busy machine.",
    ),
]
Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Any other attack parameter (repeatable; see `vidattack attacks NAME`).",
    ),
]
Out = Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
Name = Annotated[
    str,
    typer.Option(
        "--name",
        metavar="TEMPLATE",
        help="Name of each input's outputs, from the fields {stem} {attack} {model} {seed} {eps} {eps255} "
        "{target}; e.g. {stem}.{attack} lets several attacks share one --out.",
    ),
]
OutputKinds = Annotated[
    str,
    typer.Option(
        "--outputs",
        metavar="KINDS",
        help=f"What to write: any of {KINDS_HELP} (comma-separated), or all. The report is written last; "
        "--resume needs it. --delivery adds its own file.",
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Skip inputs whose report shows the same job: attack, parameters, model, seed, target, "
        "--stop-when-fooled, --delivery, --robust-to and input (their records are printed again, marked "
        "skipped); redo inputs left unfinished.",
    ),
]
Null = Annotated[
    bool,
    typer.Option("--null", "-0", help="Paths on stdin are separated by NUL bytes (find -print0), not lines."),
]
MaxMemory = Annotated[
    str | None,
    typer.Option(
        "--max-memory",
        metavar="SIZE",
        help="Refuse a video whose decoding would need more memory than SIZE (e.g. 8GB, 800MB, 2GiB), "
        "found from its header before decoding. Default: 8GB, safe on a 24 GB machine.",
    ),
]
FormatOption = Annotated[
    Format | None,
    typer.Option(
        "--format",
        "-f",
        help="How records go to stdout: a table (default on a terminal), json (one document) or "
        "jsonl (one JSON object per line; default when stdout is a file or a pipe).",
    ),
]
# `--precision` when not given: chosen from the measurements in the README (benchmarks/precision.py)
DEFAULT_PRECISION = "auto"
PrecisionOption = Annotated[
    str,
    typer.Option(
        "--precision",
        metavar="P",
        help="Arithmetic of the attack's gradient steps: auto (bf16 where the device computes it natively: "
        "CPUs with AVX512-BF16 or AMX, CUDA with bf16), fp32, bf16, or fp16 (CUDA only, scaled loss). "
        "Clean labels, judging, verification and budgets are always float32.",
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary on stderr.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs, FFmpeg's own messages.")]


def default_format(fmt: Format | None, piped: Format = Format.jsonl) -> Format:
    """`fmt`, or a table on a terminal and `piped` otherwise."""
    if fmt is not None:
        return fmt
    return Format.table if sys.stdout.isatty() else piped


def parse_size(text: str | None, option: str) -> int | None:
    """A size such as `8GB`, `800MB`, `2GiB` or a number of bytes (`vidattack.video.parse_bytes`: K, M,
    G, T are decimal, as the video layer's messages print them) as a number of bytes; None for None."""
    if text is None:
        return None
    from vidattack.video.limits import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError:
        raise BadParameterError(
            f"expected {option} as a size such as 8GB, 800MB or 2GiB, got {text!r}"
        ) from None


def check_out_folder(out: Path) -> None:
    """`--out` is (or can be made) a folder we can write into; created now, before the first input."""
    import os

    if out.exists() and not out.is_dir():
        raise BadParameterError(f"expected --out to be a folder, got the file {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadParameterError(f"cannot create the output folder {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise BadParameterError(f"cannot write into the output folder {out}: permission denied")


def setup_logging(verbose: bool, quiet: bool) -> None:
    """Logs to stderr: warnings by default, errors only with --quiet, debug and FFmpeg with --verbose."""
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    if verbose:
        import av.logging

        av.logging.set_level(av.logging.VERBOSE)


def parse_sets(values: list[str] | None) -> dict[str, str]:
    """`--set KEY=VALUE` items as a dict (dashes in keys become underscores)."""
    settings: dict[str, str] = {}
    for item in values or []:
        if "=" not in item:
            raise BadParameterError(f"expected --set KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        settings[key.strip().replace("-", "_")] = value.strip()
    return settings


def checked_precision(precision: str, device: str) -> str:
    """`--precision` checked against `--device` before any work: a usage error (exit 2) when it cannot
    run there (an unknown name, bf16 without native support, fp16 off CUDA)."""
    from vidattack.pipeline import resolve_device
    from vidattack.precision import resolve_precision

    resolve_precision(precision, resolve_device(device))
    return precision


def precision_scope(precision: str, device: str) -> AbstractContextManager[None]:
    """The block in which every attack runs at `--precision` (checked first, see `checked_precision`)."""
    from vidattack.precision import attack_precision

    return attack_precision(checked_precision(precision, device))


def progress_bars(enabled: bool) -> Progress | None:
    """Rich progress bars on stderr (None when disabled); descriptions are printed literally."""
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from vidattack.cli.consoles import stderr_console

    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr_console(),
        redirect_stdout=False,
        redirect_stderr=False,
        transient=True,
    )


# -- a deployed model (--model http://... or cmd:...) ------------------------------------------------

RemoteModel = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        metavar="SPEC",
        help=f"The model: {_MODEL_KINDS}; or a deployed model: http(s)://HOST/PATH or 'cmd:COMMAND {{}}'. "
        "Default: tiny-c3d.",
    ),
]
HeaderEnv = Annotated[
    str | None,
    typer.Option(
        "--header-env",
        metavar="VAR",
        help="Environment variable holding request headers for an http(s) model ('Name: value' lines or "
        "a JSON object), e.g. an API key; its value is never printed or logged.",
    ),
]
Concurrency = Annotated[
    int, typer.Option(metavar="N", help="Queries in flight at once to an http(s) or cmd: model.")
]
MaxQps = Annotated[
    float | None, typer.Option("--max-qps", metavar="R", help="At most R queries per second to the model.")
]
Start = Annotated[
    Path | None,
    typer.Option(
        "--start",
        metavar="VIDEO",
        help="hsja: start from this video (another class; the target class with --target) instead of noise.",
    ),
]
LabelOnly = Annotated[
    bool,
    typer.Option("--label-only", help="The http(s)/cmd: model answers labels without scores (use hsja)."),
]


@dataclass(frozen=True)
class RemoteArgs:
    """The options of a deployed model, as one value: `--header-env`, `--concurrency`, `--max-qps`,
    `--label-only`, and hsja's `--start`."""

    header_env: str | None = None
    concurrency: int = 1
    max_qps: float | None = None
    start: Path | None = None
    label_only: bool = False

    def given(self) -> bool:
        """True when any remote-only option was given (they need an http(s):// or cmd: model)."""
        return (
            self.header_env is not None
            or self.concurrency != 1
            or self.max_qps is not None
            or self.label_only
        )

    def settings(self, sets: dict[str, str]) -> dict[str, str]:
        """The attack settings with `--start` as `start_video`."""
        if self.start is None:
            return sets
        if "start_video" in sets:
            raise BadParameterError("expected --start or --set start_video=..., not both")
        return {**sets, "start_video": str(self.start)}

    def options(self, model: str | None, log: Path, resume: bool, overwrite: bool) -> RemoteOptions | None:
        """The library's `RemoteOptions` for `model` (its query log at `log`); None for a local model."""
        from vidattack.remote.options import RemoteOptions
        from vidattack.remote.transport import is_remote_spec

        if not is_remote_spec(model):
            if self.given():
                raise BadParameterError(
                    "expected --model http(s)://... or cmd:... with --header-env, --concurrency, --max-qps "
                    "or --label-only"
                )
            return None
        return RemoteOptions(
            header_env=self.header_env,
            concurrency=self.concurrency,
            max_qps=self.max_qps,
            label_only=self.label_only,
            query_log=log,
            resume=resume,
            overwrite=overwrite,
        )
