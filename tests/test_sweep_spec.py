"""Declarative sweeps: designs, validation before compiling, one compilation
across chunks, failures recorded as result codes, the results store."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sweep_tasks
from helpers import EPS32
from hypothesis import given, settings, strategies as st

import devices
import xbar
from xbar.sweeps import (
    Grid,
    LatinHypercube,
    Random,
    Store,
    SweepSpec,
    Zip,
    axis_from_dict,
    chunk_size_for,
    read_store,
    run_sweep,
)


def _never(cfg, key):
    raise AssertionError("the sweep function must not run for a malformed sweep")


# --- designs ---------------------------------------------------------------


def test_grid_zip_product_and_repeats():
    spec = SweepSpec(
        sweep_tasks.base_device(),
        axes=(Grid(sigma_read=[0.0, 0.1]), Zip(sigma_prog=[0.0, 0.05, 0.1],
                                               a_ltp=[1.0, 2.0, 3.0])),
        n_repeats=2,
    )
    d = spec.design()
    assert (d.n_points, len(d)) == (6, 12)
    # Point-major rows, first axis slowest, repeats innermost.
    np.testing.assert_array_equal(d.point, np.repeat(np.arange(6), 2))
    np.testing.assert_array_equal(d.repeat, np.tile([0, 1], 6))
    np.testing.assert_array_equal(d.values["sigma_read"][::2], [0, 0, 0, .1, .1, .1])
    np.testing.assert_array_equal(d.values["sigma_prog"][::2], [0, .05, .1] * 2)
    # Zipped fields move together.
    np.testing.assert_array_equal(
        d.values["a_ltp"], 20 * d.values["sigma_prog"] + 1.0
    )


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_latin_hypercube_one_draw_per_stratum(n, seed):
    ax = LatinHypercube(n, seed, log=("b",), a=(-1.0, 3.0), b=(1e-3, 1e3))
    a, b = ax.columns["a"], ax.columns["b"]
    # Exactly one draw in each of the n equal strata, per field (log scale for b).
    for u in ((a + 1.0) / 4.0, (np.log10(b) + 3.0) / 6.0):
        assert sorted(np.floor(u * n).astype(int).clip(0, n - 1)) == list(range(n))
    r = Random(n, seed, c=(2.0, 5.0)).columns["c"]
    assert np.all((r >= 2.0) & (r <= 5.0))


def test_axis_from_toml_tables():
    ax = axis_from_dict({"kind": "grid", "fields": {"t": {"logspace": [0, 2, 3]}}})
    np.testing.assert_allclose(ax.columns["t"], [1.0, 10.0, 100.0])
    lhs = axis_from_dict({"kind": "lhs", "n": 5, "seed": 1, "fields": {"x": [0, 1]}})
    assert len(lhs) == 5
    with pytest.raises(ValueError, match="kind"):
        axis_from_dict({"kind": "sobol", "fields": {"x": [0, 1]}})


# --- malformed sweeps: ValueError naming the problem, nothing runs -----------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda b: SweepSpec(b, axes=(Grid(sigma_raed=[0.1]),)), "sigma_raed"),
        (lambda b: SweepSpec(b, axes=(Grid(sigma_read=[]),)), "sigma_read.*empty"),
        (lambda b: SweepSpec(b, axes=(Zip(sigma_read=[0.1, 0.2], a_ltp=[1.0]),)),
         "equal lengths.*sigma_read: 2, a_ltp: 1"),
        # `iv` is an option module (static structure), not an array field.
        (lambda b: SweepSpec(b, axes=(Grid(iv=[0.0, 1.0]),)), "'iv' is not an array"),
        (lambda b: SweepSpec(xbar.AnalogConfig(b), axes=(Grid(bound_management=[1]),)),
         "'bound_management' is not an array"),
        (lambda b: SweepSpec(b, axes=(Grid(sigma_read=[0.1]), Grid(sigma_read=[0.2]))),
         "swept by axes\\[0\\] and axes\\[1\\]"),
        (lambda b: SweepSpec(b, n_repeats=0), "n_repeats must be an integer >= 1"),
        (lambda b: SweepSpec(b, axes=(Grid(),)), "at least one field"),
        (lambda b: SweepSpec(b, axes=(Random(3, 0, x=(2.0, 1.0)),)), "lo <= hi"),
    ],
)
def test_malformed_sweep_raises_before_running(make, match):
    with pytest.raises(ValueError, match=match):
        spec = make(sweep_tasks.base_device())
        run_sweep(spec, _never)


@pytest.mark.parametrize(
    "base, axes, match",
    [
        # A negative sigma, as the constructor would reject it.
        (sweep_tasks.base_device(), (Grid(sigma_read=[0.0, 0.05, -0.05, 0.1]),),
         r"sweep point 2 \(sigma_read=-0.05\): RRAM.sigma_read must be in \[0, inf\]"),
        # Inverted conductance bounds at one zipped point.
        (sweep_tasks.base_device(),
         (Zip(g_min=[1e-9, 5e-8], g_max=[4e-8, 4e-8]),),
         r"sweep point 1 \(g_min=5e-08, g_max=4e-08\): g_min must be in \[0, g_max\)"),
    ],
)
def test_invalid_point_named_before_compiling(base, axes, match):
    spec = SweepSpec(base, axes=axes, n_repeats=2)
    with pytest.raises(ValueError, match=match):
        run_sweep(spec, _never)


def test_negative_time_named():
    spec = SweepSpec(
        xbar.AnalogConfig(sweep_tasks.base_device()),
        axes=(Grid(t_read_s=[1.0, 1e3, -5.0]),
              Grid(**{"device.sigma_read": [0.0, 0.1]})),
    )
    with pytest.raises(
        ValueError,
        match=r"sweep point 4 \(t_read_s=-5, device.sigma_read=0\): t_read_s must be",
    ):
        run_sweep(spec, _never)


def test_old_sweep_validates_traced_configs(getkey):
    # Points built under vmap skip the constructors' checks; Sweep re-runs
    # them on the concrete stacked values before tracing.
    stacked = jax.vmap(lambda s: devices.RRAM.from_card(sigma_read=s))(
        jnp.array([0.01, -0.02, 0.03])
    )
    sweep = xbar.Sweep(lambda d, k: d.sigma_read)
    with pytest.raises(ValueError, match="sweep point 1: .*sigma_read"):
        sweep(stacked, getkey())
    ok = xbar.stack([sweep_tasks.base_device()] * 2)
    with pytest.raises(ValueError, match="n_repeats must be an integer >= 1"):
        sweep(ok, getkey(), 0)
    assert sweep.n_traces == 0


# --- running: one compilation, equal to the points one by one ---------------


def test_one_compilation_across_chunks_equals_single_points():
    spec = SweepSpec(
        sweep_tasks.base_device(),
        axes=(Grid(sigma_read=[0.0, 0.03, 0.1]),
              LatinHypercube(2, 7, sigma_prog=(0.0, 0.1))),
        n_repeats=2,
        seed=3,
    )
    # 12 rows in chunks of 5: 3 chunks, the last one padded.
    res = run_sweep(spec, sweep_tasks.cells, chunk_size=5)
    assert res.n_traces == 1
    assert (res.n_chunks_run, res.chunk_size) == (3, 5)
    cols = res.columns
    np.testing.assert_array_equal(cols["row"], np.arange(12))
    assert np.all(cols["result_code"] == 0)
    # Independent reference: each row built and run on its own, eagerly, with
    # the documented key fold_in(fold_in(key(seed), repeat), point).
    root = jax.random.key(3)
    alone_fn = eqx.filter_jit(sweep_tasks.cells)
    for i in range(12):
        vals = {p: cols[p][i] for p in spec.paths}
        key = jax.random.fold_in(jax.random.fold_in(root, cols["repeat"][i]),
                                 cols["point"][i])
        alone = alone_fn(spec.point_config(vals), key)
        np.testing.assert_allclose(
            cols["metric.rel_rms"][i], alone["rel_rms"], rtol=16 * EPS32, atol=1e-7
        )
    # Repeats differ (own keys); with common_keys the repeats of every point
    # share draws: zero read noise then gives equal rows across sigma_prog=0.
    assert cols["metric.rel_rms"][0] != cols["metric.rel_rms"][1]


def test_unconverged_and_nan_points_recorded_sweep_goes_on():
    base = sweep_tasks.Tile(jnp.float32(1e-4), xbar.Wires(1.0, 1.0))
    spec = SweepSpec(
        base,
        axes=(Zip(**{"wires.r_row_ohm": [1.0, 100.0, 1.0, 1.0],
                     "wires.r_col_ohm": [1.0, 100.0, 1.0, 1.0],
                     "g_s": [1e-4, 1e-4, 2e-4, 1e-4]}),),
    )
    res = run_sweep(spec, sweep_tasks.solve, chunk_size=2)
    assert res.n_traces == 1
    assert list(res.columns["result"]) == [
        "successful", "max_steps_reached", "successful", "successful"]
    assert list(res.columns["result_code"]) == [0, 1, 0, 0]
    # Converged points equal the solver run on its own to convergence (the
    # default 2,000 CG steps), within its float32 tolerance.
    for i in (0, 2, 3):
        g = jnp.full((8, 8), res.columns["g_s"][i])
        wires = xbar.Wires(res.columns["wires.r_row_ohm"][i],
                           res.columns["wires.r_col_ohm"][i])
        ref = xbar.solve_crossbar(g, jnp.full((8,), 0.2), wires).i_col.sum()
        np.testing.assert_allclose(res.columns["metric.i_total"][i], ref, rtol=1e-4)

    def nan_at_half(device, key):
        out = sweep_tasks.cells(device, key)
        return {**out, "rel_rms": jnp.where(device.sigma_read == 0.5, jnp.nan,
                                            out["rel_rms"])}

    res = run_sweep(SweepSpec(sweep_tasks.base_device(),
                              axes=(Grid(sigma_read=[0.1, 0.5, 0.2]),)),
                    nan_at_half)
    assert list(res.columns["result"]) == ["successful", "nonfinite", "successful"]
    assert res.n_failed == 1


def test_chunk_size_from_memory_budget():
    assert chunk_size_for(1000, 10_000, 1_000_000) == 100
    assert chunk_size_for(1000, 10_000, 1_000_000, n_devices=8) == 800
    assert chunk_size_for(10, 1, 1e9, n_devices=8) == 16  # padded to devices
    assert chunk_size_for(10, 10**12, 1e6) == 1
    spec = SweepSpec(sweep_tasks.base_device(), axes=(Grid(sigma_read=[0.0, 0.1]),),
                     n_repeats=3)
    per_row = xbar.sweeps.bytes_per_row(spec, sweep_tasks.cells)
    # At least the 16 float32 targets, state and reads of one row.
    assert per_row >= 3 * 16 * 4
    res = run_sweep(spec, sweep_tasks.cells, memory_budget=2 * per_row)
    assert res.chunk_size == 2 and res.n_chunks_run == 3


# --- the store ---------------------------------------------------------------


def test_store_round_trips_every_value_and_resumes(tmp_path):
    spec = SweepSpec(
        sweep_tasks.base_device(),
        axes=(Grid(sigma_read=[0.0, 1 / 3, 0.1]),
              Random(2, 5, log=("g_max",), g_max=(3e-8, 9e-8))),
        n_repeats=2,
        seed=11,
    )
    store = tmp_path / "st"
    res = run_sweep(spec, sweep_tasks.cells, store=store, chunk_size=4, name="t")
    manifest, cols = read_store(store)
    assert res.n_chunks_run == 3 and len(cols["row"]) == 12
    design = spec.design()
    for p in spec.paths:
        # The store holds exactly the float32 value each point ran with.
        assert cols[p].dtype == np.float32
        np.testing.assert_array_equal(cols[p], design.values[p].astype(np.float32))
    for i in range(12):
        cfg = spec.point_config({p: cols[p][i] for p in spec.paths})
        assert float(cfg.sigma_read) == cols["sigma_read"][i]
        assert float(cfg.g_max) == cols["g_max"][i]
    np.testing.assert_array_equal(cols["seed"], 11)
    # Every base value is recorded (non-swept fields too), exactly.
    for path, value in manifest["base"].items():
        leaf = eval("spec.base" + path)  # keystr paths: .field / [i]
        np.testing.assert_array_equal(np.asarray(value, np.float32), leaf)
    assert manifest["spec"]["axes"][1]["fields"]["g_max"] == [3e-8, 9e-8]
    assert manifest["chunk_size"] == 4
    # Provenance on every row.
    assert set(cols["backend"]) == {"cpu x1"}
    rev = cols["git_revision"][0]
    assert len(rev) == 40 or rev == "unknown"
    assert cols["git_dirty"][0] in ("True", "False", "None")
    assert json.loads(cols["versions"][0])["jax"] == jax.__version__

    # A rerun skips every finished chunk, even with another chunk size asked.
    again = run_sweep(spec, sweep_tasks.cells, store=store, chunk_size=5, name="t")
    assert (again.n_chunks_run, again.n_chunks_skipped) == (0, 3)
    # A lost chunk is the only one recomputed, with identical rows.
    before = Store(store).read()
    Store(store).chunk_path(1).unlink()
    third = run_sweep(spec, sweep_tasks.cells, store=store, name="t")
    assert (third.n_chunks_run, third.n_chunks_skipped) == (1, 2)
    for k in ("row", "sigma_read", "metric.rel_rms", "metric.g_mean"):
        np.testing.assert_array_equal(third.columns[k], before[k])
    # The manifest records the code that started the store; resuming it with
    # other code (here: a forged older revision and jax version) warns, names
    # what changed, and still keeps every finished chunk.
    assert manifest["code"]["git_revision"] == rev
    mpath = store / "sweep.json"
    forged = json.loads(mpath.read_text())
    forged["code"]["git_revision"] = "0" * 40
    forged["code"]["versions"]["jax"] = "0.0.1"
    mpath.write_text(json.dumps(forged))
    Store(store).chunk_path(2).unlink()
    changed = r"started by other code \(git revision 0{40} ->.*package versions of jax"
    with pytest.warns(UserWarning, match=changed):
        fourth = run_sweep(spec, sweep_tasks.cells, store=store, name="t")
    assert (fourth.n_chunks_run, fourth.n_chunks_skipped) == (1, 2)
    # Another sweep into the same store is refused.
    other = SweepSpec(spec.base, axes=spec.axes, n_repeats=3, seed=11)
    with pytest.raises(ValueError, match="holds a different sweep"):
        run_sweep(other, sweep_tasks.cells, store=store, name="t")


def test_chunk_that_raises_is_recorded_and_the_sweep_goes_on(tmp_path):
    # A runtime error inside the compiled chunk (eqx.error_if, as a solver
    # with throw=True raises) fails that chunk only: its rows carry the error,
    # the other chunks run, and the store reads back with NaN metrics there.
    def picky(device, key):
        out = sweep_tasks.cells(device, key)
        return {**out, "rel_rms": eqx.error_if(out["rel_rms"], device.sigma_read > 0.3,
                                               "sigma_read too large")}

    spec = SweepSpec(sweep_tasks.base_device(),
                     axes=(Grid(sigma_read=[0.0, 0.1, 0.5, 0.2]),))
    res = run_sweep(spec, picky, chunk_size=2, store=tmp_path / "st")
    cols = res.columns
    assert list(cols["result_code"]) == [0, 0, -2, -2]
    assert cols["result"][2].startswith("error: ") and "sigma_read too large" in (
        cols["result"][2])
    assert np.all(np.isfinite(cols["metric.rel_rms"][:2]))
    assert np.all(np.isnan(cols["metric.rel_rms"][2:]))
