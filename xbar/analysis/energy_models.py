"""Per-event cost models behind the energy estimates: technology scaling,
ADC, DAC/driver, cell, buffer and interconnect costs, and `EnergyModel`,
which collects them.

Each constant carries its provenance (R: read in the source, D: derived,
A: assumption) and its source in `CONSTANTS`. The counting of events and
their pricing live in `xbar.analysis.energy`, which re-exports everything
here; see its docstring for the model as a whole.
"""

from __future__ import annotations

import abc
import dataclasses
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from devices.base import as_param, check_range, option

from .energy_constants import CONSTANTS, Technology, _c, survey_envelope_j


def _constant(name: str):
    """A non-negative array field defaulting to `CONSTANTS[name]`."""
    return eqx.field(converter=as_param, default=CONSTANTS[name][0])


def _check_constants(module, names) -> None:
    for name in names:
        check_range(name, getattr(module, name), 0.0)


def _f(x) -> float:
    return float(np.asarray(x))


class AbstractADCEnergy(eqx.Module):
    """Energy, time and area of the column converters' conversions."""

    @abc.abstractmethod
    def conversion_time(self, bits, tech: Technology | None = None) -> float:
        """Time (s) of one conversion at `bits` resolution."""

    @abc.abstractmethod
    def conversion_energy(self, bits, tech: Technology | None = None) -> float:
        """Energy (J) of one conversion at `bits` resolution (the part that does
        not depend on the column)."""

    @abc.abstractmethod
    def area(self, bits, tech: Technology | None = None) -> float:
        """Area (m^2) of one converter."""

    def energy(self, bits, n_conversions, column_terms, tech=None) -> float:
        """Energy (J) of `n_conversions` conversions; `column_terms()` gives
        the sum over them of `column_term` (called only by models whose power
        depends on the column)."""
        return n_conversions * self.conversion_energy(bits, tech)

    def column_term(self, g_col, v_read) -> jnp.ndarray:
        """Per-conversion column factor for column conductance `g_col` (S)
        read at `v_read` (V); 0 for models that do not depend on it."""
        return jnp.zeros_like(jnp.asarray(g_col, jnp.float32))


def _tech(tech) -> Technology:
    return Technology() if tech is None else tech


class _BlockADC(AbstractADCEnergy):
    """Converters built from comparator decisions (`e_comparator_22nm_j`),
    register bits and unit capacitors, scaled from 22 nm to the node."""

    e_comparator_22nm_j: Float[Array, ""] = _constant("e_comparator_22nm_j")
    e_register_bit_22nm_j: Float[Array, ""] = _constant("e_register_bit_22nm_j")
    c_unit_f: Float[Array, ""] = _constant("c_unit_f")
    t_clock_s: Float[Array, ""] = _constant("t_clock_s")

    def __check_init__(self):
        _check_constants(
            self,
            ("e_comparator_22nm_j", "e_register_bit_22nm_j", "c_unit_f", "t_clock_s"),
        )

    def _comp(self, tech):
        return _f(self.e_comparator_22nm_j) * tech.energy_scale(22.0)

    def _reg(self, tech):
        return _f(self.e_register_bit_22nm_j) * tech.energy_scale(22.0)

    def _a_comp(self, tech):
        return _c("a_comparator_22nm_m2") * tech.area_scale(22.0)

    def _a_reg(self, tech):
        return _c("a_register_bit_22nm_m2") * tech.area_scale(22.0)


class SARADC(_BlockADC):
    """Successive approximation: `bits` comparator decisions and register
    writes, and the binary-weighted capacitor DAC of `2^bits` unit capacitors
    switched once per conversion (`2^bits C_u V_dd^2`); `bits + 1` clock
    cycles (sample + one per bit)."""

    def conversion_energy(self, bits, tech=None):
        tech, b = _tech(tech), float(bits)
        return (
            b * (self._comp(tech) + self._reg(tech))
            + 2.0**b * _f(self.c_unit_f) * tech.vdd**2
        )

    def conversion_time(self, bits, tech=None):
        return (float(bits) + 1.0) * _f(self.t_clock_s)

    def area(self, bits, tech=None):
        tech, b = _tech(tech), float(bits)
        return self._a_comp(tech) + 2.0**b * _c("a_unit_cap_m2") + b * self._a_reg(tech)


class FlashADC(_BlockADC):
    """Flash: `2^bits - 1` comparators decide at once (NeuroSim's multilevel
    sense amplifier is one), a `bits`-bit encoder register; one clock cycle."""

    def conversion_energy(self, bits, tech=None):
        tech, b = _tech(tech), float(bits)
        return (2.0**b - 1.0) * self._comp(tech) + b * self._reg(tech)

    def conversion_time(self, bits, tech=None):
        return _f(self.t_clock_s)

    def area(self, bits, tech=None):
        tech, b = _tech(tech), float(bits)
        return (2.0**b - 1.0) * self._a_comp(tech) + b * self._a_reg(tech)


