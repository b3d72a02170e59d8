"""Lumbar transforaminal epidural (reference 3.4, 2.8): the needle into the foramen below the
upper vertebra's pedicle on the scenario's side.

Target zone [reference 2.8, 3.14]: the foramen's fat below the pedicle: the "safe triangle" under
the pedicle, above and lateral to the exiting root, and the infraneural (Kambin) position in the
posterior-inferior foramen; both are successes. Found from the patient's own anatomy: the fat
within 10 mm of the highest fat point under the pedicle, at the foramen's depth, on the scenario's
side. Danger zones and consequences:

- the nerve root and its ganglion: paraesthesia, intraneural injection;
- medial to the pedicle, in the canal: the dural sleeve and the thecal sac (intrathecal);
- the disc (too deep and caudal): intradiscal injection;
- radicular arteries and veins: intravascular injection (drawn by the contrast model);
- the kidney at the upper lumbar levels.
"""

from __future__ import annotations

import numpy as np

from simulator.anatomy.tissues import tissue_table
from simulator.errors import SpineSimError
from simulator.needle.needle import TRACK_STEP_MM
from simulator.procedures.base import Placement, Procedure

OUTCOMES = {
    "success": ("the foramen below the pedicle (safe triangle or infraneural)", 60.0),
    "wrong_level": ("a foramen, but at the wrong level", 15.0),
    "wrong_side": ("a foramen on the other side", 10.0),
    "too_medial": ("the epidural space inside the canal, medial to the pedicle (near the dural sleeve)", 20.0),
    "intrathecal": ("intrathecal: the dural sleeve or sac was punctured", 0.0),
    "nerve_root": ("the nerve root (intraneural)", 0.0),
    "disc": ("the disc (too deep and caudal)", 0.0),
    "bone": ("on bone", 8.0),
    "vessel": ("a vessel", 0.0),
    "organ": ("an organ (the kidney)", 0.0),
    "past_foramen": ("soft tissue in front of the foramen (too deep)", 0.0),
    "soft_tissue": ("soft tissue short of the foramen", 4.0),
    "no_needle": ("no needle placed", 0.0),
}
#: How far from the zone's anchor (the highest fat under the pedicle) the zone reaches, mm.
ZONE_RADIUS_MM = 10.0


def side_sign(scenario) -> int:
    return 1 if scenario.side == "right" else -1


def foramen_anchor(anatomy, interspace: str, side: str) -> np.ndarray:
    """The highest point of the foramen's fat under the upper pedicle (the safe triangle's roof),
    with fat all round it for 1 mm."""
    upper = interspace.split("-")[0]
    pedicle = anatomy.landmark(f"{upper}.pedicle_{side}_center")
    foramen = anatomy.landmark(f"{interspace}.foramen_{side}_center")
    fat = tissue_table().id("epidural_fat")
    around = np.vstack([np.eye(3), -np.eye(3)])
    for dz in np.arange(2.0, 18.0, 0.5):
        for dy in (0.0, -1.5, 1.5, -3.0, 3.0):
            point = np.array([foramen[0], foramen[1] + dy, pedicle[2] - dz])
            if anatomy.tissue_at(point[None])[0] == fat and (anatomy.tissue_at(point + around) == fat).all():
                return point
    raise SpineSimError(f"no foraminal fat under the {upper} pedicle on the {side} for this patient")


