"""Streaming metrics (Perk Tutor's design): each reads events one by one and reports a value.

The same metric objects run live in the app, on replay and in headless scoring, because they only
ever see events.
"""

from __future__ import annotations

from simulator.procedures.base import COAXIAL_WITHIN_DEG, SQUARED_WITHIN_DEG, ViewStandards
from simulator.protocol.events import Event


class Metric:
    """A streaming metric: ``update(event)`` for each event, then ``value()``."""

    id: str = ""
    unit: str = ""
    description: str = ""

    def update(self, event: Event) -> None:
        raise NotImplementedError

    def value(self) -> float:
        raise NotImplementedError


class CountOf(Metric):
    """How many events of some kinds happened."""

    def __init__(self, metric_id: str, kinds: tuple[str, ...], description: str, unit: str = "count"):
        self.id = metric_id
        self.kinds = kinds
        self.description = description
        self.unit = unit
        self._n = 0

    def update(self, event: Event) -> None:
        if event.kind in self.kinds:
            self._n += 1

    def value(self) -> float:
        return float(self._n)


class ElapsedTime(Metric):
    id = "time_s"
    unit = "s"
    description = "time from the start of the attempt to finishing"

    def __init__(self):
        self._t = 0.0

    def update(self, event: Event) -> None:
        self._t = max(self._t, event.t_s)

    def value(self) -> float:
        return self._t


class NeedlePasses(Metric):
    """Needle passes: a pass starts when the needle moves forward from the skin (a new entry, or
    after being drawn back to within 5 mm of the skin)."""

    id = "needle_passes"
    unit = "count"
    description = "needle insertions from the skin"

    def __init__(self):
        self._n = 0

    def update(self, event: Event) -> None:
        if event.kind == "needle_pass_started":
            self._n += 1

    def value(self) -> float:
        return float(self._n)


class PathLength(Metric):
    """Total distance the tip travelled inside the patient (Perk Tutor's path length in tissue)."""

    id = "path_in_tissue_mm"
    unit = "mm"
    description = "distance the needle tip moved inside the body"

    def __init__(self):
        self._mm = 0.0

    def update(self, event: Event) -> None:
        if event.kind in ("needle_advanced", "needle_withdrawn"):
            self._mm += abs(float(event.data.get("moved_mm", 0.0)))

    def value(self) -> float:
        return self._mm


class TotalPath(PathLength):
    """Total distance the tip travelled (Perk Tutor's path length): inside the patient, and between
    the skin entries of successive passes."""

    id = "path_total_mm"
    description = "distance the needle tip moved in all, inside and outside the body"

    def __init__(self):
        super().__init__()
        self._last_tip = None

    def update(self, event: Event) -> None:
        super().update(event)
        tip = event.data.get("tip_mm")
        if event.kind == "entry_set":
            tip = event.data.get("entry_mm")
            if self._last_tip is not None and tip is not None:
                self._mm += sum((a - b) ** 2 for a, b in zip(tip, self._last_tip)) ** 0.5
        if tip is not None:
            self._last_tip = tip


class TimeInside(Metric):
    """Time with the needle's tip inside the patient (Perk Tutor's time inside), s."""

    id = "time_inside_s"
    unit = "s"
    description = "time with the needle in the body"

    def __init__(self):
        self._s = 0.0
        self._since = None  # when the tip last went in
        self._now = 0.0

    def update(self, event: Event) -> None:
        self._now = max(self._now, event.t_s)
        if event.kind not in ("needle_advanced", "needle_withdrawn", "entry_set"):
            return
        inside = event.kind != "entry_set" and float(event.data.get("depth_mm", 0.0)) > 0.0
        if inside and self._since is None:
            self._since = event.t_s
        elif not inside and self._since is not None:
            self._s += event.t_s - self._since
            self._since = None

    def value(self) -> float:
        return self._s + (self._now - self._since if self._since is not None else 0.0)


class ContrastVolume(Metric):
    id = "contrast_ml"
    unit = "mL"
    description = "contrast injected"

    def __init__(self):
        self._ml = 0.0

    def update(self, event: Event) -> None:
        if event.kind == "contrast_injected":
            self._ml += float(event.data.get("volume_ml", 0.0))

    def value(self) -> float:
        return self._ml


def _is_ap(event: Event) -> bool:
    return abs(float(event.data.get("oblique_deg", 0.0))) < 15.0


