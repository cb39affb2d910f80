"""Tolerance helper and the list of every device model, for parametrized tests."""

import contextlib
import dataclasses
import importlib.util
import logging
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

import devices
import xbar

# float32 machine epsilon: the unit of every float32 rounding tolerance below.
EPS32 = float(np.finfo(np.float32).eps)


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    """Same structure, same dtypes, leaves close. Conductances are ~1e-9..1e-4 S,
    so callers working in siemens must pass an `atol` scaled to g_max."""
    return bool(eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol))


# Every device model, in the configurations the suite tests. A new device (or a
# new card) added here is run through every parametrized test.
all_devices = (
    devices.Ideal(),
    devices.RRAM.from_card(),
    devices.RRAM.from_card("rram_taox_hfox_wu2018"),
    devices.PCM.from_card("pcm_joshi2020"),
    devices.Perovskite.from_card("perovskite_mapbi3_poddar"),
    devices.Perovskite.from_card("perovskite_cspbbr3_john2022"),
    devices.IonicSynapse.from_card("ionic_ecram_tang2018"),
    devices.IonicSynapse.from_card("ionic_protonic_onen2022"),
    devices.IonicSynapse.from_card("ionic_droplet_li2025"),
)
all_device_ids = (
    "Ideal",
    "RRAM-ag_asi_jo2010",
    "RRAM-taox_hfox_wu2018",
    "PCM-joshi2020",
    "Perovskite-mapbi3_poddar",
    "Perovskite-cspbbr3_john2022",
    "Ionic-ecram_tang2018",
    "Ionic-protonic_onen2022",
    "Ionic-droplet_li2025",
)

# The RRAM configurations (the ones with noise).
rram_devices = all_devices[1:3]
rram_device_ids = all_device_ids[1:3]


def zero_noise(device):
    """A copy of `device` with every `sigma_*` parameter set to 0 (re-validated)."""
    names = [f.name for f in dataclasses.fields(device) if f.name.startswith("sigma_")]
    return dataclasses.replace(device, **{n: 0.0 for n in names})


def untile(t, n_in, n_out):
    """Independent NumPy inverse of the tiling (tr, tc, R, C) -> (n_in, n_out)."""
    t = np.asarray(t)
    tr, tc, r, c = t.shape
    out = np.empty((tr * r, tc * c), t.dtype)
    for i in range(tr):
        for j in range(tc):
            out[i * r : (i + 1) * r, j * c : (j + 1) * c] = t[i, j]
    return out[:n_in, :n_out]


# Threshold for the Kolmogorov-Smirnov tests against a stated distribution. The
# suite runs ~30 of them; at 1e-3 the chance that any correct one fails for a
# new seed is ~3 %, while with 2e4 samples a real shape error (e.g. uniform
# instead of normal noise, KS distance ~0.03) still gives p ~ 1e-16.
KS_PVALUE = 1e-3


ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath: str, name: str):
    """Import a script of the repository (an experiment or a benchmark) by path.

    It is registered in `sys.modules` first: dataclasses (every eqx.Module)
    look their module up while the script is executed.
    """
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def assert_figure_redraws(exp, out_dir, name: str, tmp_path) -> None:
    """The experiment wrote NAME.png, and its `plot` redraws the figure from
    NAME.json alone (each PNG > 10 kB: a real figure, not an empty canvas)."""
    out_dir = Path(out_dir)
    assert (out_dir / f"{name}.png").stat().st_size > 10_000
    png = Path(tmp_path) / "again.png"
    exp.plot(out_dir / f"{name}.json", png)
    assert png.stat().st_size > 10_000


# The tests name mapping options by their short names; these are the modules.
CELLS = {
    "differential": xbar.DifferentialPair(),
    "balanced": xbar.BalancedPair(),
    "reference": xbar.ReferenceColumn(),
}
SCALES = {
    "tensor": xbar.PerTensor(),
    "column": xbar.PerColumn(),
    "tile": xbar.PerTile(),
}
_MAPPING_KW = ("tile_rows", "tile_cols", "n_slices", "weight_bits", "clip_percentile")


def config(device, *, scheme=None, scaling=None, input_scaling=None, x_max=None, **kw):
    """An `xbar.AnalogConfig` from the tests' short keywords: mapping fields
    (tile size, slices, bits, clipping, `scheme`, `scaling` by name) go into its
    `Mapping`, `input_scaling="fixed"` with `x_max` becomes `FixedScaling`,
    everything else is an `AnalogConfig` field."""
    m = {k: kw.pop(k) for k in _MAPPING_KW if k in kw}
    if scheme is not None:
        m["cells"] = CELLS[scheme]
    if scaling is not None:
        m["scale"] = SCALES[scaling]
    if m:
        kw["mapping"] = xbar.Mapping(**m)
    if input_scaling == "fixed":
        kw["input_scaling"] = xbar.FixedScaling(1.0 if x_max is None else x_max)
    elif input_scaling is not None:
        kw["input_scaling"] = xbar.AbsMaxScaling()
    return xbar.AnalogConfig(device, **kw)


# DAC encodings by name (the experiments and parametrized tests name them).
DACS = {
    "amplitude": xbar.DAC,
    "pulse_width": xbar.PulseWidthDAC,
    "bit_serial": xbar.BitSerialDAC,
}


@contextlib.contextmanager
def compile_log():
    """The messages JAX logs inside the block with `jax.log_compiles` on, as
    a list filled while it runs (each compilation logs one that starts with
    "Compiling")."""
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            yield records
    finally:
        logger.removeHandler(handler)


# Options every HWA trainer checks (`xbar.training.hwa.check_hwa_options`)
# before compiling: bad values and the field its ValueError must name.
HWA_BAD_OPTIONS = [
    (dict(optimizer="adam"), "optimizer"),
    (dict(optimizer=lambda g: g), "optimizer"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=10_000), "batch_size"),
    (dict(noise_scale=-1.0), "noise_scale"),
    (dict(t_inference_s=-1.0), "t_inference_s"),
    (dict(clip_sigma=0.0), "clip_sigma"),
]
