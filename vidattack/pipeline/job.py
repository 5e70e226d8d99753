"""One job of the pipeline: the stages run for one input, from claiming its output set to its report.

`prepare_job` claims the outputs (lock, `--overwrite`/`--resume` checks), decodes and samples (no
accelerator work); the attack runs between; `finish_job` writes, verifies, delivers, renders and
writes the report last, releasing the claim (and removing what it wrote when a stage fails).
`perturb_file` runs one job; the batch engine (`vidattack.pipeline.engine`) overlaps many.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack.pipeline.progress import ProgressEvent, ProgressFn, Stage
from vidattack.pipeline.report import (
    AttackPart,
    JobPart,
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
    Sampled,
    Verified,
    decode,
    judge,
    sample,
    verify,
    write,
)
from vidattack.text import literal

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.attacks.result import AttackResult
    from vidattack.delivery import DeliverySpec
    from vidattack.models.view import ModelView
    from vidattack.pipeline.outputs import Claim
    from vidattack.video import SampledFrames


log = logging.getLogger("vidattack")
_warned: set[str] = set()  # warnings logged so far: once per process


@contextmanager
def timed(timing: Timing, stage: str) -> Iterator[None]:
    """Add the block's wall time to `timing.<stage>` (even when the block raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        setattr(timing, stage, getattr(timing, stage) + time.perf_counter() - start)


class _Reporter:
    """Sends one job's `ProgressEvent`s to the caller's callback (or nowhere)."""

    def __init__(self, progress: ProgressFn | None, video: Path) -> None:
        self.progress, self.video = progress, str(video)

    def __call__(self, stage: Stage, done: int = 0, total: int | None = 1, unit: str = "") -> None:
        if self.progress is not None:
            self.progress(ProgressEvent(stage, done, total, self.video, unit))

    def counter(self, stage: Stage, unit: str) -> Any:
        """A `(done, total)` callback for a stage that counts (the attack's steps or queries)."""
        return None if self.progress is None else (lambda done, total: self(stage, done, total, unit))


def warnings_for(atk: Attack, view: ModelView) -> list[str]:
    """What the report should warn about this attack on this model (a universal perturbation learned
    on another model or preprocessing); each logged once per process, not once per video of a batch."""
    warnings = learned_elsewhere(atk, view)
    for warning in warnings:
        if warning not in _warned:
            _warned.add(warning)
            log.warning("%s", warning)
    return warnings


@dataclass
class Job:
    """One input between the stages: its claimed outputs, the decoded video and what the model samples
    of it.

    `claim` holds the output set's lock until `finish_job` (or, when the job fails before, whoever
    drops it: `claim.release(failed=True)` removes what the job wrote); `job` identifies the job in
    its report (`--resume`); `timing` is filled in as the stages run; `started` is when the job began
    (for `timing.total`); `tell` sends its progress events."""

    path: Path
    outputs: Outputs
    video: SampledFrames
    sampled: Sampled
    tell: _Reporter
    claim: Claim
    job: JobPart
    timing: Timing = field(default_factory=Timing)
    started: float = field(default_factory=time.perf_counter)


def prepare_job(
    path: Path,
    atk: Attack,
    view: ModelView,
    device: torch.device,
    outputs: Outputs,
    *,
    seed: int,
    target: int | None,
    overwrite: bool = False,
    resume: bool = False,
    progress: ProgressFn | None = None,
    max_memory: int | None = None,
    delivery: DeliverySpec | None = None,
    robust_to: DeliverySpec | None = None,
) -> Job | dict[str, Any]:
    """The first stages of a job: claim the output set (lock, checks, `--resume`), decode, sample (no
    accelerator work). Returns the `Job`, holding its claim, or, when `resume` finds the set finished
    by the same job, that report (marked `skipped`) with nothing held. With `delivery`, the delivery
    file is checked free and the video small enough to encode whole; with `robust_to`, the sampled
    model is the bound model seen through that encode (seeded by `seed`)."""
    from vidattack.pipeline.outputs import claim, job_key

    started = time.perf_counter()
    key = job_key(atk, view, seed=seed, target=target, path=path)
    claimed = claim(outputs, key=key["key"], overwrite=overwrite, resume=resume)
    if claimed.done is not None:
        claimed.release()
        return {**claimed.done, "skipped": True}
    try:
        tell = _Reporter(progress, path)
        timing = Timing()
        tell("decoding")
        with timed(timing, "decode"):
            video = decode(path, view, max_memory=max_memory)
        sampled = sample(video, view, atk, device)
        if delivery is not None or robust_to is not None:
            sampled = _for_delivery(path, outputs, video, sampled, delivery, robust_to, seed, overwrite)
    except BaseException:
        claimed.release(failed=True)
        raise
    job = JobPart(key["key"], key["input_sha256"])
    return Job(path, outputs, video, sampled, tell, claimed, job, timing, started)


