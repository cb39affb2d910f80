"""Circuit models: how column currents follow from cells and row voltages.

Lives here: the ideal circuit and the read-noise statistics of its currents
(`ideal`), the wires and the tridiagonal line operators of the nodal
equations (`lines`: `Wires`), the exact nodal solve with wire resistance,
sneak paths and non-linear cells (`nodal`: `solve_crossbar`, its `Solution`
and `RESULTS` codes), a fixed number of line-relaxation sweeps (`line_relaxation`:
`solve_lines`), and the two as tile circuits a crossbar can hold (`tile`).
The methods are described in `docs/methods.md`.
May import: `devices` only.
"""

from .ideal import (
    PRECISION as PRECISION,
    AbstractCircuit as AbstractCircuit,
    IdealCircuit as IdealCircuit,
    current_stats as current_stats,
    safe_sqrt as safe_sqrt,
    sample_currents as sample_currents,
    tile_mvm as tile_mvm,
)
from .line_relaxation import solve_lines as solve_lines
from .lines import Wires as Wires
from .nodal import (
    RESULTS as RESULTS,
    Solution as Solution,
    solve_crossbar as solve_crossbar,
)
from .tile import ExactCircuit as ExactCircuit, FastCircuit as FastCircuit
