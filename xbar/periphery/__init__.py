"""The array's edges: DACs that turn inputs into row voltages (amplitude,
pulse-width or bit-serial encodings), ADCs that turn column currents into
numbers, and the input scaling that maps a vector into the DAC's range.

May import: `devices` (validation helpers) and `xbar.circuits` (the product
precision) only.
"""

from .converters import (
    ADC as ADC,
    DAC as DAC,
    AbstractDAC as AbstractDAC,
    BitSerialDAC as BitSerialDAC,
    PulseWidthDAC as PulseWidthDAC,
    TwoPhaseDAC as TwoPhaseDAC,
    magnitude_levels as magnitude_levels,
    quantize_signed as quantize_signed,
    round_ste as round_ste,
)
from .input_scaling import (
    AbsMaxScaling as AbsMaxScaling,
    AbstractInputScaling as AbstractInputScaling,
    FixedScaling as FixedScaling,
)
