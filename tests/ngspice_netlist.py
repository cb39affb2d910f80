"""Independent references for crossbar circuits: an ngspice netlist writer and
runner, and a SciPy sparse nodal assembly (used by the tests and the benchmark).

Both build the circuit described in `xbar/circuit.py` from its description, not
from the solver's code: node `r{i}_{j}` on the row wire and `c{i}_{j}` on the
column wire at crosspoint (i, j); row i's driver (a voltage source behind
`r_driver + r_row`) at the j = 0 end; column j read at the i = R-1 end through
`r_col + r_sense` into a voltage source at `v_col[j]` whose branch current is
the column current.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import scipy.sparse as sp

R_FLOOR_OHM = 1e-6


def _r(x):
    return max(float(x), R_FLOOR_OHM)


def netlist(g, v_row, *, r_row, r_col, r_driver=0.0, r_sense=0.0, r_access=0.0,
            v_col=None, row_driven=None, col_driven=None, sinh_v0=None) -> str:
    """SPICE netlist of one tile for one input vector.

    Linear cells are resistors `1/g` (in series with `r_access` through an
    internal node when it is > 0). `sinh_v0` makes every cell a behavioural
    current source `I = g * v0 * sinh(V / v0)`.
    """
    g = np.asarray(g, np.float64)
    n_r, n_c = g.shape
    v_col = np.zeros(n_c) if v_col is None else np.asarray(v_col, np.float64)
    row_driven = np.ones(n_r, bool) if row_driven is None else np.asarray(row_driven)
    col_driven = np.ones(n_c, bool) if col_driven is None else np.asarray(col_driven)
    lines = ["* crossbar", ".options filetype=ascii"]
    for i in range(n_r):
        if row_driven[i]:
            lines.append(f"VR{i} in{i} 0 DC {float(v_row[i]):.17g}")
            lines.append(f"RD{i} in{i} r{i}_0 {_r(r_driver + r_row):.17g}")
        for j in range(n_c - 1):
            lines.append(f"RR{i}_{j} r{i}_{j} r{i}_{j + 1} {_r(r_row):.17g}")
    for j in range(n_c):
        for i in range(n_r - 1):
            lines.append(f"RC{i}_{j} c{i}_{j} c{i + 1}_{j} {_r(r_col):.17g}")
        if col_driven[j]:
            lines.append(f"RS{j} c{n_r - 1}_{j} out{j} {_r(r_col + r_sense):.17g}")
            # Branch current of VS flows from out{j} through the source to ground:
            # positive when current leaves the column into the terminal.
            lines.append(f"VS{j} out{j} 0 DC {float(v_col[j]):.17g}")
    for i in range(n_r):
        for j in range(n_c):
            gij = g[i, j]
            if gij <= 0:
                continue
            a, b = f"r{i}_{j}", f"c{i}_{j}"
            if sinh_v0 is not None:
                v0 = float(sinh_v0)
                expr = f"{gij * v0:.17g}*sinh((V({a})-V({b}))/{v0:.17g})"
                lines.append(f"B{i}_{j} {a} {b} I={expr}")
            elif r_access > 0:
                lines.append(f"RA{i}_{j} {a} m{i}_{j} {float(r_access):.17g}")
                lines.append(f"RX{i}_{j} m{i}_{j} {b} {1.0 / gij:.17g}")
            else:
                lines.append(f"RX{i}_{j} {a} {b} {1.0 / gij:.17g}")
    lines += [".op", ".end"]
    return "\n".join(lines) + "\n"


def ngspice_available() -> bool:
    return shutil.which("ngspice") is not None


def run_ngspice(net: str, n_cols: int) -> np.ndarray:
    """Run ngspice in batch mode (`.op`, ASCII raw file at full precision) and
    return the column currents i(VS0..VS{n_cols-1}) (A).

    Raises RuntimeError if ngspice is missing or fails.
    """
    exe = shutil.which("ngspice")
    if exe is None:
        raise RuntimeError("ngspice not found on PATH (apt-get install ngspice)")
    with tempfile.TemporaryDirectory() as d:
        path, raw = os.path.join(d, "x.cir"), os.path.join(d, "x.raw")
        with open(path, "w") as f:
            f.write(net)
        p = subprocess.run([exe, "-b", "-r", raw, path], capture_output=True,
                           text=True, timeout=600)
        if p.returncode != 0 or not os.path.exists(raw):
            raise RuntimeError(f"ngspice failed: {p.stdout[-1000:]} {p.stderr[-1000:]}")
        with open(raw) as f:
            text = f.read()
    head, values = text.split("Values:")
    names = re.findall(r"^\s*\d+\s+(\S+)\s+\S+\s*$", head.split("Variables:")[-1],
                       re.M)
    nums = [float(t) for t in values.split()[1:]]  # first token: point index
    table = dict(zip(names, nums))
    return np.array([table.get(f"i(vs{j})", 0.0) for j in range(n_cols)])


def nodal_matrix(g, *, r_row, r_col, r_driver=0.0, r_sense=0.0, r_access=0.0,
                 row_driven=None, col_driven=None):
    """SciPy CSC nodal matrix (2 R C unknowns: row nodes then column nodes,
    row-major) of a linear-cell tile, and a function rhs(v_row, v_col) -> b."""
    g = np.asarray(g, np.float64)
    n_r, n_c = g.shape
    row_driven = np.ones(n_r, bool) if row_driven is None else np.asarray(row_driven)
    col_driven = np.ones(n_c, bool) if col_driven is None else np.asarray(col_driven)
    gc = g / (1.0 + g * r_access)
    n = n_r * n_c

    def ru(i, j):
        return i * n_c + j

    def cw(i, j):
        return n + i * n_c + j

    rows, cols, vals = [], [], []

    def stamp(a, b, cond):
        rows.extend([a, b, a, b])
        cols.extend([a, b, b, a])
        vals.extend([cond, cond, -cond, -cond])

    def ground(a, cond):
        rows.append(a)
        cols.append(a)
        vals.append(cond)

    ii, jj = np.meshgrid(np.arange(n_r), np.arange(n_c), indexing="ij")
    gr, gcol = 1.0 / _r(r_row), 1.0 / _r(r_col)
    for i in range(n_r):
        for j in range(n_c - 1):
            stamp(ru(i, j), ru(i, j + 1), gr)
        if row_driven[i]:
            ground(ru(i, 0), 1.0 / _r(r_driver + r_row))
    for j in range(n_c):
        for i in range(n_r - 1):
            stamp(cw(i, j), cw(i + 1, j), gcol)
        if col_driven[j]:
            ground(cw(n_r - 1, j), 1.0 / _r(r_col + r_sense))
    a = ru(ii, jj).ravel()
    b = cw(ii, jj).ravel()
    c = gc.ravel()
    rows.extend(np.concatenate([a, b, a, b]))
    cols.extend(np.concatenate([a, b, b, a]))
    vals.extend(np.concatenate([c, c, -c, -c]))
    mat = sp.csc_matrix((vals, (rows, cols)), shape=(2 * n, 2 * n))
    g_in = np.where(row_driven, 1.0 / np.array([_r(r_driver + r_row)] * n_r), 0.0)
    g_out = np.where(col_driven, 1.0 / np.array([_r(r_col + r_sense)] * n_c), 0.0)

    def rhs(v_row, v_col=None):
        v_row = np.atleast_2d(np.asarray(v_row, np.float64))  # (B, R)
        v_col = np.zeros(n_c) if v_col is None else np.asarray(v_col, np.float64)
        bvec = np.zeros((2 * n, v_row.shape[0]))
        bvec[ru(np.arange(n_r), 0)] = (g_in[:, None] * v_row.T)
        bvec[cw(n_r - 1, np.arange(n_c))] = (g_out * v_col)[:, None]
        return bvec

    def col_currents(x, v_col=None):
        """Column currents (B, C) from the solution x (2n, B)."""
        v_col = np.zeros(n_c) if v_col is None else np.asarray(v_col, np.float64)
        w_end = x[cw(n_r - 1, np.arange(n_c))]
        return ((w_end - v_col[:, None]) * g_out[:, None]).T

    return mat, rhs, col_currents
