"""Virtual operators and simulated studies (issue 9): reproducible studies, resume, workers, what
the operators may know, and the image-guided operator against the reference solution."""

from __future__ import annotations

import contextlib
import json
import sys

import numpy as np
import pytest

from simulator.errors import SpineSimError
from simulator.geometry import frames
from simulator.records.store import Store
from simulator.study import operators, senses
from simulator.study.runner import StudyPlan, run_study, study_summaries

#: A small study: the lumbar interlaminar in both modes on two patients (one region per patient).
SMALL = dict(procedures=("lumbar_interlaminar",), modes=("landmark", "fluoroscopy"), patients=2, seed=5)


def _store(tmp_path, name: str) -> Store:
    return Store.open(f"sqlite:///{tmp_path / name}.sqlite")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The small study run straight through in this process."""
    folder = tmp_path_factory.mktemp("study")
    store = _store(folder, "straight")
    plan = StudyPlan(**SMALL)
    run = run_study(plan, store, workers=1)
    return plan, store, run


def _rows(plan, store):
    return [{k: r[k] for k in ("procedure", "mode", "patient", "outcome", "passed", "score", "commands_sha256")}
            for r in study_summaries(plan, store)]


def test_same_seed_gives_the_same_study_and_another_seed_another(uninterrupted, tmp_path):
    plan, store, run = uninterrupted
    first = _rows(plan, store)
    assert run.stored == len(first) == 4
    again_store = _store(tmp_path, "again")
    run_study(StudyPlan(**SMALL), again_store, workers=1)
    assert _rows(plan, again_store) == first
    other = StudyPlan(**{**SMALL, "seed": 6, "patients": 1})
    other_store = _store(tmp_path, "other")
    run_study(other, other_store, workers=1)
    # other patients, other operators: the command streams differ
    assert {r["commands_sha256"] for r in _rows(other, other_store)}.isdisjoint({r["commands_sha256"] for r in first})


def test_interrupted_then_resumed_equals_uninterrupted(uninterrupted, tmp_path):
    plan, store, _ = uninterrupted
    resumed_store = _store(tmp_path, "resumed")
    part = run_study(StudyPlan(**SMALL), resumed_store, workers=1, stop_after=1)
    assert part.stored == 2  # one patient, both modes
    rest = run_study(StudyPlan(**SMALL), resumed_store, workers=1)
    assert rest.done_before == 2 and rest.stored == 2
    assert _rows(plan, resumed_store) == _rows(plan, store)
    # a third run finds nothing to do and stores nothing twice
    assert run_study(StudyPlan(**SMALL), resumed_store, workers=1).stored == 0
    assert len(study_summaries(plan, resumed_store)) == 4


def test_one_and_two_worker_processes_give_identical_results(uninterrupted, tmp_path):
    plan, store, _ = uninterrupted
    two_store = _store(tmp_path, "two")
    run_study(StudyPlan(**SMALL), two_store, workers=2)
    assert _rows(plan, two_store) == _rows(plan, store)


def test_a_dask_cluster_gives_the_same_results(uninterrupted, tmp_path):
    distributed = pytest.importorskip("distributed")  # the test extra installs it
    plan, store, _ = uninterrupted
    cluster_store = _store(tmp_path, "dask")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        run_study(StudyPlan(**SMALL), cluster_store, scheduler=cluster.scheduler_address)
    assert _rows(plan, cluster_store) == _rows(plan, store)


def test_an_unreachable_scheduler_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr("simulator.study.runner.SCHEDULER_TIMEOUT_S", 2.0)
    with pytest.raises(SpineSimError, match="scheduler tcp://127.0.0.1:9: cannot connect"):
        run_study(StudyPlan(**{**SMALL, "patients": 1}), _store(tmp_path, "x"), scheduler="tcp://127.0.0.1:9")


def test_study_attempts_are_ordinary_replayable_attempts(uninterrupted):
    from simulator.scenario.loader import parse_scenario
    from simulator.simulation.simulation import Simulation

    plan, store, _ = uninterrupted
    row = study_summaries(plan, store)[1]
    actor = store.sign_in(plan.account)
    record = store.attempt_record(actor, row["attempt_id"])
    loaded = parse_scenario(record.header["scenario"]["text"], "replay")
    replayed = Simulation.replay(loaded, record, image_size_px=64)
    assert replayed.scorecard.as_dict()["placement"]["outcome"] == row["outcome"]
    assert replayed.scorecard.as_dict()["score"] == pytest.approx(row["score"])


# --------------------------------------------------------------------------- what operators know
class HiddenAnatomyRead(AssertionError):
    pass


@contextlib.contextmanager
def _tripwire(anatomy, guarded: dict[str, frozenset[str] | None]):
    """While inside, ``anatomy`` raises when code of a guarded module reads it directly: any
    attribute (``None``) or any but the listed ones. The simulation's own command handling and the
    anatomy's internals are not guarded."""
    base = type(anatomy)

    def __getattribute__(self, name):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller in guarded:
            allowed = guarded[caller]
            if allowed is None or name not in allowed:
                raise HiddenAnatomyRead(f"{caller} read anatomy.{name}")
        return base.__getattribute__(self, name)

    anatomy.__class__ = type(f"Tripwired{base.__name__}", (base,), {"__getattribute__": __getattribute__})
    try:
        yield anatomy
    finally:
        anatomy.__class__ = base  # the anatomy is the session's: back to normal


