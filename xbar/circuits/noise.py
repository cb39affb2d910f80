"""Standard normal draws for the per-read noise, cheap on CPU and exact in distribution.

`jax.random.normal` with the default threefry key costs on CPU ~3x what the
draw needs: the CPU lowering of its hash is a rolled 5-step loop that XLA can
neither vectorize across rounds nor fuse with the `erfinv` transform or with
its consumer, so the bits go through memory several times. `normal` below
uses the same hash, Threefry-2x32 with 20 rounds (`threefry2x32`,
bit-identical to JAX's `threefry2x32_p`, checked in the tests), unrolled and
purely elementwise, so that hash, transform and consumer (`mean + std * z`)
fuse into one vectorized loop. Element `i` of the draw hashes counter `(i, 0)`
into two 32-bit words and makes one exact Box-Muller draw from them:

* word 0 -> `U = (w0 + 1/2) / 2^32` in (0, 1] -> radius `R = sqrt(-2 ln U)`;
* word 1 -> angle `t = 2 pi w1 / 2^32` -> `cos t` by quadrant from the top
  bits and a float32 minimax polynomial on [-pi/4, pi/4];
* `z = R cos t` ~ N(0, 1).

Box-Muller is exact given exact uniforms. Here both uniforms are 32-bit (the
radius word is converted with round-to-nearest, which maps the uniform measure
exactly onto float32 values), so the CDF error is at the float32 rounding
level (~1e-7) everywhere, and the support reaches `sqrt(2 * 33 ln 2) = 6.8`
sigma, wider than `jax.random.normal`'s 23-bit uniform, which stops at 5.3
sigma above and 5.4 below. Keeping the `sin t` partner as well would halve the
hashing but needs a concatenate, which XLA:CPU fuses into a scalar loop that
is 10x slower than the hash it saves (measured, benchmarks/normals.py).

Streams: the caller's key (any `jax.random` key, typed or raw) is hashed by
`jax.random.bits` into the 64-bit Threefry key of this draw; distinct elements
use distinct counters, and different keys give independent streams.
Everything is elementwise in the key, so `jax.vmap` over keys is correct
(unlike `lax.rng_bit_generator`, whose batching rule draws a vmapped batch
from the first key only).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray, UInt32

# The hash, radius and cosine are shared with the device write paths, which
# draw from the same generator (`devices.rng`; devices may not import xbar).
from devices.rng import cos_turns, radius, threefry2x32  # noqa: F401 (re-exported)


def stream_key(key: PRNGKeyArray) -> tuple[UInt32[Array, ""], UInt32[Array, ""]]:
    """The 64-bit Threefry key of one draw, hashed from any `jax.random` key."""
    k = jax.random.bits(key, (2,), jnp.uint32)
    return k[0], k[1]


def normal(key: PRNGKeyArray, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
    """Independent N(0, 1) draws of `shape`; a drop-in for `jax.random.normal`.

    float32 and narrower are drawn in float32 (module docstring); float64
    falls back to `jax.random.normal`, whose 53-bit path this does not match.
    """
    dtype = jnp.dtype(dtype)
    if jnp.finfo(dtype).bits > 32:
        return jax.random.normal(key, shape, dtype)
    shape = tuple(shape)
    n = math.prod(shape)
    if n > 2**32:
        raise ValueError(f"normal: {n} draws exceed the 2^32 counters of one key")
    k0, k1 = stream_key(key)
    i = jax.lax.iota(jnp.uint32, n).reshape(shape)
    w0, w1 = threefry2x32(k0, k1, i, jnp.zeros(shape, jnp.uint32))
    return (radius(w0) * cos_turns(w1)).astype(dtype)
