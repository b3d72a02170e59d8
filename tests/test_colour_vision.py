"""The 3D view's colours stay apart for colour-blind trainees: the target zone is never told from a
danger structure by red against green alone."""

from __future__ import annotations

import pytest

from simulator.scene.colour_vision import delta_e, simulate
from simulator.scene.scene import GROUP_COLOURS, PATH_COLOUR, TARGET_COLOUR

#: Plainly different at a glance (CIE76); a classic red/green pair falls under it for a deuteranope.
APART = 20.0
DANGER_GROUPS = ("neural", "vessel", "organ", "disc")


def test_the_check_would_catch_a_red_green_scheme():
    red, green = (220, 40, 40), (40, 200, 40)
    assert delta_e(red, green) > 100  # obvious with normal vision
    assert delta_e(red, green, "deuteranopia") < APART  # a deuteranope barely tells them apart


@pytest.mark.parametrize("deficiency", [None, "protanopia", "deuteranopia", "tritanopia"])
@pytest.mark.parametrize("group", DANGER_GROUPS)
def test_the_target_zone_stands_apart_from_every_danger_structure(group, deficiency):
    assert delta_e(TARGET_COLOUR, GROUP_COLOURS[group], deficiency) > APART


@pytest.mark.parametrize("deficiency", [None, "protanopia", "deuteranopia", "tritanopia"])
def test_the_needle_path_stands_apart_from_the_target_and_the_danger_structures(deficiency):
    assert delta_e(PATH_COLOUR, TARGET_COLOUR, deficiency) > APART
    for group in DANGER_GROUPS:
        assert delta_e(PATH_COLOUR, GROUP_COLOURS[group], deficiency) > APART, group


def test_grey_looks_grey_to_everyone():
    # the simulation keeps neutral colours neutral (a check of the matrices as typed)
    for deficiency in ("protanopia", "deuteranopia", "tritanopia"):
        seen = simulate((128, 128, 128), deficiency)
        assert max(seen) - min(seen) < 2.0
