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

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from xbar.circuits.ideal import PRECISION
from xbar.nn.layer import AbstractAnalogLayer

from .energy_constants import (  # noqa: F401 (re-exported)
    CONSTANTS,
    NODE_RANGE_NM,
    NODE_VDD,
    Technology,
    _c,
    survey_envelope_j,
)
from .energy_models import (  # noqa: F401 (re-exported: the public cost models)
    SARADC,
    AbstractADCEnergy,
    AbstractInterconnect,
    Bus,
    EnergyModel,
    FlashADC,
    HTree,
    NeuroSimSAR,
    RampADC,
    SurveyADC,
    WaldenADC,
    _area,
    _f,
)

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
