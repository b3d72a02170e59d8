"""Standard C-arm views computed from the patient's anatomy, and the projections' clinical names."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.anatomy.tissues import tissue_table
from simulator.imaging.carm import CArmPose, detector_direction, projection_for
from simulator.imaging.views import projection_name, squaring_tilt_deg, standard_views


def test_projection_names_for_a_prone_patient():
    """AP; the detector towards the patient's left is a left posterior oblique; laterals by the
    detector's side; the tilt named by where the detector leans."""
    assert projection_name(0.0, 0.0) == "AP"
    assert projection_name(35.0, 0.0) == "LPO 35\N{DEGREE SIGN}"
    assert projection_name(-20.0, 10.0) == "RPO 20\N{DEGREE SIGN}, cranial 10\N{DEGREE SIGN}"
    assert projection_name(90.0, -5.0) == "left lateral, caudal 5\N{DEGREE SIGN}"
    assert projection_name(-90.0, 0.0) == "right lateral"


@pytest.mark.parametrize("seed", (1, 3))
@pytest.mark.parametrize("side", ("left", "right"))
def test_lumbar_views_follow_the_patients_anatomy(coarse_anatomy, seed, side):
    """L4-L5, needle on one side: the AP runs the beam along the L5 endplate; the facet view runs
    it in the plane of that side's joint (the joint space opens), with the detector on the
    needle's side; the Scotty dog puts the superior articular process over the body's middle; the
    contralateral oblique is 50 degrees to the other side."""
    anatomy = coarse_anatomy(seed)
    views = standard_views(anatomy, "lumbar_facet", "L4-L5", side)
    sign = 1.0 if side == "left" else -1.0
    ob, tilt = views["AP, endplates squared"]
    assert ob == 0.0 and abs(float(detector_direction(ob, tilt) @ anatomy.endplate_normal("L5"))) < 0.02
    ob, tilt = views["facet view (along the joint)"]
    normal = anatomy.facet_normal("L4-L5", side)
    assert abs(float(detector_direction(ob, tilt) @ normal)) < np.sin(np.radians(1.0))
    assert np.sign(ob) == sign and 20.0 < abs(ob) < 75.0
    ob, tilt = views["ipsilateral oblique (Scotty dog)"]
    assert np.sign(ob) == sign
    body = anatomy.landmark("L5.body_center")
    projection = projection_for(CArmPose(ob, tilt, tuple(body)), 512)
    rows_cols = projection.project(np.stack([body, anatomy.landmark(f"L4-L5.facet_{side}_center")]))
    assert abs(rows_cols[0, 1] - rows_cols[1, 1]) < 2.0  # the same column: the process over the body
    assert views["contralateral oblique 50"][0] == -sign * 50.0


@pytest.mark.parametrize("side", ("left", "right"))
def test_cervical_foraminal_oblique_looks_through_the_foramen(isolated_user_folders, side):
    """C5-C6: along the foraminal oblique the line of sight through the foramen's centre meets less
    bone than 15 degrees either side of it (the foramen at its widest), and the detector is on the
    side away from the foramen."""
    from simulator.anatomy.anatomy import build_anatomy
    from simulator.anatomy.patient import PatientParameters

    # the view is found on the label volume, as the image shows it: a volume as fine as the app's
    anatomy = build_anatomy(PatientParameters(seed=2), voxel_mm=1.5, levels=("C4", "T1"))
    ob, tilt = standard_views(anatomy, "cervical_transforaminal", "C5-C6", side)["foraminal oblique"]
    centre = anatomy.landmark(f"C5-C6.foramen_{side}_center")
    is_bone = tissue_table().is_bone
    t = np.arange(-25.0, 25.0, 0.1)

    def bone_mm(oblique):
        d = detector_direction(oblique, tilt)
        return float(is_bone[anatomy.tissue_at(centre + t[:, None] * d)].sum() * 0.1)

    assert np.sign(ob) == (1.0 if side == "right" else -1.0)
    assert bone_mm(ob) <= min(bone_mm(ob - 15.0), bone_mm(ob + 15.0))


def test_s1_foramen_view_squares_the_sacral_endplate(coarse_anatomy):
    anatomy = coarse_anatomy(1)
    ob, tilt = standard_views(anatomy, "s1_transforaminal", "L5-S1", "right")["S1 foramen"]
    assert tilt == pytest.approx(squaring_tilt_deg(anatomy, "L5-S1")) and ob == -10.0


def test_the_c_arm_console_names_the_pose_for_the_patients_position():
    """The console's LAO/RAO assume a supine patient: for a prone patient the detector over the
    patient's left (a left posterior oblique) reads RAO; for a supine patient the detector over
    the left front reads LAO; in left lateral decubitus the detector straight up is over the
    patient's right side, which the console calls 0 degrees."""
    from simulator.imaging.views import console_name

    deg = "\N{DEGREE SIGN}"
    assert console_name(0.0, 0.0, "prone") == f"0{deg}"
    assert console_name(30.0, 0.0, "prone") == f"RAO 30{deg}"
    assert console_name(-30.0, 12.0, "prone") == f"LAO 30{deg} CRAN 12{deg}"
    assert console_name(150.0, 0.0, "supine") == f"LAO 30{deg}"
    assert console_name(180.0, -10.0, "supine") == f"0{deg} CAUD 10{deg}"
    assert console_name(-90.0, 0.0, "left_lateral_decubitus") == f"0{deg}"
    assert console_name(-90.0, 0.0, "right_lateral_decubitus") == f"LAO 180{deg}"


