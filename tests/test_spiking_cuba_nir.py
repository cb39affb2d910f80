"""Current-based LIF, Affine biases and their NIR import/export; latency and
delta encodings; the flat (one-product) read of the spiking loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import devices
import xbar
from xbar import spiking as sp

DT = 1e-3


def _cuba_reference(ws, bs, p, x):
    """Float64 NumPy run of a NIR chain (Affine -> CubaLIF)*: the input
    `W s + b` held over each step, exact exponential synaptic and membrane
    steps (membrane under the new synaptic current), reset to v_reset."""
    inp = np.asarray(x, np.float64)
    out_all = []
    for w, b, q in zip(ws, bs, p):
        n = w.shape[0]
        v = np.full(inp.shape[1:-1] + (n,), q["v_leak"], np.float64)
        i_syn = np.zeros_like(v)
        out = []
        for t in range(inp.shape[0]):
            drive = q["w_in"] * (inp[t] @ w.T + b)
            i_syn = drive + (i_syn - drive) * np.exp(-DT / q["tau_syn"])
            v_inf = q["v_leak"] + q["r"] * i_syn
            v = v_inf + (v - v_inf) * np.exp(-DT / q["tau_mem"])
            s = (v >= q["v_th"]).astype(np.float64)
            v = np.where(s > 0, q["v_reset"], v)
            out.append(s)
        inp = np.stack(out)
        out_all.append(inp)
    return out_all


def test_nir_cubalif_affine_bias_import_matches_reference_and_round_trips(
    tmp_path, getkey
):
    import nir

    rng = np.random.default_rng(3)
    w1 = rng.normal(0, 0.8, (12, 20)).astype(np.float32)
    b1 = rng.normal(0.05, 0.05, 12).astype(np.float32)
    w2 = rng.normal(0, 0.8, (5, 12)).astype(np.float32)
    b2 = np.full(5, 0.02, np.float32)
    p = [
        dict(
            tau_syn=5e-3,
            tau_mem=20e-3,
            r=6.0,
            v_leak=0.0,
            v_th=1.0,
            v_reset=0.0,
            w_in=1.0,
        ),
        dict(
            tau_syn=3e-3,
            tau_mem=10e-3,
            r=9.0,
            v_leak=0.0,
            v_th=1.0,
            v_reset=0.0,
            w_in=1.5,
        ),
    ]

    def cuba(q, n):
        return nir.CubaLIF(
            tau_syn=np.full(n, q["tau_syn"]),
            tau_mem=np.full(n, q["tau_mem"]),
            r=np.full(n, q["r"]),
            v_leak=np.full(n, q["v_leak"]),
            v_threshold=np.full(n, q["v_th"]),
            v_reset=np.full(n, q["v_reset"]),
            w_in=np.full(n, q["w_in"]),
        )

    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([20])}),
            "fc1": nir.Affine(weight=w1, bias=b1),
            "lif1": cuba(p[0], 12),
            "fc2": nir.Affine(weight=w2, bias=b2),
            "lif2": cuba(p[1], 5),
            "output": nir.Output(output_type={"output": np.array([5])}),
        },
        edges=[
            ("input", "fc1"),
            ("fc1", "lif1"),
            ("lif1", "fc2"),
            ("fc2", "lif2"),
            ("lif2", "output"),
        ],
    )
    nir.write(tmp_path / "cuba.nir", graph)
    net = sp.nir.from_nir(
        nir.read(tmp_path / "cuba.nir"),
        devices.Ideal(),
        key=getkey(),
        dt_s=DT,
        tile_rows=16,
        tile_cols=8,
    )
    assert isinstance(net.layers[0].neuron, sp.CubaLIF)
    x = sp.rate_encode(
        jnp.asarray(rng.uniform(size=(3, 20)), jnp.float32), 40, key=getkey()
    )
    _, out = sp.run(net, x, key=None)
    ref = _cuba_reference([w1, w2], [b1, b2], p, x)
    # Ideal cells and exact DAC levels: only float32 rounding differs from the
    # float64 reference, which could flip a spike within ~1e-6 of threshold.
    for a, b in zip(out["s"], ref):
        assert np.mean(np.asarray(a) != b) <= 0.002
    assert ref[0].sum() > 0 and ref[1].sum() > 0
    # The bias acts: without it the first layer fires differently.
    ref_nb = _cuba_reference([w1, w2], [0 * b1, 0 * b2], p, x)
    assert np.any(ref_nb[0] != ref[0])

    # Round trip: export, write, read, import: the same nodes and spikes.
    exported = sp.nir.to_nir(net)
    assert type(exported.nodes["fc0"]).__name__ == "Affine"
    assert type(exported.nodes["lif1"]).__name__ == "CubaLIF"
    nir.write(tmp_path / "again.nir", exported)
    net2 = sp.nir.from_nir(
        nir.read(tmp_path / "again.nir"),
        devices.Ideal(),
        key=getkey(),
        tile_rows=16,
        tile_cols=8,
    )
    _, out2 = sp.run(net2, x, key=None)
    for a, b in zip(out["s"], out2["s"]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_allclose(np.asarray(net2.layers[1].neuron.w_in), 1.5, rtol=1e-6)


def test_cubalif_synaptic_current_rises_with_tau_syn():
    """Constant column current: the synaptic current follows
    `I (1 - exp(-t / tau_syn))` exactly (no spikes: high threshold)."""
    neuron = sp.CubaLIF(sp.LIF(v_th=1e9, c_mem_f=1e-12), tau_syn_s=4e-3, w_in=2.0)
    st = neuron.init((3,))
    i = jnp.asarray([1e-9, 2e-9, -1e-9])
    for _ in range(7):
        st, s = neuron(st, i, DT)
    want = 2.0 * np.asarray(i) * (1 - np.exp(-7 * DT / 4e-3))
    np.testing.assert_allclose(np.asarray(st.i_syn), want, rtol=1e-5)
    assert float(s.sum()) == 0.0


def test_latency_and_delta_encodings():
    x = jnp.asarray([[1.0, 0.5, 0.0, 0.25]])
    s = np.asarray(sp.latency_encode(x, 9))
    assert s.shape == (9, 1, 4)
    np.testing.assert_array_equal(s.sum(0), [[1, 1, 0, 1]])  # 0 never fires
    np.testing.assert_array_equal(np.argmax(s, axis=0)[0, [0, 1, 3]], [0, 4, 6])
    sig = jnp.asarray([[0.0], [0.3], [0.35], [0.0], [0.0]])
    d = np.asarray(sp.delta_encode(sig, threshold=0.1))
    np.testing.assert_array_equal(d[:, 0], [0, 1, 0, 0, 0])  # on
    np.testing.assert_array_equal(d[:, 1], [0, 0, 0, 1, 0])  # off
    with pytest.raises(ValueError, match="threshold"):
        sp.delta_encode(sig, threshold=0.0)


def test_flat_read_equals_tiled_read(getkey):
    """The loop's one-product read (`FlatReads`) against the tiled
    `SpikingLayer.currents`: the same mean current (float32 rounding), and
    over 2,000 draws the same read-noise std: the ratio of two std estimates
    has a sampling error of ~2.2 % per column, so each column within 10 %
    (4.5 sigma) and the mean ratio over the 40 columns within 1.2 % (3.4
    sigma)."""
    w = jax.random.normal(getkey(), (40, 70), jnp.float32)
    dev = devices.PCM.from_card()
    lay = sp.SpikingLayer.from_weights(
        w, dev, key=getkey(), dt_s=DT, tile_rows=32, tile_cols=16
    )
    s = (jax.random.uniform(getkey(), (70,)) < 0.3).astype(jnp.float32)
    t = jnp.float32(100.0)
    rd = sp.loop.flat_reads(lay, t)
    assert rd is not None and rd.g.shape == (70, 40) and rd.var is not None
    np.testing.assert_allclose(
        sp.loop.flat_currents(lay, rd, s, key=None),
        lay.currents(s, t, key=None),
        rtol=1e-5,
        atol=1e-5 * float(jnp.max(jnp.abs(lay.currents(s, t, key=None)))),
    )
    keys = jax.random.split(getkey(), 2000)
    a = jax.vmap(lambda k: sp.loop.flat_currents(lay, rd, s, key=k))(keys)
    b = jax.vmap(lambda k: lay.currents(s, t, key=k))(keys)
    ratio = np.std(a, 0) / np.std(b, 0)
    np.testing.assert_allclose(ratio, 1.0, rtol=0.10)
    assert abs(ratio.mean() - 1.0) < 0.012
    # The whole run: noise-free spikes identical through either read.
    net = sp.SpikingNetwork((lay,), DT)
    x = sp.rate_encode(jax.random.uniform(getkey(), (2, 70)), 30, key=getkey())
    _, flat = sp.run(net, x, key=None)
    st = sp.init_state(net, (2,))
    tiled = []
    for xt in x:
        st, o = sp.network_step(st, xt, key=None)
        tiled.append(o["s"][0])
    np.testing.assert_array_equal(np.asarray(flat["s"][0]), np.stack(tiled))
    assert np.stack(tiled).sum() > 0


def test_bias_current_reaches_the_membrane(getkey):
    lay = sp.SpikingLayer.from_weights(
        jnp.zeros((3, 4)), devices.Ideal(), key=getkey(), dt_s=DT, w_max=1.0
    )
    lay = xbar.spiking.nir.eqx.tree_at(
        lambda m: m.bias_a, lay, jnp.full((3,), 1e-5), is_leaf=lambda v: v is None
    )
    net = sp.SpikingNetwork((lay,), DT)
    _, out = sp.run(net, jnp.zeros((20, 1, 4)), key=None)
    assert float(np.asarray(out["s"][0]).sum()) > 0  # no input spikes, yet firing


def test_neurobench_syn_ops_equal_a_hand_count(getkey):
    """ACs of a two-layer run against a loop over every step, input and
    synapse; a real-valued input counts as MACs instead."""
    w1 = np.array(
        [[0.9, 0.0, 0.7, 0.0], [0.0, 0.0, 1.2, 0.5], [0.6, 0.8, 0.0, 0.0]], np.float32
    )
    w2 = np.array([[1.5, 0.0, 1.5], [0.0, 0.0, 0.0]], np.float32)
    net = sp.SpikingNetwork.from_weights(
        [jnp.asarray(w1), jnp.asarray(w2)], devices.Ideal(), key=getkey(), dt_s=DT
    )
    x = sp.rate_encode(jax.random.uniform(getkey(), (2, 4)), 12, key=getkey())
    _, out = sp.run(net, x, key=None)
    m = sp.neurobench_metrics(net, x, out["s"])
    s1 = np.asarray(out["s"][0])
    hand = 0
    for inp, w in ((np.asarray(x), w1), (s1, w2)):
        for t in range(inp.shape[0]):
            for b in range(2):
                for i in range(inp.shape[-1]):
                    for j in range(w.shape[0]):
                        hand += int(inp[t, b, i] != 0 and w[j, i] != 0)
    assert s1.sum() > 0
    assert m["acs"] == pytest.approx(hand / 2) and m["macs"] == 0.0
    assert m["connection_sparsity"] == pytest.approx(1 - 8 / 18)  # 6 + 2 synapses
    n_spk = s1.sum() + np.asarray(out["s"][1]).sum()
    assert m["activation_sparsity"] == pytest.approx(1 - n_spk / (2 * 12 * 5))
    assert m["footprint_bytes"] >= 4 * 2 * (12 + 6)  # two float32 cells a synapse
    m2 = sp.neurobench_metrics(net, 0.5 * x, out["s"])
    assert m2["macs"] == pytest.approx(m["layer_acs"][0])


@pytest.mark.parametrize("name", ["Ideal", "RRAM", "PCM", "Perovskite", "IonicSynapse"])
def test_zero_pulses_leave_cells_unchanged(name):
    """STDP skips `device.update` for an array that gets no pulse
    (`PairSTDP.apply`): exact only while zero pulses are the identity."""
    cls = getattr(devices, name)
    dev = cls() if name == "Ideal" else cls.from_card()
    k = jax.random.key(0)
    g = jnp.linspace(dev.g_min, dev.g_max, 64)
    st = dev.program(dev.init((64,), key=k), g, key=k)
    st2 = dev.update(st, jnp.zeros((64,)), key=jax.random.key(1))
    for a, b in zip(jax.tree.leaves(st), jax.tree.leaves(st2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
