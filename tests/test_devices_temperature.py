"""Temperature dependence and double-exponential relaxation of the devices.

Checked against closed forms computed here in float64 numpy: the Arrhenius
factor, the time-temperature scaling of retention / drift / volatile decay
(the time to a given loss at T2 over that at T1 is
exp(Ea / k_B (1/T2 - 1/T1))), and the two-component decay of a pulse's
volatile conductance.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import devices
from devices import rng
from xbar.circuits import noise

K_B = 8.617333262e-5  # eV/K (CODATA 2018), typed here independently


def af64(ea, t, t_ref=300.0):
    return math.exp(ea / K_B * (1.0 / t_ref - 1.0 / t))


def test_arrhenius_factor_closed_form():
    for ea, t in ((0.6, 350.0), (1.0, 400.0), (0.3, 250.0), (0.0, 450.0)):
        got = float(devices.arrhenius_factor(jnp.float32(ea), jnp.float32(t),
                                             jnp.float32(300.0)))
        assert got == pytest.approx(af64(ea, t), rel=2e-5)
    # At the reference temperature nothing changes, for any activation energy.
    assert float(devices.arrhenius_factor(jnp.float32(1.3), jnp.float32(300.0),
                                          jnp.float32(300.0))) == 1.0


@pytest.mark.parametrize("field, value", [
    ("temperature_k", 150.0), ("temperature_k", 600.0), ("t_ref_k", 100.0),
    ("ea_ev", -0.1), ("ea_ev", 5.0)])
@pytest.mark.parametrize("cls", [devices.RRAM, devices.PCM, devices.Perovskite,
                                 devices.IonicSynapse])
def test_temperature_fields_are_validated(cls, field, value):
    with pytest.raises(ValueError, match=field):
        cls.from_card(**{field: value})


def test_frac_tau2_and_nu_temp_coeff_are_validated():
    with pytest.raises(ValueError, match="frac_tau2"):
        devices.Perovskite.from_card(frac_tau2=1.5)
    with pytest.raises(ValueError, match="tau2_s"):
        devices.IonicSynapse.from_card("ionic_droplet_li2025", tau2_s=0.0)
    with pytest.raises(ValueError, match="nu_temp_coeff"):
        devices.PCM.from_card(nu_temp_coeff=0.5)


def _rram(**kw):
    return devices.RRAM.from_card(
        "rram_ag_asi_jo2010", sigma_d2d=0.0, retention_m=-0.02,
        sigma_retention_0=0.001, sigma_retention_ln=0.004, retention_t0_s=1.0, **kw)


def test_room_temperature_changes_nothing(getkey):
    """The cards carry activation energies; at the default 300 K every read
    and every relaxation is bitwise the one of a device without them."""
    k1, k2 = getkey(), getkey()
    pulses = jnp.array([3.0, -2.0, 0.0, 5.0])
    def droplet(**kw):
        return devices.IonicSynapse.from_card("ionic_droplet_li2025", **kw)

    for make in (_rram, devices.PCM.from_card, devices.Perovskite.from_card, droplet):
        dev, ref = make(), make(ea_ev=0.0)
        assert float(dev.ea_ev) > 0.0
        outs = [[np.asarray(x) for x in _program_pulse_read(d, pulses, k1, k2)]
                for d in (dev, ref)]  # one compile per family (ea_ev traced)
        for a, b in zip(*outs):
            np.testing.assert_array_equal(a, b)


@eqx.filter_jit
def _program_pulse_read(d, pulses, k1, k2):
    mid = jnp.full(pulses.shape, 0.5 * (d.g_min + d.g_max))
    s = d.program(d.init(pulses.shape, key=k1), mid, key=k2)
    s = d.relax(d.update(s, pulses, key=k2), 0.05)
    return d.read_parts(s, 3600.0)


@pytest.mark.parametrize("t_hot", [330.0, 358.0, 400.0])
def test_rram_retention_time_scales_by_arrhenius(t_hot):
    """E-LOG mean shift m span ln(1 + t/t0) and spread grow with the equivalent
    time: a read at T after t equals a read at 300 K after t exp(Ea/k (1/300 -
    1/T)); the time to a given loss shrinks by that factor."""
    cold, hot = _rram(), _rram(temperature_k=t_hot)
    st = cold.program(cold.init((3,), key=jax.random.key(0)),
                      jnp.array([1e-8, 2e-8, 3.5e-8]), key=jax.random.key(1))
    ratio = af64(0.6, t_hot)  # from the card's 0.6 eV
    span = float(cold.g_max - cold.g_min)
    g0 = np.asarray(st.g, np.float64)
    for t in (10.0, 1e3, 1e5):
        m_c, s_c, _ = (np.asarray(x, np.float64)
                       for x in cold.read_parts(st, t * ratio))
        m_h, s_h, _ = (np.asarray(x, np.float64) for x in hot.read_parts(st, t))
        np.testing.assert_allclose(m_h, m_c, rtol=2e-5)
        np.testing.assert_allclose(s_h, s_c, rtol=2e-5)
        # and the closed form of the mean itself (clipped at 0 only)
        want = np.maximum(g0 - 0.02 * span * math.log1p(ratio * t / 1.0), 0.0)
        np.testing.assert_allclose(m_h, want, rtol=1e-5)
    # Time to lose 10 % of the window: t0 (exp(0.1 / 0.02) - 1) / AF.
    t_loss = (math.exp(0.1 / 0.02) - 1.0) / ratio
    m_h = np.asarray(hot.read_parts(st, t_loss)[0], np.float64)
    np.testing.assert_allclose(g0 - m_h, 0.1 * span, rtol=1e-4)


def test_pcm_drift_time_scales_by_arrhenius_and_nu_with_temperature():
    """E-PCM step 3 at T: g_p ((AF t + t0) / t0)^-(nu (1 + c (T - 300))), AF
    from the card's 1 eV; the 1/f growth keeps the physical time."""
    cold = devices.PCM.from_card(sigma_read_fast=0.0)
    st = cold.program(cold.init((4,), key=jax.random.key(0)),
                      jnp.array([2e-6, 8e-6, 15e-6, 24e-6]), key=jax.random.key(1))
    g_p = np.asarray(st.g, np.float64)
    nu = np.asarray(st.nu, np.float64)
    for t_k, c in ((340.0, 0.0), (373.0, 0.0), (373.0, 0.004), (250.0, -0.003)):
        hot = devices.PCM.from_card(sigma_read_fast=0.0, temperature_k=t_k,
                                    nu_temp_coeff=c)
        af = af64(1.0, t_k)
        for t in (100.0, 86400.0):
            want = g_p * ((af * t + 20.0) / 20.0) ** (-nu * (1.0 + c * (t_k - 300.0)))
            mean, slow, _ = hot.read_parts(st, t)
            np.testing.assert_allclose(np.asarray(mean, np.float64), want, rtol=5e-5)
            np.testing.assert_allclose(
                np.asarray(hot.drift_factor(st, t), np.float64), want / g_p, rtol=5e-5)
            # 1/f: Q_s sqrt(ln((t + t0 + t_read) / (2 t_read))) of the drifted g
            q = np.asarray(st.q_s, np.float64)
            lt = math.log((t + 20.0 + 2.5e-7) / (2 * 2.5e-7))
            np.testing.assert_allclose(np.asarray(slow, np.float64),
                                       want * q * math.sqrt(lt), rtol=5e-5)
    # Time to a 20 % drift loss of a cell with nu at T over that at 300 K is
    # 1 / AF (with t0 folded in: (t + t0 / AF) scales exactly).
    nu0 = float(st.nu[3])
    t300 = 20.0 * (0.8 ** (-1.0 / nu0) - 1.0)
    af = af64(1.0, 358.0)
    hot = devices.PCM.from_card(temperature_k=358.0)
    f = float(hot.drift_factor(st, t300 / af)[3])
    assert f == pytest.approx(0.8, rel=1e-4)


