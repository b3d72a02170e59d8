"""Intra-articular injections: lumbar and cervical facet joints (reference 3.11) and the
sacroiliac joint (reference 3.8).

Target zones, from the patient's own anatomy:

- facet: the joint space (synovial cleft and recesses) within 10 mm of the joint's centre at the
  scenario's level and side; the beam, and the needle, run along the joint's plane from behind
  (lumbar: an ipsilateral oblique; cervical: a posterior approach with caudal tilt);
- sacroiliac joint: the joint within 12 mm of a point on the posterior joint line in its lower
  third (the inferior 1-2 cm), reached along the SIJ oblique.

Danger zones: the foramen and root in front of a facet joint, the dura medial to it, the
vertebral artery in front of a cervical pillar; for the SIJ, the pelvis in front of the sacrum
(too deep) and the S1/S2 foramina and roots medially.
"""

from __future__ import annotations

import numpy as np

from simulator.geometry import frames
from simulator.imaging.carm import detector_direction
from simulator.imaging.views import standard_views
from simulator.procedures.base import PALPATE_AND_ASPIRATE
from simulator.procedures.anchored import BASE_FEEDBACK, BASE_OUTCOMES, AnchoredProcedure, first_hit

_JOINT_CHECKS = (
    ("level_confirmed_on_ap", 1.0, "The level was not confirmed on an AP image before needling."),
    ("contrast_imaged", 1.0, "No arthrogram: a small volume of contrast confirms the tip is in the joint before "
                             "the injectate goes in."),
)


def _along_joint(anatomy, interspace: str, side: str, fallback_deg: float) -> np.ndarray:
    """The direction in the joint's plane nearest to one ``fallback_deg`` from straight forward
    towards the midline (0: from behind; 90: from the side)."""
    sign = 1.0 if side == "right" else -1.0
    a = np.radians(fallback_deg)
    wanted = np.array([-sign * np.sin(a), np.cos(a), 0.0])
    normal = anatomy.facet_normal(interspace, side)
    if normal is None:
        return wanted
    return frames.unit(wanted - (wanted @ normal) * normal)


class Facet(AnchoredProcedure):
    """Facet (zygapophyseal) joint, intra-articular, at the scenario's interspace and side."""

    outcomes = {**BASE_OUTCOMES,
                "success": ("the facet joint (intra-articular)", 60.0),
                "wrong_level": ("a facet joint, but at the wrong level", 15.0),
                "wrong_side": ("a facet joint, but on the other side", 10.0),
                "bone": ("on the articular processes, not in the joint", 20.0),
                "soft_tissue": ("soft tissue behind the joint (periarticular)", 10.0)}
    feedback = {**BASE_FEEDBACK,
                "success": "The tip ended in the {side} {level} facet joint.",
                "bone": ("The tip is on the articular processes, not in the joint: walk it off the bone into the "
                         "posterior joint line on the view along the joint (feel the give)."),
                "soft_tissue": ("The tip is periarticular: an injection there is not intra-articular; advance into "
                                "the joint line until the capsule gives."),
                "epidural": ("The tip passed the joint into the foramen or the epidural space: too deep and too "
                             "anterior."),
                "nerve_root": "The tip went past the joint into the exiting root: too deep.",
                "wrong_level": "The tip is in the {interspace} joint, not {level}: count the levels on the AP image.",
                "wrong_side": "The tip is in a joint on the wrong side: the scenario's target is the {side} joint."}
    fluoroscopy_checks = _JOINT_CHECKS
    landmark_checks = PALPATE_AND_ASPIRATE
    zone_tissues = ("facet_joint",)
    zone_radius_mm = 10.0
    avoid = ("nerve_root", "dura", "epidural_fat", "vertebral_artery")
    check_view = "lateral"
    contrast_view = "facet view (along the joint)"
    planning_views = ("AP, endplates squared", "facet view (along the joint)")
    #: The approach, degrees from straight forward towards the midline (projected on the joint).
    approach_deg = 45.0

    def anchor(self, anatomy, level: str, side: str) -> np.ndarray:
        return anatomy.landmark(f"{level}.facet_{side}_center")

    def approach(self, anatomy, scenario) -> np.ndarray:
        return _along_joint(anatomy, scenario.target_level, scenario.side, self.approach_deg)

    def expert_targets(self, anatomy, scenario) -> list[np.ndarray]:
        """Just inside the joint line where a needle along the joint first meets it (the posterior
        joint line, the recesses), over a small spread either side of the anchor: a joint 1-2 mm
        wide is entered at its edge, not threaded to its centre."""
        return joint_line_targets(self, anatomy, scenario)


def joint_line_targets(proc: AnchoredProcedure, anatomy, scenario) -> list[np.ndarray]:
    """Points 1.5 mm inside the target joint along the approach, from lines parallel to it within
    6 mm of the anchor, nearest the anchor first."""
    anchor = proc.target_point(anatomy, scenario)
    d = frames.unit(proc.approach(anatomy, scenario))
    a = frames.unit(np.cross(d, frames.SUPERIOR if abs(d[2]) < 0.9 else frames.RIGHT))
    b = np.cross(d, a)
    tissue = proc.zone_tissues[0]
    found = []
    for u in np.arange(-6.0, 6.01, 1.5):
        for v in np.arange(-6.0, 6.01, 1.5):
            start = anchor + u * a + v * b - 40.0 * d
            hit = first_hit(anatomy, start, d, (tissue,), reach_mm=60.0)
            if hit is None:
                continue
            point = hit + 1.5 * d
            inside = proc.in_target_zone(anatomy, scenario, anatomy.tissue_at(point[None]), point[None])[0]
            if inside:
                found.append((float(np.hypot(u, v)), tuple(point)))
    return [np.array(p) for _, p in sorted(found)] or [anchor]


