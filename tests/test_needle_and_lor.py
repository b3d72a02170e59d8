"""The needle in the hand: loss of resistance, bone stops, redirection, and commands that cannot be
done (they are refused and change nothing)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.anatomy.tissues import tissue_table

from simulator.errors import CommandRefused, SpineSimError
from simulator.needle.resistance import HIGH_MMHG, LOSS_MMHG
from simulator.imaging.views import squaring_tilt_deg
from simulator.procedures.lumbar_interlaminar import clear_path_entry
from simulator.protocol import commands as cmd
from simulator.protocol.commands import parse_command

from spine_helpers import advance_to, advance_until_loss, enter_on_path, events_of, tissues_along

BONE = {"cortical_bone", "cancellous_bone"}


def midline_entry(sim, interspace="L4-L5"):
    anatomy = sim.anatomy
    target = anatomy.landmark(f"{interspace}.epidural_target")
    entry, direction = clear_path_entry(anatomy, target, squaring_tilt_deg(anatomy, interspace))
    return entry, direction, float(np.linalg.norm(target - entry))


def state(sim):
    """What a refused command must not change."""
    n = sim.needle
    return (None if n.entry_mm is None else tuple(n.entry_mm), tuple(n.direction), n.depth_mm, sim.t_s,
            len(sim.commands), sim.finished, len(sim.images))


# ------------------------------------------------------------------------------ loss of resistance
def test_loss_of_resistance_on_entering_the_epidural_space(make_sim):
    """Advancing 1 mm at a time with a saline test after each step: high pressure in the
    ligamentum flavum, a drop at the first step in epidural fat with a loss-of-resistance event
    there and never before."""
    sim = make_sim()
    entry, direction, target_depth = midline_entry(sim)
    enter_on_path(sim, entry, direction)
    readings = advance_until_loss(sim, target_depth + 8.0)
    tissues = [r[1] for r in readings]
    assert "ligamentum_flavum" in tissues and tissues[-1] == "epidural_fat", tissues
    first_epidural = tissues.index("epidural_fat")
    # the attempt stopped at the first epidural step, and only that step reported a loss
    assert first_epidural == len(readings) - 1
    lost = [i for i, r in enumerate(readings) if events_of(r[3], "loss_of_resistance")]
    assert lost == [first_epidural], [(r[0], r[1], r[2]) for r in readings]
    for depth, tissue, pressure, _ in readings:
        if tissue == "ligamentum_flavum":
            assert pressure >= HIGH_MMHG, f"{pressure} mmHg in the ligamentum flavum at {depth} mm"
    assert readings[-1][2] <= LOSS_MMHG
    # the loss comes where the epidural fat begins on this path (within one 1 mm step)
    path = tissues_along(sim.anatomy.tissue_at, entry, direction, target_depth + 5.0)
    fat_starts = path.index("epidural_fat") * 0.1
    assert fat_starts <= sim.needle.depth_mm <= fat_starts + 1.0 + 1e-6


def test_no_loss_of_resistance_reported_in_subcutaneous_fat(make_sim):
    """A syringe tested in the skin and then in the subcutaneous fat does not report a loss of
    resistance (that is the sign of the epidural space, not of fat under the skin)."""
    sim = make_sim()
    entry, direction, _ = midline_entry(sim)
    enter_on_path(sim, entry, direction)
    sim.apply(cmd.Advance(distance_mm=1.0))
    assert sim.needle.tip_tissue() == "skin"
    # press a few times in the skin (each reading has its own scatter)
    for _ in range(6):
        sim.apply(cmd.TestLossOfResistance(medium="saline"))
    sim.apply(cmd.Advance(distance_mm=3.0))
    assert sim.needle.tip_tissue() == "subcutaneous_fat"
    events = sim.apply(cmd.TestLossOfResistance(medium="saline"))
    assert not events_of(events, "loss_of_resistance"), (
        "loss of resistance reported in subcutaneous fat; readings: "
        + ", ".join(f"{d:.0f} mm: {p:.0f} mmHg" for d, p in sim.lor_trace))


def test_air_reads_lower_and_less_steady_than_saline_in_ligament(make_sim):
    """With the tip in the ligamentum flavum, air in the syringe reads lower on average than saline
    (air compresses) and scatters more."""
    sim = make_sim()
    entry, direction, _ = midline_entry(sim)
    enter_on_path(sim, entry, direction)
    path = tissues_along(sim.anatomy.tissue_at, entry, direction, 120.0)
    lf = [i * 0.1 for i, t in enumerate(path) if t == "ligamentum_flavum"]
    advance_to(sim, 0.5 * (lf[0] + lf[-1]))
    assert sim.needle.tip_tissue() == "ligamentum_flavum"
    readings = {"saline": [], "air": []}
    for _ in range(20):
        for medium in readings:
            ev = sim.apply(cmd.TestLossOfResistance(medium=medium))
            readings[medium].append(events_of(ev, "loss_of_resistance_tested")[0].data["pressure_mmhg"])
    saline, air = np.array(readings["saline"]), np.array(readings["air"])
    assert air.mean() < saline.mean()
    assert air.std() > saline.std()
    # saline in the flavum stays unmistakably high
    assert saline.min() >= HIGH_MMHG


def test_syringe_does_not_give_against_bone(make_sim):
    """Pressing the plunger with the needle resting on the lamina: the syringe will not empty
    (a high reading, never a loss of resistance)."""
    sim = make_sim()
    point = lamina_point(sim.anatomy)
    enter_on_path(sim, sim.anatomy.skin_point_behind(point), (0, 1, 0))
    advance_to_bone(sim)
    ev = sim.apply(cmd.TestLossOfResistance(medium="saline"))
    pressure = events_of(ev, "loss_of_resistance_tested")[0].data["pressure_mmhg"]
    assert not events_of(ev, "loss_of_resistance")
    assert pressure >= HIGH_MMHG, f"{pressure} mmHg with the needle on the lamina (tip in {sim.needle.tip_tissue()})"


def advance_to_bone(sim, step_mm: float = 5.0, max_steps: int = 30) -> list:
    for _ in range(max_steps):
        events = sim.apply(cmd.Advance(distance_mm=step_mm))
        if events_of(events, "bone_contacted"):
            return events
    return []


# ------------------------------------------------------------------------------ bone
def lamina_point(anatomy):
    """A point on the L4 lamina 10 mm right of the midline."""
    p = anatomy.landmark("L4.lamina_right").copy()
    p[0] = 10.0
    assert tissues_along(anatomy.tissue_at, p, [0, 1, 0], 0.05)[0] in BONE
    return p


def test_bone_stops_the_needle(make_sim):
    """A needle aimed straight at the L4 lamina 10 mm off the midline stops on it: a
    bone-contact event, no further depth however hard it is pushed, the tip never inside bone,
    and it stops at the bone's surface rather than short of it."""
    sim = make_sim()
    anatomy = sim.anatomy
    point = lamina_point(anatomy)
    entry = anatomy.skin_point_behind(point)
    enter_on_path(sim, entry, (0, 1, 0))
    assert advance_to_bone(sim), "the needle went through the lamina"
    depth = sim.needle.depth_mm
    # the tip rests against the bone, outside it: the hands feel bone, the tip is not in it
    assert sim.needle.on_bone and sim.needle.tip_tissue() in BONE
    assert tissue_table()[int(anatomy.tissue_at(sim.needle.tip_mm[None])[0])].name not in BONE
    # the first bone along the needle's track (a Tuohy drifts slightly towards its curved tip),
    # at the needle's 0.1 mm step
    track = np.array([sim.needle.point_at_depth(d) for d in np.arange(0.0, depth + 1.0, 0.1)])
    path = [tissue_table()[int(i)].name for i in anatomy.tissue_at(track)]
    first_bone = next(i for i, t in enumerate(path) if t in BONE) * 0.1
    assert first_bone - 0.1 - 1e-6 <= depth < first_bone
    for _ in range(3):
        events = sim.apply(cmd.Advance(distance_mm=5.0))
        assert events_of(events, "bone_contacted")
        assert events_of(events, "needle_advanced")[0].data["moved_mm"] == 0.0
        assert sim.needle.depth_mm == depth
    # it can be drawn back and goes forward again freely
    sim.apply(cmd.Withdraw(distance_mm=10.0))
    assert sim.needle.depth_mm == pytest.approx(depth - 10.0)
    events = sim.apply(cmd.Advance(distance_mm=5.0))
    assert not events_of(events, "bone_contacted")


