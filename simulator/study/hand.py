"""What both virtual operators share: the needle in the hand, loss of resistance, aspiration,
the drugs (see :mod:`simulator.study.operators` for the techniques)."""

from __future__ import annotations

import math

import numpy as np

from simulator.errors import SpineSimError
from simulator.geometry import frames
from simulator.protocol import commands as cmd
from simulator.study.senses import Hands, Percept
from simulator.study.skills import Skill

#: The procedures the virtual operators perform.
PROCEDURES = ("lumbar_interlaminar", "cervical_interlaminar", "caudal", "lumbar_transforaminal")
#: Testing starts this far short of the expected depth, mm.
LOR_START_SHORT_MM = 25.0
#: How far past the expected depth an operator goes looking for the loss, mm.
LOR_BEYOND_MM = 20.0
#: Just off the midline in the neck, mm (as the expert: Lirk 2003's midline gaps).
CERVICAL_OFFSET_MM = 2.5


def turned(direction: np.ndarray, cranial_deg: float, right_deg: float) -> np.ndarray:
    """``direction`` turned towards the head and towards the patient's right (small angles)."""
    d = frames.unit(direction)
    axis = np.cross(d, frames.SUPERIOR)
    axis = frames.unit(axis) if np.linalg.norm(axis) > 1e-6 else frames.RIGHT
    d = _rotate(d, axis, cranial_deg)
    up = np.cross(frames.RIGHT, d)
    up = frames.unit(up) if np.linalg.norm(up) > 1e-6 else frames.SUPERIOR
    return frames.unit(_rotate(d, up, -right_deg))


