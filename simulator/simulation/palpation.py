"""What a trainee's hands feel: a pressing finger, the hands finding the iliac crests (the palpated
intercristal, or Tuffier's, line) and the fingers looking for the sacral cornua.

Headless and deterministic: every function reads only the anatomy's exact queries (tissue labels,
the skin's signed distance, structure names, landmarks) and, where a human's error enters, a
random generator seeded from the patient's seed (and an ``examiner`` number for repeat trials).

Three models, each with its parameters stated below:

**A pressing finger** (:func:`palpate_point`). The finger presses at a skin point along the skin's
inward normal (or a direction given); the first bone on that line is what it meets. How well it
is felt falls with the soft tissue over it, ``clarity = 1 - (depth / reach)^2``: *clear* up to
:data:`FINGER_CLEAR_MM` (20 mm, clarity 0.75), *vague* from there to :data:`FINGER_REACH_MM`
(40 mm), nothing beyond. The iliac crest, a broad ridge found with the whole hand, is felt to
:data:`HAND_REACH_MM` (70 mm; clear to :data:`HAND_CLEAR_MM`). Reasoning: firm fingertip
pressure compresses subcutaneous fat by roughly half, so 20 mm of cover leaves ~10 mm between the
finger pad and the bone, about a finger pad's own depth, and a spinous tip or crest edge still
reads as a distinct hard point; at 40 mm the residual ~20 mm of fat spreads the pressure and only
a broad firmness remains. On the phantom, whose posterior cover follows Ravi 2011 (skin-to-epidural
depth 17.8 + 0.978 x BMI mm, reference section 2.2), the soft tissue over the L4 spinous tip is
~10 mm at BMI 20, ~16 mm at BMI 30 and ~22 mm at BMI 40 (medians over 40 seeds): the lumbar
spinous processes are clear in nearly every back up to BMI 30 and vague in most at BMI 40; the
cervicothoracic ones, under the hump pad of the obese, turn vague earlier. The reference notes
that the cornua may be impalpable in obese patients (section 3.1).

**The hands on the iliac crests** (:func:`palpate_intercristal_line`). Each hand rests on the
waist and the fingers press caudomedially, :data:`CREST_PRESS_ANGLE_DEG` below the horizontal in
the coronal plane, onto the highest point of the crest. What they stop on is the firm ridge of
soft tissue draped over the crest, so the felt top lies cranial of the bone by
:data:`CREST_CRANIAL_BIAS_PER_MM` times the soft tissue measured on the anatomy along the pressing
line (more girth, a higher line), plus a human error (normal, SD :data:`CREST_ERROR_SD_MM` per
hand, seeded by the patient). The line joins the two felt tops; where it crosses the midline is
compared with the spinous processes (the interspinous gap it lies nearest), as Pysyk 2010 counted
interspaces up from the sacrum with ultrasound.

**The sacral cornua** (:func:`palpate_sacral_cornua`). A cornu is a 3-4 mm tubercle beside the
hiatus; it stands out under the finger while the effective soft tissue over it is under
:data:`CORNU_CUTOFF_MM`. The effective cover is the soft tissue measured on the anatomy over each
cornu plus a patient-level deviation (tissue firmness, the cornua's size and the examiner's touch,
SD :data:`CORNU_PATIENT_SD_MM`, shared by both sides) and a side-level one (cornual asymmetry, SD
:data:`CORNU_SIDE_SD_MM`). An ``absent_cornua`` hiatus has none to feel.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from simulator.anatomy import vertebra as vt
from simulator.anatomy.column import ALL_LEVELS
from simulator.anatomy.tissues import tissue_table
from simulator.errors import CommandRefused

__all__ = [
    "FINGER_REACH_MM", "FINGER_CLEAR_MM", "HAND_REACH_MM", "HAND_CLEAR_MM", "PalpationFinding",
    "palpate_point", "clarity_for_depth",
    "CREST_PRESS_ANGLE_DEG", "CREST_CRANIAL_BIAS_PER_MM", "CREST_ERROR_SD_MM", "CrestPalpation",
    "IntercristalLine", "palpate_intercristal_line", "crest_soft_tissue", "spinous_tip_heights_mm",
    "CORNU_CUTOFF_MM", "CORNU_PATIENT_SD_MM", "CORNU_SIDE_SD_MM", "CornuaPalpation",
    "palpate_sacral_cornua", "cornu_soft_tissue",
]

# ------------------------------------------------------------------------------ the finger
#: Bone under more soft tissue than this is not felt by a pressing fingertip, mm.
FINGER_REACH_MM = 40.0
#: Bone under no more soft tissue than this is felt clearly, mm (vague between this and the reach).
FINGER_CLEAR_MM = 20.0
#: The same for the iliac crest (and the wing of the ilium), found with the whole hand on the
#: waist, mm. The crests were palpated in every subject of Pysyk 2010 (n=114) and of Margarido
#: 2011 (term pregnancy, n=45); on the phantom the soft tissue over a crest reaches ~55 mm at
#: BMI 40, so 70 mm keeps every phantom patient's crests palpable, vaguely when deep.
HAND_REACH_MM = 70.0
HAND_CLEAR_MM = 35.0
#: A point further than this from the skin is not on the patient, mm.
ON_SKIN_TOLERANCE_MM = 15.0
#: Lateral distance from a vertebra's spinous tip within which its bone is the spinous process, mm.
SPINOUS_HALF_WIDTH_MM = 12.0
#: Distance from the PSIS landmark within which ilium under the finger is the PSIS, mm.
PSIS_RADIUS_MM = 20.0
#: Distance from a cornu landmark within which sacrum under the finger is that cornu, mm.
CORNU_RADIUS_MM = 9.0
#: Ilium within this height below the wing's upper edge is the crest, mm.
CREST_EDGE_MM = 12.0

# ------------------------------------------------------------------------------ the crests
#: Angle of the fingers' pressing line below the horizontal, in the coronal plane, deg: hands on
#: the waist, fingers pressing down onto the top of the crest and in towards the spine. (The soft
#: tissue over the crest is measured along this line.)
CREST_PRESS_ANGLE_DEG = 45.0
#: Cranial displacement of the felt crest top per mm of soft tissue along the pressing line, mm/mm.
#: CALIBRATED (see the note below), not measured independently. Reading: the fingers stop on the
#: firm ridge of soft tissue draped over the crest rather than on the bone. Pads coming to rest on
#: the 45-degree pressing line with a fraction f of the tissue still under them would raise the felt
#: top by f x sin 45 per mm; 0.57 is f ~ 0.8: the waist's fat and muscle, tethered to the crest,
#: give only ~20% under a firm hand.
CREST_CRANIAL_BIAS_PER_MM = 0.57
#: SD of the height error of one hand's judgement of the crest top, mm (the line, the mean of two
#: hands, carries 12 / sqrt 2 = 8.5 mm, about a third of a lumbar level). CALIBRATED.
CREST_ERROR_SD_MM = 12.0
# Calibration note (done once): CREST_CRANIAL_BIAS_PER_MM and CREST_ERROR_SD_MM were fitted
# together on the patients PatientParameters(seed=s) for s in 1000..1599 (600 patients, disjoint
# from the seeds the tests use) to the interspace at which the palpated intercristal line lies in
# Pysyk 2010 (n=114, ultrasound): L2-L3 13% (15), L3-L4 73% (83), L4-L5 14% (16). The fit
# minimised the squared difference between those proportions and the model's expected proportions
# (each patient's line height normal about its bony crest heights + bias, the errors integrated
# analytically, so the fit does not depend on draws); it gave 0.566 mm/mm and 12.0 mm, rounded to
# 0.57 and 12.0: expected proportions 13.3 / 72.9 / 13.7 % (L1-L2 and L5-S1 under 0.1% each). The
# bias is well determined: held at 0.30 mm/mm (SD refitted) the line would lie at L4-L5 in ~42%,
# at 0.70 in ~3%. On the same patients the bony (radiographic) line lies at L4-L5 in 97.7% and the
# soft tissue along the pressing line is 22-61 mm (5th-95th centile; r = 0.81 with BMI). Nothing was
# fitted to BMI: that the palpated line lies higher with more girth (Lin 2015) follows from the soft
# tissue measured per patient. Known mismatch: Pysyk's L2-L3 group was taller and more often male
# (22% vs 6%); here L2-L3 is commoner in women (~20% vs ~7%), because the phantom's waist carries
# the same absolute soft tissue per BMI on a smaller female skeleton (no android/gynoid fat pattern).

# ------------------------------------------------------------------------------ the cornua
#: Effective soft tissue over a cornu above which it is not told from the sacrum, mm. CALIBRATED;
#: it came out close to the depth a finger feels bone clearly (FINGER_CLEAR_MM): a 3-4 mm tubercle
#: is only told from the sacrum around it when the bone is felt clearly.
CORNU_CUTOFF_MM = 18.5
#: SD of the patient-level deviation of the effective cover (shared by both cornua), mm. CALIBRATED.
CORNU_PATIENT_SD_MM = 3.9
#: SD of the side-level deviation (cornual asymmetry), mm. Set, not fitted: about a cornu's own
#: height (the phantom's cornua stand ~3.5 mm proud of the sacrum), so asymmetry alone rarely
#: makes one side impalpable.
CORNU_SIDE_SD_MM = 4.0
# Calibration note (done once, as above, on seeds 1000..1599): CORNU_CUTOFF_MM and
# CORNU_PATIENT_SD_MM were fitted (CORNU_SIDE_SD_MM held at 4 mm) to Aggarwal 2009 (n=114):
# cornua palpable on both sides 55%, on neither 21% (so on one side 24%); expected proportions
# computed by quadrature over the latent errors, the ~4% of patients with an absent_cornua hiatus
# counted as "neither". It gave 18.5 mm and 3.9 mm (expected 55.0% / 21.0%). On those patients the
# soft tissue over the cornua is 11-21 mm (5th-95th centile). (Held at 3 or 5 mm, the side SD
# fits as well with a cutoff of 17.7 or 19.4 mm: the data fix the cutoff to within ~1 mm.)

#: Random-stream tags (so the crest and cornua draws are independent of each other and of the
#: anatomy generator's own streams).
_CREST_STREAM = 0x7C1F
_CORNU_STREAM = 0x5AC7


# ============================================================================== the body adapter
class _Body:
    """The queries the hands need, from an :class:`~simulator.anatomy.anatomy.Anatomy` or straight
    from a :class:`~simulator.anatomy.phantom.SpinePhantom` (no voxel volume needed)."""

    def __init__(self, source):
        self.source = source
        self.phantom = None
        if hasattr(source, "skin_signed_distance"):  # an Anatomy
            self._skin = source.skin_signed_distance
            self.phantom = getattr(source, "phantom", None)
        elif hasattr(source, "torso") and hasattr(source, "structures"):  # a SpinePhantom
            self.phantom = source
            self._skin = source.torso.field
        else:
            raise TypeError("palpation needs an Anatomy or a SpinePhantom")
        self.tissue_at = source.tissue_at
        self._landmarks: dict[str, np.ndarray | None] = {}

    # ---------------------------------------------------------------------------- queries
    def skin_distance(self, points_mm: np.ndarray) -> np.ndarray:
        return np.asarray(self._skin(np.asarray(points_mm, float)), float)

    def structure_at(self, point_mm) -> str | None:
        return self.source.structure_at(point_mm)

    @property
    def patient(self):
        return self.source.patient

    @property
    def seed(self) -> int:
        """The patient's seed (an imported CT: a fixed number from its name)."""
        patient = self.patient
        seed = getattr(patient, "seed", None)
        if seed is None:
            seed = zlib.crc32(str(getattr(patient, "name", "")).encode())
        return int(seed) & 0xFFFFFFFF

    @property
    def has_cornua(self) -> bool:
        if self.phantom is not None:
            return bool(self.phantom.sacrum_shape.cornua)
        return getattr(self.patient, "hiatus", "typical") != "absent_cornua"

    def landmark(self, name: str) -> np.ndarray | None:
        """A named landmark (world mm), or ``None`` where the anatomy has none by that name.

        From a phantom the few landmarks the hands use are computed directly (the same formulas
        as :func:`simulator.anatomy.landmarks.compute_landmarks`, which takes seconds for all)."""
        if name not in self._landmarks:
            if self.phantom is not None:
                value = _phantom_landmark(self.phantom, name)
            else:
                value = self.source.landmarks.get(name)
            self._landmarks[name] = None if value is None else np.asarray(value, float)
        return self._landmarks[name]


