"""The delivery stages of a job (issue #17): a playable lossy copy of the adversarial video, and
attacks that survive it.

    robust_model(bound, spec, fps, seed) -> DeliveryModel      # --robust-to: the model behind the codec
    through_delivery(sampled, spec, fps, seed) -> Sampled      # the same, on the clip an attack gets
    check_deliverable(path)                                    # before the attack: refuse early
    deliver(lossless, spec, path, overwrite) -> DeliveryFile   # --delivery: S.delivery.mp4 / .webm
    verify_delivery(file, view, device, ...) -> DeliveryPart   # decode what was delivered, classify, measure
    predict_delivered(path, view, device) -> (Prediction, Video)  # its decode and classification alone
    run_delivery(spec, ...) -> DeliveryPart | None             # the three above as the runner runs them

`deliver` takes the written LOSSLESS FILE as its source, not frames held by the pipeline: the lossless
file is what the attack produced, and reading it back works whether or not the job still holds the
whole video. An encode needs every frame at once (the codec's GOP and motion search), so the lossless
file is decoded whole; a video whose declared frames exceed `DELIVERY_MAX_BYTES` as 8-bit RGB is
refused with one line naming its path, before its attack runs (`check_deliverable`).

With `--robust-to` the attack sees `DeliveryModel(bound, spec)`: each forward pass runs the real
encoder and decoder (BPDA + EOT, see `vidattack.delivery.simulate`). White-box attacks take their
gradients through it; black-box ones query it through the template's `QueryModel`, so every query
is still counted and each answer is the model's on the delivered video. The threat model still holds
on the lossless output. The report's `clean` and `adversarial` stay predictions of the lossless
tensors (`unwrap_robust` recomputes them with the bound model), and the delivery section says what
happened after a real encode: with `--robust-to` and no `--delivery`, a check encode at the median
CRF of the set is made in a temporary folder and reported with `kept: false`.

A deployed model (`--model http(s)://...`/`cmd:`, #24) gets a `MeteredDeliveryModel`: each query is
the candidate through one local draw of the encode, sent losslessly, every request charged to the
budget (`eot` above 1 refused before decoding: `check_robust_to`). The service re-encodes what it
receives, so its answers on delivered videos are the verdict (`unwrap_robust` asks nothing more), the
written file is judged with the judged draw (`stages.verify`, from the cache), and no check encode is
sent; a `--delivery` file is judged through the job's plan, one request in the input's `model.sent`.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack import tempdirs
from vidattack.criteria import make_criterion
from vidattack.delivery import (
    DEFAULT_SIGMA,
    DeliveryFile,
    DeliveryModel,
    DeliverySpec,
    MeteredDeliveryModel,
    delivery_perturbation,
    write_delivery,
)
from vidattack.errors import BadParameterError, BadVideoError
from vidattack.pipeline.report import DeliveryPart, Prediction
from vidattack.pipeline.spec import judge
from vidattack.video.limits import DEFAULT_MAX_MEMORY

if TYPE_CHECKING:
    from vidattack.models.view import FramePlan, ModelView
    from vidattack.pipeline.report import Report, Timing
    from vidattack.pipeline.spec import JobSpec
    from vidattack.pipeline.stages import AttackOutcome, Sampled
    from vidattack.video import Video

__all__ = [
    "DELIVERY_MAX_BYTES",
    "DeliveryPart",
    "check_deliverable",
    "check_robust_to",
    "deliver",
    "delivery_suffix",
    "predict_delivered",
    "robust_model",
    "run_delivery",
    "through_delivery",
    "unwrap_robust",
    "verify_delivery",
    "with_delivery",
]

log = logging.getLogger("vidattack")

#: Largest video (8-bit RGB bytes, from its declared size) a delivery encode decodes whole. Measuring
#: the delivered perturbation holds four such copies at once (clean, lossless adversarial, delivered,
#: delivered clean), so a quarter of the default memory budget each.
DELIVERY_MAX_BYTES = DEFAULT_MAX_MEMORY // 4


def robust_model(model: torch.nn.Module, spec: DeliverySpec, *, fps: float, seed: int) -> DeliveryModel:
    """`model` seen through `spec`'s delivery encode, for `--robust-to`: `spec.eot` EOT draws per
    forward (default 1) and `spec.sigma` (default `DEFAULT_SIGMA`), one encoder thread; CRF and GOP
    offset drawn from a generator seeded with `seed`, so a job is reproducible. A deployed model (one
    that meters its requests) gets a `MeteredDeliveryModel`: one draw per query, every request charged
    (see `check_robust_to`)."""
    kind = MeteredDeliveryModel if callable(getattr(model, "metered", None)) else DeliveryModel
    return kind(
        model,
        spec,
        fps=fps,
        generator=torch.Generator().manual_seed(seed),
        samples=1 if spec.eot is None else spec.eot,
        sigma=DEFAULT_SIGMA if spec.sigma is None else spec.sigma,
    )


def through_delivery(sampled: Sampled, spec: DeliverySpec, *, fps: float, seed: int) -> Sampled:
    """`sampled` with its model seen through `spec`'s delivery encode (`robust_model`), as both
    `perturb --robust-to` and `eval --robust-to` give it to the attack: the video's frame rate is the
    encoder's, and the EOT draws are seeded with the attack's seed, so a rerun draws the same CRFs
    and offsets."""
    model = robust_model(sampled.model, spec, fps=fps, seed=seed)
    return dataclasses.replace(sampled, model=model)  # type: ignore[arg-type]


def delivery_suffix(spec: DeliverySpec) -> tuple[str, str]:
    """The delivery copy's role and suffix in the output set: `.delivery.mp4` (h264) or
    `.delivery.webm` (vp9), rows of `vidattack.pipeline.outputs.OUTPUT_FILES`."""
    return ("delivery", f".delivery{spec.extension}")


def _whole_bytes(path: Path) -> tuple[int, str]:
    from vidattack.video import probe

    info = probe(path)
    return info.frames * info.width * info.height * 3, f"{info.frames} frames of {info.width}x{info.height}"


def _check_fits(path: Path, budget_bytes: int) -> None:
    from vidattack.video import display_path, format_bytes

    need, what = _whole_bytes(path)
    if need > budget_bytes:
        raise BadVideoError(
            f"--delivery needs {display_path(path)} whole in memory: about {format_bytes(need)} for its "
            f"{what} (limit {format_bytes(budget_bytes)} per copy)"
        )


def check_deliverable(source: Path, *, budget_bytes: int = DELIVERY_MAX_BYTES) -> None:
    """Before the attack: `source` (the input; the lossless file has its size) can be encoded whole
    (`BadVideoError` naming it otherwise). Whether the delivery file may be written is the claim's
    business: it is a kind of the output set."""
    _check_fits(source, budget_bytes)


def check_robust_to(spec: DeliverySpec | None, view: ModelView) -> None:
    """Before decoding: `--robust-to` `spec` can be made sound on `view` (`BadParameterError`, exit 2,
    otherwise). On a deployed model each EOT draw is one request: with `eot` above 1 a query would
    send several, which the budget's per-query allowance cannot bound."""
    from vidattack.remote.view import RemoteView

    if spec is None or not isinstance(view, RemoteView) or spec.eot in (None, 1):
        return
    raise BadParameterError(
        f"--robust-to eot={spec.eot}: against the deployed model {view.name} every EOT draw is a "
        "request, and one query must be one request for max_queries to hold; use eot=1 (the default "
        "for http(s):// and cmd: models): each query then gets a fresh CRF draw"
    )


