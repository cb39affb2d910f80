"""Spiking time loop on drifting crossbars vs the same network on `jnp.dot`.

784 inputs -> 1,000 LIF neurons, 1,000 time steps of 1 ms, batch 64, rate-coded
random inputs. The candidate is `xbar.spiking.run`: per step the 8-bit DAC,
the crossbar read of PCM cells (card pcm_joshi2020: power-law drift evaluated
at the current time since programming, read noise), the LIF membranes and the
device relaxation by dt, all in one `lax.scan`. Non-plastic layers on ideal
circuits are read as one flat matrix (`FlatReads`: one product for G+ - G-,
a second for the read-noise variance, no padded rows or columns); the rows
`read_every10` / `read_every100` advance the drift (and any slow noise the
device keeps in its state) every 10 / 100 steps instead of every step, with
fresh read noise every step (power-law drift error at most
`nu read_every dt / (t0 + t)`: 0.05 % / 0.5 % for nu = 0.05 at t >= 1 s).
The baseline runs the same LIF neurons in a `lax.scan` on a plain `jnp.dot`
synapse with no device model.
Both record spike counts only; both are jitted and timed interleaved in the
same process (best of N). Prints one JSON object per measurement.

    python benchmarks/spiking.py           # the issue's size
    python benchmarks/spiking.py --quick   # tiny, seconds
"""

from __future__ import annotations

import argparse
import json
import resource

import jax
import jax.numpy as jnp
from timing import best_times

import devices
from xbar import spiking as sp
from xbar.spiking.neurons import LIF


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    n_in, n_out, n_steps, batch = (
        (100, 50, 20, 8) if args.quick else (784, 1000, 1000, 64)
    )
    repeats = args.repeats or (2 if args.quick else 3)
    dt = 1e-3
    k_w, k_x, k_map, k_run = jax.random.split(jax.random.key(0), 4)
    w = jax.random.normal(k_w, (n_out, n_in), jnp.float32) * (2.0 / jnp.sqrt(n_in))
    x = sp.rate_encode(
        jax.random.uniform(k_x, (batch, n_in)), n_steps, key=k_x, p_max=0.2
    )
    device_name = "PCM" if hasattr(devices, "PCM") else "RRAM"
    dev = getattr(devices, device_name).from_card()
    lif = LIF(tau_s=20e-3)

    def net_for(tile_rows, tile_cols):
        return sp.SpikingNetwork.from_weights(
            [w],
            dev,
            key=k_map,
            dt_s=dt,
            neurons=[lif],
            tile_rows=tile_rows,
            tile_cols=tile_cols,
        )

    net_tiled = net_for(256, 256)
    net_one = None if args.quick else net_for(n_in, n_out)
    # The baseline neuron: same LIF, capacitance sized for unit weights on
    # a 1 A/unit "synapse" (the digital dot product gives W s directly).
    neuron_dot = net_tiled.layers[0].neuron
    scale = net_tiled.layers[0].dac.v_read * net_tiled.layers[0].g_per_w

    @jax.jit
    def candidate(net, x, key):
        _, out = sp.run(net, x, key=key, t0_s=1.0, record=sp.SpikeCounts())
        return out["counts"][0]

    @jax.jit
    def candidate_mean(net, x):
        _, out = sp.run(net, x, key=None, t0_s=1.0, record=sp.SpikeCounts())
        return out["counts"][0]

    @jax.jit
    def candidate_cached(net, x, key):
        _, out = sp.run(
            net, x, key=key, t0_s=1.0, record=sp.SpikeCounts(), read_every=10
        )
        return out["counts"][0]

    @jax.jit
    def baseline(w, x):
        def body(carry, x_t):
            ns, cnt = carry
            i = jnp.dot(x_t, w.T) * scale
            ns, s = neuron_dot(ns, i, dt)
            return (ns, cnt + s), None

        init = (neuron_dot.init((batch, n_out)), jnp.zeros((batch, n_out), jnp.float32))
        (_, cnt), _ = jax.lax.scan(body, init, x)
        return cnt

    @jax.jit
    def candidate_cached_mean(net, x):
        _, out = sp.run(
            net, x, key=None, t0_s=1.0, record=sp.SpikeCounts(), read_every=10
        )
        return out["counts"][0]

    every = 5 if args.quick else 100

    @jax.jit
    def candidate_slow(net, x, key):
        _, out = sp.run(
            net, x, key=key, t0_s=1.0, record=sp.SpikeCounts(), read_every=every
        )
        return out["counts"][0]

    @jax.jit
    def candidate_slow_mean(net, x):
        _, out = sp.run(
            net, x, key=None, t0_s=1.0, record=sp.SpikeCounts(), read_every=every
        )
        return out["counts"][0]

    calls = [
        (baseline, (w, x)),
        (candidate, (net_tiled, x, k_run)),
        (candidate_mean, (net_tiled, x)),
        (candidate_cached, (net_tiled, x, k_run)),
        (candidate_cached_mean, (net_tiled, x)),
        (candidate_slow, (net_tiled, x, k_run)),
        (candidate_slow_mean, (net_tiled, x)),
    ]
    if not args.quick:  # one tile per layer: no padding (another compile)
        calls.append((candidate_mean, (net_one, x)))
    t_dot, t_noisy, t_mean, t_cached, t_cached_mean, t_slow, t_slow_mean, *t_one = (
        best_times(calls, repeats=repeats)
    )
    # The same spikes? (noise-free candidate vs digital: only drift and float
    # rounding differ, so counts agree on average).
    c_mean = candidate_mean(net_tiled, x)
    c_dot = baseline(w, x)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size = f"{n_in}x{n_out}_T{n_steps}_batch{batch}"
    common = {
        "unit": "ms/step",
        "baseline": t_dot / n_steps * 1e3,
        "baseline_name": "lax.scan of jnp.dot + LIF",
        "target": 2.0,
        "backend": jax.default_backend(),
        "device": device_name,
    }
    def timed(suffix, t, target=2.0, **extra):
        """One timing row: ms per step and the ratio to the jnp.dot loop."""
        return {
            "name": f"spiking_{size}_{device_name}_{suffix}",
            "value": t / n_steps * 1e3,
            "ratio": t / t_dot,
            **extra,
            **{**common, "target": target},
        }

    grid = list(net_tiled.layers[0].crossbar.grid)
    rows = [
        timed("tiles256_read_noise", t_noisy, 3.0, tiles=grid),
        timed("tiles256_noise_free", t_mean),
        timed("tiles256_read_noise_read_every10", t_cached, 3.0),
        timed("tiles256_noise_free_read_every10", t_cached_mean),
        timed(f"read_noise_read_every{every}", t_slow, 3.0),
        timed(f"noise_free_read_every{every}", t_slow_mean),
        *([timed("one_tile_noise_free", t_one[0], tiles=[1, 1])] if t_one else []),
        {
            "name": "mean_spikes_per_neuron_crossbar_vs_dot",
            "value": float(c_mean.mean()),
            "baseline": float(c_dot.mean()),
            "unit": "spikes",
        },
        {"name": "peak_rss", "value": rss_mib, "unit": "MiB"},
    ]
    for r in rows:
        print(json.dumps(r))
    return rows


if __name__ == "__main__":
    main()
