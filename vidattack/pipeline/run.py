"""The one job runner: a `JobSpec` on one model, for one video, from claim to report.

    runner = Runner.start(spec, model)          # device, model view, warnings: once per batch
    job = runner.prepare(path, outputs)         # claim the set (lock, --resume), decode, sample
    outcomes = runner.attack([job, ...])        # the only accelerator work; batched when keys agree
    report = runner.finish(job, outcome)        # write, verify, deliver, render, report (last)

`run_job` is those stages in order for one video. `perturb_file` calls it, the batch engine calls the
stages from its workers (overlapped, batched), and `eval` calls it per configuration with the video it
decoded once, turning each `Report` into a record. So the target is resolved, the attack judged, the
delivery encoded and the files claimed and cleaned up in one way for all three.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack.pipeline.job import Job, Reporter, attack_part, model_part, timed, warnings_for
from vidattack.pipeline.report import (
    JobPart,
    Prediction,
    Report,
    Target,
    Timing,
    VideoPart,
    prediction,
    versions,
)
from vidattack.pipeline.spec import JobSpec, judge, model_identity, resolve_target
from vidattack.pipeline.stages import AttackOutcome, Verified, decode, run_attack_batch, sample, verify, write
from vidattack.precision import attack_precision
from vidattack.text import literal

if TYPE_CHECKING:
    from vidattack.attacks.context import StepFn
    from vidattack.models.view import ModelView
    from vidattack.pipeline.outputs import Outputs
    from vidattack.pipeline.progress import ProgressFn
    from vidattack.video import SampledFrames

log = logging.getLogger("vidattack")


@dataclass(frozen=True)
class Known:
    """What the caller already knows of a video (eval decodes and classifies each video once for all
    its configurations): the decoded `video`, the `name` reports and progress call it, its true
    `label` and `clean_log_probs` `(K,)` (for the target modes `random` and `least-likely`), and the
    `seed` of its attack in place of the spec's (eval seeds each video apart)."""

    video: SampledFrames | None = None
    name: str | None = None
    label: int | None = None
    clean_log_probs: torch.Tensor | None = None
    seed: int | None = None


NOTHING_KNOWN = Known()


@dataclass(frozen=True)
class Skipped:
    """A job `--resume` found finished by the same job: its report as written, nothing done."""

    report: dict[str, Any]


