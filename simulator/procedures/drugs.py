"""The drugs a trainee can inject (``assets/drugs.toml``): local anaesthetics, steroids
(particulate or not) and saline."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

from simulator.assets import read_asset_text


@dataclass(frozen=True)
class Drug:
    id: str
    name: str
    kind: str  # local_anaesthetic, steroid or diluent
    particulate: bool


@lru_cache(maxsize=1)
def drug_catalogue() -> dict[str, Drug]:
    """Every drug by id."""
    rows = tomllib.loads(read_asset_text("drugs.toml"))["drug"]
    return {row["id"]: Drug(**row) for row in rows}
