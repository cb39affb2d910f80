"""Running a declarative sweep: chunks of rows, one compilation, a results
store, sharding over the JAX devices of the host.

`run_sweep(spec, fn, args)` evaluates `fn(config, key, *args)` on every row
(point x repeat) of `spec`. `fn` returns a dict of scalar metrics, and may add
a `"result"` entry: an integer code or an `eqx.Enumeration` item (such as the
crossbar solver's `RESULTS`), 0 / the first item meaning success. Rows run in
chunks of a fixed size: `vmap` over the rows of a chunk inside one compiled
function, a Python loop over chunks outside (each chunk's rows come back to
the host and are written before the next one starts); the last chunk is
padded to the same size, so every chunk reuses the one compilation. With
several devices the rows of a chunk are sharded over a one-axis mesh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .chunking import bytes_per_row, chunk_size_for
from .provenance import (
    code_version,
    git_dirty,
    git_revision,
    package_versions,
    warn_if_code_changed,
)
from .spec import Design, SweepSpec, replace_fields
from .store import Store

NONFINITE = -1  # result code of a row whose metrics are not all finite
ERROR = -2  # result code of a chunk that raised (every row of it)


def _enum_names(item) -> list[str] | None:
    enum = getattr(item, "_enumeration", None)
    if enum is None:
        return None
    by_index = {int(v._value): k for k, v in enum._name_to_item.items()}
    return [by_index[i] for i in sorted(by_index)]


def _split_result(out):
    if not isinstance(out, dict):
        raise ValueError(
            "a sweep function must return a dict of scalar metrics (plus an "
            f"optional 'result' code); got {type(out).__name__}"
        )
    out = dict(out)
    code = out.pop("result", None)
    if code is None:
        code = jnp.zeros((), jnp.int32)
    elif hasattr(code, "_value"):  # an eqx.Enumeration item
        code = code._value
    code = jnp.asarray(code).astype(jnp.int32)
    metrics = {}
    for k, v in out.items():
        v = jnp.asarray(v)
        if v.shape != ():
            raise ValueError(f"metric {k!r} must be a scalar; got shape {v.shape}")
        metrics[k] = v
    if code.shape != ():
        raise ValueError(f"the result code must be a scalar; got shape {code.shape}")
    return metrics, code


class ChunkRunner:
    """The compiled function of a sweep: rows of one chunk -> metrics and codes.

    `n_traces` counts how often it was traced (= compiled): one per sweep,
    whatever the number of chunks and devices.
    """

    def __init__(self, fn: Callable, paths: Sequence[str], common_keys: bool,
                 vmap_rows: int | None = None, n_split: int = 1):
        self.fn, self.paths, self.common_keys = fn, tuple(paths), common_keys
        self.vmap_rows, self.n_split = vmap_rows, n_split
        self.n_traces = 0
        self.result_names: list[str] | None = None
        self._jit = eqx.filter_jit(self._run)

    def __call__(self, base, root_key, values, point, repeat, args):
        return self._jit(base, root_key, values, point, repeat, args)

    def _run(self, base, root_key, values, point, repeat, args):
        self.n_traces += 1

        def one(vals, p, r):
            k = jax.random.fold_in(root_key, r)
            if not self.common_keys:
                k = jax.random.fold_in(k, p)
            cfg = replace_fields(base, self.paths, [vals[q] for q in self.paths])
            out = self.fn(cfg, k, *args)
            if isinstance(out, dict) and "result" in out:
                self.result_names = _enum_names(out["result"])
            return _split_result(out)

        if self.vmap_rows is None:
            return jax.vmap(one)(values, point, repeat)
        # One group of rows per device (vmapped: the sharded axis), a loop
        # over the rows of each group (vmap_rows at a time).
        def split(a):
            return a.reshape((self.n_split, -1) + a.shape[1:])

        group = self.vmap_rows if self.vmap_rows > 1 else None

        def per_device(v, p, r):
            return jax.lax.map(lambda a: one(*a), (v, p, r), batch_size=group)

        out = jax.vmap(per_device)(*jax.tree.map(split, (values, point, repeat)))
        return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), out)


_RUNNERS: dict[tuple, ChunkRunner] = {}


def runner_for(fn: Callable, paths: Sequence[str], common_keys: bool,
               vmap_rows: int | None = None, n_split: int = 1) -> ChunkRunner:
    """The process's compiled runner for this function and swept fields, so a
    rerun (resume, another store) in the same process reuses its compilation."""
    key = (fn, tuple(paths), bool(common_keys), vmap_rows, n_split)
    try:
        return _RUNNERS[key]
    except TypeError:  # an unhashable callable: no reuse
        return ChunkRunner(fn, paths, common_keys, vmap_rows, n_split)
    except KeyError:
        if len(_RUNNERS) > 32:
            _RUNNERS.clear()
        r = _RUNNERS[key] = ChunkRunner(fn, paths, common_keys, vmap_rows, n_split)
        return r


def fingerprint(spec: SweepSpec, name: str) -> str:
    """A hash of what decides the rows: axes, repeats, seed, the base
    configuration's values and structure, and the task name."""
    h = hashlib.sha256()
    h.update(json.dumps({"name": name, **spec.to_dict()}, sort_keys=True).encode())
    arrays, static = eqx.partition(spec.base, eqx.is_array)
    h.update(str(jax.tree.structure(arrays)).encode())
    for leaf in jax.tree.leaves(arrays):
        a = np.asarray(leaf)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def base_values(base) -> dict[str, Any]:
    """Every array leaf of the base configuration by path (for the store)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(eqx.filter(base, eqx.is_array))
    return {
        jax.tree_util.keystr(p): np.asarray(v).tolist()
        for p, v in flat
        if v is not None
    }


@dataclasses.dataclass
class SweepResult:
    """What `run_sweep` returns: every row's columns, sorted by row."""

    columns: dict[str, np.ndarray]
    n_traces: int
    n_chunks_run: int
    n_chunks_skipped: int
    chunk_size: int
    seconds: float
    result_names: list[str] | None = None
    output_devices: int = 0  # devices the last chunk's rows were spread over

    @property
    def n_failed(self) -> int:
        return int(np.sum(self.columns["result_code"] != 0)) if self.columns else 0


