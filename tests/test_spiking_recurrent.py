"""Recurrent layers in the layered spiking network (float64 reference, NIR
round trip) and the read schedules of non-plastic runs (error bound)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import devices
import xbar
from xbar import spiking as sp

DT = 1e-3


def _reference(w, w_rec, tau, r, x):
    """Float64 NumPy run of Linear -> LIF with a recurrent Linear (NIR
    parameters, discrete convention: input current held over dt, exact
    exponential step, threshold 1, reset to 0; the recurrent input is the
    previous step's spikes)."""
    x = np.asarray(x, np.float64)
    n = w.shape[0]
    v = np.zeros(x.shape[1:-1] + (n,))
    s = np.zeros_like(v)
    out = []
    for t in range(x.shape[0]):
        v_inf = r * (x[t] @ w.T + s @ w_rec.T)
        v = v_inf + (v - v_inf) * np.exp(-DT / tau)
        s = (v >= 1.0).astype(np.float64)
        v = np.where(s > 0, 0.0, v)
        out.append(s)
    return np.stack(out)


def _graph(w, w_rec, tau, r):
    import nir

    n, m = w.shape
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([m])}),
            "fc": nir.Linear(weight=w),
            "lif": nir.LIF(
                tau=np.full(n, tau),
                r=np.full(n, r),
                v_leak=np.zeros(n),
                v_threshold=np.ones(n),
                v_reset=np.zeros(n),
            ),
            "rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[
            ("input", "fc"),
            ("fc", "lif"),
            ("lif", "rec"),
            ("rec", "lif"),
            ("lif", "output"),
        ],
    )


def test_recurrent_layer_matches_float64_reference_and_nir_round_trip(
    tmp_path, getkey
):
    import nir

    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.5, (10, 14)).astype(np.float32)
    # Strong recurrence of both signs, so it visibly changes the spikes.
    w_rec = rng.normal(0, 0.8, (10, 10)).astype(np.float32)
    tau, r = 20e-3, 6.0
    nir.write(tmp_path / "rec.nir", _graph(w, w_rec, tau, r))
    net = xbar.spiking.nir.from_nir(
        nir.read(tmp_path / "rec.nir"),
        devices.Ideal(),
        key=getkey(),
        dt_s=DT,
        tile_rows=8,
        tile_cols=8,
    )
    assert net.layers[0].recurrent is not None
    x = sp.rate_encode(
        jnp.asarray(rng.uniform(size=(3, 14)), jnp.float32), 40, key=getkey()
    )
    ref = _reference(w, w_rec, tau, r, x)
    no_rec = _reference(w, np.zeros_like(w_rec), tau, r, x)
    assert ref.sum() > 0 and np.mean(ref != no_rec) > 0.02  # recurrence matters
    # Flat read (one product over [input, previous spikes]) and the tiled
    # per-step read both equal the float64 loop: Ideal cells and exact DAC
    # levels leave only float32 rounding, which flips no spike here.
    _, flat = sp.run(net, x, key=None)
    np.testing.assert_array_equal(np.asarray(flat["s"][0]), ref)
    st = sp.init_state(net, (3,))
    tiled = []
    for xt in x:
        st, o = sp.network_step(st, xt, key=None)
        tiled.append(o["s"][0])
    np.testing.assert_array_equal(np.stack(tiled), ref)
    # Synaptic operations: input spikes x 10 + previous spikes x 10 per step.
    hand = 10 * (np.asarray(x).sum(-1) + np.concatenate(
        [np.zeros((1, 3)), ref[:-1].sum(-1)], 0))
    np.testing.assert_allclose(np.asarray(flat["syn_ops"]), hand)
    # Round trip: the exported graph keeps the cycle and gives the same spikes.
    g = xbar.spiking.nir.to_nir(net)
    assert ("lif0", "rec0") in g.edges and ("rec0", "lif0") in g.edges
    nir.write(tmp_path / "again.nir", g)
    net2 = xbar.spiking.nir.from_nir(
        nir.read(tmp_path / "again.nir"), devices.Ideal(), key=getkey()
    )
    _, out2 = sp.run(net2, x, key=None)
    np.testing.assert_array_equal(np.asarray(out2["s"][0]), ref)
    with pytest.raises(ValueError, match="recurrent must be"):
        sp.SpikingLayer.from_weights(
            jnp.asarray(w), devices.Ideal(), key=getkey(), dt_s=DT,
            recurrent=jnp.zeros((3, 3)),
        )


