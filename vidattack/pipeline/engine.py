"""The batch engine: many video files through the pipeline's stages, overlapped and batched.

`perturb_many` gives, for each input in order, what `perturb_file` gives for it alone (its report, or
an error record when it fails; one failed input never stops the others), but it keeps the attack busy:

    decode worker:   prepare (claim the output set, decode, sample) the next inputs
    main thread:     attack batches of up to `batch_size` consecutive inputs of one `batch_key`
    finish worker:   write, verify, render and report the inputs already attacked

Only the attack runs in the calling thread; PyAV, the encoder and torch's kernels release the GIL, so
decoding and writing overlap with it. Memory is bounded: at most `batch_size + lookahead` decoded
inputs wait for the attack and at most `batch_size + 1` attacked ones wait to be written. Batching
only groups consecutive inputs, so records come out in input order without holding any back.

Each job holds its output set's claim (`vidattack.pipeline.outputs.claim`: the set's lock, `--resume`,
`--overwrite`) from its decode to its report; a job that fails, or that is still unfinished when the
batch stops, releases it after removing what it wrote. `should_stop()` (the CLI's SIGINT/SIGTERM) is
asked between batches and between attack steps: the engine then stops attacking, lets the writes
under way finish, yields the records finished so far in order, removes the unfinished jobs' files and
ends; nothing is interrupted half-written.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidattack import cancel
from vidattack.batch_memory import memory_sized
from vidattack.errors import VidattackError

if TYPE_CHECKING:
    from vidattack.attacks.base import Attack
    from vidattack.attacks.context import StepFn
    from vidattack.models.view import ModelView
    from vidattack.pipeline.job import Job
    from vidattack.pipeline.outputs import Outputs
    from vidattack.pipeline.progress import ProgressFn
    from vidattack.pipeline.run import Runner
    from vidattack.pipeline.spec import JobSpec

log = logging.getLogger("vidattack")

Record = dict[str, Any]


def default_batch_size(device: torch.device | str) -> int:
    """Videos per attack call when not given: 8 on an accelerator, 1 on the CPU.

    On the CPU a batch gains nothing (measured with `benchmarks/throughput.py`: tiny-c3d on two cores
    already keeps them busy with one video) and costs memory; on a GPU a single 16-frame clip leaves
    most of the device idle.
    """
    return 1 if torch.device(device).type == "cpu" else 8


# How much lower the workers' CPU priority is than the attack's (a nice increment, 0-19); the
# environment variable VIDATTACK_WORKER_NICENESS overrides it (0: same priority, for comparisons).
BACKGROUND_NICENESS = 10


def background_priority() -> None:
    """Lower the calling thread's CPU priority by `BACKGROUND_NICENESS` (Linux; elsewhere nothing).

    Why: on a CPU the attack's own threads already use every core, so a decode or a write overlapped
    with it takes cores from the attack. At a lower priority the workers yield to the attack and
    fill its gaps (its Python steps, its waits for memory); the bounded queues make the attack wait
    only when the writes fall a whole batch behind. Measured with `benchmarks/throughput.py` (19
    clips, tiny-c3d, 2 cores): 6% less wall clock than workers at the attack's priority. The
    attack still slows beside them (its time in the reports grows), since two cores cannot hold a
    2-thread attack and the writes at once. Linux gives each thread its own nice value (the
    `PRIO_PROCESS` of a thread id) and threads started by this one inherit it: the encoder's threads
    and torch's OpenMP team of this thread run at the same priority.
    """
    import os
    import threading

    try:
        step = int(os.environ.get("VIDATTACK_WORKER_NICENESS", BACKGROUND_NICENESS))
        me = threading.get_native_id()
        if step > 0:
            os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + step))
    except (AttributeError, OSError, ValueError):  # not Linux, not allowed, or a bad value: keep the priority
        pass


def error_record(path: Path, error: BaseException) -> Record:
    """What a failed input reports: its input and one line of error (as the sequential batch does)."""
    from vidattack.pipeline.batch import Input
    from vidattack.pipeline.batch import error_record as record

    return record(Input(path, path.stem), error)


class _Stopped(BaseException):
    """`should_stop()` said so during an attack: unwinds the attack without looking like its error."""


def perturb_many(
    items: Sequence[Any],
    spec: JobSpec | Attack,
    *,
    model: ModelView,
    out_dir: str | Path = "vidattack-out",
    schedule: Schedule | None = None,
    progress: ProgressFn | None = None,
    **options: Any,
) -> Iterator[Record]:
    """Run the job `spec` on every input and yield its record (the report dict, or an error record) in
    input order.

    `spec` is a `JobSpec`, or an attack with the spec's fields as keywords (`make_spec`; and
    `Schedule`'s fields: `batch_size`, `lookahead`, `done`, `should_stop`). `items` have `.path` and
    either `.outputs` (an `Outputs`, as `vidattack.pipeline.names.Planned` has) or `.stem`
    (`vidattack.pipeline.batch.Input`: the set is named `stem` in `out_dir`); an item whose `.error` is
    set is that error's record. A set that `spec.resume` finds finished gives its report marked
    `skipped`. When `schedule.should_stop()` turns true the batch ends early (see the module's
    docstring): the records yielded are those of the inputs finished. Each video's report equals the
    one `perturb_file` writes for it (same seed, same outputs), timings apart. `progress` receives
    every video's `ProgressEvent`s (videos overlap: events name their video). Bad options (attack,
    target, margin) raise before the first input is opened.
    """
    from vidattack.pipeline.run import Runner
    from vidattack.pipeline.spec import JobSpec, make_spec
    from vidattack.runtime import resolve_device

    fields = {k: options.pop(k) for k in ("batch_size", "lookahead", "done", "should_stop") if k in options}
    schedule = schedule if schedule is not None else Schedule(**fields)
    if not isinstance(spec, JobSpec):
        spec = make_spec(spec, model.to(resolve_device(options.get("device", "auto"))), **options)
    runner = Runner.start(spec, model, progress)
    size = default_batch_size(runner.device) if schedule.batch_size is None else int(schedule.batch_size)
    if size < 1:
        raise ValueError(f"expected a batch size >= 1, got {size}")
    if spec.robust_to is not None:
        size = 1  # (#17) one DeliveryModel per video: a batch would share the first one's
    engine = _Engine(runner, list(items), Path(out_dir), replace(schedule, batch_size=size))
    engine.fit_memory = schedule.batch_size is None  # (#25) a default-sized batch is cut to what fits
    yield from engine.run()


@dataclass(frozen=True)
class Schedule:
    """How the engine schedules the jobs: `batch_size` videos of one clip shape and frame plan per
    attack call (None: `default_batch_size`; attacks that are not `batchable` run one video at a
    time), `lookahead` more inputs decoded ahead, `done(item)` called when an item's job ends
    (whatever the outcome, before its record is yielded), `should_stop()` asked between batches and
    attack steps."""

    batch_size: int | None = None
    lookahead: int = 2
    done: Callable[[Any], None] | None = None
    should_stop: Callable[[], bool] | None = None


@dataclass
class _Slot:
    """An input's place in the output order: its pending record, once its job is handed on."""

    item: Any
    record: Future[Record] | Record | None = None
    job: Job | None = None


