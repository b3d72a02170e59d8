"""Needle specifications (``assets/needles.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

from simulator.assets import read_asset_text
from simulator.errors import SpineSimError


@dataclass(frozen=True)
class NeedleSpec:
    """One needle model.

    Attributes
    ----------
    id : str
    name : str
    tip : {"tuohy", "quincke"}
    gauge : int
    outer_diameter_mm : float
    length_mm : float
        Shaft length from hub to tip.
    depth_mark_interval_mm : float
        Spacing of the depth marks on the shaft (0: none).
    tip_bend_length_mm, tip_bend_deg : float
        The curved tip of a Tuohy needle.
    """

    id: str
    name: str
    tip: str
    gauge: int
    outer_diameter_mm: float
    length_mm: float
    depth_mark_interval_mm: float
    tip_bend_length_mm: float
    tip_bend_deg: float

    @property
    def radius_mm(self) -> float:
        return 0.5 * self.outer_diameter_mm


@lru_cache(maxsize=1)
def needle_catalogue() -> dict[str, NeedleSpec]:
    data = tomllib.loads(read_asset_text("needles.toml"))
    return {row["id"]: NeedleSpec(**row) for row in data["needle"]}


def needle_spec(needle_id: str) -> NeedleSpec:
    """The needle called ``needle_id``."""
    try:
        return needle_catalogue()[needle_id]
    except KeyError:
        known = ", ".join(sorted(needle_catalogue()))
        raise SpineSimError(f"unknown needle '{needle_id}' (known: {known})") from None
