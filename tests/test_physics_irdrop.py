"""Read noise under IR drop (xbar/circuits/tile.py) against independent references.

The tile circuits carry each cell's read-noise current to every column
terminal through the solved wires (`noise_transfer=True`, the default): the
column-current variance is exact to first order in the cells' conductance
deviations. Checked two ways:

1. Against the first-order propagation computed from the Jacobian of the
   exact solve (`jax.jacrev` through `solve_crossbar`'s implicit derivative),
   float64, with every wire resistance non-zero (rows, columns, driver,
   sense, access), and for a non-linear (sinh) cell linearised at its
   operating point; the fast circuit with enough sweeps agrees too (ohmic).
2. Against Monte Carlo: draw the cells' conductances (mean + std * N(0, 1)),
   solve every draw exactly, take the variance over draws, at 1, 5 and 20 ohm
   per segment. Measured with 8000 float64 draws (scratch run, not a test):
   the transfer's error averaged over the columns is +0.2 to +0.3 % on
   16 x 16 and 32 x 32 tiles at all three resistances (the sampling error of
   that mean is ~0.4 %), so the second-order terms at 5 % read noise are
   below the sampling error.

The cheap approximation (`noise_transfer=False`: a cell's noise current
reaches its own column terminal in full) over-estimates the variance by a
relative amount of order `N^2 r g_mean`; measured with the same 8000 draws on
16 x 16 tiles with g ~ U(1, 100) uS: +1.4 %, +6.2 %, +24 % at 1, 5, 20 ohm
(N^2 r g_mean = 0.014, 0.068, 0.27), and on 32 x 32 tiles +4.1 %, +19 %,
+74 % (0.052, 0.26, 1.05). The test checks that size on 16 x 16 tiles.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import devices
import xbar
from xbar.circuits.lines import Wires
from xbar.circuits.nodal import solve_crossbar

R = C = 16
M = 1000


def _stats(circuit, dev, g, s, v):
    """Mean and variance of one G+ tile (G- cells off) for row voltages v (B, R)."""
    pos = devices.CachedReadState(g=g[None, None], std=s[None, None])
    z = jnp.zeros_like(g)[None, None]
    neg = devices.CachedReadState(g=z, std=z)
    m, sd = circuit.current_stats(dev, pos, neg, v[:, None, :], 0.0)
    return m[:, 0, 0], sd[:, 0, 0] ** 2


def test_noise_transfer_is_the_first_order_variance():
    """var_j = sum_ik (dI_j/dg_ik s_ik)^2 with the Jacobian of the exact solve."""
    with jax.enable_x64(True):
        k1, k2 = jax.random.split(jax.random.key(1))
        g = jax.random.uniform(k1, (12, 9), jnp.float64, 1e-6, 1e-4)
        s = 0.05 * g
        v = jax.random.uniform(k2, (3, 12), jnp.float64, 0.0, 0.2)
        dev = devices.CachedRead(jnp.float64(0.0), jnp.float64(1e-4))
        w = Wires(r_row_ohm=10.0, r_col_ohm=5.0, r_driver_ohm=3.0, r_sense_ohm=7.0,
                  r_access_ohm=100.0)
        jac = jax.jacrev(lambda gg: solve_crossbar(gg, v, w).i_col)(g)  # (B, C, R, C)
        ref = jnp.einsum("bjik,ik->bj", jac**2, s**2)
        _, var = _stats(xbar.ExactCircuit(w), dev, g, s, v)
        np.testing.assert_allclose(var, ref, rtol=1e-9)
        _, var = _stats(xbar.FastCircuit(w, n_sweeps=30), dev, g, s, v)
        np.testing.assert_allclose(var, ref, rtol=1e-9)  # measured 1e-12
        _, cheap = _stats(xbar.ExactCircuit(w, noise_transfer=False), dev, g, s, v)
        assert float(jnp.mean(cheap / ref)) > 1.02  # the approximation errs (+4.3 %)
        # No wires at all: the ideal circuit's variance.
        _, var0 = _stats(xbar.ExactCircuit(Wires()), dev, g, s, v)
        # (up to the 1e-6 ohm wire floor: 2e-8 measured)
        np.testing.assert_allclose(var0, (v**2) @ (s**2), rtol=1e-7)

    # A non-linear (sinh) cell, linearised at each input's operating point
    # (float32 device: 1e-4).
    dev2 = dataclasses.replace(devices.RRAM.from_card(), iv=devices.SinhIV(0.1))
    gp, gn = (jax.random.uniform(jax.random.key(k), (1, 1, 8, 6), minval=1e-6,
                                 maxval=1e-4) for k in (5, 6))
    cb = xbar.program_crossbar(dev2, gp, gn, key=jax.random.key(7))
    w = Wires(r_row_ohm=10.0, r_col_ohm=10.0)
    v2 = jax.random.uniform(jax.random.key(8), (2, 8), maxval=0.2)
    ref = 0.0
    for state in (cb.pos, cb.neg):
        g1, s1 = dev2.read_stats(state, 1.0)
        jac = jax.jacrev(lambda gg: solve_crossbar(gg, v2, w,
                                                   cell_current=dev2.current).i_col)(
            g1[0, 0])
        ref = ref + jnp.einsum("bjik,ik->bj", jac**2, s1[0, 0] ** 2)
    _, sd = xbar.ExactCircuit(w).current_stats(cb.device, cb.pos, cb.neg,
                                               v2[:, None, :], 1.0)
    np.testing.assert_allclose(sd[:, 0, 0] ** 2, ref, rtol=1e-4)


@pytest.fixture(scope="module")
def tile():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    g = jax.random.uniform(k1, (R, C), jnp.float32, 1e-6, 1e-4)
    v = jax.random.uniform(k2, (R,), jnp.float32, 0.0, 0.2)
    xi = jax.random.normal(k3, (M, R, C), jnp.float32)
    return g, 0.05 * g, v, xi


@jax.jit
def _mc_var(g, s, v, xi, r):
    w = Wires(r_row_ohm=r, r_col_ohm=r)
    i = jax.vmap(lambda x: solve_crossbar(g + s * x, v, w).i_col)(xi)
    return jnp.var(i, axis=0, ddof=1)


@jax.jit
def _model_var(g, s, v, r):
    dev = devices.CachedRead(jnp.float32(0.0), jnp.float32(1e-4))
    w = Wires(r_row_ohm=r, r_col_ohm=r)
    return tuple(
        _stats(xbar.ExactCircuit(w, noise_transfer=t), dev, g, s, v[None])[1][0]
        for t in (True, False))


@pytest.mark.parametrize("r_ohm", [1.0, 5.0, 20.0])
def test_read_noise_under_ir_drop_against_monte_carlo(tile, r_ohm):
    g, s, v, xi = tile
    r = jnp.float32(r_ohm)
    mc = np.asarray(_mc_var(g, s, v, xi, r))
    exact, cheap = (np.asarray(a) / mc - 1 for a in _model_var(g, s, v, r))
    # Sampling error of one column's variance: sqrt(2 / M) = 4.5 %; of the
    # mean over 16 columns ~1.1 % (columns share the draws of their rows, so
    # allow 3 of those for the mean, 5 sigma of one column for the worst).
    se = np.sqrt(2 / M)
    assert abs(exact.mean()) <= 3 * se / np.sqrt(C)
    assert np.abs(exact).max() <= 5 * se
    # The cheap approximation over-estimates by ~N^2 r g_mean (never under).
    bound = R * C * r_ohm * float(jnp.mean(g))
    assert -3 * se / np.sqrt(C) <= cheap.mean() <= bound + 3 * se / np.sqrt(C)
    assert np.abs(cheap).max() <= bound + 5 * se
    if r_ohm >= 5.0:  # the error is real and of the predicted size
        assert cheap.mean() >= bound / 4
        assert cheap.mean() - exact.mean() >= bound / 4