def _load_whole(path: Path, budget_bytes: int) -> Video:
    from vidattack.video import load_video

    _check_fits(path, budget_bytes)
    return load_video(path)


def deliver(
    source: Video | Path,
    spec: DeliverySpec,
    path: Path,
    *,
    overwrite: bool,
    budget_bytes: int = DELIVERY_MAX_BYTES,
) -> DeliveryFile:
    """Write the delivery copy of `source` to `path` (atomic; audio copied or re-encoded).

    `source` is the written lossless file (decoded whole; refused with one line when its declared
    frames exceed `budget_bytes`) or an already decoded `Video`."""
    from vidattack.video import Video

    video = source if isinstance(source, Video) else _load_whole(Path(source), budget_bytes)
    return write_delivery(video, path, spec, overwrite=overwrite, copy_audio=True, threads=1)


def verify_delivery(
    file: DeliveryFile,
    view: ModelView,
    device: torch.device,
    *,
    clean_index: int,
    target: int | None,
    clean: Video | Path,
    lossless: Video | Path,
    kept: bool = True,
    budget_bytes: int = DELIVERY_MAX_BYTES,
    plan: FramePlan | None = None,
) -> DeliveryPart:
    """Decode the delivery file, classify it as `vidattack predict` would, and measure what it carries.

    `clean` is the input (file or decoded video) and `lossless` the written lossless file; the clean
    video is also delivery-encoded once (in a temporary folder) to separate the codec's own error
    from the surviving perturbation. `plan`: see `predict_delivered`."""
    from vidattack.video import Video, load_video

    pred, whole = predict_delivered(file.path, view, device, plan=plan)
    delivered = whole.frames  # (T, H', W', 3)
    clean_video = clean if isinstance(clean, Video) else _load_whole(Path(clean), budget_bytes)
    adv = lossless if isinstance(lossless, Video) else _load_whole(Path(lossless), budget_bytes)
    notes: list[str] = []
    measured: dict[str, Any] | None = None
    h, w = clean_video.height, clean_video.width
    delivered = delivered[:, :h, :w]  # an odd size was padded by one edge pixel
    if delivered.shape != clean_video.frames.shape or adv.frames.shape != clean_video.frames.shape:
        notes.append(
            f"perturbation not measured: the delivery decodes to {tuple(delivered.shape)}, "
            f"the input to {tuple(clean_video.frames.shape)}"
        )
    else:
        with tempfile.TemporaryDirectory(prefix=tempdirs.prefix("delivery")) as tmp:
            ref = write_delivery(
                dataclasses.replace(clean_video, path=None),
                Path(tmp) / f"clean{file.spec.extension}",
                file.spec,
                copy_audio=False,
                threads=1,
            )
            delivered_clean = load_video(ref.path).frames[:, :h, :w]
        measured = delivery_perturbation(clean_video.frames, adv.frames, delivered, delivered_clean).to_dict()
    return DeliveryPart(
        file=file,
        kept=kept,
        prediction=pred,
        success_after_delivery=judge(pred.index, clean_index, target),
        perturbation=measured,
        notes=tuple(notes),
    )