def _phantom_landmark(phantom, name: str) -> np.ndarray | None:
    """The landmarks palpation reads, from the phantom's own shapes (see landmarks.py)."""
    shape, frame = phantom.sacrum_shape, phantom.sacral_frame
    k = shape.scale
    level, _, what = name.partition(".")
    if what == "spinous_tip" and level in phantom.by_level and level != "S1":
        seg = phantom.by_level[level]
        return seg.to_world(seg.spinous_tip_local())
    if name == "S1.spinous_tip":  # the first tubercle of the median crest stands for S1's
        s = 18.0 * k
        return frame.to_world(0.0, s, shape.dorsal_surface_ap(s) - 6.0 * k)
    if what.startswith("transverse_tip_") and level in phantom.by_level and level != "S1":
        side = 1 if what.endswith("right") else -1
        seg = phantom.by_level[level]
        return seg.to_world(vt.transverse_tip_local(seg, side))
    for side, side_name in ((1, "right"), (-1, "left")):
        if name == f"sacrum.cornu_{side_name}":
            s = shape.hiatus_apex_s_mm + 11.0 * k
            return frame.to_world(side * 6.5 * k, s, shape.dorsal_surface_ap(s))
        if name == f"iliac_crest_{side_name}_top":
            return phantom.ilia[side_name].crest_top()
        if name == f"psis_{side_name}":
            return frame.to_world(side * (shape.lateral_half_width(20.0 * k) - 2.0), 20.0 * k,
                                  shape.dorsal_surface_ap(20.0 * k) - 10.0 * k)
    if name == "sacrum.hiatus_apex":
        apex = shape.hiatus_apex_s_mm
        return frame.to_world(0.0, apex, shape.canal_centre_ap(apex) - shape.canal_half_depth(apex))
    return None


