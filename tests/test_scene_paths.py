"""The needle path drawn in the debrief and the replay window."""

import numpy as np
import pytest

from simulator.scene.scene import path_tube


def test_a_path_of_one_repeated_point_draws_nothing_and_a_real_path_a_tube():
    entry = np.array([0.0, -60.0, 40.0])
    # an entry, then a turn at the skin: the tip's point twice (pyvista refuses the empty tube)
    assert path_tube([entry, entry]) is None
    assert path_tube([entry]) is None
    tube = path_tube([entry, entry, entry + [0.0, 20.0, 2.0]])
    assert tube is not None and tube.n_points > 0
    assert np.allclose(tube.bounds[2:4], (-60.0, -40.0), atol=0.2)  # from the entry to the tip
    assert np.allclose(tube.bounds[0:2], (-0.7, 0.7), atol=0.05)  # 0.7 mm round it


def test_a_surface_s_winding_is_told_from_its_shape():
    import pyvista as pv

    from simulator.scene.scene import faces_outward

    sphere = pv.Sphere(radius=50.0, center=(10.0, -20.0, 300.0))
    assert faces_outward(sphere)
    turned = pv.PolyData.from_regular_faces(sphere.points, np.asarray(sphere.triangulate().regular_faces)[:, ::-1])
    assert not faces_outward(turned)


@pytest.fixture(scope="module")
def scene(small_anatomy):
    import pyvista as pv

    from simulator.scenario.loader import load_scenario
    from simulator.scene.scene import SpineScene
    from simulator.simulation.simulation import Simulation
    from spine_helpers import FLUORO_L4L5

    sim = Simulation(load_scenario(FLUORO_L4L5), anatomy=small_anatomy, image_size_px=48)
    plotter = pv.Plotter(off_screen=True, window_size=(320, 320))
    yield SpineScene(plotter, sim)
    plotter.close()


def _frame(scene):
    scene.plotter.render()
    return scene.plotter.screenshot(return_img=True).astype(int)


def test_the_spine_shown_through_the_skin_lies_under_its_near_side(scene):
    """V: the spine shows through the skin, tinted by the skin between it and the eye (culling the
    skin's far side must not cull the near one, whichever way its triangles are wound)."""
    scene.set_layer_visible("carm", False)  # the detector stands over the back, in the way
    scene.set_spine_visible(True)
    target = scene.sim.anatomy.landmark("L4-L5.interlaminar_center")
    scene.plotter.camera_position = [tuple(target - [0.0, 500.0, 0.0]), tuple(target), (0.0, 0.0, 1.0)]  # from behind
    through_skin = _frame(scene)
    scene._skin_actor.SetVisibility(False)
    bare = _frame(scene)
    scene.set_spine_visible(False)
    scene._skin_actor.SetVisibility(False)
    empty = _frame(scene)
    scene._skin_actor.SetVisibility(True)
    scene.set_layer_visible("carm", True)
    spine = np.abs(bare - empty).sum(axis=2) > 30  # where the spine is in the picture
    assert spine.mean() > 0.02
    # the skin is drawn over the spine (its near side), not only behind it
    assert np.abs(through_skin - bare).sum(axis=2)[spine].mean() > 15


def test_the_3d_c_arm_stands_where_the_x_rays_come_from(scene):
    from simulator.imaging.carm import SOURCE_TO_DETECTOR_MM, projection_for
    from simulator.protocol import commands as cmd

    sim = scene.sim
    for oblique_deg, tilt_deg in ((0.0, 0.0), (35.0, 10.0), (-90.0, 0.0)):
        sim.apply(cmd.MoveCArm(oblique_deg=oblique_deg, tilt_deg=tilt_deg))
        scene.update_carm()
        proj = projection_for(sim.carm_pose, 16)
        detector = scene.plotter.actors["carm_detector"]
        centre = np.asarray(detector.GetCenter())
        want = np.asarray(proj.source_mm) + np.asarray(proj.detector_normal) * (SOURCE_TO_DETECTOR_MM - 40.0)
        assert np.linalg.norm(centre - want) < 1.0
