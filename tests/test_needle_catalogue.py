"""The needle catalogue (assets/needles.toml): every needle the procedures call for is there with
real dimensions, and a malformed catalogue row is reported in one line naming the file, the
needle and the field."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from simulator.errors import SpineSimError
from simulator.needle.spec import (
    CATALOGUE_SOURCE,
    TIP_KINDS,
    needle_catalogue,
    needle_spec,
    needles_for,
    parse_needle_catalogue,
)

REPO = Path(__file__).resolve().parents[1]

# Nominal outer diameter per gauge, mm: the needle-gauge chart (Birmingham / Stubs gauge), whose
# tubes ISO 9626:2016 designates 1.2, 0.9, 0.7 and 0.5 mm
NOMINAL_OD_MM = {18: 1.270, 20: 0.9081, 22: 0.7176, 25: 0.5144}


def _label_inch(spec) -> float:
    """The length printed in the needle's name ("..., 3.5 inch")."""
    match = re.search(r"(\d+(?:\.\d+)?) inch", spec.name)
    assert match, f"{spec.id}: no inch length in its name '{spec.name}'"
    return float(match.group(1))


def _find(tip, gauge, inch):
    return [s for s in needle_catalogue().values()
            if s.tip == tip and s.gauge == gauge and abs(s.length_mm - inch * 25.4) <= 1.0]


# ------------------------------------------------------------------------------ what ships
@pytest.mark.parametrize("gauge", [22, 25])
@pytest.mark.parametrize("inch", [1.5, 2.5, 3.5, 5.0])
def test_quincke_spinal_needles_at_every_length(gauge, inch):
    """22 G and 25 G Quincke spinal needles at 1.5 (vertical caudal), 2.5 (cervical), 3.5 (most
    procedures) and 5 inch (deep patients)."""
    assert _find("quincke", gauge, inch), f"no {gauge} G Quincke of {inch} inch"


def test_epidural_and_atraumatic_needles_present():
    """Tuohy 18, 20 and 22 G at 3.5 inch and a long one (>= 5 inch) for deep patients; pencil-point
    22 and 25 G; a blunt-tip 22 G for transforaminal injections."""
    for gauge in (18, 20, 22):
        assert _find("tuohy", gauge, 3.5), f"no {gauge} G Tuohy of 3.5 inch"
    assert any(s.length_mm >= 127.0 for s in needles_for("tuohy")), "no long Tuohy"
    for gauge in (22, 25):
        assert _find("pencil_point", gauge, 3.5), f"no {gauge} G pencil-point needle"
    assert _find("blunt", 22, 3.5), "no 22 G blunt-tip needle"
    assert {s.tip for s in needle_catalogue().values()} == set(TIP_KINDS)


def test_needles_in_use_keep_their_ids_and_dimensions():
    """Every needle a shipped scenario names is in the catalogue, and the first catalogue's needles
    have the same length and diameter as before."""
    used = {tomllib.loads(p.read_text(encoding="utf-8"))["needle"]["id"]
            for p in (REPO / "scenarios").glob("*.toml")}
    assert used and used <= set(needle_catalogue())
    before = {"tuohy_20g_89mm": (89.0, 0.91), "tuohy_18g_89mm": (89.0, 1.27),
              "tuohy_20g_127mm": (127.0, 0.91), "quincke_22g_89mm": (89.0, 0.72)}
    for needle_id, (length_mm, od_mm) in before.items():
        spec = needle_spec(needle_id)
        assert (spec.length_mm, spec.outer_diameter_mm) == (length_mm, od_mm), needle_id


