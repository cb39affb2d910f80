"""Energy, latency and area of analog layers and networks, built from counts.

Every estimate is an event count (taken from the simulated forward path, or
from a layer's shape and activation statistics) times a per-event cost; the
costs come from small models, each constant with its provenance (R: read in
the source, D: derived, A: assumption) and source in `CONSTANTS`:

- technology (`Technology`): dynamic energy scales as `C V_dd^2` with
  `C ~ F` (feature size) and the node's nominal `V_dd` (NeuroSim's
  `Technology.cpp` table), areas as `F^2`; every constant is quoted at a
  reference node and scaled to the model's node explicitly; nodes outside
  7-130 nm raise `ValueError`;
- row drivers: a multi-bit DAC conversion (a binary-weighted capacitive DAC,
  `2^bits C_u V_dd^2`) plus charging the row line (`C_row V_dd V_drive`,
  `C_row` = cells on the row x capacitance per cell); a 1-bit driver pays the
  line and a latch;
- cells: `V^2 G t` over every cell of every driven row, `t` the sensing window;
- ADCs (`SARADC`, `FlashADC`, `RampADC`, from comparator decisions, capacitor
  switching and counter/register bits; `SurveyADC`, the state-of-the-art
  envelope of the Murmann ADC survey; `NeuroSimSAR` and `WaldenADC`): energy,
  conversion time and area vs bits and node; `ADC.share` columns share one
  converter, which converts them in series (latency);
- digital: each conversion is shift-added into an accumulator of `acc_bits`
  bits (an add and a register write per bit); partial sums of the row tiles
  are added by an adder tree; one activation and one bias add per output;
- chip level: input/output buffers (SRAM read/write per bit), the
  interconnect between the global buffer and the tiles (H-tree or bus; wire
  capacitance per length x distance x toggle rate x `V_dd^2`), control (a
  fraction of the digital energy).

Row parallelism (`Mapping.parallel_rows`) enters through the counts: a tile
is read in row groups, each group's columns converted on their own, so
conversions, read cycles and latency scale with the number of groups while
cell and driver energy do not.

Latency of one matrix-vector product: every tile works in parallel; per
read (DAC cycle x row group) a sensing window and `share` conversions in
series, then the adder tree over row tiles. Layers run one after another.
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
from xbar.circuits.ideal import PRECISION
from xbar.nn.layer import AbstractAnalogLayer

#: Nominal supply voltage (V) by node (nm): DNN+NeuroSim V1.4
#: `Inference_pytorch/NeuroSIM/Technology.cpp` (`vdd` of each node).
NODE_VDD = {
    130: 1.3,
    90: 1.2,
    65: 1.1,
    45: 1.0,
    32: 0.9,
    22: 0.85,
    14: 0.8,
    10: 0.75,
    7: 0.7,
}
NODE_RANGE_NM = (7.0, 130.0)

_HOROWITZ = (
    "M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
    "ISSCC 2014, doi 10.1109/ISSCC.2014.6757323"
)
_NEUROSIM = "DNN+NeuroSim V1.4 (github.com/neurosim/DNN_NeuroSim_V1.4)"
_MURMANN = (
    "B. Murmann, 'ADC Performance Survey 1997-2025' "
    "(github.com/bmurmann/ADC-survey, xls/ADCsurvey_latest.xlsx, ISSCC and VLSI "
    "sheets; envelope as in plots/energy_plot.ipynb)"
)

#: name: (value, provenance, source). Constants quoted at a node say so in
#: their name (`_22nm`, `_45nm`) and are scaled by `Technology`.
CONSTANTS = {
    # -- ADC figures kept from the previous model ------------------------------
    "adc_fom_j_per_step": (
        10e-15,
        "A",
        "Walden FoM P / (2^ENOB f_s) of a SAR ADC; 10 fJ/conversion-step is within "
        "the range of SAR designs in " + _MURMANN + "; ENOB taken = bits",
    ),
    "t_adc_s": (
        10e-9,
        "A",
        "one conversion at 100 MS/s (SAR, same survey range); WaldenADC and "
        "SurveyADC only",
    ),
    "sar_w_per_bit": (
        1.0157e-6,
        "R",
        "NeuroSim SAR ADC power slope per log2(levels), 32 nm HP: "
        + _NEUROSIM
        + " Inference_pytorch/NeuroSIM/SarADC.cpp, GetColumnPower",
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
    # -- ADC building blocks (SARADC, FlashADC, RampADC) ---------------------------
    "e_comparator_22nm_j": (
        1.8939e-15,
        "D",
        "one comparator decision at 22 nm: NeuroSim's multilevel current sense "
        "amplifier (a flash ADC of levelOutput - 1 comparators), 1.8939 uW per "
        "level at 22 nm (" + _NEUROSIM + " MultilevelSenseAmp.cpp, GetColumnPower) "
        "over its shortest column sensing time, 1 ns (CalculatePower)",
    ),
    "c_unit_f": (
        0.5e-15,
        "A",
        "unit capacitor of a binary-weighted capacitive DAC (SAR C-DAC, row DAC); "
        "0.5 fF is the order of matching-limited metal-oxide-metal unit "
        "capacitors in low-resolution SAR ADCs; node-independent",
    ),
    "t_clock_s": (
        1e-9,
        "R",
        "1 GHz clock of the periphery and digital side: NeuroSim Param.cpp clkFreq",
    ),
    "a_comparator_22nm_m2": (
        10e-12,
        "A",
        "comparator / sense amplifier with offset trimming, 10 um^2 at 22 nm",
    ),
    "a_unit_cap_m2": (
        0.5e-12,
        "A",
        "area of one 0.5 fF MOM unit capacitor incl. spacing (~1 fF/um^2)",
    ),
    "a_register_bit_22nm_m2": (
        1.0e-12,
        "A",
        "one flip-flop (register bit) incl. its gates, 1 um^2 at 22 nm",
    ),
    # -- Murmann survey envelope (SurveyADC, reference line) ---------------------
    "survey_e_floor_j": (
        267.2e-15,
        "D",
        "survey envelope floor: mean of the three smallest P/f_snyq of all "
        "designs in " + _MURMANN,
    ),
    "survey_k_thermal_j": (
        1.4456e-19,
        "D",
        "survey envelope thermal slope: mean of the three smallest "
        "(P/f_snyq) / 4^ENOB, ENOB = (SNDR - 1.76) / 6.02, same data",
    ),
    # -- row drivers ---------------------------------------------------------------
    "c_row_per_cell_f": (
        0.2e-15,
        "A",
        "row-line capacitance per cell (wire ~0.2 fF/um over a 1T1R pitch of "
        "12 F plus the access device's gate/junction), 0.2 fF; node-independent",
    ),
    # -- cells ---------------------------------------------------------------------
    "t_read_pulse_s": (
        5e-9,
        "R",
        "read pulse width, NeuroSim V3.0 Cell.cpp default (docs/devices.md)",
    ),
    "t_pulse_slot_s": (1e-9, "A", "one time slot of a pulse-width-encoded input"),
    "v_write_V": (3.2, "R", "LTP pulse of card rram_ag_asi_jo2010 (NeuroSim table)"),
    "t_write_s": (3e-4, "R", "LTP pulse width of card rram_ag_asi_jo2010"),
    "cell_area_f2": (
        48.0,
        "R",
        "1T1R cell, 12 F wide x 4 F high: NeuroSim Param.cpp "
        "widthInFeatureSize1T1R = 12, heightInFeatureSize1T1R = 4",
    ),
    # -- digital -------------------------------------------------------------------
    "e_add_bit_45nm_j": (
        0.1e-12 / 32,
        "D",
        "one bit of an integer adder at 45 nm: 32-bit add 0.1 pJ in " + _HOROWITZ,
    ),
    "e_register_bit_22nm_j": (
        1.5e-15,
        "A",
        "one flip-flop write at 22 nm: ~4 fF switched at V_dd = 0.85 V with "
        "activity 0.5 (NeuroSim's DFF switching activity gamma = 0.5, Param.cpp)",
    ),
    "e_buffer_bit_45nm_j": (
        10e-12 / 64,
        "D",
        "one bit read or written in an on-chip SRAM buffer at 45 nm: 8 KB SRAM, "
        "64-bit read 10 pJ in " + _HOROWITZ,
    ),
    "a_buffer_bit_22nm_m2": (
        0.1e-12,
        "D",
        "SRAM bit incl. periphery at 22 nm: 160 F^2 cell (NeuroSim Param.cpp "
        "SRAM cell size above 22 nm) x 1.3 array efficiency",
    ),
    "c_wire_f_per_m": (
        0.2e-9,
        "A",
        "on-chip global wire capacitance 0.2 fF/um (ITRS-era intermediate metal); "
        "node-independent",
    ),
    "toggle_in": (
        0.18,
        "R",
        "bit toggle rate of activations on the interconnect: NeuroSim Param.cpp "
        "inputtoggle (VGG-8 / CIFAR-10)",
    ),
    "toggle_out": (0.5, "R", "output bit toggle rate: NeuroSim Param.cpp outputtoggle"),
    "control_fraction": (
        0.05,
        "A",
        "control (sequencing, decoders, clock) as a fraction of the digital and "
        "chip-level energy; NeuroSim's control switching activity epsilon = 0.05",
    ),
    "activation_bits": (
        8.0,
        "A",
        "bits of an activation written to the buffer and moved between tiles",
    ),
}


class Technology(eqx.Module):
    """A CMOS node: `V_dd` from NeuroSim's table (interpolated in log node
    between listed nodes), and explicit scale factors from a reference node.

    Args:
        node_nm: feature size (nm), in [7, 130].
    """

    node_nm: float = eqx.field(static=True, default=22.0)

    def __check_init__(self):
        lo, hi = NODE_RANGE_NM
        v = self.node_nm
        if not isinstance(v, int | float) or not lo <= float(v) <= hi:
            raise ValueError(
                f"node_nm must be a number in [{lo:g}, {hi:g}] nm (the nodes the "
                f"energy models cover); got node_nm={v!r}"
            )

    @staticmethod
    def vdd_at(node_nm: float) -> float:
        nodes = sorted(NODE_VDD)
        return float(
            np.interp(np.log(node_nm), np.log(nodes), [NODE_VDD[n] for n in nodes])
        )

    @property
    def vdd(self) -> float:
        return self.vdd_at(float(self.node_nm))

    @property
    def feature_m(self) -> float:
        return float(self.node_nm) * 1e-9

    def energy_scale(self, ref_nm: float) -> float:
        """Dynamic energy at this node over that at `ref_nm`: `C V_dd^2`, C ~ F."""
        return (float(self.node_nm) / ref_nm) * (self.vdd / self.vdd_at(ref_nm)) ** 2

    def area_scale(self, ref_nm: float) -> float:
        return (float(self.node_nm) / ref_nm) ** 2


def _c(name: str) -> float:
    return float(CONSTANTS[name][0])


def survey_envelope_j(enob) -> np.ndarray:  # 0-d for a scalar ENOB
    """Energy per conversion (J) of the Murmann survey's state-of-the-art
    envelope at `enob` effective bits: `E_floor + k 4^ENOB`."""
    enob = np.asarray(enob, np.float64)
    return np.asarray(_c("survey_e_floor_j") + _c("survey_k_thermal_j") * 4.0**enob)


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


#: Count keys that add up over vectors, layers and inferences.
ADDITIVE = (
    "vectors",
    "macs",
    "dac_conversions",
    "driver_pulses",
    "cell_drive_S",
    "adc_conversions",
    "adc_column_terms",
    "accumulations",
    "slice_adds",
    "tree_adds",
    "outputs",
    "input_bits",
    "input_bits_moved",
    "psum_bits_moved",
    "output_bits",
)


def _log2ceil(n: int) -> int:
    return int(math.ceil(math.log2(n))) if n > 1 else 0


def _structure(dac_bits: float, n_cycles: int, adc_bits: float, groups: int):
    """Width of a column's accumulator: the ADC code widened by the shift-add
    of the DAC cycles and the sum of the row groups (the weight slices are
    combined once per output, see `slice_adds`)."""
    shift_dac = (int(dac_bits) - 2) if n_cycles > 1 else 0
    return int(adc_bits) + shift_dac + _log2ceil(groups) + 1


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


def price(counts: dict, model: EnergyModel | None = None) -> dict:
    """Energies (J), latency (s) and areas (m^2) of a dict of counts (from
    `layer_counts`, `network_counts` or `shape_counts`). Adds
    `energy_J` (parts `dac`, `cells`, `adc`, `accumulation`, `adder_tree`,
    `activation`, `buffer`, `interconnect`, `control`), `energy_total_J`,
    `latency_s`, `area_m2` (parts) and `area_total_m2`, `ops` (2 per MAC),
    `tops_per_w`."""
    model = EnergyModel() if model is None else model
    c = dict(counts)
    tech = model.technology
    v_read = c["v_read_V"]
    window = (
        _f(model.t_read_pulse_s)
        if c["window_slots"] is None
        else c["window_slots"] * _f(model.t_pulse_slot_s)
    )
    drives = c["dac_conversions"] + c["driver_pulses"]
    e_dac = (
        c["dac_conversions"] * model.e_dac(c["dac_bits"])
        + drives * model.e_row_line(c["row_cells"], v_read)
        + c["driver_pulses"] * model.e_register_bit()
    )
    e_cells = c["cell_drive_S"] * v_read**2 * window
    if c["adc_bits"] is None:  # ideal converter: no ADC modelled
        e_adc, t_conv = 0.0, 0.0
    else:
        e_adc = float(
            model.adc.energy(
                c["adc_bits"], c["adc_conversions"], lambda: c["adc_column_terms"], tech
            )
        )
        t_conv = float(model.adc.conversion_time(c["adc_bits"], tech))
    add, reg = model.e_add_bit(), model.e_register_bit()
    acc, full = c["acc_bits"], c["psum_bits"]
    act_bits = _f(model.activation_bits)
    tree_bits = full + _log2ceil(c["tiles_r"])
    e_acc = c["accumulations"] * acc * (add + reg) + c["slice_adds"] * full * (
        add + reg
    )
    e_tree = c["tree_adds"] * tree_bits * add
    e_act = c["outputs"] * (act_bits + tree_bits) * add  # ReLU compare + bias add
    e_buf = (c["input_bits"] + c["output_bits"]) * model.e_buffer_bit()
    area = _area(c, model)
    tiles = c["tiles_r"] * c["tiles_c"]
    tile_side = math.sqrt(sum(area.values()) / tiles)
    dist = model.interconnect.distance_m(c["chip_tiles"], tile_side)
    per_bit_m = _f(model.c_wire_f_per_m) * model.vdd**2
    # inputs: one trip from the buffer to the layer's tiles, then along its
    # tile columns; partial sums: from each tile row to the layer's adder
    # tree, half the span of its tile rows; outputs: one trip back.
    e_ic = per_bit_m * (
        c["input_bits_moved"]
        * _f(model.toggle_in)
        * (dist + (c["tiles_c"] - 1) * tile_side)
        + c["psum_bits_moved"] * _f(model.toggle_out) * c["tiles_r"] * tile_side / 2
        + c["output_bits"] * _f(model.toggle_out) * dist
    )
    e_ctrl = _f(model.control_fraction) * (e_acc + e_tree + e_act + e_buf + e_ic)
    energy = {
        "dac": float(e_dac),
        "cells": float(e_cells),
        "adc": float(e_adc),
        "accumulation": float(e_acc),
        "adder_tree": float(e_tree),
        "activation": float(e_act),
        "buffer": float(e_buf),
        "interconnect": float(e_ic),
        "control": float(e_ctrl),
    }
    t_clk = _f(model.t_clock_s)
    per_vector = (
        c["reads"] * (window + c["adc_serial"] * t_conv)
        + (_log2ceil(c["tiles_r"]) + 1) * t_clk
    )
    total = sum(energy.values())
    ops = 2.0 * c["macs"]
    c.update(
        energy_J=energy,
        energy_total_J=float(total),
        latency_s=float(per_vector * c["vectors"]),
        area_m2=area,
        area_total_m2=float(sum(area.values())),
        ops=ops,
        tops_per_w=float(ops / total / 1e12) if total > 0 else float("inf"),
    )
    return c


def _drive(layer: AbstractAnalogLayer, x):
    """Per-read row drive: `(reads, *batch, tr, R)` fraction of v_read^2 t_window
    seen by each row (0 for an idle row) and the row-active mask; reads are
    DAC cycles x row groups."""
    u = layer.scaled_inputs(x)
    frac = layer.grouped(layer.dac.drive_energy_fraction(u))
    return frac, layer.grouped(layer.dac.planes(u)) != 0


def _row_conductance(layer: AbstractAnalogLayer):
    g_p, _, g_n, _ = layer.crossbar.read_stats(layer.t_read_s)
    return g_p, g_n


@eqx.filter_jit
def _sums(layer: AbstractAnalogLayer, x):
    """Sum of drive x row conductance, driven rows, busy tile-row reads."""
    drive, active = _drive(layer, x)  # (reads, n, tr, R)
    g_p, g_n = _row_conductance(layer)
    g_row = jnp.sum(g_p + g_n, axis=(1, 3))  # (tr, R): conductance on each row
    busy = jnp.any(active, axis=-1)  # (reads, n, tr)
    return jnp.sum(drive * g_row[None, None]), jnp.sum(active), busy


@eqx.filter_jit
def _column_terms(layer: AbstractAnalogLayer, x, adc: AbstractADCEnergy):
    """Sum over conversions (busy tile rows x used columns x reads) of the
    model's column term, with each column's conductance on its driven rows."""
    _, active = _drive(layer, x)  # (reads, n, tr, R)
    g_p, g_n = _row_conductance(layer)
    g_col = jnp.einsum(
        "cnar,abrj->cnabj", active.astype(jnp.float32), g_p + g_n, precision=PRECISION
    )
    valid = jnp.asarray(layer.adc_valid_columns())  # (tc, used)
    g_col = g_col[..., : valid.shape[-1]]
    busy = jnp.any(active, axis=-1)[..., None, None]  # (c, n, tr, 1, 1)
    term = adc.column_term(g_col, layer.dac.v_read)
    return jnp.sum(jnp.where(busy & valid[None, None, None], term, 0.0))


def _input_bits(dac) -> float:
    bits = getattr(dac, "bits", None)
    return 8.0 if bits is None else float(np.asarray(bits))


def _common(layer_shape, mapping, dac, adc_bits, share, model: EnergyModel) -> dict:
    """Counts fixed by the layer's structure (per input vector)."""
    n_in, n_out, tr, tc, rows, cols, groups = layer_shape
    dev = mapping.cells.devices_per_cell
    used_tile = mapping.used_columns
    n_adc_tile = math.ceil(used_tile / share)
    conv_bits = _input_bits(dac) if dac.conversions_per_drive > 0 else 0.0
    acc = _structure(_input_bits(dac), dac.n_cycles, adc_bits or 0.0, groups)
    full = acc + mapping.bits_per_slice * (mapping.n_slices - 1)
    act_bits = _f(model.activation_bits)
    in_bits = n_in * _input_bits(dac)
    return {
        "vectors": 1.0,
        "macs": float(n_in * n_out),
        "dac_bits": conv_bits,
        "adc_bits": adc_bits,
        "v_read_V": float(np.asarray(dac.v_read)),
        "window_slots": None
        if dac.window_slots() is None
        else float(np.asarray(dac.window_slots())),
        "row_cells": float(cols * dev),
        "tile_cells": float(rows * cols * dev),
        "tiles_r": tr,
        "tiles_c": tc,
        "chip_tiles": tr * tc,
        "cycles": dac.n_cycles,
        "row_groups": groups,
        "reads": dac.n_cycles * groups,
        "adc_serial": math.ceil(used_tile / n_adc_tile) if adc_bits is not None else 0,
        "acc_bits": acc,
        "psum_bits": full,
        "slice_adds": float(tr * n_out * (mapping.n_slices - 1)),
        "tree_adds": float((tr - 1) * n_out),
        "outputs": float(n_out),
        "input_bits": float(in_bits),
        "input_bits_moved": float(in_bits),
        "psum_bits_moved": float(tr * n_out * full) if tr > 1 else 0.0,
        "output_bits": float(n_out * act_bits),
        "devices": tr * tc * rows * cols * dev,
        "n_adcs": tr * tc * n_adc_tile,
        "row_drivers": tr * tc * rows,
    }


