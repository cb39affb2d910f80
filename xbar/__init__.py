"""Crossbar arrays, their circuits and periphery, mapping, layers and sweeps."""

from .array import Crossbar as Crossbar, program_crossbar as program_crossbar, relax as relax, step as step
from .layers import (
    AnalogLinear as AnalogLinear,
    AnalogMLP as AnalogMLP,
    calibrate_adc as calibrate_adc,
)
from .mapping import (
    conductance_targets as conductance_targets,
    from_tiles as from_tiles,
    grid_shape as grid_shape,
    map_matrix as map_matrix,
    to_tiles as to_tiles,
    weight_scale as weight_scale,
)
from .periphery import ADC as ADC, DAC as DAC, quantize_signed as quantize_signed
from .solve import (
    AbstractCircuit as AbstractCircuit,
    IdealCircuit as IdealCircuit,
    current_stats as current_stats,
    ideal_currents as ideal_currents,
    sample_currents as sample_currents,
)
from .sweep import Sweep as Sweep, stack as stack
from . import nir_io as nir_io, spiking as spiking
from .neurons import AdaptiveLIF as AdaptiveLIF, LIF as LIF, LIFState as LIFState
from .plasticity import PairSTDP as PairSTDP, STDPState as STDPState
from .spiking import (
    SpikingLayer as SpikingLayer,
    SpikingNetwork as SpikingNetwork,
    rate_encode as rate_encode,
)
from .conv import AnalogConv2d as AnalogConv2d, calibrate_conv_adc as calibrate_conv_adc, im2col as im2col
from .network import AnalogNetwork as AnalogNetwork, digital_forward as digital_forward
from .energy import (
    EnergyModel as EnergyModel,
    layer_counts as layer_counts,
    network_counts as network_counts,
    programming_energy as programming_energy,
)
from .mapping import slice_layout as slice_layout, sliced_targets as sliced_targets
from .placement import Chip as Chip, Placement as Placement, place as place
from .write_verify import WriteVerifyResult as WriteVerifyResult, write_verify as write_verify
from .circuit import (
    Solution as Solution,
    Wires as Wires,
    solve_crossbar as solve_crossbar,
)
from .circuit_fast import relax_crossbar as relax_crossbar
from .circuit_tile import ExactCircuit as ExactCircuit, FastCircuit as FastCircuit