def test_log_spaced_reads_bound_the_drift_error(getkey):
    """PCM drift `g (1 + t/t0)^-nu` (slow read noise off, so the mean read is
    the drift alone): within every interval of `LogSpacedReads(eps)` the held
    read differs from the exact one by at most `nu eps` relatively, cell by
    cell; the bound is nearly attained (t0 small) and the reads are
    log-spaced (their count is `ln(t_end / t_start) / eps` within one)."""
    eps = 0.02
    dev = devices.PCM.from_card(t0_s=1e-4, sigma_read_scale=0.0)
    st = dev.program(
        dev.init((5, 7), key=getkey()),
        jnp.linspace(0.2, 1.0, 35).reshape(5, 7) * dev.g_max,
        key=getkey(),
    )
    sched = sp.LogSpacedReads(eps)
    t0, n_steps = 0.05, 300
    times = t0 + np.arange(n_steps) * DT
    exact = np.asarray(
        jax.vmap(lambda t: dev.read_stats(st, t)[0])(jnp.asarray(times, jnp.float32)),
        np.float64,
    )
    nu = np.asarray(st.nu, np.float64)
    i, starts = 0, []
    while i < n_steps:
        starts.append(i)
        i += int(sched.interval(jnp.float32(times[i]), jnp.float32(DT), jnp.inf))
    held = exact[np.repeat(starts, np.diff(starts + [n_steps]))]
    worst = float((np.abs(held - exact) / exact / (nu * eps)).max())
    assert worst <= 1.0 + 1e-4  # float32 reads
    assert worst > 0.8
    # Not over-cautious: never more reads than continuous log spacing needs,
    # and (intervals of >= 2 steps here) at least half as many.
    expected = np.log((t0 + n_steps * DT) / t0) / eps
    assert 0.5 * expected <= len(starts) <= expected + 1, (len(starts), expected)
    # A volatile time constant caps the interval at eps tau.
    assert int(sched.interval(jnp.float32(10.0), jnp.float32(DT), 0.125)) == 3
    with pytest.raises(ValueError, match="max_log_step"):
        sp.LogSpacedReads(0.0)


def test_log_spaced_run_stays_within_the_bound_of_the_exact_run(getkey):
    """A PCM network read on the log schedule vs every step (noise-free, no
    spikes: the membranes are a linear filter of the currents): membranes
    within `nu_max eps` (x2 for the G- cells' share) of the exact ones, and
    the default schedule reads every step while 1 % of the cells' age is
    under one step."""
    eps = 0.05
    dev = devices.PCM.from_card(t0_s=1e-3, sigma_read_scale=0.0)
    # Weights in units of threshold per spike: 1e-2 keeps every membrane
    # far below threshold.
    w = 1e-2 * jnp.abs(jax.random.normal(getkey(), (6, 12), jnp.float32))
    net = sp.SpikingNetwork.from_weights(
        [w], dev, key=getkey(), dt_s=DT, tile_rows=8, tile_cols=8
    )
    x = sp.rate_encode(jax.random.uniform(getkey(), (2, 12)), 60, key=getkey())
    _, ex = sp.run(net, x, key=None, t0_s=0.02, reads=sp.ReadEveryStep())
    _, lg = sp.run(net, x, key=None, t0_s=0.02, reads=sp.LogSpacedReads(eps))
    _, df = sp.run(net, x, key=None, t0_s=0.02)
    v_ex, v_lg = np.asarray(ex["v"][0]), np.asarray(lg["v"][0])
    nu_max = float(jnp.max(net.layers[0].crossbar.pos.nu))
    err = np.abs(v_lg - v_ex).max() / np.abs(v_ex).max()
    assert 0 < err <= 2 * nu_max * eps
    assert np.asarray(ex["s"][0]).sum() == 0
    # The default (LogSpacedReads(0.01)) at t < 0.1 s: 1 % of t is under one
    # step, so it reads every step, exactly.
    np.testing.assert_array_equal(np.asarray(df["v"][0]), v_ex)


def test_sparse_population_exports_to_nir_and_runs_the_same(tmp_path, getkey):
    """A block-sparse recurrent population exported to NIR (dense Linear
    nodes, recurrence as a cycle) and imported as a layered network: the same
    spikes (Ideal cells; float32 ties may flip at most 0.2 % of the spikes,
    as the two loops sum in different orders)."""
    import nir
    import scipy.sparse

    from xbar.spiking import sparse as bs

    rng = np.random.default_rng(7)
    n_in, n = 20, 24
    w_in = scipy.sparse.random(n_in, n, density=0.3, random_state=rng, format="csr")
    w_in.data[:] = rng.uniform(0.3, 1.0, w_in.nnz)
    # Local inhibition (a band): the off-diagonal corner tiles are empty.
    d = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    w_rec = np.where((d > 0) & (d <= 2), -0.5, 0.0).astype(np.float32)
    dev = devices.Ideal(n_states=1e5)
    syn_in = bs.BlockSparseSynapses.from_matrix(
        w_in, dev, key=getkey(), tile_rows=8, tile_cols=8, w_max=1.0
    )
    syn_rec = bs.BlockSparseSynapses.from_matrix(
        w_rec, dev, key=getkey(), tile_rows=8, tile_cols=8, w_max=1.0
    )
    assert syn_rec.n_blocks < 9  # some tiles are empty
    c = sp.membrane_capacitance(20e-3, DT, syn_in.v_read, syn_in.g_per_w, 1.0)
    pop = bs.SparsePopulation(syn_in, syn_rec, sp.LIF(c_mem_f=c), DT)
    x = sp.rate_encode(jax.random.uniform(getkey(), (2, n_in)), 40, key=getkey())
    a = bs.run_population(pop, x, key=None)
    g = xbar.spiking.nir.population_to_nir(pop)
    assert ("lif0", "rec0") in g.edges
    nir.write(tmp_path / "pop.nir", g)
    net = xbar.spiking.nir.from_nir(nir.read(tmp_path / "pop.nir"), dev, key=getkey())
    _, b = sp.run(net, x, key=None)
    ca, cb = np.asarray(a["counts"]), np.asarray(b["s"][0]).sum(0)
    assert ca.sum() > 0
    assert np.abs(ca - cb).sum() <= max(1, 0.002 * ca.sum())
