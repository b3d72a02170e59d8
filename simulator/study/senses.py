"""What a virtual operator is given: hands (and, under fluoroscopy, eyes), never the anatomy.

A virtual operator (:mod:`simulator.study.operators`) drives a :class:`Simulation` only through
these objects, so what it can know is fixed here, in one place, and can be checked:

:class:`Hands` (both modes)
    * carries out commands and returns what a hand would notice of each event as a
      :class:`Percept`: the feel of a tissue but not its name, the depth marks on the shaft, the
      pressure on the plunger, a pop, a give, bone met, what comes back into the hub, where a
      pressing finger found which kind of bone (``"spinous process"``, not ``"L4"``), a paraesthesia
      the patient reports. Every field not listed in :data:`PERCEIVED` is dropped (the tip's tissue,
      its world position, the distance to danger structures, the true contrast compartment...);
    * shows the back's skin (where a ray from behind or from the side meets it: what the eye sees
      of the patient on the table) and the patient's build (sex, height, BMI: what anyone in the
      room sees), and the brief of the case.

:class:`Eyes` (fluoroscopy only) adds the images, read as a reader reads them: the **projection
into the current image** of bony landmarks (:data:`BONY_LANDMARKS`: what a reader sees of bone),
of the needle's tip and of the endplates' tilt, each with the operator's reading error; and the
contrast pattern, misread with the operator's probability. It also answers "is there bone on this
straight line?" (what the trajectory view shows) through :class:`BoneView`, an anatomy-like
object whose tissues are only *bone* or *soft tissue*: planners written for the expert's anatomy
(:func:`simulator.procedures.lumbar_interlaminar.clear_path_entry`) can run on it and learn
nothing of the soft tissues.

The anatomy itself is reachable only through the simulation these objects keep private; the
study's tests run operators on an anatomy that raises when anything but these senses and the
simulation's own command handling touches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from simulator.anatomy.tissues import tissue_table
from simulator.errors import CommandRefused, SpineSimError
from simulator.geometry import frames
from simulator.imaging.carm import CArmPose, projection_for, Projection
from simulator.protocol import commands as cmd
from simulator.protocol.events import Event

#: Per event kind, the data fields a hand (or an eye on the hub) perceives. Kinds not listed give a
#: percept with no data (that it happened: e.g. "needle_pass_started").
PERCEIVED: Mapping[str, tuple[str, ...]] = {
    "entry_set": ("entry_mm", "direction"),
    "tissue_entered": ("feel", "depth_mm"),
    "pop_felt": ("depth_mm",),
    "ligament_entered": ("depth_mm",),
    "paraesthesia": ("depth_mm",),
    "needle_advanced": ("depth_mm", "moved_mm", "requested_mm", "force_n"),
    "needle_withdrawn": ("depth_mm", "moved_mm"),
    "needle_redirected": ("direction", "angle_deg"),
    "bone_contacted": ("depth_mm",),
    "needle_length_exhausted": ("depth_mm",),
    "loss_of_resistance_tested": ("pressure_mmhg", "feel", "depth_mm", "medium"),
    "loss_of_resistance": ("pressure_mmhg", "depth_mm"),
    "aspirated": ("result",),
    "palpated": ("point_mm", "finding", "depth_mm", "clearly"),
    "drug_injected": ("drug_id", "volume_ml", "total_ml"),
    "contrast_injected": ("volume_ml", "total_ml"),
    "image_acquired": ("index", "oblique_deg", "tilt_deg"),
    "carm_moved": ("oblique_deg", "tilt_deg", "isocentre_mm"),
    "command_refused": ("command", "reason"),
    "bevel_rotated": ("roll_deg",),
}

#: Landmarks a reader sees on a fluoroscopic image: bone, or a point fixed by bone. The epidural
#: target is read as the spinolaminar line at the interspace (the posterior epidural space lies
#: just in front of it on a lateral or contralateral oblique view, reference 3.2); the foramina as
#: the lucent holes between the pedicles. Not the dural sac, the conus or the arteries.
BONY_LANDMARKS = ("spinous_tip", "body_center", "superior_endplate_center", "inferior_endplate_center",
                  "pedicle_left_center", "pedicle_right_center", "transverse_tip_left", "transverse_tip_right",
                  "lamina_left", "lamina_right", "interlaminar_center", "epidural_target", "disc_center",
                  "foramen_left_center", "foramen_right_center", "facet_left_center", "facet_right_center",
                  "sap_tip_left", "sap_tip_right", "hiatus_apex", "cornu_left", "cornu_right", "tip",
                  "foramen_left", "foramen_right", "iliac_crest_left_top", "iliac_crest_right_top",
                  "psis_left", "psis_right")


@dataclass(frozen=True)
class Percept:
    """What the operator noticed of one event: its kind and the perceivable part of its data."""

    kind: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Build:
    """The patient as seen in the room."""

    sex: str
    height_cm: float
    bmi_kg_m2: float


@dataclass(frozen=True)
class Brief:
    """The case as the operator is told it (the scenario's public part)."""

    procedure: str
    target_level: str
    side: str
    guidance: str
    patient_position: str
    contrast_ml: float
    images: int
    #: the drugs of the technique and their volumes (the procedure's textbook injectate)
    injectate: tuple[tuple[str, float], ...] = ()


def perceive(event: Event) -> Percept:
    """The perceivable part of an event (:data:`PERCEIVED`)."""
    fields = PERCEIVED.get(event.kind, ())
    return Percept(event.kind, {k: event.data[k] for k in fields if k in event.data})


class Hands:
    """What the landmark operator has: commands, the percepts they give, the skin and the build.

    Parameters
    ----------
    sim : Simulation
        Kept private: the operator sees it only through the methods below.
    """

    def __init__(self, sim):
        self.__sim = sim
        sc = sim.scenario
        p = sim.anatomy.patient
        self.build = Build(p.sex, float(p.height_cm), float(p.bmi_kg_m2))
        self.brief = Brief(sc.procedure, sc.target_level, sc.side, sc.guidance, sc.patient_position,
                           float(sc.limits.contrast_ml), int(sc.limits.images),
                           tuple(sim.procedure.expert_injectate))
        grid = sim.anatomy.grid
        #: The stretch of the body on the table (world mm, cranio-caudal): where to look for things.
        self.body_z_mm = (float(grid.lo_mm[2]), float(grid.hi_mm[2]))
        self.depth_mm = 0.0
        self.entry_mm: np.ndarray | None = None
        self.direction: np.ndarray | None = None
        self.log: list[Percept] = []

    # ------------------------------------------------------------------ commands
    def do(self, command) -> list[Percept] | None:
        """Carry out ``command``; the percepts it gave, or ``None`` if it was refused."""
        try:
            events = self.__sim.apply(command)
        except CommandRefused:
            return None
        percepts = [perceive(e) for e in events]
        for p in percepts:
            if "depth_mm" in p.data and p.kind in ("needle_advanced", "needle_withdrawn"):
                self.depth_mm = float(p.data["depth_mm"])
            if p.kind == "entry_set":
                self.entry_mm = np.asarray(p.data["entry_mm"], float)
                self.direction = np.asarray(p.data["direction"], float)
                self.depth_mm = 0.0
            if p.kind == "needle_redirected":
                self.direction = np.asarray(p.data["direction"], float)
        self.log.extend(percepts)
        return percepts

    @property
    def finished(self) -> bool:
        return self.__sim.finished

    @property
    def needle_spec(self):
        """The needle in the hand (its packet: gauge, length, tip; how it bends)."""
        return self.__sim.needle.spec

    # ------------------------------------------------------------------ the skin
    def skin_from_behind(self, x_mm: float, z_mm: float) -> np.ndarray | None:
        """The back's skin at lateral position ``x_mm`` and height ``z_mm`` (world), seen from
        behind; ``None`` if the body is not there."""
        return self.skin_along(np.array([x_mm, -400.0, z_mm]), frames.ANTERIOR)

    def skin_along(self, start_mm, direction) -> np.ndarray | None:
        """Where a line from ``start_mm`` (outside the body) along ``direction`` meets the skin."""
        return skin_along(self.__sim.anatomy.skin_signed_distance, start_mm, direction)

    def flank(self, side: str, z_mm: float, y_mm: float) -> np.ndarray | None:
        """The side of the body at height ``z_mm`` and depth ``y_mm``, seen from the ``side``."""
        sign = 1.0 if side == "right" else -1.0
        return self.skin_along([sign * 400.0, y_mm, z_mm], [-sign, 0.0, 0.0])


def skin_along(skin_distance, start_mm, direction, reach_mm: float = 400.0) -> np.ndarray | None:
    """Where a line from ``start_mm`` along ``direction`` first meets the skin (the skin's signed
    distance turns negative), to 0.05 mm; ``None`` if it misses within ``reach_mm``. The same point
    as :meth:`Anatomy.skin_entry`, from the skin's distance field (~50x cheaper than its tissue
    labels)."""
    p = np.asarray(start_mm, float)
    d = frames.unit(np.asarray(direction, float))
    t = np.arange(0.0, reach_mm, 1.0)
    inside = np.nonzero(skin_distance(p + t[:, None] * d) < 0.0)[0]
    if inside.size == 0:
        return None
    if inside[0] == 0:
        return p
    lo, hi = float(t[inside[0] - 1]), float(t[inside[0]])
    while hi - lo > 0.05:
        mid = 0.5 * (lo + hi)
        if float(skin_distance((p + mid * d)[None])[0]) < 0.0:
            hi = mid
        else:
            lo = mid
    return p + hi * d


@dataclass(frozen=True)
class ImageReading:
    """One image as the operator holds it: the pose it was taken at and its projection geometry
    (what the C-arm's console shows), for reading points into it."""

    index: int
    pose: CArmPose
    projection: Projection

    @property
    def mm_per_px_at_isocentre(self) -> float:
        return self.projection.pixel_mm / self.projection.magnification_at(self.pose.isocentre_mm)

    def in_field(self, row_col) -> bool:
        r, c = row_col
        return 0.0 <= r < self.projection.rows and 0.0 <= c < self.projection.cols

    def ray(self, row_col) -> tuple[np.ndarray, np.ndarray]:
        """The ray (source, unit direction) that lands on image point ``row_col``."""
        pr = self.projection
        point = pr.pixel00_mm + row_col[0] * pr.row_step_mm + row_col[1] * pr.col_step_mm
        return pr.source_mm.copy(), frames.unit(point - pr.source_mm)


class BoneView:
    """An anatomy-like object that tells bone from everything else (soft tissue, air) and shows
    the skin: what a trajectory view and the patient's surface give. Planners that take an anatomy
    and ask only ``tissue_at``, ``skin_entry`` and ``skin_signed_distance`` run on it."""

    def __init__(self, sim):
        self.__sim = sim
        table = tissue_table()
        self._is_bone = table.is_bone
        self._soft = table.id("muscle")
        self._air = table.id("air")
        self._bone = table.id("cortical_bone")

    def tissue_at(self, points_mm: np.ndarray) -> np.ndarray:
        ids = self.__sim.anatomy.tissue_at(points_mm)
        out = np.where(self._is_bone[ids], self._bone, self._soft)
        return np.where(ids == self._air, self._air, out)

    def is_bone(self, points_mm: np.ndarray) -> np.ndarray:
        """Whether each point is in bone."""
        return self._is_bone[self.__sim.anatomy.tissue_at(points_mm)]

    def skin_signed_distance(self, points_mm: np.ndarray) -> np.ndarray:
        return self.__sim.anatomy.skin_signed_distance(points_mm)

    def skin_entry(self, start_mm, direction) -> np.ndarray | None:
        return skin_along(self.__sim.anatomy.skin_signed_distance, start_mm, direction)


class Eyes(Hands):
    """The image-guided operator's senses: :class:`Hands` plus the images, read with error.

    Parameters
    ----------
    sim : Simulation
    reading_sd_mm : float
        SD of a point read off an image, mm at the isocentre, per axis of the image.
    tilt_reading_sd_deg : float
        SD of the endplates' tilt judged from their contours, degrees.
    pattern_misread : float
        Probability of misreading a contrast pattern.
    rng : numpy.random.Generator
    """

    def __init__(self, sim, reading_sd_mm: float, tilt_reading_sd_deg: float, pattern_misread: float,
                 rng: np.random.Generator):
        super().__init__(sim)
        if sim.guidance != "fluoroscopy":
            raise SpineSimError(f"scenario {sim.scenario.id}: an image-guided operator needs fluoroscopy")
        self.__sim = sim
        self._reading_sd_mm = float(reading_sd_mm)
        self._tilt_sd_deg = float(tilt_reading_sd_deg)
        self._misread = float(pattern_misread)
        self._rng = rng
        self.bone = BoneView(sim)
        self.images: list[ImageReading] = []

    @property
    def isocentre_mm(self) -> tuple[float, float, float]:
        """Where the C-arm's central ray passes now (the console shows it)."""
        return tuple(self.__sim.carm_pose.isocentre_mm)

    def take_image(self, oblique_deg: float, tilt_deg: float, isocentre_mm) -> ImageReading | None:
        """Move the C-arm and take an image; ``None`` if refused (the scenario's images used up)."""
        iso = tuple(float(v) for v in isocentre_mm)
        if self.do(cmd.MoveCArm(oblique_deg=float(np.clip(oblique_deg, -100.0, 100.0)),
                                tilt_deg=float(np.clip(tilt_deg, -45.0, 45.0)), isocentre_mm=iso)) is None:
            return None
        percepts = self.do(cmd.AcquireImage())
        if percepts is None:
            return None
        pose = self.__sim.carm_pose
        reading = ImageReading(len(self.images), pose, projection_for(pose, self.__sim.image_size_px))
        self.images.append(reading)
        return reading

    def _read(self, reading: ImageReading, point_mm: np.ndarray) -> tuple[float, float] | None:
        rc = reading.projection.project(np.asarray(point_mm, float))
        if not reading.in_field(rc):
            return None
        sd_px = self._reading_sd_mm / reading.mm_per_px_at_isocentre
        rc = rc + self._rng.normal(0.0, sd_px, 2) if sd_px > 0 else rc
        return float(rc[0]), float(rc[1])

    def read_bone(self, reading: ImageReading, name: str) -> tuple[float, float] | None:
        """Where landmark ``name`` (one of :data:`BONY_LANDMARKS`, e.g. ``"L4-L5.interlaminar_center"``)
        projects in the image, with the reading error; ``None`` outside the field."""
        if name.rsplit(".", 1)[-1] not in BONY_LANDMARKS:
            raise SpineSimError(f"landmark '{name}' is not bone: a reader cannot see it on an image")
        return self._read(reading, self.__sim.anatomy.landmark(name))

    def read_tip(self, reading: ImageReading) -> tuple[float, float] | None:
        """Where the needle's tip shows in the image (if it was in when the image was taken:
        read it right after taking the image)."""
        needle = self.__sim.needle
        if not needle.inserted or needle.depth_mm <= 0.0:
            return None
        return self._read(reading, needle.tip_mm)

    def endplate_tilt_deg(self, level: str) -> float:
        """The angle between the beam and ``level``'s superior endplate as judged from its
        contours in the last image (positive: tilt the C-arm towards the head to square it)."""
        if not self.images:
            raise SpineSimError("take an image before judging the endplates")
        pose = self.images[-1].pose
        normal = self.__sim.anatomy.endplate_normal(level)
        # the beam runs along the endplate (its two rims on one line) at this tilt
        square_tilt = float(np.degrees(np.arctan2(normal[1], normal[2])))
        return float(square_tilt - pose.tilt_deg + self._rng.normal(0.0, self._tilt_sd_deg))

    def read_pattern(self, percepts: list[Percept] | None) -> str | None:
        """The contrast pattern the operator reads off the image after an injection (``None`` if no
        injection happened)."""
        run = next((e for e in reversed(self.__sim.events) if e.kind == "contrast_injected"), None)
        if run is None or not percepts or not any(p.kind == "contrast_injected" for p in percepts):
            return None
        truth = run.data["vascular"] or run.data["compartment"]
        if self._misread > 0 and self._rng.random() < self._misread:
            wrong = ("epidural", "soft_tissue") if truth not in ("epidural",) else ("soft_tissue", "venous")
            return str(wrong[int(self._rng.integers(len(wrong)))])
        return str(truth)


def triangulate(readings: list[tuple[ImageReading, tuple[float, float]]]) -> np.ndarray:
    """The world point nearest the rays of the same point read in two or more images (least
    squares): how a reader places a landmark in depth from an AP and a lateral."""
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for reading, rc in readings:
        source, d = reading.ray(rc)
        m = np.eye(3) - np.outer(d, d)
        a += m
        b += m @ source
    if len(readings) < 2:
        raise SpineSimError("a point in depth needs readings from two images")
    return np.linalg.solve(a, b)
