"""The device library beyond RRAM: PCM (E-PCM), halide perovskites, ionic
synapses, compact switching models, RRAM options, fitting a pulse table.

Each numerical check is against a closed form written here, a published number
(the check values of docs/devices.md, derived from the aihwkit constants), or
a float64 NumPy reference; each tolerance says why.
"""

import dataclasses
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from helpers import EPS32, KS_PVALUE, load_script

import devices
import xbar

N = 20_000  # cells per statistical test
US = 1e-6


def _enl(p, p_max, a, g_min, g_max):
    """E-NL in float64 (docs/devices.md)."""
    big_a = a * p_max
    b = (g_max - g_min) / (1.0 - np.exp(-p_max / big_a))
    return b * (1.0 - np.exp(-np.asarray(p, np.float64) / big_a)) + g_min


def _set_state(state, **leaves):
    names = tuple(leaves)
    return eqx.tree_at(
        lambda s: tuple(getattr(s, n) for n in names),
        state,
        tuple(jnp.asarray(v, jnp.float32) for v in leaves.values()),
    )


# -- PCM (E-PCM, docs/devices.md) ---------------------------------------------


def test_pcm_sanity_values_programming_and_drift_exponent():
    pcm = devices.PCM.from_card()
    g_max = float(pcm.g_max)
    sig = devices.pcm_prog_sigma(
        jnp.asarray([0.0, 0.25, 0.5, 1.0]), pcm.prog_c0, pcm.prog_c1, pcm.prog_c2,
        pcm.g_max,
    )
    # docs/devices.md prints 3 decimals (uS): half a unit of the last digit + float32.
    np.testing.assert_allclose(
        np.asarray(sig) / US, [0.263, 0.681, 0.953, 1.055], rtol=0, atol=5.1e-4
    )
    assert g_max == pytest.approx(25e-6)
    mu, s = devices.pcm_nu_stats(jnp.asarray([1.0, 0.5, 0.1, 0.01]))
    # Printed to 4 significant digits: half a unit of the last digit.
    np.testing.assert_allclose(
        np.asarray(mu), [0.049, 0.049, 0.0601, 0.0958], rtol=0, atol=5.1e-5
    )
    np.testing.assert_allclose(
        np.asarray(s), [0.008, 0.008, 0.0229, 0.045], rtol=0, atol=5.1e-5
    )


def test_pcm_sanity_values_drift_factor_and_read_noise(getkey):
    pcm = devices.PCM.from_card()
    st = pcm.init((4,), key=getkey())
    g = jnp.asarray([25e-6, 25e-6, 2.5e-6, 2.5e-6])
    st = _set_state(st, g=g, q_s=devices.pcm_q_s(g / 25e-6), nu=jnp.full((4,), 0.049))
    hour, day, year = 3600.0, 86400.0, 365 * 86400.0
    for t, f in ((hour, 0.775), (day, 0.664), (year, 0.497)):
        mean, _, _ = pcm.read_parts(st, t)
        # 3 printed decimals: half a unit (5e-4) plus float32 pow rounding.
        assert abs(float(mean[0]) / 25e-6 - f) <= 5.1e-4, t
    # Relative read std at g^ = 1 and 0.1, at t = 0 and one day (printed to 3
    # significant digits: half a unit of the last digit).
    for t, (r1, r01) in ((0.0, (0.0368, 0.164)), (day, (0.0448, 0.200))):
        mean, std, _ = pcm.read_parts(st, t)  # the 1/f part is the slow one
        rel = np.asarray(std) / np.asarray(mean)
        assert abs(rel[0] - r1) <= 5.1e-5, t
        assert abs(rel[2] - r01) <= 5.1e-4, t


def test_pcm_drift_is_power_law_with_card_exponent(getkey):
    """Each cell drifts as ((t + t0)/t0)^-nu with one exponent for all t, and the
    exponents are |N(0.049, 0.008)| at g^ = 1 (the card's mean exponent)."""
    pcm = devices.PCM.from_card(sigma_prog_scale=0.0)
    st = pcm.program(pcm.init((N,), key=getkey()), jnp.full((N,), 25e-6), key=getkey())
    card = devices.card_values("pcm_joshi2020")
    nus = []
    for t in (3600.0, 86400.0, 3.15e7):
        mean, _, _ = pcm.read_parts(st, t)
        ratio = np.asarray(mean, np.float64) / np.asarray(st.g, np.float64)
        nus.append(-np.log(ratio) / np.log1p(t / 20.0))
    # The same exponent at every time (power law): float32 pow/log rounding,
    # ~1e-6 relative in the ratio -> < 1e-4 absolute in nu.
    np.testing.assert_allclose(nus[0], nus[2], rtol=0, atol=1e-4)
    mu, sd = card["mu_nu_at_ghat_1"], card["sigma_nu_at_ghat_1"]
    # Mean and std to 5 sampling sigmas (|.| folding at 6 sigma is negligible).
    assert abs(nus[1].mean() - mu) <= 5 * sd / np.sqrt(N)
    assert abs(nus[1].std() - sd) <= 5 * sd / np.sqrt(2 * N)
    assert scipy.stats.kstest((nus[1] - mu) / sd, "norm").pvalue > KS_PVALUE


