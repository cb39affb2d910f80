"""Declarative sweeps: a base configuration plus axes over its array fields.

A sweep is a base configuration (any pytree of equinox modules, tuples,
dicts and arrays) and a list of *axes*. Each axis is a small table of values
for one or more fields, named by a path such as `"device.sigma_read"` or
`"layers[0].adc.i_max"`:

- `Grid(t_read_s=[1, 10, 100])`: one column per field; several fields in one
  `Grid` form their Cartesian product;
- `Zip(a=[...], b=[...])`: the fields vary together (equal lengths);
- `Random(n, seed, a=(lo, hi), ...)` and `LatinHypercube(n, seed, ...)`:
  `n` draws inside bounds, uniform or log-uniform (`log=("a",)`).

The points of the sweep are the Cartesian product of the axes (the first axis
varies slowest), and every point runs `n_repeats` times with its own key.
`rows()` is that design as concrete NumPy columns, and `validate()` builds
every point on the host and runs the construction checks of every module in
it, so a negative sigma or a negative time is a `ValueError` naming the point
and the field before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

# A path step: an attribute name, then any number of [index] or ['key'] parts.
_STEP = re.compile(r"^([A-Za-z_]\w*)((?:\[[^\]]+\])*)$")


def _parse(path: str) -> list[tuple[str, Any]]:
    """`"a.b[0]['k']"` -> [("attr", "a"), ("attr", "b"), ("item", 0), ("item", "k")]."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"a field path must be a non-empty string; got {path!r}")
    steps: list[tuple[str, Any]] = []
    for part in path.split("."):
        m = _STEP.match(part)
        if m is None:
            raise ValueError(f"cannot parse field path {path!r} at {part!r}")
        steps.append(("attr", m.group(1)))
        for idx in re.findall(r"\[([^\]]+)\]", m.group(2)):
            idx = idx.strip()
            if idx[:1] in "'\"":
                steps.append(("item", idx[1:-1]))
            else:
                steps.append(("item", int(idx)))
    return steps


def _get(tree, steps, path: str):
    node = tree
    for i, (kind, name) in enumerate(steps):
        where = path if i == len(steps) - 1 else f"{name!r} in {path!r}"
        if kind == "attr":
            if isinstance(node, Mapping) and name in node:
                node = node[name]
            elif dataclasses.is_dataclass(node) and name in {
                f.name for f in dataclasses.fields(node)
            }:
                node = getattr(node, name)
            else:
                have = (
                    sorted(node) if isinstance(node, Mapping)
                    else [f.name for f in dataclasses.fields(node)]
                    if dataclasses.is_dataclass(node) else []
                )
                raise ValueError(
                    f"unknown field {where}: {type(node).__name__} has no field "
                    f"{name!r} (fields: {', '.join(map(str, have)) or 'none'})"
                )
        else:
            try:
                node = node[name]
            except (KeyError, IndexError, TypeError):
                raise ValueError(
                    f"unknown field {where}: no item [{name!r}] in "
                    f"{type(node).__name__}"
                ) from None
    return node


def field_getter(paths: Sequence[str]):
    """`tree -> [leaf at each path]`, for `eqx.tree_at`."""
    parsed = [_parse(p) for p in paths]

    def get(tree):
        return [_get(tree, s, p) for s, p in zip(parsed, paths)]

    return get


def replace_fields(base, paths: Sequence[str], values: Sequence) -> Any:
    """`base` with the array leaf at each path replaced (shape and dtype kept:
    a scalar value is broadcast to the leaf's shape)."""
    if not paths:
        return base
    leaves = field_getter(paths)(base)
    new = [
        jnp.broadcast_to(jnp.asarray(v, leaf.dtype), leaf.shape)
        for v, leaf in zip(values, leaves)
    ]
    return eqx.tree_at(field_getter(paths), base, new)