def _rotate(v: np.ndarray, axis: np.ndarray, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    k = frames.unit(axis)
    return v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * (k @ v) * (1 - math.cos(a))


def percept_kinds(percepts: list[Percept] | None) -> set[str]:
    return {p.kind for p in percepts or ()}


class Operator:
    """What both operators share: the needle in the hand, loss of resistance, aspiration, the drugs.

    Parameters
    ----------
    senses : Hands or Eyes
    skill : Skill
    rng : numpy.random.Generator
        The operator's own random numbers (its hand, its eye).
    """

    def __init__(self, senses: Hands, skill: Skill, rng: np.random.Generator):
        self.hands = senses
        self.skill = skill
        self.rng = rng
        self.brief = senses.brief
        #: what the operator expects the depth of the epidural space to be, mm (its own estimate)
        self.expected_depth_mm = self._expected_depth() * (1.0 + rng.normal(0.0, skill.depth_sd_fraction))

    #: procedure -> the method that performs it
    techniques: dict[str, str] = {}

    def run(self) -> None:
        """Perform the case, start to finish."""
        if self.brief.patient_position != "prone":
            raise SpineSimError(f"the virtual operators work prone (this case is {self.brief.patient_position})")
        method = self.techniques.get(self.brief.procedure)
        if method is None:
            raise SpineSimError(f"no virtual operator for {self.brief.procedure} (they perform {', '.join(PROCEDURES)})")
        getattr(self, method)()
        self.finish()

    # ------------------------------------------------------------------ judgement
    def _expected_depth(self) -> float:
        b = self.hands.build
        if self.brief.procedure == "cervical_interlaminar":
            return 56.0 if b.sex == "male" else 50.0  # Han 2003, C7/T1
        return 17.8 + 0.978 * b.bmi_kg_m2  # Ravi 2011, lumbar

    def _felt_error(self, cover_mm: float | None) -> float:
        sd = self.skill.palpation_sd_mm + self.skill.palpation_sd_per_cover * (cover_mm or 0.0)
        return float(self.rng.normal(0.0, sd)) if sd > 0 else 0.0

    def _hand_angles(self) -> tuple[float, float]:
        sd = self.skill.angle_sd_deg
        if sd <= 0:
            return 0.0, 0.0
        return float(self.rng.normal(0.0, sd)), float(self.rng.normal(0.0, sd))

    # ------------------------------------------------------------------ the needle
    def insert(self, entry_mm: np.ndarray, direction: np.ndarray, with_hand_error: bool = True) -> bool:
        """Put the needle on the skin at ``entry_mm`` along ``direction`` (the hand's angle error
        added)."""
        if with_hand_error:
            cranial, right = self._hand_angles()
            direction = turned(direction, cranial, right)
        return self.hands.do(cmd.SetEntry(point_mm=tuple(float(v) for v in entry_mm),
                                          direction=tuple(float(v) for v in frames.unit(direction)))) is not None

    def advance(self, distance_mm: float) -> set[str]:
        """Advance; the kinds of what was felt."""
        return percept_kinds(self.hands.do(cmd.Advance(distance_mm=float(distance_mm))))

    def advance_to(self, depth_mm: float, step_mm: float) -> set[str]:
        """Advance in steps to ``depth_mm``; stops early on bone, the hub's end, a paraesthesia."""
        while self.hands.depth_mm < depth_mm - 0.05:
            felt = self.advance(min(step_mm, depth_mm - self.hands.depth_mm))
            if felt & {"bone_contacted", "needle_length_exhausted", "paraesthesia", "csf_in_hub"}:
                return felt
            if not felt:
                return {"refused"}
        return set()

    def withdraw(self, distance_mm: float) -> None:
        """Pull the needle back ``distance_mm`` (nothing when it is already there)."""
        if distance_mm > 0.01:
            self.hands.do(cmd.Withdraw(distance_mm=float(min(distance_mm, 150.0))))

    def redirect(self, cranial_deg: float, right_deg: float) -> bool:
        if abs(cranial_deg) < 1e-3 and abs(right_deg) < 1e-3:
            return True
        # one turn of the hand is at most 30 degrees each way (the command's own limit)
        cranial_deg, right_deg = (float(np.clip(v, -30.0, 30.0)) for v in (cranial_deg, right_deg))
        return self.hands.do(cmd.Redirect(cranial_deg=cranial_deg, right_deg=right_deg)) is not None

    def find_loss(self, expected_mm: float, trust_short_mm: float) -> str:
        """Advance with saline tests to a trusted loss of resistance: ``"loss"``, ``"bone"``,
        ``"csf"``, ``"paraesthesia"`` or ``"none"`` (nothing by the limit)."""
        start = max(0.0, expected_mm - LOR_START_SHORT_MM)
        felt = self.advance_to(start, 5.0)
        if "bone_contacted" in felt:
            return "bone"
        if felt & {"csf_in_hub", "paraesthesia"}:
            return "csf" if "csf_in_hub" in felt else "paraesthesia"
        limit = expected_mm + LOR_BEYOND_MM
        trust_from = expected_mm - trust_short_mm if trust_short_mm > 0 else 0.0
        while self.hands.depth_mm < limit:
            felt = self.advance(self.skill.lor_step_mm)
            if "bone_contacted" in felt:
                return "bone"
            if "csf_in_hub" in felt:
                return "csf"
            if "paraesthesia" in felt:
                return "paraesthesia"
            if not felt or "needle_length_exhausted" in felt:
                return "none"
            tested = percept_kinds(self.hands.do(cmd.TestLossOfResistance(medium="saline")))
            if "csf_in_hub" in tested:
                return "csf"
            if "loss_of_resistance" in tested and self.hands.depth_mm >= trust_from:
                return "loss"
        return "none"

    def aspirate(self) -> str:
        """Aspirate: ``"nothing"``, ``"blood"`` or ``"csf"``."""
        for p in self.hands.do(cmd.Aspirate()) or ():
            if p.kind == "aspirated":
                return str(p.data.get("result", "nothing"))
        return "nothing"

    def aspirate_and_settle(self) -> bool:
        """Aspirate; on blood move back a millimetre and try again (twice); False on CSF or
        blood that keeps coming."""
        for _ in range(3):
            result = self.aspirate()
            if result == "nothing":
                return True
            if result == "csf":
                return False
            self.withdraw(1.0)
        return False

    def inject_drugs(self) -> None:
        for drug_id, ml in self.brief.injectate:
            self.hands.do(cmd.InjectDrug(drug_id=drug_id, volume_ml=ml))

    def finish(self) -> None:
        if not self.hands.finished:
            self.hands.do(cmd.Finish())


