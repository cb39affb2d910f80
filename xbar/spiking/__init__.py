"""Spiking networks on crossbar tiles: neurons, plasticity realised as device
pulses, the time loop (one `lax.scan` over `xbar.array.step`), training
(surrogate gradients, STDP winner-take-all) and NIR interchange.

May import: `devices`, `xbar.array`, `xbar.circuits`, `xbar.periphery`,
`xbar.mapping`.
"""

from . import nir as nir, training as training
from .network import (
    RunState as RunState,
    SpikingLayer as SpikingLayer,
    SpikingNetwork as SpikingNetwork,
    base_lif as base_lif,
    init_state as init_state,
    membrane_capacitance as membrane_capacitance,
    network_step as network_step,
    rate_encode as rate_encode,
    run as run,
)
from .neurons import LIF as LIF, AdaptiveLIF as AdaptiveLIF, LIFState as LIFState
from .plasticity import PairSTDP as PairSTDP, STDPState as STDPState
