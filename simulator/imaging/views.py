"""Standard fluoroscopic views, computed from the patient's own anatomy, and their names.

Each view is a C-arm pose (oblique and tilt in patient terms, see :mod:`simulator.imaging.carm`)
found the way a radiographer finds it, by aligning the beam with the anatomy (reference sections 3
and 4.5):

- **AP, endplates squared**: the beam along the target level's endplate (the interlaminar window
  opens).
- **Lateral**: detector on the patient's left, the same tilt.
- **Contralateral oblique (CLO)**: 50 degrees, the detector on the side away from the needle (the
  neck 50 +- 5, lumbar 45-60).
- **Ipsilateral oblique ("Scotty dog")**: the beam along the line from the vertebral body's centre to
  the superior articular process, which puts the process over the middle of the body.
- **Facet view**: the beam in the plane of the facet joint (the joint space opens).
- **Cervical foraminal oblique**: the C-arm turned (and tilted) until the line of sight through the
  foramen's centre meets the least bone: the foramen at its widest.
- **S1 foramen view**: the S1 endplate squared plus a slight ipsilateral oblique.
- **SIJ oblique**: the cephalad tilt and oblique at which the lower joint opens.
- **Caudal**: a true lateral of the sacrum and an AP.
"""

from __future__ import annotations

import numpy as np

from simulator.anatomy.tissues import tissue_table
from simulator.geometry import frames
from simulator.imaging.carm import detector_direction

#: Contralateral oblique angle, degrees (reference: 50 +- 5 in the neck, 45-60 lumbar).
CLO_DEG = 50.0
#: The slight ipsilateral oblique added to the squared S1 endplate for the S1 foramen, degrees.
S1_IPSILATERAL_DEG = 10.0


def projection_name(oblique_deg: float, tilt_deg: float) -> str:
    """The projection's clinical name for a prone patient (detector over the back): ``AP``, a
    posterior oblique named by the side nearer the detector (``LPO 35``: detector towards the
    patient's left), ``left lateral`` / ``right lateral``, and the tilt (``cranial`` when the
    detector leans towards the head)."""
    ob, tilt = float(oblique_deg), float(tilt_deg)
    if abs(ob) < 1.0:
        name = "AP"
    elif abs(abs(ob) - 90.0) < 1.0:
        name = "left lateral" if ob > 0 else "right lateral"
    elif abs(ob) < 90.0:
        name = f"{'LPO' if ob > 0 else 'RPO'} {abs(ob):.0f}\N{DEGREE SIGN}"
    else:
        name = f"{'LAO' if ob > 0 else 'RAO'} {180.0 - abs(ob):.0f}\N{DEGREE SIGN}"
    if abs(tilt) >= 1.0:
        name += f", {'cranial' if tilt > 0 else 'caudal'} {abs(tilt):.0f}\N{DEGREE SIGN}"
    return name


def pose_along(direction: np.ndarray) -> tuple[float, float]:
    """Oblique and tilt that put the beam (source to detector) along ``direction`` or against it,
    whichever keeps the detector behind the patient (the trajectory view of a needle on that
    line)."""
    d = frames.unit(np.asarray(direction, float))
    if d[1] > 0:  # the detector sits over the back (posterior is -y)
        d = -d
    tilt = float(np.degrees(np.arcsin(np.clip(d[2], -1.0, 1.0))))
    oblique = float(np.degrees(np.arctan2(-d[0], -d[1])))
    return oblique, tilt


def squaring_tilt_deg(anatomy, interspace: str) -> float:
    """Tilt that runs the beam along the superior endplate of the interspace's lower vertebra,
    which opens the interlaminar window ("squares" the endplate)."""
    normal = anatomy.endplate_normal(interspace.split("-")[1])
    return float(np.degrees(np.arctan2(normal[1], normal[2])))


def _most_in_plane(normal: np.ndarray, poses: list[tuple[float, float]]) -> tuple[float, float]:
    """Of ``poses`` (oblique, tilt), the one whose beam lies most nearly in the plane with
    ``normal``."""
    dots = [abs(float(detector_direction(ob, tilt) @ normal)) for ob, tilt in poses]
    return poses[int(np.argmin(dots))]


