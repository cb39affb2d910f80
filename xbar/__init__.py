"""Memristive-crossbar analog in-memory computing on JAX.

Subpackages, from the cells up (each imports only those listed before it,
besides `devices`):

- `xbar.circuits`: how column currents follow from cells and row voltages.
- `xbar.periphery`: DACs and ADCs.
- `xbar.array`: tiles of differential pairs and the one analog step.
- `xbar.mapping`: weights onto tiles, programming.
- `xbar.nn`: analog layers and networks.
- `xbar.spiking`: neurons, plasticity, the spiking time loop, NIR.
- `xbar.training`: digital and analog training.
- `xbar.analysis`: energy, latency, area, placement.
- `xbar.sweeps`: sweeps compiled once, results provenance.
"""

from . import (
    analysis as analysis,
    array as array,
    circuits as circuits,
    mapping as mapping,
    nn as nn,
    periphery as periphery,
    spiking as spiking,
    sweeps as sweeps,
    training as training,
)
from .analysis import (
    Chip as Chip,
    EnergyModel as EnergyModel,
    Placement as Placement,
    layer_counts as layer_counts,
    network_counts as network_counts,
    place as place,
    programming_energy as programming_energy,
)
from .array import (
    Crossbar as Crossbar,
    program_crossbar as program_crossbar,
    relax as relax,
    step as step,
)
from .circuits import (
    AbstractCircuit as AbstractCircuit,
    ExactCircuit as ExactCircuit,
    FastCircuit as FastCircuit,
    IdealCircuit as IdealCircuit,
    Solution as Solution,
    Wires as Wires,
    current_stats as current_stats,
    sample_currents as sample_currents,
    solve_crossbar as solve_crossbar,
    solve_lines as solve_lines,
)
from .mapping import (
    BalancedPair as BalancedPair,
    DifferentialPair as DifferentialPair,
    Mapping as Mapping,
    OneShot as OneShot,
    PerColumn as PerColumn,
    PerTensor as PerTensor,
    PerTile as PerTile,
    ReferenceColumn as ReferenceColumn,
    WriteVerify as WriteVerify,
    WriteVerifyResult as WriteVerifyResult,
    conductance_targets as conductance_targets,
    from_tiles as from_tiles,
    grid_shape as grid_shape,
    to_tiles as to_tiles,
    write_verify as write_verify,
)
from .nn import (
    AnalogConfig as AnalogConfig,
    AnalogConv2d as AnalogConv2d,
    AnalogLinear as AnalogLinear,
    AnalogNetwork as AnalogNetwork,
    GlobalCompensation as GlobalCompensation,
    NoCompensation as NoCompensation,
    PerColumnCompensation as PerColumnCompensation,
    calibrate_adc as calibrate_adc,
    convert as convert,
    digital_forward as digital_forward,
    im2col as im2col,
)
from .periphery import (
    ADC as ADC,
    DAC as DAC,
    AbsMaxScaling as AbsMaxScaling,
    BitSerialDAC as BitSerialDAC,
    FixedScaling as FixedScaling,
    PulseWidthDAC as PulseWidthDAC,
    TwoPhaseDAC as TwoPhaseDAC,
    quantize_signed as quantize_signed,
)
from .spiking import (
    LIF as LIF,
    AdaptiveLIF as AdaptiveLIF,
    CubaLIF as CubaLIF,
    LIFState as LIFState,
    PairSTDP as PairSTDP,
    SpikingLayer as SpikingLayer,
    SpikingNetwork as SpikingNetwork,
    STDPState as STDPState,
    delta_encode as delta_encode,
    latency_encode as latency_encode,
    neurobench_metrics as neurobench_metrics,
    rate_encode as rate_encode,
)
from .sweeps import (
    Grid as Grid,
    LatinHypercube as LatinHypercube,
    Random as Random,
    RayCluster as RayCluster,
    Sweep as Sweep,
    SweepSpec as SweepSpec,
    Zip as Zip,
    read_store as read_store,
    run_sweep as run_sweep,
    stack as stack,
)
