"""Arrays of cells: a grid of tiles of differential pairs, and the one analog step.

Lives here: `Crossbar` (device parameters, the G+ and G- states shaped
`(tiles_r, tiles_c, rows, cols)`, its circuit), `step` (DAC -> row voltages
-> column currents), `relax` and `program_crossbar`.
May import: `devices`, `xbar.circuits`, `xbar.periphery`.
"""

from .crossbar import (
    Crossbar as Crossbar,
    program_crossbar as program_crossbar,
    relax as relax,
    step as step,
)