def test_walking_off_the_lamina(make_sim):
    """On the lamina, the trainee walks off it: draws back a few millimetres, turns the needle a
    few degrees towards the feet (the L4-L5 window lies below the L4 lamina) and advances again,
    until the tip slips past the lamina's edge and goes deeper than where bone stopped it, without a
    bone stop on the last pass."""
    sim = make_sim()
    anatomy = sim.anatomy
    point = lamina_point(anatomy)
    enter_on_path(sim, anatomy.skin_point_behind(point), (0, 1, 0))
    assert advance_to_bone(sim)
    bone_depth = sim.needle.depth_mm
    for _ in range(12):
        sim.apply(cmd.Withdraw(distance_mm=5.0))
        sim.apply(cmd.Redirect(cranial_deg=-3.0, right_deg=0.0))
        events = sim.apply(cmd.Advance(distance_mm=8.0))
        if not events_of(events, "bone_contacted"):
            break
    else:
        pytest.fail("the needle never walked off the lamina")
    events = sim.apply(cmd.Advance(distance_mm=4.0))  # past the lamina's edge, into the window
    assert not events_of(events, "bone_contacted")
    assert sim.needle.depth_mm > bone_depth + 3.0
    assert not sim.needle.on_bone
    assert sim.needle.tip_tissue() not in BONE


