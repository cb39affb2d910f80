"""A stand-in device whose reads return statistics computed once.

Reading a device means evaluating its `read_stats` (drift, relaxation, noise
levels) for every cell. Where the cells do not change over many reads (a
spiking network run without plasticity, inference at one time after
programming), `cache_reads` evaluates them once and returns a `CachedRead`
device with a `CachedReadState` that holds the result; a crossbar built on them
reads exactly what the original device would have read at that time, noise
included: the stored mean holds the slow read deviation (the same for every
read at that time), and each read still draws fresh fast noise with the stored
std.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from .base import AbstractDevice, AbstractDeviceState


class CachedReadState(AbstractDeviceState):
    """Per-cell read statistics of another device at one time.

    Attributes:
        g: mean conductance of a read (S).
        std: standard deviation of one read (S).
    """

    g: Float[Array, "*cells"]
    std: Float[Array, "*cells"]


class CachedRead(AbstractDevice):
    """A device whose reads return stored statistics (`CachedReadState`):
    another device's `read_stats` evaluated once, by `cache_reads`.

    Its cells can only be read: `init`, `program` and `update` raise
    `NotImplementedError`, `relax` leaves the state unchanged, and `read_stats`
    returns the stored mean and std whatever the time. The current is linear,
    `g v` (only linear-I-V devices can be cached).

    Args:
        g_min, g_max: the conductance bounds of the cached device (S).
    """

    g_min: Float[Array, ""]
    g_max: Float[Array, ""]

    def init(self, shape, *, key=None):
        raise NotImplementedError("a cached read cannot be fabricated")

    def program(self, state, g_target, *, key=None):
        raise NotImplementedError("a cached read cannot be programmed")

    def update(self, state, pulses, *, key=None):
        raise NotImplementedError("a cached read cannot be updated")

    def read_stats(self, state: CachedReadState, t_s=0.0):
        del t_s
        return state.g, state.std

    def read_parts(self, state: CachedReadState, t_s=0.0):
        """`(g, 0, std)`: the stored mean already holds the slow deviation."""
        del t_s
        return state.g, jnp.zeros_like(state.g), state.std


def cache_reads(
    device: AbstractDevice, state: AbstractDeviceState, t_s=0.0
) -> tuple[CachedRead, CachedReadState]:
    """`device.read_stats(state, t_s)` evaluated once, as a `CachedRead` device
    and its `CachedReadState`: reading them gives what reading `device` at
    `t_s` seconds after programming gives, at the cost of a lookup.

    For a differential pair, cache each array and use the first device:
    `dev, pos = cache_reads(device, pos, t); _, neg = cache_reads(device, neg, t)`.

    Raises:
        ValueError: `device` has a nonlinear I-V (`device.linear_iv` is False):
            its current is not `g v`, so a conductance cannot stand for it.
    """
    if not device.linear_iv:
        raise ValueError(
            f"cache_reads needs a linear-I-V device (device.linear_iv); "
            f"{type(device).__name__} here has a nonlinear I-V"
        )
    g, std = device.read_stats(state, t_s)
    return CachedRead(device.g_min, device.g_max), CachedReadState(g=g, std=std)

