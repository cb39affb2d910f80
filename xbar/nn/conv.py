"""Convolution layers on crossbar tiles by im2col (patches as input vectors)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice
from xbar.circuits.ideal import PRECISION
from xbar.nn.linear import AnalogLinear, calibrate_adc


def _pair(v, name) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or any(not isinstance(a, int) or a < 1 for a in t):
        raise ValueError(f"{name} must be a positive int or a pair of them; got {v!r}")
    return t


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


class AnalogConv2d(eqx.Module):
    """2-D convolution whose kernel is an `AnalogLinear` of shape (out, in*kh*kw).

    Each output pixel's receptive field (im2col patch) is one input vector to
    the tiles: per-patch input scaling, DAC, crossbar, ADC, digital
    accumulation, exactly as `AnalogLinear`. Input `(*batch, C, H, W)`, output
    `(*batch, O, Ho, Wo)` (NCHW, as `eqx.nn.Conv2d` without the batch axis).
    """

    linear: AnalogLinear
    kernel_size: tuple[int, int] = eqx.field(static=True)
    stride: tuple[int, int] = eqx.field(static=True)
    padding: tuple[tuple[int, int], tuple[int, int]] = eqx.field(static=True)

    @classmethod
    def from_weights(
        cls,
        weight: Float[Array, "out in kh kw"],
        bias: Float[Array, " out"] | None,
        device: AbstractDevice,
        *,
        key: PRNGKeyArray,
        stride=1,
        padding=0,
        **kwargs,
    ) -> AnalogConv2d:
        """Map an OIHW kernel; other keywords go to `AnalogLinear.from_weights`."""
        weight = jnp.asarray(weight, jnp.float32)
        if weight.ndim != 4:
            raise ValueError(
                f"weight must be 4-D (out, in, kh, kw); got {weight.shape}"
            )
        ph, pw = (padding, padding) if isinstance(padding, int) else tuple(padding)
        if min(ph, pw) < 0:
            raise ValueError(f"padding must be >= 0; got padding={padding!r}")
        lin = AnalogLinear.from_weights(
            weight.reshape(weight.shape[0], -1), bias, device, key=key, **kwargs
        )
        return cls(
            lin, tuple(weight.shape[2:]), _pair(stride, "stride"), ((ph, ph), (pw, pw))
        )

    def patches(self, x: Float[Array, "*batch c h w"]):
        """The input vectors the tiles see, `(*batch, Ho, Wo, C*kh*kw)`."""
        return im2col(x, self.kernel_size, self.stride, self.padding)

    def __call__(
        self, x: Float[Array, "*batch c h w"], *, key: PRNGKeyArray | None = None
    ):
        p = self.patches(x)
        y = self.linear(p, key=key)  # (*batch, Ho, Wo, O)
        return jnp.moveaxis(y, -1, -3)


def calibrate_conv_adc(conv: AnalogConv2d, x, **kwargs) -> AnalogConv2d:
    """`calibrate_adc` on the layer's patches of `x` (keywords as there)."""
    p = conv.patches(x)
    lin = calibrate_adc(conv.linear, p.reshape(-1, p.shape[-1]), **kwargs)
    return eqx.tree_at(lambda c: c.linear, conv, lin)
