"""Timing for benchmarks: candidates and their baseline measured side by side."""

from __future__ import annotations

import time

import jax


def best_times(calls, repeats: int) -> list[float]:
    """Best wall time (s) of each `(fn, args)` in `calls`.

    Every call is compiled and run once first; then the calls are timed in
    turn, `repeats` rounds, so that load drifts on a shared machine affect
    the candidate and its baseline alike. Each result is blocked on.
    """
    for fn, args in calls:
        jax.block_until_ready(fn(*args))  # warm-up and compile
    times = [[] for _ in calls]
    for _ in range(repeats):
        for t, (fn, args) in zip(times, calls):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            t.append(time.perf_counter() - t0)
    return [min(t) for t in times]
