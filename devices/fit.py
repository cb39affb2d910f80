"""From measured pulse-response tables to a device card.

A pulse-response table is conductance against pulse number for alternating
LTP and LTD phases, over several cycles: rows `(cycle, phase, pulse, g_s)` with
`phase` "ltp" or "ltd", `pulse` the index within the phase (0 = before the
first pulse) and `g_s` the conductance (S) after that many pulses.

Both update models fitted here make one pulse an *affine* map of the present
conductance, so they are fitted by ordinary least squares of each step
`g_{k+1}` on `g_k` (conditional least squares: unbiased under cycle-to-cycle
noise, which accumulates along a phase and would bias a fit of whole curves):

- NeuroSim nonlinear update (E-NL): one LTP pulse maps
  `g -> e^{-1/A} g + (B + g_min)(1 - e^{-1/A})`, one LTD pulse
  `g -> e^{1/A_d} g + (B_d + g_min)(1 - e^{1/A_d})`, with `A = a P_max`,
  `B = (g_max - g_min) / (1 - e^{-P_max/A})`. The two slopes give `a_ltp`,
  `a_ltd`; the two intercepts are linear in `(g_min, g_max - g_min)`.
- Soft bounds (aihwkit SoftBounds, our `IonicSynapse` with gamma = 1): one up
  pulse maps `g -> g + k_up (g_max - g)`, one down pulse
  `g -> g - k_dn (g - g_min)`.

The cycle-to-cycle noise is the residual std of the step regressions (steps
that end on a clipped bound are left out).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .base import AbstractDevice, AbstractDeviceState


def pulse_response(device: AbstractDevice, state: AbstractDeviceState, pulses, *,
                   key, dt_s=0.0):
    """Apply `pulses[k]` (signed counts, leading axis = time) one write at a
    time under `lax.scan`, relaxing the state by `dt_s` seconds (the pulse
    spacing) after each; returns the final state and the conductance right
    after every write, shaped `pulses.shape`."""
    pulses = jnp.asarray(pulses, jnp.float32)
    keys = jax.random.split(key, pulses.shape[0])

    def step(s, inp):
        n, k = inp
        s = device.update(s, n, key=k)
        g = s.g
        return device.relax(s, dt_s), g

    return jax.lax.scan(step, state, (pulses, keys))


def cycle_table(g_ltp, g_ltd):
    """Rows (cycle, phase, pulse, g_s) from arrays shaped (cycles, pulses + 1)."""
    rows = []
    for phase, arr in (("ltp", g_ltp), ("ltd", g_ltd)):
        arr = np.asarray(arr, np.float64)
        for c in range(arr.shape[0]):
            for k in range(arr.shape[1]):
                rows.append((c, phase, k, float(arr[c, k])))
    return rows


def write_table(path, rows) -> None:
    """Write pulse-response rows as CSV with header `cycle,phase,pulse,g_s`."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cycle", "phase", "pulse", "g_s"])
        w.writerows(rows)


