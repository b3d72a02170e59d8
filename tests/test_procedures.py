"""The joint, medial branch and foraminal procedures (reference 3.5-3.11): the expert's attempt
succeeds on seeded patients with full technique marks; the mistakes an instructor looks for give
their outcome and sentence; the safety rules of reference 3.13 fail an attempt whatever its
score."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.anatomy.anatomy import build_anatomy
from simulator.anatomy.tissues import tissue_table
from simulator.geometry import frames
from simulator.procedures.registry import procedure_for
from simulator.protocol import commands as cmd
from simulator.records.attempt_file import AttemptRecord
from simulator.scenario.loader import load_scenario, parse_scenario
from simulator.scoring.scorecard import score_attempt
from simulator.simulation.reference import run_reference
from simulator.simulation.simulation import Simulation

#: The shipped fluoroscopy scenario of every procedure this module covers.
SCENARIOS = {
    "lumbar_facet": "lumbar_facet_l4l5_right_fluoroscopy",
    "cervical_facet": "cervical_facet_c5c6_right_fluoroscopy",
    "sacroiliac_joint": "sacroiliac_joint_right_fluoroscopy",
    "lumbar_medial_branch": "lumbar_medial_branch_l3_right_fluoroscopy",
    "l5_dorsal_ramus": "lumbar_medial_branch_l5_dorsal_ramus_left_fluoroscopy",
    "cervical_medial_branch": "cervical_medial_branch_c5_right_fluoroscopy",
    "third_occipital_nerve": "third_occipital_nerve_left_fluoroscopy",
    "c8_medial_branch": "cervical_medial_branch_c8_left_fluoroscopy",
    "s1_transforaminal": "s1_transforaminal_right_fluoroscopy",
    "cervical_transforaminal": "cervical_transforaminal_c6c7_right_fluoroscopy",
    "thoracic_transforaminal": "thoracic_transforaminal_t7t8_right_fluoroscopy",
}
_ANATOMIES: dict[tuple[str, int], object] = {}


def _loaded(name: str, seed: int | None = None):
    loaded = load_scenario(name)
    if seed is not None and seed != loaded.scenario.patient.seed:
        loaded = parse_scenario(loaded.text.replace(f"seed = {loaded.scenario.patient.seed}", f"seed = {seed}", 1),
                                loaded.source)
    return loaded


def _sim(name: str, seed: int | None = None) -> Simulation:
    loaded = _loaded(name, seed)
    sc = loaded.scenario
    key = (",".join(sc.anatomy.levels), sc.patient.seed)
    if key not in _ANATOMIES:
        # the scenario's region at 1.5 mm (the needle sees exact anatomy at any voxel size)
        _ANATOMIES[key] = build_anatomy(sc.patient.parameters(), voxel_mm=1.5, levels=sc.anatomy.levels)
    return Simulation(loaded, anatomy=_ANATOMIES[key], image_size_px=48)


@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_the_expert_succeeds_with_full_marks(isolated_user_folders, case):
    """The expert's attempt on the scenario's own patient: in the target zone, passed, every
    technique mark (standard views, contrast, drugs within the limit), no hard fail."""
    sim = _sim(SCENARIOS[case])
    run_reference(sim)
    card = sim.scorecard
    assert card.placement.outcome == "success" and card.passed, (case, card.feedback)
    assert card.parts["technique"] == pytest.approx(20.0), (case, card.feedback)
    assert card.parts["safety"] == pytest.approx(20.0), (case, card.feedback)
    assert not card.hard_fails
    assert 0.0 < card.metrics["injectate_ml"] <= sim.procedure.injectate_limit_ml
    # the zone drawn at the debrief holds the final tip, or the bone it rests on
    tip = np.asarray(card.placement.tip_mm)
    around = tip + np.array(list(itertools.product((-0.6, 0.0, 0.6), repeat=3)))
    labels = sim.anatomy.tissue_at(around)
    assert sim.procedure.in_target_zone(sim.anatomy, sim.scenario, labels, around).any(), case


@pytest.mark.slow
@pytest.mark.parametrize("seed", (2, 3, 4, 5, 6))
@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_the_expert_succeeds_on_seeded_patients(isolated_user_folders, case, seed):
    sim = _sim(SCENARIOS[case], seed)
    run_reference(sim)
    assert sim.scorecard.placement.outcome == "success", (case, seed, sim.scorecard.feedback)
    assert sim.scorecard.passed, (case, seed, sim.scorecard.feedback)


def _classified(name: str, point, tissue_id=None):
    sim = _sim(name)
    proc, sc = sim.procedure, sim.scenario
    placement = proc.classify(sim.anatomy, point, sc, dural_puncture=False, tip_tissue_id=tissue_id)
    card = score_attempt(proc, placement, {"time_s": 100.0}, sc, sc.scoring.expert_time_s, sc.scoring.expert_images)
    return placement, card


def _near(name: str, tissues: tuple[str, ...], reach_mm: float = 25.0):
    """The point nearest the target that lies inside one of ``tissues`` (by the exact anatomy the
    needle sees), with 0.5 mm of it all round."""
    sim = _sim(name)
    anatomy, centre = sim.anatomy, sim.procedure.target_point(sim.anatomy, sim.scenario)
    wanted = [tissue_table().id(t) for t in tissues]
    axis = np.arange(-reach_mm, reach_mm + 0.01, 1.0)
    grid = centre + np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    grid = grid[np.argsort(np.linalg.norm(grid - centre, axis=1))]
    inside = grid[np.isin(anatomy.tissue_at(grid), wanted)]
    around = np.vstack([np.eye(3), -np.eye(3)]) * 0.5
    for point in inside[:400]:
        if np.isin(anatomy.tissue_at(point + around), wanted).all():
            return point
    return None


@pytest.mark.parametrize("case, other_level", [
    ("lumbar_facet", "L3-L4"), ("cervical_facet", "C4-C5"), ("lumbar_medial_branch", "L2"),
    ("cervical_medial_branch", "C4"), ("thoracic_transforaminal", "T6-T7"), ("cervical_transforaminal", "C5-C6"),
])
def test_the_same_target_one_level_off_is_the_wrong_level(isolated_user_folders, case, other_level):
    name = SCENARIOS[case]
    sim = _sim(name)
    point = sim.procedure.cached_anchor(sim.anatomy, other_level, sim.scenario.side)
    tissue = sim.anatomy.tissue_at(point[None])[0]
    if not tissue_table().is_bone[tissue] and sim.procedure.zone_tissues == ("bone",):
        tissue = tissue_table().id("cortical_bone")  # the tip resting on that level's bone
    placement, card = _classified(name, point, int(tissue))
    assert placement.outcome == "wrong_level", (case, placement)
    assert not card.passed and any(f"not {sim.scenario.target_level}" in line for line in card.feedback), card.feedback


@pytest.mark.parametrize("case", ["lumbar_facet", "sacroiliac_joint", "s1_transforaminal", "lumbar_medial_branch"])
def test_the_mirror_image_target_is_the_wrong_side(isolated_user_folders, case):
    name = SCENARIOS[case]
    sim = _sim(name)
    other = "left" if sim.scenario.side == "right" else "right"
    point = sim.procedure.cached_anchor(sim.anatomy, sim.scenario.target_level, other)
    tissue = sim.anatomy.tissue_at(point[None])[0]
    if sim.procedure.zone_tissues == ("bone",):
        tissue = tissue_table().id("cortical_bone")
    placement, card = _classified(name, point, int(tissue))
    assert placement.outcome == "wrong_side"
    assert any("wrong side" in line or "other" in line for line in card.feedback), card.feedback


@pytest.mark.parametrize("case, tissues, outcome, words", [
    ("cervical_transforaminal", ("vertebral_artery",), "vertebral_artery", "vertebral artery"),
    ("cervical_transforaminal", ("dura", "csf"), "intrathecal", "dura"),
    ("thoracic_transforaminal", ("pleura", "lung"), "pleura", "pneumothorax"),
    ("thoracic_transforaminal", ("disc_annulus", "disc_nucleus"), "disc", "disc"),
    ("s1_transforaminal", ("nerve_root",), "nerve_root", "root"),
    ("lumbar_facet", ("nerve_root",), "nerve_root", "root"),
    ("lumbar_medial_branch", ("epidural_fat",), "epidural", "foramen"),
])
def test_danger_zones_give_their_outcome_and_consequence(isolated_user_folders, case, tissues, outcome, words):
    """A tip in a danger structure near the target: the outcome names it and the feedback says
    what it risks."""
    name = SCENARIOS[case]
    point = _near(name, tissues, 25.0)
    assert point is not None, (case, tissues)
    placement, card = _classified(name, point)
    assert placement.outcome == outcome, (case, placement)
    assert not card.passed and any(words in line for line in card.feedback), card.feedback


@pytest.mark.parametrize("case", ["s1_transforaminal", "sacroiliac_joint"])
def test_through_the_sacrum_into_the_pelvis_is_named(isolated_user_folders, case):
    name = SCENARIOS[case]
    sim = _sim(name)
    anchor = sim.procedure.target_point(sim.anatomy, sim.scenario)
    table = tissue_table()
    for depth in np.arange(20.0, 80.0, 2.0):
        point = anchor + np.array([0.0, depth, 0.0])
        tissue = table[int(sim.anatomy.tissue_at(point[None])[0])]
        if tissue.category in ("soft_tissue", "presacral", "organ") and tissue.name != "muscle" or \
                tissue.category == "presacral":
            break
    placement, card = _classified(name, point)
    assert placement.outcome == "presacral", (case, placement, tissue.name)
    assert any("front of the sacrum" in line for line in card.feedback)


def _replay_without(sim: Simulation, drop) -> Simulation:
    kept = [c for c in sim.commands if not drop(c.command)]
    return Simulation.replay(sim.loaded, AttemptRecord(None, kept), anatomy=sim.anatomy, image_size_px=48)


@pytest.mark.parametrize("case", ["thoracic_transforaminal", "s1_transforaminal", "sacroiliac_joint"])
def test_no_lateral_check_costs_marks_and_says_so(isolated_user_folders, case):
    """The expert's attempt with every lateral view taken out: placement unchanged, technique
    marked down, and the feedback names the missing lateral."""
    expert = _sim(SCENARIOS[case])
    run_reference(expert)
    sim = _replay_without(expert, lambda c: c.command == "move_carm" and abs(c.oblique_deg) >= 75.0)
    card = sim.scorecard
    assert card.placement.outcome == "success"
    assert card.parts["technique"] < 20.0
    assert any("lateral" in line for line in card.feedback), card.feedback


def test_transforaminal_contrast_without_live_imaging_is_a_hard_fail(isolated_user_folders):
    """Reference 3.13 rule 4: the S1 expert's attempt with the live run taken out fails, though the
    tip is in the zone."""
    expert = _sim(SCENARIOS["s1_transforaminal"])
    run_reference(expert)
    sim = _replay_without(expert, lambda c: c.command in ("fluoroscopy_on", "fluoroscopy_off"))
    card = sim.scorecard
    assert card.placement.outcome == "success" and not card.passed
    assert card.hard_fails and "rule 4" in card.hard_fails[0]
    assert card.feedback[0].startswith("Hard fail")


def test_a_particulate_steroid_in_a_cervical_transforaminal_is_a_hard_fail(isolated_user_folders):
    """Reference 3.13 rule 3: the cervical expert's attempt with methylprednisolone for
    dexamethasone fails; the same drug is allowed in a lumbar facet joint."""
    expert = _sim(SCENARIOS["cervical_transforaminal"])
    run_reference(expert)
    swapped = [c if c.command.command != "inject_drug" or c.command.drug_id != "dexamethasone_10mg_ml" else
               type(c)(c.t_s, cmd.InjectDrug(drug_id="methylprednisolone_acetate_40mg_ml", volume_ml=1.0))
               for c in expert.commands]
    sim = Simulation.replay(expert.loaded, AttemptRecord(None, swapped), anatomy=expert.anatomy, image_size_px=48)
    assert sim.scorecard.placement.outcome == "success" and not sim.scorecard.passed
    assert any("particulate" in line and "rule 3" in line for line in sim.scorecard.hard_fails)
    facet = _sim(SCENARIOS["lumbar_facet"])
    run_reference(facet)
    assert any(c.command.command == "inject_drug" and "methylprednisolone" in c.command.drug_id
               for c in facet.commands)
    assert facet.scorecard.passed


def test_too_much_injectate_for_a_medial_branch_block_costs_safety_marks(isolated_user_folders):
    """0.3-0.5 mL keeps a medial branch block specific: 2 mL more is named, and costs marks."""
    expert = _sim(SCENARIOS["lumbar_medial_branch"])
    run_reference(expert, finish=False)
    expert.apply(cmd.InjectDrug(drug_id="bupivacaine_0_5pct", volume_ml=2.0))
    expert.apply(cmd.Finish())
    card = expert.scorecard
    assert card.parts["safety"] == pytest.approx(15.0)
    assert any("0.5 mL is the most" in line and "specific" in line for line in card.feedback), card.feedback


def _drive_to(sim: Simulation, point: np.ndarray) -> None:
    """A trainee's straight needle to ``point`` on a line clear of bone, around the procedure's
    approach."""
    proc, anatomy = sim.procedure, sim.anatomy
    is_bone = tissue_table().is_bone
    axis = proc.approach(anatomy, sim.scenario)
    line = None
    for tilt_deg, turn_deg in itertools.product((0.0, 5.0, -5.0, 10.0, -10.0, 15.0, -15.0), repeat=2):
        a = np.radians(turn_deg)
        about_z = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
        d = frames.rotation_x(tilt_deg) @ about_z @ axis
        entry = anatomy.skin_entry(point - 200.0 * d, d)
        if entry is None:
            continue
        t = np.arange(0.0, float(np.linalg.norm(point - entry)), 0.1)
        if not is_bone[anatomy.tissue_at(entry + t[:, None] * d)].any():
            line = entry, d
            break
    assert line is not None, "no line clear of bone to the point"
    entry, direction = line
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=tuple(float(v) for v in direction)))
    depth = float(np.linalg.norm(point - entry))
    while sim.needle.depth_mm < depth - 0.05:
        events = sim.apply(cmd.Advance(distance_mm=min(2.0, depth - sim.needle.depth_mm)))
        if any(e.kind in ("bone_contacted", "needle_length_exhausted") for e in events):
            break


def test_injecting_after_a_vascular_pattern_is_a_hard_fail_and_moving_first_is_not(isolated_user_folders):
    """Reference 3.13 rule 5: a tip in a radicular artery shows an arterial pattern; a steroid
    injected there without moving the needle fails the attempt; the same after a withdrawal does
    not break the rule."""
    name = SCENARIOS["cervical_transforaminal"]
    artery = _near(name, ("vertebral_artery", "radicular_artery"), 30.0)
    assert artery is not None
    results = []
    for move_first in (False, True):
        sim = _sim(name)
        _drive_to(sim, artery)
        sim.apply(cmd.FluoroscopyOn(pulse_rate_pps=7.5))
        events = sim.apply(cmd.InjectContrast(volume_ml=0.5))
        sim.apply(cmd.FluoroscopyOff())
        assert any(e.kind == "contrast_injected" and e.data["vascular"] == "arterial" for e in events)
        if move_first:
            sim.apply(cmd.Withdraw(distance_mm=3.0))
        sim.apply(cmd.InjectDrug(drug_id="dexamethasone_10mg_ml", volume_ml=1.0))
        sim.apply(cmd.Finish())
        results.append(sim.scorecard)
    assert any("rule 5" in line for line in results[0].hard_fails)
    assert not any("rule 5" in line for line in results[1].hard_fails)


def test_an_unknown_drug_or_no_needle_is_refused_with_a_reason(isolated_user_folders):
    from simulator.errors import CommandRefused

    sim = _sim(SCENARIOS["lumbar_facet"])
    with pytest.raises(CommandRefused, match="not in the patient"):
        sim.apply(cmd.InjectDrug(drug_id="lidocaine_1pct", volume_ml=1.0))
    run_reference(sim, finish=False)
    with pytest.raises(CommandRefused, match="unknown drug 'ketamine'"):
        sim.apply(cmd.InjectDrug(drug_id="ketamine", volume_ml=1.0))


@pytest.mark.parametrize("name, fails", [
    ("lumbar_facet_l4l5_right_landmark", True), ("cervical_transforaminal_c6c7_right_landmark", True),
    ("lumbar_medial_branch_l3_right_landmark", True), ("sacroiliac_joint_right_landmark", False),
    ("caudal_landmark", False), ("lumbar_interlaminar_l4l5_landmark", False),
])
def test_landmark_cases_fail_only_the_procedures_never_done_blind(isolated_user_folders, name, fails):
    """Working without images is the premise of a landmark case where the technique is practised
    (interlaminar, caudal, SIJ); for the others the case exists to show why it fails."""
    from simulator.procedures.base import Placement

    sc = load_scenario(name).scenario
    placement = Placement("success", "epidural_fat", "epidural", sc.target_level, (0.0, 0.0, 0.0), 0.0)
    said = procedure_for(sc.procedure).hard_fails({}, placement, sc)
    assert bool(said) == fails and all("rule 1" in line for line in said)


@pytest.mark.parametrize("case, beyond_mm", [
    ("lumbar_facet", 30.0), ("cervical_facet", 10.0), ("sacroiliac_joint", 30.0), ("s1_transforaminal", 10.0),
    ("cervical_transforaminal", 10.0), ("thoracic_transforaminal", 10.0)])
def test_going_on_past_the_target_leaves_the_zone_and_is_named(isolated_user_folders, case, beyond_mm):
    """Too deep: the expert's needle pushed on past its end-point (as far as bone lets it; a joint's
    needle runs along the joint plane, so it must go further to come out of it) ends outside the
    target zone, in a tissue the feedback names, and fails."""
    sim = _sim(SCENARIOS[case])
    run_reference(sim, finish=False)
    start = sim.needle.tip_mm.copy()
    for _ in range(int(beyond_mm / 2.0)):
        events = sim.apply(cmd.Advance(distance_mm=2.0))
        if any(e.kind in ("bone_contacted", "needle_length_exhausted") for e in events):
            break
    sim.apply(cmd.Finish())
    card = sim.scorecard
    assert np.linalg.norm(sim.needle.tip_mm - start) > 2.0, case
    assert card.placement.outcome != "success" and not card.passed, (case, card.placement)
    assert card.feedback[0] != sim.procedure.feedback["success"].format(
        level=sim.scenario.target_level, side=sim.scenario.side, interspace="", tissue=""), card.feedback
