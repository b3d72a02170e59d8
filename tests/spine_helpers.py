"""Helpers shared by the test modules: measuring the phantom along lines, tissue sequences, and
driving a simulation the way a trainee would."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from simulator.anatomy.patient import PatientParameters
from simulator.anatomy.phantom import SpinePhantom
from simulator.anatomy.tissues import tissue_table
from simulator.imaging.views import squaring_tilt_deg
from simulator.procedures.lumbar_interlaminar import clear_path_entry
from simulator.protocol import commands as cmd

#: Sampling step along measurement lines, mm (the needle tracks tissue at the same step).
STEP_MM = 0.1

FLUORO_L4L5 = "lumbar_interlaminar_l4l5_fluoroscopy"
LANDMARK_L4L5 = "lumbar_interlaminar_l4l5_landmark"
FLUORO_L5S1 = "lumbar_interlaminar_l5s1_fluoroscopy"
LANDMARK_L5S1 = "lumbar_interlaminar_l5s1_landmark"


@lru_cache(maxsize=None)
def phantom(seed: int, **patient) -> SpinePhantom:
    """A seeded patient's phantom (exact tissue queries, no voxel volume)."""
    return SpinePhantom(PatientParameters(seed=seed, **patient).resolved())


def names(ids) -> list[str]:
    table = tissue_table()
    return [table[int(i)].name for i in np.ravel(ids)]


def dedup(seq) -> list[str]:
    """Consecutive repeats removed: the order in which tissues are met."""
    out: list[str] = []
    for s in seq:
        if not out or out[-1] != s:
            out.append(s)
    return out


