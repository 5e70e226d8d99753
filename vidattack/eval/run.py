"""`run_eval`: a grid of configurations over a labelled data set, resumable, on any executor.

The driver (this function) decides what is left to do from `OUT/results.jsonl`, hands chunks of
videos to an executor, and writes every record itself as it comes back; then it writes the summary.
A rerun of the same call skips the (configuration, video) pairs already recorded, so a killed run
finishes where it stopped and a changed configuration adds rows next to the old ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vidattack.errors import UsageError, VidattackError
from vidattack.eval.executors import get_executor
from vidattack.eval.grid import Config
from vidattack.eval.records import (
    RESULTS_NAME,
    ResultsWriter,
    done_pairs,
    read_configs,
    read_records,
    write_configs,
)
from vidattack.eval.summary import SummaryRow, summarize, write_summary
from vidattack.eval.worker import WorkOptions

if TYPE_CHECKING:
    from vidattack.attacks.context import StepFn
    from vidattack.data.datasets import Dataset, Item
    from vidattack.eval.options import RunOptions
    from vidattack.models.view import ModelView

log = logging.getLogger("vidattack")


@dataclass
class EvalRun:
    """What `run_eval` did: the summary rows (all configurations in OUT), the records it added, the
    pairs it found already done, the failed records it wrote, the files, and the wall time."""

    out_dir: Path
    rows: list[SummaryRow]
    written: int
    skipped: int
    failed: int
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)


def run_eval(
    dataset: Dataset,
    configs: Sequence[Config],
    model: ModelView,
    options: RunOptions,
    *,
    progress: StepFn | None = None,
) -> EvalRun:
    """Run every configuration on every video of `dataset` (or of its shard `options.shard`) into
    `options.out_dir` (`RunOptions` says what each option does).

    Writes `results.jsonl` (one record per configuration and video, appended as they finish),
    `configs.json`, and the summary (`summary.csv`, `summary.json`, `summary.md`,
    `robust_accuracy.png`). `progress(done, total)` is called per record (done counts skipped ones).
    `options.info` names entries of the attack's `result.info` that each record keeps under `info`
    (sparse's `iterations`, V-BAD's `final_eps`): records already in OUT keep what they had.
    Configurations with a `delivery` (`build_grid(delivery=...)`) encode the written lossless file
    again, so they need `verify`; their videos are kept as `ID.delivery.mp4` with `save_outputs`.

    Raises:
        UsageError: no configurations, configurations made for another model, or a delivery
            without `verify`.
    """
    start = time.perf_counter()
    _check(configs, verify=options.verify, chunk_size=options.chunk_size)
    out = Path(options.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VidattackError(f"cannot create the output folder {out}: {e.strerror}") from None
    if options.shard is not None:
        dataset = dataset.shard(*options.shard)

    known = read_configs(out)
    for c in configs:
        old = known.get(c.key)
        if old is not None and old.get("model") != c.model:  # a hash collision or an edited file
            raise UsageError(f"{out}/configs.json records configuration {c.key} for another model")
    write_configs(out, [c.to_dict() for c in configs])

    results = out / RESULTS_NAME
    done = done_pairs(read_records(results))
    total = len(dataset) * len(configs)
    chunks, skipped = _chunks(dataset, configs, done, options.chunk_size)
    log.info("%d of %d records already in %s", skipped, total, results)

    work = WorkOptions(
        device=options.device,
        verify=options.verify,
        outputs=str(out / "videos") if options.save_outputs else None,
        attack_misclassified=options.attack_misclassified,
        threads=options.threads,
        info=tuple(options.info),
    )
    runner = get_executor(options.executor, address=options.ray_address)
    written = failed = 0
    counted = skipped
    if progress is not None:
        progress(counted, total)
    with ResultsWriter(results, fsync_every=options.fsync_every) as writer:
        for records in runner.map(model, chunks, work):
            for rec in records:
                writer.write(rec)
                written += 1
                failed += rec.get("status") != "ok"
                counted += 1
                if progress is not None:
                    progress(counted, total)

    rows = summarize(read_records(results), read_configs(out))
    files = write_summary(out, rows, title=f"Robust accuracy of {model.name} on {dataset.spec}")
    files["results"] = results
    return EvalRun(
        out_dir=out,
        rows=rows,
        written=written,
        skipped=skipped,
        failed=failed,
        seconds=time.perf_counter() - start,
        files=files,
    )


def _check(configs: Sequence[Config], *, verify: bool, chunk_size: int) -> None:
    if not configs:
        raise UsageError("expected at least one configuration")
    keys = [c.key for c in configs]
    if len(set(keys)) != len(keys):
        raise UsageError("expected distinct configurations, got the same one twice")
    delivering = [c for c in configs if c.delivery is not None]
    if delivering and not verify:
        raise UsageError(
            f"expected verify=True with a delivery ({delivering[0].delivery}): the delivery copy is "
            "encoded from the written lossless file, which verify=False does not write"
        )
    if chunk_size < 1:
        raise UsageError(f"expected a chunk size >= 1, got {chunk_size}")


def _chunks(
    dataset: Dataset, configs: Sequence[Config], done: set[tuple[str, str]], chunk_size: int
) -> tuple[list[tuple[list[Item], list[Config]]], int]:
    """The work left: chunks of up to `chunk_size` videos that need the same configurations (all of
    them, in a fresh run), and how many (configuration, video) pairs `done` already holds."""
    # Per video, the configurations it still needs; videos needing none are not sent anywhere.
    todo: list[tuple[Item, list[Config]]] = []
    for item in dataset:
        missing = [c for c in configs if (c.key, item.id) not in done]
        if missing:
            todo.append((item, missing))
    skipped = len(dataset) * len(configs) - sum(len(m) for _, m in todo)
    chunks: list[tuple[list[Item], list[Config]]] = []
    for item, missing in todo:
        if chunks and chunks[-1][1] == missing and len(chunks[-1][0]) < chunk_size:
            chunks[-1][0].append(item)
        else:
            chunks.append(([item], missing))
    return chunks, skipped
