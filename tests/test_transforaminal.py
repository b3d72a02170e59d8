"""Lumbar transforaminal epidural (reference 3.4, 2.8): the expert's attempt succeeds on seeded
patients; mistakes give the outcome and feedback an instructor expects."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.anatomy.anatomy import build_anatomy
from simulator.errors import SpineSimError
from simulator.procedures import transforaminal
from simulator.protocol import commands as cmd
from simulator.records.attempt_file import AttemptRecord
from simulator.scenario.loader import load_scenario, parse_scenario
from simulator.scoring.scorecard import score_attempt
from simulator.simulation.reference import run_reference
from simulator.simulation.simulation import Simulation

NAME = "lumbar_transforaminal_l4l5_right_fluoroscopy"
_ANATOMIES: dict[int, object] = {}


def _anatomy(seed: int):
    if seed not in _ANATOMIES:
        params = load_scenario(NAME).scenario.patient.model_copy(update={"seed": seed}).parameters()
        _ANATOMIES[seed] = build_anatomy(params, voxel_mm=1.5, levels=("L3", "S1"))
    return _ANATOMIES[seed]


def _loaded(seed: int):
    loaded = load_scenario(NAME)
    if seed != loaded.scenario.patient.seed:
        loaded = parse_scenario(loaded.text.replace(f"seed = {loaded.scenario.patient.seed}", f"seed = {seed}", 1),
                                loaded.source)
    return loaded


def _sim(seed: int = 1) -> Simulation:
    return Simulation(_loaded(seed), anatomy=_anatomy(seed), image_size_px=64)


def test_the_expert_transforaminal_succeeds_with_full_marks(isolated_user_folders):
    """Level on AP, the Scotty dog oblique, in under the pedicle, depth on a lateral, contrast under
    live AP fluoroscopy: success in the right L4-L5 foramen below the pedicle, full marks, and the
    tip below the pedicle and lateral to its medial border."""
    sim = _sim()
    run_reference(sim)
    card = sim.scorecard
    assert card.placement.outcome == "success" and card.passed, card.feedback
    assert card.parts["technique"] == pytest.approx(20.0), card.feedback
    a = sim.anatomy
    pedicle = a.landmark("L4.pedicle_right_center")
    assert sim.needle.tip_mm[2] < pedicle[2] and sim.needle.tip_mm[0] > 0.0
    assert not any(e.kind == "paraesthesia" for e in sim.events)


@pytest.mark.slow
@pytest.mark.parametrize("seed", (2, 3, 4, 5, 6))
def test_the_expert_transforaminal_succeeds_on_seeded_patients(isolated_user_folders, seed):
    sim = _sim(seed)
    run_reference(sim)
    assert sim.scorecard.placement.outcome == "success", (seed, sim.scorecard.feedback)
    assert sim.scorecard.passed


def test_contrast_without_live_imaging_fails_and_says_why(isolated_user_folders):
    """The expert's attempt with the live run taken out (contrast, then a spot image): still in the
    foramen, but a hard fail (reference 3.13, rule 4), technique loses the live-contrast marks and
    the feedback cites the safety rule."""
    expert = _sim()
    run_reference(expert)
    kept = [c for c in expert.commands if c.command.command not in ("fluoroscopy_on", "fluoroscopy_off")]
    sim = Simulation.replay(expert.loaded, AttemptRecord(None, kept), anatomy=expert.anatomy, image_size_px=64)
    card = sim.scorecard
    assert card.placement.outcome == "success" and not card.passed
    assert any("rule 4" in line for line in card.hard_fails)
    assert any("live fluoroscopy" in line for line in card.feedback), card.feedback
    assert card.metrics["live_contrast"] == 0.0
    assert card.parts["technique"] < expert.scorecard.parts["technique"]


def test_aiming_at_the_root_gives_a_paraesthesia_and_an_intraneural_outcome(isolated_user_folders):
    """A needle aimed at the exiting root in the foramen touches it: a paraesthesia, the outcome
    nerve_root, and the advice to aim under the pedicle."""
    sim = _sim()
    a = sim.anatomy
    anchor = transforaminal.foramen_anchor(a, "L4-L5", "right")
    from simulator.imaging.injection import nearest_tissue

    root = nearest_tissue(a, anchor, ("nerve_root",), 12.0)
    assert root is not None
    from simulator.anatomy.tissues import tissue_table

    is_bone = tissue_table().is_bone
    line = None
    for medial in (30.0, 25.0, 35.0, 20.0, 40.0):
        for cranial in (0.0, 5.0, -5.0, 10.0, -10.0):
            m, c = np.radians(medial), np.radians(cranial)
            d = np.array([-np.sin(m) * np.cos(c), np.cos(m) * np.cos(c), np.sin(c)])
            entry = a.skin_entry(root - 200.0 * d, d)
            t = np.arange(0.0, float(np.linalg.norm(root - entry)), 0.1)
            if not is_bone[a.tissue_at(entry + t[:, None] * d)].any():
                line = (entry, d)
                break
        if line:
            break
    assert line is not None, "no oblique line reaches the root clear of bone"
    entry, direction = line
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=tuple(float(v) for v in direction)))
    events = []
    while sim.needle.depth_mm < float(np.linalg.norm(root - entry)) + 1.0:
        step = sim.apply(cmd.Advance(distance_mm=1.0))
        events += step
        if any(e.kind in ("paraesthesia", "bone_contacted") for e in step):
            break
    assert any(e.kind == "paraesthesia" for e in events)
    sim.apply(cmd.Finish())
    assert sim.scorecard.placement.outcome == "nerve_root"
    assert any("safe triangle" in line for line in sim.scorecard.feedback)


def test_placements_medial_to_the_pedicle_or_in_the_disc_are_named(isolated_user_folders):
    """Canal fat medial to the pedicle's border is too medial (near the dural sleeve); the disc is
    intradiscal; both fail with the instructor's sentence."""
    a = _anatomy(1)
    scenario = load_scenario(NAME).scenario
    proc = transforaminal.LumbarTransforaminal()
    from simulator.imaging.injection import nearest_tissue

    pedicle = a.landmark("L4.pedicle_right_center")
    canal = nearest_tissue(a, np.array([pedicle[0] - 9.0, pedicle[1], pedicle[2] - 8.0]), ("epidural_fat",), 6.0)
    assert canal is not None and abs(canal[0]) < abs(pedicle[0]) - 3.0
    for point, outcome, words in ((canal, "too_medial", "medial border"),
                                  (a.landmark("L4-L5.disc_center"), "disc", "disc")):
        placement = proc.classify(a, point, scenario, dural_puncture=False)
        assert placement.outcome == outcome
        card = score_attempt(proc, placement, {"time_s": 100.0}, scenario, 200.0, 6)
        assert not card.passed and any(words in line for line in card.feedback), card.feedback