def _for_delivery(
    path: Path,
    outputs: Outputs,
    video: SampledFrames,
    sampled: Sampled,
    delivery: DeliverySpec | None,
    robust_to: DeliverySpec | None,
    seed: int,
    overwrite: bool,
) -> Sampled:
    # (#17) checks before the attack; with --robust-to the attack sees the model through the encode
    from vidattack.pipeline import delivery as dl

    dl.check_spec(delivery, "--delivery")
    dl.check_spec(robust_to, "--robust-to")
    if delivery is not None:
        dl.check_deliverable(path, dl.delivery_path(outputs.adversarial, delivery), overwrite=overwrite)
    if robust_to is None:
        return sampled
    return dl.through_delivery(sampled, robust_to, fps=video.fps, seed=seed)


def finish_job(
    job: Job,
    atk: Attack,
    view: ModelView,
    outcome: AttackOutcome,
    target_index: int | None,
    seed: int,
    device: torch.device,
    *,
    pictures: Collection[str] | None = None,
    warnings: Sequence[str] = (),
    delivery: DeliverySpec | None = None,
    robust_to: DeliverySpec | None = None,
) -> dict[str, Any]:
    """The last stages of a job: write, verify, (deliver), render the pictures of the chosen kinds (only
    those in `pictures`, when given), and the report (written last, when chosen); returns its dict.
    Releases the job's claim; when a stage fails (or the job is interrupted), after removing what the
    job wrote."""
    from vidattack.pipeline.signals import finish_without_interruption

    try:
        report = _finish(
            job, atk, view, outcome, target_index, seed, device, pictures, warnings, delivery, robust_to
        )
        data = report.to_dict()
        finish_without_interruption()  # the job is done but for its report: finish it
        if job.outputs.wants("report"):
            write_report(job.outputs.report, data)
    except BaseException:
        job.claim.release(failed=True)
        raise
    job.claim.release()
    job.tell("done", 1, 1)
    return data


def _finish(
    job: Job,
    atk: Attack,
    view: ModelView,
    outcome: AttackOutcome,
    target_index: int | None,
    seed: int,
    device: torch.device,
    only: Collection[str] | None,
    warnings: Sequence[str],
    delivery: DeliverySpec | None = None,
    robust_to: DeliverySpec | None = None,
) -> Report:
    from vidattack.files import temp_path_beside
    from vidattack.pipeline import delivery as dl

    outcome, robust = dl.unwrap_robust(job.sampled, outcome)  # (#17) lossless predictions for the report

    path, outputs, video, sampled, timing, tell = (
        job.path,
        job.outputs,
        job.video,
        job.sampled,
        job.timing,
        job.tell,
    )
    # the written video is verified (and the heatmaps drawn from it) even when it is not kept
    # (`--outputs` without adv): then it goes to a hidden temp name, removed at the end
    adv_path = outputs.adversarial if outputs.wants("adv") else temp_path_beside(outputs.adversarial)
    paths: dict[str, Path] = {"adversarial": outputs.adversarial} if outputs.wants("adv") else {}
    try:
        tell("writing")
        with timed(timing, "encode"):
            write(video, sampled, outcome, adv_path, overwrite=True)  # the claim checked the set
        result = outcome.result
        clean = prediction(result.clean_log_probs[0], view.labels)
        adversarial = prediction(result.adversarial_log_probs[0], view.labels)
        tell("verifying")
        with timed(timing, "verify"):
            verified = verify(
                video, adv_path, sampled, view, device, clean_index=clean.index, target=target_index
            )
        # -- delivery (#17): the playable copy, encoded from the written lossless file, decoded, judged
        delivered = dl.run_delivery(
            source=path, lossless=adv_path, delivery=delivery, robust_to=robust_to, view=view,
            device=device, clean_index=clean.index, target=target_index, overwrite=True, timing=timing,
        )  # fmt: skip
        if delivered is not None and delivered.path is not None:
            paths["delivery"] = delivered.path
        pictures = [r for r in outputs.pictures() if only is None or r in only]
        with timed(timing, "heatmaps"):
            if pictures:
                tell("rendering", 0, None, "pictures")
                title = f"{literal(path.name)}: {clean.label} -> {adversarial.label} ({atk.name})"
                paths.update(
                    _render(
                        video,
                        verified,
                        outcome,
                        outputs,
                        title,
                        True,
                        atk,
                        sampled,
                        pictures,
                        tell.counter("rendering", "pictures"),
                    )
                )
    finally:
        if adv_path != outputs.adversarial:
            adv_path.unlink(missing_ok=True)
    if outputs.wants("report"):
        paths["report"] = outputs.report
    timing.total = time.perf_counter() - job.started
    report = _report(
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
        str(device),
        list(warnings),
        job.job,
    )
    return dl.with_delivery(report, robust, delivered)


