"""Radiation dose and live fluoroscopy: the pedal, pulse rates, collimation, last-image hold, and
dose figures that scale as physics says and sit where the reference puts them."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.errors import CommandRefused, SpineSimError
from simulator.imaging import dose
from simulator.protocol import commands as cmd

from spine_helpers import LANDMARK_L4L5, events_of


def _run(sim, seconds: float, rate=None, t0: float | None = None):
    """The pedal down for ``seconds`` at ``rate`` pulses/s (None: continuous)."""
    t0 = sim.t_s + 1.0 if t0 is None else t0
    sim.apply(cmd.FluoroscopyOn(pulse_rate_pps=rate), t_s=t0)
    return sim.apply(cmd.FluoroscopyOff(), t_s=t0 + seconds)


def _tally(make_sim, seconds, rate=None, field_mm=None):
    sim = make_sim(image_size_px=64)
    if field_mm is not None:
        sim.apply(cmd.Collimate(field_mm=field_mm))
    _run(sim, seconds, rate)
    return sim.dose


def test_dose_grows_with_time_and_pulse_rate(make_sim):
    """Twice the pedal time, twice the kerma and DAP; 7.5, 15 and 30 pulses/s cost 1 : 2 : 4; the
    fluoroscopy time is what the pedal was down."""
    short, long_ = _tally(make_sim, 2.0, 15.0), _tally(make_sim, 4.0, 15.0)
    assert long_.air_kerma_mgy == pytest.approx(2 * short.air_kerma_mgy, rel=0.02)
    assert long_.dap_gy_cm2 == pytest.approx(2 * short.dap_gy_cm2, rel=0.02)
    assert (short.fluoroscopy_s, long_.fluoroscopy_s) == (pytest.approx(2.0), pytest.approx(4.0))
    by_rate = [_tally(make_sim, 4.0, r).air_kerma_mgy for r in (7.5, 15.0, 30.0)]
    assert by_rate[1] == pytest.approx(2 * by_rate[0], rel=0.02)
    assert by_rate[2] == pytest.approx(4 * by_rate[0], rel=0.02)
    assert _tally(make_sim, 4.0, None).air_kerma_mgy == pytest.approx(by_rate[2], rel=0.02)  # continuous: 30/s


def test_collimation_cuts_the_dose_area_product_not_the_kerma(make_sim):
    """Closing the iris to half the field's diameter quarters the DAP; the kerma at the reference
    point is unchanged; the image is dark outside the iris."""
    full, half = _tally(make_sim, 3.0, 15.0), _tally(make_sim, 3.0, 15.0, field_mm=150.0)
    assert half.air_kerma_mgy == pytest.approx(full.air_kerma_mgy, rel=0.02)
    assert half.dap_gy_cm2 == pytest.approx(full.dap_gy_cm2 / 4, rel=0.02)
    sim = make_sim(image_size_px=64)
    sim.apply(cmd.Collimate(field_mm=150.0))
    sim.apply(cmd.AcquireImage())
    image = sim.images[-1].display
    rows, cols = image.shape
    rr, cc = np.ogrid[:rows, :cols]
    radius = np.hypot(rr - (rows - 1) / 2, cc - (cols - 1) / 2) / (rows / 2)
    assert image[radius > 0.6].max() == 0 and image[radius < 0.4].mean() > 20


def test_shutters_narrow_the_field_and_its_dose_area_product(make_sim):
    """Shutter blades 60 mm apart leave a vertical band of the circular field: the image is dark
    beside the band and not inside it; the DAP falls to the band's share of the circle (the chord
    formula: 0.25 of a 300 mm circle at a 60 mm gap); the kerma stays; less scatter reaches the
    detector."""
    full = _tally(make_sim, 3.0, 15.0)
    sim = make_sim(image_size_px=64)
    events = sim.apply(cmd.Collimate(field_mm=300.0, shutter_mm=60.0))
    assert events[-1].data["shutter_mm"] == 60.0
    _run(sim, 3.0, 15.0)
    half_gap = 0.2  # 60 of 300 mm: the gap's half-width as a fraction of the field's radius
    share = (2 / np.pi) * (half_gap * np.sqrt(1 - half_gap ** 2) + np.arcsin(half_gap))
    assert sim.dose.air_kerma_mgy == pytest.approx(full.air_kerma_mgy, rel=0.02)
    assert sim.dose.dap_gy_cm2 == pytest.approx(full.dap_gy_cm2 * share, rel=0.02)
    sim.apply(cmd.AcquireImage())
    image = sim.images[-1].display
    cols = np.abs(np.arange(image.shape[1]) - (image.shape[1] - 1) / 2) / (image.shape[1] / 2)
    assert image[:, cols > 0.3].max() == 0
    assert image[24:40, cols < 0.1].mean() > 20
    pose, kvp = sim.carm_pose, 80.0
    assert sim.fluoroscope.scatter_fraction(pose, kvp, 1.0, 0.2).mean() < \
        0.6 * sim.fluoroscope.scatter_fraction(pose, kvp, 1.0, 1.0).mean()


def test_dose_rate_of_a_lumbar_ap_sits_in_the_reported_range(make_sim):
    """Continuous fluoroscopy of the default patient's lumbar AP with a full field: a DAP rate of
    0.03-0.2 Gy cm2/s (reference 4.7: 0.59 Gy cm2 in 6 s and 5.31 in 72 s of lumbar injections) and
    a kerma rate at the reference point of 15-150 mGy/min; a lateral costs more than an AP; a single
    acquisition costs about ten frames."""
    ap = _tally(make_sim, 10.0)
    assert 0.03 < ap.dap_gy_cm2 / 10.0 < 0.2
    assert 15.0 < ap.air_kerma_mgy / 10.0 * 60.0 < 150.0
    sim = make_sim(image_size_px=64)
    sim.apply(cmd.MoveCArm(oblique_deg=90.0, tilt_deg=0.0))
    _run(sim, 10.0)
    assert sim.dose.air_kerma_mgy > 1.5 * ap.air_kerma_mgy
    frame = sim._exposure("fluoroscopy", 1)
    spot = sim._exposure("acquisition", 1)
    assert 5.0 < spot.air_kerma_mgy / frame.air_kerma_mgy < 20.0
    assert 70.0 <= frame.kvp <= 120.0  # the exposure control raises kVp through a thick lateral


def test_fluoroscopy_frames_are_noisier_than_an_acquisition(make_sim):
    """Quantum noise grows as dose falls: two fluoroscopy frames (~1/10 an acquisition's dose each)
    differ from each other more than two acquired images of the same scene do."""
    sim = make_sim(image_size_px=128)
    sim.apply(cmd.FluoroscopyOn(pulse_rate_pps=15.0), t_s=1.0)
    frames = [sim.live_frame(t).display.astype(float) for t in (1.0, 1.1)]
    sim.apply(cmd.FluoroscopyOff(), t_s=1.2)
    sim.apply(cmd.AcquireImage())
    sim.apply(cmd.AcquireImage())
    spots = [image.display.astype(float) for image in sim.images[-2:]]
    inside = (slice(40, 88), slice(40, 88))
    frame_noise = np.std(frames[0][inside] - frames[1][inside])
    spot_noise = np.std(spots[0][inside] - spots[1][inside])
    assert spot_noise > 0.0
    assert frame_noise > 1.8 * spot_noise


def test_live_frames_are_keyed_to_time_and_pulse(make_sim):
    """The same attempt gives the same frames: a frame depends only on the run's start and the
    pulse number (two simulations, same commands, same pixels); another pulse has other noise; the
    last frame stays on the monitor when the pedal comes up."""
    def frames(sim):
        sim.apply(cmd.FluoroscopyOn(pulse_rate_pps=15.0), t_s=5.0)
        return sim.live_frame(5.5).display, sim.live_frame(5.52).display, sim.live_frame(5.6).display

    a, b = frames(make_sim(image_size_px=64)), frames(make_sim(image_size_px=64))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[2], b[2])
    assert np.array_equal(a[0], a[1])  # the same pulse (15/s: 66 ms apart)
    assert not np.array_equal(a[0], a[2])
    sim = make_sim(image_size_px=64)
    events = _run(sim, 2.0, 15.0, t0=3.0)
    stopped = events_of(events, "fluoroscopy_stopped")[0].data
    assert stopped["duration_s"] == pytest.approx(2.0) and stopped["frames"] == 30
    assert sim.last_image_hold is not None and sim.last_image_hold.display.any()
    assert sim.metrics()["fluoroscopy_s"] == pytest.approx(2.0)


def test_fluoroscopy_commands_that_make_no_sense_are_refused(make_sim):
    """No fluoroscopy in landmark mode; the pedal cannot go up before it went down, nor down twice;
    an unknown pulse rate or an iris outside 50-300 mm is refused; a finish with the pedal down
    counts the run."""
    landmark = make_sim(LANDMARK_L4L5, image_size_px=32)
    with pytest.raises(CommandRefused, match="landmark"):
        landmark.apply(cmd.FluoroscopyOn())
    sim = make_sim(image_size_px=32)
    with pytest.raises(CommandRefused, match="not on"):
        sim.apply(cmd.FluoroscopyOff())
    sim.apply(cmd.FluoroscopyOn())
    with pytest.raises(CommandRefused, match="already on"):
        sim.apply(cmd.FluoroscopyOn())
    for bad in ({"command": "fluoroscopy_on", "pulse_rate_pps": 12.0},
                {"command": "collimate", "field_mm": 20.0}, {"command": "collimate", "field_mm": float("nan")}):
        with pytest.raises(SpineSimError):
            sim.apply(bad)
    tally = dict(sim.dose.as_dict())
    with pytest.raises(CommandRefused, match="isocentre"):  # a refused move counts nothing
        sim.apply(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=0.0, isocentre_mm=(5000.0, 0.0, 0.0)), t_s=sim.t_s + 1.0)
    assert sim.dose.as_dict() == tally
    sim.apply(cmd.Finish(), t_s=sim.t_s + 3.0)
    assert sim.dose.fluoroscopy_s == pytest.approx(3.0)
    assert sim.scorecard.metrics["fluoroscopy_s"] == pytest.approx(3.0)


def test_exposure_control_gives_the_detector_its_target():
    """Through thin or thick patients the exposure control delivers the same detector kerma (until
    the tube's limit), with more mAs and kVp for the thicker one."""
    thin = dose.exposure(3.0, "fluoroscopy", 1)
    thick = dose.exposure(6.0, "fluoroscopy", 1)
    assert thin.detector_ugy_per_frame == pytest.approx(thick.detector_ugy_per_frame, rel=1e-6)
    assert thick.kvp > thin.kvp and thick.mas_per_frame > thin.mas_per_frame
    very_thick = dose.exposure(12.0, "fluoroscopy", 1)
    assert very_thick.mas_per_frame == dose.MAX_MAS_PER_FRAME["fluoroscopy"]
    assert very_thick.detector_ugy_per_frame < thin.detector_ugy_per_frame  # a noisier image


def test_digital_subtraction_shows_only_what_changed(make_sim):
    """A subtraction run takes its mask when the pedal goes down: with nothing changed the frame is
    a flat mid-grey (no bones); contrast injected during the run shows dark where it went (once
    it is in) and nowhere else; each frame costs about three plain fluoroscopy frames (reference 4.7: 2.3-4.3x)."""
    from simulator.procedures.lumbar_interlaminar import clear_path_entry

    from spine_helpers import advance_to, enter_on_path

    sim = make_sim(image_size_px=96)
    target = sim.anatomy.landmark("L4-L5.epidural_target")
    entry, direction = clear_path_entry(sim.anatomy, target, 0.0)
    enter_on_path(sim, entry, direction)
    drift_deg = float(np.degrees(0.5 * sim.needle.curvature_per_mm * np.linalg.norm(target - entry)))
    sim.apply(cmd.Redirect(cranial_deg=-drift_deg, right_deg=0.0))
    advance_to(sim, float(np.linalg.norm(target - entry)))
    assert sim.needle.tip_tissue() == "epidural_fat"
    sim.apply(cmd.AcquireImage())
    bones = sim.images[-1].display.astype(float)
    sim.apply(cmd.FluoroscopyOn(pulse_rate_pps=7.5, subtraction=True))
    before = sim.live_frame().display.astype(float)
    field = (slice(20, 76), slice(20, 76))
    assert before[field].std() < 0.25 * bones[field].std()  # the anatomy is gone
    sim.apply(cmd.InjectContrast(volume_ml=2.0))
    starting = sim.live_frame(sim.t_s + 0.5).display.astype(float)  # the push has just begun
    after = sim.live_frame(sim.t_s + 4.0).display.astype(float)  # the 2 mL are in
    darker = (before - after)[field]
    assert darker.max() > 40.0  # the contrast shows
    assert (darker > 20.0).mean() < 0.25  # and only where it went
    assert ((before - starting)[field] > 20.0).sum() < 0.5 * (darker > 20.0).sum()  # it flowed out
    frame = sim._exposure("subtraction", 1)
    assert 2.3 < frame.air_kerma_mgy / sim._exposure("fluoroscopy", 1).air_kerma_mgy < 4.3


def test_magnification_modes_zoom_the_image_and_cost_dose(make_sim):
    """The 17 cm magnification mode spreads a smaller field over the same pixels: a point off the
    central ray lands 300/170 times farther from the image centre; it needs more dose per frame (an
    image intensifier: the square of the field ratio) while the smaller field keeps the DAP rate
    about the same; the mode is kept when the C-arm moves."""
    sim = make_sim(image_size_px=64)
    point = np.asarray(sim.carm_pose.isocentre_mm) + np.array([20.0, 0.0, 15.0])
    full = sim.fluoroscope.anatomy_integrals(sim.carm_pose)[0].project(point) - 31.5
    wide = _tally(make_sim, 2.0, 15.0)
    sim.apply(cmd.Magnify(field_of_view_mm=170.0))
    zoomed = sim.fluoroscope.anatomy_integrals(sim.carm_pose)[0].project(point) - 31.5
    assert np.linalg.norm(zoomed) == pytest.approx(np.linalg.norm(full) * 300.0 / 170.0, rel=0.01)
    _run(sim, 2.0, 15.0)
    # (the exposure control also sees a slightly different patch at the centre of the smaller field)
    assert 2.5 < sim.dose.air_kerma_mgy / wide.air_kerma_mgy < 4.5
    assert sim.dose.dap_gy_cm2 == pytest.approx(wide.dap_gy_cm2, rel=0.3)
    # the rule itself, for the same patient thickness
    for flat_panel, power in ((False, 2.0), (True, 1.0)):
        full_field = dose.exposure(4.0, "fluoroscopy", 1, flat_panel=flat_panel)
        magnified = dose.exposure(4.0, "fluoroscopy", 1, field_of_view_mm=170.0, flat_panel=flat_panel)
        assert magnified.air_kerma_mgy / full_field.air_kerma_mgy == pytest.approx((300.0 / 170.0) ** power)
    sim.apply(cmd.MoveCArm(oblique_deg=30.0, tilt_deg=0.0))
    assert sim.carm_pose.field_of_view_mm == 170.0


def test_a_flat_panel_shows_a_square_field(make_sim):
    """With a flat panel (``[carm] detector``) the image fills its square: the corners are lit,
    where an image intensifier's round field leaves them black."""
    import tomllib

    import tomli_w

    from simulator.scenario.loader import load_scenario, parse_scenario
    from simulator.simulation.simulation import Simulation

    from spine_helpers import FLUORO_L4L5

    intensifier = make_sim(image_size_px=64)
    data = tomllib.loads(load_scenario(FLUORO_L4L5).text)
    data["carm"] = {"detector": "flat_panel"}
    panel = Simulation(parse_scenario(tomli_w.dumps(data), "flat panel"), anatomy=intensifier.anatomy,
                       image_size_px=64)
    for sim in (intensifier, panel):
        sim.apply(cmd.AcquireImage())
    corners = (slice(0, 4), slice(0, 4))
    assert intensifier.images[-1].display[corners].max() == 0
    assert panel.images[-1].display[corners].mean() > 20
