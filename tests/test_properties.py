"""Property tests (hypothesis) of the option modules' invariants.

Each property holds for every combination hypothesis draws of cell scheme,
bit slicing, scale granularity, tile size, DAC encoding and input. Shapes
come from a small set so that JAX compiles a bounded number of programs;
examples are few (each one compiles) but span the combinations.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from helpers import EPS32
from hypothesis import HealthCheck, given, settings, strategies as st

import devices
import xbar

IDEAL = devices.Ideal(g_min=1e-6, g_max=1e-4)
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples every run: CI never meets a new seed
    suppress_health_check=[HealthCheck.too_slow],
)
CELLS = st.sampled_from(
    [xbar.DifferentialPair(), xbar.BalancedPair(), xbar.ReferenceColumn()]
)
SCALES = st.sampled_from([xbar.PerTensor(), xbar.PerColumn(), xbar.PerTile()])


@st.composite
def mappings(draw):
    bits = draw(st.sampled_from([None, 1, 3, 6, 8]))
    n_slices = 1 if bits is None else draw(st.integers(1, min(bits, 4)))
    tile_rows = draw(st.sampled_from([4, 8, 16]))
    tile_cols = draw(st.sampled_from([5, 8, 12]))
    return xbar.Mapping(
        tile_rows=tile_rows,
        tile_cols=max(tile_cols, n_slices + 1),
        cells=draw(CELLS),
        weight_bits=bits,
        n_slices=n_slices,
        scale=draw(SCALES),
    )


@SETTINGS
@given(mapping=mappings(), seed=st.integers(0, 2**16))
def test_programmed_weights_are_the_quantized_weights(mapping, seed):
    # Ideal cells hold W exactly up to the weight quantization: each weight is
    # within half a step of its group's full scale, <= max|W| / (2 (2^B - 1)),
    # plus float32 rounding of the conductances (64 eps of max|W| x the slice
    # weights' sum, which is 1).
    w = jax.random.normal(jax.random.key(seed), (7, 13), jnp.float32)
    cfg = xbar.AnalogConfig(IDEAL, mapping=mapping)
    layer = xbar.AnalogLinear.from_weights(w, None, cfg, key=jax.random.key(0))
    w64 = np.asarray(w, np.float64)
    w_max = np.abs(w64).max()
    step = 0.0 if mapping.weight_bits is None else w_max / (2**mapping.weight_bits - 1)
    err = np.abs(np.asarray(layer.effective_weight(), np.float64) - w64)
    assert err.max() <= 0.5 * step + 64 * EPS32 * w_max


@SETTINGS
@given(mapping=mappings(), seed=st.integers(0, 2**16))
def test_ideal_forward_is_the_effective_weights_times_the_input(mapping, seed):
    # With unquantized DAC and ideal ADCs the layer is linear in its input:
    # y = W_eff x, whatever the scheme (float32 sums over <= 13 inputs and the
    # common mode of the cells: 1e3 eps of the output scale).
    kw, kx = jax.random.split(jax.random.key(seed))
    w = jax.random.normal(kw, (7, 13), jnp.float32)
    x = jax.random.normal(kx, (4, 13), jnp.float32)
    cfg = xbar.AnalogConfig(IDEAL, mapping=mapping, dac=xbar.DAC(bits=None))
    layer = xbar.AnalogLinear.from_weights(w, None, cfg, key=jax.random.key(0))
    ref = np.asarray(x, np.float64) @ np.asarray(layer.effective_weight(), np.float64).T
    y = np.asarray(layer(x), np.float64)
    scale = np.abs(np.asarray(x)).sum(-1, keepdims=True) * np.abs(np.asarray(w)).max()
    assert np.all(np.abs(y - ref) <= 1e3 * EPS32 * scale)


DACS = st.sampled_from(
    [xbar.DAC, xbar.PulseWidthDAC, xbar.BitSerialDAC, xbar.TwoPhaseDAC]
)


@SETTINGS
@given(
    dac=DACS,
    bits=st.integers(2, 10),
    u=st.lists(st.floats(-1.5, 1.5, width=32), min_size=1, max_size=16),
)
def test_every_encoding_recombines_to_the_quantized_input(dac, bits, u):
    # Whatever the cycles, the digital recombination of the drive levels is the
    # signed quantization of the clipped input (float32: 4 eps of full scale).
    d = dac(bits=bits)
    u = jnp.asarray(u, jnp.float32)
    planes = d.planes(u)
    assert planes.shape == (d.n_cycles,) + u.shape
    assert float(jnp.max(jnp.abs(planes))) <= 1.0
    got = np.asarray(d.combine(planes), np.float64)
    want = np.asarray(xbar.quantize_signed(u, bits), np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * EPS32)


_VOLATILE = {
    "perovskite": lambda **kw: devices.Perovskite.from_card(**kw),
    "ionic": lambda **kw: devices.IonicSynapse.from_card("ionic_droplet_li2025", **kw),
}


def _pulse_and_relax(dev, pulses, dts, key):
    st0 = dev.init(pulses.shape[1:], key=key)

    def step(s, inp):
        n, dt, k = inp
        s = dev.relax(dev.update(s, n, key=k), dt)
        return s, s.g

    keys = jax.random.split(key, pulses.shape[0])
    s, gs = jax.lax.scan(step, st0, (pulses, dts, keys))
    return gs, dev.relax(s, 1e12).g, s.w


_pulse_and_relax_jit = eqx.filter_jit(_pulse_and_relax)


@settings(SETTINGS, max_examples=12)  # one compile per family; 12 draws
@given(
    family=st.sampled_from(sorted(_VOLATILE)),
    t_k=st.floats(200.0, 500.0),
    frac=st.floats(0.0, 1.0),
    tau2=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**16),
)
def test_volatile_relaxation_at_any_temperature_stays_in_window(
        family, t_k, frac, tau2, seed):
    # Any temperature, double-exponential split and pulse train: conductances
    # stay finite and in [g_min, g_max], and a long enough rest leaves only
    # the non-volatile part (both components have decayed to exactly 0).
    dev = _VOLATILE[family](temperature_k=t_k, frac_tau2=frac, tau2_s=tau2)
    rng = np.random.default_rng(seed)
    pulses = jnp.asarray(rng.integers(-6, 7, (10, 5)), jnp.float32)
    dts = jnp.asarray(rng.exponential(0.05, 10), jnp.float32)
    gs, g_rest, w = _pulse_and_relax_jit(dev, pulses, dts, jax.random.key(seed))
    gs = np.asarray(gs)
    assert np.all(np.isfinite(gs))
    assert gs.min() >= np.float32(dev.g_min) and gs.max() <= np.float32(dev.g_max)
    np.testing.assert_array_equal(np.asarray(g_rest), np.asarray(w))
