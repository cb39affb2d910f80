"""Parameter sweeps that compile once: stack configurations, vmap, jit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.core import Tracer

from .spec import check_tree


def _first_difference(a, b, path: str = "config") -> str | None:
    """Path of the first field where `a` and `b` cannot be stacked, or None.

    Arrays must agree in shape and dtype; anything else (static fields, None)
    must be equal.
    """
    if eqx.is_array(a) or eqx.is_array(b):
        if eqx.is_array(a) and eqx.is_array(b):
            return None if (a.shape, a.dtype) == (b.shape, b.dtype) else path
        return path
    if type(a) is not type(b):
        return path
    if dataclasses.is_dataclass(a):
        pairs = [
            (f".{f.name}", getattr(a, f.name), getattr(b, f.name))
            for f in dataclasses.fields(a)
        ]
    elif isinstance(a, list | tuple):
        if len(a) != len(b):
            return path
        pairs = [(f"[{i}]", x, y) for i, (x, y) in enumerate(zip(a, b))]
    elif isinstance(a, dict):
        if a.keys() != b.keys():
            return path
        pairs = [(f"[{k!r}]", a[k], b[k]) for k in a]
    else:
        try:
            return None if bool(a == b) else path
        except Exception:
            return None if a is b else path
    for name, x, y in pairs:
        found = _first_difference(x, y, path + name)
        if found is not None:
            return found
    return None


def stack(configs: Sequence[Any]) -> Any:
    """Stack pytrees of identical structure along a new leading (sweep) axis.

    Build each point in plain Python first, so construction checks see real
    numbers; static fields (shapes, algorithm choices) must agree.
    """
    if len(configs) == 0:
        raise ValueError("configs must hold at least one configuration; got none")
    arrays = [eqx.filter(c, eqx.is_array) for c in configs]
    statics = [eqx.filter(c, eqx.is_array, inverse=True) for c in configs]
    s0 = jax.tree.structure(statics[0])
    for i, s in enumerate(statics[1:], 1):
        where = _first_difference(configs[0], configs[i])
        if (
            where is not None
            or jax.tree.structure(s) != s0
            or not eqx.tree_equal(s, statics[0])
        ):
            raise ValueError(
                f"configs[{i}] differs from configs[0] in {where or 'a static field'}"
                "; a sweep can only vary the values of array fields (static fields, "
                "array shapes and None-ness must agree)"
            )
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *arrays)
    return eqx.combine(stacked, statics[0])


def validate_stacked(configs, n_points: int) -> None:
    """Run the construction checks of every module on stacked configurations
    (concrete, before tracing); on a failure, name the first offending point."""
    if any(isinstance(x, Tracer) for x in jax.tree.leaves(configs)):
        return  # traced by an outer transform: nothing concrete to check
    try:
        check_tree(configs)
        return
    except Exception:
        pass
    for i in range(n_points):
        point = jax.tree.map(lambda x: x[i] if eqx.is_array(x) else x, configs)
        try:
            check_tree(point)
        except ValueError as e:
            raise ValueError(f"sweep point {i}: {e}") from None


class Sweep(eqx.Module):
    """`fn(config, key) -> result` evaluated over stacked configs and repeat keys.

    One `jax.jit` compilation covers every sweep point and every repeat: the
    points are a `jax.lax.map` axis (in chunks of `batch_size` vmapped points,
    which bounds memory) and the repeats a `jax.vmap` axis. `n_traces` counts
    how many times `fn` was traced, i.e. compiled.
    """

    fn: Callable = eqx.field(static=True)
    batch_size: int | None = eqx.field(static=True, default=None)
    _count: list = eqx.field(static=True, default_factory=lambda: [0])

    @property
    def n_traces(self) -> int:
        return self._count[0]

    def __call__(self, configs, key, n_repeats: int = 1, *args):
        """Results shaped `(points, n_repeats, ...)`.

        Args:
            configs: stacked configurations (see `stack`), leading axis = points.
            key: PRNG key; each (point, repeat) gets its own split.
            n_repeats: independent draws per point (error bars).
            *args: shared arguments passed to every call (e.g. data).
        """
        if (not isinstance(n_repeats, int) or isinstance(n_repeats, bool)
                or n_repeats < 1):
            raise ValueError(
                f"n_repeats must be an integer >= 1; got n_repeats={n_repeats!r}"
            )
        n_points = jax.tree.leaves(eqx.filter(configs, eqx.is_array))[0].shape[0]
        validate_stacked(configs, n_points)
        keys = jax.random.split(key, (n_points, n_repeats))
        return self._run(configs, keys, *args)

    @eqx.filter_jit
    def _run(self, configs, keys, *args):
        self._count[0] += 1

        def per_point(ck):
            cfg, ks = ck
            return jax.vmap(lambda k: self.fn(cfg, k, *args))(ks)

        return jax.lax.map(per_point, (configs, keys), batch_size=self.batch_size)