@pytest.mark.parametrize("make", [
    lambda **kw: devices.Perovskite.from_card(sigma_c2c=0.0, **kw),
    lambda **kw: devices.IonicSynapse.from_card("ionic_droplet_li2025",
                                                sigma_c2c=0.0, **kw)])
def test_volatile_decay_half_life_scales_by_arrhenius(make):
    cold = make()
    ea = float(cold.ea_ev)
    for t_k in (280.0, 330.0, 360.0):
        hot = make(temperature_k=t_k)
        s = hot.init((1,), key=jax.random.key(0))
        s = hot.update(s, jnp.ones((1,)) * 3.0, key=jax.random.key(1))
        v0 = float(s.g[0] - s.w[0])
        af = af64(ea, t_k)
        half = float(cold.tau_s) * math.log(2.0) / af
        v = float(hot.relax(s, half).g[0] - s.w[0])
        assert v == pytest.approx(0.5 * v0, rel=2e-4)


@pytest.mark.parametrize("family", ["perovskite", "ionic"])
def test_double_exponential_relaxation_closed_form(family):
    """One write of n pulses leaves span vol_step n ((1 - f) e^(-t/tau) +
    f e^(-t/tau2)) of volatile conductance; relaxing in two steps equals one
    (Markovian); f = 0 is the single exponential."""
    f, tau2 = 0.3, 20.0

    def make(**kw):
        if family == "perovskite":
            return devices.Perovskite.from_card(sigma_c2c=0.0, **kw)
        return devices.IonicSynapse.from_card("ionic_droplet_li2025", sigma_c2c=0.0,
                                              vol_step=0.01, **kw)

    dev = make(frac_tau2=f, tau2_s=tau2)
    n = 4.0
    s0 = dev.update(dev.init((1,), key=jax.random.key(0)), jnp.full((1,), n),
                    key=jax.random.key(1))
    span = float(dev.g_max - dev.g_min)
    tau = float(dev.tau_s)
    vs = float(dev.vol_step)
    for t in (0.0, 0.5 * tau, 3.0 * tau, 0.5 * tau2):
        s = dev.relax(s0, t)
        want = span * vs * n * ((1 - f) * math.exp(-t / tau) + f * math.exp(-t / tau2))
        got = float(s.g[0]) - float(s.w[0])
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6 * span)
        two = dev.relax(dev.relax(s0, 0.4 * t), 0.6 * t)
        assert float(two.g[0]) == pytest.approx(float(s.g[0]), rel=1e-6)
    # f = 0: the single exponential, bitwise.
    single, old = make(tau2_s=tau2), make()
    n3 = jnp.array([1.0, -2.0, 3.0])
    a = single.relax(single.update(single.init((3,), key=jax.random.key(0)), n3,
                                   key=jax.random.key(1)), 0.7)
    b = old.relax(old.update(old.init((3,), key=jax.random.key(0)), n3,
                             key=jax.random.key(1)), 0.7)
    np.testing.assert_array_equal(np.asarray(a.g), np.asarray(b.g))


