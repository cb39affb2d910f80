"""Energy, latency and area estimates of analog layers, built from counts.

Every estimate is a count times a per-event constant:

- DAC conversions: one per driven row per tile and cycle (a zero input drives
  no row); bit-serial inputs use 1-bit row drivers, one pulse per set bit;
- cell reads: `V^2 G t` summed over every cell of every driven row (both cells
  of a differential pair; padding cells on a driven row conduct too);
- ADC conversions: one per used column per tile and cycle, skipped for a tile
  whose rows are all idle in that cycle. Energy per conversion by default from
  NeuroSim's SAR ADC model (DNN+NeuroSim V1.4 `SarADC.cpp`, 32 nm HP fit):
  power `(a bits + b) + c (R_col 0.5 V / V_read)^(-k / ln 10)` for
  `(bits + 1)` cycles of 1 ns, `R_col` the parallel resistance of the cells on
  the column's driven rows (both cells of a differential pair), so the cost
  grows with resolution and with the column current; or
  from the Walden figure of merit (`adc=WaldenADC()`), `FoM * 2^bits` at a
  fixed conversion time;
- digital accumulation: one add per conversion (shift-add of slices and
  cycles, and the sum over row tiles) plus one per output for the bias;
- programming: write-verify pulses, `V_w^2 G t_w` each.

Latency of one MVM: every tile works in parallel; per cycle a read pulse and
`share` conversions in series (one ADC per `share` columns), each `(bits + 1)`
SAR cycles (NeuroSim) or `t_adc_s` (Walden). Layers run one after another.

The constants are defaults with their provenance (R: read in the source, D:
derived, A: assumption), listed in `CONSTANTS`; every one is a field of
`EnergyModel` so a study can replace or sweep it.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from devices.base import as_param, check_range, option
from xbar.circuits.ideal import PRECISION
from xbar.nn.layer import AbstractAnalogLayer

CONSTANTS = {
    "adc_fom_j_per_step": (
        10e-15,
        "A",
        "Walden FoM P / (2^ENOB f_s) of a SAR ADC; 10 fJ/conversion-step is within "
        "the range of SAR designs in B. Murmann, 'ADC Performance Survey "
        "1997-2024' (github.com/bmurmann/ADC-survey); ENOB taken = bits",
    ),
    "t_adc_s": (
        10e-9,
        "A",
        "one conversion at 100 MS/s (SAR, same survey range); WaldenADC only",
    ),
    "sar_w_per_bit": (
        1.0157e-6,
        "R",
        "NeuroSim SAR ADC power slope per log2(levels), 32 nm HP: DNN+NeuroSim V1.4 "
        "Inference_pytorch/NeuroSIM/SarADC.cpp, GetColumnPower",
    ),
    "sar_w": (7.6286e-6, "R", "NeuroSim SAR ADC power offset, 32 nm HP (same source)"),
    "sar_column_w": (
        0.083709,
        "R",
        "NeuroSim SAR ADC column-resistance term coefficient, 32 nm HP (same "
        "source): + c exp(-k log10(R_col 0.5 V / V_read)) W",
    ),
    "sar_column_k": (2.313, "R", "exponent k of that term, 32 nm HP (same source)"),
    "sar_cycle_s": (
        1e-9,
        "R",
        "NeuroSim SAR ADC: (log2(levels) + 1) cycles of 1 ns per conversion "
        "(SarADC.cpp, CalculateLatency and GetColumnPower)",
    ),
    "e_dac_j": (
        50e-15,
        "A",
        "one multi-bit row-driver conversion incl. charging the row line; assumption",
    ),
    "e_driver_1bit_j": (5e-15, "A", "one 1-bit row pulse (bit-serial); assumption"),
    "e_add_j": (
        0.1e-12,
        "R",
        "32-bit integer add, 45 nm: M. Horowitz, 'Computing's energy problem (and "
        "what we can do about it)', ISSCC 2014, doi 10.1109/ISSCC.2014.6757323",
    ),
    "t_read_pulse_s": (
        5e-9,
        "R",
        "read pulse width, NeuroSim V3.0 Cell.cpp default (docs/devices.md)",
    ),
    "t_pulse_slot_s": (1e-9, "A", "one time slot of a pulse-width-encoded input"),
    "v_write_V": (3.2, "R", "LTP pulse of card rram_ag_asi_jo2010 (NeuroSim table)"),
    "t_write_s": (3e-4, "R", "LTP pulse width of card rram_ag_asi_jo2010"),
    "cell_area_m2": (
        12 * (32e-9) ** 2,
        "A",
        "1T1R cell of 12 F^2 at F = 32 nm (NeuroSim's 32 nm node); assumption",
    ),
    "adc_area_m2": (1000e-12, "A", "one SAR ADC, 1000 um^2; assumption"),
}


def _constant(name: str):
    """A non-negative array field defaulting to `CONSTANTS[name]`."""
    return eqx.field(converter=as_param, default=CONSTANTS[name][0])


def _check_constants(module, names) -> None:
    for name in names:
        check_range(name, getattr(module, name), 0.0)


class AbstractADCEnergy(eqx.Module):
    """Energy and time of the column converters' conversions."""

    @abc.abstractmethod
    def conversion_time(self, bits) -> jnp.ndarray:
        """Time (s) of one conversion at `bits` resolution."""

    @abc.abstractmethod
    def energy(self, bits, n_conversions, column_terms) -> jnp.ndarray:
        """Energy (J) of `n_conversions` conversions at `bits` resolution;
        `column_terms()` gives the sum over them of `column_term` (called only
        by models whose power depends on the column)."""

    def column_term(self, g_col, v_read) -> jnp.ndarray:
        """Per-conversion column factor for column conductance `g_col` (S)
        read at `v_read` (V); 0 for models that do not depend on it."""
        return jnp.zeros_like(jnp.asarray(g_col, jnp.float32))


