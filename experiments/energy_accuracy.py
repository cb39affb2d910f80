"""Accuracy against energy per inference: the Pareto front over ADC bits, rows
read in parallel, weight bit slices and the input encoding.

Trains the 784-256-10 MLP and the small CNN of `experiments/periphery.py` on
the 5,000-digit MNIST subset, maps them onto 256 x 256 tiles of Ag:a-Si RRAM
(card `rram_ag_asi_jo2010`, noisy) with 8-bit weights, and evaluates each
hardware variant (encoding, slices, parallel rows: static choices, one branch
of a `jax.lax.switch` each) at every ADC resolution (an array). All points of
a network are ONE `xbar.Sweep`, so one compilation per network. ADC full
scales are calibrated per variant and layer on noise-free reads of training
digits (the row groups' partial sums when rows are read in groups). The
energy per inference of every point comes from `xbar.analysis.energy`
(`network_counts` on test digits, default 22 nm model, 8 columns per ADC);
published macros are drawn at the energy this network would cost at their
TOPS/W. Writes `figures/energy_accuracy.json` and `.png`.

    python experiments/energy_accuracy.py           # full run
    python experiments/energy_accuracy.py --quick   # seconds, for tests
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from common import (
    experiment_main,
    mnist_subset,
    provenance,
    save_figure,
    write_json_atomic,
)
from periphery import CARD, DACS, build, train_cnn

import devices
import xbar
from xbar.analysis import validation
from xbar.analysis.energy import (
    CONSTANTS,
    SARADC,
    FlashADC,
    RampADC,
    SurveyADC,
    Technology,
    network_counts,
    reprice,
    summary,
    survey_envelope_j,
)
from xbar.training.classifier import accuracy, train_mlp

ROOT = Path(__file__).resolve().parents[1]

MACRO_PARTS = ("dac", "cells", "adc", "accumulation")

#: (encoding, weight slices, rows in parallel; None = all 256)
VARIANTS = [
    ("amplitude", 1, None),
    ("amplitude", 2, None),
    ("amplitude", 4, None),
    ("amplitude", 2, 64),
    ("amplitude", 2, 16),
    ("amplitude", 4, 16),
    ("bit_serial", 2, None),
    ("bit_serial", 2, 64),
    ("bit_serial", 4, 64),
]
QUICK_VARIANTS = [("amplitude", 2, None), ("amplitude", 2, 16), ("bit_serial", 2, 64)]


def _mapping(cfg, ns, k):
    return xbar.Mapping(
        tile_rows=cfg["tile"][0],
        tile_cols=cfg["tile"][1],
        weight_bits=cfg["weight_bits"],
        n_slices=ns,
        parallel_rows=k,
    )


def run(*, quick: bool = False, seed: int = 0, out_dir: Path = ROOT / "figures"):
    t_start = time.time()
    variants = QUICK_VARIANTS if quick else VARIANTS
    cfg = {
        "card": CARD,
        "n_test": 1000,
        "n_train": 2000 if quick else 4000,
        "epochs_mlp": 3 if quick else 20,
        "epochs_cnn": 2 if quick else 8,
        "tile": [256, 256],
        "weight_bits": 8,
        "dac_bits": 8,
        "v_read_V": 0.2,
        "adc_share": 8,
        "adc_calibration_percentile": 99.9,
        "n_calibration": 64 if quick else 256,
        "n_repeats": 1,
        "n_eval": 100 if quick else 300,
        "n_energy": 4 if quick else 16,
        "adc_bits": [3, 6] if quick else [3, 4, 6, 8],
        "variants": [list(v) for v in variants],
        "nets": ["mlp"] if quick else ["mlp", "cnn"],
        "design_point": ["amplitude", 2, None, 6],
    }
    key = jax.random.key(seed)
    k_mlp, k_cnn, k_cal, k_sweep, k_energy = jax.random.split(key, 5)
    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=cfg["n_test"], seed=seed)
    x_fit, y_fit = x_tr[: cfg["n_train"]], y_tr[: cfg["n_train"]]
    models = {
        "mlp": lambda: train_mlp(
            x_fit, y_fit, [784, 256, 10], key=k_mlp, epochs=cfg["epochs_mlp"]
        ),
        "cnn": lambda: train_cnn(x_fit, y_fit, key=k_cnn, epochs=cfg["epochs_cnn"]),
    }
    x_eval = jnp.asarray(x_te[: cfg["n_eval"]])
    y_eval = jnp.asarray(y_te[: cfg["n_eval"]])
    x_cal = jnp.asarray(x_tr[: cfg["n_calibration"]])
    x_energy = jnp.asarray(x_te[: cfg["n_energy"]])
    device = devices.RRAM.from_card(CARD)
    quiet = devices.RRAM.from_card(CARD, sigma_prog=0.0, sigma_read=0.0, sigma_c2c=0.0)

    results = {}
    for net in cfg["nets"]:
        model = models[net]()
        float_acc = float(accuracy(jax.vmap(model)(jnp.asarray(x_te)), y_te))
        params = model.params()
        common = []
        i_max = []
        for enc, ns, k in variants:
            dac = DACS[enc](bits=cfg["dac_bits"], v_read=cfg["v_read_V"])
            c = dict(mapping=_mapping(cfg, ns, k), dac=dac)
            cal = eqx.filter_jit(build)(net, params, quiet, key=k_cal, **c)
            cal = cal.calibrate_adcs(
                x_cal, bits=8, percentile=cfg["adc_calibration_percentile"]
            )
            i_max.append([float(lay.adc.i_max) for lay in cal.layers])
            common.append(c)
        print(
            f"{net}: float {float_acc:.3f}, calibrated ({time.time() - t_start:.0f} s)"
        )
        i_max_arr = np.asarray(i_max, np.float32)  # (variants, layers)
        share = cfg["adc_share"]

        def branch(c):
            def f(bits, i_row, k, params, x, y):
                k_map, k_read = jax.random.split(k)
                adcs = [
                    xbar.ADC(bits=bits, i_max=i_row[j], share=share)
                    for j in range(i_row.shape[0])
                ]
                analog = build(net, params, device, key=k_map, adcs=adcs, **c)
                return accuracy(analog(x, key=k_read), y)

            return f

        branches = [branch(c) for c in common]

        # One sweep: the variant is an index into static branches (lax.switch
        # inside the sweep's scan runs one branch per point), bits and full
        # scales are arrays. Weights and data are arguments, not constants.
        def evaluate(point, k, params, x, y, branches=branches):
            return jax.lax.switch(
                point["variant"], branches, point["bits"], point["i_max"], k,
                params, x, y,
            )  # fmt: skip

        points = [
            {
                "variant": jnp.asarray(v, jnp.int32),
                "bits": jnp.asarray(b, jnp.float32),
                "i_max": jnp.asarray(i_max_arr[v]),
            }
            for v in range(len(variants))
            for b in cfg["adc_bits"]
        ]
        sweep = xbar.Sweep(evaluate)
        t0 = time.time()
        acc = np.asarray(
            sweep(xbar.stack(points), k_sweep, cfg["n_repeats"], params, x_eval, y_eval)
        )
        t_sweep = time.time() - t0
        print(f"{net}: {sweep.n_traces} compilation(s), {len(points)} points, "
              f"{t_sweep:.0f} s")  # fmt: skip

        rows = []
        for v, (enc, ns, kk) in enumerate(variants):
            # Counts once per variant (noise-free reads of test digits); the
            # ADC resolution changes prices, not counts, so re-price per bits.
            adcs = [xbar.ADC(bits=8, i_max=i, share=share) for i in i_max[v]]
            analog = eqx.filter_jit(build)(
                net, params, device, key=k_energy, adcs=adcs, **common[v]
            )
            counts = network_counts(analog, x_energy)
            for j, b in enumerate(cfg["adc_bits"]):
                s = summary([reprice(c, adc_bits=b) for c in counts])
                e_macro = sum(s["energy_J"][p] for p in MACRO_PARTS)
                a = acc[v * len(cfg["adc_bits"]) + j]
                rows.append(
                    {
                        "encoding": enc,
                        "n_slices": ns,
                        "parallel_rows": kk or cfg["tile"][0],
                        "adc_bits": b,
                        "accuracy": a.tolist(),
                        "accuracy_mean": float(a.mean()),
                        "energy_J": s["energy_total_J"],
                        "energy_parts_J": s["energy_J"],
                        "energy_macro_J": e_macro,
                        "ops": s["ops"],
                        "tops_per_w": s["tops_per_w"],
                        "tops_per_w_macro": s["ops"] / e_macro / 1e12,
                        "latency_s": s["latency_s"],
                        "area_mm2": s["area_total_m2"] * 1e6,
                        "adc_conversions": s["adc_conversions"],
                    }
                )
        results[net] = {
            "float_accuracy": float_acc,
            "compiles": sweep.n_traces,
            "points": len(points),
            "sweep_seconds": round(t_sweep, 1),
            "rows": rows,
            "pareto": pareto([(r["energy_J"], r["accuracy_mean"]) for r in rows]),
        }
        print(f"{net}: energies done ({time.time() - t_start:.0f} s)")

    dp = cfg["design_point"]
    design = None
    for r in results.get("mlp", {}).get("rows", []):
        if [r["encoding"], r["n_slices"], r["parallel_rows"], r["adc_bits"]] == [
            dp[0], dp[1], dp[2] or cfg["tile"][0], dp[3]
        ]:  # fmt: skip
            design = r
    t = Technology(22.0)
    adc_models = {
        name: [m.conversion_energy(b, t) for b in range(2, 11)]
        for name, m in (("SAR", SARADC()), ("flash", FlashADC()), ("ramp", RampADC()))
    }
    adc_models["survey envelope"] = [float(survey_envelope_j(b)) for b in range(2, 11)]
    out = {
        "experiment": "energy_accuracy",
        "config": cfg,
        "seed": seed,
        "results": results,
        "design_point": design,
        "macros": {
            **{k: v[0] for k, v in validation.MACROS_22NM.items()},
            **{
                f"neurosim_vgg8_{k}rows": v[0]
                for k, v in validation.NEUROSIM_VGG8.items()
            },
        },
        "adc_models_22nm_J": {"bits": list(range(2, 11)), **adc_models},
        "survey_adc_check": SurveyADC().conversion_energy(6),
        "energy_constants": {
            k: {"value": v, "provenance": p, "source": s}
            for k, (v, p, s) in CONSTANTS.items()
        },
        "note": "2 CPU cores shared with other jobs; timings indicative only",
        **provenance(),
        "seconds": round(time.time() - t_start, 1),
    }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "energy_accuracy.json", out)
    plot(out_dir / "energy_accuracy.json", out_dir / "energy_accuracy.png")
    print(f"wrote {out_dir / 'energy_accuracy.png'} in {out['seconds']} s")
    return out


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both energy (lower) and
    accuracy (higher), by increasing energy."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot(results_path: Path, png_path: Path) -> None:
    """Draw the figure from the results file alone: one accuracy-vs-energy
    panel per network (Pareto front, macros as reference lines), and the ADC
    energy models against the survey envelope."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    nets = list(res["results"])
    import matplotlib.ticker  # noqa: F401  (used through matplotlib.ticker)

    fig, axes = plt.subplots(1, len(nets) + 1, figsize=(6.5 * (len(nets) + 1), 5.5))
    colors = {16: "tab:red", 64: "tab:orange", 256: "tab:blue"}
    markers = {1: "o", 2: "s", 4: "^"}
    for ax, net in zip(axes, nets):
        r = res["results"][net]
        rows = r["rows"]
        for row in rows:
            ax.scatter(
                row["energy_J"] * 1e9,
                row["accuracy_mean"] * 100,
                s=12 + 6 * row["adc_bits"],
                c=colors.get(row["parallel_rows"], "k"),
                marker=markers.get(row["n_slices"], "x"),
                edgecolors="k" if row["encoding"] == "bit_serial" else "none",
                linewidths=0.8,
                alpha=0.8,
            )
        front = [rows[i] for i in r["pareto"]]
        ax.plot(
            [p["energy_J"] * 1e9 for p in front],
            [p["accuracy_mean"] * 100 for p in front],
            "k-",
            lw=1,
            label="Pareto front",
        )
        ops = rows[0]["ops"]
        for i, (name, tw) in enumerate(res["macros"].items()):
            e = ops / (tw * 1e12) * 1e9
            ax.axvline(
                e, color=f"C{i + 4}", ls="--", lw=1, label=f"{name}: {tw} TOPS/W"
            )
        ax.axhline(r["float_accuracy"] * 100, color="gray", ls=":", label="float")
        ax.set_xscale("log")
        fmt = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_formatter(
            matplotlib.ticker.FuncFormatter(
                lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""
            )
        )
        ax.set_xlabel("energy per inference (nJ), 22 nm model, chip level")
        ax.set_ylabel(f"accuracy (%), {res['config']['n_eval']} test digits")
        ax.set_title(
            f"{net.upper()}: {r['points']} points, {r['compiles']} compilation\n"
            "colour: rows per read (blue 256, orange 64, red 16); marker: slices "
            "(o 1, s 2, ^ 4)\nblack edge: bit-serial inputs; size: ADC bits; "
            "dashed: published TOPS/W at this network's ops",
            fontsize=8,
        )
        ax.legend(fontsize=6, loc="lower right")
        ax.grid(alpha=0.3)
    ax = axes[-1]
    m = res["adc_models_22nm_J"]
    for name in ("SAR", "flash", "ramp", "survey envelope"):
        ax.semilogy(
            m["bits"], np.asarray(m[name]) * 1e15, "-o" if name != "survey envelope"
            else "k--", label=name,
        )  # fmt: skip
    ax.set_xlabel("ADC bits")
    ax.set_ylabel("energy per conversion (fJ), 22 nm")
    ax.set_title("ADC models vs the Murmann survey envelope", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, png_path, dpi=110)


def main(argv=None) -> None:
    experiment_main(
        argv,
        doc=__doc__,
        name="energy_accuracy",
        run=run,
        plot=plot,
        out_dir=ROOT / "figures",
    )


if __name__ == "__main__":
    sys.exit(main())
