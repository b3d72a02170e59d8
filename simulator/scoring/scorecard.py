"""The scorecard: pass/fail, a 0-100 score with its parts, and feedback an instructor would write.

Parts (fluoroscopy; landmark mode in brackets):

- placement, 60: the tip in the target zone; partial credit for a wrong level, ligament or bone;
- safety, 20: minus 20 for a dural puncture, 3 per bone contact after the second (max 10);
- technique, 20: fluoroscopy: the standard-view checks share 10 (the level on AP with the endplates
  squared, the needle imaged down the beam, the procedure's own checks such as depth on a lateral
  or a CLO of the right angle before the ligamentum flavum, live contrast, and the contrast pattern
  read correctly), images against the expert benchmark (5), time against the benchmark (5).
  [landmark: palpation done (5), loss of resistance used or aspiration (5), passes (5), time (5)]

Hard fails (reference 3.13: particulate steroid in a cervical transforaminal; transforaminal contrast
without live imaging; an epidural drug before contrast; continuing after a vascular or intrathecal
pattern; a cervical interlaminar above C6-C7) fail the attempt whatever its score; injectate over the
procedure's limit costs 5 safety points.

A pass needs a successful placement, no dural puncture, no hard fail and a score at or above the
pass mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.procedures.base import Placement, Procedure
from simulator.scoring.metrics import DANGER_STRUCTURES

SCORING_VERSION = 3


@dataclass
class Scorecard:
    passed: bool
    score: float
    parts: dict[str, float]
    feedback: list[str]
    metrics: dict[str, float]
    placement: Placement
    #: The safety rules broken (reference 3.13): any one fails the attempt.
    hard_fails: list[str] = field(default_factory=list)
    version: int = field(default=SCORING_VERSION)

    def as_dict(self) -> dict:
        return {
            "scoring_version": self.version,
            "passed": self.passed,
            "hard_fails": self.hard_fails,
            "score": round(self.score, 1),
            "parts": {k: round(v, 1) for k, v in self.parts.items()},
            "feedback": self.feedback,
            "metrics": {k: round(v, 3) for k, v in self.metrics.items()},
            "placement": self.placement.as_dict(),
        }


def _ratio(expert: float, actual: float) -> float:
    return 1.0 if actual <= expert else max(0.0, expert / actual)


#: How the danger structures are named in feedback.
_DANGER_WORDS = {"dura": "the dura", "nerve_root": "a nerve root", "artery": "an artery", "vein": "a vein",
                 "disc": "the disc", "pleura": "the pleura", "organ": "an organ"}
#: A closest approach at or under this is a near miss worth a sentence, mm (the needle's own
#: radius: it grazed the structure).
NEAR_MISS_MM = 0.5


def _breaches_and_near_misses(metrics: dict[str, float], placement: Placement, punctures: float) -> list[str]:
    """A sentence for each danger structure the track went through or grazed, other than the one
    the tip ended in (its outcome says that) and the dura after a puncture (said already)."""
    said = []
    for group, words in _DANGER_WORDS.items():
        mm = metrics.get(f"closest_{group}_mm")
        if mm is None or mm > NEAR_MISS_MM or placement.tissue in DANGER_STRUCTURES[group]:
            continue
        if group == "dura" and punctures:
            continue
        said.append(f"The needle went through {words} on its way." if mm == 0.0 else
                    f"Near miss: the needle passed within {mm:.1f} mm of {words}.")
    return said


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
    feedback += _breaches_and_near_misses(metrics, placement, punctures)
    injectate = metrics.get("injectate_ml", 0.0)
    if injectate > procedure.injectate_limit_ml + 1e-9:
        safety -= 5.0
        feedback.append(f"{injectate:.1f} mL of injectate went in; {procedure.injectate_limit_ml:g} mL is the most "
                        f"for this procedure{procedure.injectate_limit_reason}.")
    safety = max(0.0, safety)
    hard_fails = procedure.hard_fails(metrics, placement, scenario)

    technique, said = procedure.technique(metrics, scenario.guidance, expert_images)
    feedback += said
    time_s = metrics.get("time_s", 0.0)
    technique += 5.0 * _ratio(expert_time_s, time_s)
    if time_s > 2 * expert_time_s:
        feedback.append(f"The attempt took {time_s:.0f} s; an expert takes about {expert_time_s:.0f} s.")

    parts = {"placement": placement_points, "safety": safety, "technique": technique}
    score = sum(parts.values())
    passed = (placement.outcome == "success" and not punctures and not hard_fails
              and score >= scenario.scoring.pass_mark)
    return Scorecard(passed=passed, score=score, parts=parts, feedback=hard_fails + feedback, metrics=dict(metrics),
                     placement=placement, hard_fails=hard_fails)
