"""One pulse update and one noisy read of 10^6 cells per device family, as a
time ratio to a plain `jnp` elementwise expression of the same size.

The baselines are the least a noisy elementwise operation costs: one normal
draw and a few arithmetic ops per cell (`clip(g + dg n + s xi)` for an
update, `g + s g xi` for a read). Each candidate and its baseline are jitted
and timed interleaved in the same process (these machines are shared). Prints
one JSON object per measurement.

    python benchmarks/device_models.py           # 10^6 cells
    python benchmarks/device_models.py --quick   # 10^4 cells, seconds
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
from timing import best_times

import devices

# Independent normal draws per cell in one pulse update (the baseline draws
# one): every write redraws the written cells' slow read deviation besides
# the C2C noise, and PCM also the drift exponent.
NORMALS_PER_UPDATE = {"RRAM": 2, "PCM": 3, "Perovskite": 2, "Ionic": 2}
# Threefry hashes per cell that produce them: the writes draw from
# devices.rng, two independent Box-Muller normals per unrolled hash (the
# baseline's jax.random.normal hashes once per normal, not fused).
HASHES_PER_UPDATE = {"RRAM": 1, "PCM": 2, "Perovskite": 1, "Ionic": 1}

FAMILIES = {
    "RRAM": lambda: devices.RRAM.from_card("rram_ag_asi_jo2010"),
    "PCM": lambda: devices.PCM.from_card("pcm_joshi2020"),
    "Perovskite": lambda: devices.Perovskite.from_card("perovskite_mapbi3_poddar"),
    "Ionic": lambda: devices.IonicSynapse.from_card("ionic_ecram_tang2018"),
}


@jax.jit
def baseline_update(g, pulses, key):
    xi = jax.random.normal(key, g.shape, jnp.float32)
    return jnp.clip(g + 1e-7 * pulses + 1e-8 * xi, 1e-6, 1e-4)


@jax.jit
def baseline_read(g, key):
    return g + 0.03 * g * jax.random.normal(key, g.shape, jnp.float32)


@jax.jit
def update(device, state, pulses, key):
    return device.update(state, pulses, key=key)


@jax.jit
def read(device, state, key):
    return device.read(state, 3600.0, key=key)


# A pulse train of TRAIN writes in one lax.scan, as training and STDP loops
# apply them: the state is carried, so the fields a write leaves unchanged
# (device-to-device draws, per-cell windows) are not copied. A standalone
# jitted `update` must return every field in fresh buffers, which for a
# state of k per-cell arrays costs k copies that no loop pays.
TRAIN = 10


@jax.jit
def baseline_train(g, pulses, key):
    def body(g, k):
        return baseline_update(g, pulses, k), None

    return jax.lax.scan(body, g, jax.random.split(key, TRAIN))[0]


@jax.jit
def update_train(device, state, pulses, key):
    def body(s, k):
        return device.update(s, pulses, key=k), None

    return jax.lax.scan(body, state, jax.random.split(key, TRAIN))[0].g


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 10_000 if args.quick else 1_000_000
    repeats = 3 if args.quick else 30
    k_init, k_prog, k_p, k_run = jax.random.split(jax.random.key(0), 4)
    pulses = jnp.round(jax.random.uniform(k_p, (n,), minval=-5.0, maxval=5.0))
    rows = []
    for name, make in FAMILIES.items():
        dev = make()
        st = dev.init((n,), key=k_init)
        st = dev.program(
            st, jnp.full((n,), 0.5 * (dev.g_min + dev.g_max)), key=k_prog
        )
        g = st.g
        t_bu, t_up, t_br, t_rd, t_bt, t_ut = best_times(
            [
                (baseline_update, (g, pulses, k_run)),
                (update, (dev, st, pulses, k_run)),
                (baseline_read, (g, k_run)),
                (read, (dev, st, k_run)),
                (baseline_train, (g, pulses, k_run)),
                (update_train, (dev, st, pulses, k_run)),
            ],
            repeats,
        )
        for op, t, tb, base in (
            ("update", t_up, t_bu, "clip(g + dg n + s xi)"),
            ("read", t_rd, t_br, "g + s g xi"),
            (f"update_train{TRAIN}", t_ut, t_bt,
             f"clip(g + dg n + s xi), {TRAIN} writes in a lax.scan"),
        ):
            rows.append({
                "name": f"{name}_{op}_{n}_cells",
                "value": t * 1e3,
                "unit": "ms",
                "baseline": tb * 1e3,
                "baseline_name": base,
                "ratio": t / tb,
                "target": 2.0,
                "normals_per_cell": NORMALS_PER_UPDATE[name] if op != "read" else 1,
                "hashes_per_cell": HASHES_PER_UPDATE[name] if op != "read" else 1,
                "state_arrays": sum(
                    getattr(v, "shape", ()) == (n,) for v in jax.tree.leaves(st)
                ),
                "backend": jax.default_backend(),
            })
    for r in rows:
        print(json.dumps(r))
    return rows


if __name__ == "__main__":
    main()
