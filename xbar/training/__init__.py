"""Training: digital classifiers fitted with optax (the float reference that
analog layers are mapped from).

May import: everything below it (`xbar.nn` and its dependencies).
"""

from .classifier import (
    MLP as MLP,
    accuracy as accuracy,
    fit_classifier as fit_classifier,
    train_mlp as train_mlp,
)