def test_pcm_programming_and_read_noise_statistics(getkey):
    pcm = devices.PCM.from_card()
    target = 12.5e-6  # g^ = 0.5: sigma_prog 0.953 uS, >= 12 sigma from a bound
    st = pcm.program(pcm.init((N,), key=getkey()), jnp.full((N,), target), key=getkey())
    g = np.asarray(st.g, np.float64)
    sigma = (0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25) * US  # typed from the card
    # Sampling error of the std and mean: 5 sigmas each.
    assert abs(g.std(ddof=1) - sigma) <= 5 * sigma / np.sqrt(2 * N)
    assert abs(g.mean() - target) <= 5 * sigma / np.sqrt(N)
    assert scipy.stats.kstest((g - target) / sigma, "norm").pvalue > KS_PVALUE
    # One day later: the slow (1/f) deviation of the cells is Gaussian around
    # the drifted mean with the stated std, and a read adds white noise of the
    # fast std around that.
    mean, slow, fast = pcm.read_parts(st, 86400.0)
    held, fast2 = pcm.read_stats(st, 86400.0)
    np.testing.assert_array_equal(np.asarray(fast), np.asarray(fast2))
    z = (np.asarray(held, np.float64) - np.asarray(mean, np.float64)) / np.asarray(
        slow, np.float64)
    assert abs(z.std() - 1.0) <= 5 / np.sqrt(2 * N)
    assert scipy.stats.kstest(z, "norm").pvalue > KS_PVALUE
    r = np.asarray(pcm.read(st, 86400.0, key=getkey()), np.float64)
    z = (r - np.asarray(held, np.float64)) / np.asarray(fast, np.float64)
    assert abs(z.std() - 1.0) <= 5 / np.sqrt(2 * N)
    assert scipy.stats.kstest(z, "norm").pvalue > KS_PVALUE


def test_pcm_global_drift_compensation(getkey):
    # One exponent for every cell: compensation undoes the drift exactly.
    pcm = devices.PCM.from_card(sigma_prog_scale=0.0, sigma_nu_scale=0.0)
    w = jax.random.uniform(getkey(), (512,), minval=0.3, maxval=1.0) * 25e-6
    st = pcm.program(pcm.init((512,), key=getkey()), w, key=getkey())
    st = _set_state(st, nu=jnp.full((512,), 0.049))
    g0, _, _ = pcm.read_parts(st, 0.0)
    g1, _, _ = pcm.read_parts(st, 86400.0)
    alpha = float(devices.drift_compensation(g0, g1))
    # alpha = ((t + t0)/t0)^nu: float32 sums of 512 terms, 1e-5 relative.
    assert alpha == pytest.approx((86420 / 20) ** 0.049, rel=1e-5)
    np.testing.assert_allclose(alpha * np.asarray(g1), np.asarray(g0), rtol=2e-5)
    # Per-cell exponents: compensation removes the mean drift, the error left
    # is the spread of nu, much smaller than the uncompensated error.
    pcm = devices.PCM.from_card(sigma_prog_scale=0.0)
    st = pcm.program(pcm.init((N,), key=getkey()), jnp.full((N,), 20e-6), key=getkey())
    g0, _, _ = pcm.read_parts(st, 0.0)
    g1, _, _ = pcm.read_parts(st, 86400.0)
    alpha = devices.drift_compensation(g0, g1)
    err_raw = float(jnp.mean(jnp.abs(g1 - g0)))
    err_comp = float(jnp.mean(jnp.abs(alpha * g1 - g0)))
    # sigma_nu / (mean nu) = 0.16 here: at least a 4x reduction.
    assert err_comp < 0.25 * err_raw


def test_pcm_set_follows_enl_and_reset_is_abrupt(getkey):
    pcm = devices.PCM.from_card(sigma_c2c=0.0)
    n = np.arange(101, dtype=np.float64)
    st = pcm.update(pcm.init(n.shape, key=getkey()), jnp.asarray(n, jnp.float32),
                    key=getkey())
    c = devices.card_values("pcm_joshi2020")
    expected = _enl(n, c["p_max_set"], c["a_set"], c["g_min"], c["g_max"])
    # float32 E-NL: 16 eps of g_max, as in test_devices.py.
    np.testing.assert_allclose(np.asarray(st.g), expected, rtol=0,
                               atol=16 * EPS32 * c["g_max"])
    st = pcm.update(st, -jnp.ones(n.shape), key=getkey())
    assert np.all(np.asarray(st.g) == 0.0)  # RESET melts: exactly g_min


# -- halide perovskites ---------------------------------------------------------

PEROVSKITE_CARDS = devices.available_cards("Perovskite")


