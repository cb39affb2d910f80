"""Chunk sizing of a sweep: an upper bound on the memory one row needs,
found by tracing the row function abstractly, and the rows per chunk that fit
a memory budget on each device."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import numpy as np

from .spec import SweepSpec


def _itemsize(dtype) -> int:
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # PRNG key dtypes
        return 8


def _aval_bytes(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            shape = getattr(getattr(v, "aval", None), "shape", None)
            dtype = getattr(getattr(v, "aval", None), "dtype", None)
            if shape is not None and dtype is not None:
                total += math.prod(shape) * _itemsize(dtype)
        for p in eqn.params.values():
            sub = getattr(p, "jaxpr", None)
            if sub is not None and hasattr(sub, "eqns"):
                total += _aval_bytes(sub)
            elif hasattr(p, "eqns"):
                total += _aval_bytes(p)
    return total


def bytes_per_row(spec: SweepSpec, fn: Callable, args: Sequence = ()) -> int:
    """An upper bound on the memory one row needs: the sum of the sizes of
    every intermediate of `fn` (traced abstractly, nothing runs)."""
    def one(base, key, *a):
        return fn(base, key, *a)

    closed = jax.make_jaxpr(one)(spec.base, jax.random.key(0), *args)
    return max(_aval_bytes(closed.jaxpr), 1)


def chunk_size_for(
    n_rows: int, per_row: int, memory_budget: float | int, n_devices: int = 1,
    vmap_rows: int | None = None,
) -> int:
    """Rows per chunk: as many as fit `memory_budget` bytes (per device), at
    least one per device, at most all rows, a multiple of `n_devices`. Rows
    looped `vmap_rows` at a time hold only that many in memory at once: then
    chunks of 64 groups per device (progress and restart granularity)."""
    if vmap_rows is None:
        c = max(1, int(memory_budget // max(per_row, 1))) * n_devices
    else:
        c = 64 * vmap_rows * n_devices
    c = min(c, n_rows + (-n_rows) % n_devices)
    return max(n_devices, c - c % n_devices)