class DepthCheckedBeforeLigamentumFlavum(Metric):
    """1 if a true lateral (|oblique| >= 75 degrees) or a contralateral oblique within the
    procedure's range was taken while the needle was in the body and before its tip first entered
    the ligamentum flavum; else 0. Without a range, any oblique of 35 degrees or more counts."""

    id = "depth_checked_before_lf"
    unit = "bool"
    description = "depth checked on a lateral or contralateral oblique view before reaching the ligamentum flavum"

    def __init__(self, standards: ViewStandards | None = None):
        self._standards = standards or ViewStandards()
        self._needle_in = False
        self._checked = False
        self._reached_lf = False

    def _depth_view(self, oblique_deg: float) -> bool:
        if abs(oblique_deg) >= 75.0:
            return True
        low, high = self._standards.clo_range_deg or (35.0, 75.0)
        # the detector away from the needle: towards the patient's left (+) for a right needle
        side = {"right": 1.0, "left": -1.0}.get(self._standards.needle_side)
        contralateral = abs(oblique_deg) if side is None else side * oblique_deg
        return low - 1e-6 <= contralateral <= high + 1e-6

    def update(self, event: Event) -> None:
        if event.kind == "entry_set":
            self._needle_in = True
        elif event.kind == "tissue_entered" and event.data.get("tissue") == "ligamentum_flavum":
            self._reached_lf = True
        elif (event.kind == "image_acquired" and self._needle_in and not self._reached_lf
              and self._depth_view(float(event.data.get("oblique_deg", 0.0)))):
            self._checked = True

    def value(self) -> float:
        return 1.0 if self._checked else 0.0


class LevelConfirmedOnAp(Metric):
    """1 if an AP image (|oblique| < 15 degrees) was taken before the needle entered the skin."""

    id = "level_confirmed_on_ap"
    unit = "bool"
    description = "level confirmed on an AP image before needling"

    def __init__(self):
        self._entered = False
        self._ok = False

    def update(self, event: Event) -> None:
        if event.kind == "entry_set":
            self._entered = True
        elif event.kind == "image_acquired" and not self._entered and _is_ap(event):
            self._ok = True

    def value(self) -> float:
        return 1.0 if self._ok else 0.0


class EndplateTiltError(LevelConfirmedOnAp):
    """The smallest cranio-caudal tilt error, against the tilt that squares the target level's
    endplates, of the AP images taken before needling, degrees (90: none, or nothing to square)."""

    id = "endplate_tilt_error_deg"
    unit = "deg"
    description = "tilt error of the best AP image before needling, against squared endplates"

    def __init__(self, standards: ViewStandards | None = None):
        super().__init__()
        self._squaring = (standards or ViewStandards()).squaring_tilt_deg
        self._error = 90.0

    def update(self, event: Event) -> None:
        super().update(event)
        if event.kind == "image_acquired" and not self._entered and _is_ap(event) and self._squaring is not None:
            self._error = min(self._error, abs(float(event.data.get("tilt_deg", 0.0)) - self._squaring))

    def value(self) -> float:
        return self._error


class EndplatesSquared(EndplateTiltError):
    """1 if an AP image before needling had the target level's endplates squared (tilt error under
    :data:`~simulator.procedures.base.SQUARED_WITHIN_DEG`)."""

    id = "endplates_squared"
    unit = "bool"
    description = "level confirmed on AP with the endplates squared before needling"

    def value(self) -> float:
        return 1.0 if self._error < SQUARED_WITHIN_DEG else 0.0


class NeedleBeamAngle(Metric):
    """The smallest angle between the needle (hub to tip) and the beam over the images and live runs
    taken with the needle in, degrees (90: none)."""

    id = "needle_beam_min_deg"
    unit = "deg"
    description = "how nearly the needle was imaged down the beam"

    def __init__(self):
        self._deg = 90.0

    def update(self, event: Event) -> None:
        if event.kind in ("image_acquired", "fluoroscopy_started") and event.data.get("needle_beam_deg") is not None:
            self._deg = min(self._deg, float(event.data["needle_beam_deg"]))

    def value(self) -> float:
        return self._deg


class CoaxialView(NeedleBeamAngle):
    """1 if the needle was imaged down the beam (within
    :data:`~simulator.procedures.base.COAXIAL_WITHIN_DEG`): the trajectory view."""

    id = "coaxial_view"
    unit = "bool"
    description = "the needle imaged down the beam (coaxial)"

    def value(self) -> float:
        return 1.0 if self._deg <= COAXIAL_WITHIN_DEG else 0.0


