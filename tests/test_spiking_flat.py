"""The scheduled run's flat cell layout (`xbar.spiking.flat.FlatCells`)
against the tiled reads it replaces.

The reference is `flat_reads` of the tiled crossbar (the device's read of
every tile, then the padding dropped), an independent path through the same
device model. The device's read is elementwise in the cells, so the flat
layout must agree to float32 rounding: rtol 1e-6 (a few ulp; XLA may fuse
the two layouts' arithmetic differently). The scalar-age read of cells never
pulsed since programming (`FlatCells.fresh`) must agree the same way, and
cells that were pulsed must not take it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import devices
from xbar import spiking as sp
from xbar.array.crossbar import relax
from xbar.spiking.flat import flat_cells, flat_reads

CARDS = {
    "pcm": lambda: devices.PCM.from_card(),
    "rram": lambda: devices.RRAM.from_card(),
    "perovskite": lambda: devices.Perovskite.from_card(),
    "ionic": lambda: devices.IonicSynapse.from_card(),
}


def _layer(dev, key):
    """A recurrent layer on 8x8 tiles with odd sizes (padding on both axes)."""
    k_w, k_r, k_m = jax.random.split(key, 3)
    w = jax.random.normal(k_w, (11, 13), jnp.float32)
    w_rec = 0.3 * jax.random.normal(k_r, (11, 11), jnp.float32)
    return sp.SpikingLayer.from_weights(
        w, dev, key=k_m, dt_s=1e-3, tile_rows=8, tile_cols=8, recurrent=w_rec
    )


def _pulsed(lay, fraction, key):
    """`lay` after one potentiating pulse on about `fraction` of its input
    synapses' cells (their write clocks restart)."""
    k_sel, k_upd = jax.random.split(key)
    xb = lay.crossbar
    dev = xb.device
    pulses = (jax.random.uniform(k_sel, xb.pos.g.shape) < fraction).astype(
        jnp.float32
    )
    return lay.with_crossbar(xb.map_states(lambda s: dev.update(s, pulses, key=k_upd)))


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_flat_cells_read_as_the_tiles(name, getkey):
    lay = _layer(CARDS[name](), getkey())
    cells = flat_cells(lay)
    assert cells is not None
    assert bool(cells.all_fresh())
    for t in (1e-3, 1.0, 3.7e4):
        ref = flat_reads(lay, t)
        assert ref is not None and ref.var is not None
        for c in (cells, cells.fresh()):
            got = c.read(t, noise=True)
            assert got.var is not None
            assert got.g.shape == (13 + 11, 11)  # 13 inputs, 11 recurrent
            _close(got.g, ref.g)
            _close(got.var, ref.var)
        # Relaxation composes the same way on both layouts.
        relaxed = lay.map_crossbars(lambda xb: relax(xb, 0.25))
        ref = flat_reads(relaxed, t)
        got = cells.relax(0.25).read(t, noise=True)
        _close(got.g, ref.g)
        _close(got.var, ref.var)


def test_pulsed_cells_are_not_fresh_and_read_their_own_age(getkey):
    """After a pulse on some cells their clocks restart: the layout is no
    longer fresh, and its (per-cell age) read still equals the tiles'."""
    dev = devices.PCM.from_card()
    lay = _pulsed(_layer(dev, getkey()), 0.2, getkey())
    cells = flat_cells(lay)
    assert cells is not None
    assert not bool(cells.all_fresh())
    t = 50.0
    ref = flat_reads(lay, t)
    assert ref is not None
    _close(cells.read(t, noise=False).g, ref.g)
    # The scalar-age read would be wrong for these cells: it differs.
    assert not np.allclose(np.asarray(cells.fresh().read(t, noise=False).g),
                           np.asarray(ref.g), rtol=1e-4)


def _assert_scheduled_run_equals_per_step_loop(net, x, *, t0_s):
    """A noise-free `run` read every step (the scheduled path) against the
    plain per-step loop, which reads the tiles in every step
    (`network_step` without held reads): membranes within 5e-5 of the
    largest (reason in `test_scheduled_run_equals_the_per_step_loop`)."""
    _, a = sp.run(net, x, key=None, t0_s=t0_s, reads=sp.ReadEveryStep())
    st = sp.init_state(net, x.shape[1:-1], t0_s=t0_s)
    vs = []
    for t in range(x.shape[0]):
        st, out = sp.network_step(st, x[t], key=None)
        vs.append(out["v"][0])
    ref = np.asarray(jnp.stack(vs))
    got = np.asarray(a["v"][0])
    assert np.abs(got - ref).max() <= 5e-5 * np.abs(ref).max()


@pytest.mark.parametrize("fresh", [True, False])
def test_scheduled_run_equals_the_per_step_loop(fresh, getkey):
    """A noise-free run read every step through the flat layout (scalar ages
    or not) against the plain per-step loop, which reads the tiles in every
    step (`network_step` without held reads): the same membranes to float32
    rounding. Tolerance 5e-5 of the largest membrane: the tiled path sums
    the G+ and G- currents per tile and differences them, so the cells'
    common offset (about 10x the difference) cancels and amplifies float32
    rounding (1.2e-7 per operation, 24 rows) to ~3e-5; the old tiled
    `flat_reads` differs from the tiled loop by 8e-6 on this network."""
    dev = devices.PCM.from_card(sigma_read_scale=0.0)
    lay = _layer(dev, getkey())
    if not fresh:
        lay = _pulsed(lay, 0.3, getkey())
    net = sp.SpikingNetwork((lay,), 1e-3)
    x = sp.rate_encode(jax.random.uniform(getkey(), (2, 13)), 30, key=getkey())
    _assert_scheduled_run_equals_per_step_loop(net, x, t0_s=2.0)


def test_per_cell_device_parameters_fall_back_to_the_tiled_read(getkey):
    """A device holding a per-cell parameter array (here PCM's drift time
    constant `t0_s`, one per cell of the tiles) cannot be laid out flat: the
    scheduled run reads its tiles and flattens them instead, and still equals
    the per-step tiled loop (same tolerance and reason as above)."""
    import equinox as eqx

    dev = devices.PCM.from_card(sigma_read_scale=0.0)
    k_w, k_m = jax.random.split(getkey())
    w = jax.random.normal(k_w, (11, 13), jnp.float32)
    lay = sp.SpikingLayer.from_weights(
        w, dev, key=k_m, dt_s=1e-3, tile_rows=8, tile_cols=8
    )
    xb = lay.crossbar
    n = int(np.prod(xb.pos.g.shape))
    t0 = jnp.geomspace(1e-3, 10.0, n).reshape(xb.pos.g.shape).astype(jnp.float32)
    dev = eqx.tree_at(lambda d: d.t0_s, dev, t0)
    lay = lay.with_crossbar(type(xb)(dev, xb.pos, xb.neg, xb.circuit))
    assert flat_cells(lay) is None
    net = sp.SpikingNetwork((lay,), 1e-3)
    x = sp.rate_encode(jax.random.uniform(getkey(), (2, 13)), 20, key=getkey())
    _assert_scheduled_run_equals_per_step_loop(net, x, t0_s=0.5)
