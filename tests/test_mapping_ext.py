"""Bit slicing, reference column, per-column/per-tile scaling, clipping, bit-serial
inputs and bound management, against float64 NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import DACS, EPS32, SCALES, config

import devices
import xbar

IDEAL = devices.Ideal()  # g in [1e-6, 1e-4] S
G_MIN, G_MAX = 1e-6, 1e-4
TILE = (8, 7)  # small tiles: several row and column tiles, groups split columns


def _tiled(w, **kw):
    """`w` (float64, (out, in)) on ideal cells in TILE-sized tiles, key 0."""
    return xbar.AnalogLinear.from_weights(
        jnp.asarray(w, jnp.float32),
        None,
        config(IDEAL, tile_rows=TILE[0], tile_cols=TILE[1], **kw),
        key=jax.random.key(0),
    )


def _int_weights(key, out_f, in_f, bits):
    """Weights on the quantization grid of `bits` magnitude bits, max |q| = 2^bits-1,
    so a quantized mapping represents them exactly."""
    top = 2**bits - 1
    q = np.array(jax.random.randint(key, (out_f, in_f), -top, top + 1))
    q[0, 0] = top
    return q * 0.01


def _bound(w, x, n_acc, n_slices, ref):
    """Float32 error bound of a mapped W x in output units.

    A weight unit is worth c = 1 (differential) or 2 (reference) times w_max / dG
    per siemens of combined conductance. Three float32 terms, each eps times a
    length times a magnitude:
    - cells: each conductance (<= g_max) errs by eps g_max; the shift-add weights
      of the slices, 2^(b s) (2^b - 1) / (2^B - 1), sum to 1, so over the slices
      this is <= 2 eps c w_max g_max / dG per input (x4 for the scalings);
    - common mode: a column sums n_acc cells that all carry the offset g_off
      (g_min, or g_ref = (g_min + g_max) / 2 which the reference column
      subtracts): n_acc eps c w_max g_off / dG per input;
    - accumulation of the signal: (n_acc + 8) eps sum_j |W_cj x_j|.
    `n_slices` is kept for the call sites; the slice weights telescope (see above).
    """
    del n_slices
    scheme = {False: "differential", True: "reference"}.get(ref, ref)
    w = np.asarray(w, np.float64)
    x = np.asarray(x, np.float64)
    w_max = np.abs(w).max()
    c = 2.0 if scheme == "reference" else 1.0
    # A balanced pair's cells both sit about g_mid: the reference's common mode.
    g_off = G_MIN if scheme == "differential" else 0.5 * (G_MIN + G_MAX)
    sx = np.abs(x).sum(-1, keepdims=True)
    cells = 8 * c * w_max * G_MAX / (G_MAX - G_MIN) * sx
    common = (n_acc + 8) * c * w_max * g_off / (G_MAX - G_MIN) * sx
    acc = (n_acc + 8) * (np.abs(x) @ np.abs(w).T)
    return EPS32 * (cells + common + acc)


@pytest.fixture(scope="module")
def data():
    key = jax.random.key(7)
    kw, kx = jax.random.split(key)
    w = _int_weights(kw, 9, 30, 6)
    x = np.asarray(jax.random.normal(kx, (5, 30), jnp.float32), np.float64)
    return w, x


@pytest.mark.parametrize("scheme", ["differential", "balanced", "reference"])
@pytest.mark.parametrize("n_slices", [1, 2, 3, 6])
def test_bit_sliced_ideal_equals_wx(data, n_slices, scheme):
    w, x = data
    layer = _tiled(
        w,
        dac=xbar.DAC(bits=None),
        n_slices=n_slices,
        weight_bits=6,
        scheme=scheme,
    )
    # Ideal ADC (no clipping, no quantization): "enough bits".
    y = np.asarray(layer(jnp.asarray(x, jnp.float32)), np.float64)
    expected = x @ w.T
    tol = _bound(w, x, 4 * TILE[0], n_slices, scheme)
    assert np.all(np.abs(y - expected) <= tol)
    # The bound is far below the signal, so a wrong slice weight or column fails.
    assert tol.max() < 1e-3 * np.abs(expected).mean()
    # Layout: a group's slices stay in one tile.
    assert (
        layer.mapping.groups_per_tile == (TILE[1] - (scheme == "reference")) // n_slices
    )


@pytest.mark.parametrize("scaling", ["tensor", "column", "tile"])
def test_scaling_quantizes_like_numpy(scaling, getkey):
    """weight_bits=3 with one scale per tensor / output column / tile: the
    programmed weights are sign(w) round(|w| / w_max * 7) w_max / 7 with w_max
    taken over the group (computed independently here)."""
    out_f, in_f, bits = 9, 30, 3
    col_mag = np.geomspace(0.01, 1.0, out_f)[:, None]  # columns of very different size
    w = np.asarray(jax.random.normal(getkey(), (out_f, in_f)), np.float64) * col_mag
    w32 = jnp.asarray(w, jnp.float32)
    layer = xbar.AnalogLinear.from_weights(
        w32,
        None,
        xbar.AnalogConfig(
            IDEAL,
            mapping=xbar.Mapping(
                tile_rows=TILE[0],
                tile_cols=TILE[1],
                n_slices=1,
                weight_bits=bits,
                scale=SCALES[scaling],
            ),
            dac=xbar.DAC(bits=None),
        ),
        key=getkey(),
    )
    a = np.abs(np.asarray(w32, np.float64))
    if scaling == "tensor":
        w_max = np.full_like(a, a.max())
    elif scaling == "column":
        w_max = np.broadcast_to(a.max(axis=1, keepdims=True), a.shape)
    else:
        w_max = np.empty_like(a)
        for r0 in range(0, in_f, TILE[0]):
            for c0 in range(0, out_f, TILE[1]):
                blk = (slice(c0, c0 + TILE[1]), slice(r0, r0 + TILE[0]))
                w_max[blk] = a[blk].max()
    top = 2**bits - 1
    w_q = np.sign(w) * np.round(a / w_max * top) * w_max / top
    w_eff = np.asarray(layer.effective_weight(), np.float64)
    # Conductances in float32: 4 eps of w_max g_max / dG per weight; rounding ties
    # are measure-zero for random normals.
    np.testing.assert_allclose(
        w_eff, w_q, rtol=0, atol=(4 * EPS32 * w_max * 1.02).max()
    )
    x = np.asarray(jax.random.normal(getkey(), (4, in_f)), np.float64)
    y = np.asarray(layer(jnp.asarray(x, jnp.float32)), np.float64)
    expected = x @ w_q.T
    assert np.all(np.abs(y - expected) <= _bound(w, x, 4 * TILE[0], 1, False))


def test_column_scaling_helps_small_columns(getkey):
    # Same data as above: with a tensor scale the smallest column (1 % of the
    # largest) quantizes to zero at 3 bits; with a column scale it keeps its
    # shape. Relative error of that column: ~1 vs <= 1/7 / 2 per weight.
    w = np.asarray(jax.random.normal(getkey(), (9, 30)), np.float64)
    w = w * np.geomspace(0.01, 1.0, 9)[:, None]
    errs = {}
    for scaling in ("tensor", "column"):
        layer = xbar.AnalogLinear.from_weights(
            jnp.asarray(w, jnp.float32),
            None,
            xbar.AnalogConfig(
                IDEAL,
                mapping=xbar.Mapping(
                    tile_rows=8, tile_cols=7, weight_bits=3, scale=SCALES[scaling]
                ),
                dac=xbar.DAC(bits=None),
            ),
            key=getkey(),
        )
        w_eff = np.asarray(layer.effective_weight(), np.float64)
        errs[scaling] = np.abs(w_eff[0] - w[0]).max() / np.abs(w[0]).max()
    assert errs["tensor"] > 0.9 and errs["column"] <= 0.5 / 7 + 1e-5


def test_clip_percentile(getkey):
    w = np.asarray(jax.random.normal(getkey(), (9, 30)), np.float64)
    layer = xbar.AnalogLinear.from_weights(
        jnp.asarray(w, jnp.float32),
        None,
        xbar.AnalogConfig(
            IDEAL,
            mapping=xbar.Mapping(
                tile_rows=8,
                tile_cols=7,
                cells=xbar.ReferenceColumn(),
                clip_percentile=90.0,
            ),
            dac=xbar.DAC(bits=None),
        ),
        key=getkey(),
    )
    p = np.percentile(np.abs(np.asarray(jnp.asarray(w, jnp.float32), np.float64)), 90.0)
    w_eff = np.asarray(layer.effective_weight(), np.float64)
    # Weights beyond the 90th percentile of |W| clip to +-p; float32 cells: 8 eps
    # of p g_max / dG (reference scheme: half the conductance per unit weight).
    np.testing.assert_allclose(
        w_eff, np.clip(w, -p, p), rtol=0, atol=8 * EPS32 * p * 1.02
    )
    assert np.mean(np.abs(w) > p) > 0.05  # clipping really happened


def test_bit_serial_equals_amplitude(data):
    w, x = data
    outs = {}
    for enc in ("amplitude", "bit_serial", "pulse_width"):
        layer = _tiled(
            w,
            dac=DACS[enc](bits=5),
            n_slices=2,
            weight_bits=6,
        )
        outs[enc] = np.asarray(layer(jnp.asarray(x, jnp.float32)), np.float64)
    # Same quantized inputs, same cells, ideal ADC: the shift-add of the 4 bit
    # cycles is the amplitude product up to float32 rounding of 4 partial sums.
    tol = 4 * _bound(w, x, 4 * TILE[0], 2, False)
    assert np.all(np.abs(outs["bit_serial"] - outs["amplitude"]) <= tol)
    np.testing.assert_array_equal(outs["pulse_width"], outs["amplitude"])
    # And the 5-bit DAC really quantizes (differs from the exact product).
    assert np.abs(outs["amplitude"] - x @ w.T).max() > 100 * tol.max()


def test_bit_serial_adc_sees_each_cycle(data):
    """With a per-cycle ADC, bit-serial inputs give each cycle its own rounding:
    the result equals sum_c 2^c/n Q(I_c) computed here from the cycles' currents."""
    w, x = data
    layer = _tiled(
        w,
        dac=xbar.BitSerialDAC(bits=4),
    )
    x32 = jnp.asarray(x, jnp.float32)
    layer = xbar.calibrate_adc(layer, x32, bits=4, percentile=100.0)
    a = np.asarray(layer.adc_inputs(x32), np.float64)  # (3 cycles, 5, tr, tc, C)
    assert a.shape[0] == 3
    i_max = float(layer.adc.i_max)
    q = np.clip(np.round(a / i_max * 7), -7, 7) / 7 * i_max
    d = np.tensordot(np.array([1, 2, 4]) / 7, q, axes=1).sum(axis=1)  # (5, tc, C)
    s = np.abs(x).max(-1)[:, None]
    y_ref = (
        d.reshape(5, -1)[:, :9]
        * s
        / (float(layer.dac.v_read) * float(layer.g_per_w.ravel()[0]))
    )
    y = np.asarray(layer(x32), np.float64)
    # Rounding ties aside (none at these random currents), float32: 1e-5 relative.
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * np.abs(y_ref).max())


