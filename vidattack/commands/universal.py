"""`vidattack universal DIR --out PERT`: learn one perturbation for a folder of videos, report fooling rates.

The command behind the paper's Table 4 (Wei et al. 2019, cross-video attack): learn a universal sparse
perturbation on the videos of DIR (`vidattack.universal.learn_universal`), save it, and print its fooling
rate on those training videos and, with `--holdout`, on videos it never saw. `vidattack perturb --apply
PERT clip.mp4` then applies the saved perturbation to any video.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from vidattack.commands import Threads
from vidattack.errors import BadParameterError, OutputExistsError


class UniversalFormat(StrEnum):
    table = "table"
    json = "json"


def _video_files(folder: Path, what: str) -> list[Path]:
    from vidattack.video import is_video_path

    if not folder.is_dir():
        raise BadParameterError(f"expected a folder of videos for {what}, got {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_video_path(p))
    if not files:
        raise BadParameterError(f"expected video files in {folder} ({what}), got none")
    return files


def _parse_settings(values: list[str] | None) -> dict[str, str]:
    settings: dict[str, str] = {}
    for item in values or []:
        if "=" not in item:
            raise BadParameterError(f"expected --set KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        settings[key.strip().replace("-", "_")] = value.strip()
    return settings


def _stderr_progress(description: str) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        redirect_stdout=False,
        redirect_stderr=False,
        transient=True,
        disable=not console.is_terminal,
    )


def _table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    p = result["params"]
    shape = " x ".join(str(v) for v in result["shape"])
    frames = result["frames"]
    title = (
        f"universal perturbation {result['perturbation']}\n"
        f"model {result['model']}, {shape}, {len(frames)} of {result['shape'][0]} frames, norm {p['norm']}, "
        f"lam {p['lam']:g}, lr {p['lr']:g}, {p['epochs_run']} of {p['epochs']} epochs"
    )
    table = Table(title=title, title_justify="left", header_style="bold")
    for col in ("set", "videos", "fooled", "fooling rate", "MAP (/255)"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for key, name in (("train", "training"), ("holdout", "held-out")):
        ev = result.get(key)
        if ev is None:
            continue
        table.add_row(
            name,
            str(ev["total"]),
            f"{ev['fooled']}/{ev['counted']}",
            f"{100 * ev['fooling_rate']:.1f}%",
            f"{255 * ev['map']:.2f}",
        )
    Console(highlight=False).print(table)


def universal(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder of training videos (searched recursively).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the perturbation (.safetensors).")],
    attack: Annotated[
        str, typer.Option("--attack", "-a", help="Attack whose loss the videos share; only sparse.")
    ] = "sparse",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model spec as for perturb. Default: tiny-c3d.")
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=VALUE: lam, lr, epochs, batch_size, patience, frames (all, K, random:K, 0,3,7), norm.",
        ),
    ] = None,
    holdout: Annotated[
        Path | None, typer.Option("--holdout", help="Folder of held-out videos to measure transfer on.")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="Learn a targeted perturbation toward this label.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the batch order and of a random:K frame mask.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Threads = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace PERT if it exists.")] = False,
    fmt: Annotated[
        UniversalFormat | None,
        typer.Option("--format", "-f", help="table or json (default: table on a terminal, else json)."),
    ] = None,
) -> None:
    """Learn a universal sparse perturbation on the videos in DIR and print its fooling rates (Table 4).

    The fooling rate is the share of videos whose prediction the perturbation changes (a targeted
    perturbation: that it turns into the target), counted over the videos as the model classifies them
    clean. Apply the saved file to another video with `vidattack perturb --apply PERT clip.mp4`.
    """
    from vidattack.models import load_model
    from vidattack.pipeline import resolve_device, set_cpu_threads
    from vidattack.report import to_json
    from vidattack.universal import UniversalSettings, evaluate_universal, learn_universal

    if attack != "sparse":
        raise BadParameterError(f"expected --attack sparse (the only universal attack), got {attack!r}")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists (use --overwrite to replace it)")
    cfg = UniversalSettings.from_text(_parse_settings(settings))
    train_files = _video_files(directory, "DIR")
    held_files = _video_files(holdout, "--holdout") if holdout is not None else []
    set_cpu_threads(threads)
    view = load_model(model, device=resolve_device(device))
    target_index = None
    if target is not None:
        try:
            target_index = view.index_of(target)
        except ValueError as e:
            raise BadParameterError(str(e)) from None

    with _stderr_progress("learning") as bar:
        task = bar.add_task("learning", total=cfg.epochs)
        pert = learn_universal(
            train_files,
            view,
            settings=cfg,
            target=target_index,
            seed=seed,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    train_eval = evaluate_universal(pert, train_files, view, target=target_index)
    pert.stats["train_fooling_rate"] = train_eval.rate
    held_eval = evaluate_universal(pert, held_files, view, target=target_index) if held_files else None
    if held_eval is not None:
        pert.stats["holdout_fooling_rate"] = held_eval.rate
    pert.save(out, overwrite=overwrite)

    result: dict[str, Any] = {
        "perturbation": str(out),
        "model": view.name,
        "shape": list(pert.shape),
        "frames": pert.frames,
        "target": None if target_index is None else view.label_of(target_index),
        "params": pert.params,
        "train": {**train_eval.to_dict(), "videos": [str(p) for p in train_files]},
        "holdout": None
        if held_eval is None
        else {**held_eval.to_dict(), "videos": [str(p) for p in held_files]},
    }
    chosen = fmt or (UniversalFormat.table if sys.stdout.isatty() else UniversalFormat.json)
    if chosen is UniversalFormat.json:
        sys.stdout.write(to_json(result) + "\n")
        sys.stdout.flush()
    else:
        _table(result)