class LumbarTransforaminal(Procedure):
    outcomes = OUTCOMES

    def target_point(self, anatomy, scenario) -> np.ndarray:
        return foramen_anchor(anatomy, scenario.target_level, scenario.side)

    def centre_point(self, anatomy, scenario) -> np.ndarray:
        return anatomy.landmark(f"{scenario.target_level}.foramen_{scenario.side}_center")

    def classify(self, anatomy, tip_mm, scenario, dural_puncture: bool,
                 tip_tissue_id: int | None = None) -> Placement:
        if tip_mm is None:
            return Placement("no_needle", "none", "none", "", None, None, OUTCOMES["no_needle"][0])
        table = tissue_table()
        tip = np.asarray(tip_mm, float)
        if tip_tissue_id is None:
            tip_tissue_id = int(anatomy.tissue_at(tip[None])[0])
        tissue = table[tip_tissue_id]
        category = tissue.category
        interspace = anatomy.interspace_at(tip)
        anchor = self.target_point(anatomy, scenario)
        distance = float(np.linalg.norm(tip - anchor))
        sign = side_sign(scenario)
        upper = scenario.target_level.split("-")[0]
        medial_border = abs(anatomy.landmark(f"{upper}.pedicle_{scenario.side}_center")[0]) - 3.0
        if category in ("intrathecal", "dura") or dural_puncture:
            outcome = "intrathecal"
        elif category == "nerve":
            outcome = "nerve_root"
        elif category == "epidural":
            if np.sign(tip[0]) != sign and abs(tip[0]) > 3.0:
                outcome = "wrong_side"
            elif abs(tip[0]) < medial_border:
                outcome = "too_medial"
            elif interspace != scenario.target_level:
                outcome = "wrong_level"
            else:
                outcome = "success"
        elif category == "disc":
            outcome = "disc"
        elif category == "bone":
            outcome = "bone"
        elif category == "vessel":
            outcome = "vessel"
        elif category == "organ":
            outcome = "organ"
        elif tip[1] > anchor[1] + 3.0:
            outcome = "past_foramen"  # anterior to the foramen: through it, beside the body
        else:
            outcome = "soft_tissue"
        return Placement(outcome, tissue.name, category, interspace, tuple(float(v) for v in tip), distance,
                         OUTCOMES[outcome][0])

    def in_target_zone(self, anatomy, scenario, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
        anchor = self.target_point(anatomy, scenario)
        near = np.linalg.norm(np.asarray(points, float) - anchor, axis=1) <= ZONE_RADIUS_MM
        upper = scenario.target_level.split("-")[0]
        medial_border = abs(anatomy.landmark(f"{upper}.pedicle_{scenario.side}_center")[0]) - 3.0
        lateral = np.abs(np.asarray(points, float)[:, 0]) >= medial_border
        return (labels == tissue_table().id("epidural_fat")) & near & lateral

    def outcome_feedback(self, placement: Placement, scenario) -> str:
        level, side = scenario.target_level, scenario.side
        if placement.outcome == "success":
            return f"The tip ended in the {side} {level} foramen below the pedicle."
        if placement.outcome == "too_medial":
            return ("The tip went medial to the pedicle, into the canal beside the dural sleeve: on AP the tip "
                    "should stay under the pedicle, not past its medial border.")
        if placement.outcome == "nerve_root":
            return ("The tip is in the nerve root: withdraw at once on a paraesthesia and aim higher, under "
                    "the pedicle (the safe triangle).")
        if placement.outcome == "disc":
            return "The tip is in the disc: too deep and too caudal; aim under the pedicle on the oblique view."
        if placement.outcome == "wrong_level":
            return f"The tip is in the {placement.interspace} foramen, not {level}: count the levels on AP."
        if placement.outcome == "wrong_side":
            return f"The tip is on the wrong side: the scenario's target is the {side} foramen."
        if placement.outcome == "past_foramen":
            return ("The tip went through the foramen to the front of it: check depth on the lateral view; "
                    "the tip belongs in the posterior half of the foramen.")
        if placement.outcome == "bone":
            return ("The tip is on bone (the pedicle, the transverse process or the superior articular "
                    "process): walk off it into the foramen under the pedicle.")
        return super().outcome_feedback(placement, scenario)

    def technique(self, metrics: dict[str, float], guidance: str, expert_images: int) -> tuple[float, list[str]]:
        points, feedback = 0.0, []
        if guidance != "fluoroscopy":
            feedback.append("A transforaminal injection without imaging cannot be done safely (reference 3.13).")
            return points + self.pass_points(metrics, feedback), feedback
        if metrics.get("lateral_with_needle", 0.0):
            points += 5.0
        else:
            feedback.append("The needle's depth was not checked on a lateral view.")
        if metrics.get("live_contrast", 0.0):
            points += 5.0
        else:
            feedback.append("Contrast was not given under live fluoroscopy: a single image misses vascular "
                            "uptake (reference 3.13, rule 4).")
        return points + self.image_points(metrics, expert_images, feedback), feedback


def expert_lines(anatomy, target: np.ndarray, side: str):
    """Lines the expert would use, the preferred first: from a posterolateral entry, turned 20-45
    degrees towards the midline (the oblique "Scotty dog" approach) and 0-10 degrees cranially or
    caudally, clear of bone, nerve root and dura to ``target``. Yields (entry, unit direction)."""
    sign = 1 if side == "right" else -1
    table = tissue_table()
    blocked = table.is_bone.copy()
    for name in ("nerve_root", "dura", "disc_annulus"):
        blocked[table.id(name)] = True
    for medial in (30.0, 25.0, 35.0, 20.0, 40.0, 45.0):
        for cranial in (0.0, 5.0, -5.0, 10.0, -10.0):
            m, c = np.radians(medial), np.radians(cranial)
            d = np.array([-sign * np.sin(m) * np.cos(c), np.cos(m) * np.cos(c), np.sin(c)])
            d = d / np.linalg.norm(d)
            entry = anatomy.skin_entry(target - 200.0 * d, d)
            if entry is None or abs(float(anatomy.skin_signed_distance(entry[None])[0])) > 1.0:
                continue
            length = float(np.linalg.norm(target - entry))
            t = np.arange(0.0, length + TRACK_STEP_MM, TRACK_STEP_MM)
            if not blocked[anatomy.tissue_at(entry + t[:, None] * d)].any():
                yield entry, d
