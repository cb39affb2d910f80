"""A tiny run of experiments/spiking_devices.py and benchmarks/spiking.py --quick."""

import json

import pytest
from helpers import assert_figure_redraws, load_script


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    exp = load_script("experiments/spiking_devices.py", "spiking_devices")
    out_dir = tmp_path_factory.mktemp("spiking_devices")
    out = exp.run(quick=True, out_dir=out_dir, families=["ideal"])
    return exp, out_dir, out


def test_results_file_is_complete(tiny_run):
    _, out_dir, out = tiny_run
    saved = json.loads((out_dir / "spiking_devices.json").read_text())
    assert saved == json.loads(json.dumps(out))
    assert saved["seed"] == 0 and saved["git_revision"]
    row = saved["results"]["ideal"]
    for acc in row["surrogate"]["accuracy"] + [row["stdp"]["accuracy"]]:
        assert 0.0 <= acc <= 1.0
    # Training moved the loss (256 examples, 4 minibatches; chance is ln 10).
    first, last = row["surrogate"]["loss_first_last"]
    assert last < first
    # Spiking activity is sparse: fewer synaptic ops than a dense pass.
    assert (
        0
        < row["surrogate"]["syn_ops_per_inference"]
        < row["surrogate"]["dense_ops_per_inference"]
    )
    r = saved["raster"]
    assert len(r["layers"]) == 2 and len(r["v_out_V"]) == 10


def test_families_are_looked_up_by_name_and_missing_ones_reported(tiny_run):
    exp, _, out = tiny_run
    assert list(out["results"]) == ["ideal"] and out["missing_families"] == []
    # A family whose class `devices` lacks is reported missing, not faked.
    assert exp.make_device("NoSuchDeviceClass") == (None, None)
    with pytest.raises(ValueError, match="families"):
        exp.run(quick=True, families=["unobtainium"])


def test_figure_regenerates_from_results_alone(tiny_run, tmp_path):
    exp, out_dir, _ = tiny_run
    assert_figure_redraws(exp, out_dir, "spiking_devices", tmp_path)


def test_spiking_benchmark_quick(capsys):
    bench = load_script("benchmarks/spiking.py", "bench_spiking")
    rows = bench.main(["--quick", "--repeats", "1"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == rows
    first = rows[0]
    for field in ("name", "value", "unit", "baseline", "ratio", "target"):
        assert field in first
    assert first["value"] > 0 and first["baseline"] > 0
    assert rows[-1]["name"] == "peak_rss" and rows[-1]["value"] > 0
