"""Farming a sweep's chunks out to Ray workers (`pip install xbar-sim[cluster]`).

Each worker is a Ray actor that receives the sweep once (specification,
function, shared arrays), compiles it on its first chunk and then evaluates
chunks by number, writing each one to the shared results store itself. The
driver only hands out chunk numbers: when a worker dies, the chunk it held is
handed to a fresh worker, and because a chunk's file name is its number and
files are renamed into place, a chunk that was written before its worker died
is rewritten with the same rows, never duplicated.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast


def _ray():
    try:
        import ray  # pyright: ignore[reportMissingImports]
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "sweeps on a Ray cluster need ray: pip install 'xbar-sim[cluster]'"
        ) from e
    return ray


class _Worker:
    """A Ray actor's body: one evaluator, many chunks."""

    def __init__(self, payload: bytes, store_path: str, sys_path: Sequence[str]):
        # The sweep arrives pickled by the driver and is unpickled only here,
        # after the folders of the task's modules are on sys.path.
        for p in reversed(list(sys_path)):
            if p not in sys.path:
                sys.path.insert(0, p)
        from ray import cloudpickle  # pyright: ignore[reportMissingImports]

        from .engine import _Evaluator
        from .store import Store

        spec, fn, args, design, chunk_size, meta, vmap_rows = cloudpickle.loads(
            payload
        )
        self.ev = _Evaluator(spec, fn, args, design, chunk_size, None, meta,
                             vmap_rows)
        self.store = Store(store_path)

    def pid(self) -> int:
        return os.getpid()

    def run(self, chunk: int) -> tuple[int, int, int]:
        """Evaluate and write one chunk; (chunk, failed rows, traces so far)."""
        import numpy as np

        cols = self.ev.evaluate(chunk)
        self.store.write_chunk(chunk, cols)
        traces = self.ev.runner.n_traces - self.ev.traces_before
        return chunk, int(np.sum(cols["result_code"] != 0)), traces


@dataclasses.dataclass
class RayCluster:
    """Where and how wide to run a sweep on Ray.

    Args:
        address: a running cluster's address (`"ray://host:10001"`, or
            `"auto"` on a cluster node); None starts a local Ray on this
            machine with `num_workers` CPUs and no dashboard (Ray's token
            authentication, its default, guards its ports).
        num_workers: actors evaluating chunks in parallel.
        cpus_per_worker: CPUs each actor reserves (its JAX threads).
        max_worker_restarts: how many dead workers are replaced before the
            sweep gives up (their chunks are always retried).
        sys_path: folders prepended to each worker's `sys.path` (where the
            sweep function's module lives, when it is not installed).
        on_worker_start: called with the list of worker process ids once all
            have started (used by the tests to kill one).
    """

    address: str | None = None
    num_workers: int = 2
    cpus_per_worker: float = 1.0
    max_worker_restarts: int = 4
    sys_path: Sequence[str] = ()
    on_worker_start: Callable[[list[int]], None] | None = None
    worker_restarts: int = 0
    worker_pids: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if not isinstance(self.num_workers, int) or self.num_workers < 1:
            raise ValueError(
                f"num_workers must be an integer >= 1; got {self.num_workers!r}"
            )

    def _init(self):
        ray = _ray()
        if not ray.is_initialized():
            if self.address is None:
                ray.init(
                    num_cpus=max(1, int(self.num_workers * self.cpus_per_worker)),
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                ray.init(address=self.address, log_to_driver=False)
        return ray

    def run(self, spec, fn, args, design, chunk_size, store, todo, record,
            meta, vmap_rows=None) -> int:
        """Evaluate chunks `todo` on Ray workers; `record(chunk, None,
        n_failed)` after each. Returns the most traces any worker made."""
        if not todo:
            return 0
        ray = self._init()
        from ray.exceptions import RayActorError

        actor_cls = ray.remote(num_cpus=self.cpus_per_worker, max_restarts=0)(_Worker)
        from ray import cloudpickle

        payload = ray.put(cloudpickle.dumps(  # pyright: ignore[reportPrivateImportUsage]
            (spec, fn, tuple(args), design, chunk_size, meta, vmap_rows)
        ))
        sys_path = [*self.sys_path, *[p for p in sys.path if p and os.path.isdir(p)]]
        store_path = str(store.path.resolve())

        def start():
            return actor_cls.remote(payload, store_path, sys_path)

        workers = [start() for _ in range(min(self.num_workers, len(todo)))]
        self.worker_pids = ray.get([w.pid.remote() for w in workers])
        if self.on_worker_start is not None:
            self.on_worker_start(list(self.worker_pids))
        queue: deque[int] = deque(todo)
        running: dict[Any, tuple[Any, int]] = {}
        idle = list(workers)
        max_traces = 0
        while queue or running:
            while queue and idle:
                w = idle.pop()
                c = queue.popleft()
                running[w.run.remote(c)] = (w, c)
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            w, c = running.pop(ref)
            try:
                chunk, n_failed, traces = ray.get(ref)
            except RayActorError:
                # The worker died: its chunk goes back to the queue, a fresh
                # worker takes its place.
                self.worker_restarts += 1
                if self.worker_restarts > self.max_worker_restarts:
                    raise RuntimeError(
                        f"{self.worker_restarts} Ray workers died; giving up (raise "
                        "max_worker_restarts to allow more)"
                    ) from None
                queue.appendleft(c)
                fresh = start()
                self.worker_pids.append(ray.get(fresh.pid.remote()))
                idle.append(fresh)
                continue
            max_traces = max(max_traces, traces)
            idle.append(w)
            record(chunk, None, n_failed)
        for w in idle:
            ray.kill(cast(Any, w))
        return max_traces
