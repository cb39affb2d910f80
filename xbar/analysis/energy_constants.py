"""Constants of the energy models, each with its provenance (R: read in the
source, D: derived, A: assumption) and source, and the CMOS technology
scaling (`Technology`) that carries a constant quoted at one node to another.
Re-exported by `xbar.analysis.energy`."""

from __future__ import annotations

import equinox as eqx
import numpy as np

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
