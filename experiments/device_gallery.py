"""Device gallery: each family's nonlinearity, noise and drift from its card.

For RRAM (Ag:a-Si, NeuroSim), PCM (Joshi 2020 / aihwkit), halide perovskite
(MAPbI3 nanowires, Poddar) and ionic synapses (Li-ion ECRAM, Tang 2018; droplet
interface, Li 2025) draws, one row per family:

  (a) conductance against pulse number: LTP then LTD, over repeated cycles of
      many cells (mean and the 5-95 % band of the cycle-to-cycle spread);
  (b) drift / retention / volatile decay against time on a log axis, with the
      spread across cells of the slow read deviation (held between reads);
  (c) the two parts of the read noise one day after programming: the slow
      deviation each cell holds (the same for every read at that time) and
      the fast white noise of one read.

A further row shows the compact switching models' pinched hysteresis loops
at three frequencies, and a last row the temperature dependence (field
`temperature_k`, Arrhenius with each card's activation energy `ea_ev`): PCM
drift and RRAM retention at 300, 330 and 360 K, and the perovskite's volatile
decay at 280, 300 and 330 K next to the double-exponential option
(`frac_tau2`, `tau2_s`) at 300 K. Writes `figures/device_gallery.json`
(configuration, seed, versions, git revision, every curve) and
`figures/device_gallery.png`, which `--plot-only` redraws from the JSON alone.

    python experiments/device_gallery.py           # ~20 s on 2 cores
    python experiments/device_gallery.py --quick   # seconds, for tests
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from common import (
    experiment_main,
    git_revision,
    package_versions,
    save_figure,
    write_json_atomic,
)

import devices

ROOT = Path(__file__).resolve().parents[1]

FAMILIES = [
    ("RRAM", "rram_ag_asi_jo2010", lambda: devices.RRAM.from_card(
        "rram_ag_asi_jo2010", retention_m=-0.01, sigma_retention_0=0.005,
        sigma_retention_ln=0.002)),
    ("PCM", "pcm_joshi2020", lambda: devices.PCM.from_card("pcm_joshi2020")),
    ("Perovskite", "perovskite_mapbi3_poddar",
     lambda: devices.Perovskite.from_card("perovskite_mapbi3_poddar")),
    ("Ionic (ECRAM)", "ionic_ecram_tang2018",
     lambda: devices.IonicSynapse.from_card("ionic_ecram_tang2018")),
    ("Ionic (droplet)", "ionic_droplet_li2025",
     lambda: devices.IonicSynapse.from_card("ionic_droplet_li2025")),
]


def _band(a):
    """Mean and 5/95 % percentiles over cells (axis 1), as lists."""
    a = np.asarray(a, np.float64)
    return {"mean": a.mean(1).tolist(), "p05": np.percentile(a, 5, 1).tolist(),
            "p95": np.percentile(a, 95, 1).tolist()}


@eqx.filter_jit
def family_curves(dev, key, ts, n_cells: int, n_cycles: int, p_up: int,
                  p_dn: int, dt_s: float, burst: bool, n_read: int = 20_000):
    """Everything one gallery row needs, in one compiled function.

    Returns (a) the conductance after every pulse of `n_cycles` LTP/LTD cycles
    of `n_cells` cells (spacing `dt_s`), shaped (pulses + 1, cycles x cells);
    (b) g(t) / g(0) at times `ts` after programming mid-range, or after a
    10-pulse burst for volatile devices (`burst`), shaped (times, cells);
    (c) at mid-range one day after programming, the slow deviation of every
    cell (held read mean / noise-free mean - 1) and the fast deviation of one
    read (read / held mean - 1).
    """
    k1, k2, k3, k4, k5, k6 = jax.random.split(key, 6)
    pulses = jnp.tile(jnp.concatenate([jnp.ones(p_up), -jnp.ones(p_dn)]), n_cycles)
    st = dev.init((n_cells,), key=k1)
    _, g = devices.pulse_response(dev, st, pulses[:, None] * jnp.ones((1, n_cells)),
                                  key=k2, dt_s=dt_s)
    g = g.reshape(n_cycles, p_up + p_dn, n_cells)
    g = jnp.concatenate([jnp.full((n_cycles, 1, n_cells), dev.g_min), g], 1)
    g = jnp.transpose(g, (1, 0, 2)).reshape(p_up + p_dn + 1, -1)

    n = 2000
    mid = 0.5 * (dev.g_min + dev.g_max)
    st = dev.program(dev.init((n,), key=k3), jnp.full((n,), mid), key=k4)
    if burst:
        st = dev.update(st, jnp.full((n,), 10.0), key=k5)
        tc = jax.vmap(lambda t: dev.relax(st, t).g / st.g)(ts)
    else:
        g0 = dev.read_parts(st, 0.0)[0]
        tc = jax.vmap(lambda t: dev.read_stats(st, t)[0] / g0)(ts)

    st = dev.program(dev.init((n_read,), key=k3), jnp.full((n_read,), mid), key=k4)
    day = 86400.0
    mean, _, _ = dev.read_parts(st, day)
    held, _ = dev.read_stats(st, day)
    return g, tc, dev.read(st, day, key=k6) / held - 1.0, held / mean - 1.0


# Temperature row: (family, temperatures in K, extra device keywords per
# curve label). The volatile panel uses the perovskite, or the droplet synapse
# when only it is drawn.
TEMPERATURE_ROW = (
    ("PCM", (300.0, 330.0, 360.0)),
    ("RRAM", (300.0, 330.0, 360.0)),
    ("Perovskite", (280.0, 300.0, 330.0)),
    ("Ionic (droplet)", (280.0, 300.0, 330.0)),
)
# Double-exponential variant drawn at 300 K in the volatile panel.
DOUBLE_EXP = {"frac_tau2": 0.3, "tau2_ratio": 30.0}


@eqx.filter_jit
def time_curve(dev, key, ts, n: int, burst: bool):
    """g(t) / g(0) of `n` cells at times `ts` after programming mid-range, or
    after a 10-pulse burst for volatile devices (`burst`), shaped (times, n):
    panel (b) of `family_curves`, for one device (one compile per family:
    the temperature is a traced field)."""
    k1, k2, k3 = jax.random.split(key, 3)
    mid = 0.5 * (dev.g_min + dev.g_max)
    st = dev.program(dev.init((n,), key=k1), jnp.full((n,), mid), key=k2)
    if burst:
        st = dev.update(st, jnp.full((n,), 10.0), key=k3)
        return jax.vmap(lambda t: dev.relax(st, t).g / st.g)(ts)
    g0 = dev.read_parts(st, 0.0)[0]
    return jax.vmap(lambda t: dev.read_stats(st, t)[0] / g0)(ts)


def temperature_rows(chosen, cfg, key, quick: bool):
    """The temperature row's curves for the chosen families (JSON-ready)."""
    names = [f for f, _, _ in chosen]
    makes = {f: make for f, _, make in chosen}
    vol = "Perovskite" if "Perovskite" in names else "Ionic (droplet)"
    out = {}
    n = 200 if quick else 2000
    ts = jnp.asarray(cfg["times_s"], jnp.float32)
    for fam, temps in TEMPERATURE_ROW:
        if fam not in names or (fam in ("Perovskite", "Ionic (droplet)")
                                and fam != vol):
            continue
        if quick and fam != vol:  # tests: one compile (the volatile panel)
            continue
        base = makes[fam]()
        volatile = float(getattr(base, "vol_step", 0.0)) > 0
        curves = {}
        for t_k in temps:
            dev = eqx.tree_at(lambda d: d.temperature_k, base, jnp.float32(t_k))
            curves[f"{t_k:g} K"] = _band(time_curve(dev, key, ts, n, volatile))
        if volatile:
            dev = eqx.tree_at(
                lambda d: (d.frac_tau2, d.tau2_s), base,
                (jnp.float32(DOUBLE_EXP["frac_tau2"]),
                 base.tau_s * DOUBLE_EXP["tau2_ratio"]))
            curves["300 K, double exp."] = _band(time_curve(dev, key, ts, n, True))
        out[fam] = {"ea_ev": float(base.ea_ev), "curves": curves,
                    "tau_s": float(getattr(base, "tau_s", 0.0))}
    return out