class LateralWithNeedle(Metric):
    """1 if a lateral image (|oblique| >= 75 degrees) was taken with the needle past the skin."""

    id = "lateral_with_needle"
    unit = "bool"
    description = "a lateral image with the needle in"

    def __init__(self):
        self._depth_mm = 0.0
        self._ok = False

    def update(self, event: Event) -> None:
        if event.kind in ("needle_advanced", "needle_withdrawn"):
            self._depth_mm = float(event.data.get("depth_mm", 0.0))
        elif event.kind == "entry_set":
            self._depth_mm = 0.0
        elif event.kind == "image_acquired" and self._depth_mm > 5.0 and abs(float(event.data.get("oblique_deg", 0.0))) >= 75.0:
            self._ok = True

    def value(self) -> float:
        return 1.0 if self._ok else 0.0


class ApWithNeedle(LateralWithNeedle):
    """1 if an AP image (|oblique| < 15 degrees) was taken with the needle past the skin."""

    id = "ap_with_needle"
    description = "an AP image with the needle in"

    def update(self, event: Event) -> None:
        if event.kind == "image_acquired":
            if self._depth_mm > 5.0 and abs(float(event.data.get("oblique_deg", 0.0))) < 15.0:
                self._ok = True
        else:
            super().update(event)


class LiveContrast(Metric):
    """1 if contrast went in while fluoroscopy was on (live or subtracted)."""

    id = "live_contrast"
    unit = "bool"
    description = "contrast injected under live fluoroscopy"

    def __init__(self):
        self._live = False
        self._ok = False

    def update(self, event: Event) -> None:
        if event.kind in ("fluoroscopy_started", "fluoroscopy_stopped"):
            self._live = event.kind == "fluoroscopy_started"
        elif event.kind == "contrast_injected" and self._live:
            self._ok = True

    def value(self) -> float:
        return 1.0 if self._ok else 0.0


class ContrastImaged(LiveContrast):
    """1 if the contrast was seen: injected under live fluoroscopy, or an image taken after it."""

    id = "contrast_imaged"
    description = "contrast seen on live fluoroscopy or an image after it"

    def __init__(self):
        super().__init__()
        self._injected = False

    def update(self, event: Event) -> None:
        super().update(event)
        if event.kind == "contrast_injected":
            self._injected = True
        elif event.kind == "image_acquired" and self._injected:
            self._ok = True


class InjectateVolume(ContrastVolume):
    """Drug (local anaesthetic, steroid, saline) injected, mL."""

    id = "injectate_ml"
    description = "drug injected (local anaesthetic, steroid, saline)"

    def update(self, event: Event) -> None:
        if event.kind == "drug_injected":
            self._ml += float(event.data.get("volume_ml", 0.0))


class ParticulateSteroid(Metric):
    """Injections of a particulate steroid."""

    id = "particulate_steroid"
    unit = "count"
    description = "injections of a particulate steroid"

    def __init__(self):
        self._n = 0

    def update(self, event: Event) -> None:
        if event.kind == "drug_injected" and event.data.get("particulate"):
            self._n += 1

    def value(self) -> float:
        return float(self._n)


class ContrastNotLive(ParticulateSteroid):
    """Contrast injections made without live fluoroscopy (or subtraction) running."""

    id = "contrast_not_live"
    description = "contrast injections without live fluoroscopy"

    def __init__(self):
        super().__init__()
        self._live = False

    def update(self, event: Event) -> None:
        if event.kind in ("fluoroscopy_started", "fluoroscopy_stopped"):
            self._live = event.kind == "fluoroscopy_started"
        elif event.kind == "contrast_injected" and not self._live:
            self._n += 1


class DrugBeforeContrast(ParticulateSteroid):
    """Drug injections given before any contrast had confirmed where the tip was."""

    id = "drug_before_contrast"
    description = "drug injected with no contrast before it"

    def __init__(self):
        super().__init__()
        self._contrast = False

    def update(self, event: Event) -> None:
        if event.kind == "contrast_injected":
            self._contrast = True
        elif event.kind == "drug_injected" and not self._contrast:
            self._n += 1


#: Contrast patterns after which the needle must be moved before anything more is injected
#: (reference 3.13, rule 5).
BAD_COMPARTMENTS = ("intrathecal", "subdural", "venous", "arterial")


def bad_pattern(event: Event) -> bool:
    """Whether a ``contrast_injected`` event showed a vascular, intrathecal or subdural pattern."""
    return event.data.get("vascular") is not None or event.data.get("compartment") in BAD_COMPARTMENTS


