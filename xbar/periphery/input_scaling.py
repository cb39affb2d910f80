"""How the digital side scales an input vector into the DAC's [-1, 1] range.

Each option is a final module with one method, `scale(x)`: the per-vector
factor `s` (shape `(*batch, 1)`) such that the DAC sees `x / s`; the digital
side multiplies the outputs by `s` again.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from devices.base import as_param, check_range


class AbstractInputScaling(eqx.Module):
    """Per-vector input full scale (aihwkit's "noise management")."""

    @abc.abstractmethod
    def scale(self, x: Float[Array, "*batch in"]) -> Float[Array, "*batch 1"]:
        """The factor `s` that maps `x` into [-1, 1] (`x / s`)."""


class AbsMaxScaling(AbstractInputScaling):
    """Each input vector by its own `max |x|` (aihwkit's "abs_max"); an
    all-zero vector keeps scale 1."""

    def scale(self, x):
        # No gradient through the scale: `(W (x / s)) s` does not depend on s
        # without quantization, and under jit the derivative of a max can be
        # inf (XLA recomputes x inside a fusion with other rounding, so no
        # element equals the max and the tie count is 0).
        s = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=-1, keepdims=True))
        return jnp.where(s > 0, s, 1.0)


class FixedScaling(AbstractInputScaling):
    """One fixed full scale `x_max` (> 0) for every vector; inputs beyond it
    clip at the DAC."""

    x_max: Float[Array, ""] = eqx.field(converter=as_param, default=1.0)

    def __check_init__(self):
        check_range("x_max", self.x_max, 0.0, lo_open=True)

    def scale(self, x):
        return jnp.broadcast_to(self.x_max, x.shape[:-1] + (1,))
