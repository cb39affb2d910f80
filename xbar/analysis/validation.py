"""Published workloads and macros the energy model is checked against.

Each case builds the counts of a published configuration from its shape and
stated activation statistics (`shape_counts`) under the assumptions of its
source, prices them with the default constants, and returns the model's
figures next to the published ones. Nothing here is fitted to the case; what
each case assumes is listed in `assumptions` and in docs/energy.md.
"""

from __future__ import annotations

import numpy as np

import devices
from devices.base import as_param
from xbar.analysis.energy import (
    EnergyModel,
    FlashADC,
    Technology,
    shape_counts,
    summary as _summary,
)
from xbar.mapping.schemes import Mapping, ReferenceColumn
from xbar.periphery.converters import BitSerialDAC

#: DNN+NeuroSim V1.4 manual, VGG-8 on CIFAR-10 at 22 nm (RRAM, 128 x 128
#: subarrays, 1 bit per cell, 8-bit weights and activations, 4-bit ADC shared
#: by 8 columns): rows read in parallel -> (TOPS/W, TOPS, chip area mm^2).
NEUROSIM_VGG8 = {32: (11.25, 6.25, 380.0), 64: (19.88, 8.16, 380.0)}

#: 22 nm RRAM compute-in-memory macros with 8-bit inputs and weights:
#: name -> (TOPS/W, source).
MACROS_22NM = {
    "isscc2021": (
        11.9,
        "C.-X. Xue et al., 'A 22nm 4Mb 8b-precision ReRAM computing-in-memory "
        "macro with 11.91 to 195.7 TOPS/W for tiny AI edge devices', ISSCC 2021",
    ),
    "jssc2023": (21.6, "22 nm RRAM CIM macro, IEEE JSSC 2023 (8b input, 8b weight)"),
}


def activation_bit_density(bits: int = 8, *, zero_fraction: float = 0.5) -> float:
    """Mean fraction of set bits of `bits`-bit unsigned activations: a fraction
    `zero_fraction` exactly zero (ReLU), the rest half-normal, quantized with
    the 99.9th percentile at full scale (fixed draw, seed 0)."""
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(200_000))
    full = np.percentile(x, 99.9)
    q = np.clip(np.round(x / full * (2**bits - 1)), 0, 2**bits - 1).astype(np.int64)
    ones = np.mean([(q >> b) & 1 for b in range(bits)])
    return float((1.0 - zero_fraction) * ones)


def weight_bit_density(bits: int = 8) -> float:
    """Mean fraction of set magnitude bits of Gaussian weights quantized to
    `bits` bits incl. sign with `max |w|` at full scale (fixed draw, seed 1)."""
    rng = np.random.default_rng(1)
    w = np.abs(rng.standard_normal(200_000))
    q = np.round(w / w.max() * (2 ** (bits - 1) - 1)).astype(np.int64)
    return float(np.mean([(q >> b) & 1 for b in range(bits - 1)]))


def vgg8_layers() -> list[tuple[str, int, int, int]]:
    """`(name, in_features, out_features, vectors per image)` of NeuroSim's
    VGG-8 for CIFAR-10 (3x3 convolutions with padding 1, 2x2 pooling after
    layers 2, 4 and 6, two fully connected layers): 1.23 G ops per image."""
    convs = [(3, 128, 32), (128, 128, 32), (128, 256, 16), (256, 256, 16),
             (256, 512, 8), (512, 512, 8)]  # fmt: skip
    out = [(f"conv{i + 1}", c_in * 9, c_out, s * s) for i, (c_in, c_out, s) in
           enumerate(convs)]  # fmt: skip
    return out + [("fc1", 8192, 1024, 1), ("fc2", 1024, 10, 1)]


