"""On-chip (in-situ) training of analog MLPs through device pulses.

The forward pass is the analog layers' own (DAC, crossbar read with read
noise, ADC); the errors `delta` of every layer come from the backward pass
through the same layers (the straight-through gradient of the analog forward
with respect to each layer's input, what a transposed read of the array
gives); the weight update is never a float write: a pulse rule
(`xbar.training.pulses`) turns each example's `(x, delta)` into pulse counts
and the cells move by their device's `update` (nonlinearity, asymmetry,
bounds, cycle-to-cycle noise, finite states).

An algorithm says where the pulses go:

- `AnalogSGD`: onto the weights (G+ of each pair; `pair_updates` sends
  depressions as potentiation of G-, for devices whose depression is abrupt,
  e.g. PCM's RESET);
- `TikiTaka` (v2, Gokmen, Front. Artif. Intell. 4:699148, 2021,
  doi 10.3389/frai.2021.699148): onto a fast array A whose zero is its
  symmetry point; every `transfer_every` updates one input column of A is read,
  added to a digital buffer H, and the whole pulses of H are sent to the
  weights C (the rest stays in H);
- `MixedPrecision` (Nandakumar et al., Front. Neurosci. 14:406, 2020,
  doi 10.3389/fnins.2020.00406): the update accumulates in a digital buffer
  and only its whole pulses are sent to the weights.

Updates run per example (`sequential=True`: one device update per example,
as a chip does) or batched (the minibatch's per-example counts summed into
one device update, the usual approximation). Pulses are counted and priced
(`V_w^2 G t_w` each, `EnergyModel.v_write_V`, `t_write_s`).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from devices.base import AbstractDevice, check_option, check_range
from xbar.mapping.schemes import PerTensor
from xbar.nn.config import AnalogConfig
from xbar.nn.linear import AnalogLinear
from xbar.nn.network import per_layer_configs
from xbar.training.algorithms import (  # re-exported: the on-chip API in one place
    AbstractOnChipAlgorithm as AbstractOnChipAlgorithm,
    AnalogSGD as AnalogSGD,
    LayerState as LayerState,
    MixedPrecision as MixedPrecision,
    TikiTaka as TikiTaka,
    apply_pulses as apply_pulses,
    program_layer as program_layer,
    pulse_step as pulse_step,
    symmetry_point as symmetry_point,
)
from xbar.training.pulses import _int_at_least_1


class OnChipResult(eqx.Module):
    """What `train_onchip` returns.

    Attributes:
        layers: the trained analog layers (their cells as the pulses left them).
        accuracy: held-out accuracy after every epoch (NaN without eval data
            or for regression).
        eval_loss: held-out mean loss after every epoch (NaN without eval data).
        loss: mean training loss of every epoch.
        pulses: pulses applied in every epoch (all layers and arrays).
        write_energy_J: energy of those pulses, `V_w^2 G t_w` each.
        read_energy_J: energy of the reads of every epoch (see
            `training_read_energy`), priced on the trained layers.
    """

    layers: tuple[AnalogLinear, ...]
    accuracy: Array
    eval_loss: Array
    loss: Array
    pulses: Array
    write_energy_J: Array
    read_energy_J: Array


def training_read_energy(layers, x, model=None) -> dict:
    """Energy (J) of the array reads of on-chip training per example, priced
    by the energy model (`xbar.analysis.energy.network_counts`: DACs, cells,
    ADCs, accumulation, buffers, interconnect) on the layers' own periphery
    and conductances, with inputs `x` (a sample of training vectors).

    One training example reads every layer forward once and every layer but
    the first once more backward (its error through the transposed array,
    what the straight-through backward of the simulation stands for); the
    backward read of a layer is priced as its forward read (the same cells,
    a transposed drive: an approximation). Returns `forward_J`, `backward_J`
    and `total_J` per example."""
    from xbar.analysis.energy import network_counts
    from xbar.nn.network import AnalogNetwork

    net = AnalogNetwork(layers=tuple(layers), input_shape=(layers[0].in_features,))
    rows = network_counts(net, jnp.asarray(x, jnp.float32), model)
    per_layer = [float(r["energy_total_J"]) for r in rows]
    fwd, bwd = sum(per_layer), sum(per_layer[1:])
    return {"forward_J": fwd, "backward_J": bwd, "total_J": fwd + bwd}


def forward(layers, x, key):
    """Logits of the MLP of analog `layers` (ReLU between), read with noise."""
    keys = [None] * len(layers) if key is None else jax.random.split(key, len(layers))
    h = x
    for i, (lay, k) in enumerate(zip(layers, keys)):
        h = lay(h, key=k)
        if i < len(layers) - 1:
            h = jax.nn.relu(h)
    return h


def _loss(h, y):
    """Cross-entropy for integer labels, half the squared error for targets."""
    import optax

    if jnp.issubdtype(y.dtype, jnp.integer):
        return optax.softmax_cross_entropy_with_integer_labels(h, y)
    return 0.5 * jnp.sum((h - y) ** 2, axis=-1)


def _errors(layers, x, y, key):
    """Per-example loss, each layer's input `(B, in)` and output error
    `(B, out)` (the gradient of the summed loss at its output)."""
    keys = jax.random.split(key, len(layers))

    def run(es):
        h, xs = x, []
        for i, (lay, k, e) in enumerate(zip(layers, keys, es)):
            xs.append(h)
            h = lay(h, key=k) + e
            if i < len(layers) - 1:
                h = jax.nn.relu(h)
        return jnp.sum(_loss(h, y)), (_loss(h, y), xs)

    es = [jnp.zeros((x.shape[0], lay.out_features), jnp.float32) for lay in layers]
    ds, (loss, xs) = jax.grad(run, has_aux=True)(es)
    return loss, [jax.lax.stop_gradient(v) for v in xs], ds


@eqx.filter_jit
def _init_states(pairs, configs, algorithm, k_prog, k_alg, weight_range):
    """The chip's starting point, compiled (programming every cell op by op
    costs ~10x more): each layer programmed, the algorithm's state built."""
    layers = [
        program_layer(
            w,
            jnp.zeros(w.shape[0]) if b is None else b,
            c,
            key=k,
            weight_range=weight_range,
        )
        for (w, b), c, k in zip(pairs, configs, jax.random.split(k_prog, len(pairs)))
    ]
    return [
        algorithm.init(lay, key=k)
        for lay, k in zip(layers, jax.random.split(k_alg, len(layers)))
    ]


