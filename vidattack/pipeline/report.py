"""The typed report of one job, the numbers it holds, and atomic JSON writing.

`Report` is what `perturb_file` returns (as `to_dict()`) and writes last as `S.report.json`: its
presence means the job finished. The measurements compare 8-bit frames `(T, H, W, 3)` as decoded from
files, so the numbers describe what a viewer (or a model) actually gets, not an attack's float tensor.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from vidattack.files import write_atomic

if TYPE_CHECKING:
    from vidattack.delivery import DeliveryFile
    from vidattack.video import SampledFrames, Video


#: The version of the report's layout, `schema_version` in every report. Published as the JSON Schema
#: `vidattack/schema/report.schema.json`; a minor bump adds keys, a major one changes or removes them.
SCHEMA_VERSION = "1.3"  # 1.3: model.sent (what a deployed model was sent)

#: Why `ratio_max` is null: the only way the ratio max(a/x, x/a) has no finite value.
RATIO_UNBOUNDED = "a pixel that was 0 (black) changed: the ratio a/x is unbounded"

#: History keys that count something (steps, queries, videos...): integers in the report.
_COUNT_KEYS = frozenset({"step", "queries", "iteration", "epoch", "video", "frame", "fooled"})


@dataclass(frozen=True)
class ClassScore:
    """One class and the model's confidence in it."""

    index: int
    label: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "confidence": self.confidence}


@dataclass(frozen=True)
class Prediction:
    """A video-level prediction: the top class (index, label, confidence) and the `top` k classes."""

    top: list[ClassScore]

    @property
    def index(self) -> int:
        return self.top[0].index

    @property
    def label(self) -> str:
        return self.top[0].label

    @property
    def confidence(self) -> float:
        return self.top[0].confidence

    def to_dict(self) -> dict[str, Any]:
        return {**self.top[0].to_dict(), "top": [c.to_dict() for c in self.top]}


def prediction(
    log_probs_or_probs: Tensor, labels: list[str], *, top_k: int = 5, is_log: bool = True
) -> Prediction:
    """The `Prediction` of `(K,)` scores (log-probabilities, or probabilities with `is_log=False`)."""
    p = log_probs_or_probs.detach().float().cpu()
    p = p.exp() if is_log else p
    k = min(top_k, p.numel())
    conf, idx = p.topk(k)
    return Prediction(
        [
            ClassScore(int(i), labels[int(i)] if int(i) < len(labels) else str(int(i)), float(c))
            for c, i in zip(conf, idx, strict=True)
        ]
    )


def perturbation_stats(clean: Tensor, adv: Tensor) -> dict[str, Any]:
    """Perturbation of a written video from decoded uint8 frames `(T, H, W, 3)`, as the report holds it.

    The measures are the video layer's (`vidattack.video.compare.summarize`, exact integer sums one
    frame at a time, so a long 1080p video never has a float copy); see `reportable` for `ratio_max`.
    """
    from vidattack.video.compare import frame_diff, summarize

    if clean.shape != adv.shape:
        raise ValueError(
            f"expected frames of the same shape, got {tuple(clean.shape)} and {tuple(adv.shape)}"
        )
    return reportable(summarize([frame_diff(c, a) for c, a in zip(clean, adv, strict=True)]))


def reportable(stats: dict[str, Any]) -> dict[str, Any]:
    """Perturbation measures as the report holds them: JSON has no infinity, so an unbounded ratio
    (a black pixel that changed) is `ratio_max: null` with `ratio_max_reason` saying why."""
    unbounded = math.isinf(stats["ratio_max"])
    return {
        **stats,
        "ratio_max": None if unbounded else stats["ratio_max"],
        "ratio_max_reason": RATIO_UNBOUNDED if unbounded else None,
    }


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str]:
    """Versions of everything that decides the numbers in a report.

    Read from package metadata (importing torchvision only for its version string costs 1.5 s).
    `libavcodec` is the codec library PyAV runs; `ffmpeg` the FFmpeg release, only when PyAV knows it.
    """
    import av

    found: dict[str, str | None] = {
        "vidattack": _package_version("vidattack"),
        "torch": _package_version("torch"),
        "torchvision": _package_version("torchvision"),
        "av": _package_version("av"),
        "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))) or None,
        "ffmpeg": str(getattr(av, "ffmpeg_version_info", "") or "") or None,
        "python": platform.python_version(),
    }
    return {k: v for k, v in found.items() if v}


