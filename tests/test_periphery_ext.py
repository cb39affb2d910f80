"""DAC encodings and the ADC's noise, INL/DNL transfer function and sharing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EPS32, assert_figure_redraws, load_script

import devices
import xbar

U = jnp.linspace(-1.2, 1.2, 4801, dtype=jnp.float32)


@pytest.mark.parametrize("bits", [2, 4, 7])
def test_bit_planes_reconstruct_quantized_input(bits):
    dac = xbar.BitSerialDAC(bits=bits)
    planes = np.asarray(dac.planes(U), np.float64)
    assert planes.shape == (bits - 1,) + U.shape and dac.n_cycles == bits - 1
    assert set(np.unique(planes)) <= {-1.0, 0.0, 1.0}
    # Independent: magnitude integer m = round(|clip(u)| n), bit c of it, signed.
    n = 2 ** (bits - 1) - 1
    u = np.clip(np.asarray(U, np.float64), -1, 1)
    m = np.round(np.abs(u) * n).astype(int)
    for c in range(bits - 1):
        ref = np.sign(u) * ((m >> c) & 1)
        np.testing.assert_array_equal(planes[c], ref)
    # Shift-add equals the amplitude DAC's level (float32: 2 eps of full scale).
    recon = np.tensordot(np.asarray(dac.plane_weights(), np.float64), planes, 1)
    amp = np.asarray(xbar.DAC(bits=bits)(U), np.float64) / 0.2
    np.testing.assert_allclose(recon, amp, rtol=0, atol=2 * EPS32)


def test_dac_configuration_errors():
    with pytest.raises(ValueError, match="BitSerialDAC bits must be a Python integer"):
        xbar.BitSerialDAC(bits=None)
    with pytest.raises(ValueError, match="PulseWidthDAC bits must be an integer"):
        xbar.PulseWidthDAC(bits=None)
    with pytest.raises(ValueError, match="share must be an integer >= 1"):
        xbar.ADC(bits=6, i_max=1.0, share=0)
    with pytest.raises(ValueError, match="noise_lsb must be in"):
        xbar.ADC(bits=6, i_max=1.0, noise_lsb=-0.1)
    with pytest.raises(ValueError, match="thresholds must have shape"):
        xbar.ADC(bits=4, i_max=1.0, thresholds=jnp.zeros(5))


def _transitions(adc, n):
    """Input (full-scale units) at which each output code first appears, from a
    fine ramp: the measured transfer function's thresholds."""
    u = np.linspace(-1.0, 1.0, 400_001)
    out = np.asarray(adc(jnp.asarray(u, jnp.float32)), np.float64)
    code = np.round(out * n).astype(int)
    idx = np.nonzero(np.diff(code))[0]
    return u[idx + 1], code[idx + 1]


def test_ideal_thresholds_match_quantizer():
    adc_t = xbar.ADC.with_nonlinearity(5, 1.0, key=jax.random.key(0))
    u = jnp.linspace(-1.3, 1.3, 20001, dtype=jnp.float32)
    # Zero INL and DNL: the same staircase as the ideal quantizer except at the
    # threshold points themselves (float32 threshold vs rounding tie): < 0.1 %
    # of the inputs land on another level (values compared to half an LSB; the
    # two paths compute the same level with different float32 rounding).
    a = np.asarray(adc_t(u), np.float64)
    b = np.asarray(xbar.ADC(bits=5, i_max=1.0)(u), np.float64)
    assert np.mean(np.abs(a - b) > 0.5 / 15) < 1e-3


def test_inl_bow_measured():
    bits, inl = 6, 2.0
    n = 2 ** (bits - 1) - 1
    adc = xbar.ADC.with_nonlinearity(bits, 1.0, key=jax.random.key(1), inl_lsb=inl)
    t, _ = _transitions(adc, n)
    assert t.size == 2 * n  # no missing codes without DNL
    ideal = -1.0 + (np.arange(2 * n) + 0.5) / n
    inl_meas = (t - ideal) * n  # LSB
    # The configured bow inl (1 - t^2): 2 LSB at mid-scale, ~0 at the ends.
    # Ramp step 5e-6 of full scale = 1.6e-4 LSB; allow 0.01 LSB.
    np.testing.assert_allclose(inl_meas, inl * (1 - ideal**2), atol=0.02 * inl)
    assert abs(inl_meas[n] - inl) < 0.02


def test_dnl_statistics_and_fixed_per_converter():
    bits, dnl = 8, 0.3
    n = 2 ** (bits - 1) - 1
    adc = xbar.ADC.with_nonlinearity(bits, 1.0, key=jax.random.key(2), dnl_lsb=dnl)
    t, _ = _transitions(adc, n)
    widths = np.diff(t) * n  # LSB
    # End points are kept, so widths average 1 LSB (sum fixed); their spread is the
    # configured DNL: std of 253 widths has sampling error 0.3 / sqrt(2 * 253) =
    # 0.013; 5 of those. (A rescale by 1 + O(dnl / sqrt(N)) is inside this.)
    assert abs(widths.mean() - 1.0) < 0.01
    assert abs(widths.std(ddof=1) - dnl) < 5 * dnl / np.sqrt(2 * widths.size) + 0.01
    # Fixed transfer function: the same key draws the same converter, another differs.
    same = xbar.ADC.with_nonlinearity(bits, 1.0, key=jax.random.key(2), dnl_lsb=dnl)
    other = xbar.ADC.with_nonlinearity(bits, 1.0, key=jax.random.key(3), dnl_lsb=dnl)
    np.testing.assert_array_equal(
        np.asarray(adc.thresholds), np.asarray(same.thresholds)
    )
    assert (
        np.abs(np.asarray(adc.thresholds) - np.asarray(other.thresholds)).max()
        > 0.1 / n
    )


