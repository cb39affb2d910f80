"""Literature parameter cards: data files in `devices/cards/`, one per device.

A card is a JSON object::

    {"name": ..., "model": "RRAM", "description": ...,
     "references": {"key": "Authors, venue, year, doi"},
     "parameters": {"g_max": {"value": 3.8462e-8, "unit": "S", "source": "key",
                              "provenance": "R", "mapping": "M", "note": "..."}}}

Provenance tags (docs/devices.md explains them and every card): R (read from
the cited source), D (derived from R numbers; the note gives the formula), U
(recalled from the literature, unchecked), A (our modelling assumption).

Mapping tags say how the published statistic becomes the model parameter:
M (the parameter *is* the published number, same definition), D (converted
by the formula in the parameter's `derive` entry, which the tests evaluate),
A (the reading of the statistic as this parameter is our modelling choice;
`mapping_note` says which). A `derive` entry is a Python expression over the
card's other values and `sqrt`, `log`, `clip`, `min`, `max`.
"""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from typing import Any

CARD_DIR = Path(__file__).parent / "cards"
PROVENANCE = {"R", "D", "U", "A"}
MAPPING = {"M", "D", "A"}


def available_cards(model: str | None = None) -> list[str]:
    """Names of every card shipped in `devices/cards/`.

    With `model` (e.g. "RRAM", "PCM", "Perovskite", "IonicSynapse"), only the
    cards whose `"model"` entry is `model`.
    """
    names = sorted(p.stem for p in CARD_DIR.glob("*.json"))
    if model is None:
        return names
    return [n for n in names if json.loads(_load(n)).get("model") == model]


@cache
def _load(name: str) -> str:
    return (CARD_DIR / f"{name}.json").read_text()


def load_card(name: str) -> dict[str, Any]:
    """The card called `name` as a dict (a fresh copy each call).

    `name` may also be the path of a card file ending in `.json` (e.g. one
    written by `devices.write_card` from a fit to measurements).

    Raises:
        ValueError: no card of that name; the message lists the available cards.
    """
    if str(name).endswith(".json"):  # a card file of the user's own device
        path = Path(name)
        if not path.is_file():
            raise ValueError(f"card file {str(path)!r} does not exist")
        card = json.loads(path.read_text())
        name = card.get("name", path.stem)
    else:
        names = available_cards()
        if name not in names:
            raise ValueError(
                f"unknown device card {name!r}; available cards: {names}"
            )
        card = json.loads(_load(name))
    for key, p in card["parameters"].items():
        if p.get("provenance") not in PROVENANCE:
            raise ValueError(
                f"card {name!r} parameter {key!r}: provenance must be one of "
                f"{sorted(PROVENANCE)}; got {p.get('provenance')!r}"
            )
        if "mapping" in p and p["mapping"] not in MAPPING:
            raise ValueError(
                f"card {name!r} parameter {key!r}: mapping must be one of "
                f"{sorted(MAPPING)}; got {p['mapping']!r}"
            )
        if p.get("source") not in card["references"] and p["provenance"] != "A":
            raise ValueError(
                f"card {name!r} parameter {key!r}: source {p.get('source')!r} "
                "is not in the card's references"
            )
    return card


def card_values(name: str) -> dict[str, float]:
    """The parameter values of a card, by parameter name (SI units)."""
    return {k: p["value"] for k, p in load_card(name)["parameters"].items()}


def from_card(cls, name: str, overrides: dict):
    """`cls(**fields)` with every field of `cls` that card `name` gives,
    then `overrides` on top; fields the card lacks keep their defaults.

    Raises:
        ValueError: the card is of another model than `cls` (the message names
            the card, its model and `cls`, and lists the cards that fit `cls`);
            the card and `overrides` together lack a field `cls` requires; or
            an override names no field of `cls` (the message lists them).
    """
    card = load_card(name)
    name = card.get("name", name)
    model = card.get("model")
    fits = [kls.__name__ for kls in cls.__mro__]
    if model is not None and model not in fits:
        raise ValueError(
            f"card {name!r} has model {model!r}, not {cls.__name__!r}: "
            f"{cls.__name__}.from_card needs one of the {cls.__name__} cards "
            f"{available_cards(cls.__name__)} (or {model}.from_card({name!r}))"
        )
    values = {k: p["value"] for k, p in card["parameters"].items()}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(overrides) - set(fields)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} fields {sorted(unknown)}; fields: {list(fields)}"
        )
    kwargs = {f: values[f] for f in fields if f in values}
    kwargs.update(overrides)
    missing = [
        f.name for f in fields.values()
        if f.init and f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(
            f"card {name!r} lacks the {cls.__name__} fields {missing}: give them "
            f"as keywords, or use one of the {cls.__name__} cards "
            f"{available_cards(cls.__name__)}"
        )
    return cls(**kwargs)
