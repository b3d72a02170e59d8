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
        LiveContrast(),
        ContrastImaged(),
    ]
