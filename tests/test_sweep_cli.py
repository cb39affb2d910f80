"""The `xbar` command line: a sweep from a TOML file into its store, a rerun
that skips it, a figure redrawn from the store alone, the PCM drift study."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script

from xbar.cli import main, plot_store
from xbar.sweeps import read_store

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _toml(tmp_path, extra=""):
    text = f"""
name = "cells"
task = "sweep_tasks:cells_task"
path = "{TESTS}"
store = "st"
figure = "cells.png"
{extra}
[options]
sigma_read = 0.03

[sweep]
n_repeats = 2
seed = 4
chunk_size = 3

[[axes]]
kind = "grid"
fields = {{ sigma_prog = {{ linspace = [0.0, 0.1, 3] }} }}
"""
    p = tmp_path / "cells.toml"
    p.write_text(text)
    return p


def test_cli_sweep_rerun_and_plot(tmp_path, capsys):
    cfg = _toml(tmp_path)
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 rows in the store (2 chunks run, 0 already done), 0 failed" in out
    manifest, cols = read_store(tmp_path / "st")
    np.testing.assert_allclose(np.unique(cols["sigma_prog"]), [0.0, 0.05, 0.1],
                               rtol=1e-7)
    assert manifest["meta"]["options"] == {"sigma_read": 0.03}
    # The task's folder is recorded relative to the store.
    assert (tmp_path / "st" / manifest["meta"]["path"]).resolve() == TESTS
    assert manifest["base"][".sigma_read"] == pytest.approx(0.03)
    png = tmp_path / "cells.png"
    assert png.stat().st_size > 10_000
    # A rerun finds every chunk done.
    main(["sweep", str(cfg), "--no-progress", "--no-plot"])
    assert "(0 chunks run, 2 already done)" in capsys.readouterr().out
    # The figure again, from the store alone (the task module has no plot:
    # one panel per metric against the swept field).
    png.unlink()
    assert main(["plot", str(tmp_path / "st"), "-o", str(png)]) == 0
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize(
    "extra, match",
    [('colour = "red"', "unknown keys \\['colour'\\]"),
     ("[[axes]]\nkind = \"grid\"\nfields = { sigma_raed = [0.1] }",
      "unknown field sigma_raed"),
     ("[[axes]]\nkind = \"zip\"\nfields = { a_ltp = [1.0, 2.0], a_ltd = [1.0] }",
      "axes\\[1\\]: the fields of a Zip axis must have equal lengths")],
)
def test_cli_malformed_config(tmp_path, extra, match, capsys):
    cfg = _toml(tmp_path, "")
    text = cfg.read_text()
    if extra.startswith("[[axes]]"):
        text += "\n" + extra + "\n"
    else:
        text = extra + "\n" + text
    cfg.write_text(text)
    # The command line reports the ValueError in one line and exits with 2
    # (no traceback), before any point runs.
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(cfg), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("xbar sweep: error: ") and re.search(match, err)
    assert not (tmp_path / "st" / "chunks").exists() or not any(
        (tmp_path / "st" / "chunks").iterdir())


def test_pcm_drift_quick_end_to_end(tmp_path):
    exp = load_script("experiments/pcm_drift.py", "pcm_drift_exp")
    exp.main(["--quick", "--out-dir", str(tmp_path)])
    store = tmp_path / "pcm_drift_quick.sweep"
    manifest, cols = read_store(store)
    assert len(cols["row"]) == 12 and np.all(cols["result_code"] == 0)
    float_acc = manifest["meta"]["task_meta"]["float_accuracy"]
    s = exp.summary(cols)
    (t0, acc0, *_), (t1, acc1, _, err1_none, _, _) = s["none"]
    assert (t0, t1) == (1.0, pytest.approx(3.156e8))
    # At 1 s the analog network is within 10 points of the float one.
    assert abs(acc0 - float_acc) < 0.10
    # Ten years of drift shrink the uncompensated outputs (PCM conductances
    # decay as t^-nu, nu ~ 0.05): the logit error grows several-fold, and a
    # global compensation factor removes most of it.
    err0_none = s["none"][0][3]
    err1_global = s["global"][1][3]
    assert err1_none > 3 * err0_none
    assert err1_global < 0.5 * err1_none
    png = tmp_path / "redrawn.png"
    plot_store(store, png)
    assert png.stat().st_size > 20_000
    sys.modules.pop("pcm_drift", None)
