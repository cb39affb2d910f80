"""Runs a sweep in a separate process for the sweep tests (a process to kill,
a process with 8 forced host devices, a process that drives Ray).

    python tests/sweep_subprocess.py slow STORE      # chunks of 2, 0.2 s apart
    python tests/sweep_subprocess.py shard OUT.json  # sharded vs unsharded
    python tests/sweep_subprocess.py ray STORE OUT.json
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import sweep_tasks  # noqa: E402

from xbar.sweeps import RayCluster, Store, run_sweep  # noqa: E402


def slow(store):
    # A slow consumer: each chunk is written, then the process waits, so a
    # kill lands mid-sweep between (or during) chunk writes.
    run_sweep(sweep_tasks.scale_spec(), sweep_tasks.cells, store=store,
              chunk_size=2, on_chunk=lambda c: time.sleep(0.2))


def shard(out):
    import jax

    spec = sweep_tasks.scale_spec()
    sharded = run_sweep(spec, sweep_tasks.cells, chunk_size=16, devices="all")
    plain = run_sweep(spec, sweep_tasks.cells, chunk_size=16)
    cols_s, cols_p = sharded.columns, plain.columns
    Path(out).write_text(json.dumps({
        "n_devices": len(jax.devices()),
        "traces_sharded": sharded.n_traces,
        "output_devices": sharded.output_devices,
        "output_devices_plain": plain.output_devices,
        "chunks": sharded.n_chunks_run,
        "backend": sorted(set(cols_s["backend"].tolist())),
        "rows": cols_s["row"].tolist(),
        "max_abs_diff": {
            k: float(np.max(np.abs(cols_s[k] - cols_p[k])))
            for k in ("metric.rel_rms", "metric.g_mean")
        },
        "equal": {
            k: bool(np.array_equal(cols_s[k], cols_p[k]))
            for k in ("metric.rel_rms", "metric.g_mean")
        },
    }))


def ray(store, out):
    spec = sweep_tasks.scale_spec(n_sigma=4, n_repeats=2)
    pids: list[int] = []
    killed: list[int] = []

    def kill_other(chunk):
        # The first chunk back: kill the worker that did not write it, which
        # is busy with its own chunk (or has just finished it).
        if not killed:
            import pyarrow.parquet as pq

            table = pq.read_table(Store(store).chunk_path(chunk))
            writer = table.column("worker")[0].as_py()
            victim = next(p for p in pids if not writer.endswith(f":{p}"))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    cluster = RayCluster(num_workers=2, on_worker_start=pids.extend)
    t0 = time.perf_counter()
    res = run_sweep(spec, sweep_tasks.cells, store=store, chunk_size=2, ray=cluster,
                    on_chunk=kill_other)
    seconds = time.perf_counter() - t0
    local = run_sweep(spec, sweep_tasks.cells, chunk_size=2)
    Path(out).write_text(json.dumps({
        "seconds": seconds,
        "traces_per_worker": res.n_traces,
        "restarts": cluster.worker_restarts,
        "killed": killed,
        "pids": pids,
        "all_pids": cluster.worker_pids,
        "rows": res.columns["row"].tolist(),
        "workers": sorted(set(res.columns["worker"].tolist())),
        "equal_local": bool(np.array_equal(res.columns["metric.rel_rms"],
                                           local.columns["metric.rel_rms"])),
    }))


if __name__ == "__main__":
    {"slow": slow, "shard": shard, "ray": ray}[sys.argv[1]](*sys.argv[2:])