def predict_delivered(
    path: Path, view: ModelView, device: torch.device, *, plan: FramePlan | None = None
) -> tuple[Prediction, Video]:
    """Decode a delivery file whole and classify it as `predict_file` classifies a file (the frames
    the model's plan samples); the prediction and the decoded video (padded to even sizes, if the
    source was odd). `verify_delivery` and `vidattack eval --delivery` judge a delivery by it.

    `plan` is the job's own plan, used when it covers the file's frames: a deployed model's plan
    carries the source's timestamps (the delivery file keeps them) and counts what the job sent, so
    the request is the job's (in `model.sent`) and a video already asked is answered from the cache."""
    from vidattack.pipeline.report import prediction
    from vidattack.pipeline.stages import clip_tensor, predict_frames
    from vidattack.video import SampledFrames, load_video

    whole = load_video(path)
    ids = view.plan(whole.num_frames).frame_ids
    if plan is None or tuple(plan.frame_ids) != tuple(ids) or plan.num_frames != whole.num_frames:
        return predict_frames(view, SampledFrames.of_video(whole, ids), device), whole
    frames = whole.frames[list(ids)]  # (T', H, W, 3)
    with torch.no_grad():
        probs = view.bind(plan)(clip_tensor(frames, device)).exp()[0]
    return prediction(probs, view.labels, is_log=False), whole


