"""The scorecard: pass/fail, a 0-100 score with its parts, and feedback an instructor would write.

Parts (fluoroscopy; landmark mode in brackets):

- placement, 60: the tip in the target zone; partial credit for a wrong level, ligament or bone;
- safety, 20: minus 20 for a dural puncture, 3 per bone contact after the second (max 10);
- technique, 20: fluoroscopy: level confirmed on AP (5), depth checked on a lateral/oblique before
  the ligamentum flavum (5), images against the expert benchmark (5), time against the benchmark
  (5). [landmark: palpation done (5), loss of resistance used (5), passes (5), time (5)]

A pass needs a successful placement, no dural puncture and a score at or above the pass mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.procedures.base import Placement, Procedure

SCORING_VERSION = 1


@dataclass
class Scorecard:
    passed: bool
    score: float
    parts: dict[str, float]
    feedback: list[str]
    metrics: dict[str, float]
    placement: Placement
    version: int = field(default=SCORING_VERSION)

    def as_dict(self) -> dict:
        return {
            "scoring_version": self.version,
            "passed": self.passed,
            "score": round(self.score, 1),
            "parts": {k: round(v, 1) for k, v in self.parts.items()},
            "feedback": self.feedback,
            "metrics": {k: round(v, 3) for k, v in self.metrics.items()},
            "placement": self.placement.as_dict(),
        }


def _ratio(expert: float, actual: float) -> float:
    return 1.0 if actual <= expert else max(0.0, expert / actual)


def score_attempt(procedure: Procedure, placement: Placement, metrics: dict[str, float], scenario,
                  expert_time_s: float, expert_images: int) -> Scorecard:
    """Score a finished attempt at ``scenario`` (its procedure's outcomes and technique rubric)."""
    feedback = [procedure.outcome_feedback(placement, scenario)]
    placement_points = procedure.outcomes[placement.outcome][1]

    safety = 20.0
    punctures = metrics.get("dural_punctures", 0.0)
    if punctures:
        safety -= 20.0
        if placement.outcome != "intrathecal":
            feedback.append("The dura was punctured during the attempt (a wet tap), even though the "
                            "needle was drawn back.")
    bone = metrics.get("bone_contacts", 0.0)
    if bone > 2:
        safety -= min(10.0, 3.0 * (bone - 2))
        feedback.append(f"The needle hit bone {int(bone)} times: re-plan the angle from the images "
                        "rather than probing.")
    safety = max(0.0, safety)

    technique, said = procedure.technique(metrics, scenario.guidance, expert_images)
    feedback += said
    time_s = metrics.get("time_s", 0.0)
    technique += 5.0 * _ratio(expert_time_s, time_s)
    if time_s > 2 * expert_time_s:
        feedback.append(f"The attempt took {time_s:.0f} s; an expert takes about {expert_time_s:.0f} s.")

    parts = {"placement": placement_points, "safety": safety, "technique": technique}
    score = sum(parts.values())
    passed = placement.outcome == "success" and not punctures and score >= scenario.scoring.pass_mark
    return Scorecard(passed=passed, score=score, parts=parts, feedback=feedback, metrics=dict(metrics),
                     placement=placement)
