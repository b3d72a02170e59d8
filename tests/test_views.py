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
