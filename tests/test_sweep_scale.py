"""Sweeps at scale, each in its own process: kill -9 and resume, sharding over
8 forced host devices, and a local Ray of 2 workers with one killed."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import sweep_tasks

from xbar.sweeps import Store, run_sweep

SCRIPT = Path(__file__).resolve().parent / "sweep_subprocess.py"


def _env(**extra):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_kill_9_mid_sweep_loses_nothing_and_resume_completes(tmp_path):
    store = tmp_path / "st"
    spec = sweep_tasks.scale_spec()  # 12 points x 4 repeats = 48 rows
    n_chunks = 24  # chunks of 2
    log = tmp_path / "log.txt"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "slow", str(store)],
                                env=_env(), stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while len(Store(store).finished()) < 3:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the sweep never wrote 3 chunks"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = Store(store).finished()
    assert 3 <= len(done) < n_chunks, "the kill must land mid-sweep"
    # Every finished chunk is a whole, readable file; no partial file counts.
    before = {c: _digest(Store(store).chunk_path(c)) for c in done}
    survived = Store(store).read()
    assert len(survived["row"]) == 2 * len(done)

    res = run_sweep(spec, sweep_tasks.cells, store=store, chunk_size=2)
    # The rerun computed only the missing chunks and left the others alone.
    assert res.n_chunks_skipped == len(done)
    assert res.n_chunks_run == n_chunks - len(done)
    assert {c: _digest(Store(store).chunk_path(c)) for c in done} == before
    cols = res.columns
    np.testing.assert_array_equal(cols["row"], np.arange(48))  # none lost, none twice
    for k in ("metric.rel_rms", "sigma_read"):
        keep = np.isin(cols["row"], survived["row"])
        np.testing.assert_array_equal(cols[k][keep], survived[k])
    # And the whole equals an uninterrupted run of the same sweep.
    fresh = run_sweep(spec, sweep_tasks.cells, chunk_size=2)
    np.testing.assert_array_equal(cols["metric.rel_rms"],
                                  fresh.columns["metric.rel_rms"])
    assert len(set(cols["worker"])) == 2  # the killed process and this one


def test_sharded_over_8_devices_equals_unsharded(tmp_path):
    out = tmp_path / "shard.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "shard", str(out)],
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
        check=True, capture_output=True, timeout=300,
    )
    r = json.loads(out.read_text())
    assert r["n_devices"] == 8 and r["backend"] == ["cpu x8"]
    # The rows of each chunk were spread over all 8 devices...
    assert (r["output_devices"], r["output_devices_plain"]) == (8, 1)
    # ...in 3 chunks of 16 rows, with one compilation for all of them...
    assert (r["chunks"], r["traces_sharded"]) == (3, 1)
    assert r["rows"] == list(range(48))
    # ...and the same keys give the same numbers, bit for bit (every row is
    # computed by the same per-row program; only its placement differs).
    assert r["equal"] == {"metric.rel_rms": True, "metric.g_mean": True}


def test_ray_two_workers_one_killed(tmp_path):
    out = tmp_path / "ray.json"
    store = tmp_path / "st"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "ray", str(store), str(out)],
        env=_env(RAY_DISABLE_USAGE_STATS="1"), capture_output=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    r = json.loads(out.read_text())
    # One worker was killed mid-sweep and replaced; its chunk was retried.
    assert len(r["killed"]) == 1 and r["restarts"] == 1
    # Every row exactly once, equal to the in-process run with the same keys.
    assert r["rows"] == list(range(16))
    assert r["equal_local"]
    # Chunks were written by the workers themselves (not the driver), each
    # compiling once.
    assert r["traces_per_worker"] == 1
    writers = {int(w.split(":")[1]) for w in r["workers"]}
    survivor = set(r["pids"]) - set(r["killed"])
    replacement = set(r["all_pids"]) - set(r["pids"])
    # The survivor and the replacement (which took the killed worker's chunk)
    # wrote chunks; the killed one only if it finished a chunk before dying.
    assert len(replacement) == 1
    assert survivor | replacement <= writers <= set(r["all_pids"])
    assert os.getpid() not in writers
