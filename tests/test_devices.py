"""Device models: invariants over every device, RRAM closed forms, noise
statistics against their stated distributions, and the literature cards."""

import dataclasses
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from helpers import (
    EPS32,
    KS_PVALUE,
    all_device_ids,
    all_devices,
    rram_device_ids,
    rram_devices,
    tree_allclose,
    zero_noise,
)

import devices
import xbar

N_CELLS = 20_000  # cells per statistical test: std of a sample std is ~0.5 %


def _run(device, key, n=64):
    """init -> program -> two pulse writes -> one read; every stage returned."""
    k_init, k_prog, k_up1, k_up2, k_read = jax.random.split(key, 5)
    lo, hi = device.g_min, device.g_max
    state = device.init((n,), key=k_init)
    targets = jnp.linspace(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), n)
    programmed = device.program(state, targets, key=k_prog)
    pulses = jnp.asarray(np.tile([-7.0, -1.0, 0.0, 1.0, 3.0, 20.0, -20.0, 0.0], n // 8))
    updated = device.update(programmed, pulses, key=k_up1)
    updated = device.update(updated, -pulses, key=k_up2)
    read = device.read(updated, key=k_read)
    return programmed, updated, read


def _with_g(device, key, g):
    """Fresh cells of `device` whose conductance is set to `g` (array)."""
    state = device.init(g.shape, key=key)
    return eqx.tree_at(lambda s: s.g, state, jnp.asarray(g, jnp.float32))


# -- invariants over every device ---------------------------------------------


@pytest.mark.parametrize("device", all_devices, ids=all_device_ids)
def test_conductance_stays_in_bounds(device, getkey):
    g_min, g_max = float(device.g_min), float(device.g_max)
    # Program targets far outside the range, then many rounds of random pulse
    # trains up to 3x the full-range pulse count in both directions.
    targets = jax.random.uniform(getkey(), (2000,), minval=-g_max, maxval=3 * g_max)
    state = device.program(device.init((2000,), key=getkey()), targets, key=getkey())
    # Programming error is not clipped at the window (that would bias the
    # cells programmed to a bound), only at 0; pulses then keep the window.
    assert np.all(np.asarray(state.g) >= 0.0)
    gs = []
    for _ in range(10):
        pulses = jnp.round(
            jax.random.uniform(getkey(), (2000,), minval=-300.0, maxval=300.0)
        )
        state = device.update(state, pulses, key=getkey())
        gs.append(state.g)
    g = np.stack([np.asarray(x) for x in gs])
    # Each cell's own window (the nominal one unless the card spreads it per
    # device, window_d2d): g_min, g_max scalars or per-cell arrays.
    g_min, g_max = (np.asarray(b, np.float32) for b in device.window(state))
    # Exact: the bounds are enforced by a clip, which is exact in float32.
    assert np.all(g >= g_min)
    assert np.all(g <= g_max)
    # Both bounds are actually reached, so the check above is not vacuous.
    assert np.any(g == g_min) and np.any(g == g_max)


@pytest.mark.parametrize("device", all_devices, ids=all_device_ids)
def test_jit_equals_eager(device, getkey):
    key = getkey()
    eager = _run(device, key)
    jitted = eqx.filter_jit(_run)(device, key)
    # XLA may fuse and reorder float32 elementwise ops under jit: allow a few
    # ulp (8 eps relative), with atol far below one conductance step. The atol
    # scales with g_max: a pulse step that lands near g_min is a difference of
    # conductances ~g_max, so its float32 error is ~eps g_max, not eps g_min
    # (matters for cards with a large on/off ratio).
    assert tree_allclose(eager, jitted, rtol=8 * EPS32, atol=1e-6 * float(device.g_max))


@pytest.mark.parametrize("device", all_devices, ids=all_device_ids)
def test_vmap_over_stacked_device_equals_loop(device, getkey):
    other = eqx.tree_at(lambda d: d.g_max, device, 2 * device.g_max)
    stacked = xbar.stack([device, other])
    key = getkey()
    batched = jax.vmap(_run, in_axes=(0, None))(stacked, key)
    for i, dev in enumerate((device, other)):
        looped = _run(dev, key)
        one = jax.tree.map(lambda x: x[i], batched)
        # Same float32 ops, batched: a few ulp for a different vectorization.
        assert tree_allclose(
            one, looped, rtol=8 * EPS32, atol=1e-6 * float(device.g_min)
        )


def test_vmap_over_sigma_read_equals_loop(getkey):
    configs = [devices.RRAM.from_card(sigma_read=s) for s in (0.01, 0.05)]
    stacked = xbar.stack(configs)
    key = getkey()
    batched = jax.vmap(_run, in_axes=(0, None))(stacked, key)
    reads = []
    for i, dev in enumerate(configs):
        looped = _run(dev, key)
        one = jax.tree.map(lambda x: x[i], batched)
        # Same float32 ops, batched: a few ulp for a different vectorization.
        assert tree_allclose(one, looped, rtol=8 * EPS32, atol=1e-6 * float(dev.g_min))
        reads.append(np.asarray(one[2]))
    # The two sweep points really differ (the sweep axis is not ignored).
    assert not np.allclose(reads[0], reads[1], rtol=1e-3, atol=0)


@pytest.mark.parametrize("device", all_devices, ids=all_device_ids)
def test_same_key_reproduces(device, getkey):
    key = getkey()
    a, b = _run(device, key), _run(device, key)
    # Bitwise: the same key and the same ops must give the same numbers.
    assert eqx.tree_equal(a, b)


@pytest.mark.parametrize("device", rram_devices, ids=rram_device_ids)
def test_new_key_differs(device, getkey):
    a = _run(device, getkey())
    b = _run(device, getkey())
    for x, y in zip(a, b):
        # Continuous noise in every stage, so cells differ unless clipped to the
        # same bound in both runs (~20 % of the targets lie outside the range).
        frac = np.mean(
            np.asarray(x.g if hasattr(x, "g") else x)
            != np.asarray(y.g if hasattr(y, "g") else y)
        )
        assert frac > 0.5


@pytest.mark.parametrize("device", all_devices, ids=all_device_ids)
def test_zero_noise_is_deterministic(device, getkey):
    quiet = zero_noise(device)
    a = _run(quiet, getkey())
    b = _run(quiet, getkey())
    # Bitwise: with every sigma 0 the noise terms are exactly 0 * xi = 0. The
    # slow read draws `xi_slow` differ by key but are multiplied by 0.
    def strip(run):
        return jax.tree.map(
            lambda s: dataclasses.replace(s, xi_slow=None)
            if hasattr(s, "xi_slow") else s,
            run, is_leaf=lambda s: hasattr(s, "xi_slow"))
    assert eqx.tree_equal(strip(a), strip(b))
    # And a read is the stored conductance exactly.
    assert np.array_equal(np.asarray(a[2]), np.asarray(a[1].g))


def test_ideal_closed_form(getkey):
    dev = devices.Ideal(g_min=1e-6, g_max=1e-4, n_states=100.0)
    step = (1e-4 - 1e-6) / 100
    state = dev.program(
        dev.init((5,), key=getkey()), jnp.full((5,), 5e-5), key=getkey()
    )
    state = dev.update(state, jnp.asarray([-3.0, -1.0, 0.0, 2.0, 10.0]), key=getkey())
    expected = 5e-5 + step * np.array([-3.0, -1.0, 0.0, 2.0, 10.0])
    # float32 arithmetic on values ~1e-4 S: a few eps relative to g_max.
    np.testing.assert_allclose(
        np.asarray(state.g), expected, rtol=0, atol=4 * EPS32 * 1e-4
    )


# -- RRAM closed forms (E-NL, docs/devices.md) ---------------------------------


def _enl(p, p_max, a, g_min, g_max):
    """E-NL in float64: G(P) = B (1 - exp(-P/A)) + G_min, A = a P_max."""
    big_a = a * p_max
    b = (g_max - g_min) / (1.0 - np.exp(-p_max / big_a))
    return b * (1.0 - np.exp(-np.asarray(p, np.float64) / big_a)) + g_min


def _card_curve(name, which="ltp"):
    c = devices.card_values(name)
    return c[f"p_max_{which}"], c[f"a_{which}"], c["g_min"], c["g_max"]


@pytest.mark.parametrize("card", devices.available_cards("RRAM"))
def test_ltp_pulses_from_g_min_closed_form(card, getkey):
    p_max, a, g_min, g_max = _card_curve(card)
    dev = devices.RRAM.from_card(card, sigma_c2c=0.0)
    n = np.arange(int(p_max) + 1, dtype=np.float64)
    expected = _enl(n, p_max, a, g_min, g_max)

    # One write of n pulses per cell, for every n in 0..P_max.
    state = dev.init(n.shape, key=getkey())
    g = np.asarray(dev.update(state, jnp.asarray(n, jnp.float32), key=getkey()).g)
    # E-NL in float32: ~8 roundings (each <= eps/2 relative, expm1 <= 1 ulp) and
    # the card values rounded to float32 (sensitivity ~1): 16 eps of g_max.
    np.testing.assert_allclose(g, expected, rtol=0, atol=16 * EPS32 * g_max)

    # The same curve one pulse at a time (P_max writes of one pulse each): each
    # write inverts the curve and steps on, adding ~eps of error per write, so
    # the bound grows to ~P_max * eps (here 2 P_max eps of g_max).
    state = dev.init((1,), key=getkey())
    seq = [float(state.g[0])]
    for _ in range(int(p_max)):
        state = dev.update(state, jnp.ones((1,)), key=getkey())
        seq.append(float(state.g[0]))
    np.testing.assert_allclose(seq, expected, rtol=0, atol=2 * p_max * EPS32 * g_max)


def test_vector_1_ag_asi(getkey):
    """docs/devices.md check value 1: Ag:a-Si, G(97) = G_max, 97 up then 100
    down returns to G_min without noise."""
    g_min, g_max = 3.0769e-9, 3.8462e-8  # NeuroSim Cell.cpp, typed independently
    dev = devices.RRAM.from_card("rram_ag_asi_jo2010", sigma_c2c=0.0)
    assert float(dev.p_max_ltp) == 97 and float(dev.p_max_ltd) == 100
    state = dev.init((1,), key=getkey())
    # G(0) = G_min exactly (init), G(97) = G_max: float32 E-NL, 16 eps of g_max.
    assert float(state.g[0]) == np.float32(g_min)
    up = dev.update(state, jnp.full((1,), 97.0), key=getkey())
    assert abs(float(up.g[0]) - g_max) <= 16 * EPS32 * g_max
    down = dev.update(up, jnp.full((1,), -100.0), key=getkey())
    # Back at G_min: 16 eps of g_max for the float32 inversion at the top.
    assert abs(float(down.g[0]) - g_min) <= 16 * EPS32 * g_max

    # Pulse by pulse: 97 single up pulses, 100 single down pulses. Per-write
    # error ~eps, so ~200 writes: bound 400 eps of g_max (~5e-5 relative).
    state = dev.init((1,), key=getkey())
    for _ in range(97):
        state = dev.update(state, jnp.ones((1,)), key=getkey())
    assert abs(float(state.g[0]) - g_max) <= 400 * EPS32 * g_max
    for _ in range(99):
        state = dev.update(state, -jnp.ones((1,)), key=getkey())
    # One pulse early it is still a full bottom LTD step above G_min:
    # G_d(1) - G_min = (g_max - g_min) (1 - e^{-1/A}) / (1 - e^{-100/A}), A = -20.03,
    # ~3.5e-4 of the range, 7x the 400 eps accumulated-error bound.
    a_d = -0.200303 * 100
    last = (g_max - g_min) * (1 - np.exp(-1 / a_d)) / (1 - np.exp(-100 / a_d))
    assert abs(float(state.g[0]) - g_min - last) <= 400 * EPS32 * g_max
    state = dev.update(state, -jnp.ones((1,)), key=getkey())
    assert abs(float(state.g[0]) - g_min) <= 400 * EPS32 * g_max


@pytest.mark.parametrize("card", devices.available_cards("RRAM"))
def test_single_pulse_steps_closed_form(card, getkey):
    """One LTP or LTD pulse from conductance g moves by the E-NL step:
    dG_up = (B + g_min - g)(1 - e^{-1/A}),  dG_down = (B_d + g_min - g)(1 - e^{1/A_d}),
    from G(P+-1) - G(P) with B e^{-P/A} = B + g_min - G(P)."""
    c = devices.card_values(card)
    g_min, g_max = c["g_min"], c["g_max"]
    span = g_max - g_min
    a_p, a_d = c["a_ltp"] * c["p_max_ltp"], c["a_ltd"] * c["p_max_ltd"]
    b_p = span / (1 - np.exp(-c["p_max_ltp"] / a_p))
    b_d = span / (1 - np.exp(-c["p_max_ltd"] / a_d))
    g = g_min + span * np.linspace(0.05, 0.9, 18)

    dev = devices.RRAM.from_card(card, sigma_c2c=0.0)
    g32 = np.asarray(g, np.float32)
    state = _with_g(dev, getkey(), g32)
    up = np.asarray(dev.update(state, jnp.ones(g.shape), key=getkey()).g, np.float64)
    down = np.asarray(dev.update(state, -jnp.ones(g.shape), key=getkey()).g, np.float64)
    # The step is a difference of two float32 conductances (~eps g each), and the
    # curve inversion adds ~eps g: 8 eps of g_max absolute. The steps themselves
    # are ~0.3 %..7 % of the range, i.e. >= 2e4 eps, so this resolves them.
    g32_64 = g32.astype(np.float64)
    up_expected = (b_p + g_min - g32_64) * (1 - np.exp(-1 / a_p))
    down_expected = (b_d + g_min - g32_64) * (1 - np.exp(1 / a_d))
    np.testing.assert_allclose(up - g32_64, up_expected, rtol=0, atol=8 * EPS32 * g_max)
    np.testing.assert_allclose(
        down - g32_64, down_expected, rtol=0, atol=8 * EPS32 * g_max
    )
    # Nonlinearity and asymmetry: for a_ltp > 0 the LTP step shrinks as g grows
    # (concave); for a_ltd < 0 the LTD step grows in magnitude with g (convex).
    assert c["a_ltp"] > 0 and c["a_ltd"] < 0
    assert np.all(np.diff(up - g32_64) < 0)
    assert np.all(np.diff(np.abs(down - g32_64)) > 0)


@pytest.mark.parametrize("card", devices.available_cards("RRAM"))
def test_first_ltp_step_larger_than_last(card, getkey):
    p_max, a, g_min, g_max = _card_curve(card)
    dev = devices.RRAM.from_card(card, sigma_c2c=0.0)
    state = dev.init((1,), key=getkey())
    g = [float(state.g[0])]
    for _ in range(int(p_max)):
        state = dev.update(state, jnp.ones((1,)), key=getkey())
        g.append(float(state.g[0]))
    steps = np.diff(np.asarray(g, np.float64))
    # E-NL: step k is B e^{-k/A} (1 - e^{-1/A}), so first/last = e^{(P_max-1)/A}.
    ratio_expected = np.exp((p_max - 1) / (a * p_max))
    assert steps[0] > steps[-1]
    # Each write adds ~eps g_max of error (see the pulse-by-pulse test), so a step
    # (difference of two consecutive values) is good to ~4 eps g_max; relative
    # errors of the two steps add in the ratio.
    rtol = 4 * EPS32 * g_max * (1 / steps[0] + 1 / steps[-1])
    np.testing.assert_allclose(steps[0] / steps[-1], ratio_expected, rtol=rtol)


def test_enl_inverse_round_trip():
    # docs/devices.md check value 1, with the library's curve functions: G(P)
    # matches the float64 E-NL (16 eps of g_max, as in the pulse tests) and P(G(P)) = P.
    p = jnp.arange(98, dtype=jnp.float32)
    args = (97.0, 0.499181, 3.0769e-9, 3.8462e-8)
    g = devices.nl_curve(p, *(jnp.float32(v) for v in args))
    np.testing.assert_allclose(
        np.asarray(g), _enl(np.arange(98), *args), rtol=0, atol=16 * EPS32 * 3.8462e-8
    )
    back = devices.nl_curve_inverse(g, *(jnp.float32(v) for v in args))
    # One ulp of g moves P by eps g / G'(P), largest at P_max: eps g A e^{P/A} / B
    # = 4.0e-5 pulses for A = 48.4; 1e-4 pulses allows ~2.5 ulp of g.
    np.testing.assert_allclose(np.asarray(back), np.arange(98), rtol=0, atol=1e-4)


# -- noise statistics -----------------------------------------------------------


@pytest.mark.parametrize("card", devices.available_cards("RRAM"))
@pytest.mark.parametrize("n", [1.0, 4.0, -1.0, -4.0])
def test_cycle_to_cycle_noise(card, n, getkey):
    c = devices.card_values(card)
    g_min, g_max = c["g_min"], c["g_max"]
    span = g_max - g_min
    dev = devices.RRAM.from_card(card)  # sigma_d2d = 0 in both cards
    assert float(dev.sigma_d2d) == 0.0
    g0 = np.float32(g_min + 0.5 * span)  # mid-range: >= 6.7 sigma from a bound
    state = _with_g(dev, getkey(), np.full(N_CELLS, g0))
    g = np.asarray(dev.update(state, jnp.full(N_CELLS, n), key=getkey()).g, np.float64)

    sigma = c["sigma_c2c"] * span * np.sqrt(abs(n))
    # Std of the sample std of N normal draws is sigma / sqrt(2N); 5 of those.
    assert abs(g.std(ddof=1) - sigma) <= 5 * sigma / np.sqrt(2 * N_CELLS)
    # Mean: the noise-free E-NL step from g0, (B + g_min - g0)(1 - e^{-n/A}) on
    # the LTP or LTD curve; sampling error of a mean is sigma / sqrt(N), 5 of those.
    which = "ltp" if n > 0 else "ltd"
    big_a = c[f"a_{which}"] * c[f"p_max_{which}"]
    b = span / (1 - np.exp(-c[f"p_max_{which}"] / big_a))
    mean = float(g0) + (b + g_min - float(g0)) * (1 - np.exp(-n / big_a))
    assert abs(g.mean() - mean) <= 5 * sigma / np.sqrt(N_CELLS)
    # Gaussian shape; threshold explained at KS_PVALUE in helpers.py.
    assert scipy.stats.kstest((g - mean) / sigma, "norm").pvalue > KS_PVALUE


@pytest.mark.parametrize("device", rram_devices, ids=rram_device_ids)
@pytest.mark.parametrize("frac", [0.1, 0.5, 1.0])
def test_read_noise_statistics(device, frac, getkey):
    g_min, g_max = float(device.g_min), float(device.g_max)
    g0 = np.float32(g_min + frac * (g_max - g_min))
    state = _with_g(device, getkey(), np.full(N_CELLS, g0))
    r = np.asarray(device.read(state, key=getkey()), np.float64)
    sigma = float(device.sigma_read) * float(g0)
    assert sigma > 0
    # Sampling error of the mean: sigma / sqrt(N); 5 of those.
    assert abs(r.mean() - float(g0)) <= 5 * sigma / np.sqrt(N_CELLS)
    # Sampling error of the std: sigma / sqrt(2N); 5 of those.
    assert abs(r.std(ddof=1) - sigma) <= 5 * sigma / np.sqrt(2 * N_CELLS)
    # Gaussian shape; threshold explained at KS_PVALUE in helpers.py.
    assert scipy.stats.kstest((r - float(g0)) / sigma, "norm").pvalue > KS_PVALUE


@pytest.mark.parametrize("device", rram_devices, ids=rram_device_ids)
def test_reads_are_independent_and_scale_with_g(device, getkey):
    # Cells spread over the whole range: (read - g) / (sigma_read g) is N(0, 1).
    g_min, g_max = float(device.g_min), float(device.g_max)
    g = np.linspace(g_min, g_max, N_CELLS).astype(np.float32)
    state = _with_g(device, getkey(), g)
    r1 = np.asarray(device.read(state, key=getkey()), np.float64)
    r2 = np.asarray(device.read(state, key=getkey()), np.float64)
    z1 = (r1 - g) / (float(device.sigma_read) * g.astype(np.float64))
    z2 = (r2 - g) / (float(device.sigma_read) * g.astype(np.float64))
    # Gaussian shape; threshold explained at KS_PVALUE in helpers.py.
    assert scipy.stats.kstest(z1, "norm").pvalue > KS_PVALUE
    # Two reads are independent: correlation within 5 / sqrt(N) of 0.
    assert abs(np.corrcoef(z1, z2)[0, 1]) <= 5 / np.sqrt(N_CELLS)


def _levels64(card):
    p_max, a, g_min, g_max = _card_curve(card)
    return _enl(np.arange(int(p_max) + 1), p_max, a, g_min, g_max)


@pytest.mark.parametrize("card", devices.available_cards("RRAM"))
def test_program_lands_on_nearest_level(card, getkey):
    levels = _levels64(card)
    g_min, g_max = levels[0], levels[-1]
    dev = devices.RRAM.from_card(card, sigma_prog=0.0, sigma_c2c=0.0,
                                 **{f"sigma_prog_x{i}": 0.0 for i in range(1, 5)})
    # levels() is the E-NL curve at whole pulses: 16 eps of g_max (see above).
    np.testing.assert_allclose(
        np.asarray(dev.levels()), levels, rtol=0, atol=16 * EPS32 * g_max
    )
    span = g_max - g_min
    targets = np.asarray(
        jax.random.uniform(
            getkey(), (5000,), minval=g_min - 0.1 * span, maxval=g_max + 0.1 * span
        ),
        np.float64,
    )
    g = np.asarray(
        dev.program(
            dev.init(targets.shape, key=getkey()),
            jnp.asarray(targets, jnp.float32),
            key=getkey(),
        ).g,
        np.float64,
    )
    dist = np.abs(g[:, None] - levels[None, :])
    # On a level: within 16 eps of g_max (float32 E-NL); adjacent levels are
    # >= ~3e-3 of the range apart, i.e. >= 2e4 eps, so this identifies the level.
    assert dist.min(axis=1).max() <= 16 * EPS32 * g_max
    # The nearest level to the target, clipped into range (verified write). Ties
    # within the float32 evaluation error are allowed either way.
    t = np.clip(targets, g_min, g_max)
    err = np.abs(g - t)
    best = np.abs(t[:, None] - levels[None, :]).min(axis=1)
    assert np.all(err <= best + 16 * EPS32 * g_max)


@pytest.mark.parametrize("card", devices.available_cards("RRAM"))
@pytest.mark.parametrize("frac", [0.3, 0.5, 0.7])
def test_programming_noise_std(card, frac, getkey):
    levels = _levels64(card)
    g_min, g_max = levels[0], levels[-1]
    span = g_max - g_min
    dev = devices.RRAM.from_card(card)  # Wan 2022 polynomial, C2C floor
    target = g_min + frac * span  # >= 0.3 span = 6 sigma from a bound
    state = dev.init((N_CELLS,), key=getkey())
    g = np.asarray(
        dev.program(state, jnp.full(N_CELLS, target, jnp.float32), key=getkey()).g,
        np.float64,
    )
    nearest = levels[np.abs(levels - target).argmin()]
    # The Wan 2022 polynomial (typed here, uS at a 40 uS reference) in the
    # level's place in the window, floored at one pulse's C2C noise.
    x = (nearest - g_min) / span
    wan = (0.348, 16.030, -43.853, 45.393, -16.815)
    poly = sum(c * x**i for i, c in enumerate(wan))
    c2c = devices.card_values(card)["sigma_c2c"]
    sigma = max(abs(poly) / 40, c2c) * span
    # Std of the sample std: sigma / sqrt(2N); 5 of those.
    assert abs(g.std(ddof=1) - sigma) <= 5 * sigma / np.sqrt(2 * N_CELLS)
    # Mean: the nearest level to the target; sampling error sigma / sqrt(N), x5.
    assert abs(g.mean() - nearest) <= 5 * sigma / np.sqrt(N_CELLS)
    # Gaussian shape; threshold explained at KS_PVALUE in helpers.py.
    assert scipy.stats.kstest((g - nearest) / sigma, "norm").pvalue > KS_PVALUE


# -- cards ----------------------------------------------------------------------


def test_unknown_card_lists_available():
    with pytest.raises(ValueError, match="rram_ag_asi_jo2010") as info:
        devices.load_card("no_such_device")
    for name in ("no_such_device", "rram_ag_asi_jo2010", "rram_taox_hfox_wu2018"):
        assert name in str(info.value)


def test_available_cards_are_the_files():
    files = sorted(p.stem for p in devices.cards.CARD_DIR.glob("*.json"))
    assert files == devices.available_cards()
    assert {"rram_ag_asi_jo2010", "rram_taox_hfox_wu2018"} <= set(files)


@pytest.mark.parametrize("card", devices.available_cards())
def test_card_provenance_and_sources(card):
    # Read the JSON directly, not through load_card (which runs the same checks).
    raw = json.loads((devices.cards.CARD_DIR / f"{card}.json").read_text())
    assert raw["name"] == card
    refs = raw["references"]
    assert refs and all(isinstance(v, str) and v for v in refs.values())
    for key, p in raw["parameters"].items():
        assert p["provenance"] in {"R", "D", "U", "A"}, key
        # Every R/D/U number cites a reference of the card. An A (our own
        # assumption) may have no source, but one it names must exist.
        if p["provenance"] != "A" or "source" in p:
            assert p.get("source") in refs, key
        assert np.isfinite(p["value"]), key
        assert p.get("unit"), key
        if p["provenance"] == "D":
            assert p.get("note"), key  # a derived number states its formula


def test_card_numbers_rederived():
    """The a(NL) values are the E-NL lookup table of docs/devices.md (typed here), the
    sign of a follows the sign of NL, and the D-tagged numbers re-derive."""
    table = {0.04: 31.566827, 0.63: 1.997332, 2.4: 0.499181, 4.88: 0.200303,
             3.68: 0.300644, 6.76: 0.100251}
    for card in devices.available_cards("RRAM"):
        c = devices.card_values(card)
        for which in ("ltp", "ltd"):
            nl, a = c[f"nl_{which}"], c[f"a_{which}"]
            # Exact table entries, copied to 6 decimals in both places.
            assert abs(abs(a) - table[abs(nl)]) <= 1e-9, (card, which)
            assert np.sign(a) == np.sign(nl), (card, which)
    wu = devices.card_values("rram_taox_hfox_wu2018")
    # g_min = g_max / (on/off 10): the card's D note. Exact up to float parsing.
    assert abs(wu["g_min"] - wu["g_max"] / 10) <= 1e-12 * wu["g_max"]
    for card in devices.available_cards("RRAM"):
        # The borrowed Wan 2022 polynomial gives 2.023 uS / 40 uS = 0.0506 at
        # the middle of the window (aihwkit's number), to 6 decimals per term.
        c = devices.card_values(card)
        poly = c["sigma_prog"] + sum(
            c[f"sigma_prog_x{i}"] * 0.5**i for i in range(1, 5))
        assert abs(poly - 2.023 / 40) <= 5e-5
    jo = devices.card_values("rram_ag_asi_jo2010")
    # g = 1 / R with R_on = 26 MOhm, R_off = 325 MOhm (5 significant digits).
    assert abs(jo["g_max"] - 1 / 26e6) <= 1e-4 * jo["g_max"]
    assert abs(jo["g_min"] - 1 / 325e6) <= 1e-4 * jo["g_min"]


@pytest.mark.parametrize("card", devices.available_cards("RRAM"))
def test_from_card_uses_card_values(card):
    c = devices.card_values(card)
    dev = devices.RRAM.from_card(card)
    for field in (
        "g_min",
        "g_max",
        "p_max_ltp",
        "p_max_ltd",
        "a_ltp",
        "a_ltd",
        "sigma_c2c",
        "sigma_d2d",
        "sigma_read",
        "sigma_prog",
    ):
        # Stored as float32: half an ulp relative.
        assert abs(float(getattr(dev, field)) - c[field]) <= EPS32 * abs(c[field]), (
            field
        )
    over = devices.RRAM.from_card(card, sigma_read=0.1)
    assert float(over.sigma_read) == np.float32(0.1)


# -- printing --------------------------------------------------------------------


@pytest.mark.parametrize(
    "device, shown",
    [
        (devices.RRAM.from_card("rram_ag_asi_jo2010"),
         ("g_min=3.0769e-09", "g_max=3.8462e-08", "p_max_ltp=97", "a_ltd=-0.200303",
          "sigma_c2c=0.035", "iv=LinearIV()", "faults=False")),
        (devices.PCM.from_card(), ("g_max=2.5e-05", "t0_s=20", "prog_c2=-1.1731")),
        (devices.Perovskite.from_card(), ("tau_s=1", "opt_step=0.5")),
        (devices.IonicSynapse.from_card(), ("dx=0.001", "x_ref=0.4138")),
        (devices.Ideal(), ("g_min=1e-06", "n_states=1000")),
    ],
    ids=["RRAM", "PCM", "Perovskite", "IonicSynapse", "Ideal"],
)
def test_device_prints_its_values(device, shown):
    text = repr(device)
    assert text.startswith(type(device).__name__ + "(")
    assert "f32[]" not in text
    for s in shown:
        assert s in text, (s, text)
    assert str(device) == text


def test_stacked_device_prints_shapes():
    # A device stacked for a sweep prints each swept field by shape.
    stacked = jax.vmap(lambda s: devices.RRAM.from_card(sigma_read=s))(
        jnp.asarray([0.01, 0.02, 0.03])
    )
    text = repr(stacked)
    assert "sigma_read=f32[3]" in text and "g_max=f32[3]" in text


# -- cached reads ------------------------------------------------------------------


def test_cached_read_returns_the_device_read_stats(getkey):
    dev = devices.PCM.from_card()
    state = dev.program(dev.init((5, 4), key=getkey()),
                        jnp.linspace(0.0, 2.5e-5, 20).reshape(5, 4), key=getkey())
    cached, cstate = devices.cache_reads(dev, state, 3600.0)
    assert isinstance(cached, devices.CachedRead)
    assert isinstance(cstate, devices.CachedReadState)
    mean, std = dev.read_stats(state, 3600.0)
    # The stored statistics, whatever time is asked, inside jit too.
    read_stats = eqx.filter_jit(lambda d, st, t: d.read_stats(st, t))
    for t in (0.0, 1e6):
        m, s = read_stats(cached, cstate, t)
        np.testing.assert_array_equal(np.asarray(m), np.asarray(mean))
        np.testing.assert_array_equal(np.asarray(s), np.asarray(std))
    assert float(cached.g_min) == float(dev.g_min)
    assert float(cached.g_max) == float(dev.g_max)
    assert cached.linear_iv
    assert cached.relax(cstate, 1.0) is cstate
    # A read draws fresh noise with the stored std.
    key = getkey()
    np.testing.assert_array_equal(np.asarray(cached.read(cstate, key=key)),
                                  np.asarray(dev.read(state, 3600.0, key=key)))


def test_cached_read_cannot_be_written(getkey):
    dev = devices.RRAM.from_card()
    cached, cstate = devices.cache_reads(dev, dev.init((3,), key=getkey()))
    with pytest.raises(NotImplementedError, match="fabricated"):
        cached.init((3,), key=getkey())
    with pytest.raises(NotImplementedError, match="programmed"):
        cached.program(cstate, jnp.zeros(3), key=getkey())
    with pytest.raises(NotImplementedError, match="updated"):
        cached.update(cstate, jnp.ones(3), key=getkey())


def test_cache_reads_needs_a_linear_iv(getkey):
    dev = devices.RRAM.from_card(iv=devices.SinhIV())
    with pytest.raises(ValueError, match="linear"):
        devices.cache_reads(dev, dev.init((3,), key=getkey()))