def _check_spec_for(robust_to: DeliverySpec) -> DeliverySpec:
    # the median CRF of the set (23 for 18-28): one encode the attack was made to survive
    return robust_to.at(robust_to.crfs[len(robust_to.crfs) // 2])


def run_delivery(
    spec: JobSpec,
    *,
    lossless: Path,
    path: Path,
    source: Path | None,
    view: ModelView,
    clean_index: int,
    target: int | None,
    timing: Timing,
    sampled: Sampled | None = None,
) -> DeliveryPart | None:
    """What the runner does after writing the lossless file: the `spec.delivery` file at `path` (or,
    for `spec.robust_to` alone, a check encode at the median CRF that is not kept), decoded and
    judged. The perturbation it carries is measured against the input `source` when the job writes a
    report (eval's jobs record only the prediction). None when neither option is set, or when
    `--robust-to`'s check encode cannot hold the video, or for `--robust-to` alone on a deployed model.
    `sampled` is the job's attacked clip: a deployed model judges the file through the job's plan
    (`predict_delivered`), so the request is the job's."""
    device = torch.device(spec.device)
    measure = source if "report" in spec.kinds else None
    plan = None if sampled is None else sampled.plan
    if spec.delivery is not None:
        start = time.perf_counter()
        video = _load_whole(lossless, DELIVERY_MAX_BYTES)
        file = deliver(video, spec.delivery, path, overwrite=True)  # the claim checked the set
        timing.encode += time.perf_counter() - start
        return _verified(
            file, view, device, clean_index, target, measure, video, kept=True, timing=timing, plan=plan
        )
    if spec.robust_to is None:
        return None
    if sampled is not None and isinstance(sampled.model, MeteredDeliveryModel):
        # a deployed model: judging a check encode would be one more paid request outside the budget;
        # the written file was judged as the service sees it already (`stages.verify`, from the cache)
        return None
    try:
        _check_fits(lossless, DELIVERY_MAX_BYTES)
    except BadVideoError as e:
        log.warning("no delivery check after --robust-to: %s", e)
        return None
    start = time.perf_counter()
    video = _load_whole(lossless, DELIVERY_MAX_BYTES)
    check = _check_spec_for(spec.robust_to)
    with tempfile.TemporaryDirectory(prefix=tempdirs.prefix("delivery")) as tmp:
        file = deliver(video, check, Path(tmp) / f"check{check.extension}", overwrite=True)
        timing.encode += time.perf_counter() - start
        return _verified(
            file, view, device, clean_index, target, measure, video, kept=False, timing=timing, plan=plan
        )


def _verified(
    file: DeliveryFile,
    view: ModelView,
    device: torch.device,
    clean_index: int,
    target: int | None,
    source: Path | None,
    lossless: Video,
    *,
    kept: bool,
    timing: Timing,
    plan: FramePlan | None = None,
) -> DeliveryPart:
    start = time.perf_counter()
    if source is None:  # judged, not measured
        pred, _ = predict_delivered(file.path, view, device, plan=plan)
        success = judge(pred.index, clean_index, target)
        part = DeliveryPart(
            file=file, kept=kept, prediction=pred, success_after_delivery=success, perturbation=None
        )
    else:
        part = verify_delivery(
            file,
            view,
            device,
            clean_index=clean_index,
            target=target,
            clean=source,
            lossless=lossless,
            kept=kept,
            plan=plan,
        )
    if not kept:
        part = dataclasses.replace(
            part, notes=(*part.notes, f"check encode for --robust-to at crf {file.spec.crf}, not kept")
        )
    timing.verify += time.perf_counter() - start
    return part


def unwrap_robust(sampled: Sampled, outcome: AttackOutcome) -> tuple[AttackOutcome, dict[str, Any] | None]:
    """For a `--robust-to` job, the outcome with clean and adversarial log-probabilities of the bound
    model on the lossless tensors, and the labels and success that follow from them (the template
    judged them on one EOT draw of the encode); and the report's `attack.robust_to` record. Other
    jobs: `(outcome, None)`.

    A deployed model (`MeteredDeliveryModel`) keeps the template's verdict: the service re-encodes
    what it receives, so its answers on delivered videos are the ones that count, and asking it about
    the lossless tensors would be two requests outside the budget."""
    model = sampled.model
    if not isinstance(model, DeliveryModel):
        return outcome, None
    result = outcome.result
    record = {
        **model.spec.describe(),
        "sigma": model.sigma,
        "samples": model.samples,
        "max_offset": model.max_offset,
        "encodes": len(model.draws),
        "success_on_last_draw": bool(result.success.reshape(-1)[0]),
    }
    if isinstance(model, MeteredDeliveryModel):
        return outcome, record
    bound = model.model
    with torch.no_grad():
        clean_lp = bound(sampled.x)
        adv_lp = bound(result.adversarial.to(sampled.x.device))
    clean_labels = clean_lp.argmax(dim=1)
    unwrapped = dataclasses.replace(
        result,
        # judged as the attack judges itself (the target won, or the clean prediction lost)
        success=make_criterion(clean_labels, result.target).is_adversarial(adv_lp),
        clean_log_probs=clean_lp,
        adversarial_log_probs=adv_lp,
        clean_labels=clean_labels,
        adversarial_labels=adv_lp.argmax(dim=1),
    )
    return dataclasses.replace(outcome, result=unwrapped), record


def with_delivery(report: Report, robust_to: dict[str, Any] | None, part: DeliveryPart | None) -> Report:
    """`report` with its `attack.robust_to` record and `delivery` section filled in."""
    attack = (
        dataclasses.replace(report.attack, robust_to=robust_to) if robust_to is not None else report.attack
    )
    return dataclasses.replace(report, attack=attack, delivery=part)
