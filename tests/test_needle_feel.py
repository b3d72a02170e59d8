"""The needle in the hand: steering by the bevel, the hub at the skin, pops, the force felt, the
continuous loss-of-resistance trace, false losses, aspiration and paraesthesia."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from simulator.anatomy.anatomy import build_anatomy
from simulator.anatomy.patient import PatientParameters
from simulator.anatomy.tissues import tid, tissue_table
from simulator.errors import CommandRefused, SpineSimError
from simulator.needle import resistance
from simulator.needle.needle import Needle
from simulator.needle.spec import needle_spec
from simulator.procedures.lumbar_interlaminar import clear_path_entry
from simulator.protocol import commands as cmd
from simulator.scenario.loader import load_scenario, parse_scenario
from simulator.simulation.simulation import Simulation

from spine_helpers import (FLUORO_L4L5, clear_line, enter_on_path, events_of, lines_to_the_midline,
                           skin_entry_on_line, slit_point)


def _uniform(tissue: str):
    """A tissue query that answers ``tissue`` everywhere (pure kinematics)."""
    label = tid(tissue)
    return lambda pts: np.full(len(np.asarray(pts).reshape(-1, 3)), label, np.int64)


def _straight_needle(needle_id: str, tissue: str = "muscle") -> Needle:
    n = Needle(needle_spec(needle_id), _uniform(tissue))
    n.set_entry([0.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    return n


def _offset_from_line(n: Needle) -> np.ndarray:
    """The tip's displacement from the straight line it was aimed along, mm."""
    tip = n.tip_mm
    return tip - (tip @ np.array([0.0, 1.0, 0.0])) * np.array([0.0, 1.0, 0.0])


# ------------------------------------------------------------------------------ steering
def test_a_quincke_drifts_away_from_its_bevel_a_pencil_point_hardly():
    """80 mm in: a 22 G Quincke with its bevel facing the head has drifted caudally by the measured
    amount (Rand 2016: ~8.9 mm at 80 mm in gel; the catalogue's 10 mm / 100 mm), a pencil-point
    needle by under 1 mm."""
    quincke = _straight_needle("quincke_22g_89mm")
    quincke.advance(80.0)
    drift = _offset_from_line(quincke)
    expected = needle_spec("quincke_22g_89mm").steer_mm_per_100mm * 0.8 ** 2
    assert drift[2] < 0 and abs(drift[2]) == pytest.approx(expected, rel=0.1)
    assert abs(drift[0]) < 0.05
    pencil = _straight_needle("pencil_point_22g_89mm")
    pencil.advance(80.0)
    assert np.linalg.norm(_offset_from_line(pencil)) < 1.0


def test_rotating_the_bevel_turns_the_drift():
    """Bevel to the patient's right: a Quincke drifts left; turned half way in, the drift reverses
    and the tip ends nearer the line than if it had been left alone."""
    left = _straight_needle("quincke_25g_89mm")
    left.rotate_bevel(90.0)
    left.advance(60.0)
    assert _offset_from_line(left)[0] < -1.0
    corrected = _straight_needle("quincke_25g_89mm")
    corrected.rotate_bevel(90.0)
    corrected.advance(30.0)
    corrected.rotate_bevel(270.0)
    corrected.advance(30.0)
    assert abs(_offset_from_line(corrected)[0]) < 0.6 * abs(_offset_from_line(left)[0])