@eqx.filter_jit
def _train_loop(
    states, algorithm, x, y, xe, ye, key, lr, epochs: int, batch_size: int,
    sequential: bool, pair_updates: bool,
):
    """The epochs of `train_onchip` as one compiled function: compiled once per
    structure (device class, layer shapes, algorithm, options), not per card
    or seed (device parameters, data and keys are traced arguments)."""
    arrays, static = eqx.partition(states, eqx.is_array)
    n_b = x.shape[0] // batch_size

    def update(sts, xs, ds, step, keys):
        out, pulses, cost = [], 0.0, 0.0
        for i, st in enumerate(sts):
            kk = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys)
            st, (p, c) = algorithm.apply(
                st, xs[i], ds[i], lr, step, kk, pair_updates=pair_updates
            )
            b = st.layer.bias
            assert b is not None
            st = eqx.tree_at(lambda s: s.layer.bias, st, b - lr * jnp.sum(ds[i], 0))
            out.append(st)
            pulses, cost = pulses + p, cost + c
        return out, pulses, cost

    def batch_step(carry, inp, x, y):
        arr, step = carry
        idx, k = inp
        sts = eqx.combine(arr, static)
        k_fw, k_up = jax.random.split(k)
        loss, xs, ds = _errors([s.layer for s in sts], x[idx], y[idx], k_fw)
        keys = jax.random.split(k_up, batch_size)
        if sequential:

            def one(c, e):
                sts_, st_ = c
                sts_ = eqx.combine(sts_, static)
                xs_e = [v[e][None] for v in xs]
                ds_e = [v[e][None] for v in ds]
                sts_, p, cst = update(sts_, xs_e, ds_e, st_, keys[e][None])
                return (eqx.partition(sts_, eqx.is_array)[0], st_ + 1), (p, cst)

            (arr, step), (p, cst) = jax.lax.scan(
                one, (eqx.partition(sts, eqx.is_array)[0], step), jnp.arange(batch_size)
            )
            p, cst = jnp.sum(p), jnp.sum(cst)
        else:
            sts, p, cst = update(sts, xs, ds, step, keys)
            arr, step = eqx.partition(sts, eqx.is_array)[0], step + 1
        return (arr, step), (jnp.mean(loss), p, cst)

    def run(arr, k, x, y, xe, ye):
        def epoch(carry, ke):
            k_perm, k_steps, k_eval = jax.random.split(ke, 3)
            perm = jax.random.permutation(k_perm, x.shape[0])[: n_b * batch_size]
            carry, (loss, p, c) = jax.lax.scan(
                lambda c, i: batch_step(c, i, x, y),
                carry,
                (perm.reshape(n_b, -1), jax.random.split(k_steps, n_b)),
            )
            layers = [s.layer for s in eqx.combine(carry[0], static)]
            logits = forward(layers, xe, k_eval)
            acc = (
                jnp.mean(jnp.argmax(logits, -1) == ye)
                if ye.ndim == 1
                else jnp.asarray(jnp.nan, jnp.float32)
            )
            ev = jnp.mean(_loss(logits, ye))
            return carry, (acc, ev, jnp.mean(loss), jnp.sum(p), jnp.sum(c))

        (arr, _), out = jax.lax.scan(
            epoch, (arr, jnp.asarray(0, jnp.int32)), jax.random.split(k, epochs)
        )
        return arr, out

    return run(arrays, key, x, y, xe, ye), static


