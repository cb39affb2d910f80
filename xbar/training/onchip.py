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

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from devices.base import (
    AbstractDevice,
    AbstractDeviceState,
    check_option,
    check_range,
    option,
)
from xbar.array.crossbar import Crossbar
from xbar.mapping.schemes import PerTensor
from xbar.mapping.tiling import from_tiles, to_tiles
from xbar.nn.config import AnalogConfig
from xbar.nn.linear import AnalogLinear
from xbar.nn.network import per_layer_configs
from xbar.training.pulses import AbstractPulseRule, StochasticPulses, _int_at_least_1


def pulse_step(device: AbstractDevice) -> Array:
    """Nominal conductance change of one pulse (S): the window over the
    device's number of states (`n_states`, `p_max_ltp`, `p_max_set`) or its
    step fraction `dx` (ionic synapses)."""
    span = device.g_max - device.g_min
    for name in ("n_states", "p_max_ltp", "p_max_set"):
        n = getattr(device, name, None)
        if n is not None:
            return span / n
    dx = getattr(device, "dx", None)
    if dx is not None:
        return span * dx
    raise ValueError(
        f"pulse_step: {type(device).__name__} has no number of states (n_states, "
        "p_max_ltp, p_max_set) or step (dx)"
    )


def to_cells(layer: AnalogLinear, w_oi) -> Array:
    """An `(out, in)` array laid out as the layer's cells `(tr, tc, R, C)`
    (padding cells 0)."""
    rows, cols = layer.crossbar.tile_shape
    m = layer.mapping.groups_per_tile
    t = to_tiles(w_oi.T, rows, m)
    return jnp.pad(t, ((0, 0), (0, 0), (0, 0), (0, cols - m)))


def from_cells(layer: AnalogLinear, t) -> Array:
    """Inverse of `to_cells`: `(out, in)`."""
    m = layer.mapping.groups_per_tile
    return from_tiles(t[..., :m], layer.in_features, layer.out_features).T


def program_layer(
    w, b, config: AnalogConfig, *, key, weight_range=None
) -> AnalogLinear:
    """`AnalogLinear.from_weights(w, b, config)`, but with the conductance
    window spanning weights `+-weight_range` (default `max |w|`: no room to
    grow), which on-chip learning needs. Analog weights, one scale."""
    layer = AnalogLinear.from_weights(w, b, config, key=key)
    if weight_range is None:
        return layer
    mapping, dev = config.mapping, config.device
    rows, m = mapping.tile_rows, mapping.groups_per_tile
    r = jnp.asarray(weight_range, jnp.float32)
    wt = jnp.clip(to_tiles(jnp.asarray(w, jnp.float32).T, rows, m), -r, r)
    g_pos, g_neg, fill = mapping.cells.targets(
        (jnp.abs(wt) / r)[..., None], jnp.sign(wt)[..., None], dev, 1.0
    )
    tr, tc = wt.shape[:2]

    def place(cells):
        cells = cells.reshape(tr, tc, rows, m)
        pad = ((0, 0), (0, 0), (0, 0), (0, mapping.tile_cols - m))
        return jnp.pad(cells, pad, constant_values=fill)

    xb = config.programming.program(
        dev,
        place(g_pos),
        None if g_neg is None else place(g_neg),
        key=key,
        circuit=config.circuit,
    )
    k = (dev.g_max - dev.g_min) * mapping.cells.span / r
    g_per_w = jnp.broadcast_to(k, (tr, tc, m))
    return eqx.tree_at(lambda lay: (lay.crossbar, lay.g_per_w), layer, (xb, g_per_w))


def weight_per_pulse(layer: AnalogLinear) -> Array:
    """Weight change of one nominal pulse: `pulse_step / g_per_w`."""
    return pulse_step(layer.crossbar.device) / layer.g_per_w.reshape(-1)[0]


def apply_pulses(layer: AnalogLinear, n_oi, *, key, pair_updates: bool):
    """`layer` after signed pulse counts `n_oi` (out, in) through the device's
    `update`, and `(pulses, sum |n| G)` (the pulses and their conductance
    weight for energy). Pulses go to G+ (signed), or with `pair_updates`
    positive counts potentiate G+ and negative ones potentiate G-."""
    xb = layer.crossbar
    dev = xb.device
    n = to_cells(layer, n_oi)
    k_p, k_n = jax.random.split(key)
    if pair_updates:
        n_p, n_n = jnp.maximum(n, 0.0), jnp.maximum(-n, 0.0)
        pos = dev.update(xb.pos, n_p, key=k_p)
        neg = dev.update(xb.neg, n_n, key=k_n)
        cost = jnp.sum(n_p * xb.pos.g) + jnp.sum(n_n * xb.neg.g)
    else:
        pos = dev.update(xb.pos, n, key=k_p)
        neg = xb.neg
        cost = jnp.sum(jnp.abs(n) * xb.pos.g)
    new = eqx.tree_at(
        lambda lay: lay.crossbar, layer, Crossbar(dev, pos, neg, xb.circuit)
    )
    return new, (jnp.sum(jnp.abs(n)), cost)