def _clearest_pose(anatomy, centre: np.ndarray, obliques: np.ndarray, tilts: np.ndarray) -> tuple[float, float]:
    """Of the poses (``obliques`` x ``tilts``), the one whose line of sight through ``centre`` meets
    the least bone (the radiographer turns the C-arm until the gap opens): the tilt with the
    clearest line, and the middle of the clearest range of obliques at it."""
    is_bone = tissue_table().is_bone
    t = np.arange(-25.0, 25.0, 0.25)
    directions = np.array([[detector_direction(o, b) for o in obliques] for b in tilts])
    points = centre + t[:, None, None, None] * directions[None]  # one query for every line
    bone = is_bone[anatomy.labels_at(points.reshape(-1, 3))].reshape(points.shape[:-1]).sum(axis=0)
    best_tilt = int(np.argmin(bone.min(axis=1) * 1000 - (bone == bone.min()).sum(axis=1)))
    row = bone[best_tilt]
    clear = np.nonzero(row == row.min())[0]
    return float(obliques[int(clear[len(clear) // 2])]), float(tilts[best_tilt])


def _widest_foramen(anatomy, centre: np.ndarray, detector_sign: float) -> tuple[float, float]:
    """The cervical foramen at its widest: obliques of 20-85 degrees with the detector on
    ``detector_sign``'s side and tilts of +-20."""
    return _clearest_pose(anatomy, centre, np.arange(20.0, 85.01, 2.0) * detector_sign, np.arange(-20.0, 20.01, 5.0))


def _sij_oblique(anatomy, point: np.ndarray, contralateral_sign: float) -> tuple[float, float]:
    """The SIJ oblique (reference 3.8: a cephalad tilt of 10-25 degrees, a contralateral oblique of
    10-30, until the anterior and posterior joint lines superimpose and the lower joint shows as a
    clear line): the pose whose line of sight through the lower joint meets the least bone, over
    tilts of 0-25 and obliques from 10 ipsilateral to 30 contralateral, since a patient's joint
    (the phantom's included) may face straighter back than the textbook's."""
    return _clearest_pose(anatomy, point, np.arange(-10.0, 30.01, 1.0) * contralateral_sign, np.arange(0.0, 25.01, 2.5))


def standard_views(anatomy, procedure: str, interspace: str, side: str = "right") -> dict[str, tuple[float, float]]:
    """The procedure's standard views at ``interspace`` for a needle on ``side``: name to
    ``(oblique_deg, tilt_deg)``, in the order a clinician would use them."""
    if procedure == "caudal":
        # the lateral is the main confirmation view (the tip in the canal, in front of the
        # ligament); the AP shows the midline, the level (not above S3) and the contrast's spread
        return {"lateral (sacrum)": (90.0, 0.0), "AP (sacrum)": (0.0, 0.0)}
    sign = -1.0 if side == "right" else 1.0  # the detector towards the needle's side
    upper, lower = interspace.split("-")
    tilt = squaring_tilt_deg(anatomy, interspace)
    views = {"AP, endplates squared": (0.0, tilt), "lateral": (90.0, tilt),
             f"contralateral oblique {CLO_DEG:.0f}": (-sign * CLO_DEG, tilt)}
    facet = f"{interspace}.facet_{side}_center"
    lumbar = lower.startswith("L")
    if lumbar and facet in anatomy.landmarks and f"{lower}.body_center" in anatomy.landmarks:
        along = anatomy.landmark(facet) - anatomy.landmark(f"{lower}.body_center")
        along[2] = 0.0  # an axial line: the tilt stays squared
        oblique, _ = pose_along(along)
        views["ipsilateral oblique (Scotty dog)"] = (oblique, tilt)
    normal = anatomy.facet_normal(interspace, side)
    if normal is not None:
        if procedure.startswith("cervical"):
            # the neck's joints face up and back: a lateral tilted along the joint plane
            poses = [(-sign * 90.0, float(t)) for t in np.arange(-40.0, 40.01, 0.25)]
        else:
            # the lumbar joints stand upright: an ipsilateral oblique at the squared tilt
            poses = [(float(ob), tilt) for ob in np.arange(0.0, 85.01, 0.25) * sign]
        views["facet view (along the joint)"] = _most_in_plane(normal, poses)
    foramen = f"{interspace}.foramen_{side}_center"
    if procedure.startswith("cervical") and foramen in anatomy.landmarks:
        views["foraminal oblique"] = _widest_foramen(anatomy, anatomy.landmark(foramen), -sign)
    if lower == "S1" or procedure == "s1_transforaminal":
        views["S1 foramen"] = (sign * S1_IPSILATERAL_DEG, squaring_tilt_deg(anatomy, "L5-S1"))
    sij = f"sij_{side}_lower_third"
    if procedure == "sacroiliac_joint" and sij in anatomy.landmarks:
        views["SIJ oblique"] = _sij_oblique(anatomy, anatomy.landmark(sij), -sign)
    return views


#: Where the room's "up" and the C-arm console's LAO side (the patient's left when supine) point
#: in the patient's frame, for each patient position.
_ROOM_IN_PATIENT = {
    "supine": (frames.ANTERIOR, np.array([-1.0, 0.0, 0.0])),
    "prone": (-frames.ANTERIOR, np.array([1.0, 0.0, 0.0])),
    # lying on the left side: the right side faces up and the front faces the console's LAO side
    "left_lateral_decubitus": (np.array([1.0, 0.0, 0.0]), frames.ANTERIOR),
    "right_lateral_decubitus": (np.array([-1.0, 0.0, 0.0]), -frames.ANTERIOR),
}
PATIENT_POSITIONS = tuple(_ROOM_IN_PATIENT)


def room_up(position: str) -> np.ndarray:
    """The room's up (away from the table) in the patient's frame, for a patient position."""
    return np.asarray(_ROOM_IN_PATIENT[position][0], float)


def gravity_direction(position: str) -> np.ndarray:
    """The direction that is down for a patient in ``position``, in the patient's frame (where
    contrast heavier than CSF settles)."""
    return -_ROOM_IN_PATIENT[position][0]


def console_name(oblique_deg: float, tilt_deg: float, position: str = "prone") -> str:
    """What the C-arm's own display calls the pose: its orbital angle as LAO/RAO and its angulation
    as CRAN/CAUD, which assume a supine patient (head towards the gantry), so for a prone patient
    the detector over the patient's left shows as RAO. ``position``: one of
    :data:`PATIENT_POSITIONS` (the patient's head towards the C-arm's cranial side)."""
    up, lao_side = _ROOM_IN_PATIENT[position]
    d = detector_direction(oblique_deg, tilt_deg)
    angle = float(np.degrees(np.arctan2(d @ lao_side, d @ up)))
    orbit = "0\N{DEGREE SIGN}" if abs(angle) < 0.5 else f"{'LAO' if angle > 0 else 'RAO'} {abs(angle):.0f}\N{DEGREE SIGN}"
    tilt = float(np.degrees(np.arcsin(np.clip(d[2], -1.0, 1.0))))
    if abs(tilt) >= 0.5:
        orbit += f" {'CRAN' if tilt > 0 else 'CAUD'} {abs(tilt):.0f}\N{DEGREE SIGN}"
    return orbit
