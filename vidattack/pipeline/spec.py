"""`JobSpec`: what to do to a video, as one value, built once by the CLI, eval's grid or the API.

A job is an attack with its parsed hyperparameters, a target, a seed, an early-stop margin, the
delivery encode it is judged after and the one it is optimised through, the outputs it writes, the
device and the precision. `perturb`, the batch engine and `eval` each build a `JobSpec` and hand it
to `vidattack.pipeline.run`; none of them passes the options one by one.

`JobSpec.key(model)` digests every field that changes a result (never a path of this machine: a
hyperparameter naming a file is hashed by the file's bytes), so a finished job is recognised on any
checkout: `--resume` in perturb, the records of `eval`. `resolve_target` is the one reading of a
target (a label, an index, or eval's `random` / `least-likely` modes) and `judge` the one success
judgement.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from vidattack.errors import BadParameterError
from vidattack.pipeline.outputs import DEFAULT_KINDS

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.delivery.spec import DeliverySpec
    from vidattack.models.view import ModelView

UNTARGETED = "untargeted"
#: Targets chosen per video (eval only: they need the video's true label or clean prediction).
TARGET_MODES = ("random", "least-likely")
PRECISIONS = ("fp32", "bf16", "fp16")  # resolved (`vidattack.precision.resolve_for_model`)


@dataclass(frozen=True)
class JobSpec:
    """One job's options, validated when made.

    `attack`: the attack instance (its hyperparameters parsed); `target`: `untargeted`, a label name
    of the model (canonical form: `check_target`), or a mode of `TARGET_MODES`; `seed`: the attack's
    seed; `stop_when_fooled`: the early-stop margin (None: every step); `delivery`: the lossy copy
    written and judged after the lossless file (`S.delivery.mp4`); `robust_to`: the delivery encode
    the attack optimises through (and, without `delivery`, a check encode at its median CRF judges);
    `kinds`: the output kinds written (`vidattack.pipeline.outputs`; `delivery` joins them with
    `delivery`); `pictures`: the render roles drawn (None: all of the chosen kinds); `device`,
    `precision` (the attack steps' arithmetic, resolved: `fp32`, `bf16` or `fp16`, see `vidattack.precision`); `max_memory`: refuse a video whose sample needs more bytes;
    `overwrite`, `resume`: what the claim may do with existing outputs; `verify`: write the lossless
    file, decode it and classify it again (off, eval's `--no-verify`: nothing is written, and the
    perturbation is measured on the frames in memory).
    """

    attack: Attack
    target: str = UNTARGETED
    seed: int = 0
    stop_when_fooled: float | None = None
    delivery: DeliverySpec | None = None
    robust_to: DeliverySpec | None = None
    kinds: frozenset[str] = DEFAULT_KINDS
    pictures: frozenset[str] | None = None
    device: str = "auto"
    precision: str = "fp32"
    max_memory: int | None = None
    overwrite: bool = False
    resume: bool = False
    verify: bool = True

    def __post_init__(self) -> None:
        from vidattack.runtime import check_seed

        check_seed(self.seed)
        self.attack.check_stop_when_fooled(self.stop_when_fooled)
        if self.precision not in PRECISIONS:
            raise BadParameterError(
                f"expected --precision from {', '.join(PRECISIONS)}, got {self.precision}"
            )
        _check_delivery(self.delivery, "--delivery", one_crf=True)
        _check_delivery(self.robust_to, "--robust-to", one_crf=False)

    @property
    def params(self) -> dict[str, Any]:
        """The attack's hyperparameters as JSON (what the key digests, paths aside)."""
        return jsonable(self.attack.hyperparameters())

    def key(self, model: str) -> str:
        """16 hex digits digesting every field that changes a result (`result_key`) on `model`
        (`model_identity`)."""
        return result_key(self.attack.name, self.params, model, self)

    @property
    def unit(self) -> str:
        """What the attack's progress counts."""
        return "steps" if self.attack.white_box else "queries"


def result_key(attack: str, params: dict[str, Any], model: str, options: Any) -> str:
    """16 hex digits digesting the attack `attack` with hyperparameters `params` (JSON), `model`, and
    of `options` (a `JobSpec` or eval's `Config`) the seed, the target and, only when set (so older
    keys stay as they were), the early-stop margin, the delivery encode, the robust-to encode and a
    precision other than fp32. Both encodes are digested resolved (`h264` and
    `h264:crf=23,preset=medium` share a key); a parameter naming a file by its bytes (`portable`)."""
    fields: dict[str, Any] = {
        "attack": attack,
        "params": portable(params),
        "model": model,
        "seed": options.seed,
        "target": options.target,
    }
    if options.stop_when_fooled is not None:
        fields["stop_when_fooled"] = options.stop_when_fooled
    if options.delivery is not None:
        fields["delivery"] = options.delivery.describe()
    if options.robust_to is not None:
        fields["robust_to"] = robust_key(options.robust_to)
    precision = getattr(options, "precision", "fp32")
    if precision != "fp32":
        fields["precision"] = precision
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _check_delivery(spec: Any, option: str, *, one_crf: bool) -> None:
    from vidattack.delivery.spec import DeliverySpec

    if spec is None:
        return
    if not isinstance(spec, DeliverySpec):
        raise BadParameterError(f"expected {option} as a DeliverySpec (parse it first), got {spec!r}")
    if one_crf and len(spec.crfs) != 1:  # a --robust-to range is no one encode
        raise BadParameterError(f"expected a delivery with one CRF, got {spec}")


def robust_key(spec: DeliverySpec) -> dict[str, Any]:
    """What a `--robust-to` spec makes the attack see, for the key: the resolved encode, and the EOT
    draws per forward pass and backward low-pass that `describe()` leaves out, with
    `robust_model`'s defaults filled in (so `eot=1` and no `eot` share a key)."""
    from vidattack.delivery.simulate import DEFAULT_SIGMA

    eot = 1 if spec.eot is None else spec.eot
    sigma = DEFAULT_SIGMA if spec.sigma is None else spec.sigma
    return {**spec.describe(), "eot": eot, "sigma": float(sigma)}


def jsonable(value: Any) -> Any:
    """Hyperparameter values as JSON with a canonical form (tuples as lists, floats exact)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return (
            "tensor-sha256:" + hashlib.sha256(value.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        )
    delta = getattr(value, "delta", None)  # a universal perturbation: what it adds is what counts
    if isinstance(delta, torch.Tensor):
        return {"delta": jsonable(delta), "frames": jsonable(getattr(value, "frames", None))}
    return str(value)


def portable(value: Any) -> Any:
    """`value` (JSON from `jsonable`) with every string that names a regular file (a path: it holds a
    `/` or has a suffix, so a word such as `late` is never looked up) replaced by the file's SHA-256:
    the same file gives the same key from any folder or checkout."""
    if isinstance(value, str) and ("/" in value or os.sep in value or os.path.splitext(value)[1]):
        digest = _file_sha256(value)
        return value if digest is None else f"file-sha256:{digest}"
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    return value


def _file_sha256(text: str) -> str | None:
    try:
        st = os.stat(text)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):  # never open a FIFO or a device: it could wait forever
        return None
    return _hash_file(os.path.realpath(text), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _hash_file(path: str, size: int, mtime_ns: int) -> str | None:
    # keyed by size and mtime too: an edited file is hashed again
    from vidattack.files import sha256_file

    try:
        return sha256_file(path)
    except OSError:
        return None


def model_identity(view: ModelView) -> str:
    """What the key records of the model: its weights' sha256 when known, else its name."""
    return f"sha256:{view.sha256}" if view.sha256 else f"name:{view.name}"


def check_target(target: str | int | None, view: ModelView, *, modes: bool = False) -> str:
    """A `--target` in canonical form: `untargeted`, a label name of `view` (given as a name, any
    case, or an index), or with `modes` one of `TARGET_MODES`."""
    from vidattack.criteria import resolve_target as label_index

    if target is None:
        return UNTARGETED
    if isinstance(target, int):
        return view.labels[label_index(view, target)]
    t = target.strip()
    if t.lower() in ("", "none", UNTARGETED):
        return UNTARGETED
    if modes and t.lower() in TARGET_MODES:
        return t.lower()
    try:
        return view.labels[label_index(view, t)]
    except BadParameterError as e:
        if not modes:
            raise
        raise BadParameterError(f"--target: {e} (or random, least-likely)") from None


def resolve_target(
    target: str,
    view: ModelView,
    *,
    label: int | None = None,
    clean_log_probs: torch.Tensor | None = None,
    seed: int = 0,
) -> int | None:
    """The class index a canonical target (`check_target`) aims for on one video: None untargeted;
    `random`: a class other than the true `label`, drawn with `seed`; `least-likely`: the class the
    clean prediction `clean_log_probs` `(K,)` ranks last; a label: its index."""
    if target == UNTARGETED:
        return None
    if target == "random":
        if label is None:
            raise BadParameterError("--target random needs each video's true label (eval)")
        g = torch.Generator().manual_seed(seed)
        choice = int(torch.randint(0, view.num_classes - 1, (), generator=g))
        return choice if choice < label else choice + 1  # uniform over the classes except `label`
    if target == "least-likely":
        if clean_log_probs is None:
            raise BadParameterError("--target least-likely needs the clean prediction")
        return int(clean_log_probs.argmin())
    from vidattack.criteria import resolve_target as label_index

    return label_index(view, target)


def judge(index: int, reference: int, target: int | None) -> bool:
    """Success of a prediction `index`: the target class when targeted, any class but `reference`
    when not (perturb's reference is the clean prediction, eval's the true label)."""
    return index == target if target is not None else index != reference


def kinds_for(
    kinds: frozenset[str] = DEFAULT_KINDS, *, heatmaps: bool = True, pictures: Any = None
) -> frozenset[str]:
    """`kinds` less the pictures left out: all of them with `heatmaps=False`, and the kinds none of
    whose render roles are named in `pictures` (None: every picture)."""
    from vidattack.pipeline.outputs import OUTPUT_FILES

    if not heatmaps:  # no pictures, nor the page's previews
        return kinds - {f.kind for f in OUTPUT_FILES if f.picture} - {"preview"}
    if pictures is None:
        return kinds
    wanted = set(pictures)
    drawn = {f.kind for f in OUTPUT_FILES if f.picture and f.role in wanted}
    return kinds - ({f.kind for f in OUTPUT_FILES if f.picture} - drawn)


def make_spec(
    attack: Attack | str, view: ModelView, *, target: str | int | None = None, **fields: Any
) -> JobSpec:
    """A `JobSpec` from the Python API's loose keywords: `attack` an instance or a registered name,
    `target` a label or class index of `view` (None: untargeted), `heatmaps=False` or `pictures` (render
    roles) narrowing the kinds, `precision` any of `auto|fp32|bf16|fp16` (resolved here for `view` on
    `device`); every other keyword a `JobSpec` field."""
    from vidattack.attacks import get_attack
    from vidattack.precision import resolve_for_model
    from vidattack.runtime import resolve_device

    if "precision" in fields:
        device = resolve_device(fields.get("device", "auto"))
        fields["precision"] = resolve_for_model(fields["precision"], device, view.net)

    heatmaps = fields.pop("heatmaps", True)
    pictures = fields.pop("pictures", None)
    kinds = kinds_for(fields.pop("kinds", DEFAULT_KINDS), heatmaps=heatmaps, pictures=pictures)
    atk = get_attack(attack) if isinstance(attack, str) else attack
    chosen = None if pictures is None else frozenset(pictures)
    return JobSpec(atk, check_target(target, view), kinds=kinds, pictures=chosen, **fields)