def _as_body(source) -> _Body:
    return source if isinstance(source, _Body) else _Body(source)


# ============================================================================== the finger
@dataclass(frozen=True)
class PalpationFinding:
    """What a pressing finger feels.

    The first four fields are those of the simulation's finding (and in that order).

    Attributes
    ----------
    point_mm : ndarray (3,)
        The skin point pressed (world mm).
    finding : str
        ``"spinous process"``, ``"vertebra prominens"`` (C7's), ``"transverse process"``,
        ``"vertebral arch"`` (lamina or facet), ``"iliac crest"``, ``"posterior superior iliac
        spine"``, ``"ilium"``, ``"sacrum"`` (the dorsal sacrum and its median crest),
        ``"sacral cornu"``, ``"coccyx"``, ``"rib"``, ``"sternum"``, ``"bone"`` or ``"no bone felt"``.
    depth_mm : float or None
        Soft tissue between the skin and the bone along the pressing line (``None``: none felt).
    clearly : bool
        Felt clearly (``depth_mm <= FINGER_CLEAR_MM``), not just as a vague firmness.
    clarity : float
        0 (nothing) to 1 (bare bone): ``1 - (depth / reach)^2``, 0.75 at the clear depth.
    structure : str or None
        The anatomy's name of the bone felt (``"L4"``, ``"ilium_left"``, ``"sacrum"``).
    bone_point_mm : ndarray (3,) or None
        Where the pressing line meets the bone.
    inward : ndarray (3,)
        Unit pressing direction (the skin's inward normal).
    """

    point_mm: np.ndarray
    finding: str
    depth_mm: float | None
    clearly: bool
    clarity: float = 0.0
    structure: str | None = None
    bone_point_mm: np.ndarray | None = None
    inward: np.ndarray | None = field(default=None, repr=False)


