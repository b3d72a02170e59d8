"""Contrast patterns: each compartment's contrast is recognisable on the image by where it lies
relative to the canal, the pedicles, the disc and the joints (reference 3.0), and changes with
time the way it does on a C-arm (vascular uptake flows and washes out; subtraction reveals what
live imaging misses)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from spine_helpers import (
    FLUORO_L4L5,
    advance_to,
    enter_on_path,
    events_of,
    needle_to_loss,
)

from simulator.anatomy.tissues import tissue_table
from simulator.geometry import frames
from simulator.imaging import injection, vascular
from simulator.imaging.carm import CArmPose
from simulator.imaging.contrast import ContrastField
from simulator.imaging.fluoroscope import Fluoroscope
from simulator.protocol import commands as cmd
from simulator.scenario.loader import load_scenario
from simulator.simulation.simulation import Simulation

SETTLED = None  # once every push and spread is over


@pytest.fixture(scope="module")
def fluoroscope(small_anatomy):
    return Fluoroscope(small_anatomy.mu_volume(), small_anatomy.world_from_voxel, 128)


def _point(anatomy, near, tissue, within_mm=12.0):
    found = injection.nearest_tissue(anatomy, np.asarray(near, float), (tissue,), within_mm)
    assert found is not None, f"no {tissue} within {within_mm} mm"
    return found


def _inject(anatomy, point, volume_ml, seed=1):
    tissue = tissue_table().names_by_id()[int(anatomy.labels_at(np.asarray(point)[None])[0])]
    done = injection.inject(anatomy, point, tissue, volume_ml, 0.0, seed, np.random.default_rng(5), frames.ANTERIOR)
    return ContrastField(done.boluses, done.vessels, volume_ml), done.report


def _iodine(fluoroscope, field, view, centre, t_s=SETTLED):
    """The contrast's own line integrals on an AP (``view="ap"``) or left lateral view centred on
    ``centre``, and the projection."""
    pose = CArmPose(oblique_deg=0.0 if view == "ap" else 90.0, tilt_deg=0.0,
                    isocentre_mm=tuple(float(v) for v in centre))
    projection, _, _, iodine = fluoroscope.material_integrals(pose, [], field, t_s)
    return (np.zeros((projection.rows, projection.cols)) if iodine is None else iodine), projection


def _mm(projection, point, mm):
    """``mm`` at ``point`` in pixels."""
    return mm * projection.magnification_at(point) / projection.pixel_mm


def _centroid(image):
    rows, cols = np.indices(image.shape)
    return np.array([(rows * image).sum(), (cols * image).sum()]) / image.sum()


def _extent_px(image, axis):
    """Rows (axis 0) or columns (axis 1) holding more than a fifth of the peak."""
    strong = np.nonzero((image > 0.2 * image.max()).any(axis=1 - axis))[0]
    return strong.max() - strong.min() + 1


# ------------------------------------------------------------------------------ in the canal
@pytest.fixture(scope="module")
def canal_patterns(small_anatomy):
    """1.5 mL injected by a needle at the L4-L5 epidural target, then 6 mm deeper (intrathecal), in
    a simulation, and into the dural wall (subdural)."""
    loaded = load_scenario(FLUORO_L4L5)
    out = {}
    for name, extra_mm in (("epidural", 0.0), ("intrathecal", 6.0)):
        sim = Simulation(loaded, anatomy=small_anatomy, image_size_px=128)
        needle_to_loss(sim, "L4-L5")
        if extra_mm:
            sim.apply(cmd.Advance(distance_mm=extra_mm))
        event = events_of(sim.apply(cmd.InjectContrast(volume_ml=1.5)), "contrast_injected")[0].data
        out[name] = (sim.contrast, event, sim.needle.tip_mm.copy())
    target = small_anatomy.landmark("L4-L5.epidural_target")
    field, report = _inject(small_anatomy, _point(small_anatomy, target, "dura"), 0.5)
    out["subdural"] = (field, report, target)
    return out


def test_contrast_goes_into_the_compartment_of_the_tip(canal_patterns, fluoroscope, small_anatomy):
    centre = small_anatomy.landmark("L4-L5.interlaminar_center")
    for compartment, (field, event, _) in canal_patterns.items():
        assert event["compartment"] == compartment
        iodine, _ = _iodine(fluoroscope, field, "lateral", centre)
        assert iodine.max() > 0.05, f"{compartment}: no contrast visible"


def test_interlaminar_epidural_contrast_is_a_dorsal_band_between_the_pedicles(canal_patterns, fluoroscope,
                                                                              small_anatomy):
    """Lateral: within 5 mm of the epidural target's depth, in front of the flavum and behind the
    vertebral body. AP: bounded laterally by the medial borders of the pedicles."""
    a = small_anatomy
    field, _, _ = canal_patterns["epidural"]
    centre = a.landmark("L4-L5.interlaminar_center")
    lateral, projection = _iodine(fluoroscope, field, "lateral", centre)
    col = _centroid(lateral)[1]
    target = a.landmark("L4-L5.epidural_target")
    assert abs(col - projection.project(target)[1]) <= _mm(projection, target, 5.0)
    assert projection.project(a.landmark("L4.body_center"))[1] < col < projection.project(centre)[1]
    ap, projection = _iodine(fluoroscope, field, "ap", centre)
    left, right = (projection.project(a.landmark(f"L5.pedicle_{s}_center"))[1] for s in ("left", "right"))
    inside = (np.arange(ap.shape[1]) > min(left, right)) & (np.arange(ap.shape[1]) < max(left, right))
    assert ap[:, inside].sum() > 0.9 * ap.sum()


def test_intrathecal_contrast_is_smooth_symmetric_dependent_and_runs_further(canal_patterns, fluoroscope,
                                                                             small_anatomy):
    """Intrathecal contrast mixes with CSF: fainter than epidural, over a longer stretch, layered in
    front of the epidural contrast (the dependent side of a prone patient), and symmetric about the
    midline on AP; it keeps spreading for a few seconds after the push."""
    centre = small_anatomy.landmark("L4-L5.interlaminar_center")
    epi, projection = _iodine(fluoroscope, canal_patterns["epidural"][0], "lateral", centre)
    it, _ = _iodine(fluoroscope, canal_patterns["intrathecal"][0], "lateral", centre)
    assert it.max() < epi.max()
    assert _extent_px(it, 0) > _extent_px(epi, 0)
    assert _centroid(it)[1] < _centroid(epi)[1]  # lateral: anterior is to the left
    ap, projection = _iodine(fluoroscope, canal_patterns["intrathecal"][0], "ap", centre)
    midline = projection.project(centre)[1]
    cols = np.arange(ap.shape[1])
    left_mass, right_mass = ap[:, cols < midline].sum(), ap[:, cols >= midline].sum()
    assert 0.6 < left_mass / right_mass < 1.6
    field = canal_patterns["intrathecal"][0]
    early, _ = _iodine(fluoroscope, field, "lateral", centre, t_s=field.boluses[0].start_s + 2.5)
    assert _extent_px(early, 0) < _extent_px(it, 0)


def test_subdural_contrast_is_a_dense_dorsal_film_long_for_its_volume(canal_patterns, fluoroscope, small_anatomy):
    """A third of the epidural volume reaches at least as far cranio-caudally, behind the sac's
    centre on the lateral view, and does not fade."""
    a = small_anatomy
    centre = a.landmark("L4-L5.interlaminar_center")
    sub, projection = _iodine(fluoroscope, canal_patterns["subdural"][0], "lateral", centre)
    epi, _ = _iodine(fluoroscope, canal_patterns["epidural"][0], "lateral", centre)
    assert _extent_px(sub, 0) >= _extent_px(epi, 0)
    sac_col = 0.5 * (projection.project(a.landmark("L4-L5.epidural_target"))[1]
                     + projection.project(a.landmark("L4.body_center"))[1])
    assert _centroid(sub)[1] > sac_col
    soon, _ = _iodine(fluoroscope, canal_patterns["subdural"][0], "lateral", centre, t_s=10.0)
    later, _ = _iodine(fluoroscope, canal_patterns["subdural"][0], "lateral", centre, t_s=600.0)
    assert later.sum() == pytest.approx(soon.sum(), rel=1e-6)


def test_transforaminal_contrast_outlines_the_root_and_runs_under_the_pedicle(small_anatomy, fluoroscope):
    """From the foramen below the right L4 pedicle, on AP: contrast both lateral to the pedicle (the
    root sleeve, running down and out) and medial to it (into the canal); on the lateral view it
    lies in front of interlaminar epidural contrast (ventral epidural)."""
    a = small_anatomy
    field, report = _inject(a, _point(a, a.landmark("L4-L5.foramen_right_center"), "epidural_fat"), 1.5)
    assert (report["compartment"], report["context"]) == ("epidural", "lumbar_foraminal")
    pedicle = a.landmark("L4.pedicle_right_center")
    ap, projection = _iodine(fluoroscope, field, "ap", pedicle)
    col = np.arange(ap.shape[1])
    pedicle_col = projection.project(pedicle)[1]
    half_width = _mm(projection, pedicle, 3.0)
    right_is_larger_col = projection.project(a.landmark("L4.pedicle_left_center"))[1] < pedicle_col
    lateral_side = col > pedicle_col + half_width if right_is_larger_col else col < pedicle_col - half_width
    medial_side = col < pedicle_col - half_width if right_is_larger_col else col > pedicle_col + half_width
    assert ap[:, lateral_side].sum() > 0.1 * ap.sum()
    assert ap[:, medial_side].sum() > 0.1 * ap.sum()
    assert _centroid(ap)[0] > projection.project(pedicle)[0]  # below the pedicle
    il_field, _ = _inject(a, a.landmark("L4-L5.epidural_target"), 1.5)
    lateral, _ = _iodine(fluoroscope, field, "lateral", pedicle)
    il_lateral, _ = _iodine(fluoroscope, il_field, "lateral", pedicle)
    assert _centroid(lateral)[1] < _centroid(il_lateral)[1]


def test_caudal_contrast_climbs_the_sacral_canal_in_the_midline(small_anatomy, fluoroscope):
    """5 mL from the sacral canal at S3: on AP it stays within 12 mm of the midline and climbs at
    least 25 mm towards S1 ("smoke up a chimney", the "Christmas tree" between the foramina)."""
    a = small_anatomy
    s3 = 0.5 * (a.landmark("S3.foramen_left") + a.landmark("S3.foramen_right"))
    tip = _point(a, s3, "epidural_fat", 20.0)
    field, report = _inject(a, tip, 5.0)
    assert (report["compartment"], report["context"]) == ("epidural", "caudal")
    ap, projection = _iodine(fluoroscope, field, "ap", tip)
    midline = projection.project(s3)[1]
    assert abs(_centroid(ap)[1] - midline) < _mm(projection, tip, 12.0)
    assert _extent_px(ap, 0) * projection.pixel_mm / projection.magnification_at(tip) > 25.0
    assert _centroid(ap)[0] < projection.project(tip)[0]  # it went up (towards row 0)


# ------------------------------------------------------------------------------ disc, bone, soft tissue
def test_intradiscal_contrast_stays_between_the_endplates(small_anatomy, fluoroscope):
    a = small_anatomy
    centre = a.landmark("L4-L5.disc_center")
    field, report = _inject(a, centre, 1.0)
    assert report["compartment"] == "disc"
    lateral, projection = _iodine(fluoroscope, field, "lateral", centre)
    row = _centroid(lateral)[0]
    upper = projection.project(a.landmark("L4.inferior_endplate_center"))[0]
    lower = projection.project(a.landmark("L5.superior_endplate_center"))[0]
    assert min(upper, lower) - 1 <= row <= max(upper, lower) + 1
    strong = lateral > 0.2 * lateral.max()
    rows = np.nonzero(strong.any(axis=1))[0]
    assert rows.min() >= min(upper, lower) - _mm(projection, centre, 3.0)
    assert rows.max() <= max(upper, lower) + _mm(projection, centre, 3.0)
    soon, _ = _iodine(fluoroscope, field, "lateral", centre, t_s=5.0)
    later, _ = _iodine(fluoroscope, field, "lateral", centre, t_s=600.0)
    assert later.sum() == pytest.approx(soon.sum(), rel=1e-6)  # it persists


def test_intraosseous_contrast_blushes_in_the_body_and_drains_away(small_anatomy, fluoroscope):
    """Contrast in the marrow: a blush inside the vertebral body with veins draining from it, gone
    within seconds."""
    a = small_anatomy
    body = a.landmark("L4.body_center")
    field, report = _inject(a, body, 1.0)
    assert report["compartment"] == "bone"
    end = injection.injection_seconds(1.0)
    at_end, projection = _iodine(fluoroscope, field, "lateral", body, t_s=end)
    assert np.linalg.norm(_centroid(at_end) - projection.project(body)) < _mm(projection, body, 8.0)
    assert field.overlays(end), "no venous drainage"
    later, _ = _iodine(fluoroscope, field, "lateral", body, t_s=end + 15.0)
    assert later.sum() < 0.1 * at_end.sum()


def test_soft_tissue_contrast_stays_behind_the_laminae_near_the_tip(small_anatomy):
    """Contrast injected into the paraspinal muscle (by a needle in a simulation) stays as a blob
    round the tip, behind the laminae (posterior, to the right on the lateral view)."""
    a = small_anatomy
    sim = Simulation(load_scenario(FLUORO_L4L5), anatomy=a, image_size_px=128)
    point = a.landmark("L4-L5.interlaminar_center") + np.array([22.0, 0.0, 0.0])
    enter_on_path(sim, a.skin_point_behind(point), (0, 1, 0))
    advance_to(sim, 30.0)
    assert sim.needle.tip_tissue() == "muscle"
    event = events_of(sim.apply(cmd.InjectContrast(volume_ml=1.5)), "contrast_injected")[0].data
    assert event["compartment"] == "soft_tissue"
    lateral, projection = _iodine(sim.fluoroscope, sim.contrast, "lateral", point)
    centroid = _centroid(lateral)
    assert centroid[1] > projection.project(a.landmark("L4.lamina_right"))[1]
    tip = sim.needle.tip_mm
    assert np.linalg.norm(centroid - projection.project(tip)) <= _mm(projection, tip, 15.0)


# ------------------------------------------------------------------------------ joints
def test_facet_arthrogram_stays_on_the_joint_until_the_capsule_gives(small_anatomy, fluoroscope):
    """0.5 mL fills the right L4-L5 facet joint: the contrast lies within 8 mm of the joint's centre
    on AP. 2.5 mL is more than the joint holds: the capsule leaks and contrast spreads beyond it."""
    a = small_anatomy
    joint_centre = a.landmark("L4-L5.facet_right_center")
    tip = _point(a, joint_centre, "facet_joint")
    field, report = _inject(a, tip, 0.5)
    assert (report["compartment"], report["leak"]) == ("joint", None)
    ap, projection = _iodine(fluoroscope, field, "ap", joint_centre)
    rows, cols = np.indices(ap.shape)
    near = np.hypot(rows - projection.project(joint_centre)[0], cols - projection.project(joint_centre)[1]) \
        < _mm(projection, joint_centre, 8.0)
    assert ap[near].sum() > 0.9 * ap.sum()
    burst, burst_report = _inject(a, tip, 2.5)
    assert burst_report["leak"] in ("epidural", "soft_tissue")
    burst_ap, _ = _iodine(fluoroscope, burst, "ap", joint_centre)
    assert burst_ap[~near].sum() > 0.2 * burst_ap.sum()


def test_sacroiliac_arthrogram_outlines_the_joint(small_anatomy, fluoroscope):
    """1 mL in the lower third of the right SIJ: on AP the contrast is a line along the joint
    (long cranio-caudally, narrow), lateral to the sacral foramina."""
    a = small_anatomy
    tip = _point(a, a.landmark("sij_right_lower_third"), "sacroiliac_joint")
    field, report = _inject(a, tip, 1.0, seed=3)
    assert (report["compartment"], report["context"]) == ("joint", "sacroiliac")
    ap, projection = _iodine(fluoroscope, field, "ap", tip)
    joint_only = ap * (np.abs(np.indices(ap.shape)[1] - projection.project(tip)[1]) < _mm(projection, tip, 15.0))
    assert _extent_px(joint_only, 0) > 1.5 * _extent_px(joint_only, 1)
    foramen_col = projection.project(a.landmark("S2.foramen_right"))[1]
    midline_col = projection.project(0.5 * (a.landmark("S2.foramen_left") + a.landmark("S2.foramen_right")))[1]
    outward = np.sign(foramen_col - midline_col)
    assert (_centroid(joint_only)[1] - foramen_col) * outward > 0


# ------------------------------------------------------------------------------ vessels
def _vessel_points(anatomy, tissue):
    return [p for _, t, p, _ in anatomy.vessel_paths() if t == tissue]


def test_venous_uptake_is_thin_and_tubular_and_washes_out_within_seconds(small_anatomy, fluoroscope):
    """A tip in the epidural venous plexus: contrast runs along thin channels (a footprint under 5 mm
    wide for its length) while it goes in, and is gone (<5%) ten seconds after the push."""
    a = small_anatomy
    veins = _vessel_points(a, "epidural_vein")
    assert veins, "the phantom models the epidural veins"
    near = veins[0][np.argmin(np.abs(veins[0][:, 2] - a.landmark("L4.body_center")[2]))]
    tip = _point(a, near, "epidural_vein", 3.0) if a.labels_at(near[None])[0] != tissue_table().id("epidural_vein") else near
    field, report = _inject(a, tip, 0.5)
    assert (report["compartment"], report["vascular"], report["vascular_fraction"]) == ("venous", "venous", 1.0)
    end = injection.injection_seconds(0.5)
    ap, projection = _iodine(fluoroscope, field, "ap", tip, t_s=end)
    strong = ap > 0.2 * ap.max()
    area_mm2 = strong.sum() * (projection.pixel_mm / projection.magnification_at(tip)) ** 2
    length_mm = max(_extent_px(ap, 0), _extent_px(ap, 1)) * projection.pixel_mm / projection.magnification_at(tip)
    assert length_mm > 15.0
    assert area_mm2 / length_mm < 5.0
    gone, _ = _iodine(fluoroscope, field, "ap", tip, t_s=end + 10.0)
    assert gone.sum() < 0.05 * ap.sum()


def test_arterial_uptake_turns_to_the_midline_and_vanishes_within_frames(small_anatomy, fluoroscope):
    """Arterial uptake at a lumbar foramen (where the phantom models no artery, one is drawn): a
    faint line running medially to the midline and then up and down it (the anterior spinal
    artery's hairpin); it is gone a second after the push, when venous uptake is still there."""
    a = small_anatomy
    tip = _point(a, a.landmark("L4-L5.foramen_right_center"), "epidural_fat")
    field = ContrastField(vessels=[vascular.vessel_fill(a, tip, vascular.UptakeDraw("arterial", 1.0, 80.0),
                                                        0.0, 1.0, 1)], total_ml=0.6)
    ap, projection = _iodine(fluoroscope, field, "ap", tip, t_s=1.0)
    midline = projection.project(a.landmark("L4-L5.interlaminar_center"))[1]
    on_midline = np.abs(np.arange(ap.shape[1]) - midline) < _mm(projection, tip, 4.0)
    rows = np.nonzero((ap[:, on_midline] > 0.2 * ap.max()).any(axis=1))[0]
    tip_row = projection.project(tip)[0]
    assert rows.min() < tip_row - _mm(projection, tip, 15.0) and rows.max() > tip_row + _mm(projection, tip, 10.0)
    assert ap.max() < 0.12  # faint
    gone, _ = _iodine(fluoroscope, field, "ap", tip, t_s=2.0)
    assert gone.sum() < 0.05 * ap.sum()
    venous = ContrastField(vessels=[vascular.vessel_fill(a, tip, vascular.UptakeDraw("venous", 1.0, 80.0),
                                                         0.0, 1.0, 1)], total_ml=0.6)
    still, _ = _iodine(fluoroscope, venous, "ap", tip, t_s=2.0)
    assert still.sum() > 0.3 * _iodine(fluoroscope, venous, "ap", tip, t_s=1.0)[0].sum()


def test_uptake_rates_follow_the_reference_by_region_and_mix_with_epidural_flow():
    """Drawn over 4,000 tip positions, uptake happens at the live rate divided by live
    sensitivity: a cervical foramen about 29%, an interlaminar tip about 2.7% (reference 3.12,
    3.14); most uptakes are mixed with epidural flow; the same tip position draws the same."""
    rng = np.random.default_rng(0)
    tips = rng.uniform(-500.0, 500.0, size=(4000, 3))
    t = vascular.table()["uptake"]
    for context, expected in (("cervical_foraminal", 0.206 / 0.71), ("interlaminar", 0.019 / 0.71)):
        draws = [vascular.draw_uptake(context, 7, tip) for tip in tips]
        rate = np.mean([d.kind is not None for d in draws])
        assert abs(rate - expected) < 3.5 * np.sqrt(expected * (1 - expected) / len(tips)) + 1e-3, (context, rate)
    draws = [vascular.draw_uptake("cervical_foraminal", 7, tip) for tip in tips]
    with_uptake = [d for d in draws if d.kind is not None]
    mixed = np.mean([d.vascular_fraction < 1.0 for d in with_uptake])
    assert abs(mixed - t["mixed_share"]) < 0.08
    arterial = np.mean([d.kind == "arterial" for d in with_uptake])
    assert 0.2 < arterial < 0.5
    assert vascular.draw_uptake("cervical_foraminal", 7, tips[0]) == draws[0]
    assert vascular.draw_uptake("soft_tissue", 7, tips[0]).kind is None


def test_subtraction_reveals_faint_arterial_uptake_that_live_imaging_hides(make_sim):
    """Faint arterial contrast along a drawn radicular artery: on a live fluoroscopy frame its
    contrast-to-noise along the vessel is under half of what the same moment shows on a subtracted
    (DSA) frame, where the bones are gone."""
    sim = make_sim(image_size_px=192)
    a = sim.anatomy
    tip = _point(a, a.landmark("L4-L5.foramen_right_center"), "epidural_fat")
    sim.apply(cmd.MoveCArm(oblique_deg=0.0, tilt_deg=0.0, isocentre_mm=tuple(float(v) for v in tip)))

    def cnr(subtraction: bool) -> float:
        """(local background - vessel) / local background spread, in the frame as shown."""
        sim.contrast = ContrastField()
        sim.apply(cmd.FluoroscopyOn(pulse_rate_pps=15.0, subtraction=subtraction))
        start = sim.t_s
        fill = vascular.vessel_fill(a, tip, vascular.UptakeDraw("arterial", 1.0, 45.0), start, 2.0, 1)
        sim.contrast = ContrastField(vessels=[fill], total_ml=0.5)
        frame = sim.live_frame(start + 1.5)
        sim.apply(cmd.FluoroscopyOff())
        shown = frame.display.astype(float)
        vessel = np.zeros(shown.shape, bool)
        for overlay in fill.overlays(start + 1.5):
            rc = np.round(frame.projection.project(overlay.points_mm)).astype(int)
            ok = (rc >= 0).all(axis=1) & (rc < shown.shape[0]).all(axis=1)
            vessel[rc[ok, 0], rc[ok, 1]] = True
        ring = ndimage.binary_dilation(vessel, iterations=6) & ~ndimage.binary_dilation(vessel, iterations=2)
        return float((shown[ring].mean() - shown[vessel].mean()) / shown[ring].std())

    live, dsa = cnr(False), cnr(True)
    assert dsa > 2.0 * live, (live, dsa)


def test_the_same_attempt_gives_the_same_live_frames_when_replayed(make_sim, tmp_path):
    """Contrast injected under live fluoroscopy, replayed from the attempt's record: every frame of
    the run (noise, the contrast's flow, any uptake) is identical; two pulses of the run differ."""
    from simulator.records.attempt_file import read_record

    path = tmp_path / "attempt.jsonl"
    sim = make_sim(image_size_px=96, record_path=path)
    needle_to_loss(sim, "L4-L5")
    sim.apply(cmd.FluoroscopyOn(pulse_rate_pps=15.0))
    sim.apply(cmd.InjectContrast(volume_ml=1.0))
    times = [sim.t_s + dt for dt in (0.2, 0.9, 1.6)]
    frames = [sim.live_frame(t).display for t in times]
    sim.close()
    replay = Simulation.replay(sim.loaded, read_record(path), anatomy=sim.anatomy, image_size_px=96)
    assert all(np.array_equal(a, replay.live_frame(t).display) for a, t in zip(frames, times, strict=True))
    assert not np.array_equal(frames[0], frames[1])
