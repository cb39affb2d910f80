"""Two ways to train a spiking network on crossbars.

1. `train_surrogate`: hardware-aware backpropagation through time. Every
   minibatch programs the current weights onto fresh cells of the device
   (programming noise, level quantization, device-to-device spread; the
   gradient passes straight through programming), runs the spiking network in
   the `lax.scan` time loop with read noise, drift and relaxation, and
   differentiates the cross-entropy of the output spike counts through the
   neurons' surrogate gradient.

2. `train_stdp_wta`: unsupervised competitive learning after Diehl & Cook
   (Front. Comput. Neurosci. 9:99, 2015, doi 10.3389/fncom.2015.00099): one
   layer of adaptive-threshold neurons with lateral inhibition, trained one
   example at a time by pair-based STDP sent to the devices as pulses (so the
   device's pulse response is the learning rule's weight dependence), with
   the devices relaxing between examples. Neurons are then labelled by the
   class they respond to most (`label_neurons`), and `wta_predict` votes.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PRNGKeyArray

from devices.base import AbstractDevice
from xbar.array.crossbar import relax
from xbar.spiking.encoding import rate_encode
from xbar.spiking.loop import init_state, run
from xbar.spiking.network import Neuron, SpikingLayer, SpikingNetwork
from xbar.spiking.neurons import LIFState
from xbar.spiking.plasticity import PairSTDP
from xbar.spiking.run_options import SpikeCounts


def count_logits(
    net: SpikingNetwork,
    x: Array,
    *,
    key,
    n_steps: int,
    p_max: float,
    t0_s: ArrayLike = 1.0,
) -> tuple[Array, Array]:
    """Output spike counts and synaptic operations per example for pixels `x`."""
    k_enc, k_run = jax.random.split(key)
    spikes = rate_encode(x, n_steps, key=k_enc, p_max=p_max)
    _, out = run(net, spikes, key=k_run, t0_s=t0_s, record=SpikeCounts())
    return out["counts"][-1], out["syn_ops"]


def train_surrogate(
    x: ArrayLike,
    y: ArrayLike,
    sizes: list[int],
    device: AbstractDevice,
    *,
    key: PRNGKeyArray,
    dt_s: float,
    n_steps: int,
    neurons: list[Neuron],
    epochs: int = 1,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    p_max: float = 0.5,
    t0_s: float = 1.0,
    logit_scale: float = 0.5,
    **layer_kw,
) -> tuple[list[Array], Array]:
    """Hardware-aware surrogate-gradient training; returns (weights, losses).

    Weights are `(out, in)` in units of threshold per spike; `layer_kw` go to
    `SpikingLayer.from_weights` (tile sizes, DAC, circuit).
    """
    import optax

    k_init, k_train = jax.random.split(key)
    ks = jax.random.split(k_init, len(sizes) - 1)
    weights = [
        jax.random.normal(k, (b, a), jnp.float32) * (1.0 / jnp.sqrt(a))
        for k, a, b in zip(ks, sizes[:-1], sizes[1:])
    ]
    opt = optax.adam(learning_rate)
    opt_state = opt.init(weights)
    x, y = jnp.asarray(x), jnp.asarray(y)
    n_batches = len(y) // batch_size

    def loss_fn(w, xb, yb, k):
        k_map, k_run = jax.random.split(k)
        net = SpikingNetwork.from_weights(
            w, device, key=k_map, dt_s=dt_s, neurons=neurons, **layer_kw
        )
        counts, _ = count_logits(
            net, xb, key=k_run, n_steps=n_steps, p_max=p_max, t0_s=t0_s
        )
        return optax.softmax_cross_entropy_with_integer_labels(
            logit_scale * counts, yb
        ).mean()

    def batch_step(carry, xs):
        w, s = carry
        idx, k = xs
        loss, g = jax.value_and_grad(loss_fn)(w, x[idx], y[idx], k)
        updates, s = opt.update(g, s, w)
        return (optax.apply_updates(w, updates), s), loss

    @jax.jit
    def train(w, s, k):
        def epoch(carry, ke):
            k_perm, k_b = jax.random.split(ke)
            perm = jax.random.permutation(k_perm, len(y))[: n_batches * batch_size]
            return jax.lax.scan(
                batch_step,
                carry,
                (perm.reshape(n_batches, -1), jax.random.split(k_b, n_batches)),
            )

        (w, s), losses = jax.lax.scan(epoch, (w, s), jax.random.split(k, epochs))
        return w, losses

    with jax.numpy_dtype_promotion("standard"):  # optax's int32 step count
        weights, losses = train(weights, opt_state, k_train)
    return weights, losses.reshape(-1)


def evaluate_counts(
    net: SpikingNetwork, x, y, *, key, n_steps: int, p_max: float, t0_s: ArrayLike = 1.0
) -> tuple[Array, Array]:
    """Accuracy of the argmax of output spike counts, and mean synaptic ops."""
    counts, ops = count_logits(
        net, jnp.asarray(x), key=key, n_steps=n_steps, p_max=p_max, t0_s=t0_s
    )
    return jnp.mean(jnp.argmax(counts, axis=-1) == jnp.asarray(y)), jnp.mean(ops)


def _presenter(rule: PairSTDP | None, *, n_steps: int, p_max: float, dt_s, t_rest_s):
    """`present(layer, neuron_state, image, t_s, key)` of one example: fresh
    membranes and traces (adaptation kept), STDP by `rule` (None: off), then
    the devices relax for the rest period. Returns the layer, the neurons'
    state, the spike counts and the time after the rest."""
    rules = None if rule is None else (rule,)

    def present(layer: SpikingLayer, neuron_state: LIFState, x_img, t_s, key):
        k_enc, k_run = jax.random.split(key)
        spikes = rate_encode(x_img[None], n_steps, key=k_enc, p_max=p_max)
        net = SpikingNetwork((layer,), dt_s)
        fresh = layer.neuron.init((1, layer.out_features))
        st = init_state(net, (1,), t0_s=t_s, plasticity=rules)
        st = eqx.tree_at(
            lambda s: s.neurons,
            st,
            (LIFState(v=fresh.v, ref_s=fresh.ref_s, a=neuron_state.a),),
        )
        st, out = run(
            net, spikes, key=k_run, plasticity=rules, state=st, record=SpikeCounts()
        )
        layer = st.net.layers[0]
        if t_rest_s > 0:
            layer = layer.with_crossbar(relax(layer.crossbar, t_rest_s))
        return layer, st.neurons[0], out["counts"][0][0], st.t_s + t_rest_s

    return present


def train_stdp_wta(
    layer: SpikingLayer,
    x: ArrayLike,
    rule: PairSTDP,
    *,
    key: PRNGKeyArray,
    n_steps: int,
    p_max: float,
    t0_s: float = 1.0,
    t_rest_s: float = 0.0,
    dt_s=None,
) -> tuple[SpikingLayer, LIFState]:
    """Present every example of `x` once (in order), learning by `rule`.

    Returns the trained layer (its devices after all pulses and relaxation)
    and the neurons' state (adaptive thresholds).
    """
    dt_s = 1e-3 if dt_s is None else dt_s
    present = _presenter(
        rule, n_steps=n_steps, p_max=p_max, dt_s=dt_s, t_rest_s=t_rest_s
    )
    ns0 = layer.neuron.init((1, layer.out_features))

    def body(carry, xs):
        (lay, ns, t), (img, k) = carry, xs
        lay, ns, _, t = present(lay, ns, img, t, k)
        return (lay, ns, t), None

    x = jnp.asarray(x)
    keys = jax.random.split(key, x.shape[0])
    (layer, ns, _), _ = jax.lax.scan(
        body, (layer, ns0, jnp.asarray(t0_s, jnp.float32)), (x, keys)
    )
    return layer, ns


def wta_responses(
    layer: SpikingLayer,
    ns: LIFState,
    x: ArrayLike,
    *,
    key,
    n_steps: int,
    p_max: float,
    t_s: float = 1.0,
    dt_s=1e-3,
) -> Array:
    """Spike counts `(examples, neurons)` of the trained layer, plasticity off,
    thresholds frozen at their trained values."""
    present = _presenter(None, n_steps=n_steps, p_max=p_max, dt_s=dt_s, t_rest_s=0.0)

    def one(xs):
        img, k = xs
        return present(layer, ns, img, t_s, k)[2]

    x = jnp.asarray(x)
    keys = jax.random.split(key, x.shape[0])
    return jax.lax.map(one, (x, keys), batch_size=64)


def label_neurons(responses: Array, y: Array, n_classes: int = 10) -> Array:
    """Each neuron's class: the one with the highest mean response."""
    onehot = jax.nn.one_hot(y, n_classes, dtype=jnp.float32)  # (n, classes)
    per_class = onehot.T @ responses / jnp.maximum(onehot.sum(0), 1.0)[:, None]
    return jnp.argmax(per_class, axis=0)


def wta_predict(responses: Array, labels: Array, n_classes: int = 10) -> Array:
    """Vote: the class whose neurons spiked most on average."""
    member = jax.nn.one_hot(labels, n_classes, dtype=jnp.float32)  # (neurons, c)
    votes = responses @ member / jnp.maximum(member.sum(0), 1.0)[None, :]
    return jnp.argmax(votes, axis=-1)
