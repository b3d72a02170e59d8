"""What every procedure provides: its outcomes, its target zone, how a final tip is classified,
and its technique rubric. Each procedure module (interlaminar, caudal, ...) implements one
:class:`Procedure`; :func:`simulator.procedures.registry.procedure_for` finds it by id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Placement:
    """Where the tip ended, classified."""

    outcome: str
    tissue: str
    category: str
    interspace: str
    tip_mm: tuple[float, float, float] | None
    distance_to_target_mm: float | None
    description: str = ""

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "description": self.description,
            "tissue": self.tissue,
            "category": self.category,
            "interspace": self.interspace,
            "tip_mm": None if self.tip_mm is None else [round(v, 2) for v in self.tip_mm],
            "distance_to_target_mm": None if self.distance_to_target_mm is None
            else round(self.distance_to_target_mm, 2),
        }


class Procedure:
    """One procedure: its outcomes (id to description and placement points of 60) and the
    methods the simulation, the scoring and the scene use."""

    outcomes: dict[str, tuple[str, float]] = {}

    def target_point(self, anatomy, scenario) -> np.ndarray:
        """The middle of the target zone (world mm)."""
        raise NotImplementedError

    def centre_point(self, anatomy, scenario) -> np.ndarray:
        """Where the C-arm is centred at the start."""
        return self.target_point(anatomy, scenario)

    def classify(self, anatomy, tip_mm, scenario, dural_puncture: bool,
                 tip_tissue_id: int | None = None) -> Placement:
        raise NotImplementedError

    def in_target_zone(self, anatomy, scenario, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Which of ``points`` (with their tissue ``labels``) lie in the target zone (the scene draws
        it)."""
        raise NotImplementedError

    def outcome_feedback(self, placement: Placement, scenario) -> str:
        """One sentence on where the tip ended."""
        if placement.outcome == "no_needle":
            return "No needle was placed."
        return f"The tip ended in {placement.description}."

    def technique(self, metrics: dict[str, float], guidance: str, expert_images: int) -> tuple[float, list[str]]:
        """Technique points (of 15; time is scored apart) and feedback."""
        raise NotImplementedError

    @staticmethod
    def image_points(metrics: dict[str, float], expert_images: int, feedback: list[str]) -> float:
        images = metrics.get("images", 0.0)
        if images > 2 * expert_images:
            feedback.append(f"{int(images)} images were taken; an expert needs about {expert_images}.")
        return 5.0 * (1.0 if images <= expert_images else max(0.0, expert_images / images))

    @staticmethod
    def pass_points(metrics: dict[str, float], feedback: list[str]) -> float:
        passes = max(1.0, metrics.get("needle_passes", 1.0))
        if passes > 2:
            feedback.append(f"{int(passes)} needle passes were needed.")
        return 5.0 / passes
