"""The spinal column: every vertebra placed on the sacrum along the patient's sagittal curves.

Vertebrae are stacked upwards from the S1 endplate. Each disc and each body is a wedge; the wedges
of each region add up to the patient's curve: lumbar lordosis (L1 superior to S1 superior
endplate), thoracic kyphosis (T1 superior to T12 inferior endplate) and cervical lordosis (C2
inferior to C7 inferior endplate). A scoliotic patient's column also bends in the coronal plane
(a right thoracolumbar curve) and twists a little towards its convexity.
"""

from __future__ import annotations

import numpy as np

from simulator.anatomy.morphometry import DiscDims, SpineMorphometry, VertebraDims
from simulator.anatomy.patient import ResolvedPatient
from simulator.anatomy.vertebra import ENDPLATE_DISH_MM, Segment
from simulator.geometry import frames

#: Levels from the top of the phantom down to L5.
LEVELS = ("C2", "C3", "C4", "C5", "C6", "C7",
          "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12",
          "L1", "L2", "L3", "L4", "L5")
ALL_LEVELS = LEVELS + ("S1",)
INTERSPACES = tuple(f"{a}-{b}" for a, b in zip(ALL_LEVELS[:-1], ALL_LEVELS[1:]))


def rotation_y(angle_deg: float) -> np.ndarray:
    """Rotation about the anterior axis: positive tips +z towards +x (the patient's right)."""
    a = np.radians(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotation_z(angle_deg: float) -> np.ndarray:
    """Rotation about the body axis (axial rotation)."""
    a = np.radians(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def s1_dims(morph: SpineMorphometry) -> VertebraDims:
    """Dimensions of the S1 segment where the column sits (its articular processes and canal)."""
    l5 = morph.vertebra("L5")
    return VertebraDims(
        level="S1", region="sacral", endplate_width_mm=morph.s1_endplate_width_mm,
        endplate_depth_mm=morph.s1_endplate_depth_mm, body_height_posterior_mm=28.0,
        body_wedge_deg=0.0, canal_width_mm=30.0, canal_depth_mm=13.0,
        pedicle_width_mm=18.0, pedicle_height_mm=14.0, pedicle_transverse_angle_deg=30.0,
        spinous_length_mm=12.0, spinous_height_mm=14.0, spinous_inclination_deg=14.0,
        transverse_span_mm=100.0, lamina_height_mm=16.0, lamina_thickness_mm=6.0,
        facet_angle_from_sagittal_deg=l5.facet_angle_from_sagittal_deg, facet_angle_to_horizontal_deg=90.0)


def _disc_wedge_deg(disc: DiscDims, depth_mm: float) -> float:
    return float(np.degrees(np.arctan2(disc.anterior_height_mm - disc.posterior_height_mm, depth_mm)))


def sagittal_wedges(morph: SpineMorphometry, patient: ResolvedPatient) -> dict[str, float]:
    """The lordotic wedge (degrees, + = extension) of each disc, fitted to the patient's curves.

    Lumbar discs keep their proportions and are scaled (flattening a lordosis opens the discs at
    the back); thoracic and cervical discs share the difference equally (their curves come mostly
    from the vertebral bodies in the thorax, and from the discs in the neck).
    """
    vertebrae = {v.level: v for v in morph.vertebrae}
    discs = {d.level: d for d in morph.discs}
    natural = {name: _disc_wedge_deg(d, vertebrae[name.split("-")[0]].endplate_depth_mm) for name, d in discs.items()}
    wedges = dict(natural)
    lumbar = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    lumbar_bodies = sum(vertebrae[lv].body_wedge_deg for lv in ("L1", "L2", "L3", "L4", "L5"))
    factor = (patient.lordosis_deg + lumbar_bodies) / sum(natural[n] for n in lumbar)
    for n in lumbar:
        wedges[n] = natural[n] * factor
    # kyphosis T1 superior -> T12 inferior: bodies T1..T12 and discs T1-T2..T11-T12
    thoracic = [f"T{i}-T{i + 1}" for i in range(1, 12)]
    bodies = sum(vertebrae[f"T{i}"].body_wedge_deg for i in range(1, 13))
    shift = (bodies - patient.kyphosis_deg - sum(natural[n] for n in thoracic)) / len(thoracic)
    for n in thoracic:
        wedges[n] = natural[n] + shift
    # cervical lordosis C2 inferior -> C7 inferior: discs C2-C3..C6-C7 and bodies C3..C7
    cervical = ["C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7"]
    bodies = sum(vertebrae[lv].body_wedge_deg for lv in ("C3", "C4", "C5", "C6", "C7"))
    shift = (patient.cervical_lordosis_deg + bodies - sum(natural[n] for n in cervical)) / len(cervical)
    for n in cervical:
        wedges[n] = natural[n] + shift
    return wedges


def coronal_bends(patient: ResolvedPatient) -> dict[str, float]:
    """Coronal tilt (degrees, + = towards the patient's right) added at each disc for a
    scoliotic patient: a thoracolumbar curve between its end vertebrae T6 and L3 (apex near
    T11-T12), which tilt against each other by the Cobb angle; the discs above and below
    compensate so the pelvis and the shoulders stay level."""
    bends: dict[str, float] = {}
    cobb = patient.scoliosis_deg
    if cobb <= 0.0:
        return bends
    below = ["L5-S1", "L4-L5", "L3-L4"]
    curve = ["L2-L3", "L1-L2", "T12-L1", "T11-T12", "T10-T11", "T9-T10", "T8-T9", "T7-T8", "T6-T7"]
    above = ["T5-T6", "T4-T5", "T3-T4"]
    for name in below:
        bends[name] = 0.5 * cobb / len(below)
    for name in curve:
        bends[name] = -cobb / len(curve)
    for name in above:
        bends[name] = 0.5 * cobb / len(above)
    return bends


def stack_column(morph: SpineMorphometry, patient: ResolvedPatient) -> tuple[list[Segment], Segment, float]:
    """Place C2..L5 on the S1 endplate, the trunk lying flat on the table.

    Returns the segments (cranial first), S1, and the S1 endplate's slope to the table (degrees).

    The curves are those of the prone procedure posture; the whole column is then turned in the
    sagittal plane so that the chord from the S1 endplate to the T1 body lies along the table (the
    chest and the pelvis both rest on it). Without that, the flattened lumbar lordosis under the
    full thoracic kyphosis would lean the chest and neck ~15 degrees into the table.
    """
    segments, s1 = _stack(morph, patient, morph.sacral_slope_deg)
    t1 = next(s for s in segments if s.name == "T1").to_world([0.0, 0.0, 0.0])
    lean_deg = float(np.degrees(np.arctan2(t1[1], t1[2])))  # + : T1 in front of (below) the chord
    slope_deg = morph.sacral_slope_deg - lean_deg
    segments, s1 = _stack(morph, patient, slope_deg)
    return segments, s1, slope_deg


def _stack(morph: SpineMorphometry, patient: ResolvedPatient, sacral_slope_deg: float) -> tuple[list[Segment], Segment]:
    vertebrae = {v.level: v for v in morph.vertebrae}
    discs = {d.level: d for d in morph.discs}
    wedges = sagittal_wedges(morph, patient)
    bends = coronal_bends(patient)
    rotation_max = 0.4 * patient.scoliosis_deg  # axial rotation at the apex, degrees

    # S1: the endplate faces forward-up by the sacral slope; the body frame sits below it
    rot = frames.rotation_x(-sacral_slope_deg)
    plate_centre = np.zeros(3)
    s1 = Segment("S1", frames.rigid(rot, plate_centre - rot @ np.array([0.0, 0.0, 14.0])), s1_dims(morph), 28.0)

    segments = []
    below = "S1"
    for level in reversed(LEVELS):
        v = vertebrae[level]
        name = f"{level}-{below}"
        disc = discs[name]
        wedge = wedges[name]
        bend = bends.get(name, 0.0)
        disc_rot = rot @ frames.rotation_x(0.5 * wedge) @ rotation_y(0.5 * bend)
        # the middle height is measured between the endplates' hollows
        rim_gap = disc.middle_height_mm - 2.0 * ENDPLATE_DISH_MM
        lower_plate = plate_centre + disc_rot @ np.array([0.0, 0.0, rim_gap])
        rot = rot @ frames.rotation_x(wedge) @ rotation_y(bend)
        body_rot = rot @ frames.rotation_x(-0.5 * v.body_wedge_deg)
        h_mid = v.body_height_posterior_mm - v.endplate_depth_mm * 0.5 * np.tan(np.radians(v.body_wedge_deg))
        centre = lower_plate + body_rot @ np.array([0.0, 0.0, 0.5 * h_mid])
        twist = _axial_rotation(level, rotation_max)
        segments.append(Segment(level, frames.rigid(body_rot @ rotation_z(twist), centre), v, float(h_mid)))
        plate_centre = lower_plate + body_rot @ np.array([0.0, 0.0, h_mid])
        rot = rot @ frames.rotation_x(-v.body_wedge_deg)
        below = level
    segments.reverse()
    return segments, s1


def _axial_rotation(level: str, at_apex_deg: float) -> float:
    """Axial rotation of a scoliotic curve's vertebrae: most at the apex (T11-T12), none at the
    end vertebrae; bodies turn towards the convexity."""
    if at_apex_deg == 0.0 or level not in LEVELS:
        return 0.0
    i = LEVELS.index(level)
    apex = LEVELS.index("T12") - 0.5
    half_span = 5.5
    return float(at_apex_deg * max(0.0, 1.0 - abs(i - apex) / half_span))
