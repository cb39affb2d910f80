"""Circuit models: how column currents follow from cells and row voltages.

Lives here: the ideal circuit and the read-noise statistics of its currents
(`ideal`), the exact nodal solve with wire resistance, sneak paths and
non-linear cells (`nodal`), line relaxation (`line_relaxation`), and the two
as tile circuits a crossbar can hold (`tile`).
May import: `devices` only.
"""

from .ideal import (
    PRECISION as PRECISION,
    AbstractCircuit as AbstractCircuit,
    IdealCircuit as IdealCircuit,
    current_stats as current_stats,
    ideal_currents as ideal_currents,
    safe_sqrt as safe_sqrt,
    sample_currents as sample_currents,
    tile_mvm as tile_mvm,
)
from .line_relaxation import relax_crossbar as relax_crossbar
from .nodal import (
    Solution as Solution,
    Wires as Wires,
    solve_crossbar as solve_crossbar,
)
from .tile import ExactCircuit as ExactCircuit, FastCircuit as FastCircuit
