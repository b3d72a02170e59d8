"""Needle kinematics and tissue tracking: entry, advance, withdraw, redirect; bone stops it.

The needle is a straight shaft through its skin entry point. Its state is the entry point, the
direction and the depth of the tip below the skin. The tissue along the shaft and at the tip is
read from the anatomy's exact point queries, sampled every 0.1 mm, so no membrane is stepped over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.anatomy.tissues import tissue_table
from simulator.errors import CommandRefused
from simulator.geometry import frames
from simulator.needle.spec import NeedleSpec

#: Sampling step along the needle when tracking tissue, mm.
TRACK_STEP_MM = 0.1
#: How far a picked entry point may be from the skin, mm.
ENTRY_TOLERANCE_MM = 8.0
#: Redirection inside tissue: a needle deeper than this can only be turned a little; it must be
#: drawn back towards the skin first (tissue holds the shaft).
FREE_REDIRECT_DEPTH_MM = 15.0
MAX_DEEP_REDIRECT_DEG = 8.0


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
        self.direction = np.array([0.0, 1.0, 0.0])
        self.depth_mm = 0.0
        self._table = tissue_table()
        # the bone the tip rests against after a bone stop (None when it is free in tissue)
        self._bone_contact_id: int | None = None

    # ------------------------------------------------------------ state
    @property
    def inserted(self) -> bool:
        return self.entry_mm is not None

    @property
    def tip_mm(self) -> np.ndarray:
        if self.entry_mm is None:
            raise CommandRefused("no entry point has been chosen")
        return self.entry_mm + self.depth_mm * self.direction

    @property
    def hub_mm(self) -> np.ndarray:
        return self.tip_mm - self.spec.length_mm * self.direction

    @property
    def on_bone(self) -> bool:
        """Whether the tip rests against bone (it stopped there and has not moved off since)."""
        return self._bone_contact_id is not None

    def tip_tissue_id(self) -> int:
        """Tissue id at the tip; the bone itself when the tip rests against bone."""
        if self._bone_contact_id is not None:
            return self._bone_contact_id
        return int(self._tissue_at(self.tip_mm[None])[0])

    def tip_tissue(self) -> str:
        """Name of the tissue at the tip (the bone, when the tip rests against it)."""
        return self._table[self.tip_tissue_id()].name

    def tissue_runs(self) -> list[TissueRun]:
        """The tissues along the inserted shaft, skin first."""
        if self.entry_mm is None or self.depth_mm <= 0.0:
            return []
        t = np.arange(0.0, self.depth_mm + 1e-9, TRACK_STEP_MM)
        labels = self._tissue_at(self.entry_mm + t[:, None] * self.direction)
        runs: list[TissueRun] = []
        for depth, lab in zip(t, labels):
            name = self._table[int(lab)].name
            if runs and runs[-1].tissue == name:
                runs[-1].end_mm = float(depth)
            else:
                runs.append(TissueRun(name, float(depth), float(depth)))
        return runs

    def shaft_polyline(self) -> np.ndarray:
        """World polyline of the needle from hub to tip, the Tuohy's curved tip included."""
        tip = self.tip_mm
        bend = self.spec.tip_bend_length_mm
        if bend <= 0.0:
            return np.stack([self.hub_mm, tip])
        # the Tuohy tip curves towards the bevel's opening, by convention cranially here
        side = frames.SUPERIOR - (frames.SUPERIOR @ self.direction) * self.direction
        side = side / max(np.linalg.norm(side), 1e-9)
        knee = tip - bend * self.direction
        curved_tip = knee + bend * (np.cos(np.radians(self.spec.tip_bend_deg)) * self.direction
                                    + np.sin(np.radians(self.spec.tip_bend_deg)) * side)
        return np.stack([self.hub_mm, knee, curved_tip])

    # ------------------------------------------------------------ commands
    def set_entry(self, point_mm, direction=None, skin_entry=None) -> np.ndarray:
        """Put the tip on the skin at (near) ``point_mm``, pointing along ``direction``.

        ``skin_entry(start, direction)`` returns the first skin point along a ray; the picked
        point is snapped to the skin along the needle's direction.
        """
        d = frames.unit(direction if direction is not None else frames.ANTERIOR)
        p = np.asarray(point_mm, float)
        if not np.all(np.isfinite(p)):
            raise CommandRefused("entry point must be finite")
        start = p - d * 60.0
        hit = skin_entry(start, d) if skin_entry is not None else p
        if hit is None or np.linalg.norm(hit - p) > ENTRY_TOLERANCE_MM:
            raise CommandRefused("entry point is not on the skin (pick a point on the patient's back)")
        self.entry_mm = np.asarray(hit, float)
        self.direction = d
        self.depth_mm = 0.0
        self._bone_contact_id = None
        return self.entry_mm

    def advance(self, distance_mm: float) -> StepResult:
        """Push the needle ``distance_mm`` deeper; it stops on bone and at the hub."""
        if self.entry_mm is None:
            raise CommandRefused("choose an entry point before advancing")
        if not (np.isfinite(distance_mm) and distance_mm > 0):
            raise CommandRefused("advance distance must be a positive number")
        target = min(self.depth_mm + distance_mm, self.spec.length_mm)
        exhausted = self.depth_mm + distance_mm > self.spec.length_mm + 1e-9
        t = np.arange(self.depth_mm, target + 1e-9, TRACK_STEP_MM)
        if t[-1] < target - 1e-9:
            t = np.append(t, target)
        labels = self._tissue_at(self.entry_mm + t[:, None] * self.direction)
        bone = self._table.is_bone[labels]
        result = StepResult(moved_mm=0.0)
        stop = len(t) - 1
        if bone[1:].any():
            first_bone = int(np.argmax(bone[1:])) + 1
            stop = first_bone - 1
            result.bone_contact = True
            self._bone_contact_id = int(labels[first_bone])
        elif exhausted:
            result.length_exhausted = True
        for i in range(1, stop + 1):
            if labels[i] != labels[i - 1]:
                result.entered.append((self._table[int(labels[i])].name, float(t[i])))
        new_depth = float(t[stop])
        if result.bone_contact and bone[0]:
            new_depth = self.depth_mm  # already touching bone: no further
        result.moved_mm = new_depth - self.depth_mm
        self.depth_mm = new_depth
        return result

    def withdraw(self, distance_mm: float) -> StepResult:
        """Pull the needle back ``distance_mm`` (not past the skin)."""
        if self.entry_mm is None:
            raise CommandRefused("the needle is not in the patient")
        if not (np.isfinite(distance_mm) and distance_mm > 0):
            raise CommandRefused("withdraw distance must be a positive number")
        new_depth = max(0.0, self.depth_mm - distance_mm)
        result = StepResult(moved_mm=new_depth - self.depth_mm)
        self.depth_mm = new_depth
        if result.moved_mm < 0.0:
            self._bone_contact_id = None
        return result

    def redirect(self, cranial_deg: float, right_deg: float) -> float:
        """Turn the needle about its skin entry point; returns the angle turned (degrees).

        Refused when the shaft would pass through bone, or when it is deep in tissue and the turn
        is more than a small correction.
        """
        if self.entry_mm is None:
            raise CommandRefused("choose an entry point before redirecting")
        d = self.direction
        # rotate towards the head about the needle's own left-right axis, then towards the right
        right_axis = np.cross(d, frames.SUPERIOR)
        if np.linalg.norm(right_axis) < 1e-6:
            right_axis = frames.RIGHT
        right_axis = right_axis / np.linalg.norm(right_axis)
        new = _rotate(d, right_axis, cranial_deg) if cranial_deg else d
        up_axis = np.cross(frames.RIGHT, new)
        if np.linalg.norm(up_axis) < 1e-6:
            up_axis = frames.SUPERIOR
        new = _rotate(new, frames.unit(up_axis), -right_deg) if right_deg else new
        new = frames.unit(new)
        angle = frames.angle_between_deg(d, new)
        if self.depth_mm > FREE_REDIRECT_DEPTH_MM and angle > MAX_DEEP_REDIRECT_DEG + 1e-6:
            raise CommandRefused(
                f"the needle is {self.depth_mm:.0f} mm deep: withdraw towards the skin before "
                f"turning it more than {MAX_DEEP_REDIRECT_DEG:.0f} degrees")
        if self.depth_mm > 0.0:
            t = np.arange(0.0, self.depth_mm + 1e-9, TRACK_STEP_MM)
            labels = self._tissue_at(self.entry_mm + t[:, None] * new)
            if self._table.is_bone[labels].any():
                raise CommandRefused("the needle cannot turn through bone: withdraw it first")
        self.direction = new
        if angle > 0.0:
            self._bone_contact_id = None
        return angle


def _rotate(v: np.ndarray, axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about unit ``axis``."""
    a = np.radians(angle_deg)
    return v * np.cos(a) + np.cross(axis, v) * np.sin(a) + axis * (axis @ v) * (1 - np.cos(a))
