"""Needle kinematics and tissue tracking: entry, advance, withdraw, redirect, bevel; bone stops it.

The needle's tip runs along a *track*: a path from the skin entry point sampled every
:data:`TRACK_STEP_MM`, with the tissue at every sample read from the anatomy's exact point queries
(so no membrane is stepped over). The shaft follows the track behind the tip (follow-the-leader),
which is how a needle in tissue behaves: it cannot cut sideways.

An asymmetric tip steers. A bevelled (Quincke) needle drifts away from its bevel face, a Tuohy
towards its curved tip, a needle whose tip the trainee has bent towards the bend; each follows an
arc of constant curvature in the plane its bevel faces (the standard model of bevel-tip needle
steering: Webster et al. 2006, Int J Robotics Res 25:509). Rotating the bevel turns that plane.

The track ahead of the tip is sampled in chunks (:data:`LOOKAHEAD_MM`) with one query each, so a
small step usually costs no anatomy query at all: the tissue is already known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.anatomy.tissues import tissue_table
from simulator.errors import CommandRefused
from simulator.geometry import frames
from simulator.needle.spec import NeedleSpec

#: Sampling step along the track, mm (the resolution of depths and tissue boundaries).
TRACK_STEP_MM = 0.1
#: How far ahead of the tip the track is sampled at once, mm.
LOOKAHEAD_MM = 12.0
#: How far a picked entry point may be from the skin, mm.
ENTRY_TOLERANCE_MM = 8.0
#: Redirection inside tissue: a needle deeper than this can only be turned a little; it must be
#: drawn back towards the skin first (tissue holds the shaft).
FREE_REDIRECT_DEPTH_MM = 15.0
MAX_DEEP_REDIRECT_DEG = 8.0
#: Sideways drift per 100 mm advanced for each degree the trainee bends the tip, mm. A design value
#: (no human-tissue measurement found): a 20-degree bend then moves the tip ~12 mm off its line over
#: 100 mm, ~3 mm over the last 50 mm, the correction clinicians expect from a curved spinal needle.
BEND_STEER_MM_PER_100MM_PER_DEG = 0.6


@dataclass
class TissueRun:
    """A stretch of one tissue along the shaft, from the skin: ``start_mm`` to ``end_mm`` deep."""

    tissue: str
    start_mm: float
    end_mm: float


@dataclass
class StepResult:
    """What one needle movement did."""

    moved_mm: float
    entered: list[tuple[str, float]] = field(default_factory=list)  # (tissue, depth) crossed into
    bone_contact: bool = False
    length_exhausted: bool = False


class Needle:
    """A needle in the patient.

    Parameters
    ----------
    spec : NeedleSpec
    tissue_at : callable
        World points (N, 3) -> tissue ids (the anatomy's exact query).
    """

    def __init__(self, spec: NeedleSpec, tissue_at):
        self.spec = spec
        self._tissue_at = tissue_at
        self.entry_mm: np.ndarray | None = None
        self._entry_direction = np.array([0.0, 1.0, 0.0])
        self.depth_mm = 0.0
        self._table = tissue_table()
        #: Roll of the bevel opening about the shaft, degrees: 0 faces the head (cranial), 90 the
        #: patient's right, as the notch on the hub shows.
        self.bevel_roll_deg = 0.0
        #: Bend the trainee put into the tip before insertion, degrees (0: straight).
        self.user_bend_deg = 0.0
        # the bone the tip rests against after a bone stop (None when it is free in tissue)
        self._bone_contact_id: int | None = None
        self._reset_track(np.zeros(3), self._entry_direction)

    # ------------------------------------------------------------ track
    def _reset_track(self, start: np.ndarray, direction: np.ndarray) -> None:
        self._pts = np.asarray(start, float).reshape(1, 3)
        self._tan = np.asarray(direction, float).reshape(1, 3)
        self._lab = np.zeros(1, np.int64)
        self._labelled = 0  # samples whose tissue is known (the entry's is read on entry)

    def _index(self, depth_mm: float) -> int:
        return int(round(depth_mm / TRACK_STEP_MM))

    @property
    def curvature_per_mm(self) -> float:
        """Curvature of the arc the tip follows in tissue, 1/mm (0: straight)."""
        drift_mm = self.spec.steer_mm_per_100mm + BEND_STEER_MM_PER_100MM_PER_DEG * self.user_bend_deg
        # an arc of curvature k leaves its tangent by k L^2 / 2 over a length L
        return 2.0 * drift_mm / 100.0 ** 2

    def steer_direction(self, tangent: np.ndarray) -> np.ndarray:
        """Unit direction (across ``tangent``) the tip steers towards, from the bevel's roll."""
        cranial = frames.SUPERIOR - (frames.SUPERIOR @ tangent) * tangent
        if np.linalg.norm(cranial) < 1e-6:
            cranial = frames.ANTERIOR - (frames.ANTERIOR @ tangent) * tangent
        cranial = cranial / np.linalg.norm(cranial)
        right = np.cross(tangent, cranial)  # seen from the hub, clockwise from cranial
        right = right if right @ frames.RIGHT >= 0 else -right
        a = np.radians(self.bevel_roll_deg)
        opening = np.cos(a) * cranial + np.sin(a) * right
        # a cutting bevel is pushed away from its face; a curved or bent tip leads towards its curve
        return -opening if self.spec.tip == "quincke" and self.user_bend_deg == 0.0 else opening

    def _extend(self, index: int) -> None:
        """Sample the track (points and tissues) up to ``index`` and a lookahead beyond it."""
        limit = self._index(self.spec.length_mm)
        want = min(max(index, self._labelled + self._index(LOOKAHEAD_MM)), limit)
        have = len(self._pts) - 1
        if want > have:
            k = self.curvature_per_mm * TRACK_STEP_MM
            p, t = self._pts[-1].copy(), self._tan[-1].copy()
            new_p, new_t = [], []
            s = self.steer_direction(t)
            for _ in range(want - have):
                if k > 0.0:
                    t = t + k * s
                    t /= np.linalg.norm(t)
                    s = s - (s @ t) * t
                    s /= np.linalg.norm(s)
                p = p + TRACK_STEP_MM * t
                new_p.append(p)
                new_t.append(t)
            self._pts = np.vstack([self._pts, new_p])
            self._tan = np.vstack([self._tan, new_t])
            self._lab = np.concatenate([self._lab, np.zeros(len(new_p), np.int64)])
        if want + 1 > self._labelled:
            lo = self._labelled
            self._lab[lo:want + 1] = self._tissue_at(self._pts[lo:want + 1])
            self._labelled = want + 1

    def _truncate(self) -> None:
        """Forget the track beyond the tip (the path ahead has changed)."""
        keep = self._index(self.depth_mm) + 1
        self._pts, self._tan, self._lab = self._pts[:keep], self._tan[:keep], self._lab[:keep]
        self._labelled = min(self._labelled, keep)

    # ------------------------------------------------------------ state
    @property
    def inserted(self) -> bool:
        return self.entry_mm is not None

    @property
    def tip_mm(self) -> np.ndarray:
        if self.entry_mm is None:
            raise CommandRefused("no entry point has been chosen")
        return self._pts[self._index(self.depth_mm)].copy()

    def point_at_depth(self, depth_mm: float) -> np.ndarray:
        """World point of the track ``depth_mm`` below the skin (within what has been sampled)."""
        return self._pts[min(self._index(depth_mm), len(self._pts) - 1)].copy()

    @property
    def direction(self) -> np.ndarray:
        """Unit direction of the needle at its tip (at the skin before insertion)."""
        return self._tan[self._index(self.depth_mm)].copy()

    @property
    def entry_direction(self) -> np.ndarray:
        """Unit direction of the shaft where it enters the skin."""
        return self._tan[0].copy()

    @property
    def hub_mm(self) -> np.ndarray:
        """The hub: the shaft outside the skin is straight, along its direction at the skin."""
        return self._pts[0] - (self.spec.length_mm - self.depth_mm) * self._tan[0]

    @property
    def on_bone(self) -> bool:
        """Whether the tip rests against bone (it stopped there and has not moved off since)."""
        return self._bone_contact_id is not None

    def tip_tissue_id(self) -> int:
        """Tissue id at the tip; the bone itself when the tip rests against bone."""
        if self._bone_contact_id is not None:
            return self._bone_contact_id
        i = self._index(self.depth_mm)
        if i >= self._labelled:
            self._extend(i)
        return int(self._lab[i])

    def tip_tissue(self) -> str:
        """Name of the tissue at the tip (the bone, when the tip rests against it)."""
        return self._table[self.tip_tissue_id()].name

    def tip_layer_mm(self) -> float:
        """Length of the tip's tissue along the track, from where the needle entered it to where
        it will leave it (the layer's thickness as this needle crosses it), mm."""
        i = self._index(self.depth_mm)
        label = self.tip_tissue_id()
        before = np.nonzero(self._lab[:i] != label)[0]
        start = int(before[-1]) + 1 if len(before) else 0
        limit = self._index(self.spec.length_mm)
        end = limit
        while True:
            self._extend(min(i + 1, limit))
            after = np.nonzero(self._lab[i:self._labelled] != label)[0]
            if len(after):
                end = i + int(after[0]) - 1
                break
            if self._labelled > limit:
                break
            i = self._labelled - 1
        return (end - start + 1) * TRACK_STEP_MM

    def shaft_tissue_ids(self) -> np.ndarray:
        """Tissue ids along the inserted shaft, skin first, every :data:`TRACK_STEP_MM`."""
        i = self._index(self.depth_mm)
        if i >= self._labelled:
            self._extend(i)
        return self._lab[:i + 1].copy()

    def tissue_runs(self) -> list[TissueRun]:
        """The tissues along the inserted shaft, skin first."""
        if self.entry_mm is None or self.depth_mm <= 0.0:
            return []
        runs: list[TissueRun] = []
        for k, lab in enumerate(self.shaft_tissue_ids()):
            depth = k * TRACK_STEP_MM
            name = self._table[int(lab)].name
            if runs and runs[-1].tissue == name:
                runs[-1].end_mm = depth
            else:
                runs.append(TissueRun(name, depth, depth))
        return runs

    def shaft_polyline(self) -> np.ndarray:
        """World polyline of the needle from hub to tip (every 5 mm along a curved track), the
        Tuohy's curved tip included."""
        i = self._index(self.depth_mm)
        stride = self._index(5.0)
        inside = self._pts[0:i + 1:stride] if i > 0 else self._pts[:1]
        if i > 0 and (i % stride):
            inside = np.vstack([inside, self._pts[i]])
        pts = np.vstack([self.hub_mm[None], inside])
        bend = self.spec.tip_bend_length_mm
        if bend <= 0.0:
            return pts
        # the Tuohy tip curves towards its opening (the bevel's roll), the way it steers
        d = self.direction
        side = self.steer_direction(d)
        tip = pts[-1]
        knee = tip - bend * d
        curved_tip = knee + bend * (np.cos(np.radians(self.spec.tip_bend_deg)) * d
                                    + np.sin(np.radians(self.spec.tip_bend_deg)) * side)
        return np.vstack([pts[:-1], knee[None], curved_tip[None]])

    # ------------------------------------------------------------ commands
    def set_entry(self, point_mm, direction=None, skin_entry=None) -> np.ndarray:
        """Put the tip on the skin at (near) ``point_mm``, pointing along ``direction``.

        ``skin_entry(start, direction)`` returns the first skin point along a ray; the picked
        point is snapped to the skin along the needle's direction.
        """
        d = frames.unit(direction if direction is not None else frames.ANTERIOR)
        p = np.asarray(point_mm, float)
        if not np.all(np.isfinite(p)) or not np.all(np.isfinite(d)):
            raise CommandRefused("entry point and direction must be finite")
        start = p - d * 60.0
        hit = skin_entry(start, d) if skin_entry is not None else p
        if hit is None or np.linalg.norm(hit - p) > ENTRY_TOLERANCE_MM:
            raise CommandRefused("entry point is not on the skin (pick a point on the patient's back)")
        self.entry_mm = np.asarray(hit, float)
        self.depth_mm = 0.0
        self._bone_contact_id = None
        self._reset_track(self.entry_mm, d)
        return self.entry_mm

    def advance(self, distance_mm: float) -> StepResult:
        """Push the needle ``distance_mm`` deeper (to the nearest 0.1 mm); it stops on bone and
        when the hub reaches the skin."""
        if self.entry_mm is None:
            raise CommandRefused("choose an entry point before advancing")
        if not (np.isfinite(distance_mm) and distance_mm > 0):
            raise CommandRefused("advance distance must be a positive number")
        i0 = self._index(self.depth_mm)
        limit = self._index(self.spec.length_mm)
        steps = max(1, int(round(distance_mm / TRACK_STEP_MM)))
        exhausted = i0 + steps > limit
        i1 = min(i0 + steps, limit)
        result = StepResult(moved_mm=0.0)
        if i1 == i0:
            result.length_exhausted = True
            return result
        self._extend(i1)
        labels = self._lab[i0:i1 + 1]
        bone = self._table.is_bone[labels]
        stop = i1
        if bone[1:].any():
            first_bone = int(np.argmax(bone[1:])) + 1
            stop = i0 + first_bone - 1
            result.bone_contact = True
            self._bone_contact_id = int(labels[first_bone])
        elif exhausted:
            result.length_exhausted = True
        for i in range(i0 + 1, stop + 1):
            if self._lab[i] != self._lab[i - 1]:
                result.entered.append((self._table[int(self._lab[i])].name, i * TRACK_STEP_MM))
        result.moved_mm = (stop - i0) * TRACK_STEP_MM
        self.depth_mm = stop * TRACK_STEP_MM
        return result

    def withdraw(self, distance_mm: float) -> StepResult:
        """Pull the needle back ``distance_mm`` along its track (not past the skin)."""
        if self.entry_mm is None:
            raise CommandRefused("the needle is not in the patient")
        if not (np.isfinite(distance_mm) and distance_mm > 0):
            raise CommandRefused("withdraw distance must be a positive number")
        i0 = self._index(self.depth_mm)
        i1 = max(0, i0 - max(1, int(round(distance_mm / TRACK_STEP_MM))))
        result = StepResult(moved_mm=(i1 - i0) * TRACK_STEP_MM)
        self.depth_mm = i1 * TRACK_STEP_MM
        if i1 < i0:
            self._bone_contact_id = None
        return result

    def rotate_bevel(self, roll_deg: float) -> None:
        """Turn the needle about its own axis to ``roll_deg`` (bevel roll, degrees): the tip will
        steer in the new direction from here on."""
        if not np.isfinite(roll_deg):
            raise CommandRefused("bevel roll must be a finite number")
        self.bevel_roll_deg = float(roll_deg) % 360.0
        self._truncate()

    def bend_tip(self, bend_deg: float) -> None:
        """Bend the tip by ``bend_deg`` before insertion (a curved needle steers strongly)."""
        if self.entry_mm is not None and self.depth_mm > 0.0:
            raise CommandRefused("bend the needle's tip before it enters the skin")
        max_bend = self.spec.max_user_bend_deg if self.spec.bendable else 0.0
        if not np.isfinite(bend_deg) or bend_deg < 0.0 or bend_deg > max_bend + 1e-9:
            if max_bend == 0.0:
                raise CommandRefused(f"the {self.spec.name} is not to be bent")
            raise CommandRefused(f"bend must be between 0 and {max_bend:.0f} degrees")
        self.user_bend_deg = float(bend_deg)
        self._truncate()

    def redirect(self, cranial_deg: float, right_deg: float) -> float:
        """Turn the needle about its skin entry point; returns the angle turned (degrees).

        Refused when the shaft would pass through bone, or when it is deep in tissue and the turn
        is more than a small correction.
        """
        if self.entry_mm is None:
            raise CommandRefused("choose an entry point before redirecting")
        if not (np.isfinite(cranial_deg) and np.isfinite(right_deg)):
            raise CommandRefused("redirect angles must be finite")
        d = self._tan[0]
        # rotate towards the head about the needle's own left-right axis, then towards the right
        right_axis = np.cross(d, frames.SUPERIOR)
        if np.linalg.norm(right_axis) < 1e-6:
            right_axis = frames.RIGHT
        right_axis = right_axis / np.linalg.norm(right_axis)
        rot = _rotation(right_axis, cranial_deg)
        new = rot @ d
        up_axis = np.cross(frames.RIGHT, new)
        if np.linalg.norm(up_axis) < 1e-6:
            up_axis = frames.SUPERIOR
        rot = _rotation(frames.unit(up_axis), -right_deg) @ rot
        new = frames.unit(rot @ d)
        angle = frames.angle_between_deg(d, new)
        if self.depth_mm > FREE_REDIRECT_DEPTH_MM and angle > MAX_DEEP_REDIRECT_DEG + 1e-6:
            raise CommandRefused(
                f"the needle is {self.depth_mm:.0f} mm deep: withdraw towards the skin before "
                f"turning it more than {MAX_DEEP_REDIRECT_DEG:.0f} degrees")
        i = self._index(self.depth_mm)
        pts = self.entry_mm + (self._pts[:i + 1] - self.entry_mm) @ rot.T
        labels = self._tissue_at(pts)
        if self._table.is_bone[labels].any():
            raise CommandRefused("the needle cannot turn through bone: withdraw it first")
        self._pts, self._tan = pts, self._tan[:i + 1] @ rot.T
        self._lab = np.asarray(labels, np.int64).copy()
        self._labelled = i + 1
        if angle > 0.0:
            self._bone_contact_id = None
        return angle


def _rotation(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotation matrix about unit ``axis`` by ``angle_deg`` (Rodrigues)."""
    a = np.radians(angle_deg)
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(a) * k + (1.0 - np.cos(a)) * (k @ k)
