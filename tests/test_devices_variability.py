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


@eqx.filter_jit
def _init(dev, key):
    return dev.init((N,), key=key)


@eqx.filter_jit
def _program(dev, s, g, key):
    return dev.program(s, g, key=key)


@eqx.filter_jit
def _update(dev, s, n, key):
    return dev.update(s, jnp.broadcast_to(n, s.g.shape), key=key)


@eqx.filter_jit
def _relax(dev, s, dt):
    return dev.relax(s, dt)


@eqx.filter_jit
def _window(dev, s):
    lo, hi = dev.window(s)
    return jnp.broadcast_to(lo, s.g.shape), jnp.broadcast_to(hi, s.g.shape)


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
    st_ = _init(dev, getkey())
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
    """With a per-cell window the E-NL curve runs from the cell's g_lo to its
    g_hi: P pulses from g_lo land on `G(P)` of that window (float64 closed
    form), p_max_ltp pulses reach g_hi, and programming clips targets to it."""
    dev = _make("RRAM", sigma_gmin_d2d=0.05, sigma_gmax_d2d=0.2,
                sigma_c2c=0.0, sigma_d2d=0.0, sigma_prog=0.0, sigma_prog_x1=0.0,
                sigma_prog_x2=0.0, sigma_prog_x3=0.0, sigma_prog_x4=0.0)
    s0 = _init(dev, getkey())
    lo = np.asarray(s0.g_lo, np.float64)
    hi = np.asarray(s0.g_hi, np.float64)
    a, p_max = float(dev.a_ltp), float(dev.p_max_ltp)
    s = _update(dev, s0, jnp.float32(10.0), getkey())
    b = (hi - lo) / -np.expm1(-1.0 / a)
    want = b * -np.expm1(-10.0 / (a * p_max)) + lo
    np.testing.assert_allclose(np.asarray(s.g, np.float64), want, rtol=1e-5)
    s = _update(dev, s0, jnp.float32(p_max), getkey())
    np.testing.assert_allclose(np.asarray(s.g, np.float64), hi, rtol=1e-5)
    s = _program(dev, s0, jnp.full((N,), 10.0 * float(dev.g_max)), getkey())
    # No programming noise (and no C2C floor): exactly the top level.
    np.testing.assert_allclose(np.asarray(s.g, np.float64), hi, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_stuck_cells_every_family(family, getkey):
    """Stuck-at-g_max / stuck-at-g_min fractions are the card's rates (a
    binomial count, 5 standard deviations), and stuck cells stay at their
    (own) bound through programming, pulses and relaxation while healthy
    cells move."""
    p_on, p_off = 0.08, 0.03
    dev = _make(family, p_stuck_on=p_on, p_stuck_off=p_off, sigma_gmax_d2d=0.1)
    s = _init(dev, getkey())
    stuck = np.asarray(s.stuck)
    for p, v in ((p_on, 1.0), (p_off, -1.0)):
        assert abs((stuck == v).sum() - N * p) < 5 * np.sqrt(N * p * (1 - p))
    mid = 0.5 * (dev.g_min + dev.g_max)
    s = _program(dev, s, jnp.full((N,), mid), getkey())
    s = _update(dev, s, jnp.float32(3.0), getkey())
    s = _relax(dev, s, jnp.float32(0.5))
    g = np.asarray(s.g)
    lo, hi = np.asarray(s.g_lo), np.asarray(s.g_hi)
    on, off = stuck == 1, stuck == -1
    np.testing.assert_array_equal(g[on], hi[on])
    np.testing.assert_array_equal(g[off], lo[off])
    healthy = g[stuck == 0]
    assert np.all(healthy > lo[stuck == 0]) and np.all(healthy < hi[stuck == 0])


def _full_cycles(dev, s, k, key):
    """`k` full swings: up by p_max pulses (1 / dx for ionic cells), then
    down by as many (PCM: one RESET)."""
    if isinstance(dev, devices.IonicSynapse):
        up = dn = round(1.0 / float(dev.dx))
    elif isinstance(dev, devices.PCM):
        up, dn = float(dev.p_max_set), 1.0
    else:
        up, dn = float(dev.p_max_ltp), float(dev.p_max_ltd)
    for i in range(k):
        k_up, k_dn = jax.random.split(jax.random.fold_in(key, i))
        s = _update(dev, s, jnp.float32(up), k_up)
        s = _update(dev, s, jnp.float32(-dn), k_dn)
    return s


@pytest.mark.parametrize("family", FAMILIES)
def test_endurance_window_closes_by_the_power_law(family, getkey):
    """A cell cycled fully k times has counted k cycles (one swing up and
    one down is one cycle), and its window is the fabricated one closed
    towards the reference by `(1 + k / N_c)^-beta` (float64 closed form);
    conductances stay inside it."""
    n_c, beta, k = 3.0, 0.7, 4
    dev = _make(family, endurance_cycles=n_c, endurance_beta=beta,
                sigma_gmin_d2d=0.02, sigma_gmax_d2d=0.1)
    s = _init(dev, getkey())
    lo0, hi0 = (np.asarray(x, np.float64) for x in (s.g_lo, s.g_hi))
    s = _full_cycles(dev, s, k, getkey())
    np.testing.assert_allclose(np.asarray(s.cycles), k, rtol=1e-5)
    f = (1.0 + k / n_c) ** -beta
    ref = _ref(dev)
    lo, hi = (np.asarray(x, np.float64) for x in _window(dev, s))
    scale = 4 * EPS32 * float(dev.g_max)  # float32 rounding of ref -+ d f
    np.testing.assert_allclose(hi, ref + (hi0 - ref) * f, rtol=1e-5, atol=scale)
    np.testing.assert_allclose(lo, ref - (ref - lo0) * f, rtol=1e-5, atol=scale)
    g = np.asarray(s.g)
    assert np.all(g >= lo - scale) and np.all(g <= hi + scale)
    # The closure law itself, at N = N_c: the window has closed to 2^-beta.
    assert float(devices.base.closure_factor(jnp.float32(n_c), n_c, beta)) == \
        pytest.approx(2.0**-beta, rel=1e-6)


def test_endurance_shrinks_the_reachable_window_of_rram(getkey):
    """After k cycles a full potentiation reaches the closed g_hi, not the
    fabricated one: the on/off swing a user sees narrows by the closure."""
    n_c, beta = 2.0, 1.0
    dev = _make("RRAM", endurance_cycles=n_c, endurance_beta=beta,
                sigma_c2c=0.0, sigma_d2d=0.0)
    s = _full_cycles(dev, _init(dev, getkey()), 6, getkey())
    s = _update(dev, s, jnp.float32(dev.p_max_ltp), getkey())
    mid = _ref(dev)
    # The last up swing is half a cycle: 6.5 cycles when it ends.
    want = mid + (float(dev.g_max) - mid) * (1.0 + 6.5 / n_c) ** -beta
    np.testing.assert_allclose(np.asarray(s.g, np.float64), want, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_spread_and_no_closure_change_nothing(family, getkey):
    """Switches on with zero spread, zero stuck rates and beta = 0 give the
    conductances of the default device (same draws: the variability keys
    are folded out of the init key)."""
    key = getkey()
    states = []
    for dev in (_plain(family), _make(family)):
        s = _init(dev, key)
        target = jnp.linspace(dev.g_min, dev.g_max, N)
        s = _program(dev, s, target, jax.random.fold_in(key, 1))
        n = jnp.round(jnp.linspace(-16.0, 16.0, N))
        s = _update(dev, s, n, jax.random.fold_in(key, 2))
        states.append(np.asarray(s.g))
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
    "PCM-gradual": lambda: devices.PCM.from_card(gradual_reset=True,
                                                 **{**ALL, **_VARIED}),
    "Volatile": lambda: devices.IonicSynapse.from_card("ionic_droplet_li2025",
                                                       **{**ALL, **_VARIED}),
}


@eqx.filter_jit
def _train(dev, pulses, dts, key):
    """Pulse trains with relaxation between them: every step's g and window.
    (The device is an argument: the ionic cards share one compilation.)"""
    s = dev.init(pulses.shape[1:], key=key)

    def body(s, inp):
        n, dt, k = inp
        s = dev.relax(dev.update(s, n, key=k), dt)
        lo, hi = dev.window(s)
        return s, (s.g, lo, hi)

    keys = jax.random.split(key, pulses.shape[0])
    return jax.lax.scan(body, s, (pulses, dts, keys))[1]


@pytest.mark.parametrize("family", list(PROPERTY_DEVICES))
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1.0, 30.0, 3000.0]))
def test_any_pulse_train_stays_in_each_cells_window(family, seed, scale):
    """Any pulse train, with spread windows, stuck cells and a fast
    closure: conductances finite and in each cell's own window."""
    dev = PROPERTY_DEVICES[family]()
    rng = np.random.default_rng(seed)
    pulses = np.round(rng.standard_cauchy((10, 48)) * scale).astype(np.float32)
    dts = rng.exponential(0.05, 10).astype(np.float32)
    g, lo, hi = (np.asarray(x) for x in _train(dev, jnp.asarray(pulses),
                                                jnp.asarray(dts), jax.random.key(seed)))
    assert np.all(np.isfinite(g)) and np.all(lo >= 0) and np.all(hi > lo)
    # g is clipped to the window inside the update, the window recomputed
    # here: allow float32 rounding of the two (4 ulp of the largest
    # conductance: the edges are `ref -+ (ref - edge) f`).
    tol = 4 * EPS32 * hi.max()
    assert np.all(g >= lo - tol) and np.all(g <= hi + tol)


def test_every_family_has_the_variability_fields():
    """Every family declares the same variability fields (a user can move a
    card's numbers between families)."""
    names = {"sigma_gmin_d2d", "sigma_gmax_d2d", "endurance_cycles", "endurance_beta",
             "window_d2d", "endurance", "faults", "p_stuck_on", "p_stuck_off"}
    for cls in (devices.RRAM, devices.PCM, devices.Perovskite, devices.IonicSynapse):
        assert names <= {f.name for f in dataclasses.fields(cls)}, cls
