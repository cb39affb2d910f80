"""Neurons driven by crossbar column currents: LIF and adaptive LIF.

A membrane of capacitance `C` (F) with leak resistance `R = tau / C` (ohm) to a
resting potential `v_rest` integrates the column current `I` (A):

    C dv/dt = -(v - v_rest) / R + I        (NIR's LIF: tau dv/dt = v_leak - v + R I)

Over one time step `dt` the current is held constant, so the update is the
exact solution of that ODE (exponential integration, stable for any `dt`):

    v <- v_inf + (v - v_inf) exp(-dt / tau),   v_inf = v_rest + R I.

A neuron fires when `v >= v_th` (for the adaptive neuron `v_th + b a`), is reset
to `v_reset`, and is held there for the refractory period: `round(t_ref / dt)`
steps after the spike step in which it neither integrates nor fires.

Under a constant current the period is then exactly
`dt (n_ref + ceil(tau/dt ln((R I - (v_reset - v_rest)) / (R I - (v_th - v_rest)))))`,
the discrete counterpart of `t_ref + tau ln(R I / (R I - (v_th - v_reset)))`
(tests/test_spiking.py checks both).

Spikes are `{0, 1}` with a surrogate gradient (the derivative of a fast
sigmoid, Zenke & Ganguli 2018), so networks of these neurons train by
backpropagation through time.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from devices.base import as_param, check_range, concrete


@jax.custom_jvp
def spike_fn(x: Array, slope: Array) -> Array:
    """Heaviside step `x >= 0` with the fast-sigmoid surrogate derivative
    `1 / (1 + slope |x|)^2` (SuperSpike; Zenke & Ganguli, Neural Comput. 2018)."""
    return (x >= 0).astype(x.dtype)


@spike_fn.defjvp
def _spike_jvp(primals, tangents):
    x, slope = primals
    dx, _ = tangents
    out = spike_fn(x, slope)
    return out, dx / (1.0 + slope * jnp.abs(x)) ** 2


class LIFState(eqx.Module):
    """Membrane potential (V), refractory time left (s), adaptation (spikes),
    and for `CubaLIF` the synaptic current (A; None otherwise)."""

    v: Float[Array, "*neurons"]
    ref_s: Float[Array, "*neurons"]
    a: Float[Array, "*neurons"]
    i_syn: Float[Array, "*neurons"] | None = None


def _check_neuron(n) -> None:
    check_range("c_mem_f", n.c_mem_f, 0.0, lo_open=True, unit="F")
    check_range("tau_s", n.tau_s, 0.0, lo_open=True, unit="s")
    check_range("t_ref_s", n.t_ref_s, 0.0, unit="s")
    check_range("surrogate_slope", n.surrogate_slope, 0.0, lo_open=True, unit="1/V")
    th, re = concrete(n.v_th), concrete(n.v_reset)
    if th is not None and re is not None and np.any(np.asarray(th) <= np.asarray(re)):
        raise ValueError(f"v_th must be > v_reset; got v_th={th} V, v_reset={re} V")
    check_range("v_th", n.v_th, unit="V")
    check_range("v_reset", n.v_reset, unit="V")
    check_range("v_rest", n.v_rest, unit="V")


class LIF(eqx.Module):
    """Leaky integrate-and-fire neuron on a membrane capacitance.

    Every parameter is an array leaf (scalar or one value per neuron), so a sweep
    can vmap over it.

    Args:
        c_mem_f: membrane capacitance (F), > 0.
        tau_s: membrane time constant (s), > 0; leak resistance `tau / C`.
        v_th: threshold (V), > v_reset.
        v_reset: potential after a spike (V).
        v_rest: resting (leak) potential (V).
        t_ref_s: refractory period (s), >= 0.
        surrogate_slope: steepness of the surrogate gradient (1/V), > 0.
    """

    c_mem_f: Float[Array, ...] = eqx.field(converter=as_param, default=1e-12)
    tau_s: Float[Array, ...] = eqx.field(converter=as_param, default=20e-3)
    v_th: Float[Array, ...] = eqx.field(converter=as_param, default=1.0)
    v_reset: Float[Array, ...] = eqx.field(converter=as_param, default=0.0)
    v_rest: Float[Array, ...] = eqx.field(converter=as_param, default=0.0)
    t_ref_s: Float[Array, ...] = eqx.field(converter=as_param, default=0.0)
    surrogate_slope: Float[Array, ...] = eqx.field(converter=as_param, default=5.0)

    def __check_init__(self):
        _check_neuron(self)

    @property
    def r_ohm(self) -> Array:
        return self.tau_s / self.c_mem_f

    @property
    def lif(self) -> LIF:
        """The underlying LIF parameters (itself), as `AdaptiveLIF.lif`."""
        return self

    def with_lif(self, lif: LIF) -> LIF:
        """This neuron with its LIF parameters replaced by `lif`."""
        return lif

    def init(self, shape: tuple[int, ...]) -> LIFState:
        z = jnp.zeros(shape, jnp.float32)
        return LIFState(v=jnp.broadcast_to(self.v_rest, shape), ref_s=z, a=z)

    def __call__(
        self, state: LIFState, i_a: Float[Array, "*neurons"], dt_s
    ) -> tuple[LIFState, Float[Array, "*neurons"]]:
        """Advance by `dt_s` under column current `i_a` (A); returns (state, spikes)."""
        return _lif_step(self, state, i_a, dt_s, self.v_th, lambda s: state.a)


def _lif_step(
    lif: LIF, state: LIFState, i_a, dt_s, v_th, a_new: Callable[[Array], Array]
):
    """One exact-exponential step; `a_new(spikes)` is the next adaptation."""

    # Parameters may be per neuron: broadcast explicitly to (*batch, neurons).
    def b(p):
        return jnp.broadcast_to(p, state.v.shape)

    tau, v_rest, v_reset = b(lif.tau_s), b(lif.v_rest), b(lif.v_reset)
    decay = jnp.exp(-dt_s / tau)
    v_inf = v_rest + b(lif.r_ohm) * i_a
    v = v_inf + (state.v - v_inf) * decay
    active = state.ref_s <= 0.5 * dt_s
    v = jnp.where(active, v, v_reset)
    s = spike_fn(v - b(v_th), b(lif.surrogate_slope)) * active.astype(v.dtype)
    # Reset keeps the surrogate path: v (1 - s) + v_reset s.
    v = v * (1.0 - s) + v_reset * s
    ref = jnp.where(s > 0, b(lif.t_ref_s), jnp.maximum(state.ref_s - dt_s, 0.0))
    ref = jax.lax.stop_gradient(ref)
    return LIFState(v=v, ref_s=ref, a=a_new(s)), s


class AdaptiveLIF(eqx.Module):
    """LIF with a spike-triggered threshold adaptation (Bellec et al. 2018; the
    homeostatic threshold of Diehl & Cook 2015 is the slow-`tau_adapt_s` case).

    The threshold is `v_th + b_v a`; `a` jumps by 1 at every spike and decays
    with `tau_adapt_s`. Other parameters as `LIF`.

    Args:
        lif: the underlying LIF parameters.
        b_v: threshold increase per unit adaptation (V), >= 0.
        tau_adapt_s: adaptation time constant (s), > 0.
    """

    lif: LIF
    b_v: Float[Array, ...] = eqx.field(converter=as_param, default=0.05)
    tau_adapt_s: Float[Array, ...] = eqx.field(converter=as_param, default=0.2)

    def __check_init__(self):
        check_range("b_v", self.b_v, 0.0, unit="V")
        check_range("tau_adapt_s", self.tau_adapt_s, 0.0, lo_open=True, unit="s")

    def init(self, shape: tuple[int, ...]) -> LIFState:
        return self.lif.init(shape)

    def with_lif(self, lif: LIF) -> AdaptiveLIF:
        """This neuron with its LIF parameters replaced by `lif`."""
        return eqx.tree_at(lambda n: n.lif, self, lif)

    def __call__(
        self, state: LIFState, i_a: Float[Array, "*neurons"], dt_s
    ) -> tuple[LIFState, Float[Array, "*neurons"]]:
        """Advance by `dt_s` under column current `i_a` (A); returns (state, spikes)."""
        decay_a = jnp.exp(-dt_s / self.tau_adapt_s)

        def a_new(s):
            return state.a * jnp.broadcast_to(decay_a, s.shape) + jax.lax.stop_gradient(
                s
            )

        th = self.lif.v_th + jnp.broadcast_to(self.b_v, state.a.shape) * state.a
        return _lif_step(self.lif, state, i_a, dt_s, th, a_new)


def lif_period_steps(r_i_v, tau_s, dt_s, v_th, v_reset=0.0, v_rest=0.0, t_ref_s=0.0):
    """Steps between spikes of `LIF` under a constant drive `R I` (V), float64.

    The discrete closed form of the update above (NumPy, for tests and docs):
    `round(t_ref/dt)
    + ceil(tau/dt ln((R I + v_rest - v_reset) / (R I + v_rest - v_th)))`.
    """
    n_ref = np.round(t_ref_s / dt_s)
    x = tau_s / dt_s * np.log((r_i_v + v_rest - v_reset) / (r_i_v + v_rest - v_th))
    return n_ref + np.ceil(x)


class CubaLIF(eqx.Module):
    """Current-based LIF: the column current charges a synaptic current state
    that decays with `tau_syn_s`, which drives the LIF membrane (NIR's CubaLIF,
    snnTorch's `Synaptic`, Norse's `LIFCell`):

        tau_syn dI/dt = -I + w_in I_col,     C dv/dt = -(v - v_rest)/R + I.

    Over a step the column current is held, so the synaptic update is exact,
    `I <- w_in I_col + (I - w_in I_col) exp(-dt / tau_syn)`; the membrane then
    takes `LIF`'s exact step under the new `I`.

    Args:
        lif: the membrane (LIF parameters).
        tau_syn_s: synaptic time constant (s), > 0.
        w_in: input current weight (dimensionless), NIR's `w_in`.
    """

    lif: LIF
    tau_syn_s: Float[Array, ...] = eqx.field(converter=as_param, default=5e-3)
    w_in: Float[Array, ...] = eqx.field(converter=as_param, default=1.0)

    def __check_init__(self):
        check_range("tau_syn_s", self.tau_syn_s, 0.0, lo_open=True, unit="s")

    def init(self, shape: tuple[int, ...]) -> LIFState:
        st = self.lif.init(shape)
        return LIFState(v=st.v, ref_s=st.ref_s, a=st.a, i_syn=jnp.zeros(shape))

    def with_lif(self, lif: LIF) -> CubaLIF:
        """This neuron with its LIF parameters replaced by `lif`."""
        return eqx.tree_at(lambda n: n.lif, self, lif)

    def __call__(
        self, state: LIFState, i_a: Float[Array, "*neurons"], dt_s
    ) -> tuple[LIFState, Float[Array, "*neurons"]]:
        """Advance by `dt_s` under column current `i_a` (A); returns (state, spikes)."""
        i_syn = jnp.zeros_like(i_a) if state.i_syn is None else state.i_syn
        drive = jnp.broadcast_to(self.w_in, i_a.shape) * i_a
        decay = jnp.exp(-dt_s / jnp.broadcast_to(self.tau_syn_s, i_a.shape))
        i_syn = drive + (i_syn - drive) * decay
        st, s = _lif_step(
            self.lif, state, i_syn, dt_s, self.lif.v_th, lambda s: state.a
        )
        return LIFState(v=st.v, ref_s=st.ref_s, a=st.a, i_syn=i_syn), s
