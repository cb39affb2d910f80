"""The device interface every cell model implements.

A device is an `eqx.Module` that holds *parameters* (conductance bounds, noise
levels, nonlinearity); the evolving *state* of an array of cells is a separate
pytree that goes in and comes out of every method. All methods are written per
cell and broadcast over arrays of any shape, are pure, and take an explicit PRNG
key wherever randomness enters, so they compose with `jax.jit` and `jax.vmap`
(a sweep over a device parameter is a vmap over a stacked device).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

# The helpers below moved to topic modules; importing them from
# `devices.base` keeps working (the families and the library do).
from devices.cells import (  # noqa: F401
    AGE_FROM_PROGRAMMING,
    BOLTZMANN_EV_PER_K,
    ROOM_TEMPERATURE_K,
    after_write,
    arrhenius_factor,
    cell_age,
    check_time,
    decay,
    decay2,
    fresh_age,
    noisy_target,
    written,
)
from devices.params import (  # noqa: F401
    as_param,
    check_bounds,
    check_fields,
    check_option,
    check_range,
    concrete,
    format_value,
    option,
    param,
)
from devices.variability import (  # noqa: F401
    MIN_WINDOW,
    add_cycles,
    cell_window,
    check_switches,
    closure_factor,
    draw_stuck,
    draw_window,
    pin_stuck,
)

Scalar = Float[Array, ""]


class AbstractDeviceState(eqx.Module):
    """State of an array of cells. Every state has the conductance `g` (S).

    Device models add the internal state they need (per-device parameters drawn
    at fabrication, a drift exponent drawn at programming, a volatile component).
    """

    g: eqx.AbstractVar[Float[Array, "*cells"]]

    def with_conductance_shift(self, d) -> AbstractDeviceState:
        """The state with `d` added to every field its conductance is built
        from (here `g`): what a straight-through gradient rides on
        (`xbar.mapping.programming.straight_through`), so that it survives
        the device's own methods. `d` is zero in value."""
        return eqx.tree_at(lambda s: s.g, self, self.g + d)


class VolatileState(AbstractDeviceState):
    """State of cells with a non-volatile and a volatile conductance (ionic and
    perovskite synapses); subclasses add the volatile pulse counts and the
    per-device parameters.

    Attributes:
        g: conductance read now, `clip(w + v, g_min, g_max)` (S), with `v` the
            volatile conductance, which decays under `relax`.
        w: non-volatile conductance (S).
    """

    g: Float[Array, "*cells"]
    w: Float[Array, "*cells"]

    def with_conductance_shift(self, d) -> VolatileState:
        """`g` and the non-volatile `w` both shifted by `d`: these devices
        rebuild `g` from `w` whenever they relax, so a shift on `g` alone would
        be lost at the first relaxation of a time loop."""
        return eqx.tree_at(lambda s: (s.g, s.w), self, (self.g + d, self.w + d))