def test_bound_management_removes_clipping(data):
    """An ADC that only clips (bits=None) at a full scale below the largest
    current: without bound management outputs are clipped; with it, clipped
    examples are re-read at half (quarter) input scale and equal W x."""
    w, x = data
    x32 = jnp.asarray(x, jnp.float32)
    kw = dict(tile_rows=TILE[0], tile_cols=TILE[1], dac=xbar.DAC(bits=None))
    base = xbar.AnalogLinear.from_weights(
        jnp.asarray(w, jnp.float32), None, config(IDEAL, **kw), key=jax.random.key(0)
    )
    i_max = 0.3 * float(np.abs(np.asarray(base.tile_currents(x32, key=None))).max())
    adc = xbar.ADC(bits=None, i_max=i_max)
    outs = {}
    for bm in (0, 3):
        layer = xbar.AnalogLinear.from_weights(
            jnp.asarray(w, jnp.float32),
            None,
            config(IDEAL, adc=adc, bound_management=bm, weight_bits=6, **kw),
            key=jax.random.key(0),
        )
        outs[bm] = np.asarray(layer(x32), np.float64)
    expected = x @ w.T
    tol = _bound(w, x, 4 * TILE[0], 1, False)
    assert np.abs(outs[0] - expected).max() > 1e3 * tol.max()  # clipped
    assert np.all(np.abs(outs[3] - expected) <= 4 * tol)  # scaled by 1/4 at most


