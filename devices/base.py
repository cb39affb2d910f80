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
import numpy as np
from jax.core import Tracer
from jaxtyping import Array, Float, PRNGKeyArray

Scalar = Float[Array, ""]


def as_param(x) -> Array:
    """Converter for sweepable scalar parameters: a float32 JAX array leaf."""
    return jnp.asarray(x, dtype=jnp.float32)


def param(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    nonzero: bool = False,
    unit: str = "",
) -> Any:
    """A sweepable scalar parameter field with its valid range.

    Stored as a float32 JAX array leaf (so a sweep can vmap over a stacked
    device); required unless `default` is given. `ge`/`gt` and `le`/`lt` bound
    it below and above (inclusive / exclusive), `nonzero` excludes 0; every
    `AbstractDevice` checks its fields against these at construction
    (`check_fields`) and names the field that is out of range.
    """
    rule = dict(lo=gt if ge is None else ge, hi=lt if le is None else le,
                lo_open=gt is not None, hi_open=lt is not None, unit=unit)
    return eqx.field(converter=as_param, default=default,
                     metadata={"range": rule, "nonzero": nonzero})


def check_fields(module: eqx.Module) -> None:
    """Check every field declared with `param` against its range (on concrete
    values; skipped while tracing). Raises a `ValueError` naming the field."""
    for f in dataclasses.fields(module):
        rule = f.metadata.get("range")
        if rule is None:
            continue
        value = getattr(module, f.name)
        check_range(f.name, value, **rule)
        v = concrete(value)
        if f.metadata["nonzero"] and v is not None and np.any(v == 0):
            raise ValueError(
                f"{f.name} must be a finite nonzero number; got {f.name}={v}"
            )


def check_option(name: str, value, base: type) -> None:
    """Raise a ValueError naming `name` and the allowed classes unless `value`
    is an instance of one of `base`'s final subclasses."""
    if isinstance(value, base):
        return
    allowed = []
    todo = list(base.__subclasses__())
    while todo:
        c = todo.pop()
        todo.extend(c.__subclasses__())
        if not c.__name__.startswith(("Abstract", "_")):
            allowed.append(f"{c.__name__}()")
    raise ValueError(
        f"{name} must be one of {', '.join(sorted(allowed))} (an option module); "
        f"got {name}={value!r}"
    )


def option(name: str, base: type, default: Any) -> Any:
    """A dataclass field holding an option module of kind `base`. Its
    converter checks the type, so a name where a module belongs (`"sinh"` for
    `SinhIV()`) is a ValueError listing the classes, raised before anything
    else looks at the field."""

    def convert(value):
        check_option(name, value, base)
        return value

    return eqx.field(default=default, converter=convert)


def concrete(x) -> np.ndarray | None:
    """The concrete value of `x`, or None while it is being traced."""
    if x is None or isinstance(x, Tracer):
        return None
    try:
        return np.asarray(x)
    except Exception:  # pragma: no cover - abstract values under transforms
        return None


def check_range(name: str, value, lo=None, hi=None, *, lo_open=False,
                hi_open=False, unit: str = "") -> None:
    """Raise a `ValueError` naming `name` unless lo <= value <= hi (elementwise).

    Skipped while tracing: checks run at construction, on concrete values.
    """
    v = concrete(value)
    if v is None:
        return
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    bracket = ("(" if lo_open else "[") + f"{lo_s}, {hi_s}" + (")" if hi_open else "]")
    u = f" {unit}" if unit else ""
    bad = ~np.isfinite(v)
    if lo is not None:
        bad |= (v <= lo) if lo_open else (v < lo)
    if hi is not None:
        bad |= (v >= hi) if hi_open else (v > hi)
    if np.any(bad):
        shown = v if v.size == 1 else v[bad].ravel()[:3]
        raise ValueError(f"{name} must be in {bracket}{u}; got {name}={shown}{u}")