def test_programming_clears_both_volatile_components():
    dev = devices.Perovskite.from_card(frac_tau2=0.5, tau2_s=100.0)

    @jax.jit
    def pulse_then_program(k):
        k1, k2, k3 = jax.random.split(k, 3)
        s = dev.update(dev.init((2,), key=k1), jnp.full((2,), 5.0), key=k2)
        return s, dev.program(s, jnp.full((2,), 5e-5), key=k3)

    pulsed, s = pulse_then_program(jax.random.key(0))
    assert float(pulsed.q_e2[0]) == 5.0
    np.testing.assert_array_equal(np.asarray(s.q_e2), 0.0)
    np.testing.assert_array_equal(np.asarray(s.g), np.asarray(s.w))


def test_temperature_is_sweepable_under_jit():
    """One compiled relax for every temperature (a traced field), matching
    the eager closed form."""
    dev = devices.IonicSynapse.from_card("ionic_droplet_li2025", sigma_c2c=0.0)
    s = dev.update(dev.init((1,), key=jax.random.key(0)), jnp.ones((1,)),
                   key=jax.random.key(1))
    v0 = float(s.g[0] - s.w[0])
    traces = []

    @jax.jit
    def relax_at(t_k):
        traces.append(1)
        d = devices.IonicSynapse.from_card("ionic_droplet_li2025", sigma_c2c=0.0,
                                           temperature_k=t_k)
        return d.relax(s, 0.1).g[0] - s.w[0]

    for t_k in (300.0, 320.0, 350.0):
        v = float(relax_at(jnp.float32(t_k)))
        want = v0 * math.exp(-0.1 * af64(float(dev.ea_ev), t_k) / float(dev.tau_s))
        assert v == pytest.approx(want, rel=1e-4)
    assert len(traces) == 1