class RampADC(_BlockADC):
    """Single-slope (ramp): one comparator compares the column against a
    shared ramp for `2^bits` clock cycles while a `bits`-bit counter counts
    (two register bits toggle per count on average); the ramp generator,
    shared by many columns, is not counted."""

    def conversion_energy(self, bits, tech=None):
        tech, b = _tech(tech), float(bits)
        return 2.0**b * (self._comp(tech) + 2.0 * self._reg(tech))

    def conversion_time(self, bits, tech=None):
        return 2.0 ** float(bits) * _f(self.t_clock_s)

    def area(self, bits, tech=None):
        tech, b = _tech(tech), float(bits)
        return self._a_comp(tech) + b * self._a_reg(tech)


class SurveyADC(AbstractADCEnergy):
    """The Murmann survey's state-of-the-art envelope, `E_floor + k 4^bits`
    (ENOB taken = bits), at a fixed conversion time `t_adc_s`: the best
    published stand-alone converters (node-independent: the envelope spans
    all nodes)."""

    t_adc_s: Float[Array, ""] = _constant("t_adc_s")

    def conversion_energy(self, bits, tech=None):
        return float(survey_envelope_j(float(bits)))

    def conversion_time(self, bits, tech=None):
        return _f(self.t_adc_s)

    def area(self, bits, tech=None):
        tech = _tech(tech)
        return SARADC().area(bits, tech)