def test_at_least_two_perovskite_and_three_ionic_cards():
    assert len(PEROVSKITE_CARDS) >= 2
    assert len(devices.available_cards("IonicSynapse")) >= 3


@pytest.mark.parametrize("card", PEROVSKITE_CARDS)
def test_perovskite_ltp_ltd_closed_form(card, getkey):
    c = devices.card_values(card)
    dev = devices.Perovskite.from_card(card, sigma_c2c=0.0, sigma_d2d=0.0, vol_step=0.0)
    n = np.arange(int(c["p_max_ltp"]) + 1, dtype=np.float64)
    st = dev.update(dev.init(n.shape, key=getkey()), jnp.asarray(n, jnp.float32),
                    key=getkey())
    # LTP from g_min: E-NL with the card's a_ltp; float32: 16 eps of g_max.
    exp_ltp = _enl(n, c["p_max_ltp"], c["a_ltp"], c["g_min"], c["g_max"])
    np.testing.assert_allclose(np.asarray(st.g), exp_ltp, rtol=0,
                               atol=16 * EPS32 * c["g_max"])
    # LTD from the top: k pulses down the LTD curve, G_d(P_max - k).
    top = dev.update(dev.init((1,), key=getkey()), jnp.full((1,), c["p_max_ltp"]),
                     key=getkey())
    k = np.arange(int(c["p_max_ltd"]) + 1, dtype=np.float64)
    top = jax.tree.map(lambda x: jnp.broadcast_to(x, k.shape), top)
    down = dev.update(top, -jnp.asarray(k, jnp.float32), key=getkey())
    exp_ltd = _enl(c["p_max_ltd"] - k, c["p_max_ltd"], c["a_ltd"], c["g_min"],
                   c["g_max"])
    # Inverting at the top costs ~1 ulp of P: 32 eps of g_max.
    np.testing.assert_allclose(np.asarray(down.g), exp_ltd, rtol=0,
                               atol=32 * EPS32 * c["g_max"])
    # Asymmetric nonlinearity: LTP concave, LTD convex in the pulse count.
    assert c["a_ltp"] > 0 and c["a_ltd"] < 0


@pytest.mark.parametrize("card", PEROVSKITE_CARDS)
def test_perovskite_volatile_decay_fit_recovers_tau(card, getkey):
    c = devices.card_values(card)
    dev = devices.Perovskite.from_card(card, sigma_c2c=0.0, sigma_d2d=0.0)
    st = dev.program(dev.init((1,), key=getkey()), jnp.full((1,), c["g_min"]),
                     key=getkey())
    st = dev.update(st, jnp.full((1,), 5.0), key=getkey())
    w = float(st.w[0])
    dt = c["tau_s"] / 10
    ts, gs = [], []
    for k in range(40):  # relax in steps: exponential decay composes exactly
        ts.append(k * dt)
        gs.append(float(st.g[0]) - w)
        st = dev.relax(st, dt)
    ts, gs = np.asarray(ts), np.asarray(gs)
    popt, _ = scipy.optimize.curve_fit(
        lambda t, a, tau: a * np.exp(-t / tau), ts, gs, p0=(gs[0], 2 * dt)
    )
    # Noise-free float32 decay: the fit is exact up to ~40 float32 steps of
    # rounding, 1e-4 relative.
    assert popt[1] == pytest.approx(c["tau_s"], rel=1e-4)
    assert popt[0] == pytest.approx(5 * c["vol_step"] * (c["g_max"] - c["g_min"]),
                                    rel=1e-4)


@pytest.mark.parametrize("card", PEROVSKITE_CARDS)
def test_perovskite_paired_pulse_facilitation(card, getkey):
    c = devices.card_values(card)
    dev = devices.Perovskite.from_card(card, sigma_c2c=0.0, sigma_d2d=0.0)
    span = c["g_max"] - c["g_min"]
    g0 = c["g_min"] + 0.3 * span
    dts = np.asarray([0.1, 0.5, 1.0, 2.0, 5.0]) * c["tau_s"]
    st = dev.program(dev.init(dts.shape, key=getkey()), jnp.full(dts.shape, g0),
                     key=getkey())
    g_start = np.asarray(st.g, np.float64)
    one = dev.update(st, jnp.ones(dts.shape), key=getkey())
    a1 = np.asarray(one.g, np.float64) - g_start
    two = dev.update(dev.relax(one, dts), jnp.ones(dts.shape), key=getkey())
    a2 = np.asarray(two.g, np.float64) - np.asarray(dev.relax(one, dts).g, np.float64)
    # Closed form: the non-volatile LTP step from g and from g + dw1 (E-NL:
    # dG = (B + g_min - g)(1 - e^{-1/A})), plus vol_step span each, plus the
    # first pulse's volatile part left after dt.
    big_a = c["a_ltp"] * c["p_max_ltp"]
    b = span / (1 - np.exp(-c["p_max_ltp"] / big_a))
    dw1 = (b + c["g_min"] - g_start) * (1 - np.exp(-1 / big_a))
    dw2 = (b + c["g_min"] - g_start - dw1) * (1 - np.exp(-1 / big_a))
    v = c["vol_step"] * span
    ppf_expected = (dw2 + v * (1 + np.exp(-dts / c["tau_s"]))) / (dw1 + v)
    # The second amplitude counts the volatile residue that is left at the
    # second pulse (measured from the relaxed baseline): a2 = dw2 + v.
    ppf = (a2 + v * np.exp(-dts / c["tau_s"])) / a1
    # Differences of float32 conductances ~1e-3 of g: 1e-4 relative.
    np.testing.assert_allclose(ppf, ppf_expected, rtol=1e-4)
    # PPF decays with dt towards dw2/dw1 + ... (facilitation fades).
    assert np.all(np.diff(ppf) < 0) and ppf[0] > 1.0


