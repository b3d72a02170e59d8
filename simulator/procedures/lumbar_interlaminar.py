"""Lumbar interlaminar epidural: target zone, outcome classification and the expert's technique.

Target zone (reference 3.2): the posterior epidural fat between the ventral surface of the
ligamentum flavum and the dura, at the target interspace, built from the patient's own anatomy (the
tissue at the tip, exact, and the interspace the tip is at). Danger zones: the dura and the
intrathecal space behind it (dural puncture), bone, the disc, nerve roots.
"""

from __future__ import annotations

import numpy as np

from simulator.anatomy.anatomy import Anatomy
from simulator.anatomy.tissues import tissue_table
from simulator.geometry import frames
from simulator.errors import SpineSimError
from simulator.imaging.carm import detector_direction
from simulator.needle.needle import TRACK_STEP_MM
from simulator.procedures.base import Placement, Procedure

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


def classify(anatomy: Anatomy, tip_mm: np.ndarray | None, target_interspace: str,
             dural_puncture: bool, tip_tissue_id: int | None = None) -> Placement:
    """Classify the final tip position of a lumbar interlaminar attempt.

    ``tip_tissue_id`` overrides the tissue at the tip (the bone a tip rests against).
    """
    if tip_mm is None:
        return Placement("no_needle", "none", "none", "", None, None, OUTCOMES["no_needle"][0])
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
    return Placement(outcome, tissue.name, category, interspace, tuple(float(v) for v in tip), distance,
                     OUTCOMES[outcome][0])


class Interlaminar(Procedure):
    """Lumbar or cervical interlaminar epidural at the scenario's interspace."""

    outcomes = OUTCOMES

    def target_point(self, anatomy: Anatomy, scenario) -> np.ndarray:
        return anatomy.landmark(f"{scenario.target_level}.epidural_target")

    def centre_point(self, anatomy: Anatomy, scenario) -> np.ndarray:
        return anatomy.landmark(f"{scenario.target_level}.interlaminar_center")

    def classify(self, anatomy: Anatomy, tip_mm, scenario, dural_puncture: bool,
                 tip_tissue_id: int | None = None) -> Placement:
        return classify(anatomy, tip_mm, scenario.target_level, dural_puncture, tip_tissue_id)

    def in_target_zone(self, anatomy: Anatomy, scenario, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
        return labels == tissue_table().id("epidural_fat")

    def outcome_feedback(self, placement: Placement, scenario) -> str:
        level = scenario.target_level
        if placement.outcome == "success":
            return f"The tip ended in the posterior epidural space at {level}."
        if placement.outcome == "wrong_level":
            return (f"The tip is epidural but at {placement.interspace}, not {level}: count the levels again on "
                    "the AP image (or from the iliac crests).")
        if placement.outcome == "intrathecal":
            return ("The dura was punctured: the needle went on after the loss of resistance. Advance in small "
                    "steps and test after each one.")
        if placement.outcome == "ligament":
            return (f"The tip stopped in the {placement.tissue.replace('_', ' ')}, short of the epidural space: "
                    "there was no loss of resistance yet.")
        if placement.outcome == "bone":
            return "The tip is on bone (lamina or spinous process): walk off it towards the interlaminar window."
        return super().outcome_feedback(placement, scenario)

    def technique(self, metrics: dict[str, float], guidance: str, expert_images: int) -> tuple[float, list[str]]:
        points, feedback = 0.0, []
        if guidance == "fluoroscopy":
            if metrics.get("level_confirmed_on_ap", 0.0):
                points += 5.0
            else:
                feedback.append("The level was not confirmed on an AP image before needling.")
            if metrics.get("depth_checked_before_lf", 0.0):
                points += 5.0
            else:
                feedback.append("Depth was not checked on a lateral or contralateral oblique view before "
                                "the needle reached the ligamentum flavum.")
            return points + self.image_points(metrics, expert_images, feedback), feedback
        if metrics.get("palpations", 0.0) >= 2:
            points += 5.0
        else:
            feedback.append("The iliac crests and spinous processes were not palpated to find the level.")
        if metrics.get("lor_tests", 0.0) >= 1:
            points += 5.0
        else:
            feedback.append("Loss of resistance was never tested.")
        return points + self.pass_points(metrics, feedback), feedback


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
