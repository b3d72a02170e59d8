"""Iodinated contrast in the patient, as it changes with time.

An injection leaves one or more **boluses**. A bolus fills part of one compartment (the voxels a
fill reaches, see :mod:`.contrast_spread`) in **stages**, nearest the tip first, which appear one
after the other while the syringe is pushed (and, for the fast-spreading intrathecal and subdural
compartments, for a few seconds more), so live fluoroscopy shows the contrast flowing out. A
bolus in a compartment that drains (bone marrow) fades with a washout time.

Contrast taken up by a vessel is a **vessel fill**: polylines along the vessel downstream of the
tip, drawn like the needle (exact chords, :mod:`.overlay`), which the blood stream runs along at
its speed while the injection lasts and which then washes out within seconds (venous, reference
4.6: tau 1-3 s) or within frames (arterial). It is fainter than the syringe's contrast (diluted by
the blood), which is why live imaging misses some uptake that subtraction reveals (reference 3.14).

Iohexol 300 mgI/mL at 60 keV: 2.47 /cm against water's 0.206 (reference 4.6): the excess over the
displaced tissue is ~0.000755 /mm per mgI/mL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.imaging.overlay import Overlay

#: Extra attenuation per mgI/mL of iodine at 60 keV, 1/mm.
MU_PER_MGI_PER_ML = (0.247 - 0.0206) / 300.0
#: Concentration of the contrast in the syringe, mgI/mL (iohexol 300; myelography-compatible).
SYRINGE_MGI_PER_ML = 300.0


@dataclass
class Bolus:
    """Contrast of one injection in one compartment.

    Attributes
    ----------
    stages : list of (mu_per_mm, world_from_voxel)
        Extra attenuation (float32 grids aligned with the anatomy's voxels), nearest the tip first.
    compartment : str
    start_s : float
        When the injection began (simulated time).
    spread_s : float
        How long the stages take to appear.
    washout_s : float or None
        Time constant of the fade after the spread, or ``None`` when the contrast stays.
    volume_ml : float
    """

    stages: list[tuple[np.ndarray, np.ndarray]]
    compartment: str
    start_s: float
    spread_s: float
    washout_s: float | None = None
    volume_ml: float = 0.0

    def stage_weights(self, t_s: float | None) -> np.ndarray:
        """How much of each stage shows at ``t_s`` (``None``: once the spread is complete)."""
        n = len(self.stages)
        if t_s is None:
            return np.ones(n)
        progress = (t_s - self.start_s) / max(self.spread_s, 1e-6)
        weights = np.clip(progress * n - np.arange(n), 0.0, 1.0)
        if self.washout_s is not None and t_s > self.start_s + self.spread_s:
            weights = weights * math.exp(-(t_s - self.start_s - self.spread_s) / self.washout_s)
        return weights


@dataclass
class VesselFill:
    """Contrast taken up by a vessel: it runs along ``paths`` from the tip at ``speed_mm_per_s``
    while the injection lasts (``duration_s``), then washes out with ``washout_s``.

    Attributes
    ----------
    paths : list of ndarray (N, 3)
        World polylines, each starting at the tip's end of the vessel.
    kind : str
        ``"venous"`` or ``"arterial"``.
    radius_mm : float
        Lumen radius.
    mgi_per_ml : float
        Iodine concentration in the lumen (diluted by the blood).
    start_s, duration_s, washout_s, speed_mm_per_s : float
    """

    paths: list[np.ndarray]
    kind: str
    radius_mm: float
    mgi_per_ml: float
    start_s: float
    duration_s: float
    washout_s: float
    speed_mm_per_s: float

    def overlays(self, t_s: float | None) -> list[Overlay]:
        """The filled stretch of each path at ``t_s`` as iodine overlays (none once washed out;
        ``None``: after the washout, so none)."""
        if t_s is None or t_s <= self.start_s:
            return []
        end = self.start_s + self.duration_s
        strength = 1.0 if t_s <= end else math.exp(-(t_s - end) / self.washout_s)
        if strength < 0.02:
            return []
        reach_mm = self.speed_mm_per_s * (min(t_s, end) - self.start_s) + 3.0
        mu = strength * self.mgi_per_ml * MU_PER_MGI_PER_ML
        return [Overlay(p, self.radius_mm, mu, material="iodine") for p in
                (_first_mm(path, reach_mm) for path in self.paths) if len(p) >= 2]


def _first_mm(path: np.ndarray, length_mm: float) -> np.ndarray:
    """The first ``length_mm`` of a polyline."""
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    if length_mm >= along[-1]:
        return path
    k = int(np.searchsorted(along, length_mm))
    f = (length_mm - along[k - 1]) / max(steps[k - 1], 1e-9)
    return np.vstack([path[:k], path[k - 1] + f * (path[k] - path[k - 1])])


@dataclass
class ContrastField:
    """All the contrast injected so far.

    Attributes
    ----------
    boluses : list of Bolus
    vessels : list of VesselFill
    total_ml : float
    """

    boluses: list[Bolus] = field(default_factory=list)
    vessels: list[VesselFill] = field(default_factory=list)
    total_ml: float = 0.0

    @property
    def empty(self) -> bool:
        return self.total_ml <= 0.0

    def overlays(self, t_s: float | None) -> list[Overlay]:
        """The vessel fills visible at ``t_s``."""
        return [ov for v in self.vessels for ov in v.overlays(t_s)]
