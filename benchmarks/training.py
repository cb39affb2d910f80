"""Training on analog hardware vs float training steps (same process).

1. One hardware-aware training step of the MLP 784-256-10, batch 64, as
   `train_hwa` takes it: program the weights onto fresh RRAM cells (card
   rram_ag_asi_jo2010, 256 x 256 tiles, 8-bit DAC) drawn from the device's
   cell table (`TabulatedCells`, the default; the table is built once per
   run, outside the step), read them with noise, straight-through gradient,
   Adam update; against the same step in float32 (target: at most 3x). Also
   the step with `FreshCells` (every cell through `device.init` and
   `device.program`).
2. One on-chip update of the same MLP with 64 examples (forward, backward
   errors, stochastic pulse trains BL 31, RRAM), batched (the 64 examples'
   coincidences counted by one matrix product of their signed bit trains,
   one device update; the target row) and sequential (one device update per
   example, as a chip does): the time of a 2-epoch run minus a 1-epoch run of
   `train_onchip`'s compiled loop on 64 programmed examples with batch 64;
   against a float SGD step of batch 64 (target: at most 5x).
3. Peak resident memory of the process.

Prints one JSON object per line.

    python benchmarks/training.py           # 20 repeats
    python benchmarks/training.py --quick   # 2 repeats
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import jax
import jax.numpy as jnp
import optax
from timing import best_times

import devices
import xbar
from xbar.training import AnalogSGD, StochasticPulses
from xbar.training.hwa import hwa_configs, training_configs
from xbar.training.onchip import _init_states, _train_loop
from xbar.training.tabulated import TabulatedCells


def _mlp(key):
    k1, k2 = jax.random.split(key)
    return [
        (jax.random.normal(k1, (256, 784)) / 28.0, jnp.zeros(256)),
        (jax.random.normal(k2, (10, 256)) / 16.0, jnp.zeros(10)),
    ]


def _float_loss(p, x, y):
    h = jax.nn.relu(x @ p[0][0].T + p[0][1][None])
    logits = h @ p[1][0].T + p[1][1][None]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    repeats = 2 if args.quick else 20
    k_w, k_x, k_run = jax.random.split(jax.random.key(0), 3)
    params = _mlp(k_w)
    x = jax.random.uniform(k_x, (64, 784), jnp.float32)
    y = jnp.arange(64, dtype=jnp.int32) % 10
    device = devices.RRAM.from_card()
    config = xbar.AnalogConfig(device, dac=xbar.DAC(bits=8))
    opt = optax.adam(1e-3)
    rows = []

    tab_configs = hwa_configs(training_configs(config, 2), TabulatedCells(), key=k_run)

    def fresh_loss(p, x, y, k):
        k_p, k_r = jax.random.split(k)
        net = xbar.AnalogNetwork.from_weights(p, config, key=k_p)
        logits = net(x, key=k_r)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def hwa_loss(p, x, y, k):
        k_p, k_r = jax.random.split(k)
        net = xbar.AnalogNetwork.from_weights(p, tab_configs, key=k_p)
        logits = net(x, key=k_r)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def stepper(loss):
        @jax.jit
        def step(p, s, x, y, k):
            with jax.numpy_dtype_promotion("standard"):
                g = jax.grad(loss)(p, x, y, k)
                u, s = opt.update(g, s, p)
                return optax.apply_updates(p, u), s

        return step

    hwa_step = stepper(hwa_loss)
    fresh_step = stepper(fresh_loss)
    float_step = stepper(lambda p, x, y, k: _float_loss(p, x, y))
    with jax.numpy_dtype_promotion("standard"):
        s0 = opt.init(params)
    t_f, t_h, t_fresh = best_times(
        [
            (float_step, (params, s0, x, y, k_run)),
            (hwa_step, (params, s0, x, y, k_run)),
            (fresh_step, (params, s0, x, y, k_run)),
        ],
        repeats=repeats,
    )
    rows.append({
        "name": "hwa_step_mlp_784_256_10_batch64",
        "value": t_h * 1e3, "unit": "ms", "baseline": t_f * 1e3,
        "baseline_name": "float32 Adam step", "ratio": t_h / t_f, "target": 3.0,
        "cells": "TabulatedCells", "backend": jax.default_backend(),
    })
    rows.append({
        "name": "hwa_step_fresh_cells_mlp_784_256_10_batch64",
        "value": t_fresh * 1e3, "unit": "ms", "baseline": t_f * 1e3,
        "baseline_name": "float32 Adam step", "ratio": t_fresh / t_f,
        "cells": "FreshCells", "backend": jax.default_backend(),
    })

    sgd_step = jax.jit(
        lambda p, x, y: jax.tree.map(
            lambda a, g: a - 0.05 * g, p, jax.grad(_float_loss)(p, x, y)
        )
    )
    on_cfg = xbar.AnalogConfig(
        device, mapping=xbar.Mapping(cells=xbar.BalancedPair()), dac=xbar.DAC(bits=8)
    )

    alg = AnalogSGD(StochasticPulses(bl=31))
    states = _init_states(params, [on_cfg, on_cfg], alg, k_run, k_run, 1.0)
    lr = jnp.asarray(0.05, jnp.float32)

    def onchip(epochs, sequential):
        # The compiled epochs of `train_onchip` on already programmed cells:
        # 1 epoch = one update step of 64 examples (+ a 1-example evaluation,
        # which the 2-epoch minus 1-epoch difference cancels).
        with jax.numpy_dtype_promotion("standard"):
            (arr, out), _ = _train_loop(
                states, alg, x, y, x[:1], y[:1], k_run, lr, epochs, 64,
                sequential, False,
            )
        return out

    t_s, t_b1, t_b2, t_q1, t_q2 = best_times(
        [
            (sgd_step, (params, x, y)),
            (onchip, (1, False)), (onchip, (2, False)),
            (onchip, (1, True)), (onchip, (2, True)),
        ],
        repeats=max(2, repeats // 4),
    )
    for seq, t1, t2 in ((False, t_b1, t_b2), (True, t_q1, t_q2)):
        t_on = max(t2 - t1, 1e-9)
        rows.append({
            "name": "onchip_update_stochastic_rram_64_examples"
            + ("_sequential" if seq else "_batched"),
            "value": t_on * 1e3, "unit": "ms", "baseline": t_s * 1e3,
            "baseline_name": "float32 SGD step, batch 64", "ratio": t_on / t_s,
            "target": 5.0, "sequential": seq, "bl": 31,
            "one_epoch_call_ms": t1 * 1e3, "backend": jax.default_backend(),
        })
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append({"name": "peak_rss", "value": rss_mib, "unit": "MiB",
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    for r in rows:
        print(json.dumps(r))
    return rows


if __name__ == "__main__":
    main()
