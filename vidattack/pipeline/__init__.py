"""The pipeline: what `vidattack perturb` does to a video file, as a library.

`perturb_file` attacks one file, `perturb_many` (`vidattack.pipeline.engine`) many, overlapped and
batched; both run a `JobSpec` (`spec.py`) with the one runner (`run.py`). This module only gathers
their names, imported when first asked for (so that `vidattack.pipeline.outputs`, read by the CLI's
help, does not load torch); `resolve_device`, `set_cpu_threads`, `check_seed` and `max_threads` live
in `vidattack.runtime` and are re-exported here for older callers.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidattack.pipeline.engine import perturb_many
    from vidattack.pipeline.job import Job, warnings_for
    from vidattack.pipeline.outputs import Outputs
    from vidattack.pipeline.perturb import load_view, perturb_file, predict_file
    from vidattack.pipeline.progress import ProgressEvent, ProgressFn
    from vidattack.pipeline.report import Report
    from vidattack.pipeline.run import Runner, Skipped, run_job
    from vidattack.pipeline.spec import JobSpec, make_spec
    from vidattack.runtime import MAX_SEED, check_seed, max_threads, resolve_device, set_cpu_threads

#: Each name this package offers, and the module that defines it.
_HOMES = {
    "perturb_many": "vidattack.pipeline.engine",
    "Job": "vidattack.pipeline.job",
    "warnings_for": "vidattack.pipeline.job",
    "Outputs": "vidattack.pipeline.outputs",
    "load_view": "vidattack.pipeline.perturb",
    "perturb_file": "vidattack.pipeline.perturb",
    "predict_file": "vidattack.pipeline.perturb",
    "ProgressEvent": "vidattack.pipeline.progress",
    "ProgressFn": "vidattack.pipeline.progress",
    "Report": "vidattack.pipeline.report",
    "Runner": "vidattack.pipeline.run",
    "Skipped": "vidattack.pipeline.run",
    "run_job": "vidattack.pipeline.run",
    "JobSpec": "vidattack.pipeline.spec",
    "make_spec": "vidattack.pipeline.spec",
    "MAX_SEED": "vidattack.runtime",
    "check_seed": "vidattack.runtime",
    "max_threads": "vidattack.runtime",
    "resolve_device": "vidattack.runtime",
    "set_cpu_threads": "vidattack.runtime",
}

__all__ = [
    "MAX_SEED",
    "Job",
    "JobSpec",
    "Outputs",
    "ProgressEvent",
    "ProgressFn",
    "Report",
    "Runner",
    "Skipped",
    "check_seed",
    "load_view",
    "make_spec",
    "max_threads",
    "perturb_file",
    "perturb_many",
    "predict_file",
    "resolve_device",
    "run_job",
    "set_cpu_threads",
    "warnings_for",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'vidattack.pipeline' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
