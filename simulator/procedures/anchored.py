"""Procedures whose target zone lies round one anchor point per level and side: the joints (facet,
sacroiliac), the medial branches on bone, and the foramina (cervical, thoracic, S1).

Each such procedure says, from the patient's own anatomy, where its anchor is at a level and side,
which tissue the zone is made of (or bone, for a tip that must rest on it), and how far the zone
reaches. A tip in the zone's tissue near the scenario's anchor is a success; near another level's
or side's anchor it is at the wrong level or side; anywhere else the tissue names the outcome
(nerve root, vessel, dura, pleura, ...), each with its consequence in the feedback.

The expert's lines are searched in a cone round the procedure's usual approach (the trajectory
view's beam, as a coaxial needle is aimed), clear of bone and the procedure's danger tissues.
"""

from __future__ import annotations

import re
import weakref

import numpy as np

from simulator.anatomy.tissues import tissue_table
from simulator.errors import SpineSimError
from simulator.geometry import frames
from simulator.needle.needle import TRACK_STEP_MM
from simulator.procedures.base import Procedure

#: Outcomes every anchored procedure shares: (description, placement points of 60). Procedures
#: add their own and may reword these.
BASE_OUTCOMES = {
    "success": ("the target zone", 60.0),
    "wrong_level": ("the right structure, but at the wrong level", 15.0),
    "wrong_side": ("the right structure, but on the other side", 10.0),
    "intrathecal": ("intrathecal: the dura was punctured", 0.0),
    "nerve_root": ("the nerve root (intraneural)", 0.0),
    "vessel": ("a vessel", 0.0),
    "vertebral_artery": ("the vertebral artery", 0.0),
    "disc": ("the disc", 0.0),
    "bone": ("on bone, off the target", 8.0),
    "joint": ("a joint that is not the target", 5.0),
    "epidural": ("the epidural space or a foramen (not the target: the injectate spreads to the roots)", 5.0),
    "pleura": ("the pleura or lung (pneumothorax)", 0.0),
    "organ": ("an organ", 0.0),
    "presacral": ("in front of the sacrum (the presacral space, pelvis)", 0.0),
    "soft_tissue": ("soft tissue, short of or beside the target", 4.0),
    "no_needle": ("no needle placed", 0.0),
}
#: Which outcome a tissue's category (or, first, its name) gives outside the zone.
_OUTCOME_OF = {"dura": "intrathecal", "intrathecal": "intrathecal", "nerve": "nerve_root", "vessel": "vessel",
               "vertebral_artery": "vertebral_artery", "disc": "disc", "bone": "bone", "cartilage": "bone",
               "joint": "joint", "epidural": "epidural", "lung": "pleura", "pleura": "pleura", "organ": "organ",
               "airway": "organ", "presacral": "presacral"}
BASE_FEEDBACK = {
    "intrathecal": "The tip went through the dura: stop, withdraw and do not inject (a high or total spinal).",
    "nerve_root": "The tip is in the nerve root: withdraw at once on a paraesthesia and redirect.",
    "vessel": "The tip is in a vessel: aspirate, inject contrast under live imaging and reposition on a vascular "
              "pattern.",
    "vertebral_artery": "The tip is in the vertebral artery: an injection here risks a brainstem infarct; stay in "
                        "the posterior half of the foramen on the oblique view.",
    "disc": "The tip is in the disc: too deep.",
    "pleura": "The tip reached the pleura or lung: a pneumothorax risk; stay medial, under the pedicle and "
              "behind the rib head.",
    "organ": "The tip reached an organ: far too deep; check depth on a lateral view.",
    "presacral": "The tip went through to the front of the sacrum (presacral space, pelvis): check depth on the "
                 "lateral view.",
    "wrong_level": "The tip is at {interspace}, not {level}: count the levels on the AP image.",
    "wrong_side": "The tip is on the wrong side: the scenario's target is on the {side}.",
}

#: Bone at the tip: the zone is a bony surface the tip rests on.
ON_BONE = "bone"

_ANCHORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class AnchoredProcedure(Procedure):
    """A procedure whose zone lies round an anchor at each (level, side)."""

    outcomes = BASE_OUTCOMES
    feedback = BASE_FEEDBACK
    #: The levels scenarios may target (the schema's) and the sides.
    levels: tuple[str, ...] = ()
    sides: tuple[str, ...] = ("left", "right")
    #: Tissue names of the zone, or :data:`ON_BONE`.
    zone_tissues: tuple[str, ...] = ("epidural_fat",)
    zone_radius_mm = 8.0
    #: Tissues the expert's line keeps clear of (bone always).
    avoid: tuple[str, ...] = ("nerve_root", "dura")
    #: The standard views the expert takes before needling (the first is the level check) and after
    #: (depth and the contrast view), by their names in :func:`~simulator.imaging.views.standard_views`.
    planning_views: tuple[str, ...] = ("AP, endplates squared",)
    check_view = "lateral"
    contrast_view = "AP, endplates squared"
    contrast_ml = 0.5

    # ------------------------------------------------------------------ what each procedure says
    def anchor(self, anatomy, level: str, side: str) -> np.ndarray:
        """The zone's anchor at ``level`` and ``side`` (world mm); :class:`SpineSimError` if the
        patient's anatomy has none."""
        raise NotImplementedError

    def approach(self, anatomy, scenario) -> np.ndarray:
        """The usual needle direction (unit, skin to target) the expert's cone is centred on."""
        raise NotImplementedError

    def zone_shape(self, anatomy, level: str, side: str, points: np.ndarray) -> np.ndarray:
        """Which ``points`` lie within the zone's reach of its anchor (before the tissue test)."""
        return np.linalg.norm(points - self.cached_anchor(anatomy, level, side), axis=1) <= self.zone_radius_mm

    def views_interspace(self, level: str) -> str:
        """The interspace whose standard views show the target at ``level``."""
        return level if "-" in level else "L5-S1"

    def palpation_landmarks(self, scenario) -> tuple[str, ...]:
        """What the hand finds the level by in landmark mode: the spinous processes of the level's
        vertebrae, or the posterior superior iliac spine for the sacrum."""
        vertebrae = [v for v in re.split("[-]", scenario.target_level) if re.fullmatch("[CTL][0-9]+", v)]
        if not vertebrae:
            return (f"psis_{scenario.side if scenario.side != 'midline' else 'right'}",)
        return tuple(f"{v}.spinous_tip" for v in vertebrae)

    # ------------------------------------------------------------------ shared machinery
    def cached_anchor(self, anatomy, level: str, side: str) -> np.ndarray:
        cache = _ANCHORS.setdefault(anatomy, {})
        key = (type(self).__name__, level, side)
        if key not in cache:
            try:
                cache[key] = np.asarray(self.anchor(anatomy, level, side), float)
            except (SpineSimError, KeyError) as error:
                cache[key] = error
        found = cache[key]
        if isinstance(found, Exception):
            raise SpineSimError(str(found))
        return found

    def target_point(self, anatomy, scenario) -> np.ndarray:
        return self.cached_anchor(anatomy, scenario.target_level, scenario.side)

    def _zone_tissue(self, tissue_id: int) -> bool:
        table = tissue_table()
        if self.zone_tissues == (ON_BONE,):
            return bool(table.is_bone[tissue_id])
        return table[tissue_id].name in self.zone_tissues

    def _anchors(self, anatomy):
        """(level, side, anchor) for every level and side the patient's anatomy has."""
        for level in self.levels:
            for side in self.sides:
                try:
                    yield level, side, self.cached_anchor(anatomy, level, side)
                except SpineSimError:
                    continue

    def site_of(self, anatomy, point: np.ndarray) -> tuple[str, str] | None:
        """The (level, side) whose zone (by shape) holds ``point``, nearest anchor first."""
        found = [(float(np.linalg.norm(point - anchor)), level, side) for level, side, anchor in self._anchors(anatomy)
                 if self.zone_shape(anatomy, level, side, point[None])[0]]
        return None if not found else min(found)[1:]

    def outcome_at(self, anatomy, tip: np.ndarray, tissue, scenario, dural_puncture: bool) -> tuple[str, str]:
        table = tissue_table()
        if tissue.category in ("intrathecal", "dura") or dural_puncture:
            return "intrathecal", self._where(anatomy, tip)
        if self._zone_tissue(table.id(tissue.name)):
            site = self.site_of(anatomy, tip)
            if site is not None:
                level, side = site
                if side != scenario.side and scenario.side in self.sides:
                    return "wrong_side", level
                return ("success" if level == scenario.target_level else "wrong_level"), level
        outcome = _OUTCOME_OF.get(tissue.name) or _OUTCOME_OF.get(tissue.category, "soft_tissue")
        outcome = self.refine_outcome(anatomy, tip, tissue, scenario, outcome)
        return outcome, self._where(anatomy, tip)

    def refine_outcome(self, anatomy, tip: np.ndarray, tissue, scenario, outcome: str) -> str:
        """A procedure's own reading of a tip outside its zone (e.g. too deep in front of the
        sacrum); the tissue's outcome by default."""
        return outcome if outcome in self.outcomes else "soft_tissue"

    def _where(self, anatomy, tip: np.ndarray) -> str:
        """The level whose anchor is nearest ``tip``."""
        nearest = min(((float(np.linalg.norm(tip - anchor)), level) for level, _, anchor in self._anchors(anatomy)),
                      default=(0.0, ""))
        return nearest[1]

    def in_target_zone(self, anatomy, scenario, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, float)
        shape = self.zone_shape(anatomy, scenario.target_level, scenario.side, points)
        if self.zone_tissues == (ON_BONE,):
            # the bone's surface layer the tip rests on, shown as a shell round the anchor
            return shape & tissue_table().is_bone[labels] & _surface(anatomy, points)
        names = np.array([tissue_table().id(n) for n in self.zone_tissues])
        return shape & np.isin(labels, names)

    # ------------------------------------------------------------------ the expert's lines
    def expert_targets(self, anatomy, scenario) -> list[np.ndarray]:
        """Points the expert may aim at, the preferred first (the anchor by default)."""
        return [self.target_point(anatomy, scenario)]

    def expert_lines(self, anatomy, scenario, target: np.ndarray):
        """Straight lines from the skin to ``target`` within 30 degrees of :meth:`approach`, the
        nearest to it first, clear of bone and of :attr:`avoid` (for a target on bone, up to the
        last 2 mm). Yields (entry, unit direction)."""
        table = tissue_table()
        blocked = table.is_bone.copy()
        for name in self.avoid:
            blocked[table.id(name)] = True
        on_bone = self.zone_tissues == (ON_BONE,)
        axis = frames.unit(self.approach(anatomy, scenario))
        side_a = frames.unit(np.cross(axis, frames.ANTERIOR if abs(axis[1]) < 0.9 else frames.RIGHT))
        side_b = np.cross(axis, side_a)
        for cone_deg in (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0):
            for azimuth in np.radians(np.arange(0.0, 360.0, 45.0 if cone_deg else 360.0)):
                c = np.radians(cone_deg)
                d = np.cos(c) * axis + np.sin(c) * (np.cos(azimuth) * side_a + np.sin(azimuth) * side_b)
                entry = anatomy.skin_entry(target - 250.0 * d, d)
                if entry is None or abs(float(anatomy.skin_signed_distance(entry[None])[0])) > 1.0:
                    continue
                length = float(np.linalg.norm(target - entry)) - (2.0 if on_bone else 0.0)
                t = np.arange(0.0, length, TRACK_STEP_MM)
                if not blocked[anatomy.tissue_at(entry + t[:, None] * d)].any():
                    yield entry, d


