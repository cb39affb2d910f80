"""Energy/latency counts against hand counts for a 3-input, 2-output layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import DACS

import devices
import xbar
from xbar.analysis.energy import CONSTANTS, EnergyModel, layer_counts, network_counts

G_MIN, G_MAX = 1e-6, 1e-4
K = G_MAX - G_MIN  # siemens per unit weight (max |W| = 1)
W = jnp.asarray([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])  # (out, in)
X = jnp.asarray([[1.0, 0.0, 0.5]])
# Row conductances (G+ + G-, both columns): row 0 holds w = (1, 0.5), row 2 holds
# (-1, 0); row 1 is never driven (x = 0) and row 3 is padding (x = 0).
ROW0 = 4 * G_MIN + 1.5 * K
ROW2 = 4 * G_MIN + 1.0 * K
V = 0.2
T_READ = CONSTANTS["t_read_pulse_s"][0]
# NeuroSim SAR ADC (DNN+NeuroSim V1.4 SarADC.cpp, 32 nm HP), 6 bits: power
# (1.0157 * 6 + 7.6286) uW + 0.083709 exp(-2.313 log10(R_col 0.5 / V)) W during
# (6 + 1) x 1 ns.
T_ADC = 7e-9
P_ADC = (1.0157 * 6 + 7.6286) * 1e-6


def _column_power(g_col):
    return 0.083709 * np.exp(-2.313 * np.log10(1.0 / g_col * 0.5 / V))


def _layer(encoding, share=2, bits=3):
    return xbar.AnalogLinear.from_weights(
        W,
        None,
        xbar.AnalogConfig(
            devices.Ideal(),
            mapping=xbar.Mapping(tile_rows=2, tile_cols=2),
            dac=DACS[encoding](bits=bits, v_read=V),
            adc=xbar.ADC(bits=6, i_max=1e-05, share=share),
        ),
        key=jax.random.key(0),
    )


def test_amplitude_counts_by_hand():
    c = layer_counts(_layer("amplitude"), X)
    # Inputs (1, 0, 0.5) on 2 tile rows of 2 rows: one driven row in each tile row,
    # one tile column -> 2 DAC conversions; both tiles active -> 2 x 2 columns.
    assert c["dac_conversions"] == 2 and c["adc_conversions"] == 4
    assert c["digital_adds"] == 4 + 2  # one per conversion + bias/output adds
    # 3-bit DAC: 0.5 -> round(1.5) / 3 = 2/3 of V. Cell energy V^2 G t per row.
    e_cells = T_READ * (V**2 * ROW0 + (V * 2 / 3) ** 2 * ROW2)
    # float32 conductance sums: 1e-6 relative.
    np.testing.assert_allclose(c["energy_J"]["cells"], e_cells, rtol=1e-6)
    m = EnergyModel()
    # The 4 conversions see the conductance of the driven row's two cells:
    # tile row 0 (row 0: w = 1, 0.5), tile row 1 (row 2: w = -1, 0).
    g_cols = [2 * G_MIN + K, 2 * G_MIN + 0.5 * K, 2 * G_MIN + K, 2 * G_MIN]
    e_adc = sum((P_ADC + _column_power(g)) * T_ADC for g in g_cols)
    # float32 powers and logs: 1e-5 relative.
    np.testing.assert_allclose(c["energy_J"]["adc"], e_adc, rtol=1e-5)
    walden = layer_counts(
        _layer("amplitude"), X, EnergyModel(adc=xbar.analysis.WaldenADC())
    )
    np.testing.assert_allclose(walden["energy_J"]["adc"], 4 * 10e-15 * 2**6, rtol=1e-6)
    np.testing.assert_allclose(
        walden["latency_s"], T_READ + 2 * CONSTANTS["t_adc_s"][0], rtol=1e-6
    )
    np.testing.assert_allclose(c["energy_J"]["dac"], 2 * float(m.e_dac_j), rtol=1e-6)
    np.testing.assert_allclose(c["energy_J"]["digital"], 6 * 0.1e-12, rtol=1e-6)
    # Sharing: one ADC for the tile's 2 columns converts twice in series.
    np.testing.assert_allclose(c["latency_s"], T_READ + 2 * T_ADC, rtol=1e-6)
    assert c["adcs"] == 2 and c["devices"] == 2 * 2 * 2 * 2
    c1 = layer_counts(_layer("amplitude", share=1), X)
    np.testing.assert_allclose(c1["latency_s"], T_READ + T_ADC, rtol=1e-6)
    assert c1["adcs"] == 4


def test_bit_serial_counts_by_hand():
    c = layer_counts(_layer("bit_serial"), X)
    # Magnitudes (3, 0, 2) in 2 bits: cycle 0 drives row 0; cycle 1 rows 0 and 2.
    assert c["cycles"] == 2 and c["dac_conversions"] == 0 and c["driver_pulses"] == 3
    # Cycle 0: only tile row 0 busy (2 conversions); cycle 1: both (4).
    assert c["adc_conversions"] == 6
    np.testing.assert_allclose(
        c["energy_J"]["cells"], T_READ * V**2 * (2 * ROW0 + ROW2), rtol=1e-6
    )
    np.testing.assert_allclose(c["latency_s"], 2 * (T_READ + 2 * T_ADC), rtol=1e-6)
    # Cycle 0 converts tile row 0 (row 0 driven); cycle 1 both tile rows.
    g_cols = [2 * G_MIN + K, 2 * G_MIN + 0.5 * K] * 2 + [2 * G_MIN + K, 2 * G_MIN]
    e_adc = sum((P_ADC + _column_power(g)) * T_ADC for g in g_cols)
    np.testing.assert_allclose(c["energy_J"]["adc"], e_adc, rtol=1e-5)


def test_pulse_width_counts_by_hand():
    c = layer_counts(_layer("pulse_width"), X)
    # Full V for a fraction |q(u)| of a 3-slot window.
    t_win = 3 * CONSTANTS["t_pulse_slot_s"][0]
    np.testing.assert_allclose(
        c["energy_J"]["cells"], t_win * V**2 * (ROW0 + 2 / 3 * ROW2), rtol=1e-6
    )
    np.testing.assert_allclose(c["latency_s"], t_win + 2 * T_ADC, rtol=1e-6)


def test_adc_model_checked():
    with pytest.raises(ValueError, match="adc must be one of"):
        EnergyModel(adc="flash")


def test_sparse_inputs_cost_less(getkey):
    w = jax.random.normal(getkey(), (20, 64))
    layer = xbar.AnalogLinear.from_weights(
        w,
        None,
        xbar.AnalogConfig(
            devices.Ideal(),
            mapping=xbar.Mapping(tile_rows=16, tile_cols=8),
            adc=xbar.ADC(bits=6, i_max=1e-05),
        ),
        key=getkey(),
    )
    x = jax.random.uniform(getkey(), (8, 64), minval=0.1, maxval=1.0)
    mask = np.zeros(64, bool)
    mask[:16] = True  # only the first tile row is active
    dense = layer_counts(layer, x)
    sparse = layer_counts(layer, jnp.where(jnp.asarray(mask), x, 0.0))
    # Every nonzero input is one conversion per tile column (3 tile columns).
    assert dense["dac_conversions"] == 64 * 3 and sparse["dac_conversions"] == 16 * 3
    # Idle tile rows convert nothing: 1 of 4 tile rows busy.
    assert sparse["adc_conversions"] == dense["adc_conversions"] / 4
    assert sparse["energy_total_J"] < 0.5 * dense["energy_total_J"]


def test_network_counts_mlp_and_conv(getkey):
    from xbar.nn.conv import AnalogConv2d

    conv = AnalogConv2d.from_weights(
        jax.random.normal(getkey(), (4, 1, 3, 3)),
        None,
        xbar.AnalogConfig(
            devices.Ideal(), mapping=xbar.Mapping(tile_rows=16, tile_cols=8)
        ),
        key=getkey(),
        stride=2,
    )
    lin = xbar.AnalogLinear.from_weights(
        jax.random.normal(getkey(), (3, 4 * 3 * 3)),
        None,
        xbar.AnalogConfig(
            devices.Ideal(), mapping=xbar.Mapping(tile_rows=16, tile_cols=8)
        ),
        key=getkey(),
    )
    x = jax.random.uniform(getkey(), (2, 1, 7, 7))
    rows = network_counts(xbar.AnalogNetwork((conv, lin), (1, 7, 7)), x)
    # 3x3 output pixels, 9 nonzero inputs each, one tile column: 81 conversions.
    assert rows[0]["dac_conversions"] == pytest.approx(81.0)
    assert [r["layer"] for r in rows] == [0, 1]