def test_perovskite_optical_pulses_potentiate(getkey):
    dev = devices.Perovskite.from_card("perovskite_mapbi3_poddar", sigma_c2c=0.0,
                                         sigma_d2d=0.0)
    c = devices.card_values("perovskite_mapbi3_poddar")
    st = dev.init((3,), key=getkey())
    lit = dev.illuminate(st, jnp.asarray([0.0, 4.0, -4.0]), key=getkey())
    g = np.asarray(lit.g, np.float64)
    # Four light pulses: opt_step * 4 LTP pulses of the non-volatile curve
    # plus 4 opt_vol_step of volatile conductance; negative light does nothing.
    span = c["g_max"] - c["g_min"]
    expected = _enl(4 * c["opt_step"], c["p_max_ltp"], c["a_ltp"], c["g_min"],
                    c["g_max"]) + 4 * c["opt_vol_step"] * span
    assert g[1] == pytest.approx(expected, rel=16 * EPS32 * c["g_max"] / expected)
    assert g[0] == g[2] == np.float32(c["g_min"])
    # The photo-generated part decays: after 10 tau only the non-volatile part.
    relaxed = np.asarray(dev.relax(lit, 10 * c["tau_s"]).g, np.float64)
    assert relaxed[1] == pytest.approx(float(lit.w[1]), rel=1e-4)


# -- ionic synapses -------------------------------------------------------------


def _els_loop(x0, n, dx, gamma, x_ref):
    """E-LS one pulse at a time, float64 (docs/devices.md, normalized)."""
    x = float(x0)
    for _ in range(int(abs(n))):
        if n > 0:
            x += dx * (1 - gamma * (x - x_ref) / (1 - x_ref))
        else:
            x -= dx * (1 + gamma * (x - x_ref) / x_ref)
    return x


@pytest.mark.parametrize("card", ["ionic_ecram_tang2018", "ionic_ecram_mo_kim2019"])
def test_ionic_linear_step_closed_form(card):
    c = devices.card_values(card)
    cases = [(0.1, 300), (0.5, 50), (0.9, -400), (0.3, -1), (0.6, 1)]
    for x0, n in cases:
        for gam, sign in ((c["gamma_up"], 1), (c["gamma_dn"], -1)):
            nn = sign * abs(n)
            got = float(devices.linear_step_response(
                jnp.float32(x0), jnp.float32(nn), jnp.float32(c["dx"]),
                jnp.float32(gam), jnp.float32(c["x_ref"])))
            ref = _els_loop(x0, nn, c["dx"], gam, c["x_ref"])
            # float32 expm1/log1p of small arguments: 1e-6 of the range.
            assert abs(got - ref) <= 1e-6, (x0, nn)


def test_ionic_state_counts_match_aihwkit_presets():
    # docs/devices.md check value 3: EcRam 1000 states, EcRamMO ~7089.
    assert 1 / devices.card_values("ionic_ecram_tang2018")["dx"] == pytest.approx(1000)
    mo = 1 / devices.card_values("ionic_ecram_mo_kim2019")["dx"]
    assert abs(mo - 7089) <= 1  # dw_min rounded to 5 significant digits


def test_ionic_cycle_to_cycle_noise(getkey):
    dev = devices.IonicSynapse.from_card("ionic_ecram_tang2018", sigma_d2d=0.0,
                                         sigma_gamma_d2d=0.0)
    c = devices.card_values("ionic_ecram_tang2018")
    span = c["g_max"] - c["g_min"]
    x0 = 0.5
    st = dev.program(dev.init((N,), key=getkey()),
                     jnp.full((N,), c["g_min"] + x0 * span), key=getkey())
    st = dev.program(st, jnp.full((N,), c["g_min"] + x0 * span), key=getkey())
    st = _set_state(st, w=jnp.full((N,), c["g_min"] + x0 * span),
                    g=jnp.full((N,), c["g_min"] + x0 * span))
    w0 = np.asarray(st.w, np.float64)
    g = np.asarray(dev.update(st, jnp.ones((N,)), key=getkey()).g, np.float64)
    step = c["dx"] * (1 - c["gamma_up"] * (x0 - c["x_ref"]) / (1 - c["x_ref"])) * span
    d = g - w0
    sigma = c["sigma_c2c"] * step
    # Multiplicative per-pulse noise (1 + 0.3 xi): mean to 5 sampling sigmas
    # (+ float32 rounding of g, ~1e-7 of g = 1e-3 of a step), std likewise.
    assert abs(d.mean() - step) <= 5 * sigma / np.sqrt(N) + 1e-3 * step
    assert abs(d.std() - sigma) <= 5 * sigma / np.sqrt(2 * N) + 1e-3 * step