def tissues_along(tissue_at, start, direction, length_mm: float, step_mm: float = STEP_MM) -> list[str]:
    """Tissue names every ``step_mm`` from ``start`` along ``direction`` for ``length_mm``."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    t = np.arange(0.0, length_mm, step_mm)
    return names(tissue_at(np.asarray(start, float) + t[:, None] * d))


def bone_along_local(ph: SpinePhantom, seg, centre_local, dir_local, t: np.ndarray) -> np.ndarray:
    """Whether each point ``centre + t * dir`` (a vertebra's body frame) is bone."""
    d = np.asarray(dir_local, float)
    d = d / np.linalg.norm(d)
    pts = seg.to_world(np.asarray(centre_local, float) + t[:, None] * d)
    return tissue_table().is_bone[ph.tissue_at(pts)]


def run_length(mask: np.ndarray, t: np.ndarray, i0: int) -> tuple[float, float]:
    """Ends (t values) of the run of equal ``mask`` values containing index ``i0``."""
    value = mask[i0]
    lo = i0
    while lo > 0 and mask[lo - 1] == value:
        lo -= 1
    hi = i0
    while hi < len(mask) - 1 and mask[hi + 1] == value:
        hi += 1
    return float(t[lo]), float(t[hi])


def bone_extent(ph, seg, centre_local, dir_local, reach_mm: float = 60.0) -> float:
    """Length of the bone run through ``centre`` along ``dir`` (body frame); 0 if not in bone."""
    t = np.arange(-reach_mm, reach_mm + 1e-9, STEP_MM)
    bone = bone_along_local(ph, seg, centre_local, dir_local, t)
    i0 = int(np.argmin(np.abs(t)))
    if not bone[i0]:
        return 0.0
    lo, hi = run_length(bone, t, i0)
    return hi - lo + STEP_MM


def gap_extent(ph, seg, centre_local, dir_local, reach_mm: float = 60.0) -> tuple[float, float]:
    """Free (non-bone) run through ``centre`` along ``dir``: distances to the bone on each side
    (negative side first, as positive numbers)."""
    t = np.arange(-reach_mm, reach_mm + 1e-9, STEP_MM)
    bone = bone_along_local(ph, seg, centre_local, dir_local, t)
    i0 = int(np.argmin(np.abs(t)))
    assert not bone[i0], "the measurement starts inside bone"
    lo, hi = run_length(bone, t, i0)
    return -(lo - STEP_MM / 2), hi + STEP_MM / 2


# ------------------------------------------------------------------------ planning a straight line
def skin_entry_on_line(tissue_at, target: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Where the line ending at ``target`` along ``direction`` meets the skin."""
    t = np.arange(0.0, 300.0, 0.1)
    pts = target - direction * 300.0 + t[:, None] * direction
    first = int(np.argmax(tissue_at(pts) != tissue_table().id("air")))
    return pts[first]


def tilted(medial_deg: float, cranial_deg: float, side: int) -> np.ndarray:
    """Forward (anterior), turned ``medial_deg`` towards the midline for a needle entering on the
    ``side`` (+1 right) and ``cranial_deg`` towards the head."""
    m, c = np.radians(medial_deg), np.radians(cranial_deg)
    d = np.array([-side * np.sin(m) * np.cos(c), np.cos(m) * np.cos(c), np.sin(c)])
    return d / np.linalg.norm(d)


def clear_line(tissue_at, target, candidates, avoid=()):
    """The first candidate direction whose line from the skin to ``target`` crosses no bone and
    none of the tissues ``avoid`` (the clinician's adjustment of angle until the path is clear)."""
    table = tissue_table()
    blocked = table.is_bone.copy()
    for name in avoid:
        blocked[table.id(name)] = True
    for d in candidates:
        d = np.asarray(d, float) / np.linalg.norm(d)
        entry = skin_entry_on_line(tissue_at, target, d)
        t = np.arange(0.0, float(np.linalg.norm(target - entry)), 0.1)
        if not blocked[tissue_at(entry + t[:, None] * d)].any():
            return d
    return None


def slit_point(tissue_at, interlaminar_centre: np.ndarray, forward: np.ndarray) -> np.ndarray | None:
    """The middle of the fat-filled midline slit of an unfused ligamentum flavum, on the line
    forward through the interlaminar centre (``None`` if the ligament is fused there)."""
    t = np.arange(-6.0, 6.0, 0.1)
    line = interlaminar_centre + t[:, None] * forward
    inside = line[tissue_at(line) == tissue_table().id("interlaminar_fat")]
    return inside[len(inside) // 2] if len(inside) else None


def lines_to_the_midline(side_first: int = 1) -> list[np.ndarray]:
    """Candidate directions for a line to a midline point between long spinous processes: from
    either side, 5-25 degrees towards the midline, 0-47.5 degrees cranially."""
    return [tilted(medial, cranial, side) for cranial in np.arange(0.0, 50.0, 2.5)
            for medial in (5.0, 10.0, 15.0, 20.0, 25.0) for side in (side_first, -side_first)]


# ------------------------------------------------------------------------ driving a simulation
def events_of(events, kind: str) -> list:
    return [e for e in events if e.kind == kind]


def enter_on_path(sim, entry, direction) -> None:
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry),
                           direction=tuple(float(v) for v in direction)))


def advance_to(sim, depth_mm: float, step_mm: float = 5.0) -> None:
    """Advance in steps of at most ``step_mm`` until the tip is ``depth_mm`` deep."""
    while sim.needle.depth_mm < depth_mm - 0.05:
        events = sim.apply(cmd.Advance(distance_mm=min(step_mm, depth_mm - sim.needle.depth_mm)))
        assert events_of(events, "needle_advanced")[0].data["moved_mm"] > 0.0, "the needle is stuck"


def advance_until_loss(sim, max_depth_mm: float, step_mm: float = 1.0, medium: str = "saline") -> list:
    """Small steps with a syringe test after each, until a loss of resistance (returns the readings
    as (depth, tissue at the tip, pressure, events of the step))."""
    readings = []
    while sim.needle.depth_mm < max_depth_mm:
        events = sim.apply(cmd.Advance(distance_mm=step_mm))
        assert events_of(events, "needle_advanced")[0].data["moved_mm"] > 0.0, "the needle is stuck"
        events += sim.apply(cmd.TestLossOfResistance(medium=medium))
        pressure = events_of(events, "loss_of_resistance_tested")[0].data["pressure_mmhg"]
        readings.append((sim.needle.depth_mm, sim.needle.tip_tissue(), pressure, events))
        if events_of(events, "loss_of_resistance"):
            break
    return readings


def midline_path(sim, interspace: str):
    """The midline path to the interspace's epidural target: entry, direction, depth (mm)."""
    anatomy = sim.anatomy
    target = anatomy.landmark(f"{interspace}.epidural_target")
    tilt = squaring_tilt_deg(anatomy, interspace) if sim.guidance == "fluoroscopy" else 0.0
    entry, direction = clear_path_entry(anatomy, target, tilt)
    return entry, direction, float(np.linalg.norm(target - entry))


def needle_to_loss(sim, interspace: str) -> None:
    """Midline entry, quickly through the superficial layers, then 1 mm steps with a saline test
    after each until the resistance is lost."""
    entry, direction, depth = midline_path(sim, interspace)
    enter_on_path(sim, entry, direction)
    advance_to(sim, max(0.0, depth - 16.0))
    readings = advance_until_loss(sim, depth + 8.0)
    assert events_of(readings[-1][3], "loss_of_resistance"), "no loss of resistance on the midline path"
