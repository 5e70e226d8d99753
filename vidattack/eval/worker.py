"""The work of one video under every configuration: what a local loop or a Ray task runs.

Per video: decode (or render) it and classify the clip the model samples, once; then per
configuration, the pipeline's one job runner (`vidattack.pipeline.run.run_job`, what `vidattack
perturb` runs) on the decoded video with the configuration's `JobSpec` (`Config.spec`): target
resolved, attack run (through the `robust_to` encode when set), the lossless file written and verified
(with `verify`), the `delivery` copy written and judged (or `robust_to`'s check encode, as perturb
makes it), and the `Report` turned into a record here (and nothing more). Records judge success
against the video's true label; a video the model gets wrong is not attacked unless
`attack_misclassified`. The result is a list of plain-dict records, so any executor can ship them
back to the driver, which alone writes `results.jsonl`.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack import tempdirs
from vidattack.data.names import kept_name
from vidattack.eval.grid import Config
from vidattack.pipeline.outputs import Outputs
from vidattack.pipeline.spec import jsonable
from vidattack.pipeline.stages import unchanged_stats

if TYPE_CHECKING:
    from vidattack.data.datasets import Item
    from vidattack.models.view import ModelView
    from vidattack.pipeline.report import Report
    from vidattack.video import SampledFrames

log = logging.getLogger("vidattack")


@dataclass(frozen=True)
class WorkOptions:
    """How each video is processed (the same in every executor, so records agree).

    `device`: where the model and attack run. `verify`: write the adversarial video losslessly,
    decode it and classify it again ("success after encode"); off, the perturbation is measured on the
    frames in memory; a configuration with a delivery needs it. `outputs`: a folder that keeps the
    adversarial videos (`KEY/ID.adv.mp4`, and `KEY/ID.delivery.mp4` with a delivery); None
    writes them to a temporary folder only to verify. `attack_misclassified`: also attack videos the
    model already gets wrong (off: they count as not robust without spending an attack on them).
    `threads`: torch CPU threads in a worker (0 leaves torch's setting). `info`: entries of the
    attack's `result.info` to copy into each record's `info` field, as JSON (those the attack
    reports; none for a video not attacked); empty, records have no `info` field.
    """

    device: str = "cpu"
    verify: bool = True
    outputs: str | None = None
    attack_misclassified: bool = False
    threads: int = 0
    info: tuple[str, ...] = ()


def video_seed(seed: int, video_id: str) -> int:
    """The seed of one video under a configuration seed: stable across processes and machines."""
    digest = hashlib.sha256(f"{seed}\0{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**31)


def _pair(cfg: Config, item: Item) -> dict[str, Any]:
    # what every record of a (configuration, video) pair starts with, failed or not
    return {
        "key": cfg.key,
        "video": item.id,
        "attack": cfg.attack,
        "budget": cfg.budget,
        "target_mode": cfg.target,
        "label": item.label,
    }


def _failed(cfg: Config, item: Item, error: str) -> dict[str, Any]:
    return {**_pair(cfg, item), "status": "error", "error": error}


def evaluate_item(
    view: ModelView, item: Item, configs: Sequence[Config], options: WorkOptions
) -> list[dict[str, Any]]:
    """One record per configuration for `item`. Never raises for a bad video or a failing attack:
    that item's records say `status: error` (a batch goes on; a resume retries them)."""
    from vidattack.pipeline.stages import sample

    dev = torch.device(options.device)
    try:
        video = _decode(item, view)
        clean = sample(video, view, None, dev)
        with torch.no_grad():
            clean_lp = clean.model(clean.x)[0]
    except Exception as e:  # one bad video or attack never stops the batch
        log.warning("%s: %s", item.id, e)
        return [_failed(cfg, item, f"{type(e).__name__}: {e}") for cfg in configs]
    records = []
    for cfg in configs:
        try:
            records.append(_attack_one(view, video, clean_lp, item, cfg, options))
        except Exception as e:  # one bad video or attack never stops the batch
            log.warning("%s under %s: %s", item.id, cfg.label, e)
            records.append(_failed(cfg, item, f"{type(e).__name__}: {e}"))
    return records


def _decode(item: Item, view: ModelView) -> SampledFrames:
    # a file goes through the decode stage (memory checked before decoding, only the sample kept); a
    # generated clip is already in memory
    from vidattack.pipeline.stages import decode
    from vidattack.video import SampledFrames

    if item.path is not None:
        return decode(item.path, view)
    whole = item.load_video()
    return SampledFrames.of_video(whole, view.plan(whole.num_frames).frame_ids)


def evaluate_chunk(
    view: ModelView, items: Sequence[Item], configs: Sequence[Config], options: WorkOptions
) -> list[dict[str, Any]]:
    """`evaluate_item` over several videos (the unit of work an executor ships)."""
    if options.threads:
        torch.set_num_threads(options.threads)
    return [rec for item in items for rec in evaluate_item(view, item, configs, options)]


def _attack_one(
    view: ModelView,
    video: SampledFrames,
    clean_lp: torch.Tensor,
    item: Item,
    cfg: Config,
    options: WorkOptions,
) -> dict[str, Any]:
    """The record of `cfg` on `item`: the job run by the pipeline's runner (`run_job`), its report
    turned into a record; a video the model already gets wrong is not attacked (unless
    `attack_misclassified`) and keeps its clean numbers."""
    start = time.perf_counter()
    clean = int(clean_lp.argmax())
    if not (clean == item.label or options.attack_misclassified):
        unchanged = unchanged_stats(video, video.frames)
        return _record(cfg, item, view, None, clean=clean, stats=unchanged, start=start, options=options)
    from vidattack.pipeline.run import Known, Skipped, run_job

    spec = replace(cfg.spec, device=options.device, verify=options.verify)
    name = kept_name(item.id)  # distinct for distinct ids (sub/a b.mp4, sub/a_b.mp4)
    with tempfile.TemporaryDirectory(prefix=tempdirs.prefix("eval")) as tmp:
        folder = Path(options.outputs) / cfg.key if options.outputs is not None else Path(tmp)
        known = Known(video, item.id, item.label, clean_lp, video_seed(cfg.seed, item.id))
        report = run_job(spec, item.path, view, Outputs.for_stem(folder, name), known=known)
    if isinstance(report, Skipped):  # never: an eval's jobs do not resume through reports
        raise RuntimeError(f"{item.id}: an eval job was skipped")
    stats = report.perturbation
    return _record(cfg, item, view, report, clean=clean, stats=stats, start=start, options=options)


def _record(
    cfg: Config,
    item: Item,
    view: ModelView,
    report: Report | None,
    *,
    clean: int,
    stats: dict[str, Any],
    start: float,
    options: WorkOptions,
) -> dict[str, Any]:
    """A report as an eval record (None: the video was not attacked). Success is judged against the
    video's true label (`judge`), the robust-accuracy reading of "fooled"."""
    from vidattack.pipeline.spec import judge

    target = None if report is None or report.target is None else report.target.index

    def judged(index: int | None) -> bool | None:
        return None if index is None else judge(index, item.label, target)

    if report is None:  # what a video nobody attacked keeps
        adversarial, reencoded = clean, clean if options.verify else None
    else:
        adversarial = report.adversarial.index
        reencoded = None if report.reencoded is None else report.reencoded.index
    part = None if report is None else report.delivery
    delivered = None if part is None else part.prediction.index
    info = {} if report is None else report.attack.info
    robust = None if report is None else report.attack.robust_to
    record: dict[str, Any] = {
        **_pair(cfg, item),
        "label_name": view.label_of(item.label),
        "target": target,
        "clean": clean,
        "adversarial": adversarial,
        "reencoded": reencoded,
        "attacked": report is not None,
        "success": judged(adversarial),
        "success_after_encode": judged(reencoded),
        # judged on the delivery copy of the written file, decoded again (`Config.delivery`, or the
        # check encode of `Config.robust_to` alone, as perturb makes it)
        "delivered": delivered,
        "success_after_delivery": judged(delivered),
        "delivery_bytes": None if part is None else part.file.size_bytes,
        # in /255 units, on the decoded file when verified; ratio_max: the largest max(x'/x, x/x'),
        # null when unbounded (a black pixel changed), as in reports
        "linf": stats["linf"] * 255.0,
        "l2": stats["l2"] * 255.0,
        "map": stats["map"] * 255.0,
        "ratio_max": stats["ratio_max"],
        "frames_perturbed": stats["frames_perturbed"],
        "queries": 0 if report is None else int(report.queries),
        "encodes": None if robust is None else int(robust["encodes"]),
        "stopped_at": _stopped_at(info),
        "attack_seconds": 0.0 if report is None else float(report.timing.attack),
        "seconds": time.perf_counter() - start,
        "status": "ok",
    }
    if options.info:
        record["info"] = {k: jsonable(info[k]) for k in options.info if k in info}
    return record


def _stopped_at(info: dict[str, Any]) -> int | None:
    # the step an early-stopping attack stopped after (None: it ran them all); one entry per video
    stopped = info.get("stopped_at")
    return stopped[0] if isinstance(stopped, list) else stopped
