"""Lumbar interlaminar epidural: target zone, outcome classification and the expert's technique.

Target zone (reference 3.2): the posterior epidural fat between the ventral surface of the
ligamentum flavum and the dura, at the target interspace, built from the patient's own anatomy (the
tissue at the tip, exact, and the interspace the tip is at). Danger zones: the dura and the
intrathecal space behind it (dural puncture), bone, the disc, nerve roots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.anatomy.anatomy import Anatomy
from simulator.anatomy.tissues import tissue_table
from simulator.geometry import frames
from simulator.errors import SpineSimError
from simulator.imaging.carm import detector_direction
from simulator.needle.needle import TRACK_STEP_MM

#: Outcome ids, their meaning and the placement points they earn (of 60).
OUTCOMES = {
    "success": ("epidural space at the intended level", 60.0),
    "wrong_level": ("epidural space, but at the wrong level", 15.0),
    "intrathecal": ("intrathecal: the dura was punctured", 0.0),
    "ligament": ("posterior ligaments: not yet epidural (too shallow)", 8.0),
    "soft_tissue": ("soft tissue, off the epidural path", 0.0),
    "bone": ("on bone", 4.0),
    "disc": ("in the disc (too deep)", 0.0),
    "nerve_root": ("on a nerve root", 0.0),
    "joint": ("in a facet joint", 0.0),
    "no_needle": ("no needle placed", 0.0),
}


@dataclass(frozen=True)
class Placement:
    """Where the tip ended, classified."""

    outcome: str
    tissue: str
    category: str
    interspace: str
    tip_mm: tuple[float, float, float] | None
    distance_to_target_mm: float | None

    @property
    def description(self) -> str:
        return OUTCOMES[self.outcome][0]

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "description": self.description,
            "tissue": self.tissue,
            "category": self.category,
            "interspace": self.interspace,
            "tip_mm": None if self.tip_mm is None else [round(v, 2) for v in self.tip_mm],
            "distance_to_target_mm": None if self.distance_to_target_mm is None
            else round(self.distance_to_target_mm, 2),
        }


def classify(anatomy: Anatomy, tip_mm: np.ndarray | None, target_interspace: str,
             dural_puncture: bool, tip_tissue_id: int | None = None) -> Placement:
    """Classify the final tip position of a lumbar interlaminar attempt.

    ``tip_tissue_id`` overrides the tissue at the tip (the bone a tip rests against).
    """
    if tip_mm is None:
        return Placement("no_needle", "none", "none", "", None, None)
    table = tissue_table()
    tip = np.asarray(tip_mm, float)
    if tip_tissue_id is None:
        tip_tissue_id = int(anatomy.tissue_at(tip[None])[0])
    tissue = table[tip_tissue_id]
    interspace = anatomy.interspace_at(tip)
    target = anatomy.landmark(f"{target_interspace}.epidural_target")
    distance = float(np.linalg.norm(tip - target))
    category = tissue.category
    if category in ("intrathecal", "dura") or (dural_puncture and category == "epidural"):
        outcome = "intrathecal"
    elif category == "epidural":
        outcome = "success" if interspace == target_interspace else "wrong_level"
    elif category == "posterior_ligament":
        outcome = "ligament"
    elif category == "bone":
        outcome = "bone"
    elif category == "disc":
        outcome = "disc"
    elif category == "nerve":
        outcome = "nerve_root"
    elif category == "joint":
        outcome = "joint"
    else:
        outcome = "soft_tissue"
    return Placement(outcome, tissue.name, category, interspace, tuple(float(v) for v in tip), distance)


# ------------------------------------------------------------------------------ expert technique
def clear_path_entry(anatomy: Anatomy, target_mm: np.ndarray, beam_tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """A bone-free straight path from the skin to ``target_mm``, the way an expert plans it.

    Midline first, as close to coaxial with the beam as the spinous processes allow (tilting the
    needle up to 35 degrees cranially or caudally); where the spinous processes crowd the midline
    (a narrow interspinous space), a paramedian entry 6-18 mm to either side, angled towards the
    midline. Returns (entry, unit direction); raises :class:`SpineSimError` if no path exists.
    """
    table = tissue_table()
    beam_back = detector_direction(0.0, beam_tilt_deg)  # from the patient towards the detector
    for lateral_mm in (0.0, 6.0, -6.0, 10.0, -10.0, 14.0, -14.0, 18.0, -18.0):
        for extra in np.arange(0.0, 36.0, 1.5):
            for sign in (1.0, -1.0):
                back = frames.rotation_x(sign * extra) @ beam_back
                start = target_mm + back * 160.0 + np.array([lateral_mm * 160.0 / 55.0, 0.0, 0.0])
                direction_in = frames.unit(target_mm - start)
                entry = anatomy.skin_entry(start, direction_in)
                if entry is None:
                    continue
                direction = frames.unit(target_mm - entry)
                length = float(np.linalg.norm(target_mm - entry))
                t = np.arange(0.0, length + TRACK_STEP_MM, TRACK_STEP_MM)
                labels = anatomy.tissue_at(entry + t[:, None] * direction)
                if not table.is_bone[labels].any():
                    return entry, direction
    raise SpineSimError("no bone-free needle path to the target for this patient")
