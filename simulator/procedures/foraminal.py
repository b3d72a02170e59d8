"""Transforaminal epidurals outside the lumbar spine: cervical (reference 3.6), thoracic (3.7) and
S1 (3.5). (Lumbar: :mod:`simulator.procedures.transforaminal`.)

Target zones, from the patient's own anatomy:

- cervical: the fat of the foramen's posterior half, against the front of the superior articular
  process, at mid-height or lower, and no more medial than the middle of the articular pillar on
  AP (within 6 mm of that point);
- thoracic: the foramen's fat under the pedicle, lateral to the pedicle's medial border (as lumbar);
- S1: the fat of the dorsal S1 foramen's medial part, just inside the foramen, not beyond the
  sacrum's ventral cortex.

Danger zones: the vertebral artery in front of a cervical foramen, radicular arteries, the cord and
dura medially, the exiting nerve; the pleura and lung lateral and in front of the thoracic rib
head; the presacral space in front of the sacrum; epidural veins everywhere (drawn by the contrast
model).
"""

from __future__ import annotations

import numpy as np

from simulator.errors import SpineSimError
from simulator.imaging.carm import detector_direction
from simulator.imaging.views import standard_views
from simulator.procedures.anchored import BASE_FEEDBACK, BASE_OUTCOMES, AnchoredProcedure, inside_point
from simulator.procedures.base import PALPATE_AND_ASPIRATE
from simulator.procedures.transforaminal import foramen_anchor

_TF_OUTCOMES = {**BASE_OUTCOMES,
                "success": ("the foramen's target zone", 60.0),
                "wrong_level": ("a foramen, but at the wrong level", 15.0),
                "wrong_side": ("a foramen on the other side", 10.0),
                "too_medial": ("the epidural space medial to the target (near the dura and cord)", 10.0),
                "epidural": ("epidural fat outside the target zone", 20.0),
                "soft_tissue": ("soft tissue short of the foramen", 4.0)}
_TF_CHECKS = (
    ("lateral_with_needle", 1.0, "The needle's depth was not checked on a lateral view."),
    ("live_contrast", 1.0, "Contrast was not given under live fluoroscopy: a single image misses vascular uptake "
                           "(reference 3.13, rule 4)."),
)


class _Foraminal(AnchoredProcedure):
    outcomes = _TF_OUTCOMES
    fluoroscopy_checks = _TF_CHECKS
    landmark_checks = PALPATE_AND_ASPIRATE
    contrast_ml = 1.0
    epidural_injection = True
    transforaminal = True
    injectate_limit_ml = 4.0
    injectate_limit_reason = " (transforaminal: 1-4 mL, reference 3.4)"
    expert_injectate = (("lidocaine_1pct", 1.0), ("dexamethasone_10mg_ml", 1.0))

    def medial_limit_x(self, anatomy, level: str, side: str) -> float:
        """No tip of the zone lies closer to the midline than this, mm."""
        return 0.0

    def zone_shape(self, anatomy, level, side, points):
        near = super().zone_shape(anatomy, level, side, points)
        return near & (np.abs(points[:, 0]) >= self.medial_limit_x(anatomy, level, side))

    def refine_outcome(self, anatomy, tip, tissue, scenario, outcome):
        if outcome == "epidural":
            try:
                limit = self.medial_limit_x(anatomy, scenario.target_level, scenario.side)
            except SpineSimError:
                limit = 0.0
            if abs(float(tip[0])) < limit:
                return "too_medial"
        return super().refine_outcome(anatomy, tip, tissue, scenario, outcome)


class CervicalTransforaminal(_Foraminal):
    levels = ("C3-C4", "C4-C5", "C5-C6", "C6-C7", "C7-T1")
    outcomes = {**_TF_OUTCOMES, "vertebral_artery": ("the vertebral artery (in front of the foramen)", 0.0)}
    feedback = {**BASE_FEEDBACK,
                "success": "The tip ended in the posterior half of the {side} {level} foramen, against the SAP.",
                "too_medial": ("The tip went medial to the middle of the articular pillar on AP: the dura and the "
                               "cord lie there."),
                "epidural": ("The tip is in foraminal fat outside the target: on the oblique view the posterior "
                             "half of the foramen, at mid-height or lower, against the SAP."),
                "bone": ("The tip is on bone (the superior articular process): walk off it anteriorly into the "
                         "posterior half of the foramen."),
                "nerve_root": "The tip is in the exiting nerve: withdraw at once and keep to the back of the foramen."}
    fluoroscopy_checks = (
        ("ap_with_needle", 1.0, "The tip was not checked on AP: it must not pass the middle of the articular pillar."),
        ("live_contrast", 1.0, "Contrast was not given under live fluoroscopy or subtraction: a single image misses "
                               "vertebral and radicular artery uptake (reference 3.13, rule 4)."),
    )
    avoid = ("nerve_root", "dura", "vertebral_artery", "radicular_artery", "carotid_artery", "jugular_vein",
             "airway", "epidural_vein")
    planning_views = ("AP, endplates squared", "foraminal oblique")
    check_view = "AP, endplates squared"
    contrast_view = "AP, endplates squared"
    zone_radius_mm = 6.0
    particulate_forbidden = True
    injectate_limit_ml = 2.0
    injectate_limit_reason = " (cervical transforaminal: 1-2 mL in all, reference 3.6)"
    expert_injectate = (("lidocaine_1pct", 0.5), ("dexamethasone_10mg_ml", 1.0))

    def anchor(self, anatomy, level, side):
        foramen = anatomy.landmark(f"{level}.foramen_{side}_center")
        point = inside_point(anatomy, foramen + np.array([0.0, -8.0, -1.0]), [0.0, 1.0, 0.0], "epidural_fat", 9.0)
        if point is None:
            raise SpineSimError(f"no fat in the back of the {side} {level} foramen for this patient")
        return point

    def medial_limit_x(self, anatomy, level, side):
        return abs(float(anatomy.landmark(f"{level.split('-')[0]}.lateral_mass_{side}_center")[0]))

    def zone_shape(self, anatomy, level, side, points):
        foramen = anatomy.landmark(f"{level}.foramen_{side}_center")
        return super().zone_shape(anatomy, level, side, points) & (points[:, 1] <= foramen[1] + 1.0)

    def approach(self, anatomy, scenario):
        sign = 1.0 if scenario.side == "right" else -1.0
        # from the front of the neck's side, 48-49 degrees off the sagittal plane (Chen, reference 3.6)
        a = np.radians(48.0)
        return np.array([-sign * np.sin(a), -np.cos(a), 0.0])


