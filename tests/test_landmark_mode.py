"""What the hands find without images (palpation), and the recorded use of the 3D see-through view."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import CommandRefused
from simulator.protocol import commands as cmd

from spine_helpers import FLUORO_L4L5, LANDMARK_L4L5


def _palpate_behind(sim, landmark: str):
    anatomy = sim.anatomy
    return _palpate_at(sim, anatomy.skin_point_behind(anatomy.landmark(landmark)))


def _palpate_at(sim, skin):
    events = sim.apply(cmd.Palpate(point_mm=tuple(float(v) for v in skin)))
    return [e for e in events if e.kind == "palpated"][0].data


def test_palpation_finds_spinous_processes_and_iliac_crests(make_sim):
    """Pressing over a spinous tip finds a spinous process; on the flank over a crest top (where the
    hands rest to find Tuffier's line), the iliac crest; both at a depth no deeper than the soft
    tissue over them allows."""
    sim = make_sim(LANDMARK_L4L5)
    spinous = _palpate_behind(sim, "L4.spinous_tip")
    assert spinous["finding"] == "spinous process"
    # the skin over the tip carries skin, fat, fascia and the ligament: a few mm to a couple of cm
    assert 3.0 < spinous["depth_mm"] < 25.0
    for side in ("left", "right"):
        crest = _palpate_at(sim, sim.anatomy.skin_point_nearest(sim.anatomy.landmark(f"iliac_crest_{side}_top")))
        assert crest["finding"] == "iliac crest"
        assert crest["depth_mm"] < 40.0
        assert (crest["point_mm"][0] > 0) == (side == "right")
    # palpation is part of the landmark technique the score reads
    assert sim.metrics()["palpations"] == 3


def test_palpation_between_spinous_processes_finds_no_bone_nearby(make_sim):
    """Between two spinous tips, in the midline, the finger sinks into the interspinous gap: any
    bone it meets is deeper than the tips."""
    sim = make_sim(LANDMARK_L4L5)
    anatomy = sim.anatomy
    tip_depth = _palpate_behind(sim, "L4.spinous_tip")["depth_mm"]
    gap = 0.5 * (anatomy.landmark("L4.spinous_tip") + anatomy.landmark("L5.spinous_tip"))
    skin = anatomy.skin_point_behind(gap)
    data = [e for e in sim.apply(cmd.Palpate(point_mm=tuple(float(v) for v in skin)))
            if e.kind == "palpated"][0].data
    assert data["depth_mm"] is None or data["depth_mm"] > tip_depth + 3.0


@pytest.mark.parametrize("bmi", (20.0, 38.0))
def test_deeper_soft_tissue_makes_landmarks_harder_to_feel(coarse_anatomy, bmi):
    """The same patient's spinous process lies deeper under the skin with a higher BMI, and is
    felt only vaguely or not at all when it lies deep."""
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.simulation import Simulation

    anatomy = coarse_anatomy(7, bmi_kg_m2=bmi)
    sim = Simulation(load_scenario(LANDMARK_L4L5), anatomy=anatomy, image_size_px=64)
    skin = anatomy.skin_point_behind(anatomy.landmark("L4.spinous_tip"))
    finding = sim.palpate(skin)
    if bmi < 25:
        assert finding.finding == "spinous process" and finding.clearly
    else:
        lean = coarse_anatomy(7, bmi_kg_m2=20.0)
        lean_depth = Simulation(load_scenario(LANDMARK_L4L5), anatomy=lean, image_size_px=64).palpate(
            lean.skin_point_behind(lean.landmark("L4.spinous_tip"))).depth_mm
        assert finding.depth_mm is None or finding.depth_mm > lean_depth + 8.0
        assert not finding.clearly


def test_palpation_off_the_patient_is_refused(make_sim):
    sim = make_sim(LANDMARK_L4L5)
    with pytest.raises(CommandRefused):
        sim.apply(cmd.Palpate(point_mm=(0.0, -400.0, 0.0)))
    assert sim.palpations == []


def test_spine_view_toggle_is_recorded_where_allowed(make_sim):
    """Fluoroscopy scenario allows the see-through view: each use is an event, counted in the
    metrics and kept in the attempt record."""
    sim = make_sim(FLUORO_L4L5)
    sim.apply(cmd.SetSpineVisible(visible=True))
    sim.apply(cmd.SetSpineVisible(visible=False))
    assert sim.metrics()["spine_view_toggles"] == 2
    assert [c.command.command for c in sim.record.commands] == ["set_spine_visible", "set_spine_visible"]
    sim.apply(cmd.Finish())
    assert sim.scorecard.metrics["spine_view_toggles"] == 2


def test_syringe_scatter_is_seeded_not_random(make_sim):
    """Two attempts with the same commands read the same syringe pressures (replayable)."""
    readings = []
    for _ in range(2):
        sim = make_sim(LANDMARK_L4L5)
        anatomy = sim.anatomy
        entry = anatomy.skin_point_behind(anatomy.landmark("L4-L5.interlaminar_center"))
        sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry)))
        for _ in range(3):
            sim.apply(cmd.Advance(distance_mm=4.0))
            sim.apply(cmd.TestLossOfResistance(medium="saline"))
        readings.append([p for _, p in sim.lor_trace])
    assert readings[0] == readings[1]
    assert len(set(readings[0])) > 1
    assert np.all(np.isfinite(readings[0]))
