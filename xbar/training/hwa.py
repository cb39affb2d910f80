"""Hardware-aware (HWA) training: the analog forward in the training loop.

Every minibatch programs the current digital weights onto fresh cells of the
configured device, reads them `t_inference_s` after programming (drift, read
noise) through the layer's DAC, ADC and drift compensation, and
differentiates the loss. The cells are drawn (`cells=`) either from a table
of the device's own programmed and drifted cells, one normal per cell
(`TabulatedCells`, the default, see `xbar.training.tabulated`), or by the
device model itself on every cell at every step (`FreshCells`: programming
noise, nearest-level quantization, device-to-device spread through
`device.program` and the programming policy; ~10x slower). The
gradient follows the library's one rule: straight through programming,
rounding and quantization (zero where a converter or the window clips),
exact through everything else (`xbar.mapping.programming`). Noise can be
scaled beyond the device's own (`noise_scale`), a common robustness trick.

The trained weights are plain `(weight, bias)` pairs: evaluation programs them
onto fresh devices with `AnalogNetwork.from_weights`, exactly as a network
trained without the hardware in the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from devices.base import AbstractDevice, check_range
from xbar.nn.config import AnalogConfig
from xbar.nn.network import AnalogNetwork, per_layer_configs
from xbar.training.tabulated import FreshCells, TabulatedCells, TabulatedProgramming

#: device fields that set the size of programming and read noise; `noise_scale`
#: multiplies those a device has (PCM's are multipliers already).
NOISE_FIELDS = (
    "sigma_prog",
    "sigma_read",
    "sigma_prog_scale",
    "sigma_read_scale",
)


def check_optimizer(optimizer) -> None:
    """Raise a ValueError naming `optimizer` unless it is an optax
    `GradientTransformation` (an `init`/`update` pair)."""
    import optax

    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(
            "optimizer must be an optax GradientTransformation (e.g. "
            f"optax.adam(1e-3)); got optimizer={optimizer!r}"
        )


def _positive_int(name: str, v) -> None:
    if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {name}={v!r}")


def check_hwa_options(
    *, optimizer, cells, epochs, batch_size, noise_scale, t_inference_s, clip_sigma
) -> None:
    """The checks every HWA trainer makes of its options before compiling:
    a ValueError naming the field and its allowed range."""
    check_optimizer(optimizer)
    if not isinstance(cells, TabulatedCells | FreshCells):
        raise ValueError(
            "cells must be TabulatedCells(...) or FreshCells(); got "
            f"cells={cells!r}"
        )
    _positive_int("epochs", epochs)
    _positive_int("batch_size", batch_size)
    check_range("noise_scale", noise_scale, 0.0)
    if t_inference_s is not None:
        check_range("t_inference_s", t_inference_s, 0.0, unit="s")
    if clip_sigma is not None:
        check_range("clip_sigma", clip_sigma, 0.0, lo_open=True)


def noise_scaled(device: AbstractDevice, scale) -> AbstractDevice:
    """`device` with every field of `NOISE_FIELDS` it has multiplied by `scale`."""
    names = [n for n in NOISE_FIELDS if hasattr(device, n)]
    if not names or scale == 1.0:
        return device
    return eqx.tree_at(
        lambda d: tuple(getattr(d, n) for n in names),
        device,
        tuple(getattr(device, n) * scale for n in names),
    )


def training_configs(
    config, n_layers: int, *, noise_scale=1.0, t_inference_s=None
) -> list[AnalogConfig]:
    """One `AnalogConfig` per layer (a bare device: every option default), its
    device's noise scaled by `noise_scale` and read at `t_inference_s` (default:
    the config's own `t_read_s`)."""
    out = []
    for c in per_layer_configs(config, n_layers):
        c = c if isinstance(c, AnalogConfig) else AnalogConfig(c)
        c = eqx.tree_at(lambda c: c.device, c, noise_scaled(c.device, noise_scale))
        if t_inference_s is not None:
            c = eqx.tree_at(
                lambda c: c.t_read_s, c, jnp.asarray(t_inference_s, jnp.float32)
            )
        out.append(c)
    return out


