"""Virtual operators: the landmark and the image-guided technique, written down so it can be read
and criticised, performed through the trainee's own commands.

An operator is handed :class:`~simulator.study.senses.Hands` (landmark) or
:class:`~simulator.study.senses.Eyes` (fluoroscopy) and nothing else: every virtual attempt is an
ordinary recorded attempt (replayable in the app), and what the operator knows is only what those
senses give. How imperfect the hand and eye are is a :class:`Skill` (``assets/operators.toml``);
the random numbers come from the operator's own seed.

Landmark technique (domain reference section 3)
-----------------------------------------------
Lumbar interlaminar (3.2)
    The hands find the tops of both iliac crests on the flanks (the felt top lies above the bone
    by 0.57 mm per mm of soft tissue, plus the hands' error: Pysyk 2010); the intercristal line
    joins them. The midline is found by feeling for the spinous processes across the back at that
    height; then the fingers walk down the midline every 5 mm, telling the spinous processes
    (shallow bone) from the gaps between them. The gap at or just below the line is taken as
    L4-L5 and the target's gap counted from it. Entry in the gap's middle (placed with the
    palpation error, which grows with the fat over the bone), the needle straight forward with a
    10 degree cephalad tilt (with the hand's angle error); through skin and fat in 5 mm steps to
    25 mm short of the expected depth (Ravi 2011's line on BMI, misjudged by the operator's depth
    error), then saline loss-of-resistance tests every ``lor_step_mm``; a loss short of the
    expected depth by more than ``early_loss_mm`` is not trusted. Bone: back to the skin, walk 5
    degrees up (then down) and in again. Aspirate: blood, back 1 mm and again; CSF: stop. The
    drug, and finish.
Cervical interlaminar (3.3)
    Down the midline from the top of the neck for the vertebra prominens (taken as C7); the next
    gap below it is C7-T1 (the target's gap counted from it), entered 2.5 mm to the right of the
    midline (fused flavum, Lirk 2003), straight forward; expected depth by sex (Han 2003); the
    same loss-of-resistance technique.
Caudal (3.1)
    Up the midline from the coccyx: the coccyx, then the hiatus (where the finger sinks: bone felt
    8 mm deeper than on the sacrum, or none), then the shallow sacrum; the apex is the top of the
    hiatus (no coccyx felt: the hiatus lies just below where the sacrum is first felt). Entry at the
    hiatus's lower end, aimed 6 mm under the felt apex and 5 mm above it (cephalad, shallow);
    bone before the ligament: back 3 mm and 8 degrees steeper; through the sacrococcygeal ligament
    (its firm feel, then the pop), the hub lowered by 8 degrees and 15 mm up the canal; bone in the
    canal: back 2 mm, 3 degrees flatter. Aspirate; the drug.
Lumbar transforaminal (3.4, done blind as a paravertebral block)
    The level as for the interlaminar; entry 35 mm to the side and 15 mm above the gap (the upper
    vertebra's transverse process), 10 degrees medial; onto the transverse process, then back 10 mm,
    12 degrees caudal and 15 mm past the bone's depth (walking off its lower edge, into the
    foramen's outer part). Paraesthesia: back 2 mm. Aspirate; the drug.

Image-guided technique
----------------------
The same needle handling, with the fluoroscopic views of section 3 and the images read as a reader
reads them (bone landmarks' projections, the needle's tip, the endplates, the contrast pattern,
each with the reading error): AP with the target endplate squared (re-tilted until it reads
square within 2 degrees), the procedure's second view (lateral; for the transforaminal, also the
ipsilateral oblique), the target placed in depth from the two views; a bone-free line planned
down the beam from the planning views (what the trajectory view shows), aimed against the
needle's known drift; in to 16 mm short (interlaminar) or to a check point, then a check image
pair: the tip read and the line re-aimed (``corrections`` times at most); the last stretch (loss
of resistance for the epidurals); contrast (live for the caudal and transforaminal), its pattern
read and reported; on a vascular, intrathecal or subdural pattern the needle is moved a little
and contrast given again (twice at most), on a soft-tissue pattern advanced 1 mm with a saline
test; the drugs; finish. The ``reference`` skill level (no error) reproduces
:func:`simulator.simulation.reference.run_reference`'s placement on the default patients.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from simulator.assets import read_asset_text
from simulator.errors import SpineSimError
from simulator.geometry import frames
from simulator.imaging.carm import detector_direction
from simulator.protocol import commands as cmd
from simulator.simulation.palpation import CREST_CRANIAL_BIAS_PER_MM
from simulator.study.senses import Eyes, Hands, Percept, triangulate

OPERATORS_SOURCE = "assets/operators.toml"
#: Bumped whenever an operator's technique changes (so a study's rows say which technique ran).
TECHNIQUE_VERSION = "operators-1"
#: The procedures the virtual operators perform.
PROCEDURES = ("lumbar_interlaminar", "cervical_interlaminar", "caudal", "lumbar_transforaminal")
MODES = ("landmark", "fluoroscopy")

#: Cephalad tilt of the landmark needle from straight forward, degrees, by procedure [D]: "a
#: slight cephalad angle" to follow the lumbar spinous processes; straight at C7-T1, where the
#: prominens stands nearly horizontal.
CEPHALAD_DEG = {"lumbar_interlaminar": 10.0, "cervical_interlaminar": 0.0}
#: Just off the midline in the neck, mm (as the expert: Lirk 2003's midline gaps).
CERVICAL_OFFSET_MM = 2.5
#: Testing starts this far short of the expected depth, mm.
LOR_START_SHORT_MM = 25.0
#: How far past the expected depth an operator goes looking for the loss, mm.
LOR_BEYOND_MM = 20.0
#: Fingers' step down the midline, mm.
WALK_STEP_MM = 4.0
#: The finger sinks this much deeper between two spinous processes, mm [D] (the processes are felt
#: under 10-15 mm of cover on the phantom; the gaps 5-20 mm deeper, or not at all).
SINK_MM = 4.0


@dataclass(frozen=True)
class Skill:
    """One skill level's imperfections (``assets/operators.toml`` explains each)."""

    name: str
    palpation_sd_mm: float
    palpation_sd_per_cover: float
    crest_sd_mm: float
    angle_sd_deg: float
    depth_sd_fraction: float
    early_loss_mm: float
    lor_step_mm: float
    bone_walks: int
    reading_sd_mm: float
    tilt_reading_sd_deg: float
    pattern_misread: float
    corrections: int

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@lru_cache(maxsize=1)
def skill_levels() -> dict[str, Skill]:
    """The skill levels of ``assets/operators.toml``, checked field by field."""
    return parse_skill_levels(read_asset_text("operators.toml"))