def test_per_column_calibration(data):
    w, x = data
    x32 = jnp.asarray(x, jnp.float32)
    layer = _tiled(
        w,
        dac=xbar.DAC(bits=None),
        n_slices=2,
        weight_bits=6,
    )
    cal = xbar.calibrate_adc(layer, x32, bits=8, percentile=100.0, per_column=True)
    a = np.abs(np.asarray(layer.adc_inputs(x32)[0]))  # one cycle: (5, tr, tc, 6)
    expect = a.max(axis=0)
    valid = np.broadcast_to(layer.adc_valid_columns(), expect.shape)
    # Exactly the max over the data (a percentile of 100 is the max).
    np.testing.assert_array_equal(np.asarray(cal.adc.i_max)[valid], expect[valid])
    assert cal.adc.i_max.shape == a.shape[1:]


def test_impossible_configurations():
    w = jnp.ones((4, 6), jnp.float32)
    with pytest.raises(ValueError, match="tile_cols must be >= n_slices"):
        xbar.AnalogLinear.from_weights(
            w,
            None,
            xbar.AnalogConfig(
                IDEAL, mapping=xbar.Mapping(tile_cols=3, n_slices=4, weight_bits=8)
            ),
            key=jax.random.key(0),
        )
    with pytest.raises(ValueError, match=r"tile_cols must be >= n_slices \+ 1"):
        xbar.AnalogLinear.from_weights(
            w,
            None,
            xbar.AnalogConfig(
                IDEAL,
                mapping=xbar.Mapping(
                    tile_cols=4, n_slices=4, weight_bits=8, cells=xbar.ReferenceColumn()
                ),
            ),
            key=jax.random.key(0),
        )
    with pytest.raises(ValueError, match="n_slices must be in"):
        xbar.AnalogLinear.from_weights(
            w,
            None,
            xbar.AnalogConfig(IDEAL, mapping=xbar.Mapping(n_slices=5, weight_bits=4)),
            key=jax.random.key(0),
        )
    with pytest.raises(ValueError, match="weight_bits"):
        xbar.AnalogLinear.from_weights(
            w,
            None,
            xbar.AnalogConfig(IDEAL, mapping=xbar.Mapping(n_slices=2)),
            key=jax.random.key(0),
        )
    with pytest.raises(ValueError, match="ADC i_max must be in"):
        xbar.ADC(bits=6, i_max=0.0)
    # Options are modules: a name where a module belongs is refused by name.
    with pytest.raises(ValueError, match="scale must be one of"):
        xbar.Mapping(scale="row")
    with pytest.raises(ValueError, match="cells must be one of"):
        xbar.Mapping(cells="single")
    with pytest.raises(ValueError, match="bound_management"):
        xbar.AnalogLinear.from_weights(
            w,
            None,
            xbar.AnalogConfig(IDEAL, bound_management=-1),
            key=jax.random.key(0),
        )