class NeuroSimSAR(AbstractADCEnergy):
    """NeuroSim's SAR ADC (DNN+NeuroSim V1.4 `SarADC.cpp`, 32 nm HP fit): power
    `(a bits + b) + c exp(-k log10(R_col 0.5 V / V_read))` W for
    `(bits + 1)` cycles, so the cost grows with resolution and column current."""

    sar_w_per_bit: jnp.ndarray = _constant("sar_w_per_bit")
    sar_w: jnp.ndarray = _constant("sar_w")
    sar_column_w: jnp.ndarray = _constant("sar_column_w")
    sar_column_k: jnp.ndarray = _constant("sar_column_k")
    sar_cycle_s: jnp.ndarray = _constant("sar_cycle_s")

    def __check_init__(self):
        _check_constants(self, [n for n in CONSTANTS if n.startswith("sar_")])

    def conversion_time(self, bits):
        return (jnp.asarray(bits, jnp.float32) + 1.0) * self.sar_cycle_s

    def energy(self, bits, n_conversions, column_terms):
        bits = jnp.asarray(bits, jnp.float32)
        static = n_conversions * (self.sar_w_per_bit * bits + self.sar_w)
        return (static + self.sar_column_w * column_terms()) * self.conversion_time(
            bits
        )

    def column_term(self, g_col, v_read):
        x = jnp.asarray(g_col, jnp.float32) * v_read / 0.5  # 1 / R_eff
        pos = x > 0
        return jnp.where(
            pos, jnp.exp(self.sar_column_k * jnp.log10(jnp.where(pos, x, 1.0))), 0.0
        )


class WaldenADC(AbstractADCEnergy):
    """Walden figure of merit: `FoM 2^bits` per conversion at a fixed
    conversion time `t_adc_s`."""

    adc_fom_j_per_step: jnp.ndarray = _constant("adc_fom_j_per_step")
    t_adc_s: jnp.ndarray = _constant("t_adc_s")

    def __check_init__(self):
        _check_constants(self, ("adc_fom_j_per_step", "t_adc_s"))

    def conversion_time(self, bits):
        return self.t_adc_s

    def energy(self, bits, n_conversions, column_terms):
        return (
            n_conversions
            * self.adc_fom_j_per_step
            * 2.0 ** jnp.asarray(bits, jnp.float32)
        )


