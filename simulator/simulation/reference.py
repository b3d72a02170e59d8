"""The expert's attempt (reference solution): the technique an expert uses, computed from the
patient's own anatomy so it works on any seeded patient.

Fluoroscopy: AP with the target endplate squared to confirm the level; a trajectory as close to
coaxial with the beam as the spinous processes allow; a lateral view to check depth on the way;
small steps with a saline loss-of-resistance test after each one near the ligamentum flavum;
contrast, a lateral and an AP image; finish. Landmark: palpate the iliac crests and the spinous
processes (in the neck, from the vertebra prominens down), enter in the midline at the interspace,
the same loss-of-resistance technique.
"""

from __future__ import annotations

import itertools

import numpy as np

from simulator.anatomy.tissues import tissue_table
from simulator.geometry import frames
from simulator.imaging.views import pose_along, squaring_tilt_deg, standard_views
from simulator.needle.needle import Needle
from simulator.procedures import caudal
from simulator.procedures.anchored import ON_BONE, AnchoredProcedure
from simulator.procedures import lumbar_interlaminar as procedure
from simulator.errors import CommandRefused, SpineSimError
from simulator.protocol import commands as cmd
from simulator.scoring.metrics import bad_pattern
from simulator.simulation.simulation import Simulation


#: A loss of resistance this much short of the planned depth is not trusted: the expert knows the
#: depth of the epidural space (from the lateral image, or the patient's build) and a loss far
#: short of it is a false one (a cleft in a degenerate interspinous ligament, muscle beside the
#: midline). The slit of an unfused cervical flavum gives way only millimetres short: the expert
#: avoids it by entering just off the midline.
EARLY_LOSS_MM = 8.0
#: How far to the side of the midline the expert aims in the neck, mm.
CERVICAL_OFFSET_MM = 2.5


def _advance_to_loss(sim: Simulation, expected_mm: float, max_depth_mm: float) -> bool:
    """1 mm steps with a saline test after each, until the resistance is lost near the expected
    depth."""
    while sim.needle.depth_mm < max_depth_mm:
        events = sim.apply(cmd.Advance(distance_mm=1.0))
        if any(e.kind == "bone_contacted" for e in events):
            return False
        events = sim.apply(cmd.TestLossOfResistance(medium="saline"))
        if any(e.kind == "loss_of_resistance" for e in events) and sim.needle.depth_mm > expected_mm - EARLY_LOSS_MM:
            return True
    return False


#: Bevel rolls the expert tries (the Tuohy's curve to the head first, as usual) and, for each, the
#: redirection (cranial, right) per degree of drift that aims the needle against its drift.
_ROLLS = ((0.0, (-1.0, 0.0)), (180.0, (1.0, 0.0)), (90.0, (0.0, -1.0)), (270.0, (0.0, 1.0)))


#: The same with the drift turned sideways first: in the sacral canal, wider than it is deep.
_ROLLS_SIDEWAYS = (_ROLLS[2], _ROLLS[3], _ROLLS[0], _ROLLS[1])


def _aim_for_drift(sim: Simulation, length_mm: float) -> None:
    """Turn the bevel and aim against the needle's drift so that its arc ends on the planned line's
    end (an arc of curvature k leaves its chord's direction by k L / 2), choosing the first roll
    whose arc, tried on a probe needle, meets no bone short of the target."""
    needle = sim.needle
    drift_deg = float(np.degrees(0.5 * needle.curvature_per_mm * length_mm))
    if drift_deg <= 0.05:
        return
    table = tissue_table()
    chosen = _ROLLS[0]
    for roll, (cranial, right) in _ROLLS:
        probe = Needle(needle.spec, sim.anatomy.tissue_at)
        probe.set_entry(needle.entry_mm, needle.entry_direction)
        probe.rotate_bevel(roll)
        probe.redirect(cranial * drift_deg, right * drift_deg)
        while probe.depth_mm < length_mm - 0.05 and not probe.on_bone:
            if probe.advance(min(10.0, length_mm - probe.depth_mm)).moved_mm == 0.0:
                break
        if not probe.on_bone and not table.is_bone[probe.shaft_tissue_ids()].any():
            chosen = (roll, (cranial, right))
            break
    roll, (cranial, right) = chosen
    if roll:
        sim.apply(cmd.RotateBevel(roll_deg=roll))
    sim.apply(cmd.Redirect(cranial_deg=cranial * drift_deg, right_deg=right * drift_deg))