@pytest.mark.parametrize("card", ["ionic_droplet_li2025"])
def test_droplet_is_volatile_and_fit_recovers_tau(card, getkey):
    c = devices.card_values(card)
    dev = devices.IonicSynapse.from_card(card)
    st = dev.update(dev.init((1,), key=getkey()), jnp.full((1,), 4.0), key=getkey())
    ts = np.linspace(0, 5 * c["tau_s"], 30)
    g = np.asarray([float(dev.relax(st, t).g[0]) for t in ts])
    popt, _ = scipy.optimize.curve_fit(
        lambda t, a, tau, b: a * np.exp(-t / tau) + b, ts, g,
        p0=(g[0] - g[-1], c["tau_s"] / 2, g[-1]),
    )
    # Noise-free float32 relaxation: 1e-4 relative.
    assert popt[1] == pytest.approx(c["tau_s"], rel=1e-4)
    span = c["g_max"] - c["g_min"]
    assert popt[0] == pytest.approx(4 * c["vol_step"] * span, rel=1e-4)
    # Long after the pulses the synapse is back at rest (purely volatile).
    assert float(dev.relax(st, 50 * c["tau_s"]).g[0]) == pytest.approx(
        c["g_min"], rel=1e-6)


# -- compact models -------------------------------------------------------------


def _sine(amp, f):
    return lambda t: amp * jnp.sin(2 * jnp.pi * f * t)


def test_linear_ion_drift_pinched_and_area_shrinks_with_frequency():
    m = devices.LinearIonDrift()
    areas = []
    for f in (0.5, 1.0, 2.0, 4.0):
        t, v, x, i = devices.simulate(m, _sine(1.0, f), 1.0 / f, 2000, 0.1)
        # Pinched: at the zero crossings (t = 0, T/2, T) the current is 0 up to
        # the float32 error of sin(2 pi f t) (~1e-6 V over >= 100 Ohm).
        zero = np.asarray([0, 1000, 2000])
        assert np.all(np.abs(np.asarray(i)[zero]) <= 1e-6 / 100)
        areas.append(float(devices.loop_area(v, i)))
    assert all(a > b for a, b in zip(areas, areas[1:]))
    # The loop closes (periodic state) and is not degenerate.
    assert areas[-1] > 0


def test_linear_ion_drift_matches_charge_closed_form():
    """Without a window, d/dt[R_off x - dR x^2 / 2] = k v, k = mu R_on / D^2:
    x follows from the flux phi(t) = integral of v (a quadratic)."""
    m = devices.LinearIonDrift(window=False)
    f, amp, x0 = 1.0, 1.0, 0.2
    t, v, x, i = devices.simulate(m, _sine(amp, f), 1.0, 4000, x0)
    t = np.asarray(t, np.float64)
    k = 1e-14 * 100 / (10e-9) ** 2
    r_off, dr = 16e3, 16e3 - 100
    phi = amp * (1 - np.cos(2 * np.pi * f * t)) / (2 * np.pi * f)
    c = r_off * x0 - dr * x0**2 / 2 + k * phi
    x_ref = (r_off - np.sqrt(r_off**2 - 2 * dr * c)) / dr
    # RK4 with 4000 steps is ~1e-10 accurate; float32 state: 1e-5 absolute.
    np.testing.assert_allclose(np.asarray(x), x_ref, rtol=0, atol=1e-5)


def test_vteam_pinched_and_area_shrinks_with_frequency():
    m = devices.VTEAM()
    areas = []
    for f in (3e7, 1e8, 3e8, 1e9):  # faster than the OFF switching (~250 ns)
        t, v, x, i = devices.simulate(m, _sine(0.5, f), 2.0 / f, 4000, 0.0)
        assert np.all(np.abs(np.asarray(i)[[0, 1000, 2000, 3000, 4000]]) <= 1e-6 / 50)
        areas.append(float(devices.loop_area(v[2000:], i[2000:])))
    assert all(a > b for a, b in zip(areas, areas[1:]))


# -- RRAM options ----------------------------------------------------------------