def neurosim_vgg8(parallel_rows: int, model: EnergyModel | None = None) -> dict:
    """The model's figures for NeuroSim's VGG-8 configuration with
    `parallel_rows` rows read at once (see `assumptions` in the result)."""
    v_read = 0.55  # NeuroSim Param.cpp readVoltage at 22 nm
    g_on, g_off = 1.0 / 100e3, 1.0 / 1.7e6  # Param.cpp resistanceOn / Off
    p_w = weight_bit_density(8)
    p_in = activation_bit_density(8)
    if model is None:
        model = EnergyModel(
            technology=Technology(22.0), adc=FlashADC(), t_read_pulse_s=as_param(1e-9)
        )
    mapping = Mapping(
        tile_rows=128,
        tile_cols=128,
        cells=ReferenceColumn(),
        weight_bits=8,
        n_slices=8,
        parallel_rows=parallel_rows,
    )
    dac = BitSerialDAC(bits=9, v_read=v_read)  # 8 magnitude bits, one per cycle
    layers = vgg8_layers()
    tiles = sum(np.prod(mapping.grid(i, o)) for _, i, o, _ in layers)
    rows = [
        shape_counts(
            n_in,
            n_out,
            mapping=mapping,
            dac=dac,
            adc_bits=4.0,
            share=8,
            vectors=float(v),
            row_activity=p_in,
            g_cell_S=p_w * g_on + (1.0 - p_w) * g_off,
            model=model,
            chip_tiles=int(tiles),
        )
        for _, n_in, n_out, v in layers
    ]
    out = _summary(rows)
    out["layers"] = rows
    out["tiles"] = int(tiles)
    out["published"] = dict(
        zip(("tops_per_w", "tops", "area_mm2"), NEUROSIM_VGG8.get(parallel_rows, ()))
    )
    out["assumptions"] = {
        "activation_bit_density": p_in,
        "weight_bit_density": p_w,
        "v_read_V": v_read,
        "r_on_r_off_ohm": [100e3, 1.7e6],
        "read_window_s": float(np.asarray(model.t_read_pulse_s)),
        "adc": f"{type(model.adc).__name__}, 4 bits, 8 columns per ADC",
        "inputs": "8-bit unsigned, bit-serial (8 read cycles)",
        "weights": "8 bits (sign + 7) on 8 one-bit cells, reference column",
    }
    return out


def macro_22nm(
    *,
    parallel_rows: int = 16,
    adc_bits: float = 4.0,
    share: int = 8,
    model: EnergyModel | None = None,
) -> dict:
    """One 22 nm RRAM macro at macro level (array, drivers, ADCs, shift-add;
    no buffers, interconnect or control): 256 x 256 one-bit cells, 8-bit
    weights on 8 cells with a reference column, 8-bit bit-serial inputs,
    `parallel_rows` rows per read, a flash ADC of `adc_bits` bits shared by
    `share` columns, TaOx/HfOx cells (`rram_taox_hfox_wu2018` card's window),
    activations with the VGG-8 bit density. Returns `summary` plus the
    assumptions."""  # fmt: skip
    if model is None:
        model = EnergyModel(
            technology=Technology(22.0),
            adc=FlashADC(),
            t_read_pulse_s=as_param(1e-9),
            e_buffer_bit_45nm_j=as_param(0.0),
            c_wire_f_per_m=as_param(0.0),
            control_fraction=as_param(0.0),
        )
    card = devices.load_card("rram_taox_hfox_wu2018")["parameters"]
    g_min, g_max = card["g_min"]["value"], card["g_max"]["value"]
    p_w = weight_bit_density(8)
    mapping = Mapping(
        tile_rows=256, tile_cols=256, cells=ReferenceColumn(), weight_bits=8,
        n_slices=8, parallel_rows=parallel_rows,
    )  # fmt: skip
    dac = BitSerialDAC(bits=9, v_read=0.2)
    row = shape_counts(
        256, 256 // 8 * 1, mapping=mapping, dac=dac, adc_bits=adc_bits, share=share,
        row_activity=activation_bit_density(8),
        g_cell_S=p_w * g_max + (1 - p_w) * g_min, model=model,
    )  # fmt: skip
    out = _summary([row])
    out["assumptions"] = {
        "parallel_rows": parallel_rows, "adc_bits": adc_bits, "share": share,
        "level": "macro (no buffers, interconnect, control)",
    }  # fmt: skip
    return out
