"""Digital training of the reference networks that experiments map onto tiles."""

from __future__ import annotations

from typing import TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray


class MLP(eqx.Module):
    """A floating-point MLP with ReLU between layers (the digital reference)."""

    layers: tuple[eqx.nn.Linear, ...]

    def __init__(self, sizes: list[int], *, key: PRNGKeyArray):
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list >= 2 positive layer widths; got {sizes}")
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)
        )

    def __call__(self, x: Array) -> Array:
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)

    def params(self) -> list[tuple[Array, Array | None]]:
        """`[(weight (out, in), bias), ...]`, what `AnalogMLP.from_weights` takes."""
        return [(lay.weight, lay.bias) for lay in self.layers]


def accuracy(logits: ArrayLike, labels: ArrayLike) -> Array:
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    sizes: list[int],
    *,
    key: PRNGKeyArray,
    epochs: int = 30,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
) -> MLP:
    """Train an MLP with AdamW on cross-entropy; the epoch loop is one `lax.scan`."""
    import optax

    k_init, k_shuffle = jax.random.split(key)
    return fit_classifier(
        MLP(sizes, key=k_init),
        x,
        y,
        key=k_shuffle,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optax.adamw(learning_rate, weight_decay=weight_decay),
    )


Model = TypeVar("Model", bound=eqx.Module)


def fit_classifier(
    model: Model,
    x: ArrayLike,
    y: ArrayLike,
    *,
    key: PRNGKeyArray,
    epochs: int,
    batch_size: int,
    optimizer,
) -> Model:
    """Train any equinox classifier (one example in, logits out) with an optax
    optimizer on cross-entropy, shuffled minibatches drawn with `key`; the
    epoch loop is one `lax.scan` under one `jax.jit`."""
    import optax

    params, static = eqx.partition(model, eqx.is_array)
    opt_state = optimizer.init(params)
    x, y = jnp.asarray(x), jnp.asarray(y)
    n_batches = len(y) // batch_size

    def loss_fn(p, xb, yb):
        m = eqx.combine(p, static)
        logits = jax.vmap(m)(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def batch_step(carry, idx):
        p, s = carry
        g = jax.grad(loss_fn)(p, x[idx], y[idx])
        updates, s = optimizer.update(g, s, p)
        return (optax.apply_updates(p, updates), s), None

    @jax.jit
    def run(p, s, k):
        def epoch(carry, ke):
            perm = jax.random.permutation(ke, len(y))[: n_batches * batch_size]
            carry, _ = jax.lax.scan(batch_step, carry, perm.reshape(n_batches, -1))
            return carry, None

        (p, s), _ = jax.lax.scan(epoch, (p, s), jax.random.split(k, epochs))
        return p

    # optax mixes Python floats with its int32 step count; allow standard
    # promotion here even where a test suite runs JAX in strict mode.
    with jax.numpy_dtype_promotion("standard"):
        params = run(params, opt_state, key)
    return eqx.combine(params, static)