def _layer_raw(layer: AbstractAnalogLayer, x, model: EnergyModel) -> dict:
    """Counts of `layer` per input vector, mean over the vectors `x`."""
    x = jnp.asarray(x, jnp.float32).reshape(-1, layer.in_features)
    n = x.shape[0]
    tr, tc = layer.grid
    rows, cols = layer.crossbar.tile_shape
    adc_bits = None
    if layer.adc.i_max is not None:
        adc_bits = 0.0 if layer.adc.bits is None else float(np.asarray(layer.adc.bits))
    shape = (
        layer.in_features,
        layer.out_features,
        tr,
        tc,
        rows,
        cols,
        layer.row_groups,
    )
    c = _common(shape, layer.mapping, layer.dac, adc_bits, layer.adc.share, model)
    drive_g, n_active, busy = _sums(layer, x)
    valid = layer.adc_valid_columns()  # (tc, used)
    used = float(np.sum(valid))  # converted columns of a tile row
    driven = float(n_active) * tc / n  # row drives, every tile of a tile row
    dac_conv = driven * layer.dac.conversions_per_drive
    adc_conv = float(jnp.sum(busy)) * used / n
    terms = 0.0
    if adc_bits is not None and isinstance(model.adc, NeuroSimSAR):
        terms = float(_column_terms(layer, x, model.adc)) / n
    c.update(
        dac_conversions=float(dac_conv),
        driver_pulses=float(driven - dac_conv),
        cell_drive_S=float(drive_g) / n,
        adc_conversions=adc_conv,
        adc_column_terms=terms,
        accumulations=adc_conv,
    )
    return c


