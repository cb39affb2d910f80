"""Standard normal draws for the device write paths: exact, and cheap on CPU.

A pulse write needs two or three independent normals per cell (the
cycle-to-cycle noise of the step, the written cell's new slow read deviation,
PCM's new drift exponent). `jax.random.normal` pays for each with a Threefry
hash whose CPU lowering is a rolled loop that does not fuse with its
consumer, plus an `erfinv`. Here one unrolled, elementwise Threefry-2x32 hash
per cell gives two 32-bit words, and the Box-Muller transform turns them into
*two independent* standard normals `(R cos t, R sin t)`, which a write
consumes elementwise in the same fused loop (no concatenate).

The hash, radius and cosine are the same functions as in
`xbar.circuits.noise` (the read-noise generator; checked bitwise equal in the
tests): Threefry-2x32 with 20 rounds (bit-identical to JAX's
`threefry2x32_p`), `R = sqrt(-2 ln U)` with `U = (w0 + 1/2) / 2^32`, and
`cos t`, `sin t` at `t = 2 pi w1 / 2^32` by quadrant and a float32 minimax
polynomial. Box-Muller is exact given exact uniforms; both are 32-bit here,
so the support reaches 6.8 sigma (`jax.random.normal`'s 23-bit uniform stops
at about 5.3).

Streams: the caller's key (any `jax.random` key) is hashed by
`jax.random.bits` into the 64-bit Threefry key of the draw; element `i` uses
counter `(i, 0)`. Everything is elementwise in the key, so `jax.vmap` over
keys is correct.
"""

from __future__ import annotations

import functools
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
    """Threefry-2x32, 20 rounds (Salmon et al. 2011), unrolled for fusion."""
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
# sinf/cosf), as in xbar.circuits.noise.
_S1, _S2, _S3 = -1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4
_C1, _C2, _C3 = 4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5


def cos_turns(w: UInt32[Array, "*s"]) -> Float[Array, "*s"]:
    """`cos t` at `t = 2 pi w / 2^32`; `sin t` is `cos_turns(w - 2^30)`."""
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


def _words(key: PRNGKeyArray, shape: tuple[int, ...]):
    shape = tuple(shape)
    n = math.prod(shape)
    if n > 2**32:
        raise ValueError(f"normal_pair: {n} draws exceed the 2^32 counters of one key")
    k = jax.random.bits(key, (2,), jnp.uint32)
    i = jax.lax.iota(jnp.uint32, n).reshape(shape)
    return threefry2x32(k[0], k[1], i, jnp.zeros(shape, jnp.uint32))


# Compiled (the shape static), so an eager caller runs the unrolled hash as
# one program instead of ~100 dispatched ops; inlined when traced inside jit.
@functools.partial(jax.jit, static_argnames="shape")
def normal_pair(
    key: PRNGKeyArray, shape: tuple[int, ...]
) -> tuple[Float[Array, "*s"], Float[Array, "*s"]]:
    """Two independent float32 N(0, 1) arrays of `shape` from one hash per
    element (`R cos t`, `R sin t`)."""
    w0, w1 = _words(key, shape)
    r = radius(w0)
    return r * cos_turns(w1), r * cos_turns(w1 - np.uint32(1 << 30))


@functools.partial(jax.jit, static_argnames="shape")
def normal(key: PRNGKeyArray, shape: tuple[int, ...]) -> Float[Array, "*s"]:
    """One float32 N(0, 1) array of `shape` (`R cos t`; the same values as
    `xbar.circuits.noise.normal` for the same key)."""
    w0, w1 = _words(key, shape)
    return radius(w0) * cos_turns(w1)