#: Reached by the needle before the expert looks down the beam: deep enough to stand in the tissue.
COAXIAL_CHECK_DEPTH_MM = 12.0
#: What stops the expert's straight advance along a planned line.
_STOP_KINDS = ("bone_contacted", "needle_length_exhausted", "paraesthesia")


def _advance_until(sim: Simulation, depth_mm: float, step_mm: float) -> bool:
    """Advance in steps of ``step_mm`` to ``depth_mm``; False if something stopped the needle."""
    while sim.needle.depth_mm < depth_mm - 0.05:
        events = sim.apply(cmd.Advance(distance_mm=min(step_mm, depth_mm - sim.needle.depth_mm)))
        if any(e.kind in _STOP_KINDS for e in events):
            return False
    return True


def _coaxial_image(sim: Simulation) -> None:
    """The trajectory view with the needle standing in the tissue: the C-arm turned until the beam
    runs down the needle (the hub over the tip), and an image."""
    needle = sim.needle
    oblique, tilt = pose_along(needle.tip_mm - needle.hub_mm)
    sim.apply(cmd.MoveCArm(oblique_deg=float(np.clip(oblique, -100.0, 100.0)), tilt_deg=float(np.clip(tilt, -45.0, 45.0)),
                           isocentre_mm=sim.carm_pose.isocentre_mm))
    sim.apply(cmd.AcquireImage())


def _enter_down_the_beam(sim: Simulation, total_mm: float, step_mm: float) -> bool:
    """Advance along the planned line to ``total_mm``, looking down the beam once the needle stands
    in the tissue (fluoroscopy); False if something stopped the needle."""
    if sim.guidance == "fluoroscopy":
        if not _advance_until(sim, min(COAXIAL_CHECK_DEPTH_MM, 0.5 * total_mm), step_mm):
            return False
        _coaxial_image(sim)
    return _advance_until(sim, total_mm, step_mm)


def run_reference(sim: Simulation, finish: bool = True) -> Simulation:
    """Drive ``sim`` through the expert's attempt (every step is an ordinary command)."""
    if sim.scenario.procedure == "caudal":
        return _caudal(sim, finish)
    if sim.scenario.procedure == "lumbar_transforaminal":
        return _lumbar_transforaminal(sim, finish)
    if isinstance(sim.procedure, AnchoredProcedure):
        return _anchored(sim, finish)
    anatomy = sim.anatomy
    interspace = sim.scenario.target_level
    target = anatomy.landmark(f"{interspace}.epidural_target")
    if sim.scenario.procedure == "cervical_interlaminar":
        # just off the midline, where the ligamentum flavum's halves are fused even when a midline
        # gap would give a false loss of resistance (Lirk 2003)
        target = target + CERVICAL_OFFSET_MM * frames.RIGHT
    window = anatomy.landmark(f"{interspace}.interlaminar_center")
    fluoro = sim.guidance == "fluoroscopy"
    tilt = squaring_tilt_deg(anatomy, interspace) if fluoro else 0.0
    iso = tuple(float(v) for v in window)
    if fluoro:
        sim.apply(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=tilt, isocentre_mm=iso))
        sim.apply(cmd.AcquireImage())
    else:
        upper, lower = interspace.split("-")
        if sim.scenario.procedure == "cervical_interlaminar":
            # count down from the vertebra prominens (C7), the most prominent spinous process
            levels = ["C6", "C7", "T1"]
        else:
            for side in ("left", "right"):
                # the hands on the flanks, over the crest tops (Tuffier's line)
                crest = anatomy.landmark(f"iliac_crest_{side}_top")
                sim.apply(cmd.Palpate(point_mm=tuple(float(v) for v in anatomy.skin_point_nearest(crest))))
            levels = [upper, lower]
        for level in levels:
            if level == "S1":
                continue
            tip = anatomy.landmark(f"{level}.spinous_tip")
            sim.apply(cmd.Palpate(point_mm=tuple(float(v) for v in anatomy.skin_point_behind(tip))))
    entry, direction = procedure.clear_path_entry(anatomy, target, tilt)
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=tuple(float(v) for v in direction)))
    total = float(np.linalg.norm(target - entry))
    _aim_for_drift(sim, total)
    # quickly through skin and fat to well short of the ligamentum flavum
    _enter_down_the_beam(sim, max(0.0, total - 16.0), 5.0)
    if fluoro:
        sim.apply(cmd.MoveCArm(oblique_deg=90.0, tilt_deg=0.0, isocentre_mm=iso))
        sim.apply(cmd.AcquireImage())
    _advance_to_loss(sim, total, total + 8.0)
    # contrast confirms the epidural spread (there is nothing to see it with in landmark mode)
    if _contrast_then_drug(sim, 1.5, live_s=None) and fluoro:
        sim.apply(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=tilt, isocentre_mm=iso))
        sim.apply(cmd.AcquireImage())
    if finish:
        sim.apply(cmd.Finish())
    return sim


