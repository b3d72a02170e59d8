"""The landmark technique of the virtual operator (the steps are in
:mod:`simulator.study.operators`' docstring). Given :class:`~simulator.study.senses.Hands` only."""

from __future__ import annotations

import numpy as np

from simulator.geometry import frames
from simulator.protocol import commands as cmd
from simulator.simulation.palpation import CREST_CRANIAL_BIAS_PER_MM
from simulator.study.hand import CERVICAL_OFFSET_MM, Operator, percept_kinds, turned

#: Cephalad tilt of the landmark needle from straight forward, degrees, by procedure [D]: "a
#: slight cephalad angle" to follow the lumbar spinous processes; straight at C7-T1, where the
#: prominens stands nearly horizontal.
CEPHALAD_DEG = {"lumbar_interlaminar": 10.0, "cervical_interlaminar": 0.0}
#: Fingers' step down the midline, mm.
WALK_STEP_MM = 4.0
#: The finger sinks this much deeper between two spinous processes, mm [D] (the processes are felt
#: under 10-15 mm of cover on the phantom; the gaps 5-20 mm deeper, or not at all).
SINK_MM = 4.0


class LandmarkOperator(Operator):
    """The landmark technique (see the module's docstring). Given :class:`Hands` only."""

    techniques = {"lumbar_interlaminar": "_interlaminar", "cervical_interlaminar": "_interlaminar",
                  "caudal": "_caudal", "lumbar_transforaminal": "_paravertebral"}

    # ------------------------------------------------------------------ palpation
    def palpate(self, x_mm: float, z_mm: float) -> tuple[str, float | None, np.ndarray | None]:
        """Press the back at (x, z): (finding, soft tissue over the bone, skin point)."""
        point = self.hands.skin_from_behind(x_mm, z_mm)
        if point is None:
            return "no skin", None, None
        for p in self.hands.do(cmd.Palpate(point_mm=tuple(float(v) for v in point))) or ():
            if p.kind == "palpated":
                return str(p.data["finding"]), p.data.get("depth_mm"), point
        return "no bone felt", None, point

    def crest_top_z(self, side: str, z_from: float, z_to: float) -> tuple[float, float] | None:
        """Down the flank until the hand meets the crest; its felt top (z) and the soft tissue."""
        found = None
        for z in np.arange(z_from, z_to, -10.0):
            point = self._flank_point(side, z)
            if point is None:
                continue
            finding, cover = self._press(point)
            if finding in ("iliac crest", "ilium", "posterior superior iliac spine"):
                found = (float(z), cover)
                break
        if found is None:
            return None
        z, cover = found
        lo, hi = z, z + 10.0  # refine between "no bone" above and the crest below
        for _ in range(3):
            mid = 0.5 * (lo + hi)
            point = self._flank_point(side, mid)
            if point is not None and self._press(point)[0] in ("iliac crest", "ilium"):
                lo = mid
            else:
                hi = mid
        bias = CREST_CRANIAL_BIAS_PER_MM * (cover or 0.0)
        error = float(self.rng.normal(0.0, self.skill.crest_sd_mm)) if self.skill.crest_sd_mm > 0 else 0.0
        return lo + bias + error, cover or 0.0

    def _flank_point(self, side: str, z: float) -> np.ndarray | None:
        back = self.hands.skin_from_behind(0.0, z)
        front = self.hands.skin_along([0.0, 400.0, z], [0.0, -1.0, 0.0])
        if back is None or front is None:
            return None
        return self.hands.flank(side, z, back[1] + 0.3 * (front[1] - back[1]))

    def _press(self, point: np.ndarray) -> tuple[str, float | None]:
        for p in self.hands.do(cmd.Palpate(point_mm=tuple(float(v) for v in point))) or ():
            if p.kind == "palpated":
                return str(p.data["finding"]), p.data.get("depth_mm")
        return "no bone felt", None

    def midline_x(self, z_mm: float, guess_x: float = 0.0) -> float:
        """Across the back at height z for the spinous process: the midline."""
        xs = [guess_x + dx for dx in (-12.0, -6.0, 0.0, 6.0, 12.0)
              if self.palpate(guess_x + dx, z_mm)[0] in ("spinous process", "vertebra prominens")]
        return float(np.mean(xs)) if xs else guess_x

    def walk_midline(self, x_mm: float, z_from: float, z_to: float) -> list[tuple[float, str, float | None]]:
        """The fingers down (or up) the midline every :data:`WALK_STEP_MM`: (z, finding, cover)."""
        step = -WALK_STEP_MM if z_to < z_from else WALK_STEP_MM
        out = []
        for z in np.arange(z_from, z_to, step):
            finding, cover, _ = self.palpate(x_mm, float(z))
            out.append((float(z), finding, cover))
        return out

    @staticmethod
    def gaps(walk: list[tuple[float, str, float | None]]) -> list[tuple[float, float]]:
        """The gaps between spinous processes along a walk: (z of the gap's middle, the cover of
        the bone beside it), from the walk's start on. A gap is where the finger sinks: no bone,
        or bone :data:`SINK_MM` deeper than the shallowest felt within two steps either side
        (the processes overlap like shingles at the cervicothoracic junction: a shallow dip)."""
        spinous = ("spinous process", "vertebra prominens")
        cover = [c if f in spinous and c is not None else None for _, f, c in walk]
        out, run, beside = [], [], []
        for i, (z, _, _) in enumerate(walk):
            near = [c for c in cover[max(0, i - 2):i + 3] if c is not None]
            sink = cover[i] is None or (bool(near) and cover[i] > min(near) + SINK_MM)
            if sink:
                run.append(z)
                if near:
                    beside.append(min(near))
            elif run:
                out.append((float(np.mean(run)), float(min(beside)) if beside else 20.0))
                run, beside = [], []
        return out

    def lumbar_gap(self, upper: str) -> tuple[float, tuple[float, float] | None]:
        """Tuffier's line from the crests, the midline, the walk down it, and the gap below
        ``upper`` counted from the gap at the line (taken as L4-L5): (midline x, (gap z, cover))."""
        lo, hi = self.hands.body_z_mm
        tops = [self.crest_top_z(side, hi - 20.0, lo + 20.0) for side in ("left", "right")]
        tops = [t for t in tops if t is not None]
        line_z = float(np.mean([t[0] for t in tops])) if tops else 0.5 * (lo + hi)
        x = self.midline_x(line_z)
        walk = self.walk_midline(x, min(hi - 5.0, line_z + 50.0), max(lo + 5.0, line_z - 60.0))
        ordered = sorted(self.gaps(walk), key=lambda g: -g[0])  # head to foot
        if not ordered:
            return x, None
        at_line = next((g for g in ordered if g[0] <= line_z + 5.0), ordered[-1])
        k = ordered.index(at_line) + _counted(upper, "L4")
        return x, ordered[k] if 0 <= k < len(ordered) else at_line

    # ------------------------------------------------------------------ interlaminar
    def _interlaminar(self) -> None:
        lo, hi = self.hands.body_z_mm
        upper, lower = self.brief.target_level.split("-")
        cervical = self.brief.procedure == "cervical_interlaminar"
        if cervical:
            x = self.midline_x(hi - 40.0)
            walk = self.walk_midline(x, hi - 10.0, lo + 10.0)
            prominens = [z for z, f, _ in walk if f == "vertebra prominens"]
            ordered = sorted(self.gaps(walk), key=lambda g: -g[0])
            pick = None
            below = [g for g in ordered if prominens and g[0] < min(prominens)]
            if below:
                # the first gap below the prominens is taken as C7-T1; the target counted from it
                k = ordered.index(below[0]) + _counted(upper, "C7")
                pick = ordered[k] if 0 <= k < len(ordered) else below[0]
        else:
            x, pick = self.lumbar_gap(upper)
        if pick is None:
            self.finish()
            return
        gap_z, cover = pick
        entry_x = x + (CERVICAL_OFFSET_MM if cervical else 0.0) + self._felt_error(cover)
        entry_z = gap_z + self._felt_error(cover)
        entry = self.hands.skin_from_behind(entry_x, entry_z)
        if entry is None:
            return
        direction = turned(frames.ANTERIOR, CEPHALAD_DEG[self.brief.procedure], 0.0)
        self.insert(entry, direction)
        # off bone: up first in the low back (the window lies above the gap), down first at C7-T1
        # (C7's long spinous process hides the window's upper part)
        walks = [5.0, -5.0, 10.0, -10.0, 15.0] if not cervical else [-5.0, 5.0, -10.0, 10.0, -15.0]
        for attempt in range(self.skill.bone_walks + 1):
            outcome = self.find_loss(self.expected_depth_mm, self.skill.early_loss_mm)
            if outcome == "loss":
                if self.aspirate_and_settle():
                    self.inject_drugs()
                return
            if outcome in ("csf", "none", "paraesthesia") or attempt == self.skill.bone_walks:
                return
            # bone: back to the skin and walk up (then down)
            self.withdraw(self.hands.depth_mm - 3.0)
            self.redirect(walks[attempt % len(walks)] - (walks[attempt - 1] if attempt else 0.0), 0.0)

    # ------------------------------------------------------------------ caudal
    def _caudal(self) -> None:
        lo, hi = self.hands.body_z_mm
        walk = self.walk_midline(0.0, lo + 2.0, hi - 20.0)  # up from below the coccyx
        apex = None
        seen_coccyx = False
        sinking = []
        sacral = [c for _, f, c in walk if f in ("sacrum", "sacral cornu") and c is not None]
        shallow = min(sacral) if sacral else 10.0
        for z, finding, cover in walk:
            if finding == "coccyx":
                seen_coccyx = True
                sinking = []
                continue
            if not seen_coccyx and finding not in ("sacrum", "sacral cornu"):
                continue
            seen_coccyx = True  # or the coccyx lies below the region felt: the bone begins here
            # over the hiatus the finger sinks onto the canal's far wall, or feels no bone
            deep = finding not in ("sacrum", "sacral cornu") or cover is None or cover > shallow + 8.0
            if deep:
                sinking.append((z, cover))
            elif sinking:
                apex = (z - 0.5 * WALK_STEP_MM, cover)
                break
        if apex is None:
            # no coccyx felt (deep under the buttocks' fat): the hiatus lies just below where the
            # sacrum is first felt
            first = next(((z, c) for z, f, c in walk if f in ("sacrum", "sacral cornu")), None)
            if first is None:
                return
            apex = (first[0] - 0.5 * WALK_STEP_MM, first[1])
            sinking = [(apex[0] - 12.0, first[1])]
        apex_z, cover = apex
        bottom_z = sinking[0][0]  # the hiatus's lower end, just above the coccyx
        entry = self.hands.skin_from_behind(self._felt_error(cover), bottom_z + self._felt_error(cover))
        apex_skin = self.hands.skin_from_behind(0.0, apex_z)
        if entry is None or apex_skin is None:
            return
        # up the hiatus towards just under its apex (felt under ``cover`` of soft tissue)
        aim = apex_skin + ((cover or 10.0) + 6.0) * frames.ANTERIOR + 5.0 * frames.SUPERIOR
        direction = frames.unit(aim - entry)
        self.insert(entry, direction)
        through_at = None  # depth of the give through the ligament
        in_ligament = False
        walks = {False: 0, True: 0}  # off bone short of the ligament, and in the canal
        while self.hands.depth_mm < 70.0:
            percepts = self.hands.do(cmd.Advance(distance_mm=2.0))
            felt = percept_kinds(percepts)
            if not felt or felt & {"needle_length_exhausted", "csf_in_hub"}:
                break
            in_ligament = in_ligament or "ligament_entered" in felt
            if "bone_contacted" in felt:
                if walks[through_at is not None] >= self.skill.bone_walks:
                    self.withdraw(1.0)  # off the periosteum
                    break
                walks[through_at is not None] += 1
                # on the canal's floor: back and flatten; on the sacrum short of the hiatus: steeper
                self.withdraw(2.0 if through_at is not None else 3.0)
                self.redirect(3.0 if through_at is not None else -8.0, 0.0)
                continue
            if through_at is None and in_ligament and "pop_felt" in felt:
                through_at = self.hands.depth_mm
                # lower the hub: up the canal (a deep needle turns a little at a time)
                self.redirect(8.0, 0.0) or self.redirect(4.0, 0.0)
            if through_at is not None and self.hands.depth_mm >= through_at + 15.0:
                break
        if self.aspirate_and_settle():
            self.inject_drugs()

    # ------------------------------------------------------------------ transforaminal, blind
    def _paravertebral(self) -> None:
        upper, _ = self.brief.target_level.split("-")
        x, pick = self.lumbar_gap(upper)
        if pick is None:
            return
        gap_z, cover = pick
        # the upper vertebra's spinous process lies just above its gap; its transverse process
        # about 15 mm above that
        sign = 1.0 if self.brief.side == "right" else -1.0
        entry = self.hands.skin_from_behind(x + sign * 35.0 + self._felt_error(cover),
                                            gap_z + 15.0 + self._felt_error(cover))
        if entry is None:
            return
        self.insert(entry, turned(frames.ANTERIOR, 0.0, -sign * 10.0))
        felt = self.advance_to(self.expected_depth_mm + 25.0, 3.0)
        if "bone_contacted" in felt:
            bone_depth = self.hands.depth_mm
            self.withdraw(10.0)
            self.redirect(-12.0, 0.0) or self.redirect(-8.0, 0.0)
            felt = self.advance_to(bone_depth + 15.0, 2.0)
        if "paraesthesia" in felt:
            self.withdraw(2.0)
        if self.aspirate_and_settle():
            self.inject_drugs()


def _counted(level: str, reference: str) -> int:
    """How many levels ``level`` lies below ``reference`` (negative: above)."""
    from simulator.anatomy.column import ALL_LEVELS

    if level not in ALL_LEVELS or reference not in ALL_LEVELS:
        return 0
    return ALL_LEVELS.index(level) - ALL_LEVELS.index(reference)


