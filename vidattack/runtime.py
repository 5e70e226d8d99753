"""Where and how torch runs: the device, CPU threads and the seed range, checked once for every command.

`perturb`, `eval`, `train`, `universal` and `predict` all take `--device`, `--threads` and `--seed`;
these are their one reading, kept out of the pipeline so that eval and train need not import it.
"""

from __future__ import annotations

import os

import torch

from vidattack.errors import BadParameterError

#: The largest `--seed`: torch's generators take 64-bit seeds.
MAX_SEED = 2**64 - 1


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


def max_threads() -> int:
    """The most `--threads` accepted: 4 per core, at least 256. Far more makes OpenMP fail (a libgomp
    error at 20000, a segmentation fault at 100000) and is never faster."""
    return max(256, 4 * (os.cpu_count() or 1))


def check_seed(seed: int) -> int:
    """`seed` if torch can seed a generator with it, else a usage error."""
    if not 0 <= seed <= MAX_SEED:
        raise BadParameterError(f"expected --seed between 0 and {MAX_SEED}, got {seed}")
    return seed


def set_cpu_threads(threads: int) -> None:
    """Use `threads` CPU threads for torch (0 keeps torch's default, one per core).

    On a machine shared with other jobs, fewer threads than cores can be many times faster: torch's
    OpenMP workers spin while they wait for each other, and a descheduled one stalls the rest (a sparse
    attack took 190 s with 2 threads beside two busy processes on 2 cores, 12 s with 1).
    """
    limit = max_threads()
    if not 0 <= threads <= limit:
        raise BadParameterError(f"expected --threads between 0 and {limit} (0: one per core), got {threads}")
    if threads:
        torch.set_num_threads(threads)
