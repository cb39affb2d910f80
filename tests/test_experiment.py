"""A tiny run of the flagship experiment and the benchmark scripts' --quick mode."""

import json

import pytest
from helpers import assert_figure_redraws, load_script


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    exp = load_script("experiments/device_accuracy.py", "device_accuracy")
    out_dir = tmp_path_factory.mktemp("device_accuracy")
    out = exp.run(quick=True, out_dir=out_dir)
    return exp, out_dir, out


def test_each_sweep_compiles_once(quick_run):
    _, _, out = quick_run
    for name in ("sigma_prog", "adc_bits"):
        assert out["results"][name]["compiles"] == 1, name


def test_results_file_is_complete(quick_run):
    _, out_dir, out = quick_run
    saved = json.loads((out_dir / "device_accuracy.json").read_text())
    assert saved["seed"] == 0
    assert saved["versions"]["jax"] != "not installed"
    assert saved["git_revision"]
    cfg = saved["config"]
    for name in ("sigma_prog", "adc_bits"):
        acc = saved["results"][name]["accuracy"]
        assert len(acc) == len(cfg[name])
        assert all(len(row) == cfg["n_repeats"] for row in acc)
        assert all(0.0 <= a <= 1.0 for row in acc for a in row)
    assert saved == json.loads(json.dumps(out))


def test_accuracy_behaves(quick_run):
    # Three epochs on 4,000 digits already exceed 80 % held out (measured ~90 %);
    # 3-bit ADCs cost > 5 points against 8 bits (measured ~19 points), far
    # beyond the spread of 2 repeats on 200 digits (~2 points).
    _, _, out = quick_run
    assert out["float_accuracy"] > 0.8
    bits = out["results"]["adc_bits"]["mean"]
    assert bits[0] < bits[1] - 0.05
    # Without programming noise, 8-bit periphery stays within 5 points of float.
    assert out["results"]["sigma_prog"]["mean"][0] > out["float_accuracy"] - 0.05


def test_figure_regenerates_from_results_alone(quick_run, tmp_path):
    exp, out_dir, _ = quick_run
    assert_figure_redraws(exp, out_dir, "device_accuracy", tmp_path)


def test_mvm_benchmark_quick(capsys):
    bench = load_script("benchmarks/mvm.py", "bench_mvm")
    rows = bench.main(["--quick"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == rows
    first = rows[0]
    for field in ("name", "value", "unit", "baseline", "ratio", "target"):
        assert field in first
    assert first["value"] > 0 and first["baseline"] > 0


@pytest.mark.parametrize("script", ["normals", "first_call"])
def test_other_benchmarks_quick(script, capsys):
    # The generator and first-call benchmarks run and print what they return,
    # one JSON object per line, with a value, a unit and a baseline ratio.
    bench = load_script(f"benchmarks/{script}.py", f"bench_{script}")
    rows = bench.main(["--quick"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == rows
    assert all(r["value"] > 0 and r["unit"] for r in rows)
    assert any("ratio" in r and r["baseline"] > 0 for r in rows)
