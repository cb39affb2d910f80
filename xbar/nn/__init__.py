"""Analog neural-network layers on crossbar tiles, networks, and conversion of
any equinox model.

Lives here: `AnalogConfig` (the hardware a layer runs on), the one analog
forward path (`layer.AbstractAnalogLayer`) with its final subclasses
`AnalogLinear` and `AnalogConv2d`, drift compensation options, ADC
calibration, `AnalogNetwork` (conv then linear layers, ReLU between) and
`convert` (swap an equinox model's `Linear`/`Conv` layers for analog ones).
May import: `devices`, `xbar.array`, `xbar.circuits`, `xbar.periphery`,
`xbar.mapping`.
"""

from .calibration import calibrate_adc as calibrate_adc
from .compensation import (
    AbstractDriftCompensation as AbstractDriftCompensation,
    GlobalCompensation as GlobalCompensation,
    NoCompensation as NoCompensation,
    PerColumnCompensation as PerColumnCompensation,
)
from .config import AnalogConfig as AnalogConfig
from .conv import AnalogConv2d as AnalogConv2d, im2col as im2col
from .convert import analog_layers as analog_layers, convert as convert
from .layer import AbstractAnalogLayer as AbstractAnalogLayer
from .linear import AnalogLinear as AnalogLinear
from .network import AnalogNetwork as AnalogNetwork, digital_forward as digital_forward
