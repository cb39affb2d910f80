"""Tiny run of experiments/device_design.py (checks in test_training_experiments)."""

from test_training_experiments import check_quick_run


def test_device_design_quick_run(tmp_path):
    check_quick_run("device_design", tmp_path)