def _report(
    path: Path,
    atk: Attack,
    view: ModelView,
    sampled: Sampled,
    outcome: AttackOutcome,
    verified: Verified,
    video: SampledFrames,
    clean: Prediction,
    adversarial: Prediction,
    target_index: int | None,
    paths: dict[str, Path],
    timing: Timing,
    seed: int,
    device: str,
    warnings: list[str],
    job: JobPart | None = None,
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
        warnings=warnings,
        job=job,
    )


def attack_part(attack: Attack, result: AttackResult) -> AttackPart:
    """The report's `attack` part: the same keys for every attack, a universal perturbation included
    (its `info.learned_on` names the model and preprocessing it was learned against)."""
    info = dict(result.info)
    pert = getattr(attack, "perturbation", None)
    if pert is not None and hasattr(pert, "model"):
        info["learned_on"] = {
            "model": pert.model or None,
            "preprocess": pert.preprocess.to_dict() if pert.preprocess is not None else None,
        }
    return AttackPart(
        name=attack.name,
        params=result.params,
        threat=result.threat,
        paper=attack.paper,
        info=info,
        white_box=attack.white_box,
        precision=result.precision,
    )


def learned_elsewhere(attack: Attack, view: ModelView) -> list[str]:
    """Warnings for a universal perturbation learned on another model or preprocessing than `view`'s
    (it may still transfer; the numbers then measure transfer, not the attack it was learned as)."""
    pert = getattr(attack, "perturbation", None)
    if pert is None or not hasattr(pert, "model"):
        return []
    found = []
    if pert.model and pert.model != view.name:
        found.append(f"the perturbation was learned on model {pert.model}, applied to {view.name}")
    if pert.preprocess is not None and pert.preprocess.to_dict() != view.preprocess.to_dict():
        learned, used = pert.preprocess.to_dict(), view.preprocess.to_dict()
        changed = [k for k in learned if learned[k] != used.get(k)]
        found.append(
            "the perturbation was learned with another preprocessing: "
            + ", ".join(f"{k} {learned[k]} (now {used.get(k)})" for k in changed)
        )
    return found


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
    video: SampledFrames,
    verified: Verified,
    outcome: AttackOutcome,
    outputs: Outputs,
    title: str,
    overwrite: bool,
    atk: Attack,
    sampled: Sampled,
    pictures: Collection[str] | None,
    progress: Any,
) -> dict[str, Path]:
    from vidattack.pipeline.render import render

    rendered = render(
        video,
        verified.comparison.written,
        verified.stats,
        outputs,
        history=outcome.result.history,
        frame_predictions=verified.frame_predictions,
        title=title,
        overwrite=overwrite,
        which=pictures,
        x_axis="step" if atk.white_box else "queries",
        attack=atk.name,
        sampled=sampled.plan.frame_ids,
        progress=progress,
    )
    return rendered.paths
