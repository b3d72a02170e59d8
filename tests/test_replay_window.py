"""The replay window under a virtual display: an expert attempt played back on its patient, with
the 3D view, the X-ray monitor and the metric timeline in step, and play / pause / seek."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("pyvistaqt")

from simulator.protocol import commands as cmd  # noqa: E402
from simulator.records.attempt_file import AttemptRecord, TimedCommand  # noqa: E402
from simulator.scenario.loader import load_scenario  # noqa: E402
from spine_helpers import FLUORO_L4L5  # noqa: E402

pytestmark = pytest.mark.gui

IMAGE_PX = 96


@pytest.fixture(scope="module")
def expert(small_anatomy):
    """The expert's attempt on the small L4-L5 patient (96 px images), finished."""
    from simulator.simulation.reference import run_reference
    from simulator.simulation.simulation import Simulation

    loaded = load_scenario(FLUORO_L4L5)
    sim = Simulation(loaded, anatomy=small_anatomy, image_size_px=IMAGE_PX)
    run_reference(sim)
    assert sim.finished and len(sim.images) >= 2
    return sim


@pytest.fixture
def open_window(qtbot, small_anatomy):
    from simulator.app.replay_window import open_replay

    def factory(record, loaded=None, **kwargs):
        window = open_replay(loaded, record, anatomy=small_anatomy, image_size_px=IMAGE_PX, **kwargs)
        qtbot.addWidget(window)
        qtbot.waitExposed(window)
        return window

    return factory


def test_seeking_shows_the_attempt_at_every_step(open_window, expert):
    window = open_window(expert.record, expert.loaded, trainee="Dr Test")
    timeline = window.timeline
    # one step per command, and the start
    assert window.slider.minimum() == 0 and window.slider.maximum() == len(expert.record.commands)
    assert len(timeline.steps) == len(expert.commands) + 1
    assert "Dr Test" in window.header_label.text() and "scoring version" in window.header_label.text()
    assert not window.version_warning.isVisible()
    # at the start: no needle, no image
    assert window.step == 0 and window.shown_tip_mm() is None and window.monitor.image is None
    # the end: the attempt's final needle tip and its last image on the monitor
    window.seek(window.slider.maximum())
    assert window.slider.value() == window.last_step
    assert np.allclose(window.shown_tip_mm(), expert.needle.tip_mm, atol=0.01)
    needle_bounds = np.asarray(window.plotter.actors["needle"].GetBounds()).reshape(3, 2)
    assert np.all(needle_bounds[:, 0] - 1.0 <= expert.needle.tip_mm)
    assert np.all(expert.needle.tip_mm <= needle_bounds[:, 1] + 1.0)
    assert np.array_equal(window.monitor.image, expert.images[-1].display)
    assert "Score" in window.metrics_label.text()
    assert window.sim.scorecard.score == expert.scorecard.score
    # back to just before the first image: nothing on the monitor
    first_image = next(s.index for s in timeline.steps if s.frame is not None)
    assert timeline.steps[first_image].command == "acquire_image"
    window.seek(first_image - 1)
    assert window.monitor.image is None
    window.seek(first_image)
    assert np.array_equal(window.monitor.image, expert.images[0].display)
    # the timeline's cursor follows the seek
    window.seek(5)
    x5, t5 = window.timeline_widget.cursor_x(), window.timeline_widget.cursor_time_s
    assert t5 == timeline.steps[5].t_s == expert.commands[4].t_s
    window.seek(30)
    assert window.timeline_widget.cursor_time_s == timeline.steps[30].t_s
    assert window.timeline_widget.cursor_x() > x5
    # stepping and clicking on the timeline seek too
    window.step_back()
    assert window.step == 29
    window.step_forward()
    assert window.step == 30
    window.seek_time(timeline.steps[12].t_s + 0.01)
    assert window.step == 12
    window.slider.setValue(7)  # dragging the slider
    assert window.step == 7 and window.timeline_widget.cursor_time_s == timeline.steps[7].t_s
    # the 3D view is a real picture, with the needle's path so far
    assert "needle_path" in window.plotter.actors
    assert window.plotter.screenshot(return_img=True).std() > 10