def test_rram_stuck_at_faults(getkey):
    dev = devices.RRAM.from_card(faults=True, p_stuck_on=0.05, p_stuck_off=0.1)
    st = dev.init((N,), key=getkey())
    on, off = np.asarray(st.stuck > 0), np.asarray(st.stuck < 0)
    # Binomial fractions: 5 standard errors.
    for frac, p in ((on.mean(), 0.05), (off.mean(), 0.1)):
        assert abs(frac - p) <= 5 * np.sqrt(p * (1 - p) / N)
    mid = 0.5 * (dev.g_min + dev.g_max)
    st = dev.program(st, jnp.full((N,), mid), key=getkey())
    st = dev.update(st, jnp.full((N,), -30.0), key=getkey())
    g = np.asarray(st.g)
    assert np.all(g[on] == np.float32(dev.g_max))
    assert np.all(g[off] == np.float32(dev.g_min))
    # Default: no faults, and the state carries no fault map.
    assert devices.RRAM.from_card().init((4,), key=getkey()).stuck is None


def test_rram_retention_relaxation_closed_form(getkey):
    dev = devices.RRAM.from_card(retention_m=-0.01, retention_t0_s=1.0,
                                 sigma_prog=0.0)
    g_min, g_max = float(dev.g_min), float(dev.g_max)
    st = dev.init((1,), key=getkey())
    st = _set_state(st, g=jnp.full((1,), 0.6 * g_max))
    for t in (0.0, 3600.0, 86400.0):
        mean, std = dev.read_stats(st, t)
        expected = 0.6 * g_max - 0.01 * (g_max - g_min) * np.log1p(t)
        # float32: a few eps of g_max.
        assert abs(float(mean[0]) - expected) <= 8 * EPS32 * g_max
        assert float(std[0]) == pytest.approx(float(dev.sigma_read) * float(mean[0]),
                                              rel=4 * EPS32)


def test_rram_sinh_iv_and_crossbar_currents(getkey):
    dev = devices.RRAM.from_card(iv=devices.SinhIV(v0=0.25))
    assert not dev.linear_iv and devices.RRAM.from_card().linear_iv
    g = jnp.asarray([1e-8, 2e-8])
    v = jnp.asarray([0.001, 0.5])
    i = np.asarray(dev.current(g, v), np.float64)
    ref = np.asarray([1e-8, 2e-8]) * 0.25 * np.sinh(np.asarray([0.001, 0.5]) / 0.25)
    np.testing.assert_allclose(i, ref, rtol=4 * EPS32)
    # Small voltage: ohmic to (v/v0)^2 / 6 = 2.7e-6 relative.
    assert i[0] == pytest.approx(1e-8 * 0.001, rel=3e-6)
    # Through the crossbar solver: column currents are sums of cell currents.
    pos = dev.program(dev.init((1, 1, 3, 2), key=getkey()),
                      jnp.full((1, 1, 3, 2), 3e-8), key=getkey())
    neg = dev.program(dev.init((1, 1, 3, 2), key=getkey()),
                      jnp.full((1, 1, 3, 2), 1e-8), key=getkey())
    vin = jnp.asarray([[0.1, 0.3, -0.2]])
    mean, std = xbar.circuits.ideal.current_stats(dev, pos, neg, vin, 0.0)
    gp, gn = np.asarray(pos.g[0, 0], np.float64), np.asarray(neg.g[0, 0], np.float64)
    vv = np.asarray(vin[0], np.float64)[:, None]
    expected = ((gp - gn) * 0.25 * np.sinh(vv / 0.25)).sum(axis=0)
    np.testing.assert_allclose(np.asarray(mean[0, 0]), expected, rtol=1e-5)


# -- configuration errors ----------------------------------------------------------


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: devices.PCM.from_card(g_min=3e-5), "g_min"),
        (lambda: devices.PCM.from_card(t0_s=0.0), "t0_s"),
        (lambda: devices.PCM.from_card(sigma_read_scale=-1.0), "sigma_read_scale"),
        (lambda: devices.Perovskite.from_card(tau_s=-1.0), "tau_s"),
        (lambda: devices.Perovskite.from_card(a_ltp=0.0), "a_ltp"),
        (lambda: devices.Perovskite.from_card(sigma_c2c=-0.1), "sigma_c2c"),
        (lambda: devices.IonicSynapse.from_card(x_ref=1.5), "x_ref"),
        (lambda: devices.IonicSynapse.from_card(dx=2.0), "dx"),
        (lambda: devices.IonicSynapse.from_card(g_max=1e-7), "g_min"),
        (lambda: devices.RRAM.from_card(faults=True, p_stuck_on=1.5), "p_stuck_on"),
        (lambda: devices.RRAM.from_card(p_stuck_off=0.1), "p_stuck_off"),
        (lambda: devices.RRAM.from_card(iv="exp"), "iv"),
        (lambda: devices.LinearIonDrift(r_on=2e4), "r_on"),
        (lambda: devices.VTEAM(v_on=0.1), "v_on"),
    ],
)
def test_bad_configuration_names_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