def train_onchip(
    params: Sequence[tuple[ArrayLike, ArrayLike | None] | ArrayLike],
    config: AnalogConfig | AbstractDevice | Sequence[AnalogConfig | AbstractDevice],
    x: ArrayLike,
    y: ArrayLike,
    *,
    algorithm,
    learning_rate: float,
    epochs: int,
    key: PRNGKeyArray,
    batch_size: int = 1,
    sequential: bool = True,
    pair_updates: bool = False,
    weight_range: float | None = None,
    x_eval: ArrayLike | None = None,
    y_eval: ArrayLike | None = None,
    v_write_V: float = 3.2,
    t_write_s: float = 3e-4,
    energy_model=None,
    energy_sample: int = 64,
) -> OnChipResult:
    """Train an MLP of analog linear layers on chip, through device pulses.

    The initial weights `params` are programmed onto fresh cells as `config`
    says (that is the chip's starting point); then every minibatch runs the
    analog forward (read noise), the backward errors, and the algorithm's
    pulse updates, per example or batched. Epochs are one `lax.scan` under
    one `jax.jit`; the result is a function of `key` alone. Biases stay
    digital and are updated by SGD.

    Args:
        params: initial `(weight (out, in), bias)` per layer.
        config: the hardware of every layer (analog weights, one weight
            scale: `Mapping(weight_bits=None, scale=PerTensor())`).
        x, y: training vectors `(n, in)` and integer labels (cross-entropy
            of the logits) or float targets `(n, out)` (squared error).
        algorithm: `AnalogSGD(rule)`, `TikiTaka(...)` or `MixedPrecision(...)`.
        learning_rate: SGD step, > 0.
        epochs: passes over the data, integer >= 1.
        key: PRNG key (programming, shuffles, read noise, pulse trains).
        batch_size: examples per forward pass, integer in [1, n].
        sequential: one device update per example (True) or one per
            minibatch with the examples' pulse counts summed (False).
        pair_updates: depressions as potentiation of G- (see `apply_pulses`).
            Without it the pulses go to G+ in both directions, which needs
            room below G+: use `BalancedPair()` cells.
        weight_range: the weight the full window holds, > 0 (default the
            initial `max |W|` of each layer, which leaves no room to grow).
        x_eval, y_eval: held-out data, evaluated after every epoch.
        v_write_V, t_write_s: write pulse amplitude (V) and width (s) for the
            energy (defaults: `xbar.EnergyModel`'s, the Ag:a-Si RRAM card's).
        energy_model: the `xbar.analysis.EnergyModel` that prices the reads
            (default `EnergyModel()`).
        energy_sample: training vectors the read energy per example is
            averaged over (the first ones), integer >= 1.
    """
    check_option("algorithm", algorithm, AbstractOnChipAlgorithm)
    check_range("learning_rate", learning_rate, 0.0, lo_open=True)
    _int_at_least_1("epochs", epochs)
    _int_at_least_1("batch_size", batch_size)
    _int_at_least_1("energy_sample", energy_sample)
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y)
    y = y.astype(jnp.int32 if jnp.issubdtype(y.dtype, jnp.integer) else jnp.float32)
    if batch_size > x.shape[0]:
        raise ValueError(
            f"batch_size must be in [1, {x.shape[0]}] (the examples); got {batch_size}"
        )
    pairs = []
    for p in params:
        w, b = p if isinstance(p, tuple | list) else (p, None)
        pairs.append((jnp.asarray(w, jnp.float32), b))
    configs = [
        c if isinstance(c, AnalogConfig) else AnalogConfig(c)
        for c in per_layer_configs(config, len(pairs))
    ]
    for c in configs:
        m = c.mapping
        if m.weight_bits is not None or not isinstance(m.scale, PerTensor):
            raise ValueError(
                "config.mapping must hold analog weights with one scale for on-chip "
                "training (weight_bits=None, scale=PerTensor()); got "
                f"weight_bits={m.weight_bits}, scale={type(m.scale).__name__}()"
            )
        pulse_step(c.device)  # raises for a device without a pulse step
    k_prog, k_alg, k_run = jax.random.split(key, 3)
    if weight_range is not None:
        check_range("weight_range", weight_range, 0.0, lo_open=True)
    states = _init_states(pairs, configs, algorithm, k_prog, k_alg, weight_range)
    have_eval = x_eval is not None and y_eval is not None
    xe = jnp.asarray(x_eval if have_eval else x[:1], jnp.float32)
    ye = jnp.asarray(y_eval if have_eval else y[:1]).astype(y.dtype)
    lr = jnp.asarray(learning_rate, jnp.float32)
    with jax.numpy_dtype_promotion("standard"):
        (arr, (acc, ev, loss, pulses, cost)), static = _train_loop(
            states, algorithm, x, y, xe, ye, k_run, lr, epochs, batch_size,
            sequential, pair_updates,
        )
    sts = eqx.combine(arr, static)
    energy = cost * (float(v_write_V) ** 2 * float(t_write_s))
    trained = tuple(s.layer for s in sts)
    per_example = training_read_energy(trained, x[:energy_sample], energy_model)
    n_seen = (x.shape[0] // batch_size) * batch_size
    read_energy = jnp.full(
        (epochs,), per_example["total_J"] * n_seen, jnp.float32
    )
    return OnChipResult(
        layers=trained,
        accuracy=acc if have_eval else jnp.full_like(acc, np.nan),
        eval_loss=ev if have_eval else jnp.full_like(ev, np.nan),
        loss=loss,
        pulses=pulses,
        write_energy_J=energy,
        read_energy_J=read_energy,
    )