# ------------------------------------------------------------------------------ redirection
def test_redirect_pivots_about_the_entry_point(make_sim):
    """Redirecting turns the needle about its skin entry: the entry and depth stay, the tip moves
    to the new direction's line (within the Tuohy's slight drift), towards the head for a cranial
    turn and towards the patient's right for a rightward turn, by the requested angle."""
    sim = make_sim()
    entry, direction, _ = midline_entry(sim)
    enter_on_path(sim, entry, direction)
    advance_to(sim, 10.0)
    entry_before = sim.needle.entry_mm.copy()
    for cranial, right in ((6.0, 0.0), (0.0, 6.0), (-4.0, -3.0)):
        before_dir = sim.needle.entry_direction
        before_tip = sim.needle.tip_mm.copy()
        events = sim.apply(cmd.Redirect(cranial_deg=cranial, right_deg=right))
        after_dir = sim.needle.entry_direction
        assert np.allclose(sim.needle.entry_mm, entry_before)
        assert sim.needle.depth_mm == pytest.approx(10.0)
        # over 10 mm a 6 mm / 100 mm drift leaves the line by 0.06 mm
        assert np.linalg.norm(sim.needle.tip_mm - (entry_before + 10.0 * after_dir)) < 0.1
        angle = np.degrees(np.arccos(np.clip(before_dir @ after_dir, -1, 1)))
        # the two turns compose to at most their sum and at least the larger one
        assert max(abs(cranial), abs(right)) - 0.01 <= angle <= abs(cranial) + abs(right) + 0.01
        assert events_of(events, "needle_redirected")[0].data["angle_deg"] == pytest.approx(angle, abs=0.01)
        moved = sim.needle.tip_mm - before_tip
        if cranial:
            assert np.sign(moved[2]) == np.sign(cranial)
        if right:
            assert np.sign(moved[0]) == np.sign(right)


# ------------------------------------------------------------------------------ refusals
def assert_refused(sim, command, t_s=None, error=CommandRefused):
    before = state(sim)
    n_events = len(sim.events)
    with pytest.raises(error) as info:
        sim.apply(command, t_s)
    assert state(sim) == before
    assert "\n" not in str(info.value) and str(info.value)
    # nothing happened: at most the refusal itself is reported
    assert [e.kind for e in sim.events[n_events:]] in ([], ["command_refused"])


