"""The programming and drift-compensation options of a mapped layer.

Oracles: the mapping's own targets (computed by `Mapping.targets`, before any
programming), write-verify's tolerance as a hard bound, and aihwkit's global
drift compensation as `devices.drift_compensation` computes it on its own
from two reads.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EPS32

import devices
import xbar

MAPPING = xbar.Mapping(tile_rows=16, tile_cols=8)
UNQUANTIZED = xbar.DAC(bits=None)


def _layer(device, key, **options):
    w = jax.random.normal(jax.random.key(7), (6, 20), jnp.float32)
    cfg = xbar.AnalogConfig(device, mapping=MAPPING, **options)
    return w, xbar.AnalogLinear.from_weights(w, None, cfg, key=key)


def test_write_verify_programs_every_cell_within_tolerance(getkey):
    # An ideal cell moves (g_max - g_min) / 100 per pulse; a tolerance of 0.6 of
    # that step is always reachable, so every cell (pairs and padding) ends
    # within it of the mapping's target. One shot programs them exactly.
    dev = devices.Ideal(g_min=1e-6, g_max=1e-4, n_states=100.0)
    tol = 0.006 * (1e-4 - 1e-6)
    w, layer = _layer(
        dev, getkey(), programming=xbar.WriteVerify(tol_fraction=0.006, max_pulses=150)
    )
    g_pos, g_neg, _ = MAPPING.targets(w.T, dev)
    for got, want in ((layer.crossbar.pos.g, g_pos), (layer.crossbar.neg.g, g_neg)):
        err = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
        assert err.max() <= tol * (1 + 4 * EPS32)
        assert err.max() > 0.0  # a pulse-quantized write, not the exact target
    _, exact = _layer(dev, getkey())
    np.testing.assert_allclose(
        np.asarray(exact.crossbar.pos.g), np.asarray(g_pos), rtol=4 * EPS32
    )


def test_write_verify_bad_options_name_the_field():
    with pytest.raises(ValueError, match="tol_fraction"):
        xbar.WriteVerify(tol_fraction=0.0)
    with pytest.raises(ValueError, match="max_pulses"):
        xbar.WriteVerify(max_pulses=0)


def _read_sums(layer, t_s):
    """The reference read by hand: per converted column, the sum of G+ - G- over
    the layer's 20 input rows (the padding rows are never driven)."""
    g = np.asarray(layer.crossbar.differential_g(t_s), np.float64)  # (2, 1, 16, 8)
    g[1, :, 4:, :] = 0.0  # rows 20..31 of the second row tile are padding
    return g.sum(axis=-2)


def _total_sums(layer, t_s):
    """Per converted column, the sum of G+ + G- over the 20 driven rows."""
    g_p, _, g_n, _ = layer.crossbar.read_stats(t_s)
    g = np.asarray(g_p, np.float64) + np.asarray(g_n, np.float64)
    g[1, :, 4:, :] = 0.0
    return g.sum(axis=-2)


@pytest.mark.parametrize("t_read_s", [3600.0, 3.15e7])
def test_drift_compensation_matches_the_reference_reads(t_read_s, getkey):
    # The slow 1/f read deviation (held per cell, part of every read's mean)
    # is off: the identities below are those of pure drift.
    pcm = devices.PCM.from_card("pcm_joshi2020", sigma_read_scale=0.0)
    key = getkey()
    layers = {
        name: _layer(
            pcm, key, t_read_s=t_read_s, drift_compensation=comp, dac=UNQUANTIZED
        )[1]
        for name, comp in (
            ("none", xbar.NoCompensation()),
            ("global", xbar.GlobalCompensation()),
            ("column", xbar.PerColumnCompensation()),
        )
    }
    r0, rt = _read_sums(layers["none"], 0.0), _read_sums(layers["none"], t_read_s)
    # Global: aihwkit's factor sum|ref(0)| / sum|ref(t)| (devices.drift_compensation,
    # computed there independently), applied to every output. float32 sums of
    # 20 cells: 1e-5 relative.
    alpha = float(devices.drift_compensation(jnp.asarray(r0), jnp.asarray(rt)))
    assert alpha > 1.05  # PCM conductances drift down: there is something to undo
    w_none = np.asarray(layers["none"].effective_weight(), np.float64)
    w_glob = np.asarray(layers["global"].effective_weight(), np.float64)
    np.testing.assert_allclose(w_glob, alpha * w_none, rtol=1e-5, atol=1e-7)
    # Per column: each output is scaled by its column's total conductance (G+ and
    # G- added, over the 20 driven rows) at t = 0 over the same at t, computed
    # here by hand in float64 (1e-5: float32 sums of 40 cells).
    t0, tt = _total_sums(layers["none"], 0.0), _total_sums(layers["none"], t_read_s)
    # One factor per row tile and converted column: (2, 1, 8); the 6 outputs use
    # the first 6 columns, inputs 0..15 the first row tile, 16..19 the second.
    beta = t0 / tt
    assert np.all(beta[..., :6] > 1.0)  # every column's cells drift down
    per_cell = beta[np.arange(20) // 16, 0, :6].T  # (6 outputs, 20 inputs)
    w_col = np.asarray(layers["column"].effective_weight(), np.float64)
    np.testing.assert_allclose(w_col, per_cell * w_none, rtol=1e-5, atol=1e-7)
    # A ratio of sums lies between the smallest and largest ratio of its terms:
    # each factor is bounded by its own cells' drift (a signed column sum near
    # zero is not, and could multiply an output by anything).
    xb = layers["none"].crossbar
    g0 = np.stack([np.asarray(a, np.float64) for a in xb.read_stats(0.0)[::2]])
    gt = np.stack([np.asarray(a, np.float64) for a in xb.read_stats(t_read_s)[::2]])
    ratio = np.where(gt > 0, g0 / np.where(gt > 0, gt, 1.0), np.nan)
    ratio[:, 1, :, 4:, :] = np.nan  # padding rows are not driven
    lo, hi = np.nanmin(ratio, axis=(0, 3)), np.nanmax(ratio, axis=(0, 3))
    assert np.all(beta >= lo * (1 - 1e-5)) and np.all(beta <= hi * (1 + 1e-5))
    # And the forward applies the same factors as effective_weight (noise-free).
    x = jax.random.uniform(getkey(), (4, 20), jnp.float32)
    for name in ("global", "column"):
        lay = layers[name]
        y = np.asarray(lay(x), np.float64)
        ref = (
            np.asarray(x, np.float64) @ np.asarray(lay.effective_weight(), np.float64).T
        )
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())