# -- convolution by im2col -----------------------------------------------------------


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_conv_equals_lax_conv(stride, padding, getkey):
    from xbar.nn.conv import AnalogConv2d

    w = jax.random.normal(getkey(), (6, 3, 3, 3), jnp.float32)
    b = jax.random.normal(getkey(), (6,), jnp.float32)
    x = jax.random.normal(getkey(), (2, 3, 9, 9), jnp.float32)
    conv = AnalogConv2d.from_weights(
        w,
        b,
        xbar.AnalogConfig(
            IDEAL,
            mapping=xbar.Mapping(tile_rows=16, tile_cols=4),
            dac=xbar.DAC(bits=None),
        ),
        key=getkey(),
        stride=stride,
        padding=padding,
    )
    y = np.asarray(conv(x), np.float64)
    ref = jax.lax.conv_general_dilated(
        np.asarray(x, np.float64),
        np.asarray(w, np.float64),
        (stride, stride),
        ((padding, padding), (padding, padding)),
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
    )
    ref = np.asarray(ref) + np.asarray(b, np.float64)[:, None, None]
    assert y.shape == ref.shape
    # Each output pixel is a 27-long dot product through two 16-row tiles: the
    # float32 MVM bound with n_acc = 32 (cells, common mode, accumulation), on
    # the patch magnitudes; bounded here by its largest patch |x| sum (<= 27 max|x|).
    w2 = np.asarray(w, np.float64).reshape(6, -1)
    xmax = np.abs(np.asarray(x)).max()
    tol = EPS32 * (
        40 * 27 * xmax * np.abs(w2).max() * 2 + 40 * 27 * xmax * np.abs(w2).max()
    )
    np.testing.assert_allclose(y, ref, rtol=2 * EPS32, atol=tol)
    assert tol < 2e-3 * np.abs(ref).mean()  # far below a wrong patch order (O(1))