#: The operators' own modules: they may read nothing of the anatomy.
OPERATOR_MODULES = {f"simulator.study.{m}": None for m in ("operators", "hand", "landmark", "image_guided")}
#: What the hands' senses may read of the anatomy: the skin, the build, the region on the table.
HANDS_MAY_READ = frozenset({"skin_signed_distance", "patient", "grid"})
#: And what the eyes may add: bone on a line, bone landmarks, the endplates.
EYES_MAY_READ = HANDS_MAY_READ | {"tissue_at", "landmark", "endplate_normal"}


@pytest.mark.parametrize("scenario", ["lumbar_interlaminar_l4l5_landmark", "lumbar_transforaminal_l4l5_right_landmark"])
def test_the_landmark_operator_never_reads_hidden_anatomy(scenario, small_anatomy, make_sim):
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.simulation import Simulation

    sim = Simulation(load_scenario(scenario), anatomy=small_anatomy, image_size_px=64)
    with _tripwire(sim.anatomy, {**OPERATOR_MODULES, "simulator.study.senses": HANDS_MAY_READ}):
        operators.operate(sim, "intermediate", seed=3)
    assert sim.finished
    palpated = [e for e in sim.events if e.kind == "palpated"]
    assert len(palpated) >= 10  # it found its way by touch


def test_the_tripwire_catches_an_operator_that_looks(small_anatomy):
    """The check above can fail: code that reaches the anatomy is stopped."""
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.simulation import Simulation

    sim = Simulation(load_scenario("lumbar_interlaminar_l4l5_landmark"), anatomy=small_anatomy, image_size_px=64)
    with _tripwire(sim.anatomy, {__name__: None}), pytest.raises(HiddenAnatomyRead, match="landmark"):
        sim.anatomy.landmark("L4.spinous_tip")
    # and the senses may not go beyond the skin either
    with _tripwire(sim.anatomy, {"simulator.study.senses": HANDS_MAY_READ}), pytest.raises(HiddenAnatomyRead):
        senses.BoneView(sim).tissue_at(np.zeros((1, 3)))


def test_the_image_guided_operator_reads_only_bone_off_images(make_sim):
    sim = make_sim("lumbar_interlaminar_l4l5_fluoroscopy", image_size_px=64)
    with _tripwire(sim.anatomy, {**OPERATOR_MODULES, "simulator.study.senses": EYES_MAY_READ}):
        operators.operate(sim, "intermediate", seed=4)
    assert sim.finished and len(sim.images) >= 3


def test_what_the_hands_are_given_holds_no_hidden_truth(make_sim):
    sim = make_sim("lumbar_interlaminar_l4l5_landmark")
    hands = senses.Hands(sim)
    public = {name for name in dir(hands) if not name.startswith("_")}
    assert not any("sim" in name or "anatomy" in name for name in public)
    operator = operators.LandmarkOperator(hands, operators.skill("novice"), np.random.default_rng(1))
    operator.run()
    hidden = {"tissue", "tip_mm", "danger_mm", "structure", "compartment", "vascular", "interspace", "truth"}
    assert hands.log and all(hidden.isdisjoint(p.data) for p in hands.log)
    # the simulation's own events did carry them: the filter is what hides them
    assert any("tissue" in e.data for e in sim.events)