def _legacy(c: dict) -> dict:
    """Keys of the previous counts kept for callers."""
    c["digital_adds"] = c["accumulations"] + c["outputs"]
    c["adc_conversions_in_series"] = c["adc_serial"]
    c["adcs"] = c["n_adcs"]
    return c


def layer_counts(
    layer: AbstractAnalogLayer, x, model: EnergyModel | None = None
) -> dict:
    """Event counts, energies (J), latency (s) and areas (m^2) of `layer` on
    input vectors `x` (`(batch, in_features)`); every count and energy is the
    mean per input vector. See `price` for the energy parts; counts include
    `dac_conversions`, `driver_pulses`, `adc_conversions`, `accumulations`,
    `cycles` (DAC cycles), `reads` (cycles x row groups), `input_bits`,
    `input_bits_moved`, `psum_bits_moved`, `output_bits`."""
    model = EnergyModel() if model is None else model
    return _legacy(price(_layer_raw(layer, x, model), model))


def shape_counts(
    n_in: int,
    n_out: int,
    *,
    mapping,
    dac,
    adc_bits: float | int | None,
    share: int = 1,
    vectors: float = 1.0,
    row_activity: float = 1.0,
    drive_fraction: float = 1.0,
    g_cell_S: float = 0.0,
    model: EnergyModel | None = None,
    chip_tiles: int | None = None,
) -> dict:
    """The counts of a layer from its shape and activation statistics alone
    (no simulation), priced: for `vectors` input vectors of `n_in` values of
    which a row is driven in a DAC cycle with probability `row_activity`
    (independently), at a mean drive fraction `drive_fraction` of
    `v_read^2 t`, on cells of mean conductance `g_cell_S` (both devices of a
    pair counted). A tile row's row group is busy (converts) unless all its
    rows are idle. Equals `layer_counts` where the statistics are exact
    (every row driven: `row_activity=1`)."""
    model = EnergyModel() if model is None else model
    tr, tc = mapping.grid(n_in, n_out)
    rows, cols = mapping.tile_rows, mapping.tile_cols
    groups = mapping.row_groups(min(rows, n_in))
    shape = (n_in, n_out, tr, tc, rows, cols, groups)
    c = _common(shape, mapping, dac, adc_bits, share, model)
    p = float(row_activity)
    cycles = dac.n_cycles
    valid = mapping.valid_columns(tc, n_out)
    used = float(np.sum(valid))
    k = mapping.parallel_rows or rows
    busy = 0.0  # expected busy (tile row, group) pairs per DAC cycle
    for a in range(tr):
        r_a = min(rows, n_in - a * rows)
        for g in range(groups):
            n_g = max(0, min(k, r_a - g * k))
            busy += 1.0 - (1.0 - p) ** n_g if n_g else 0.0
    driven = n_in * p * cycles * tc
    dac_conv = driven * dac.conversions_per_drive
    adc_conv = busy * cycles * used
    c.update(
        dac_conversions=dac_conv,
        driver_pulses=driven - dac_conv,
        cell_drive_S=n_in
        * p
        * cycles
        * drive_fraction
        * g_cell_S
        * c["row_cells"]
        * tc,
        adc_conversions=adc_conv,
        adc_column_terms=0.0,
        accumulations=adc_conv,
    )
    for key in ADDITIVE:
        c[key] *= vectors
    if chip_tiles is not None:
        c["chip_tiles"] = chip_tiles
    return _legacy(price(c, model))


