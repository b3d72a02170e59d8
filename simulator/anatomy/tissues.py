"""Tissue classes: the labels of the anatomy volume and their physical properties.

The table lives in ``assets/tissues.toml`` with its sources; this module only reads it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulator.assets import read_asset_text


@dataclass(frozen=True)
class Tissue:
    """One tissue class.

    Attributes
    ----------
    id : int
        Label value in the anatomy volume.
    name : str
        Stable identifier, e.g. ``"ligamentum_flavum"``.
    category : str
        Coarse class used by outcome classification: ``outside``, ``soft_tissue``,
        ``posterior_ligament``, ``epidural``, ``dura``, ``intrathecal``, ``nerve``, ``disc``,
        ``bone``, ``joint``.
    mu_60kev_per_mm : float
        Linear attenuation at 60 keV, 1/mm.
    hu : float
        CT number.
    lor_saline_mmhg : float
        Loss-of-resistance syringe pressure with the tip in this tissue (saline), mmHg.
    advance_force_n : float
        Peak force at the tip while advancing into it, newtons (bone: a hard stop instead).
    friction_n_per_mm : float
        Friction along the shaft per mm of this tissue around it (20 G needle), newtons per mm.
    colour : tuple[int, int, int]
        Display colour, sRGB.
    """

    id: int
    name: str
    category: str
    mu_60kev_per_mm: float
    hu: float
    lor_saline_mmhg: float
    advance_force_n: float
    friction_n_per_mm: float
    colour: tuple[int, int, int]

    @property
    def is_bone(self) -> bool:
        return self.category == "bone"


class TissueTable:
    """All tissue classes, addressable by id and by name."""

    def __init__(self, tissues: list[Tissue]):
        self._by_id = {t.id: t for t in tissues}
        self._by_name = {t.name: t for t in tissues}
        n = max(self._by_id) + 1
        self.mu_60kev_per_mm = np.zeros(n, np.float32)
        self.lor_saline_mmhg = np.zeros(n, np.float32)
        self.is_bone = np.zeros(n, bool)
        self.advance_force_n = np.zeros(n, np.float32)
        self.friction_n_per_mm = np.zeros(n, np.float32)
        for t in tissues:
            self.advance_force_n[t.id] = t.advance_force_n
            self.friction_n_per_mm[t.id] = t.friction_n_per_mm
            self.mu_60kev_per_mm[t.id] = t.mu_60kev_per_mm
            self.lor_saline_mmhg[t.id] = t.lor_saline_mmhg
            self.is_bone[t.id] = t.is_bone

    def __getitem__(self, key: int | str) -> Tissue:
        if isinstance(key, str):
            return self._by_name[key]
        return self._by_id[int(key)]

    def id(self, name: str) -> int:
        """Label id of the tissue called ``name``."""
        return self._by_name[name].id

    def names(self) -> list[str]:
        return list(self._by_name)

    def names_by_id(self, size: int = 256) -> list[str]:
        """Name of every label id (empty for unused ids), indexable by label."""
        return [self._by_id[i].name if i in self._by_id else "" for i in range(size)]

    def __iter__(self):
        return iter(self._by_id.values())


@lru_cache(maxsize=1)
def tissue_table() -> TissueTable:
    """The tissue table shipped in ``assets/tissues.toml``."""
    data = tomllib.loads(read_asset_text("tissues.toml"))
    tissues = [
        Tissue(
            id=int(row["id"]),
            name=row["name"],
            category=row["category"],
            mu_60kev_per_mm=float(row["mu_60kev_per_mm"]),
            hu=float(row["hu"]),
            lor_saline_mmhg=float(row["lor_saline_mmhg"]),
            advance_force_n=float(row["advance_force_n"]),
            friction_n_per_mm=float(row["friction_n_per_mm"]),
            colour=tuple(int(c) for c in row["colour"]),
        )
        for row in data["tissue"]
    ]
    return TissueTable(tissues)


def tid(name: str) -> int:
    """Shorthand: label id of a tissue by name."""
    return tissue_table().id(name)


