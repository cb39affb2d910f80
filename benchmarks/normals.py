"""Standard normal generators for the read noise vs `jax.random.normal` (threefry).

Every candidate and the baseline are jitted and timed interleaved in one
process (`timing.best_times`), at 1M and 4M float32 draws, and once more as
the noisy read `mean + std * z` that `sample_currents` computes (there the
draw can fuse with its consumer). Prints one JSON object per measurement;
`ratio` is candidate / baseline time (below 1 is faster).

    python benchmarks/normals.py           # 1M and 4M draws
    python benchmarks/normals.py --quick   # 64K draws, seconds

Candidates (`support` is the largest |z| the generator can return):

* `threefry_normal`: `jax.random.normal` with a threefry key, the baseline.
  With `jax_threefry_partitionable` it hashes one counter pair per output word;
  the CPU lowering of the hash is a rolled loop; 23-bit uniform, `erfinv`.
* `rbg_normal`, `unsafe_rbg_normal`: the same call with `impl="rbg"` /
  `"unsafe_rbg"` keys (XLA `RngBitGenerator`, Philox on CPU).
* `xla_threefry_bm`: `lax.rng_bit_generator(RNG_THREE_FRY)` bits + the
  Box-Muller transform of `xbar.circuits.noise`; rejected anyway: the batching
  rule of `rng_bit_generator` draws a vmapped batch from the first key only,
  and it does not fuse with the transform.
* `unrolled_threefry_erfinv`: the unrolled hash, both words kept, each word
  a 23-bit uniform through `erfinv` as `jax.random.normal` does.
* `unrolled_threefry_16bit_erfinv`: one word split into two 16-bit uniforms;
  rejected: the tail stops at 4.4 sigma (P(|Z| > 4.4) = 1.1e-5 is lost).
* `unrolled_threefry_bm_pair`: the unrolled hash, one Box-Muller pair
  `(R cos t, R sin t)` per hash, joined by a concatenate: half the hashing,
  but XLA:CPU fuses the concatenate into a slow scalar loop.
* `xbar_noise_normal`: `xbar.circuits.noise.normal`, the unrolled hash per
  element, one Box-Muller draw `R cos t` from its two words (the chosen
  generator; elementwise, so it fuses with its consumer).
"""

from __future__ import annotations

import argparse
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import ndtri
from timing import best_times

from xbar.circuits import noise

_SQRT2 = np.float32(math.sqrt(2.0))
_LO = np.nextafter(np.float32(-1.0), np.float32(0.0))


def _erfinv_normal(w, bits=23):
    """`jax.random.normal`'s transform of uint32 words: uniform in (-1, 1), erfinv."""
    f = jax.lax.bitcast_convert_type(
        (w >> np.uint32(32 - bits)) << np.uint32(23 - bits) | np.uint32(0x3F800000),
        jnp.float32,
    )
    return _SQRT2 * jax.lax.erf_inv(jnp.maximum(_LO, 2.0 * (f - 1.0) - 1.0))


def _words(key, m):
    k0, k1 = noise.stream_key(key)
    return noise.threefry2x32(
        k0, k1, jax.lax.iota(jnp.uint32, m), jnp.zeros((m,), jnp.uint32)
    )


def unrolled_threefry_erfinv(key, n):
    w0, w1 = _words(key, (n + 1) // 2)
    return jnp.concatenate([_erfinv_normal(w0), _erfinv_normal(w1)])[:n]


def unrolled_threefry_16bit_erfinv(key, n):
    w0, w1 = _words(key, (n + 3) // 4)
    parts = [
        _erfinv_normal(w << np.uint32(s), bits=16) for w in (w0, w1) for s in (0, 16)
    ]
    return jnp.concatenate(parts)[:n]


def xla_threefry_bm(key, n):
    k0, k1 = noise.stream_key(key)
    state = jnp.stack([k0, k1, jnp.uint32(0), jnp.uint32(0)])
    _, w = jax.lax.rng_bit_generator(
        state, (2, n), jnp.uint32, algorithm=jax.lax.RandomAlgorithm.RNG_THREE_FRY
    )
    return noise.radius(w[0]) * noise.cos_turns(w[1])


def unrolled_threefry_bm_pair(key, n):
    w0, w1 = _words(key, (n + 1) // 2)
    r = noise.radius(w0)
    return jnp.concatenate(
        [r * noise.cos_turns(w1), r * noise.cos_turns(w1 - (1 << 30))]
    )[:n]


def _rbg(key, impl):
    return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl=impl)


CANDIDATES = {
    "threefry_normal": lambda key, n: jax.random.normal(key, (n,)),
    "rbg_normal": lambda key, n: jax.random.normal(_rbg(key, "rbg"), (n,)),
    "unsafe_rbg_normal": lambda key, n: jax.random.normal(
        _rbg(key, "unsafe_rbg"), (n,)
    ),
    "xla_threefry_bm": xla_threefry_bm,
    "unrolled_threefry_erfinv": unrolled_threefry_erfinv,
    "unrolled_threefry_16bit_erfinv": unrolled_threefry_16bit_erfinv,
    "unrolled_threefry_bm_pair": unrolled_threefry_bm_pair,
    "xbar_noise_normal": lambda key, n: noise.normal(key, (n,)),
}
SUPPORT = {  # largest |z| each can return (upper tail of the uniform grid)
    "threefry_normal": float(-ndtri(2.0**-23)),
    "rbg_normal": float(-ndtri(2.0**-23)),
    "unsafe_rbg_normal": float(-ndtri(2.0**-23)),
    "xla_threefry_bm": math.sqrt(2 * 33 * math.log(2)),
    "unrolled_threefry_erfinv": float(-ndtri(2.0**-23)),
    "unrolled_threefry_16bit_erfinv": float(-ndtri(2.0**-16)),
    "unrolled_threefry_bm_pair": math.sqrt(2 * 33 * math.log(2)),
    "xbar_noise_normal": math.sqrt(2 * 33 * math.log(2)),
}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    sizes = [1 << 16] if args.quick else [1 << 20, 1 << 22]
    repeats = args.repeats or (5 if args.quick else 20)
    key = jax.random.key(0)
    rows = []
    for n in sizes:
        calls = [(jax.jit(f, static_argnums=1), (key, n)) for f in CANDIDATES.values()]
        # the noisy read of sample_currents: mean + std * z, fused where it can be
        mean = jnp.linspace(-1.0, 1.0, n, dtype=jnp.float32)
        std = jnp.linspace(0.0, 0.1, n, dtype=jnp.float32)
        read = {
            "read_threefry_normal": lambda key, m, s: (
                m + s * jax.random.normal(key, m.shape)
            ),
            "read_xbar_noise_normal": lambda key, m, s: (
                m + s * noise.normal(key, m.shape)
            ),
        }
        calls += [(jax.jit(f), (key, mean, std)) for f in read.values()]
        names = list(CANDIDATES) + list(read)
        times = best_times(calls, repeats=repeats)
        base = {"read": times[names.index("read_threefry_normal")], "": times[0]}
        for name, t in zip(names, times):
            b = base["read" if name.startswith("read_") else ""]
            row = {
                "name": f"{name}_{n}",
                "value": t * 1e3,
                "unit": "ms",
                "baseline": b * 1e3,
                "baseline_name": "read_threefry_normal"
                if name.startswith("read_")
                else "threefry_normal",
                "ratio": t / b,
                "n": n,
                "backend": jax.default_backend(),
            }
            if name in SUPPORT:
                row["support_sigma"] = round(SUPPORT[name], 2)
            rows.append(row)
            print(json.dumps(row))
    return rows


if __name__ == "__main__":
    main()