def test_diameters_follow_gauge_and_match_the_nominal_values():
    """A smaller gauge number is a thicker needle, one diameter per gauge, each within 0.02 mm of
    the nominal outer diameter."""
    specs = list(needle_catalogue().values())
    for spec in specs:
        assert spec.gauge in NOMINAL_OD_MM, f"{spec.id}: gauge {spec.gauge} has no reference diameter"
        assert spec.outer_diameter_mm == pytest.approx(NOMINAL_OD_MM[spec.gauge], abs=0.02), spec.id
        assert spec.radius_mm == pytest.approx(spec.outer_diameter_mm / 2)
    for a in specs:
        for b in specs:
            if a.gauge < b.gauge:
                assert a.outer_diameter_mm > b.outer_diameter_mm, (a.id, b.id)
            elif a.gauge == b.gauge:
                assert a.outer_diameter_mm == b.outer_diameter_mm, (a.id, b.id)


def test_lengths_match_their_inch_labels():
    """Each needle's length is its labelled inches within 1 mm, and its id names gauge and mm."""
    for spec in needle_catalogue().values():
        inch = _label_inch(spec)
        assert abs(spec.length_mm - inch * 25.4) <= 1.0, spec.id
        assert spec.length_inch == pytest.approx(inch, abs=1.0 / 25.4)
        assert spec.id == f"{spec.tip}_{spec.gauge}g_{spec.length_mm:.0f}mm"
        assert f"{spec.gauge} G" in spec.name


def test_tuohy_needles_have_1_cm_depth_marks_and_others_none():
    """Tuohy needles carry marks every 10 mm from the tip up to short of the hub; others none."""
    for spec in needle_catalogue().values():
        marks = spec.depth_marks_mm()
        if spec.tip == "tuohy":
            assert spec.depth_mark_interval_mm == 10.0
            assert marks == [10.0 * k for k in range(1, len(marks) + 1)]
            assert marks[-1] < spec.length_mm <= marks[-1] + 10.0
        else:
            assert spec.depth_mark_interval_mm == 0.0 and marks == [], spec.id
    assert needle_spec("tuohy_20g_89mm").depth_marks_mm() == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]


def test_tip_geometry_by_design():
    """Only Tuohy needles are curved as made, only Quincke needles have a cutting bevel, spinal
    Quincke and blunt needles can be bent by the trainee, and bevel tips drift most in tissue:
    pencil point and blunt < Tuohy < Quincke at 22 G, 25 G Quincke at least as much as 22 G."""
    for spec in needle_catalogue().values():
        assert (spec.tip_bend_deg > 0) == (spec.tip == "tuohy"), spec.id
        assert (spec.bevel_angle_deg > 0) == (spec.tip == "quincke"), spec.id
        assert spec.bendable == (spec.tip in ("quincke", "blunt")), spec.id
        assert (spec.max_user_bend_deg > 0) == spec.bendable, spec.id
        assert 0.0 < spec.opening_offset_mm < 5.0, spec.id

    def steer(tip, gauge):
        return {s.steer_mm_per_100mm for s in needles_for(tip, gauge)}

    assert max(steer("pencil_point", 22) | steer("blunt", 22)) < min(steer("tuohy", 22))
    assert max(steer("tuohy", 22)) < min(steer("quincke", 22)) <= min(steer("quincke", 25))
    # thicker Tuohy needles are stiffer
    assert max(steer("tuohy", 18)) < min(steer("tuohy", 20)) < min(steer("tuohy", 22))


def test_needles_for_filters_and_refuses_unknown_tips():
    assert [s.gauge for s in needles_for("tuohy", 18)] == [18, 18]
    assert all(s.tip == "quincke" for s in needles_for("quincke"))
    assert len(needles_for()) == len(needle_catalogue())
    with pytest.raises(SpineSimError, match="unknown needle tip 'chiba'"):
        needles_for("chiba")