class NeuroSimSAR(AbstractADCEnergy):
    """NeuroSim's SAR ADC (DNN+NeuroSim V1.4 `SarADC.cpp`, 32 nm HP fit): power
    `(a bits + b) + c exp(-k log10(R_col 0.5 V / V_read))` W for
    `(bits + 1)` cycles, so the cost grows with resolution and column current
    (not scaled with the node: the fit is NeuroSim's 32 nm one)."""

    sar_w_per_bit: Float[Array, ""] = _constant("sar_w_per_bit")
    sar_w: Float[Array, ""] = _constant("sar_w")
    sar_column_w: Float[Array, ""] = _constant("sar_column_w")
    sar_column_k: Float[Array, ""] = _constant("sar_column_k")
    sar_cycle_s: Float[Array, ""] = _constant("sar_cycle_s")

    def __check_init__(self):
        _check_constants(self, [n for n in CONSTANTS if n.startswith("sar_")])

    def conversion_time(self, bits, tech=None):
        return (float(bits) + 1.0) * _f(self.sar_cycle_s)

    def conversion_energy(self, bits, tech=None):
        b = float(bits)
        return (_f(self.sar_w_per_bit) * b + _f(self.sar_w)) * self.conversion_time(b)

    def area(self, bits, tech=None):
        return SARADC().area(bits, _tech(tech))

    def energy(self, bits, n_conversions, column_terms, tech=None):
        static = n_conversions * self.conversion_energy(bits)
        return static + _f(self.sar_column_w) * column_terms() * self.conversion_time(
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

    adc_fom_j_per_step: Float[Array, ""] = _constant("adc_fom_j_per_step")
    t_adc_s: Float[Array, ""] = _constant("t_adc_s")

    def __check_init__(self):
        _check_constants(self, ("adc_fom_j_per_step", "t_adc_s"))

    def conversion_time(self, bits, tech=None):
        return _f(self.t_adc_s)

    def conversion_energy(self, bits, tech=None):
        return _f(self.adc_fom_j_per_step) * 2.0 ** float(bits)

    def area(self, bits, tech=None):
        return SARADC().area(bits, _tech(tech))


class AbstractInterconnect(eqx.Module):
    """How far a bit travels between the global buffer and a tile."""

    @abc.abstractmethod
    def distance_m(self, n_tiles: int, tile_side_m: float) -> float:
        """Mean wire length (m) from the buffer to a tile of a square array
        of `n_tiles` tiles of side `tile_side_m`."""


class HTree(AbstractInterconnect):
    """H-tree from the centre: root-to-leaf length of a square of side `L`,
    `L/2 + L/4 + ...` in x and in y, about `L` (`L (1 - 1/sqrt(n))`)."""

    def distance_m(self, n_tiles, tile_side_m):
        side = math.sqrt(max(n_tiles, 1)) * tile_side_m
        return side * (1.0 - 1.0 / math.sqrt(max(n_tiles, 1))) + tile_side_m / 2


class Bus(AbstractInterconnect):
    """A shared bus along one edge: the mean Manhattan distance to a tile of
    a square array, `L` (`L/2` along the bus plus `L/2` across)."""

    def distance_m(self, n_tiles, tile_side_m):
        return math.sqrt(max(n_tiles, 1)) * tile_side_m


class EnergyModel(eqx.Module):
    """Per-event costs: energies (J), times (s), capacitances (F), areas; the
    defaults and their sources are in `CONSTANTS`.

    Args:
        technology: the CMOS node (`Technology(node_nm=22.0)` default).
        adc: prices the converters: `SARADC()` (default), `FlashADC()`,
            `RampADC()`, `SurveyADC()` (Murmann envelope), `NeuroSimSAR()`,
            `WaldenADC()`.
        interconnect: `HTree()` (default) or `Bus()`.
        other fields: the constants of the same name in `CONSTANTS`.
    """

    technology: Technology = option("technology", Technology, Technology())
    adc: AbstractADCEnergy = option("adc", AbstractADCEnergy, SARADC())
    interconnect: AbstractInterconnect = option(
        "interconnect", AbstractInterconnect, HTree()
    )
    c_unit_f: Float[Array, ""] = _constant("c_unit_f")
    c_row_per_cell_f: Float[Array, ""] = _constant("c_row_per_cell_f")
    t_read_pulse_s: Float[Array, ""] = _constant("t_read_pulse_s")
    t_pulse_slot_s: Float[Array, ""] = _constant("t_pulse_slot_s")
    t_clock_s: Float[Array, ""] = _constant("t_clock_s")
    v_write_V: Float[Array, ""] = _constant("v_write_V")
    t_write_s: Float[Array, ""] = _constant("t_write_s")
    cell_area_f2: Float[Array, ""] = _constant("cell_area_f2")
    e_add_bit_45nm_j: Float[Array, ""] = _constant("e_add_bit_45nm_j")
    e_register_bit_22nm_j: Float[Array, ""] = _constant("e_register_bit_22nm_j")
    e_buffer_bit_45nm_j: Float[Array, ""] = _constant("e_buffer_bit_45nm_j")
    c_wire_f_per_m: Float[Array, ""] = _constant("c_wire_f_per_m")
    toggle_in: Float[Array, ""] = _constant("toggle_in")
    toggle_out: Float[Array, ""] = _constant("toggle_out")
    control_fraction: Float[Array, ""] = _constant("control_fraction")
    activation_bits: Float[Array, ""] = _constant("activation_bits")

    def __check_init__(self):
        names = [
            f.name
            for f in dataclasses.fields(self)
            if f.name not in ("technology", "adc", "interconnect")
        ]
        _check_constants(self, names)
        for name in ("toggle_in", "toggle_out", "control_fraction"):
            check_range(name, getattr(self, name), 0.0, 1.0)

    # per-event costs at the model's node ---------------------------------------
    @property
    def vdd(self) -> float:
        return self.technology.vdd

    def e_add_bit(self) -> float:
        return _f(self.e_add_bit_45nm_j) * self.technology.energy_scale(45.0)

    def e_register_bit(self) -> float:
        return _f(self.e_register_bit_22nm_j) * self.technology.energy_scale(22.0)

    def e_buffer_bit(self) -> float:
        return _f(self.e_buffer_bit_45nm_j) * self.technology.energy_scale(45.0)

    def e_dac(self, bits: float) -> float:
        """One multi-bit row DAC conversion (binary-weighted capacitive DAC),
        `2^bits C_u V_dd^2`, without the row line."""
        return 2.0 ** float(bits) * _f(self.c_unit_f) * self.vdd**2

    def e_row_line(self, cells: float, v_drive: float) -> float:
        """Charging a row line of `cells` cells to `v_drive` from `V_dd`."""
        return cells * _f(self.c_row_per_cell_f) * self.vdd * v_drive

    def a_register_bit(self) -> float:
        return _c("a_register_bit_22nm_m2") * self.technology.area_scale(22.0)

    def a_dac(self, bits: float) -> float:
        return (
            2.0 ** float(bits) * _c("a_unit_cap_m2")
            + float(bits) * self.a_register_bit()
        )

    def cell_area_m2(self) -> float:
        return _f(self.cell_area_f2) * self.technology.feature_m**2


def _area(c: dict, model: EnergyModel) -> dict:
    """Areas (m^2) of the layer's tiles: cells, ADCs, row drivers,
    accumulators, and an input/output buffer for two vectors."""
    tech = model.technology
    bits = c["adc_bits"]
    drv = model.a_dac(c["dac_bits"]) if c["dac_bits"] else model.a_register_bit()
    return {
        "cells": c["devices"] * model.cell_area_m2(),
        "adc": 0.0 if bits is None else c["n_adcs"] * model.adc.area(bits, tech),
        "dac": c["row_drivers"] * drv,
        "accumulation": c["n_adcs"] * c["acc_bits"] * model.a_register_bit(),
        "buffer": 2.0
        * (c["input_bits"] + c["output_bits"])
        / max(c["vectors"], 1.0)
        * _c("a_buffer_bit_22nm_m2")
        * tech.area_scale(22.0),
    }