class _Axis:
    """A table of values for one or more fields (columns of equal length)."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def to_dict(self) -> dict:
        raise NotImplementedError


def _column(name: str, values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(
            f"axis field {name!r} must be a 1-D list of numbers; got shape {v.shape}"
        )
    if v.size == 0:
        raise ValueError(f"axis field {name!r} is empty; an axis needs >= 1 value")
    return v


def _check_fields(kind: str, fields: Mapping) -> None:
    if not fields:
        raise ValueError(f"a {kind} axis needs at least one field; got none")


class Grid(_Axis):
    """Every combination of the listed values (one field: its values)."""

    def __init__(self, **fields):
        _check_fields("Grid", fields)
        cols = {k: _column(k, v) for k, v in fields.items()}
        mesh = list(itertools.product(*(range(len(c)) for c in cols.values())))
        self.columns = {
            k: c[np.array([m[i] for m in mesh], dtype=np.int64)]
            for i, (k, c) in enumerate(cols.items())
        }
        self._fields = {k: c.tolist() for k, c in cols.items()}

    def to_dict(self) -> dict:
        return {"kind": "grid", "fields": self._fields}


class Zip(_Axis):
    """The fields vary together: point i takes the i-th value of each."""

    def __init__(self, **fields):
        _check_fields("Zip", fields)
        cols = {k: _column(k, v) for k, v in fields.items()}
        lengths = {k: len(c) for k, c in cols.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(
                "the fields of a Zip axis must have equal lengths; got "
                + ", ".join(f"{k}: {n}" for k, n in lengths.items())
            )
        self.columns = cols

    def to_dict(self) -> dict:
        fields = {k: c.tolist() for k, c in self.columns.items()}
        return {"kind": "zip", "fields": fields}


def _bounds(name: str, b, log: bool) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in b)
    except (TypeError, ValueError):
        raise ValueError(
            f"random axis field {name!r} needs bounds (lo, hi); got {b!r}"
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(
            f"random axis field {name!r} needs finite bounds lo <= hi; got ({lo}, {hi})"
        )
    if log and lo <= 0:
        raise ValueError(f"log-uniform field {name!r} needs lo > 0; got ({lo}, {hi})")
    return lo, hi


class Random(_Axis):
    """`n` independent uniform draws inside the bounds (log-uniform for the
    fields listed in `log`), from a NumPy generator seeded with `seed`."""

    _kind = "random"

    def __init__(self, n: int, seed: int = 0, log: Sequence[str] = (), **bounds):
        _check_fields(type(self).__name__, bounds)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1 (points); got n={n!r}")
        unknown = set(log) - set(bounds)
        if unknown:
            raise ValueError(f"log names fields that have no bounds: {sorted(unknown)}")
        self.n, self.seed, self.log = n, int(seed), tuple(log)
        self.bounds = {k: _bounds(k, b, k in log) for k, b in bounds.items()}
        u = self._unit(np.random.default_rng(self.seed), n, len(bounds))
        self.columns = {}
        for j, (k, (lo, hi)) in enumerate(self.bounds.items()):
            if k in self.log:
                span = np.log(hi) - np.log(lo)
                self.columns[k] = np.exp(np.log(lo) + u[:, j] * span)
            else:
                self.columns[k] = lo + u[:, j] * (hi - lo)

    @staticmethod
    def _unit(rng, n, d) -> np.ndarray:
        return rng.random((n, d))

    def to_dict(self) -> dict:
        return {
            "kind": self._kind, "n": self.n, "seed": self.seed, "log": list(self.log),
            "fields": {k: list(b) for k, b in self.bounds.items()},
        }


class LatinHypercube(Random):
    """`n` draws with exactly one in each of the `n` equal strata of every
    field (McKay et al. 1979), strata paired by independent permutations."""

    _kind = "lhs"

    @staticmethod
    def _unit(rng, n, d) -> np.ndarray:
        u = np.empty((n, d))
        for j in range(d):
            u[:, j] = (rng.permutation(n) + rng.random(n)) / n
        return u


_AXES = {"grid": Grid, "zip": Zip, "random": Random, "lhs": LatinHypercube}


def axis_from_dict(d: Mapping) -> _Axis:
    """An axis from its TOML/JSON form: `{"kind": "grid", "fields": {...}}`
    (random and lhs also take `n`, `seed` and `log`; a grid field may be
    `{"linspace": [a, b, n]}` or `{"logspace": [a, b, n]}`, exponents of 10)."""
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in _AXES:
        raise ValueError(f"axis kind must be one of {sorted(_AXES)}; got kind={kind!r}")
    fields = d.pop("fields", None)
    if not isinstance(fields, Mapping):
        raise ValueError(f"a {kind} axis needs a table of fields; got {fields!r}")
    if kind in ("grid", "zip"):
        if d:
            raise ValueError(f"unknown keys for a {kind} axis: {sorted(d)}")
        return _AXES[kind](**{k: _expand(k, v) for k, v in fields.items()})
    unknown = set(d) - {"n", "seed", "log"}
    if unknown:
        raise ValueError(f"unknown keys for a {kind} axis: {sorted(unknown)}")
    return _AXES[kind](d.get("n"), d.get("seed", 0), d.get("log", ()), **fields)


def _expand(name, v):
    if isinstance(v, Mapping):
        if len(v) != 1 or next(iter(v)) not in ("linspace", "logspace"):
            raise ValueError(
                f"grid field {name!r}: a table must be {{linspace = [a, b, n]}} or "
                f"{{logspace = [a, b, n]}}; got {dict(v)!r}"
            )
        (fn, args), = v.items()
        a, b, n = args
        return getattr(np, fn)(float(a), float(b), int(n))
    return v


@dataclasses.dataclass(frozen=True)
class Design:
    """The concrete rows of a sweep: one row per (point, repeat).

    `values[path]` holds each row's value of a swept field, `point` and
    `repeat` the row's indices; `n_points * n_repeats` rows in all, point-major.
    """

    paths: tuple[str, ...]
    values: dict[str, np.ndarray]
    point: np.ndarray
    repeat: np.ndarray
    n_points: int
    n_repeats: int

    def __len__(self) -> int:
        return len(self.point)


class SweepSpec(eqx.Module):
    """A base configuration, axes over its array fields, and repeats.

    Args:
        base: the configuration every point starts from (a pytree).
        axes: `Grid`, `Zip`, `Random`, `LatinHypercube` axes; points are
            their Cartesian product (no axes: the base alone, one point).
        n_repeats: independent runs of every point (keys), >= 1.
        seed: the root of every key; row (point p, repeat r) gets
            `fold_in(fold_in(key(seed), r), p)`.
        common_keys: if True, the key of a row depends only on its repeat
            (`fold_in(key(seed), r)`), so all points of one repeat see the
            same random draws (common random numbers: smooth curves over an
            axis, e.g. one programmed chip read at many times).
    """

    base: Any
    axes: tuple = eqx.field(static=True, default=())
    n_repeats: int = eqx.field(static=True, default=1)
    seed: int = eqx.field(static=True, default=0)
    common_keys: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if (not isinstance(self.n_repeats, int) or isinstance(self.n_repeats, bool)
                or self.n_repeats < 1):
            raise ValueError(
                f"n_repeats must be an integer >= 1; got n_repeats={self.n_repeats!r}"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer; got seed={self.seed!r}")
        for i, a in enumerate(self.axes):
            if not isinstance(a, _Axis):
                raise ValueError(
                    f"axes[{i}] must be a Grid, Zip, Random or LatinHypercube axis; "
                    f"got {a!r}"
                )
        seen: dict[str, int] = {}
        for i, a in enumerate(self.axes):
            for k in a.columns:
                if k in seen:
                    raise ValueError(
                        f"field {k!r} is swept by axes[{seen[k]}] and axes[{i}]; "
                        "sweep each field on one axis (use Zip to vary fields together)"
                    )
                seen[k] = i
        for k in seen:
            _check_sweepable(self.base, k)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(k for a in self.axes for k in a.columns)

    @property
    def n_points(self) -> int:
        n = 1
        for a in self.axes:
            n *= len(a)
        return n

    def design(self) -> Design:
        """Every row of the sweep as concrete columns (point-major)."""
        sizes = [len(a) for a in self.axes]
        idx = np.indices(sizes).reshape(len(sizes), -1) if sizes else np.zeros((0, 1))
        n_points, r = self.n_points, self.n_repeats
        values = {}
        for j, a in enumerate(self.axes):
            for k, col in a.columns.items():
                values[k] = np.repeat(col[idx[j].astype(np.int64)], r)
        point = np.repeat(np.arange(n_points, dtype=np.int64), r)
        repeat = np.tile(np.arange(r, dtype=np.int64), n_points)
        return Design(self.paths, values, point, repeat, n_points, r)

    def point_config(self, values: Mapping[str, Any]):
        """The base configuration with the given field values (concrete)."""
        return replace_fields(self.base, list(values), list(values.values()))

    def validate(self) -> Design:
        """Run every module's construction checks on every point (on the host,
        before anything compiles). Raises a `ValueError` naming the first
        offending point, its swept values and the field."""
        design = self.design()
        if not self.paths:
            check_tree(self.base)
            return design
        first = np.arange(0, len(design), self.n_repeats)
        cols = {k: v[first] for k, v in design.values.items()}
        # All points at once (the checks are elementwise on arrays); only if
        # that fails, point by point to name the offender.
        stacked_ok = True
        try:
            check_tree(_stacked(self.base, self.paths, cols))
        except Exception:
            stacked_ok = False
        if stacked_ok:
            return design
        for p in range(self.n_points):
            vals = {k: c[p] for k, c in cols.items()}
            try:
                check_tree(self.point_config(vals))
            except ValueError as e:
                shown = ", ".join(f"{k}={v:g}" for k, v in vals.items())
                raise ValueError(f"sweep point {p} ({shown}): {e}") from None
        return design

    def to_dict(self) -> dict:
        """The axes, repeats and seed as plain data (for the results store)."""
        return {
            "axes": [a.to_dict() for a in self.axes],
            "n_repeats": self.n_repeats,
            "seed": self.seed,
            "common_keys": self.common_keys,
        }


def _check_sweepable(base, path: str) -> None:
    leaf = _get(base, _parse(path), path)
    if not eqx.is_array(leaf):
        raise ValueError(
            f"field {path!r} is not an array field (it holds "
            f"{type(leaf).__name__} {leaf!r:.60}); only array fields can be swept "
            "(static fields such as shapes and option classes fix the compiled "
            "program: run one sweep per value)"
        )
    if not jnp.issubdtype(leaf.dtype, jnp.floating) and not jnp.issubdtype(
        leaf.dtype, jnp.integer
    ):
        raise ValueError(f"field {path!r} has dtype {leaf.dtype}; sweep numeric fields")


def _stacked(base, paths, cols):
    """`base` with each swept leaf given a leading axis of all points' values
    (concrete NumPy, for the checks)."""
    leaves = field_getter(paths)(base)
    new = [
        np.broadcast_to(
            np.asarray(cols[p], leaf.dtype).reshape((-1,) + (1,) * leaf.ndim),
            (len(cols[p]),) + tuple(leaf.shape),
        )
        for p, leaf in zip(paths, leaves)
    ]
    return eqx.tree_at(field_getter(paths), base, new)


def _is_module(x) -> bool:
    return isinstance(x, eqx.Module)


def check_tree(tree) -> None:
    """Run the construction checks (`__check_init__` of every class, and the
    ranges of `devices.base.param` fields) of every module in `tree`."""
    for node in jax.tree.leaves(tree, is_leaf=_is_module):
        if _is_module(node):
            _check_module(node)


def _check_module(m: eqx.Module) -> None:
    for f in dataclasses.fields(m):
        if not hasattr(m, f.name):
            continue
        rule = f.metadata.get("range")
        if rule is not None:
            _check_range(type(m).__name__, f.name, getattr(m, f.name), rule)
        check_tree(getattr(m, f.name))
    for cls in reversed(type(m).__mro__):
        check = cls.__dict__.get("__check_init__")
        if check is not None:
            check(m)


def _check_range(owner: str, name: str, value, rule) -> None:
    v = np.asarray(value, dtype=np.float64)
    lo, hi = rule.get("lo"), rule.get("hi")
    bad = ~np.isfinite(v)
    if lo is not None:
        bad |= (v <= lo) if rule.get("lo_open") else (v < lo)
    if hi is not None:
        bad |= (v >= hi) if rule.get("hi_open") else (v > hi)
    if np.any(bad):
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        br = ("(" if rule.get("lo_open") else "[") + f"{lo_s}, {hi_s}" + (
            ")" if rule.get("hi_open") else "]")
        raise ValueError(
            f"{owner}.{name} must be in {br}; got {name}={v[bad].ravel()[:3]}"
        )
