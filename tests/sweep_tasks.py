"""Small sweep functions shared by the sweep tests and their subprocesses."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

import devices
import xbar

N_CELLS = 16


def cells(device, key):
    """Program 16 cells to evenly spaced targets and read them once: the
    relative RMS read error and the mean conductance."""
    k_init, k_prog, k_read = jax.random.split(key, 3)
    span = device.g_max - device.g_min
    targets = device.g_min + span * jnp.linspace(0.0, 1.0, N_CELLS)
    state = device.program(device.init((N_CELLS,), key=k_init), targets, key=k_prog)
    g = device.read(state, key=k_read)
    return {
        "rel_rms": jnp.sqrt(jnp.mean((g - targets) ** 2)) / span,
        "g_mean": jnp.mean(g),
    }


def base_device():
    return devices.RRAM.from_card(sigma_read=0.02, sigma_c2c=0.0)


class Tile(eqx.Module):
    """A uniform 8 x 8 tile behind wires: what the solver test sweeps."""

    g_s: Float[Array, ""]
    wires: xbar.Wires


def solve(tile, key):
    """One exact solve with a small CG budget: high wire resistance does not
    converge in 4 steps (result code max_steps_reached)."""
    g = jnp.broadcast_to(tile.g_s, (8, 8))
    v = jnp.full((8,), 0.2, jnp.float32)
    sol = xbar.solve_crossbar(g, v, tile.wires, max_steps=4, throw=False)
    return {"i_total": jnp.sum(sol.i_col), "result": sol.result}


def scale_spec(n_sigma: int = 6, n_repeats: int = 4):
    """The sweep the subprocess tests run (kill and resume, sharding, Ray)."""
    from xbar.sweeps import Grid, LatinHypercube, SweepSpec

    return SweepSpec(
        base_device(),
        axes=(
            Grid(sigma_read=list(jnp.linspace(0.0, 0.1, n_sigma).tolist())),
            LatinHypercube(2, 3, sigma_prog=(0.0, 0.1)),
        ),
        n_repeats=n_repeats,
        seed=5,
    )


def cells_task(sigma_read: float = 0.02):
    """The `cells` sweep as a task, for TOML configs in the CLI tests."""
    from xbar.sweeps.task import Task

    return Task(base=devices.RRAM.from_card(sigma_read=sigma_read, sigma_c2c=0.0),
                fn=cells, meta={"sigma_read_base": sigma_read})