def test_a_bent_tip_steers_more_and_only_bendable_needles_bend():
    """A 20-degree bend steers a spinal needle several times more than its bevel alone; a Tuohy is
    not bent, and no tip is bent once inside the skin."""
    plain = _straight_needle("quincke_22g_89mm")
    plain.advance(60.0)
    bent = Needle(needle_spec("quincke_22g_89mm"), _uniform("muscle"))
    bent.bend_tip(20.0)
    bent.set_entry([0.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    bent.advance(60.0)
    # the bend leads: the tip moves towards the bend (cranially, roll 0), the plain bevel caudally
    assert _offset_from_line(bent)[2] > 2.0 * abs(_offset_from_line(plain)[2])
    with pytest.raises(CommandRefused):
        _straight_needle("tuohy_20g_89mm").bend_tip(10.0)
    with pytest.raises(CommandRefused):
        bent.bend_tip(5.0)  # already in the skin


def test_the_hub_at_the_skin_stops_the_needle():
    """A 1.5 inch needle pushed 50 mm stops with its hub at the skin (38 mm in), and says so."""
    n = _straight_needle("quincke_25g_38mm", "subcutaneous_fat")
    result = n.advance(20.0)
    assert not result.length_exhausted
    result = n.advance(20.0)
    assert result.length_exhausted and n.depth_mm == pytest.approx(needle_spec("quincke_25g_38mm").length_mm)
    assert np.linalg.norm(n.hub_mm - n.entry_mm) < 0.05


def _layered(flavum_mm: float):
    """A tissue query for a needle going +y from y=0: muscle, then a ligamentum flavum
    ``flavum_mm`` thick from 20 mm, then epidural fat."""
    ids = tid("muscle"), tid("ligamentum_flavum"), tid("epidural_fat")

    def tissue_at(pts):
        y = np.asarray(pts, float).reshape(-1, 3)[:, 1]
        return np.where(y < 20.0, ids[0], np.where(y < 20.0 + flavum_mm, ids[1], ids[2])).astype(np.int64)

    return tissue_at


@pytest.mark.parametrize("flavum_mm", (2.0, 5.5))
def test_the_needle_knows_how_thick_the_layer_at_its_tip_is(flavum_mm):
    """In the ligamentum flavum, the needle reports the layer's full crossing length, from where it
    entered to where it will leave (it looks ahead along its own track)."""
    n = Needle(needle_spec("pencil_point_22g_89mm"), _layered(flavum_mm))
    n.set_entry([0.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    n.advance(20.5)
    assert n.tip_tissue() == "ligamentum_flavum"
    assert n.tip_layer_mm() == pytest.approx(flavum_mm, abs=0.15)


def test_a_thick_flavum_pushes_back_harder_than_a_thin_one():
    """The peak force in the ligamentum flavum grows with its thickness (reference 5.2): a thin
    cervical flavum (2 mm) gives well before a thick lumbar one (5.5 mm); other layers do not
    change with thickness."""
    flavum = tid("ligamentum_flavum")
    shaft = np.full(200, tid("muscle"))

    def force(layer_mm, tissue=flavum):
        return resistance.advancing_force_n(tissue, shaft, 0.1, "tuohy", 0.908, 2.0, layer_mm)

    assert force(5.5) > 1.5 * force(2.0)
    assert force(5.5) - force(2.0) > 3.0  # newtons: a difference the hand feels
    assert force(5.5, tid("muscle")) == force(2.0, tid("muscle"))


# ------------------------------------------------------------------------------ in the patient
@pytest.fixture
def midline_sim(make_sim):
    """The expert's entry on the default patient, the needle 10 mm short of the epidural target."""
    sim = make_sim()
    anatomy = sim.anatomy
    target = anatomy.landmark("L4-L5.epidural_target")
    entry, direction = clear_path_entry(anatomy, target, 0.0)
    enter_on_path(sim, entry, direction)
    # the expert's aim: a little caudal, for the Tuohy's drift towards its curved tip
    drift_deg = float(np.degrees(0.5 * sim.needle.curvature_per_mm * np.linalg.norm(target - entry)))
    sim.apply(cmd.Redirect(cranial_deg=-drift_deg, right_deg=0.0))
    return sim


def _advance_fine(sim, until, step_mm=0.5, limit_mm=90.0):
    events = []
    while sim.needle.depth_mm < limit_mm:
        step = sim.apply(cmd.Advance(distance_mm=step_mm))
        events += step
        if until(sim, step) or events_of(step, "needle_advanced")[0].data["moved_mm"] == 0.0:
            break
    return events


def test_continuous_syringe_trace_is_high_in_ligament_and_drops_in_the_epidural_space(midline_sim):
    """A saline syringe on the hub while advancing in 0.5 mm steps: a reading at every step, high
    (>= 300 mmHg) in the ligamentum flavum, then a single loss of resistance, in epidural fat; the
    force felt peaks in the ligamentum flavum; the ligament's entry and its giving way are felt."""
    sim = midline_sim
    sim.apply(cmd.Advance(distance_mm=5.0))
    sim.apply(cmd.AttachSyringe(medium="saline"))
    readings_before = len(sim.lor_trace)
    events = _advance_fine(sim, lambda s, ev: bool(events_of(ev, "loss_of_resistance")))
    steps = events_of(events, "needle_advanced")
    assert len(sim.lor_trace) - readings_before == len(steps)
    assert len(events_of(events, "loss_of_resistance")) == 1
    assert sim.needle.tip_tissue() == "epidural_fat"
    tissues = [e.data["tissue"] for e in steps]
    pressures = [e.data["pressure_mmhg"] for e in events_of(events, "loss_of_resistance_tested")]
    in_flavum = [p for t, p in zip(tissues, pressures) if t == "ligamentum_flavum"]
    assert in_flavum and min(in_flavum) >= 300.0 and pressures[-1] <= 60.0
    forces = {t: max(e.data["force_n"] for e in steps if e.data["tissue"] == t) for t in set(tissues)}
    assert max(forces, key=forces.get) == "ligamentum_flavum"
    assert events_of(events, "ligament_entered")
    assert any(e.data["tissue"] == "ligamentum_flavum" for e in events_of(events, "pop_felt"))
    # the trace keeps its times, in order
    assert sim.lor_times_s == sorted(sim.lor_times_s) and len(sim.lor_times_s) == len(sim.lor_trace)


def test_aspiration_shows_csf_only_when_intrathecal(midline_sim):
    """Aspirating in the ligament or the epidural space shows nothing; past the dura, CSF."""
    sim = midline_sim
    _advance_fine(sim, lambda s, ev: s.needle.tip_tissue() == "ligamentum_flavum")
    assert events_of(sim.apply(cmd.Aspirate()), "aspirated")[0].data["result"] == "nothing"
    _advance_fine(sim, lambda s, ev: s.needle.tip_tissue() == "epidural_fat", step_mm=0.2)
    assert events_of(sim.apply(cmd.Aspirate()), "aspirated")[0].data["result"] == "nothing"
    assert sim.hub == "dry"
    _advance_fine(sim, lambda s, ev: s.needle.tip_tissue() in ("csf", "cauda_equina"), step_mm=0.2)
    events = sim.apply(cmd.Aspirate())
    assert events_of(events, "aspirated")[0].data["result"] == "csf" and sim.hub == "csf"


def test_blood_flash_has_the_reported_low_sensitivity():
    """With the tip in a vessel, blood shows on 44% of aspirations (Furman 2003): a negative
    aspirate does not prove safety. Never blood outside a vessel."""
    rng = np.random.default_rng(5)
    n = 3000
    flashes = sum(resistance.aspirate("vessel", 22, rng) == "blood" for _ in range(n))
    sd = np.sqrt(0.442 * 0.558 / n)
    assert abs(flashes / n - 0.442) < 3 * sd
    assert all(resistance.aspirate(c, 22, rng) == "nothing" for c in ("epidural", "soft_tissue", "disc")
               for _ in range(50))


def test_commands_that_make_no_sense_are_refused(midline_sim, make_sim):
    """No syringe to detach, aspiration before insertion, a bend inside the skin, a NaN roll:
    refused, and the attempt unchanged."""
    fresh = make_sim()
    with pytest.raises(CommandRefused):
        fresh.apply(cmd.Aspirate())
    with pytest.raises(CommandRefused):
        fresh.apply(cmd.AttachSyringe(medium="saline"))
    sim = midline_sim
    with pytest.raises(CommandRefused):
        sim.apply(cmd.DetachSyringe())
    sim.apply(cmd.Advance(distance_mm=3.0))
    before = (sim.needle.depth_mm, len(sim.commands), sim.t_s)
    with pytest.raises(CommandRefused):
        sim.apply(cmd.BendTip(bend_deg=10.0))
    with pytest.raises(SpineSimError, match="roll_deg"):
        sim.apply({"command": "rotate_bevel", "roll_deg": float("nan")})
    assert (sim.needle.depth_mm, len(sim.commands), sim.t_s) == before


def test_touching_a_nerve_root_gives_paraesthesia(make_sim):
    """A needle aimed at the exiting L4 root from behind and beside (a transforaminal line clear of
    bone) meets it: a paraesthesia event naming the root."""
    sim = make_sim()
    anatomy = sim.anatomy
    table = tissue_table()
    foramen = anatomy.landmark("L4-L5.foramen_left_center")
    grid = foramen + np.stack(np.meshgrid(*[np.arange(-6.0, 6.1, 1.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    root = grid[anatomy.tissue_at(grid) == table.id("nerve_root")]
    assert len(root), "no nerve root in the foramen"
    aim = root[np.argmin(np.linalg.norm(root - foramen, axis=1))]
    for angle in (25.0, 30.0, 35.0, 40.0, 45.0, 50.0):
        direction = np.array([np.sin(np.radians(angle)), np.cos(np.radians(angle)), 0.0])
        entry = anatomy.skin_entry(aim - 250.0 * direction, direction)
        t = np.arange(0.0, float(np.linalg.norm(aim - entry)), 0.2)
        if entry is not None and not table.is_bone[anatomy.tissue_at(entry + t[:, None] * direction)].any():
            break
    else:
        pytest.fail("no bone-free line to the root")
    enter_on_path(sim, entry, direction)
    sim.apply(cmd.RotateBevel(roll_deg=90.0))  # the Tuohy's curve points right: aim a little left
    drift_deg = float(np.degrees(0.5 * sim.needle.curvature_per_mm * t[-1]))
    sim.apply(cmd.Redirect(cranial_deg=0.0, right_deg=-drift_deg))
    events = _advance_fine(sim, lambda s, ev: bool(events_of(ev, "paraesthesia")), step_mm=0.5,
                           limit_mm=t[-1] + 5.0)
    found = events_of(events, "paraesthesia")
    assert found, [e.data.get("tissue") for e in events_of(events, "needle_advanced")][-10:]
    assert "root" in found[0].data["structure"] or "ganglion" in found[0].data["structure"], found[0].data


# ------------------------------------------------------------------------------ false losses
def _patient_with_cleft():
    """A seed whose degenerate L4-L5 interspinous ligament has clefts, and its anatomy (L4-L5
    only, coarse voxels: the needle reads the exact geometry)."""
    seed = next(s for s in range(1, 200) if resistance.has_clefts("L4-L5", s))
    params = PatientParameters(seed=seed, degenerate_levels=("L4-L5",))
    return seed, build_anatomy(params, voxel_mm=3.0, levels=("L4", "L5"))


def test_a_degenerate_interspinous_ligament_can_give_a_false_loss():
    """In a degenerate ligament with clefts (in its back part, between the spinous processes), a
    midline needle that crosses a cleft loses resistance there, in the interspinous ligament, short
    of the ligamentum flavum."""
    seed, anatomy = _patient_with_cleft()
    loaded = load_scenario(FLUORO_L4L5)
    data = tomllib.loads(loaded.text)
    data["patient"] = {"seed": seed, "degenerate_levels": ["L4-L5"]}
    data["anatomy"] = {"voxel_mm": 3.0, "levels": ["L4", "L5"]}
    import tomli_w

    loaded = parse_scenario(tomli_w.dumps(data), "degenerate")
    target = anatomy.landmark("L4-L5.epidural_target")
    table = tissue_table()

    def aimed(aim):
        """A simulation entered on a line to ``aim``, aimed for the Tuohy's drift."""
        sim = Simulation(loaded, anatomy=anatomy, image_size_px=32)
        entry = anatomy.skin_point_behind(aim)
        d = (aim - entry) / np.linalg.norm(aim - entry)
        enter_on_path(sim, entry, d)
        drift_deg = float(np.degrees(0.5 * sim.needle.curvature_per_mm * np.linalg.norm(aim - entry)))
        sim.apply(cmd.Redirect(cranial_deg=-drift_deg, right_deg=0.0))
        return sim, float(np.linalg.norm(aim - entry))

    # a line near the midline whose interspinous stretch (along the needle's own track) crosses a
    # cleft and meets no bone
    for dx in np.arange(-3.0, 3.01, 0.5):
        sim, length = aimed(target + np.array([dx, 0.0, 0.0]))
        probe = Needle(sim.needle.spec, anatomy.tissue_at)
        probe.set_entry(sim.needle.entry_mm, sim.needle.entry_direction)
        probe.advance(min(length, 19.9))
        probe.advance(max(0.1, min(length - probe.depth_mm, 19.9)))
        track = np.array([probe.point_at_depth(k) for k in np.arange(0.0, probe.depth_mm, 0.1)])
        labels = anatomy.tissue_at(track)
        if table.is_bone[labels].any():
            continue
        ligament = track[labels == table.id("interspinous_ligament")]
        if any(resistance.in_false_loss_cleft(anatomy, p, seed) for p in ligament):
            break
    else:
        pytest.fail("no line crosses a cleft")
    lost_in = None
    while sim.needle.depth_mm < length:
        moved = events_of(sim.apply(cmd.Advance(distance_mm=0.5)), "needle_advanced")[0].data["moved_mm"]
        events = sim.apply(cmd.TestLossOfResistance(medium="saline"))
        if events_of(events, "loss_of_resistance"):
            lost_in = sim.needle.tip_tissue()
            break
        assert moved > 0.0, "the needle is stuck"
    assert lost_in == "interspinous_ligament"


def test_the_trainee_may_choose_among_the_needles_the_scenario_offers(small_anatomy):
    """A scenario offering a longer Tuohy lets the trainee take it before entry (and records it);
    a needle it does not offer, or a change with the needle in the patient, is refused."""
    import tomli_w

    loaded = load_scenario(FLUORO_L4L5)
    data = tomllib.loads(loaded.text)
    data["needle"]["choices"] = ["tuohy_20g_127mm"]
    loaded = parse_scenario(tomli_w.dumps(data), "choices")
    sim = Simulation(loaded, anatomy=small_anatomy, image_size_px=32)
    with pytest.raises(CommandRefused, match="offers"):
        sim.apply(cmd.ChooseNeedle(needle_id="quincke_25g_38mm"))
    events = sim.apply(cmd.ChooseNeedle(needle_id="tuohy_20g_127mm"))
    assert events_of(events, "needle_chosen") and sim.needle.spec.length_mm == pytest.approx(127.0, abs=1.0)
    entry = small_anatomy.skin_point_behind(small_anatomy.landmark("L4.spinous_tip"))
    enter_on_path(sim, entry, (0.0, 1.0, 0.0))
    sim.apply(cmd.Advance(distance_mm=3.0))
    with pytest.raises(CommandRefused, match="withdraw"):
        sim.apply(cmd.ChooseNeedle(needle_id="tuohy_20g_89mm"))
    # replaying the record gives the same needle
    replay = Simulation.replay(loaded, sim.record, anatomy=small_anatomy, image_size_px=32)
    assert replay.needle.spec.id == "tuohy_20g_127mm"
    bad = tomllib.loads(load_scenario(FLUORO_L4L5).text)
    bad["needle"]["choices"] = ["no_such_needle"]
    with pytest.raises(SpineSimError, match="choices"):
        parse_scenario(tomli_w.dumps(bad), "bad.toml")


def _cervical_sim(anatomy):
    loaded = load_scenario("cervical_interlaminar_c7t1_landmark")
    assert loaded.scenario.patient.seed == anatomy.patient.seed
    return Simulation(loaded, anatomy=anatomy, image_size_px=32)


@pytest.fixture(scope="module")
def cervical_anatomy(isolated_user_folders):
    """The cervical scenarios' patient (seed 4: the C7-T1 flavum unfused in the midline), C6-T2 at
    3 mm (the needle reads the exact geometry)."""
    patient = load_scenario("cervical_interlaminar_c7t1_landmark").scenario.patient.parameters()
    return build_anatomy(patient, voxel_mm=3.0, levels=("C6", "T2"))


def _presses_along(sim, target, direction, past_mm: float):
    """Enter on the line to ``target``, then 0.5 mm steps with a saline press after each to
    ``past_mm`` beyond it: (tip tissue, pressure mmHg, whether it was a loss) for every press."""
    entry = skin_entry_on_line(sim.anatomy.tissue_at, target, direction)
    enter_on_path(sim, entry, direction)
    length = float(np.linalg.norm(target - entry))
    # aim against the Tuohy's drift (its curve leads to the head): the arc ends on the target
    drift_deg = float(np.degrees(0.5 * sim.needle.curvature_per_mm * length))
    sim.apply(cmd.Redirect(cranial_deg=-drift_deg, right_deg=0.0))
    presses = []
    while sim.needle.depth_mm < length + past_mm:
        moved = events_of(sim.apply(cmd.Advance(distance_mm=0.5)), "needle_advanced")[0].data["moved_mm"]
        assert moved > 0.0, "the needle is stuck"
        events = sim.apply(cmd.TestLossOfResistance(medium="saline"))
        pressure = events_of(events, "loss_of_resistance_tested")[0].data["pressure_mmhg"]
        presses.append((sim.needle.tip_tissue(), pressure, bool(events_of(events, "loss_of_resistance"))))
    return presses


def test_a_cervical_midline_gap_gives_a_false_loss(cervical_anatomy):
    """Through the slit between the unfused halves of the C7-T1 ligamentum flavum, the syringe
    loses resistance in the slit's fat, behind the canal (a false loss: not yet epidural), and
    there is no second loss when the needle then enters the epidural space; a line through the
    fused half beside it loses resistance only in the epidural fat."""
    anatomy = cervical_anatomy
    assert anatomy.phantom.morphometry.disc("C7-T1").ligamentum_flavum_gap
    centre = anatomy.landmark("C7-T1.interlaminar_center")
    forward = anatomy.phantom.by_level["C7"].axis([0.0, 1.0, 0.0])
    slit = slit_point(anatomy.tissue_at, centre, forward)
    assert slit is not None
    direction = clear_line(anatomy.tissue_at, slit, lines_to_the_midline(),
                           avoid=("muscle",))  # between the spinous processes: the ligaments first
    assert direction is not None, "no line reaches the slit through the interspinous ligament"
    presses = _presses_along(_cervical_sim(anatomy), slit, direction, past_mm=5.0)
    tissues = [p[0] for p in presses]
    first_loss = next(i for i, p in enumerate(presses) if p[2])
    assert presses[first_loss][0] == "interlaminar_fat", presses
    epidural = tissues.index("epidural_fat")
    assert epidural > first_loss
    # the true entry gives no loss of its own: the plunger never stiffens again before it
    assert all(p[1] < resistance.HIGH_MMHG for p in presses[first_loss:epidural + 1]), presses

    beside = slit + 2.5 * anatomy.phantom.by_level["C7"].axis([1.0, 0.0, 0.0])
    beside_direction = clear_line(anatomy.tissue_at, beside, lines_to_the_midline(-1), avoid=("muscle",))
    assert beside_direction is not None
    presses = _presses_along(_cervical_sim(anatomy), beside, beside_direction, past_mm=5.0)
    assert "ligamentum_flavum" in [p[0] for p in presses], presses
    assert next(p for p in presses if p[2])[0] == "epidural_fat", presses


def test_drifting_off_the_midline_into_muscle_fools_air_more_than_saline(make_sim):
    """A needle entered in the midline but angled off it leaves the interspinous ligament for the
    paraspinal muscle: with air in the syringe the pressure there often falls to a "loss" (a false
    one: the tip is in muscle), with saline it does not (reference 5.2: air is less certain)."""
    table = tissue_table()

    def drifting_line(anatomy):
        """The expert's midline line turned sideways until it leaves the interspinous ligament for
        at least 3 mm of muscle before any bone."""
        target = anatomy.landmark("L4-L5.epidural_target")
        entry, forward = clear_path_entry(anatomy, target, 0.0)
        for sideways_deg in np.arange(6.0, 26.0, 2.0):
            c, s_ = np.cos(np.radians(sideways_deg)), np.sin(np.radians(sideways_deg))
            d = np.array([c * forward[0] + s_ * forward[1], -s_ * forward[0] + c * forward[1], forward[2]])
            d = d / np.linalg.norm(d)
            labels = anatomy.tissue_at(entry + np.arange(0.0, 70.0, 0.1)[:, None] * d)
            bone = np.nonzero(table.is_bone[labels])[0]
            names = [table[int(i)].name for i in labels[:bone[0] if len(bone) else None]]
            if "interspinous_ligament" in names:
                after = names[names.index("interspinous_ligament"):]
                if after.count("muscle") >= 30:
                    return entry, d
        raise AssertionError("no line leaves the interspinous ligament for muscle")

    def presses(medium):
        sim = make_sim(image_size_px=32)
        entry, direction = drifting_line(sim.anatomy)
        enter_on_path(sim, entry, direction)
        found = []
        while sim.needle.depth_mm < 70.0:
            step = sim.apply(cmd.Advance(distance_mm=1.0))
            if events_of(step, "needle_advanced")[0].data["moved_mm"] == 0.0:
                break
            events = sim.apply(cmd.TestLossOfResistance(medium=medium))
            found.append((sim.needle.tip_tissue(), bool(events_of(events, "loss_of_resistance"))))
        return found

    air, saline = presses("air"), presses("saline")
    tissues = [t for t, _ in saline]
    assert "interspinous_ligament" in tissues and "muscle" in tissues[tissues.index("interspinous_ligament"):]
    assert any(lost for t, lost in air if t == "muscle"), air
    assert not any(lost for t, lost in saline if t == "muscle"), saline
