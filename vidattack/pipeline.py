"""One video file in, adversarial video, heatmaps, plots and report out.

This is the library function behind `vidattack perturb`: decode with PyAV, sample the frames the model
sees, run the attack on them at native resolution, put the adversarial frames back into the full
video, encode losslessly, decode the written file again and classify it (does the attack survive the
file?), measure the perturbation on the written file, draw heatmaps and write the report last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack.errors import BadParameterError, OutputExistsError, VidattackError

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.models.view import ModelView

log = logging.getLogger("vidattack")

ProgressFn = Callable[[int, int], None]


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


def set_cpu_threads(threads: int) -> None:
    """Use `threads` CPU threads for torch (0 keeps torch's default, one per core).

    On a machine shared with other jobs, fewer threads than cores can be many times faster: torch's
    OpenMP workers spin while they wait for each other, and a descheduled one stalls the rest (a sparse
    attack took 190 s with 2 threads beside two busy processes on 2 cores, 12 s with 1).
    """
    if threads < 0:
        raise BadParameterError(f"expected --threads >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Outputs:
    """The files one job writes, named from the input's stem S."""

    adversarial: Path
    heatmap_video: Path
    heatmap_png: Path
    frames_plot: Path
    curve_plot: Path
    report: Path

    @classmethod
    def for_stem(cls, out_dir: Path, stem: str) -> Outputs:
        return cls(
            adversarial=out_dir / f"{stem}.adv.mp4",
            heatmap_video=out_dir / f"{stem}.heatmap.mp4",
            heatmap_png=out_dir / f"{stem}.heatmap.png",
            frames_plot=out_dir / f"{stem}.frames.png",
            curve_plot=out_dir / f"{stem}.curve.png",
            report=out_dir / f"{stem}.report.json",
        )

    def check_free(self, overwrite: bool) -> None:
        if overwrite:
            return
        for p in (self.adversarial, self.heatmap_video, self.heatmap_png, self.report):
            if p.exists():
                raise OutputExistsError(f"{p} exists (use --overwrite to replace it)")


def _load_view(model: ModelView | str | None, device: torch.device) -> ModelView:
    from vidattack.models import load_model
    from vidattack.models.view import ModelView

    if isinstance(model, ModelView):
        return model.to(device)
    return load_model(model, device=device)


def _sampled_to_uint8(x: torch.Tensor) -> torch.Tensor:
    # (1, T', C, H, W) float on the 1/255 grid -> (T', H, W, C) uint8
    return (x[0] * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()


def predict_frames(
    view: ModelView, frames: torch.Tensor, device: torch.device, top_k: int = 5
) -> dict[str, Any]:
    """The model's video-level prediction for decoded frames `(T, H, W, 3)` uint8."""
    from vidattack.models.view import predict_video
    from vidattack.report import prediction

    return prediction(predict_video(view, frames, device), view.labels, top_k=top_k, is_log=False)


def predict_file(
    path: str | Path,
    *,
    model: ModelView | str | None = None,
    device: str | torch.device = "auto",
    top_k: int = 5,
) -> dict[str, Any]:
    """Decode a video file and return the model's prediction (`index`, `label`, `confidence`, `top`)."""
    from vidattack.video import load_video

    dev = resolve_device(device)
    view = _load_view(model, dev)
    video = load_video(path)
    return {"input": str(path), **predict_frames(view, video.frames, dev, top_k)}


def _frame_predictions(
    view: ModelView, clean: torch.Tensor, adv: torch.Tensor, plan: Any
) -> dict[str, Any] | None:
    bound = view.bind(plan)
    if not bound.has_frame_predictions:
        return None
    with torch.no_grad():
        c = bound.frame_log_probs(clean).argmax(-1)[0].tolist()
        a = bound.frame_log_probs(adv).argmax(-1)[0].tolist()
    flipped = [f for f, ci, ai in zip(plan.frame_ids, c, a, strict=True) if ci != ai]
    return {
        "frames": list(plan.frame_ids),
        "clean": [view.label_of(i) for i in c],
        "adversarial": [view.label_of(i) for i in a],
        "flipped": flipped,
    }


def perturb_file(
    path: str | Path,
    attack: Attack | str = "pgd-linf",
    *,
    model: ModelView | str | None = None,
    out_dir: str | Path = "vidattack-out",
    target: str | int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    device: str | torch.device = "auto",
    progress: ProgressFn | None = None,
    stem: str | None = None,
    heatmaps: bool = True,
    universal: str | Path | None = None,
) -> dict[str, Any]:
    """Attack one video file and write `S.adv.mp4`, `S.heatmap.mp4`, `S.heatmap.png`, `S.frames.png`,
    `S.curve.png` (when the attack has a history) and `S.report.json` (last) into `out_dir`.

    `universal` applies a saved universal perturbation instead of running `attack`. Returns the report.
    Raises `VidattackError` subclasses for bad input; never modifies the input file.
    """
    from vidattack.attacks import get_attack
    from vidattack.models.view import sampled_frames
    from vidattack.video import load_video, save_video

    t_start = time.perf_counter()
    path = Path(path)
    dev = resolve_device(device)
    view = _load_view(model, dev)
    atk = get_attack(attack) if isinstance(attack, str) else attack
    out = Path(out_dir)
    outputs = Outputs.for_stem(out, stem or path.name.split(".")[0] or path.stem)
    outputs.check_free(overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VidattackError(f"cannot create the output folder {out}: {e.strerror}") from None
    target_index = None
    if target is not None:
        try:
            target_index = view.index_of(target)
        except ValueError as e:
            raise BadParameterError(str(e)) from None

    t0 = time.perf_counter()
    video = load_video(path)
    t_decode = time.perf_counter() - t0
    plan = view.plan(video.num_frames)
    bound = view.bind(plan)
    x = sampled_frames(video.frames, plan, dev)

    t0 = time.perf_counter()
    if universal is None:
        from vidattack.starting_points import starting_points

        result = atk(
            bound,
            x,
            target=target_index,
            seed=seed,
            progress=progress,
            frame_ids=plan.frame_ids,
            num_frames=video.num_frames,
            starting_points=starting_points(atk, plan, x),
        )
        adv_sampled = _sampled_to_uint8(result.adversarial)
        attack_report: dict[str, Any] = {
            "name": atk.name,
            "params": result.params,
            "threat": result.threat,
            "paper": atk.paper,
            "info": result.info,
            "white_box": atk.white_box,
        }
        queries, history = result.queries, result.history
        adv_x = result.adversarial
        clean_lp, adv_lp = result.clean_log_probs[0], result.adversarial_log_probs[0]
    else:
        from vidattack.universal import UniversalPerturbation

        pert = UniversalPerturbation.load(universal)
        full_adv = pert.apply(video.frames)
        adv_sampled = full_adv.index_select(0, torch.tensor(plan.frame_ids))
        adv_x = sampled_frames(full_adv, plan, dev)
        attack_report = {
            "name": "universal",
            "params": {"perturbation": str(universal)},
            "info": pert.describe(),
        }
        queries, history = 0, []
        with torch.no_grad():
            clean_lp, adv_lp = bound(x)[0], bound(adv_x)[0]
    t_attack = time.perf_counter() - t0

    adv_frames = video.frames.clone()
    adv_frames[list(plan.frame_ids)] = adv_sampled
    t0 = time.perf_counter()
    save_video(video.with_frames(adv_frames), outputs.adversarial, overwrite=overwrite)
    t_encode = time.perf_counter() - t0
    del adv_frames

    # Judge everything on the file as written: decode it again like any user of it would.
    t0 = time.perf_counter()
    written = load_video(outputs.adversarial)
    if written.frames.shape != video.frames.shape:
        raise VidattackError(
            f"the written video decodes to {tuple(written.frames.shape)}, expected {tuple(video.frames.shape)}"
        )
    from vidattack.report import perturbation_stats, prediction, versions, write_report

    clean_pred = prediction(clean_lp, view.labels)
    adv_pred = prediction(adv_lp, view.labels)
    reenc_pred = predict_frames(view, written.frames, dev)

    def judged(index: int) -> bool:
        return index == target_index if target_index is not None else index != clean_pred["index"]

    stats = perturbation_stats(video.frames, written.frames)
    frame_preds = _frame_predictions(view, x, sampled_frames(written.frames, plan, dev), plan)
    t_verify = time.perf_counter() - t0

    t0 = time.perf_counter()
    written_paths: dict[str, str] = {"adversarial": str(outputs.adversarial)}
    if heatmaps:
        from vidattack.heatmap import contact_sheet, heatmap_frames_, key_frames, magnitude_scale
        from vidattack.plots import history_chart, per_frame_chart

        scale = magnitude_scale(video.frames, written.frames)
        title = f"{path.name}: {clean_pred['label']} -> {reenc_pred['label']} ({atk.name if universal is None else 'universal'})"
        contact_sheet(
            outputs.heatmap_png,
            video.frames,
            written.frames,
            key_frames(stats["per_frame_map"]),
            scale,
            title,
        )
        per_frame_chart(
            outputs.frames_plot, stats["per_frame_map"], frame_predictions=frame_preds, title=title
        )
        written_paths.update(heatmap_png=str(outputs.heatmap_png), frames_plot=str(outputs.frames_plot))
        if history_chart(outputs.curve_plot, history, title=title):
            written_paths["curve_plot"] = str(outputs.curve_plot)
        heat = heatmap_frames_(video.frames, written.frames, scale)  # reuses the decoded buffer
        save_video(
            video.with_frames(heat),
            outputs.heatmap_video,
            overwrite=overwrite,
            codec="delivery",
            copy_audio=False,
        )
        written_paths["heatmap_video"] = str(outputs.heatmap_video)
        stats["heatmap_scale"] = scale / 255.0
    t_heatmap = time.perf_counter() - t0
    written_paths["report"] = str(outputs.report)

    report: dict[str, Any] = {
        "input": str(path),
        "status": "ok",
        "attack": attack_report,
        "model": {
            "name": view.name,
            "sha256": view.sha256,
            "source": view.source,
            "preprocess": view.preprocess.to_dict(),
            "frames_sampled": list(plan.frame_ids),
            "notes": view.notes,
        },
        "target": None
        if target_index is None
        else {"index": target_index, "label": view.label_of(target_index)},
        "clean": clean_pred,
        "adversarial": adv_pred,
        "reencoded": reenc_pred,
        "success": judged(adv_pred["index"]),
        "success_after_encode": judged(reenc_pred["index"]),
        "perturbation": stats,
        "frame_predictions": frame_preds,
        "queries": queries,
        "history": history,
        "video": {
            "frames": video.num_frames,
            "width": video.width,
            "height": video.height,
            "fps": video.fps,
            "time_base": str(video.time_base),
            "rotation": video.rotation,
            "codec": video.source_codec,
            "pix_fmt": video.source_pix_fmt,
            "audio": video.has_audio,
            "notes": video.notes,
        },
        "outputs": written_paths,
        "timing": {
            "decode": t_decode,
            "attack": t_attack,
            "encode": t_encode,
            "verify": t_verify,
            "heatmaps": t_heatmap,
            "total": time.perf_counter() - t_start,
        },
        "seed": seed,
        "device": str(dev),
        "versions": versions(),
    }
    write_report(outputs.report, report)
    return report