def clarity_for_depth(depth_mm: float | None, reach_mm: float = FINGER_REACH_MM) -> float:
    """How clearly bone under ``depth_mm`` of soft tissue is felt: ``1 - (depth / reach)^2``
    (1 on bare bone, 0.75 at half the reach, 0 at and beyond the reach, or with no bone)."""
    if depth_mm is None or depth_mm >= reach_mm:
        return 0.0
    return float(1.0 - (max(depth_mm, 0.0) / reach_mm) ** 2)


def _gradient(body: _Body, p: np.ndarray, eps: float = 0.5) -> np.ndarray:
    offsets = np.concatenate([p + eps * np.eye(3), p - eps * np.eye(3)])
    values = body.skin_distance(offsets)
    return (values[:3] - values[3:]) / (2 * eps)


def _first_bone(body: _Body, start: np.ndarray, direction: np.ndarray, reach_mm: float,
                step_mm: float = 0.5) -> float | None:
    """Distance from ``start`` along ``direction`` to the first bone within ``reach_mm`` (refined
    to 0.05 mm), or ``None``."""
    is_bone = tissue_table().is_bone
    t = np.arange(0.0, reach_mm + 1e-9, step_mm)
    bone = np.nonzero(is_bone[body.tissue_at(start + t[:, None] * direction)])[0]
    if bone.size == 0:
        return None
    i = int(bone[0])
    if i == 0:
        return 0.0
    fine = np.arange(t[i - 1], t[i] + 1e-9, 0.05)
    hits = np.nonzero(is_bone[body.tissue_at(start + fine[:, None] * direction)])[0]
    return float(fine[hits[0]]) if hits.size else float(t[i])