def test_input_referred_noise(getkey):
    bits, sigma = 10, 3.0  # LSB
    n = 2 ** (bits - 1) - 1
    adc = xbar.ADC(bits=bits, i_max=2e-6, noise_lsb=sigma)
    i = jnp.full((20_000,), 100 / n * 2e-6, jnp.float32)  # exactly on a level
    # No key: no noise, the level comes back (float32: 2 eps relative).
    np.testing.assert_allclose(np.asarray(adc(i)), 100 / n * 2e-6, rtol=2 * EPS32)
    codes = np.asarray(adc(i, key=getkey()), np.float64) / 2e-6 * n
    # Gaussian noise of sigma LSB, then rounding (+1/12 LSB^2 variance, Sheppard).
    expected = np.sqrt(sigma**2 + 1 / 12)
    # Sampling error of the std: expected / sqrt(2N); 5 of those; mean: 5 / sqrt(N).
    assert abs(codes.std(ddof=1) - expected) < 5 * expected / np.sqrt(2 * codes.size)
    assert abs(codes.mean() - 100) < 5 * expected / np.sqrt(codes.size)


# -- the periphery experiment and the network benchmark, tiny -------------------------


def test_periphery_experiment_tiny(tmp_path):
    import json

    exp = load_script("experiments/periphery.py", "periphery")
    out = exp.run(
        quick=True,
        out_dir=tmp_path,
        combos=[["mlp", 2, "bit_serial", "column"]],
        overrides={"n_calibration": 32, "epochs_cnn": 1},
    )
    saved = json.loads((tmp_path / "periphery.json").read_text())
    assert saved == json.loads(json.dumps(out))
    (row,) = saved["results"]
    assert row["calibration"] == "column"  # per-column full scales through the sweep
    assert row["compiles"] == 1  # the ADC-bit sweep and its repeats: one compile
    acc = np.asarray(row["accuracy"])
    assert acc.shape == (len(saved["config"]["adc_bits"]), saved["config"]["n_repeats"])
    # 3 epochs on 2,000 digits: > 80 % float (measured ~90 %); a 6-bit ADC stays
    # within 10 points of float on 100 digits, and beats a 3-bit one.
    assert saved["float_accuracy"]["mlp"] > 0.8
    assert acc[-1].mean() > saved["float_accuracy"]["mlp"] - 0.1
    assert acc[-1].mean() >= acc[0].mean()
    for net in ("mlp", "cnn"):
        e = saved["energy"][net]
        assert len(e) == (2 if net == "mlp" else 3)
        assert all(r["energy_total_J"] > 0 for r in e)
    assert_figure_redraws(exp, tmp_path, "periphery", tmp_path)


def test_network_benchmark_quick(capsys):
    import json

    bench = load_script("benchmarks/network.py", "bench_network")
    rows = bench.main(["--quick"])
    printed = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{")
    ]
    assert printed == rows
    names = [r["name"] for r in rows]
    assert "mlp_784_256_10_mapped_read_noise" in names and "peak_rss" in names
    for r in rows[:-1]:
        assert r["value"] > 0 and r["baseline"] > 0 and r["ratio"] > 0


def test_two_phase_dac_equals_amplitude_on_ideal_cells(getkey):
    # Sign-split inputs (positive parts, then negative magnitudes, subtracted
    # digitally) quantize exactly as the amplitude DAC, so on ideal cells with an
    # ideal ADC the outputs agree to float32 rounding of two sums instead of one
    # (tolerance 1e-5 of the output scale, ~100 eps32 for these fan-ins).
    w = jax.random.normal(getkey(), (6, 20), jnp.float32)
    x = jax.random.normal(getkey(), (9, 20), jnp.float32)  # both signs
    mapping = xbar.Mapping(tile_rows=8, tile_cols=4)

    def layer(dac):
        cfg = xbar.AnalogConfig(devices.Ideal(), mapping=mapping, dac=dac)
        return xbar.AnalogLinear.from_weights(w, None, cfg, key=jax.random.key(0))

    two = layer(xbar.TwoPhaseDAC(bits=5))
    amp = np.asarray(layer(xbar.DAC(bits=5))(x), np.float64)
    np.testing.assert_allclose(
        np.asarray(two(x), np.float64), amp, rtol=0, atol=1e-5 * np.abs(amp).max()
    )
    planes = np.asarray(two.dac.planes(x))
    assert planes.shape == (2,) + x.shape and planes.min() >= 0.0
    # Energy: two read cycles; each nonzero input drives its row in one phase only,
    # so the row drives equal the amplitude DAC's (hand count from the levels).
    c = xbar.layer_counts(two, x)
    q = np.asarray(xbar.quantize_signed(two.scaled_inputs(x), 5))
    assert c["cycles"] == 2
    expected = np.count_nonzero(q) * two.grid[1] / x.shape[0]
    assert c["dac_conversions"] == pytest.approx(expected, rel=1e-6)
