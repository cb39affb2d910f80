"""Input encodings: pixel intensities (or any values in [0, 1]) to spike trains
`(time, *batch, n)` of {0, 1} for `xbar.spiking.loop.run`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import check_range


def rate_encode(
    x: Float[Array, "*batch n"], n_steps: int, *, key: PRNGKeyArray, p_max: float = 0.5
) -> Float[Array, "time *batch n"]:
    """Bernoulli rate code: input x in [0, 1] spikes with probability `p_max x`
    per step."""
    check_range("p_max", p_max, 0.0, 1.0, lo_open=True)
    p = jnp.clip(x, 0.0, 1.0) * p_max
    u = jax.random.uniform(key, (n_steps,) + x.shape, jnp.float32)
    return (u < p[None]).astype(jnp.float32)


def latency_encode(
    x: Float[Array, "*batch n"], n_steps: int, *, threshold: float = 0.01
) -> Float[Array, "time *batch n"]:
    """Time-to-first-spike code: each input fires exactly once, at step
    `round((1 - x) (n_steps - 1))` (the brightest input first, at step 0);
    inputs at or below `threshold` never fire."""
    check_range("threshold", threshold, 0.0, 1.0)
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1; got {n_steps}")
    x = jnp.clip(x, 0.0, 1.0)
    t = jnp.round((1.0 - x) * (n_steps - 1)).astype(jnp.int32)
    steps = jnp.arange(n_steps, dtype=jnp.int32).reshape((n_steps,) + (1,) * x.ndim)
    return ((steps == t[None]) & (x[None] > threshold)).astype(jnp.float32)


def delta_encode(
    x: Float[Array, "time *batch n"], *, threshold: float
) -> Float[Array, "time *batch two_n"]:
    """Delta (change) code of a signal `x` over time: an "on" spike where
    `x_t - x_{t-1} > threshold`, an "off" spike where it is `< -threshold`
    (`x_{-1} = 0`). Spikes stay in {0, 1}: the output has the n "on" channels
    followed by the n "off" channels."""
    check_range("threshold", threshold, 0.0, lo_open=True)
    d = jnp.diff(x, axis=0, prepend=jnp.zeros_like(x[:1]))
    on = (d > threshold).astype(jnp.float32)
    off = (d < -threshold).astype(jnp.float32)
    return jnp.concatenate([on, off], axis=-1)