def _caudal(sim: Simulation, finish: bool) -> Simulation:
    """Caudal (reference 3.1). Fluoroscopy: a lateral of the sacrum finds the hiatus; entry over it,
    cephalad and shallow; through the sacrococcygeal ligament (the give) and a short way up the
    canal; a lateral confirms the tip in the canal; aspirate; contrast under live AP fluoroscopy
    (the "Christmas tree"), and an AP image. Landmark: palpate both cornua and the hiatus between
    them, the same needle path, aspirate."""
    anatomy = sim.anatomy
    apex = anatomy.landmark("sacrum.hiatus_apex")
    iso = tuple(float(v) for v in apex)
    fluoro = sim.guidance == "fluoroscopy"
    if fluoro:
        sim.apply(cmd.MoveCArm(oblique_deg=90.0, tilt_deg=0.0, isocentre_mm=iso))
        sim.apply(cmd.AcquireImage())
    else:
        for name in ("sacrum.cornu_left", "sacrum.cornu_right", "sacrum.hiatus_apex"):
            point = anatomy.skin_point_behind(anatomy.landmark(name))
            sim.apply(cmd.Palpate(point_mm=tuple(float(v) for v in point)))
    total = _enter_as_planned(sim, _plan_caudal(sim))
    walk_offs = 0
    while sim.needle.depth_mm < total - 0.05:
        events = sim.apply(cmd.Advance(distance_mm=min(2.0, total - sim.needle.depth_mm)))
        if any(e.kind == "needle_length_exhausted" for e in events):
            break
        if any(e.kind == "bone_contacted" for e in events):
            if walk_offs == 3:
                break
            # on the canal's roof: back off and lower the hub a little (the tip goes deeper)
            walk_offs += 1
            for back_mm in (3.0, 6.0, 12.0):
                sim.apply(cmd.Withdraw(distance_mm=back_mm))
                try:
                    sim.apply(cmd.Redirect(cranial_deg=-1.5))
                    break
                except CommandRefused:
                    continue
    if fluoro:
        sim.apply(cmd.AcquireImage())  # the lateral: the tip in the canal, in front of the ligament
    sim.apply(cmd.Aspirate())
    if fluoro:
        sim.apply(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=0.0, isocentre_mm=iso))
    _contrast_then_drug(sim, 3.0, live_s=6.0)
    if finish:
        sim.apply(cmd.Finish())
    return sim


