"""Pulse-response tables: conductance against pulse number for alternating
LTP and LTD phases over several cycles, as rows `(cycle, phase, pulse, g_s)`
(`phase` "ltp" or "ltd", `pulse` the index within the phase with 0 = before
the first pulse, `g_s` the conductance in siemens after that many pulses).

Simulating one (`pulse_response`), building, writing and reading the CSV form
(`cycle_table`, `write_table`, `read_table`) and the physics checks that
catch a wrong table before it is fitted (`check_table`).
"""

from __future__ import annotations

import csv

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
    """Rows (cycle, phase, pulse, g_s) from a CSV with that header.

    Raises:
        ValueError: the file is not a pulse table: a missing column, no data
            rows (header only), a row that does not parse, or a NaN/inf value
            (the message names the row); see `check_table` for the physics
            checks.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"cycle", "phase", "pulse", "g_s"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f"pulse table {path}: missing columns {sorted(missing)}; need "
                "cycle,phase,pulse,g_s"
            )
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                row = (int(r["cycle"]), r["phase"].strip().lower(), int(r["pulse"]),
                       float(r["g_s"]))
            except (TypeError, ValueError, AttributeError) as e:
                raise ValueError(
                    f"pulse table {path}, line {i}: cannot parse {dict(r)} ({e})"
                ) from None
            if not np.isfinite(row[3]):
                raise ValueError(
                    f"pulse table {path}, line {i}: g_s={r['g_s']!r} is not a finite "
                    "number (NaN row?); drop or fill it"
                )
            rows.append(row)
    if not rows:
        raise ValueError(f"pulse table {path}: header only, no data rows")
    return rows


def check_table(rows) -> None:
    """Physics checks of a pulse table (rows `(cycle, phase, pulse, g_s)`).

    Raises:
        ValueError: no rows; a NaN/inf or negative conductance; values that
            look like resistances in ohms (median above 1 S: memristive
            conductances are far below); a phase other than "ltp"/"ltd"; or
            LTP phases that go down and LTD phases that go up on average (the
            labels are swapped).
    """
    if not rows:
        raise ValueError("pulse table has no data rows")
    g = np.asarray([r[3] for r in rows], np.float64)
    if not np.all(np.isfinite(g)):
        i = int(np.flatnonzero(~np.isfinite(g))[0])
        raise ValueError(f"pulse table row {i} {rows[i]}: g_s is not finite (NaN row?)")
    if np.any(g < 0):
        i = int(np.flatnonzero(g < 0)[0])
        raise ValueError(
            f"pulse table row {i} {rows[i]}: negative conductance g_s={g[i]:g} S; "
            "conductances must be >= 0 (S)"
        )
    if np.median(g) > 1.0:
        raise ValueError(
            f"pulse table: median g_s = {np.median(g):g} looks like a resistance in "
            "ohms; the column g_s must be a conductance in siemens (1 / R)"
        )
    for ph in {r[1] for r in rows}:
        if ph not in ("ltp", "ltd"):
            raise ValueError(f"phase must be 'ltp' or 'ltd'; got phase={ph!r}")
    drift = {}
    for phase in ("ltp", "ltd"):
        seqs = _sequences(rows, phase)
        d = [seq[-1] - seq[0] for seq in seqs if len(seq) > 1]
        drift[phase] = float(np.mean(d)) if d else 0.0
    if drift["ltp"] < 0 and drift["ltd"] > 0:
        raise ValueError(
            "pulse table: LTP phases go down (mean change "
            f"{drift['ltp']:.3g} S) and LTD phases go up ({drift['ltd']:.3g} S): "
            "the LTP/LTD labels look swapped"
        )


def _sequences(rows, phase):
    """The conductance sequences (by pulse index) of every cycle of `phase`,
    each cut at the first missing pulse index."""
    by_cycle: dict[int, dict[int, float]] = {}
    for c, ph, k, g in rows:
        if ph == phase:
            by_cycle.setdefault(c, {})[k] = g
    out = []
    for seq in by_cycle.values():
        ks = sorted(seq)
        run = [seq[ks[0]]]
        for a, b in zip(ks, ks[1:]):
            if b != a + 1:
                break
            run.append(seq[b])
        out.append(np.asarray(run, np.float64))
    return out
