"""Caudal epidural: through the sacral hiatus into the sacral canal (reference 3.1).

Target zone [D, reference 3.1: "cephalad limit not above S3", "advance no more than about 2 cm
beyond the hiatus apex"]: the epidural fat of the sacral canal from the hiatus apex up to the upper
border of S3 (half-way between the S2 and S3 dorsal foramina; about 2 cm above the apex, which lies
near the S3-S4 border in most patients), found from the patient's own sacrum. Danger zones and their consequences:

- the canal above S3, towards the dural sac (which ends at S2 on average, S1-S3): a high or
  intrathecal block;
- the dural sac itself: intrathecal injection;
- dorsal to the sacrum (subcutaneous, or the sacrococcygeal ligament itself): the injectate
  swells under the skin;
- through the anterior sacral plate: the presacral space and the rectum;
- the sacral venous plexus: intravascular injection (drawn by the contrast model, reference 3.12).

The expert enters over the hiatus, cephalad, at the shallowest angle to the canal that reaches the
canal clear of bone, feels the ligament give, and advances a short way up the canal.
"""

from __future__ import annotations

import numpy as np

from simulator.anatomy.search import nearest_of
from simulator.anatomy.tissues import tissue_table
from simulator.errors import SpineSimError
from simulator.geometry import frames
from simulator.needle.needle import TRACK_STEP_MM
from simulator.procedures.base import Procedure

#: Outcome ids, their meaning and the placement points they earn (of 60).
OUTCOMES = {
    "success": ("the sacral canal between the hiatus and S3", 60.0),
    "too_high": ("the epidural space above S3, towards the dural sac", 15.0),
    "intrathecal": ("intrathecal: the dural sac was punctured", 0.0),
    "ligament": ("the sacrococcygeal ligament: not yet in the canal (too shallow)", 8.0),
    "subcutaneous": ("soft tissue dorsal to the sacrum (the injectate would swell under the skin)", 0.0),
    "bone": ("on bone (the back of the sacrum or a cornu)", 4.0),
    "presacral": ("in front of the sacrum: through the anterior sacral plate", 0.0),
    "vessel": ("a vessel (the sacral venous plexus)", 0.0),
    "soft_tissue": ("soft tissue away from the sacrum", 0.0),
    "no_needle": ("no needle placed", 0.0),
}
#: Where the expert aims: this far up the canal from the hiatus apex, and this far in front of the
#: apex (it lies on the canal's back). A real expert flattens the needle once through the ligament
#: and advances 1-2 cm; the simulated needle turns only about its skin entry, so a straight line
#: through the hiatus reaches only a few mm up the shallow canal clear of its roof.
AIM_UP_MM = 2.0
AIM_DEPTH_MM = 2.5


def _mid(anatomy, level: str) -> np.ndarray:
    return 0.5 * (anatomy.landmark(f"{level}.foramen_left") + anatomy.landmark(f"{level}.foramen_right"))


def zone_top(anatomy) -> tuple[np.ndarray, np.ndarray]:
    """The target zone's upper boundary (the upper border of S3) and the canal's cranial direction
    there."""
    s2, s3 = _mid(anatomy, "S2"), _mid(anatomy, "S3")
    return 0.5 * (s2 + s3), frames.unit(s2 - _mid(anatomy, "S4"))


def into_canal(up: np.ndarray) -> np.ndarray:
    """The direction in the sagittal plane, across the canal's axis ``up``, that points into the body."""
    return frames.unit(frames.ANTERIOR - (frames.ANTERIOR @ up) * up)


def above_zone(anatomy, points: np.ndarray) -> np.ndarray:
    top, up = zone_top(anatomy)
    return (np.asarray(points, float) - top) @ up > 0.0


