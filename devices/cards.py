"""Literature parameter cards: data files in `devices/cards/`, one per device.

A card is a JSON object::

    {"name": ..., "model": "RRAM", "description": ...,
     "references": {"key": "Authors, venue, year, doi"},
     "parameters": {"g_max": {"value": 3.8462e-8, "unit": "S", "source": "key",
                              "provenance": "R", "note": "..."}}}

Provenance tags follow `shared/reference/devices.md`: R (read from the source),
D (derived; the note gives the formula), U (recalled, unchecked), A (our
modelling assumption).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CARD_DIR = Path(__file__).parent / "cards"
PROVENANCE = {"R", "D", "U", "A"}


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
        ValueError: an override names no field of `cls` (the message lists them).
    """
    values = card_values(name)
    fields = list(cls.__dataclass_fields__)
    unknown = set(overrides) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; fields: {fields}")
    kwargs = {f: values[f] for f in fields if f in values}
    kwargs.update(overrides)
    return cls(**kwargs)
