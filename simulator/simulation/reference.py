"""The expert's attempt (reference solution): the technique an expert uses, computed from the
patient's own anatomy so it works on any seeded patient.

Fluoroscopy: AP with the target endplate squared to confirm the level; a trajectory as close to
coaxial with the beam as the spinous processes allow; a lateral view to check depth on the way;
small steps with a saline loss-of-resistance test after each one near the ligamentum flavum;
contrast, a lateral and an AP image; finish. Landmark: palpate the iliac crests and the spinous
processes, enter in the midline at the interspace, the same loss-of-resistance technique.
"""

from __future__ import annotations

import numpy as np

from simulator.procedures import lumbar_interlaminar as procedure
from simulator.protocol import commands as cmd
from simulator.simulation.simulation import Simulation


def _advance_to_loss(sim: Simulation, max_depth_mm: float) -> bool:
    """1 mm steps with a saline test after each, until the resistance is lost."""
    while sim.needle.depth_mm < max_depth_mm:
        events = sim.apply(cmd.Advance(distance_mm=1.0))
        if any(e.kind == "bone_contacted" for e in events):
            return False
        events = sim.apply(cmd.TestLossOfResistance(medium="saline"))
        if any(e.kind == "loss_of_resistance" for e in events):
            return True
    return False


def run_reference(sim: Simulation, finish: bool = True) -> Simulation:
    """Drive ``sim`` through the expert's attempt (every step is an ordinary command)."""
    anatomy = sim.anatomy
    interspace = sim.scenario.target_level
    target = anatomy.landmark(f"{interspace}.epidural_target")
    window = anatomy.landmark(f"{interspace}.interlaminar_center")
    fluoro = sim.guidance == "fluoroscopy"
    tilt = procedure.squaring_tilt_deg(anatomy, interspace) if fluoro else 0.0
    iso = tuple(float(v) for v in window)
    if fluoro:
        sim.apply(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=tilt, isocentre_mm=iso))
        sim.apply(cmd.AcquireImage())
    else:
        for side in ("left", "right"):
            # the skin over the crest top, pressed from behind
            crest = anatomy.landmark(f"iliac_crest_{side}_top")
            sim.apply(cmd.Palpate(point_mm=tuple(float(v) for v in anatomy.skin_point_behind(crest))))
        upper, lower = interspace.split("-")
        for level in (upper, lower):
            if level == "S1":
                continue
            tip = anatomy.landmark(f"{level}.spinous_tip")
            sim.apply(cmd.Palpate(point_mm=tuple(float(v) for v in anatomy.skin_point_behind(tip))))
    entry, direction = procedure.clear_path_entry(anatomy, target, tilt)
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=tuple(float(v) for v in direction)))
    total = float(np.linalg.norm(target - entry))
    # quickly through skin and fat to well short of the ligamentum flavum
    approach = max(0.0, total - 16.0)
    while sim.needle.depth_mm < approach - 1e-6:
        sim.apply(cmd.Advance(distance_mm=min(5.0, approach - sim.needle.depth_mm)))
    if fluoro:
        sim.apply(cmd.MoveCArm(oblique_deg=90.0, tilt_deg=0.0, isocentre_mm=iso))
        sim.apply(cmd.AcquireImage())
    _advance_to_loss(sim, total + 8.0)
    if fluoro:
        # contrast confirms the epidural spread (there is nothing to see it with in landmark mode)
        sim.apply(cmd.InjectContrast(volume_ml=1.5))
        sim.apply(cmd.AcquireImage())
        sim.apply(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=tilt, isocentre_mm=iso))
        sim.apply(cmd.AcquireImage())
    if finish:
        sim.apply(cmd.Finish())
    return sim
