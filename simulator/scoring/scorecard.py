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

from simulator.procedures.lumbar_interlaminar import OUTCOMES, Placement

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


def score_attempt(placement: Placement, metrics: dict[str, float], guidance: str, target_interspace: str,
                  pass_mark: float, expert_time_s: float, expert_images: int) -> Scorecard:
    """Score a finished lumbar interlaminar attempt."""
    feedback: list[str] = []
    placement_points = OUTCOMES[placement.outcome][1]
    if placement.outcome == "success":
        feedback.append(f"The tip ended in the posterior epidural space at {target_interspace}.")
    elif placement.outcome == "wrong_level":
        feedback.append(f"The tip is epidural but at {placement.interspace}, not {target_interspace}: "
                        "count the levels again on the AP image (or from the iliac crests).")
    elif placement.outcome == "intrathecal":
        feedback.append("The dura was punctured: the needle went on after the loss of resistance. "
                        "Advance in small steps and test after each one.")
    elif placement.outcome == "ligament":
        feedback.append(f"The tip stopped in the {placement.tissue.replace('_', ' ')}, short of the "
                        "epidural space: there was no loss of resistance yet.")
    elif placement.outcome == "bone":
        feedback.append("The tip is on bone (lamina or spinous process): walk off it towards the "
                        "interlaminar window.")
    elif placement.outcome == "no_needle":
        feedback.append("No needle was placed.")
    else:
        feedback.append(f"The tip ended in {placement.description}.")

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

    technique = 0.0
    time_s = metrics.get("time_s", 0.0)
    time_points = 5.0 * _ratio(expert_time_s, time_s)
    if guidance == "fluoroscopy":
        if metrics.get("level_confirmed_on_ap", 0.0):
            technique += 5.0
        else:
            feedback.append("The level was not confirmed on an AP image before needling.")
        if metrics.get("depth_checked_before_lf", 0.0):
            technique += 5.0
        else:
            feedback.append("Depth was not checked on a lateral or contralateral oblique view before "
                            "the needle reached the ligamentum flavum.")
        images = metrics.get("images", 0.0)
        technique += 5.0 * _ratio(expert_images, images)
        if images > 2 * expert_images:
            feedback.append(f"{int(images)} images were taken; an expert needs about {expert_images}.")
    else:
        if metrics.get("palpations", 0.0) >= 2:
            technique += 5.0
        else:
            feedback.append("The iliac crests and spinous processes were not palpated to find the level.")
        if metrics.get("lor_tests", 0.0) >= 1:
            technique += 5.0
        else:
            feedback.append("Loss of resistance was never tested.")
        passes = max(1.0, metrics.get("needle_passes", 1.0))
        technique += 5.0 / passes
        if passes > 2:
            feedback.append(f"{int(passes)} needle passes were needed.")
    technique += time_points
    if time_s > 2 * expert_time_s:
        feedback.append(f"The attempt took {time_s:.0f} s; an expert takes about {expert_time_s:.0f} s.")

    parts = {"placement": placement_points, "safety": safety, "technique": technique}
    score = sum(parts.values())
    passed = placement.outcome == "success" and not punctures and score >= pass_mark
    return Scorecard(passed=passed, score=score, parts=parts, feedback=feedback, metrics=dict(metrics),
                     placement=placement)
