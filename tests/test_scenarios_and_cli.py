"""Scenario files and action files: what ships loads, what is malformed is reported in one line
naming the file and the field; and the ``spinesim`` command line, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simulator.errors import SpineSimError
from simulator.records.attempt_file import read_record, write_record
from simulator.scenario.loader import builtin_scenarios, load_scenario
from simulator.scenario.schema import PROCEDURE_LEVELS
from simulator.simulation.reference import run_reference

from spine_helpers import FLUORO_L4L5

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "scenarios").glob("*.toml"))


# ------------------------------------------------------------------------------ shipped scenarios
def test_scenarios_ship_as_builtins():
    """Every scenario file in scenarios/ is available by its built-in name, and only those."""
    assert SHIPPED, "no scenario files found"
    assert set(builtin_scenarios()) == {p.stem for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_scenario_loads(path):
    """Each shipped scenario loads from its file and by its built-in name, to the same content."""
    from_file = load_scenario(path)
    by_name = load_scenario(path.stem)
    assert from_file.scenario == by_name.scenario
    assert by_name.sha256 == from_file.sha256
    assert from_file.scenario.target_level in PROCEDURE_LEVELS[from_file.scenario.procedure]


# ------------------------------------------------------------------------------ malformed scenarios
BASE = (REPO / "scenarios" / f"{FLUORO_L4L5}.toml").read_text(encoding="utf-8")


def _edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


MALFORMED = {
    # case: (scenario text, dotted field the message must name)
    "negative_time_limit": (_edit("time_s = 900", "time_s = -5"), "limits.time_s"),
    "nan_time_limit": (_edit("time_s = 900", "time_s = nan"), "limits.time_s"),
    "unknown_top_level_field": (_edit('guidance = "fluoroscopy"', 'guidance = "fluoroscopy"\ncolour = "blue"'),
                                "colour"),
    "unknown_nested_field": (_edit("images = 40", "images = 40\nvideos = 3"), "limits.videos"),
    "wrong_type_text_for_count": (_edit("images = 40", 'images = "many"'), "limits.images"),
    "wrong_type_true_for_count": (_edit("images = 40", "images = true"), "limits.images"),
    "wrong_type_true_for_volume": (_edit("contrast_ml = 5.0", "contrast_ml = true"), "limits.contrast_ml"),
    "bad_target_level": (_edit('target_level = "L4-L5"', 'target_level = "L6-L7"'), "target_level"),
    "level_of_another_procedure": (_edit('target_level = "L4-L5"', 'target_level = "C7-T1"'), "target_level"),
    "unknown_procedure": (_edit('procedure = "lumbar_interlaminar"', 'procedure = "thoracic_interlaminar"'),
                          "procedure"),
    "missing_required_field": (_edit('guidance = "fluoroscopy"', ""), "guidance"),
    "unknown_needle": (_edit('id = "tuohy_20g_89mm"', 'id = "spinal_27g"'), "needle.id"),
    "paramedian_without_side": (_edit('approach = "midline"', 'approach = "paramedian"'), "side"),
    "wrong_schema_version": (_edit("schema_version = 1", "schema_version = 2"), "schema_version"),
    "bmi_out_of_range": (_edit("# bmi_kg_m2 = 27", "bmi_kg_m2 = 80"), "patient.bmi_kg_m2"),
    "negative_seed": (_edit("seed = 1", "seed = -1"), "patient.seed"),
    "sided_procedure_at_the_midline": (_edit('procedure = "lumbar_interlaminar"', 'procedure = "lumbar_facet"'),
                                       "side"),
    "position_the_procedure_is_not_done_in": (_edit('patient_position = "prone"', 'patient_position = "supine"'),
                                              "patient_position"),
    "unknown_position": (_edit('patient_position = "prone"', 'patient_position = "sitting"'), "patient_position"),
    "too_much_injectate_in_the_syringes": (_edit("injectate_ml = 20.0", "injectate_ml = 90"), "limits.injectate_ml"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_scenario_gives_one_line_naming_file_and_field(tmp_path, case):
    text, field = MALFORMED[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpineSimError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    assert f"{field}:" in message or f"{field} " in message, message


def test_invalid_toml_gives_one_line_naming_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(_edit("[limits]", "[limits"), encoding="utf-8")
    with pytest.raises(SpineSimError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message and path.name in message and "TOML" in message


def test_missing_scenario_is_reported(tmp_path):
    with pytest.raises(SpineSimError) as info:
        load_scenario(tmp_path / "absent.toml")
    assert "absent.toml" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(SpineSimError) as info:
        load_scenario("no_such_builtin_scenario")
    assert "no_such_builtin_scenario" in str(info.value)


# ------------------------------------------------------------------------------ malformed actions
ACTIONS = {
    # case: (file content, line the message must name, field it must name or None)
    "bad_json_line": ('{"command": "advance", "distance_mm": 2}\n{"command": "advance", \n', 2, None),
    "unknown_command": ('{"command": "set_entry", "point_mm": [0, -80, 60]}\n{"command": "teleport"}\n', 2,
                        "command"),
    "nan_distance": ('{"command": "advance", "distance_mm": NaN}\n', 1, "distance_mm"),
    "negative_distance": ('{"command": "advance", "distance_mm": -3}\n', 1, "distance_mm"),
    "time_goes_back": ('{"t_s": 5, "command": "advance", "distance_mm": 1}\n'
                       '{"t_s": 3, "command": "advance", "distance_mm": 1}\n', 2, "t_s"),
    "nan_time": ('{"t_s": NaN, "command": "advance", "distance_mm": 1}\n', 1, "t_s"),
    "unknown_field": ('{"command": "advance", "distance_mm": 1, "speed": 3}\n', 1, "speed"),
    "not_an_object": ("[1, 2]\n", 1, None),
}


@pytest.mark.parametrize("case", ACTIONS)
def test_malformed_actions_give_one_line_naming_file_and_line(tmp_path, case):
    content, line, field = ACTIONS[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SpineSimError) as info:
        read_record(path)
    message = str(info.value)
    assert "\n" not in message
    assert path.name in message
    assert f"line {line}:" in message, message
    if field:
        assert field in message


def test_missing_actions_file_is_reported(tmp_path):
    with pytest.raises(SpineSimError) as info:
        read_record(tmp_path / "nothing_here.jsonl")
    assert "nothing_here.jsonl" in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------ the command line
def spinesim(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def rendered(cli_env, tmp_path_factory):
    """An AP render of the default scenario (this first CLI run builds the scenario's own anatomy
    into the session cache; later CLI runs load it) and a lateral one."""
    out = tmp_path_factory.mktemp("render")
    ap = spinesim(cli_env, "render", FLUORO_L4L5, "--oblique", 0, "--tilt", 0, "--size", 96,
                  "--out", out / "ap.png", "--geometry", out / "ap.json", "--raw", out / "ap.npy")
    assert ap.returncode == 0, ap.stderr
    lateral = spinesim(cli_env, "render", FLUORO_L4L5, "--oblique", 90, "--tilt", 0, "--size", 96,
                       "--out", out / "lateral.png")
    assert lateral.returncode == 0, lateral.stderr
    return out


def test_cli_landmarks_json(cli_env):
    """``landmarks --json`` prints versioned JSON with the documented landmark names as 3-vectors
    in the patient frame (spinous tip behind the body, left pedicle on the left)."""
    run = spinesim(cli_env, "landmarks", FLUORO_L4L5, "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["format"] == "spinesim-landmarks"
    assert data["format_version"] == 1
    lm = data["landmarks"]
    for name in ("L4.spinous_tip", "L4-L5.interlaminar_center", "L5.pedicle_left_center", "sacrum.hiatus_apex",
                 "L4-L5.epidural_target", "iliac_crest_left_top"):
        assert name in lm
        assert len(lm[name]) == 3 and all(np.isfinite(lm[name]))
    assert lm["L4.spinous_tip"][1] < lm["L4.body_center"][1] - 40.0
    assert lm["L5.pedicle_left_center"][0] < 0 < lm["L5.pedicle_right_center"][0]
    assert lm["sacrum.hiatus_apex"][2] < lm["L4-L5.interlaminar_center"][2]


def test_cli_render_writes_the_requested_png(rendered):
    """``render`` writes a PNG of the requested size; a lateral differs from the AP."""
    ap = np.asarray(Image.open(rendered / "ap.png"))
    lateral = np.asarray(Image.open(rendered / "lateral.png"))
    assert ap.shape[:2] == (96, 96) and lateral.shape[:2] == (96, 96)
    assert ap.std() > 5, "a blank image"
    assert np.mean(np.abs(ap.astype(float) - lateral.astype(float))) > 5
    raw = np.load(rendered / "ap.npy")
    assert raw.shape == (96, 96) and np.isfinite(raw).all() and raw.max() > 0


def test_cli_render_geometry(rendered):
    """``--geometry`` writes the projection: source, first pixel, row and column steps, size; the
    isocentre lies on the ray through the image centre."""
    g = json.loads((rendered / "ap.json").read_text())
    for key in ("source_mm", "pixel00_mm", "row_step_mm", "col_step_mm"):
        assert len(g[key]) == 3 and all(np.isfinite(g[key]))
    assert g["rows"] == 96 and g["cols"] == 96
    source = np.array(g["source_mm"])
    centre = np.array(g["pixel00_mm"]) + 47.5 * np.array(g["row_step_mm"]) + 47.5 * np.array(g["col_step_mm"])
    iso = np.array(g["isocentre_mm"])
    ray = (centre - source) / np.linalg.norm(centre - source)
    off_axis = (iso - source) - ((iso - source) @ ray) * ray
    assert np.linalg.norm(off_axis) < 1e-3
    # AP of a prone patient: the source under the table (anterior, +y), the detector over the back
    assert source[1] > iso[1] > centre[1]


@pytest.fixture(scope="module")
def reference_actions(small_anatomy, tmp_path_factory):
    """The expert's attempt on the default scenario, recorded (on the small anatomy: the commands
    depend only on the exact anatomy, which is the same patient)."""
    from simulator.simulation.simulation import Simulation

    sim = Simulation(load_scenario(FLUORO_L4L5), anatomy=small_anatomy, image_size_px=48)
    run_reference(sim)
    assert sim.scorecard.placement.outcome == "success"
    path = tmp_path_factory.mktemp("actions") / "reference.jsonl"
    write_record(path, sim.record)
    return path


def test_cli_attempt_replays_a_recorded_reference(cli_env, rendered, reference_actions):
    """``attempt --actions`` on a recorded expert attempt prints the successful outcome as JSON."""
    run = spinesim(cli_env, "attempt", FLUORO_L4L5, "--actions", reference_actions, "--json")
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip() == ""
    data = json.loads(run.stdout)
    assert data["format"] == "spinesim-attempt-result" and data["format_version"] == 1
    assert data["outcome"]["outcome"] == "success"
    assert data["scorecard"]["passed"] is True
    assert data["outcome"]["interspace"] == "L4-L5"


def test_cli_bad_scenario_file(cli_env, tmp_path):
    """A bad scenario file: exit status 2 and exactly one line on stderr naming the file."""
    bad = tmp_path / "bad_scenario.toml"
    bad.write_text(MALFORMED["negative_time_limit"][0], encoding="utf-8")
    run = spinesim(cli_env, "landmarks", bad, "--json")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spinesim: error:")
    assert "bad_scenario.toml" in lines[0] and "limits.time_s" in lines[0]
    assert run.stdout == ""


def test_cli_bad_actions_file(cli_env, rendered, tmp_path):
    """A bad actions file: exit status 2 and exactly one line on stderr naming the file and line."""
    bad = tmp_path / "bad_actions.jsonl"
    bad.write_text('{"command": "advance", "distance_mm": 2}\n{"command": "teleport"}\n', encoding="utf-8")
    run = spinesim(cli_env, "attempt", FLUORO_L4L5, "--actions", bad, "--json")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spinesim: error:")
    assert "bad_actions.jsonl" in lines[0] and "line 2" in lines[0]


def test_cli_bad_render_argument(cli_env, tmp_path):
    """An impossible C-arm angle is a one-line error with exit status 2, and no image is written."""
    out = tmp_path / "never.png"
    run = spinesim(cli_env, "render", FLUORO_L4L5, "--oblique", 200, "--out", out)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--oblique" in lines[0]
    assert not out.exists()


def test_cli_scenarios_lists_the_builtins(cli_env):
    run = spinesim(cli_env, "scenarios")
    assert run.returncode == 0, run.stdout + run.stderr
    for path in SHIPPED:
        assert any(line.startswith("ok") and path.stem in line for line in run.stdout.splitlines())


def test_the_shipped_json_schema_is_the_scenario_files_schema(cli_env):
    """scenarios/scenario.schema.json (what editors check TOML against) is what the loader
    enforces, as `spinesim scenarios --schema` prints it: every procedure and position in it."""
    import json
    import subprocess
    import sys

    from simulator.scenario.schema import PROCEDURES, json_schema

    shipped = json.loads((REPO / "scenarios" / "scenario.schema.json").read_text(encoding="utf-8"))
    assert shipped == json.loads(json.dumps(json_schema()))
    assert set(shipped["properties"]["procedure"]["enum"]) == set(PROCEDURES)
    assert "supine" in shipped["properties"]["patient_position"]["enum"]
    out = subprocess.run([sys.executable, "-m", "simulator", "scenarios", "--schema"], capture_output=True, text=True,
                         env=cli_env, check=True)
    assert json.loads(out.stdout) == shipped