def check_bounds(g_min, g_max) -> None:
    """Conductance bounds: 0 <= g_min < g_max, finite (siemens)."""
    check_range("g_min", g_min, 0.0, unit="S")
    check_range("g_max", g_max, 0.0, lo_open=True, unit="S")
    lo, hi = concrete(g_min), concrete(g_max)
    if lo is not None and hi is not None and np.any(lo >= hi):
        raise ValueError(
            f"g_min must be in [0, g_max); got g_min={lo} S, g_max={hi} S"
        )


def noisy_target(g_target, shape, g_min, g_max, sigma, key: PRNGKeyArray):
    """`g_target` clipped to `[g_min, g_max]` and broadcast to `shape`, plus
    Gaussian programming error of std `sigma` (S), clipped again: one-shot
    programming of a cell whose write lands anywhere near the target."""
    g_t = jnp.clip(jnp.asarray(g_target, jnp.float32), g_min, g_max)
    g_t = jnp.broadcast_to(g_t, shape)
    g = g_t + sigma * jax.random.normal(key, g_t.shape, jnp.float32)
    return jnp.clip(g, g_min, g_max)


# `age_s` of a cell that has not been pulsed since it was programmed: its age
# is then the caller's time since programming (`t_s` of a read), see `cell_age`.
AGE_FROM_PROGRAMMING = 1e30


def check_time(t_s) -> Array:
    """`t_s` as a float32 array; a concrete negative time raises a ValueError
    (a read before the cells were programmed is meaningless)."""
    v = concrete(t_s)
    if v is not None and (np.any(v < 0) or not np.all(np.isfinite(v))):
        raise ValueError(
            f"t_s must be a finite time >= 0 s since programming; got t_s={v}"
        )
    return jnp.asarray(t_s, jnp.float32)


def cell_age(state, t_s):
    """Seconds since each cell's last write when read at `t_s` seconds after
    the array was programmed.

    A cell pulsed after programming (on-chip learning, a spiking run) restarts
    its clock: its `age_s` counts from that write and grows under `relax`.
    Cells never pulsed since programming carry `AGE_FROM_PROGRAMMING`, so
    their age is `t_s` itself. States without `age_s` (built by hand) read
    `t_s` for every cell.
    """
    t = check_time(t_s)
    age = getattr(state, "age_s", None)
    return t if age is None else jnp.minimum(t, age)


def fresh_age(shape) -> Array:
    """`age_s` of cells that have not been pulsed since programming."""
    return jnp.full(shape, AGE_FROM_PROGRAMMING, jnp.float32)


def written(old, new, n):
    """Per-cell select for a pulse write: `new` where `n != 0`, else `old`."""
    return jnp.where(n == 0, old, new)


def after_write(state, n, key: PRNGKeyArray, *, new_xi=None):
    """`(age_s, xi_slow)` after a pulse write of `n` pulses per cell: written
    cells restart their clock (age 0) and draw a new slow read deviation; the
    others keep theirs. (The draw is made even where a device's slow read
    part is 0: skipping it on concrete zeros would make a jitted call, where
    the parameters are traced, draw differently from an eager one.)
    `new_xi`: the new deviations, if the caller drew them (e.g. with the C2C
    noise from one `devices.rng.normal_pair` call); `key` is then unused."""
    age = getattr(state, "age_s", None)
    xi = getattr(state, "xi_slow", None)
    shape = state.g.shape
    # States without a clock (devices whose reads do not depend on time) keep
    # none.
    age = None if age is None else written(age, 0.0, n)
    if new_xi is None:
        new_xi = jax.random.normal(key, shape, jnp.float32)
    xi = new_xi if xi is None else written(xi, new_xi, n)
    return age, xi



def decay(v, dt_s, tau_s):
    """Exponential relaxation of a volatile component, v exp(-dt / tau).

    E-VOL with beta = 1 (the only Markovian case: relaxing by dt1 then dt2
    equals relaxing by dt1 + dt2).
    """
    return v * jnp.exp(-jnp.asarray(dt_s, jnp.float32) / tau_s)