def test_a_transforaminal_scenario_needs_a_side(isolated_user_folders):
    loaded = load_scenario(NAME)
    with pytest.raises(SpineSimError, match="side"):
        parse_scenario(loaded.text.replace('side = "right"', 'side = "midline"'), loaded.source)


def test_a_prepared_case_finishes_without_searching_the_tissue(isolated_user_folders):
    """What the app does as a case opens (off the GUI thread): ``prepare`` finds every foramen's
    anchor, so the trainee's finish reads the tissue at its own tip only (left to the finish, a
    thoracic case's 22 foramina held the window 0.3 s), and scores the same."""
    name = "thoracic_transforaminal_t7t8_right_fluoroscopy"
    loaded = load_scenario(name)

    def attempt(prepared: bool) -> tuple[list[int], object]:
        sc = loaded.scenario
        anatomy = build_anatomy(sc.patient.parameters(), voxel_mm=3.0, levels=sc.anatomy.levels)
        sim = Simulation(loaded, anatomy=anatomy, image_size_px=32)
        if prepared:
            sim.procedure.prepare(anatomy, sc)
        target = sim.procedure.target_point(anatomy, sc)
        sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in anatomy.skin_point_behind(target)),
                               direction=(0.0, 1.0, 0.0)))
        sim.apply(cmd.Advance(distance_mm=15.0))
        sizes = []
        read = anatomy.tissue_at
        anatomy.tissue_at = lambda points: (sizes.append(int(np.prod(np.shape(points)[:-1]))), read(points))[1]
        sim.apply(cmd.Finish())
        return sizes, sim.scorecard

    unprepared_sizes, unprepared = attempt(False)
    assert sum(unprepared_sizes) > 100  # the searches the finish did itself
    prepared_sizes, prepared = attempt(True)
    assert sum(prepared_sizes) <= 2
    assert prepared.placement == unprepared.placement and prepared.score == unprepared.score
