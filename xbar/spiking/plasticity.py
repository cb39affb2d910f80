"""Pair-based STDP realised as programming pulses through the device model.

Each synapse (i, j) sees pre-synaptic spikes of input i and post-synaptic
spikes of neuron j. With a pre spike at step m and a post spike at step n,
`dt = (n - m) dt_s`, the rule asks for

    dn = +a_plus  exp(-dt / tau_plus)     if dt >= 0   (pre before post: LTP)
    dn = -a_minus exp(+dt / tau_minus)    if dt <  0   (post before pre: LTD)

programming pulses (all-to-all pairing, summed over pairs and over the batch),
computed online from two exponential traces; optionally every post spike also
requests `a_post` pulses on all its synapses (negative: the input-independent
depression `x_tar` of Diehl & Cook 2015, which weakens inputs that stay
silent). `dn` is rounded to whole pulses (to the nearest integer, or
stochastically so that the expected count equals `dn`) and applied through
`device.update`, so the conductance change follows the device's own pulse
response: its nonlinearity, its bounds and its
cycle-to-cycle noise. An ideal device turns `n` pulses into exactly
`n (g_max - g_min) / n_states` siemens.

A weight is a differential pair `G+ - G-`; the `scheme` says which cell gets
the pulses of a signed request `n`:

- "differential" (default): `n > 0` potentiates G+ by `n` pulses, `n < 0`
  potentiates G- by `|n|` (cells only ever move up, as in IBM's PCM pairs; the
  pair saturates over long training).
- "bidirectional": G+ gets `n` pulses and G- gets `-n` (LTP on one cell, LTD on
  the other: twice the change per request, both nonlinear branches act).
- "positive": G+ gets `n` (potentiation or depression), G- is left alone: one
  cell per weight, for non-negative (e.g. Diehl & Cook) networks.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import as_param, check_range
from xbar.array.crossbar import Crossbar
from xbar.circuits.ideal import PRECISION
from xbar.mapping.tiling import to_tiles


class STDPState(eqx.Module):
    """Exponential traces of pre- and post-synaptic spikes (dimensionless)."""

    x_pre: Float[Array, "*batch n_in"]
    x_post: Float[Array, "*batch n_out"]


class PairSTDP(eqx.Module):
    """Pair-based (all-to-all) STDP with exponential windows, in device pulses.

    Args:
        a_plus: pulses requested for a pre-then-post pair at zero delay, >= 0.
        a_minus: pulses (magnitude) for a post-then-pre pair at zero delay, >= 0.
        tau_plus_s, tau_minus_s: window time constants (s), > 0.
        a_post: pulses on every synapse of a neuron at each of its spikes
            (negative depresses; default 0).
        rounding: "nearest" or "stochastic" rounding of the requested pulses.
        scheme: "differential", "bidirectional" or "positive" (module docstring).
    """

    a_plus: Float[Array, ""] = eqx.field(converter=as_param, default=1.0)
    a_minus: Float[Array, ""] = eqx.field(converter=as_param, default=1.0)
    tau_plus_s: Float[Array, ""] = eqx.field(converter=as_param, default=20e-3)
    tau_minus_s: Float[Array, ""] = eqx.field(converter=as_param, default=20e-3)
    a_post: Float[Array, ""] = eqx.field(converter=as_param, default=0.0)
    rounding: Literal["nearest", "stochastic"] = eqx.field(
        static=True, default="stochastic"
    )
    scheme: Literal["differential", "bidirectional", "positive"] = eqx.field(
        static=True, default="differential"
    )

    def __check_init__(self):
        check_range("a_plus", self.a_plus, 0.0, unit="pulses")
        check_range("a_minus", self.a_minus, 0.0, unit="pulses")
        check_range("tau_plus_s", self.tau_plus_s, 0.0, lo_open=True, unit="s")
        check_range("tau_minus_s", self.tau_minus_s, 0.0, lo_open=True, unit="s")
        if self.rounding not in ("nearest", "stochastic"):
            raise ValueError(
                f"rounding must be 'nearest' or 'stochastic'; got {self.rounding!r}"
            )
        if self.scheme not in ("differential", "bidirectional", "positive"):
            raise ValueError(
                "scheme must be 'differential', 'bidirectional' or 'positive'; "
                f"got {self.scheme!r}"
            )

    def init(self, batch_shape: tuple[int, ...], n_in: int, n_out: int) -> STDPState:
        return STDPState(
            x_pre=jnp.zeros(batch_shape + (n_in,), jnp.float32),
            x_post=jnp.zeros(batch_shape + (n_out,), jnp.float32),
        )

    def requests(
        self,
        state: STDPState,
        pre: Float[Array, "*batch n_in"],
        post: Float[Array, "*batch n_out"],
        dt_s,
    ) -> tuple[STDPState, Float[Array, "n_in n_out"]]:
        """New traces and the real-valued pulse requests `dn` of this step."""
        pre = jax.lax.stop_gradient(pre)
        post = jax.lax.stop_gradient(post)
        x_pre = state.x_pre * jnp.exp(-dt_s / self.tau_plus_s) + pre
        x_post_old = state.x_post * jnp.exp(-dt_s / self.tau_minus_s)
        ltp = jnp.einsum("...i,...j->ij", x_pre, post, precision=PRECISION)
        ltd = jnp.einsum("...i,...j->ij", pre, x_post_old, precision=PRECISION)
        dn = self.a_plus * ltp - self.a_minus * ltd
        post_total = jnp.sum(post.reshape((-1, post.shape[-1])), axis=0)
        dn = dn + self.a_post * post_total[None, :]
        return STDPState(x_pre=x_pre, x_post=x_post_old + post), dn

    def round(self, dn: Array, *, key: PRNGKeyArray | None) -> Array:
        if self.rounding == "nearest":
            return jnp.round(dn)
        if key is None:
            raise ValueError("stochastic rounding of STDP pulses needs a key")
        return jnp.floor(dn + jax.random.uniform(key, dn.shape, dn.dtype))

    def split(self, n: Array) -> tuple[Array, Array]:
        """Pulses for (G+, G-) from signed requests `n`, by `scheme`."""
        if self.scheme == "differential":
            return jnp.maximum(n, 0.0), jnp.maximum(-n, 0.0)
        if self.scheme == "bidirectional":
            return n, -n
        return n, jnp.zeros_like(n)

    def apply(
        self, crossbar: Crossbar, n: Float[Array, "n_in n_out"], *, key: PRNGKeyArray
    ) -> Crossbar:
        """Send whole-pulse requests `n` (rows = inputs) through the device."""
        rows, cols = crossbar.tile_shape
        n_pos, n_neg = self.split(n)
        k_pos, k_neg = jax.random.split(key)
        dev = crossbar.device
        pos = dev.update(crossbar.pos, to_tiles(n_pos, rows, cols), key=k_pos)
        if self.scheme == "positive":
            neg = crossbar.neg
        else:
            neg = dev.update(crossbar.neg, to_tiles(n_neg, rows, cols), key=k_neg)
        return Crossbar(dev, pos, neg, crossbar.circuit)

    def __call__(
        self,
        crossbar: Crossbar,
        state: STDPState,
        pre,
        post,
        dt_s,
        *,
        key: PRNGKeyArray,
    ) -> tuple[Crossbar, STDPState, Float[Array, "n_in n_out"]]:
        """One plasticity step: traces, pulse requests, device update.

        Returns the updated crossbar, the traces and the whole pulses applied.
        """
        k_round, k_dev = jax.random.split(key)
        state, dn = self.requests(state, pre, post, dt_s)
        n = self.round(dn, key=k_round)
        return self.apply(crossbar, n, key=k_dev), state, n
