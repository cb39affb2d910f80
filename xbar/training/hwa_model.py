"""Hardware-aware training of any equinox model: the model a researcher
brought, converted onto crossbar tiles by `xbar.convert` at every minibatch.

`train_hwa_model` takes the DIGITAL model (with `eqx.nn.Linear` and 2-D
`eqx.nn.Conv` layers) and the hardware as `convert` takes it (one config, or
a function choosing per layer, None leaving a layer digital). Every
minibatch converts the current model onto fresh cells (`convert`, with the
programming of `cells=`: the device's cells tabulated once per run and
distinct layer config, or drawn by the device model itself), runs the
model's own `__call__` on every example with read noise, and takes one optax
step on the gradient with respect to every floating-point leaf of the digital
model (analog layers' weights and biases through the library's
straight-through rule, digital layers and parameters such as layer norms
exactly). The result is the digital model, which is then converted onto
fresh devices for evaluation exactly like a model trained without the
hardware in the loop.

Read noise without a key in the model's code: analog layers hold a
`read_key` field (None by default: a call without `key` reads noise-free);
`with_read_keys` sets one key per analog layer, and the trainer sets them
per example and step (the model is mapped over the batch with `jax.vmap`,
the equinox convention of per-example models).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from devices.base import AbstractDevice
from xbar.nn.config import AnalogConfig
from xbar.nn.convert import convert
from xbar.nn.layer import AbstractAnalogLayer
from xbar.training.hwa import check_hwa_options, hwa_epochs, training_configs
from xbar.training.tabulated import TabulatedCells


def _is_layer(x) -> bool:
    return isinstance(x, eqx.nn.Linear | eqx.nn.Conv)


def _is_analog(x) -> bool:
    return isinstance(x, AbstractAnalogLayer)


def with_read_keys(model, key: PRNGKeyArray | None):
    """`model` (converted) with every analog layer's `read_key` set: the `i`-th
    analog layer (in pytree order) reads with `fold_in(key, i)` whenever the
    model's own code calls it without a key; `key=None` clears them (calls
    without a key read noise-free again, as after `convert`).

    A batched call draws independent noise for every example from one key;
    a model mapped over examples (`jax.vmap`) needs one key per example:
    `jax.vmap(lambda xi, ki: with_read_keys(model, ki)(xi))(x, keys)`, as
    `train_hwa_model` does."""
    leaves, treedef = jax.tree_util.tree_flatten(model, is_leaf=_is_analog)
    out, i = [], 0
    for leaf in leaves:
        if _is_analog(leaf):
            k = None if key is None else jax.random.fold_in(key, i)
            leaf = eqx.tree_at(
                lambda m: m.read_key, leaf, k, is_leaf=lambda x: x is None
            )
            i += 1
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)


def _leaves_equal(a, b) -> bool:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    if ta != tb:
        return False
    for u, v in zip(la, lb):
        if eqx.is_array(u) or eqx.is_array(v):
            if not np.array_equal(np.asarray(u), np.asarray(v)):
                return False
        elif u != v:
            return False
    return True


def _chosen_configs(model, config) -> tuple[int, dict[str, int], list]:
    """`(layers, {path: group}, distinct configs)`: the number of
    `eqx.nn.Linear`/`eqx.nn.Conv` layers in `model`, the layers `config` maps
    onto hardware by path (as `convert` spells it) with the index of their
    config among the distinct ones (equal configs share one cell table)."""
    choose = config if callable(config) and not isinstance(config, eqx.Module) else None
    leaves = jax.tree_util.tree_flatten_with_path(model, is_leaf=_is_layer)[0]
    n_layers, groups, distinct = 0, {}, []
    for path, leaf in leaves:
        if not _is_layer(leaf):
            continue
        n_layers += 1
        name = jax.tree_util.keystr(path)
        cfg = choose(name, leaf) if choose else config
        if cfg is None:
            continue
        if not isinstance(cfg, AnalogConfig | AbstractDevice):
            raise ValueError(
                "config must be an AnalogConfig, a device, or a function "
                "(path, layer) -> AnalogConfig | device | None; got "
                f"{type(cfg).__name__} for layer {name}"
            )
        for j, c in enumerate(distinct):
            if c is cfg or _leaves_equal(c, cfg):
                groups[name] = j
                break
        else:
            groups[name] = len(distinct)
            distinct.append(cfg)
    return n_layers, groups, distinct


def _cross_entropy(logits, y):
    import optax

    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


class HWAModelResult(eqx.Module):
    """What `train_hwa_model` returns.

    Attributes:
        model: the trained DIGITAL model (same structure as the one passed
            in; convert it onto fresh devices to evaluate).
        losses: mean training loss of every epoch (on the noisy analog forward).
    """

    model: eqx.Module
    losses: Array


def train_hwa_model(
    model,
    config,
    x: ArrayLike,
    y: ArrayLike,
    *,
    optimizer,
    epochs: int,
    batch_size: int,
    key: PRNGKeyArray,
    loss=None,
    noise_scale: float = 1.0,
    t_inference_s: float | None = None,
    clip_sigma: float | None = None,
    cells=TabulatedCells(),
    trainable=eqx.is_inexact_array,
) -> HWAModelResult:
    """Train any equinox model with its linear and convolution layers on
    analog hardware in the loop (hardware-aware training).

    Every minibatch: the current model is converted (`xbar.convert`) onto
    fresh cells with its own key (programming as `cells` says, each layer's
    noise scaled by `noise_scale` and read at `t_inference_s`); the
    converted model runs on each example (`jax.vmap` of `model(x_i)`: models
    are written per example, as equinox's are) with read noise, each example
    and analog layer its own read key (`with_read_keys`); one optimizer step
    on the straight-through gradient with respect to every floating-point
    array of the digital model that `trainable` selects (default all:
    analog layers' weights and biases, and every digital layer or
    parameter). Epochs and
    minibatches are one `lax.scan` under one `jax.jit`: one compilation,
    reused by a later call with an equal setup (the same model structure,
    config choice, `loss` and `optimizer` objects and options; new weights,
    data of the same shapes, keys, device numbers). Per epoch a permutation
    drawn from the first half of the epoch's key picks the minibatches (the
    last `n % batch_size` examples of it are left out), as `train_hwa`. The
    result is a function of `key` alone.

    The model's `__call__` is called as `model(x_i)` without a key (no
    dropout; stateful layers such as batch norm are not supported).

    Args:
        model: the digital equinox model (`eqx.nn.Linear` / 2-D
            `eqx.nn.Conv` layers, anything else around them).
        config: as `xbar.convert`: one `AnalogConfig` (or bare device) for
            every layer, or a function `(path, layer) -> config | None`
            choosing per layer (None: the layer stays digital and is trained
            in float). Called once, on the model passed in.
        x, y: training inputs (n, ...) (one example as `model` takes it) and
            targets (n, ...): integer labels for the default loss.
        optimizer: an optax `GradientTransformation`.
        epochs: passes over the data, integer >= 1.
        batch_size: examples per step, integer in [1, n].
        key: PRNG key (shuffling, cell tables, programming and read noise).
        loss: `loss(outputs, y_batch) -> scalar` on the batch of model outputs;
            default the mean softmax cross-entropy on integer labels.
        noise_scale: multiplier of each device's programming and read noise
            (`xbar.training.hwa.NOISE_FIELDS`), >= 0 (1: the device's own).
        t_inference_s: seconds since programming at which the layers are
            read in training (drift), >= 0; default each config's `t_read_s`.
        clip_sigma: after every step clip each analog layer's weight to
            `+-clip_sigma * std(W)`, > 0, or None (digital layers are never
            clipped).
        cells: `TabulatedCells()` (default: each distinct layer config's
            programmed and drifted cells tabulated once per run) or
            `FreshCells()` (the device model on every cell at every step,
            exact, slower); see `train_hwa`.
        trainable: which leaves the optimizer updates, as `eqx.partition`
            takes it (a function of a leaf, or a pytree of bools shaped like
            `model`); only floating-point arrays among them train, the rest
            stay as they are (e.g. a frozen feature extractor). Default
            `eqx.is_inexact_array`: everything.
    """
    check_hwa_options(
        optimizer=optimizer, cells=cells, epochs=epochs, batch_size=batch_size,
        noise_scale=noise_scale, t_inference_s=t_inference_s, clip_sigma=clip_sigma,
    )
    if loss is not None and not callable(loss):
        raise ValueError(
            "loss must be a function loss(outputs, y) -> scalar or None; got "
            f"loss={loss!r}"
        )
    if not isinstance(model, eqx.Module):
        raise ValueError(
            f"model must be an equinox Module; got model of type {type(model).__name__}"
        )
    n_layers, groups, distinct = _chosen_configs(model, config)
    if n_layers == 0:
        raise ValueError(
            "model must hold at least one eqx.nn.Linear or eqx.nn.Conv layer "
            "to put on analog hardware; found none"
        )
    if not groups:
        raise ValueError(
            "config left every layer of the model digital (the config function "
            "returned None for all of them); nothing to train on hardware"
        )
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must hold the same examples (leading axis); got {x.shape}, "
            f"{y.shape}"
        )
    if loss is None and (y.ndim != 1 or not jnp.issubdtype(y.dtype, jnp.integer)):
        raise ValueError(
            "y must be integer class labels of shape (n,) for the default "
            f"cross-entropy loss (or pass loss=); got y {y.dtype} {y.shape}"
        )
    if batch_size > x.shape[0]:
        raise ValueError(
            f"batch_size must be in [1, {x.shape[0]}] (the examples); got {batch_size}"
        )
    loss_of = _cross_entropy if loss is None else loss
    configs = training_configs(
        distinct, len(distinct), noise_scale=noise_scale, t_inference_s=t_inference_s
    )
    try:
        params, frozen = eqx.partition(model, trainable)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "trainable must be a filter as eqx.partition takes it (a function "
            f"of a leaf, or a pytree of bools like model); got {trainable!r}"
        ) from e
    params, other = eqx.partition(params, eqx.is_inexact_array)
    static = eqx.combine(frozen, other)
    if not jax.tree_util.tree_leaves(params):
        raise ValueError(
            "trainable selects no floating-point array of the model; nothing "
            f"to train (trainable={trainable!r})"
        )
    setup = _Setup(
        groups=tuple(sorted(groups.items())), loss=loss_of,
        optimizer=optimizer, cells=cells, epochs=epochs, batch_size=batch_size,
        clip_sigma=clip_sigma,
    )
    # Layout, shapes and the loss's output, traced (not compiled) on the
    # first minibatch before anything compiles.
    first = [jax.ShapeDtypeStruct((batch_size,) + a.shape[1:], a.dtype) for a in (x, y)]
    with jax.numpy_dtype_promotion("standard"):
        shape = jax.eval_shape(
            lambda p, c, xb, yb, k: setup.loss_of_batch(p, static, c, xb, yb, k),
            params, configs, *first, key,
        )
    if getattr(shape, "shape", None) != ():
        raise ValueError(
            "loss must return a scalar for a batch; got "
            f"{getattr(shape, 'shape', shape)}"
        )
    # optax mixes Python floats with its int32 step count; allow standard
    # promotion here even where a test suite runs JAX in strict mode.
    with jax.numpy_dtype_promotion("standard"):
        p, losses = _run(params, static, configs, key, x, y, setup)
    return HWAModelResult(model=eqx.combine(p, static), losses=losses)


class _Setup(eqx.Module):
    """Everything static about one training run: a compiled `_run` is reused
    for another call with an equal setup (same model structure, layer
    choice, loss function and optimizer objects, options) and new weights,
    data shapes aside, keys and configs' numbers."""

    groups: tuple = eqx.field(static=True)
    loss: Callable = eqx.field(static=True)
    optimizer: Any = eqx.field(static=True)
    cells: Any = eqx.field(static=True)
    epochs: int = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    clip_sigma: float | None = eqx.field(static=True)

    def loss_of_batch(self, p, static, cfgs, xb, yb, k):
        """The loss of minibatch `xb` on the model `(p, static)` converted
        onto fresh cells (key `k`: programming, then per-example read keys)."""
        m = eqx.combine(p, static)
        by_path = dict(self.groups)
        k_prog, k_read = jax.random.split(k)
        analog = convert(
            m,
            lambda path, layer: cfgs[by_path[path]] if path in by_path else None,
            key=k_prog,
        )
        keys = jax.random.split(k_read, xb.shape[0])
        out = jax.vmap(lambda xi, ki: with_read_keys(analog, ki)(xi))(xb, keys)
        return self.loss(out, yb)

    def clip(self, p):
        """Each analog layer's weight clipped at `+-clip_sigma * std`."""
        if self.clip_sigma is None:
            return p
        analog = dict(self.groups)
        sigma = self.clip_sigma

        def one(path, leaf):
            if not (_is_layer(leaf) and jax.tree_util.keystr(path) in analog):
                return leaf
            if leaf.weight is None:  # frozen: never updated, never clipped
                return leaf
            c = sigma * jnp.std(leaf.weight)
            return eqx.tree_at(lambda m: m.weight, leaf, jnp.clip(leaf.weight, -c, c))

        return jax.tree_util.tree_map_with_path(one, p, is_leaf=_is_layer)


# Data are arguments, not closure constants (XLA would constant-fold them).
@eqx.filter_jit
def _run(params, static, configs, key, x, y, setup: _Setup):
    def loss_of_batch(p, cfgs, xb, yb, k):
        return setup.loss_of_batch(p, static, cfgs, xb, yb, k)

    return hwa_epochs(
        loss_of_batch, setup.clip, setup.optimizer, setup.cells, configs, params,
        key, x, y, epochs=setup.epochs, batch_size=setup.batch_size,
    )
