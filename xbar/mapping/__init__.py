"""Weights onto tiles: tiling, weight-to-conductance schemes, scaling, and how
cells are programmed (one shot, write-verify).

May import: `devices`, `xbar.array`, `xbar.circuits`.
"""

from .tiling import (
    conductance_targets as conductance_targets,
    from_tiles as from_tiles,
    grid_shape as grid_shape,
    map_matrix as map_matrix,
    slice_layout as slice_layout,
    sliced_targets as sliced_targets,
    to_tiles as to_tiles,
    weight_scale as weight_scale,
)
from .write_verify import (
    WriteVerifyResult as WriteVerifyResult,
    write_verify as write_verify,
)