def _surface(anatomy, points: np.ndarray) -> np.ndarray:
    """Which ``points`` have soft tissue within 1.5 mm (bone's outer layer)."""
    is_bone = tissue_table().is_bone
    near_soft = np.zeros(len(points), bool)
    for offset in np.vstack([np.eye(3), -np.eye(3)]) * 1.5:
        near_soft |= ~is_bone[anatomy.tissue_at(points + offset)]
    return near_soft


def first_hit(anatomy, start: np.ndarray, direction, tissues=None, reach_mm: float = 80.0,
              step_mm: float = 0.25) -> np.ndarray | None:
    """The first point along a ray from ``start`` in bone (or in one of ``tissues``, names)."""
    table = tissue_table()
    wanted = table.is_bone.copy() if tissues is None else np.isin(np.arange(len(table.is_bone)),
                                                                  [table.id(n) for n in tissues])
    d = frames.unit(np.asarray(direction, float))
    t = np.arange(0.0, reach_mm, step_mm)
    labels = anatomy.tissue_at(np.asarray(start, float) + t[:, None] * d)
    hits = np.nonzero(wanted[labels])[0]
    return None if not len(hits) else np.asarray(start, float) + t[hits[0]] * d


def inside_point(anatomy, start: np.ndarray, direction, tissue: str, reach_mm: float = 25.0,
                 margin_mm: float = 1.0) -> np.ndarray | None:
    """The first point along a ray from ``start`` in ``tissue`` with that tissue all round it for
    ``margin_mm``."""
    wanted = tissue_table().id(tissue)
    d = frames.unit(np.asarray(direction, float))
    around = np.vstack([np.eye(3), -np.eye(3)]) * margin_mm
    for t in np.arange(0.0, reach_mm, 0.5):
        point = np.asarray(start, float) + t * d
        if anatomy.tissue_at(point[None])[0] == wanted and (anatomy.tissue_at(point + around) == wanted).all():
            return point
    return None