@pytest.mark.parametrize(
    "cls, card",
    [
        (devices.RRAM, "pcm_joshi2020"),
        (devices.RRAM, "perovskite_mapbi3_poddar"),  # has every RRAM field
        (devices.PCM, "rram_ag_asi_jo2010"),
        (devices.Perovskite, "ionic_ecram_tang2018"),
        (devices.IonicSynapse, "perovskite_cspbbr3_john2022"),
    ],
)
def test_card_of_another_model_is_refused(cls, card):
    model = devices.load_card(card)["model"]
    with pytest.raises(ValueError) as info:
        cls.from_card(card)
    msg = str(info.value)
    # The card, its model, the class asked, and every card that fits it.
    for s in (card, model, cls.__name__, *devices.available_cards(cls.__name__)):
        assert s in msg, (s, msg)


def test_card_file_lacking_fields_names_them(tmp_path):
    card = devices.load_card("rram_ag_asi_jo2010")
    del card["model"], card["parameters"]["a_ltd"], card["parameters"]["p_max_ltd"]
    path = devices.write_card(card, tmp_path / "mine.json")
    with pytest.raises(ValueError, match="a_ltd") as info:
        devices.RRAM.from_card(str(path))
    assert "p_max_ltd" in str(info.value)
    dev = devices.RRAM.from_card(str(path), a_ltd=-0.2, p_max_ltd=100)
    assert float(dev.p_max_ltd) == 100.0


@pytest.mark.parametrize("card", devices.available_cards())
def test_docs_list_every_card_value(card):
    """docs/devices.md tabulates each card; its numbers must be the card's."""
    root = Path(devices.__file__).resolve().parent.parent
    doc = (root / "docs" / "devices.md").read_text()
    head = f"#### `{card}`"
    assert head in doc, card
    section = doc.split(head, 1)[1].split("\n#", 1)[0]
    for key, p in devices.load_card(card)["parameters"].items():
        value = json.dumps(p["value"])
        row = f"| `{key}` | {value} | {p['unit']} | {p['provenance']} |"
        assert row in section, (card, key)


def test_unknown_card_and_unknown_field():
    with pytest.raises(ValueError, match="pcm_joshi2020"):
        devices.PCM.from_card("no_such_card")
    with pytest.raises(ValueError, match="tau_s"):
        devices.PCM.from_card(tau_s=1.0)


# -- fitting a measured pulse table ------------------------------------------------


def _cycles(dev, n_cyc, p_up, p_dn, key):
    pulses = jnp.tile(jnp.concatenate([jnp.ones(p_up), -jnp.ones(p_dn)]), n_cyc)
    k1, k2 = jax.random.split(key)
    st = dev.init((1,), key=k1)
    _, g = devices.pulse_response(dev, st, pulses[:, None], key=k2)
    g = np.asarray(g[:, 0], np.float64).reshape(n_cyc, p_up + p_dn)
    g0 = np.concatenate([[float(st.g[0])], g[:-1, -1]])
    ltp = np.concatenate([g0[:, None], g[:, :p_up]], 1)
    ltd = np.concatenate([g[:, p_up - 1 : p_up], g[:, p_up:]], 1)
    return devices.cycle_table(ltp, ltd)


@pytest.fixture(scope="module")
def nl_fit(tmp_path_factory):
    """Noisy pulse table from a known NL device, written as CSV and fitted."""
    true = devices.RRAM(g_min=2e-6, g_max=2e-5, p_max_ltp=60, p_max_ltd=80,
                        a_ltp=0.6, a_ltd=-0.4, sigma_c2c=0.01, sigma_d2d=0.0,
                        sigma_read=0.0, sigma_prog=0.0)
    rows = _cycles(true, 40, 60, 80, jax.random.key(11))
    path = tmp_path_factory.mktemp("fit") / "table.csv"
    devices.write_table(path, rows)
    return true, path, devices.fit_pulse_response(path)


def test_fit_recovers_nonlinear_update_parameters(nl_fit):
    true, _, fit = nl_fit
    nl = fit["nl"]
    # 40 cycles x 140 steps with 1 % C2C: the step regression's standard error
    # on each slope is ~1e-4, i.e. ~2 % on a and ~1 % on the bounds; allow 5 %
    # and 3 %.
    assert nl["a_ltp"] == pytest.approx(0.6, rel=0.05)
    assert nl["a_ltd"] == pytest.approx(-0.4, rel=0.05)
    assert nl["g_min"] == pytest.approx(2e-6, abs=0.03 * 1.8e-5)
    assert nl["g_max"] == pytest.approx(2e-5, abs=0.03 * 1.8e-5)
    assert (nl["p_max_ltp"], nl["p_max_ltd"]) == (60, 80)
    # C2C: residual std over ~4000 steps, sampling error ~1 %; allow 5 %.
    assert nl["sigma_c2c"] == pytest.approx(0.01, rel=0.05)