def run(*, quick: bool = False, seed: int = 0, out_dir: Path = ROOT / "figures",
        families: tuple[str, ...] | None = None):
    """Compute every row (or only `families`, by name), save JSON, draw PNG."""
    chosen = [f for f in FAMILIES if families is None or f[0] in families]
    t_start = time.time()
    cfg = {
        "families": [(f, c) for f, c, _ in chosen],
        "n_cells": 8 if quick else 32,
        "n_cycles": 2 if quick else 4,
        "times_s": np.logspace(-3, 7.5, 12 if quick else 40).tolist(),
        "read_bins": np.linspace(-0.25, 0.25, 81).tolist(),
        "compact_freqs_hz": {"LinearIonDrift": [0.5, 1.0, 2.0],
                             "VTEAM": [3e7, 1e8, 3e8]},
        "notes": "RRAM drawn with the optional retention_m = -0.01 and retention "
                 "spread 0.005 + 0.002 ln(1 + t / 1 s) of the window (assumed, off "
                 "on the card); in (a) volatile devices get one pulse per tau "
                 "(pulse_spacing_s), in (b) they relax after a 10-pulse burst; "
                 "(c) is at t = 1 day.",
    }
    key = jax.random.key(seed)
    rows = {}
    for fam, card, make in chosen:
        dev = make()
        key, k1 = jax.random.split(key)
        c = devices.card_values(card)
        p_up = int(c.get("p_max_ltp", c.get("p_max_set", 0)) or round(1 / max(
            c.get("dx", 0.0) or c.get("vol_step", 0.05), 1e-9)))
        p_up = min(p_up, 1000)
        p_dn = int(c.get("p_max_ltd", p_up))
        if quick:
            p_up = p_dn = min(p_up, 40)
        volatile = float(getattr(dev, "vol_step", 0.0)) > 0
        dt = float(dev.tau_s) if volatile else 0.0
        cfg.setdefault("pulse_spacing_s", {})[fam] = dt
        g, tc, rs, slow = family_curves(
            dev, k1, jnp.asarray(cfg["times_s"], jnp.float32), cfg["n_cells"],
            cfg["n_cycles"], p_up, p_dn, dt, volatile)
        g, tc = np.asarray(g, np.float64), np.asarray(tc, np.float64)
        rs, slow = np.asarray(rs, np.float64), np.asarray(slow, np.float64)
        hist, _ = np.histogram(rs, bins=cfg["read_bins"], density=True)
        entry = {
            "card": card,
            "g_min_S": float(dev.g_min), "g_max_S": float(dev.g_max),
            "pulses": {"p_up": p_up, "p_dn": p_dn, **_band(g)},
            "time": _band(tc),
            "read": {"hist": hist.tolist(), "std": float(rs.std()),
                     "mean": float(rs.mean())},
            "read_slow": {
                "hist": np.histogram(slow, bins=cfg["read_bins"], density=True)[0]
                .tolist(), "std": float(slow.std())},
        }
        rows[fam] = entry

    compact = {}
    compact_models = (("LinearIonDrift", devices.LinearIonDrift(), 1.0, 0.1),
                      ("VTEAM", devices.VTEAM(), 0.5, 0.0))
    for mname, model, amp, x0 in compact_models:
        n = 1000 if quick else 4000

        # The second period only: past the start-up transient.
        def loop(f, model=model, amp=amp, x0=x0, n=n, h=n // 2):
            _, v, _, i = devices.simulate(
                model, lambda t: amp * jnp.sin(2 * jnp.pi * f * t), 2.0 / f, n, x0)
            return v[h:], i[h:], devices.loop_area(v[h:], i[h:])

        fs = jnp.asarray(cfg["compact_freqs_hz"][mname], jnp.float32)
        vs, is_, areas = jax.jit(jax.vmap(loop))(fs)  # one compile per model
        compact[mname] = [
            {"f_hz": float(f), "v": np.asarray(v).tolist(),
             "i": np.asarray(i).tolist(), "area": float(a)}
            for f, v, i, a in zip(fs, vs, is_, areas)]

    cfg["temperature_row"] = {
        "temperatures_k": {f: list(t) for f, t in TEMPERATURE_ROW},
        "double_exponential": DOUBLE_EXP}
    temps = temperature_rows(chosen, cfg, jax.random.fold_in(key, 7), quick)
    out = {
        "experiment": "device_gallery", "config": cfg, "seed": seed,
        "quick": quick, "versions": package_versions(), "git_revision": git_revision(),
        "results": {"families": rows, "compact": compact, "temperature": temps},
        "wall_s": time.time() - t_start,
    }
    write_json_atomic(Path(out_dir) / "device_gallery.json", out)
    plot(Path(out_dir) / "device_gallery.json", Path(out_dir) / "device_gallery.png",
         dpi=50 if quick else 110)
    print(f"wrote {Path(out_dir) / 'device_gallery.json'} in {out['wall_s']:.1f} s")
    return out


def plot(results_path: Path, png_path: Path, dpi: int = 110) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = json.loads(Path(results_path).read_text())
    fams = res["results"]["families"]
    cfg = res["config"]
    n = len(fams)
    temps = res["results"].get("temperature", {})
    extra = 1 if temps else 0  # the temperature row, last
    fig, axes = plt.subplots(n + 1 + extra, 3, figsize=(13, 2.6 * (n + 1 + extra)))
    ts = np.asarray(cfg["times_s"])
    bins = np.asarray(cfg["read_bins"])
    centers = 0.5 * (bins[1:] + bins[:-1]) * 100
    for row, (fam, e) in zip(axes, fams.items()):
        # Conductance unit per row: uS or nS, whichever keeps g_max >= 1.
        scale, unit = (1e6, "uS") if e["g_max_S"] >= 1e-6 else (1e9, "nS")
        p = e["pulses"]
        x = np.arange(len(p["mean"]))
        ax = row[0]
        ax.fill_between(x, np.asarray(p["p05"]) * scale, np.asarray(p["p95"]) * scale,
                        alpha=0.3, label="5-95 % of cells x cycles")
        ax.plot(x, np.asarray(p["mean"]) * scale, lw=1.2, label="mean")
        ax.axvline(p["p_up"], color="k", lw=0.6, ls=":")
        ax.set_ylabel(f"{fam}\nG ({unit})")
        spacing = cfg.get("pulse_spacing_s", {}).get(fam, 0.0)
        every = f", one pulse per {spacing:g} s" if spacing else ""
        ax.set_title(f"(a) {e['card']}: {p['p_up']} LTP then {p['p_dn']} LTD"
                     f"{every}", fontsize=8)
        if fam == "RRAM":
            ax.legend(fontsize=7, loc="lower center")
        ax = row[1]
        tcur = e["time"]
        ax.fill_between(ts, tcur["p05"], tcur["p95"], alpha=0.3)
        ax.plot(ts, tcur["mean"], lw=1.2)
        ax.set_xscale("log")
        ax.set_ylabel("G(t) / G(0)")
        what = {"RRAM": "log-time retention with spread (assumed)",
                "PCM": "power-law drift, nu ~ |N(mu(g), s(g))|",
                "Perovskite": "volatile decay after 10 pulses (tau 1 s)",
                "Ionic (ECRAM)": "non-volatile (no decay on the card)",
                "Ionic (droplet)": "volatile decay after 10 pulses (tau 0.1 s)"}
        ax.set_title(f"(b) {what.get(fam, '')}", fontsize=8)
        ax = row[2]
        ax.step(centers, e["read"]["hist"], where="mid",
                label=f"fast, per read: std {100 * e['read']['std']:.2f} %")
        if "read_slow" in e:
            ax.step(centers, e["read_slow"]["hist"], where="mid",
                    label="slow, held per cell: std "
                    f"{100 * e['read_slow']['std']:.2f} %")
        ax.set_title("(c) read noise at mid-range, 1 day after programming",
                     fontsize=8)
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    axes[-2 - extra][0].set_xlabel("pulse number")
    axes[-2 - extra][1].set_xlabel("time since programming / burst (s)")
    axes[-2 - extra][2].set_xlabel("read deviation (%)")
    comp = res["results"]["compact"]
    for ax, (mname, loops) in zip(axes[-1 - extra][:2], comp.items()):
        for lp in loops:
            unit = 1e3
            ax.plot(lp["v"], np.asarray(lp["i"]) * unit, lw=1,
                    label=f"f = {lp['f_hz']:.3g} Hz, area {lp['area']:.2g} VA")
        ax.set_xlabel("V (V)")
        ax.set_ylabel("I (mA)")
        ax.set_title(f"{mname}: pinched loop shrinks as f rises", fontsize=8)
        ax.legend(fontsize=7)
    ax = axes[-1 - extra][2]
    for mname, loops in comp.items():
        f = np.asarray([lp["f_hz"] for lp in loops])
        a = np.asarray([lp["area"] for lp in loops])
        ax.loglog(f / f[0], a / a[0], "o-", label=mname)
    ax.set_xlabel("f / f_lowest")
    ax.set_ylabel("loop area / area at f_lowest")
    ax.set_title("loop area vs frequency", fontsize=8)
    ax.legend(fontsize=7)
    if temps:
        _plot_temperature(axes[-1], temps, ts)
    fig.suptitle("Device gallery: pulse response, time dependence, read noise "
                 "(from the literature cards)", fontsize=10)
    save_figure(fig, png_path, dpi=dpi)


def _plot_temperature(row, temps, ts) -> None:
    """The temperature row: one panel per family, one curve per temperature."""
    what = {"PCM": "PCM drift", "RRAM": "RRAM retention (as above)",
            "Perovskite": "perovskite volatile decay",
            "Ionic (droplet)": "droplet volatile decay"}
    for ax, (fam, e) in zip(row, temps.items()):
        for label, band in e["curves"].items():
            line, = ax.plot(ts, band["mean"], lw=1.2, label=label,
                            ls="--" if "double" in label else "-")
            ax.fill_between(ts, band["p05"], band["p95"], alpha=0.15,
                            color=line.get_color())
        ax.set_xscale("log")
        ax.set_xlabel("time since programming / burst (s)")
        ax.set_ylabel("G(t) / G(0)")
        ax.set_title(f"(T) {what.get(fam, fam)} vs temperature, card Ea "
                     f"{e['ea_ev']:g} eV", fontsize=8)
        ax.legend(fontsize=7)
    for ax in row[len(temps):]:
        ax.set_visible(False)


def main(argv=None) -> None:
    experiment_main(argv, doc=__doc__, name="device_gallery", run=run, plot=plot,
                    out_dir=ROOT / "figures")


if __name__ == "__main__":
    main()