def test_advance_before_entry_is_refused(make_sim):
    """Advancing, testing or injecting before an entry point is chosen is refused."""
    sim = make_sim()
    assert_refused(sim, cmd.Advance(distance_mm=2.0))
    assert_refused(sim, cmd.TestLossOfResistance(medium="saline"))
    assert_refused(sim, cmd.InjectContrast(volume_ml=1.0))
    assert_refused(sim, cmd.Redirect(cranial_deg=5.0))


@pytest.mark.parametrize("distance", [float("nan"), float("inf"), -2.0, 0.0, 500.0, "far"])
def test_invalid_advance_distance_is_rejected(make_sim, distance):
    """An advance by NaN, infinity, a negative, zero or absurd distance, or not a number, is
    rejected by name and changes nothing."""
    sim = make_sim()
    entry, direction, _ = midline_entry(sim)
    enter_on_path(sim, entry, direction)
    advance_to(sim, 10.0)
    with pytest.raises(SpineSimError) as info:
        parse_command({"command": "advance", "distance_mm": distance})
    assert "distance_mm" in str(info.value)
    assert_refused(sim, {"command": "advance", "distance_mm": distance}, error=SpineSimError)


def test_negative_step_is_refused_even_unvalidated(make_sim):
    """A negative step that skipped validation is still refused by the simulation."""
    sim = make_sim()
    entry, direction, _ = midline_entry(sim)
    enter_on_path(sim, entry, direction)
    advance_to(sim, 10.0)
    assert_refused(sim, cmd.Advance.model_construct(distance_mm=-5.0))
    assert_refused(sim, cmd.Advance.model_construct(distance_mm=float("nan")))
    assert_refused(sim, cmd.Withdraw.model_construct(distance_mm=-5.0))


def test_entry_point_off_the_skin_is_refused(make_sim):
    """An entry point far behind the back, or deep inside the body, is refused."""
    sim = make_sim()
    spine = sim.anatomy.landmark("L4-L5.interlaminar_center")
    skin = sim.anatomy.skin_point_behind(spine)
    assert_refused(sim, cmd.SetEntry(point_mm=tuple(skin - [0.0, 80.0, 0.0]), direction=(0, 1, 0)))
    assert_refused(sim, cmd.SetEntry(point_mm=tuple(spine), direction=(0, 1, 0)))
    assert_refused(sim, cmd.SetEntry(point_mm=tuple(skin), direction=(0.0, 0.0, 0.0)))
    # the skin point itself is accepted
    sim.apply(cmd.SetEntry(point_mm=tuple(skin), direction=(0, 1, 0)))
    assert np.linalg.norm(sim.needle.entry_mm - skin) < 1.0


def test_large_redirect_when_deep_is_refused(make_sim):
    """Deep in the tissues the needle cannot be swung round: a large turn is refused (withdraw
    first), a small correction is allowed."""
    sim = make_sim()
    entry, direction, _ = midline_entry(sim)
    enter_on_path(sim, entry, direction)
    advance_to(sim, 30.0)
    assert_refused(sim, cmd.Redirect(cranial_deg=25.0))
    assert_refused(sim, cmd.Redirect(right_deg=-20.0))
    events = sim.apply(cmd.Redirect(right_deg=2.0))
    assert events_of(events, "needle_redirected")


def test_time_going_backwards_is_refused(make_sim):
    """A command timed before the attempt's current time (or at a non-finite time) is refused."""
    sim = make_sim()
    entry, direction, _ = midline_entry(sim)
    sim.apply(cmd.SetEntry(point_mm=tuple(entry), direction=tuple(direction)), t_s=10.0)
    assert_refused(sim, cmd.Advance(distance_mm=2.0), t_s=9.0)
    assert_refused(sim, cmd.Advance(distance_mm=2.0), t_s=float("nan"))
    sim.apply(cmd.Advance(distance_mm=2.0), t_s=10.0)  # the same time is fine


def test_nothing_is_accepted_after_finishing(make_sim):
    """Once finished, the attempt refuses further commands."""
    sim = make_sim()
    sim.apply(cmd.Finish())
    assert_refused(sim, cmd.AcquireImage())
    assert_refused(sim, cmd.Finish())
