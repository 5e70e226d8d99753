"""Which float precision an attack's gradient steps run in, and the contexts that apply it.

`--precision auto|fp32|bf16|fp16` chooses the arithmetic of the *optimisation* only: the forward and
backward passes of the attack's steps run under `torch.autocast`. Everything that decides a result
stays float32, outside any autocast: the clean label, the judging of the quantized video (and the
stop-when-fooled checks of the shared loop), the written file's verification, projections and
budgets. The loss is computed in float32 from the autocast logits (`BoundModel.forward` upcasts them
before the log-softmax; `loss_and_grad` upcasts what any other model returns), and the input gradient
is float32 because the input is.

How each request resolves (`resolve_precision`):

- `fp32`: plain float32 everywhere (today's behaviour, the peers' only mode).
- `bf16`: bfloat16 autocast. On a CPU it needs native bf16 (AVX512-BF16 or AMX, read from the CPU's
  flags: without them oneDNN emulates bf16 and it is slower than float32, so it is refused); on CUDA
  the device must report bf16 support.
- `fp16`: float16 autocast on CUDA, with a scaled loss (`LossScale`): the objective is multiplied by
  a power of two before the backward so small gradients do not flush to zero, and a step whose
  gradient overflows is recomputed at half the scale, never used. Refused on a CPU, where float16 is
  not native (emulated, slower than float32) and bf16 is the half precision to ask for.
- `auto`: bf16 where the device computes it natively (CPU with AMX or AVX512-BF16, CUDA with bf16
  support), fp32 elsewhere. Never fp16: its narrow range needs the loss scale, bf16 does not.

Black-box attacks have no gradient steps: they always run (and report) fp32. So do TorchScript models:
their compiled backward does not mix precisions (it fails with "expected scalar type BFloat16 but found
Float"), so `auto` gives them fp32 and an explicit bf16/fp16 is refused (`resolve_for_model`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from vidattack.errors import BadParameterError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# CPU flags (as /proc/cpuinfo spells them) under which oneDNN computes bfloat16 natively
_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@lru_cache(maxsize=1)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from `/proc/cpuinfo` (empty where that file does not exist)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16).

    `torch.backends.cpu.get_cpu_capability()` names the widest vector ISA ("AVX512") but not the
    bf16 extension, so the flags decide; where there are none (not Linux) torch's own oneDNN check does.
    """
    flags = cpu_flags() if flags is None else flags
    if flags:
        return bool(flags & _BF16_CPU_FLAGS)
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def device_has_native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bfloat16 natively (see `cpu_has_native_bf16`; CUDA asks the device)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(
    requested: str, device: torch.device | str, *, native_bf16: bool | None = None
) -> Precision:
    """The precision an attack on `device` runs in for `requested` (`auto|fp32|bf16|fp16`).

    `native_bf16` overrides the device check (tests, and callers that already know). Raises
    `BadParameterError` for an unknown name, bf16 on a device without native bf16, or fp16 off CUDA.
    """
    if requested not in PRECISIONS:
        raise BadParameterError(f"expected a precision among {', '.join(PRECISIONS)}, got {requested!r}")
    dev = torch.device(device)
    native = device_has_native_bf16(dev) if native_bf16 is None else native_bf16
    if requested == "auto":
        return "bf16" if native else "fp32"
    if requested == "bf16" and not native:
        raise BadParameterError(
            f"expected a device that computes bf16 natively for --precision bf16, got {dev} without it "
            "(CPUs need AVX512-BF16 or AMX); use fp32 or auto"
        )
    if requested == "fp16" and dev.type != "cuda":
        raise BadParameterError(
            f"expected a CUDA device for --precision fp16, got {dev} (float16 is emulated there, slower "
            "than float32); use bf16 or auto"
        )
    return requested  # type: ignore[return-value]


_requested: contextvars.ContextVar[str] = contextvars.ContextVar("vidattack_requested", default="fp32")


def requested_precision() -> str:
    """The precision asked for by the innermost `attack_precision` block (fp32 outside any)."""
    return _requested.get()