def _name_bone(body: _Body, structure: str, q: np.ndarray) -> str:
    """What a clinician calls the bone the finger meets at ``q``."""
    if structure.startswith("ilium"):
        side = structure.rsplit("_", 1)[-1]
        psis = body.landmark(f"psis_{side}")
        if psis is not None and np.linalg.norm(q - psis) < PSIS_RADIUS_MM:
            return "posterior superior iliac spine"
        above = body.structure_at(q + np.array([0.0, 0.0, CREST_EDGE_MM]))
        return "iliac crest" if above != structure else "ilium"
    if structure == "sacrum":
        if body.has_cornua:
            for side in ("left", "right"):
                cornu = body.landmark(f"sacrum.cornu_{side}")
                if cornu is not None and np.linalg.norm(q - cornu) < CORNU_RADIUS_MM:
                    return "sacral cornu"
        return "sacrum"
    if structure == "coccyx":
        return "coccyx"
    if structure.startswith("rib"):
        return "rib"
    if structure == "sternum":
        return "sternum"
    if structure in ALL_LEVELS and structure != "S1":
        tip = body.landmark(f"{structure}.spinous_tip")
        if tip is None:
            return "bone"
        lateral = abs(float(q[0] - tip[0]))
        if lateral < SPINOUS_HALF_WIDTH_MM:
            return "vertebra prominens" if structure == "C7" else "spinous process"
        side = "right" if q[0] > tip[0] else "left"
        tp = body.landmark(f"{structure}.transverse_tip_{side}")
        if tp is not None and lateral >= 0.6 * abs(float(tp[0] - tip[0])):
            return "transverse process"
        return "vertebral arch"
    return "bone"


def palpate_point(anatomy, point_mm, direction=None, *, reach_mm: float = FINGER_REACH_MM,
                  clear_mm: float = FINGER_CLEAR_MM, examiner: int = 0) -> PalpationFinding:
    """What a finger pressing at a skin point feels.

    The finger presses along the skin's inward normal (or ``direction``); the first bone on that
    line is felt if within ``reach_mm`` (:data:`HAND_REACH_MM` for the iliac crest and wing, found
    with the whole hand), clearly if under no more than ``clear_mm`` (:data:`HAND_CLEAR_MM`).
    Over a sacral cornu the cornu is told from the sacrum only if :func:`palpate_sacral_cornua`
    finds it palpable for this patient (else it is felt as "sacrum").

    Parameters
    ----------
    anatomy : Anatomy or SpinePhantom
    point_mm : array_like (3,)
        A point on (within 15 mm of) the skin, world mm.
    direction : array_like (3,), optional
        Pressing direction (default: the skin's inward normal), e.g. towards a bone the trainee
        aims at.
    reach_mm, clear_mm : float
        Depth limits (mm) of feeling bone at all and clearly with a fingertip.
    examiner : int
        Which examiner (repeat trial) decides a cornu's palpability.

    Returns
    -------
    PalpationFinding

    Raises
    ------
    CommandRefused
        If the point is not on the patient's skin.
    """
    body = _as_body(anatomy)
    p = np.asarray(point_mm, float).reshape(3)
    here = float(body.skin_distance(p[None])[0])
    if not np.isfinite(here) or abs(here) > ON_SKIN_TOLERANCE_MM:
        raise CommandRefused("palpate on the patient's skin")
    grad = _gradient(body, p)
    normal = -grad / max(float(np.linalg.norm(grad)), 1e-9)
    skin = p - normal * here
    if direction is None:
        inward = normal
    else:
        inward = np.asarray(direction, float).reshape(3)
        inward = inward / max(float(np.linalg.norm(inward)), 1e-9)
    hand_reach = max(reach_mm, HAND_REACH_MM)
    depth = _first_bone(body, skin, inward, hand_reach)
    if depth is None:
        return PalpationFinding(skin, "no bone felt", None, False, 0.0, None, None, inward)
    q = skin + depth * inward
    # the structure just inside the bone's surface (the cortex can be thinner than a step)
    structure = body.structure_at(q + 0.3 * inward) or body.structure_at(q) or ""
    what = _name_bone(body, structure, q)
    if what in ("iliac crest", "ilium"):
        reach, clear = hand_reach, max(clear_mm, HAND_CLEAR_MM)
    else:
        reach, clear = reach_mm, clear_mm
    if depth > reach:
        return PalpationFinding(skin, "no bone felt", None, False, 0.0, None, None, inward)
    if what == "sacral cornu":
        apex = body.landmark("sacrum.hiatus_apex")
        side = "right" if q[0] > (0.0 if apex is None else apex[0]) else "left"
        if not palpate_sacral_cornua(body, examiner=examiner).palpable[side]:
            what = "sacrum"
    return PalpationFinding(skin, what, depth, depth <= clear, clarity_for_depth(depth, reach), structure or None,
                            q, inward)


