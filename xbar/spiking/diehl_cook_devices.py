"""The Diehl & Cook (2015) network learning on device cells: the input
weights held as differential pairs on a crossbar, read once per example and
written back as pulses (`train_on_devices`), optionally with the periodic
refresh of SET-only differential pairs (`PairRefresh`)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import check_range
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


class PairRefresh(eqx.Module):
    """Refresh of differential pairs whose cells only get SET pulses (PCM:
    its RESET is abrupt, so depression is a SET of G-): both cells only climb
    and the pair saturates. As in PCM synapse arrays (Burr et al. 2015,
    Boybat et al. 2018), a pair is refreshed once either cell is above
    `g_min + level (g_max - g_min)`: its weight is read, both cells are
    RESET (`reset_pulses` negative pulses through `device.update`), and the
    weight is written back onto one cell (G+ for w > 0, G- for w < 0) by
    `n_verify` rounds of program-and-verify (a noisy read, then
    `(target - read) / w_per_pulse` SET pulses, stochastically rounded and
    never negative). Everything goes through the device's `update` and
    `read_stats`, so nonlinearity, cycle-to-cycle noise, drift with per-cell
    write clocks and read noise all apply."""

    level: float = 0.8
    n_verify: int = 3
    reset_pulses: float = 1.0

    def __check_init__(self):
        check_range("level", self.level, 0.0, 1.0, lo_open=True)
        check_range("n_verify", self.n_verify, 1)
        check_range("reset_pulses", self.reset_pulses, 0.0, lo_open=True)

    def __call__(self, syn: DeviceSynapses, t_s, w_per_pulse, *, key: PRNGKeyArray):
        """Returns (synapses, number of pairs refreshed)."""
        xb = syn.crossbar
        dev = xb.device
        g_p, _, g_n, _ = xb.read_stats(t_s)
        lvl = dev.g_min + self.level * (dev.g_max - dev.g_min)
        mask = (g_p > lvl) | (g_n > lvl)

        def noisy_w(xb, k):
            g_p, s_p, g_n, s_n = xb.read_stats(t_s)
            k1, k2 = jax.random.split(k)
            z1 = jax.random.normal(k1, g_p.shape, g_p.dtype)
            z2 = jax.random.normal(k2, g_n.shape, g_n.dtype)
            return (g_p + s_p * z1 - g_n - s_n * z2) / syn.g_per_w

        def refresh(xb):
            keys = jax.random.split(key, 3 + 3 * self.n_verify)
            target = noisy_w(xb, keys[0])
            reset = jnp.where(mask, -self.reset_pulses, 0.0)
            xb = Crossbar(
                dev,
                dev.update(xb.pos, reset, key=keys[1]),
                dev.update(xb.neg, reset, key=keys[2]),
                xb.circuit,
            )
            for i in range(self.n_verify):
                k_read, k_round, k_dev = keys[3 + 3 * i : 6 + 3 * i]
                cur = noisy_w(xb, k_read)
                need = jnp.where(target >= 0, target - cur, cur - target)
                n = StochasticRounding()(need / w_per_pulse, key=k_round)
                n = jnp.where(mask, jnp.maximum(n, 0.0), 0.0)
                kp, kn = jax.random.split(k_dev)
                xb = Crossbar(
                    dev,
                    dev.update(xb.pos, jnp.where(target >= 0, n, 0.0), key=kp),
                    dev.update(xb.neg, jnp.where(target < 0, n, 0.0), key=kn),
                    xb.circuit,
                )
            return xb

        xb = jax.lax.cond(jnp.any(mask), refresh, lambda xb: xb, xb)
        return eqx.tree_at(lambda s: s.crossbar, syn, xb), jnp.sum(mask)

    def fraction_saturated(self, syn: DeviceSynapses, t_s) -> dict:
        """Diagnostics (NumPy): the fraction of G+ and G- cells above the
        refresh level and above 95 % of the range, and their mean
        normalised conductance, over the real (unpadded) pairs."""
        g_p, _, g_n, _ = syn.crossbar.read_stats(t_s)
        dev = syn.crossbar.device
        out = {}
        for name, g in (("pos", g_p), ("neg", g_n)):
            g = np.asarray(from_tiles(g, syn.n_input, syn.n_exc))
            u = (g - float(dev.g_min)) / float(dev.g_max - dev.g_min)
            out[f"{name}_mean_fraction_of_range"] = float(u.mean())
            out[f"{name}_above_level"] = float(np.mean(u > self.level))
            out[f"{name}_above_95pct"] = float(np.mean(u > 0.95))
        return out


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
    refresh: PairRefresh | None = None,
):
    """`train` with the weights on device cells.

    Per example: read every weight once (drift at the time since programming,
    one read-noise draw), present the example with the neurons driven by these
    weights while the rule accumulates its changes on a copy, then write the
    change (with the per-neuron normalisation) to the cells as pulses:
    `(target - read) / w_per_pulse`, stochastically rounded, through
    `device.update` (its nonlinearity, bounds and cycle-to-cycle noise), split
    over the pair by `pulses`; the cells then relax for the presentation and
    rest. With `refresh`, saturated pairs are then refreshed (`PairRefresh`).
    Returns (synapses, theta, spike counts per example, final time, pairs
    refreshed per example).
    """
    keys = jax.random.split(key, xs.shape[0])
    rule = PairSTDP(rounding=StochasticRounding(), pulses=pulses)
    t_example = p.n_steps * p.dt_s + p.t_rest_s

    def body(carry, xk):
        ns, syn, theta, t = carry
        x, k = xk
        k_read, k_present, k_round, k_dev, k_ref = jax.random.split(k, 5)
        w_read = syn.read(t, k_read)
        ns, w_new, theta, counts, _ = present(
            p, ns, w_read, theta, x, k_present, learn=True, w_drive=w_read
        )
        target = normalize(w_new, p.weight_sum)
        n = StochasticRounding()((target - w_read) / w_per_pulse, key=k_round)
        xb = rule.apply(syn.crossbar, n, key=k_dev)
        xb = relax(xb, t_example)
        syn = eqx.tree_at(lambda s: s.crossbar, syn, xb)
        n_ref = jnp.int32(0)
        if refresh is not None:
            syn, n_ref = refresh(syn, t + t_example, w_per_pulse, key=k_ref)
        return (ns, syn, theta, t + t_example), (counts, n_ref)

    (_, syn, theta, t), (counts, n_ref) = jax.lax.scan(
        body, (_rest_state(p), syn, theta, jnp.asarray(t0_s, jnp.float32)), (xs, keys)
    )
    return syn, theta, counts, t, n_ref
