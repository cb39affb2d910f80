"""Cheap programming for hardware-aware training: the device's programmed and
drifted conductance, tabulated once, drawn as one normal per cell.

Programming every cell of every layer through the device model at every
minibatch (`device.init` + `device.program`: device-to-device draws,
nearest-level search, programming noise, slow read draws; four or more
normals and several transcendental functions per cell) costs ~50 times the
float training step for a 784-256-10 MLP. What the forward of HWA training
needs of it is the distribution of each cell's read conductance at the
training read time `t` given its target. `TabulatedCells` measures that once
per training run with the device's own programming and read
(`programming.program_cells`, `device.read_stats` at `0` and at `t`) on
`levels` targets spread over the window, `cells_per_level` fresh cells each,
and keeps per target the mean and std of the read mean at `0` and at `t`
(programming noise, device-to-device spread, drift and its spread, slow read
deviation) and the rms fast read-noise std. Every minibatch then draws each
cell's conductance as `mean(g*) + std(g*) z`, one standard normal `z` per cell
(the same `z` for both times: a cell's programming error persists while it
drifts), the means and stds linearly interpolated at the cell's target `g*`.
This is the Gaussian form aihwkit uses for its programming noise (one normal
per weight with a conductance-dependent std), here with the std measured
from the device model instead of a fitted polynomial.

The cells are read through the library's own crossbar, periphery and drift
compensation (a `TabulatedDevice` state): a read at time `0` sees the
programmed conductances, a read at any later time the conductances at `t`.

Gradient rule (as `xbar.mapping.programming.straight_through`): the target's
gradient passes straight through inside the window (0 outside), times the
mean slope of the tabulated mean across the window (1 without drift; the
mean drift factor `(t / t0)^-nu` on PCM); the table's numbers carry the
device parameters' gradients (reparameterised draws).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice, AbstractDeviceState
from xbar.array.crossbar import Crossbar
from xbar.circuits import noise
from xbar.circuits.ideal import AbstractCircuit, IdealCircuit
from xbar.mapping.programming import AbstractProgramming


class TabulatedState(AbstractDeviceState):
    """Cells drawn from a table.

    Attributes:
        g: conductance at the training read time (S).
        g0: conductance right after programming (S).
        s: fast read-noise std of one read (S).
    """

    g: Float[Array, "*cells"]
    g0: Float[Array, "*cells"]
    s: Float[Array, "*cells"]


class TabulatedDevice(AbstractDevice):
    """Read-only cells of `base` whose conductances were drawn from a table:
    a read at `t_s <= 0` returns the programmed conductance, a later read the
    conductance at the training read time. Its I-V is `base`'s."""

    base: AbstractDevice
    g_min: Array
    g_max: Array

    @property
    def linear_iv(self) -> bool:  # type: ignore[override]
        return self.base.linear_iv

    def init(self, shape, *, key: PRNGKeyArray | None = None) -> TabulatedState:
        del key
        z = jnp.zeros(shape, jnp.float32)
        return TabulatedState(g=z, g0=z, s=z)

    def program(self, state, g_target, *, key):
        raise ValueError(
            "TabulatedDevice cells are drawn by TabulatedCells, not programmed"
        )

    def update(self, state, pulses, *, key):
        raise ValueError("TabulatedDevice cells take no pulses (training reads only)")

    def read_parts(self, state: TabulatedState, t_s=0.0):  # type: ignore[override]
        later = jnp.asarray(t_s, jnp.float32) > 0
        g = jnp.where(later, state.g, state.g0)
        return g, jnp.zeros_like(g), state.s

    def current(self, g, v):
        return self.base.current(g, v)


def _chebyshev(u, coef):
    """`sum_k coef[k] T_k(u)` by Clenshaw's recurrence (elementwise in `u`)."""
    b1 = jnp.zeros_like(u)
    b2 = jnp.zeros_like(u)
    for k in range(coef.shape[0] - 1, 0, -1):
        b1, b2 = coef[k] + 2.0 * u * b1 - b2, b1
    return coef[0] + u * b1 - b2


