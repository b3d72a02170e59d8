"""Whole attempts, scripted the way a trainee would drive them, and how each one is scored; the
guidance modes; contrast patterns; the attempt record and replay; determinism."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import tomli_w
from spine_helpers import (
    FLUORO_L4L5,
    FLUORO_L5S1,
    LANDMARK_L4L5,
    LANDMARK_L5S1,
    advance_to,
    enter_on_path,
    events_of,
    midline_path,
    needle_to_loss,
    tissues_along,
)

from simulator.errors import CommandRefused
from simulator.imaging.views import squaring_tilt_deg
from simulator.protocol import commands as cmd
from simulator.records.attempt_file import AttemptRecord, read_record, write_record
from simulator.scenario.loader import load_scenario, parse_scenario
from simulator.simulation.reference import run_reference
from simulator.simulation.simulation import Simulation

BONE = {"cortical_bone", "cancellous_bone"}


def outcome(sim):
    return sim.scorecard.placement.outcome


# ------------------------------------------------------------------------------ the expert
@pytest.mark.parametrize("scenario", [FLUORO_L4L5, LANDMARK_L4L5, FLUORO_L5S1, LANDMARK_L5S1])
def test_expert_reference_attempt_succeeds(make_sim, scenario):
    """The expert's attempt ends in the epidural space at the target interspace and passes, in
    both guidance modes and at L4-L5 and L5-S1."""
    sim = make_sim(scenario)
    run_reference(sim)
    card = sim.scorecard
    assert card is not None and sim.finished
    assert card.placement.outcome == "success", card.feedback
    assert card.placement.interspace == sim.scenario.target_level
    assert card.passed
    assert card.score >= sim.scenario.scoring.pass_mark
    assert not events_of(sim.events, "dural_puncture")
    assert not events_of(sim.events, "bone_contacted")
    assert events_of(sim.events, "loss_of_resistance")


def _on_patient(scenario: str, seed: int):
    """The scenario with another seeded patient (as ``--patient-seed`` does)."""
    data = tomllib.loads(load_scenario(scenario).text)
    data["patient"] = {"seed": seed}
    return parse_scenario(tomli_w.dumps(data), f"{scenario} (patient seed {seed})")


@pytest.mark.parametrize("scenario, seed, anatomy_fixture", [
    (FLUORO_L5S1, 1, "small_anatomy"),
    (FLUORO_L4L5, 2, "small_anatomy_l5s1"),
])
def test_expert_reference_attempt_works_on_other_patients(request, scenario, seed, anatomy_fixture):
    """The expert's technique is computed from the patient's own anatomy, so it succeeds on any
    seeded patient (here each scenario on the other scenario's patient)."""
    anatomy = request.getfixturevalue(anatomy_fixture)
    loaded = _on_patient(scenario, seed)
    assert anatomy.patient.seed == seed
    sim = Simulation(loaded, anatomy=anatomy, image_size_px=64)
    run_reference(sim)
    assert outcome(sim) == "success", sim.scorecard.feedback
    assert sim.scorecard.passed


@pytest.mark.parametrize("scenario", ["cervical_interlaminar_c7t1_fluoroscopy", "cervical_interlaminar_c7t1_landmark"])
def test_expert_reference_attempt_at_c7_t1(scenario):
    """Cervical interlaminar at C7-T1 (the scenario's patient has a midline gap in the flavum
    there): the expert, entering just off the midline, reaches the epidural space without a dural
    puncture and passes, in both modes (coarse 3 mm volume; the needle reads exact anatomy)."""
    from simulator.anatomy.anatomy import build_anatomy

    loaded = load_scenario(scenario)
    anatomy = build_anatomy(loaded.scenario.patient.parameters(), voxel_mm=3.0, levels=("C6", "T2"))
    assert anatomy.phantom.morphometry.disc("C7-T1").ligamentum_flavum_gap
    sim = Simulation(loaded, anatomy=anatomy, image_size_px=48)
    run_reference(sim)
    assert outcome(sim) == "success", sim.scorecard.feedback
    assert sim.scorecard.passed
    assert not events_of(sim.events, "dural_puncture")


# ------------------------------------------------------------------------------ scripted outcomes
def test_advancing_past_the_loss_is_intrathecal(make_sim):
    """Going on ~6 mm after the loss of resistance punctures the dura: a dural-puncture event,
    the outcome is intrathecal and the attempt fails with the safety points lost."""
    sim = make_sim()
    needle_to_loss(sim, "L4-L5")
    events = sim.apply(cmd.Advance(distance_mm=6.0))
    assert events_of(events, "dural_puncture")
    assert sim.needle.tip_tissue() in ("csf", "cauda_equina")
    sim.apply(cmd.Finish())
    card = sim.scorecard
    assert outcome(sim) == "intrathecal"
    assert not card.passed
    assert card.parts["safety"] < 20.0


def test_stopping_in_the_ligamentum_flavum_is_ligament(make_sim):
    """Finishing with the tip in the ligamentum flavum (before any loss of resistance) is scored
    'ligament': too shallow, not a pass."""
    sim = make_sim()
    entry, direction, depth = midline_path(sim, "L4-L5")
    path = tissues_along(sim.anatomy.tissue_at, entry, direction, depth + 5.0)
    lf = [i * 0.1 for i, t in enumerate(path) if t == "ligamentum_flavum"]
    enter_on_path(sim, entry, direction)
    advance_to(sim, 0.5 * (lf[0] + lf[-1]))
    assert sim.needle.tip_tissue() == "ligamentum_flavum"
    sim.apply(cmd.Finish())
    assert outcome(sim) == "ligament"
    assert not sim.scorecard.passed


def test_needle_on_the_lamina_is_bone(make_sim):
    """A needle aimed at the L4 lamina and left resting on it is scored 'bone' (with the advice to
    walk off the bone), not 'soft tissue'."""
    sim = make_sim()
    a = sim.anatomy
    point = a.landmark("L4.lamina_right").copy()
    point[0] = 10.0
    enter_on_path(sim, a.skin_point_behind(point), (0, 1, 0))
    for _ in range(30):
        if events_of(sim.apply(cmd.Advance(distance_mm=5.0)), "bone_contacted"):
            break
    assert events_of(sim.events, "bone_contacted")
    sim.apply(cmd.Finish())
    assert outcome(sim) == "bone", (sim.scorecard.placement, sim.scorecard.feedback)
    assert not sim.scorecard.passed


def test_epidural_at_the_wrong_interspace_is_wrong_level(make_sim):
    """A correct epidural placement at L3-L4 in an L4-L5 scenario is 'wrong_level' and fails."""
    sim = make_sim()
    needle_to_loss(sim, "L3-L4")
    assert sim.needle.tip_tissue() == "epidural_fat"
    sim.apply(cmd.Finish())
    card = sim.scorecard
    assert outcome(sim) == "wrong_level"
    assert card.placement.interspace == "L3-L4"
    assert not card.passed
    assert card.parts["placement"] < 60.0


def test_finishing_without_a_needle(make_sim):
    """Finishing before any needle is placed scores no placement and fails."""
    sim = make_sim()
    sim.apply(cmd.Finish())
    assert outcome(sim) == "no_needle"
    assert not sim.scorecard.passed


# ------------------------------------------------------------------------------ guidance modes
@pytest.mark.parametrize("command", [cmd.AcquireImage(), cmd.MoveCArm(oblique_deg=30.0, tilt_deg=0.0),
                                     cmd.SetSpineVisible(visible=True)], ids=lambda c: c.command)
def test_landmark_mode_has_no_imaging(make_sim, command):
    """In landmark mode there is no C-arm and the spine cannot be shown: these commands are
    refused and change nothing."""
    sim = make_sim(LANDMARK_L4L5)
    with pytest.raises(CommandRefused):
        sim.apply(command)
    assert not sim.images and not sim.commands and not sim.spine_visible
    assert sim.carm_pose.oblique_deg == 0.0


def test_fluoroscopy_feedback_on_the_missing_lateral_view(make_sim):
    """Without a lateral (or oblique) image before the needle reached the ligamentum flavum the
    scorecard says depth was not checked on a lateral view, and the technique score is lower than
    the expert's; with one, no such remark."""
    sim = make_sim()
    a = sim.anatomy
    iso = tuple(float(v) for v in a.landmark("L4-L5.interlaminar_center"))
    sim.apply(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=squaring_tilt_deg(a, "L4-L5"), isocentre_mm=iso))
    sim.apply(cmd.AcquireImage())
    needle_to_loss(sim, "L4-L5")
    # a lateral taken only now, after the flavum, does not count
    sim.apply(cmd.MoveCArm(oblique_deg=90.0, tilt_deg=0.0, isocentre_mm=iso))
    sim.apply(cmd.AcquireImage())
    sim.apply(cmd.Finish())
    card = sim.scorecard
    assert outcome(sim) == "success"
    assert any("lateral" in line for line in card.feedback), card.feedback

    expert = make_sim()
    run_reference(expert)
    assert not any("lateral" in line for line in expert.scorecard.feedback), expert.scorecard.feedback
    assert card.parts["technique"] < expert.scorecard.parts["technique"]


