"""How a block-sparse spiking network grows: 10^3 to 10^5 neurons at 1 %
connectivity on this machine.

Each network is a recurrent population of N LIF neurons
(`xbar.spiking.sparse.SparsePopulation`) driven by 1,000 Poisson inputs:
input and recurrent synapses follow a local (band) connection rule, with a
recurrent fan-in of 1 % of N (balanced weights of spread 1/sqrt(fan-in)) and
1 % of the inputs, on tiles of 256 x 256 ideal cells; only the tiles the band
touches exist. For each N, in a fresh process: the tile count, the synapse
count, the time per step of the compiled loop (batch 1, best of 3 runs of 20
steps, after compilation), the synaptic operations per step and the peak
resident memory.

Writes `figures/spiking_scale.json` and `figures/spiking_scale.png`.

    python experiments/spiking_scale.py            # 10^3 .. 10^5 (minutes)
    python experiments/spiking_scale.py --quick    # 10^3, 2x10^3
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import experiment_main, provenance, save_figure, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
NAME = "spiking_scale"
N_INPUT = 1000
TILE = 256


def one_size(n: int, n_steps: int, seed: int) -> dict:
    """Build and time one network (called in a fresh process)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import devices
    from xbar import spiking as sp
    from xbar.spiking import sparse as bs
    from xbar.spiking.network import membrane_capacitance

    dev = devices.Ideal()
    key = jax.random.key(seed)
    k_in, k_rec, k_x = jax.random.split(key, 3)
    t0 = time.time()
    fan_in = max(1, round(0.01 * n))
    # Balanced recurrent weights (mean slightly negative, spread 1/sqrt(K)),
    # so activity stays driven by the input at every size.
    a = 1.0 / np.sqrt(2 * (fan_in // 2) + 1)
    rule_rec = bs.BandRule(half_width=fan_in // 2, p=1.0, w_lo=-1.2 * a, w_hi=a)
    rule_in = bs.BandRule(half_width=max(1, round(0.005 * N_INPUT)), p=1.0, w_hi=0.6)
    syn_in = bs.from_band_rule(rule_in, N_INPUT, n, dev, key=k_in, tile=TILE)
    syn_rec = bs.from_band_rule(rule_rec, n, n, dev, key=k_rec, tile=TILE)
    c = membrane_capacitance(20e-3, 1e-3, syn_in.v_read, syn_in.g_per_w, 1.0)
    pop = bs.SparsePopulation(syn_in, syn_rec, sp.LIF(c_mem_f=c), 1e-3)
    jax.block_until_ready(pop)
    build_s = time.time() - t0
    x = sp.rate_encode(jnp.full((1, N_INPUT), 0.5), n_steps, key=k_x, p_max=0.1)
    run = jax.jit(lambda p, x: bs.run_population(p, x, key=None))
    t0 = time.time()
    out = jax.block_until_ready(run(pop, x))
    compile_s = time.time() - t0
    times = []
    for _ in range(3):
        t0 = time.time()
        out = jax.block_until_ready(run(pop, x))
        times.append(time.time() - t0)
    synapses = syn_in.synapse_count() + syn_rec.synapse_count()
    cells = 2 * TILE * TILE * (syn_in.n_blocks + syn_rec.n_blocks)
    dense_tiles = syn_in.grid[0] * syn_in.grid[1] + syn_rec.grid[0] * syn_rec.grid[1]
    return {
        "n_neurons": n,
        "n_input": N_INPUT,
        "fan_in_recurrent": 2 * (fan_in // 2) + 1,
        "tiles": syn_in.n_blocks + syn_rec.n_blocks,
        "tiles_if_dense": dense_tiles,
        "synapses": synapses,
        "connectivity_recurrent": syn_rec.synapse_count() / n**2,
        "cells": cells,
        "ms_per_step": 1e3 * min(times) / n_steps,
        "syn_ops_per_step": float(np.mean(np.asarray(out["syn_ops"]))),
        "spikes_per_step": float(np.mean(np.asarray(out["spikes_per_step"]))),
        "build_s": round(build_s, 2),
        "compile_s": round(compile_s, 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(quick: bool, seed: int, out_dir: Path) -> dict:
    sizes = [1000, 2000] if quick else [1000, 3000, 10000, 30000, 100000]
    n_steps = 5 if quick else 20
    rows = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--one", str(n), str(n_steps), str(seed)]
        res = subprocess.run(
            cmd, capture_output=True, text=True, cwd=Path(__file__).parent
        )
        if res.returncode != 0:
            rows.append({"n_neurons": n, "error": res.stderr[-2000:]})
            print(f"N={n}: failed\n{res.stderr[-2000:]}", flush=True)
            continue
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {
        "config": {"sizes": sizes, "n_steps": n_steps, "tile": TILE, "device": "Ideal"},
        "seed": seed,
        "provenance": provenance(),
        "note": "2 CPU cores shared with other jobs during the run (load 10-18)",
        "results": rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / f"{NAME}.json", doc)
    plot(out_dir / f"{NAME}.json", out_dir / f"{NAME}.png")
    return doc


def plot(results_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        r
        for r in json.loads(Path(results_path).read_text())["results"]
        if "error" not in r
    ]
    n = [r["n_neurons"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].loglog(n, [r["ms_per_step"] for r in rows], "o-")
    axes[0].set_ylabel("time per step (ms), batch 1")
    axes[1].loglog(n, [r["peak_rss_mib"] for r in rows], "o-", label="peak RSS (MiB)")
    axes[1].loglog(
        n, [r["cells"] * 4 / 2**20 for r in rows], "s--", label="cell states (MiB)"
    )
    axes[1].legend()
    axes[1].set_ylabel("memory (MiB)")
    axes[2].loglog(n, [r["tiles"] for r in rows], "o-", label="tiles (block-sparse)")
    axes[2].loglog(n, [r["tiles_if_dense"] for r in rows], "s--", label="tiles (dense)")
    axes[2].loglog(
        n, [r["syn_ops_per_step"] for r in rows], "^-", label="synaptic ops / step"
    )
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("neurons (1 % recurrent connectivity)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        "Block-sparse recurrent LIF networks, 256x256 tiles, 2 shared CPU cores"
    )
    save_figure(fig, png_path, dpi=110)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--one":
        print(json.dumps(one_size(int(argv[1]), int(argv[2]), int(argv[3]))))
        return
    experiment_main(
        argv,
        doc=__doc__,
        name=NAME,
        run=run,
        plot=plot,
        out_dir=ROOT / "figures",
    )


if __name__ == "__main__":
    main()
