"""What do ADC resolution, bit slicing and the input encoding cost in accuracy and
energy?

Trains a 784-256-10 MLP (the flagship's) and a small CNN (conv 1->8 3x3/2,
conv 8->16 3x3/2, linear 576->10) digitally on the 5,000-digit MNIST subset
(seeded 4,000 / 1,000 split), maps them onto 256 x 256 tiles of Ag:a-Si RRAM
(card `rram_ag_asi_jo2010`, programming and read noise at the card's values)
with 8-bit weights split into 1, 2 or 4 bit slices (differential pairs), an
8-bit DAC by pulse amplitude or bit-serial, and per-layer ADCs calibrated
once on training inputs, and measures held-out accuracy against ADC bits.

Each (network, slices, encoding) is one `xbar.Sweep`: the ADC bits and full
scales are arrays, so the whole ADC-bit sweep and its repeats are one
compilation (the number of slices and the encoding set array shapes, so each
combination compiles once; counts are recorded). Then an energy/latency
breakdown per layer and component (`xbar.analysis.energy`) for one design point.
Writes `figures/periphery.json` and `figures/periphery.png` (redrawn from the
JSON by `--plot-only`).

    python experiments/periphery.py           # full run
    python experiments/periphery.py --quick   # seconds, for tests
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
from xbar.analysis.energy import (
    CONSTANTS,
    EnergyModel,
    SurveyADC,
    WaldenADC,
    network_counts,
    summary,
)
from xbar.training.classifier import accuracy, fit_classifier, train_mlp

ROOT = Path(__file__).resolve().parents[1]

CARD = "rram_ag_asi_jo2010"


class CNN(eqx.Module):
    """Digital reference CNN: two strided 3x3 convolutions and a linear head."""

    c1: eqx.nn.Conv2d
    c2: eqx.nn.Conv2d
    fc: eqx.nn.Linear

    def __init__(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.c1 = eqx.nn.Conv2d(1, 8, 3, stride=2, key=k1)
        self.c2 = eqx.nn.Conv2d(8, 16, 3, stride=2, key=k2)
        self.fc = eqx.nn.Linear(16 * 6 * 6, 10, key=k3)

    def __call__(self, x):  # x: (784,) one image
        h = jax.nn.relu(self.c1(x.reshape(1, 28, 28)))
        h = jax.nn.relu(self.c2(h))
        return self.fc(h.reshape(-1))

    def params(self):
        return [
            (self.c1.weight, self.c1.bias[:, 0, 0]),
            (self.c2.weight, self.c2.bias[:, 0, 0]),
            (self.fc.weight, self.fc.bias),
        ]


def train_cnn(x, y, *, key, epochs, batch_size=128, lr=2e-3):
    import optax

    k_init, k_shuffle = jax.random.split(key)
    return fit_classifier(
        CNN(k_init),
        x,
        y,
        key=k_shuffle,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optax.adam(lr),
    )


INPUT_SHAPE = {"mlp": (784,), "cnn": (1, 28, 28)}


DACS = {"amplitude": xbar.DAC, "bit_serial": xbar.BitSerialDAC}


def build(net, params, device, *, key, mapping, dac, adcs=None):
    """The analog network (both convolutions of the CNN have stride 2); `adcs`
    gives each layer its converter (default ideal)."""
    config = xbar.AnalogConfig(device, mapping=mapping, dac=dac)
    if adcs is not None:
        config = [eqx.tree_at(lambda c: c.adc, config, a) for a in adcs]
    return xbar.AnalogNetwork.from_weights(
        params, config, key=key, input_shape=INPUT_SHAPE[net], strides=2
    )


def run(
    *,
    quick: bool = False,
    seed: int = 0,
    out_dir: Path = ROOT / "figures",
    combos: list | None = None,
    overrides: dict | None = None,
) -> dict:
    t_start = time.time()
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
        "adc_calibration_percentile": 99.9,
        "n_calibration": 64 if quick else 256,
        "n_repeats": 1 if quick else 3,
        "n_eval": 100 if quick else 1000,
        "adc_bits": [3, 6] if quick else [3, 4, 5, 6, 8],
        "n_slices": [1, 2, 4],
        "encodings": ["amplitude", "bit_serial"],
        # ADC full scale: one per layer, or one per ADC column (each bit slice's
        # column on its own), both at the calibration percentile.
        "adc_calibrations": ["layer", "column"],
        # (net, slices, encoding, calibration) combinations run; --quick runs two.
        "combos": [["mlp", 2, "amplitude", "layer"], ["cnn", 2, "amplitude", "column"]]
        if quick
        else [
            [n, s, e, c]
            for c in ("layer", "column")
            for n in ("mlp", "cnn")
            for s in (1, 2, 4)
            for e in ("amplitude", "bit_serial")
        ],
        "energy_point": {
            "net": "mlp",
            "n_slices": 2,
            "encoding": "amplitude",
            "adc_bits": 6,
            "adc_share": 8,
            "parallel_rows": None,
            "n_images": 8 if quick else 64,
        },
    }
    if combos is not None:  # a combination without a calibration uses "layer"
        cfg["combos"] = [list(c) + ["layer"] * (4 - len(c)) for c in combos]
    unknown = set(overrides or {}) - set(cfg)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; keys: {sorted(cfg)}")
    cfg.update(overrides or {})
    key = jax.random.key(seed)
    k_mlp, k_cnn, k_cal, k_sweep, k_energy = jax.random.split(key, 5)
    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=cfg["n_test"], seed=seed)
    n_train = cfg["n_train"]
    x_fit, y_fit = x_tr[:n_train], y_tr[:n_train]
    models = {
        "mlp": train_mlp(
            x_fit, y_fit, [784, 256, 10], key=k_mlp, epochs=cfg["epochs_mlp"]
        ),
        "cnn": train_cnn(x_fit, y_fit, key=k_cnn, epochs=cfg["epochs_cnn"]),
    }
    float_acc = {
        n: float(accuracy(jax.vmap(m)(jnp.asarray(x_te)), y_te))
        for n, m in models.items()
    }
    print(f"float accuracy {float_acc} ({time.time() - t_start:.1f} s)")
    x_eval = jnp.asarray(x_te[: cfg["n_eval"]])
    y_eval = jnp.asarray(y_te[: cfg["n_eval"]])
    x_cal = jnp.asarray(x_tr[: cfg["n_calibration"]])
    device = devices.RRAM.from_card(CARD)
    quiet = devices.RRAM.from_card(CARD, sigma_prog=0.0, sigma_read=0.0, sigma_c2c=0.0)
    tiles = dict(tile_rows=cfg["tile"][0], tile_cols=cfg["tile"][1])

    results = []
    for net, ns, enc, calib in cfg["combos"]:
        if calib not in ("layer", "column"):
            raise ValueError(f"calibration must be 'layer' or 'column'; got {calib!r}")
        params = models[net].params()
        dac = DACS[enc](bits=cfg["dac_bits"], v_read=cfg["v_read_V"])
        mapping = xbar.Mapping(n_slices=ns, weight_bits=cfg["weight_bits"], **tiles)
        common = dict(mapping=mapping, dac=dac)
        cal = eqx.filter_jit(build)(
            net, params, quiet, key=k_cal, **common
        ).calibrate_adcs(
            x_cal,
            bits=8,
            percentile=cfg["adc_calibration_percentile"],
            per_column=calib == "column",
        )
        i_max = [lay.adc.i_max for lay in cal.layers]
        print(f"  calibrated {net} {ns} {enc} {calib} ({time.time() - t_start:.1f} s)")
        points = [
            tuple(xbar.ADC(bits=b, i_max=i) for i in i_max) for b in cfg["adc_bits"]
        ]

        # Weights and data are arguments, not closure constants: XLA would
        # otherwise constant-fold the whole mapping at compile time.
        def evaluate(adcs, k, params, x_eval, y_eval, common=common, net=net):
            k_map, k_read = jax.random.split(k)
            analog = build(net, params, device, key=k_map, adcs=list(adcs), **common)
            return accuracy(analog(x_eval, key=k_read), y_eval)

        sweep = xbar.Sweep(evaluate, batch_size=1)
        t0 = time.time()
        acc = np.asarray(
            sweep(xbar.stack(points), k_sweep, cfg["n_repeats"], params, x_eval, y_eval)
        )
        row = {
            "net": net,
            "n_slices": ns,
            "encoding": enc,
            "calibration": calib,
            "adc_bits": cfg["adc_bits"],
            "accuracy": acc.tolist(),
            "mean": acc.mean(axis=1).tolist(),
            "compiles": sweep.n_traces,
            "seconds": round(time.time() - t0, 2),
        }
        results.append(row)
        print(
            f"{net} slices={ns} {enc} {calib}: {sweep.n_traces} compile(s), "
            f"{row['seconds']} s; "
            + ", ".join(f"{b}b {m:.3f}" for b, m in zip(cfg["adc_bits"], row["mean"]))
        )

    # Energy breakdown of one design point, noise-free counts on test images.
    ep = cfg["energy_point"]
    dac = DACS[ep["encoding"]](bits=cfg["dac_bits"], v_read=cfg["v_read_V"])
    energy, energy_walden, energy_summary = {}, {}, {}
    for net, model in models.items():
        analog = eqx.filter_jit(build)(
            net,
            model.params(),
            device,
            key=k_energy,
            mapping=xbar.Mapping(
                n_slices=ep["n_slices"],
                weight_bits=cfg["weight_bits"],
                parallel_rows=ep["parallel_rows"],
                **tiles,
            ),
            dac=dac,
        ).calibrate_adcs(
            x_cal, bits=ep["adc_bits"], percentile=cfg["adc_calibration_percentile"]
        )
        analog = eqx.tree_at(
            lambda n: n.layers,
            analog,
            tuple(
                lay.with_adc(
                    xbar.ADC(
                        bits=ep["adc_bits"], i_max=lay.adc.i_max, share=ep["adc_share"]
                    )
                )
                for lay in analog.layers
            ),
        )
        xi = jnp.asarray(x_te[: ep["n_images"]])
        energy[net] = network_counts(analog, xi)
        # The same counts priced with the Walden-FoM ADC (the previous default
        # alternative) and the Murmann survey's state-of-the-art envelope.
        energy_walden[net] = network_counts(analog, xi, EnergyModel(adc=WaldenADC()))
        s = summary(energy[net])
        macro = sum(s["energy_J"][p] for p in ("dac", "cells", "adc", "accumulation"))
        survey = summary(network_counts(analog, xi, EnergyModel(adc=SurveyADC())))
        energy_summary[net] = {
            **s,
            "tops_per_w_macro": s["ops"] / macro / 1e12,
            "tops_per_w_survey_adc": survey["tops_per_w"],
        }
        print(
            f"{net} energy point: {s['energy_total_J'] * 1e9:.3g} nJ per inference, "
            f"{s['tops_per_w']:.0f} TOPS/W chip, "
            f"{energy_summary[net]['tops_per_w_macro']:.0f} TOPS/W macro level"
        )
    out = {
        "experiment": "periphery",
        "config": cfg,
        "seed": seed,
        "card": devices.load_card(CARD),
        "float_accuracy": float_acc,
        "results": results,
        "compiles_total": sum(r["compiles"] for r in results),
        "energy": energy,
        "energy_adc_walden": energy_walden,
        "energy_summary": energy_summary,
        "energy_constants": {
            k: {"value": v, "provenance": p, "source": s}
            for k, (v, p, s) in CONSTANTS.items()
        },
        **provenance(),
        "seconds": round(time.time() - t_start, 1),
    }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "periphery.json", out)
    plot(out_dir / "periphery.json", out_dir / "periphery.png")
    print(f"wrote {out_dir / 'periphery.png'} in {out['seconds']} s")
    return out


def plot(results_path: Path, png_path: Path) -> None:
    """Draw the figure from the results file alone.

    Top row: accuracy with one ADC full scale per layer; bottom row: one per
    ADC column; right: the energy breakdown of the design point and its ADC
    energy under the two ADC models.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    cfg = res["config"]
    calibs = [
        c
        for c in ("layer", "column")
        if any(r.get("calibration", "layer") == c for r in res["results"])
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.6), squeeze=False)
    colors = {1: "tab:blue", 2: "tab:orange", 4: "tab:green"}
    styles = {"amplitude": "-o", "bit_serial": "--s", "pulse_width": ":^"}
    for i, calib in enumerate(("layer", "column")):
        for ax, net in zip(axes[i, :2], ("mlp", "cnn")):
            if calib not in calibs:
                ax.set_visible(False)
                continue
            for r in res["results"]:
                if r["net"] != net or r.get("calibration", "layer") != calib:
                    continue
                acc = np.asarray(r["accuracy"]) * 100
                ax.errorbar(
                    r["adc_bits"],
                    acc.mean(1),
                    yerr=acc.std(1, ddof=1) if acc.shape[1] > 1 else None,
                    fmt=styles[r["encoding"]],
                    color=colors.get(r["n_slices"], "k"),
                    capsize=2,
                    label=f"{r['n_slices']} slice(s), {r['encoding']}",
                )
            ax.axhline(
                res["float_accuracy"][net] * 100,
                color="gray",
                lw=1,
                ls=":",
                label="float",
            )
            ax.set_xticks(cfg["adc_bits"])
            ax.set_xlabel("ADC bits (incl. sign)")
            ax.set_ylabel(f"held-out accuracy (%), {cfg['n_eval']} digits")
            name = {"mlp": "MLP 784-256-10", "cnn": "CNN 2 conv + linear"}[net]
            ax.set_title(f"{name}; ADC full scale per {calib}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
    for j in range(2):  # same accuracy axis in both rows, so the rows compare
        shown = [a for a in axes[:, j] if a.get_visible()]
        lo = min(a.get_ylim()[0] for a in shown)
        hi = max(a.get_ylim()[1] for a in shown)
        for a in shown:
            a.set_ylim(lo, hi)
    ax = axes[0, 2]
    comps = list(res["energy"]["mlp"][0]["energy_J"])
    labels, bars, walden = [], [], []
    for net in ("mlp", "cnn"):
        for row in res["energy"][net]:
            labels.append(f"{net} L{row['layer']}")
            bars.append([row["energy_J"][c] * 1e9 for c in comps])
        for row in res.get("energy_adc_walden", {}).get(net, []):
            walden.append(row["energy_J"]["adc"] * 1e9)
    bars = np.asarray(bars)
    bottoms = np.zeros(len(labels))
    for j, c in enumerate(comps):
        ax.bar(labels, bars[:, j], bottom=bottoms, label=c)
        bottoms += bars[:, j]
    for k, (tot, row) in enumerate(zip(bottoms, bars)):
        ax.annotate(
            f"{tot:.2f} nJ",
            (k, tot),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_ylim(0, bottoms.max() * 1.2)
    ep = cfg["energy_point"]
    ax.set_ylabel("energy per inference (nJ)")
    ax.set_title(
        f"{ep['n_slices']} slices, {ep['encoding']} DAC, {ep['adc_bits']}-bit SAR ADC"
        f" (22 nm model)\nmean of {ep['n_images']} digits"
        + "".join(
            f"; {n} {v['tops_per_w']:.0f} TOPS/W"
            for n, v in res.get("energy_summary", {}).items()
        ),
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax = axes[1, 2]
    if len(walden) == len(labels):
        xs = np.arange(len(labels))
        ax.bar(xs - 0.2, bars[:, comps.index("adc")] * 1e3, 0.4, label="SAR (default)")
        ax.bar(xs + 0.2, np.asarray(walden) * 1e3, 0.4, label="Walden FoM 10 fJ/step")
        ax.set_xticks(xs, labels)
        ax.set_yscale("log")
        ax.set_ylim(top=max(walden) * 1e3 * 8)
        ax.set_ylabel("ADC energy per inference (pJ)")
        ax.set_title(f"ADC energy by model, {ep['adc_bits']}-bit", fontsize=9)
        ax.legend(fontsize=8, loc="upper center", ncol=2)
        ax.grid(alpha=0.3, axis="y")
    else:
        ax.set_visible(False)
    fig.suptitle(
        f"{cfg['weight_bits']}-bit weights on {cfg['tile'][0]}x{cfg['tile'][1]} "
        f"tiles of {res['card']['name']}, {cfg['dac_bits']}-bit DAC, "
        f"{cfg['n_repeats']} device draws per point; "
        f"{res['compiles_total']} compilations for {len(res['results'])} sweeps",
        fontsize=10,
    )
    save_figure(fig, png_path, dpi=110)


def main(argv=None) -> None:
    experiment_main(
        argv,
        doc=__doc__,
        name="periphery",
        run=run,
        plot=plot,
        out_dir=ROOT / "figures",
    )


if __name__ == "__main__":
    sys.exit(main())
