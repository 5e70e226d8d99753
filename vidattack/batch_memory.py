"""How many videos one attack call can hold in memory, so a batch degrades to smaller calls, never OOM.

Before a batch of clips is attacked, one video's cost is measured, not guessed: a forward pass of one
video through the bound model, at the attack's precision, with every tensor autograd saves for the
backward counted (`saved_tensors_hooks`; on CUDA also the allocator's peak, which sees workspaces),
plus the video-sized tensors a step keeps beside the graph (`STEP_COPIES`: the clean video, the
iterate, the gradient, the box's bounds, the quantized copy). The batch is then cut into calls of
as many videos as fit in the budget:

- CUDA: `CUDA_FRACTION` of the device's free memory (`torch.cuda.mem_get_info`) when the batch starts;
- CPU: `CPU_FRACTION` of the memory the kernel reports available (`MemAvailable` in /proc/meminfo),
  or the size in the environment variable `VIDATTACK_ATTACK_MEMORY` (e.g. `4GB`), which wins.

A single video is always attempted (there is nothing smaller to fall back to), and `--batch-size`
bypasses the sizing altogether: the caller asked for that many.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from vidattack.errors import BadParameterError
from vidattack.precision import optimising, resolve_for_model

log = logging.getLogger("vidattack")

CUDA_FRACTION = 0.8  # of free device memory: the allocator's fragmentation and cuDNN workspaces need room
CPU_FRACTION = 0.5  # of available memory: decoding, encoding and the other processes need the rest
STEP_COPIES = 6  # video-sized float tensors a gradient step keeps beside the graph
ENV_LIMIT = "VIDATTACK_ATTACK_MEMORY"

T = TypeVar("T")
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def parse_bytes(text: str) -> int:
    """`8GB`, `800MB`, `2GiB` or a plain number of bytes, as an int."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if m is None or m.group(2).lower() not in _UNITS:
        raise BadParameterError(f"expected a size such as 4GB, 800MB or 2GiB in {ENV_LIMIT}, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _available_cpu_bytes(meminfo: str = "/proc/meminfo") -> int:
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def memory_budget(device: torch.device | str) -> int:
    """Bytes an attack call on `device` may use now (see the module's docstring for the rule)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free * CUDA_FRACTION)
    limit = os.environ.get(ENV_LIMIT)
    if limit:
        return parse_bytes(limit)
    return int(_available_cpu_bytes() * CPU_FRACTION)


def bytes_per_video(model: nn.Module, x: Tensor, precision: str = "fp32") -> int:
    """The memory one video `x` `(1, T, C, H, W)` costs a gradient step of `model` at `precision`."""
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    cuda = x.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        before = torch.cuda.memory_allocated(x.device)
    ran = resolve_for_model(precision, x.device, model)
    with torch.enable_grad(), optimising(ran, x.device):
        x_req = x[:1].detach().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x_req)
    graph = sum(saved.values()) + out.numel() * out.element_size()
    if cuda:
        graph = max(graph, torch.cuda.max_memory_allocated(x.device) - before)
    del out, x_req
    return graph + STEP_COPIES * x[:1].numel() * x.element_size()


def videos_that_fit(per_video: int, budget: int) -> int:
    """How many videos of `per_video` bytes fit in `budget` (at least one)."""
    return max(1, budget // max(per_video, 1))


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """`items` in order, cut into lists of at most `size`."""
    return [list(items[i : i + size]) for i in range(0, len(items), max(size, 1))]


def memory_sized(
    run: Callable[[list[T]], list[Any]],
    *,
    sampled_of: Callable[[T], Any] = lambda item: item,
    precision: str = "fp32",
) -> Callable[[list[T]], list[Any]]:
    """`run` (a batch of clips, one clip shape and plan -> one outcome each) cut into calls that fit.

    `sampled_of(item)` is an item's `Sampled` (model and clip). One video's cost is measured once per
    model, clip shape and precision; each batch is split by the budget at the time it starts and the
    outcomes are joined in order (a batchable attack gives each video the same result in any batch,
    see `AttackResult.split`).
    """
    measured: dict[tuple[Any, ...], int] = {}

    def sized(batch: list[T]) -> list[Any]:
        if len(batch) <= 1:
            return run(batch)
        first = sampled_of(batch[0])
        key = (
            id(getattr(first.model, "net", first.model)),
            tuple(first.x.shape[1:]),
            str(first.x.device),
            precision,
        )
        if key not in measured:
            measured[key] = bytes_per_video(first.model, first.x, precision)
        fit = videos_that_fit(measured[key], memory_budget(first.x.device))
        if fit < len(batch):
            log.info("attacking %d videos %d at a time: what fits in memory", len(batch), fit)
        return [out for part in chunks(batch, fit) for out in run(part)]

    return sized