def test_play_advances_over_time_and_pauses(open_window, expert, qtbot):
    window = open_window(expert.record, expert.loaded)
    window.set_speed(4.0)
    assert window.speed.currentText() == "4x"
    window.play_button.click()
    assert window.playing
    qtbot.waitUntil(lambda: window.step >= 3, timeout=15_000)
    assert window.timeline_widget.cursor_time_s > 0.0
    window.play_button.click()
    assert not window.playing
    held = window.step
    qtbot.wait(300)
    assert window.step == held
    # played to the end, it stops there; playing again starts over
    window.seek(window.last_step - 1)
    window.play()
    qtbot.waitUntil(lambda: not window.playing, timeout=15_000)
    assert window.step == window.last_step
    window.play()
    assert window.step == 0 and window.playing
    window.pause()
    # the revealed anatomy's target zone arrives from a worker thread while the replay plays
    qtbot.waitUntil(lambda: window.target_zone_shown, timeout=30_000)
    assert window.plotter.actors["target_zone"].GetMapper().GetInput().GetNumberOfPoints() > 0
    # the levels of the attempt are shown, the spine far from them only when asked for
    structures = window.scene._structure_actors
    assert structures["L4"].GetVisibility() and structures["L5"].GetVisibility()
    assert not structures["L1"].GetVisibility()
    window.whole_spine.setChecked(True)
    assert structures["L1"].GetVisibility() and structures["L4"].GetVisibility()


def test_a_record_from_another_generator_is_flagged(open_window, expert):
    record = copy.deepcopy(expert.record)
    record.header["generator_version"] = "spine-0"
    # the scenario comes from the record's header
    window = open_window(record)
    assert window.sim.scenario.id == expert.scenario.id
    assert window.version_warning.isVisible()
    text = window.version_warning.text()
    assert "spine-0" in text and expert.anatomy.patient.generator_version in text
    assert "may differ" in text


def test_fluoroscopy_runs_and_refused_commands(open_window, expert, small_anatomy):
    """A live run shows its frames and then its last-image hold; a refused command is a step that
    changes nothing."""
    from simulator.procedures.lumbar_interlaminar import clear_path_entry
    from simulator.simulation.simulation import Simulation

    target = small_anatomy.landmark("L4-L5.epidural_target")
    entry, direction = clear_path_entry(small_anatomy, target, 0.0)
    sim = Simulation(expert.loaded, anatomy=small_anatomy, image_size_px=IMAGE_PX)
    sim.apply(cmd.SetEntry(point_mm=tuple(map(float, entry)), direction=tuple(map(float, direction))), 4.0)
    sim.apply(cmd.Advance(distance_mm=10.0), 6.0)
    sim.apply(cmd.FluoroscopyOn(pulse_rate_pps=15.0), 8.0)
    sim.apply(cmd.Advance(distance_mm=3.0), 9.0)
    sim.apply(cmd.FluoroscopyOff(), 10.0)
    commands = list(sim.commands)
    # a refused command (no syringe to take off) in the middle
    commands.insert(2, TimedCommand(7.0, cmd.DetachSyringe()))
    window = open_window(AttemptRecord(sim.header, commands), expert.loaded)
    assert window.slider.maximum() == len(commands) == 6
    refused = window.timeline.steps[3]
    assert refused.refused and refused.needle is window.timeline.steps[2].needle
    window.seek(3)
    assert "nothing changed" in window.metrics_label.text()
    window.seek(4)  # the pedal down
    assert "LIVE" in window.monitor._caption
    window.seek(6)  # the pedal up: the last frame held
    assert "LIH" in window.monitor._caption
    assert np.array_equal(window.monitor.image, sim.last_image_hold.display)
    assert window.timeline_widget.spans == [(8.0, 10.0)]
    window.seek(1)
    assert window.monitor.image is None
