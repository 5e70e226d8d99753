"""The work of one video under every configuration: what a local loop or a Ray task runs.

Per video: decode (or render) it and classify the clip the model samples, once; then per
configuration, through the pipeline's stages (`vidattack.pipeline.stages`, the code `vidattack
perturb` runs): `sample` the model's frames for the attack, `run_attack`, and with `verify` `write`
the lossless file and `verify` it (decode it, classify it again, measure the perturbation on the
decoded frames). A configuration with a `delivery` then encodes the written lossless file with it
beside it (`ID.delivery.mp4` / `.webm`, `vidattack.pipeline.delivery.deliver`), decodes and classifies
that copy as `verify_delivery` does (`predict_delivered`), and records `delivered` (the class index),
`success_after_delivery` and `delivery_bytes` (all None for a video not attacked or a configuration
without a delivery). A configuration with a `robust_to` gives the attack the model seen through that
delivery encode (`robust_model`, as `perturb --robust-to` does) and still judges its output on the
lossless tensors (`unwrap_robust`), never on one EOT draw of the encode; its records count the real
encodes the attack made (`encodes`, None for a video not attacked or a configuration without one).
The result is a list of plain-dict records, so any executor can ship them back to the driver, which
alone writes `results.jsonl`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack.eval.grid import UNTARGETED, Config, _jsonable
from vidattack.precision import attack_precision

if TYPE_CHECKING:
    from vidattack.data.datasets import Item
    from vidattack.models.view import ModelView
    from vidattack.pipeline.stages import AttackOutcome, Sampled
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
    `threads`: torch CPU threads in a worker (0 leaves torch's setting). `precision`: the attacks'
    `vidattack.precision` (`auto|fp32|bf16|fp16`; clean and robust accuracy are judged in fp32). `info`: entries of the
    attack's `result.info` to copy into each record's `info` field, as JSON (those the attack
    reports; none for a video not attacked); empty, records have no `info` field.
    """

    device: str = "cpu"
    verify: bool = True
    outputs: str | None = None
    attack_misclassified: bool = False
    threads: int = 0
    info: tuple[str, ...] = ()
    precision: str = "fp32"


