"""The Diehl & Cook (2015) network in time: one step, one presentation (with
the retries at higher intensity and the rest in closed form), `train` and
`respond`. Equations: `xbar.spiking.diehl_cook`.

Event-driven work per step (exact: the same arithmetic as the dense step on
every synapse a spike touches, nothing on the others):

- the input current is the sum of the weight rows of the inputs that spiked
  (their indices for the whole presentation come from one `nonzero` per
  step, computed up front), and the pre-spike depression updates only those
  rows; a step with more than `k_rows` input spikes takes the dense product
  and the dense depression instead;
- the post-spike potentiation (the costly `(w_max - w)^mu`) runs only on a
  step with an excitatory spike, and only on the columns of the (at most
  `k_cols`) neurons that spiked, else on every column masked by the spikes.

Only the order of the summation of the input current differs from the dense
product (float32 rounding). `k_rows = 0` runs the dense step everywhere.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from xbar.spiking.diehl_cook_model import DiehlCook, normalize


class _Neurons(eqx.Module):
    v_e: Array
    ge_e: Array
    gi_e: Array
    ref_e: Array
    v_i: Array
    ge_i: Array
    gi_i: Array
    ref_i: Array
    x_pre: Array
    x_post: Array


def _rest_state(p: DiehlCook) -> _Neurons:
    ze, zi = jnp.zeros((p.n_exc,), jnp.float32), jnp.zeros((p.n_input,), jnp.float32)
    return _Neurons(
        v_e=jnp.full((p.n_exc,), p.v_rest_e, jnp.float32),
        ge_e=ze,
        gi_e=ze,
        ref_e=ze,
        v_i=jnp.full((p.n_exc,), p.v_rest_i, jnp.float32),
        ge_i=ze,
        gi_i=ze,
        ref_i=ze,
        x_pre=zi,
        x_post=ze,
    )


def _membrane(v, ge, gi, v_rest, e_exc, e_inh, tau, dt):
    g = 1.0 + ge + gi
    v_inf = (v_rest + ge * e_exc + gi * e_inh) / g
    return v_inf + (v - v_inf) * jnp.exp(-dt * g / tau)


def _step_mean(tau: float, dt: float) -> float:
    """Mean over one step of a unit conductance decaying with `tau`."""
    return float(tau / dt * -np.expm1(-dt / tau))


def _chunks(idx, n, k: int, fill: int, body, init):
    """Run `body(carry, chunk)` over the first `n` entries of the index list
    `idx` (padded with `fill`) in chunks of `k` (the last chunk padded with
    `fill`): a `while_loop` of `ceil(n / k)` iterations, none when `n = 0`.
    (A `while_loop` updates the carried weights in place, where a `cond`
    with the weights as operand copies them every step.)"""
    pad = jnp.concatenate([idx, jnp.full((k,), fill, idx.dtype)])

    def step(c):
        i, carry = c
        chunk = jax.lax.dynamic_slice(pad, (i * k,), (k,))
        chunk = jnp.where(jnp.arange(k) + i * k < n, chunk, fill)
        return i + 1, body(carry, chunk)

    return jax.lax.while_loop(lambda c: c[0] * k < n, step, (jnp.int32(0), init))[1]


def _input(p: DiehlCook, learn: bool, w, w_drive, x_post, s_in, rows, n_in):
    """This step's input current (through `w_drive` if given, else `w`) and,
    when learning, `w` after the pre-spike depression by the decayed post
    trace `x_post`: on the rows of the spiking inputs only, `k_rows` at a
    time (module docstring); `k_rows = 0`: dense."""
    ltd = p.stdp.ltd(x_post)
    if p.k_rows == 0:
        cur = jnp.dot(s_in, w if w_drive is None else w_drive)
        if learn:
            w = jnp.maximum(w + s_in[:, None] * ltd[None, :], 0.0)
        return cur, w

    def body(c, r):
        cur, w = c
        sub = w.at[r].get(mode="fill", fill_value=0.0)
        src = sub if w_drive is None else w_drive.at[r].get(mode="fill", fill_value=0.0)
        cur = cur + jnp.sum(src, axis=0)
        if learn:
            w = w.at[r].set(jnp.maximum(sub + ltd[None, :], 0.0), mode="drop")
        return cur, w

    zero = jnp.zeros((p.n_exc,), jnp.float32)
    return _chunks(rows, n_in, p.k_rows, p.n_input, body, (zero, w))


def _potentiate(p: DiehlCook, w, x_pre, s_e):
    """Post-spike potentiation (`DiehlCookSTDP.step`) on the spiking
    neurons' columns only, `k_cols` at a time (nothing on a step without an
    excitatory spike); `k_cols = 0` or `k_rows = 0`: dense."""
    rule = p.stdp
    if p.k_rows == 0 or p.k_cols == 0:
        return jax.lax.cond(
            jnp.any(s_e > 0),
            lambda w: jnp.where(
                s_e[None, :] > 0, jnp.clip(w + rule.ltp(w, x_pre), 0.0, rule.w_max), w
            ),
            lambda w: w,
            w,
        )
    cols = jnp.nonzero(s_e > 0, size=p.n_exc, fill_value=p.n_exc)[0]

    def body(w, c):
        sub = w.at[:, c].get(mode="fill", fill_value=0.0)
        sub = jnp.clip(sub + rule.ltp(sub, x_pre), 0.0, rule.w_max)
        return w.at[:, c].set(sub, mode="drop")

    n = jnp.sum(s_e > 0).astype(jnp.int32)
    return _chunks(cols, n, p.k_cols, p.n_exc, body, w)


def _step(p: DiehlCook, learn: bool, w_drive, carry, inp):
    """One step of the network for one example (module docstring). The input
    current flows through `w_drive` if given (weights held on devices while
    the rule accumulates its changes in `w`), else through `w`."""
    ns, w, theta, counts = carry
    s_in, rows, n_in = inp
    dt = p.dt_s
    active_e = ns.ref_e <= 0.5 * dt
    # Conductances decay within the step: the membrane sees their step mean.
    fe, fi = _step_mean(p.tau_ge_s, dt), _step_mean(p.tau_gi_s, dt)
    v_e = _membrane(
        ns.v_e,
        fe * ns.ge_e,
        fi * ns.gi_e,
        p.v_rest_e,
        p.e_exc,
        p.e_inh_e,
        p.tau_e_s,
        dt,
    )
    v_e = jnp.where(active_e, v_e, p.v_reset_e)
    s_e = (active_e & (v_e > p.v_thresh_e - p.offset_e + theta)).astype(jnp.float32)
    v_e = jnp.where(s_e > 0, p.v_reset_e, v_e)
    ref_e = jnp.where(s_e > 0, p.t_ref_e_s, jnp.maximum(ns.ref_e - dt, 0.0))
    active_i = ns.ref_i <= 0.5 * dt
    v_i = _membrane(
        ns.v_i,
        fe * ns.ge_i,
        fi * ns.gi_i,
        p.v_rest_i,
        p.e_exc,
        p.e_inh_i,
        p.tau_i_s,
        dt,
    )
    v_i = jnp.where(active_i, v_i, p.v_reset_i)
    s_i = (active_i & (v_i > p.v_thresh_i)).astype(jnp.float32)
    v_i = jnp.where(s_i > 0, p.v_reset_i, v_i)
    ref_i = jnp.where(s_i > 0, p.t_ref_i_s, jnp.maximum(ns.ref_i - dt, 0.0))
    de, di = np.exp(-dt / p.tau_ge_s), np.exp(-dt / p.tau_gi_s)
    # The rule's traces decay first; pre spikes depress by the decayed post
    # trace (DiehlCookSTDP.step), computed with the input current.
    x_pre = ns.x_pre * np.exp(-dt / p.stdp.tau_pre_s) if learn else ns.x_pre
    x_post = ns.x_post * np.exp(-dt / p.stdp.tau_post_s) if learn else ns.x_post
    cur, w = _input(p, learn, w, w_drive, x_post, s_in, rows, n_in)
    ge_e = ns.ge_e * de + cur
    gi_e = ns.gi_e * di + p.w_ie * (jnp.sum(s_i) - s_i)
    ge_i = ns.ge_i * de + p.w_ei * s_e
    gi_i = ns.gi_i * di
    if learn:
        theta = theta * np.exp(-dt / p.tau_theta_s) + p.theta_plus * s_e
        x_pre = jnp.where(s_in > 0, 1.0, x_pre)
        w = _potentiate(p, w, x_pre, s_e)
        x_post = jnp.where(s_e > 0, 1.0, x_post)
    ns = _Neurons(v_e, ge_e, gi_e, ref_e, v_i, ge_i, gi_i, ref_i, x_pre, x_post)
    return (ns, w, theta, counts + s_e), None


def _rest(p: DiehlCook, ns: _Neurons, theta, learn: bool):
    """The `t_rest_s` pause in closed form (no input, conductances gone)."""
    t = p.t_rest_s
    ns = _Neurons(
        v_e=p.v_rest_e + (ns.v_e - p.v_rest_e) * np.exp(-t / p.tau_e_s),
        ge_e=jnp.zeros_like(ns.ge_e),
        gi_e=jnp.zeros_like(ns.gi_e),
        ref_e=jnp.maximum(ns.ref_e - t, 0.0),
        v_i=p.v_rest_i + (ns.v_i - p.v_rest_i) * np.exp(-t / p.tau_i_s),
        ge_i=jnp.zeros_like(ns.ge_i),
        gi_i=jnp.zeros_like(ns.gi_i),
        ref_i=jnp.maximum(ns.ref_i - t, 0.0),
        x_pre=ns.x_pre * np.exp(-t / p.stdp.tau_pre_s),
        x_post=ns.x_post * np.exp(-t / p.stdp.tau_post_s),
    )
    if learn:
        theta = theta * np.exp(-t / p.tau_theta_s)
    return ns, theta


def _poisson(p: DiehlCook, x, intensity, key):
    """Input spikes of one try `(n_steps, n_input)`, the indices of each
    step's spiking inputs (`k_rows` per step, padded with `n_input`) and their
    number."""
    prob = jnp.clip(x * p.rate_per_intensity_hz * intensity * p.dt_s, 0.0, 1.0)
    u = jax.random.uniform(key, (p.n_steps, p.n_input), jnp.float32)
    s = u < prob[None, :]
    k = p.n_input if p.k_rows else 1
    rows = jax.vmap(lambda r: jnp.nonzero(r, size=k, fill_value=p.n_input)[0])(s)
    return s.astype(jnp.float32), rows, jnp.sum(s, axis=1, dtype=jnp.int32)


def present(p: DiehlCook, ns, w, theta, x, key, *, learn: bool, w_drive=None):
    """Show one example (retrying at higher intensity while the excitatory
    layer fires fewer than `min_spikes`), each try followed by the rest.

    Returns (neurons, w, theta, spike counts of the last try, intensity).
    """
    step = lambda c, s: _step(p, learn, w_drive, c, s)  # noqa: E731

    def one(state):
        ns, w, theta, _, intensity, k, tries = state
        k, k_in = jax.random.split(k)
        inp = _poisson(p, x, intensity, k_in)
        zero = jnp.zeros((p.n_exc,), jnp.float32)
        (ns, w, theta, counts), _ = jax.lax.scan(step, (ns, w, theta, zero), inp)
        ns, theta = _rest(p, ns, theta, learn)
        return ns, w, theta, counts, intensity + 1.0, k, tries + 1

    def again(state):
        counts, tries = state[3], state[6]
        return (jnp.sum(counts) < p.min_spikes) & (tries <= p.max_retries)

    zero = jnp.zeros((p.n_exc,), jnp.float32)
    init = (ns, w, theta, zero, jnp.float32(p.intensity), key, jnp.int32(0))
    ns, w, theta, counts, intensity, _, _ = jax.lax.while_loop(again, one, one(init))
    return ns, w, theta, counts, intensity - 1.0


@eqx.filter_jit
def train(
    p: DiehlCook,
    w: Float[Array, "n_input n_exc"],
    theta: Float[Array, " n_exc"],
    xs: Float[Array, "n n_input"],
    key: PRNGKeyArray,
):
    """Learn from `xs` one example at a time (normalise, present with STDP
    and homeostasis, rest). Returns (w, theta, spike counts per example)."""
    keys = jax.random.split(key, xs.shape[0])

    def body(carry, xk):
        ns, w, theta = carry
        x, k = xk
        w = normalize(w, p.weight_sum)
        ns, w, theta, counts, _ = present(p, ns, w, theta, x, k, learn=True)
        return (ns, w, theta), counts

    (_, w, theta), counts = jax.lax.scan(body, (_rest_state(p), w, theta), (xs, keys))
    return normalize(w, p.weight_sum), theta, counts


@eqx.filter_jit
def respond(
    p: DiehlCook,
    w: Float[Array, "n_input n_exc"],
    theta: Float[Array, " n_exc"],
    xs: Float[Array, "n n_input"],
    key: PRNGKeyArray,
) -> Float[Array, "n n_exc"]:
    """Spike counts of every example with learning and homeostasis off (each
    example from rest, independently). Examples run one after another
    (`lax.map`): each retries at higher intensity only as often as it needs
    (vectorised, every retry of one example would re-run the whole batch)."""
    keys = jax.random.split(key, xs.shape[0])

    def one(xk):
        x, k = xk
        return present(p, _rest_state(p), w, theta, x, k, learn=False)[3]

    return jax.lax.map(one, (xs, keys))