class CellTable(eqx.Module):
    """Per-target statistics of programmed cells as Chebyshev series in the
    target's place `x = (g* - g_min) / span` in the window (evaluated
    elementwise: a gather from a table of levels is ~3x slower on CPU).

    Columns of `coef` (S): mean at `0` minus the target, mean at `t` minus
    the target, std at `t`, rms fast read std. What the series cannot follow
    (the sawtooth of nearest-level programming, whose period is one level) is
    kept as variance: `resid_var`, the mean square residual of the two mean
    fits, is added to the std at `t`.
    """

    g_min: Array
    g_max: Array
    coef: Float[Array, "degree 4"]
    resid_var: Float[Array, ""]
    slope0: Float[Array, ""]
    slope: Float[Array, ""]

    def draw(
        self, g_target, key: PRNGKeyArray | None, extra_var=None
    ) -> tuple[TabulatedState, Array]:
        """Cells programmed to `g_target` (any shape), one normal per cell
        (none for `key=None`: the means), their std at `t` increased by
        `extra_var` (S^2); and that variance before `extra_var`."""
        t = jax.lax.stop_gradient(g_target)
        span = self.g_max - self.g_min
        u = 2.0 * jnp.clip((t - self.g_min) / span, 0.0, 1.0) - 1.0
        var = _chebyshev(u, self.coef[:, 2]) ** 2 + self.resid_var
        g0 = jnp.maximum(t + _chebyshev(u, self.coef[:, 0]), 0.0)
        g = t + _chebyshev(u, self.coef[:, 1])
        if key is not None:
            v = var if extra_var is None else var + extra_var
            g = g + jnp.sqrt(v) * noise.normal(key, t.shape, jnp.float32)
        g = jnp.maximum(g, 0.0)
        s = jnp.abs(_chebyshev(u, self.coef[:, 3]))
        # Straight through inside the window (bounds included), scaled by the
        # mean slope of each time's tabulated mean.
        inside = (g_target >= self.g_min) & (g_target <= self.g_max)
        d = jnp.where(inside, g_target - t, 0.0)
        st = TabulatedState(g=g + self.slope * d, g0=g0 + self.slope0 * d, s=s)
        return st, var


class TabulatedProgramming(AbstractProgramming):
    """A programming policy that draws cells from a `CellTable` (see the
    module docstring); built by `TabulatedCells.programming`."""

    table: CellTable

    def program_cells(self, device, g_target, *, key):
        return self.table.draw(g_target, key)[0]

    def program(
        self,
        device: AbstractDevice,
        g_pos,
        g_neg,
        *,
        key: PRNGKeyArray,
        circuit: AbstractCircuit | None = None,
    ) -> Crossbar:
        """Draw G+ and G- cells. For a pair only the G+ cell takes a normal,
        with the variance of both (`var+ + var-`); G- holds its mean: the
        differential conductance `G+ - G-`, all that a column current sees,
        has the same Gaussian distribution at half the draws."""
        circuit = IdealCircuit() if circuit is None else circuit
        tab = TabulatedDevice(base=device, g_min=device.g_min, g_max=device.g_max)
        if g_neg is None:  # single-device scheme: no G- device, no current
            pos, _ = self.table.draw(g_pos, key)
            neg = tab.init(g_pos.shape)
        else:
            neg, var_neg = self.table.draw(g_neg, None)
            pos, _ = self.table.draw(g_pos, key, var_neg)
        return Crossbar(tab, pos, neg, circuit)


class TabulatedCells(eqx.Module):
    """HWA programming from a table of the device's programmed cells (fast;
    see the module docstring).

    Args:
        levels: targets in the table, evenly spread over the window,
            integer >= 2.
        cells_per_level: fresh cells programmed per target, integer >= 2.
        degree: degree of the Chebyshev series fitted to each statistic,
            integer >= 2 (and < levels).
    """

    levels: int = eqx.field(static=True, default=65)
    cells_per_level: int = eqx.field(static=True, default=512)
    degree: int = eqx.field(static=True, default=6)

    def __check_init__(self):
        for name in ("levels", "cells_per_level", "degree"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 2:
                v = getattr(self, name)
                raise ValueError(f"{name} must be an integer >= 2; got {name}={v!r}")

    def table(
        self, device: AbstractDevice, programming: AbstractProgramming, t_s, *,
        key: PRNGKeyArray,
    ) -> CellTable:
        """The `CellTable` of `device` programmed by `programming`, read at
        `0` and `t_s`."""
        lv = np.linspace(0.0, 1.0, self.levels)
        # Chebyshev least squares on the levels: a constant pseudo-inverse.
        vander = np.polynomial.chebyshev.chebvander(2.0 * lv - 1.0, self.degree)
        fit = jnp.asarray(np.linalg.pinv(vander), jnp.float32)
        span = device.g_max - device.g_min
        targets = device.g_min + span * jnp.asarray(lv, jnp.float32)
        grid = jnp.broadcast_to(targets[:, None], (self.levels, self.cells_per_level))
        state = programming.program_cells(device, grid, key=key)
        g0, _ = device.read_stats(state, 0.0)
        gt, st = device.read_stats(state, t_s)
        m0, mt = jnp.mean(g0, 1), jnp.mean(gt, 1)
        cols = jnp.stack(
            [
                m0 - targets, mt - targets, jnp.std(gt, 1),
                jnp.sqrt(jnp.mean(st * st, 1)),
            ],
            axis=1,
        )
        coef = fit @ cols
        resid = cols[:, :2] - jnp.asarray(vander, jnp.float32) @ coef[:, :2]
        return CellTable(
            g_min=jnp.asarray(device.g_min, jnp.float32),
            g_max=jnp.asarray(device.g_max, jnp.float32),
            coef=coef,
            resid_var=jnp.max(jnp.mean(resid * resid, 0)),
            slope0=(m0[-1] - m0[0]) / span,
            slope=(mt[-1] - mt[0]) / span,
        )


class FreshCells(eqx.Module):
    """HWA programming through the device model itself: every minibatch
    programs every cell with `device.init` and `device.program` (exact
    joint distribution, ~10x slower than `TabulatedCells`)."""
