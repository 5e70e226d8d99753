"""`vidattack universal DIR --out PERT`: learn one perturbation for a folder of videos, report fooling rates.

The cross-video (universal) attack of Wei, Zhu and Su, Sparse Adversarial Perturbations for Videos,
AAAI 2019 (its Table 4): learn a universal sparse perturbation on the videos of DIR
(`vidattack.pipeline.universal.learn_universal`), save it, and print its fooling rate on those training
videos and, with `--holdout`, on videos it never saw. `vidattack perturb --apply PERT clip.mp4` then
applies the saved perturbation to any video through the ordinary pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vidattack.cli import options as o
from vidattack.cli.emit import Record, cell, emit
from vidattack.errors import BadParameterError, OutputExistsError

if TYPE_CHECKING:
    from rich.console import Console

    from vidattack.attacks.universal import UniversalPerturbation


def _video_files(folder: Path, what: str) -> list[Path]:
    from vidattack.video import is_video_path

    if not folder.is_dir():
        raise BadParameterError(f"expected a folder of videos for {what}, got {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and is_video_path(p))
    if not files:
        raise BadParameterError(f"expected video files in {folder} ({what}), got none")
    return files


def universal(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR", help="Folder of training videos (searched recursively).", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", metavar="PERT", help="Where to write the perturbation (.safetensors)."),
    ],
    model: o.Model = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="A setting of the universal attack (repeatable; see `vidattack attacks universal`).",
        ),
    ] = None,
    holdout: Annotated[
        Path | None,
        typer.Option("--holdout", metavar="DIR", help="Folder of held-out videos to measure transfer on."),
    ] = None,
    target: o.Target = None,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed of the batch order and of a random:K frame mask.")
    ] = 0,
    device: o.Device = "auto",
    threads: o.Threads = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace PERT if it exists.")] = False,
    fmt: o.FormatOption = None,
) -> None:
    """Learn a universal sparse perturbation on the videos in DIR and print its fooling rates.

    The cross-video attack of Wei, Zhu and Su, "Sparse Adversarial Perturbations for Videos",
    AAAI 2019 (Table 4): one perturbation, on a few frames, that fools the model on many videos.

    The fooling rate is the share of videos whose prediction the perturbation changes (a targeted
    perturbation: that it turns into the target), counted over the videos as the model classifies them
    clean. Apply the saved file to another video with `vidattack perturb --apply PERT clip.mp4`.
    """
    import vidattack.models
    from vidattack.attacks.registry import get_attack_from_text
    from vidattack.models.capabilities import check_fits
    from vidattack.pipeline import resolve_device, set_cpu_threads
    from vidattack.pipeline.spec import check_target, resolve_target

    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists (use --overwrite to replace it)")
    attack = get_attack_from_text("universal", o.parse_sets(settings))
    train_files = _video_files(directory, "DIR")
    held_files = _video_files(holdout, "--holdout") if holdout is not None else []
    set_cpu_threads(threads)
    view = vidattack.models.load_model(model, device=resolve_device(device))
    check_fits(attack, view, view.name)  # learning needs gradients: an ONNX model is refused here
    target_index = resolve_target(check_target(target, view), view)
    pert = _learn(train_files, view, attack, target_index, seed)
    result = _evaluate(pert, train_files, held_files, view, target_index)
    from vidattack.perturbation_file import save_perturbation

    save_perturbation(pert, out, overwrite=overwrite)
    result = {"perturbation": str(out), "model": view.name, **result}
    emit([result], o.default_format(fmt), table=fooling_table, key=None)


def _learn(files: list[Path], view: Any, attack: Any, target: int | None, seed: int) -> UniversalPerturbation:
    from vidattack.cli.emit import stderr_console
    from vidattack.pipeline.universal import learn_universal

    console = stderr_console()
    bars = o.progress_bars(console.is_terminal)
    if bars is None:
        return learn_universal(files, view, attack=attack, target=target, seed=seed)
    with bars:
        task = bars.add_task("learning", total=attack.epochs)
        return learn_universal(
            files,
            view,
            attack=attack,
            target=target,
            seed=seed,
            progress=lambda done, total: bars.update(task, completed=done, total=total),
        )


def _evaluate(
    pert: UniversalPerturbation, train: list[Path], held: list[Path], view: Any, target: int | None
) -> Record:
    """Fooling rates on the training and held-out videos, also stored in the perturbation's stats."""
    from vidattack.pipeline.universal import evaluate_universal

    train_eval = evaluate_universal(pert, train, view, target=target)
    pert.stats["train_fooling_rate"] = train_eval.rate
    held_eval = evaluate_universal(pert, held, view, target=target) if held else None
    if held_eval is not None:
        pert.stats["holdout_fooling_rate"] = held_eval.rate
    return {
        "shape": list(pert.shape),
        "frames": pert.frames,
        "target": None if target is None else view.label_of(target),
        "params": pert.params,
        "train": {**train_eval.to_dict(), "videos": [str(p) for p in train]},
        "holdout": None if held_eval is None else {**held_eval.to_dict(), "videos": [str(p) for p in held]},
    }


def fooling_table(rows: list[Record], console: Console) -> None:
    """The perturbation's settings as title, one row per video set."""
    from rich.table import Table
    from rich.text import Text

    result = rows[0]
    p = result["params"]
    shape = " x ".join(str(v) for v in result["shape"])
    title = Text(
        f"universal perturbation {result['perturbation']}\n"
        f"model {result['model']}, {shape}, {len(result['frames'])} of {result['shape'][0]} frames, "
        f"norm {p['norm']}, lam {p['lam']:g}, lr {p['lr']:g}, {p['epochs_run']} of {p['epochs']} epochs"
    )
    table = Table(title=title, title_justify="left", header_style="bold")
    for col in ("set", "videos", "fooled", "fooling rate", "MAP (/255)"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for key, name in (("train", "training"), ("holdout", "held-out")):
        ev = result.get(key)
        if ev is None:
            continue
        table.add_row(
            cell(name),
            str(ev["total"]),
            f"{ev['fooled']}/{ev['counted']}",
            f"{100 * ev['fooling_rate']:.1f}%",
            f"{255 * ev['map']:.2f}",
        )
    console.print(table)
