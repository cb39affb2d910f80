"""What a mapped network costs: energy, latency and area counts, and placement
of its tiles on cores and chips.

May import: everything below it (`xbar.nn`, `xbar.mapping`, ...), never the reverse.
"""

from .energy import (
    AbstractADCEnergy as AbstractADCEnergy,
    EnergyModel as EnergyModel,
    NeuroSimSAR as NeuroSimSAR,
    WaldenADC as WaldenADC,
    layer_counts as layer_counts,
    network_counts as network_counts,
    programming_energy as programming_energy,
)
from .placement import Chip as Chip, Placement as Placement, place as place