# ------------------------------------------------------------------------------ record and replay
def _summary(sim):
    card = sim.scorecard
    return card.placement.outcome, card.score, card.passed, [e.kind for e in sim.events]


def test_record_written_during_the_attempt_replays_to_the_same_result(make_sim, tmp_path):
    """The record the attempt writes as it goes (AttemptWriter) reads back and replays to the same
    outcome, score and sequence of events."""
    path = tmp_path / "attempt.jsonl"
    sim = make_sim(record_path=path)
    run_reference(sim)
    sim.close()
    record = read_record(path)
    assert record.header["scenario"]["id"] == sim.scenario.id
    assert record.header["patient"] == sim.anatomy.patient.as_dict()
    assert len(record.commands) == len(sim.commands)
    replay = Simulation.replay(sim.loaded, record, anatomy=sim.anatomy, image_size_px=96)
    assert _summary(replay) == _summary(sim)


def test_record_round_trip_write_read_replay(make_sim, tmp_path):
    """write_record then read_record gives back the same commands (with their times), and a
    replay of it, or of the bare commands without a header, gives the same result."""
    sim = make_sim(LANDMARK_L4L5)
    run_reference(sim)
    path = tmp_path / "round_trip.jsonl"
    write_record(path, sim.record)
    record = read_record(path)
    assert [c.command for c in record.commands] == [c.command for c in sim.commands]
    assert [c.t_s for c in record.commands] == pytest.approx([c.t_s for c in sim.commands], abs=1e-3)
    replay = Simulation.replay(sim.loaded, record, anatomy=sim.anatomy, image_size_px=96)
    assert _summary(replay) == _summary(sim)
    bare = tmp_path / "bare.jsonl"
    write_record(bare, AttemptRecord(None, record.commands))
    assert read_record(bare).header is None
    replay = Simulation.replay(sim.loaded, read_record(bare), anatomy=sim.anatomy, image_size_px=96)
    assert _summary(replay) == _summary(sim)