@dataclass(frozen=True)
class Runner:
    """One `JobSpec` on one model view (on the spec's device), with the warnings its reports carry."""

    spec: JobSpec
    view: ModelView
    progress: ProgressFn | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, spec: JobSpec, view: ModelView, progress: ProgressFn | None = None) -> Runner:
        """The runner of `spec` on `view`, moved to the spec's device (`auto` resolved now)."""
        from dataclasses import replace

        from vidattack.pipeline.delivery import check_robust_to
        from vidattack.runtime import resolve_device

        check_robust_to(spec.robust_to, view)  # before any decoding
        device = resolve_device(spec.device)
        spec = replace(spec, device=str(device))
        return cls(spec, view.to(device), progress, warnings_for(spec.attack, view))

    @property
    def device(self) -> torch.device:
        return torch.device(self.spec.device)

    # -- the stages ------------------------------------------------------------------------------

    def prepare(self, source: Path | None, outputs: Outputs, known: Known = NOTHING_KNOWN) -> Job | Skipped:
        """Claim `outputs` (lock, `--overwrite`, `--resume`), decode `source` (unless `known` holds
        the decoded video) and sample it, resolve the target and check the delivery. Returns the
        `Job`, holding its claim, or `Skipped`."""
        from vidattack.pipeline.claim import claim
        from vidattack.pipeline.delivery import check_deliverable, through_delivery

        spec, started = self.spec, time.perf_counter()
        outputs = self.outputs_for(outputs)
        seed = spec.seed if known.seed is None else known.seed
        video = known.video
        input_sha = _input_sha256(source)
        key = self.job_key(input_sha)
        claimed = claim(outputs, key=key, overwrite=spec.overwrite, resume=spec.resume)
        if claimed.done is not None:
            claimed.release()
            return Skipped(claimed.done)
        try:
            shown = known.name if known.name is not None else str(source)
            tell, timing = Reporter(self.progress, shown), Timing()
            if video is None:
                if source is None:
                    raise ValueError("expected a source file or a decoded video")
                tell("decoding")
                with timed(timing, "decode"):
                    video = decode(source, self.view, max_memory=spec.max_memory)
            target = resolve_target(
                spec.target, self.view, label=known.label, clean_log_probs=known.clean_log_probs, seed=seed
            )
            sampled = sample(video, self.view, spec.attack, self.device)
            if spec.delivery is not None and source is not None:
                check_deliverable(source)  # the encode decodes the written file whole: refuse it now
            if spec.robust_to is not None:
                sampled = through_delivery(sampled, spec.robust_to, fps=video.fps, seed=seed)
        except BaseException:
            claimed.release(failed=True)
            raise
        job_part = JobPart(key, input_sha)
        # eval classified the clean video with one lossless request; through --robust-to the attack's
        # own clean query is another (an encoded draw), so that request comes out of the attack's budget
        outside = int(known.clean_log_probs is not None and spec.robust_to is not None)
        return Job(
            source, shown, outputs, video, sampled, tell, claimed, job_part, target, seed, timing, started,
            outside=outside,
        )  # fmt: skip

    def outputs_for(self, outputs: Outputs) -> Outputs:
        """The files this job writes of the set `outputs` names: its kinds that the spec chooses, and
        the delivery copy (named for its codec) with `spec.delivery`."""
        from vidattack.pipeline.delivery import delivery_suffix
        from vidattack.pipeline.outputs import Outputs

        chosen = Outputs(outputs.folder, outputs.name, outputs.kinds & self.spec.kinds, outputs.suffixes)
        if self.spec.delivery is None:
            return chosen
        return chosen.with_kind("delivery", suffix=delivery_suffix(self.spec.delivery))

    def job_key(self, input_sha256: str | None) -> str:
        """What a finished report must hold to answer this job (`--resume`): the spec's key on this
        model, and the input's bytes."""
        import hashlib

        whole = f"{self.spec.key(model_identity(self.view))}:{input_sha256}"
        return hashlib.sha256(whole.encode()).hexdigest()

    def attack(self, jobs: Sequence[Job], tick: StepFn | None = None) -> list[AttackOutcome]:
        """Attack the jobs' clips in one call (`stages.run_attack_batch`: one clip shape and plan);
        every job shares the first one's target and seed, which a batch only groups when equal."""
        first = jobs[0]
        if any(j.target != first.target or j.seed != first.seed for j in jobs):
            raise ValueError("expected jobs of one target and seed in a batch")
        with attack_precision(self.spec.precision):
            outcomes = run_attack_batch(
                [job.sampled for job in jobs],
                self.spec.attack,
                target=first.target,
                seed=first.seed,
                progress=tick,
                stop_when_fooled=self.spec.stop_when_fooled,
                max_queries=self.attack_budget(max(job.outside for job in jobs)),
            )
        for job, outcome in zip(jobs, outcomes, strict=True):
            job.timing.attack += outcome.seconds
        return outcomes

    def attack_budget(self, outside: int = 0) -> int | None:
        """The queries per video the attack may spend, when the job must keep some of its budget for
        a deployed model's requests outside the attack: judging the `--delivery` copy after it, and
        `outside` more (`Job.outside`), so that the service never sees more than `max_queries`
        requests per video. None: the attack's own budget."""
        own = getattr(self.spec.attack, "max_queries", None)
        reserved = int(self.spec.delivery is not None) + outside
        if not reserved or self.view.source != "remote" or not isinstance(own, int):
            return None
        return own - reserved

    def finish(self, job: Job, outcome: AttackOutcome) -> Report:
        """Write, verify, deliver, render the chosen pictures and write the report last (when chosen).
        Releases the job's claim; when a stage fails (or the job is interrupted), after removing what
        the job wrote."""
        from vidattack.pipeline.report import write_report
        from vidattack.pipeline.signals import finish_without_interruption

        try:
            report = self._finish(job, outcome)
            finish_without_interruption()  # the job is done but for its report: finish it
            if job.outputs.wants("report"):
                write_report(job.outputs.report, report)
        except BaseException:
            job.claim.release(failed=True)
            raise
        job.claim.release()
        job.tell("done", 1, 1)
        return report

    def run(self, source: Path | None, outputs: Outputs, known: Known = NOTHING_KNOWN) -> Report | Skipped:
        """The stages in order for one video."""
        job = self.prepare(source, outputs, known)
        if isinstance(job, Skipped):
            return job
        try:
            job.tell("attacking", 0, None, self.spec.unit)
            outcome = self.attack([job], job.tell.counter("attacking", self.spec.unit))[0]
        except BaseException:
            job.claim.release(failed=True)
            raise
        return self.finish(job, outcome)

    # -- after the attack ------------------------------------------------------------------------

    def _finish(self, job: Job, in_memory: AttackOutcome) -> Report:
        from vidattack.files import temp_path_beside
        from vidattack.pipeline import delivery as dl

        outcome, robust = dl.unwrap_robust(job.sampled, in_memory)  # (#17) lossless predictions
        result, outputs = outcome.result, job.outputs
        clean = prediction(result.clean_log_probs[0], self.view.labels)
        adversarial = prediction(result.adversarial_log_probs[0], self.view.labels)
        # the written video is verified (and the heatmaps drawn from it) even when it is not kept
        # (`--outputs` without adv): then it goes to a hidden temp name, removed at the end
        keep = outputs.wants("adv")
        adv_path = outputs.adversarial if keep else temp_path_beside(outputs.adversarial)
        paths: dict[str, Path] = {"adversarial": adv_path} if keep else {}
        verified, delivered = None, None
        try:
            if self.spec.verify:
                verified = self._write_and_verify(job, outcome, adv_path, clean.index)
                delivered = dl.run_delivery(
                    self.spec, lossless=adv_path, path=outputs.delivery, source=job.source,
                    view=self.view, clean_index=clean.index, target=job.target, timing=job.timing,
                    sampled=job.sampled,
                )  # fmt: skip
                if delivered is not None and delivered.path is not None:
                    paths["delivery"] = delivered.path
                paths.update(self._render(job, verified, outcome, clean.label, adversarial.label))
                if outputs.wants("preview"):  # H.264 yuv420p copies the run page plays (vidattack.page)
                    from vidattack.page.preview import write_previews

                    job.tell("rendering", 0, None, "previews")
                    paths.update(write_previews(job.video, adv_path, outputs.folder, outputs.name))
        finally:
            if not keep:
                adv_path.unlink(missing_ok=True)
        if outputs.wants("report"):
            paths["report"] = outputs.report
        job.timing.total = time.perf_counter() - job.started
        report = self._report(job, outcome, verified, (clean, adversarial), paths)
        return dl.with_delivery(report, robust, delivered)

    def _write_and_verify(self, job: Job, outcome: AttackOutcome, path: Path, clean_index: int) -> Verified:
        job.tell("writing")
        with timed(job.timing, "encode"):
            write(job.video, job.sampled, outcome, path, overwrite=True)  # the claim checked the set
        job.tell("verifying")
        with timed(job.timing, "verify"):
            return verify(
                job.video,
                path,
                job.sampled,
                self.view,
                self.device,
                clean_index=clean_index,
                target=job.target,
            )

    def _render(
        self, job: Job, verified: Verified, outcome: AttackOutcome, clean: str, adversarial: str
    ) -> dict[str, Path]:
        from vidattack.pipeline.render import RenderJob, curve_names, render

        wanted = self.spec.pictures
        pictures = [r for r in job.outputs.pictures() if wanted is None or r in wanted]
        if not pictures:
            return {}
        atk = self.spec.attack
        target = None if job.target is None else self.view.label_of(job.target)
        job.tell("rendering", 0, None, "pictures")
        with timed(job.timing, "heatmaps"):
            drawn = RenderJob(
                job.video,
                verified.comparison.written,
                verified.stats,
                job.outputs,
                history=outcome.result.history,
                frame_predictions=verified.frame_predictions,
                title=f"{literal(Path(job.name).name)}: {clean} -> {adversarial} ({atk.name})",
                overwrite=True,
                x_axis="step" if atk.white_box else "queries",
                attack=atk.name,
                sampled=job.sampled.plan.frame_ids,
                curve_labels=curve_names(atk.name, clean, target),
                fooled=adversarial != clean if target is None else adversarial == target,
            )
            rendered = render(drawn, which=pictures, progress=job.tell.counter("rendering", "pictures"))
        return rendered.paths

    def _report(
        self,
        job: Job,
        outcome: AttackOutcome,
        verified: Verified | None,
        predictions: tuple[Prediction, Prediction],
        paths: dict[str, Path],
    ) -> Report:
        """The typed report of one finished job (versions read now). Without `spec.verify` (eval's
        `--no-verify`) nothing was written: the perturbation is measured on the frames in memory."""
        from vidattack.pipeline.stages import unchanged_stats

        result, view, (clean, adversarial) = outcome.result, self.view, predictions
        target = None if job.target is None else Target(job.target, view.label_of(job.target))
        return Report(
            input=job.name,
            attack=attack_part(self.spec.attack, result),
            model=model_part(view, job.sampled),
            target=target,
            clean=clean,
            adversarial=adversarial,
            reencoded=None if verified is None else verified.reencoded,
            success=judge(adversarial.index, clean.index, job.target),
            success_after_encode=None if verified is None else verified.success_after_encode,
            perturbation=unchanged_stats(job.video, outcome.frames) if verified is None else verified.stats,
            frame_predictions=None if verified is None else verified.frame_predictions,
            queries=result.queries,
            history=result.history,
            video=VideoPart.of(job.video),
            outputs={role: str(p) for role, p in paths.items()},
            timing=job.timing,
            seed=job.seed,
            device=self.spec.device,
            versions=versions(),
            warnings=list(self.warnings),
            job=job.job,
        )


def _input_sha256(path: Path | None) -> str | None:
    # Only regular files: opening a FIFO would wait for a writer forever.
    import os
    import stat

    from vidattack.files import sha256_file
    from vidattack.video.probe import probe

    if path is None:
        return None
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
    except OSError:
        return None
    # Probe first (BadVideoError): hashing a 50 GB file of zeros takes a minute, refusing it a moment.
    probe(path)
    try:
        return sha256_file(path)
    except OSError:
        return None


def run_job(
    spec: JobSpec,
    source: Path | None,
    model: ModelView,
    outputs: Outputs,
    *,
    known: Known = NOTHING_KNOWN,
    progress: ProgressFn | None = None,
) -> Report | Skipped:
    """Run `spec` on one video `source` with `model`, writing `outputs`: claim, decode (unless
    `known` holds the decoded video), sample, attack, write, verify, deliver, render, report. Returns
    the `Report`, or `Skipped` when `--resume` found the job done."""
    return Runner.start(spec, model, progress).run(source, outputs, known)