# ============================================================================== the crests
@dataclass(frozen=True)
class CrestPalpation:
    """One hand finding the top of one iliac crest.

    Attributes
    ----------
    side : {"left", "right"}
    bone_top_mm : ndarray (3,)
        The crest's bony highest point (the ``iliac_crest_<side>_top`` landmark).
    press_direction : ndarray (3,)
        Unit direction the fingers press along (caudomedial, in the coronal plane).
    skin_mm : ndarray (3,)
        Where the pressing line through the bony top enters the skin.
    contact_mm : ndarray (3,)
        Where that line meets the bone.
    soft_tissue_mm : float
        Soft tissue between the skin and the bone along the pressing line.
    cranial_bias_mm : float
        How far the soft tissue over the crest puts the felt top above the bone
        (``CREST_CRANIAL_BIAS_PER_MM x soft_tissue_mm``).
    error_mm : float
        The hand's random height error.
    felt_top_mm : ndarray (3,)
        Where the hand judges the crest's top to be: the contact raised by bias and error.
    """

    side: str
    bone_top_mm: np.ndarray
    press_direction: np.ndarray
    skin_mm: np.ndarray
    contact_mm: np.ndarray
    soft_tissue_mm: float
    cranial_bias_mm: float
    error_mm: float
    felt_top_mm: np.ndarray


@dataclass(frozen=True)
class IntercristalLine:
    """The palpated intercristal (Tuffier's) line and where it crosses the spine.

    Attributes
    ----------
    left, right : CrestPalpation
    height_mm : float
        World height (z) at which the line joining the two felt tops crosses the midline.
    interspace : str
        The interspinous gap (``"L3-L4"``) nearest the line in the midline.
    bony_height_mm : float
        Where the line joining the two bony crest tops (the radiographic line) crosses.
    bony_interspace : str
        The interspinous gap nearest the bony line.
    above_l4_tip_mm : float
        Height of the palpated line above the L4 spinous tip, mm.
    levels_above_l4_tip : float
        The same in levels: 0 at the L4 tip, 1 at L3's, -1 at L5's (linear between tips).
    """

    left: CrestPalpation
    right: CrestPalpation
    height_mm: float
    interspace: str
    bony_height_mm: float
    bony_interspace: str
    above_l4_tip_mm: float
    levels_above_l4_tip: float


#: Levels whose spinous tips a line over the lumbar spine is placed against.
_COUNTED_LEVELS = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")


def spinous_tip_heights_mm(anatomy) -> dict[str, float]:
    """World height (z) of the spinous tips T10..L5 and of S1's median-crest tubercle, by level
    (levels the anatomy lacks are left out)."""
    body = _as_body(anatomy)
    out = {}
    for level in _COUNTED_LEVELS:
        tip = body.landmark(f"{level}.spinous_tip")
        if tip is not None:
            out[level] = float(tip[2])
    return out