def symmetry_point(
    device: AbstractDevice, state: AbstractDeviceState, n_pairs: int, *, key
) -> AbstractDeviceState:
    """`state` after `n_pairs` alternating up/down pulses, which take a cell to
    its symmetry point (where an up and a down pulse cancel) at the rate its
    asymmetry sets, as a chip calibrates it (aihwkit's symmetric-point
    programming)."""

    def body(i, st):
        k = jax.random.fold_in(key, i)
        st = device.update(st, jnp.ones_like(st.g), key=jax.random.fold_in(k, 0))
        return device.update(st, -jnp.ones_like(st.g), key=jax.random.fold_in(k, 1))

    return jax.lax.fori_loop(0, n_pairs, body, state)


class LayerState(eqx.Module):
    """One layer in on-chip training: its weights (the layer the forward
    reads) and the algorithm's extra state (None where unused).

    Attributes:
        layer: the analog layer (C: the weights).
        fast: Tiki-Taka's fast array A (device states, the layer's cell layout).
        fast_ref: A's reference conductances (its symmetry point) (S).
        buffer: the digital buffer, `(out, in)` in weight units.
    """

    layer: AnalogLinear
    fast: AbstractDeviceState | None = None
    fast_ref: Array | None = None
    buffer: Array | None = None


class AbstractOnChipAlgorithm(eqx.Module):
    """Where an update's pulses go."""

    rule: eqx.AbstractVar[AbstractPulseRule]

    def init(self, layer: AnalogLinear, *, key) -> LayerState:
        del key
        return LayerState(layer)

    def example_counts(self, st: LayerState, xs, ds, lr, keys):
        """Per-example pulse counts `(E, out, in)` for the weight change
        `-lr delta x^T` in units of one pulse of the array the rule writes."""
        scale = lr / weight_per_pulse(st.layer)
        return jax.vmap(lambda x, d, k: self.rule.counts(x, d, scale, key=k))(
            xs, ds, keys
        )

    @abc.abstractmethod
    def apply(self, st: LayerState, xs, ds, lr, step, keys, *, pair_updates: bool):
        """`(state, (pulses, sum |n| G))` after the update of examples
        `xs (E, in)`, `ds (E, out)` (one device update), update number `step`."""


class AnalogSGD(AbstractOnChipAlgorithm):
    """Plain analog SGD: the pulses go onto the weights.

    Args:
        rule: the pulse rule (default `StochasticPulses()`).
    """

    rule: AbstractPulseRule = option("rule", AbstractPulseRule, StochasticPulses())

    def apply(self, st, xs, ds, lr, step, keys, *, pair_updates):
        n = jnp.sum(self.example_counts(st, xs, ds, lr, keys), axis=0)
        k = jax.random.fold_in(keys[0], 1)
        layer, cost = apply_pulses(st.layer, n, key=k, pair_updates=pair_updates)
        return eqx.tree_at(lambda s: s.layer, st, layer), cost


