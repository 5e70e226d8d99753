"""The batch engine: many video files through the pipeline's stages, overlapped and batched.

`perturb_many` gives, for each input in order, what `perturb_file` gives for it alone (its report, or
an error record when it fails; one failed input never stops the others), but it keeps the attack busy:

    decode worker:   prepare (outputs checked free, decode, sample) the next inputs
    main thread:     attack batches of up to `batch_size` consecutive inputs of one `batch_key`
    finish worker:   write, verify, render and report the inputs already attacked

Only the attack runs in the calling thread; PyAV, the encoder and torch's kernels release the GIL, so
decoding and writing overlap with it. Memory is bounded: at most `batch_size + lookahead` decoded
inputs wait for the attack and at most `batch_size + 1` attacked ones wait to be written. Batching
only groups consecutive inputs, so records come out in input order without holding any back.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack.errors import VidattackError

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.delivery import DeliverySpec
    from vidattack.models.view import ModelView
    from vidattack.pipeline import Job
    from vidattack.pipeline.progress import ProgressFn

log = logging.getLogger("vidattack")

Record = dict[str, Any]


def default_batch_size(device: torch.device | str) -> int:
    """Videos per attack call when not given: 8 on an accelerator, 1 on the CPU.

    On the CPU a batch gains nothing (measured with `benchmarks/throughput.py`: tiny-c3d on two cores
    already keeps them busy with one video) and costs memory; on a GPU a single 16-frame clip leaves
    most of the device idle.
    """
    return 1 if torch.device(device).type == "cpu" else 8


@dataclass(frozen=True)
class EngineItem:
    """One input: its path and output stem (`vidattack.pipeline.batch.Item` has the same shape)."""

    path: Path
    stem: str


def error_record(path: Path, error: BaseException) -> Record:
    """What a failed input reports: its input and one line of error (as the sequential batch does)."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return {"input": str(path), "status": "error", "error": message, "error_type": type(error).__name__}


def perturb_many(
    items: Sequence[Any],
    attack: Attack,
    *,
    model: ModelView,
    out_dir: str | Path = "vidattack-out",
    target: str | int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    device: str | torch.device = "auto",
    heatmaps: bool = True,
    batch_size: int | None = None,
    stop_when_fooled: float | None = None,
    pictures: Collection[str] | None = None,
    progress: ProgressFn | None = None,
    done: Callable[[Any], None] | None = None,
    lookahead: int = 2,
    delivery: DeliverySpec | None = None,
    robust_to: DeliverySpec | None = None,
) -> Iterator[Record]:
    """Attack every input and yield its record (the report dict, or an error record) in input order.

    `items` have `.path` and `.stem` (`vidattack.pipeline.batch.Item`). Each video's report equals the
    one `perturb_file` writes for it (same seed, same outputs), timings apart. `batch_size` videos of
    the same clip shape and frame plan go through the attack together (default `default_batch_size`);
    attacks that are not `batchable` run one video at a time. `progress` receives every video's
    `ProgressEvent`s (videos overlap: events name their video); `done(item)` is called when its job
    ends, whatever the outcome, before its record is yielded. `delivery` and `robust_to` are
    `perturb_file`'s; with `robust_to` each video is attacked alone (its encode is per video anyway,
    and each has its own frame rate and seeded EOT draws). Bad options (attack, target, margin) raise
    before the first input is opened.
    """
    from vidattack.pipeline import resolve_device, warnings_for
    from vidattack.pipeline.stages import resolve_target

    dev = resolve_device(device)
    view = model.to(dev)
    attack.check_stop_when_fooled(stop_when_fooled)
    target_index = resolve_target(view, target)
    size = default_batch_size(dev) if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"expected a batch size >= 1, got {size}")
    if robust_to is not None:
        size = 1  # (#17) one DeliveryModel per video: a batch would share the first one's
    engine = _Engine(
        list(items),
        attack,
        view,
        dev,
        out_dir,
        target_index,
        seed,
        overwrite,
        heatmaps,
        size,
        stop_when_fooled,
        pictures,
        warnings_for(attack, view),
        progress,
        done,
        max(lookahead, 0),
        delivery=delivery,
        robust_to=robust_to,
    )
    yield from engine.run()


@dataclass
class _Slot:
    """An input's place in the output order: its pending record, once its job is handed on."""

    item: Any
    record: Future[Record] | Record | None = None