def _interspace_at(tips: dict[str, float], z: float) -> str:
    """The interspinous gap whose centre (halfway between two tips) is nearest height ``z``."""
    names = [lv for lv in _COUNTED_LEVELS if lv in tips]
    pairs = [(f"{a}-{b}", 0.5 * (tips[a] + tips[b])) for a, b in zip(names[:-1], names[1:])]
    return min(pairs, key=lambda pc: abs(pc[1] - z))[0]


def _levels_above_l4(tips: dict[str, float], z: float) -> float:
    names = [lv for lv in _COUNTED_LEVELS if lv in tips]
    index = np.array([names.index("L4") - i for i in range(len(names))], float)  # L4 0, L3 1, L5 -1
    heights = np.array([tips[n] for n in names])
    order = np.argsort(heights)
    return float(np.interp(z, heights[order], index[order], left=np.nan, right=np.nan))


def _press_direction(side_sign: int, angle_deg: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([-side_sign * np.cos(a), 0.0, -np.sin(a)])


def crest_soft_tissue(anatomy, side: str, angle_deg: float | None = None):
    """The soft tissue over one iliac crest's top along the hand's pressing line.

    Parameters
    ----------
    anatomy : Anatomy or SpinePhantom
    side : {"left", "right"}
    angle_deg : float, optional
        The pressing line's angle below the horizontal (coronal plane); default
        :data:`CREST_PRESS_ANGLE_DEG`.

    Returns
    -------
    (skin_mm, contact_mm, soft_tissue_mm, press_direction)
        Where the line through the crest top enters the skin, where it meets bone, the distance
        between them (mm) and the unit pressing direction.
    """
    angle_deg = CREST_PRESS_ANGLE_DEG if angle_deg is None else angle_deg
    body = _as_body(anatomy)
    top = body.landmark(f"iliac_crest_{side}_top")
    if top is None:
        raise ValueError(f"the anatomy has no iliac_crest_{side}_top")
    d = _press_direction(1 if side == "right" else -1, angle_deg)
    # from the bony top back out along the line to the skin (coarse, then refined)
    t = np.arange(0.0, 250.0, 1.0)
    outside = np.nonzero(body.skin_distance(top - t[:, None] * d) >= 0.0)[0]
    if outside.size == 0:
        raise ValueError(f"no skin above the {side} iliac crest")
    lo, hi = float(t[max(outside[0] - 1, 0)]), float(t[outside[0]])
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        if body.skin_distance((top - mid * d)[None])[0] >= 0.0:
            hi = mid
        else:
            lo = mid
    skin = top - hi * d
    depth = _first_bone(body, skin, d, hi + 10.0)
    contact = top if depth is None else skin + depth * d
    return skin, contact, float(hi if depth is None else depth), d


def palpate_intercristal_line(anatomy, *, examiner: int = 0, seed: int | None = None,
                              bias_per_mm: float | None = None, error_sd_mm: float | None = None,
                              angle_deg: float | None = None) -> IntercristalLine:
    """The hands find both iliac crest tops; the line across is counted against the spine.

    Parameters
    ----------
    anatomy : Anatomy or SpinePhantom
    examiner : int
        Which examiner (repeat trial): a different number draws different hand errors.
    seed : int, optional
        Seed of the hand errors (default: the patient's seed).
    bias_per_mm, error_sd_mm, angle_deg : float, optional
        The model's parameters (defaults: :data:`CREST_CRANIAL_BIAS_PER_MM`,
        :data:`CREST_ERROR_SD_MM`, :data:`CREST_PRESS_ANGLE_DEG`).

    Returns
    -------
    IntercristalLine
    """
    bias_per_mm = CREST_CRANIAL_BIAS_PER_MM if bias_per_mm is None else bias_per_mm
    error_sd_mm = CREST_ERROR_SD_MM if error_sd_mm is None else error_sd_mm
    angle_deg = CREST_PRESS_ANGLE_DEG if angle_deg is None else angle_deg
    body = _as_body(anatomy)
    seed = body.seed if seed is None else int(seed) & 0xFFFFFFFF
    rng = np.random.default_rng([seed, _CREST_STREAM, int(examiner)])
    errors = rng.normal(0.0, error_sd_mm, 2)
    hands = {}
    for side, error in zip(("left", "right"), errors):
        skin, contact, tissue, d = crest_soft_tissue(body, side, angle_deg)
        bias = bias_per_mm * tissue
        felt = contact + np.array([0.0, 0.0, bias + error])
        hands[side] = CrestPalpation(side, body.landmark(f"iliac_crest_{side}_top"), d, skin, contact, tissue,
                                     float(bias), float(error), felt)
    left, right = hands["left"], hands["right"]
    tips = spinous_tip_heights_mm(body)
    height = 0.5 * float(left.felt_top_mm[2] + right.felt_top_mm[2])
    bony = 0.5 * float(left.bone_top_mm[2] + right.bone_top_mm[2])
    return IntercristalLine(left, right, height, _interspace_at(tips, height), bony, _interspace_at(tips, bony),
                            height - tips["L4"], _levels_above_l4(tips, height))


# ============================================================================== the cornua
@dataclass(frozen=True)
class CornuaPalpation:
    """Whether the fingers tell the sacral cornua from the sacrum.

    Attributes
    ----------
    present : bool
        The patient has cornua (not an ``absent_cornua`` hiatus).
    soft_tissue_mm : dict
        ``{"left": mm, "right": mm}``: soft tissue over each cornu along the finger's pressing line
        (``None`` where no bone lies within 120 mm).
    effective_mm : dict
        The effective cover each side (soft tissue plus the patient and side deviations).
    palpable : dict
        ``{"left": bool, "right": bool}``.
    """

    present: bool
    soft_tissue_mm: dict
    effective_mm: dict
    palpable: dict

    @property
    def count(self) -> int:
        return int(self.palpable["left"]) + int(self.palpable["right"])

    @property
    def verdict(self) -> str:
        """``"both"``, ``"one"`` or ``"none"``."""
        return ("none", "one", "both")[self.count]


def cornu_soft_tissue(anatomy, side: str) -> float | None:
    """Soft tissue over one sacral cornu: pressing along the skin's inward normal at the skin point
    nearest the cornu, the distance to the first bone (mm; ``None`` if none within 120 mm)."""
    body = _as_body(anatomy)
    cornu = body.landmark(f"sacrum.cornu_{side}")
    if cornu is None:
        return None
    p = cornu.copy()
    for _ in range(3):  # the nearest skin point, along the distance's gradient
        grad = _gradient(body, p)
        p = p - float(body.skin_distance(p[None])[0]) * grad / max(float(np.linalg.norm(grad)), 1e-9)
    grad = _gradient(body, p)
    inward = -grad / max(float(np.linalg.norm(grad)), 1e-9)
    return _first_bone(body, p, inward, 120.0)


def palpate_sacral_cornua(anatomy, *, examiner: int = 0, seed: int | None = None,
                          cutoff_mm: float | None = None, patient_sd_mm: float | None = None,
                          side_sd_mm: float | None = None) -> CornuaPalpation:
    """Which sacral cornua the fingers can feel.

    Parameters
    ----------
    anatomy : Anatomy or SpinePhantom
    examiner : int
        Which examiner (repeat trial).
    seed : int, optional
        Seed of the deviations (default: the patient's seed).
    cutoff_mm, patient_sd_mm, side_sd_mm : float, optional
        The model's parameters (defaults: :data:`CORNU_CUTOFF_MM`, :data:`CORNU_PATIENT_SD_MM`,
        :data:`CORNU_SIDE_SD_MM`).

    Returns
    -------
    CornuaPalpation
    """
    cutoff_mm = CORNU_CUTOFF_MM if cutoff_mm is None else cutoff_mm
    patient_sd_mm = CORNU_PATIENT_SD_MM if patient_sd_mm is None else patient_sd_mm
    side_sd_mm = CORNU_SIDE_SD_MM if side_sd_mm is None else side_sd_mm
    body = _as_body(anatomy)
    seed = body.seed if seed is None else int(seed) & 0xFFFFFFFF
    rng = np.random.default_rng([seed, _CORNU_STREAM, int(examiner)])
    shared = rng.normal(0.0, patient_sd_mm)
    own = dict(zip(("left", "right"), rng.normal(0.0, side_sd_mm, 2)))
    present = body.has_cornua
    tissue = {side: cornu_soft_tissue(body, side) for side in ("left", "right")}
    effective = {side: (np.inf if t is None else float(t + shared + own[side])) for side, t in tissue.items()}
    palpable = {side: bool(present and effective[side] < cutoff_mm) for side in ("left", "right")}
    return CornuaPalpation(present, tissue, effective, palpable)
