"""Parameter sweeps that compile once: stack configurations, vmap, jit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp


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
        if jax.tree.structure(s) != s0 or not eqx.tree_equal(s, statics[0]):
            raise ValueError(
                f"configs[{i}] differs from configs[0] in a static field; a sweep can "
                "only vary array fields"
            )
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *arrays)
    return eqx.combine(stacked, statics[0])


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
        n_points = jax.tree.leaves(eqx.filter(configs, eqx.is_array))[0].shape[0]
        keys = jax.random.split(key, (n_points, n_repeats))
        return self._run(configs, keys, *args)

    @eqx.filter_jit
    def _run(self, configs, keys, *args):
        self._count[0] += 1

        def per_point(ck):
            cfg, ks = ck
            return jax.vmap(lambda k: self.fn(cfg, k, *args))(ks)

        return jax.lax.map(per_point, (configs, keys), batch_size=self.batch_size)