# -- write-verify -----------------------------------------------------------------


def test_write_verify_ideal_reaches_tolerance(getkey):
    from xbar.mapping.write_verify import write_verify

    dev = devices.Ideal(n_states=100.0)
    step = (G_MAX - G_MIN) / 100
    t = np.asarray(jax.random.uniform(getkey(), (20, 30), minval=G_MIN, maxval=G_MAX))
    tol = 0.5 * step * 1.001  # half a pulse step: always reachable
    for burst in (1, 8):
        r = write_verify(
            dev,
            dev.init(t.shape),
            jnp.asarray(t),
            key=getkey(),
            tol=tol,
            max_pulses=120,
            max_burst=burst,
        )
        assert bool(np.all(np.asarray(r.converged)))
        assert np.all(np.abs(np.asarray(r.residual)) <= tol)
        # From g_min the nearest level is round((t - g_min) / step) pulses away,
        # and an ideal cell needs exactly that many (hand count, float64).
        expected = np.round((t.astype(np.float64) - G_MIN) / step).astype(int)
        np.testing.assert_array_equal(np.asarray(r.pulses), expected)
        if burst > 1:  # bursts take fewer rounds than pulses
            assert int(r.iterations) < expected.max()


def test_write_verify_reports_failures_on_noisy_device(getkey):
    from xbar.mapping.write_verify import write_verify

    # Cycle-to-cycle noise 3.5 % of the range per sqrt(pulse) against a 1 %
    # tolerance and 30 pulses: many cells cannot settle. No read noise, so a
    # verify read is the true conductance.
    dev = devices.RRAM.from_card(sigma_read=0.0)
    span = float(dev.g_max - dev.g_min)
    t = jax.random.uniform(
        getkey(), (40, 50), minval=float(dev.g_min), maxval=float(dev.g_max)
    )
    tol = 0.01 * span
    r = write_verify(
        dev,
        dev.init(t.shape, key=getkey()),
        t,
        key=getkey(),
        tol=tol,
        max_pulses=30,
        max_burst=4,
    )
    conv = np.asarray(r.converged)
    res = np.abs(np.asarray(r.residual, np.float64))
    s = r.summary(tol)
    assert 0.05 < s["converged_fraction"] < 0.95  # honest: some fail, some succeed
    # Converged cells are within tolerance (float32 of g: 2 eps g_max); failed ones
    # are not, and used their whole budget.
    assert np.all(res[conv] <= tol + 2 * EPS32 * float(dev.g_max))
    assert np.all(res[~conv] > tol)
    assert np.all(np.asarray(r.pulses)[~conv] == 30)
    assert s["pulses_max"] == 30 and s["within_tol_fraction"] == s["converged_fraction"]