def hwa_configs(
    configs: Sequence[AnalogConfig], cells: TabulatedCells | FreshCells, *,
    key: PRNGKeyArray,
) -> list[AnalogConfig]:
    """`configs` whose programming draws from each device's `CellTable` at the
    config's `t_read_s` (`TabulatedCells`), or `configs` as they are
    (`FreshCells`). Build once per training run; every
    `AnalogNetwork.from_weights` with the result then draws fresh cells."""
    if isinstance(cells, FreshCells):
        return list(configs)
    out = []
    for c, kc in zip(configs, jax.random.split(key, len(configs))):
        tab = cells.table(c.device, c.programming, c.t_read_s, key=kc)
        out.append(eqx.tree_at(lambda c: c.programming, c, TabulatedProgramming(tab)))
    return out


class HWAResult(eqx.Module):
    """What `train_hwa` returns.

    Attributes:
        params: the trained `(weight, bias)` pairs, digital (program them with
            `AnalogNetwork.from_weights` to evaluate).
        losses: mean training loss of every epoch (on the noisy analog forward).
    """

    params: list
    losses: Array


def _pairs(params) -> list[tuple[Array, Array | None]]:
    out = []
    for p in params:
        w, b = p if isinstance(p, tuple | list) else (p, None)
        b = None if b is None else jnp.asarray(b, jnp.float32)
        out.append((jnp.asarray(w, jnp.float32), b))
    return out


def _frozen(v):
    """`v` with lists turned into tuples (hashable, for a static field)."""
    if isinstance(v, list | tuple):
        return tuple(_frozen(u) for u in v)
    return v


class _HWASetup(eqx.Module):
    """What `train_hwa`'s compiled run is specialised on (static): equal
    setups share one compilation across calls (new weights, data, keys or
    device numbers of the same shapes compile nothing)."""

    optimizer: Any = eqx.field(static=True)
    cells: TabulatedCells | FreshCells
    input_shape: tuple | None = eqx.field(static=True)
    strides: Any = eqx.field(static=True)
    paddings: Any = eqx.field(static=True)
    clip_sigma: float | None = eqx.field(static=True)
    epochs: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)


def hwa_epochs(loss_of_batch, clip, optimizer, cells, configs, params, key, x, y,
               *, epochs: int, batch_size: int):
    """The epochs of hardware-aware training, traced inside a trainer's jit
    (`train_hwa`, `train_hwa_model`): the cell tables of `configs` built once
    (`hwa_configs`, their own key `fold_in(key, 0x7AB)`); per epoch a
    permutation from the first half of the epoch's key picks the minibatches
    (the last `n % batch_size` examples left out); per minibatch
    `loss_of_batch(params, cfgs, xb, yb, k)`, one optimizer step on its
    gradient, then `clip(params)`. Returns `(params, mean loss per epoch)`."""
    import optax

    n_batches = x.shape[0] // batch_size
    cfgs = hwa_configs(configs, cells, key=jax.random.fold_in(key, 0x7AB))

    def batch_step(carry, inp):
        p, s = carry
        idx, k = inp
        value, g = jax.value_and_grad(loss_of_batch)(p, cfgs, x[idx], y[idx], k)
        updates, s = optimizer.update(g, s, p)
        return (clip(optax.apply_updates(p, updates)), s), value

    def epoch(carry, ke):
        k_perm, k_steps = jax.random.split(ke)
        perm = jax.random.permutation(k_perm, x.shape[0])
        perm = perm[: n_batches * batch_size].reshape(n_batches, -1)
        carry, losses = jax.lax.scan(
            batch_step, carry, (perm, jax.random.split(k_steps, n_batches))
        )
        return carry, jnp.mean(losses)

    (p, _), losses = jax.lax.scan(
        epoch, (params, optimizer.init(params)), jax.random.split(key, epochs)
    )
    return p, losses


@eqx.filter_jit
def _run_hwa(p, k, x, y, configs, setup: _HWASetup):
    """The epochs of `train_hwa` (data and configs are arguments, not closure
    constants: XLA would constant-fold them, and a closure recompiles on
    every call)."""
    import optax

    def loss_fn(p, cfgs, xb, yb, k):
        k_prog, k_read = jax.random.split(k)
        net = AnalogNetwork.from_weights(
            p, cfgs, key=k_prog, input_shape=setup.input_shape,
            strides=setup.strides, paddings=setup.paddings,
        )
        logits = net(xb, key=k_read)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def clip(p):
        if setup.clip_sigma is None:
            return p
        out = []
        for w, b in p:
            c = setup.clip_sigma * jnp.std(w)
            out.append((jnp.clip(w, -c, c), b))
        return out

    return hwa_epochs(
        loss_fn, clip, setup.optimizer, setup.cells, configs, p, k, x, y,
        epochs=setup.epochs, batch_size=setup.batch_size,
    )


