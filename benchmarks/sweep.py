"""The PCM drift sweep (experiments/pcm_drift.py) as one `run_sweep` vs a Python
loop over a jitted single point, in the same process.

1,000 rows: 100 inference times (1 s .. 10^8.5 s, log-spaced) x 10 repeats,
per-column drift compensation. Every row programs the 784-128-10 MLP onto PCM
(its own programming and drift-exponent draws), drifts it to t and evaluates
the 1,000 held-out digits (accuracy and relative logit error). The sweep's
time includes validation, compilation and writing the Parquet store; the
loop's includes its one compilation (`eqx.filter_jit` of one row) and builds
each row's configuration and key on the host, as a user's script would. The
sweep is also run with the rows of each chunk sharded over 8 forced host
devices (a subprocess with `--xla_force_host_platform_device_count=8`).
Training the network happens before anything is timed. Prints one JSON
object per line.

    python benchmarks/sweep.py               # 1,000 rows
    python benchmarks/sweep.py --quick       # 20 rows on 100 digits
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "experiments"))

import pcm_drift  # noqa: E402

from xbar.sweeps import Grid, SweepSpec, run_sweep  # noqa: E402


def _setup(quick: bool):
    n_eval = 100 if quick else 1000
    task = pcm_drift.make_task(n_eval=n_eval, epochs=2 if quick else 20)
    base = pcm_drift.DriftPoint(
        task.base.device, compensation=pcm_drift.SelectedCompensation(2.0)
    )
    n_t, n_rep = (10, 2) if quick else (100, 10)
    spec = SweepSpec(base, axes=(Grid(t_read_s=np.logspace(0.0, 8.5, n_t)),),
                     n_repeats=n_rep, seed=1, common_keys=True)
    return task, spec, n_eval


def _sweep(task, spec, devices, vmap_rows):
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = run_sweep(spec, task.fn, task.args, store=Path(d) / "s",
                        devices=devices, vmap_rows=vmap_rows)
        seconds = time.perf_counter() - t0
    return res, seconds


def sweep_only(quick: bool, devices, vmap_rows) -> dict:
    task, spec, n_eval = _setup(quick)
    res, seconds = _sweep(task, spec, devices, vmap_rows)
    n = len(res.columns["row"])
    return {
        "what": "sweep", "devices": len(jax.devices()) if devices == "all" else 1,
        "rows": n, "n_eval": n_eval, "vmap_rows": vmap_rows,
        "chunk_size": res.chunk_size, "compilations": res.n_traces,
        "seconds": round(seconds, 2), "points_per_s": round(n / seconds, 1),
        "mean_accuracy": float(np.mean(res.columns["metric.accuracy"])),
        "backend": str(res.columns["backend"][0]),
    }


def loop(quick: bool, n_points: int | None) -> dict:
    task, spec, n_eval = _setup(quick)
    design = spec.design()
    params = task.args
    one = eqx.filter_jit(lambda pt, k: task.fn(pt, k, *params))
    root = jax.random.key(spec.seed)
    n = len(design) if n_points is None else min(n_points, len(design))
    t0 = time.perf_counter()
    accs = []
    for i in range(n):
        pt = spec.point_config({p: design.values[p][i] for p in spec.paths})
        key = jax.random.fold_in(root, int(design.repeat[i]))
        accs.append(float(one(pt, key)["accuracy"]))
    seconds = time.perf_counter() - t0
    return {
        "what": "loop over a jitted point", "rows_timed": n, "rows": len(design),
        "n_eval": n_eval, "seconds": round(seconds, 2),
        "points_per_s": round(n / seconds, 1),
        "seconds_for_all_rows": round(seconds * len(design) / n, 2),
        "mean_accuracy": float(np.mean(accs)),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--loop-points", type=int, default=None,
                   help="time the loop on this many rows and scale (default: all)")
    p.add_argument("--vmap-rows", type=int, default=1,
                   help="rows looped at a time inside a chunk (0: vmap the chunk)")
    p.add_argument("--sweep-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--devices", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    vmap_rows = a.vmap_rows or None
    if a.sweep_only:
        print(json.dumps(sweep_only(a.quick, a.devices, vmap_rows)), flush=True)
        return None
    one = sweep_only(a.quick, None, vmap_rows)
    base = loop(a.quick, a.loop_points)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    cmd = [sys.executable, __file__, "--sweep-only", "--devices", "all",
           "--vmap-rows", str(a.vmap_rows)] + (["--quick"] if a.quick else [])
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    eight = json.loads(out.stdout.strip().splitlines()[-1])
    loop_s = base["seconds_for_all_rows"]
    rows = []
    for r in (one, eight):
        rows.append({
            "name": f"pcm_drift_sweep_{r['devices']}dev", "value": r["seconds"],
            "unit": "s", "baseline": loop_s, "ratio": round(r["seconds"] / loop_s, 3),
            "target": "<= 2.9 s for 1,000 rows and ratio <= 0.1", **r,
        })
    rows.append({"name": "pcm_drift_loop", "value": loop_s, "unit": "s", **base})
    for r in rows:
        print(json.dumps(r), flush=True)
    return rows


if __name__ == "__main__":
    main()