# ------------------------------------------------------------------------------ malformed rows
GOOD_ROW = {
    "id": "test_22g", "name": "Test 22 G, 3.5 inch", "tip": "quincke", "gauge": 22,
    "outer_diameter_mm": 0.72, "length_mm": 89.0, "depth_mark_interval_mm": 0.0,
    "bevel_angle_deg": 20.0, "tip_bend_length_mm": 0.0, "tip_bend_deg": 0.0,
    "opening_offset_mm": 2.0, "steer_mm_per_100mm": 10.0, "bendable": True, "max_user_bend_deg": 20.0,
}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value in ("nan", "inf"):
        return value
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _catalogue_text(*rows: dict) -> str:
    lines = ["format_version = 2"]
    for row in rows:
        lines.append("[[needle]]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in row.items()]
    return "\n".join(lines) + "\n"


def _with(**changes) -> dict:
    row = dict(GOOD_ROW)
    for key, value in changes.items():
        if value is None:
            row.pop(key)
        else:
            row[key] = value
    return row


MALFORMED = {
    # case: (row, field the message must name)
    "missing_length": (_with(length_mm=None), "length_mm"),
    "negative_length": (_with(length_mm=-89.0), "length_mm"),
    "zero_diameter": (_with(outer_diameter_mm=0.0), "outer_diameter_mm"),
    "negative_steer": (_with(steer_mm_per_100mm=-1.0), "steer_mm_per_100mm"),
    "nan_offset": (_with(opening_offset_mm="nan"), "opening_offset_mm"),
    "unknown_field": (_with(colour="silver"), "colour"),
    "unknown_tip": (_with(tip="chiba"), "tip"),
    "text_for_gauge": (_with(gauge="22"), "gauge"),
    "fraction_gauge": (_with(gauge=22.5), "gauge"),
    "true_for_length": (_with(length_mm=True), "length_mm"),
    "text_for_bendable": (_with(bendable="yes"), "bendable"),
    "bendable_without_bend_limit": (_with(max_user_bend_deg=0.0), "max_user_bend_deg"),
    "bend_limit_on_fixed_needle": (_with(bendable=False), "max_user_bend_deg"),
    "bend_limit_of_90_deg": (_with(max_user_bend_deg=90.0), "max_user_bend_deg"),
    "bevel_on_pencil_point": (_with(tip="pencil_point", bendable=False, max_user_bend_deg=0.0), "bevel_angle_deg"),
    "curve_without_angle": (_with(tip_bend_length_mm=2.0), "tip_bend_deg"),
    "opening_past_the_hub": (_with(opening_offset_mm=100.0), "opening_offset_mm"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_row_gives_one_line_naming_file_needle_and_field(case):
    row, field = MALFORMED[case]
    with pytest.raises(SpineSimError) as info:
        parse_needle_catalogue(_catalogue_text(row), "tmp/needles.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("tmp/needles.toml: needle 'test_22g': "), message
    assert field in message, message


def test_malformed_catalogue_messages_for_the_file_as_a_whole(tmp_path):
    """A bad row without an id is named by its number; duplicate ids, a wrong format version and
    bad TOML are named too; the good row parses. The shipped file is named assets/needles.toml."""
    path = tmp_path / "needles.toml"
    path.write_text(_catalogue_text(GOOD_ROW), encoding="utf-8")
    assert list(parse_needle_catalogue(path.read_text(encoding="utf-8"), str(path))) == ["test_22g"]
    cases = {
        "needle #2: id is missing": _catalogue_text(GOOD_ROW, _with(id=None)),
        "needle 'test_22g': id is used by an earlier needle": _catalogue_text(GOOD_ROW, GOOD_ROW),
        "format_version must be 2": _catalogue_text(GOOD_ROW).replace("format_version = 2", "format_version = 1"),
        "not valid TOML": _catalogue_text(GOOD_ROW) + "length_mm = = 3\n",
        "needle: no [[needle]] tables": "format_version = 2\n",
    }
    for expected, text in cases.items():
        with pytest.raises(SpineSimError) as info:
            parse_needle_catalogue(text, "tmp/needles.toml")
        message = str(info.value)
        assert "\n" not in message and message.startswith("tmp/needles.toml: ") and expected in message, message
    with pytest.raises(SpineSimError, match=r"^assets/needles\.toml: needle 'test_22g': length_mm must be > 0$"):
        parse_needle_catalogue(_catalogue_text(_with(length_mm=0.0)))
    assert CATALOGUE_SOURCE == "assets/needles.toml"