# Boltzmann constant (eV/K) and the room temperature the cards' time
# constants refer to unless a card says otherwise (K).
BOLTZMANN_EV_PER_K = 8.617333262e-5
ROOM_TEMPERATURE_K = 300.0


def arrhenius_factor(ea_ev, temperature_k, t_ref_k):
    """How much faster a thermally activated process runs at `temperature_k`
    than at `t_ref_k`: `exp(Ea / k_B (1 / T_ref - 1 / T))` (1 at T = T_ref,
    and for Ea = 0).

    A cell held at T for `t` seconds has relaxed as far as one held at T_ref
    for `factor * t` seconds (time-temperature equivalence of an Arrhenius
    rate), so a model written for T_ref takes `factor * t` as its time, and a
    volatile time constant becomes `tau / factor`.
    """
    return jnp.exp(ea_ev / BOLTZMANN_EV_PER_K * (1.0 / t_ref_k - 1.0 / temperature_k))


def decay2(q, q2, dt_s, tau_s, tau2_s, factor):
    """`(q exp(-f dt / tau), q2 exp(-f dt / tau2))`: the two components of a
    double-exponential volatile part relaxing for `dt_s` at Arrhenius factor
    `f` (both Markovian, so relaxing by dt1 then dt2 equals dt1 + dt2)."""
    dt = factor * jnp.asarray(dt_s, jnp.float32)
    return q * jnp.exp(-dt / tau_s), q2 * jnp.exp(-dt / tau2_s)


def _format_value(v) -> str:
    """A field value for `AbstractDevice.__repr__`: scalars by value, arrays
    by dtype and shape, anything else by its repr."""
    if isinstance(v, (jax.Array, np.ndarray, np.generic)):
        c = concrete(v)
        if c is not None and c.ndim == 0:
            return f"{c.item():.6g}"
        return eqx.tree_pformat(v)  # e.g. f32[8] (stacked for a sweep), or traced
    return repr(v)


