"""Training: digital classifiers fitted with optax (the float reference that
analog layers are mapped from), hardware-aware training with the analog
forward in the loop (`train_hwa`), and on-chip training through device pulses
(`train_onchip`, the pulse rules and the algorithms for asymmetric devices).

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
