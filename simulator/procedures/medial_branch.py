"""Medial branch blocks: lumbar (with the L5 dorsal ramus, reference 3.9) and cervical (with the
third occipital nerve, reference 3.10). The tip must rest on bone where the nerve crosses it.

Target zones, from the patient's own anatomy (the scenario's level names the nerve):

- lumbar ``L1``-``L4`` medial branch: the dorsal surface of the next vertebra's transverse
  process at its junction with the superior articular process (the Ln branch crosses the root of
  the L(n+1) transverse process), within 5 mm; ``L5``: the dorsal ramus in the groove between the
  sacral ala and the S1 superior articular process;
- cervical ``C3``-``C7``: the lateral waist of the articular pillar at its centroid on the lateral
  view (C3, C4 and C6 slightly above it), within 5 mm on the lateral view, on the pillar's lateral
  half; ``TON`` (third occipital nerve): the lateral surface over the C2-C3 joint; ``C8``: the
  junction of the T1 superior articular and transverse processes (reference 3.14).

Danger zones: the foramen and spinal nerve (a tip too cranial or anterior blocks the nerve: a false
positive block), vessels, the dura; in the neck the vertebral artery in front of the pillar.
"""

from __future__ import annotations

import numpy as np

from simulator.errors import SpineSimError
from simulator.geometry import frames
from simulator.procedures.base import PALPATE_AND_ASPIRATE
from simulator.procedures.anchored import BASE_FEEDBACK, BASE_OUTCOMES, ON_BONE, AnchoredProcedure, first_hit

_OUTCOMES = {**BASE_OUTCOMES,
             "success": ("on bone where the nerve crosses it", 60.0),
             "wrong_level": ("on the target bone, but at the wrong level", 10.0),
             "wrong_side": ("on the target bone, but on the other side", 5.0),
             "bone": ("on bone, but off the nerve's course", 20.0),
             "epidural": ("the foramen (a spinal nerve block, not a medial branch block)", 0.0),
             "soft_tissue": ("soft tissue, not on bone", 5.0)}
_FEEDBACK = {**BASE_FEEDBACK,
             "epidural": ("The tip went into the foramen: the injectate blocks the spinal nerve and the block is "
                          "falsely positive; stay on bone, no higher than the mid-height of the SAP base."),
             "soft_tissue": "The tip is not on bone: a medial branch block is done with the tip resting on bone.",
             "wrong_level": "The tip is on the {interspace} target, not {level}: count the levels on the AP image."}


class LumbarMedialBranch(AnchoredProcedure):
    levels = ("L1", "L2", "L3", "L4", "L5")
    outcomes = _OUTCOMES
    feedback = {**_FEEDBACK,
                "success": "The tip rests on the {side} target of the {level} nerve.",
                "bone": ("The tip is on bone but off the junction of the transverse and superior articular "
                         "processes: walk it to the 'eye' of the Scotty dog, mid-way along the SAP base."),
                "nerve_root": "The tip reached the spinal nerve: too cranial and anterior; stay on the TP-SAP junction."}
    fluoroscopy_checks = (
        ("ap_with_needle", 1.0, "The tip was not confirmed on an AP image (on the SAP-TP junction, not above the "
                                "transverse process)."),
        ("contrast_imaged", 1.0, "No contrast test: a tip on the target can still be in a vein (8% in Dreyfuss "
                                 "1997)."),
    )
    landmark_checks = PALPATE_AND_ASPIRATE
    zone_tissues = (ON_BONE,)
    zone_radius_mm = 5.0
    avoid = ("nerve_root", "dura", "epidural_fat", "kidney")
    planning_views = ("AP, endplates squared", "ipsilateral oblique (Scotty dog)")
    check_view = "AP, endplates squared"
    contrast_view = "AP, endplates squared"
    contrast_ml = 0.3  # 0.3-0.5 mL per nerve keeps the block specific (reference 3.9)
    injectate_limit_ml = 0.5
    injectate_limit_reason = " (medial branch block: 0.3-0.5 mL per nerve keeps it specific, reference 3.9)"
    expert_injectate = (("bupivacaine_0_5pct", 0.4),)

    def views_interspace(self, level: str) -> str:
        """The interspace whose views show the target (the joint below the target bone's
        vertebra)."""
        return {"L1": "L2-L3", "L2": "L3-L4", "L3": "L4-L5", "L4": "L5-S1", "L5": "L5-S1"}[level]

    def anchor(self, anatomy, level: str, side: str) -> np.ndarray:
        sign = 1.0 if side == "right" else -1.0
        if level == "L5":
            # the groove between the ala and the S1 SAP: below the L5-S1 joint, lateral to the SAP
            # base, on the bone's dorsal surface
            joint = anatomy.landmark(f"L5-S1.facet_{side}_center")
            start = joint + np.array([sign * 9.0, -40.0, -12.0])
        else:
            start = anatomy.landmark(f"L{int(level[1]) + 1}.sap_tp_junction_{side}") + np.array([0.0, -40.0, 0.0])
        hit = first_hit(anatomy, start, frames.ANTERIOR, reach_mm=60.0)
        if hit is None:
            raise SpineSimError(f"no bone under the {level} medial branch target on the {side}")
        return hit - 0.5 * frames.ANTERIOR

    def approach(self, anatomy, scenario) -> np.ndarray:
        sign = 1.0 if scenario.side == "right" else -1.0
        a = np.radians(20.0)  # the Scotty dog oblique, 15-30 degrees (reference 3.9)
        return np.array([-sign * np.sin(a), np.cos(a), 0.0])