# -- placement ----------------------------------------------------------------------


def _chip_mapping(chip, **kw):
    return xbar.Mapping(tile_rows=chip.tile_rows, tile_cols=chip.tile_cols, **kw)


def test_placement_by_hand():
    from xbar.analysis.placement import Chip, place
    from xbar.training.classifier import MLP

    model = MLP([784, 256, 10], key=jax.random.key(0))
    chip = Chip(tile_rows=256, tile_cols=256, tiles_per_core=4, cores=4)
    p = place(model, chip, mapping=_chip_mapping(chip, n_slices=2, weight_bits=8))
    # 2 slices: 128 weight columns per 256-column tile. 784 x 256 -> 4 x 2 tiles
    # (tiles 0-7, cores 0-1); 256 x 10 -> 1 tile (tile 8, core 2).
    l0, l1 = p.layers
    assert (l0.grid, l0.tiles, l0.cores) == ((4, 2), 8, (0, 1))
    assert (l1.grid, l1.tiles, l1.cores, l1.first_tile) == ((1, 1), 1, (2,), 8)
    assert l0.devices_per_weight == 4.0  # 2 slices x (G+, G-)
    assert l0.utilization == pytest.approx(784 * 256 * 4 / (8 * 256 * 256 * 2))
    assert p.tiles_used == 9 and p.cores_used == 3
    assert "9/16 tiles" in p.report()
    # The same configuration mapped as a layer uses the same tile grid.
    lay = xbar.AnalogLinear.from_weights(
        model.layers[0].weight,
        None,
        xbar.AnalogConfig(IDEAL, mapping=xbar.Mapping(n_slices=2, weight_bits=8)),
        key=jax.random.key(1),
    )
    assert lay.grid == l0.grid
    # Reference scheme: one device per weight plus a 256-cell column per tile.
    r = place(
        [w for w, _ in model.params()],
        chip,
        mapping=_chip_mapping(chip, cells=xbar.ReferenceColumn()),
    )
    assert r.layers[0].devices == 784 * 256 + r.layers[0].tiles * 256
    with pytest.raises(ValueError, match="chip too small"):
        place(
            model,
            Chip(tiles_per_core=2, cores=2),
            mapping=_chip_mapping(chip, n_slices=2, weight_bits=8),
        )
    # A mapped analog network places as its digital model does.
    net = xbar.AnalogNetwork.from_weights(
        model.params(), IDEAL, key=jax.random.key(2), input_shape=(784,)
    )
    a = place(net, chip, mapping=_chip_mapping(chip, n_slices=2, weight_bits=8))
    assert [(la.grid, la.tiles) for la in a.layers] == [(l0.grid, 8), (l1.grid, 1)]


