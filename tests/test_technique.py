"""Standard-view compliance (reference 6.3), the trainee's reading of the contrast (6.4) and Perk
Tutor's path and time: each judged from what the trainee did, so a lapse costs marks and names
itself in the feedback while the expert's attempt keeps them all."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import CommandRefused
from simulator.protocol import commands as cmd
from simulator.protocol.events import Event
from simulator.records.attempt_file import AttemptRecord, TimedCommand
from simulator.scoring.metrics import TimeInside, TotalPath
from simulator.simulation.reference import run_reference
from simulator.simulation.simulation import Simulation


def _expert(make_sim, name: str | None = None) -> Simulation:
    sim = make_sim(name) if name else make_sim()
    run_reference(sim)
    return sim


def _replay(sim: Simulation, change) -> Simulation:
    """The attempt's commands, each passed through ``change(index, command)`` (None drops it),
    replayed on the same anatomy."""
    kept = []
    for i, timed in enumerate(sim.commands):
        new = change(i, timed.command)
        if new is not None:
            kept.append(TimedCommand(timed.t_s, new))
    return Simulation.replay(sim.loaded, AttemptRecord(None, kept), anatomy=sim.anatomy, image_size_px=48)


def _first_index(sim: Simulation, name: str) -> int:
    return next(i for i, t in enumerate(sim.commands) if t.command.command == name)


def test_the_expert_keeps_every_standard_view_mark(make_sim):
    card = _expert(make_sim).scorecard
    m = card.metrics
    assert m["endplates_squared"] == 1.0 and m["endplate_tilt_error_deg"] < 1.0
    assert m["coaxial_view"] == 1.0 and m["needle_beam_min_deg"] <= 10.0
    assert m["depth_checked_before_lf"] == 1.0 and m["contrast_pattern_read"] == 1.0
    assert card.parts["technique"] == pytest.approx(20.0), card.feedback


def test_an_ap_with_the_endplates_not_squared_costs_marks_and_says_by_how_much(make_sim):
    """The expert's attempt with its first AP tilted 10 degrees off the squared endplates: the
    level was still seen on AP, but not squared; the feedback gives the error."""
    expert = _expert(make_sim)
    first = _first_index(expert, "move_carm")

    def tilted(i, c):
        return c.model_copy(update={"tilt_deg": c.tilt_deg + 10.0}) if i == first else c

    card = _replay(expert, tilted).scorecard
    assert card.metrics["level_confirmed_on_ap"] == 1.0
    assert card.metrics["endplates_squared"] == 0.0
    assert card.metrics["endplate_tilt_error_deg"] == pytest.approx(10.0, abs=0.01)
    assert card.parts["technique"] < expert.scorecard.parts["technique"]
    assert any("not squared" in line and "10" in line for line in card.feedback), card.feedback


def test_no_image_down_the_needle_costs_the_coaxial_mark(make_sim):
    """Without the trajectory image (the C-arm turned down the needle) the needle was only seen
    from the side: the nearest image is far off its axis and the feedback says so."""
    expert = _expert(make_sim)
    images = [i for i, t in enumerate(expert.commands) if t.command.command == "acquire_image"]
    events = [e for e in expert.events if e.kind == "image_acquired"]
    coaxial = next(i for i, e in zip(images, events) if e.data["needle_beam_deg"] is not None
                   and e.data["needle_beam_deg"] <= 10.0)
    card = _replay(expert, lambda i, c: None if i in (coaxial - 1, coaxial) else c).scorecard
    assert card.metrics["coaxial_view"] == 0.0 and card.metrics["needle_beam_min_deg"] > 10.0
    assert any("down the beam" in line for line in card.feedback), card.feedback
    assert card.placement.outcome == "success"


@pytest.mark.parametrize("oblique_deg, counts", [(50.0, True), (-50.0, True), (30.0, False), (90.0, True)])
def test_depth_is_checked_on_a_lateral_or_a_contralateral_oblique_of_the_right_angle(make_sim, oblique_deg, counts):
    """The interlaminar depth check: a true lateral or a CLO of 45-60 degrees (a midline needle:
    either side is contralateral); a 30 degree oblique does not show the ventral interlaminar
    line."""
    expert = _expert(make_sim)
    lateral = next(i for i, t in enumerate(expert.commands)
                   if t.command.command == "move_carm" and abs(t.command.oblique_deg) == 90.0)

    def swapped(i, c):
        return c.model_copy(update={"oblique_deg": oblique_deg}) if i == lateral else c

    card = _replay(expert, swapped).scorecard
    assert card.metrics["depth_checked_before_lf"] == (1.0 if counts else 0.0)
    assert any("contralateral oblique" in line for line in card.feedback) != counts, card.feedback


def test_the_contrast_pattern_must_be_read_correctly(make_sim):
    """The expert's reading replaced by a wrong one, or left out: the mark is lost and the
    feedback asks for a reading; a report with no contrast yet is refused."""
    expert = _expert(make_sim)
    report = _first_index(expert, "report_pattern")
    truth = expert.commands[report].command.pattern
    wrong = "intrathecal" if truth != "intrathecal" else "epidural"
    for change in (lambda i, c: c.model_copy(update={"pattern": wrong}) if i == report else c,
                   lambda i, c: None if i == report else c):
        card = _replay(expert, change).scorecard
        assert card.metrics["contrast_pattern_read"] == 0.0
        assert any("pattern was not read" in line for line in card.feedback), card.feedback
    sim = make_sim()
    with pytest.raises(CommandRefused, match="no contrast"):
        sim.apply(cmd.ReportPattern(pattern="epidural"))


def test_a_reading_is_checked_against_what_the_contrast_did(make_sim):
    """Contrast given in the paraspinal muscle reads as soft tissue, not epidural."""
    sim = make_sim()
    a = sim.anatomy
    tip = a.landmark("L4-L5.interlaminar_center")
    entry = a.skin_point_behind(tip) + np.array([25.0, 0.0, 0.0])  # off the midline, over the muscle
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry)))
    sim.apply(cmd.Advance(distance_mm=15.0))
    assert sim.needle.tip_tissue() == "muscle"
    sim.apply(cmd.InjectContrast(volume_ml=0.5))
    wrong = sim.apply(cmd.ReportPattern(pattern="epidural"))[-1]
    right = sim.apply(cmd.ReportPattern(pattern="soft_tissue"))[-1]
    assert (wrong.data["correct"], right.data["correct"]) == (False, True)
    assert right.data["truth"] == "soft_tissue"


def _event(kind, t_s, **data):
    return Event(kind, t_s, data)


def test_total_path_and_time_inside_follow_perk_tutors_definitions():
    """Two passes: 10 mm in and out, a new entry 20 mm away, 5 mm in. Path in all 45 mm (10 + 10
    inside, 20 between entries, 5), time inside from each first advance to the tip leaving the
    skin, and to the end for the pass still in."""
    events = [
        _event("entry_set", 0.0, entry_mm=[0.0, 0.0, 0.0]),
        _event("needle_advanced", 1.0, depth_mm=10.0, moved_mm=10.0, tip_mm=[0.0, 10.0, 0.0]),
        _event("needle_withdrawn", 4.0, depth_mm=0.0, moved_mm=-10.0, tip_mm=[0.0, 0.0, 0.0]),
        _event("entry_set", 10.0, entry_mm=[20.0, 0.0, 0.0]),
        _event("needle_advanced", 12.0, depth_mm=5.0, moved_mm=5.0, tip_mm=[20.0, 5.0, 0.0]),
        _event("attempt_finished", 20.0),
    ]
    path, inside = TotalPath(), TimeInside()
    for e in events:
        path.update(e)
        inside.update(e)
    assert path.value() == pytest.approx(45.0)
    assert inside.value() == pytest.approx((4.0 - 1.0) + (20.0 - 12.0))


def test_an_attempt_reports_total_path_and_time_inside(make_sim):
    card = _expert(make_sim).scorecard
    m = card.metrics
    assert m["path_total_mm"] >= m["path_in_tissue_mm"] > 0.0
    assert 0.0 < m["time_inside_s"] <= m["time_s"]
