"""One video file in, adversarial video, heatmaps, plots and report out: `perturb_file`, the library
function behind `vidattack perturb` for one input, and `predict_file`, behind `vidattack predict`.

`perturb_file` builds one `JobSpec` from its keywords and runs it with `vidattack.pipeline.run`: decode
with PyAV only the frames the model sees (memory checked against a budget from the container's header
first), run the attack on them at native resolution, re-encode the whole video losslessly with the
adversarial frames in place (streamed), decode the written file once beside the source to classify it
(does the attack survive the file?) and measure the perturbation, draw heatmaps and plots, and write
the typed `Report` last.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack.pipeline.outputs import Outputs
from vidattack.runtime import resolve_device

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.models.view import ModelView
    from vidattack.pipeline.progress import ProgressFn
    from vidattack.pipeline.spec import JobSpec


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
    from vidattack.pipeline.stages import decode, predict_frames

    dev = resolve_device(device)
    view = load_view(model, dev)
    video = decode(path, view)
    return {"input": str(path), **predict_frames(view, video, dev, top_k).to_dict()}


def perturb_file(
    path: str | Path,
    attack: Attack | str = "pgd-linf",
    *,
    model: ModelView | str | None = None,
    spec: JobSpec | None = None,
    out_dir: str | Path = "vidattack-out",
    stem: str | None = None,
    outputs: Outputs | None = None,
    progress: ProgressFn | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Attack one video file and write `S.adv.mp4`, `S.heatmap.mp4`, `S.heatmap.png`, `S.frames.png`,
    `S.curve.png` (when the attack has a history), `S.delivery.mp4` (with `delivery`) and
    `S.report.json` (last) into `out_dir`; return the report as a dict.

    The job is `spec` (a `vidattack.pipeline.spec.JobSpec`) or, without one, `attack` (an instance or
    a registered name) with `options`, the spec's fields as keywords (`make_spec`): `target` (a label
    or class index), `seed`, `stop_when_fooled`, `delivery`, `robust_to` (parsed `DeliverySpec`s),
    `device`, `max_memory`, `overwrite`, `resume`, `heatmaps=False`, `pictures` (render roles).
    S is `stem` (default: the input's name without its last suffix, `clip.2020.mp4` -> `clip.2020`);
    `outputs` (an `Outputs`) names the files and chooses the kinds instead (`out_dir` and `stem` are
    then ignored). While the job runs it holds the set's lock: another process writing the same set
    fails with `OutputLockedError`. If the job fails or is interrupted, the files it wrote are removed
    again. With `resume`, a set whose report was written by the same job (`JobSpec.key`, the model,
    the input's bytes: the report's `job`) is not attacked again: its report is returned with
    `skipped` true. Raises `VidattackError` subclasses for bad input; never modifies the input file.
    Many files at once, overlapped and batched: `vidattack.pipeline.engine.perturb_many`.
    """
    from dataclasses import replace

    from vidattack.pipeline.run import Runner, Skipped
    from vidattack.pipeline.spec import make_spec

    path = Path(path)
    device = resolve_device(spec.device if spec is not None else options.pop("device", "auto"))
    view = load_view(model, device)
    if spec is None:
        spec = make_spec(attack, view, **options)
    elif options:
        raise TypeError(f"expected a spec or its fields as keywords, got both ({', '.join(options)})")
    runner = Runner.start(replace(spec, device=str(device)), view, progress)
    if outputs is None:
        outputs = Outputs.for_stem(Path(out_dir), stem or path.stem or "video")
    done = runner.run(path, outputs)
    if isinstance(done, Skipped):
        return {**done.report, "skipped": True}
    return done.to_dict()
