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

A weight is a differential pair `G+ - G-`; the pulse scheme (`pulses`, one of
the modules below, each owning its part) says which cell gets the pulses of a
signed request `n`:

- `DifferentialPulses()` (default): `n > 0` potentiates G+ by `n` pulses,
  `n < 0` potentiates G- by `|n|` (cells only ever move up, as in IBM's PCM
  pairs; the pair saturates over long training).
- `BidirectionalPulses()`: G+ gets `n` pulses and G- gets `-n` (LTP on one
  cell, LTD on the other: twice the change per request, both nonlinear
  branches act).
- `SingleCellPulses()`: G+ gets `n` (potentiation or depression), G- is left
  alone: one cell per weight, for non-negative (e.g. Diehl & Cook) networks.

Rounding to whole pulses is an option too: `StochasticRounding()` (default)
or `NearestRounding()`. A new pulse scheme or rounding is one new class here.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import as_param, check_range, option
from xbar.array.crossbar import Crossbar
from xbar.circuits.ideal import PRECISION
from xbar.mapping.tiling import to_tiles


class AbstractRounding(eqx.Module):
    """How a real-valued pulse request becomes whole pulses."""

    @abc.abstractmethod
    def __call__(self, dn: Array, *, key: PRNGKeyArray | None) -> Array:
        """Whole pulses for requests `dn`."""


class NearestRounding(AbstractRounding):
    """Round to the nearest whole pulse (deterministic; no key needed)."""

    def __call__(self, dn, *, key=None):
        del key
        return jnp.round(dn)


class StochasticRounding(AbstractRounding):
    """`floor(dn + u)`, `u ~ U[0, 1)`: the expected pulse count equals `dn`."""

    def __call__(self, dn, *, key):
        if key is None:
            raise ValueError("stochastic rounding of STDP pulses needs a key")
        return jnp.floor(dn + jax.random.uniform(key, dn.shape, dn.dtype))


class AbstractPulses(eqx.Module):
    """Which cell of the pair `G+ - G-` gets the pulses of a signed request."""

    @abc.abstractmethod
    def split(self, n: Array) -> tuple[Array, Array | None]:
        """Pulses for (G+, G-) from signed whole-pulse requests `n`; None
        leaves the G- cells alone (not even a zero-pulse update)."""


class DifferentialPulses(AbstractPulses):
    """`n > 0` potentiates G+ by `n`, `n < 0` potentiates G- by `|n|`."""

    def split(self, n):
        return jnp.maximum(n, 0.0), jnp.maximum(-n, 0.0)


class BidirectionalPulses(AbstractPulses):
    """G+ gets `n` pulses and G- gets `-n`."""

    def split(self, n):
        return n, -n


class SingleCellPulses(AbstractPulses):
    """G+ gets `n` pulses (either sign); G- is left alone."""

    def split(self, n):
        return n, None


class STDPState(eqx.Module):
    """Exponential traces of pre- and post-synaptic spikes (dimensionless)."""

    x_pre: Float[Array, "*batch in_features"]
    x_post: Float[Array, "*batch out_features"]


class PairSTDP(eqx.Module):
    """Pair-based (all-to-all) STDP with exponential windows, in device pulses.

    Args:
        a_plus: pulses requested for a pre-then-post pair at zero delay, >= 0.
        a_minus: pulses (magnitude) for a post-then-pre pair at zero delay, >= 0.
        tau_plus_s, tau_minus_s: window time constants (s), > 0.
        a_post: pulses on every synapse of a neuron at each of its spikes
            (negative depresses; default 0).
        rounding: `StochasticRounding()` (default) or `NearestRounding()`.
        pulses: `DifferentialPulses()` (default), `BidirectionalPulses()` or
            `SingleCellPulses()` (module docstring).
    """

    a_plus: Float[Array, ""] = eqx.field(converter=as_param, default=1.0)
    a_minus: Float[Array, ""] = eqx.field(converter=as_param, default=1.0)
    tau_plus_s: Float[Array, ""] = eqx.field(converter=as_param, default=20e-3)
    tau_minus_s: Float[Array, ""] = eqx.field(converter=as_param, default=20e-3)
    a_post: Float[Array, ""] = eqx.field(converter=as_param, default=0.0)
    rounding: AbstractRounding = option(
        "rounding", AbstractRounding, StochasticRounding()
    )
    pulses: AbstractPulses = option("pulses", AbstractPulses, DifferentialPulses())

    def __check_init__(self):
        check_range("a_plus", self.a_plus, 0.0, unit="pulses")
        check_range("a_minus", self.a_minus, 0.0, unit="pulses")
        check_range("tau_plus_s", self.tau_plus_s, 0.0, lo_open=True, unit="s")
        check_range("tau_minus_s", self.tau_minus_s, 0.0, lo_open=True, unit="s")

    def init(
        self, batch_shape: tuple[int, ...], in_features: int, out_features: int
    ) -> STDPState:
        return STDPState(
            x_pre=jnp.zeros(batch_shape + (in_features,), jnp.float32),
            x_post=jnp.zeros(batch_shape + (out_features,), jnp.float32),
        )

    def requests(
        self,
        state: STDPState,
        pre: Float[Array, "*batch in_features"],
        post: Float[Array, "*batch out_features"],
        dt_s,
    ) -> tuple[STDPState, Float[Array, "in_features out_features"]]:
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

    def apply(
        self,
        crossbar: Crossbar,
        n: Float[Array, "in_features out_features"],
        *,
        key: PRNGKeyArray,
    ) -> Crossbar:
        """Send whole-pulse requests `n` (rows = inputs) through the device."""
        rows, cols = crossbar.tile_shape
        n_pos, n_neg = self.pulses.split(n)
        k_pos, k_neg = jax.random.split(key)
        dev = crossbar.device

        def update(state, pulses, k):
            # Cells without a pulse do not change (`update` with 0 pulses is
            # the identity): an array that gets no pulse is not touched.
            return jax.lax.cond(
                jnp.any(pulses != 0),
                lambda st: dev.update(st, to_tiles(pulses, rows, cols), key=k),
                lambda st: st,
                state,
            )

        pos = update(crossbar.pos, n_pos, k_pos)
        neg = crossbar.neg if n_neg is None else update(crossbar.neg, n_neg, k_neg)
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
    ) -> tuple[Crossbar, STDPState, Float[Array, "in_features out_features"]]:
        """One plasticity step: traces, pulse requests, device update.

        Returns the updated crossbar, the traces and the whole pulses applied.
        """
        k_round, k_dev = jax.random.split(key)
        state, dn = self.requests(state, pre, post, dt_s)
        n = self.rounding(dn, key=k_round)
        return self.apply(crossbar, n, key=k_dev), state, n
