"""The options of a spiking run (`xbar.spiking.run`): what it keeps of its
steps (`AbstractRecord`: `EveryStep`, `SpikeCounts`) and when a run without
plasticity re-reads its drifting devices (`AbstractReadSchedule`:
`ReadEveryStep`, `ReadEvery`, `LogSpacedReads`)."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from devices.base import as_param, check_range
from xbar.spiking.network import SpikingNetwork


def _zeros_per_layer(net: SpikingNetwork, batch) -> tuple[Array, ...]:
    return tuple(
        jnp.zeros(batch + (lay.out_features,), jnp.float32) for lay in net.layers
    )



# -- what a run keeps ------------------------------------------------------------


class AbstractRecord(eqx.Module):
    """What `run` keeps of the steps: an accumulator carried through the scan
    and a per-step output that the scan stacks."""

    @abc.abstractmethod
    def zero(self, net: SpikingNetwork, batch: tuple[int, ...]) -> Any:
        """The accumulator before the first step."""

    @abc.abstractmethod
    def add(self, acc, out: dict) -> tuple[Any, Any]:
        """`(acc, y)` after one step whose `network_step` output is `out` (or
        after a block of steps whose `of_block` is `out`); the scan stacks `y`."""

    @abc.abstractmethod
    def of_block(self, acc, ys) -> dict:
        """What a block of steps (its accumulator and stacked outputs) adds, in
        the form `add` takes."""

    @abc.abstractmethod
    def result(self, acc, ys) -> dict:
        """The record `run` returns (before `dense_ops`)."""


class EveryStep(AbstractRecord):
    """Spikes `"s"` and membranes `"v"` (tuples per layer, `(time, *batch, n)`)
    and synaptic operations `"syn_ops"` `(time, *batch)` of every step."""

    def zero(self, net, batch):
        return ()

    def add(self, acc, out):
        return acc, out

    def of_block(self, acc, ys):
        return ys

    def result(self, acc, ys):
        return dict(ys)


class SpikeCounts(AbstractRecord):
    """Spike counts `"counts"` (per layer, `(*batch, n)`) and synaptic
    operations `"syn_ops"` `(*batch,)` summed over the run: memory
    independent of the number of steps."""

    def zero(self, net, batch):
        return {
            "s": _zeros_per_layer(net, batch),
            "syn_ops": jnp.zeros(batch, jnp.float32),
        }

    def add(self, acc, out):
        acc = {
            "s": tuple(a + s for a, s in zip(acc["s"], out["s"])),
            "syn_ops": acc["syn_ops"] + out["syn_ops"],
        }
        return acc, None

    def of_block(self, acc, ys):
        return acc

    def result(self, acc, ys):
        return {"counts": acc["s"], "syn_ops": acc["syn_ops"]}


# -- when a non-plastic run re-reads its devices -------------------------------


class AbstractReadSchedule(eqx.Module):
    """When a run without plasticity re-evaluates its devices' reads (drifted
    mean with the slow read deviation, and the fast read-noise std). Between
    two reads the cells' statistics are held; the fast read noise is still
    drawn fresh every step; the cells relax by the whole interval at its
    end (exact for the families here: clocks add and exponential volatile
    decay composes)."""

    @property
    def reads_every_step(self) -> bool:
        """Whether every step reads (no test needed)."""
        return False

    @abc.abstractmethod
    def interval(
        self, t_youngest_s: Array, dt_s: Array, tau_s: Array
    ) -> Array:
        """Steps (int32, >= 1) from a read at which the youngest cell is
        `t_youngest_s` old (seconds since its last write) to the next read;
        `tau_s` is the shortest volatile time constant of the network's
        devices (inf if none)."""


class ReadEveryStep(AbstractReadSchedule):
    """Read the devices at every step (exact; the only schedule plastic runs
    allow, and their default)."""

    @property
    def reads_every_step(self) -> bool:
        return True

    def interval(self, t_youngest_s, dt_s, tau_s):
        return jnp.int32(1)


class ReadEvery(AbstractReadSchedule):
    """Read the devices every `steps` steps (the last interval of a run may be
    shorter). For power-law drift `(1 + t/t0)^-nu` the relative error of the
    mean read is at most `nu (steps - 1) dt / t`, `t` the youngest cell's age
    at the read."""

    steps: int = eqx.field(static=True)

    def __check_init__(self):
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or (
            self.steps < 1
        ):
            raise ValueError(
                f"ReadEvery.steps must be an integer >= 1; got {self.steps!r}"
            )


    def interval(self, t_youngest_s, dt_s, tau_s):
        return jnp.int32(self.steps)


class LogSpacedReads(AbstractReadSchedule):
    """Read the devices whenever the youngest cell's age `t` (time since
    its last write, i.e. since programming for a programmed array) has grown
    by the factor `exp(max_log_step)` since the last read, and at least every
    `max_log_step tau` for devices with a volatile time constant `tau`
    (`tau_s`: ionic, perovskite); at least one step per read.

    Error bound: drift in this library is a function of `ln(1 + t/t0)`
    (PCM's power law `(1 + t/t0)^-nu`, RRAM's logarithmic retention), and
    `ln((t2 + t0)/(t1 + t0)) <= ln(t2/t1) <= max_log_step` within an
    interval, so the held mean read differs from the exact one by at most
    `nu max_log_step` relatively for PCM (1e-3 for nu = 0.1 at the default
    0.01) and by `m span max_log_step` for RRAM retention slope `m`; a
    volatile component `q exp(-t/tau)` moves by at most `max_log_step |q|`.
    The slow read deviation is re-evaluated at each read, so it too advances
    with the drift, not per step. Reads are log-spaced in time: a run from
    `t = 1 s` to `2 s` reads `ln 2 / 0.01 = 70` times."""

    max_log_step: Float[Array, ""] = eqx.field(converter=as_param, default=0.01)

    def __check_init__(self):
        check_range("max_log_step", self.max_log_step, 0.0, 1.0, lo_open=True)

    def interval(self, t_youngest_s, dt_s, tau_s):
        span = jnp.minimum(
            t_youngest_s * jnp.expm1(self.max_log_step), self.max_log_step * tau_s
        )
        # The steps of an interval read at t + j dt for j < m: (m - 1) dt <= span.
        m = jnp.floor(jnp.minimum(span / dt_s, 2.0**30)) + 1.0
        return jnp.maximum(m, 1.0).astype(jnp.int32)
