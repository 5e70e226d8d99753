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
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
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
    from vidattack.pipeline.stages import Outputs

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


@dataclass(frozen=True)
class EngineItem:
    """One input: its path and output stem (`vidattack.pipeline.batch.Item` has the same shape)."""

    path: Path
    stem: str


def error_record(path: Path, error: BaseException) -> Record:
    """What a failed input reports: its input and one line of error (as the sequential batch does)."""
    from vidattack.pipeline.batch import Item
    from vidattack.pipeline.batch import error_record as record

    return record(Item(path, path.stem), error)


class _Stopped(BaseException):
    """`should_stop()` said so during an attack: unwinds the attack without looking like its error."""


def perturb_many(
    items: Sequence[Any],
    attack: Attack,
    *,
    model: ModelView,
    out_dir: str | Path = "vidattack-out",
    target: str | int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    resume: bool = False,
    device: str | torch.device = "auto",
    heatmaps: bool = True,
    batch_size: int | None = None,
    stop_when_fooled: float | None = None,
    pictures: Collection[str] | None = None,
    max_memory: int | None = None,
    progress: ProgressFn | None = None,
    done: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    lookahead: int = 2,
    delivery: DeliverySpec | None = None,
    robust_to: DeliverySpec | None = None,
) -> Iterator[Record]:
    """Attack every input and yield its record (the report dict, or an error record) in input order.

    `items` have `.path` and either `.outputs` (an `Outputs`, as `vidattack.pipeline.outputs.Planned`
    has) or `.stem` (`vidattack.pipeline.batch.Item`: the set is named `stem` in `out_dir`); an item
    whose `.error` is set is that error's record. `overwrite`, `resume`, `max_memory`, `heatmaps` and
    `pictures` are `perturb_file`'s: a set that `resume` finds finished gives its report marked
    `skipped`. When `should_stop()` turns true the batch ends early (see the module's docstring): the
    records yielded are those of the inputs finished. Each video's report equals the
    one `perturb_file` writes for it (same seed, same outputs), timings apart. `batch_size` videos of
    the same clip shape and frame plan go through the attack together (default `default_batch_size`);
    attacks that are not `batchable` run one video at a time. `progress` receives every video's
    `ProgressEvent`s (videos overlap: events name their video); `done(item)` is called when its job
    ends, whatever the outcome, before its record is yielded. Bad options (attack, target, margin) raise
    before the first input is opened.
    """
    from vidattack.batch_memory import memory_sized
    from vidattack.pipeline import resolve_device, warnings_for
    from vidattack.pipeline.stages import resolve_target, run_attack_batch

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
    )
    engine.resume, engine.max_memory, engine.should_stop = resume, max_memory, should_stop
    engine.delivery, engine.robust_to = delivery, robust_to
    engine.run_batch = None if batch_size is not None else memory_sized(run_attack_batch)  # (#25)
    yield from engine.run()


@dataclass
class _Slot:
    """An input's place in the output order: its pending record, once its job is handed on."""

    item: Any
    record: Future[Record] | Record | None = None
    job: Job | None = None


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
    ) -> None:
        self.items, self.attack, self.view, self.device = items, attack, view, device
        self.out_dir, self.target, self.seed, self.overwrite = out_dir, target, seed, overwrite
        self.heatmaps, self.batch_size, self.stop, self.lookahead = heatmaps, batch_size, stop, lookahead
        self.pictures, self.warnings = pictures, warnings
        self.progress, self.done = progress, done
        self.resume = False
        self.max_memory: int | None = None
        self.should_stop: Callable[[], bool] | None = None
        self.delivery: DeliverySpec | None = None
        self.robust_to: DeliverySpec | None = None
        self.run_batch: Callable[..., Any] | None = None  # None: run_attack_batch, not sized to memory
        self._open: set[int] = set()  # ids of jobs holding a claim (prepared, not yet finished)
        self._jobs: dict[int, Job] = {}

    def _stopping(self) -> bool:
        return self.should_stop is not None and self.should_stop()

    def _outputs(self, item: Any) -> Outputs:
        from vidattack.pipeline import output_set

        outputs: Outputs | None = getattr(item, "outputs", None)
        if outputs is None:
            return output_set(
                Path(item.path), self.out_dir, item.stem, heatmaps=self.heatmaps, pictures=self.pictures
            )
        return outputs if self.heatmaps else replace(outputs, kinds=outputs.kinds - {"heatmaps", "plots"})

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
        from vidattack.pipeline import Job, prepare_job

        if getattr(item, "error", None) is not None:  # known when the inputs were expanded
            raise BadVideoError(item.error)
        prepared = prepare_job(
            Path(item.path),
            self.attack,
            self.view,
            self.device,
            self._outputs(item),
            seed=self.seed,
            target=self.target,
            overwrite=self.overwrite,
            resume=self.resume,
            progress=self.progress,
            max_memory=self.max_memory,
            delivery=self.delivery,
            robust_to=self.robust_to,
        )
        if isinstance(prepared, Job):
            self._hold(prepared)
        return prepared

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
                    pictures=self.pictures,
                    warnings=self.warnings,
                    delivery=self.delivery,
                    robust_to=self.robust_to,
                ),
            )
        finally:
            self._open.discard(id(job))  # finish_job released the claim, whatever happened
            self._jobs.pop(id(job), None)
            self._done(item)

    def _done(self, item: Any) -> None:
        if self.done is not None:
            self.done(item)

    def _progress(self, jobs: list[Job]) -> Callable[[int, int], None] | None:
        # one (done, total) callback for the batch's attack, fanned out to every video's events; it is
        # also where a long attack learns that the batch should stop
        if self.progress is None and self.should_stop is None:
            return None
        unit = "steps" if self.attack.white_box else "queries"
        counters = [job.tell.counter("attacking", unit) for job in jobs] if self.progress else []
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
        from vidattack.pipeline import Job
        from vidattack.pipeline.stages import batch_key, run_attack_batch

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
                        self._attack(batch, slots, finisher, self.run_batch or run_attack_batch)
                    except _Stopped:
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
        if isinstance(error, KeyboardInterrupt | SystemExit | _Stopped):
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
            if len(batch) > 1 and not isinstance(e, KeyboardInterrupt | SystemExit | _Stopped):
                # one bad video must not fail the others: attack them one at a time
                for one in batch:
                    self._attack([one], slots, finisher, run)
                return
            if isinstance(e, KeyboardInterrupt | SystemExit | _Stopped):
                raise  # the jobs are released, unfinished, when the batch closes
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
        if slot.record.cancelled():
            return False
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
