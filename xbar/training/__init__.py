"""Training: digital classifiers fitted with optax (the float reference that
analog layers are mapped from), hardware-aware training with the analog
forward in the loop (`train_hwa`; any equinox model: `train_hwa_model`), and
on-chip training through device pulses (`train_onchip`, the pulse rules and
the algorithms for asymmetric devices).

May import: everything below it (`xbar.nn` and its dependencies).
"""

from .classifier import (
    MLP as MLP,
    accuracy as accuracy,
    fit_classifier as fit_classifier,
    train_mlp as train_mlp,
)
from .hwa import (
    HWAResult as HWAResult,
    noise_scaled as noise_scaled,
    train_hwa as train_hwa,
)
from .hwa_model import (
    HWAModelResult as HWAModelResult,
    train_hwa_model as train_hwa_model,
    with_read_keys as with_read_keys,
)
from .onchip import (
    AbstractOnChipAlgorithm as AbstractOnChipAlgorithm,
    AnalogSGD as AnalogSGD,
    MixedPrecision as MixedPrecision,
    OnChipResult as OnChipResult,
    TikiTaka as TikiTaka,
    pulse_step as pulse_step,
    symmetry_point as symmetry_point,
    train_onchip as train_onchip,
)
from .pulses import (
    AbstractPulseRule as AbstractPulseRule,
    NeuroSimPulses as NeuroSimPulses,
    StochasticPulses as StochasticPulses,
)
