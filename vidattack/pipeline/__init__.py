"""The pipeline: what `vidattack perturb` does to a video file, as a library.

`perturb_file` attacks one file, `perturb_many` (`vidattack.pipeline.engine`) many, overlapped and
batched; both run a `JobSpec` (`spec.py`) with the one runner (`run.py`). This module only gathers
their names; `resolve_device`, `set_cpu_threads`, `check_seed` and `max_threads` live in
`vidattack.runtime` and are re-exported here for older callers.
"""

from __future__ import annotations

from typing import Any

from vidattack.pipeline.job import Job, warnings_for
from vidattack.pipeline.outputs import Outputs
from vidattack.pipeline.perturb import load_view, perturb_file, predict_file
from vidattack.pipeline.progress import ProgressEvent, ProgressFn
from vidattack.pipeline.report import Report
from vidattack.pipeline.run import Runner, Skipped, run_job
from vidattack.pipeline.spec import JobSpec, make_spec
from vidattack.runtime import MAX_SEED, check_seed, max_threads, resolve_device, set_cpu_threads

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
    "predict_file",
    "resolve_device",
    "run_job",
    "set_cpu_threads",
    "warnings_for",
]


def __getattr__(name: str) -> Any:
    # the batch engine imports thread pools and queues only when asked for
    if name == "perturb_many":
        from vidattack.pipeline.engine import perturb_many

        return perturb_many
    raise AttributeError(name)