def canal_fat_near(anatomy, point: np.ndarray, within_mm: float = 10.0) -> np.ndarray | None:
    """The canal fat nearest ``point`` with fat all round it for 1 mm (not at the edge of a vein or
    the canal's wall), or just the nearest fat if none has that room."""
    return nearest_of(anatomy.tissue_at, point, [tissue_table().id("epidural_fat")], within_mm, clearance_mm=1.0)


class Caudal(Procedure):
    """Caudal epidural through the sacral hiatus."""

    outcomes = OUTCOMES
    epidural_injection = True
    done_by_landmarks = True
    # the sacrum is seen on a plain lateral and AP; the needle climbs the canal, not down a beam
    squares_endplates = False
    coaxial = False
    injectate_limit_ml = 20.0
    injectate_limit_reason = " (caudal: 10-20 mL, reference 3.1)"
    expert_injectate = (("dexamethasone_10mg_ml", 1.0), ("saline", 9.0))
    feedback = {
        "success": "The tip ended in the sacral canal between the hiatus and S3.",
        "too_high": ("The tip went above S3, towards the end of the dural sac: advance no more than about 2 cm "
                     "beyond the hiatus, and check the level on the AP view."),
        "intrathecal": "The dural sac was punctured: the needle went far too high up the sacral canal.",
        "ligament": "The tip is in the sacrococcygeal ligament: advance until it gives, then a short way up the canal.",
        "subcutaneous": ("The tip is behind the sacrum, not in the canal: find the hiatus between the cornua and "
                         "confirm on the lateral view that the tip is in front of the ligament."),
        "bone": "The tip is on the back of the sacrum: walk down to the hiatus and flatten the needle along the canal.",
        "vessel": ("The tip is in the sacral venous plexus at the front of the canal: withdraw a little, aspirate, "
                   "and watch the contrast on live imaging (a vessel washes it away)."),
        "presacral": "The needle went through the front of the sacrum towards the pelvis: check depth on the lateral view.",
    }
    fluoroscopy_checks = (
        ("lateral_with_needle", 1.0, "The needle's position in the canal was not confirmed on a lateral view."),
        ("contrast_imaged", 1.0, "No image showed the contrast's spread (the \"Christmas tree\" on AP)."),
    )
    landmark_checks = (
        ("palpations", 2.0, "The sacral cornua were not palpated to find the hiatus."),
        ("aspirations", 1.0, "No aspiration before injecting: blood or CSF would have been missed."),
    )

    def target_point(self, anatomy, scenario) -> np.ndarray:
        return anatomy.derived(("caudal_target",), lambda: self._target_point(anatomy))

    @staticmethod
    def _target_point(anatomy) -> np.ndarray:
        apex = anatomy.landmark("sacrum.hiatus_apex")
        _, up = zone_top(anatomy)
        found = canal_fat_near(anatomy, apex + AIM_UP_MM * up + AIM_DEPTH_MM * into_canal(up))
        if found is None:
            raise SpineSimError("no sacral canal above the hiatus for this patient")
        return found

    def centre_point(self, anatomy, scenario) -> np.ndarray:
        return anatomy.landmark("sacrum.hiatus_apex")

    def outcome_at(self, anatomy, tip: np.ndarray, tissue, scenario, dural_puncture: bool) -> tuple[str, str]:
        category = tissue.category
        if category in ("intrathecal", "dura") or (dural_puncture and category == "epidural"):
            outcome = "intrathecal"
        elif category == "epidural":
            outcome = "too_high" if above_zone(anatomy, tip[None])[0] else "success"
        elif tissue.name == "sacrococcygeal_ligament":
            outcome = "ligament"
        elif category == "bone":
            outcome = "bone"
        elif category in ("presacral", "organ") or tissue.name == "viscera":
            outcome = "presacral"
        elif category == "vessel":
            outcome = "vessel"
        elif self._dorsal_to_sacrum(anatomy, tip):
            outcome = "subcutaneous"
        else:
            outcome = "soft_tissue"
        return outcome, "sacral canal"

    @staticmethod
    def _dorsal_to_sacrum(anatomy, tip: np.ndarray) -> bool:
        """Soft tissue with the sacrum (or its hiatus) within 25 mm straight in front."""
        t = np.arange(0.0, 25.0, 0.5)
        table = tissue_table()
        ahead = {table[int(v)].name for v in anatomy.tissue_at(tip + t[:, None] * frames.ANTERIOR)}
        return bool(ahead & {"cortical_bone", "cancellous_bone", "sacrococcygeal_ligament", "epidural_fat"})

    def in_target_zone(self, anatomy, scenario, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
        apex = anatomy.landmark("sacrum.hiatus_apex")
        top, up = zone_top(anatomy)
        along = (np.asarray(points, float) - top) @ up
        below_apex = (np.asarray(points, float) - apex) @ up < -3.0
        return (labels == tissue_table().id("epidural_fat")) & (along <= 0.0) & ~below_apex


def expert_path(anatomy, target: np.ndarray, margin_mm: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """The expert's line: cephalad over the hiatus, at the shallowest angle to the canal (20-60
    degrees) that reaches ``target`` through the sacrococcygeal ligament clear of bone, with
    ``margin_mm`` to spare on either side (the needle's drift and the hand's tremor). Returns
    (entry, unit direction)."""
    for path in expert_paths(anatomy, target, margin_mm):
        return path
    raise SpineSimError("no bone-free path through the sacral hiatus for this patient")


def candidate_targets(anatomy) -> list[np.ndarray]:
    """Canal fat just above the hiatus apex the expert may aim at, the preferred first."""
    apex = anatomy.landmark("sacrum.hiatus_apex")
    _, up = zone_top(anatomy)
    into = into_canal(up)
    out = []
    for up_mm, depth_mm in ((AIM_UP_MM, AIM_DEPTH_MM), (0.0, 2.5), (4.0, 3.0), (2.0, 1.5), (0.0, 4.0), (-3.0, 2.5)):
        found = canal_fat_near(anatomy, apex + up_mm * up + depth_mm * into, 4.0)
        if found is not None and not any(np.allclose(found, o) for o in out):
            out.append(found)
    return out


def expert_paths(anatomy, target: np.ndarray, margin_mm: float = 0.8):
    """Every line :func:`expert_path` would accept, the preferred first (with the margin, then
    without)."""
    table = tissue_table()
    ligament, air = table.id("sacrococcygeal_ligament"), table.id("air")
    _, up = zone_top(anatomy)
    into = into_canal(up)
    for margin in (margin_mm, 0.0):
        for angle in np.arange(20.0, 60.5, 2.5):
            a = np.radians(angle)
            direction = frames.unit(np.cos(a) * up + np.sin(a) * into)
            entry = anatomy.skin_entry(target - 200.0 * direction, direction)
            # the line must meet the back's skin from outside (not start inside a buttock), and the
            # hand must reach it (the hub clear of the buttocks for 60 mm back)
            if entry is None or abs(float(anatomy.skin_signed_distance(entry[None])[0])) > 1.0:
                continue
            again = anatomy.skin_entry(entry - 60.0 * direction, direction)
            if again is None or np.linalg.norm(again - entry) > 1.0:
                continue
            length = float(np.linalg.norm(target - entry))
            t = np.arange(0.0, length + TRACK_STEP_MM, TRACK_STEP_MM)
            line = entry + t[:, None] * direction
            labels = anatomy.tissue_at(line)
            if table.is_bone[labels].any() or not (labels == ligament).any() or (labels == air).any():
                continue
            # the same line shifted across the canal by the margin (its last few mm excepted)
            across = np.cross(direction, frames.RIGHT)
            inner = line[t < length - 3.0]
            if margin and any(table.is_bone[anatomy.tissue_at(inner + side * margin * across)].any()
                              for side in (1.0, -1.0)):
                continue
            yield entry, direction
