"""Crossbar circuit solver speed: exact (PCG + line relaxation) and fast solvers
against SciPy's sparse direct solve of the same nodal system, and ngspice.

For square arrays of 64..512 cells (cells uniform in [1, 100] uS, 1 ohm per
wire segment, inputs uniform in [0, 0.2] V) and one or 64 input vectors:

- `exact_time`: `xbar.solve_crossbar` (jitted, float64), ratio to the SciPy
  baseline (`splu` of the 2 R C nodal matrix, factor once, solve the batch),
  timed interleaved in the same process (median of repeats);
- `exact_peak_memory`: XLA's compiled memory (arguments + outputs + temporaries)
  of the exact solve, target < 2 GiB for 512 x 512 x 64;
- `fast_time` / `fast_error`: `xbar.solve_lines` (2 sweeps) time ratio to the
  exact solve and its max relative column-current error;
- `ngspice_time` (32 and 64 only): one `ngspice -b` operating point of the same
  netlist (one vector), ratio: our exact single-vector solve / ngspice.

One JSON object per line. `--quick` runs 16 and 32 only.

The exact solver stays our own PCG: against lineax 0.1.1 (`lx.CG` with the
same line preconditioner, `lx.Tridiagonal` line solves) and optimistix 0.1.0
(`optx.Newton`, implicit adjoint) in one process (float64, 1 ohm, same
errors and iterations) it was 1.7 ms vs 6.2 ms (4.9 ms with lx.Tridiagonal)
at 64x64x1, 108 vs 300 ms at 128x128x8, 4.9 vs 5.9 s at 256x256x64
(interleaved, shared CPU), and 0.6-1.1 ms vs 0.9-1.6 s for sinh cells at
16-32 (Newton with a dense Jacobian).
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
import scipy.sparse.linalg as spl

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "tests"))
from ngspice_netlist import netlist, nodal_matrix, run_ngspice  # noqa: E402

import xbar  # noqa: E402


def emit(**kw):
    print(json.dumps(kw), flush=True)


def timeit(fn, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    sizes = [16, 32] if args.quick else [64, 128, 256, 512]
    batches = [1, 8] if args.quick else [1, 64]
    repeats = 2 if args.quick else 3
    r_ohm = 1.0
    jax.config.update("jax_enable_x64", True)
    exact, fast = xbar.solve_crossbar, xbar.solve_lines  # both compiled
    wires = xbar.Wires(jnp.asarray(r_ohm, jnp.float64), jnp.asarray(r_ohm, jnp.float64))
    for n in sizes:
        rng = np.random.default_rng(n)
        g = rng.uniform(1e-6, 1e-4, (n, n))
        for b in batches:
            v = rng.uniform(0.0, 0.2, (b, n))
            gj, vj = jnp.asarray(g), jnp.asarray(v)
            run_exact = lambda: jax.block_until_ready(exact(gj, vj, wires).i_col)  # noqa: E731
            run_fast = lambda: jax.block_until_ready(  # noqa: E731
                fast(gj, vj, wires, n_sweeps=2)[2])
            mat, rhs, col = nodal_matrix(g, r_row=r_ohm, r_col=r_ohm)

            def run_scipy():
                return col(spl.splu(mat).solve(rhs(v)))

            ref = run_scipy()
            ours = np.asarray(run_exact())
            run_fast()
            t_e, t_s, t_f = [], [], []
            for _ in range(repeats):  # interleaved
                t_e.append(timeit(run_exact, 1))
                t_s.append(timeit(run_scipy, 1))
                t_f.append(timeit(run_fast, 1))
            te, ts, tf = (float(np.median(x)) for x in (t_e, t_s, t_f))
            err = float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))
            emit(name=f"exact_time_{n}x{n}_batch{b}", value=te, unit="s", baseline=ts,
                 ratio=te / ts, target=(0.2 if (n == 256 and b == 64) else None),
                 baseline_name="scipy splu factor+solve (float64)",
                 rel_error_vs_scipy=err)
            i_f = np.asarray(run_fast())
            emit(name=f"fast_time_{n}x{n}_batch{b}", value=tf, unit="s", baseline=te,
                 ratio=tf / te, fast_rel_error=float(np.max(np.abs(i_f - ref))
                                                     / np.max(np.abs(ref))),
                 n_sweeps=2)
            if n == max(sizes) and b == max(batches):
                solve = jax.jit(lambda g, v: xbar.solve_crossbar(g, v, wires).i_col)
                mem = solve.lower(gj, vj).compile().memory_analysis()
                total = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                         + mem.temp_size_in_bytes)
                emit(name=f"exact_peak_memory_{n}x{n}_batch{b}", value=total / 2**30,
                     unit="GiB", target=2.0 if n == 512 else None)
    for n in ([16] if args.quick else [32, 64]):
        rng = np.random.default_rng(1000 + n)
        g = rng.uniform(1e-6, 1e-4, (n, n))
        v = rng.uniform(0.0, 0.2, (1, n))
        net = netlist(g, v[0], r_row=r_ohm, r_col=r_ohm)
        t0 = time.perf_counter()
        ref = run_ngspice(net, n)
        t_ng = time.perf_counter() - t0
        gj, vj = jnp.asarray(g), jnp.asarray(v)
        ours = np.asarray(exact(gj, vj, wires).i_col[0])
        t_o = timeit(lambda: jax.block_until_ready(exact(gj, vj, wires).i_col), 3)
        emit(name=f"ngspice_time_{n}x{n}_batch1", value=t_o, unit="s", baseline=t_ng,
             ratio=t_o / t_ng, baseline_name="ngspice -b .op (incl. process start)",
             rel_error_vs_ngspice=float(np.max(np.abs(ours - ref))
                                        / np.max(np.abs(ref))))


if __name__ == "__main__":
    main()
