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
