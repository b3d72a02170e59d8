"""The image-guided technique of the virtual operator (the steps are in
:mod:`simulator.study.operators`' docstring). Given :class:`~simulator.study.senses.Eyes`."""

from __future__ import annotations

import math

import numpy as np

from simulator.errors import SpineSimError
from simulator.geometry import frames
from simulator.imaging.carm import detector_direction
from simulator.protocol import commands as cmd
from simulator.study.hand import CERVICAL_OFFSET_MM, Operator
from simulator.study.senses import Eyes, triangulate


class ImageGuidedOperator(Operator):
    """The fluoroscopic technique (see the module's docstring). Given :class:`Eyes`."""

    hands: Eyes
    techniques = {"lumbar_interlaminar": "_interlaminar", "cervical_interlaminar": "_interlaminar",
                  "caudal": "_caudal", "lumbar_transforaminal": "_transforaminal"}

    # ------------------------------------------------------------------ views
    def squared_ap(self, level: str, iso, tilt: float = 0.0):
        """AP images re-tilted until ``level``'s superior endplate reads square (2 degrees)."""
        eyes = self.hands
        image = eyes.take_image(0.0, tilt, iso)
        for _ in range(3):
            if image is None:
                return None, tilt
            off = eyes.endplate_tilt_deg(level)
            if abs(off) <= 2.0:
                break
            tilt += off
            image = eyes.take_image(0.0, tilt, iso)
        return image, tilt

    def locate(self, name: str, views) -> np.ndarray | None:
        """A bony landmark placed in depth from its readings in ``views``."""
        readings = [(v, rc) for v in views if v is not None for rc in [self.hands.read_bone(v, name)] if rc is not None]
        return triangulate(readings) if len(readings) >= 2 else None

    def tip_now(self, views) -> np.ndarray | None:
        readings = [(v, rc) for v in views if v is not None for rc in [self.hands.read_tip(v)] if rc is not None]
        return triangulate(readings) if len(readings) >= 2 else None

    def check_pair(self, first: tuple[float, float], second: tuple[float, float], iso):
        return [self.hands.take_image(first[0], first[1], iso), self.hands.take_image(second[0], second[1], iso)]

    def back_off_and_reaim(self, target: np.ndarray, check, iso) -> None:
        """On bone: back to 10 mm under the skin, a check pair, and the line re-aimed."""
        self.withdraw(self.hands.depth_mm - 10.0)
        self.reaim(target, self.check_pair(*check, iso))

    def reaim(self, target: np.ndarray, views) -> bool:
        """Read the tip off a check pair and turn the needle onto the line from its entry to the
        target (withdrawing first when the turn is too big for a deep needle); False when the
        needle is on the line already (or cannot be read)."""
        tip = self.tip_now(views)
        entry = self.hands.entry_mm
        if tip is None or entry is None:
            return False
        # near the skin the shaft's line (hub to tip) shows the aim better than the tip's place
        now = frames.unit(tip - entry) if self.hands.depth_mm >= 25.0 else self.hands.direction
        want = frames.unit(target - entry)
        cranial = math.degrees(math.asin(np.clip(want[2], -1, 1)) - math.asin(np.clip(now[2], -1, 1)))
        right = math.degrees(math.atan2(want[0], want[1]) - math.atan2(now[0], now[1]))
        right = (right + 180.0) % 360.0 - 180.0
        if math.hypot(cranial, right) < 0.75:
            return False
        if math.hypot(cranial, right) > 7.5 and self.hands.depth_mm > 15.0:
            self.withdraw(self.hands.depth_mm - 12.0)
        cranial_err, right_err = (0.0, 0.0) if self.skill.angle_sd_deg <= 0 else self._hand_angles()
        scale = 0.3  # a correction is a small turn: the hand's error scales with it
        return self.redirect(cranial + scale * cranial_err, right + scale * right_err)

    def plan_line(self, target: np.ndarray, tilt: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The expert's bone-free line to ``target`` (down the beam first), planned on what the
        trajectory view shows; a millimetre or two off the target if the read point itself seems
        to be in bone; else the line straight down the beam (the needle will find its way)."""
        from simulator.procedures.lumbar_interlaminar import clear_path_entry

        for offset in ((0.0, 0.0, 0.0), (0.0, 0.0, -2.0), (0.0, 0.0, 2.0), (0.0, 1.5, 0.0), (2.0, 0.0, 0.0),
                       (-2.0, 0.0, 0.0)):
            try:
                return clear_path_entry(self.hands.bone, target + np.asarray(offset), tilt)
            except SpineSimError:
                continue
        direction = frames.unit(-detector_direction(0.0, tilt))
        entry = self.hands.skin_along(target - 200.0 * direction, direction)
        return None if entry is None else (entry, direction)

    def line_along(self, target: np.ndarray, direction: np.ndarray, max_mm: float = np.inf):
        """The straight line into ``target`` along ``direction`` from where it meets the skin:
        (entry, direction, depth, target), or None (no skin, or longer than ``max_mm``)."""
        entry = self.hands.skin_along(target - 200.0 * direction, direction)
        if entry is None:
            return None
        depth = float(np.linalg.norm(target - entry))
        return None if depth > max_mm else (entry, direction, depth, target)

    def first_clear_line(self, candidates, max_mm: float = np.inf):
        """The first of ``candidates`` ((target, direction) pairs) whose line is clear of bone."""
        for target, direction in candidates:
            line = self.line_along(target, direction, max_mm)
            if line is not None and self.clear_of_bone(line[0], target):
                return line
        return None

    def clear_of_bone(self, entry: np.ndarray, target: np.ndarray, margin_mm: float = 2.0) -> bool:
        """No bone on the straight line from ``entry`` to within ``margin_mm`` of ``target`` (the
        trajectory view cannot tell the last millimetres)."""
        length = float(np.linalg.norm(target - entry))
        t = np.arange(0.0, max(length - margin_mm, 0.0), 0.5)
        if t.size == 0:
            return True
        points = entry + t[:, None] * frames.unit(target - entry)
        return not self.hands.bone.is_bone(points).any()

    def aim_for_drift(self, entry: np.ndarray, direction: np.ndarray, depth_mm: float) -> None:
        from simulator.simulation.reference import aim_against_drift

        cranial, right = aim_against_drift(self.hands.needle_spec, entry, direction, 0.0, depth_mm)
        self.redirect(cranial, right)

    def contrast(self, volume_ml: float, live_s: float | None) -> bool:
        """Contrast and its reading; on a bad pattern a small move and again (twice); on a
        soft-tissue one 1 mm on with a saline test. True when the drugs may go in."""
        eyes = self.hands
        for attempt in range(3):
            if live_s:
                eyes.do(cmd.FluoroscopyOn(pulse_rate_pps=7.5))
            percepts = eyes.do(cmd.InjectContrast(volume_ml=volume_ml))
            if live_s:
                eyes.do(cmd.FluoroscopyOff())
            if percepts is None:
                return False
            eyes.do(cmd.AcquireImage())
            pattern = eyes.read_pattern(percepts)
            if pattern is None:
                return False
            eyes.do(cmd.ReportPattern(pattern=pattern))
            if pattern in ("epidural", "joint"):
                return True
            if attempt == 2:
                return False
            if pattern == "soft_tissue":
                self.advance(1.0)
                eyes.do(cmd.TestLossOfResistance(medium="saline"))
            else:
                self.withdraw(2.0)
                self.redirect(1.0 if attempt == 0 else -2.0, 0.0)
                self.advance(2.0)
        return False

    # ------------------------------------------------------------------ interlaminar
    def _interlaminar(self) -> None:
        eyes = self.hands
        interspace = self.brief.target_level
        upper, lower = interspace.split("-")
        iso = eyes.isocentre_mm
        ap, tilt = self.squared_ap(lower, iso)
        lateral = eyes.take_image(90.0, tilt, iso)
        target = self.locate(f"{interspace}.epidural_target", [ap, lateral])
        if target is None:
            return
        if self.brief.procedure == "cervical_interlaminar":
            target = target + CERVICAL_OFFSET_MM * frames.RIGHT
        centre = self.locate(f"{interspace}.interlaminar_center", [ap, lateral])
        iso = tuple(float(v) for v in (centre if centre is not None else target))
        line = self.plan_line(target, tilt)
        if line is None:
            return
        entry, direction = line
        total = float(np.linalg.norm(target - entry))
        self.insert(entry, direction)
        self.aim_for_drift(entry, direction, total)
        check = ((0.0, tilt), (90.0, tilt))
        outcome = "none"
        for walk in range(self.skill.bone_walks + 1):
            felt = self.advance_to(max(0.0, total - 16.0), 5.0)
            if "bone_contacted" in felt:
                self.back_off_and_reaim(target, check, iso)
                continue
            for _ in range(self.skill.corrections):
                if not self.reaim(target, self.check_pair(*check, iso)):
                    break
                self.advance_to(max(0.0, total - 16.0), 3.0)
            outcome = self.find_loss(total, self.skill.early_loss_mm)
            if outcome != "bone":
                break
            self.back_off_and_reaim(target, check, iso)
        if outcome != "loss":
            return
        if self.contrast(1.5, None):
            self.inject_drugs()

    # ------------------------------------------------------------------ caudal
    def _caudal(self) -> None:
        eyes = self.hands
        iso = eyes.isocentre_mm
        lateral = eyes.take_image(90.0, 0.0, iso)
        ap = eyes.take_image(0.0, 0.0, iso)
        apex = self.locate("sacrum.hiatus_apex", [lateral, ap])
        foramina = {level: [self.locate(f"{level}.foramen_{side}", [lateral, ap]) for side in ("left", "right")]
                    for level in ("S2", "S4")}
        if apex is None or any(p is None for pair in foramina.values() for p in pair):
            return
        # the canal runs from the S4 foramina's level to the S2 ones'
        up = frames.unit(np.mean(foramina["S2"], axis=0) - np.mean(foramina["S4"], axis=0))
        into = frames.unit(frames.ANTERIOR - (frames.ANTERIOR @ up) * up)
        # canal fat just above the apex (as the expert aims), or a millimetre or two off it; in at
        # the hiatus, not from far below it (the hand must reach, the line stay short)
        candidates = ((apex + up_mm * up + into_mm * into,
                       frames.unit(math.cos(math.radians(angle)) * up + math.sin(math.radians(angle)) * into))
                      for up_mm, into_mm in ((2.0, 2.5), (4.0, 2.5), (2.0, 3.5), (0.0, 2.5), (4.0, 1.5), (6.0, 3.0))
                      for angle in np.arange(20.0, 60.5, 2.5))
        # no clear line seen: the textbook 45 degrees, and feel the way
        line = (self.first_clear_line(candidates, max_mm=60.0)
                or self.line_along(apex + 2.0 * up + 2.5 * into, frames.unit(up + into)))
        if line is None:
            return
        entry, direction, depth, target = line
        self.insert(entry, direction)
        walks = 0
        while self.hands.depth_mm < depth - 0.05:
            felt = self.advance(min(2.0, depth - self.hands.depth_mm))
            if not felt or felt & {"needle_length_exhausted", "csf_in_hub"}:
                break
            if "bone_contacted" in felt:
                if walks >= self.skill.bone_walks:
                    break
                walks += 1
                self.withdraw(3.0)
                self.redirect(-1.5, 0.0)
        iso_apex = tuple(float(v) for v in apex)
        for _ in range(self.skill.corrections):
            views = self.check_pair((90.0, 0.0), (0.0, 0.0), iso_apex)
            tip = self.tip_now(views)
            if tip is None or float(np.linalg.norm(tip - target)) < 3.0:
                break
            if abs(float((tip - target) @ into)) > 3.0:
                # in front of the canal or behind it: back, re-aim, in again
                self.withdraw(self.hands.depth_mm - 10.0)
                self.reaim(target, self.check_pair((90.0, 0.0), (0.0, 0.0), iso_apex))
                self.advance_to(depth, 2.0)
                continue
            # in the canal but short or long: on along the canal or back
            along = float((target - tip) @ up)
            if along > 0:
                self.advance(min(along, 10.0))
            else:
                self.withdraw(min(-along, 10.0))
        if not self.aspirate_and_settle():
            return
        eyes.do(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=0.0, isocentre_mm=iso_apex))
        if self.contrast(3.0, 6.0):
            self.inject_drugs()

    # ------------------------------------------------------------------ transforaminal
    def _transforaminal(self) -> None:
        eyes = self.hands
        interspace, side = self.brief.target_level, self.brief.side
        upper, lower = interspace.split("-")
        iso = eyes.isocentre_mm
        ap, tilt = self.squared_ap(lower, iso)
        sign = -1.0 if side == "right" else 1.0  # the detector towards the needle's side
        oblique = eyes.take_image(sign * 25.0, tilt, iso)
        pedicle = self.locate(f"{upper}.pedicle_{side}_center", [ap, oblique])
        foramen = self.locate(f"{interspace}.foramen_{side}_center", [ap, oblique])
        if pedicle is None or foramen is None:
            return
        # just under the pedicle's 6 o'clock, in the foramen's posterior half (reference 3.4)
        aim = np.array([foramen[0], foramen[1] - 1.0, pedicle[2] - 9.0])
        # down the beam of an ipsilateral oblique: from the detector's side into the back
        candidates = ((aim + np.array([0.0, dy, dz]), frames.unit(-detector_direction(sign * ob, tilt + dt)))
                      for dy, dz in ((0.0, 0.0), (0.0, -2.0), (-2.0, 0.0), (0.0, 2.0), (-2.0, -2.0), (2.0, 0.0))
                      for ob in (25.0, 20.0, 30.0, 15.0, 35.0, 40.0) for dt in (0.0, -5.0, 5.0, -10.0, 10.0))
        # nothing clear seen: the textbook oblique line, adjusted on the way
        line = (self.first_clear_line(candidates)
                or self.line_along(aim, frames.unit(-detector_direction(sign * 25.0, tilt))))
        if line is None:
            return
        entry, direction, depth, target = line
        self.insert(entry, direction)
        self.aim_for_drift(entry, direction, depth)
        iso_f = tuple(float(v) for v in foramen)
        check = ((0.0, tilt), (90.0, tilt))
        outward = np.array([1.0 if side == "right" else -1.0, 0.0, 0.0])
        felt: set[str] = set()
        for walk in range(self.skill.bone_walks + 1):
            felt = self.advance_to(depth - 8.0, 3.0)
            if "bone_contacted" not in felt:
                for _ in range(self.skill.corrections):
                    if not self.reaim(target, self.check_pair(*check, iso_f)):
                        break
                felt = self.advance_to(depth, 1.0)
            if "bone_contacted" not in felt or walk == self.skill.bone_walks:
                break
            # on the transverse process or the articular process: a little lower and further out
            target = target + 2.0 * frames.INFERIOR + 1.0 * outward
            self.back_off_and_reaim(target, check, iso_f)
        if "paraesthesia" in felt:
            self.withdraw(2.0)
        if "bone_contacted" in felt:
            self.withdraw(1.0)
        if not self.aspirate_and_settle():
            return
        eyes.do(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=tilt, isocentre_mm=iso_f))
        if self.contrast(1.0, 4.0):
            self.inject_drugs()


