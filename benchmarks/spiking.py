"""Spiking time loop on drifting crossbars vs the same network on `jnp.dot`.

784 inputs -> 1,000 LIF neurons, 1,000 time steps of 1 ms, batch 64, rate-coded
random inputs. The candidate is `xbar.spiking.run`: per step the 8-bit DAC,
the crossbar read of PCM cells (card pcm_joshi2020: power-law drift evaluated
at the current time since programming, read noise), the LIF membranes and the
device relaxation by dt. Non-plastic layers on ideal circuits are read as
flat matrices (`FlatReads`: `G+ - G-` and the read-noise variance, no
padded rows or columns: one product noise-free, two with read noise, one
normal per neuron per step) in one flat `lax.scan`; each re-read reads the
cell states laid out once as those matrices (`FlatCells`), with scalar ages
while no cell has been pulsed since programming. Rows by read
schedule (`run(reads=...)`): `ReadEveryStep()` re-reads the drifting cells
every step (exact); `LogSpacedReads()` (the default without plasticity)
re-reads whenever the cells' age has grown by 1 % (mean-read error at most
`nu * 0.01`, 1e-3 for nu = 0.1; 70 reads from t = 1 s to 2 s), `ReadEvery(10)`
every 10 steps; read noise is drawn fresh every step under all of them.
The baseline runs the same LIF neurons in a `lax.scan` on a plain `jnp.dot`
synapse with no device model; the row `jnp_dot_with_read_noise` adds read
noise of the same form to it (information: the targets are against the plain
loop). All record spike counts only, are jitted and timed interleaved in the
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


def _log_reads(t0, dt, n_steps, eps):
    """The steps at which `LogSpacedReads(eps)` reads a freshly programmed
    array (float64 mirror of its interval rule)."""
    import math

    i = 0
    while i < n_steps:
        yield i
        t = t0 + i * dt
        i += max(1, math.floor(t * math.expm1(eps) / dt) + 1)


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
    # The baseline neuron: same LIF, capacitance sized for unit weights on
    # a 1 A/unit "synapse" (the digital dot product gives W s directly).
    neuron_dot = net_tiled.layers[0].neuron
    scale = net_tiled.layers[0].dac.v_read * net_tiled.layers[0].g_per_w

    def cand(schedule, noisy):
        """`sp.run` under one read schedule, with or without read noise."""

        @jax.jit
        def f(net, x, key):
            _, out = sp.run(
                net,
                x,
                key=key if noisy else None,
                t0_s=1.0,
                record=sp.SpikeCounts(),
                reads=schedule,
            )
            return out["counts"][0]

        return f

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

    var = jnp.abs(w.T) * 1e-2

    @jax.jit
    def baseline_noise(w, x, key):
        """The same loop with read noise of the same form: std
        `sqrt(x^2 @ var)` from a second product, one normal per neuron."""

        def body(carry, xs):
            ns, cnt = carry
            x_t, k = xs
            i = jnp.dot(x_t, w.T) * scale
            std = jnp.sqrt(jnp.dot(x_t * x_t, var)) * scale
            i = i + std * jax.random.normal(k, i.shape, i.dtype)
            ns, s = neuron_dot(ns, i, dt)
            return (ns, cnt + s), None

        init = (neuron_dot.init((batch, n_out)), jnp.zeros((batch, n_out), jnp.float32))
        (_, cnt), _ = jax.lax.scan(body, init, (x, jax.random.split(key, n_steps)))
        return cnt

    log = sp.LogSpacedReads()
    exact = sp.ReadEveryStep()
    every10 = sp.ReadEvery(10)
    calls = [
        (baseline, (w, x)),
        (baseline_noise, (w, x, k_run)),
        (cand(exact, True), (net_tiled, x, k_run)),
        (cand(exact, False), (net_tiled, x, k_run)),
        (cand(log, True), (net_tiled, x, k_run)),
        (cand(log, False), (net_tiled, x, k_run)),
        (cand(every10, True), (net_tiled, x, k_run)),
        (cand(every10, False), (net_tiled, x, k_run)),
    ]
    (
        t_dot,
        t_dot_noise,
        t_noisy,
        t_mean,
        t_log,
        t_log_mean,
        t_cached,
        t_cached_mean,
    ) = best_times(calls, repeats=repeats)
    # The same spikes? (noise-free candidate vs digital: only drift and float
    # rounding differ, so counts agree on average).
    c_mean = cand(exact, False)(net_tiled, x, k_run)
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
    n_reads = int(
        sum(
            1
            for _ in _log_reads(
                1.0, dt, n_steps, float(log.max_log_step)
            )
        )
    )
    rows = [
        timed("tiles256_read_noise", t_noisy, 3.0, tiles=grid, reads="every step"),
        timed("tiles256_noise_free", t_mean, reads="every step"),
        timed(
            "read_noise_log_spaced_reads",
            t_log,
            3.0,
            reads=f"LogSpacedReads({float(log.max_log_step):g}): {n_reads} reads",
        ),
        timed(
            "noise_free_log_spaced_reads",
            t_log_mean,
            reads=f"LogSpacedReads({float(log.max_log_step):g}): {n_reads} reads",
        ),
        timed("tiles256_read_noise_read_every10", t_cached, 3.0),
        timed("tiles256_noise_free_read_every10", t_cached_mean),
        {
            "name": f"spiking_{size}_jnp_dot_with_read_noise",
            "value": t_dot_noise / n_steps * 1e3,
            "ratio": t_dot_noise / t_dot,
            "unit": "ms/step",
            "baseline": t_dot / n_steps * 1e3,
            "baseline_name": "lax.scan of jnp.dot + LIF",
            "note": "the digital loop with read noise of the same form "
            "(a second product for the variance, one normal per neuron)",
        },
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
