"""Crossbar tiles: differential pairs of cells, and the one step every model runs."""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice, AbstractDeviceState
from xbar.circuits.ideal import AbstractCircuit, IdealCircuit, sample_currents
from xbar.periphery.converters import AbstractDAC


class Crossbar(eqx.Module):
    """A grid of tiles, each `rows x cols` differential pairs (G+, G-).

    Every leaf of `pos` and `neg` is shaped `(tiles_r, tiles_c, rows, cols)`:
    tiles are a batch axis, so one einsum computes all partial sums.

    Attributes:
        device: the cell model (its parameters).
        pos, neg: device states of the G+ and G- cells.
        circuit: how currents follow from cells and voltages (default: ideal,
            no wire resistance).
    """

    device: AbstractDevice
    pos: AbstractDeviceState
    neg: AbstractDeviceState
    circuit: AbstractCircuit = IdealCircuit()

    @property
    def grid(self) -> tuple[int, int]:
        tr, tc = self.pos.g.shape[:2]
        return tr, tc

    @property
    def tile_shape(self) -> tuple[int, int]:
        rows, cols = self.pos.g.shape[2:]
        return rows, cols

    def currents(
        self,
        v: Float[Array, "*batch tiles_r rows"],
        t_s,
        *,
        key: PRNGKeyArray | None,
    ) -> Float[Array, "*batch tiles_r tiles_c cols"]:
        """Column currents (A) of every tile for row voltages `v` (V).

        Row-tile `a` of the input drives every tile in grid row `a`. Leading
        batch axes are allowed; one key draws independent noise for each.
        """
        tr, _ = self.grid
        if v.shape[-2:] != (tr, self.tile_shape[0]):
            raise ValueError(
                f"row voltages must have shape (..., {tr}, {self.tile_shape[0]}); "
                f"got {v.shape}"
            )
        stats = self.circuit.current_stats(self.device, self.pos, self.neg, v, t_s)
        return sample_currents(stats, key)

    def read_stats(self, t_s):
        """Mean and std (S) of the G+ and G- cells at `t_s` after programming:
        `(g_pos, std_pos, g_neg, std_neg)`, each `(tiles_r, tiles_c, rows, cols)`."""
        return self.device.read_stats_pair(self.pos, self.neg, t_s)

    def differential_g(self, t_s):
        """Noise-free differential conductance `G+ - G-` (S) of every cell at `t_s`."""
        g_p, _, g_n, _ = self.read_stats(t_s)
        return g_p - g_n

    def map_states(self, fn) -> Crossbar:
        """A crossbar whose G+ and G- states are `fn(state)` (e.g. relax by dt)."""
        return Crossbar(self.device, fn(self.pos), fn(self.neg), self.circuit)


def step(
    crossbar: Crossbar,
    dac: AbstractDAC,
    u: Float[Array, "*batch tiles_r rows"],
    t_s,
    *,
    key: PRNGKeyArray | None,
) -> Float[Array, "*batch tiles_r tiles_c cols"]:
    """One analog step: normalized inputs -> DAC -> row voltages -> column currents.

    This is the whole analog part of a matrix-vector product, and the synaptic
    step of a spiking time loop (spikes are inputs in {0, 1}). The caller owns
    what comes after: an ADC and digital accumulation, or neuron membranes.

    Args:
        crossbar: the tiles.
        dac: row drivers; `u` in [-1, 1] becomes `dac(u)` volts.
        u: normalized inputs, one row-tile per grid row, zero-padded; leading
            batch axes allowed.
        t_s: time since programming (s).
        key: read-noise key, or None for the noise-free mean.
    """
    return crossbar.currents(dac(u), t_s, key=key)


def relax(crossbar: Crossbar, dt_s) -> Crossbar:
    """Advance every cell's state by `dt_s` seconds with no input."""
    return crossbar.map_states(lambda s: crossbar.device.relax(s, dt_s))


def program_crossbar(
    device: AbstractDevice,
    g_pos: Float[Array, "tiles_r tiles_c rows cols"],
    g_neg: Float[Array, "tiles_r tiles_c rows cols"],
    *,
    key: PRNGKeyArray,
    circuit: AbstractCircuit | None = None,
) -> Crossbar:
    """Fabricate fresh cells (device-to-device draws) and program them to targets."""
    k_init_p, k_init_n, k_prog_p, k_prog_n = jax.random.split(key, 4)
    pos = device.program(device.init(g_pos.shape, key=k_init_p), g_pos, key=k_prog_p)
    neg = device.program(device.init(g_neg.shape, key=k_init_n), g_neg, key=k_prog_n)
    return Crossbar(device, pos, neg, IdealCircuit() if circuit is None else circuit)
