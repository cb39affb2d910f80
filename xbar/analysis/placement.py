"""Placing a whole network onto a chip: tiles -> cores -> chip, with a report."""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import numpy as np

from xbar.mapping.schemes import Mapping
from xbar.mapping.tiling import check_tile_shape, grid_shape
from xbar.nn.layer import AbstractAnalogLayer


@dataclasses.dataclass(frozen=True)
class Chip:
    """A chip of `cores` cores of `tiles_per_core` tiles of `tile_rows x tile_cols`
    cells (a cell is one device; a differential pair uses two tiles' worth of
    devices: G+ and G- arrays are counted as cells of the same tile)."""

    tile_rows: int = 256
    tile_cols: int = 256
    tiles_per_core: int = 8
    cores: int = 16

    def __post_init__(self):
        check_tile_shape(self.tile_rows, self.tile_cols)
        for name in ("tiles_per_core", "cores"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {name}={v!r}")

    @property
    def tiles(self) -> int:
        return self.tiles_per_core * self.cores


@dataclasses.dataclass(frozen=True)
class LayerPlacement:
    name: str
    shape: tuple[int, int]  # (in, out) of the matrix on the tiles
    grid: tuple[int, int]  # tiles (rows, cols)
    tiles: int
    first_tile: int  # global tile index of the first tile
    cores: tuple[int, ...]
    devices: int  # devices holding this layer's weights (incl. reference columns)
    devices_per_weight: float
    utilization: float  # weight cells / cells of its tiles


@dataclasses.dataclass(frozen=True)
class Placement:
    chip: Chip
    layers: tuple[LayerPlacement, ...]

    @property
    def tiles_used(self) -> int:
        return sum(p.tiles for p in self.layers)

    @property
    def cores_used(self) -> int:
        return len({c for p in self.layers for c in p.cores})

    @property
    def utilization(self) -> float:
        """Weight-holding cells over all cells of the used tiles."""
        cells = self.chip.tile_rows * self.chip.tile_cols
        used = sum(p.utilization * p.tiles * cells for p in self.layers)
        return used / (self.tiles_used * cells)

    def report(self, costs: list[dict] | None = None) -> str:
        """The placement as text; with `costs` (one dict per layer, as
        `network_counts` or `shape_counts` give, in layer order) each layer
        also gets its energy per inference, latency and area, and the total
        line the chip's energy, TOPS/W and area with their parts (cells,
        converters, drivers, accumulation, buffers, interconnect, control)."""
        text = self._report()
        if costs is None:
            return text
        if len(costs) != len(self.layers):
            raise ValueError(
                f"costs must hold one dict per placed layer ({len(self.layers)}); "
                f"got {len(costs)}"
            )
        lines = [
            text,
            f"{'layer':<12}{'energy/inf':>12}{'latency':>11}{'area':>11}"
            f"{'TOPS/W':>9}{'ADC conv':>11}",
        ]
        for p, c in zip(self.layers, costs):
            lines.append(
                f"{p.name:<12}{c['energy_total_J'] * 1e9:>9.3g} nJ"
                f"{c['latency_s'] * 1e6:>8.3g} us{c['area_total_m2'] * 1e6:>7.3g} mm2"
                f"{c['tops_per_w']:>9.1f}{c['adc_conversions']:>11.4g}"
            )
        e = {k: sum(c["energy_J"][k] for c in costs) for k in costs[0]["energy_J"]}
        a = {k: sum(c["area_m2"][k] for c in costs) for k in costs[0]["area_m2"]}
        total = sum(e.values())
        ops = sum(c["ops"] for c in costs)
        lines.append(
            f"chip: {total * 1e9:.4g} nJ per inference, "
            f"{ops / total / 1e12:.1f} TOPS/W,"
            f" {sum(c['latency_s'] for c in costs) * 1e6:.4g} us (layers in series),"
            f" {sum(a.values()) * 1e6:.4g} mm2"
        )
        lines.append(
            "energy: " + ", ".join(f"{k} {v / total:.1%}" for k, v in e.items())
        )
        lines.append(
            "area: " + ", ".join(f"{k} {v * 1e6:.3g} mm2" for k, v in a.items())
        )
        return "\n".join(lines)

    def _report(self) -> str:
        c = self.chip
        lines = [
            f"chip: {c.cores} cores x {c.tiles_per_core} tiles of "
            f"{c.tile_rows}x{c.tile_cols} = {c.tiles} tiles",
            f"{'layer':<12}{'in x out':>12}{'grid':>8}{'tiles':>7}{'cores':>10}"
            f"{'dev/weight':>12}{'util':>7}",
        ]
        for p in self.layers:
            lo, hi = min(p.cores), max(p.cores)
            cores = f"{lo}-{hi}" if hi > lo else str(lo)
            lines.append(
                f"{p.name:<12}{p.shape[0]:>5} x {p.shape[1]:<5}"
                f"{p.grid[0]:>3}x{p.grid[1]:<4}{p.tiles:>7}{cores:>10}"
                f"{p.devices_per_weight:>12.2f}{p.utilization:>7.1%}"
            )
        lines.append(
            f"total: {self.tiles_used}/{c.tiles} tiles "
            f"({self.tiles_used / c.tiles:.1%}),"
            f" {self.cores_used}/{c.cores} cores, cell utilization "
            f"{self.utilization:.1%}"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "chip": dataclasses.asdict(self.chip),
            "layers": [dataclasses.asdict(p) for p in self.layers],
            "tiles_used": self.tiles_used,
            "cores_used": self.cores_used,
            "utilization": self.utilization,
        }


def layer_matrices(model) -> list[tuple[str, tuple[int, int]]]:
    """`(name, (in, out))` of every weight matrix: eqx.nn.Linear / Conv (im2col:
    in = C kh kw), analog layers (so a mapped `AnalogNetwork` or a converted
    model places too), or arrays `(out, in)` /
    `(out, in, kh, kw)` in a list."""
    if isinstance(model, list | tuple) and all(
        hasattr(w, "shape") or isinstance(w, tuple) for w in model
    ):  # arrays, or (weight, bias) pairs as MLP.params() gives
        leaves = [
            ("", tuple(np.shape(w[0] if isinstance(w, tuple) else w))) for w in model
        ]
    else:
        kinds = eqx.nn.Linear | eqx.nn.Conv | AbstractAnalogLayer
        is_layer = lambda x: isinstance(x, kinds)  # noqa: E731
        flat = jax.tree_util.tree_flatten_with_path(model, is_leaf=is_layer)[0]
        leaves = []
        for path, leaf in flat:
            if isinstance(leaf, AbstractAnalogLayer):
                shape = (leaf.out_features, leaf.in_features)
            elif is_layer(leaf):
                shape = tuple(np.shape(leaf.weight))
            else:
                continue
            leaves.append((jax.tree_util.keystr(path), shape))
    out = []
    for i, (name, shape) in enumerate(leaves):
        if len(shape) < 2:
            raise ValueError(
                f"layer {i} weight must be >= 2-D (out, in, ...); got {shape}"
            )
        out.append((name or f"layer{i}", (int(np.prod(shape[1:])), int(shape[0]))))
    if not out:
        raise ValueError("model holds no Linear/Conv weights to place")
    return out


def place(
    model,
    chip: Chip = Chip(),
    *,
    mapping: Mapping | None = None,
) -> Placement:
    """Place every layer on whole tiles, layers in order, filling cores in order.

    `mapping` says how weights occupy a tile (cell scheme, bit slices); its
    tile size must be the chip's (default: `Mapping` of the chip's tile size).
    A layer never shares a tile with another (each tile has its own periphery
    configuration); it may span cores. Raises ValueError when the chip is too
    small, naming the layer and the tiles needed.
    """
    if mapping is None:
        mapping = Mapping(tile_rows=chip.tile_rows, tile_cols=chip.tile_cols)
    if (mapping.tile_rows, mapping.tile_cols) != (chip.tile_rows, chip.tile_cols):
        raise ValueError(
            f"mapping tile size {(mapping.tile_rows, mapping.tile_cols)} must "
            "equal the "
            f"chip's {(chip.tile_rows, chip.tile_cols)}"
        )
    m = mapping.groups_per_tile
    n_slices = mapping.n_slices
    pair = mapping.cells.devices_per_cell
    placed, next_tile = [], 0
    for name, (n_in, n_out) in layer_matrices(model):
        tr, tc = grid_shape(n_in, n_out, chip.tile_rows, m)
        tiles = tr * tc
        if next_tile + tiles > chip.tiles:
            raise ValueError(
                f"chip too small: layer {name} ({n_in} x {n_out}) needs {tiles} tiles "
                f"from tile {next_tile}; the chip has {chip.tiles} "
                f"({chip.cores} cores x {chip.tiles_per_core}); raise cores or "
                "tile size"
            )
        cores = tuple(
            range(
                next_tile // chip.tiles_per_core,
                (next_tile + tiles - 1) // chip.tiles_per_core + 1,
            )
        )
        ref_cols = tiles * mapping.cells.reference_columns
        weight_devices = n_in * n_out * n_slices * pair
        devices = weight_devices + ref_cols * chip.tile_rows
        cells = tiles * chip.tile_rows * chip.tile_cols * pair
        placed.append(
            LayerPlacement(
                name=name,
                shape=(n_in, n_out),
                grid=(tr, tc),
                tiles=tiles,
                first_tile=next_tile,
                cores=cores,
                devices=devices,
                devices_per_weight=devices / (n_in * n_out),
                utilization=weight_devices / cells,
            )
        )
        next_tile += tiles
    return Placement(chip, tuple(placed))


def tiles_needed(n_in: int, n_out: int, chip: Chip, n_slices: int = 1) -> int:
    """Tiles for one `(in, out)` matrix with `n_slices` columns per weight."""
    m = chip.tile_cols // n_slices
    return math.ceil(n_in / chip.tile_rows) * math.ceil(n_out / m)