def test_fit_writes_a_card_that_loads(nl_fit, tmp_path):
    _, _, fit = nl_fit
    with pytest.warns(UserWarning, match="not identifiable"):
        card = devices.fit_to_card(fit, "nl", "my_device", "synthetic table, seed 11")
    path = devices.write_card(card, tmp_path / "my_device.json")
    dev = devices.RRAM.from_card(str(path))
    assert float(dev.a_ltp) == pytest.approx(fit["nl"]["a_ltp"], rel=EPS32)
    assert devices.load_card(str(path))["parameters"]["sigma_d2d"]["provenance"] == "A"


def test_fit_recovers_soft_bounds_parameters(tmp_path):
    true = devices.IonicSynapse(g_min=1e-6, g_max=1e-5, dx=0.01, gamma_up=1.0,
                                gamma_dn=1.0, x_ref=0.4, sigma_c2c=0.1, sigma_d2d=0.0,
                                sigma_gamma_d2d=0.0, sigma_read=0.0, sigma_prog=0.0)
    fit = devices.fit_pulse_response(_cycles(true, 10, 150, 150, jax.random.key(5)))
    sb = fit["soft_bounds"]
    # ~3000 steps, 10 % multiplicative noise: slopes to ~2e-4 (2 % of k),
    # bounds to ~1 % of the range; allow 5 % / 3 %.
    assert sb["dx"] == pytest.approx(0.01, rel=0.05)
    assert sb["x_ref"] == pytest.approx(0.4, rel=0.05)
    assert sb["g_min"] == pytest.approx(1e-6, abs=0.03 * 9e-6)
    assert sb["g_max"] == pytest.approx(1e-5, abs=0.03 * 9e-6)
    assert sb["sigma_c2c"] == pytest.approx(0.1, rel=0.1)  # residual std, ~2 %
    with pytest.warns(UserWarning, match="not identifiable"):
        card = devices.fit_to_card(fit, "soft_bounds", "sb", "synthetic")
    dev = devices.IonicSynapse.from_card(
        devices.write_card(card, tmp_path / "sb.json").as_posix())
    assert float(dev.gamma_up) == 1.0


def test_fit_rejects_malformed_tables(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("cycle,pulse,g\n0,0,1e-6\n")
    with pytest.raises(ValueError, match="phase"):
        devices.fit_pulse_response(p)


# -- every new device is pure and jit/vmap-able through the generic tests: see
# tests/helpers.py all_devices and tests/test_devices.py.


def test_new_device_fields_are_sweepable(getkey):
    """A stacked PCM over drift_scale vmaps, and each point equals its own run."""
    cfgs = [devices.PCM.from_card(drift_scale=s) for s in (0.5, 1.0)]
    stacked = xbar.stack(cfgs)

    def run(dev, key):
        st = dev.program(dev.init((64,), key=key), jnp.full((64,), 2e-5), key=key)
        return dev.read_stats(st, 86400.0)[0]

    key = getkey()
    out = jax.vmap(run, in_axes=(0, None))(stacked, key)
    for k, d in enumerate(cfgs):
        np.testing.assert_allclose(np.asarray(out[k]), np.asarray(run(d, key)),
                                   rtol=8 * EPS32)
    assert float(out[0].mean()) > float(out[1].mean())  # less drift, higher g
    assert dataclasses.is_dataclass(cfgs[0])


# -- benchmark and gallery scripts run (tiny versions) ------------------------


def test_devices_benchmark_quick(capsys):
    mod = load_script("benchmarks/device_models.py", "bench_devices")
    rows = mod.main(["--quick"])
    assert {r["name"].split("_")[0] for r in rows} == {"RRAM", "PCM", "Perovskite",
                                                       "Ionic"}
    assert all(r["ratio"] > 0 and r["unit"] == "ms" for r in rows)


def test_device_gallery_quick(tmp_path):
    import json

    mod = load_script("experiments/device_gallery.py", "device_gallery")
    # Two rows (drift and volatile decay) keep the compile time down; the
    # full figure runs every family through the same code.
    fams = ("PCM", "Ionic (droplet)")
    out = mod.run(quick=True, out_dir=tmp_path, families=fams)
    saved = json.loads((tmp_path / "device_gallery.json").read_text())
    assert (tmp_path / "device_gallery.png").stat().st_size > 10_000
    assert set(saved["results"]["families"]) == set(fams)
    assert set(fams) <= {f for f, _, _ in mod.FAMILIES}
    assert saved["seed"] == 0 and saved["git_revision"]
    # The loops in the JSON shrink with frequency (the figure's claim).
    for loops in out["results"]["compact"].values():
        areas = [lp["area"] for lp in loops]
        assert all(a > b for a, b in zip(areas, areas[1:]))
    # PCM drifts down on the log axis; the droplet synapse decays to rest.
    fams = saved["results"]["families"]
    assert fams["PCM"]["time"]["mean"][-1] < 0.7
    assert fams["Ionic (droplet)"]["time"]["mean"][-1] < 0.6