def history_rows(history: list[dict[str, float]]) -> list[dict[str, float | int]]:
    """An attack's history for the report: counts (`step`, `queries`, ...) as integers."""
    rows: list[dict[str, float | int]] = []
    for row in history:
        rows.append(
            {
                k: int(v) if k in _COUNT_KEYS and isinstance(v, float) and v.is_integer() else v
                for k, v in row.items()
            }
        )
    return rows


def _json_safe(value: Any) -> Any:
    # JSON has no infinity or NaN: they become null (fields that may hold them say why beside them)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Tensor):
        return _json_safe(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def report_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of `S.report.json`, shipped in the package."""
    from importlib.resources import files

    loaded: dict[str, Any] = json.loads(files("vidattack").joinpath("schema/report.schema.json").read_text())
    return loaded


def to_json(data: dict[str, Any], *, indent: int | None = 2) -> str:
    return json.dumps(_json_safe(data), indent=indent, allow_nan=False)


def write_report(path: Path, report: Report | dict[str, Any]) -> None:
    """The report is written last and atomically, so its presence means the job finished."""
    data = report.to_dict() if isinstance(report, Report) else report
    write_atomic(path, (to_json(data) + "\n").encode())


# -- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttackPart:
    """What ran: the attack's name, its resolved hyperparameters, threat model, paper and findings."""

    name: str
    params: dict[str, Any]
    threat: dict[str, Any]
    paper: str
    info: dict[str, Any]
    white_box: bool
    robust_to: dict[str, Any] | None = None  # --robust-to: the delivery encode the attack optimised through
    precision: str = "fp32"  # the arithmetic of the attack's steps (`vidattack.precision`); judged in fp32

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "params": self.params,
            "threat": self.threat,
            "paper": self.paper,
            "info": self.info,
            "white_box": self.white_box,
            "precision": self.precision,
        }
        if self.robust_to is not None:
            out["robust_to"] = self.robust_to
        return out


@dataclass(frozen=True)
class ModelPart:
    """Which model judged: name, weights hash, source, preprocessing and the frames it sampled."""

    name: str
    sha256: str | None
    source: str | None
    preprocess: dict[str, Any]
    frames_sampled: list[int]
    notes: list[str]
    sent: dict[str, Any] | None = None  # a deployed model: what this input sent it (codec, requests, bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "source": self.source,
            "preprocess": self.preprocess,
            "frames_sampled": self.frames_sampled,
            "notes": self.notes,
            "sent": self.sent,
        }


@dataclass(frozen=True)
class VideoPart:
    """The input video as decoded (whole, or streamed as `SampledFrames`): size, timing, source codec,
    audio, decoder notes."""

    frames: int
    width: int
    height: int
    fps: float | None
    time_base: str
    rotation: int
    codec: str | None
    pix_fmt: str | None
    audio: bool
    notes: list[str]

    @classmethod
    def of(cls, video: Video | SampledFrames) -> VideoPart:
        return cls(
            frames=video.num_frames,
            width=video.width,
            height=video.height,
            fps=video.fps,
            time_base=str(video.time_base),
            rotation=video.rotation,
            codec=video.source_codec,
            pix_fmt=video.source_pix_fmt,
            audio=video.has_audio,
            notes=list(video.notes),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "time_base": self.time_base,
            "rotation": self.rotation,
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "audio": self.audio,
            "notes": self.notes,
        }


@dataclass
class Timing:
    """Seconds spent in each stage of one job (filled in as the stages run)."""

    decode: float = 0.0
    attack: float = 0.0
    encode: float = 0.0
    verify: float = 0.0
    heatmaps: float = 0.0
    total: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "decode": self.decode,
            "attack": self.attack,
            "encode": self.encode,
            "verify": self.verify,
            "heatmaps": self.heatmaps,
            "total": self.total,
        }


