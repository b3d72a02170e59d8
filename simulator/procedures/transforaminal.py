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
from simulator.procedures.base import PALPATE_AND_ASPIRATE, Procedure

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


def medial_border_x(anatomy, scenario) -> float:
    """Distance from the midline of the upper pedicle's medial border (its centre less 3 mm), mm."""
    upper = scenario.target_level.split("-")[0]
    return abs(float(anatomy.landmark(f"{upper}.pedicle_{scenario.side}_center")[0])) - 3.0


def foramen_anchor(anatomy, interspace: str, side: str) -> np.ndarray:
    """The highest point of the foramen's fat under the upper pedicle (the safe triangle's roof),
    with fat all round it for 1 mm."""
    return anatomy.derived(("foramen_anchor", interspace, side), lambda: _foramen_anchor(anatomy, interspace, side))


def _foramen_anchor(anatomy, interspace: str, side: str) -> np.ndarray:
    upper = interspace.split("-")[0]
    pedicle = anatomy.landmark(f"{upper}.pedicle_{side}_center")
    foramen = anatomy.landmark(f"{interspace}.foramen_{side}_center")
    fat = tissue_table().id("epidural_fat")
    around = np.vstack([np.eye(3), -np.eye(3)])
    # the candidates in search order (highest first, the foramen's centre line before either side
    # of it), all asked about at once: the first one in fat with fat round it wins
    candidates = np.array([[foramen[0], foramen[1] + dy, pedicle[2] - dz]
                           for dz in np.arange(2.0, 18.0, 0.5) for dy in (0.0, -1.5, 1.5, -3.0, 3.0)])
    labels = anatomy.tissue_at(np.concatenate([candidates[:, None, :], candidates[:, None, :] + around], axis=1))
    clear = np.nonzero((labels == fat).all(axis=1))[0]
    if clear.size:
        return candidates[clear[0]]
    raise SpineSimError(f"no foraminal fat under the {upper} pedicle on the {side} for this patient")


class LumbarTransforaminal(Procedure):
    outcomes = OUTCOMES
    epidural_injection = True
    transforaminal = True
    injectate_limit_ml = 4.0
    injectate_limit_reason = " (lumbar transforaminal: 1-4 mL, reference 3.4)"
    # a lidocaine test, then dexamethasone, the first choice for lumbar TF (reference 3.13)
    expert_injectate = (("lidocaine_1pct", 1.0), ("dexamethasone_10mg_ml", 1.0))
    feedback = {
        "success": "The tip ended in the {side} {level} foramen below the pedicle.",
        "too_medial": ("The tip went medial to the pedicle, into the canal beside the dural sleeve: on AP the tip "
                       "should stay under the pedicle, not past its medial border."),
        "nerve_root": ("The tip is in the nerve root: withdraw at once on a paraesthesia and aim higher, under the "
                       "pedicle (the safe triangle)."),
        "disc": "The tip is in the disc: too deep and too caudal; aim under the pedicle on the oblique view.",
        "wrong_level": "The tip is in the {interspace} foramen, not {level}: count the levels on AP.",
        "wrong_side": "The tip is on the wrong side: the scenario's target is the {side} foramen.",
        "past_foramen": ("The tip went through the foramen to the front of it: check depth on the lateral view; the "
                         "tip belongs in the posterior half of the foramen."),
        "bone": ("The tip is on bone (the pedicle, the transverse process or the superior articular process): walk "
                 "off it into the foramen under the pedicle."),
    }
    fluoroscopy_checks = (
        ("lateral_with_needle", 1.0, "The needle's depth was not checked on a lateral view."),
        ("live_contrast", 1.0, "Contrast was not given under live fluoroscopy: a single image misses vascular "
                               "uptake (reference 3.13, rule 4)."),
    )
    landmark_checks = PALPATE_AND_ASPIRATE

    def target_point(self, anatomy, scenario) -> np.ndarray:
        return foramen_anchor(anatomy, scenario.target_level, scenario.side)

    def centre_point(self, anatomy, scenario) -> np.ndarray:
        return anatomy.landmark(f"{scenario.target_level}.foramen_{scenario.side}_center")

    def outcome_at(self, anatomy, tip: np.ndarray, tissue, scenario, dural_puncture: bool) -> tuple[str, str]:
        interspace = anatomy.interspace_at(tip)
        category = tissue.category
        sign = 1 if scenario.side == "right" else -1
        if category in ("intrathecal", "dura") or dural_puncture:
            outcome = "intrathecal"
        elif category == "epidural":
            if np.sign(tip[0]) != sign and abs(tip[0]) > 3.0:
                outcome = "wrong_side"
            elif abs(tip[0]) < medial_border_x(anatomy, scenario):
                outcome = "too_medial"
            else:
                outcome = "success" if interspace == scenario.target_level else "wrong_level"
        elif category in ("nerve", "disc", "bone", "vessel", "organ"):
            outcome = {"nerve": "nerve_root"}.get(category, category)
        elif tip[1] > self.target_point(anatomy, scenario)[1] + 3.0:
            outcome = "past_foramen"  # anterior to the foramen: through it, beside the body
        else:
            outcome = "soft_tissue"
        return outcome, interspace

    def in_target_zone(self, anatomy, scenario, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, float)
        near = np.linalg.norm(points - self.target_point(anatomy, scenario), axis=1) <= ZONE_RADIUS_MM
        lateral = np.abs(points[:, 0]) >= medial_border_x(anatomy, scenario)
        return (labels == tissue_table().id("epidural_fat")) & near & lateral


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
