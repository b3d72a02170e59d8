"""What every procedure provides: its outcomes, its target zone, how a final tip is classified,
and its technique rubric. Each procedure module (interlaminar, caudal, ...) implements one
:class:`Procedure`; :func:`simulator.procedures.registry.procedure_for` finds it by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from simulator.anatomy.tissues import tissue_table
from simulator.imaging.views import room_up, squaring_tilt_deg


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


#: Landmark technique for a procedure never done blind (its landmark attempt fails by reference
#: 3.13 rule 1, which says why): the level palpated, an aspiration before injecting.
PALPATE_AND_ASPIRATE = (
    ("palpations", 1.0, "The level was not found by palpation first."),
    ("aspirations", 1.0, "There was no aspiration before the injection."),
)


@dataclass(frozen=True)
class ViewStandards:
    """What the procedure's standard views must be on this patient, for the metrics that judge the
    images (reference 6.3): the tilt that squares the target level's endplates (None where no
    endplate is squared: caudal, sacroiliac joint), the contralateral oblique's accepted range
    (interlaminar), and the needle's side (``right``, ``left`` or ``midline``: either oblique is
    contralateral to a midline needle)."""

    squaring_tilt_deg: float | None = None
    clo_range_deg: tuple[float, float] | None = None
    needle_side: str = "midline"


#: Squared endplates: the tilt within this of the squaring tilt (reference 6.3), degrees.
SQUARED_WITHIN_DEG = 5.0
#: Coaxial ("down the beam"): the needle's hub-to-tip line within this of the beam, degrees; the
#: hub then covers the tip on the image.
COAXIAL_WITHIN_DEG = 10.0


def _endplates_sentence(metrics: dict[str, float]) -> str:
    error = metrics.get("endplate_tilt_error_deg", 90.0)
    if metrics.get("level_confirmed_on_ap", 0.0) and error < 90.0:
        return (f"The endplates were not squared on the AP image before needling (the tilt was {error:.0f}\N{DEGREE SIGN} "
                f"off; within {SQUARED_WITHIN_DEG:.0f}\N{DEGREE SIGN} the endplate is one line and the level is sure).")
    return "The level was not confirmed on an AP image with the endplates squared before needling."


def _coaxial_sentence(metrics: dict[str, float]) -> str:
    off = metrics.get("needle_beam_min_deg", 90.0)
    if off < 90.0:
        return (f"The needle was never seen down the beam: the nearest image was {off:.0f}\N{DEGREE SIGN} off its axis "
                f"(coaxial is within {COAXIAL_WITHIN_DEG:.0f}\N{DEGREE SIGN}, the hub over the tip).")
    return "The needle was never imaged down the beam (coaxial) on the trajectory view."


#: Standard-view checks every fluoroscopic procedure with an endplate to square, and a needle line
#: to align with the beam, is held to (reference 6.3), and the contrast reading (reference 6.4).
ENDPLATES_CHECK = ("endplates_squared", 1.0, _endplates_sentence)
COAXIAL_CHECK = ("coaxial_view", 1.0, _coaxial_sentence)
PATTERN_CHECK = ("contrast_pattern_read", 1.0,
                 "The contrast pattern was not read correctly (or not stated): say what the spread shows, and act on "
                 "it, before the drug goes in.")

#: A technique check: (metric, minimum value, what to say when it is missing: a sentence, or a
#: function of the metrics that writes it).
Check = tuple[str, float, "str | Callable[[dict[str, float]], str]"]


class Procedure:
    """One procedure: its outcomes (id to description and placement points of 60), a feedback
    sentence per outcome (may name ``{level}``, ``{side}``, ``{interspace}``, ``{tissue}``), its
    technique checks, and the methods the simulation, the scoring and the scene use."""

    outcomes: dict[str, tuple[str, float]] = {}
    feedback: dict[str, str] = {}
    #: Technique checks under fluoroscopy (besides the standard-view ones, see
    #: :meth:`fluoroscopy_rubric`) and by landmarks (5 points each).
    fluoroscopy_checks: tuple[Check, ...] = ()
    landmark_checks: tuple[Check, ...] = ()
    #: Whether the views square an endplate of the target level, and whether the needle is
    #: placed down the beam of a trajectory view (all but the caudal, whose needle climbs the canal
    #: seen on the lateral).
    squares_endplates = True
    coaxial = True
    #: The contralateral oblique's accepted range for the depth check, degrees (interlaminar).
    clo_range_deg: tuple[float, float] | None = None
    #: Safety rules (reference 3.13) that apply: an epidural steroid injection (rule 1: contrast
    #: before the drug, under imaging), transforaminal (rule 4: contrast under live imaging),
    #: particulate steroid forbidden (rule 3: cervical transforaminal).
    epidural_injection = False
    transforaminal = False
    particulate_forbidden = False
    #: Whether the procedure is practised by landmarks (interlaminar, caudal, sacroiliac joint); the
    #: others are never done blind, and a landmark attempt at one fails (reference 3.13, rule 1).
    done_by_landmarks = False
    #: Most injectate (drugs, not contrast) the procedure takes, mL, and why (reference 6.5).
    injectate_limit_ml = 20.0
    injectate_limit_reason = ""
    #: What the expert injects once contrast has confirmed the tip: (drug id, mL) in order.
    expert_injectate: tuple[tuple[str, float], ...] = ()

    def target_point(self, anatomy, scenario) -> np.ndarray:
        """The middle of the target zone (world mm)."""
        raise NotImplementedError

    def prepare(self, anatomy, scenario) -> None:
        """Find now what finishing an attempt will search the tissue for (kept per anatomy): the
        target point, and what classifying a tip at the target and one short of it reads (every
        level's zone anchor, say). The app calls it off the GUI thread as a case opens: left to
        the finish, a thoracic transforaminal case's 22 foramina held the window 0.3 s."""
        target = np.asarray(self.target_point(anatomy, scenario), float)
        self.classify(anatomy, target, scenario, False)
        short_of_it = target + 30.0 * np.asarray(room_up(scenario.patient_position), float)  # towards the skin
        self.classify(anatomy, short_of_it, scenario, False)

    def views_interspace(self, level: str) -> str:
        """The interspace whose standard views show the target at ``level``."""
        return level

    def view_standards(self, anatomy, scenario) -> ViewStandards:
        """What this patient's standard views must be (the metrics judge each image by them)."""
        tilt = squaring_tilt_deg(anatomy, self.views_interspace(scenario.target_level)) \
            if self.squares_endplates else None
        return ViewStandards(tilt, self.clo_range_deg, scenario.side)

    def fluoroscopy_rubric(self) -> tuple[Check, ...]:
        """Every technique check under fluoroscopy: the standard views (endplates squared,
        coaxial), the procedure's own checks, and the contrast reading."""
        return ((ENDPLATES_CHECK,) if self.squares_endplates else ()) + ((COAXIAL_CHECK,) if self.coaxial else ()) \
            + tuple(self.fluoroscopy_checks) + (PATTERN_CHECK,)

    def centre_point(self, anatomy, scenario) -> np.ndarray:
        """Where the C-arm is centred at the start."""
        return self.target_point(anatomy, scenario)

    def outcome_at(self, anatomy, tip: np.ndarray, tissue, scenario, dural_puncture: bool) -> tuple[str, str]:
        """(outcome id, where: the interspace or region) of a tip in ``tissue``."""
        raise NotImplementedError

    def classify(self, anatomy, tip_mm, scenario, dural_puncture: bool,
                 tip_tissue_id: int | None = None) -> Placement:
        """Where the final tip is, classified. ``tip_tissue_id`` overrides the tissue at the tip
        (the bone a tip rests against)."""
        if tip_mm is None:
            return Placement("no_needle", "none", "none", "", None, None, self.outcomes["no_needle"][0])
        tip = np.asarray(tip_mm, float)
        if tip_tissue_id is None:
            tip_tissue_id = int(anatomy.tissue_at(tip[None])[0])
        tissue = tissue_table()[tip_tissue_id]
        outcome, where = self.outcome_at(anatomy, tip, tissue, scenario, dural_puncture)
        distance = float(np.linalg.norm(tip - self.target_point(anatomy, scenario)))
        return Placement(outcome, tissue.name, tissue.category, where, tuple(float(v) for v in tip), distance,
                         self.outcomes[outcome][0])

    def in_target_zone(self, anatomy, scenario, labels: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Which of ``points`` (with their tissue ``labels``) lie in the target zone (the scene draws
        it)."""
        raise NotImplementedError

    def outcome_feedback(self, placement: Placement, scenario) -> str:
        """One sentence on where the tip ended."""
        sentence = self.feedback.get(placement.outcome)
        if sentence is None:
            return "No needle was placed." if placement.outcome == "no_needle" else \
                f"The tip ended in {placement.description}."
        return sentence.format(level=scenario.target_level, side=scenario.side, interspace=placement.interspace,
                               tissue=placement.tissue.replace("_", " "))

    def hard_fails(self, metrics: dict[str, float], placement: Placement, scenario) -> list[str]:
        """The safety rules (reference 3.13) the attempt broke, one sentence each; any one fails it.
        Landmark scenarios work without images by design: rules 1 and 4 do not apply to them."""
        fails = []
        fluoroscopy = scenario.guidance == "fluoroscopy"
        if not fluoroscopy and not self.done_by_landmarks:
            fails.append("Hard fail: this procedure is not done without imaging; the landmark case shows why "
                         "(reference 3.13, rule 1).")
        if self.particulate_forbidden and metrics.get("particulate_steroid", 0.0):
            fails.append("Hard fail: a particulate steroid was injected in a cervical transforaminal injection; only a "
                         "non-particulate steroid (dexamethasone) may be used (reference 3.13, rule 3).")
        if fluoroscopy and self.transforaminal and metrics.get("contrast_not_live", 0.0):
            fails.append("Hard fail: transforaminal contrast was injected without live fluoroscopy or subtraction; a "
                         "spot image misses arterial uptake (reference 3.13, rule 4).")
        if fluoroscopy and self.epidural_injection and metrics.get("drug_before_contrast", 0.0):
            fails.append("Hard fail: the drug went in before any contrast had shown where the tip was (reference "
                         "3.13, rule 1).")
        if metrics.get("continued_after_bad_pattern", 0.0):
            fails.append("Hard fail: the injection went on after a vascular or intrathecal contrast pattern without "
                         "the needle being moved (reference 3.13, rule 5).")
        return fails

    def technique(self, metrics: dict[str, float], guidance: str, expert_images: int) -> tuple[float, list[str]]:
        """Technique points (of 15; time is scored apart) and feedback. Under fluoroscopy the
        checks share 10 points and the images give 5; by landmarks each check gives 5 and the
        passes 5."""
        fluoroscopy = guidance == "fluoroscopy"
        checks = self.fluoroscopy_rubric() if fluoroscopy else self.landmark_checks
        each = 10.0 / len(checks) if fluoroscopy else 5.0
        points, feedback = 0.0, []
        for metric, minimum, missing in checks:
            if metrics.get(metric, 0.0) >= minimum:
                points += each
            else:
                feedback.append(missing(metrics) if callable(missing) else missing)
        if fluoroscopy:
            images = metrics.get("images", 0.0)
            if images > 2 * expert_images:
                feedback.append(f"{int(images)} images were taken; an expert needs about {expert_images}.")
            return points + 5.0 * min(1.0, expert_images / max(images, 1e-9)), feedback
        passes = max(1.0, metrics.get("needle_passes", 1.0))
        if passes > 2:
            feedback.append(f"{int(passes)} needle passes were needed.")
        return points + 5.0 / passes, feedback
