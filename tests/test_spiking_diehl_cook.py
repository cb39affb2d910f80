"""Diehl & Cook (2015) network: the STDP rule against its closed form, the
homeostatic threshold, the weight normalisation, and the device path."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import devices
from xbar.spiking import diehl_cook as dc


def _pair(rule, w0, delay_steps, dt, n_steps=40):
    """Drive one synapse with one pre spike and one post spike `delay_steps`
    apart (negative: post first) through `DiehlCookSTDP.step`."""
    t_pre = 5 if delay_steps >= 0 else 5 - delay_steps
    s_pre = np.zeros((n_steps, 1), np.float32)
    s_post = np.zeros((n_steps, 1), np.float32)
    s_pre[t_pre, 0] = s_post[t_pre + delay_steps, 0] = 1.0
    return float(_run_rule(rule, jnp.float32(w0), s_pre, s_post, dt)) - w0


@eqx.filter_jit
def _run_rule(rule, w0, s_pre, s_post, dt):
    def body(c, s):
        return rule.step(*c, s[0], s[1], dt), None

    init = (jnp.full((1, 1), w0), jnp.zeros(1), jnp.zeros(1))
    (w, _, _), _ = jax.lax.scan(body, init, (s_pre, s_post))
    return w[0, 0]


@pytest.mark.parametrize("delay_steps", [-12, -3, -1, 0, 1, 4, 15])
@pytest.mark.parametrize(
    "rule", [dc.DiehlCookSTDP(), dc.DiehlCookSTDP(x_tar=0.2, mu=1.0, nu_pre=1e-2)]
)
def test_stdp_single_pair_matches_closed_form(delay_steps, rule):
    dt, w0 = 1e-3, 0.4
    got = _pair(rule, w0, delay_steps, dt)
    want = dc.stdp_pair_closed_form(rule, w0, delay_steps * dt)
    # float32: the weight 0.4 is resolved to 3e-8 (a few roundings).
    assert got == pytest.approx(want, rel=1e-4, abs=1.5e-7)
    assert want != 0.0


def test_theta_rises_by_theta_plus_per_spike_and_decays():
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (2, 64)), jnp.float32)
    # No decay: theta grows by exactly theta_plus per spike of the neuron.
    # (min_spikes=0: one try per example, so `counts` holds every spike.)
    p = dc.DiehlCook(
        n_input=64, n_exc=3, dt_s=1e-3, t_present_s=0.05, tau_theta_s=1e12, min_spikes=0
    )
    w = dc.normalize(p.init_weights(jax.random.key(0)), 6.0)
    th0 = p.init_theta()
    _, th, counts = dc.train(p, w, th0, x, jax.random.key(1))
    total = np.asarray(counts).sum(0)
    assert total.sum() > 0
    np.testing.assert_allclose(
        np.asarray(th - th0), p.theta_plus * total, rtol=1e-3, atol=1e-9
    )
    # No input, no spikes: theta decays with tau_theta over presentation + rest.
    p = dc.DiehlCook(
        n_input=64, n_exc=3, dt_s=1e-3, t_present_s=0.05, tau_theta_s=0.3, min_spikes=0
    )
    _, th, counts = dc.train(p, w, th0, jnp.zeros((2, 64)), jax.random.key(1))
    assert np.asarray(counts).sum() == 0
    t = 2 * (p.n_steps * p.dt_s + p.t_rest_s)
    np.testing.assert_allclose(
        np.asarray(th), np.asarray(th0) * np.exp(-t / 0.3), rtol=1e-4
    )


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=12, max_size=12),
    st.floats(0.1, 100.0),
)
def test_normalize_keeps_each_neurons_sum(values, total):
    w = np.asarray(values, np.float32).reshape(4, 3)
    w[0] += 0.01  # every neuron has some input
    s = np.asarray(jnp.sum(dc.normalize(jnp.asarray(w), total), axis=0))
    np.testing.assert_allclose(s, total, rtol=1e-5)


def test_training_keeps_each_neurons_sum_and_learns_on_devices():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.uniform(0, 1, (3, 49)), jnp.float32)
    p = dc.DiehlCook(n_input=49, n_exc=4, dt_s=1e-3, t_present_s=0.05, weight_sum=8.0)
    w0 = p.init_weights(jax.random.key(0))
    w, _, _ = dc.train(p, w0, p.init_theta(), x, jax.random.key(1))
    np.testing.assert_allclose(np.asarray(w.sum(0)), 8.0, rtol=1e-5)
    # The same network on ideal cells: weights are read back from the pairs,
    # and the STDP change written as pulses moves them.
    dev = devices.Ideal(n_states=100000.0)
    w0 = dc.normalize(w0, 8.0)
    syn = dc.DeviceSynapses.program(w0, dev, key=jax.random.key(2), tile=32)
    np.testing.assert_allclose(
        np.asarray(syn.read(1.0, jax.random.key(3))), np.asarray(w0), atol=1e-5
    )
    syn2, _, counts, t, _ = dc.train_on_devices(
        p,
        syn,
        p.init_theta(),
        x,
        jax.random.key(4),
        t0_s=jnp.float32(1.0),
        w_per_pulse=jnp.float32(1e-5),
    )
    w1 = np.asarray(syn2.read(t, jax.random.key(5)))
    assert np.asarray(counts).sum() > 0
    assert np.abs(w1 - np.asarray(w0)).max() > 1e-3
    # Each write normalises: sums stay at 8 up to the pulse rounding.
    np.testing.assert_allclose(w1.sum(0), 8.0, rtol=2e-3)


def test_labels_by_highest_average_response():
    counts = np.array([[5, 0, 1], [4, 1, 0], [0, 3, 0], [1, 6, 2]], float)
    labels = np.array([0, 0, 1, 1])
    assign = dc.assign_labels(counts, labels, n_classes=3)
    np.testing.assert_array_equal(assign, [0, 1, 1])
    np.testing.assert_array_equal(dc.classify(counts, assign, 3), [0, 0, 1, 1])


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="dt_s"):
        dc.DiehlCook(dt_s=5e-3)
    with pytest.raises(ValueError, match="x_tar"):
        dc.DiehlCookSTDP(x_tar=2.0)


def test_event_driven_step_equals_dense_rule():
    """The loop's sparse input/depression (rows of the spiking inputs, two
    at a time) and potentiation (columns of the spiking neurons, one at a
    time) equal `DiehlCookSTDP.step` on the whole matrix."""
    from xbar.spiking import diehl_cook_loop as loop

    rng = np.random.default_rng(3)
    p = dc.DiehlCook(n_input=9, n_exc=5, k_rows=2, k_cols=1, stdp=dc.DiehlCookSTDP())
    w = jnp.asarray(rng.uniform(0, 1.2, (9, 5)), jnp.float32)  # some > w_max
    x_pre = jnp.asarray(rng.uniform(0, 1, 9), jnp.float32)
    x_post = jnp.asarray(rng.uniform(0, 1, 5), jnp.float32)
    s_pre = jnp.asarray([1, 0, 1, 1, 0, 0, 1, 1, 0], jnp.float32)
    s_post = jnp.asarray([0, 1, 0, 1, 1], jnp.float32)
    w_ref, xp_ref, xq_ref = p.stdp.step(w, x_pre, x_post, s_pre, s_post, 1e-3)

    @jax.jit
    def fast(w, x_pre, x_post):
        x_pre = x_pre * np.exp(-1e-3 / p.stdp.tau_pre_s)
        x_post = x_post * np.exp(-1e-3 / p.stdp.tau_post_s)
        rows = jnp.nonzero(s_pre, size=9, fill_value=9)[0]
        n_in = jnp.sum(s_pre > 0).astype(jnp.int32)
        cur, w = loop._input(p, True, w, None, x_post, s_pre, rows, n_in)
        x_pre = jnp.where(s_pre > 0, 1.0, x_pre)
        return cur, loop._potentiate(p, w, x_pre, s_post)

    cur, w_fast = fast(w, x_pre, x_post)
    np.testing.assert_allclose(np.asarray(w_fast), np.asarray(w_ref), rtol=0, atol=0)
    np.testing.assert_allclose(
        np.asarray(cur), np.asarray(s_pre) @ np.asarray(w), rtol=1e-6
    )
    # Columns without a post spike keep weights above w_max (not clipped).
    assert float(w_fast[:, 0].max()) > p.stdp.w_max


def test_event_driven_training_equals_dense_training():
    x = jnp.asarray(np.random.default_rng(4).uniform(0, 1, (3, 49)), jnp.float32)
    kw = dict(n_input=49, n_exc=6, dt_s=1e-3, t_present_s=0.05, weight_sum=8.0)
    dense, sparse = dc.DiehlCook(k_rows=0, **kw), dc.DiehlCook(k_rows=2, k_cols=1, **kw)
    w0 = dense.init_weights(jax.random.key(0))
    wd, thd, cd = dc.train(dense, w0, dense.init_theta(), x, jax.random.key(1))
    ws, ths, cs = dc.train(sparse, w0, sparse.init_theta(), x, jax.random.key(1))
    assert np.asarray(cd).sum() > 0
    np.testing.assert_array_equal(np.asarray(cs), np.asarray(cd))
    np.testing.assert_allclose(np.asarray(ws), np.asarray(wd), atol=2e-6)
    np.testing.assert_allclose(np.asarray(ths), np.asarray(thd), rtol=1e-6)


def test_pair_refresh_resets_saturated_pcm_pairs_and_keeps_their_weight():
    """Both cells of every pair high (a SET-only pair after much learning):
    the refresh RESETs both and writes the difference back onto G+."""
    from xbar.array.crossbar import program_crossbar

    dev = devices.PCM.from_card()
    lo, rng_g = float(dev.g_min), float(dev.g_max - dev.g_min)
    w = np.random.default_rng(5).uniform(0.02, 0.08, (1, 1, 16, 8)).astype(np.float32)
    g_neg = jnp.full(w.shape, lo + 0.9 * rng_g, jnp.float32)
    g_pos = g_neg + rng_g * jnp.asarray(w)
    xb = program_crossbar(dev, g_pos, g_neg, key=jax.random.key(0))
    syn = dc.DeviceSynapses(xb, jnp.float32(rng_g), n_input=16, n_exc=8)
    before = np.asarray(syn.read(1.0, jax.random.key(1)))
    ref = dc.PairRefresh(level=0.7, n_verify=3)
    assert ref.fraction_saturated(syn, 1.0)["neg_above_level"] == 1.0
    wpp = jnp.float32(0.01)
    syn2, n = eqx.filter_jit(ref)(syn, jnp.float32(1.0), wpp, key=jax.random.key(2))
    assert int(n) == 16 * 8
    sat = ref.fraction_saturated(syn2, 1.0)
    assert sat["neg_above_level"] == 0.0 and sat["pos_above_level"] == 0.0
    # G- back near g_min (from 0.9; a noisy read of a small weight can come
    # out negative and be written onto G-)
    assert sat["neg_mean_fraction_of_range"] < 0.05
    after = np.asarray(syn2.read(1.0, jax.random.key(3)))
    # Written back within a few pulses (PCM programming and read noise,
    # SET-only verify that cannot undo an overshoot).
    assert np.abs(after - before).mean() < 0.03
    # Nothing to refresh: the synapses are returned unchanged.
    syn3, n3 = eqx.filter_jit(ref)(syn2, jnp.float32(1.0), wpp, key=jax.random.key(4))
    assert int(n3) == 0
    np.testing.assert_array_equal(
        np.asarray(syn3.crossbar.pos.g), np.asarray(syn2.crossbar.pos.g)
    )