def _enter_as_planned(sim: Simulation, plan) -> float:
    """Put the needle on the skin as ``plan`` says (entry, direction, depth, (roll, cranial,
    right)), its bevel turned and aimed; returns the planned depth."""
    entry, direction, total, (roll, cranial_deg, right_deg) = plan
    sim.apply(cmd.SetEntry(point_mm=tuple(float(v) for v in entry), direction=tuple(float(v) for v in direction)))
    if roll:
        sim.apply(cmd.RotateBevel(roll_deg=roll))
    if cranial_deg or right_deg:
        sim.apply(cmd.Redirect(cranial_deg=cranial_deg, right_deg=right_deg))
    return total


def _plan_caudal(sim: Simulation):
    """The caudal plan: over the candidate targets just above the hiatus and the clear lines to
    each (see :func:`_plan_with_probe`)."""
    anatomy = sim.anatomy
    return _plan_with_probe(sim, [(t, caudal.expert_paths(anatomy, t)) for t in caudal.candidate_targets(anatomy)],
                            "epidural_fat", _ROLLS_SIDEWAYS)


def _plan_with_probe(sim: Simulation, plans, end_in, rolls, avoid: tuple[str, ...] = (), beyond_mm: float = 0.0):
    """The expert plans with the needle in hand: over ``plans`` (target, its candidate lines), the
    first line for which the needle, its bevel turned and aimed against its drift (tried on a
    probe), ends well (in tissue ``end_in``, or where ``end_in(probe, target)`` says) with
    no bone (nor any tissue of ``avoid``) on the way. The probe goes ``beyond_mm`` past the target
    (onto the bone of a target on bone). Returns (entry, direction, depth, (roll, cranial, right));
    the first line found, unaimed, if none will do."""
    if isinstance(end_in, str):
        tissue = end_in
        end_in = lambda probe, target: not probe.on_bone and probe.tip_tissue() == tissue  # noqa: E731
    anatomy, spec = sim.anatomy, sim.needle.spec
    table = tissue_table()
    blocked = table.is_bone.copy()
    for name in avoid:
        blocked[table.id(name)] = True
    first = None
    for target, lines in plans:
        for entry, direction in lines:
            total = float(np.linalg.norm(target - entry)) + beyond_mm
            first = first or (entry, direction, total, (0.0, 0.0, 0.0))
            drift_deg = float(np.degrees(0.5 * Needle(spec, anatomy.tissue_at).curvature_per_mm * total))
            for scale in (1.0, 0.5, 1.5):
                for roll, (cranial, right) in rolls or _MEASURED_ROLLS:
                    if rolls is None:
                        aim = tuple(scale * v for v in aim_against_drift(spec, entry, direction, roll, total))
                    else:
                        aim = (cranial * drift_deg * scale, right * drift_deg * scale)
                    probe = Needle(spec, anatomy.tissue_at)
                    probe.set_entry(entry, direction)
                    probe.rotate_bevel(roll)
                    probe.redirect(*aim)
                    while probe.depth_mm < total - 0.05 and not probe.on_bone:
                        if probe.advance(min(2.0, total - probe.depth_mm)).moved_mm == 0.0:
                            break
                    if not blocked[probe.shaft_tissue_ids()].any() and end_in(probe, target):
                        return entry, direction, total, (roll, *aim)
    if first is None:
        raise SpineSimError("no clear needle path to the target for this patient")
    return first


def _contrast_then_drug(sim: Simulation, volume_ml: float, live_s: float | None) -> bool:
    """Contrast (under live fluoroscopy for ``live_s`` seconds, or a spot injection and an image),
    read as an expert reads it: on a vascular, intrathecal or subdural pattern, move the needle a
    little and inject again (up to three times; reference 3.13, rule 5); then the procedure's
    drugs. In landmark mode, the drugs after the aspiration. Returns whether the drugs went in."""
    if sim.guidance == "fluoroscopy":
        for attempt in range(3):
            try:
                if live_s:
                    sim.apply(cmd.FluoroscopyOn(pulse_rate_pps=7.5))
                events = sim.apply(cmd.InjectContrast(volume_ml=volume_ml))
            except CommandRefused:
                return False  # the scenario's contrast is used up: an expert stops
            finally:
                if sim.fluoroscopy_on:
                    sim.apply(cmd.FluoroscopyOff(), t_s=sim.t_s + (live_s or 0.0))
            sim.apply(cmd.AcquireImage())
            run = next(e for e in events if e.kind == "contrast_injected")
            sim.apply(cmd.ReportPattern(pattern=run.data["vascular"] or run.data["compartment"]))
            if not bad_pattern(run):
                break
            if attempt == 2 or not _reposition(sim):
                return False
    for drug_id, ml in sim.procedure.expert_injectate:
        sim.apply(cmd.InjectDrug(drug_id=drug_id, volume_ml=ml))
    return True


