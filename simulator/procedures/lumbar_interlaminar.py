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
from simulator.procedures.base import Procedure

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


class Interlaminar(Procedure):
    """Lumbar or cervical interlaminar epidural at the scenario's interspace."""

    outcomes = OUTCOMES
    feedback = {
        "success": "The tip ended in the posterior epidural space at {level}.",
        "wrong_level": ("The tip is epidural but at {interspace}, not {level}: count the levels again on the AP "
                        "image (or from the iliac crests)."),
        "intrathecal": ("The dura was punctured: the needle went on after the loss of resistance. Advance in small "
                        "steps and test after each one."),
        "ligament": ("The tip stopped in the {tissue}, short of the epidural space: there was no loss of "
                     "resistance yet."),
        "bone": "The tip is on bone (lamina or spinous process): walk off it towards the interlaminar window.",
    }
    fluoroscopy_checks = (
        ("depth_checked_before_lf", 1.0, "Depth was not checked on a true lateral or a contralateral oblique of "
                                         "45-60\N{DEGREE SIGN} before the needle reached the ligamentum flavum."),
    )
    #: Reference 3.2: a CLO of 45-60 degrees (the laminae "shingle" and the ventral interlaminar
    #: line shows).
    clo_range_deg = (45.0, 60.0)
    landmark_checks = (
        ("palpations", 2.0, "The iliac crests and spinous processes were not palpated to find the level."),
        ("lor_tests", 1.0, "Loss of resistance was never tested."),
    )

    epidural_injection = True
    done_by_landmarks = True
    injectate_limit_ml = 6.0
    injectate_limit_reason = " (lumbar interlaminar: 3-6 mL in all, reference 3.2)"
    expert_injectate = (("dexamethasone_10mg_ml", 1.0), ("saline", 3.0))

    def target_point(self, anatomy: Anatomy, scenario) -> np.ndarray:
        return anatomy.landmark(f"{scenario.target_level}.epidural_target")

    def centre_point(self, anatomy: Anatomy, scenario) -> np.ndarray:
        return anatomy.landmark(f"{scenario.target_level}.interlaminar_center")

    def outcome_at(self, anatomy: Anatomy, tip: np.ndarray, tissue, scenario, dural_puncture: bool) -> tuple[str, str]:
        interspace = anatomy.interspace_at(tip)
        category = tissue.category
        if category in ("intrathecal", "dura") or (dural_puncture and category == "epidural"):
            outcome = "intrathecal"
        elif category == "epidural":
            outcome = "success" if interspace == scenario.target_level else "wrong_level"
        else:
            outcome = {"posterior_ligament": "ligament", "bone": "bone", "disc": "disc", "nerve": "nerve_root",
                       "joint": "joint"}.get(category, "soft_tissue")
        return outcome, interspace

    def in_target_zone(self, anatomy: Anatomy, scenario, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
        return labels == tissue_table().id("epidural_fat")


#: Interspaces above C6-C7, where a cervical interlaminar injection is not done (reference 3.13,
#: rule 2): the epidural space narrows to 1-2 mm behind the cord.
ABOVE_C6_C7 = ("C2-C3", "C3-C4", "C4-C5", "C5-C6")


class CervicalInterlaminar(Interlaminar):
    """Cervical interlaminar epidural (C7-T1 preferred, never above C6-C7)."""

    injectate_limit_ml = 4.0
    injectate_limit_reason = " (cervical interlaminar: 2-4 mL, reference 3.3)"
    fluoroscopy_checks = (
        ("depth_checked_before_lf", 1.0, "Depth was not checked on a true lateral or a contralateral oblique of "
                                         "50 \N{PLUS-MINUS SIGN} 5\N{DEGREE SIGN} before the needle reached the "
                                         "ligamentum flavum (the shoulders hide the lateral in the low neck)."),
    )
    #: Reference 3.3: CLO 50 +- 5 degrees (Mun 2021).
    clo_range_deg = (45.0, 55.0)
    expert_injectate = (("dexamethasone_10mg_ml", 1.0), ("saline", 2.0))

    def hard_fails(self, metrics, placement, scenario) -> list[str]:
        fails = super().hard_fails(metrics, placement, scenario)
        if placement.interspace in ABOVE_C6_C7 and placement.category in ("epidural", "dura", "intrathecal"):
            fails.append(f"Hard fail: the needle entered the cervical epidural space at {placement.interspace}, above "
                         "C6-C7 (reference 3.13, rule 2).")
        return fails


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
