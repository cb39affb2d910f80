"""Block-sparse synapses: only tiles with connections exist, the spikes equal
the dense network's, and the sharded loop equals the unsharded one."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import scipy.sparse

import devices
from xbar import spiking as sp
from xbar.spiking import sparse as bs
from xbar.spiking.network import membrane_capacitance

DT = 1e-3


def _population(w_in, w_rec, dev, key, tile, keep_empty=False):
    k1, k2 = jax.random.split(key)
    syn_in = bs.BlockSparseSynapses.from_matrix(
        w_in,
        dev,
        key=k1,
        tile_rows=tile,
        tile_cols=tile,
        w_max=1.0,
        keep_empty=keep_empty,
    )
    syn_rec = bs.BlockSparseSynapses.from_matrix(
        w_rec,
        dev,
        key=k2,
        tile_rows=tile,
        tile_cols=tile,
        w_max=1.0,
        keep_empty=keep_empty,
    )
    c = membrane_capacitance(20e-3, DT, syn_in.v_read, syn_in.g_per_w, 1.0)
    return bs.SparsePopulation(syn_in, syn_rec, sp.LIF(c_mem_f=c), DT)


def _weights(n_in, n, seed):
    rng = np.random.default_rng(seed)
    w_in = scipy.sparse.random(n_in, n, density=0.05, random_state=rng, format="csr")
    w_in.data[:] = rng.uniform(0.3, 1.0, w_in.nnz)
    # Recurrent: local (a band), so most tiles are empty.
    w_rec = np.zeros((n, n), np.float32)
    for j in range(n):
        for i in range(max(0, j - 3), min(n, j + 4)):
            if i != j:
                w_rec[i, j] = rng.uniform(-0.6, 0.6)
    return w_in, w_rec


def test_block_sparse_equals_dense(getkey):
    w_in, w_rec = _weights(40, 48, 0)
    dev = devices.Ideal()
    pop = _population(w_in, w_rec, dev, jax.random.key(1), 8)
    dense = _population(w_in, w_rec, dev, jax.random.key(1), 8, keep_empty=True)
    assert pop.recurrent.n_blocks < dense.recurrent.n_blocks == 36
    np.testing.assert_allclose(pop.recurrent.weight_io(), w_rec, atol=1e-6)
    x = sp.rate_encode(jax.random.uniform(getkey(), (3, 40)), 30, key=getkey())
    k = getkey()
    a = jax.jit(lambda p, x: bs.run_population(p, x, key=k))(pop, x)
    b = jax.jit(lambda p, x: bs.run_population(p, x, key=k))(dense, x)
    np.testing.assert_array_equal(np.asarray(a["counts"]), np.asarray(b["counts"]))
    assert float(a["counts"].sum()) > 0
    # And a plain dense loop of the same equations (float64 NumPy).
    wi, wr = np.asarray(w_in.todense()), w_rec
    lif = pop.neuron
    r_gain = float(lif.r_ohm * pop.inputs.v_read * pop.inputs.g_per_w)
    v = np.zeros((3, 48))
    s = np.zeros((3, 48))
    cnt = np.zeros((3, 48))
    decay = np.exp(-DT / 20e-3)
    for t in range(30):
        v_inf = r_gain * (np.asarray(x[t]) @ wi + s @ wr)
        v = v_inf + (v - v_inf) * decay
        s = (v >= 1.0).astype(float)
        v = np.where(s > 0, 0.0, v)
        cnt += s
    np.testing.assert_array_equal(np.asarray(a["counts"]), cnt)
    # Synaptic operations: input and recurrent spikes times their fan-out.
    ops = float(np.asarray(x).sum(axis=(0, 1)) @ (wi != 0).sum(1))
    assert float(a["syn_ops"].sum()) >= ops


SHARDED = textwrap.dedent(
    """
    import jax, numpy as np
    import devices
    from xbar import spiking as sp
    from xbar.spiking import sparse as bs
    from test_spiking_sparse import _population, _weights
    assert len(jax.devices()) == 4
    w_in, w_rec = _weights(40, 48, 2)
    pop = _population(w_in, w_rec, devices.RRAM.from_card(), jax.random.key(3), 8)
    x = sp.rate_encode(jax.random.uniform(jax.random.key(4), (2, 40)), 25,
                       key=jax.random.key(5))
    run = jax.jit(lambda p, x: bs.run_population(p, x, key=jax.random.key(6)))
    a = run(pop, x)
    sharded = bs.SparsePopulation(bs.shard_blocks(pop.inputs),
                                  bs.shard_blocks(pop.recurrent), pop.neuron, pop.dt_s)
    assert len(sharded.inputs.pos.g.sharding.device_set) == 4
    b = run(sharded, x)
    assert float(a["counts"].sum()) > 0
    np.testing.assert_array_equal(np.asarray(a["counts"]), np.asarray(b["counts"]))
    print("OK")
    """
)


def test_sharded_loop_equals_unsharded():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = (
        os.path.dirname(__file__) + os.pathsep + env.get("PYTHONPATH", "")
    )
    out = subprocess.run(
        [sys.executable, "-c", SHARDED],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout
