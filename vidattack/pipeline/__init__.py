"""One video file in, adversarial video, heatmaps, plots and report out.

`perturb_file` is the library function behind `vidattack perturb`. It composes the stages of
`vidattack.pipeline.stages`: decode with PyAV, sample the frames the model sees, run the attack on them
at native resolution, put the adversarial frames back into the full video and encode losslessly, decode
the written file again and classify it (does the attack survive the file?), measure the perturbation on
the written file, draw heatmaps and plots (`render`), and write the typed `Report` last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack.errors import BadParameterError
from vidattack.pipeline.report import (
    AttackPart,
    ModelPart,
    Prediction,
    Report,
    Target,
    Timing,
    VideoPart,
    prediction,
    versions,
    write_report,
)
from vidattack.pipeline.stages import (
    AttackOutcome,
    Outputs,
    ProgressFn,
    Sampled,
    Verified,
    decode,
    judge,
    predict_frames,
    resolve_target,
    run_attack,
    sample,
    verify,
    write,
)

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack, AttackResult
    from vidattack.models.view import ModelView
    from vidattack.video import Video

__all__ = [
    "Outputs",
    "ProgressFn",
    "Report",
    "check_seed",
    "perturb_file",
    "predict_file",
    "resolve_device",
    "set_cpu_threads",
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
    video = decode(path)
    return {"input": str(path), **predict_frames(view, video.frames, dev, top_k).to_dict()}


@contextmanager
def _timed(timing: Timing, stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        setattr(timing, stage, getattr(timing, stage) + time.perf_counter() - start)


#: The largest `--seed`: torch's generators take 64-bit seeds.
MAX_SEED = 2**64 - 1


def check_seed(seed: int) -> int:
    """`seed` if torch can seed a generator with it, else a usage error."""
    if not 0 <= seed <= MAX_SEED:
        raise BadParameterError(f"expected --seed between 0 and {MAX_SEED}, got {seed}")
    return seed


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
    max_memory: int | None = None,
) -> dict[str, Any]:
    """Attack one video file and write `S.adv.mp4`, `S.heatmap.mp4`, `S.heatmap.png`, `S.frames.png`,
    `S.curve.png` (when the attack has a history) and `S.report.json` (last) into `out_dir`.

    S is `stem` (default: the input's name without its last suffix, `clip.2020.mp4` -> `clip.2020`);
    `outputs` (an `Outputs`, see `vidattack.pipeline.outputs`) names the files and chooses which kinds
    are written instead (`out_dir` and `stem` are then ignored); `heatmaps=False` leaves out the
    heatmaps and plots. While the job runs it holds the set's lock: another process writing the same
    set fails with `OutputLockedError`. If the job fails or is interrupted, the files it wrote are
    removed again. With `resume`, a set whose report was written by the same job (attack, parameters,
    model, seed, target, input bytes) is not attacked again: its report is returned with `skipped`
    true; a set without a report is redone. `max_memory` (bytes) bounds decoding (None: the video
    layer's default).

    `attack` is an attack object or a registered name (a learned universal perturbation is applied as
    `vidattack.attacks.universal.UniversalAttack(perturbation=...)`). Returns the report as a dict.
    Raises `VidattackError` subclasses for bad input; never modifies the input file.
    """
    from vidattack.attacks import get_attack
    from vidattack.pipeline.outputs import claim, job_key
    from vidattack.pipeline.signals import finish_without_interruption

    t_start = time.perf_counter()
    path = Path(path)
    check_seed(seed)
    dev = resolve_device(device)
    view = load_view(model, dev)
    atk = get_attack(attack) if isinstance(attack, str) else attack
    if outputs is None:
        kinds = {"adv", "report"} | ({"heatmaps", "plots"} if heatmaps else set())
        outputs = Outputs.for_stem(Path(out_dir), stem or path.stem or "video", kinds)
    elif not heatmaps:
        outputs = replace(outputs, kinds=outputs.kinds - {"heatmaps", "plots"})
    target_index = resolve_target(view, target)
    job = job_key(atk, view, seed=seed, target=target_index, path=path)
    with claim(outputs, key=job["key"], overwrite=overwrite, resume=resume) as claimed:
        if claimed.done is not None:
            return {**claimed.done, "skipped": True}
        work = outputs.with_scratch()
        try:
            report = _perturb(path, atk, view, dev, work, target_index, seed, progress, max_memory, t_start)
            data = report.to_dict()
            # TODO(merge): a `job` field of the typed Report (#16) instead of this key added here.
            data["job"] = job
            finish_without_interruption()  # the job is done but for its report: finish it
            if outputs.wants("report"):
                write_report(outputs.report, data)
        finally:
            for scratch in set(work.all()) - set(outputs.chosen()):
                scratch.unlink(missing_ok=True)
    return data


def _perturb(
    path: Path,
    atk: Attack,
    view: ModelView,
    dev: torch.device,
    outputs: Outputs,
    target_index: int | None,
    seed: int,
    progress: ProgressFn | None,
    max_memory: int | None,
    t_start: float,
) -> Report:
    """The stages of one job, writing into `outputs` (every path; the caller removes unwanted ones)."""
    timing = Timing()
    with _timed(timing, "decode"):
        video = decode(path, max_memory=max_memory)
    sampled = sample(video, view, atk, dev)
    with _timed(timing, "attack"):
        outcome = run_attack(sampled, atk, target=target_index, seed=seed, progress=progress)
    with _timed(timing, "encode"):
        write(video, sampled, outcome, outputs.adversarial, overwrite=True)
    result = outcome.result
    clean = prediction(result.clean_log_probs[0], view.labels)
    adversarial = prediction(result.adversarial_log_probs[0], view.labels)
    with _timed(timing, "verify"):
        verified = verify(
            video, outputs.adversarial, sampled, view, dev, clean_index=clean.index, target=target_index
        )
    paths: dict[str, Path] = {"adversarial": outputs.adversarial}
    with _timed(timing, "heatmaps"):
        if outputs.wants("heatmaps") or outputs.wants("plots"):
            # a name that is not UTF-8 shows its odd bytes as \xff: drawn text must be valid Unicode
            shown = path.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            title = f"{shown}: {clean.label} -> {verified.reencoded.label} ({atk.name})"
            paths.update(_render(video, verified, outcome, outputs, title, True))
    paths["report"] = outputs.report
    chosen = set(outputs.chosen())
    paths = {role: p for role, p in paths.items() if p in chosen}
    timing.total = time.perf_counter() - t_start
    return _report(
        path,
        atk,
        view,
        sampled,
        outcome,
        verified,
        video,
        clean,
        adversarial,
        target_index,
        paths,
        timing,
        seed,
        str(dev),
    )


def _report(
    path: Path,
    atk: Attack,
    view: ModelView,
    sampled: Sampled,
    outcome: AttackOutcome,
    verified: Verified,
    video: Video,
    clean: Prediction,
    adversarial: Prediction,
    target_index: int | None,
    paths: dict[str, Path],
    timing: Timing,
    seed: int,
    device: str,
) -> Report:
    """The typed report of one finished job (versions read now)."""
    result = outcome.result
    return Report(
        input=str(path),
        attack=attack_part(atk, result),
        model=model_part(view, sampled),
        target=None if target_index is None else Target(target_index, view.label_of(target_index)),
        clean=clean,
        adversarial=adversarial,
        reencoded=verified.reencoded,
        success=judge(adversarial.index, clean.index, target_index),
        success_after_encode=verified.success_after_encode,
        perturbation=verified.stats,
        frame_predictions=verified.frame_predictions,
        queries=result.queries,
        history=result.history,
        video=VideoPart.of(video),
        outputs={role: str(p) for role, p in paths.items()},
        timing=timing,
        seed=seed,
        device=device,
        versions=versions(),
    )


def attack_part(attack: Attack, result: AttackResult) -> AttackPart:
    """The report's `attack` part: the same keys for every attack, a universal perturbation included."""
    return AttackPart(
        name=attack.name,
        params=result.params,
        threat=result.threat,
        paper=attack.paper,
        info=result.info,
        white_box=attack.white_box,
    )


def model_part(view: ModelView, sampled: Sampled) -> ModelPart:
    """The report's `model` part: identity, preprocessing and the frames this video's plan sampled."""
    return ModelPart(
        name=view.name,
        sha256=view.sha256,
        source=view.source,
        preprocess=view.preprocess.to_dict(),
        frames_sampled=list(sampled.plan.frame_ids),
        notes=view.notes,
    )


def _render(
    video: Video,
    verified: Verified,
    outcome: AttackOutcome,
    outputs: Outputs,
    title: str,
    overwrite: bool,
) -> dict[str, Path]:
    from vidattack.pipeline.render import render

    rendered = render(
        video,
        verified.frames,  # overwritten with the heatmap: the decoded buffer is not needed afterwards
        verified.stats,
        outputs,
        history=outcome.result.history,
        frame_predictions=verified.frame_predictions,
        title=title,
        overwrite=overwrite,
    )
    verified.stats["heatmap_scale"] = rendered.scale / 255.0
    return rendered.paths