def train_hwa(
    params: Sequence[tuple[ArrayLike, ArrayLike | None] | ArrayLike],
    config: AnalogConfig | AbstractDevice | Sequence[AnalogConfig | AbstractDevice],
    x: ArrayLike,
    y: ArrayLike,
    *,
    optimizer,
    epochs: int,
    batch_size: int,
    key: PRNGKeyArray,
    noise_scale: float = 1.0,
    t_inference_s: float | None = None,
    clip_sigma: float | None = None,
    input_shape: Sequence[int] | None = None,
    strides=1,
    paddings=0,
    cells=TabulatedCells(),
) -> HWAResult:
    """Train a network of convolution and linear layers (ReLU between) with
    the analog forward in the loop, on cross-entropy of integer labels `y`.

    Each minibatch programs the weights onto fresh cells with its own key
    (as `cells` says), reads them `t_inference_s` after programming
    with read noise (one draw per example), and takes one optimizer step on
    the straight-through gradient. Epochs and minibatches are one `lax.scan`
    under one `jax.jit`; the result is a function of `key` alone.

    Args:
        params: initial `(weight, bias)` per layer, as
            `AnalogNetwork.from_weights` takes them (OIHW convolutions first).
        config: the hardware of every layer, or a sequence with one per layer.
        x, y: training inputs `(n, *input_shape)` (or flattened) and labels.
        optimizer: an optax `GradientTransformation`.
        epochs: passes over the data, integer >= 1.
        batch_size: examples per step, integer in [1, n].
        key: PRNG key (shuffling, programming and read noise).
        noise_scale: multiplier of the device's programming and read noise
            (`NOISE_FIELDS`), >= 0 (1: the device's own).
        t_inference_s: seconds since programming at which the layers are read
            in training (drift), >= 0; default each config's `t_read_s`.
        clip_sigma: after every step clip each weight matrix to
            `+-clip_sigma * std(W)` (keeps outliers from taking the
            conductance range), > 0, or None for no clipping.
        input_shape, strides, paddings: as `AnalogNetwork.from_weights`.
        cells: how each minibatch's cells are programmed: `TabulatedCells()`
            (default: the device's programmed and drifted conductance
            tabulated once per run, one normal per cell and step; see
            `xbar.training.tabulated`) or `FreshCells()` (the device's own
            `init` and `program` on every cell at every step, exact, ~10x
            slower).
    """

    check_hwa_options(
        optimizer=optimizer, cells=cells, epochs=epochs, batch_size=batch_size,
        noise_scale=noise_scale, t_inference_s=t_inference_s, clip_sigma=clip_sigma,
    )
    pairs = _pairs(params)
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.int32)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must hold the same examples; got {x.shape}, {y.shape}"
        )
    if batch_size > x.shape[0]:
        raise ValueError(
            f"batch_size must be in [1, {x.shape[0]}] (the examples); got {batch_size}"
        )
    configs = training_configs(
        config, len(pairs), noise_scale=noise_scale, t_inference_s=t_inference_s
    )
    # Check the layout (shapes, strides) on concrete weights before compiling.
    AnalogNetwork.from_weights(
        pairs, configs, key=key, input_shape=input_shape, strides=strides,
        paddings=paddings,
    )
    setup = _HWASetup(
        optimizer=optimizer,
        cells=cells,
        input_shape=None if input_shape is None else tuple(input_shape),
        strides=_frozen(strides),
        paddings=_frozen(paddings),
        clip_sigma=None if clip_sigma is None else float(clip_sigma),
        epochs=int(epochs),
        batch_size=int(batch_size),
    )
    # optax mixes Python floats with its int32 step count; allow standard
    # promotion here even where a test suite runs JAX in strict mode.
    with jax.numpy_dtype_promotion("standard"):
        p, losses = _run_hwa(pairs, key, x, y, configs, setup)
    return HWAResult(params=list(p), losses=losses)
