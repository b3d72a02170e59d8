"""What a needle meets on the known paths of every procedure family, on several seeded patients:
the ordered tissues a real needle tracks from the skin (paramedian lumbar interlaminar, cervical
C7-T1, caudal through the hiatus, transforaminal below the pedicle, onto the SAP-TP junction, into
the lower third of the sacroiliac joint).

The needle is a catalogue needle with its drift set to zero, so it follows the planned straight
line exactly and the test checks the anatomy and the needle's tissue tracking, not its steering.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulator.anatomy.landmarks import compute_landmarks
from simulator.anatomy.tissues import tid, tissue_table
from simulator.geometry import frames
from simulator.needle.needle import Needle
from simulator.needle.spec import needle_spec

from simulator.imaging.views import squaring_tilt_deg
from simulator.procedures.lumbar_interlaminar import clear_path_entry

from spine_helpers import clear_line, dedup, lines_to_the_midline, phantom, skin_entry_on_line, slit_point, tilted

SEEDS = (1, 2, 3, 4)
BONE = {"cortical_bone", "cancellous_bone"}
SOFT_COVER = ["skin", "subcutaneous_fat", "thoracolumbar_fascia"]


def _straight(needle_id: str, tissue_at) -> Needle:
    spec = dataclasses.replace(needle_spec(needle_id), steer_mm_per_100mm=0.0, length_mm=200.0)
    return Needle(spec, tissue_at)


def _needle_to(ph, target: np.ndarray, direction: np.ndarray, needle_id: str = "quincke_22g_89mm",
               beyond_mm: float = 0.0) -> tuple[list[str], Needle]:
    """Enter on the line to ``target`` and advance in 5 mm steps to ``beyond_mm`` past it (or bone):
    the tissue sequence the needle tracked, and the needle."""
    direction = frames.unit(direction)
    entry = skin_entry_on_line(ph.tissue_at, target, direction)
    needle = _straight(needle_id, ph.tissue_at)
    needle.set_entry(entry, direction)
    goal = float(np.linalg.norm(target - entry)) + beyond_mm
    while needle.depth_mm < goal - 0.05:
        step = needle.advance(min(5.0, goal - needle.depth_mm))
        if step.bone_contact or step.moved_mm == 0.0:
            break
    return dedup(run.tissue for run in needle.tissue_runs()), needle


# ------------------------------------------------------------------------------ interlaminar
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("side", (1, -1))
def test_paramedian_interlaminar_path_goes_through_muscle_and_flavum(seed, side):
    """Paramedian L4-L5: entering 10-16 mm from the midline and angled towards it, the needle
    crosses skin, fat, fascia and paraspinal muscle, then the ligamentum flavum into the epidural
    fat, never the supraspinous or interspinous ligament."""
    ph = phantom(seed)
    midline_target = compute_landmarks(ph)["L4-L5.epidural_target"]
    # the paramedian needle aims for the epidural fat just to its own side of the midline
    target = next(p for p in (midline_target + np.array([side * off, 0.0, 0.0]) for off in (6.0, 5.0, 4.0, 3.0))
                  if ph.tissue_at(p[None])[0] == tid("epidural_fat"))
    candidates = [tilted(medial, cranial, side) for medial in (10.0, 15.0, 20.0, 5.0)
                  for cranial in (10.0, 15.0, 20.0, 25.0, 5.0, 30.0)]
    direction = clear_line(ph.tissue_at, target, candidates, avoid=("interspinous_ligament", "supraspinous_ligament"))
    assert direction is not None, "no paramedian line reaches the epidural fat clear of bone and midline"
    seq, needle = _needle_to(ph, target, direction, "tuohy_20g_89mm")
    assert seq[:3] == SOFT_COVER, seq
    assert "muscle" in seq
    assert not {"supraspinous_ligament", "interspinous_ligament"} & set(seq), seq
    assert seq.index("ligamentum_flavum") < seq.index("epidural_fat"), seq
    assert seq[-1] == "epidural_fat", seq
    lateral_mm = abs(needle.entry_mm[0] - midline_target[0])
    assert 8.0 < lateral_mm < 40.0


@pytest.mark.parametrize("seed", SEEDS)
def test_cervical_c7_t1_path(coarse_anatomy, seed):
    """C7-T1 on the expert's path (midline where the long C7 and T1 spinous processes leave a
    line, otherwise just paramedian, as the reference allows): skin and fat, then the ligaments
    between the spinous processes or the paraspinal muscle, then the ligamentum flavum (or the fat
    in the slit between unfused halves) into the epidural fat, the dura beyond; no bone."""
    anatomy = coarse_anatomy(seed, levels=("C6", "T2"))
    target = anatomy.landmark("C7-T1.epidural_target")
    entry, direction = clear_path_entry(anatomy, target, squaring_tilt_deg(anatomy, "C7-T1"))
    seq, _ = _needle_to(anatomy, target, direction, "tuohy_20g_89mm", beyond_mm=6.0)
    assert seq[:2] == ["skin", "subcutaneous_fat"], seq
    assert not BONE & set(seq), seq
    assert {"supraspinous_ligament", "interspinous_ligament", "muscle"} & set(seq), seq
    flavum = next(t for t in seq if t in ("ligamentum_flavum", "interlaminar_fat"))
    assert seq.index(flavum) < seq.index("epidural_fat") < seq.index("dura"), seq


@pytest.mark.parametrize("seed", (2, 3, 4))
def test_a_needle_through_a_cervical_midline_gap_meets_fat_not_ligament(seed):
    """Where the C7-T1 flavum is unfused (seeds 2-4), a line through the slit crosses fat where
    the ligament would be, then the epidural fat: no leathery ligament before the epidural space."""
    ph = phantom(seed)
    assert ph.morphometry.disc("C7-T1").ligamentum_flavum_gap
    slit = slit_point(ph.tissue_at, compute_landmarks(ph)["C7-T1.interlaminar_center"],
                      ph.by_level["C7"].axis([0.0, 1.0, 0.0]))
    assert slit is not None
    direction = clear_line(ph.tissue_at, slit, lines_to_the_midline())
    assert direction is not None, "no line reaches the slit clear of bone"
    seq, _ = _needle_to(ph, slit, direction, beyond_mm=4.0)
    assert seq.index("interlaminar_fat") < seq.index("epidural_fat"), seq
    assert "ligamentum_flavum" not in seq[seq.index("interlaminar_fat"):], seq


# ------------------------------------------------------------------------------ caudal
@pytest.mark.parametrize("seed", SEEDS)
def test_caudal_needle_pierces_the_sacrococcygeal_ligament_into_the_canal(seed):
    """Caudal: entering over the hiatus at 45 degrees to the canal, cephalad, the needle crosses
    skin and fat, pierces the sacrococcygeal ligament and is in the sacral canal (epidural fat)
    with no bone on the way; it pops through the ligament."""
    ph = phantom(seed)
    frame, shape = ph.sacral_frame, ph.sacrum_shape
    s = shape.hiatus_apex_s_mm + 8.0 * shape.scale
    inside = frame.to_world(0.0, s, float(shape.canal_centre_ap(s)))
    down, anterior = frame.axis_at(s)
    direction = np.cos(np.radians(45.0)) * -down + np.sin(np.radians(45.0)) * anterior
    seq, needle = _needle_to(ph, inside, direction)
    assert seq[:2] == ["skin", "subcutaneous_fat"], seq
    assert not BONE & set(seq), seq
    assert seq[-2:] == ["sacrococcygeal_ligament", "epidural_fat"], seq
    from simulator.needle.resistance import pops

    assert pops(tid("sacrococcygeal_ligament"), tid("epidural_fat"))
    assert needle.tip_tissue() == "epidural_fat"


# ------------------------------------------------------------------------------ transforaminal
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("side", ("left", "right"))
def test_transforaminal_path_below_the_pedicle(seed, side):
    """Lumbar transforaminal L4-L5 (the safe triangle): from an oblique posterolateral entry, a
    line to the foramen just below the L4 pedicle crosses skin, fat, fascia and muscle and ends in
    the foramen's fat, no bone and no nerve root on the way."""
    ph = phantom(seed)
    lm = compute_landmarks(ph)
    sign = 1 if side == "right" else -1
    pedicle = lm[f"L4.pedicle_{side}_center"]
    foramen = lm[f"L4-L5.foramen_{side}_center"]
    table = tissue_table()
    # the highest point of the foramen's fat below the pedicle (the roof of the safe triangle)
    found = None
    for dz in np.arange(2.0, 16.0, 0.5):
        point = np.array([foramen[0], foramen[1], pedicle[2] - dz])
        if table[int(ph.tissue_at(point[None])[0])].name == "epidural_fat":
            found = point
            break
    assert found is not None, "no foraminal fat under the pedicle"
    candidates = [tilted(medial, cranial, sign)
                  for medial in (20.0, 25.0, 30.0, 35.0, 40.0, 45.0) for cranial in (0.0, 10.0, -10.0)]
    direction = clear_line(ph.tissue_at, found, candidates)
    assert direction is not None, "no oblique line reaches the foramen clear of bone"
    seq, needle = _needle_to(ph, found, direction, "quincke_22g_127mm")
    assert seq[:3] == SOFT_COVER, seq
    assert "muscle" in seq
    assert seq[-1] == "epidural_fat", seq
    assert "nerve_root" not in seq and not BONE & set(seq), seq
    assert needle.tip_mm[2] < pedicle[2]