class _Engine:
    def __init__(self, runner: Runner, items: list[Any], out_dir: Path, schedule: Schedule) -> None:
        self.runner, self.items, self.out_dir = runner, items, out_dir
        self.attack = runner.spec.attack
        self.batch_size = schedule.batch_size or 1
        self.lookahead = max(schedule.lookahead, 0)
        self.done, self.should_stop = schedule.done, schedule.should_stop
        self.fit_memory = False  # cut each batch into calls that fit in memory (`batch_memory`)
        self._fitting: Callable[[list[Job]], list[Any]] | None = None
        self._open: set[int] = set()  # ids of jobs holding a claim (prepared, not yet finished)
        self._jobs: dict[int, Job] = {}

    def _stopping(self) -> bool:
        return cancel.requested() is not None or (self.should_stop is not None and self.should_stop())

    def _outputs(self, item: Any) -> Outputs:
        from vidattack.pipeline.outputs import Outputs

        outputs: Outputs | None = getattr(item, "outputs", None)
        return outputs if outputs is not None else Outputs.for_stem(self.out_dir, item.stem)

    def _hold(self, job: Job) -> None:
        self._jobs[id(job)] = job
        self._open.add(id(job))

    def _let_go(self, job: Job, *, failed: bool) -> None:
        self._open.discard(id(job))
        self._jobs.pop(id(job), None)
        job.claim.release(failed=failed)

    # -- the stages as the workers run them ------------------------------------------------------

    def _prepare(self, item: Any) -> Job | Record:
        from vidattack.errors import BadVideoError
        from vidattack.pipeline.run import Skipped

        if getattr(item, "error", None) is not None:  # known when the inputs were expanded
            raise BadVideoError(item.error)
        prepared = self.runner.prepare(Path(item.path), self._outputs(item))
        if isinstance(prepared, Skipped):
            return {**prepared.report, "skipped": True}
        self._hold(prepared)
        return prepared

    def _finish(self, item: Any, job: Job, outcome: Any) -> Record:
        try:
            return _guarded(item, lambda: self.runner.finish(job, outcome).to_dict())
        finally:
            self._open.discard(id(job))  # finish released the claim, whatever happened
            self._jobs.pop(id(job), None)
            self._done(item)

    def _done(self, item: Any) -> None:
        if self.done is not None:
            self.done(item)

    def _progress(self, jobs: list[Job]) -> StepFn | None:
        # one (done, total) callback for the batch's attack, fanned out to every video's events; it is
        # also where a long attack learns that the batch should stop
        if self.runner.progress is None and self.should_stop is None:
            return None
        unit = "steps" if self.attack.white_box else "queries"
        counters = [job.tell.counter("attacking", unit) for job in jobs] if self.runner.progress else []
        for job in jobs:
            job.tell("attacking", 0, None, unit)

        def tick(step: int, total: int) -> None:
            if self._stopping():
                raise _Stopped
            for counter in counters:
                counter(step, total)

        return tick

    # -- the main loop ---------------------------------------------------------------------------

    def run(self) -> Iterator[Record]:
        from vidattack.pipeline.job import Job
        from vidattack.pipeline.stages import batch_key

        slots = [_Slot(item) for item in self.items]
        ahead = self.batch_size + self.lookahead
        decoder = ThreadPoolExecutor(
            1, thread_name_prefix="vidattack-decode", initializer=background_priority
        )
        finisher = ThreadPoolExecutor(
            1, thread_name_prefix="vidattack-finish", initializer=background_priority
        )
        prepared: deque[tuple[int, Future[Job | Record]]] = deque()
        following = 0  # next input to hand to the decoder
        emitted = 0  # next record to yield

        def feed() -> None:
            nonlocal following
            while following < len(slots) and len(prepared) < ahead and not self._stopping():
                prepared.append((following, decoder.submit(self._prepare, slots[following].item)))
                following += 1

        try:
            feed()
            while prepared and not self._stopping():
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
                    if not isinstance(job, Job):  # finished before (--resume): its report
                        prepared.popleft()
                        slots[index].record = job
                        self._done(slots[index].item)
                        feed()
                        continue
                    k = batch_key(job.sampled, self.attack)
                    if batch and (k is None or k != key):
                        break
                    prepared.popleft()
                    batch.append((index, job))
                    slots[index].job = job
                    key = k
                    feed()
                    if k is None:
                        break
                if batch:
                    try:
                        self._attack(batch, slots, finisher)
                    except (_Stopped, cancel.Cancelled):  # a signal, from a tick or a frame loop
                        break
                # hand back what is finished, in order; bound the jobs waiting to be written
                while emitted < len(slots) and _ready(slots[emitted], wait=self._too_many(slots, emitted)):
                    yield _take(slots[emitted])
                    emitted += 1
            if not self._stopping():
                while emitted < len(slots):
                    _ready(slots[emitted], wait=True)
                    yield _take(slots[emitted])
                    emitted += 1
                decoder.shutdown()
                finisher.shutdown()
                return
        except BaseException:
            self._close(decoder, finisher)
            raise
        # asked to stop: the writes under way finish, nothing new starts; what finished is handed back
        self._close(decoder, finisher)
        while emitted < len(slots) and _ready(slots[emitted], wait=False):
            yield _take(slots[emitted])
            emitted += 1

    def _close(self, decoder: ThreadPoolExecutor, finisher: ThreadPoolExecutor) -> None:
        """Start nothing new, wait for the work under way, and release every job left unfinished (its
        files removed)."""
        decoder.shutdown(wait=True, cancel_futures=True)
        finisher.shutdown(wait=True, cancel_futures=True)
        for job_id in list(self._open):
            job = self._jobs.get(job_id)
            if job is not None:
                self._let_go(job, failed=True)

    def _too_many(self, slots: list[_Slot], emitted: int) -> bool:
        pending = sum(1 for s in slots[emitted:] if isinstance(s.record, Future) and not s.record.done())
        return pending > self.batch_size + 1

    def _fail(self, slot: _Slot, error: BaseException) -> None:
        if slot.job is not None:
            self._let_go(slot.job, failed=True)
        if isinstance(error, cancel.Cancelled) and cancel.requested() is not None:
            return  # its decode stopped for the signal: unfinished, like the inputs not yet started
        if isinstance(error, KeyboardInterrupt | SystemExit | _Stopped):
            raise error
        if not isinstance(error, VidattackError):
            log.debug("unexpected error on %s", slot.item.path, exc_info=error)
        slot.record = error_record(Path(slot.item.path), error)
        self._done(slot.item)

    def _attack_calls(self, jobs: list[Job]) -> list[Any]:
        def call(part: list[Job]) -> list[Any]:
            return self.runner.attack(part, self._progress(part))

        def sampled_of(job: Job) -> Any:
            return job.sampled

        if not self.fit_memory or len(jobs) == 1:
            return call(jobs)
        if self._fitting is None:  # made once: it measures a video's cost once per clip shape
            self._fitting = memory_sized(call, sampled_of=sampled_of, precision=self.runner.spec.precision)
        return self._fitting(jobs)

    def _attack(self, batch: list[tuple[int, Job]], slots: list[_Slot], finisher: ThreadPoolExecutor) -> None:
        jobs = [job for _, job in batch]
        try:
            outcomes = self._attack_calls(jobs)
        except BaseException as e:  # every input of the batch reports it
            if isinstance(e, KeyboardInterrupt | SystemExit | _Stopped):
                raise  # the jobs are released, unfinished, when the batch closes
            if len(batch) > 1:  # one bad video must not fail the others: attack them one at a time
                for one in batch:
                    self._attack([one], slots, finisher)
                return
            for i, _ in batch:
                self._fail(slots[i], e)
            return
        for (i, job), outcome in zip(batch, outcomes, strict=True):
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
        if slot.record.cancelled():
            return False
        if wait:
            futures_wait([slot.record])
        if slot.record.done() and isinstance(slot.record.exception(), cancel.Cancelled):
            return False  # its write or render stopped for a signal: unfinished, its files removed
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