class _Engine:
    def __init__(
        self,
        items: list[Any],
        attack: Attack,
        view: ModelView,
        device: torch.device,
        out_dir: str | Path,
        target: int | None,
        seed: int,
        overwrite: bool,
        heatmaps: bool,
        batch_size: int,
        stop: float | None,
        pictures: Collection[str] | None,
        warnings: list[str],
        progress: ProgressFn | None,
        done: Callable[[Any], None] | None,
        lookahead: int,
        *,
        delivery: DeliverySpec | None = None,
        robust_to: DeliverySpec | None = None,
    ) -> None:
        self.items, self.attack, self.view, self.device = items, attack, view, device
        self.out_dir, self.target, self.seed, self.overwrite = out_dir, target, seed, overwrite
        self.heatmaps, self.batch_size, self.stop, self.lookahead = heatmaps, batch_size, stop, lookahead
        self.pictures, self.warnings = pictures, warnings
        self.progress, self.done = progress, done
        self.delivery, self.robust_to = delivery, robust_to

    # -- the stages as the workers run them ------------------------------------------------------

    def _prepare(self, item: Any) -> Job:
        from vidattack.pipeline import prepare_job

        return prepare_job(
            Path(item.path),
            self.attack,
            self.view,
            self.device,
            self.out_dir,
            item.stem,
            self.overwrite,
            progress=self.progress,
            delivery=self.delivery,
            robust_to=self.robust_to,
            seed=self.seed,
        )

    def _finish(self, item: Any, job: Job, outcome: Any) -> Record:
        from vidattack.pipeline import finish_job

        try:
            return _guarded(
                item,
                lambda: finish_job(
                    job,
                    self.attack,
                    self.view,
                    outcome,
                    self.target,
                    self.seed,
                    self.device,
                    overwrite=self.overwrite,
                    heatmaps=self.heatmaps,
                    pictures=self.pictures,
                    warnings=self.warnings,
                    delivery=self.delivery,
                    robust_to=self.robust_to,
                ),
            )
        finally:
            self._done(item)

    def _done(self, item: Any) -> None:
        if self.done is not None:
            self.done(item)

    def _progress(self, jobs: list[Job]) -> Callable[[int, int], None] | None:
        # one (done, total) callback for the batch's attack, fanned out to every video's events
        if self.progress is None:
            return None
        unit = "steps" if self.attack.white_box else "queries"
        counters = [job.tell.counter("attacking", unit) for job in jobs]
        for job in jobs:
            job.tell("attacking", 0, None, unit)

        def tick(step: int, total: int) -> None:
            for counter in counters:
                counter(step, total)

        return tick

    # -- the main loop ---------------------------------------------------------------------------

    def run(self) -> Iterator[Record]:
        from vidattack.pipeline.stages import batch_key, run_attack_batch

        slots = [_Slot(item) for item in self.items]
        ahead = self.batch_size + self.lookahead
        with (
            ThreadPoolExecutor(1, thread_name_prefix="vidattack-decode") as decoder,
            ThreadPoolExecutor(1, thread_name_prefix="vidattack-finish") as finisher,
        ):
            prepared: deque[tuple[int, Future[Job]]] = deque()
            following = 0  # next input to hand to the decoder
            emitted = 0  # next record to yield

            def feed() -> None:
                nonlocal following
                while following < len(slots) and len(prepared) < ahead:
                    prepared.append((following, decoder.submit(self._prepare, slots[following].item)))
                    following += 1

            feed()
            while prepared:
                # the next batch: consecutive prepared inputs with one batch key
                batch: list[tuple[int, Job]] = []
                key: Any = None
                while prepared and len(batch) < self.batch_size:
                    index, future = prepared[0]
                    try:
                        job = future.result()
                    except BaseException as e:  # reported as the input's record
                        prepared.popleft()
                        self._fail(slots[index], e)
                        feed()
                        continue
                    k = batch_key(job.sampled, self.attack)
                    if batch and (k is None or k != key):
                        break
                    prepared.popleft()
                    batch.append((index, job))
                    key = k
                    feed()
                    if k is None:
                        break
                if batch:
                    self._attack(batch, slots, finisher, run_attack_batch)
                # hand back what is finished, in order; bound the jobs waiting to be written
                while emitted < len(slots) and _ready(slots[emitted], wait=self._too_many(slots, emitted)):
                    yield _take(slots[emitted])
                    emitted += 1
            while emitted < len(slots):
                _ready(slots[emitted], wait=True)
                yield _take(slots[emitted])
                emitted += 1

    def _too_many(self, slots: list[_Slot], emitted: int) -> bool:
        pending = sum(1 for s in slots[emitted:] if isinstance(s.record, Future) and not s.record.done())
        return pending > self.batch_size + 1

    def _fail(self, slot: _Slot, error: BaseException) -> None:
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise error
        if not isinstance(error, VidattackError):
            log.debug("unexpected error on %s", slot.item.path, exc_info=error)
        slot.record = error_record(Path(slot.item.path), error)
        self._done(slot.item)

    def _attack(
        self, batch: list[tuple[int, Job]], slots: list[_Slot], finisher: ThreadPoolExecutor, run: Any
    ) -> None:
        jobs = [job for _, job in batch]
        try:
            outcomes = run(
                [job.sampled for job in jobs],
                self.attack,
                target=self.target,
                seed=self.seed,
                progress=self._progress(jobs),
                stop_when_fooled=self.stop,
            )
        except BaseException as e:  # every input of the batch reports it
            if len(batch) > 1 and not isinstance(e, KeyboardInterrupt | SystemExit):
                # one bad video must not fail the others: attack them one at a time
                for one in batch:
                    self._attack([one], slots, finisher, run)
                return
            for i, _ in batch:
                self._fail(slots[i], e)
            return
        for (i, job), outcome in zip(batch, outcomes, strict=True):
            job.timing.attack += outcome.seconds
            slots[i].record = finisher.submit(self._finish, slots[i].item, job, outcome)


def _guarded(item: Any, job: Callable[[], Record]) -> Record:
    try:
        return job()
    except VidattackError as e:
        return error_record(Path(item.path), e)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # a bug or an unforeseen file: report it, keep the batch going
        log.debug("unexpected error on %s", item.path, exc_info=True)
        return error_record(Path(item.path), e)


def _ready(slot: _Slot, *, wait: bool) -> bool:
    if isinstance(slot.record, Future):
        if wait:
            slot.record.result()
        return slot.record.done()
    return slot.record is not None


def _take(slot: _Slot) -> Record:
    record = slot.record
    slot.record = None
    if isinstance(record, Future):
        return record.result()
    if record is None:
        raise RuntimeError(f"no record for {slot.item.path}")
    return record