def read_table(path):
    """Rows (cycle, phase, pulse, g_s) from a CSV with that header."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"cycle", "phase", "pulse", "g_s"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f"pulse table {path}: missing columns {sorted(missing)}; need "
                "cycle,phase,pulse,g_s"
            )
        return [(int(r["cycle"]), r["phase"].strip().lower(), int(r["pulse"]),
                 float(r["g_s"])) for r in reader]


def _steps(rows, phase):
    """Consecutive-pulse pairs (g_k, g_{k+1}) of one phase, and the phase length."""
    by_cycle: dict[int, dict[int, float]] = {}
    for c, ph, k, g in rows:
        if ph not in ("ltp", "ltd"):
            raise ValueError(f"phase must be 'ltp' or 'ltd'; got phase={ph!r}")
        if ph == phase:
            by_cycle.setdefault(c, {})[k] = g
    if not by_cycle:
        raise ValueError(f"pulse table has no {phase!r} rows")
    x, y, p_max = [], [], 0
    for seq in by_cycle.values():
        p_max = max(p_max, max(seq))
        for k, g in seq.items():
            if k + 1 in seq:
                x.append(g)
                y.append(seq[k + 1])
    return np.asarray(x), np.asarray(y), p_max


def _affine(x, y, lo, hi, n_iter: int = 4, k_sigma: float = 4.0):
    """OLS of y on x over steps that cannot have been clipped at a bound.

    A step whose noise-free end `f(x)` lies within `k_sigma` residual stds of a
    bound may have been clipped, and dropping only the clipped ones would
    truncate the noise (a biased fit), so those steps are dropped whole; `f`
    and the std come from the previous pass. Returns slope, intercept, residual
    std and the number of steps used.
    """
    tol = 1e-9 * (hi - lo)
    keep = (y > lo + tol) & (y < hi - tol)
    for _ in range(n_iter):
        if keep.sum() < 3:
            raise ValueError("pulse table: fewer than 3 steps away from the bounds")
        xs, ys = x[keep], y[keep]
        design = np.stack([xs, np.ones_like(xs)], axis=1)
        (slope, icpt), *_ = np.linalg.lstsq(design, ys, rcond=None)
        resid = ys - (slope * xs + icpt)
        sigma = resid.std(ddof=2)
        pred = slope * x + icpt
        keep = (pred > lo + k_sigma * sigma) & (pred < hi - k_sigma * sigma)
    return float(slope), float(icpt), float(sigma), int(xs.size)


def fit_pulse_response(data) -> dict:
    """Fit the nonlinear-update (E-NL) and soft-bounds models to a pulse table.

    Args:
        data: a CSV path (header `cycle,phase,pulse,g_s`) or a list of rows
            `(cycle, phase, pulse, g_s)`.

    Returns:
        `{"nl": {...}, "soft_bounds": {...}}`: for "nl" the `RRAM` fields
        g_min, g_max, p_max_ltp, p_max_ltd, a_ltp, a_ltd, sigma_c2c; for
        "soft_bounds" the `IonicSynapse` fields g_min, g_max, dx, x_ref,
        gamma_up = gamma_dn = 1, sigma_c2c (relative to the step); each with
        the number of steps used and the residual std (S).
    """
    rows = read_table(data) if isinstance(data, (str, Path)) else list(data)
    g_all = np.asarray([r[3] for r in rows], np.float64)
    lo, hi = float(g_all.min()), float(g_all.max())
    xu, yu, p_up = _steps(rows, "ltp")
    xd, yd, p_dn = _steps(rows, "ltd")
    su, iu, ru, nu = _affine(xu, yu, lo, hi)
    sd, idn, rd, nd = _affine(xd, yd, lo, hi)

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
        "sigma_c2c": float(np.sqrt(0.5 * (ru**2 + rd**2)) / span),
        "steps_used": nu + nd,
        "residual_std_s": [ru, rd],
    }

    # -- soft bounds: LTP g' = (1 - k_up) g + k_up g_max, LTD g' = (1 - k_dn) g
    # + k_dn g_min.
    k_up, k_dn = 1.0 - su, 1.0 - sd
    sb_gmax = iu / k_up
    sb_gmin = idn / k_dn
    # The step noise is proportional to the step (multiplicative), so the
    # residual variance is sigma^2 mean(step^2): divide by the rms step.
    step_u = np.sqrt(np.mean((k_up * (sb_gmax - xu)) ** 2))
    step_d = np.sqrt(np.mean((k_dn * (xd - sb_gmin)) ** 2))
    soft = {
        "g_min": float(sb_gmin),
        "g_max": float(sb_gmax),
        "dx": float(k_up * k_dn / (k_up + k_dn)),
        "x_ref": float(k_up / (k_up + k_dn)),
        "gamma_up": 1.0,
        "gamma_dn": 1.0,
        "sigma_c2c": float(0.5 * (ru / step_u + rd / step_d)),
        "steps_used": nu + nd,
        "residual_std_s": [ru, rd],
    }
    return {"nl": nl, "soft_bounds": soft}


_UNITS = {
    "g_min": "S", "g_max": "S", "p_max_ltp": "pulses", "p_max_ltd": "pulses",
    "a_ltp": "1", "a_ltd": "1", "dx": "fraction of (g_max - g_min) per pulse",
    "x_ref": "1", "gamma_up": "1", "gamma_dn": "1",
    "sigma_c2c": "fraction of (g_max - g_min) per sqrt(pulse) (nl); relative per "
                 "pulse (soft_bounds)",
}

# Fields a fit cannot see in a pulse table: filled with these values, tagged A.
_ASSUMED = {
    "nl": {"sigma_d2d": 0.0, "sigma_read": 0.0, "sigma_prog": 0.0},
    "soft_bounds": {"sigma_d2d": 0.0, "sigma_gamma_d2d": 0.0, "sigma_read": 0.0,
                    "sigma_prog": 0.0, "vol_step": 0.0, "tau_s": 1.0},
}


def fit_to_card(fit: dict, form: str, name: str, reference: str) -> dict:
    """A card (dict) from one form ("nl" -> RRAM, "soft_bounds" -> IonicSynapse)
    of `fit_pulse_response`'s result; `reference` describes the measurement."""
    if form not in ("nl", "soft_bounds"):
        raise ValueError(f"form must be one of ['nl', 'soft_bounds']; got {form!r}")
    values = fit[form]
    params = {}
    for k, v in values.items():
        if k in ("steps_used", "residual_std_s"):
            continue
        params[k] = {
            "value": v, "unit": _UNITS[k], "source": "measurement",
            "provenance": "D",
            "note": f"fitted by devices.fit_pulse_response ({form} step "
                    f"regression over {values['steps_used']} steps)",
        }
    for k, v in _ASSUMED[form].items():
        params[k] = {"value": v, "unit": "see model docstring", "provenance": "A",
                     "note": "not identifiable from a pulse-response table; set it "
                             "from read/programming measurements"}
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