# -- the write-path normals (devices.rng) ------------------------------------------
# Sampling tolerances: 5 standard errors of the statistic.


def test_rng_is_the_read_noise_generator():
    """devices.rng's normals are xbar.circuits.noise's, bitwise when both
    are compiled (that module's tests check the shared hash, radius and cosine
    against JAX's threefry2x32_p and float64)."""
    key = jax.random.key(11)
    want = jax.jit(noise.normal, static_argnums=1)(key, (4096,))
    np.testing.assert_array_equal(np.asarray(rng.normal(key, (4096,))),
                                  np.asarray(want))


def test_normal_pair_is_two_independent_standard_normals():
    n = 1 << 16
    a, b = (np.asarray(x, np.float64) for x in rng.normal_pair(jax.random.key(4), (n,)))
    for z in (a, b):
        assert abs(z.mean()) < 5 / math.sqrt(n)
        assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
        assert stats.kstest(z[:20000], "norm").pvalue > 1e-3
    # Independent, not only uncorrelated: the squares (which share R^2 in
    # Box-Muller) are uncorrelated too, and the joint radius is chi2(2).
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(n)
    assert abs(np.corrcoef(a * a, b * b)[0, 1]) < 5 / math.sqrt(n)
    assert stats.kstest((a * a + b * b)[:20000], "chi2", args=(2,)).pvalue > 1e-3


def test_pcm_write_draws_are_independent(getkey):
    """One PCM SET write draws three normals per cell from two hashes: the C2C
    noise of the step, the drift exponent's deviation and the slow read
    deviation. Each is N(0, 1) and the three are mutually uncorrelated."""
    dev = devices.PCM.from_card()
    n = 20000
    s0 = dev.init((n,), key=getkey())
    pulses = jnp.full((n,), 60.0)
    s = jax.jit(lambda s, p, k: dev.update(s, p, key=k))(s0, pulses, getkey())
    span = float(dev.g_max - dev.g_min)
    det = np.asarray(devices.nl_step(s0.g, pulses, dev.p_max_set, dev.a_set,
                                     dev.g_min, dev.g_max), np.float64)
    g = np.asarray(s.g, np.float64)
    ok = (g > float(dev.g_min)) & (g < float(dev.g_max))  # not clipped
    z_c2c = (g - det) / (float(dev.sigma_c2c) * span * math.sqrt(60.0))
    mu, sig = (np.asarray(x, np.float64) for x in devices.pcm_nu_stats(s.g / dev.g_max))
    z_nu = (np.asarray(s.nu, np.float64) - mu) / sig  # mu / sig >= 5: |.| inactive
    z_slow = np.asarray(s.xi_slow, np.float64)
    zs = [z[ok] for z in (z_c2c, z_nu, z_slow)]
    m = int(ok.sum())
    assert m > 0.9 * n
    for z in zs:
        assert stats.kstest(z, "norm").pvalue > 1e-4
    for i in range(3):
        for j in range(i + 1, 3):
            assert abs(np.corrcoef(zs[i], zs[j])[0, 1]) < 5 / math.sqrt(m)
