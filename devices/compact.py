"""Voltage-driven compact switching models (ODEs) for waveform studies.

A compact model has a state `x`, a state rate `rate(x, v)` and a current
`current(x, v)`. `simulate` integrates the state under a voltage waveform with
fixed-step fourth-order Runge-Kutta inside one `lax.scan` (no Python loop over
time steps), clipping the state to its physical range after each step.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .base import as_param, check_range, concrete


class AbstractCompactModel(eqx.Module):
    """A memristor as `dx/dt = rate(x, v)`, `i = current(x, v)`."""

    @abc.abstractmethod
    def rate(self, x, v) -> Array:
        """dx/dt for state `x` at voltage `v` (V)."""

    @abc.abstractmethod
    def current(self, x, v) -> Array:
        """Current (A) at state `x` and voltage `v` (V)."""

    @abc.abstractmethod
    def bounds(self) -> tuple[Array, Array]:
        """The physical range of the state."""


class LinearIonDrift(AbstractCompactModel):
    """HP linear ion drift memristor (Strukov et al. 2008) with a Joglekar window.

    State `x = w / D` in [0, 1] (doped fraction). `v = [R_on x + R_off (1 - x)] i`,
    `dx/dt = mu_v R_on / D^2 i f(x)`, `f(x) = 1 - (2x - 1)^(2p)` (Joglekar);
    `window=False` uses f = 1 (the original model, with hard clipping).

    Args:
        r_on, r_off: bounding resistances (Ohm), 0 < r_on < r_off.
        d_m: device thickness D (m), > 0.
        mu_v: dopant mobility (m^2 / (V s)), > 0.
        p: Joglekar window exponent, >= 1.
        window: whether the Joglekar window is on (static).

    References:
        D. B. Strukov, G. S. Snider, D. R. Stewart, R. S. Williams, "The missing
        memristor found", Nature 453, 80 (2008), doi 10.1038/nature06932.
        Defaults from MemTorch `LinearIonDrift`.
    """

    r_on: Float[Array, ""] = eqx.field(converter=as_param, default=100.0)
    r_off: Float[Array, ""] = eqx.field(converter=as_param, default=16e3)
    d_m: Float[Array, ""] = eqx.field(converter=as_param, default=10e-9)
    mu_v: Float[Array, ""] = eqx.field(converter=as_param, default=1e-14)
    p: Float[Array, ""] = eqx.field(converter=as_param, default=1.0)
    window: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        check_range("r_on", self.r_on, 0.0, lo_open=True, unit="Ohm")
        check_range("r_off", self.r_off, 0.0, lo_open=True, unit="Ohm")
        lo, hi = concrete(self.r_on), concrete(self.r_off)
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(
                f"r_on must be in (0, r_off); got r_on={lo} Ohm, r_off={hi} Ohm"
            )
        check_range("d_m", self.d_m, 0.0, lo_open=True, unit="m")
        check_range("mu_v", self.mu_v, 0.0, lo_open=True, unit="m^2/(V s)")
        check_range("p", self.p, 1.0)

    def resistance(self, x):
        return self.r_on * x + self.r_off * (1.0 - x)

    def current(self, x, v):
        return v / self.resistance(x)

    def rate(self, x, v):
        k = self.mu_v * self.r_on / (self.d_m * self.d_m)
        f = 1.0 - (2.0 * x - 1.0) ** (2.0 * self.p) if self.window else 1.0
        return k * self.current(x, v) * f

    def bounds(self):
        return jnp.float32(0.0), jnp.float32(1.0)


class VTEAM(AbstractCompactModel):
    """Voltage threshold adaptive memristor (Kvatinsky et al. 2015), linear I-V.

    `dx/dt = k_off (v / v_off - 1)^alpha_off` for v > v_off > 0,
    `k_on (v / v_on - 1)^alpha_on` for v < v_on < 0, else 0 (no window; the
    state is clipped to [x_on, x_off]).
    `i = v / [R_on + (R_off - R_on)(x - x_on) / (x_off - x_on)]`.

    Args:
        r_on, r_off: resistances at x_on and x_off (Ohm).
        x_on, x_off: state bounds (m), x_on < x_off.
        k_on (< 0), k_off (> 0): rate constants (m/s).
        alpha_on, alpha_off: exponents, > 0.
        v_on (< 0), v_off (> 0): threshold voltages (V).

    References:
        S. Kvatinsky, M. Ramadan, E. G. Friedman, A. Kolodny, "VTEAM: a general
        model for voltage-controlled memristors", IEEE TCAS-II 62(8), 786 (2015).
        Defaults from MemTorch `VTEAM`.
    """

    r_on: Float[Array, ""] = eqx.field(converter=as_param, default=50.0)
    r_off: Float[Array, ""] = eqx.field(converter=as_param, default=1e3)
    x_on: Float[Array, ""] = eqx.field(converter=as_param, default=0.0)
    x_off: Float[Array, ""] = eqx.field(converter=as_param, default=3e-9)
    k_on: Float[Array, ""] = eqx.field(converter=as_param, default=-10.0)
    k_off: Float[Array, ""] = eqx.field(converter=as_param, default=5e-4)
    alpha_on: Float[Array, ""] = eqx.field(converter=as_param, default=3.0)
    alpha_off: Float[Array, ""] = eqx.field(converter=as_param, default=1.0)
    v_on: Float[Array, ""] = eqx.field(converter=as_param, default=-0.2)
    v_off: Float[Array, ""] = eqx.field(converter=as_param, default=0.02)

    def __check_init__(self):
        check_range("r_on", self.r_on, 0.0, lo_open=True, unit="Ohm")
        check_range("r_off", self.r_off, 0.0, lo_open=True, unit="Ohm")
        check_range("k_on", self.k_on, None, 0.0, hi_open=True, unit="m/s")
        check_range("k_off", self.k_off, 0.0, lo_open=True, unit="m/s")
        check_range("alpha_on", self.alpha_on, 0.0, lo_open=True)
        check_range("alpha_off", self.alpha_off, 0.0, lo_open=True)
        check_range("v_on", self.v_on, None, 0.0, hi_open=True, unit="V")
        check_range("v_off", self.v_off, 0.0, lo_open=True, unit="V")
        lo, hi = concrete(self.x_on), concrete(self.x_off)
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(
                f"x_on must be in (-inf, x_off); got x_on={lo}, x_off={hi}"
            )

    def resistance(self, x):
        frac = (x - self.x_on) / (self.x_off - self.x_on)
        return self.r_on + (self.r_off - self.r_on) * frac

    def current(self, x, v):
        return v / self.resistance(x)

    def rate(self, x, v):
        off = self.k_off * jnp.maximum(v / self.v_off - 1.0, 0.0) ** self.alpha_off
        on = self.k_on * jnp.maximum(v / self.v_on - 1.0, 0.0) ** self.alpha_on
        return jnp.where(v > self.v_off, off, jnp.where(v < self.v_on, on, 0.0)) + 0 * x

    def bounds(self):
        return self.x_on, self.x_off


def simulate(
    model: AbstractCompactModel,
    v_fn: Callable[[Array], Array],
    t_end_s,
    n_steps: int,
    x0,
) -> tuple[Array, Array, Array, Array]:
    """Integrate `model` under the waveform `v_fn(t)` with fixed-step RK4.

    Args:
        model: a compact model.
        v_fn: voltage (V) as a function of time (s), traceable by JAX.
        t_end_s: duration (s).
        n_steps: number of RK4 steps (static).
        x0: initial state (scalar or array: cells simulated in parallel).

    Returns:
        (t, v, x, i) at the n_steps + 1 sample times, time on the leading axis.
    """
    lo, hi = model.bounds()
    dt = jnp.asarray(t_end_s, jnp.float32) / n_steps
    x0 = jnp.asarray(x0, jnp.float32)

    def step(x, k):
        t = k * dt
        v0, vh, v1 = v_fn(t), v_fn(t + 0.5 * dt), v_fn(t + dt)
        k1 = model.rate(x, v0)
        k2 = model.rate(jnp.clip(x + 0.5 * dt * k1, lo, hi), vh)
        k3 = model.rate(jnp.clip(x + 0.5 * dt * k2, lo, hi), vh)
        k4 = model.rate(jnp.clip(x + dt * k3, lo, hi), v1)
        x_new = jnp.clip(x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4), lo, hi)
        return x_new, x_new

    ks = jnp.arange(n_steps, dtype=jnp.float32)
    _, xs = jax.lax.scan(step, x0, ks)
    x = jnp.concatenate([x0[None], xs], axis=0)
    t = jnp.arange(n_steps + 1, dtype=jnp.float32) * dt
    v = jax.vmap(v_fn)(t)
    v = v.reshape(v.shape + (1,) * (x.ndim - v.ndim))
    return t, v, x, model.current(x, v)


def loop_area(v: Float[Array, " n"], i: Float[Array, " n"]) -> Float[Array, ""]:
    """Area enclosed by a pinched I-V loop sampled over whole periods (V A).

    A pinched loop has two lobes, one for v > 0 and one for v < 0, traversed in
    opposite senses, so the closed integral of i dv over a period nearly
    cancels; the area is `|integral over v > 0 of i dv| + |integral over v < 0|`
    (trapezoid rule on the samples, time on the leading axis).
    """
    di = 0.5 * (i[1:] + i[:-1]) * (v[1:] - v[:-1])
    vm = 0.5 * (v[1:] + v[:-1])
    pos = jnp.sum(jnp.where(vm > 0, di, 0.0), axis=0)
    neg = jnp.sum(jnp.where(vm < 0, di, 0.0), axis=0)
    return jnp.abs(pos) + jnp.abs(neg)
