"""What a mapped network costs: energy, latency and area counts, and placement
of its tiles on cores and chips.

May import: everything below it (`xbar.nn`, `xbar.mapping`, ...), never the reverse.
"""

from .energy import (
    SARADC as SARADC,
    AbstractADCEnergy as AbstractADCEnergy,
    AbstractInterconnect as AbstractInterconnect,
    Bus as Bus,
    EnergyModel as EnergyModel,
    FlashADC as FlashADC,
    HTree as HTree,
    NeuroSimSAR as NeuroSimSAR,
    RampADC as RampADC,
    SurveyADC as SurveyADC,
    Technology as Technology,
    WaldenADC as WaldenADC,
    layer_counts as layer_counts,
    network_counts as network_counts,
    price as price,
    programming_energy as programming_energy,
    reprice as reprice,
    shape_counts as shape_counts,
    summary as summary,
    survey_envelope_j as survey_envelope_j,
)
from .placement import Chip as Chip, Placement as Placement, place as place
