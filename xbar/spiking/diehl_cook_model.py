"""Diehl & Cook (2015) network: its parameters, the STDP rule and its
closed form, the per-neuron weight normalisation and the label assignment.

The equations are described in `xbar.spiking.diehl_cook` (the public
module); the time loop is `xbar.spiking.diehl_cook_loop`, the device path
`xbar.spiking.diehl_cook_devices`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import check_range


class DiehlCookSTDP(eqx.Module):
    """The learning rule (module docstring): on a post spike
    `dw = nu_post (x_pre - x_tar) (w_max - w)^mu`, on a pre spike
    `dw = -nu_pre x_post`; traces set to 1 at a spike and decaying with
    `tau_pre_s`, `tau_post_s`.

    A single pair, pre then post after a delay `d >= 0`, therefore changes a
    weight by `nu_post (exp(-d / tau_pre) - x_tar) (w_max - w)^mu`; post then
    pre by `-nu_pre exp(-d / tau_post) - nu_post x_tar (w_max - w)^mu`
    (`stdp_pair_closed_form`).
    """

    nu_pre: float = 1e-4
    nu_post: float = 1e-2
    tau_pre_s: float = 20e-3
    tau_post_s: float = 20e-3
    x_tar: float = 0.0
    mu: float = 0.2
    w_max: float = 1.0

    def __check_init__(self):
        check_range("nu_pre", self.nu_pre, 0.0)
        check_range("nu_post", self.nu_post, 0.0)
        check_range("tau_pre_s", self.tau_pre_s, 0.0, lo_open=True, unit="s")
        check_range("tau_post_s", self.tau_post_s, 0.0, lo_open=True, unit="s")
        check_range("x_tar", self.x_tar, 0.0, 1.0)
        check_range("mu", self.mu, 0.0)
        check_range("w_max", self.w_max, 0.0, lo_open=True)

    def ltp(self, w: Array, x_pre: Array) -> Array:
        """Change of `w` (in, out) at a post spike of every column."""
        return (
            self.nu_post * (x_pre[:, None] - self.x_tar) * _pow(self.w_max - w, self.mu)
        )

    def ltd(self, x_post: Array) -> Array:
        """Change of a weight row at a pre spike (no weight dependence, as
        in the published code)."""
        return -self.nu_pre * x_post

    def step(self, w, x_pre, x_post, s_pre, s_post, dt_s: float):
        """One time step of the rule, dense (the reference the network's
        sparse step is tested against): traces decay, pre spikes depress
        their rows by the post trace (before this step's post spikes set it;
        weights kept >= 0), pre traces are set, post spikes potentiate their
        columns by the pre trace (after this step's pre spikes set it) and
        clip those columns to [0, w_max], post traces are set. The order of
        the published code; only the synapses a spike updates are clipped, as
        in an event-driven simulator. Returns (w, x_pre, x_post)."""
        x_pre = x_pre * np.exp(-dt_s / self.tau_pre_s)
        x_post = x_post * np.exp(-dt_s / self.tau_post_s)
        w = jnp.maximum(w + s_pre[:, None] * self.ltd(x_post)[None, :], 0.0)
        x_pre = jnp.where(s_pre > 0, 1.0, x_pre)
        w = jax.lax.cond(
            jnp.any(s_post > 0),
            lambda w: jnp.where(
                s_post[None, :] > 0,
                jnp.clip(w + self.ltp(w, x_pre), 0.0, self.w_max),
                w,
            ),
            lambda w: w,
            w,
        )
        x_post = jnp.where(s_post > 0, 1.0, x_post)
        return w, x_pre, x_post

    def ltp_columns(self, w: Array, x_pre: Array, s_post: Array, k: int) -> Array:
        """The post-spike update of `step` on the columns of the (at most
        `k`) spiking neurons only: gathered, updated, scattered back.
        Identical to the dense update when at most `k` neurons spike."""
        cols = jnp.nonzero(s_post > 0, size=k, fill_value=w.shape[1])[0]
        sub = w.at[:, cols].get(mode="fill", fill_value=0.0)
        sub = jnp.clip(sub + self.ltp(sub, x_pre), 0.0, self.w_max)
        return w.at[:, cols].set(sub, mode="drop")


def _pow(x: Array, mu: float) -> Array:
    if mu == 0.0:
        return jnp.ones_like(x)
    return jnp.power(jnp.maximum(x, 0.0), mu)


def stdp_pair_closed_form(rule: DiehlCookSTDP, w: float, delay_s: float) -> float:
    """Weight change of one pre/post pair; `delay_s = t_post - t_pre` (float64)."""
    if delay_s >= 0:
        return (
            rule.nu_post
            * (np.exp(-delay_s / rule.tau_pre_s) - rule.x_tar)
            * ((rule.w_max - w) ** rule.mu)
        )
    # The lone post spike meets an empty pre trace: `nu_post (0 - x_tar) ...`.
    return -rule.nu_pre * np.exp(delay_s / rule.tau_post_s) - rule.nu_post * (
        rule.x_tar * (rule.w_max - w) ** rule.mu
    )


class DiehlCook(eqx.Module):
    """The network's parameters (SI units; defaults are the published ones).

    Static configuration: every field is a Python number, so a compiled
    function specialises on it.
    """

    n_input: int = 784
    n_exc: int = 100
    dt_s: float = 0.5e-3
    t_present_s: float = 0.35
    t_rest_s: float = 0.15
    rate_per_intensity_hz: float = 255.0 / 8.0
    intensity: float = 2.0
    min_spikes: int = 5
    max_retries: int = 8
    # excitatory neurons
    v_rest_e: float = -65e-3
    v_reset_e: float = -65e-3
    v_thresh_e: float = -52e-3
    offset_e: float = 20e-3
    tau_e_s: float = 100e-3
    t_ref_e_s: float = 5e-3
    e_exc: float = 0.0
    e_inh_e: float = -100e-3
    tau_ge_s: float = 1e-3
    tau_gi_s: float = 2e-3
    theta_plus: float = 0.05e-3
    tau_theta_s: float = 1e4
    theta_init: float = 20e-3
    # inhibitory neurons
    v_rest_i: float = -60e-3
    v_reset_i: float = -45e-3
    v_thresh_i: float = -40e-3
    tau_i_s: float = 10e-3
    t_ref_i_s: float = 2e-3
    e_inh_i: float = -85e-3
    w_ei: float = 10.4
    w_ie: float = 17.0
    # input synapses
    w_init_max: float = 0.3
    weight_sum: float = 78.0
    stdp: DiehlCookSTDP = DiehlCookSTDP()
    # event-driven work per step (speed only; 0 = dense every step)
    k_rows: int = 32
    k_cols: int = 2

    def __check_init__(self):
        check_range("n_input", self.n_input, 1)
        check_range("n_exc", self.n_exc, 1)
        check_range("dt_s", self.dt_s, 0.0, 2e-3, lo_open=True, unit="s")
        check_range("t_present_s", self.t_present_s, 0.0, lo_open=True, unit="s")
        check_range("t_rest_s", self.t_rest_s, 0.0, unit="s")
        check_range("intensity", self.intensity, 0.0, lo_open=True)
        check_range("theta_plus", self.theta_plus, 0.0, unit="V")
        check_range("tau_theta_s", self.tau_theta_s, 0.0, lo_open=True, unit="s")
        check_range("weight_sum", self.weight_sum, 0.0, lo_open=True)
        check_range("k_rows", self.k_rows, 0)
        check_range("k_cols", self.k_cols, 0)
        if self.v_thresh_e - self.offset_e + self.theta_init <= self.v_reset_e:
            raise ValueError("v_thresh_e - offset_e + theta_init must exceed v_reset_e")

    @property
    def n_steps(self) -> int:
        return int(round(self.t_present_s / self.dt_s))

    def init_weights(self, key: PRNGKeyArray) -> Float[Array, "n_input n_exc"]:
        """Uniform [0, w_init_max) input weights, rows = inputs."""
        return jax.random.uniform(
            key, (self.n_input, self.n_exc), jnp.float32, 0.0, self.w_init_max
        )

    def init_theta(self) -> Float[Array, " n_exc"]:
        return jnp.full((self.n_exc,), self.theta_init, jnp.float32)


def normalize(
    w: Float[Array, "n_in n_out"], total: float
) -> Float[Array, "n_in n_out"]:
    """Scale every column (one neuron's inputs) to sum to `total`."""
    s = jnp.sum(w, axis=0, keepdims=True)
    return w * (total / jnp.where(s > 0, s, 1.0))


def assign_labels(counts, labels, n_classes: int = 10) -> np.ndarray:
    """Each neuron's class: the one with its highest average response."""
    counts, labels = np.asarray(counts), np.asarray(labels)
    rates = np.stack(
        [
            counts[labels == c].mean(0)
            if np.any(labels == c)
            else np.zeros(counts.shape[1])
            for c in range(n_classes)
        ]
    )
    return np.argmax(rates, axis=0)


def classify(counts, assignments, n_classes: int = 10) -> np.ndarray:
    """Each example's class: highest mean count over the neurons assigned to it."""
    counts = np.asarray(counts)
    scores = np.stack(
        [
            counts[:, assignments == c].mean(1)
            if np.any(assignments == c)
            else np.full(counts.shape[0], -1.0)
            for c in range(n_classes)
        ],
        axis=1,
    )
    return np.argmax(scores, axis=1)