@pytest.mark.parametrize("encoding", ["amplitude", "bit_serial"])
def test_trimmed_tiles_match_effective_weights(encoding, getkey):
    # The forward pass skips the unused rows of the last row tile (40 inputs on
    # 16-row tiles: 8 of 16) and the columns past the outputs of a single column
    # tile (5 outputs x 2 slices of 64 columns), and cuts a per-column ADC full
    # scale to match; the result must equal effective_weight() @ x, which reads
    # the full, untrimmed tiles.
    w = jax.random.normal(getkey(), (5, 40), jnp.float32)
    x = jax.random.uniform(getkey(), (7, 40), jnp.float32)
    layer = xbar.AnalogLinear.from_weights(
        w,
        None,
        xbar.AnalogConfig(
            IDEAL,
            mapping=xbar.Mapping(
                tile_rows=16,
                tile_cols=64,
                n_slices=2,
                weight_bits=8,
                scale=xbar.PerColumn(),
            ),
            dac=DACS[encoding](bits=None if encoding == "amplitude" else 12),
        ),
        key=getkey(),
    )
    assert layer.grid == (3, 1)
    layer = xbar.calibrate_adc(layer, x, bits=16, percentile=100.0, per_column=True)
    assert layer.adc.i_max.shape == (3, 1, 64)
    y = np.asarray(layer(x), np.float64)
    w_eff = np.asarray(layer.effective_weight(), np.float64)
    u = np.asarray(x, np.float64)
    if encoding == "bit_serial":  # inputs on the 12-bit DAC grid
        u = (
            np.round(u / np.abs(u).max(1, keepdims=True) * 2047)
            / 2047
            * np.abs(u).max(1, keepdims=True)
        )
    ref = u @ w_eff.T
    # A 16-bit ADC rounds each conversion by <= 1/65534 of its column's full
    # scale (a tile's largest partial sum, <= max |ref|), summed over 3 tiles
    # (x 16/17 + 1/17 for the two slices): <= 5e-5 of max |ref| (measured
    # 1.3e-5); 2e-4 leaves room and is far below a wrong row or column cut (O(1)).
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-4 * np.abs(ref).max())


def test_per_column_calibration_of_a_silent_column(getkey):
    # Output 1 has all-zero weights: its columns read 0 on every input. It gets
    # the layer's largest column full scale (any positive scale converts 0 to 0)
    # instead of failing the whole calibration; an all-zero layer still raises.
    w = np.array(jax.random.normal(getkey(), (3, 10)))
    w[1] = 0.0
    x = jax.random.uniform(getkey(), (16, 10), jnp.float32)
    layer = xbar.AnalogLinear.from_weights(
        jnp.asarray(w),
        None,
        xbar.AnalogConfig(
            IDEAL,
            mapping=xbar.Mapping(tile_rows=16, tile_cols=8, n_slices=2, weight_bits=6),
        ),
        key=getkey(),
    )
    cal = xbar.calibrate_adc(layer, x, bits=8, percentile=100.0, per_column=True)
    i_max = np.asarray(cal.adc.i_max)[0, 0]  # (cols,): groups x slices
    np.testing.assert_array_equal(i_max[2:4], i_max.max())
    y = np.asarray(cal(x), np.float64)
    assert np.all(y[:, 1] == 0.0)
    silent = xbar.AnalogLinear.from_weights(
        jnp.zeros((3, 10)).at[0, 0].set(1.0),
        None,
        xbar.AnalogConfig(IDEAL, mapping=xbar.Mapping(tile_rows=16, tile_cols=8)),
        key=getkey(),
    )
    with pytest.raises(ValueError, match="zero"):
        xbar.calibrate_adc(silent, jnp.zeros((4, 10)), per_column=True)


def test_balanced_pair_targets_are_symmetric_about_mid_range(getkey):
    # G+ + G- = 2 g_mid for every weight, G+ - G- = k w (k = dG / w_max): the
    # scheme's definition, checked on the programmed ideal cells (float32: a few
    # eps of g_max).
    w = jax.random.normal(getkey(), (5, 12), jnp.float32)
    cfg = xbar.AnalogConfig(
        IDEAL,
        mapping=xbar.Mapping(tile_rows=16, tile_cols=8, cells=xbar.BalancedPair()),
    )
    layer = xbar.AnalogLinear.from_weights(w, None, cfg, key=getkey())
    g_p = np.asarray(layer.crossbar.pos.g, np.float64)[0, 0, :12, :5]
    g_n = np.asarray(layer.crossbar.neg.g, np.float64)[0, 0, :12, :5]
    tol = 4 * EPS32 * G_MAX
    np.testing.assert_allclose(g_p + g_n, G_MIN + G_MAX, rtol=0, atol=tol)
    k = (G_MAX - G_MIN) / float(np.abs(w).max())
    np.testing.assert_allclose(
        g_p - g_n, k * np.asarray(w, np.float64).T, rtol=0, atol=tol
    )
