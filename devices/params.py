"""Device parameters: the float32 leaf converter, declared ranges and their
checks, option fields, and the concrete-value helpers every check uses.

A sweepable parameter is a float32 array leaf (`as_param`), so a sweep can
vmap over a stacked device; its allowed range is declared with the field
(`param`) and checked at construction on concrete values (`check_fields`),
never while tracing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jaxtyping import Array


def as_param(x) -> Array:
    """Converter for sweepable scalar parameters: a float32 JAX array leaf."""
    return jnp.asarray(x, dtype=jnp.float32)


def param(
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    nonzero: bool = False,
    unit: str = "",
    kw_only: bool = False,
) -> Any:
    """A sweepable scalar parameter field with its valid range.

    Stored as a float32 JAX array leaf (so a sweep can vmap over a stacked
    device); required unless `default` is given. `ge`/`gt` and `le`/`lt` bound
    it below and above (inclusive / exclusive), `nonzero` excludes 0; every
    `AbstractDevice` checks its fields against these at construction
    (`check_fields`) and names the field that is out of range. `kw_only`:
    a keyword-only constructor argument (fields a base class shares with
    every family, which must not shift a family's positional fields).
    """
    rule = dict(lo=gt if ge is None else ge, hi=lt if le is None else le,
                lo_open=gt is not None, hi_open=lt is not None, unit=unit)
    return eqx.field(converter=as_param, default=default, kw_only=kw_only,
                     metadata={"range": rule, "nonzero": nonzero})


def check_fields(module: eqx.Module) -> None:
    """Check every field declared with `param` against its range (on concrete
    values; skipped while tracing). Raises a `ValueError` naming the field."""
    for f in dataclasses.fields(module):
        rule = f.metadata.get("range")
        if rule is None:
            continue
        value = getattr(module, f.name)
        check_range(f.name, value, **rule)
        v = concrete(value)
        if f.metadata["nonzero"] and v is not None and np.any(v == 0):
            raise ValueError(
                f"{f.name} must be a finite nonzero number; got {f.name}={v}"
            )


def check_option(name: str, value, base: type) -> None:
    """Raise a ValueError naming `name` and the allowed classes unless `value`
    is an instance of one of `base`'s final subclasses."""
    if isinstance(value, base):
        return
    allowed = []
    todo = list(base.__subclasses__())
    while todo:
        c = todo.pop()
        todo.extend(c.__subclasses__())
        if not c.__name__.startswith(("Abstract", "_")):
            allowed.append(f"{c.__name__}()")
    raise ValueError(
        f"{name} must be one of {', '.join(sorted(allowed))} (an option module); "
        f"got {name}={value!r}"
    )


def option(name: str, base: type, default: Any) -> Any:
    """A dataclass field holding an option module of kind `base`. Its
    converter checks the type, so a name where a module belongs (`"sinh"` for
    `SinhIV()`) is a ValueError listing the classes, raised before anything
    else looks at the field."""

    def convert(value):
        check_option(name, value, base)
        return value

    return eqx.field(default=default, converter=convert)


def concrete(x) -> np.ndarray | None:
    """The concrete value of `x`, or None while it is being traced."""
    if x is None or isinstance(x, Tracer):
        return None
    try:
        return np.asarray(x)
    except Exception:  # pragma: no cover - abstract values under transforms
        return None


def check_range(name: str, value, lo=None, hi=None, *, lo_open=False,
                hi_open=False, unit: str = "") -> None:
    """Raise a `ValueError` naming `name` unless lo <= value <= hi (elementwise).

    Skipped while tracing: checks run at construction, on concrete values.
    """
    v = concrete(value)
    if v is None:
        return
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    bracket = ("(" if lo_open else "[") + f"{lo_s}, {hi_s}" + (")" if hi_open else "]")
    u = f" {unit}" if unit else ""
    bad = ~np.isfinite(v)
    if lo is not None:
        bad |= (v <= lo) if lo_open else (v < lo)
    if hi is not None:
        bad |= (v >= hi) if hi_open else (v > hi)
    if np.any(bad):
        shown = v if v.size == 1 else v[bad].ravel()[:3]
        raise ValueError(f"{name} must be in {bracket}{u}; got {name}={shown}{u}")


def check_bounds(g_min, g_max) -> None:
    """Conductance bounds: 0 <= g_min < g_max, finite (siemens)."""
    check_range("g_min", g_min, 0.0, unit="S")
    check_range("g_max", g_max, 0.0, lo_open=True, unit="S")
    lo, hi = concrete(g_min), concrete(g_max)
    if lo is not None and hi is not None and np.any(lo >= hi):
        raise ValueError(
            f"g_min must be in [0, g_max); got g_min={lo} S, g_max={hi} S"
        )


def format_value(v) -> str:
    """A field value for `AbstractDevice.__repr__`: scalars by value, arrays
    by dtype and shape, anything else by its repr."""
    if isinstance(v, (jax.Array, np.ndarray, np.generic)):
        c = concrete(v)
        if c is not None and c.ndim == 0:
            return f"{c.item():.6g}"
        return eqx.tree_pformat(v)  # e.g. f32[8] (stacked for a sweep), or traced
    return repr(v)