class AbstractDeviceState(eqx.Module):
    """State of an array of cells. Every state has the conductance `g` (S).

    Device models add the internal state they need (per-device parameters drawn
    at fabrication, a drift exponent drawn at programming, a volatile component).
    """

    g: eqx.AbstractVar[Float[Array, "*cells"]]


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
        field with its value (a stacked, swept parameter shows as `f32[n]`)."""
        fields = (
            f"{f.name}={_format_value(getattr(self, f.name))}"
            for f in dataclasses.fields(self)
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


# -- device-to-device window, stuck-at faults, endurance (issue 12a) ---------
#
# Shared by every family. The per-cell fields live at the end of each state
# class: `g_lo`, `g_hi` (the cell's window as fabricated; None: the device's
# nominal [g_min, g_max]), `cycles` (full-swing write cycles since
# fabrication; None: not counted) and `stuck` (+1 stuck at the cell's upper
# bound, -1 at its lower bound, 0 healthy; None: no faults).

# Smallest per-cell window, as a fraction of the nominal span: a draw of the
# window spread (or a closure) never collapses a cell to a point.
MIN_WINDOW = 0.01


def draw_window(shape, key: PRNGKeyArray, g_min, g_max, g_ref, sigma_lo, sigma_hi):
    """Per-cell window `(g_lo, g_hi)` drawn at fabrication (aihwkit's
    `b_max = w_max (1 + w_max_dtod xi)`, `b_min = w_min (1 + w_min_dtod xi)`
    with the weight zero at conductance `g_ref`):

        g_hi = g_ref + (g_max - g_ref) |1 + sigma_hi xi_1|
        g_lo = g_ref - (g_ref - g_min) |1 + sigma_lo xi_2|

    then `g_lo >= 0` and `g_hi >= g_lo + MIN_WINDOW (g_max - g_min)`.
    """
    k1, k2 = jax.random.split(key)
    xi1 = jax.random.normal(k1, shape, jnp.float32)
    xi2 = jax.random.normal(k2, shape, jnp.float32)
    hi = g_ref + (g_max - g_ref) * jnp.abs(1.0 + sigma_hi * xi1)
    lo = jnp.maximum(g_ref - (g_ref - g_min) * jnp.abs(1.0 + sigma_lo * xi2), 0.0)
    return lo, jnp.maximum(hi, lo + MIN_WINDOW * (g_max - g_min))


def closure_factor(cycles, n_cycles, beta):
    """Endurance window closure `(1 + N / n_cycles)^-beta` after `N` cycles:
    1 when new, `2^-beta` at `N = n_cycles`, a power law in N beyond."""
    return jnp.exp(-beta * jnp.log1p(cycles / n_cycles))


def cell_window(state, g_min, g_max, g_ref, n_cycles, beta):
    """Every cell's bounds now, `(lo, hi)`: its fabricated window (the
    nominal `[g_min, g_max]` for states without `g_lo`), closed towards
    `g_ref` by `closure_factor` of its `cycles` (states that count them),
    never below `MIN_WINDOW` of the nominal span."""
    lo = getattr(state, "g_lo", None)
    hi = getattr(state, "g_hi", None)
    if lo is None or hi is None:
        lo, hi = g_min, g_max
    cycles = getattr(state, "cycles", None)
    if cycles is not None:
        f = closure_factor(cycles, n_cycles, beta)
        lo = g_ref - (g_ref - lo) * f
        hi = jnp.maximum(g_ref + (hi - g_ref) * f, lo + MIN_WINDOW * (g_max - g_min))
    return lo, hi


def draw_stuck(shape, key: PRNGKeyArray, p_on, p_off) -> Array:
    """Per-cell stuck-at map: +1 (stuck at the upper bound) with probability
    `p_on`, -1 (lower bound) with `p_off`, else 0."""
    u = jax.random.uniform(key, shape, jnp.float32)
    return jnp.where(u < p_on, 1.0,
                     jnp.where(u < p_on + p_off, -1.0, 0.0)).astype(jnp.float32)


def pin_stuck(g, stuck, lo, hi):
    """`g` with stuck cells held at their bound (`stuck` None: unchanged)."""
    if stuck is None:
        return g
    return jnp.where(stuck > 0, hi, jnp.where(stuck < 0, lo, g))


def add_cycles(state, d_cycles):
    """`state.cycles + d_cycles` for healthy cells (stuck cells do not
    switch, so they do not wear); None for states that do not count."""
    cycles = getattr(state, "cycles", None)
    if cycles is None:
        return None
    stuck = getattr(state, "stuck", None)
    d = jnp.broadcast_to(jnp.asarray(d_cycles, jnp.float32), cycles.shape)
    if stuck is not None:
        d = jnp.where(stuck == 0, d, 0.0)
    return cycles + d


def check_switches(module) -> None:
    """Raise a ValueError naming the static switch when a variability
    parameter is nonzero but its switch (which adds the per-cell fields to
    the state) is off: `faults` for `p_stuck_on`/`p_stuck_off`,
    `window_d2d` for `sigma_gmin_d2d`/`sigma_gmax_d2d`."""
    rules = (("faults", ("p_stuck_on", "p_stuck_off")),
             ("window_d2d", ("sigma_gmin_d2d", "sigma_gmax_d2d")))
    for switch, names in rules:
        if getattr(module, switch, True):
            continue
        for name in names:
            v = concrete(getattr(module, name, None))
            if v is not None and np.any(v != 0):
                raise ValueError(
                    f"{name} > 0 needs {switch}=True (a static switch that adds "
                    f"the per-cell fields to the state); got {name}={v}, "
                    f"{switch}=False"
                )
    on = concrete(getattr(module, "p_stuck_on", None))
    off = concrete(getattr(module, "p_stuck_off", None))
    if on is not None and off is not None and np.any(on + off > 1.0):
        raise ValueError(
            "p_stuck_on + p_stuck_off must be in [0, 1]; "
            f"got p_stuck_on={on}, p_stuck_off={off}"
        )
