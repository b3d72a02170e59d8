"""What a needle meets on its way to the epidural space: the layers of a midline approach in
anatomical order, no bone on an expert's path, muscle on a paramedian path."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.imaging.views import squaring_tilt_deg
from simulator.procedures.lumbar_interlaminar import clear_path_entry

from spine_helpers import dedup, tissues_along

SEEDS = (1, 3, 4)
BONE = {"cortical_bone", "cancellous_bone"}
#: How far past the target the path is followed: through the epidural fat and the dura into the sac.
PAST_TARGET_MM = 12.0


def expected_midline_layers(patient, interspace: str) -> list[str]:
    """Layers from the skin to the dura in the midline. The supraspinous ligament runs over the
    spinous tips down to the level ``patient.supraspinous_ends_at``: it covers an interspace only
    if it reaches the interspace's lower vertebra."""
    order = ["L1", "L2", "L3", "L4", "L5"]
    lower = interspace.split("-")[1]
    has_ssl = lower in order and order.index(lower) <= order.index(patient.supraspinous_ends_at)
    layers = ["skin", "subcutaneous_fat", "thoracolumbar_fascia"]
    if has_ssl:
        layers.append("supraspinous_ligament")
    return layers + ["interspinous_ligament", "ligamentum_flavum", "epidural_fat", "dura"]


_PATHS: dict = {}


def midline_path(anatomy, interspace: str, tilt_deg: float):
    """The expert's midline path to the epidural target and the tissues along it (computed once)."""
    key = (anatomy.info.cache_key, interspace, round(tilt_deg, 6))
    if key not in _PATHS:
        target = anatomy.landmark(f"{interspace}.epidural_target")
        entry, direction = clear_path_entry(anatomy, target, tilt_deg)
        length = float(np.linalg.norm(target - entry)) + PAST_TARGET_MM
        _PATHS[key] = entry, direction, tissues_along(anatomy.tissue_at, entry, direction, length)
    return _PATHS[key]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("interspace", ("L3-L4", "L4-L5"))
@pytest.mark.parametrize("tilt", ("ap", "squared"))
def test_midline_path_meets_the_layers_in_order(coarse_anatomy, seed, interspace, tilt):
    """Skin, fat, fascia, (supraspinous,) interspinous ligament, ligamentum flavum, epidural fat,
    dura, then CSF or cauda equina: nothing else, in this order, along the expert's midline path
    (followed 12 mm past the target), with the beam straight AP or tilted to square the endplate."""
    anatomy = coarse_anatomy(seed)
    tilt_deg = 0.0 if tilt == "ap" else squaring_tilt_deg(anatomy, interspace)
    _, _, tissues = midline_path(anatomy, interspace, tilt_deg)
    sequence = dedup(tissues)
    expected = expected_midline_layers(anatomy.patient, interspace)
    assert sequence[:len(expected)] == expected, (
        f"seed {seed} {interspace} (supraspinous ligament ends at {anatomy.patient.supraspinous_ends_at}): "
        f"met {sequence}")
    assert sequence[len(expected)] in ("csf", "cauda_equina"), sequence


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("interspace", ("L3-L4", "L4-L5"))
@pytest.mark.parametrize("tilt", ("ap", "squared"))
def test_expert_midline_path_is_free_of_bone(coarse_anatomy, seed, interspace, tilt):
    """The path the expert's technique chooses ("bone-free") has no bone on it at the needle's own
    0.1 mm tracking step, so a needle following it is never stopped."""
    anatomy = coarse_anatomy(seed)
    tilt_deg = 0.0 if tilt == "ap" else squaring_tilt_deg(anatomy, interspace)
    entry, direction, tissues = midline_path(anatomy, interspace, tilt_deg)
    hits = [i * 0.1 for i, t in enumerate(tissues) if t in BONE]
    assert not hits, f"seed {seed} {interspace}: bone at depth {hits[0]:.1f} mm on the chosen path"


@pytest.mark.parametrize("seed", (1, 2, 3, 4, 5, 6))
@pytest.mark.parametrize("interspace", ("L3-L4", "L4-L5", "L5-S1"))
def test_a_midline_path_reaches_every_interspace(coarse_anatomy, seed, interspace):
    """For every seeded patient there is a straight bone-free midline path to the epidural target
    at each lumbar interspace (the expert's attempt depends on it)."""
    anatomy = coarse_anatomy(seed)
    target = anatomy.landmark(f"{interspace}.epidural_target")
    try:
        clear_path_entry(anatomy, target, squaring_tilt_deg(anatomy, interspace))
    except RuntimeError as err:
        p = anatomy.patient
        pytest.fail(f"seed {seed} ({p.sex}, {p.height_cm:.0f} cm, lordosis {p.lordosis_deg:.0f} deg) "
                    f"{interspace}: {err}")


@pytest.mark.parametrize("seed", (1, 2, 3, 4))
@pytest.mark.parametrize("interspace", ("L3-L4", "L4-L5", "L5-S1"))
def test_target_landmarks_lie_in_their_tissues(coarse_anatomy, seed, interspace):
    """The interlaminar centre lies in the ligamentum flavum and the epidural target in the
    epidural fat, in the midline."""
    anatomy = coarse_anatomy(seed)
    centre = anatomy.landmark(f"{interspace}.interlaminar_center")
    target = anatomy.landmark(f"{interspace}.epidural_target")
    assert tissues_along(anatomy.tissue_at, centre, [0, 1, 0], 0.05) == ["ligamentum_flavum"]
    assert tissues_along(anatomy.tissue_at, target, [0, 1, 0], 0.05) == ["epidural_fat"]
    # in the spine's midline (a scoliotic spine's midline is off x = 0, its vertebrae turned and
    # shifted one against the next): within the span of the two vertebrae's spinous tips and body
    # centres
    upper, lower = interspace.split("-")
    midline_x = [anatomy.landmark(f"{upper}.spinous_tip")[0], anatomy.landmark(f"{upper}.body_center")[0]]
    if lower == "S1":
        midline_x.append(anatomy.landmark("S1.superior_endplate_center")[0])
    else:
        midline_x += [anatomy.landmark(f"{lower}.spinous_tip")[0], anatomy.landmark(f"{lower}.body_center")[0]]
    for point in (centre, target):
        assert min(midline_x) - 0.5 < point[0] < max(midline_x) + 0.5
    # the target is in front of (anterior to) the flavum
    assert target[1] > centre[1]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("side", (1, -1))
def test_paramedian_path_meets_muscle_not_the_midline_ligaments(coarse_anatomy, seed, side):
    """A needle entering 15 mm off the midline at L4-L5 and going straight forward passes through
    the paraspinal muscle, not the supraspinous or interspinous ligament."""
    anatomy = coarse_anatomy(seed)
    point = anatomy.landmark("L4-L5.interlaminar_center") + np.array([side * 15.0, 0.0, 0.0])
    entry = anatomy.skin_point_behind(point)
    tissues = tissues_along(anatomy.tissue_at, entry, [0, 1, 0], float(point[1] - entry[1]))
    before_bone = []
    for t in tissues:
        if t in BONE:
            break
        before_bone.append(t)
    sequence = dedup(before_bone)
    assert sequence[:3] == ["skin", "subcutaneous_fat", "thoracolumbar_fascia"], sequence
    assert "muscle" in sequence
    assert "interspinous_ligament" not in sequence and "supraspinous_ligament" not in sequence, sequence
