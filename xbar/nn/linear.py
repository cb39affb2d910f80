"""Analog linear layers: `y = W x + b` on crossbar tiles."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from devices.base import AbstractDevice
from xbar.nn.config import AnalogConfig
from xbar.nn.layer import AbstractAnalogLayer, mapped_fields


class AnalogLinear(AbstractAnalogLayer):
    """`y = W x + b` computed on crossbar tiles with DAC, ADC and digital
    accumulation (see `xbar.nn.layer` for the steps). Takes one vector or a
    batch (leading axes), like `eqx.nn.Linear` on one. Build it with
    `AnalogLinear.from_weights` or `xbar.convert`.

    `read_key` (default None) is the key a call without `key` reads with:
    None reads noise-free; hardware-aware training of a converted model sets
    one per layer and step (`xbar.training.with_read_keys`).
    """

    read_key: PRNGKeyArray | None = eqx.field(default=None, kw_only=True)

    @classmethod
    def from_weights(
        cls,
        weight: Float[ArrayLike, "out in"],
        bias: Float[ArrayLike, " _bias"] | None,
        config: AnalogConfig | AbstractDevice,
        *,
        key: PRNGKeyArray,
    ) -> AnalogLinear:
        """Map `weight` (shape `(out, in)`, as `eqx.nn.Linear`) onto tiles and
        program it as `config` says (a bare device: every option default)."""
        return cls(**mapped_fields(weight, bias, config, key=key))

    flattens_input: ClassVar[bool] = True

    def input_vectors(self, x):
        return x

    def __call__(
        self, x: Float[Array, "*batch in"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "*batch out"]:
        """The layer's output; `key=None` reads with `read_key` (None:
        without noise)."""
        return self.matvec(x, key=self.read_key if key is None else key)
