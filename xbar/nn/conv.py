"""Analog 2-D convolutions on crossbar tiles by im2col (patches as input vectors)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from devices.base import AbstractDevice
from xbar.circuits.ideal import PRECISION
from xbar.nn.config import AnalogConfig
from xbar.nn.layer import AbstractAnalogLayer, mapped_fields


def pair(v, name) -> tuple[int, int]:
    """`v` as a pair of positive ints (an int means the same for both axes)."""
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or any(not isinstance(a, int) or a < 1 for a in t):
        raise ValueError(f"{name} must be a positive int or a pair of them; got {v!r}")
    return t


def padding_pairs(padding) -> tuple[tuple[int, int], tuple[int, int]]:
    """Symmetric `int` / `(ph, pw)` or explicit `((lo, hi), (lo, hi))` padding."""
    if isinstance(padding, int):
        padding = (padding, padding)
    out = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)
    if len(out) != 2 or any(len(p) != 2 or min(p) < 0 for p in out):
        raise ValueError(
            f"padding must be >= 0 (int, pair or pair of pairs); got {padding!r}"
        )
    return out  # type: ignore[return-value]


def im2col(
    x: Float[Array, "*batch c h w"], kernel: tuple[int, int], stride, padding
) -> Float[Array, "*batch ho wo features"]:
    """Patches of `x` as vectors, feature order (channel, kh, kw) like OIHW weights."""
    batch = x.shape[:-3]
    xb = x.reshape((-1,) + x.shape[-3:])
    p = jax.lax.conv_general_dilated_patches(
        xb,
        kernel,
        stride,
        padding,
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        precision=PRECISION,  # the patches are exact copies on every backend
    )  # (N, C*kh*kw, Ho, Wo)
    p = jnp.moveaxis(p, 1, -1)
    return p.reshape(batch + p.shape[1:])


class AnalogConv2d(AbstractAnalogLayer):
    """2-D convolution whose kernel `(out, in*kh*kw)` sits on crossbar tiles.

    Each output pixel's receptive field (im2col patch) is one input vector to
    the tiles: per-patch input scaling, DAC, crossbar, ADC, digital
    accumulation, exactly as `AnalogLinear`. Input `(*batch, C, H, W)`, output
    `(*batch, O, Ho, Wo)` (NCHW, as `eqx.nn.Conv2d` without the batch axis).
    A call without `key` reads with `read_key` (None, the default:
    noise-free; see `AnalogLinear`).
    """

    kernel_size: tuple[int, int] = eqx.field(static=True, kw_only=True)
    stride: tuple[int, int] = eqx.field(static=True, kw_only=True)
    padding: tuple[tuple[int, int], tuple[int, int]] = eqx.field(
        static=True, kw_only=True
    )
    read_key: PRNGKeyArray | None = eqx.field(default=None, kw_only=True)

    @classmethod
    def from_weights(
        cls,
        weight: Float[ArrayLike, "out in kh kw"],
        bias: Float[ArrayLike, " _bias"] | None,
        config: AnalogConfig | AbstractDevice,
        *,
        key: PRNGKeyArray,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]] = 0,
    ) -> AnalogConv2d:
        """Map an OIHW kernel as `config` says; `stride` and `padding` as
        `eqx.nn.Conv2d` (an int, a pair, or pairs of (low, high))."""
        weight = jnp.asarray(weight, jnp.float32)
        if weight.ndim != 4:
            raise ValueError(
                f"weight must be 4-D (out, in, kh, kw); got {weight.shape}"
            )
        fields = mapped_fields(
            weight.reshape(weight.shape[0], -1), bias, config, key=key
        )
        return cls(
            **fields,
            kernel_size=(int(weight.shape[2]), int(weight.shape[3])),
            stride=pair(stride, "stride"),
            padding=padding_pairs(padding),
        )

    def input_vectors(self, x: Float[Array, "*batch c h w"]):
        """The patches the tiles see, `(*batch, Ho, Wo, C*kh*kw)`."""
        return im2col(x, self.kernel_size, self.stride, self.padding)

    def __call__(
        self, x: Float[Array, "*batch c h w"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "*batch o ho wo"]:
        key = self.read_key if key is None else key
        y = self.matvec(self.input_vectors(x), key=key)  # (*batch, Ho, Wo, O)
        return jnp.moveaxis(y, -1, -3)