def _devices(devices) -> list:
    if devices is None:
        return jax.devices()[:1]
    if devices == "all":
        return jax.devices()
    if isinstance(devices, int):
        if not 1 <= devices <= len(jax.devices()):
            raise ValueError(
                f"devices must be in [1, {len(jax.devices())}] (the JAX devices "
                f"here); got devices={devices}"
            )
        return jax.devices()[:devices]
    return list(devices)


class _Evaluator:
    """Everything a process needs to evaluate chunks: the compiled runner,
    placed inputs, the chunk layout; used in-process and by Ray workers."""

    def __init__(self, spec: SweepSpec, fn, args, design: Design, chunk_size: int,
                 devices=None, meta: dict | None = None,
                 vmap_rows: int | None = None):
        self.spec, self.design, self.chunk_size = spec, design, chunk_size
        devs = _devices(devices)
        self.n_devices = len(devs)
        self.runner = runner_for(fn, spec.paths, spec.common_keys, vmap_rows,
                                 self.n_devices)
        self.traces_before = self.runner.n_traces
        if chunk_size % self.n_devices:
            raise ValueError(
                f"chunk_size ({chunk_size}) must be a multiple of the number of "
                f"devices ({self.n_devices})"
            )
        self.leaf_dtypes = {
            p: np.dtype(leaf.dtype)
            for p, leaf in zip(spec.paths, _leaves(spec.base, spec.paths))
        }
        if self.n_devices > 1:
            from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

            mesh = Mesh(np.array(devs), ("sweep",))
            self.row_sharding = NamedSharding(mesh, P("sweep"))
            rep = NamedSharding(mesh, P())
            self.base = jax.device_put(spec.base, rep)
            self.args = jax.device_put(tuple(args), rep)
        else:
            self.row_sharding = None
            self.base = jax.device_put(spec.base, devs[0])
            self.args = jax.device_put(tuple(args), devs[0])
        self.root = jax.random.key(spec.seed)
        self.backend = f"{devs[0].platform} x{self.n_devices}"
        self.static_cols = {
            "git_revision": git_revision(),
            "git_dirty": str(git_dirty()),
            "versions": json.dumps(package_versions(), sort_keys=True),
            "backend": self.backend,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }
        self.meta = meta or {}
        self.output_devices = 0  # devices holding the last chunk's outputs

    @property
    def n_chunks(self) -> int:
        return -(-len(self.design) // self.chunk_size)

    def rows(self, chunk: int) -> np.ndarray:
        lo = chunk * self.chunk_size
        return np.arange(lo, min(lo + self.chunk_size, len(self.design)))

    def evaluate(self, chunk: int) -> dict[str, np.ndarray]:
        rows = self.rows(chunk)
        n = len(rows)
        padded = np.concatenate([rows, np.full(self.chunk_size - n, rows[-1])])
        d = self.design
        values = {
            p: np.asarray(d.values[p][padded], self.leaf_dtypes[p]) for p in d.paths
        }
        point = d.point[padded].astype(np.int32)
        repeat = d.repeat[padded].astype(np.int32)
        inputs = (values, point, repeat)
        if self.row_sharding is not None:
            inputs = jax.device_put(inputs, self.row_sharding)
        cols: dict[str, Any] = {
            "row": rows.astype(np.int64),
            "point": d.point[rows],
            "repeat": d.repeat[rows],
            "seed": np.full(n, self.spec.seed, np.int64),
        }
        for p in d.paths:
            cols[p] = values[p][:n]
        try:
            values_in, point_in, repeat_in = inputs
            metrics, code = self.runner(self.base, self.root, values_in, point_in,
                                        repeat_in, self.args)
            if jax.process_count() > 1:  # a jax.distributed job: gather rows
                from jax.experimental import multihost_utils

                metrics, code = multihost_utils.process_allgather(
                    (metrics, code), tiled=True
                )
            self.output_devices = len(code.sharding.device_set)
            metrics = {k: np.asarray(v)[:n] for k, v in metrics.items()}
            code = np.asarray(code)[:n].astype(np.int32)
            finite = np.ones(n, bool)
            for v in metrics.values():
                if v.dtype.kind == "f":
                    finite &= np.isfinite(v)
            code = np.where((code == 0) & ~finite, NONFINITE, code)
            error = ""
        except Exception as e:  # the whole chunk failed: record it, go on
            metrics, code = {}, np.full(n, ERROR, np.int32)
            error = f"{type(e).__name__}: {str(e)[-1500:]}"  # the message ends it
        for k, v in metrics.items():
            cols[f"metric.{k}"] = v
        cols["result_code"] = code
        cols["result"] = np.array([self.code_name(int(c), error) for c in code], object)
        for k, v in self.static_cols.items():
            cols[k] = np.full(n, v, object)
        return cols

    def code_name(self, c: int, error: str = "") -> str:
        if c == 0:
            return "successful"
        if c == NONFINITE:
            return "nonfinite"
        if c == ERROR:
            return f"error: {error}"
        names = self.runner.result_names
        if names is not None and 0 <= c < len(names):
            return names[c]
        return f"code {c}"


def _leaves(base, paths):
    from .spec import field_getter

    return field_getter(paths)(base) if paths else []


def _progress(total: int, initial: int, enabled: bool, desc: str):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - depends on the install
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit="pt", smoothing=0.1)


