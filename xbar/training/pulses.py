"""How a desired weight change becomes device pulses (on-chip learning).

SGD asks every cell for `dW = -lr * delta x^T` (outer product of the output
error `delta` and the input `x` of one example). A chip cannot write floats:
it sends pulses, and each cell moves by whatever its device's `update` does
with them (nonlinearity, asymmetry, bounds, cycle-to-cycle noise). A pulse
rule turns one example's `(x, delta)` into signed per-cell pulse counts, in
units of the nominal weight change of one pulse:

- `NeuroSimPulses`: each cell's desired change, rounded to whole pulses and
  capped (`sign_only`: one pulse of the change's sign where the rounded count
  is nonzero, the Manhattan rule), as NeuroSim's online-learning benchmark;
- `StochasticPulses`: the row and column pulse trains of Gokmen & Vlasov
  (Front. Neurosci. 10:333, 2016, doi 10.3389/fnins.2016.00333): each of
  `bl` time slots fires row j with probability `p_x = C_x |x_j|` and column i
  with `p_d = C_d |delta_i|`; a cell gets a pulse where both fire, so its count
  is Binomial(bl, p_x p_d) with mean `bl C_x C_d |x_j delta_i|` = the desired
  change. Update management balances the two trains
  (`C_x / C_d = sqrt(max|delta| / max|x|)`), so neither saturates first.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Key, PRNGKeyArray

from xbar.circuits import noise


def bernoulli(key: PRNGKeyArray, p: Float[Array, "*s"]) -> Array:
    """Independent Bernoulli(p) draws of `p`'s shape (bool): one unrolled
    Threefry-2x32 hash per element (`xbar.circuits.noise`), 24-bit uniform,
    fused with the comparison (~3x cheaper on CPU than `jax.random.bernoulli`,
    whose hash is a rolled loop); elementwise in the key, so `vmap` over keys
    draws independent streams."""
    k0, k1 = noise.stream_key(key)
    i = jax.lax.iota(jnp.uint32, p.size).reshape(p.shape)
    w0, _ = noise.threefry2x32(k0, k1, i, jnp.zeros(p.shape, jnp.uint32))
    u = (w0 >> np.uint32(8)).astype(jnp.float32) * np.float32(2.0**-24)
    return u < p


def _int_at_least_1(name: str, v) -> None:
    if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {name}={v!r}")


class AbstractPulseRule(eqx.Module):
    """Turns one example's input and error into signed pulse counts."""

    @abc.abstractmethod
    def counts(
        self,
        x: Float[Array, " n_in"],
        delta: Float[Array, " n_out"],
        scale,
        *,
        key: PRNGKeyArray,
    ) -> Float[Array, "n_out n_in"]:
        """Signed pulse counts for the desired change `-scale * delta x^T`
        (in pulses: `scale` is the learning rate over the weight change of one
        pulse)."""

    def summed_counts(
        self,
        xs: Float[Array, "e n_in"],
        deltas: Float[Array, "e n_out"],
        scale,
        keys: Key[Array, " e"],
    ) -> Float[Array, "n_out n_in"]:
        """The sum over examples of `counts` (one key per example): the pulses
        a batched update applies at once."""
        return jnp.sum(
            jax.vmap(lambda x, d, k: self.counts(x, d, scale, key=k))(xs, deltas, keys),
            axis=0,
        )


class NeuroSimPulses(AbstractPulseRule):
    """Desired change rounded to whole pulses, at most `max_pulses` per cell
    and update; `sign_only`: one pulse of its sign where that is nonzero.

    Args:
        max_pulses: cap per cell and update, integer >= 1.
        sign_only: the Manhattan rule (static).
    """

    max_pulses: int = eqx.field(static=True, default=16)
    sign_only: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _int_at_least_1("max_pulses", self.max_pulses)

    def counts(self, x, delta, scale, *, key):
        del key
        n = jnp.round(-scale * jnp.outer(delta, x))
        if self.sign_only:
            return jnp.sign(n)
        m = float(self.max_pulses)
        return jnp.clip(n, -m, m)


class StochasticPulses(AbstractPulseRule):
    """Coincidences of stochastic row and column pulse trains (Gokmen & Vlasov).

    Args:
        bl: slots per train (the most pulses one update can give a cell),
            integer >= 1.
        update_management: balance the trains' probabilities (static).
    """

    bl: int = eqx.field(static=True, default=31)
    update_management: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        _int_at_least_1("bl", self.bl)

    def probabilities(self, x, delta, scale):
        """`(p_x, p_d)`: the row and column trains' firing probabilities."""
        c = jnp.sqrt(jnp.asarray(scale, jnp.float32) / self.bl)
        ax, ad = jnp.abs(x), jnp.abs(delta)
        if self.update_management:
            mx, md = jnp.max(ax), jnp.max(ad)
            ok = (mx > 0) & (md > 0)
            r = jnp.sqrt(jnp.where(ok, md, 1.0) / jnp.where(ok, mx, 1.0))
            cx, cd = c * r, c / r
        else:
            cx = cd = c
        return jnp.clip(cx * ax, 0.0, 1.0), jnp.clip(cd * ad, 0.0, 1.0)

    def _signed_trains(self, x, delta, scale, key):
        """Row and column trains `(bl, n_in)`, `(bl, n_out)` (1 where a slot
        fires), signed by `sign(x)` and `-sign(delta)`."""
        k_x, k_d = jax.random.split(key)
        p_x, p_d = self.probabilities(x, delta, scale)
        rows = bernoulli(k_x, jnp.broadcast_to(p_x, (self.bl,) + x.shape))
        cols = bernoulli(k_d, jnp.broadcast_to(p_d, (self.bl,) + delta.shape))
        return (
            rows.astype(jnp.float32) * jnp.sign(x)[None],
            cols.astype(jnp.float32) * -jnp.sign(delta)[None],
        )

    def counts(self, x, delta, scale, *, key):
        rows, cols = self._signed_trains(x, delta, scale, key)
        # The coincidences of the trains: one matrix product over the slots.
        return jnp.einsum("ti,tj->ij", cols, rows)

    def summed_counts(self, xs, deltas, scale, keys):
        # All examples' slots in one contraction (examples x bl), without the
        # (examples, out, in) per-example counts.
        rows, cols = jax.vmap(lambda x, d, k: self._signed_trains(x, d, scale, k))(
            xs, deltas, keys
        )
        rows = rows.reshape((-1, xs.shape[-1]))
        cols = cols.reshape((-1, deltas.shape[-1]))
        return jnp.einsum("ti,tj->ij", cols, rows)
