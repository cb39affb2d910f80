"""Weights onto tiles: tiling, the mapping options (cell scheme, bit slicing,
scale granularity, clipping) and how cells are programmed (one shot,
write-verify).

May import: `devices`, `xbar.array`, `xbar.circuits`.
"""

from .programming import (
    AbstractProgramming as AbstractProgramming,
    OneShot as OneShot,
    WriteVerify as WriteVerify,
)
from .schemes import (
    AbstractCellScheme as AbstractCellScheme,
    AbstractScale as AbstractScale,
    BalancedPair as BalancedPair,
    DifferentialPair as DifferentialPair,
    Mapping as Mapping,
    PerColumn as PerColumn,
    PerTensor as PerTensor,
    PerTile as PerTile,
    ReferenceColumn as ReferenceColumn,
)
from .tiling import (
    conductance_targets as conductance_targets,
    from_tiles as from_tiles,
    grid_shape as grid_shape,
    to_tiles as to_tiles,
)
from .write_verify import (
    WriteVerifyResult as WriteVerifyResult,
    write_verify as write_verify,
)