class ContinuedAfterBadPattern(ParticulateSteroid):
    """Drug injections made after a vascular, intrathecal or subdural contrast pattern without the
    needle being moved in between."""

    id = "continued_after_bad_pattern"
    description = "drug injected after a vascular or intrathecal pattern without repositioning"

    def __init__(self):
        super().__init__()
        self._bad = False

    def update(self, event: Event) -> None:
        if event.kind == "contrast_injected":
            self._bad = bad_pattern(event)
        elif event.kind in ("needle_advanced", "needle_withdrawn", "needle_redirected", "entry_set"):
            self._bad = False
        elif event.kind == "drug_injected" and self._bad:
            self._n += 1


class ContrastPatternRead(Metric):
    """1 if every contrast injection's pattern was read correctly (the trainee's last stated
    reading before the next injection or the end), else 0; 1 with no contrast."""

    id = "contrast_pattern_read"
    unit = "bool"
    description = "every contrast pattern read correctly"

    def __init__(self):
        self._unread = 0  # injections without a correct last reading, the pending one included
        self._pending_correct: bool | None = None

    def _close(self) -> None:
        if self._pending_correct is not None and not self._pending_correct:
            self._unread += 1
        self._pending_correct = None

    def update(self, event: Event) -> None:
        if event.kind == "contrast_injected":
            self._close()
            self._pending_correct = False
        elif event.kind == "pattern_reported" and self._pending_correct is not None:
            self._pending_correct = bool(event.data.get("correct"))

    def value(self) -> float:
        pending_wrong = self._pending_correct is not None and not self._pending_correct
        return 0.0 if self._unread or pending_wrong else 1.0


#: Closest approaches further than this are not near misses (the search's reach), mm.
NEAR_MISS_REACH_MM = 5.0


class ClosestApproach(Metric):
    """The closest the needle's track came to one danger structure over the whole attempt, mm (0:
    it went in; :data:`NEAR_MISS_REACH_MM`: nothing nearer)."""

    unit = "mm"

    def __init__(self, group: str):
        self.group = group
        self.id = f"closest_{group}_mm"
        self.description = f"closest approach to the {group.replace('_', ' ')}"
        self._mm = NEAR_MISS_REACH_MM

    def update(self, event: Event) -> None:
        if event.kind == "needle_advanced":
            self._mm = min(self._mm, float(event.data.get("danger_mm", {}).get(self.group, NEAR_MISS_REACH_MM)))

    def value(self) -> float:
        return self._mm


#: The danger structures whose closest approach is kept (the simulation measures it along the
#: needle's track), by the tissues each is made of.
DANGER_STRUCTURES = {
    "dura": ("dura", "csf", "spinal_cord", "cauda_equina"),
    "nerve_root": ("nerve_root",),
    "artery": ("vertebral_artery", "radicular_artery", "carotid_artery"),
    "vein": ("epidural_vein", "jugular_vein"),
    "disc": ("disc_annulus", "disc_nucleus"),
    "pleura": ("pleura", "lung"),
    "organ": ("kidney", "rectum", "airway", "presacral_space"),
}


def standard_metrics(standards: ViewStandards | None = None) -> list[Metric]:
    """The metrics every attempt is scored with; ``standards`` says what this patient's standard
    views must be."""
    return [
        ElapsedTime(),
        NeedlePasses(),
        CountOf("redirections", ("needle_redirected",), "changes of needle direction in tissue"),
        CountOf("images", ("image_acquired",), "X-ray images taken"),
        CountOf("bone_contacts", ("bone_contacted",), "times the needle hit bone"),
        CountOf("dural_punctures", ("dural_puncture",), "punctures of the dura"),
        CountOf("lor_tests", ("loss_of_resistance_tested",), "presses on the loss-of-resistance syringe"),
        CountOf("palpations", ("palpated",), "palpations of the back"),
        CountOf("aspirations", ("aspirated",), "aspirations before injecting"),
        CountOf("spine_view_toggles", ("spine_visibility_changed",), "uses of the 3D see-through view"),
        PathLength(),
        TotalPath(),
        TimeInside(),
        ContrastVolume(),
        LevelConfirmedOnAp(),
        EndplateTiltError(standards),
        EndplatesSquared(standards),
        NeedleBeamAngle(),
        CoaxialView(),
        DepthCheckedBeforeLigamentumFlavum(standards),
        LateralWithNeedle(),
        ApWithNeedle(),
        LiveContrast(),
        ContrastImaged(),
        InjectateVolume(),
        ParticulateSteroid(),
        ContrastNotLive(),
        DrugBeforeContrast(),
        ContinuedAfterBadPattern(),
        ContrastPatternRead(),
        *(ClosestApproach(group) for group in DANGER_STRUCTURES),
    ]