_ADC_FIELDS = ("sar_", "adc_fom_j_per_step", "t_adc_s")


class EnergyModel(eqx.Module):
    """Per-event energies (J), times (s) and areas (m^2); defaults in `CONSTANTS`.

    `adc` prices the converters: `NeuroSimSAR()` (default; depends on bits
    and on the column's conductance) or `WaldenADC()` (figure of merit).
    """

    e_dac_j: jnp.ndarray = _constant("e_dac_j")
    e_driver_1bit_j: jnp.ndarray = _constant("e_driver_1bit_j")
    e_add_j: jnp.ndarray = _constant("e_add_j")
    t_read_pulse_s: jnp.ndarray = _constant("t_read_pulse_s")
    t_pulse_slot_s: jnp.ndarray = _constant("t_pulse_slot_s")
    v_write_V: jnp.ndarray = _constant("v_write_V")
    t_write_s: jnp.ndarray = _constant("t_write_s")
    cell_area_m2: jnp.ndarray = _constant("cell_area_m2")
    adc_area_m2: jnp.ndarray = _constant("adc_area_m2")
    adc: AbstractADCEnergy = option("adc", AbstractADCEnergy, NeuroSimSAR())

    def __check_init__(self):
        _check_constants(self, [n for n in CONSTANTS if not n.startswith(_ADC_FIELDS)])


def _drive(layer: AbstractAnalogLayer, x):
    """Per-cycle row drive: `(cycles, *batch, tr, R)` fraction of v_read^2 t_window
    seen by each row (0 for an idle row) and the row-active mask."""
    u = layer.scaled_inputs(x)
    return layer.dac.drive_energy_fraction(u), layer.dac.planes(u) != 0


@eqx.filter_jit
def _sums(layer: AbstractAnalogLayer, x):
    """Sum of drive x row conductance, driven rows, busy tile-row cycles."""
    drive, active = _drive(layer, x)  # (c, n, tr, R)
    g_p, _, g_n, _ = layer.crossbar.read_stats(layer.t_read_s)
    g_row = jnp.sum(g_p + g_n, axis=(1, 3))  # (tr, R): conductance on each row
    busy = jnp.any(active, axis=-1)  # (c, n, tr)
    return jnp.sum(drive * g_row[None, None]), jnp.sum(active), jnp.sum(busy)


@eqx.filter_jit
def _column_terms(layer: AbstractAnalogLayer, x, adc: AbstractADCEnergy):
    """Sum over conversions (busy tile rows x used columns x cycles) of the
    NeuroSim column term, with each column's conductance on its driven rows."""
    _, active = _drive(layer, x)  # (c, n, tr, R)
    g_p, _, g_n, _ = layer.crossbar.read_stats(layer.t_read_s)
    g_col = jnp.einsum(
        "cnar,abrj->cnabj", active.astype(jnp.float32), g_p + g_n, precision=PRECISION
    )
    valid = jnp.asarray(layer.adc_valid_columns())  # (tc, used)
    g_col = g_col[..., : valid.shape[-1]]
    busy = jnp.any(active, axis=-1)[..., None, None]  # (c, n, tr, 1, 1)
    term = adc.column_term(g_col, layer.dac.v_read)
    return jnp.sum(jnp.where(busy & valid[None, None, None], term, 0.0))


