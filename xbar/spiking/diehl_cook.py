"""Unsupervised digit learning after Diehl & Cook (2015), Front. Comput.
Neurosci. 9:99, doi 10.3389/fncom.2015.00099.

The network, with the published parameters (the authors' Brian code):

- Input: each pixel `x in [0, 1]` is a Poisson spike train of rate
  `x * 255 / 8 * intensity` Hz (63.75 Hz at the start intensity 2), shown for
  350 ms, then 150 ms of rest. If the excitatory layer fires fewer than 5
  spikes, the example is shown again with the intensity raised by 1.
- Excitatory layer: conductance-based leaky integrate-and-fire neurons,
  `tau dv/dt = (v_rest - v) + g_e (E_exc - v) + g_i (E_inh - v)`
  (tau 100 ms, v_rest -65 mV, E_exc 0, E_inh -100 mV), conductances decaying
  with 1 ms (excitatory) and 2 ms (inhibitory), reset to -65 mV, 5 ms
  refractory. Threshold `v_thresh - offset + theta` (-52 mV - 20 mV + theta):
  the adaptive threshold `theta` starts at 20 mV, rises by `theta_plus`
  (0.05 mV) at every spike of the neuron and decays with `tau_theta` (10^4 s).
- Inhibitory population: one inhibitory neuron per excitatory neuron (weight
  10.4 one-to-one), each inhibiting every *other* excitatory neuron (weight
  17), with tau 10 ms, v_rest -60 mV, threshold -40 mV, reset -45 mV, 2 ms
  refractory, E_inh -85 mV.
- Input -> excitatory synapses: weights in [0, w_max = 1], initial uniform in
  [0, 0.3); before each example every neuron's incoming weights are scaled to
  sum to 78 (per-neuron normalisation).
- STDP with a pre-synaptic trace `x_pre` (tau 20 ms) and a post-synaptic trace
  `x_post` (tau 20 ms), both set to 1 at a spike: a post-synaptic spike
  changes each of its weights by `nu_post (x_pre - x_tar) (w_max - w)^mu`
  (the power-law weight dependence of the paper, with our `mu = 0.2`), a
  pre-synaptic spike by `-nu_pre x_post` (as in the authors' code); weights
  are clipped to [0, w_max].
- Labels: after training, each excitatory neuron is assigned the class for
  which its average response over the labelled examples is highest; a test
  digit is classified as the class whose assigned neurons have the highest
  average spike count.

Integration: the conductances, traces and `theta` decay exactly; the membrane
takes an exponential-Euler step with each conductance held at its mean over
the step (so the charge an input spike delivers does not depend on `dt`;
exact for constant conductances, stable for any `dt`). The rest between
examples is applied in closed form: the conductances (1-2 ms) are taken as
zero and everything else decays exactly for 150 ms (no neuron can fire
without input). Spikes at step `n` reach their targets' conductances at step
`n + 1`.

Everything for one presentation (including the retries at higher intensity)
is one `lax.while_loop` of `lax.scan`s, and a chunk of presentations is one
`lax.scan` over them: `train` compiles once per chunk shape.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import check_range
from xbar.array.crossbar import Crossbar, program_crossbar, relax
from xbar.mapping.tiling import conductance_targets, from_tiles, to_tiles
from xbar.spiking.plasticity import (
    AbstractPulses,
    PairSTDP,
    SingleCellPulses,
    StochasticRounding,
)


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
        """One time step of the rule: traces decay, pre spikes depress by the
        post trace (before this step's post spikes set it), pre traces are
        set, post spikes potentiate by the pre trace (after this step's pre
        spikes set it), post traces are set; weights stay in [0, w_max].
        The order of the published code. Returns (w, x_pre, x_post)."""
        x_pre = x_pre * np.exp(-dt_s / self.tau_pre_s)
        x_post = x_post * np.exp(-dt_s / self.tau_post_s)
        w = jnp.maximum(w + s_pre[:, None] * self.ltd(x_post)[None, :], 0.0)
        x_pre = jnp.where(s_pre > 0, 1.0, x_pre)
        w = jax.lax.cond(
            jnp.any(s_post > 0),
            lambda w: jnp.clip(
                w + self.ltp(w, x_pre) * s_post[None, :], 0.0, self.w_max
            ),
            lambda w: w,
            w,
        )
        x_post = jnp.where(s_post > 0, 1.0, x_post)
        return w, x_pre, x_post


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


def _step(p: DiehlCook, learn: bool, w_drive, carry, s_in):
    """One step of the network for one example (module docstring). The input
    current flows through `w_drive` if given (weights held on devices while
    the rule accumulates its changes in `w`), else through `w`."""
    ns, w, theta, counts = carry
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
    ge_e = ns.ge_e * de + jnp.dot(s_in, w if w_drive is None else w_drive)
    gi_e = ns.gi_e * di + p.w_ie * (jnp.sum(s_i) - s_i)
    ge_i = ns.ge_i * de + p.w_ei * s_e
    gi_i = ns.gi_i * di
    x_pre, x_post = ns.x_pre, ns.x_post
    if learn:
        theta = theta * np.exp(-dt / p.tau_theta_s) + p.theta_plus * s_e
        w, x_pre, x_post = p.stdp.step(w, x_pre, x_post, s_in, s_e, dt)
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
    prob = jnp.clip(x * p.rate_per_intensity_hz * intensity * p.dt_s, 0.0, 1.0)
    u = jax.random.uniform(key, (p.n_steps, p.n_input), jnp.float32)
    return (u < prob[None, :]).astype(jnp.float32)


def present(p: DiehlCook, ns, w, theta, x, key, *, learn: bool, w_drive=None):
    """Show one example (retrying at higher intensity while the excitatory
    layer fires fewer than `min_spikes`), each try followed by the rest.

    Returns (neurons, w, theta, spike counts of the last try, intensity).
    """
    step = lambda c, s: _step(p, learn, w_drive, c, s)  # noqa: E731

    def one(state):
        ns, w, theta, _, intensity, k, tries = state
        k, k_in = jax.random.split(k)
        s_in = _poisson(p, x, intensity, k_in)
        zero = jnp.zeros((p.n_exc,), jnp.float32)
        (ns, w, theta, counts), _ = jax.lax.scan(step, (ns, w, theta, zero), s_in)
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


# -- the same network learning on device cells ---------------------------------


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
