"""An ideal cell: programs exactly, updates linearly, reads without noise."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .base import AbstractDevice, AbstractDeviceState, Scalar, check_time, param


class IdealState(AbstractDeviceState):
    g: Float[Array, "*cells"]


class Ideal(AbstractDevice):
    """A noiseless, linear, non-drifting cell: the reference every model is
    compared against.

    `update` moves the conductance by `(g_max - g_min) / n_states` per pulse,
    clipped to the bounds.

    Args:
        g_min: lowest conductance (S), >= 0.
        g_max: highest conductance (S), > g_min.
        n_states: pulses from g_min to g_max, > 0.
    """

    g_min: Scalar = param(1e-6)
    g_max: Scalar = param(1e-4)
    n_states: Scalar = param(1000.0, gt=0.0)

    def init(self, shape, *, key: PRNGKeyArray | None = None) -> IdealState:
        del key
        return IdealState(g=jnp.full(shape, self.g_min, jnp.float32))

    def program(self, state, g_target, *, key: PRNGKeyArray | None = None):
        del key
        g = jnp.clip(jnp.asarray(g_target, jnp.float32), self.g_min, self.g_max)
        return IdealState(g=jnp.broadcast_to(g, state.g.shape))

    def update(self, state, pulses, *, key: PRNGKeyArray | None = None):
        del key
        step = (self.g_max - self.g_min) / self.n_states
        g = state.g + jnp.asarray(pulses, jnp.float32) * step
        return IdealState(g=jnp.clip(g, self.g_min, self.g_max))

    def read_parts(self, state, t_s=0.0):
        check_time(t_s)
        z = jnp.zeros_like(state.g)
        return state.g, z, z
