"""Device models of memristive cells and their literature cards."""

from .base import (
    AbstractDevice as AbstractDevice,
    AbstractDeviceState as AbstractDeviceState,
)
from .cards import (
    available_cards as available_cards,
    card_values as card_values,
    load_card as load_card,
)
from .ideal import Ideal as Ideal, IdealState as IdealState
from .memristor import (
    RRAM as RRAM,
    RRAMState as RRAMState,
    nl_curve as nl_curve,
    nl_curve_inverse as nl_curve_inverse,
)