class LumbarFacet(Facet):
    levels = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")
    contrast_ml = 0.5  # 0.3-0.5 mL fills the joint and both recesses (reference 3.11)
    injectate_limit_ml = 1.5
    injectate_limit_reason = " (lumbar facet: 1-1.5 mL; more ruptures the capsule, reference 3.11)"
    expert_injectate = (("bupivacaine_0_25pct", 0.5), ("methylprednisolone_acetate_40mg_ml", 0.5))


class CervicalFacet(Facet):
    levels = ("C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7", "C7-T1")
    contrast_ml = 0.3  # the cervical joint holds 0.5-1 mL in all (reference 3.11)
    injectate_limit_ml = 1.0
    injectate_limit_reason = " (cervical facet: 0.5-1 mL, reference 3.11)"
    expert_injectate = (("bupivacaine_0_25pct", 0.3), ("methylprednisolone_acetate_40mg_ml", 0.2))
    # the lateral approach (patient in lateral decubitus or prone, a true lateral view): along the
    # joint from the side; from behind the needle would need 12 cm to reach the joint's plane
    approach_deg = 90.0
    outcomes = {**Facet.outcomes, "vertebral_artery": ("the vertebral artery (in front of the pillar)", 0.0)}
    feedback = {**Facet.feedback,
                "intrathecal": "The tip went medially into the dura: the cord lies medial to the pillar; stay on "
                               "the joint line over the pillar."}


class SacroiliacJoint(AnchoredProcedure):
    """Sacroiliac joint, intra-articular, at its inferior posterior joint line."""

    levels = ("inferior_joint",)
    done_by_landmarks = True  # blind SIJ injections are done, though mostly extra-articular
    outcomes = {**BASE_OUTCOMES,
                "success": ("the sacroiliac joint, in its lower third", 60.0),
                "wrong_level": ("the sacroiliac joint, but above its lower third", 30.0),
                "wrong_side": ("the other sacroiliac joint", 10.0),
                "joint": ("the sacroiliac joint, above its lower third", 30.0),
                "bone": ("on the ilium or the sacrum, not in the joint", 20.0),
                "epidural": ("an S1 or S2 foramen (medial to the joint)", 0.0),
                "soft_tissue": ("the ligaments behind the joint (periarticular)", 10.0)}
    feedback = {**BASE_FEEDBACK,
                "success": "The tip ended in the lower third of the {side} sacroiliac joint.",
                "joint": ("The tip is in the sacroiliac joint but above its lower third: the inferior 1-2 cm is "
                          "where the joint opens to a needle."),
                "bone": ("The tip is on the ilium or the sacrum: on the SIJ oblique, aim at the lucent inferior "
                         "joint line between the two cortices."),
                "epidural": "The tip went medially into a sacral foramen: the joint line is lateral to the foramina.",
                "nerve_root": "The tip went medially into a sacral root: the joint line is lateral to the foramina.",
                "soft_tissue": ("The tip is periarticular, in the ligaments behind the joint: advance into the joint "
                                "line until the resistance changes."),
                "wrong_side": "The tip is in the other sacroiliac joint: the scenario's target is the {side} one."}
    fluoroscopy_checks = (
        ("lateral_with_needle", 1.0, "Depth was not checked on a lateral view: the tip must not be ventral to the "
                                     "sacrum."),
        ("contrast_imaged", 1.0, "No arthrogram: palpation and feel cannot confirm an intra-articular tip; contrast "
                                 "must outline the joint line."),
    )
    landmark_checks = (
        ("palpations", 1.0, "The posterior superior iliac spine was not palpated."),
        ("aspirations", 1.0, "There was no aspiration before the injection."),
    )
    zone_tissues = ("sacroiliac_joint",)
    zone_radius_mm = 12.0
    # the SIJ oblique's own cephalad tilt opens the lower joint (reference 3.8): no endplate
    squares_endplates = False
    avoid = ("nerve_root", "epidural_fat")
    planning_views = ("AP, endplates squared", "SIJ oblique")
    check_view = "lateral"
    contrast_view = "SIJ oblique"
    contrast_ml = 1.0  # 0.5-1 mL first, under 2.5 mL in all (reference 3.8)
    injectate_limit_ml = 2.5
    injectate_limit_reason = " (sacroiliac joint: under 2.5 mL; the joint leaks, reference 3.8)"
    expert_injectate = (("bupivacaine_0_5pct", 1.0), ("methylprednisolone_acetate_40mg_ml", 1.0))

    def anchor(self, anatomy, level: str, side: str) -> np.ndarray:
        return anatomy.landmark(f"sij_{side}_lower_third")

    def centre_point(self, anatomy, scenario) -> np.ndarray:
        return self.target_point(anatomy, scenario)

    def approach(self, anatomy, scenario) -> np.ndarray:
        views = standard_views(anatomy, "sacroiliac_joint", "L5-S1", scenario.side)
        return -detector_direction(*views["SIJ oblique"])

    def expert_targets(self, anatomy, scenario) -> list[np.ndarray]:
        return joint_line_targets(self, anatomy, scenario)

    def refine_outcome(self, anatomy, tip, tissue, scenario, outcome):
        if outcome in ("soft_tissue", "organ") and tip[1] > self.target_point(anatomy, scenario)[1] + 15.0:
            return "presacral"  # through the joint into the pelvis
        return super().refine_outcome(anatomy, tip, tissue, scenario, outcome)