# ------------------------------------------------------------------------------ medial branch
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("level", ("L3", "L4", "L5"))
def test_medial_branch_needle_stops_on_the_sap_tp_junction(seed, level):
    """Lumbar medial branch block: an oblique needle aimed at the junction of the superior
    articular process and the transverse process goes through skin, fat, fascia and muscle and
    stops on bone there (within 3 mm of the junction)."""
    ph = phantom(seed)
    junction = compute_landmarks(ph)[f"{level}.sap_tp_junction_right"]
    for medial in (20.0, 15.0, 25.0, 10.0, 30.0, 35.0):
        seq, needle = _needle_to(ph, junction, tilted(medial, 0.0, 1), beyond_mm=10.0)
        if needle.on_bone and np.linalg.norm(needle.tip_mm - junction) < 3.0:
            break
    else:
        pytest.fail("no oblique needle from 10 to 35 degrees lands on the junction")
    assert seq[:3] == SOFT_COVER and seq[-1] == "muscle", seq


# ------------------------------------------------------------------------------ sacroiliac joint
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("side", ("left", "right"))
def test_sacroiliac_needle_enters_the_lower_third_of_the_joint(seed, side):
    """Sacroiliac joint: aimed at the lower third from behind (within 15 degrees of straight
    sideways and 20 cranio-caudally, as the oblique and tilted views align the joint lines), the needle crosses skin, fat, fascia and muscle and
    enters the joint space, not bone."""
    ph = phantom(seed)
    target = compute_landmarks(ph)[f"sij_{side}_lower_third"]
    sign = 1 if side == "right" else -1
    candidates = [tilted(medial, cranial, sign) for medial in (0.0, 5.0, -5.0, 10.0, -10.0, 15.0, -15.0)
                  for cranial in (0.0, 10.0, -10.0, 20.0, -20.0)]
    direction = clear_line(ph.tissue_at, target, candidates)
    assert direction is not None, "the lower third of the joint is roofed by bone"
    seq, needle = _needle_to(ph, target, direction)
    assert seq[:3] == SOFT_COVER, seq
    assert seq[-1] == "sacroiliac_joint" and not BONE & set(seq), seq
    assert needle.tip_tissue() == "sacroiliac_joint"
