"""Everything about how a layer runs on hardware, except its weights."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, Float

from devices.base import AbstractDevice, as_param, check_range, option
from xbar.circuits.ideal import AbstractCircuit, IdealCircuit
from xbar.mapping.programming import AbstractProgramming, OneShot
from xbar.mapping.schemes import Mapping
from xbar.nn.compensation import AbstractDriftCompensation, NoCompensation
from xbar.periphery.converters import ADC, DAC, AbstractDAC
from xbar.periphery.input_scaling import AbsMaxScaling, AbstractInputScaling


class AnalogConfig(eqx.Module):
    """The hardware a layer is mapped onto (aihwkit's `rpu_config`).

    Args:
        device: the cell model.
        mapping: tile size, cell scheme, bit slicing, scale, clipping
            (default `Mapping()`: 256 x 256 differential pairs, analog weights).
        dac: row drivers (default `DAC()`: 8-bit amplitude, 0.2 V).
        adc: column converters (default ideal: no clipping, no quantization;
            `xbar.calibrate_adc` sets a full scale from data).
        input_scaling: per-vector input full scale (default `AbsMaxScaling()`).
        circuit: the tiles' circuit (default `IdealCircuit()`, no wires).
        programming: `OneShot()` (default) or `WriteVerify(...)`.
        drift_compensation: `NoCompensation()` (default),
            `GlobalCompensation()` or `PerColumnCompensation()`.
        t_read_s: time since programming at which the layer is read (s), >= 0.
        bound_management: maximum re-reads with halved input scale of the
            examples whose ADC inputs clipped (0: off), integer >= 0.
    """

    device: AbstractDevice
    mapping: Mapping = option("mapping", Mapping, Mapping())
    dac: AbstractDAC = option("dac", AbstractDAC, DAC())
    adc: ADC = option("adc", ADC, ADC(bits=None, i_max=None))
    input_scaling: AbstractInputScaling = option(
        "input_scaling", AbstractInputScaling, AbsMaxScaling()
    )
    circuit: AbstractCircuit = option("circuit", AbstractCircuit, IdealCircuit())
    programming: AbstractProgramming = option(
        "programming", AbstractProgramming, OneShot()
    )
    drift_compensation: AbstractDriftCompensation = option(
        "drift_compensation", AbstractDriftCompensation, NoCompensation()
    )
    t_read_s: Float[Array, ""] = eqx.field(converter=as_param, default=1.0)
    bound_management: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_range("t_read_s", self.t_read_s, 0.0, unit="s")
        bm = self.bound_management
        if not isinstance(bm, int) or bm < 0:
            raise ValueError(
                f"bound_management must be an integer >= 0; got bound_management={bm!r}"
            )
        share, cols = self.adc.share, self.mapping.tile_cols
        if cols % share:
            raise ValueError(
                f"ADC share (columns per converter) must divide the tile's columns "
                f"(mapping.tile_cols={cols}); got share={share}"
            )
        if not isinstance(self.device, AbstractDevice):
            raise ValueError(
                "device must be a device model (a devices.AbstractDevice such as "
                f"devices.RRAM.from_card()); got {type(self.device).__name__}"
            )
