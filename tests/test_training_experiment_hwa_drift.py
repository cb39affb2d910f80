"""Tiny run of experiments/hwa_drift.py (checks in test_training_experiments)."""

from test_training_experiments import check_quick_run


def test_hwa_drift_quick_run(tmp_path):
    check_quick_run("hwa_drift", tmp_path)