def test_same_commands_same_scorecard_and_images(make_sim):
    """Two runs of the same attempt give identical scorecards, events and images."""
    first, second = make_sim(), make_sim()
    run_reference(first)
    run_reference(second)
    assert first.scorecard.as_dict() == second.scorecard.as_dict()
    assert [e.as_dict() for e in first.events] == [e.as_dict() for e in second.events]
    assert len(first.images) == len(second.images) > 0
    for a, b in zip(first.images, second.images):
        assert np.array_equal(a.display, b.display)


# ------------------------------------------------------------------------------ many patients (slow)
@pytest.mark.slow
@pytest.mark.parametrize("scenario", [FLUORO_L4L5, LANDMARK_L4L5, FLUORO_L5S1, LANDMARK_L5S1])
def test_expert_reference_attempt_on_many_patients(scenario):
    """The expert's attempt succeeds on ten seeded patients (coarse 3 mm volumes; the needle reads
    the exact anatomy, so the outcome does not depend on the voxel size)."""
    from simulator.anatomy.anatomy import build_anatomy

    failures = []
    for seed in range(10):
        loaded = _on_patient(scenario, seed)
        anatomy = build_anatomy(loaded.scenario.patient.parameters(), voxel_mm=3.0, levels=("L3", "S1"))
        sim = Simulation(loaded, anatomy=anatomy, image_size_px=48)
        try:
            run_reference(sim)
        except Exception as err:  # noqa: BLE001 - collect every patient's failure
            failures.append(f"seed {seed}: {err.__class__.__name__}: {err}")
            continue
        if outcome(sim) != "success" or not sim.scorecard.passed:
            failures.append(f"seed {seed}: {outcome(sim)}, score {sim.scorecard.score:.0f}")
    assert not failures, "; ".join(failures)
