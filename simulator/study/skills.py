"""The skill levels of the virtual operators: how imperfect each one's hand and eye are
(``assets/operators.toml``, checked field by field on loading)."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache

from simulator.assets import read_asset_text
from simulator.errors import SpineSimError

OPERATORS_SOURCE = "assets/operators.toml"


@dataclass(frozen=True)
class Skill:
    """One skill level's imperfections (``assets/operators.toml`` explains each)."""

    name: str
    palpation_sd_mm: float
    palpation_sd_per_cover: float
    crest_sd_mm: float
    angle_sd_deg: float
    depth_sd_fraction: float
    early_loss_mm: float
    lor_step_mm: float
    bone_walks: int
    reading_sd_mm: float
    tilt_reading_sd_deg: float
    pattern_misread: float
    corrections: int

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@lru_cache(maxsize=1)
def skill_levels() -> dict[str, Skill]:
    """The skill levels of ``assets/operators.toml``, checked field by field."""
    return parse_skill_levels(read_asset_text("operators.toml"))


def parse_skill_levels(text: str, source: str = OPERATORS_SOURCE) -> dict[str, Skill]:
    """Parse an operators table; a malformed one raises a one-line :class:`SpineSimError` naming
    the file and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpineSimError(f"{source}: not valid TOML ({err})") from None
    if data.get("format_version") != 1:
        raise SpineSimError(f"{source}: format_version: must be 1")
    levels = data.get("levels")
    if not isinstance(levels, dict) or not levels:
        raise SpineSimError(f"{source}: levels: missing")
    out = {}
    names = [f.name for f in fields(Skill) if f.name != "name"]
    for level, values in levels.items():
        if not isinstance(values, dict):
            raise SpineSimError(f"{source}: levels.{level}: must be a table")
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise SpineSimError(f"{source}: levels.{level}.{unknown[0]}: unknown field")
        kwargs = {}
        for name in names:
            where = f"{source}: levels.{level}.{name}"
            if name not in values:
                raise SpineSimError(f"{where}: missing")
            v = values[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise SpineSimError(f"{where}: must be a number >= 0")
            if name in ("bone_walks", "corrections"):
                if int(v) != v:
                    raise SpineSimError(f"{where}: must be a whole number")
                v = int(v)
            if name == "pattern_misread" and v > 1:
                raise SpineSimError(f"{where}: must be a probability (0-1)")
            if name == "lor_step_mm" and v == 0:
                raise SpineSimError(f"{where}: must be > 0")
            kwargs[name] = v
        out[level] = Skill(name=level, **kwargs)
    return out


def skill(name: str) -> Skill:
    levels = skill_levels()
    if name not in levels:
        raise SpineSimError(f"{OPERATORS_SOURCE}: no skill level '{name}' (levels: {', '.join(levels)})")
    return levels[name]