class ThoracicTransforaminal(_Foraminal):
    levels = ("T1-T2", "T2-T3", "T3-T4", "T4-T5", "T5-T6", "T6-T7", "T7-T8", "T8-T9", "T9-T10", "T10-T11",
              "T11-T12")
    feedback = {**BASE_FEEDBACK,
                "success": "The tip ended in the {side} {level} foramen under the pedicle.",
                "too_medial": ("The tip went medial to the pedicle's middle on AP: the cord lies there; stay under "
                               "the pedicle."),
                "epidural": "The tip is in fat outside the foramen's target: aim under the pedicle.",
                "bone": ("The tip is on bone (the pedicle, the transverse process or the rib): walk off it under "
                         "the pedicle, medial to the rib head.")}
    avoid = ("nerve_root", "dura", "lung", "pleura", "disc_annulus")
    planning_views = ("AP, endplates squared",)
    zone_radius_mm = 10.0

    def anchor(self, anatomy, level, side):
        return foramen_anchor(anatomy, level, side)

    def centre_point(self, anatomy, scenario):
        return anatomy.landmark(f"{scenario.target_level}.foramen_{scenario.side}_center")

    def medial_limit_x(self, anatomy, level, side):
        return abs(float(anatomy.landmark(f"{level.split('-')[0]}.pedicle_{side}_center")[0])) - 2.0

    def approach(self, anatomy, scenario):
        sign = 1.0 if scenario.side == "right" else -1.0
        a = np.radians(15.0)  # a slight ipsilateral oblique, just lateral to the pars (reference 3.7)
        return np.array([-sign * np.sin(a), np.cos(a), 0.0])


class S1Transforaminal(_Foraminal):
    levels = ("S1",)
    outcomes = {**_TF_OUTCOMES, "epidural": ("the sacral canal or another sacral foramen", 20.0)}
    feedback = {**BASE_FEEDBACK,
                "success": "The tip ended in the medial part of the {side} dorsal S1 foramen.",
                "epidural": "The tip is in the sacral canal or another foramen, not the S1 foramen.",
                "bone": ("The tip is on the sacrum: on the S1 foramen view, walk into the dorsal foramen's medial "
                         "part, just below the pedicle."),
                "nerve_root": "The tip is in the S1 root: withdraw and keep to the foramen's medial edge.",
                "presacral": ("The tip went through the S1 foramen to the front of the sacrum: the lateral view must "
                              "show it behind the ventral sacral cortex.")}
    avoid = ("nerve_root", "dura")
    planning_views = ("AP, endplates squared", "S1 foramen")
    zone_radius_mm = 8.0

    def anchor(self, anatomy, level, side):
        sign = 1.0 if side == "right" else -1.0
        dorsal = anatomy.landmark(f"S1.foramen_{side}")
        point = inside_point(anatomy, dorsal + np.array([-sign * 1.5, -6.0, 0.0]), [0.0, 1.0, 0.0], "epidural_fat",
                             20.0)
        if point is None:
            raise SpineSimError(f"no dorsal S1 foramen on the {side} for this patient")
        return point + np.array([0.0, 4.0, 0.0])  # just inside the foramen

    def centre_point(self, anatomy, scenario):
        return anatomy.landmark(f"S1.foramen_{scenario.side}")

    def approach(self, anatomy, scenario):
        views = standard_views(anatomy, "s1_transforaminal", "L5-S1", scenario.side)
        return -detector_direction(*views["S1 foramen"])

    def refine_outcome(self, anatomy, tip, tissue, scenario, outcome):
        if outcome in ("soft_tissue", "organ") and tip[1] > self.target_point(anatomy, scenario)[1] + 20.0:
            return "presacral"
        return super().refine_outcome(anatomy, tip, tissue, scenario, outcome)
