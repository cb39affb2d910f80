"""Tiled noisy analog forward of one layer vs plain `jnp.dot` (same process).

The analog forward: per-vector abs-max input scaling, 8-bit DAC, 256 x 256 tiles
of RRAM (card rram_ag_asi_jo2010) with read noise, a 6-bit ADC per tile, digital
accumulation over tiles. Programming is done once, outside the timed region;
each timed call draws fresh read noise. Prints one JSON object per measurement.
The `..._threefry_noise` row is the same read with `jax.random.normal` as the
normal source (the generator before xbar.circuits.noise), timed in the same
rounds, so the generator's share of the ratio shows on one machine state.

    python benchmarks/mvm.py           # 784 x 256 layer, batch 1024
    python benchmarks/mvm.py --quick   # small shapes, seconds
"""

from __future__ import annotations

import argparse
import json
import resource
from unittest import mock

import jax
import jax.numpy as jnp
from timing import best_times

import devices
import xbar
from xbar.circuits import noise


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n_in, n_out, batch = (100, 40, 64) if args.quick else (784, 256, 1024)
    repeats = 3 if args.quick else 50

    k_w, k_x, k_map, k_cal, k_run = jax.random.split(jax.random.key(0), 5)
    w = jax.random.normal(k_w, (n_out, n_in), jnp.float32) / jnp.sqrt(n_in)
    x = jax.random.uniform(k_x, (batch, n_in), jnp.float32)
    layer = xbar.AnalogLinear.from_weights(
        w,
        None,
        xbar.AnalogConfig(devices.RRAM.from_card(), dac=xbar.DAC(bits=8)),
        key=k_map,
    )
    layer = xbar.calibrate_adc(layer, x[:64], bits=6)

    @jax.jit
    def analog(layer, x, key):
        return layer(x, key=key)

    @jax.jit
    def digital(w, x):
        return jnp.dot(x, w.T)

    @jax.jit
    def analog_mean(layer, x):
        return layer(x, key=None)

    # Compile each variant ahead of time, with the trace caches cleared between
    # them: the layer's forward is itself a filter_jit, whose cached trace would
    # otherwise carry one variant's noise generator into the other.
    analog = analog.lower(layer, x, k_run).compile()
    analog_mean = analog_mean.lower(layer, x).compile()
    jax.clear_caches()
    with mock.patch.object(noise, "normal", jax.random.normal):
        analog_threefry = jax.jit(lambda layer, x, key: layer(x, key=key))
        analog_threefry = analog_threefry.lower(layer, x, k_run).compile()
    jax.clear_caches()

    t_dot, t_analog, t_mean, t_threefry = best_times(
        [
            (digital, (w, x)),
            (analog, (layer, x, k_run)),
            (analog_mean, (layer, x)),
            (analog_threefry, (layer, x, k_run)),
        ],
        repeats=repeats,
    )
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = [
        {
            "name": f"analog_linear_{n_in}x{n_out}_batch{batch}_adc6",
            "value": t_analog * 1e3,
            "unit": "ms",
            "baseline": t_dot * 1e3,
            "baseline_name": "jnp.dot",
            "ratio": t_analog / t_dot,
            "target": 3.0,
            "backend": jax.default_backend(),
            "tiles": list(layer.grid),
        },
        {
            "name": f"analog_linear_{n_in}x{n_out}_batch{batch}_adc6_noise_free",
            "value": t_mean * 1e3,
            "unit": "ms",
            "baseline": t_dot * 1e3,
            "baseline_name": "jnp.dot",
            "ratio": t_mean / t_dot,
            "backend": jax.default_backend(),
        },
        {
            "name": f"analog_linear_{n_in}x{n_out}_batch{batch}_adc6_threefry_noise",
            "value": t_threefry * 1e3,
            "unit": "ms",
            "baseline": t_dot * 1e3,
            "baseline_name": "jnp.dot",
            "ratio": t_threefry / t_dot,
            "backend": jax.default_backend(),
        },
        {"name": "peak_rss", "value": rss_mib, "unit": "MiB"},
    ]
    for r in rows:
        print(json.dumps(r))
    return rows


if __name__ == "__main__":
    main()