def test_a_reader_cannot_read_soft_tissue_off_an_image(make_sim):
    sim = make_sim("lumbar_interlaminar_l4l5_fluoroscopy", image_size_px=64)
    eyes = senses.Eyes(sim, 0.0, 0.0, 0.0, np.random.default_rng(0))
    image = eyes.take_image(0.0, 0.0, eyes.isocentre_mm)
    assert eyes.read_bone(image, "L4.spinous_tip") is not None
    with pytest.raises(SpineSimError, match="not bone"):
        eyes.read_bone(image, "dural_sac.end")


def test_readings_in_two_views_place_a_landmark_in_depth(make_sim):
    sim = make_sim("lumbar_interlaminar_l4l5_fluoroscopy", image_size_px=64)
    eyes = senses.Eyes(sim, 0.0, 0.0, 0.0, np.random.default_rng(0))
    iso = eyes.isocentre_mm
    ap, lateral = eyes.take_image(0.0, 5.0, iso), eyes.take_image(90.0, 5.0, iso)
    name = "L4-L5.interlaminar_center"
    point = senses.triangulate([(ap, eyes.read_bone(ap, name)), (lateral, eyes.read_bone(lateral, name))])
    assert np.linalg.norm(point - sim.anatomy.landmark(name)) < 0.05
    # with a reader's error the point moves by about that much
    noisy = senses.Eyes(sim, 2.0, 0.0, 0.0, np.random.default_rng(0))
    off = senses.triangulate([(ap, noisy.read_bone(ap, name)), (lateral, noisy.read_bone(lateral, name))])
    assert 0.3 < np.linalg.norm(off - sim.anatomy.landmark(name)) < 8.0


# --------------------------------------------------------------------------- against the reference
FLUORO_DEFAULTS = ["lumbar_interlaminar_l4l5_fluoroscopy",
                   pytest.param("cervical_interlaminar_c7t1_fluoroscopy", marks=pytest.mark.slow),
                   pytest.param("caudal_fluoroscopy", marks=pytest.mark.slow),
                   pytest.param("lumbar_transforaminal_l4l5_right_fluoroscopy", marks=pytest.mark.slow)]


@pytest.mark.parametrize("scenario", FLUORO_DEFAULTS)
def test_the_image_guided_operator_at_reference_skill_matches_the_reference_solution(scenario):
    from simulator.anatomy.anatomy import anatomy_for_scenario
    from simulator.scenario.loader import load_scenario
    from simulator.simulation.reference import run_reference
    from simulator.simulation.simulation import Simulation

    loaded = load_scenario(scenario)
    anatomy = anatomy_for_scenario(loaded.scenario)
    reference = run_reference(Simulation(loaded, anatomy=anatomy, image_size_px=96))
    virtual = Simulation(loaded, anatomy=anatomy, image_size_px=96)
    operators.operate(virtual, "reference", seed=0)
    ref_card, card = reference.scorecard.as_dict(), virtual.scorecard.as_dict()
    assert ref_card["placement"]["outcome"] == "success"
    same = ("outcome", "tissue", "interspace")
    assert {k: card["placement"][k] for k in same} == {k: ref_card["placement"][k] for k in same}
    assert card["passed"]
    assert np.linalg.norm(virtual.needle.tip_mm - reference.needle.tip_mm) < 6.0
    # it worked from images: several, and the contrast read right
    assert len(virtual.images) >= 3
    assert [e.data["correct"] for e in virtual.events if e.kind == "pattern_reported"][-1]


def test_skill_levels_differ_in_what_they_get_wrong(make_sim):
    """A novice's hand errs more than an expert's: over a few seeds its entries scatter wider."""
    def entries(level):
        out = []
        for seed in range(4):
            sim = make_sim("lumbar_interlaminar_l4l5_landmark")
            operators.operate(sim, level, seed)
            out.append(next(e.data["entry_mm"] for e in sim.events if e.kind == "entry_set"))
        return np.array(out)

    assert np.ptp(entries("reference")[:, 0]) == pytest.approx(0.0)  # no hand error: the same entry
    assert np.std(entries("novice")[:, 0]) > np.std(entries("expert")[:, 0])


