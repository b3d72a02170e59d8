"""Golden attempts guard scoring against drift: for every shipped scenario, the expert's recorded
commands and a too-deep variant (the expert's attempt with 6 mm more before finishing;
tests/golden/SCENARIO[.too_deep].jsonl), replayed on the scenario's own patient, give the recorded
scorecards (tests/golden/*.score.json): outcome, pass, score and its parts, feedback.

A deliberate change to the anatomy, the needle or the scoring regenerates them:
``SPINESIM_REGENERATE_GOLDEN=1 pytest -m slow tests/test_golden_scores.py`` (and the diff of the
score files is reviewed like code).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from simulator.protocol import commands as cmd
from simulator.records.attempt_file import AttemptRecord, read_record, write_record
from simulator.scenario.loader import load_scenario
from simulator.simulation.reference import run_reference
from simulator.simulation.simulation import Simulation

GOLDEN = Path(__file__).resolve().parent / "golden"
SCENARIOS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "scenarios").glob("*.toml"))


def _summary(sim: Simulation) -> dict:
    card = sim.scorecard.as_dict()
    return {"outcome": card["placement"]["outcome"], "passed": card["passed"], "score": card["score"],
            "parts": card["parts"], "feedback": card["feedback"]}


def _too_deep(sim: Simulation) -> None:
    run_reference(sim, finish=False)
    sim.apply(cmd.Advance(distance_mm=6.0))
    sim.apply(cmd.Finish())


VARIANTS = {"": run_reference, ".too_deep": _too_deep}
_ANATOMY: dict[str, object] = {}


def _anatomy(name: str, loaded):
    """The scenario's own patient and region at 1.5 mm (the needle reads the exact anatomy at any
    voxel size; a 1 mm build of every region would take most of CI's time), built once for both
    variants (the last one kept)."""
    if name not in _ANATOMY:
        from simulator.anatomy.anatomy import build_anatomy

        sc = loaded.scenario
        _ANATOMY.clear()
        _ANATOMY[name] = build_anatomy(sc.patient.parameters(), voxel_mm=1.5, levels=sc.anatomy.levels)
    return _ANATOMY[name]


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name", SCENARIOS)
def test_golden_attempt_scores_as_recorded(isolated_user_folders, name, variant):
    loaded = load_scenario(name)
    commands, expected = GOLDEN / f"{name}{variant}.jsonl", GOLDEN / f"{name}{variant}.score.json"
    if os.environ.get("SPINESIM_REGENERATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        sim = Simulation(loaded, anatomy=_anatomy(name, loaded), image_size_px=64)
        VARIANTS[variant](sim)
        write_record(commands, AttemptRecord(None, sim.commands))
        expected.write_text(json.dumps(_summary(sim), indent=1) + "\n", encoding="utf-8")
    record = read_record(commands)
    replay = Simulation.replay(loaded, record, anatomy=_anatomy(name, loaded), image_size_px=64,
                               stop_on_refusal=True)
    assert replay.finished, f"{name}: the golden attempt no longer finishes"
    assert _summary(replay) == json.loads(expected.read_text(encoding="utf-8"))
