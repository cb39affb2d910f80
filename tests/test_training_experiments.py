"""Tiny runs of the training experiments: results files, figures, sanity.

Each experiment has its own test file (this one: online learning; the others
import `check_quick_run`), so the three compile-heavy runs spread over the
test workers instead of queueing on one."""

import json

import numpy as np
from helpers import assert_figure_redraws, load_script


def test_online_learning_quick_run(tmp_path):
    check_quick_run("online_learning", tmp_path)


def check_quick_run(name, tmp_path):
    exp = load_script(f"experiments/{name}.py", name)
    out_dir = tmp_path / name
    out = exp.run(quick=True, out_dir=out_dir)
    saved = json.loads((out_dir / f"{name}.json").read_text())
    assert saved == json.loads(json.dumps(out))
    assert saved["git_revision"] and saved["seed"] == 0
    assert_figure_redraws(exp, out_dir, name, tmp_path)
    if name == "online_learning":
        for r in saved["results"].values():
            acc = np.asarray(r["accuracy"])
            assert acc.shape == (saved["config"]["seeds"], saved["config"]["epochs"])
            assert np.all((acc >= 0) & (acc <= 1))
            assert all(p > 0 for p in r["pulses"]) and all(
                e > 0 for e in r["write_energy_J"]
            )
        assert len(saved["algorithms"]) == 1
    elif name == "hwa_drift":
        r = saved["results"]["mlp"]
        for kind in ("conventional", "hwa"):
            for comp in ("none", "global"):
                acc = np.asarray(r[kind][comp]["accuracy"])
                assert acc.shape == (len(saved["config"]["times"]), 1)
                # 2 float epochs on 500 digits already give > 60 % (measured 75 %).
                assert np.all(acc > 0.6)
    else:
        c = saved["config"]
        shape = (len(c["drift_scales"]), len(c["grid_sigma_scales"]))
        for r in saved["results"].values():
            assert 0.0 <= r["float_accuracy"] <= 1.0
            for k in ("grid_accuracy", "grid_smooth_accuracy"):
                a = np.asarray(r[k])
                assert a.shape == shape and np.all((a >= 0) & (a <= 1))
            assert np.all(np.isfinite(r["gradient_final_s"]))
            assert len(r["gradient_final_s"]) == shape[0]
            # A boundary is reported exactly where the search converged: the
            # smooth accuracy at its end point within the tolerance of the
            # target.
            for b, s, a in zip(
                r["boundary_gradient"], r["gradient_final_s"],
                r["smooth_accuracy_at_gradient_s"],
            ):
                ok = abs(a - c["target_accuracy"]) <= c["found_tolerance"]
                assert b == s if ok else b is None
            assert all(0 <= a <= 1 for a in r["accuracy_at_gradient_s"])