def _reposition(sim: Simulation) -> bool:
    """Back the tip off 2 mm, turn it by a degree and go back in: a new spot a millimetre or two
    away (the expert's answer to a vascular pattern), kept only if the images still show the tip
    on target (else turned back and another way tried)."""
    def on_target() -> bool:
        needle = sim.needle
        return sim.procedure.classify(sim.anatomy, needle.tip_mm, sim.scenario, False,
                                      needle.tip_tissue_id()).outcome == "success"

    def move(cranial: float, right: float) -> bool:
        sim.apply(cmd.Withdraw(distance_mm=2.0))
        try:
            sim.apply(cmd.Redirect(cranial_deg=cranial, right_deg=right))
        except CommandRefused:
            sim.apply(cmd.Advance(distance_mm=2.0))
            return False
        sim.apply(cmd.Advance(distance_mm=2.0))
        return True

    for cranial, right in ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)):
        if move(cranial, right):
            if on_target():
                return True
            move(-cranial, -right)
    return False


#: Bevel rolls tried when the aim is measured (:func:`aim_against_drift`).
_MEASURED_ROLLS = tuple((roll, (0.0, 0.0)) for roll in (0.0, 180.0, 90.0, 270.0))


def aim_against_drift(spec, entry: np.ndarray, direction: np.ndarray, roll_deg: float,
                       depth_mm: float) -> tuple[float, float]:
    """The (cranial, right) redirection that brings the tip of a needle curving with its bevel at
    ``roll_deg`` back onto the straight line's end at ``depth_mm``: its drift measured in uniform
    tissue (as an expert knows how far a needle bends over a length), and the tip's response to a
    degree of each redirection, solved for the drift's opposite."""
    muscle = tissue_table().id("muscle")

    def tip_after(cranial: float, right: float) -> np.ndarray:
        free = Needle(spec, lambda points: np.full(len(points), muscle, np.int64))
        free.set_entry(entry, direction)
        free.rotate_bevel(roll_deg)
        free.redirect(cranial, right)
        free.advance(depth_mm)
        return free.tip_mm

    straight_end = entry + depth_mm * frames.unit(direction)
    drift = tip_after(0.0, 0.0) - straight_end
    response = np.stack([tip_after(1.0, 0.0), tip_after(0.0, 1.0)], axis=1) - (straight_end + drift)[:, None]
    aim, *_ = np.linalg.lstsq(response, -drift, rcond=None)
    return float(aim[0]), float(aim[1])