@pytest.mark.parametrize("side", ("left", "right"))
def test_sij_oblique_opens_the_lower_joint(small_anatomy, side):
    """The SIJ oblique (reference 3.8): a cephalad tilt of at most 25 degrees and an oblique from 10
    ipsilateral to 30 contralateral, along which the line of sight through the lower third of the
    joint meets less than half the bone of the typical pose in that range (the joint opens)."""
    views = standard_views(small_anatomy, "sacroiliac_joint", "L5-S1", side)
    ob, tilt = views["SIJ oblique"]
    contralateral = 1.0 if side == "right" else -1.0  # the detector away from the needle's side
    assert 0.0 <= tilt <= 25.0
    assert -10.0 <= ob * contralateral <= 30.0
    point = small_anatomy.landmark(f"sij_{side}_lower_third")
    t = np.arange(-25.0, 25.0, 0.25)
    is_bone = tissue_table().is_bone

    def bone_mm(pose):
        line = point + t[:, None] * detector_direction(*pose)
        return 0.25 * is_bone[small_anatomy.labels_at(line)].sum()

    typical = np.median([bone_mm((o * contralateral, b)) for o in range(-10, 31, 10) for b in (0, 10, 20)])
    assert bone_mm((ob, tilt)) < 0.5 * typical


def test_marks_project_to_their_pixel_in_every_standard_view(small_anatomy):
    """In every standard view of the lumbar, S1 and SIJ procedures (at the image size the app
    uses, with its interpolated anatomy rays): a small dense ball in the volume and a steel bead
    at a landmark appear at the pixel ``projection.project`` gives, to within half a pixel."""
    from simulator.imaging.fluoroscope import Fluoroscope
    from simulator.imaging.overlay import Overlay

    a = small_anatomy
    poses = {}
    for procedure, interspace, side in (("lumbar_facet", "L4-L5", "right"), ("lumbar_interlaminar", "L5-S1", "left"),
                                        ("sacroiliac_joint", "L5-S1", "right")):
        for name, pose in standard_views(a, procedure, interspace, side).items():
            poses[f"{procedure} {name}"] = pose
    landmark = a.landmark("L4-L5.facet_right_center")
    # a synthetic volume: a 4 mm ball of bone-like attenuation at a point off every central ray
    voxel = float(a.world_from_voxel[0, 0])
    ball_centre = a.landmark("L4.pedicle_left_center")
    index = np.indices(a.labels.shape).reshape(3, -1).T * voxel + a.world_from_voxel[:3, 3]
    mu = (np.linalg.norm(index - ball_centre, axis=1) < 2.0).reshape(a.labels.shape).astype(np.float32) * 0.05
    ball_scope = Fluoroscope(mu, a.world_from_voxel, 512)
    scope = Fluoroscope(np.zeros_like(mu), a.world_from_voxel, 512)
    iso = tuple(float(v) for v in a.landmark("L4-L5.interlaminar_center"))
    for name, (ob, tilt) in poses.items():
        pose = CArmPose(ob, tilt, iso)
        projection, image = ball_scope.anatomy_integrals(pose)
        assert ball_scope.ray_stride(projection) > 1  # the interpolated rays are what is tested
        seen = _weighted_centre(image)
        assert np.linalg.norm(seen - projection.project(ball_centre)) < 0.5, (name, seen)
        direction = detector_direction(ob, tilt)
        bead = Overlay(np.stack([landmark - 0.05 * direction, landmark + 0.05 * direction]), 0.8)
        _, _, steel, _ = scope.material_integrals(pose, [bead], None)
        seen = _weighted_centre(steel)
        assert np.linalg.norm(seen - projection.project(landmark)) < 0.5, (name, seen)


def _weighted_centre(image):
    rows, cols = np.indices(image.shape)
    w = np.clip(image - 0.05 * image.max(), 0.0, None)
    return np.array([(rows * w).sum(), (cols * w).sum()]) / w.sum()


def test_gravity_follows_the_patients_position():
    """Down is anterior for a prone patient, posterior supine, and the lower side in decubitus."""
    from simulator.imaging.views import gravity_direction

    assert np.allclose(gravity_direction("prone"), [0.0, 1.0, 0.0])
    assert np.allclose(gravity_direction("supine"), [0.0, -1.0, 0.0])
    assert np.allclose(gravity_direction("left_lateral_decubitus"), [-1.0, 0.0, 0.0])  # +x is the right
    assert np.allclose(gravity_direction("right_lateral_decubitus"), [1.0, 0.0, 0.0])
