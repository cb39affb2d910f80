"""Analog neural-network layers on crossbar tiles, and whole networks.

May import: `devices`, `xbar.array`, `xbar.circuits`, `xbar.periphery`,
`xbar.mapping`.
"""

from .conv import (
    AnalogConv2d as AnalogConv2d,
    calibrate_conv_adc as calibrate_conv_adc,
    im2col as im2col,
)
from .linear import (
    AnalogLinear as AnalogLinear,
    AnalogMLP as AnalogMLP,
    calibrate_adc as calibrate_adc,
)
from .network import AnalogNetwork as AnalogNetwork, digital_forward as digital_forward
