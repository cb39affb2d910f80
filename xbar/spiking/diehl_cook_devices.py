"""The Diehl & Cook (2015) network learning on device cells: the input
weights held as differential pairs on a crossbar, read once per example and
written back as pulses (`train_on_devices`)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from xbar.array.crossbar import Crossbar, program_crossbar, relax
from xbar.mapping.tiling import conductance_targets, from_tiles, to_tiles
from xbar.spiking.diehl_cook_loop import _rest_state, present
from xbar.spiking.diehl_cook_model import DiehlCook, normalize
from xbar.spiking.plasticity import (
    AbstractPulses,
    PairSTDP,
    SingleCellPulses,
    StochasticRounding,
)


class DeviceSynapses(eqx.Module):
    """Input -> excitatory weights held as differential pairs on a crossbar,
    `w = (G+ - G-) / g_per_w` (rows = inputs)."""

    crossbar: Crossbar
    g_per_w: Float[Array, ""]
    n_input: int = eqx.field(static=True)
    n_exc: int = eqx.field(static=True)

    @classmethod
    def program(cls, w, device, *, key, w_max: float = 1.0, tile: int = 256):
        """Program weights `w` (in, out) in [0, w_max] onto fresh cells."""
        g_pos, g_neg, k = conductance_targets(w, device, jnp.float32(w_max))
        tp = to_tiles(g_pos, tile, tile, fill=device.g_min)
        tn = to_tiles(g_neg, tile, tile, fill=device.g_min)
        xb = program_crossbar(device, tp, tn, key=key)
        return cls(xb, k, n_input=w.shape[0], n_exc=w.shape[1])

    def read(self, t_s, key: PRNGKeyArray) -> Float[Array, "n_input n_exc"]:
        """One read of every weight at `t_s` after programming (mean and read
        noise from the device's `read_stats`), clipped at 0."""
        g_p, s_p, g_n, s_n = self.crossbar.read_stats(t_s)
        k1, k2 = jax.random.split(key)
        g = (
            g_p
            + s_p * jax.random.normal(k1, g_p.shape, g_p.dtype)
            - g_n
            - s_n * jax.random.normal(k2, g_n.shape, g_n.dtype)
        )
        w = from_tiles(g, self.n_input, self.n_exc) / self.g_per_w
        return jnp.maximum(w, 0.0)


@eqx.filter_jit
def train_on_devices(
    p: DiehlCook,
    syn: DeviceSynapses,
    theta: Float[Array, " n_exc"],
    xs: Float[Array, "n n_input"],
    key: PRNGKeyArray,
    *,
    t0_s: Float[Array, ""],
    w_per_pulse: Float[Array, ""],
    pulses: AbstractPulses = SingleCellPulses(),
):
    """`train` with the weights on device cells.

    Per example: read every weight once (drift at the time since programming,
    one read-noise draw), present the example with the neurons driven by these
    weights while the rule accumulates its changes on a copy, then write the
    change (with the per-neuron normalisation) to the cells as pulses:
    `(target - read) / w_per_pulse`, stochastically rounded, through
    `device.update` (its nonlinearity, bounds and cycle-to-cycle noise), split
    over the pair by `pulses`; the cells then relax for the presentation and
    rest. Returns (synapses, theta, spike counts per example, final time).
    """
    keys = jax.random.split(key, xs.shape[0])
    rule = PairSTDP(rounding=StochasticRounding(), pulses=pulses)
    t_example = p.n_steps * p.dt_s + p.t_rest_s

    def body(carry, xk):
        ns, syn, theta, t = carry
        x, k = xk
        k_read, k_present, k_round, k_dev = jax.random.split(k, 4)
        w_read = syn.read(t, k_read)
        ns, w_new, theta, counts, _ = present(
            p, ns, w_read, theta, x, k_present, learn=True, w_drive=w_read
        )
        target = normalize(w_new, p.weight_sum)
        n = StochasticRounding()((target - w_read) / w_per_pulse, key=k_round)
        xb = rule.apply(syn.crossbar, n, key=k_dev)
        xb = relax(xb, t_example)
        syn = eqx.tree_at(lambda s: s.crossbar, syn, xb)
        return (ns, syn, theta, t + t_example), counts

    (_, syn, theta, t), counts = jax.lax.scan(
        body, (_rest_state(p), syn, theta, jnp.asarray(t0_s, jnp.float32)), (xs, keys)
    )
    return syn, theta, counts, t
