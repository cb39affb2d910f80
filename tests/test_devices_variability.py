"""Device-to-device window spread, stuck-at faults and endurance (window
closure with cycling), for every family.

Each test compares against an independent answer: the distribution the
window is drawn from (aihwkit's `b = w (1 + w_dtod xi)` about the weight
zero), binomial counts of stuck cells, the closed form of the closure law
`(1 + N / N_c)^-beta` evaluated in float64, and the E-NL curve in float64.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EPS32
from hypothesis import given, settings, strategies as st

import devices

N = 4096  # cells per test: one shape, so the compiled steps below are shared

# Every switch on: the parameters (spreads, rates, closure) are traced leaves,
# so the tests below share one compilation per family and set the values.
ALL = dict(window_d2d=True, faults=True, endurance=True, endurance_beta=0.0)

_MAKE = {
    "RRAM": lambda kw: devices.RRAM.from_card("rram_taox_hfox_wu2018", **kw),
    "PCM": lambda kw: devices.PCM.from_card(**kw),
    "Perovskite": lambda kw: devices.Perovskite.from_card(**kw),
    "Ionic": lambda kw: devices.IonicSynapse.from_card("ionic_liion_licoo2_2019", **kw),
}
FAMILIES = list(_MAKE)


def _make(family, **kw):
    """The family's device (card noise kept) with every variability switch
    on and the values of `kw` (spreads and stuck rates 0, no closure unless
    given)."""
    return _MAKE[family]({**ALL, **kw})


def _plain(family):
    return _MAKE[family]({})


T = 6  # pulse writes per run


@eqx.filter_jit
def _scenario(dev, key, target, n, dt, up, dn, k_cycles):
    """One compiled run per device structure, shared by every test of a
    family: fresh cells `s0`; `s1` programmed to `target`; `s2` = `s1`
    after T writes of `n[t]` pulses each followed by `relax(dt[t])`, with
    `trace` = (g, lo, hi) after each; `s3` = `s0` cycled `k_cycles` times
    fully (`up` pulses up, `dn` down) and its window."""
    k0, k1, k2, k3 = jax.random.split(key, 4)
    s0 = dev.init((N,), key=k0)
    s1 = dev.program(s0, target, key=k1)

    def write(s, inp):
        n_t, dt_t, k_t = inp
        s = dev.relax(dev.update(s, n_t, key=k_t), dt_t)
        lo, hi = dev.window(s)
        return s, (s.g, jnp.broadcast_to(lo, (N,)), jnp.broadcast_to(hi, (N,)))

    s2, trace = jax.lax.scan(write, s1, (n, dt, jax.random.split(k2, T)))

    def cycle(i, s):
        k_up, k_dn = jax.random.split(jax.random.fold_in(k3, i))
        s = dev.update(s, jnp.broadcast_to(up, s.g.shape), key=k_up)
        return dev.update(s, jnp.broadcast_to(-dn, s.g.shape), key=k_dn)

    s3 = jax.lax.fori_loop(0, k_cycles, cycle, s0)
    lo, hi = dev.window(s3)
    window = (jnp.broadcast_to(lo, (N,)), jnp.broadcast_to(hi, (N,)))
    return s0, s1, s2, trace, s3, window


def _swing(dev):
    """Pulses of one full swing up and down: p_max each way (1 / dx for
    ionic cells; PCM: p_max_set SET pulses, then one RESET)."""
    if isinstance(dev, devices.IonicSynapse):  # (a volatile-only cell: 1)
        m = round(1.0 / float(dev.dx)) if float(dev.dx) > 0 else 1
        return m, m
    if isinstance(dev, devices.PCM):
        return float(dev.p_max_set), 1.0
    return float(dev.p_max_ltp), float(dev.p_max_ltd)


def _run(dev, key, target=None, n=0.0, dt=0.0, k_cycles=0):
    """`_scenario` with defaults: target mid-window; `n` pulses (a scalar
    or per cell) in the first write only unless given per write (T, N),
    `dt` likewise."""
    if target is None:
        target = 0.5 * (dev.g_min + dev.g_max)
    up, dn = _swing(dev)
    n = jnp.asarray(n, jnp.float32)
    if n.ndim < 2:
        n = jnp.zeros((T, N), jnp.float32).at[0].set(jnp.broadcast_to(n, (N,)))
    dt = jnp.asarray(dt, jnp.float32)
    if dt.ndim < 1:
        dt = jnp.zeros((T,), jnp.float32).at[0].set(dt)
    return _scenario(dev, key, jnp.broadcast_to(jnp.asarray(target, jnp.float32), (N,)),
                     n, dt, jnp.float32(up), jnp.float32(dn), jnp.int32(k_cycles))


def _ref(dev) -> float:
    """The weight zero each family's window spreads about (independent of
    `window_ref`): the middle for RRAM and perovskite (aihwkit's ReRAM
    presets, weights in [-1, 1]), g_min for unipolar PCM (PCM preset,
    weights in [0, 2]), g_min + x_ref span for ionic cells."""
    lo, hi = float(dev.g_min), float(dev.g_max)
    if isinstance(dev, devices.PCM):
        return lo
    if isinstance(dev, devices.IonicSynapse):
        return lo + float(dev.x_ref) * (hi - lo)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("family", FAMILIES)
def test_window_spread_has_the_stated_distribution(family, getkey):
    """Each cell's window edges are `ref + (edge - ref)(1 + s xi)`, xi
    independent standard normals: the relative edge distances have mean 1
    and std s (tolerance 5 standard errors), lower and upper edges are
    uncorrelated, and a fresh cell starts at its own lower edge."""
    # A small lower-edge spread: the edge is clipped at 0 S, which a spread
    # of its distance from the reference reaches at xi ~ 1 / s (ionic card:
    # ~(1 - 1 / 9) / s), here > 5 standard deviations away.
    s_lo, s_hi = 0.02, 0.2
    dev = _make(family, sigma_gmin_d2d=s_lo, sigma_gmax_d2d=s_hi)
    st_ = _run(dev, getkey())[0]
    ref, g_min, g_max = _ref(dev), float(dev.g_min), float(dev.g_max)
    hi = (np.asarray(st_.g_hi, np.float64) - ref) / (g_max - ref)
    assert abs(hi.mean() - 1.0) < 5 * s_hi / np.sqrt(N)
    assert abs(hi.std() - s_hi) < 5 * s_hi / np.sqrt(2 * N)
    lo_raw = np.asarray(st_.g_lo, np.float64)
    if family == "PCM":  # unipolar: the lower edge is the reference, no spread
        np.testing.assert_array_equal(lo_raw, np.float32(g_min))
    else:
        lo = (ref - lo_raw) / (ref - g_min)
        assert abs(lo.mean() - 1.0) < 5 * s_lo / np.sqrt(N)
        assert abs(lo.std() - s_lo) < 5 * s_lo / np.sqrt(2 * N)
        assert abs(np.corrcoef(lo, hi)[0, 1]) < 5 / np.sqrt(N)
    # A fresh cell sits at its own lower edge (ulp of the reference).
    np.testing.assert_allclose(np.asarray(st_.g, np.float64), lo_raw,
                               rtol=0, atol=4 * EPS32 * g_max)


def test_rram_curve_spans_the_cells_own_window(getkey):
    """With a per-cell window the E-NL curves run between the cell's g_lo and
    g_hi: programming clips a target to g_hi, and 10 LTD pulses from there
    land on `G(p_max - 10)` of the LTD curve of that window (float64 closed
    form)."""
    dev = _make("RRAM", sigma_gmin_d2d=0.05, sigma_gmax_d2d=0.2,
                sigma_c2c=0.0, sigma_d2d=0.0, sigma_prog=0.0, sigma_prog_x1=0.0,
                sigma_prog_x2=0.0, sigma_prog_x3=0.0, sigma_prog_x4=0.0)
    s0, s1, s2, *_ = _run(dev, getkey(), target=10 * dev.g_max, n=-10.0)
    lo = np.asarray(s0.g_lo, np.float64)
    hi = np.asarray(s0.g_hi, np.float64)
    # No programming noise (and no C2C floor): exactly the top level.
    np.testing.assert_allclose(np.asarray(s1.g, np.float64), hi, rtol=1e-5)
    a, p_max = float(dev.a_ltd), float(dev.p_max_ltd)
    b = (hi - lo) / -np.expm1(-1.0 / a)
    want = b * -np.expm1(-(p_max - 10.0) / (a * p_max)) + lo
    np.testing.assert_allclose(np.asarray(s2.g, np.float64), want, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_stuck_cells_every_family(family, getkey):
    """Stuck-at-g_max / stuck-at-g_min fractions are the card's rates (a
    binomial count, 5 standard deviations), and stuck cells stay at their
    (own) bound through programming, pulses and relaxation while healthy
    cells move."""
    p_on, p_off = 0.08, 0.03
    dev = _make(family, p_stuck_on=p_on, p_stuck_off=p_off, sigma_gmax_d2d=0.1)
    s = _run(dev, getkey(), n=3.0, dt=0.5)[2]  # programmed mid, pulsed, relaxed
    stuck = np.asarray(s.stuck)
    for p, v in ((p_on, 1.0), (p_off, -1.0)):
        assert abs((stuck == v).sum() - N * p) < 5 * np.sqrt(N * p * (1 - p))
    g = np.asarray(s.g)
    lo, hi = np.asarray(s.g_lo), np.asarray(s.g_hi)
    on, off = stuck == 1, stuck == -1
    # The bound through the (beta = 0) closure: a few ulp of g_max.
    ulp = 4 * EPS32 * float(dev.g_max)
    np.testing.assert_allclose(g[on], hi[on], rtol=0, atol=ulp)
    np.testing.assert_allclose(g[off], lo[off], rtol=0, atol=ulp)
    healthy = g[stuck == 0]
    assert np.all(healthy > lo[stuck == 0]) and np.all(healthy < hi[stuck == 0])


@pytest.mark.parametrize("family", FAMILIES)
def test_endurance_window_closes_by_the_power_law(family, getkey):
    """A cell cycled fully k times has counted k cycles (one swing up and
    one down is one cycle), and its window is the fabricated one closed
    towards the reference by `(1 + k / N_c)^-beta` (float64 closed form);
    conductances stay inside it."""
    n_c, beta, k = 3.0, 0.7, 4
    dev = _make(family, endurance_cycles=n_c, endurance_beta=beta,
                sigma_gmin_d2d=0.02, sigma_gmax_d2d=0.1)
    s0, _, _, _, s, window = _run(dev, getkey(), k_cycles=k)
    lo0, hi0 = (np.asarray(x, np.float64) for x in (s0.g_lo, s0.g_hi))
    np.testing.assert_allclose(np.asarray(s.cycles), k, rtol=1e-5)
    f = (1.0 + k / n_c) ** -beta
    ref = _ref(dev)
    lo, hi = (np.asarray(x, np.float64) for x in window)
    scale = 4 * EPS32 * float(dev.g_max)  # float32 rounding of ref -+ d f
    np.testing.assert_allclose(hi, ref + (hi0 - ref) * f, rtol=1e-5, atol=scale)
    np.testing.assert_allclose(lo, ref - (ref - lo0) * f, rtol=1e-5, atol=scale)
    g = np.asarray(s.g)
    assert np.all(g >= lo - scale) and np.all(g <= hi + scale)
    # The closure law itself, at N = N_c: the window has closed to 2^-beta.
    assert float(devices.base.closure_factor(jnp.float32(n_c), n_c, beta)) == \
        pytest.approx(2.0**-beta, rel=1e-6)


def test_endurance_shrinks_the_reachable_window_of_rram(getkey):
    """After k cycles a full depression ends at the closed g_lo, not at
    g_min: the on/off swing a user sees narrows by the closure."""
    n_c, beta, k = 2.0, 1.0, 6
    dev = _make("RRAM", endurance_cycles=n_c, endurance_beta=beta,
                sigma_c2c=0.0, sigma_d2d=0.0)
    s = _run(dev, getkey(), k_cycles=k)[4]
    mid = _ref(dev)
    want = mid - (mid - float(dev.g_min)) * (1.0 + k / n_c) ** -beta
    np.testing.assert_allclose(np.asarray(s.g, np.float64), want, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_spread_and_no_closure_change_nothing(family, getkey):
    """Switches on with zero spread, zero stuck rates and beta = 0 give the
    conductances of the default device (same draws: the variability keys
    are folded out of the init key)."""
    key = getkey()
    states = []
    for dev in (_plain(family), _make(family)):
        target = jnp.linspace(dev.g_min, dev.g_max, N)
        n = jnp.round(jnp.linspace(-16.0, 16.0, T * N)).reshape(T, N)
        states.append(np.asarray(_run(dev, key, target=target, n=n,
                                      dt=jnp.full((T,), 0.3))[2].g))
    # The per-cell window is the nominal one up to float32 rounding of
    # `ref + (g_max - ref)` (a few ulp of g_max).
    np.testing.assert_allclose(states[1], states[0], rtol=1e-5,
                               atol=1e-6 * float(_plain(family).g_max))


@pytest.mark.parametrize(
    ("family", "field", "switch"),
    [("PCM", "p_stuck_on", "faults"), ("Ionic", "p_stuck_off", "faults"),
     ("Perovskite", "sigma_gmax_d2d", "window_d2d"),
     ("RRAM", "sigma_gmin_d2d", "window_d2d")],
)
def test_variability_without_its_switch_names_it(family, field, switch):
    with pytest.raises(ValueError, match=switch) as info:
        _MAKE[family]({field: 0.1})
    assert field in str(info.value)
    with pytest.raises(ValueError, match="endurance_beta"):
        _make(family, endurance_beta=-1.0)


def test_ecram_cards_carry_the_presets_window_spread():
    """aihwkit's EcRam and EcRamMO presets: w_max_dtod = w_min_dtod = 0.05,
    now on the cards (tag R, mapping M) and switched on."""
    for card in ("ionic_ecram_tang2018", "ionic_ecram_mo_kim2019"):
        dev = devices.IonicSynapse.from_card(card)
        assert dev.window_d2d
        assert float(dev.sigma_gmin_d2d) == pytest.approx(0.05)
        assert float(dev.sigma_gmax_d2d) == pytest.approx(0.05)
        p = devices.load_card(card)["parameters"]
        assert p["sigma_gmax_d2d"]["provenance"] == "R"
        assert p["sigma_gmax_d2d"]["mapping"] == "M"


def test_cards_carry_their_cited_endurance():
    """The endurance numbers the cards cite, as the closure scale N_c."""
    want = {"perovskite_mapbi3_poddar": 4e5, "perovskite_cspbbr3_john2022": 5600.0,
            "ionic_protonic_onen2022": 1e8}
    for card, n in want.items():
        perovskite = card.startswith("perovskite")
        cls = devices.Perovskite if perovskite else devices.IonicSynapse
        dev = cls.from_card(card)
        assert float(dev.endurance_cycles) == pytest.approx(n)
        assert not dev.endurance  # closure is opt-in: endurance=True
        p = devices.load_card(card)["parameters"]["endurance_cycles"]
        assert p["mapping"] == "A"


# -- property: any pulse train stays finite and in each cell's own window ------

_VARIED = dict(sigma_gmin_d2d=0.3, sigma_gmax_d2d=0.3, p_stuck_on=0.05,
               p_stuck_off=0.05, endurance_cycles=0.5, endurance_beta=1.0)
PROPERTY_DEVICES = {
    **{f: (lambda f=f: _make(f, **_VARIED)) for f in FAMILIES},
    "Volatile": lambda: devices.IonicSynapse.from_card("ionic_droplet_li2025",
                                                       **{**ALL, **_VARIED}),
}


@pytest.mark.parametrize("family", list(PROPERTY_DEVICES))
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1.0, 30.0, 3000.0]))
def test_any_pulse_train_stays_in_each_cells_window(family, seed, scale):
    """Any programming targets, pulse trains, relaxations and full cycles,
    with spread windows, stuck cells and a fast closure: conductances
    finite and in each cell's own window after every write. (The shared
    compiled `_scenario`: the droplet card reuses the ionic compilation.)"""
    dev = PROPERTY_DEVICES[family]()
    rng = np.random.default_rng(seed)
    span = float(dev.g_max - dev.g_min)
    target = rng.uniform(float(dev.g_min) - span, float(dev.g_max) + span, N)
    pulses = np.round(rng.standard_cauchy((T, N)) * scale).astype(np.float32)
    dts = rng.exponential(0.05, T).astype(np.float32)
    k_cycles = int(rng.integers(0, 3))
    _, _, _, (g, lo, hi), s3, (lo3, hi3) = _run(
        dev, jax.random.key(seed), target=target.astype(np.float32), n=pulses,
        dt=dts, k_cycles=k_cycles)
    # Programming error is clipped at 0 only (RRAM, PCM): a cell is in its
    # window once pulsed. The fully cycled cells (`s3`) all count as pulsed.
    pulsed = np.logical_or.accumulate(pulses != 0, axis=0)
    pulsed = np.concatenate([pulsed, np.full((1, N), k_cycles > 0)])
    g = np.concatenate([np.asarray(g), np.asarray(s3.g)[None]])
    lo = np.concatenate([np.asarray(lo), np.asarray(lo3)[None]])
    hi = np.concatenate([np.asarray(hi), np.asarray(hi3)[None]])
    assert np.all(np.isfinite(g)) and np.all(g >= 0)
    assert np.all(lo >= 0) and np.all(hi > lo)
    # g is clipped to the window inside the update, the window recomputed
    # after it: allow float32 rounding of the two (4 ulp of the largest
    # conductance: the edges are `ref -+ (ref - edge) f`).
    tol = 4 * EPS32 * hi.max()
    assert np.all((g >= lo - tol) | ~pulsed) and np.all((g <= hi + tol) | ~pulsed)


def test_every_family_has_the_variability_fields():
    """Every family declares the same variability fields (a user can move a
    card's numbers between families)."""
    names = {"sigma_gmin_d2d", "sigma_gmax_d2d", "endurance_cycles", "endurance_beta",
             "window_d2d", "endurance", "faults", "p_stuck_on", "p_stuck_off"}
    for cls in (devices.RRAM, devices.PCM, devices.Perovskite, devices.IonicSynapse):
        assert names <= {f.name for f in dataclasses.fields(cls)}, cls
