"""Streaming metrics (Perk Tutor's design): each reads events one by one and reports a value.

The same metric objects run live in the app, on replay and in headless scoring, because they only
ever see events.
"""

from __future__ import annotations

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


class DepthCheckedBeforeLigamentumFlavum(Metric):
    """1 if a lateral or contralateral oblique image (|oblique| >= 35 degrees) was taken while the
    needle was in the body and before its tip first entered the ligamentum flavum; else 0."""

    id = "depth_checked_before_lf"
    unit = "bool"
    description = "depth checked on a lateral/oblique view before reaching the ligamentum flavum"

    def __init__(self):
        self._needle_in = False
        self._checked = False
        self._reached_lf = False

    def update(self, event: Event) -> None:
        if event.kind == "entry_set":
            self._needle_in = True
        elif event.kind == "tissue_entered" and event.data.get("tissue") == "ligamentum_flavum":
            self._reached_lf = True
        elif (event.kind == "image_acquired" and self._needle_in and not self._reached_lf
              and abs(float(event.data.get("oblique_deg", 0.0))) >= 35.0):
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
        elif event.kind == "image_acquired" and not self._entered and abs(float(event.data.get("oblique_deg", 0.0))) < 15.0:
            self._ok = True

    def value(self) -> float:
        return 1.0 if self._ok else 0.0


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


def standard_metrics() -> list[Metric]:
    """The metrics every attempt is scored with."""
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
        ContrastVolume(),
        LevelConfirmedOnAp(),
        DepthCheckedBeforeLigamentumFlavum(),
        LateralWithNeedle(),
        ApWithNeedle(),
        LiveContrast(),
        ContrastImaged(),
        InjectateVolume(),
        ParticulateSteroid(),
        ContrastNotLive(),
        DrugBeforeContrast(),
        ContinuedAfterBadPattern(),
        *(ClosestApproach(group) for group in DANGER_STRUCTURES),
    ]
