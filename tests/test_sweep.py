"""Sweeps compile once and equal evaluating every point on its own."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EPS32, tree_allclose

import devices
import xbar

CONFIGS = [
    devices.RRAM.from_card(sigma_read=0.01, sigma_c2c=0.0),
    devices.RRAM.from_card(sigma_read=0.05, sigma_c2c=0.02, a_ltp=1.5),
    devices.RRAM.from_card(sigma_read=0.10, sigma_c2c=0.05, sigma_prog=0.0),
]


def _experiment(device, key):
    """Program, pulse and read 16 cells; also return the key it was given."""
    k_init, k_prog, k_up, k_read = jax.random.split(key, 4)
    span = device.g_max - device.g_min
    targets = device.g_min + span * jnp.linspace(0.0, 1.0, 16)
    state = device.program(device.init((16,), key=k_init), targets, key=k_prog)
    state = device.update(state, jnp.full((16,), 3.0), key=k_up)
    return device.read(state, key=k_read), jax.random.key_data(key)


@pytest.mark.parametrize("batch_size", [None, 2])
def test_sweep_compiles_once_and_equals_loop(batch_size, getkey):
    stacked = xbar.stack(CONFIGS)
    sweep = xbar.Sweep(_experiment, batch_size=batch_size)
    reads_a, keys_a = sweep(stacked, getkey(), 2)
    reads_b, keys_b = sweep(stacked, getkey(), 2)
    # One trace covers both calls (new keys, same shapes): compiled exactly once.
    assert sweep.n_traces == 1
    assert reads_a.shape == (3, 2, 16)

    for reads, keys in ((reads_a, keys_a), (reads_b, keys_b)):
        # Every (point, repeat) got its own key.
        flat = np.asarray(keys).reshape(6, -1)
        assert len({row.tobytes() for row in flat}) == 6
        for i, cfg in enumerate(CONFIGS):
            for r in range(2):
                key = jax.random.wrap_key_data(keys[i, r])
                alone, _ = _experiment(cfg, key)
                # Same float32 ops, batched and jitted: XLA may fuse and
                # reorder, so a few ulp (8 eps relative); atol far below g_min.
                assert tree_allclose(
                    reads[i, r], alone, rtol=8 * EPS32, atol=1e-6 * float(cfg.g_min)
                )
    # Different keys give different draws, and the points differ from each other.
    assert not np.allclose(np.asarray(reads_a), np.asarray(reads_b))
    assert not np.allclose(np.asarray(reads_a[0]), np.asarray(reads_a[2]))


def test_sweep_over_converter_bits(getkey):
    # DAC bits is an array field, so a resolution sweep is one compilation too.
    u = jnp.linspace(-1.0, 1.0, 101)
    sweep = xbar.Sweep(lambda dac, key: dac(u))
    out = sweep(xbar.stack([xbar.DAC(bits=b, v_read=1.0) for b in (2, 3, 8)]), getkey())
    assert sweep.n_traces == 1
    # 2^b - 1 distinct output levels per point: 3, 7, and all 101 inputs at 8 bits
    # (step 1/127 < input spacing 1/50).
    assert [np.unique(np.asarray(out[i, 0])).size for i in range(3)] == [3, 7, 101]


def test_assert_max_traces_equinox(getkey):
    # The same guarantee through equinox's own trace counter.
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(configs, key):
        return jax.vmap(lambda c: _experiment(c, key)[0])(configs)

    jrun = eqx.filter_jit(run)
    stacked = xbar.stack(CONFIGS)
    a = jrun(stacked, getkey())
    b = jrun(stacked, getkey())
    assert a.shape == b.shape == (3, 16)
