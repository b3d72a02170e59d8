"""The needle path drawn in the debrief and the replay window."""

import numpy as np

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