class CervicalMedialBranch(AnchoredProcedure):
    levels = ("TON", "C3", "C4", "C5", "C6", "C7", "C8")
    outcomes = {**_OUTCOMES, "vertebral_artery": ("the vertebral artery (in front of the pillar)", 0.0)}
    feedback = {**_FEEDBACK,
                "success": "The tip rests on the {side} articular pillar at the {level} nerve's course.",
                "bone": ("The tip is on bone but off the nerve's course: on the lateral view, the centroid of the "
                         "articular pillar; on AP, the deepest point of its waist."),
                "nerve_root": "The tip reached the exiting nerve in front of the pillar: too anterior."}
    fluoroscopy_checks = (
        ("lateral_with_needle", 1.0, "The tip was not checked on a lateral view (the centroid of the pillar)."),
        ("ap_with_needle", 1.0, "The tip was not checked on an AP view (the waist of the pillar, not medial to "
                                "it)."),
    )
    landmark_checks = PALPATE_AND_ASPIRATE
    zone_tissues = (ON_BONE,)
    zone_radius_mm = 5.0
    avoid = ("nerve_root", "dura", "epidural_fat", "vertebral_artery", "carotid_artery", "jugular_vein", "airway")
    planning_views = ("AP, endplates squared", "lateral")
    check_view = "AP, endplates squared"
    contrast_view = "lateral"
    contrast_ml = 0.3  # 0.25-0.5 mL per level (reference 3.10)
    injectate_limit_ml = 0.5
    injectate_limit_reason = " (cervical medial branch block: 0.25-0.5 mL per level, reference 3.10)"
    expert_injectate = (("bupivacaine_0_5pct", 0.3),)

    def views_interspace(self, level: str) -> str:
        return {"TON": "C2-C3", "C3": "C3-C4", "C4": "C4-C5", "C5": "C5-C6", "C6": "C6-C7", "C7": "C7-T1",
                "C8": "T1-T2"}[level]

    def outcome_feedback(self, placement, scenario) -> str:
        if placement.outcome == "success" and scenario.target_level == "C8":
            return (f"The tip rests on the {scenario.side} T1 transverse process where it meets the superior "
                    "articular process, on the C8 nerve's course.")
        return super().outcome_feedback(placement, scenario)

    def centroid(self, anatomy, level: str, side: str) -> np.ndarray:
        """Where the nerve crosses, seen on the lateral view (y, z matter)."""
        if level == "TON":
            return anatomy.landmark(f"C2-C3.facet_{side}_center")
        centre = anatomy.landmark(f"{level}.lateral_mass_{side}_center")
        # C3, C4 and C6 run slightly above the waist (reference 3.10)
        return centre + (1.5 * frames.SUPERIOR if level in ("C3", "C4", "C6") else 0.0)

    def anchor(self, anatomy, level: str, side: str) -> np.ndarray:
        sign = 1.0 if side == "right" else -1.0
        if level == "C8":
            return _c8_anchor(anatomy, side)
        centroid = self.centroid(anatomy, level, side)
        # the TON crosses the lateral C2-C3 joint: its surface is joint as well as bone
        surface = ("cortical_bone", "cancellous_bone", "facet_joint") if level == "TON" else None
        hit = first_hit(anatomy, centroid + np.array([sign * 30.0, 0.0, 0.0]), [-sign, 0.0, 0.0], surface,
                        reach_mm=30.0)
        if hit is None:
            raise SpineSimError(f"no articular pillar under the {level} target on the {side}")
        return hit + np.array([sign * 0.5, 0.0, 0.0])

    def zone_shape(self, anatomy, level: str, side: str, points: np.ndarray) -> np.ndarray:
        if level == "C8":  # on the T1 transverse process: a spot, as in the lumbar spine
            return super().zone_shape(anatomy, level, side, points)
        centroid = self.centroid(anatomy, level, side)
        on_lateral = np.linalg.norm(points[:, 1:] - centroid[1:], axis=1) <= self.zone_radius_mm
        lateral_half = np.abs(points[:, 0]) >= abs(float(centroid[0])) - 1.0
        near = np.linalg.norm(points - self.cached_anchor(anatomy, level, side), axis=1) <= 8.0
        return on_lateral & lateral_half & near

    def approach(self, anatomy, scenario) -> np.ndarray:
        sign = 1.0 if scenario.side == "right" else -1.0
        # the posterior approach: from behind and to the side, onto the waist of the pillar (C8:
        # onto the T1 transverse process from behind, a little oblique, as in the lumbar spine)
        a = np.radians(20.0 if scenario.target_level == "C8" else 35.0)
        return np.array([-sign * np.sin(a), np.cos(a), 0.0])


def _c8_anchor(anatomy, side: str) -> np.ndarray:
    """The C8 medial branch target (reference 3.10): where the T1 superior articular process meets
    the transverse process, found as the lumbar junction is, on the bone's dorsal surface just
    lateral to and above the pedicle's back."""
    sign = 1.0 if side == "right" else -1.0
    root = anatomy.landmark(f"T1.pedicle_{side}_center") + np.array([sign * 5.0, 0.0, 1.5])
    hit = first_hit(anatomy, root + 40.0 * frames.POSTERIOR, frames.ANTERIOR, reach_mm=60.0)
    if hit is None:
        raise SpineSimError(f"no bone under the C8 medial branch target on the {side}")
    return hit - 0.5 * frames.ANTERIOR