def _lumbar_transforaminal(sim: Simulation, finish: bool) -> Simulation:
    """Lumbar transforaminal (reference 3.4): the level on AP with the endplates squared; the
    ipsilateral oblique (Scotty dog) to plan the line under the pedicle; in along it to the safe
    triangle; depth on a lateral; contrast under live AP fluoroscopy; an AP image."""
    anatomy, sc = sim.anatomy, sim.scenario
    interspace, side = sc.target_level, sc.side
    from simulator.procedures import transforaminal

    target = transforaminal.foramen_anchor(anatomy, interspace, side)
    views = standard_views(anatomy, sc.procedure, interspace, side)
    iso = tuple(float(v) for v in anatomy.landmark(f"{interspace}.foramen_{side}_center"))
    ap = views["AP, endplates squared"]
    fluoro = sim.guidance == "fluoroscopy"
    if fluoro:
        sim.apply(cmd.MoveCArm(oblique_deg=ap[0], tilt_deg=ap[1], isocentre_mm=iso))
        sim.apply(cmd.AcquireImage())
        oblique = views.get("ipsilateral oblique (Scotty dog)") or views.get("facet view (along the joint)")
        if oblique is not None:
            sim.apply(cmd.MoveCArm(oblique_deg=oblique[0], tilt_deg=oblique[1], isocentre_mm=iso))
            sim.apply(cmd.AcquireImage())
    else:
        # the landmark case shows why it is not done blind: the level by the spinous processes
        for level in interspace.split("-"):
            if level != "S1":
                point = anatomy.skin_point_behind(anatomy.landmark(f"{level}.spinous_tip"))
                sim.apply(cmd.Palpate(point_mm=tuple(float(v) for v in point)))
    total = _enter_as_planned(sim, _plan_with_probe(
        sim, [(target, transforaminal.expert_lines(anatomy, target, side))], "epidural_fat", None,
        avoid=("nerve_root", "dura", "disc_annulus")))
    _enter_down_the_beam(sim, total, 3.0)
    if fluoro:
        sim.apply(cmd.MoveCArm(oblique_deg=90.0, tilt_deg=ap[1], isocentre_mm=iso))
        sim.apply(cmd.AcquireImage())
        sim.apply(cmd.MoveCArm(oblique_deg=ap[0], tilt_deg=ap[1], isocentre_mm=iso))
    sim.apply(cmd.Aspirate())
    _contrast_then_drug(sim, 1.0, live_s=4.0)
    if finish:
        sim.apply(cmd.Finish())
    return sim


def _anchored(sim: Simulation, finish: bool) -> Simulation:
    """Joints, medial branches and the other foramina (reference 3.5-3.11): the level on AP and the
    procedure's trajectory view; palpation of the level in landmark mode; in along the planned
    line onto bone or into the joint or foramen; the check view; aspiration; contrast under live
    fluoroscopy; an image of it."""
    anatomy, sc, proc = sim.anatomy, sim.scenario, sim.procedure
    side = sc.side if sc.side != "midline" else "right"
    views = standard_views(anatomy, sc.procedure, proc.views_interspace(sc.target_level), side)
    iso = tuple(float(v) for v in proc.centre_point(anatomy, sc))
    fluoro = sim.guidance == "fluoroscopy"

    def image(view: str) -> None:
        if view in views:
            oblique, tilt = views[view]
            sim.apply(cmd.MoveCArm(oblique_deg=oblique, tilt_deg=tilt, isocentre_mm=iso))
            sim.apply(cmd.AcquireImage())

    if fluoro:
        for view in proc.planning_views:
            image(view)
    else:
        for name in proc.palpation_landmarks(sc):
            point = anatomy.skin_point_behind(anatomy.landmark(name))
            sim.apply(cmd.Palpate(point_mm=tuple(float(v) for v in point)))
    on_bone = proc.zone_tissues == (ON_BONE,)

    def ends_in_zone(probe: Needle, target: np.ndarray) -> bool:
        # well inside the zone, not on its edge: a vascular pattern may need the tip moved a little
        if float(np.linalg.norm(probe.tip_mm - target)) > max(3.0, 0.5 * proc.zone_radius_mm):
            return False
        return proc.classify(anatomy, probe.tip_mm, sc, False, probe.tip_tissue_id()).outcome == "success"

    # a few lines to each of a few points: an expert re-aims rather than searching every angle
    plans = [(point, itertools.islice(proc.expert_lines(anatomy, sc, point), 6))
             for point in proc.expert_targets(anatomy, sc)[:12]]
    total = _enter_as_planned(sim, _plan_with_probe(sim, plans,
                                                    ends_in_zone, None, avoid=proc.avoid,
                                                    beyond_mm=3.0 if on_bone else 0.0))
    _enter_down_the_beam(sim, total, 2.0)
    if fluoro:
        image(proc.check_view)
    sim.apply(cmd.Aspirate())
    if fluoro:
        image(proc.contrast_view)
    _contrast_then_drug(sim, proc.contrast_ml, live_s=3.0)
    if finish:
        sim.apply(cmd.Finish())
    return sim
