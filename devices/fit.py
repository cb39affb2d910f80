"""From measured pulse-response tables to a device card.

A pulse-response table is conductance against pulse number for alternating
LTP and LTD phases, over several cycles: rows `(cycle, phase, pulse, g_s)` with
`phase` "ltp" or "ltd", `pulse` the index within the phase (0 = before the
first pulse) and `g_s` the conductance (S) after that many pulses.

Both update models fitted here make one pulse an *affine* map of the present
conductance, so each is fitted as a regression of each step `g_{k+1}` on
`g_k`:

- NeuroSim nonlinear update (E-NL): one LTP pulse maps
  `g -> e^{-1/A} g + (B + g_min)(1 - e^{-1/A})`, one LTD pulse
  `g -> e^{1/A_d} g + (B_d + g_min)(1 - e^{1/A_d})`, with `A = a P_max`,
  `B = (g_max - g_min) / (1 - e^{-P_max/A})`. The two slopes give `a_ltp`,
  `a_ltd`; the two intercepts are linear in `(g_min, g_max - g_min)`.
- Soft bounds (aihwkit SoftBounds, our `IonicSynapse` with gamma = 1): one up
  pulse maps `g -> g + k_up (g_max - g)`, one down pulse
  `g -> g - k_dn (g - g_min)`.

A measured table carries write noise (accumulates along a phase) and read
noise (per measurement). The slopes are instrumental-variable estimates
(ordinary least squares would be pulled towards 0 by the read noise), and the
two noises are separated by the lag-1 autocovariance of the step residuals
(see `_affine`). `validate_fit` simulates the measured protocol with the
fitted card and compares it with the table. Reading and checking tables:
`devices.pulse_table`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .base import AbstractDevice
from .pulse_table import (  # noqa: F401 (re-exported)
    _sequences,
    check_table,
    cycle_table,
    pulse_response,
    read_table,
    write_table,
)


def _steps(rows, phase, lag: int = 1):
    """Quadruples `(g_{k-1}, g_k, g_{k+1}, g_{k+lag})` of reads of one phase,
    the index of the sequence each belongs to, and the phase length."""
    seqs = _sequences(rows, phase)
    if not seqs:
        raise ValueError(f"pulse table has no {phase!r} rows")
    p_max = max(
        max(k for c, ph, k, _ in rows if ph == phase and c == c0)
        for c0 in {c for c, ph, _, _ in rows if ph == phase}
    )
    z, x, y, ym, idx = [], [], [], [], []
    for i, seq in enumerate(seqs):
        for k in range(1, len(seq) - 1):
            z.append(seq[k - 1])
            x.append(seq[k])
            y.append(seq[k + 1])
            ym.append(seq[k + lag] if k + lag < len(seq) else np.nan)
            idx.append(i)
    return (np.asarray(z), np.asarray(x), np.asarray(y), np.asarray(ym),
            np.asarray(idx), p_max)


def _affine(z, x, y, ym, lag, idx, lo, hi, n_iter: int = 4, k_sigma: float = 4.0):
    """Fit `y = slope x + icpt` over steps that cannot have been clipped at a
    bound, and split the residual noise into write and read parts.

    A measured table has write noise `w` (accumulates along a phase) and read
    noise `e` (white, per measurement): `y_{k+1} = f(g_k) + w_k + e_{k+1}`
    with `x = g_k + e_k`. Ordinary least squares of y on x is biased towards
    slope 0 by `e` (errors in variables), so the slope is an instrumental-
    variable estimate with the previous read `z = y_{k-1}` as the instrument
    (independent of `e_k`, `e_{k+1}`). Where one step is small against the
    noise (long phases), the slope is fitted over `lag` pulses instead
    (`y_{k+lag} = slope^lag x + c (1 - slope^lag)`, the same affine map
    applied `lag` times), whose signal is `lag` times larger. The residuals
    `r_k = w_k + e_{k+1} -
    slope e_k` have variance `s_w^2 + (1 + slope^2) s_r^2` and lag-1
    autocovariance `-slope s_r^2` (a pure read noise gives a lag-1
    autocorrelation of the step differences near -0.5), which give `s_r` and
    `s_w`.

    A step whose noise-free end `f(x)` lies within `k_sigma` residual stds of a
    bound may have been clipped, and dropping only the clipped ones would
    truncate the noise (a biased fit), so those steps are dropped whole.

    Returns slope, intercept, write std, read std (S; None where the
    autocovariance does not identify it), the number of steps used and the
    lag-1 autocorrelation of the residuals.
    """
    tol = 1e-9 * (hi - lo)
    keep = (y > lo + tol) & (y < hi - tol) & (x > lo + tol) & (x < hi - tol)
    far = np.isfinite(ym)
    for _ in range(n_iter):
        use = keep & far
        if use.sum() < 3:
            raise ValueError("pulse table: fewer than 3 steps away from the bounds")
        zs, xs, ys = z[use], x[use], ym[use]
        zc = zs - zs.mean()
        slope_m = float(np.dot(zc, ys - ys.mean()) / np.dot(zc, xs - xs.mean()))
        icpt_m = float(ys.mean() - slope_m * xs.mean())
        slope = slope_m ** (1.0 / lag) if slope_m > 0 else slope_m
        # The fixed point c = icpt_m / (1 - slope_m) of the lag map is the one
        # of the one-pulse map: icpt = c (1 - slope).
        icpt = icpt_m * (1.0 - slope) / (1.0 - slope_m) if lag > 1 else icpt_m
        xs, ys = x[keep], y[keep]
        resid = ys - (slope * xs + icpt)
        sigma = resid.std(ddof=2)
        pred = slope * x + icpt
        keep = (pred > lo + k_sigma * sigma) & (pred < hi - k_sigma * sigma)
        keep &= (x > lo + tol) & (x < hi - tol)
    # Lag-1 autocovariance over consecutive kept steps of one sequence.
    r = np.full(x.shape, np.nan)
    r[keep] = y[keep] - (slope * x[keep] + icpt)
    same = (idx[1:] == idx[:-1]) & keep[1:] & keep[:-1]
    g0 = float(np.mean(r[keep] ** 2))
    if same.sum() >= 3:
        g1 = float(np.mean(r[:-1][same] * r[1:][same]))
        rho = g1 / g0
    else:
        g1, rho = 0.0, float("nan")
    s_r2 = -g1 / slope if slope > 0 else float("nan")
    read = float(np.sqrt(s_r2)) if np.isfinite(s_r2) and s_r2 > 0 else None
    # Write noise from the residuals over `lag` pulses, where it has
    # accumulated over the lag and stands out of the read noise:
    # var = s_w^2 sum_{j<lag} slope^{2j} + (1 + slope^{2 lag}) s_r^2.
    use = keep & far
    r_m = ym[use] - (slope_m * x[use] + icpt_m)
    gain = float(np.sum(slope ** (2.0 * np.arange(lag))))
    s_w2 = (float(np.mean(r_m**2)) - (1.0 + slope_m**2) * (read or 0.0) ** 2) / gain
    write = float(np.sqrt(max(s_w2, 0.0)))
    return slope, icpt, write, read, int(keep.sum()), rho


def fit_pulse_response(data) -> dict:
    """Fit the nonlinear-update (E-NL) and soft-bounds models to a pulse table.

    Args:
        data: a CSV path (header `cycle,phase,pulse,g_s`) or a list of rows
            `(cycle, phase, pulse, g_s)`; checked by `check_table`.

    Returns:
        `{"nl": {...}, "soft_bounds": {...}}`: for "nl" the `RRAM` fields
        g_min, g_max, p_max_ltp, p_max_ltd, a_ltp, a_ltd, sigma_c2c (write
        noise per pulse), sigma_read (read noise of the table, relative to
        its mean conductance); for "soft_bounds" the `IonicSynapse` fields
        g_min, g_max, dx, x_ref, gamma_up = gamma_dn = 1, sigma_c2c (relative
        to the step), sigma_read; each with the number of steps used, the
        write and read stds (S), the lag-1 autocorrelation of the step
        residuals, and `unidentified`: the fields the table cannot identify.
    """
    rows = read_table(data) if isinstance(data, (str, Path)) else list(data)
    check_table(rows)
    g_all = np.asarray([r[3] for r in rows], np.float64)
    lo, hi = float(g_all.min()), float(g_all.max())
    n_up = max(len(q) for q in _sequences(rows, "ltp")) - 1
    n_dn = max(len(q) for q in _sequences(rows, "ltd")) - 1
    lag_u, lag_d = max(1, n_up // 20), max(1, n_dn // 20)
    zu, xu, yu, mu, iu_, p_up = _steps(rows, "ltp", lag_u)
    zd, xd, yd, md, id_, p_dn = _steps(rows, "ltd", lag_d)
    su, iu, wu, ru, nu, rho_u = _affine(zu, xu, yu, mu, lag_u, iu_, lo, hi)
    sd, idn, wd, rd, nd, rho_d = _affine(zd, xd, yd, md, lag_d, id_, lo, hi)
    reads = [v for v in (ru, rd) if v is not None]
    read_s = float(np.sqrt(np.mean(np.square(reads)))) if reads else None
    unidentified = ["sigma_d2d", "sigma_prog"] + ([] if reads else ["sigma_read"])
    noise = {"write_std_s": [wu, wd], "read_std_s": read_s,
             "lag1_autocorrelation": [rho_u, rho_d], "unidentified": unidentified,
             "steps_used": nu + nd}
    g_mean = float(g_all.mean())

    # -- E-NL: slopes e^{-1/A} (LTP), e^{1/A_d} (LTD); intercepts c (1 - slope)
    # with c = g_min + span / (1 - e^{-P/A}).
    if not (0 < su < 1) or not (su != 1 and sd > 0 and sd != 1):
        raise ValueError(
            f"pulse table: step slopes must be in (0, 1) for LTP and > 0, != 1 for "
            f"LTD; got {su:.4g}, {sd:.4g} (is the table LTP-up / LTD-down?)"
        )
    big_a = -1.0 / np.log(su)
    big_ad = 1.0 / np.log(sd)
    c_u = iu / (1.0 - su)
    c_d = idn / (1.0 - sd)
    u_u = 1.0 / -np.expm1(-p_up / big_a)
    u_d = 1.0 / -np.expm1(-p_dn / big_ad)
    span = (c_u - c_d) / (u_u - u_d)
    g_min = c_u - span * u_u
    nl = {
        "g_min": float(g_min),
        "g_max": float(g_min + span),
        "p_max_ltp": float(p_up),
        "p_max_ltd": float(p_dn),
        "a_ltp": float(big_a / p_up),
        "a_ltd": float(big_ad / p_dn),
        "sigma_c2c": float(np.sqrt(0.5 * (wu**2 + wd**2)) / span),
        **({"sigma_read": read_s / g_mean} if read_s is not None else {}),
        **noise,
        "residual_std_s": [wu, wd],
    }

    # -- soft bounds: LTP g' = (1 - k_up) g + k_up g_max, LTD g' = (1 - k_dn) g
    # + k_dn g_min.
    k_up, k_dn = 1.0 - su, 1.0 - sd
    sb_gmax = iu / k_up
    sb_gmin = idn / k_dn
    # The step noise is proportional to the step (multiplicative), so the
    # write variance is sigma^2 mean(step^2): divide by the rms step.
    step_u = np.sqrt(np.mean((k_up * (sb_gmax - xu)) ** 2))
    step_d = np.sqrt(np.mean((k_dn * (xd - sb_gmin)) ** 2))
    soft = {
        "g_min": float(sb_gmin),
        "g_max": float(sb_gmax),
        "dx": float(k_up * k_dn / (k_up + k_dn)),
        "x_ref": float(k_up / (k_up + k_dn)),
        "gamma_up": 1.0,
        "gamma_dn": 1.0,
        "sigma_c2c": float(0.5 * (wu / step_u + wd / step_d)),
        **({"sigma_read": read_s / g_mean} if read_s is not None else {}),
        **noise,
        "residual_std_s": [wu, wd],
    }
    return {"nl": nl, "soft_bounds": soft}


def simulate_protocol(device: AbstractDevice, rows, *, key, read_std_s: float = 0.0):
    """The measured protocol of `rows` run on `device`: the same cycles, the
    same number of pulses per phase, starting at the table's first value, each
    value read with white noise of `read_std_s` (S). Returns rows in the same
    format."""
    seqs_u, seqs_d = _sequences(rows, "ltp"), _sequences(rows, "ltd")
    n_cyc = min(len(seqs_u), len(seqs_d))
    p_up, p_dn = len(seqs_u[0]) - 1, len(seqs_d[0]) - 1
    pulses = np.tile(np.concatenate([np.ones(p_up), -np.ones(p_dn)]), n_cyc)
    k_init, k_run, k_read = jax.random.split(key, 3)
    st = device.init((1,), key=k_init)
    st = eqx.tree_at(lambda s: s.g, st, jnp.full((1,), seqs_u[0][0], jnp.float32))
    if hasattr(st, "w"):
        st = eqx.tree_at(lambda s: s.w, st, st.g)
    _, g = pulse_response(device, st, jnp.asarray(pulses, jnp.float32)[:, None],
                          key=k_run)
    g = np.asarray(g[:, 0], np.float64).reshape(n_cyc, p_up + p_dn)
    g0 = np.concatenate([[seqs_u[0][0]], g[:-1, -1]])
    ltp = np.concatenate([g0[:, None], g[:, :p_up]], 1)
    ltd = np.concatenate([g[:, p_up - 1 : p_up], g[:, p_up:]], 1)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(k_read)).ravel()[-1])
    ltp = ltp + read_std_s * rng.standard_normal(ltp.shape)
    ltd = ltd + read_std_s * rng.standard_normal(ltd.shape)
    return cycle_table(ltp, ltd)


def table_statistics(rows) -> dict:
    """What a fitted card must reproduce of a table: the mean trajectory over
    cycles per phase (smoothed over 5 pulses), the std of the step
    differences, and their lag-1 autocorrelation."""
    out = {}
    for phase in ("ltp", "ltd"):
        seqs = _sequences(rows, phase)
        n = min(len(s) for s in seqs)
        arr = np.stack([s[:n] for s in seqs])
        mean = arr.mean(axis=0)
        kernel = np.ones(5) / 5
        smooth = np.convolve(np.pad(mean, 2, mode="edge"), kernel, mode="valid")
        d = np.diff(arr, axis=1)
        d = d - d.mean(axis=0)
        rho = float(np.sum(d[:, 1:] * d[:, :-1]) / np.sum(d * d))
        out[phase] = {"mean": smooth, "step_std": float(d.std()), "lag1": rho}
    return out


def validate_fit(device: AbstractDevice, rows, *, key, read_std_s: float = 0.0,
                 mean_tol: float = 0.05, std_tol: float = 0.2,
                 lag1_tol: float = 0.1) -> dict:
    """Simulate the measured protocol with a fitted `device` (plus the table's
    read noise `read_std_s`) and compare with the measured table.

    Passes (`"ok": True`) when, for both phases, the smoothed mean trajectories
    differ by at most `mean_tol` of the measured window, the step-difference
    stds by at most `std_tol` relative, and the lag-1 autocorrelations by at
    most `lag1_tol`. Returns every compared number.
    """
    sim = simulate_protocol(device, rows, key=key, read_std_s=read_std_s)
    a, b = table_statistics(rows), table_statistics(sim)
    g = np.asarray([r[3] for r in rows], np.float64)
    window = float(g.max() - g.min())
    report: dict = {"ok": True}
    for phase in ("ltp", "ltd"):
        n = min(a[phase]["mean"].size, b[phase]["mean"].size)
        mean_err = float(np.max(np.abs(a[phase]["mean"][:n] - b[phase]["mean"][:n])))
        std_err = abs(b[phase]["step_std"] / a[phase]["step_std"] - 1.0)
        lag_err = abs(b[phase]["lag1"] - a[phase]["lag1"])
        ok = (mean_err <= mean_tol * window and std_err <= std_tol
              and lag_err <= lag1_tol)
        report[phase] = {"mean_error_fraction": mean_err / window,
                         "step_std_measured": a[phase]["step_std"],
                         "step_std_simulated": b[phase]["step_std"],
                         "lag1_measured": a[phase]["lag1"],
                         "lag1_simulated": b[phase]["lag1"], "ok": bool(ok)}
        report["ok"] &= bool(ok)
    return report


_UNITS = {
    "g_min": "S", "g_max": "S", "p_max_ltp": "pulses", "p_max_ltd": "pulses",
    "a_ltp": "1", "a_ltd": "1", "dx": "fraction of (g_max - g_min) per pulse",
    "x_ref": "1", "gamma_up": "1", "gamma_dn": "1",
    "sigma_c2c": "fraction of (g_max - g_min) per sqrt(pulse) (nl); relative per "
                 "pulse (soft_bounds)",
}

_UNITS["sigma_read"] = "relative std of one read"

# Fields a pulse table of one device cannot identify, with the value the card
# carries and why. They are tagged A, marked `"identified": false`, and
# `fit_to_card` warns about each.
_UNIDENTIFIED = {
    "sigma_d2d": (0.0, "device-to-device spread: one device's table cannot show it; "
                       "fit several devices"),
    "sigma_gamma_d2d": (0.0, "device-to-device spread of gamma: one device's table "
                             "cannot show it"),
    "sigma_prog": (None, "programming error: not in a pulse table; the card carries "
                         "the C2C noise of one pulse (the model floors it there too)"),
    "sigma_read": (0.0, "read noise: the table's step differences show none "
                        "(lag-1 autocorrelation not negative)"),
    "vol_step": (0.0, "volatile part: the table has no timing"),
    "tau_s": (1.0, "volatile time constant: the table has no timing"),
}


def fit_to_card(fit: dict, form: str, name: str, reference: str) -> dict:
    """A card (dict) from one form ("nl" -> RRAM, "soft_bounds" -> IonicSynapse)
    of `fit_pulse_response`'s result; `reference` describes the measurement."""
    if form not in ("nl", "soft_bounds"):
        raise ValueError(f"form must be one of ['nl', 'soft_bounds']; got {form!r}")
    values = fit[form]
    params = {}
    for k, v in values.items():
        if k not in _UNITS:
            continue
        params[k] = {
            "value": v, "unit": _UNITS[k], "source": "measurement",
            "provenance": "D", "mapping": "D",
            "note": f"fitted by devices.fit_pulse_response ({form} step "
                    f"regression over {values['steps_used']} steps)",
        }
    if "sigma_read" in params:
        params["sigma_read"]["note"] = (
            "read (measurement) noise of the table from the lag-1 autocovariance "
            f"of the step residuals ({values['read_std_s']:.3g} S), relative to the "
            "table's mean conductance; includes the instrument's noise")
    names = ["sigma_d2d", "sigma_prog", "sigma_read"]
    if form == "soft_bounds":
        names += ["sigma_gamma_d2d", "vol_step", "tau_s"]
    for k in names:
        if k in params:
            continue
        value, why = _UNIDENTIFIED[k]
        if value is None:  # sigma_prog: one pulse's write noise
            per = values["dx"] if form == "soft_bounds" else 1.0
            value = values["sigma_c2c"] * per
        warnings.warn(
            f"fit_to_card({name!r}): {k} is not identifiable from this pulse table "
            f"({why}); the card carries {k}={value:g}, tagged A and marked "
            "identified=false", UserWarning, stacklevel=2)
        params[k] = {"value": value, "unit": "see model docstring", "provenance": "A",
                     "mapping": "A", "identified": False, "note": why}
    return {
        "name": name,
        "model": "RRAM" if form == "nl" else "IonicSynapse",
        "description": f"Fitted from a measured pulse-response table ({form} form).",
        "references": {"measurement": reference},
        "parameters": params,
    }


def write_card(card: dict, path) -> Path:
    """Write `card` as JSON to `path` (load it with `RRAM.from_card(path)`)."""
    path = Path(path)
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path
