"""Caudal epidural (reference 3.1): the expert's attempt succeeds on seeded patients in both
guidance modes, and scripted mistakes give the outcome and feedback an instructor expects."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.anatomy.anatomy import build_anatomy
from simulator.errors import SpineSimError
from simulator.procedures import caudal
from simulator.protocol import commands as cmd
from simulator.scenario.loader import load_scenario, parse_scenario
from simulator.simulation.reference import run_reference
from simulator.simulation.simulation import Simulation

FLUORO, LANDMARK = "caudal_fluoroscopy", "caudal_landmark"


_ANATOMIES: dict[int, object] = {}


def _anatomy(seed: int):
    """The seeded patient's L5-to-coccyx region at 1.5 mm (built once per seed)."""
    if seed not in _ANATOMIES:
        params = load_scenario(FLUORO).scenario.patient.model_copy(update={"seed": seed}).parameters()
        _ANATOMIES[seed] = build_anatomy(params, voxel_mm=1.5, levels=("L5", "coccyx"))
    return _ANATOMIES[seed]


def _sim(name: str = FLUORO, seed: int = 5) -> Simulation:
    loaded = load_scenario(name)
    if seed != loaded.scenario.patient.seed:
        text = loaded.text.replace(f"seed = {loaded.scenario.patient.seed}", f"seed = {seed}", 1)
        loaded = parse_scenario(text, loaded.source)
    return Simulation(loaded, anatomy=_anatomy(seed), image_size_px=64)


@pytest.mark.parametrize("name", (FLUORO, LANDMARK))
def test_the_expert_caudal_succeeds_with_full_marks(isolated_user_folders, name):
    """On the scenario's patient: the tip ends in the sacral canal between the hiatus and S3, and
    the attempt passes with full technique marks (fluoroscopy: a lateral with the needle in and an
    image of the contrast; landmark: the cornua palpated and an aspiration)."""
    sim = _sim(name)
    run_reference(sim)
    card = sim.scorecard
    assert card.placement.outcome == "success", card.feedback
    assert card.passed and card.parts["technique"] == pytest.approx(20.0), (card.parts, card.feedback)
    assert not caudal.above_zone(sim.anatomy, sim.needle.tip_mm[None])[0]


@pytest.mark.slow
@pytest.mark.parametrize("seed", (1, 2, 3, 4, 6))
def test_the_expert_caudal_succeeds_on_seeded_patients(isolated_user_folders, seed):
    sim = _sim(FLUORO, seed)
    run_reference(sim)
    assert sim.scorecard.placement.outcome == "success", (seed, sim.scorecard.feedback)
    assert sim.scorecard.passed


def _enter_on_the_expert_line(sim: Simulation, extra_mm: float = 0.0, stop_short_mm: float | None = None):
    target = caudal.Caudal().target_point(sim.anatomy, sim.scenario)
    entry, direction = caudal.expert_path(sim.anatomy, target)
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=tuple(float(v) for v in direction)))
    # a drift-free line for the scripted mistakes: aim at the target itself
    total = float(np.linalg.norm(target - entry))
    depth = total + extra_mm if stop_short_mm is None else total - stop_short_mm
    while sim.needle.depth_mm < depth - 0.05:
        events = sim.apply(cmd.Advance(distance_mm=min(2.0, depth - sim.needle.depth_mm)))
        if any(e.kind in ("bone_contacted", "needle_length_exhausted") for e in events):
            break


def test_a_tip_above_s3_is_too_high(isolated_user_folders):
    """Canal fat 8 mm above the upper border of S3 (where a needle flattened and pushed up the canal
    ends) is classified above the target zone, towards the dural sac: not a pass, and the feedback
    names S3."""
    from simulator.scoring.scorecard import score_attempt

    a = _anatomy(5)
    scenario = load_scenario(FLUORO).scenario
    top, up = caudal.zone_top(a)
    high = caudal.canal_fat_near(a, top + 8.0 * up + 3.0 * np.array([0.0, 1.0, 0.0]))
    assert high is not None and caudal.above_zone(a, high[None])[0]
    proc = caudal.Caudal()
    placement = proc.classify(a, high, scenario, dural_puncture=False)
    assert placement.outcome == "too_high"
    card = score_attempt(proc, placement, {"time_s": 100.0}, scenario, 180.0, 4)
    assert not card.passed
    assert any("S3" in line for line in card.feedback), card.feedback


def test_stopping_short_of_the_ligament_is_behind_the_sacrum(isolated_user_folders):
    """Stopping well short of the hiatus leaves the tip behind the sacrum (subcutaneous) or in the
    ligament: too shallow, with feedback that says so."""
    sim = _sim()
    target = caudal.Caudal().target_point(sim.anatomy, sim.scenario)
    entry, _ = caudal.expert_path(sim.anatomy, target)
    _enter_on_the_expert_line(sim, stop_short_mm=float(np.linalg.norm(target - entry)) * 0.6)
    sim.apply(cmd.Finish())
    card = sim.scorecard
    assert card.placement.outcome in ("subcutaneous", "ligament"), card.placement
    assert any("behind the sacrum" in line or "ligament" in line for line in card.feedback), card.feedback


def test_a_steep_needle_stops_on_the_back_of_the_sacrum(isolated_user_folders):
    """Straight down onto the sacrum 20 mm above the hiatus: bone, with the walk-down advice."""
    sim = _sim()
    a = sim.anatomy
    apex = a.landmark("sacrum.hiatus_apex")
    _, up = caudal.zone_top(a)
    over = a.skin_point_behind(apex + 20.0 * up)
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in over), direction=(0.0, 1.0, 0.0)))
    for _ in range(40):
        if any(e.kind == "bone_contacted" for e in sim.apply(cmd.Advance(distance_mm=2.0))):
            break
    sim.apply(cmd.Finish())
    assert sim.scorecard.placement.outcome == "bone"
    assert any("walk down to the hiatus" in line for line in sim.scorecard.feedback)


def test_no_lateral_check_costs_technique_marks(isolated_user_folders):
    """The expert's path without the lateral images: still in the canal, but technique loses the
    lateral confirmation and the feedback says so."""
    sim = _sim()
    _enter_on_the_expert_line(sim)
    sim.apply(cmd.Finish())
    card = sim.scorecard
    assert card.placement.outcome == "success"
    assert any("lateral view" in line for line in card.feedback), card.feedback
    assert card.parts["technique"] <= 15.0


def test_the_target_zone_runs_from_the_hiatus_to_s3(isolated_user_folders):
    """The zone holds the expert's target and canal fat just above the hiatus, and nothing above
    the lower border of S3."""
    a = _anatomy(5)
    scenario = load_scenario(FLUORO).scenario
    proc = caudal.Caudal()
    target = proc.target_point(a, scenario)
    top, up = caudal.zone_top(a)
    points = np.array([target, top + 6.0 * up])
    labels = a.tissue_at(points)
    inside = proc.in_target_zone(a, scenario, labels, points)
    assert inside[0] and not inside[1]


def test_a_caudal_scenario_names_its_level_and_region(isolated_user_folders):
    """A caudal scenario must target the sacral hiatus; a lumbar interspace is refused with a
    one-line error naming target_level."""
    loaded = load_scenario(FLUORO)
    bad = loaded.text.replace('target_level = "sacral_hiatus"', 'target_level = "L4-L5"')
    with pytest.raises(SpineSimError, match="target_level"):
        parse_scenario(bad, loaded.source)
