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
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, UInt32

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x: Array, r: int) -> Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(
    k0: UInt32[Array, ""],
    k1: UInt32[Array, ""],
    x0: UInt32[Array, "*s"],
    x1: UInt32[Array, "*s"],
) -> tuple[UInt32[Array, "*s"], UInt32[Array, "*s"]]:
    """Threefry-2x32, 20 rounds (Salmon et al. 2011), unrolled for fusion.

    The same function as JAX's `threefry2x32_p`, whose CPU lowering is a
    5-step `fori_loop`; unrolled, XLA fuses it with what consumes the bits.
    """
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


# Minimax coefficients of sin and cos on [-pi/4, pi/4] for float32 (Cephes
# sinf/cosf): max error ~1 ulp there, measured in tests/test_noise.py.
_S1, _S2, _S3 = -1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4
_C1, _C2, _C3 = 4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5


def cos_turns(w: UInt32[Array, "*s"]) -> Float[Array, "*s"]:
    """`cos t` at `t = 2 pi w / 2^32`, without range reduction.

    The top two bits of `w + 2^29` give the quadrant `q`, the low 30 bits the
    offset `x` in [-pi/4, pi/4) from `q pi / 2`; `cos t` is `cos x`, `-sin x`,
    `-cos x` or `sin x`. `sin t` is `cos_turns(w - 2^30)`.
    """
    w = w + np.uint32(1 << 29)
    q = w >> np.uint32(30)
    r = (w & np.uint32((1 << 30) - 1)).astype(jnp.int32) - np.int32(1 << 29)
    x = r.astype(jnp.float32) * np.float32(math.pi / 2**31)
    z = x * x
    s = x + x * z * (_S1 + z * (_S2 + z * _S3))
    c = 1.0 - 0.5 * z + z * z * (_C1 + z * (_C2 + z * _C3))
    v = jnp.where((q & np.uint32(1)) == 1, s, c)
    return jnp.where((q == 1) | (q == 2), -v, v)


def radius(w: UInt32[Array, "*s"]) -> Float[Array, "*s"]:
    """`sqrt(-2 ln U)` with `U = (w + 1/2) / 2^32` in (0, 1]: the Rayleigh radius."""
    u = w.astype(jnp.float32) * np.float32(2.0**-32) + np.float32(2.0**-33)
    return jnp.sqrt(jnp.maximum(-2.0 * jnp.log(u), 0.0))


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