def run_sweep(
    spec: SweepSpec,
    fn: Callable,
    args: Sequence = (),
    *,
    store: Path | str | Store | None = None,
    name: str = "sweep",
    chunk_size: int | None = None,
    memory_budget: float | int = 512 * 2**20,
    devices: Any = None,
    ray: Any = None,
    progress: bool = False,
    meta: dict | None = None,
    on_chunk: Callable[[int], None] | None = None,
    vmap_rows: int | None = None,
) -> SweepResult:
    """Evaluate `fn(config, key, *args)` on every row of `spec`.

    Args:
        spec: base configuration, axes, repeats and seed. Every point is
            validated on the host before anything compiles.
        fn: returns a dict of scalar metrics (and optionally `"result"`).
        args: arrays shared by every row (data, weights), not swept.
        store: a results directory (`Store` or path). Finished chunks are
            skipped on a rerun; each new chunk is written atomically as soon
            as it is done. None keeps the results in memory only.
        name: the task's name (part of the store's fingerprint).
        chunk_size: rows per chunk (rounded up to a multiple of the device
            count); default from `memory_budget` (bytes per device) and
            `bytes_per_row`. An existing store keeps its own.
        devices: None (the default device), "all", a count, or a list of
            JAX devices: the rows of each chunk are sharded over them.
        ray: a `RayCluster` to farm the chunks out to Ray workers instead
            (needs a store every worker can reach).
        progress: show a tqdm bar (points done, ETA, failures).
        meta: extra JSON data recorded in the store's manifest.
        on_chunk: called with each chunk number when it is written.
        vmap_rows: None vmaps all rows of a chunk at once; k > 1 vmaps k rows
            at a time and loops over those groups inside the compiled chunk
            (`lax.map`); 1 loops row by row. For rows that are already large
            matrix products (a network on a batch of inputs), vmapping adds a
            batch axis to every product and can be slower than the loop.
    """
    t0 = time.perf_counter()
    if vmap_rows is not None and (not isinstance(vmap_rows, int) or vmap_rows < 1):
        raise ValueError(
            f"vmap_rows must be None or an integer >= 1; got {vmap_rows!r}"
        )
    design = spec.validate()
    n_rows = len(design)
    if isinstance(store, str | Path):
        store = Store(store)
    n_dev = len(_devices(devices)) if ray is None else 1
    if chunk_size is None:
        per_row = bytes_per_row(spec, fn, args) if vmap_rows is None else 1
        chunk_size = chunk_size_for(n_rows, per_row, memory_budget, n_dev, vmap_rows)
    elif not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1; got {chunk_size!r}")
    else:  # a whole number of rows per device
        chunk_size += (-chunk_size) % n_dev
    finished: set[int] = set()
    if store is not None:
        manifest = {
            "name": name,
            "fingerprint": fingerprint(spec, name),
            "chunk_size": chunk_size,
            "n_rows": n_rows,
            "n_points": design.n_points,
            "paths": list(spec.paths),
            "spec": spec.to_dict(),
            "base": base_values(spec.base),
            "meta": meta or {},
            "code": code_version(),
        }
        manifest = store.open(manifest)
        warn_if_code_changed(store.path, manifest.get("code"), code_version())
        chunk_size = int(manifest["chunk_size"])
        if chunk_size % n_dev:
            raise ValueError(
                f"the store {store.path} was started with chunks of {chunk_size} "
                f"rows, not a multiple of the {n_dev} devices asked for: resume it "
                "on a device count that divides the chunk size"
            )
        finished = store.finished()
    n_chunks = -(-n_rows // chunk_size)
    todo = [c for c in range(n_chunks) if c not in finished]
    done_rows = sum(
        min(chunk_size, n_rows - c * chunk_size) for c in finished if c < n_chunks
    )
    bar = _progress(n_rows, done_rows, progress, name)
    in_memory: dict[int, dict] = {}
    failures = 0

    def record(chunk: int, cols: dict | None, n_failed: int):
        nonlocal failures
        failures += n_failed
        if cols is not None:
            if store is not None:
                store.write_chunk(chunk, cols)
            else:
                in_memory[chunk] = cols
        if bar is not None:
            bar.update(min(chunk_size, n_rows - chunk * chunk_size))
            bar.set_postfix(failed=failures)
        if on_chunk is not None:
            on_chunk(chunk)

    n_traces, names, output_devices = 0, None, 0
    try:
        if ray is not None:
            if store is None:
                raise ValueError("a sweep on Ray needs a store the workers can reach")
            n_traces = ray.run(spec, fn, args, design, chunk_size, store, todo,
                               record, meta or {}, vmap_rows)
        elif todo:
            ev = _Evaluator(spec, fn, args, design, chunk_size, devices, meta,
                            vmap_rows)
            for c in todo:
                cols = ev.evaluate(c)
                record(c, cols, int(np.sum(cols["result_code"] != 0)))
            n_traces = ev.runner.n_traces - ev.traces_before
            names, output_devices = ev.runner.result_names, ev.output_devices
    finally:
        if bar is not None:
            bar.close()
    if store is not None:
        columns = store.read()
    elif in_memory:
        columns = {
            k: np.concatenate([in_memory[c][k] for c in sorted(in_memory)])
            for k in in_memory[min(in_memory)]
        }
    else:
        columns = {}
    return SweepResult(
        columns=columns,
        n_traces=n_traces,
        n_chunks_run=len(todo),
        n_chunks_skipped=n_chunks - len(todo),
        chunk_size=chunk_size,
        seconds=time.perf_counter() - t0,
        result_names=names,
        output_devices=output_devices,
    )