def video_seed(seed: int, video_id: str) -> int:
    """The seed of one video under a configuration seed: stable across processes and machines."""
    digest = hashlib.sha256(f"{seed}\0{video_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**31)


def resolve_target(mode: str, view: ModelView, label: int, clean_lp: torch.Tensor, seed: int) -> int | None:
    """The target class of one video: None (untargeted), a random class other than the true label
    (seeded per video), the clean prediction's least likely class, or a fixed label."""
    if mode == UNTARGETED:
        return None
    k = view.num_classes
    if mode == "random":
        g = torch.Generator().manual_seed(seed)
        choice = int(torch.randint(0, k - 1, (), generator=g))
        return choice if choice < label else choice + 1  # uniform over the classes except `label`
    if mode == "least-likely":
        return int(clean_lp.argmin())
    from vidattack.criteria import resolve_target as label_index

    return label_index(view, mode)


def safe_name(video_id: str) -> str:
    """A file name for a video id (ids are relative paths and may hold anything)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id.replace("/", "__")).strip("._")
    return name[:150] or "video"


def _failed(cfg: Config, item: Item, error: str) -> dict[str, Any]:
    return {
        "key": cfg.key,
        "video": item.id,
        "attack": cfg.attack,
        "budget": cfg.budget,
        "target_mode": cfg.target,
        "label": item.label,
        "status": "error",
        "error": error,
    }


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
            records.append(_attack_one(view, video, clean_lp, item, cfg, options, dev))
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
    with attack_precision(options.precision):
        return [rec for item in items for rec in evaluate_item(view, item, configs, options)]


def _attack_one(
    view: ModelView,
    video: SampledFrames,
    clean_lp: torch.Tensor,
    item: Item,
    cfg: Config,
    options: WorkOptions,
    dev: torch.device,
) -> dict[str, Any]:
    from vidattack.pipeline.stages import run_attack, sample

    start = time.perf_counter()
    seed = video_seed(cfg.seed, item.id)
    target = resolve_target(cfg.target, view, item.label, clean_lp, seed)
    clean = int(clean_lp.argmax())
    attacked = clean == item.label or options.attack_misclassified
    adversarial = reencoded = clean  # what a video nobody attacked keeps
    delivered: Delivered | None = None  # none for a video not attacked or no delivery
    queries, attack_seconds = 0, 0.0
    encodes = None  # real delivery encodes of a --robust-to attack
    stopped_at = None  # the step an early-stopping attack stopped after (None: it ran them all)
    stats = unchanged_stats(video, video.frames)
    info: dict[str, Any] = {}
    if attacked:
        # Untargeted, the attack pushes away from the clean prediction: the label of every video it
        # attacks unless `attack_misclassified`.
        attack = cfg.make_attack()
        if cfg.delivery is not None and item.path is not None:
            # the delivery encode decodes the written file whole: refuse one too large before the
            # attack is spent on it, as `perturb --delivery` does (the file has the input's size)
            from vidattack.pipeline.delivery import check_deliverable

            check_deliverable(item.path, None, overwrite=True)
        sampled = sample(video, view, attack, dev)
        if cfg.robust_to is not None:
            from vidattack.pipeline.delivery import through_delivery

            sampled = through_delivery(sampled, cfg.robust_to, fps=video.fps, seed=seed)
        outcome = run_attack(sampled, attack, target=target, seed=seed, stop_when_fooled=cfg.stop_when_fooled)
        outcome, encodes = judged_lossless(sampled, outcome)
        stopped = outcome.result.info.get("stopped_at")  # one entry per video of the call
        stopped_at = stopped[0] if isinstance(stopped, list) else stopped
        adversarial = int(outcome.result.adversarial_labels[0])
        queries = int(outcome.result.queries)
        attack_seconds = float(outcome.result.seconds)
        info = {k: _jsonable(outcome.result.info[k]) for k in options.info if k in outcome.result.info}
        if options.verify:
            stats, reencoded, delivered = _write_and_verify(
                view, video, sampled, outcome, target, item, cfg, options
            )
        else:  # measured as `stages.verify` would on the written file, without one
            stats = unchanged_stats(video, outcome.frames)

    def judge(index: int | None) -> bool | None:
        if index is None:
            return None
        return index == target if target is not None else index != item.label

    after_encode = reencoded if options.verify else None
    record: dict[str, Any] = {
        "key": cfg.key,
        "video": item.id,
        "attack": cfg.attack,
        "budget": cfg.budget,
        "target_mode": cfg.target,
        "label": item.label,
        "label_name": view.label_of(item.label),
        "target": target,
        "clean": clean,
        "adversarial": adversarial,
        "reencoded": after_encode,
        "attacked": attacked,
        "success": judge(adversarial),
        "success_after_encode": judge(after_encode),
        # judged on the delivery copy of the written file, decoded again (`Config.delivery`)
        "delivered": delivered.index if delivered is not None else None,
        "success_after_delivery": judge(delivered.index if delivered is not None else None),
        "delivery_bytes": delivered.size_bytes if delivered is not None else None,
        # in /255 units, on the decoded file when verified; ratio_max: the largest max(x'/x, x/x'),
        # null when unbounded (a black pixel changed), as in reports
        "linf": stats["linf"] * 255.0,
        "l2": stats["l2"] * 255.0,
        "map": stats["map"] * 255.0,
        "ratio_max": stats["ratio_max"],
        "frames_perturbed": stats["frames_perturbed"],
        "queries": queries,
        "encodes": encodes,
        "stopped_at": stopped_at,
        "attack_seconds": attack_seconds,
        "seconds": time.perf_counter() - start,
        "status": "ok",
    }
    if options.info:
        record["info"] = info
    return record


def judged_lossless(sampled: Sampled, outcome: AttackOutcome) -> tuple[AttackOutcome, int | None]:
    """The outcome with its predictions those of the bound model on the lossless tensors (a
    `--robust-to` attack judged them on its last EOT draw), and the number of real encodes the
    attack made through the delivery encode (None when it saw the model itself)."""
    from vidattack.pipeline.delivery import unwrap_robust

    unwrapped, robust = unwrap_robust(sampled, outcome)
    return unwrapped, None if robust is None else int(robust["encodes"])


@dataclass(frozen=True)
class Delivered:
    """The delivery copy of one written file: the class the model gives it, and its size."""

    index: int
    size_bytes: int


def _write_and_verify(
    view: ModelView,
    video: SampledFrames,
    sampled: Sampled,
    outcome: AttackOutcome,
    target: int | None,
    item: Item,
    cfg: Config,
    options: WorkOptions,
) -> tuple[dict[str, Any], int, Delivered | None]:
    """The `write` and `verify` stages: the perturbation measured on the written file and its
    prediction; with `cfg.delivery`, the delivery copy of the written file and its prediction (None
    without). The files go to `options.outputs/KEY/` when kept, else to a temporary folder."""
    from vidattack.pipeline.delivery import deliver, predict_delivered
    from vidattack.pipeline.stages import verify, write

    suffix = item.path.suffix if item.path is not None and item.path.suffix else ".mp4"
    name = f"{safe_name(item.id)}.adv{suffix}"
    clean = int(outcome.result.clean_labels[0])
    with tempfile.TemporaryDirectory(prefix="vidattack-eval-") as tmp:
        folder = Path(options.outputs) / cfg.key if options.outputs is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        # overwrite: a rerun redoes only pairs without a record, whose file is a leftover
        written = write(video, sampled, outcome, folder / name, overwrite=True)
        checked = verify(video, written, sampled, view, sampled.x.device, clean_index=clean, target=target)
        delivered = None
        if cfg.delivery is not None:
            # from the written lossless file, as `perturb --delivery` does: what the attack produced
            path = folder / f"{safe_name(item.id)}.delivery{cfg.delivery.extension}"
            file = deliver(written, cfg.delivery, path, overwrite=True)
            pred, _ = predict_delivered(file.path, view, sampled.x.device)
            delivered = Delivered(index=pred.index, size_bytes=file.size_bytes)
    return checked.stats, checked.reencoded.index, delivered


def unchanged_stats(video: SampledFrames, adversarial: torch.Tensor) -> dict[str, Any]:
    """The perturbation of a video whose sampled frames became `adversarial` `(T', H, W, 3)` uint8 and
    whose other frames are unchanged, as the report measures it over the whole video."""
    from vidattack.pipeline.report import reportable
    from vidattack.video.compare import FrameDiff, frame_diff, summarize

    changed = {
        i: frame_diff(c, a) for i, c, a in zip(video.frame_ids, video.frames, adversarial, strict=True)
    }
    same = FrameDiff(0, 0, 0, 1.0, video.height * video.width * 3)
    return reportable(summarize([changed.get(i, same) for i in range(video.num_frames)]))
