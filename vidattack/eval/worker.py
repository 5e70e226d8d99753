"""The work of one video under every configuration: what a local loop or a Ray task runs.

Per video: decode (or render), sample the model's frames, classify once; then per configuration:
resolve the target, attack, put the adversarial frames back into the full video, and (with `verify`)
write the lossless file, decode it and classify it again, measuring the perturbation on the decoded
frames. The result is a list of plain-dict records, so any executor can ship them back to the driver,
which alone writes `results.jsonl`.

INTEGRATION (#10): when the pipeline's stages land, `_attack_one` becomes
`sample -> attack -> write -> verify` calls of `vidattack.pipeline.stages`; the record fields stay.
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

from vidattack.errors import VidattackError
from vidattack.eval.grid import UNTARGETED, Config

if TYPE_CHECKING:
    from vidattack.data.datasets import Item
    from vidattack.models.view import BoundModel, FramePlan, ModelView
    from vidattack.video import Video

log = logging.getLogger("vidattack")


@dataclass(frozen=True)
class WorkOptions:
    """How each video is processed (the same in every executor, so records agree).

    `device`: where the model and attack run. `verify`: write the adversarial video losslessly,
    decode it and classify it again ("success after encode"); off, the perturbation is measured on the
    frames in memory. `outputs`: a folder that keeps the adversarial videos (`KEY/ID.adv.mp4`); None
    writes them to a temporary folder only to verify. `attack_misclassified`: also attack videos the
    model already gets wrong (off: they count as not robust without spending an attack on them).
    `threads`: torch CPU threads in a worker (0 leaves torch's setting).
    """

    device: str = "cpu"
    verify: bool = True
    outputs: str | None = None
    attack_misclassified: bool = False
    threads: int = 0


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
    return view.index_of(mode)


def safe_name(video_id: str) -> str:
    """A file name for a video id (ids are relative paths and may hold anything)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id.replace("/", "__")).strip("._")
    return name[:150] or "video"


def _sampled_to_uint8(x: torch.Tensor) -> torch.Tensor:
    # (1, T', C, H, W) float on the 1/255 grid -> (T', H, W, C) uint8
    return (x[0] * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()


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
    from vidattack.models.view import sampled_frames

    dev = torch.device(options.device)
    try:
        video = item.load_video()
        plan = view.plan(video.num_frames)
        bound = view.bind(plan)
        x = sampled_frames(video.frames, plan, dev)  # (1, T', C, H, W)
        with torch.no_grad():
            clean_lp = bound(x)[0]
    except Exception as e:  # one bad video or attack never stops the batch
        log.warning("%s: %s", item.id, e)
        return [_failed(cfg, item, f"{type(e).__name__}: {e}") for cfg in configs]
    records = []
    for cfg in configs:
        try:
            records.append(_attack_one(view, bound, plan, video, x, clean_lp, item, cfg, options))
        except Exception as e:  # one bad video or attack never stops the batch
            log.warning("%s under %s: %s", item.id, cfg.label, e)
            records.append(_failed(cfg, item, f"{type(e).__name__}: {e}"))
    return records


def evaluate_chunk(
    view: ModelView, items: Sequence[Item], configs: Sequence[Config], options: WorkOptions
) -> list[dict[str, Any]]:
    """`evaluate_item` over several videos (the unit of work an executor ships)."""
    if options.threads:
        torch.set_num_threads(options.threads)
    return [rec for item in items for rec in evaluate_item(view, item, configs, options)]


def _predict(view: ModelView, frames: torch.Tensor, dev: torch.device) -> int:
    from vidattack.models.view import predict_video

    return int(predict_video(view, frames, dev).argmax())


def _attack_one(
    view: ModelView,
    bound: BoundModel,
    plan: FramePlan,
    video: Video,
    x: torch.Tensor,
    clean_lp: torch.Tensor,
    item: Item,
    cfg: Config,
    options: WorkOptions,
) -> dict[str, Any]:
    from vidattack.pipeline.report import perturbation_stats

    dev = x.device
    start = time.perf_counter()
    seed = video_seed(cfg.seed, item.id)
    target = resolve_target(cfg.target, view, item.label, clean_lp, seed)
    clean = int(clean_lp.argmax())
    attacked = clean == item.label or options.attack_misclassified
    queries = 0
    attack_seconds = 0.0
    if attacked:
        attack = cfg.make_attack()
        result = attack(
            bound,
            x,
            target=target,
            labels=torch.tensor([item.label], device=dev),
            seed=seed,
        )
        adversarial = int(result.adversarial_labels[0])
        queries = int(result.queries)
        attack_seconds = float(result.seconds)
        adv_frames = video.frames.clone()
        adv_frames[list(plan.frame_ids)] = _sampled_to_uint8(result.adversarial)
    else:
        adversarial = clean
        adv_frames = video.frames

    reencoded: int | None = None
    judged_frames = adv_frames
    if options.verify and attacked:
        judged_frames, reencoded = _write_and_reclassify(view, video, adv_frames, item, cfg, options, dev)
    elif options.verify:
        reencoded = clean  # nothing was changed, so nothing can change in the file
    stats = perturbation_stats(video.frames, judged_frames)

    def judge(index: int | None) -> bool | None:
        if index is None:
            return None
        return index == target if target is not None else index != item.label

    return {
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
        "reencoded": reencoded,
        "attacked": attacked,
        "success": judge(adversarial),
        "success_after_encode": judge(reencoded),
        # in /255 units, on the decoded file when verified
        "linf": stats["linf"] * 255.0,
        "l2": stats["l2"] * 255.0,
        "map": stats["map"] * 255.0,
        "frames_perturbed": stats["frames_perturbed"],
        "queries": queries,
        "attack_seconds": attack_seconds,
        "seconds": time.perf_counter() - start,
        "status": "ok",
    }


def _write_and_reclassify(
    view: ModelView,
    video: Video,
    adv_frames: torch.Tensor,
    item: Item,
    cfg: Config,
    options: WorkOptions,
    dev: torch.device,
) -> tuple[torch.Tensor, int]:
    from vidattack.video import load_video, save_video

    suffix = item.path.suffix if item.path is not None and item.path.suffix else ".mp4"
    name = f"{safe_name(item.id)}.adv{suffix}"
    if options.outputs is not None:
        path = Path(options.outputs) / cfg.key / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save_video(video.with_frames(adv_frames), path, overwrite=True, copy_audio=False)
        written = load_video(path).frames
    else:
        with tempfile.TemporaryDirectory(prefix="vidattack-eval-") as tmp:
            path = Path(tmp) / name
            save_video(video.with_frames(adv_frames), path, overwrite=True, copy_audio=False)
            written = load_video(path).frames
    if written.shape != video.frames.shape:
        raise VidattackError(
            f"the written video decodes to {tuple(written.shape)}, expected {tuple(video.frames.shape)}"
        )
    return written, _predict(view, written, dev)