def test_an_operator_backing_off_a_shallow_needle_sends_no_empty_withdrawal(make_sim):
    """A needle 8 mm in that meets bone is backed off 'to 10 mm': nothing to pull (the command
    would be refused as malformed; it once stopped a study)."""
    sim = make_sim("lumbar_interlaminar_l4l5_fluoroscopy", image_size_px=64)
    eyes = senses.Eyes(sim, 0.0, 0.0, 0.0, np.random.default_rng(0))
    operator = operators.ImageGuidedOperator(eyes, operators.skill("intermediate"), np.random.default_rng(0))
    target = sim.anatomy.landmark("L4-L5.epidural_target")
    operator.insert(sim.anatomy.skin_point_behind(target), frames.ANTERIOR, with_hand_error=False)
    operator.advance(8.0)
    before = len(sim.commands)
    operator.back_off_and_reaim(target, ((0.0, 0.0), (90.0, 0.0)), eyes.isocentre_mm)
    assert not any(c.command.command == "withdraw" for c in sim.commands[before:])
    assert sim.needle.depth_mm == pytest.approx(8.0, abs=0.5)


# --------------------------------------------------------------------------- bad input
def test_a_malformed_operators_table_names_the_field():
    from simulator.assets import read_asset_text

    text = read_asset_text("operators.toml")
    with pytest.raises(SpineSimError, match=r"^assets/operators.toml: levels.intermediate.angle_sd_deg: must be"):
        operators.parse_skill_levels(text.replace("angle_sd_deg = 3.5", "angle_sd_deg = -1"))
    with pytest.raises(SpineSimError, match="levels.novice.corrections: missing"):
        operators.parse_skill_levels(text.replace("corrections = 1\n", ""))
    with pytest.raises(SpineSimError, match="no skill level 'wizard'"):
        StudyPlan(**{**SMALL, "skill": "wizard"})


@pytest.mark.parametrize("change, message", [
    ({"procedures": ("facet_joint",)}, "procedures: 'facet_joint'"),
    ({"modes": ("ultrasound",)}, "modes: 'ultrasound'"),
    ({"patients": 0}, "patients: must be a whole number >= 1"),
    ({"seed": -1}, "seed: must be a whole number >= 0"),
])
def test_a_bad_study_plan_is_a_one_line_error(change, message):
    with pytest.raises(SpineSimError, match=message):
        StudyPlan(**{**SMALL, **change})


# --------------------------------------------------------------------------- the report and the CLI
def test_the_study_report_has_rates_differences_and_a_failure_model(uninterrupted, tmp_path):
    from simulator.study.report import study_report, write_study_report

    plan, store, _ = uninterrupted
    report = study_report(plan, store, {"attempts": 4, "wall_s": 10.0, "workers": 1, "attempts_per_s": 0.6,
                                        "median_attempt_s": 1.0})
    assert [(r["mode"], r["n"]) for r in report.rates] == [("landmark", 2), ("fluoroscopy", 2)]
    successes = {r["mode"]: r["success"]["count"] for r in report.rates}
    rows = report.rows
    assert successes == {m: sum(r["success"] for r in rows if r["mode"] == m) for m in plan.modes}
    (difference,) = report.differences
    assert difference["n_pairs"] == 2
    assert difference["fluoroscopy_minus_landmark"] == pytest.approx(
        (successes["fluoroscopy"] - successes["landmark"]) / 2)
    assert set(report.models) == {"landmark", "fluoroscopy"}
    paths = write_study_report(report, tmp_path / "out")
    text = paths["markdown"].read_text()
    assert "| Lumbar interlaminar L4-L5 | landmark | 2 |" in text and "McNemar" in text
    assert "angle_sd_deg | 3.5" in text  # the operator's parameters beside the results
    assert json.loads(paths["json"].read_text())["plan"]["key"] == plan.key
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_spinesim_study_runs_resumes_and_reports(tmp_path, capsys):
    from simulator.cli import main

    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    args = ["--database", url, "study", "--procedures", "lumbar_interlaminar", "--modes", "fluoroscopy",
            "--patients", "1", "--seed", "9", "--workers", "1", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert "1 attempts; report in" in capsys.readouterr().out
    assert main(args) == 0  # again: nothing to do, the same report
    err = capsys.readouterr().err
    assert "0 of 1 patients to do" in err
    assert main(["--database", url, "study", "--patients", "1", "--procedures", "spinal_tap"]) == 2
    assert "procedures: 'spinal_tap'" in capsys.readouterr().err