class TikiTaka(AbstractOnChipAlgorithm):
    """Tiki-Taka v2: gradient pulses onto a fast array A (its zero at its
    symmetry point), periodic column reads of A into a digital buffer H, whole
    pulses of H onto the weights C.

    Args:
        rule: pulse rule for the updates of A (default `StochasticPulses()`).
        transfer_every: updates between two column transfers, integer >= 1.
        transfer_lr: fraction of A's column added to H per transfer, > 0.
        max_transfer_pulses: most pulses per cell and transfer, integer >= 1.
        symmetry_pairs: up/down pulse pairs that set A to its symmetry
            point at the start, integer >= 0.
    """

    rule: AbstractPulseRule = option("rule", AbstractPulseRule, StochasticPulses())
    transfer_every: int = eqx.field(static=True, default=1)
    transfer_lr: float = eqx.field(static=True, default=1.0)
    max_transfer_pulses: int = eqx.field(static=True, default=1)
    symmetry_pairs: int = eqx.field(static=True, default=1000)

    def __check_init__(self):
        _int_at_least_1("transfer_every", self.transfer_every)
        _int_at_least_1("max_transfer_pulses", self.max_transfer_pulses)
        check_range("transfer_lr", self.transfer_lr, 0.0, lo_open=True)
        if not isinstance(self.symmetry_pairs, int) or self.symmetry_pairs < 0:
            raise ValueError(
                "symmetry_pairs must be an integer >= 0; got "
                f"symmetry_pairs={self.symmetry_pairs!r}"
            )

    def init(self, layer, *, key):
        dev = layer.crossbar.device
        k_init, k_sp = jax.random.split(key)
        a = dev.init(layer.crossbar.pos.g.shape, key=k_init)
        a = dev.program(a, 0.5 * (dev.g_min + dev.g_max), key=k_init)
        a = symmetry_point(dev, a, self.symmetry_pairs, key=k_sp)
        return LayerState(
            layer,
            fast=a,
            fast_ref=dev.read_stats(a, 0.0)[0],
            buffer=jnp.zeros((layer.out_features, layer.in_features), jnp.float32),
        )

    def apply(self, st, xs, ds, lr, step, keys, *, pair_updates):
        layer = st.layer
        dev = layer.crossbar.device
        assert st.fast is not None and st.buffer is not None
        ref = st.fast_ref
        assert ref is not None
        n = to_cells(layer, jnp.sum(self.example_counts(st, xs, ds, lr, keys), axis=0))
        k_a = jax.random.fold_in(keys[0], 1)
        fast = dev.update(st.fast, n, key=k_a)
        cost_a = jnp.sum(jnp.abs(n) * st.fast.g)
        dw = weight_per_pulse(layer)

        def transfer(args):
            lay, h = args
            col = (step // self.transfer_every) % layer.in_features
            g_a, _ = dev.read_stats(fast, layer.t_read_s)
            w_a = from_cells(layer, g_a - ref) / layer.g_per_w.reshape(-1)[0]
            onehot = jnp.arange(layer.in_features) == col
            h = h + jnp.where(onehot[None], self.transfer_lr * w_a, 0.0)
            m = float(self.max_transfer_pulses)
            p = jnp.where(onehot[None], jnp.clip(jnp.trunc(h / dw), -m, m), 0.0)
            lay, cost = apply_pulses(
                lay, p, key=jax.random.fold_in(keys[0], 2), pair_updates=pair_updates
            )
            return lay, h - p * dw, cost

        def skip(args):
            lay, h = args
            return lay, h, (jnp.zeros(()), jnp.zeros(()))

        do = (step + 1) % self.transfer_every == 0
        layer, h, (p_c, c_c) = jax.lax.cond(do, transfer, skip, (layer, st.buffer))
        st = LayerState(layer, fast, st.fast_ref, h)
        return st, (jnp.sum(jnp.abs(n)) + p_c, cost_a + c_c)


class MixedPrecision(AbstractOnChipAlgorithm):
    """Mixed-precision training: the update accumulates in a digital buffer
    `chi`; whole pulses of it (at most `max_pulses` per cell and update) go to
    the weights and leave the buffer.

    Args:
        max_pulses: cap per cell and update, integer >= 1.
    """

    max_pulses: int = eqx.field(static=True, default=16)
    rule: AbstractPulseRule = option("rule", AbstractPulseRule, StochasticPulses())

    def __check_init__(self):
        _int_at_least_1("max_pulses", self.max_pulses)

    def init(self, layer, *, key):
        del key
        z = jnp.zeros((layer.out_features, layer.in_features), jnp.float32)
        return LayerState(layer, buffer=z)

    def apply(self, st, xs, ds, lr, step, keys, *, pair_updates):
        assert st.buffer is not None
        dw = weight_per_pulse(st.layer)
        chi = st.buffer - lr * jnp.einsum("ei,ej->ij", ds, xs)
        m = float(self.max_pulses)
        n = jnp.clip(jnp.trunc(chi / dw), -m, m)
        layer, cost = apply_pulses(
            st.layer, n, key=jax.random.fold_in(keys[0], 1), pair_updates=pair_updates
        )
        return LayerState(layer, buffer=chi - n * dw), cost


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
    """

    layers: tuple[AnalogLinear, ...]
    accuracy: Array
    eval_loss: Array
    loss: Array
    pulses: Array
    write_energy_J: Array


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
    """
    check_option("algorithm", algorithm, AbstractOnChipAlgorithm)
    check_range("learning_rate", learning_rate, 0.0, lo_open=True)
    _int_at_least_1("epochs", epochs)
    _int_at_least_1("batch_size", batch_size)
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
    states = [
        algorithm.init(lay, key=k)
        for lay, k in zip(layers, jax.random.split(k_alg, len(layers)))
    ]
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
    return OnChipResult(
        layers=tuple(s.layer for s in sts),
        accuracy=acc if have_eval else jnp.full_like(acc, np.nan),
        eval_loss=ev if have_eval else jnp.full_like(ev, np.nan),
        loss=loss,
        pulses=pulses,
        write_energy_J=energy,
    )