class AbstractDevice(eqx.Module):
    """A memristive cell model, elementwise over arrays of cells.

    Subclasses provide the conductance bounds and the five operations below.
    Everything a sweep may vary is an array field; shapes and algorithm choices
    are static.
    """

    g_min: eqx.AbstractVar[Float[Array, ""]]  # siemens
    g_max: eqx.AbstractVar[Float[Array, ""]]  # siemens

    # Whether `current` is linear in the voltage (I = g V). Solvers use a matrix
    # product for linear cells and the elementwise I-V otherwise.
    linear_iv: ClassVar[bool] = True

    def __repr__(self) -> str:
        """`RRAM(g_min=3.0769e-09, g_max=3.8462e-08, ..., iv=LinearIV())`: every
        field with its value (a stacked, swept parameter shows as `f32[n]`),
        the family's own first, the keyword-only fields every family shares
        (`VariabilityFields`) after them."""
        ordered = sorted(dataclasses.fields(self), key=lambda f: f.kw_only is True)
        fields = (
            f"{f.name}={format_value(getattr(self, f.name))}"
            for f in ordered
            if f.repr and hasattr(self, f.name)
        )
        return f"{type(self).__name__}({', '.join(fields)})"

    def __check_init__(self):
        # Runs for every device after the subclass's own checks.
        check_bounds(self.g_min, self.g_max)
        check_fields(self)

    @abc.abstractmethod
    def init(self, shape: tuple[int, ...], *, key: PRNGKeyArray) -> AbstractDeviceState:
        """Fresh cells at `g_min`, drawing per-device (device-to-device) parameters."""

    @abc.abstractmethod
    def program(
        self,
        state: AbstractDeviceState,
        g_target: Float[Array, "*cells"],
        *,
        key: PRNGKeyArray,
    ) -> AbstractDeviceState:
        """Program every cell to `g_target` (S), with programming noise.

        Time since programming restarts at zero for the programmed cells.
        """

    @abc.abstractmethod
    def update(
        self,
        state: AbstractDeviceState,
        pulses: Float[Array, "*cells"],
        *,
        key: PRNGKeyArray,
    ) -> AbstractDeviceState:
        """Apply signed pulse counts (+ potentiate, - depress), bounded in
        [g_min, g_max]."""

    def read_parts(
        self, state: AbstractDeviceState, t_s: Float[Array, ""] | float
    ) -> tuple[Float[Array, "*cells"], Float[Array, "*cells"], Float[Array, "*cells"]]:
        """The three parts of a read at `t_s` seconds after programming:
        `(mean, slow_std, fast_std)`.

        `mean` is the noise-free conductance (drift and relaxation included);
        `slow_std` the std of the slow, time-correlated read deviation (e.g.
        PCM's accumulated 1/f noise, RRAM's retention spread), which is drawn
        when a cell is written and is the same for every read at one time;
        `fast_std` the std of the white noise of each read.
        """
        raise NotImplementedError(f"{type(self).__name__} defines no read_parts")

    def read_stats(
        self, state: AbstractDeviceState, t_s: Float[Array, ""] | float
    ) -> tuple[Float[Array, "*cells"], Float[Array, "*cells"]]:
        """Mean and standard deviation of a read at `t_s` seconds after programming.

        The mean includes drift/relaxation and the slow read deviation the
        state carries (`read_parts`' `mean + slow_std * xi_slow`, with
        `xi_slow` drawn at the cell's last write: identical across reads at
        one time, so averaging many reads does not remove it); the std is the
        fast read noise of one read, independent between reads and between
        cells. Splitting the read this way lets a crossbar add read noise to
        column currents with one extra matmul instead of drawing a batch x
        rows x cols array: the reads of different cells are independent
        Gaussians, so a column current `sum_i g_i v_i` is Gaussian with mean
        `v @ mean` and variance `v**2 @ std**2`.
        """
        mean, slow, fast = self.read_parts(state, t_s)
        xi = getattr(state, "xi_slow", None)
        if xi is not None:
            mean = mean + slow * xi
        return mean, fast

    def resample_slow(
        self, state: AbstractDeviceState, *, key: PRNGKeyArray
    ) -> AbstractDeviceState:
        """A new realisation of every cell's slow read deviation (`xi_slow`),
        as aihwkit redraws its accumulated read noise at each drift
        evaluation; states without one are returned unchanged."""
        xi = getattr(state, "xi_slow", None)
        if xi is None:
            return state
        return eqx.tree_at(lambda s: s.xi_slow, state,
                           jax.random.normal(key, xi.shape, jnp.float32))

    def read_stats_pair(
        self,
        pos: AbstractDeviceState,
        neg: AbstractDeviceState,
        t_s: Float[Array, ""] | float,
    ) -> tuple[
        Float[Array, "*cells"],
        Float[Array, "*cells"],
        Float[Array, "*cells"],
        Float[Array, "*cells"],
    ]:
        """`read_stats` of a differential pair's two arrays: `(g_pos, std_pos,
        g_neg, std_neg)` at `t_s` seconds after programming."""
        g_p, s_p = self.read_stats(pos, t_s)
        g_n, s_n = self.read_stats(neg, t_s)
        return g_p, s_p, g_n, s_n

    def read(
        self,
        state: AbstractDeviceState,
        t_s: Float[Array, ""] | float = 0.0,
        *,
        key: PRNGKeyArray,
    ) -> Float[Array, "*cells"]:
        """One noisy read of every cell's conductance (S) at `t_s` after
        programming (a concrete `t_s < 0` raises a ValueError)."""
        check_time(t_s)
        mean, std = self.read_stats(state, t_s)
        return mean + std * jax.random.normal(key, mean.shape, mean.dtype)

    def relax(self, state: AbstractDeviceState, dt_s) -> AbstractDeviceState:
        """Evolve the state by `dt_s` seconds with no input (volatile decay).

        Drift that depends only on the time since programming is applied by
        `read_stats`; here only the clock of cells pulsed since programming
        (`age_s`) advances.
        """
        age = getattr(state, "age_s", None)
        if age is None:
            return state
        dt = jnp.asarray(dt_s, jnp.float32)
        return eqx.tree_at(lambda s: s.age_s, state, age + dt)

    def current(
        self, g: Float[Array, "*cells"], v: Float[Array, "*cells"]
    ) -> Float[Array, "*cells"]:
        """Cell current (A) at voltage `v` (V) for read conductance `g` (S)."""
        return g * v

    def window_ref(self):
        """Conductance the per-cell window spreads about and closes towards:
        the middle of the window (aihwkit's ReRAM presets, weights in
        [-1, 1]); unipolar and reference-point devices override it."""
        return 0.5 * (self.g_min + self.g_max)

    def window(self, state) -> tuple[Any, Any]:
        """Every cell's bounds `(lo, hi)` now (`cell_window`): the nominal
        `(g_min, g_max)` scalars unless the state carries a per-cell window
        (`window_d2d`) or cycle counts (`endurance`)."""
        return cell_window(state, self.g_min, self.g_max, self.window_ref(),
                           getattr(self, "endurance_cycles", 1.0),
                           getattr(self, "endurance_beta", 0.0))

    def draw_cells(self, shape, key: PRNGKeyArray):
        """The per-cell variability fields of a fresh array, `(g_lo, g_hi,
        stuck, cycles)`, each None unless its static switch is on
        (`window_d2d`, `faults`, `endurance`). Drawn from keys folded out of
        `key`, so switching them on leaves the device's other draws as they
        were."""
        lo = hi = stuck = cycles = None
        if getattr(self, "window_d2d", False):
            lo, hi = draw_window(shape, jax.random.fold_in(key, 12), self.g_min,
                                 self.g_max, self.window_ref(),
                                 getattr(self, "sigma_gmin_d2d"),
                                 getattr(self, "sigma_gmax_d2d"))
        if getattr(self, "faults", False):
            stuck = draw_stuck(shape, jax.random.fold_in(key, 7),
                               getattr(self, "p_stuck_on"),
                               getattr(self, "p_stuck_off"))
        if getattr(self, "endurance", False):
            cycles = jnp.zeros(shape, jnp.float32)
        return lo, hi, stuck, cycles