def reprice(
    counts: dict,
    model: EnergyModel | None = None,
    *,
    adc_bits: float | int | None = None,
) -> dict:
    """`counts` priced again (with `model`, or with ADCs of `adc_bits` bits: the
    conversions are the same, the accumulators as much wider or narrower)."""
    c = dict(counts)
    if adc_bits is not None and c["adc_bits"] is not None:
        d = int(adc_bits) - int(c["adc_bits"])
        c.update(
            adc_bits=float(adc_bits), acc_bits=c["acc_bits"] + d,
            psum_bits=c["psum_bits"] + d,
        )  # fmt: skip
        c["psum_bits_moved"] = (
            c["tiles_r"] * c["outputs"] * c["psum_bits"] if c["tiles_r"] > 1 else 0.0
        )
    return _legacy(price(c, EnergyModel() if model is None else model))


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
    The interconnect distance is that of the whole network's tiles."""
    model = EnergyModel() if model is None else model
    raws = []
    x = jnp.asarray(x, jnp.float32)
    for i, (layer, v) in enumerate(net.layer_inputs(x)):
        if layer is None:
            break
        vectors = layer.input_vectors(v)
        per_example = math.prod(vectors.shape[1:-1])
        c = _layer_raw(layer, vectors.reshape(-1, layer.in_features), model)
        for k in ADDITIVE:
            c[k] *= per_example
        c["layer"] = i
        raws.append(c)
    tiles = sum(c["tiles_r"] * c["tiles_c"] for c in raws)
    out = []
    for c in raws:
        c["chip_tiles"] = tiles
        out.append(_legacy(price(c, model)))
    return out


def summary(rows: list[dict]) -> dict:
    """Totals of per-layer counts (`network_counts`, `shape_counts`): energy per
    inference and its parts (J), latency with layers one after another (s),
    area (m^2), ops, TOPS/W, and TOPS with the layers pipelined (the slowest
    layer sets the rate)."""
    energy = {k: sum(r["energy_J"][k] for r in rows) for k in rows[0]["energy_J"]}
    area = {k: sum(r["area_m2"][k] for r in rows) for k in rows[0]["area_m2"]}
    total = sum(energy.values())
    ops = sum(r["ops"] for r in rows)
    slowest = max(r["latency_s"] for r in rows)
    return {
        "energy_J": energy,
        "energy_total_J": total,
        "latency_s": sum(r["latency_s"] for r in rows),
        "area_m2": area,
        "area_total_m2": sum(area.values()),
        "ops": ops,
        "adc_conversions": sum(r["adc_conversions"] for r in rows),
        "tops_per_w": ops / total / 1e12,
        "tops_pipelined": ops / slowest / 1e12,
    }
