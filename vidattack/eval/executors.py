"""Where the videos of an eval are processed: in this process, or as Ray tasks.

An executor takes chunks of items and yields each chunk's records as they finish (in any order); the
driver (`vidattack.eval.run`) alone writes them, so a Ray run's records are the same as a local run's.
Sharding (`--shard K/N`) is not an executor: it chooses which items a run sees
(`Dataset.shard`), and any executor runs the shard.

Ray is imported only by `RayExecutor`, and only when it runs.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vidattack.errors import UsageError
from vidattack.eval.worker import WorkOptions, evaluate_chunk

if TYPE_CHECKING:
    from vidattack.data.datasets import Item
    from vidattack.eval.grid import Config
    from vidattack.models.view import ModelView

log = logging.getLogger("vidattack")

Records = list[dict[str, Any]]
# A unit of work: some videos and the configurations each of them still needs.
Chunk = tuple[Sequence["Item"], Sequence["Config"]]


class Executor(Protocol):
    """Runs `evaluate_chunk` over chunks of (videos, configurations) and yields each chunk's records
    when done (in any order)."""

    def map(
        self,
        view: ModelView,
        chunks: Sequence[Chunk],
        options: WorkOptions,
    ) -> Iterator[Records]: ...


class LocalExecutor:
    """In this process, one chunk after another (the reference every other executor must match)."""

    def map(
        self,
        view: ModelView,
        chunks: Sequence[Chunk],
        options: WorkOptions,
    ) -> Iterator[Records]:
        view.to(options.device)
        for items, configs in chunks:
            yield evaluate_chunk(view, items, configs, options)


# Worker processes keep the model they were sent, keyed by its object id: the reference travels
# inside a list so Ray does not resolve it for every task, and a worker running many chunks fetches,
# deserializes and moves the model to its device once.
_WORKER_MODELS: dict[str, ModelView] = {}


def _ray_task(
    model_ref: list[Any],
    chunk: Sequence[Item],
    configs: Sequence[Config],
    options: WorkOptions,
) -> Records:
    import ray

    key = model_ref[0].hex()
    view = _WORKER_MODELS.get(key)
    if view is None:
        _WORKER_MODELS.clear()
        view = _WORKER_MODELS[key] = ray.get(model_ref[0]).to(options.device)
    return evaluate_chunk(view, chunk, configs, options)


def package_root() -> str:
    """The folder that holds the `vidattack` package this process imported (for Ray workers)."""
    import vidattack

    return str(Path(vidattack.__file__).resolve().parents[1])


@dataclass
class RayExecutor:
    """Videos as Ray tasks, one task per chunk.

    `address`: `"auto"` joins a running cluster (`ray start --head` / a cluster launcher) and starts a
    local instance when there is none; any other value is passed to `ray.init`. When Ray is already
    initialized in this process it is used as it is. `num_gpus`: GPUs per task; None asks for one when
    the attack runs on CUDA (`options.device`) and none otherwise. `num_cpus`: CPUs per task (Ray then
    sets the task's OMP threads to it). `max_in_flight`: tasks submitted ahead of the finished ones
    (None: twice the cluster's CPUs), so a huge data set does not flood the object store.
    A local instance this executor started is shut down when the map ends.
    """

    address: str | None = "auto"
    num_cpus: float = 1
    num_gpus: float | None = None
    max_in_flight: int | None = None
    init_kwargs: dict[str, Any] = field(default_factory=dict)

    def _init(self) -> bool:
        """Connect or start Ray; True when this call started a local instance."""
        import ray

        if ray.is_initialized():
            return False
        # Ray's own messages follow vidattack's log level (-q: errors only; -v: Ray's info too).
        common = {"logging_level": max(log.getEffectiveLevel(), logging.INFO), **self.init_kwargs}
        if self.address == "auto":
            try:
                ray.init(address="auto", **common)
                log.info("joined the Ray cluster at %s", ray.get_runtime_context().gcs_address)
                return False
            except ConnectionError:
                log.info("no running Ray cluster; starting a local instance")
            kwargs = {
                "include_dashboard": False,
                # Workers import the same vidattack as this process (a source checkout included).
                "runtime_env": {"env_vars": {"PYTHONPATH": _pythonpath()}},
                **common,
            }
            ray.init(**kwargs)
            return True
        ray.init(address=self.address, **common)
        return False

    def map(
        self,
        view: ModelView,
        chunks: Sequence[Chunk],
        options: WorkOptions,
    ) -> Iterator[Records]:
        try:
            import ray
        except ImportError:
            raise UsageError(
                'the ray executor needs Ray: pip install "vidattack[ray]" (or pip install ray)'
            ) from None
        started = self._init()
        try:
            gpus = self.num_gpus
            if gpus is None:
                gpus = 1 if str(options.device).startswith("cuda") else 0
            task = ray.remote(_ray_task).options(num_cpus=self.num_cpus, num_gpus=gpus, max_retries=1)
            # The model travels on the CPU: a worker moves it to its own device once.
            cpu_view = view if _on_cpu(view) else copy.deepcopy(view).to("cpu")
            view_ref = ray.put(cpu_view)
            limit = self.max_in_flight or max(2, int(2 * ray.cluster_resources().get("CPU", 1)))
            pending: list[Any] = []
            todo = iter(chunks)
            exhausted = False
            while pending or not exhausted:
                while not exhausted and len(pending) < limit:
                    chunk = next(todo, None)
                    if chunk is None:
                        exhausted = True
                        break
                    items, configs = chunk
                    pending.append(task.remote([view_ref], list(items), list(configs), options))
                if not pending:
                    break
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield ray.get(ref)
        finally:
            if started:
                ray.shutdown()


def _on_cpu(view: ModelView) -> bool:
    return all(p.device.type == "cpu" for p in view.net.parameters())


def _pythonpath() -> str:
    parts = [package_root()]
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def get_executor(name: str | Executor, *, address: str | None = "auto") -> Executor:
    """`"local"` or `"ray"` (with `address`), or an executor object as it is."""
    if not isinstance(name, str):
        return name
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address)
    raise UsageError(f"expected --executor local or ray, got {name!r}")
