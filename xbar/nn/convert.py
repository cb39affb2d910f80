"""Any equinox model onto crossbar tiles: `convert` swaps its linear and
convolution layers for analog ones and leaves the model's own code as it is
(aihwkit's `convert_to_analog`)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
from jaxtyping import PRNGKeyArray

from devices.base import AbstractDevice
from xbar.nn.config import AnalogConfig
from xbar.nn.conv import AnalogConv2d, padding_pairs, pair
from xbar.nn.layer import AbstractAnalogLayer
from xbar.nn.linear import AnalogLinear

ConfigFor = Callable[[str, eqx.Module], "AnalogConfig | None"]


def _analog(layer, config, key):
    """The analog counterpart of one `eqx.nn.Linear` / `eqx.nn.Conv`."""
    bias = None if layer.bias is None else layer.bias.reshape(-1)
    if isinstance(layer, eqx.nn.Linear):
        if layer.in_features == "scalar" or layer.out_features == "scalar":
            raise ValueError(
                "convert: eqx.nn.Linear with 'scalar' in/out features is not "
                "supported; "
                "use in_features=1 / out_features=1"
            )
        return AnalogLinear.from_weights(layer.weight, bias, config, key=key)
    if layer.num_spatial_dims != 2:
        raise ValueError(
            "convert: only 2-D convolutions map onto tiles; got a "
            f"{layer.num_spatial_dims}"
            "-D eqx.nn.Conv (exclude it with a config function returning None)"
        )
    if tuple(layer.dilation) != (1, 1) or layer.groups != 1:
        raise ValueError(
            "convert: convolutions with dilation or groups are not supported; got "
            f"dilation={layer.dilation}, groups={layer.groups}"
        )
    if (
        isinstance(layer.padding, str)
        or getattr(layer, "padding_mode", "ZEROS") != "ZEROS"
    ):
        raise ValueError(
            "convert: only explicit zero padding is supported; got "
            f"padding={layer.padding!r}"
        )
    return AnalogConv2d.from_weights(
        layer.weight,
        bias,
        config,
        key=key,
        stride=pair(tuple(layer.stride), "stride"),
        padding=padding_pairs(tuple(tuple(p) for p in layer.padding)),
    )


def _is_layer(x) -> bool:
    return isinstance(x, eqx.nn.Linear | eqx.nn.Conv)


def convert(
    model,
    config: AnalogConfig | AbstractDevice | ConfigFor,
    *,
    key: PRNGKeyArray,
):
    """`model` with every `eqx.nn.Linear` and `eqx.nn.Conv` (2-D) replaced by
    its analog counterpart, programmed onto fresh devices.

    The model's own `__call__` runs unchanged: analog layers take the same
    inputs (an unbatched vector or `(C, H, W)` image, or leading batch axes)
    and read without noise when called without a key.

    Args:
        model: any pytree of equinox modules (residual blocks, attention, ...).
        config: one `AnalogConfig` (or a bare device) for every layer, or a
            function `(path, layer) -> AnalogConfig | None` choosing per layer
            (`path` as `jax.tree_util.keystr` spells it, e.g. ".blocks[0].mlp";
            None leaves that layer digital).
        key: PRNG key, folded with each layer's index (device draws, programming).
    """
    choose = config if callable(config) and not isinstance(config, eqx.Module) else None
    leaves, treedef = jax.tree_util.tree_flatten_with_path(model, is_leaf=_is_layer)
    out = []
    for i, (path, leaf) in enumerate(leaves):
        if _is_layer(leaf):
            cfg = choose(jax.tree_util.keystr(path), leaf) if choose else config
            if cfg is not None:
                leaf = _analog(leaf, cfg, jax.random.fold_in(key, i))
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)


def analog_layers(model) -> list[tuple[str, AbstractAnalogLayer]]:
    """`(path, layer)` of every analog layer in a (converted) model."""
    is_analog = lambda x: isinstance(x, AbstractAnalogLayer)  # noqa: E731
    leaves = jax.tree_util.tree_flatten_with_path(model, is_leaf=is_analog)[0]
    return [(jax.tree_util.keystr(p), x) for p, x in leaves if is_analog(x)]
