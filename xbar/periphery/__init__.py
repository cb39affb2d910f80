"""The array's edges: DACs that turn inputs into row voltages, ADCs that turn
column currents into numbers.

May import: `devices` (validation helpers) only.
"""

from .converters import (
    ADC as ADC,
    DAC as DAC,
    quantize_signed as quantize_signed,
    round_ste as round_ste,
)
