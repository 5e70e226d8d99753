"""One video file in, adversarial video, heatmaps, plots and report out.

`perturb_file` is the library function behind `vidattack perturb`. It composes the stages of
`vidattack.pipeline.stages`: decode with PyAV only the frames the model sees (memory checked against
a budget from the container's header first), run the attack on them at native resolution, re-encode
the whole video losslessly with the adversarial frames in place (streamed), decode the written file
once beside the source to classify it (does the attack survive the file?) and measure the
perturbation, draw heatmaps and plots (`render`), and write the typed `Report` last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack.errors import BadParameterError
from vidattack.pipeline.job import Job, finish_job, prepare_job, timed, warnings_for
from vidattack.pipeline.progress import ProgressEvent, ProgressFn
from vidattack.pipeline.report import Report
from vidattack.pipeline.stages import Outputs, decode, predict_frames, resolve_target, run_attack

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.delivery import DeliverySpec
    from vidattack.models.view import ModelView

__all__ = [
    "Job",
    "Outputs",
    "ProgressEvent",
    "ProgressFn",
    "Report",
    "check_seed",
    "finish_job",
    "perturb_file",
    "predict_file",
    "prepare_job",
    "resolve_device",
    "set_cpu_threads",
    "warnings_for",
]

log = logging.getLogger("vidattack")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA when available, else CPU; an unavailable `cuda` is a clear error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadParameterError("expected a CUDA device for --device cuda, but torch sees no GPU")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BadParameterError(f"expected --device auto, cpu or cuda[:N], got {name!r}") from None


def max_threads() -> int:
    """The most `--threads` accepted: 4 per core, at least 256. Far more makes OpenMP fail (a libgomp
    error at 20000, a segmentation fault at 100000) and is never faster."""
    import os

    return max(256, 4 * (os.cpu_count() or 1))


#: The largest `--seed`: torch's generators take 64-bit seeds.
MAX_SEED = 2**64 - 1


def check_seed(seed: int) -> int:
    """`seed` if torch can seed a generator with it, else a usage error."""
    if not 0 <= seed <= MAX_SEED:
        raise BadParameterError(f"expected --seed between 0 and {MAX_SEED}, got {seed}")
    return seed


def set_cpu_threads(threads: int) -> None:
    """Use `threads` CPU threads for torch (0 keeps torch's default, one per core).

    On a machine shared with other jobs, fewer threads than cores can be many times faster: torch's
    OpenMP workers spin while they wait for each other, and a descheduled one stalls the rest (a sparse
    attack took 190 s with 2 threads beside two busy processes on 2 cores, 12 s with 1).
    """
    limit = max_threads()
    if not 0 <= threads <= limit:
        raise BadParameterError(f"expected --threads between 0 and {limit} (0: one per core), got {threads}")
    if threads:
        torch.set_num_threads(threads)


def load_view(model: ModelView | str | None, device: torch.device) -> ModelView:
    """`model` itself (moved to `device`) when it is a `ModelView`, else `load_model(model)`."""
    from vidattack.models import load_model
    from vidattack.models.view import ModelView

    if isinstance(model, ModelView):
        return model.to(device)
    return load_model(model, device=device)


def predict_file(
    path: str | Path,
    *,
    model: ModelView | str | None = None,
    device: str | torch.device = "auto",
    top_k: int = 5,
) -> dict[str, Any]:
    """Decode a video file and return the model's prediction (`index`, `label`, `confidence`, `top`)."""
    dev = resolve_device(device)
    view = load_view(model, dev)
    video = decode(path, view)
    return {"input": str(path), **predict_frames(view, video, dev, top_k).to_dict()}


def output_set(
    path: Path,
    out_dir: str | Path,
    stem: str | None,
    *,
    heatmaps: bool = True,
    pictures: Collection[str] | None = None,
) -> Outputs:
    """The output set `perturb_file` writes for `path` when not given one: named `stem` (default: the
    input's name without its last suffix, `clip.2020.mp4` -> `clip.2020`) in `out_dir`, the pictures
    left out by `heatmaps=False` or not named in `pictures` (render roles) left out."""
    from vidattack.pipeline.outputs import OUTPUT_KINDS

    kinds = set(OUTPUT_KINDS)
    if not heatmaps:
        kinds -= {"heatmaps", "plots", "preview"}
    if pictures is not None:
        wanted = set(pictures)
        kinds -= {k for k, roles in _PICTURES.items() if not wanted & roles}
    return Outputs.for_stem(Path(out_dir), stem or path.stem or "video", kinds)


_PICTURES = {"heatmaps": {"heatmap_png", "heatmap_video"}, "plots": {"frames_plot", "curve_plot"}}


def perturb_file(
    path: str | Path,
    attack: Attack | str = "pgd-linf",
    *,
    model: ModelView | str | None = None,
    out_dir: str | Path = "vidattack-out",
    target: str | int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    resume: bool = False,
    device: str | torch.device = "auto",
    progress: ProgressFn | None = None,
    stem: str | None = None,
    outputs: Outputs | None = None,
    heatmaps: bool = True,
    pictures: Collection[str] | None = None,
    stop_when_fooled: float | None = None,
    max_memory: int | None = None,
    delivery: DeliverySpec | None = None,
    robust_to: DeliverySpec | None = None,
) -> dict[str, Any]:
    """Attack one video file and write `S.adv.mp4`, `S.heatmap.mp4`, `S.heatmap.png`, `S.frames.png`,
    `S.curve.png` (when the attack has a history) and `S.report.json` (last) into `out_dir`.

    S is `stem` (default: the input's name without its last suffix, `clip.2020.mp4` -> `clip.2020`);
    `outputs` (an `Outputs`, see `vidattack.pipeline.outputs`) names the files and chooses which kinds
    are written instead (`out_dir` and `stem` are then ignored). While the job runs it holds the set's
    lock: another process writing the same set fails with `OutputLockedError`. If the job fails or is
    interrupted, the files it wrote are removed again. With `resume`, a set whose report was written by
    the same job (attack, parameters, model, seed, target, input bytes: the report's `job`) is not
    attacked again: its report is returned with `skipped` true; a set without a report is redone.
    `max_memory` (bytes; None: the video layer's default) refuses, before decoding, a video that would
    need more. `delivery` also writes a playable lossy copy (`S.delivery.mp4`/`.webm`) and judges it;
    `robust_to` makes the attack optimise the video that comes out of that encode (issue #17).

    `attack` is an attack object or a registered name (a learned universal perturbation is applied as
    `vidattack.attacks.universal.UniversalAttack(perturbation=...)`); `heatmaps=False` skips the
    pictures (and the page's previews), `pictures` draws only those named (roles of `vidattack.pipeline.render.ROLES`).
    `progress` receives a `ProgressEvent` as each stage starts and advances. `stop_when_fooled`
    (iterative attacks only) stops once the quantized video is fooled by that log-probability margin
    (`attack.info.stopped_at` in the report). Returns the report as a dict. Raises `VidattackError`
    subclasses for bad input; never modifies the input file. Many files at once, overlapped and
    batched: `vidattack.pipeline.engine.perturb_many`.
    """
    from vidattack.attacks import get_attack

    t_start = time.perf_counter()
    path = Path(path)
    check_seed(seed)
    dev = resolve_device(device)
    view = load_view(model, dev)
    atk = get_attack(attack) if isinstance(attack, str) else attack
    atk.check_stop_when_fooled(stop_when_fooled)
    target_index = resolve_target(view, target)
    warnings = warnings_for(atk, view)
    if outputs is None:
        outputs = output_set(path, out_dir, stem, heatmaps=heatmaps, pictures=pictures)
    elif not heatmaps:
        outputs = replace(outputs, kinds=outputs.kinds - {"heatmaps", "plots", "preview"})
    job = prepare_job(
        path,
        atk,
        view,
        dev,
        outputs,
        seed=seed,
        target=target_index,
        overwrite=overwrite,
        resume=resume,
        progress=progress,
        max_memory=max_memory,
        delivery=delivery,
        robust_to=robust_to,
    )
    if not isinstance(job, Job):
        return job  # finished before (--resume)
    job.started = t_start
    unit = "steps" if atk.white_box else "queries"
    try:
        job.tell("attacking", 0, None, unit)
        with timed(job.timing, "attack"):
            outcome = run_attack(
                job.sampled,
                atk,
                target=target_index,
                seed=seed,
                progress=job.tell.counter("attacking", unit),
                stop_when_fooled=stop_when_fooled,
            )
    except BaseException:
        job.claim.release(failed=True)
        raise
    return finish_job(
        job,
        atk,
        view,
        outcome,
        target_index,
        seed,
        dev,
        pictures=pictures,
        warnings=warnings,
        delivery=delivery,
        robust_to=robust_to,
    )


def __getattr__(name: str) -> Any:
    # the batch engine imports thread pools and queues only when asked for
    if name == "perturb_many":
        from vidattack.pipeline.engine import perturb_many

        return perturb_many
    raise AttributeError(name)