def layer_counts(
    layer: AbstractAnalogLayer, x, model: EnergyModel | None = None
) -> dict:
    """Event counts, energies (J) and latency (s) of `layer` on input vectors `x`.

    `x` is `(batch, in_features)`; every count and energy is the mean per
    input vector. Returns a dict of floats: `dac_conversions`,
    `driver_pulses`, `adc_conversions`, `digital_adds`, `energy_J` (the parts
    `dac`, `cells`, `adc`, `digital`, which add up to `energy_total_J`),
    `latency_s`, `devices`, `adcs`, `area_m2`.
    """
    model = EnergyModel() if model is None else model
    x = jnp.asarray(x, jnp.float32).reshape(-1, layer.in_features)
    n = x.shape[0]
    dac = layer.dac
    tr, tc = layer.grid
    slots = dac.window_slots()
    t_window = model.t_read_pulse_s if slots is None else slots * model.t_pulse_slot_s
    drive_g, n_active, n_busy = _sums(layer, x)
    e_cells = drive_g * dac.v_read**2 * t_window / n
    driven = float(n_active * tc / n)  # row drives, every tile of a tile row
    dac_conv = driven * dac.conversions_per_drive
    pulses = driven - dac_conv  # 1-bit row drivers
    e_dac = dac_conv * model.e_dac_j + pulses * model.e_driver_1bit_j
    used = int(np.sum(layer.adc_valid_columns()))  # converted columns of a tile row
    adc_conv = float(n_busy * used / n)
    adds = adc_conv + layer.out_features
    bits = layer.adc.bits if layer.adc.bits is not None else 0.0
    if layer.adc.i_max is None:  # ideal converter: no ADC modelled
        e_adc = 0.0
    else:
        e_adc = float(
            model.adc.energy(
                bits, adc_conv, lambda: float(_column_terms(layer, x, model.adc)) / n
            )
        )
    e_digital = adds * model.e_add_j

    share = layer.adc.share
    cols_per_tile = used / tc
    n_adc_tile = math.ceil(cols_per_tile / share)
    conv_serial = math.ceil(cols_per_tile / n_adc_tile) if n_adc_tile else 0
    cycles = dac.n_cycles
    t_conv = 0.0 if layer.adc.i_max is None else float(model.adc.conversion_time(bits))
    latency = cycles * (t_window + conv_serial * t_conv)
    n_dev = layer.devices
    n_adcs = tr * tc * n_adc_tile
    area = n_dev * model.cell_area_m2 + n_adcs * model.adc_area_m2
    energy = {
        "dac": float(e_dac),
        "cells": float(e_cells),
        "adc": float(e_adc),
        "digital": float(e_digital),
    }
    return {
        "dac_conversions": float(dac_conv),
        "driver_pulses": float(pulses),
        "adc_conversions": adc_conv,
        "digital_adds": float(adds),
        "cycles": cycles,
        "adc_conversions_in_series": conv_serial,
        "energy_J": energy,
        "energy_total_J": sum(energy.values()),
        "latency_s": float(latency),
        "devices": n_dev,
        "adcs": n_adcs,
        "area_m2": float(area),
    }


def programming_energy(result, model: EnergyModel | None = None) -> float:
    """Energy (J) of a write-verify run: pulses x `V_w^2 G t_w`, G the final
    conductance of each cell (the cell's conductance during its pulses varies;
    this uses the end point)."""
    model = EnergyModel() if model is None else model
    g = result.state.g
    return float(
        jnp.sum(result.pulses.astype(jnp.float32) * g)
        * model.v_write_V**2
        * model.t_write_s
    )


def network_counts(net, x, model: EnergyModel | None = None) -> list[dict]:
    """`layer_counts` for each layer of an `AnalogNetwork`, on the activations
    it sees, per input example: a convolution's per-patch counts times its
    patches per image (patches one after another on one copy of the kernel).
    """
    out = []
    x = jnp.asarray(x, jnp.float32)
    for i, (layer, v) in enumerate(net.layer_inputs(x)):
        if layer is None:
            break
        vectors = layer.input_vectors(v)
        per_example = math.prod(vectors.shape[1:-1])
        c = layer_counts(layer, vectors.reshape(-1, layer.in_features), model)
        for k in (
            "dac_conversions",
            "driver_pulses",
            "adc_conversions",
            "digital_adds",
        ):
            c[k] *= per_example
        c["energy_J"] = {k: e * per_example for k, e in c["energy_J"].items()}
        c["energy_total_J"] *= per_example
        c["latency_s"] *= per_example
        c["layer"] = i
        out.append(c)
    return out
