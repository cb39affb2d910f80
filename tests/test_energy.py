"""Energy/latency counts against hand counts, closed forms and published numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import DACS

import devices
import xbar
from xbar.analysis import validation
from xbar.analysis.energy import (
    CONSTANTS,
    SARADC,
    EnergyModel,
    FlashADC,
    RampADC,
    SurveyADC,
    Technology,
    layer_counts,
    network_counts,
    shape_counts,
    summary,
)

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
VDD = 0.85  # NeuroSim's V_dd at 22 nm, the default node
E_COMP = CONSTANTS["e_comparator_22nm_j"][0]
E_REG = CONSTANTS["e_register_bit_22nm_j"][0]
C_U = CONSTANTS["c_unit_f"][0]
C_CELL = CONSTANTS["c_row_per_cell_f"][0]
T_CLK = CONSTANTS["t_clock_s"][0]
# 6-bit SAR: 6 decisions and register bits, 2^6 unit capacitors switched; 7 cycles.
E_SAR6 = 6 * (E_COMP + E_REG) + 64 * C_U * VDD**2
T_SAR6 = 7 * T_CLK


def _layer(encoding, share=2, bits=3, parallel_rows=None):
    return xbar.AnalogLinear.from_weights(
        W,
        None,
        xbar.AnalogConfig(
            devices.Ideal(),
            mapping=xbar.Mapping(tile_rows=2, tile_cols=2, parallel_rows=parallel_rows),
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
    assert c["accumulations"] == 4 and c["reads"] == 1
    # Bytes moved: 3 inputs x 3 bits in; 2 tile rows x 2 outputs x (6 + 1)-bit
    # partial sums to the adder tree; 2 outputs x 8 bits out.
    assert c["input_bits_moved"] == 9 and c["acc_bits"] == 7
    assert c["psum_bits_moved"] == 2 * 2 * 7 and c["output_bits"] == 16
    # 3-bit DAC: 0.5 -> round(1.5) / 3 = 2/3 of V. Cell energy V^2 G t per row.
    e_cells = T_READ * (V**2 * ROW0 + (V * 2 / 3) ** 2 * ROW2)
    # float32 conductance sums: 1e-6 relative.
    np.testing.assert_allclose(c["energy_J"]["cells"], e_cells, rtol=1e-6)
    np.testing.assert_allclose(c["energy_J"]["adc"], 4 * E_SAR6, rtol=1e-6)
    # Each drive: a 3-bit capacitive DAC (2^3 C_u V_dd^2) and the row line of
    # 2 columns x 2 devices charged to V from V_dd.
    e_drive = 8 * C_U * VDD**2 + 4 * C_CELL * VDD * V
    np.testing.assert_allclose(c["energy_J"]["dac"], 2 * e_drive, rtol=1e-6)
    # Sharing: one ADC for the tile's 2 columns converts twice in series, then
    # one adder-tree level (2 tile rows) and the activation: 2 clock cycles.
    np.testing.assert_allclose(
        c["latency_s"], T_READ + 2 * T_SAR6 + 2 * T_CLK, rtol=1e-6
    )
    assert c["adcs"] == 2 and c["devices"] == 2 * 2 * 2 * 2
    c1 = layer_counts(_layer("amplitude", share=1), X)
    np.testing.assert_allclose(c1["latency_s"], T_READ + T_SAR6 + 2 * T_CLK, rtol=1e-6)
    assert c1["adcs"] == 4
    for part in ("adc", "accumulation", "cells", "dac"):  # same conversions
        assert c1["energy_J"][part] == c["energy_J"][part]
    walden = layer_counts(
        _layer("amplitude"), X, EnergyModel(adc=xbar.analysis.WaldenADC())
    )
    np.testing.assert_allclose(walden["energy_J"]["adc"], 4 * 10e-15 * 2**6, rtol=1e-6)


def test_bit_serial_counts_by_hand():
    c = layer_counts(_layer("bit_serial"), X)
    # Magnitudes (3, 0, 2) in 2 bits: cycle 0 drives row 0; cycle 1 rows 0 and 2.
    assert c["cycles"] == 2 and c["dac_conversions"] == 0 and c["driver_pulses"] == 3
    # Cycle 0: only tile row 0 busy (2 conversions); cycle 1: both (4).
    assert c["adc_conversions"] == 6
    np.testing.assert_allclose(
        c["energy_J"]["cells"], T_READ * V**2 * (2 * ROW0 + ROW2), rtol=1e-6
    )
    np.testing.assert_allclose(
        c["latency_s"], 2 * (T_READ + 2 * T_SAR6) + 2 * T_CLK, rtol=1e-6
    )
    np.testing.assert_allclose(c["energy_J"]["adc"], 6 * E_SAR6, rtol=1e-6)


def test_row_groups_by_hand():
    # One row per read: tile rows are read in 2 groups; x = (1, 0, 0.5) drives
    # row 0 (group 0 of tile row 0) and row 2 (group 0 of tile row 1) only, so
    # group 1 of both tile rows idles: still 4 conversions, but 2 reads in series.
    c = layer_counts(_layer("amplitude", parallel_rows=1), X)
    assert c["reads"] == 2 and c["adc_conversions"] == 4
    all_ones = layer_counts(_layer("amplitude", parallel_rows=1), jnp.ones((1, 3)))
    # Rows 0, 1 (tile row 0: 2 groups busy) and 2 (tile row 1: 1 group) driven.
    assert all_ones["adc_conversions"] == 3 * 2
    np.testing.assert_allclose(
        c["latency_s"], 2 * (T_READ + 2 * T_SAR6) + 2 * T_CLK, rtol=1e-6
    )


def test_pulse_width_counts_by_hand():
    c = layer_counts(_layer("pulse_width"), X)
    # Full V for a fraction |q(u)| of a 3-slot window.
    t_win = 3 * CONSTANTS["t_pulse_slot_s"][0]
    np.testing.assert_allclose(
        c["energy_J"]["cells"], t_win * V**2 * (ROW0 + 2 / 3 * ROW2), rtol=1e-6
    )
    np.testing.assert_allclose(
        c["latency_s"], t_win + 2 * T_SAR6 + 2 * T_CLK, rtol=1e-6
    )


def test_adc_models_closed_forms():
    t = Technology(22.0)
    flash, ramp, sar = FlashADC(), RampADC(), SARADC()
    for b in (2, 4, 6, 8):
        assert flash.conversion_energy(b, t) == pytest.approx(
            (2**b - 1) * E_COMP + b * E_REG
        )
        assert ramp.conversion_energy(b, t) == pytest.approx(
            2**b * (E_COMP + 2 * E_REG)
        )
        # float32 constants: 1e-7 relative.
        assert flash.conversion_time(b, t) == pytest.approx(T_CLK, rel=1e-6)
        assert ramp.conversion_time(b, t) == pytest.approx(2**b * T_CLK, rel=1e-6)
        assert sar.conversion_time(b, t) == pytest.approx((b + 1) * T_CLK, rel=1e-6)
    e = [sar.conversion_energy(b, t) for b in range(2, 10)]
    assert np.all(np.diff(e) > 0)  # grows with resolution
    # Murmann survey envelope: floor + thermal slope 4^ENOB (its notebook's form).
    assert SurveyADC().conversion_energy(6) == pytest.approx(
        267.2e-15 + 1.4456e-19 * 4**6
    )
    # Technology scaling: C ~ F, V_dd from NeuroSim's table (1.0 V at 45 nm).
    ratio = sar.conversion_energy(6, Technology(45.0)) / sar.conversion_energy(6, t)
    cap = 64 * C_U  # the C-DAC does not scale with the node
    logic = 6 * (E_COMP + E_REG)
    expected = (logic * (45 / 22) * (1.0 / 0.85) ** 2 + cap * 1.0**2) / (
        logic + cap * 0.85**2
    )
    assert ratio == pytest.approx(expected, rel=1e-6)  # float32 constants


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
    for part in ("adc", "cells", "dac", "accumulation"):
        assert sparse["energy_J"][part] < 0.5 * dense["energy_J"][part]


def _tiny_net(getkey, dac, parallel_rows, share):
    cfg = xbar.AnalogConfig(
        devices.Ideal(),
        mapping=xbar.Mapping(
            tile_rows=8,
            tile_cols=8,
            weight_bits=4,
            n_slices=2,
            parallel_rows=parallel_rows,
        ),  # fmt: skip
        dac=dac,
        adc=xbar.ADC(bits=5, i_max=1e-4, share=share),
    )
    w1 = jax.random.normal(getkey(), (6, 20))
    w2 = jax.random.normal(getkey(), (3, 6))
    return xbar.AnalogNetwork.from_weights(
        [w1, w2], cfg, key=getkey(), input_shape=(20,)
    )


@pytest.mark.parametrize(
    "dac,k,share", [(xbar.BitSerialDAC(bits=4), 4, 2), (xbar.DAC(bits=6), None, 4)]
)
def test_shape_counts_equal_simulated_counts(dac, k, share, getkey):
    # Every input at full scale drives every row of the first layer in every
    # read: the statistics are exact, so the counts from shapes alone equal
    # those from the forward path (the second layer sees ReLU activations).
    net = _tiny_net(getkey, dac, k, share)
    x = jnp.ones((3, 20))
    sim = network_counts(net, x)
    tiles = sum(r["tiles_r"] * r["tiles_c"] for r in sim)
    for layer, r in zip(net.layers[:1], sim[:1]):
        g_p, _, g_n, _ = layer.crossbar.read_stats(layer.t_read_s)
        n_in = layer.in_features
        # Padding rows of the last tile row carry g_min cells but are never driven.
        g_rows = jnp.sum(g_p + g_n, axis=(1, 3)).reshape(-1)[:n_in]
        g = float(jnp.sum(g_rows)) / (n_in * layer.grid[1] * 8 * 2)
        a = shape_counts(
            n_in, layer.out_features, mapping=layer.mapping, dac=layer.dac,
            adc_bits=5.0, share=share, g_cell_S=g, chip_tiles=tiles,
        )  # fmt: skip
        for key in ("dac_conversions", "driver_pulses", "adc_conversions",
                    "accumulations", "slice_adds", "tree_adds", "input_bits_moved",
                    "psum_bits_moved", "output_bits", "reads", "adcs"):  # fmt: skip
            assert a[key] == pytest.approx(r[key], rel=1e-6), key
        # float32 conductance sums: 1e-5 relative.
        assert a["energy_total_J"] == pytest.approx(r["energy_total_J"], rel=1e-5)
        assert a["latency_s"] == pytest.approx(r["latency_s"], rel=1e-9)


def test_energy_linear_in_inferences_and_rows_in_parallel():
    mapping = lambda k: xbar.Mapping(  # noqa: E731
        tile_rows=128, tile_cols=128, weight_bits=8, n_slices=8, parallel_rows=k
    )
    dac = xbar.BitSerialDAC(bits=9)
    one = shape_counts(256, 64, mapping=mapping(32), dac=dac, adc_bits=4.0, share=8)
    ten = shape_counts(
        256, 64, mapping=mapping(32), dac=dac, adc_bits=4.0, share=8, vectors=10.0
    )
    assert ten["energy_total_J"] == pytest.approx(10 * one["energy_total_J"], rel=1e-12)
    assert ten["latency_s"] == pytest.approx(10 * one["latency_s"], rel=1e-12)
    # Every row driven: halving the rows in parallel doubles conversions, ADC and
    # accumulation energy and read cycles; cells and drivers are unchanged.
    r = {k: shape_counts(256, 64, mapping=mapping(k), dac=dac, adc_bits=4.0, share=8)
         for k in (16, 32, 64, 128)}  # fmt: skip
    for k in (16, 32, 64):
        a, b = r[k], r[2 * k]
        assert a["adc_conversions"] == 2 * b["adc_conversions"]
        assert a["reads"] == 2 * b["reads"]
        assert a["energy_J"]["adc"] == pytest.approx(2 * b["energy_J"]["adc"])
        assert a["energy_J"]["cells"] == b["energy_J"]["cells"]
        assert a["energy_J"]["dac"] == b["energy_J"]["dac"]
    # More columns per ADC: fewer converters, the same conversions, longer
    # conversions in series (and smaller tiles, so shorter wires).
    s1 = shape_counts(256, 64, mapping=mapping(32), dac=dac, adc_bits=4.0, share=1)
    assert s1["adcs"] == 8 * one["adcs"]
    for part in ("adc", "accumulation", "cells", "dac"):
        assert s1["energy_J"][part] == one["energy_J"][part]
    assert s1["area_m2"]["adc"] == pytest.approx(8 * one["area_m2"]["adc"])
    assert one["latency_s"] > s1["latency_s"]


@pytest.mark.parametrize("rows", [32, 64])
def test_neurosim_vgg8_within_30_percent(rows):
    # DNN+NeuroSim V1.4 manual: VGG-8 at 22 nm, 11.25 / 19.88 TOPS/W with 32 / 64
    # rows in parallel. Model under NeuroSim's assumptions (docs/energy.md).
    r = validation.neurosim_vgg8(rows)
    published = validation.NEUROSIM_VGG8[rows][0]
    assert abs(r["tops_per_w"] / published - 1) < 0.30
    assert r["ops"] == pytest.approx(1.23e9, rel=0.01)  # NeuroSim's op count


def test_22nm_macros_within_2x():
    # One generic macro organisation for both (docs/energy.md), not fitted per case.
    r = validation.macro_22nm(parallel_rows=32)
    for tops_w, _ in validation.MACROS_22NM.values():
        assert 0.5 < r["tops_per_w"] / tops_w < 2.0


def test_bad_configurations_raise():
    with pytest.raises(ValueError, match="node_nm"):
        Technology(3.0)
    with pytest.raises(ValueError, match="node_nm"):
        EnergyModel(technology=Technology(180.0))
    with pytest.raises(ValueError, match="adc must be one of"):
        EnergyModel(adc="flash")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="parallel_rows"):
        xbar.Mapping(tile_rows=16, parallel_rows=0)
    with pytest.raises(ValueError, match="parallel_rows"):
        xbar.Mapping(tile_rows=16, parallel_rows=6)
    with pytest.raises(ValueError, match="share"):
        xbar.AnalogConfig(
            devices.Ideal(),
            mapping=xbar.Mapping(tile_rows=8, tile_cols=8),
            adc=xbar.ADC(bits=4, i_max=1e-5, share=3),
        )


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
    total = summary(rows)
    assert total["energy_total_J"] == pytest.approx(
        sum(r["energy_total_J"] for r in rows)
    )
    assert total["ops"] == 2 * (9 * 9 * 4 + 36 * 3)


def test_placement_report_carries_costs():
    from xbar.analysis.placement import Chip, place

    chip = Chip(tile_rows=128, tile_cols=128, tiles_per_core=16, cores=4)
    mapping = xbar.Mapping(tile_rows=128, tile_cols=128, weight_bits=8, n_slices=8)
    layers = [np.zeros((64, 300)), np.zeros((10, 64))]  # (out, in)
    p = place(layers, chip, mapping=mapping)
    dac = xbar.BitSerialDAC(bits=9)
    costs = [
        shape_counts(n_in, n_out, mapping=mapping, dac=dac, adc_bits=4.0, share=8,
                     row_activity=0.2)
        for n_in, n_out in ((300, 64), (64, 10))
    ]  # fmt: skip
    text = p.report(costs)
    total = sum(c["energy_total_J"] for c in costs)
    assert f"{total * 1e9:.4g} nJ per inference" in text
    for part in ("adc", "interconnect", "buffer", "control"):
        assert part in text
    with pytest.raises(ValueError, match="one dict per placed layer"):
        p.report(costs[:1])


def test_reprice_equals_counting_again(getkey):
    # Changing only the ADC resolution changes prices, not counts.
    layer = _layer("bit_serial")
    six = layer_counts(layer, X)
    four = layer_counts(layer.with_adc(xbar.ADC(bits=4, i_max=1e-05, share=2)), X)
    again = xbar.analysis.reprice(six, adc_bits=4)
    assert again["energy_J"] == pytest.approx(four["energy_J"], rel=1e-9)
    assert again["latency_s"] == pytest.approx(four["latency_s"], rel=1e-9)
