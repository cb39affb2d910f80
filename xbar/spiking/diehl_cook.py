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
  pre-synaptic spike by `-nu_pre x_post` (as in the authors' code); the
  synapses a spike updates are clipped to [0, w_max] (depressed ones at 0),
  as in an event-driven simulator: the others keep their value, even one the
  normalisation lifted above w_max.
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
`lax.scan` over them: `train` compiles once per chunk shape. A step is
event-driven (`xbar.spiking.diehl_cook_loop`): the input current and the
depression touch only the rows of the inputs that spiked, the potentiation
only the columns of the neurons that spiked.

Modules: `diehl_cook_model` (parameters, rule, normalisation, labels),
`diehl_cook_loop` (`present`, `train`, `respond`), `diehl_cook_devices`
(`DeviceSynapses`, `train_on_devices`, `PairRefresh`); this module gathers
them.
"""

from xbar.spiking.diehl_cook_devices import (
    DeviceSynapses,
    PairRefresh,
    train_on_devices,
)
from xbar.spiking.diehl_cook_loop import present, respond, train
from xbar.spiking.diehl_cook_model import (
    DiehlCook,
    DiehlCookSTDP,
    assign_labels,
    classify,
    normalize,
    stdp_pair_closed_form,
)

__all__ = [
    "DeviceSynapses",
    "DiehlCook",
    "DiehlCookSTDP",
    "PairRefresh",
    "assign_labels",
    "classify",
    "normalize",
    "present",
    "respond",
    "stdp_pair_closed_form",
    "train",
    "train_on_devices",
]
