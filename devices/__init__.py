"""Device models of memristive cells and their literature cards."""

from .base import (
    BOLTZMANN_EV_PER_K as BOLTZMANN_EV_PER_K,
    ROOM_TEMPERATURE_K as ROOM_TEMPERATURE_K,
    AbstractDevice as AbstractDevice,
    AbstractDeviceState as AbstractDeviceState,
    VolatileState as VolatileState,
    arrhenius_factor as arrhenius_factor,
)
from .cached import (
    CachedRead as CachedRead,
    CachedReadState as CachedReadState,
    cache_reads as cache_reads,
)
from .cards import (
    available_cards as available_cards,
    card_values as card_values,
    load_card as load_card,
)
from .compact import (
    VTEAM as VTEAM,
    AbstractCompactModel as AbstractCompactModel,
    LinearIonDrift as LinearIonDrift,
    loop_area as loop_area,
    simulate as simulate,
)
from .fit import (
    check_table as check_table,
    cycle_table as cycle_table,
    fit_pulse_response as fit_pulse_response,
    fit_to_card as fit_to_card,
    pulse_response as pulse_response,
    read_table as read_table,
    simulate_protocol as simulate_protocol,
    table_statistics as table_statistics,
    validate_fit as validate_fit,
    write_card as write_card,
    write_table as write_table,
)
from .ideal import Ideal as Ideal, IdealState as IdealState
from .ionic import (
    IonicState as IonicState,
    IonicSynapse as IonicSynapse,
    linear_step_response as linear_step_response,
)
from .iv import AbstractIV as AbstractIV, LinearIV as LinearIV, SinhIV as SinhIV
from .memristor import RRAM as RRAM, RRAMState as RRAMState
from .nonlinear import (
    AbstractNLDevice as AbstractNLDevice,
    nl_curve as nl_curve,
    nl_curve_inverse as nl_curve_inverse,
    nl_pulse_update as nl_pulse_update,
    nl_step as nl_step,
)
from .pcm import (
    PCM as PCM,
    PCMState as PCMState,
    drift_compensation as drift_compensation,
    pcm_nu_stats as pcm_nu_stats,
    pcm_prog_sigma as pcm_prog_sigma,
    pcm_q_s as pcm_q_s,
)
from .perovskite import (
    Perovskite as Perovskite,
    PerovskiteState as PerovskiteState,
    paired_pulse_facilitation as paired_pulse_facilitation,
)