@contextmanager
def attack_precision(requested: str) -> Iterator[None]:
    """Attacks called without `precision=` inside the block run at `requested` (`auto|fp32|bf16|fp16`).

    How the commands hand `--precision` to the attacks deep inside a batch, an eval or a training run
    without threading it through every layer; a call's own `precision=` still wins.
    """
    if requested not in PRECISIONS:
        raise BadParameterError(f"expected a precision among {', '.join(PRECISIONS)}, got {requested!r}")
    token = _requested.set(requested)
    try:
        yield
    finally:
        _requested.reset(token)


def is_torchscript(model: torch.nn.Module) -> bool:
    """Whether `model` (or a module inside it, e.g. a bound model's net) is TorchScript."""
    if not isinstance(model, torch.nn.Module):  # a remote model's stand-in: no autocast to refuse
        return False
    return any(isinstance(m, torch.jit.ScriptModule) for m in model.modules())


def resolve_for_model(requested: str, device: torch.device | str, model: torch.nn.Module) -> Precision:
    """`resolve_precision`, and fp32 for a TorchScript model (`auto`), or a refusal (bf16, fp16)."""
    ran = resolve_precision(requested, device)
    if ran == "fp32" or not is_torchscript(model):
        return ran
    if requested == "auto":
        return "fp32"
    raise BadParameterError(
        f"expected a model autocast can reach for --precision {requested}, got a TorchScript model "
        "(its compiled backward does not mix precisions); use fp32 or auto"
    )


@dataclass
class LossScale:
    """fp16's dynamic loss scale: a power of two the objective is multiplied by before the backward.

    A gradient with an inf or NaN means the scaled backward overflowed: that gradient is thrown away
    and recomputed at half the scale (`grad_of`), so no step ever uses an overflowed gradient. After
    `growth_interval` clean steps the scale doubles again, as `torch.amp.GradScaler` does for weights.
    """

    scale: float = 2.0**16
    growth_interval: int = 200
    min_scale: float = 1.0
    _clean_steps: int = field(default=0, repr=False)

    def grad_of(self, backward: Callable[[float], Tensor]) -> Tensor:
        """`backward(scale)` (the gradient of `scale * objective`) divided by the scale, finite."""
        while True:
            grad = backward(self.scale)
            if bool(torch.isfinite(grad).all()):
                break
            if self.scale <= self.min_scale:
                raise BadParameterError(
                    "expected a finite input gradient in fp16, got inf/NaN even unscaled: the model "
                    "overflows float16; use --precision bf16 or fp32"
                )
            self.scale /= 2.0
            self._clean_steps = 0
        self._clean_steps += 1
        if self._clean_steps >= self.growth_interval:
            self.scale *= 2.0
            self._clean_steps = 0
        return grad.float() / self.scale


@dataclass(frozen=True)
class Policy:
    """A resolved precision on a device type: what `optimising` enters and `loss_and_grad` reads."""

    precision: Precision
    device_type: str
    loss_scale: LossScale | None = None

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES.get(self.precision, torch.float32)


_active: contextvars.ContextVar[Policy | None] = contextvars.ContextVar("vidattack_precision", default=None)


def active_loss_scale() -> LossScale | None:
    """The loss scale of the fp16 optimisation running in this context (None: no scaling)."""
    policy = _active.get()
    return None if policy is None else policy.loss_scale


@contextmanager
def optimising(precision: Precision, device: torch.device | str) -> Iterator[None]:
    """The attack's optimisation: autocast to `precision` (nothing for fp32), fp16 with a loss scale."""
    dev = torch.device(device)
    if precision == "fp32":
        yield
        return
    policy = Policy(precision, dev.type, LossScale() if precision == "fp16" else None)
    token = _active.set(policy)
    try:
        with torch.autocast(dev.type, dtype=policy.dtype):
            yield
    finally:
        _active.reset(token)


def full_precision(device: torch.device | str) -> AbstractContextManager[None]:
    """float32 inside an optimisation (judging a quantized iterate): autocast off, no loss scale."""
    dev = torch.device(device)
    if not torch.is_autocast_enabled(dev.type):
        return nullcontext()
    return _full_precision(dev.type)


@contextmanager
def _full_precision(device_type: str) -> Iterator[None]:
    token = _active.set(None)
    try:
        with torch.autocast(device_type, enabled=False):
            yield
    finally:
        _active.reset(token)
