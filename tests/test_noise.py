"""The read-noise generator `xbar.circuits.noise.normal` is N(0, 1), exactly.

Sampling tolerances are 5 standard errors of the statistic unless stated;
a correct generator fails one of them with probability ~6e-7 per check.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry2x32_p
from scipy import stats

from xbar.circuits import noise
from xbar.circuits.ideal import sample_currents

N = 1 << 20  # draws for mean/variance/tails


@pytest.fixture(scope="module")
def z():
    return np.asarray(noise.normal(jax.random.key(20), (N,)), np.float64)


def test_threefry_is_jax_threefry():
    """The unrolled hash is bit-identical to JAX's Threefry-2x32 (20 rounds)."""
    k0, k1 = np.uint32(0x243F6A88), np.uint32(0x85A308D3)
    x0 = jnp.arange(4096, dtype=jnp.uint32) * np.uint32(2654435761)
    x1 = jnp.arange(4096, dtype=jnp.uint32)[::-1] ^ np.uint32(0xDEADBEEF)
    want = threefry2x32_p.bind(k0, k1, x0, x1)
    got = jax.jit(noise.threefry2x32)(k0, k1, x0, x1)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_cos_turns_float32_accurate():
    """cos and sin (quarter-turn shift) of 2 pi w / 2^32 within 3 float32 ulps of 1."""
    w = np.concatenate(
        [
            np.arange(0, 2**32, 40961, dtype=np.uint64),
            (
                (np.arange(-64, 64)[:, None] + np.arange(8)[None] * 2**29) % 2**32
            ).ravel(),
        ]
    ).astype(np.uint32)
    t = 2 * np.pi * w.astype(np.float64) / 2**32
    c = np.asarray(jax.jit(noise.cos_turns)(jnp.asarray(w)), np.float64)
    s = np.asarray(
        jax.jit(noise.cos_turns)(jnp.asarray(w - np.uint32(1 << 30))), np.float64
    )
    assert np.abs(c - np.cos(t)).max() < 3 * 2.0**-24
    assert np.abs(s - np.sin(t)).max() < 3 * 2.0**-24


def test_radius_tail_float32_accurate():
    """R = sqrt(-2 ln U) to float32 relative accuracy where U is exact (w < 2^23)."""
    w = np.concatenate(
        [np.arange(0, 1 << 16), np.arange(1 << 16, 1 << 23, 997)]
    ).astype(np.uint32)
    r = np.asarray(jax.jit(noise.radius)(jnp.asarray(w)), np.float64)
    want = np.sqrt(-2 * np.log((w + 0.5) / 2**32))
    assert np.abs(r / want - 1).max() < 4 * 2.0**-24
    assert r.max() == pytest.approx(
        math.sqrt(2 * 33 * math.log(2)), rel=1e-6
    )  # 6.8 sigma


def test_mean_and_variance(z):
    # mean: standard error 1/sqrt(N); variance: standard error sqrt(2/N)
    assert abs(z.mean()) < 5 / math.sqrt(N)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / N)


def test_ks_against_normal_cdf():
    x = np.asarray(noise.normal(jax.random.key(3), (20000,)), np.float64)
    assert stats.kstest(x, "norm").pvalue > 1e-3


@pytest.mark.parametrize("k", [3.0, 4.0])
def test_tail_frequencies(z, k):
    """P(|Z| > k) = 2.7e-3 (3 sigma), 6.3e-5 (4 sigma); binomial standard error."""
    p = 2 * stats.norm.sf(k)
    freq = np.mean(np.abs(z) > k)
    assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / N)
    # and each side alone (a one-sided truncation would show here)
    for side in (z > k, z < -k):
        q = p / 2
        assert abs(side.mean() - q) < 5 * math.sqrt(q * (1 - q) / N)


def test_far_tail_reaches_beyond_5_sigma():
    """P(|Z| > 5) = 5.7e-7: 2^24 draws expect 9.6; the generator must reach there."""
    x = np.asarray(noise.normal(jax.random.key(5), (1 << 24,)))
    count = int(np.sum(np.abs(x) > 5))
    mu = 2 * stats.norm.sf(5) * (1 << 24)
    assert abs(count - mu) < 5 * math.sqrt(mu)
    assert count > 0


def test_different_keys_independent():
    """Correlation of two keys' draws: standard error 1/sqrt(n)."""
    k1, k2 = jax.random.split(jax.random.key(7))
    n = 1 << 18
    a = np.asarray(noise.normal(k1, (n,)), np.float64)
    b = np.asarray(noise.normal(k2, (n,)), np.float64)
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(n)
    # neighbours within one draw (lag 1) as well
    assert abs(np.corrcoef(a[1:], a[:-1])[0, 1]) < 5 / math.sqrt(n)
    # fold_in-style keys and raw PRNGKey keys also give different streams
    c = np.asarray(noise.normal(jax.random.PRNGKey(7), (n,)), np.float64)
    assert abs(np.corrcoef(a, c)[0, 1]) < 5 / math.sqrt(n)


def test_vmap_over_keys_uses_every_key():
    keys = jax.random.split(jax.random.key(11), 3)
    batched = jax.vmap(lambda k: noise.normal(k, (64,)))(keys)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], noise.normal(keys[i], (64,)))
    assert not np.array_equal(batched[0], batched[1])


def test_shapes_and_dtypes():
    key = jax.random.key(0)
    assert noise.normal(key, (3, 5, 7)).shape == (3, 5, 7)
    assert noise.normal(key, (3, 5), jnp.bfloat16).dtype == jnp.bfloat16
    assert noise.normal(key, ()).shape == ()
    # the same key gives the same draw; a reshaped draw is the same numbers
    np.testing.assert_array_equal(
        noise.normal(key, (6, 4)).reshape(-1), noise.normal(key, (24,))
    )


def test_sample_currents_mean_and_std():
    """Per-element mean and std of the reads match the (mean, std) inputs.

    Over R reads the sample mean has standard error std/sqrt(R) and the sample
    variance var*sqrt(2/R); both checked at 5 standard errors per element,
    max over 8 elements (Bonferroni: still < 5e-6 false-failure chance).
    """
    mean = jnp.array([0.0, 1.0, -2.0, 3e-6, 5.0, -1e-3, 0.5, 7.0], jnp.float32)
    std = jnp.array([1.0, 0.1, 2.0, 1e-7, 0.0, 1e-4, 0.25, 3.0], jnp.float32)
    reads = 100_000
    keys = jax.random.split(jax.random.key(13), reads)
    draws = jax.jit(jax.vmap(lambda k: sample_currents((mean, std), k)))(keys)
    d = np.asarray(draws, np.float64)
    m, s = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    assert np.all(np.abs(d.mean(0) - m) <= 5 * s / math.sqrt(reads) + 1e-6 * np.abs(m))
    assert np.all(np.abs(d.var(0) - s**2) <= 5 * s**2 * math.sqrt(2 / reads))
    # one batched read: independent per element, same statistics
    big = jnp.full((reads,), 2.0), jnp.full((reads,), 0.5)
    one = np.asarray(sample_currents(big, jax.random.key(17)), np.float64)
    assert abs(one.mean() - 2.0) < 5 * 0.5 / math.sqrt(reads)
    assert abs(one.std() - 0.5) < 5 * 0.5 / math.sqrt(2 * reads)
    np.testing.assert_array_equal(sample_currents((mean, std), None), mean)
