"""Cell I-V characteristics: how a cell's current follows from its read
conductance and the voltage across it. An option of the devices that support
more than the ohmic cell (`RRAM(iv=...)`); solvers use a matrix product for
linear cells and the elementwise I-V otherwise."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .base import as_param, check_range


class AbstractIV(eqx.Module):
    """A cell's current (A) for read conductance `g` (S) at voltage `v` (V)."""

    #: whether the current is `g v` (solvers then use one matrix product)
    linear: ClassVar[bool] = False

    @abc.abstractmethod
    def current(self, g: Float[Array, "*cells"], v: Float[Array, "*cells"]) -> Array:
        """Cell current (A)."""


class LinearIV(AbstractIV):
    """Ohmic cell: `I = g V`."""

    linear: ClassVar[bool] = True

    def current(self, g, v):
        return g * v


class SinhIV(AbstractIV):
    """`I = g v0 sinh(V / v0)`: ohmic for |V| << v0, superlinear above
    (Yakopcic / Stanford-model form).

    Args:
        v0: voltage scale (V), > 0; an array leaf, so a sweep can vary it.
    """

    v0: Float[Array, ""] = eqx.field(converter=as_param, default=0.25)

    def __check_init__(self):
        check_range("v0", self.v0, 0.0, lo_open=True, unit="V")

    def current(self, g, v):
        return g * self.v0 * jnp.sinh(v / self.v0)