@dataclass(frozen=True)
class Target:
    """The class a targeted attack aims for."""

    index: int
    label: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label}


@dataclass(frozen=True)
class JobPart:
    """Which job wrote the report, for `--resume`: `key` digests the attack and its parameters, the
    model, the seed, the target and the input's bytes (`vidattack.pipeline.run.Runner.job_key`);
    `input_sha256` is the input's SHA-256 (None when the input is not a regular file)."""

    key: str
    input_sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "input_sha256": self.input_sha256}


@dataclass(frozen=True)
class DeliveryPart:
    """The report's `delivery` section: the delivery encode (`DeliveryFile.describe()`), whether the
    file was kept (False for `--robust-to`'s check encode), the model's prediction on the decoded
    delivery file, success judged on it, and the perturbation in 8-bit levels (lossless / delivered /
    codec / surviving, see `vidattack.delivery.measure`; None when the shapes cannot be compared)."""

    file: DeliveryFile
    kept: bool
    prediction: Prediction
    success_after_delivery: bool
    perturbation: dict[str, Any] | None
    notes: tuple[str, ...] = ()

    @property
    def path(self) -> Path | None:
        return self.file.path if self.kept else None

    def to_dict(self) -> dict[str, Any]:
        settings = self.file.describe()
        return {
            **settings,
            "path": str(self.file.path) if self.kept else None,
            "notes": [*settings["notes"], *self.notes],
            "kept": self.kept,
            "prediction": self.prediction.to_dict(),
            "success_after_delivery": self.success_after_delivery,
            "perturbation": self.perturbation,
        }


@dataclass(frozen=True)
class Report:
    """Everything one attacked video reports; `to_dict()` is the JSON of `S.report.json`.

    `adversarial` is the prediction on the attack's quantized tensor, `reencoded` the one on the file
    as written and decoded again; `success_after_encode` judges the latter. `perturbation` holds the
    measurements of `perturbation_stats` on the written file; `outputs` maps each written file's role
    to its path; `warnings` are what the reader should know before trusting the numbers (a universal
    perturbation learned on another model, say), also logged when the job ran; `job` identifies the
    job for `--resume`.
    """

    input: str
    attack: AttackPart
    model: ModelPart
    target: Target | None
    clean: Prediction
    adversarial: Prediction
    reencoded: Prediction | None  # None only for a job that writes nothing (eval without --verify)
    success: bool
    success_after_encode: bool | None
    perturbation: dict[str, Any]
    frame_predictions: dict[str, Any] | None
    queries: int
    history: list[dict[str, float]]
    video: VideoPart
    outputs: dict[str, str]
    timing: Timing
    seed: int
    device: str
    versions: dict[str, str] = field(default_factory=dict)
    status: str = "ok"
    warnings: list[str] = field(default_factory=list)
    job: JobPart | None = None
    delivery: DeliveryPart | None = None  # --delivery (or --robust-to's check encode)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, keys in the order reports have always had (new keys at the end), valid
        against `vidattack/schema/report.schema.json`."""
        return {
            "input": self.input,
            "status": self.status,
            "attack": self.attack.to_dict(),
            "model": self.model.to_dict(),
            "target": None if self.target is None else self.target.to_dict(),
            "clean": self.clean.to_dict(),
            "adversarial": self.adversarial.to_dict(),
            "reencoded": None if self.reencoded is None else self.reencoded.to_dict(),
            "success": self.success,
            "success_after_encode": self.success_after_encode,
            "perturbation": self.perturbation,
            "frame_predictions": self.frame_predictions,
            "queries": self.queries,
            "history": history_rows(self.history),
            "video": self.video.to_dict(),
            "outputs": self.outputs,
            "timing": self.timing.to_dict(),
            "seed": self.seed,
            "device": self.device,
            "versions": self.versions,
            "warnings": self.warnings,
            "job": None if self.job is None else self.job.to_dict(),
            "delivery": self.delivery.to_dict() if self.delivery is not None else None,
            "schema_version": SCHEMA_VERSION,
        }