def parse_skill_levels(text: str, source: str = OPERATORS_SOURCE) -> dict[str, Skill]:
    """Parse an operators table; a malformed one raises a one-line :class:`SpineSimError` naming
    the file and the field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpineSimError(f"{source}: not valid TOML ({err})") from None
    if data.get("format_version") != 1:
        raise SpineSimError(f"{source}: format_version: must be 1")
    levels = data.get("levels")
    if not isinstance(levels, dict) or not levels:
        raise SpineSimError(f"{source}: levels: missing")
    out = {}
    names = [f.name for f in fields(Skill) if f.name != "name"]
    for level, values in levels.items():
        if not isinstance(values, dict):
            raise SpineSimError(f"{source}: levels.{level}: must be a table")
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise SpineSimError(f"{source}: levels.{level}.{unknown[0]}: unknown field")
        kwargs = {}
        for name in names:
            where = f"{source}: levels.{level}.{name}"
            if name not in values:
                raise SpineSimError(f"{where}: missing")
            v = values[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise SpineSimError(f"{where}: must be a number >= 0")
            if name in ("bone_walks", "corrections"):
                if int(v) != v:
                    raise SpineSimError(f"{where}: must be a whole number")
                v = int(v)
            if name == "pattern_misread" and v > 1:
                raise SpineSimError(f"{where}: must be a probability (0-1)")
            if name == "lor_step_mm" and v == 0:
                raise SpineSimError(f"{where}: must be > 0")
            kwargs[name] = v
        out[level] = Skill(name=level, **kwargs)
    return out


def skill(name: str) -> Skill:
    levels = skill_levels()
    if name not in levels:
        raise SpineSimError(f"{OPERATORS_SOURCE}: no skill level '{name}' (levels: {', '.join(levels)})")
    return levels[name]


# ============================================================================ shared hand work
def _turned(direction: np.ndarray, cranial_deg: float, right_deg: float) -> np.ndarray:
    """``direction`` turned towards the head and towards the patient's right (small angles)."""
    d = frames.unit(direction)
    axis = np.cross(d, frames.SUPERIOR)
    axis = frames.unit(axis) if np.linalg.norm(axis) > 1e-6 else frames.RIGHT
    d = _rotate(d, axis, cranial_deg)
    up = np.cross(frames.RIGHT, d)
    up = frames.unit(up) if np.linalg.norm(up) > 1e-6 else frames.SUPERIOR
    return frames.unit(_rotate(d, up, -right_deg))


