"""Spiking networks on crossbar tiles: neurons, plasticity realised as device
pulses, layers and networks, the time loop (one `lax.scan` over
`xbar.array.step`), input encodings, training (surrogate gradients, STDP
winner-take-all) and NIR interchange.

May import: `devices`, `xbar.array`, `xbar.circuits`, `xbar.periphery`,
`xbar.mapping`.
"""

from . import diehl_cook as diehl_cook, nir as nir, training as training
from .encoding import (
    delta_encode as delta_encode,
    latency_encode as latency_encode,
    rate_encode as rate_encode,
)
from .loop import (
    RunState as RunState,
    init_state as init_state,
    network_step as network_step,
    run as run,
)
from .metrics import neurobench_metrics as neurobench_metrics
from .network import (
    SpikingLayer as SpikingLayer,
    SpikingNetwork as SpikingNetwork,
    membrane_capacitance as membrane_capacitance,
)
from .neurons import (
    LIF as LIF,
    AdaptiveLIF as AdaptiveLIF,
    CubaLIF as CubaLIF,
    LIFState as LIFState,
)
from .plasticity import (
    AbstractPulses as AbstractPulses,
    AbstractRounding as AbstractRounding,
    BidirectionalPulses as BidirectionalPulses,
    DifferentialPulses as DifferentialPulses,
    NearestRounding as NearestRounding,
    PairSTDP as PairSTDP,
    SingleCellPulses as SingleCellPulses,
    STDPState as STDPState,
    StochasticRounding as StochasticRounding,
)
from .run_options import (
    AbstractReadSchedule as AbstractReadSchedule,
    AbstractRecord as AbstractRecord,
    EveryStep as EveryStep,
    LogSpacedReads as LogSpacedReads,
    ReadEvery as ReadEvery,
    ReadEveryStep as ReadEveryStep,
    SpikeCounts as SpikeCounts,
)
