"""Where on-chip pulses go: the cells' layout of an analog layer, pulse
application through the devices' `update`, the symmetry-point calibration,
and the on-chip algorithms (`AnalogSGD`, `TikiTaka`, `MixedPrecision`); the
training loop that drives them is `xbar.training.onchip`.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from devices.base import (
    AbstractDevice,
    AbstractDeviceState,
    check_range,
    option,
)
from xbar.array.crossbar import Crossbar
from xbar.mapping.tiling import from_tiles, to_tiles
from xbar.nn.config import AnalogConfig
from xbar.nn.linear import AnalogLinear
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

    def summed_counts(self, st: LayerState, xs, ds, lr, keys):
        """Pulse counts `(out, in)` of examples `xs (E, in)`, `ds (E, out)`
        summed, for the weight change `-lr delta x^T` of each in units of one
        pulse of the array the rule writes."""
        scale = lr / weight_per_pulse(st.layer)
        return self.rule.summed_counts(xs, ds, scale, keys)

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
        n = self.summed_counts(st, xs, ds, lr, keys)
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
        n = to_cells(layer, self.summed_counts(st, xs, ds, lr, keys))
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