def _rotate(v: np.ndarray, axis: np.ndarray, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    k = frames.unit(axis)
    return v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * (k @ v) * (1 - math.cos(a))


def _kinds(percepts: list[Percept] | None) -> set[str]:
    return {p.kind for p in percepts or ()}


class Operator:
    """What both operators share: the needle in the hand, loss of resistance, aspiration, the drugs.

    Parameters
    ----------
    senses : Hands or Eyes
    skill : Skill
    rng : numpy.random.Generator
        The operator's own random numbers (its hand, its eye).
    """

    def __init__(self, senses: Hands, skill: Skill, rng: np.random.Generator):
        self.hands = senses
        self.skill = skill
        self.rng = rng
        self.brief = senses.brief
        #: what the operator expects the depth of the epidural space to be, mm (its own estimate)
        self.expected_depth_mm = self._expected_depth() * (1.0 + rng.normal(0.0, skill.depth_sd_fraction))

    #: procedure -> the method that performs it
    techniques: dict[str, str] = {}

    def run(self) -> None:
        """Perform the case, start to finish."""
        if self.brief.patient_position != "prone":
            raise SpineSimError(f"the virtual operators work prone (this case is {self.brief.patient_position})")
        method = self.techniques.get(self.brief.procedure)
        if method is None:
            raise SpineSimError(f"no virtual operator for {self.brief.procedure} (they perform {', '.join(PROCEDURES)})")
        getattr(self, method)()
        self.finish()

    # ------------------------------------------------------------------ judgement
    def _expected_depth(self) -> float:
        b = self.hands.build
        if self.brief.procedure == "cervical_interlaminar":
            return 56.0 if b.sex == "male" else 50.0  # Han 2003, C7/T1
        return 17.8 + 0.978 * b.bmi_kg_m2  # Ravi 2011, lumbar

    def _felt_error(self, cover_mm: float | None) -> float:
        sd = self.skill.palpation_sd_mm + self.skill.palpation_sd_per_cover * (cover_mm or 0.0)
        return float(self.rng.normal(0.0, sd)) if sd > 0 else 0.0

    def _hand_angles(self) -> tuple[float, float]:
        sd = self.skill.angle_sd_deg
        if sd <= 0:
            return 0.0, 0.0
        return float(self.rng.normal(0.0, sd)), float(self.rng.normal(0.0, sd))

    # ------------------------------------------------------------------ the needle
    def insert(self, entry_mm: np.ndarray, direction: np.ndarray, with_hand_error: bool = True) -> bool:
        """Put the needle on the skin at ``entry_mm`` along ``direction`` (the hand's angle error
        added)."""
        if with_hand_error:
            cranial, right = self._hand_angles()
            direction = _turned(direction, cranial, right)
        return self.hands.do(cmd.SetEntry(point_mm=tuple(float(v) for v in entry_mm),
                                          direction=tuple(float(v) for v in frames.unit(direction)))) is not None

    def advance(self, distance_mm: float) -> set[str]:
        """Advance; the kinds of what was felt."""
        return _kinds(self.hands.do(cmd.Advance(distance_mm=float(distance_mm))))

    def advance_to(self, depth_mm: float, step_mm: float) -> set[str]:
        """Advance in steps to ``depth_mm``; stops early on bone, the hub's end, a paraesthesia."""
        while self.hands.depth_mm < depth_mm - 0.05:
            felt = self.advance(min(step_mm, depth_mm - self.hands.depth_mm))
            if felt & {"bone_contacted", "needle_length_exhausted", "paraesthesia", "csf_in_hub"}:
                return felt
            if not felt:
                return {"refused"}
        return set()

    def withdraw(self, distance_mm: float) -> None:
        self.hands.do(cmd.Withdraw(distance_mm=float(max(distance_mm, 0.0))))

    def redirect(self, cranial_deg: float, right_deg: float) -> bool:
        if abs(cranial_deg) < 1e-3 and abs(right_deg) < 1e-3:
            return True
        # one turn of the hand is at most 30 degrees each way (the command's own limit)
        cranial_deg, right_deg = (float(np.clip(v, -30.0, 30.0)) for v in (cranial_deg, right_deg))
        return self.hands.do(cmd.Redirect(cranial_deg=cranial_deg, right_deg=right_deg)) is not None

    def find_loss(self, expected_mm: float, trust_short_mm: float) -> str:
        """Advance with saline tests to a trusted loss of resistance: ``"loss"``, ``"bone"``,
        ``"csf"``, ``"paraesthesia"`` or ``"none"`` (nothing by the limit)."""
        start = max(0.0, expected_mm - LOR_START_SHORT_MM)
        felt = self.advance_to(start, 5.0)
        if "bone_contacted" in felt:
            return "bone"
        if felt & {"csf_in_hub", "paraesthesia"}:
            return "csf" if "csf_in_hub" in felt else "paraesthesia"
        limit = expected_mm + LOR_BEYOND_MM
        trust_from = expected_mm - trust_short_mm if trust_short_mm > 0 else 0.0
        while self.hands.depth_mm < limit:
            felt = self.advance(self.skill.lor_step_mm)
            if "bone_contacted" in felt:
                return "bone"
            if "csf_in_hub" in felt:
                return "csf"
            if "paraesthesia" in felt:
                return "paraesthesia"
            if not felt or "needle_length_exhausted" in felt:
                return "none"
            tested = _kinds(self.hands.do(cmd.TestLossOfResistance(medium="saline")))
            if "csf_in_hub" in tested:
                return "csf"
            if "loss_of_resistance" in tested and self.hands.depth_mm >= trust_from:
                return "loss"
        return "none"

    def aspirate(self) -> str:
        """Aspirate: ``"nothing"``, ``"blood"`` or ``"csf"``."""
        for p in self.hands.do(cmd.Aspirate()) or ():
            if p.kind == "aspirated":
                return str(p.data.get("result", "nothing"))
        return "nothing"

    def aspirate_and_settle(self) -> bool:
        """Aspirate; on blood move back a millimetre and try again (twice); False on CSF or
        blood that keeps coming."""
        for _ in range(3):
            result = self.aspirate()
            if result == "nothing":
                return True
            if result == "csf":
                return False
            self.withdraw(1.0)
        return False

    def inject_drugs(self) -> None:
        for drug_id, ml in self.brief.injectate:
            self.hands.do(cmd.InjectDrug(drug_id=drug_id, volume_ml=ml))

    def finish(self) -> None:
        if not self.hands.finished:
            self.hands.do(cmd.Finish())


# ============================================================================ landmark
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
        direction = _turned(frames.ANTERIOR, CEPHALAD_DEG[self.brief.procedure], 0.0)
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
            felt = _kinds(percepts)
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
        self.insert(entry, _turned(frames.ANTERIOR, 0.0, -sign * 10.0))
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


# ============================================================================ image-guided
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
        line = None
        # canal fat just above the apex (as the expert aims), or a millimetre or two off it
        for up_mm, into_mm in ((2.0, 2.5), (4.0, 2.5), (2.0, 3.5), (0.0, 2.5), (4.0, 1.5), (6.0, 3.0)):
            target = apex + up_mm * up + into_mm * into
            for angle in np.arange(20.0, 60.5, 2.5):
                a = math.radians(angle)
                direction = frames.unit(math.cos(a) * up + math.sin(a) * into)
                entry = eyes.skin_along(target - 200.0 * direction, direction)
                # in at the hiatus, not from far below it (the hand must reach, the line stay short)
                if entry is None or float(np.linalg.norm(target - entry)) > 60.0:
                    continue
                if self.clear_of_bone(entry, target):
                    line = (entry, direction, float(np.linalg.norm(target - entry)))
                    break
            if line is not None:
                break
        if line is None:  # no clear line seen: the textbook 45 degrees, and feel the way
            target = apex + 2.0 * up + 2.5 * into
            direction = frames.unit(up + into)
            entry = eyes.skin_along(target - 200.0 * direction, direction)
            if entry is None:
                return
            line = (entry, direction, float(np.linalg.norm(target - entry)))
        entry, direction, depth = line
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
        line = None
        for offset in ((0.0, 0.0), (0.0, -2.0), (-2.0, 0.0), (0.0, 2.0), (-2.0, -2.0), (2.0, 0.0)):
            target = aim + np.array([0.0, offset[0], offset[1]])
            for ob in (25.0, 20.0, 30.0, 15.0, 35.0, 40.0):
                for dt in (0.0, -5.0, 5.0, -10.0, 10.0):
                    # down the beam of an ipsilateral oblique: from the detector's side into the back
                    direction = frames.unit(-detector_direction(sign * ob, tilt + dt))
                    entry = eyes.skin_along(target - 200.0 * direction, direction)
                    if entry is not None and self.clear_of_bone(entry, target):
                        line = (entry, direction, float(np.linalg.norm(target - entry)))
                        break
                if line is not None:
                    break
            if line is not None:
                break
        if line is None:  # nothing clear seen: the textbook oblique line, adjusted on the way
            target = aim
            direction = frames.unit(-detector_direction(sign * 25.0, tilt))
            entry = eyes.skin_along(target - 200.0 * direction, direction)
            if entry is None:
                return
            line = (entry, direction, float(np.linalg.norm(target - entry)))
        entry, direction, depth = line
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


# ============================================================================ entry point
def operate(sim, skill_level: str | Skill = "intermediate", seed: int = 0) -> None:
    """Perform ``sim``'s case as a virtual operator of ``skill_level`` whose own random numbers
    come from ``seed``: the landmark technique in a landmark case, the image-guided one under
    fluoroscopy. The attempt is finished (and recorded wherever ``sim`` records)."""
    level = skill(skill_level) if isinstance(skill_level, str) else skill_level
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0x0BE7,)))
    if sim.guidance == "fluoroscopy":
        eyes = Eyes(sim, level.reading_sd_mm, level.tilt_reading_sd_deg, level.pattern_misread, rng)
        ImageGuidedOperator(eyes, level, rng).run()
    else:
        LandmarkOperator(Hands(sim), level, rng).run()
