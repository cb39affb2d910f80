"""Sweeps as data: a TOML file names a task and its axes; a results store
names the task that can redraw it.

A *task* is what a sweep evaluates, made by a factory function
`module:function` that the TOML file names:

```toml
name = "pcm_drift"
task = "pcm_drift:make_task"   # module:function, returns a Task
path = ".."                    # folder of the module, relative to this file
store = "../../figures/pcm_drift.sweep"
figure = "../../figures/pcm_drift.png"

[options]                      # keyword arguments of the factory
n_eval = 1000

[sweep]
n_repeats = 10
seed = 0
common_keys = true
memory_budget_mb = 512         # or chunk_size = 100
vmap_rows = 1                  # loop row by row inside a chunk (default: vmap)

[[axes]]
kind = "grid"
fields = { t_read_s = { logspace = [0, 8.5, 100] } }
```

`run_config` builds the task and the `SweepSpec` and runs it; the store's
manifest keeps the task reference, so `xbar plot STORE` can import the task's
module and call its `plot(manifest, columns, png)` from the store alone
(`plot_function`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .engine import SweepResult, run_sweep
from .spec import SweepSpec, axis_from_dict

_TOP = {"name", "task", "path", "store", "figure", "options", "sweep", "axes"}
_SWEEP = {"n_repeats", "seed", "common_keys", "memory_budget_mb", "chunk_size",
          "vmap_rows"}


@dataclasses.dataclass
class Task:
    """What a sweep evaluates.

    Attributes:
        base: the base configuration (a pytree whose array fields the axes
            sweep).
        fn: `fn(config, key, *args) -> dict` of scalar metrics (and an
            optional `"result"` code).
        args: arrays shared by every row (data, weights).
        meta: JSON data recorded in the store (e.g. the float accuracy).
    """

    base: Any
    fn: Callable
    args: tuple = ()
    meta: dict = dataclasses.field(default_factory=dict)


def _import(ref: str, path: Path | None) -> Any:
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValueError(f"task must be 'module:function'; got task={ref!r}")
    if path is not None and str(path) not in sys.path:
        sys.path.insert(0, str(path))
    mod, attr = ref.split(":")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import task {ref!r}: {e}") from e


def load_config(path: Path | str) -> dict:
    """Read and check a sweep TOML file; relative paths resolved against it."""
    path = Path(path)
    cfg = tomllib.loads(path.read_text())
    unknown = set(cfg) - _TOP
    if unknown:
        raise ValueError(
            f"{path}: unknown keys {sorted(unknown)} (allowed: {sorted(_TOP)})"
        )
    for k in ("name", "task"):
        if k not in cfg:
            raise ValueError(f"{path}: missing key {k!r}")
    sweep = cfg.get("sweep", {})
    unknown = set(sweep) - _SWEEP
    if unknown:
        raise ValueError(f"{path}: unknown [sweep] keys {sorted(unknown)}")
    here = path.resolve().parent
    for k in ("path", "store", "figure"):
        if k in cfg:
            cfg[k] = str((here / cfg[k]).resolve())
    return cfg


def build(cfg: dict) -> tuple[Task, SweepSpec]:
    """The task (from its factory and options) and the sweep specification."""
    factory = _import(cfg["task"], Path(cfg["path"]) if "path" in cfg else None)
    task = factory(**cfg.get("options", {}))
    if not isinstance(task, Task):
        raise ValueError(f"{cfg['task']} must return an xbar.sweeps.Task; got {task!r}")
    sw = cfg.get("sweep", {})
    axes = []
    for i, a in enumerate(cfg.get("axes", [])):
        try:
            axes.append(axis_from_dict(a))
        except ValueError as e:
            raise ValueError(f"axes[{i}]: {e}") from None
    spec = SweepSpec(
        task.base,
        axes=tuple(axes),
        n_repeats=sw.get("n_repeats", 1),
        seed=sw.get("seed", 0),
        common_keys=sw.get("common_keys", False),
    )
    return task, spec


def run_config(
    path: Path | str,
    *,
    store: Path | str | None = None,
    devices: Any = None,
    ray: Any = None,
    progress: bool = False,
    chunk_size: int | None = None,
) -> SweepResult:
    """Run the sweep a TOML file describes into its store (or `store`)."""
    cfg = load_config(path)
    if ray is not None:
        # Start Ray before the task factory runs JAX: Ray forks its services,
        # and forking a process whose JAX threads are running draws a warning.
        ray._init()
    task, spec = build(cfg)
    store = store if store is not None else cfg.get("store")
    if store is None:
        raise ValueError(f"{path}: no store given (key 'store' or --store)")
    sw = cfg.get("sweep", {})
    if ray is not None and "path" in cfg:
        ray.sys_path = [cfg["path"], *ray.sys_path]
    # The task's folder relative to the store, so a store moved together with
    # its checkout (or committed to one) still finds the task's plot.
    rel = os.path.relpath(cfg["path"], Path(store).resolve()) if "path" in cfg else None
    meta = {
        "task": cfg["task"],
        "path": rel,
        "options": cfg.get("options", {}),
        "task_meta": task.meta,
    }
    res = run_sweep(
        spec, task.fn, task.args, store=store, name=cfg["name"],
        chunk_size=chunk_size or sw.get("chunk_size"),
        memory_budget=float(sw.get("memory_budget_mb", 512)) * 2**20,
        devices=devices, ray=ray, progress=progress, meta=meta,
        vmap_rows=sw.get("vmap_rows"),
    )
    return res


def plot_function(manifest: dict, store: Path | str) -> Callable | None:
    """The `plot(manifest, columns, png)` of the module that made a store's
    task (a module-level function beside its factory), or None."""
    meta = manifest.get("meta", {})
    if not meta.get("task"):
        return None
    if meta.get("path"):
        path = str((Path(store).resolve() / meta["path"]).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        mod = importlib.import_module(meta["task"].split(":")[0])
    except ImportError:
        return None
    return getattr(mod, "plot", None)
