"""The whole spine: soft-tissue facts against the reference, landmark sanity for every procedure
family on several patients, and the patient variants (issue: anatomy for every procedure)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.anatomy.anatomy import build_anatomy
from simulator.anatomy.landmarks import compute_landmarks
from simulator.anatomy.patient import PatientParameters
from simulator.anatomy.phantom import INTERSPACES, SpinePhantom
from simulator.anatomy.sacrum_pelvis import LUMBARIZED_GAP_S_MM
from simulator.anatomy.tissues import tid, tissue_table
from simulator.anatomy.vertebra import foramen_transversarium_local

from spine_helpers import dedup, names, phantom, tissues_along

SEEDS = (1, 2, 3, 4, 5)
BONE = {"cortical_bone", "cancellous_bone"}


def _binomial_interval(p: float, n: int, z: float = 3.0) -> tuple[float, float]:
    """A generous (3 SD) normal interval for a count of successes in n draws."""
    sd = np.sqrt(p * (1 - p) / n)
    return p - z * sd, p + z * sd


def _seed_phantom(seed: int, **kw) -> SpinePhantom:
    return SpinePhantom(PatientParameters(seed=seed, **kw).resolved())


# ------------------------------------------------------------------------------ soft tissues
@pytest.mark.parametrize("interspace", ("C6-C7", "T6-T7", "L3-L4", "L4-L5"))
def test_ligamentum_flavum_thickness_by_level(interspace):
    """The ligamentum flavum measured straight through its thickness on the right side of the
    window (as Khasawneh 2021 measured it on MRI): ~2 mm in the neck, ~3.5-4 mm in the thorax,
    3.2-3.7 mm at L3-L5, thicker where the interspace is degenerate."""
    for seed in (1, 3, 6):
        ph = phantom(seed)
        disc = ph.morphometry.disc(interspace)
        upper = ph.by_level[interspace.split("-")[0]]
        flavum = ph.structure(f"{interspace}.ligamentum_flavum")
        # in the middle of the right half (half the canal's width right of the midline), clear of
        # the midline where the two halves meet in a V
        centre = ph.interlaminar_centre(interspace) + upper.axis([0.25 * upper.dims.canal_width_mm + 1.0, 0.0, 0.0])
        t = np.arange(-8.0, 8.0, 0.05)
        line = centre + t[:, None] * upper.axis([0.0, 1.0, 0.0])
        inside = np.nonzero(flavum.field(line) < 0)[0]
        assert inside.size, f"seed {seed} {interspace}: no ligament beside the midline"
        centre = line[inside].mean(axis=0)
        # the thickness direction: the half's normal, from the field's gradient a little off its
        # mid-plane (on the mid-plane a slab's distance has a crease and no gradient)
        probe = centre + 0.6 * upper.axis([0.0, 1.0, 0.0])
        eps = 0.1
        grad = np.array([flavum.field((probe + eps * e)[None])[0] - flavum.field((probe - eps * e)[None])[0]
                         for e in np.eye(3)])
        normal = grad / np.linalg.norm(grad)
        t = np.arange(-15.0, 15.0, 0.05)
        inside = flavum.field(centre + t[:, None] * normal) < 0
        measured = float(inside.sum() * 0.05)
        # 0.3 mm: two 0.05 mm edges plus the rounded 0.6 mm edges of the plate near the midline
        assert abs(measured - disc.ligamentum_flavum_thickness_mm) < 0.3 + 0.08 * disc.ligamentum_flavum_thickness_mm
        lo, hi = {"C": (1.4, 3.4), "T": (2.8, 5.5), "L": (2.8, 5.6)}[interspace[0]]
        assert lo <= measured <= hi * (1.4 if interspace in ph.patient.degenerate_levels else 1.0)


def test_cervical_flavum_midline_gaps_follow_lirk():
    """Over 120 patients the C5-C6 ligamentum flavum is unfused in the midline in ~74% and T3-T4 in
    ~4% (Lirk 2003); where it is unfused a midline needle meets no ligament there."""
    n = 120
    gaps_c = sum(_seed_phantom(s).morphometry.disc("C5-C6").ligamentum_flavum_gap for s in range(n))
    gaps_t = sum(_seed_phantom(s).morphometry.disc("T3-T4").ligamentum_flavum_gap for s in range(n))
    lo, hi = _binomial_interval(0.74, n)
    assert lo <= gaps_c / n <= hi
    assert gaps_t / n <= 0.04 + 3 * np.sqrt(0.04 * 0.96 / n)
    with_gap = next(s for s in range(n) if _seed_phantom(s).morphometry.disc("C5-C6").ligamentum_flavum_gap)
    without = next(s for s in range(n) if not _seed_phantom(s).morphometry.disc("C5-C6").ligamentum_flavum_gap)
    for seed, expect in ((with_gap, False), (without, True)):
        ph = _seed_phantom(seed)
        centre = ph.interlaminar_centre("C5-C6")
        flavum = ph.structure("C5-C6.ligamentum_flavum")
        lateral = ph.by_level["C5"].axis([1.0, 0.0, 0.0])
        assert bool(flavum.field(centre[None])[0] < 0) == expect
        # the halves are there either side of a gap
        assert flavum.field((centre + 2.5 * lateral)[None])[0] < 0


@pytest.mark.parametrize("sex", ("male", "female"))
def test_cervical_skin_to_epidural_depth_follows_han(sex):
    """Midline skin-to-epidural depth at C6-C7: 51 +- 6 mm in men, 46 +- 6 in women (Han 2003,
    n=816); within the generator's scatter (SD 4 mm, +-8) plus the oblique-path difference (3 mm)
    and a BMI term."""
    expected = 51.0 if sex == "male" else 46.0
    for seed in (1, 2, 3):
        ph = _seed_phantom(seed, sex=sex, bmi_kg_m2=25.0)
        centre = ph.interlaminar_centre("C6-C7")
        t = np.arange(0.0, 200.0, 0.1)
        start = centre - np.array([0.0, 150.0, 0.0])
        labels = ph.tissue_at(start + t[:, None] * np.array([0.0, 1.0, 0.0]))
        skin = int(np.argmax(labels != tid("air")))
        epidural = int(np.argmax(labels == tid("epidural_fat")))
        assert labels[epidural] == tid("epidural_fat")
        depth = t[epidural] - t[skin]
        # the generator's seeded scatter (+-8 mm) and up to 5 mm between this straight line and
        # where the skin's midline sits over the short cervical spinous processes
        assert abs(depth - expected) <= 13.0, f"seed {seed}: {depth:.1f} mm"


def test_dural_sac_and_conus_levels_follow_the_reference():
    """Over 40 patients the dural sac ends between the L5-S1 disc and S3, most near S2 (Binokay
    2006); the conus ends between mid-T12 and L3, on average near L1-L2 (Saifuddin 1998)."""
    sac_ends, conus = [], []
    for seed in range(40):
        ph = _seed_phantom(seed)
        frame, shape = ph.sacral_frame, ph.sacrum_shape
        _, s, _ = frame.to_arc(ph.canal.sac_centre[-1][None])
        sac_ends.append(float(s[0]) / shape.scale)
        # conus tip relative to L1's body: 0 at its superior endplate, 1 at its inferior endplate
        l1 = ph.by_level["L1"]
        local = np.linalg.solve(l1.world_from_body[:3, :3], ph.conus_tip - l1.world_from_body[:3, 3])
        conus.append(0.5 - local[2] / l1.height_mid_mm)
    sac_ends = np.array(sac_ends)
    # S2 spans arc 30-54 mm; the L5-S1 disc is above 0; upper S3 ends ~64
    assert sac_ends.min() >= -1.0 and sac_ends.max() <= 64.0
    assert 28.0 <= np.median(sac_ends) <= 46.0
    conus = np.array(conus)
    # mid-T12 is about -1.1 (in L1 body heights), upper L3 about 2.5
    assert conus.min() >= -1.2 and conus.max() <= 2.6
    assert 0.3 <= np.mean(conus) <= 1.3


def test_vertebral_artery_enters_at_c6_in_most_patients():
    """Over 120 patients the vertebral artery enters the foramen transversarium at C6 in ~93%
    (Uchino 2013); where it enters at C6 it runs inside the C6 foramen and in front of C7's."""
    n = 120
    entries = [_seed_phantom(s).va_entry[1] for s in range(n)]
    lo, hi = _binomial_interval(0.93, n)
    assert lo <= entries.count("C6") / n <= hi
    ph = next(_seed_phantom(s) for s in range(n) if _seed_phantom(s).va_entry[1] == "C6")
    vessel = tid("vertebral_artery")
    c6, c7 = ph.by_level["C6"], ph.by_level["C7"]
    assert ph.tissue_at(c6.to_world(foramen_transversarium_local(c6, 1))[None])[0] == vessel
    assert ph.tissue_at(c7.to_world(foramen_transversarium_local(c7, 1))[None])[0] != vessel


def test_adamkiewicz_artery_is_usually_left_and_low_thoracic():
    """Over 150 patients the artery of Adamkiewicz is present in ~85%, left-sided in ~77% of those
    and between T8 and L1 in ~89% (Taterra 2019)."""
    n = 150
    found = [_seed_phantom(s).adamkiewicz for s in range(n)]
    present = [f for f in found if f is not None]
    lo, hi = _binomial_interval(0.85, n)
    assert lo <= len(present) / n <= hi
    left = sum(side < 0 for _, side in present) / len(present)
    lo, hi = _binomial_interval(0.77, len(present))
    assert lo <= left <= hi
    low = sum(level in ("T8", "T9", "T10", "T11", "T12", "L1") for level, _ in present) / len(present)
    assert low >= 0.8


# ------------------------------------------------------------------------------ landmark sanity
@pytest.mark.parametrize("seed", SEEDS)
def test_caudal_needle_up_the_sacral_canal_stays_in_the_canal(seed):
    """From the hiatus apex, 20 mm up the sacral canal along its axis, the needle stays in the
    canal (epidural fat), never in bone (caudal epidural)."""
    ph = phantom(seed)
    frame, shape = ph.sacral_frame, ph.sacrum_shape
    apex = shape.hiatus_apex_s_mm
    pts = np.stack([frame.to_world(0.0, s, float(shape.canal_centre_ap(s))) for s in np.linspace(apex - 20.0, apex, 60)])
    tissues = set(names(ph.tissue_at(pts)))
    assert not tissues & BONE
    assert "epidural_fat" in tissues


@pytest.mark.parametrize("seed", SEEDS)
def test_every_window_leads_to_epidural_fat(seed):
    """At every interspace from C6-C7 to L5-S1 a line forward from the interlaminar centre goes
    through the ligamentum flavum into the posterior epidural fat (interlaminar procedures)."""
    ph = phantom(seed)
    for interspace in INTERSPACES[INTERSPACES.index("C6-C7"):]:
        centre = ph.interlaminar_centre(interspace)
        upper = ph.by_level[interspace.split("-")[0]]
        forward = upper.axis([0.0, 1.0, 0.0])
        if ph.morphometry.disc(interspace).ligamentum_flavum_gap:
            # an unfused midline: the ligament is there 1.5 mm to the side, not in the gap itself
            midline = dedup(tissues_along(ph.tissue_at, centre, forward, 12.0))
            assert "ligamentum_flavum" not in midline[:1], f"{interspace}: {midline}"
            centre = centre + upper.axis([1.5, 0.0, 0.0])
        seq = dedup(tissues_along(ph.tissue_at, centre, forward, 12.0))
        assert seq[0] == "ligamentum_flavum", f"{interspace}: {seq}"
        assert "epidural_fat" in seq[:3], f"{interspace}: {seq}"


@pytest.mark.parametrize("seed", SEEDS)
def test_targets_of_the_other_procedures(seed):
    """Foramina are open (no bone at their centres: transforaminal), the superior articular
    process meets the transverse process on the bone's dorsal surface (lumbar medial branch), the cervical pillars are
    bone (cervical medial branch), facet centres are joint space (facet injections), the dorsal S1
    foramen is a hole (S1 transforaminal), the lower third of each sacroiliac joint is joint space
    within a few mm (SIJ), and the pleura lies just lateral to the mid-thoracic rib heads (thoracic
    transforaminal danger zone)."""
    ph = phantom(seed)

    lm = compute_landmarks(ph)
    table = tissue_table()
    is_bone = table.is_bone
    # a scoliotic spine's foramina and facets on the concave side close up (as they do in
    # patients); these checks are for straight spines
    checked = ("C5-C6", "T8-T9", "L3-L4", "L4-L5") if ph.patient.scoliosis_deg == 0 else ()
    for interspace in checked:
        for side in ("left", "right"):
            assert not is_bone[ph.tissue_at(lm[f"{interspace}.foramen_{side}_center"][None])[0]], interspace
            assert table[int(ph.tissue_at(lm[f"{interspace}.facet_{side}_center"][None])[0])].name == "facet_joint"
    for level in ("L3", "L4", "L5"):
        for side in ("left", "right"):
            # on the bone's dorsal surface: bone at the point and in front, soft tissue just behind
            p = lm[f"{level}.sap_tp_junction_{side}"]
            back = ph.by_level[level].axis([0.0, -1.0, 0.0])
            assert is_bone[ph.tissue_at(np.stack([p, p - 2.0 * back]))].all(), f"{level} {side}: not on bone"
            assert not is_bone[ph.tissue_at((p + 1.0 * back)[None])[0]], f"{level} {side}: not at the surface"
    for level in ("C3", "C5", "C6"):
        for side in ("left", "right"):
            assert is_bone[ph.tissue_at(lm[f"{level}.lateral_mass_{side}_center"][None])[0]]
    for side in ("left", "right"):
        assert not is_bone[ph.tissue_at(lm[f"S1.foramen_{side}"][None])[0]]
        sij = lm[f"sij_{side}_lower_third"]
        around = sij + np.stack(np.meshgrid(*[np.arange(-6.0, 6.1, 1.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
        assert (ph.tissue_at(around) == tid("sacroiliac_joint")).any()
        head = lm[f"T7.rib_head_{side}"]
        outward = np.array([1.0 if side == "right" else -1.0, 0.6, 0.0])
        outward /= np.linalg.norm(outward)
        seq = tissues_along(ph.tissue_at, head, outward, 45.0, 0.2)
        assert "pleura" in seq, f"no pleura lateral to the {side} T7 rib head"


# ------------------------------------------------------------------------------ variants
def test_sacralized_l5_is_fused_to_the_sacrum():
    """A sacralised L5: bone runs continuously from its transverse process into the sacral ala,
    and its disc is rudimentary."""
    ph = _seed_phantom(3, transitional="sacralized_L5")
    normal = _seed_phantom(3, transitional="none")
    seg = ph.by_level["L5"]
    from simulator.anatomy.vertebra import transverse_tip_local

    tip = seg.to_world(transverse_tip_local(seg, 1))
    ala = ph.sacral_frame.to_world(42.0 * ph.scale, 6.0 * ph.scale, 0.0)
    t = np.linspace(0.0, 1.0, 120)
    line = tip + t[:, None] * (ala - tip)
    assert tissue_table().is_bone[ph.tissue_at(line)].all()
    assert not tissue_table().is_bone[normal.tissue_at(line)].all()
    assert ph.morphometry.disc("L5-S1").middle_height_mm < 0.5 * normal.morphometry.disc("L5-S1").middle_height_mm


def test_lumbarized_s1_has_a_disc_below_it():
    """A lumbarised S1: a disc separates the first sacral body from the second."""
    ph = _seed_phantom(3, transitional="lumbarized_S1")
    frame = ph.sacral_frame
    k = ph.scale
    point = frame.to_world(0.0, LUMBARIZED_GAP_S_MM * k, 0.0)
    assert tissue_table()[int(ph.tissue_at(point[None])[0])].name == "disc_annulus"
    normal = _seed_phantom(3, transitional="none")
    assert tissue_table().is_bone[normal.tissue_at(point[None])[0]]


def test_scoliosis_bends_the_column_by_its_cobb_angle():
    """A 16 degree curve: the end vertebrae's endplates make about that angle in the coronal plane,
    and the apex lies off the midline; a straight spine has neither."""
    ph = _seed_phantom(3, scoliosis_deg=16.0)
    straight = _seed_phantom(3, scoliosis_deg=0.0)

    def coronal_angle(p, upper, lower):
        a = p.by_level[upper].axis([0.0, 0.0, 1.0])
        b = p.by_level[lower].axis([0.0, 0.0, 1.0])
        return float(np.degrees(np.arctan2(a[0], a[2]) - np.arctan2(b[0], b[2])))

    # 2 degrees: the curve's compensation above and below moves the end vertebrae a little
    assert abs(abs(coronal_angle(ph, "T6", "L3")) - 16.0) < 2.5
    assert abs(coronal_angle(straight, "T6", "L3")) < 0.1
    apex_x = ph.by_level["T12"].to_world([0.0, 0.0, 0.0])[0]
    assert abs(apex_x) > 5.0
    assert abs(straight.by_level["T12"].to_world([0.0, 0.0, 0.0])[0]) < 0.1


@pytest.mark.parametrize("hiatus", ("high", "narrow", "absent_cornua"))
def test_hiatus_variants(hiatus):
    """A high hiatus opens at S3, a narrow one is under 3 mm deep at its apex, and without cornua
    nothing bony stands beside the hiatus."""
    ph = _seed_phantom(4, hiatus=hiatus)
    typical = _seed_phantom(4, hiatus="typical")
    shape, k = ph.sacrum_shape, ph.scale
    if hiatus == "high":
        assert shape.hiatus_apex_s_mm < typical.sacrum_shape.hiatus_apex_s_mm - 10.0 * k
    elif hiatus == "narrow":
        assert 2.0 * shape.canal_half_depth(shape.hiatus_apex_s_mm) < 3.0
        assert 2.0 * typical.sacrum_shape.canal_half_depth(typical.sacrum_shape.hiatus_apex_s_mm) >= 3.0
    else:
        lm = compute_landmarks(typical)
        cornu = lm["sacrum.cornu_right"]
        # a cornu stands ~2 mm proud of the dorsal surface beside the hiatus: probe just behind
        # the landmark (world -y is posterior)
        behind = cornu[None] + [[0.0, -1.5, 0.0]]
        assert tissue_table().is_bone[typical.tissue_at(behind)].all()
        assert not tissue_table().is_bone[ph.tissue_at(behind)].any()


def test_degenerate_interspace_narrows_the_disc_and_thickens_the_flavum():
    ph = _seed_phantom(3, degenerate_levels=("L4-L5",))
    healthy = _seed_phantom(3, degenerate_levels=())
    d, h = ph.morphometry.disc("L4-L5"), healthy.morphometry.disc("L4-L5")
    assert d.middle_height_mm == pytest.approx(0.7 * h.middle_height_mm)
    assert d.ligamentum_flavum_thickness_mm == pytest.approx(1.4 * h.ligamentum_flavum_thickness_mm)


# ------------------------------------------------------------------------------ the whole volume
@pytest.mark.slow
def test_full_spine_volume_holds_every_structure(tmp_path):
    """A whole-spine build (2 mm) holds every level's bone and the tissues round the spine."""
    anatomy = build_anatomy(PatientParameters(seed=1), voxel_mm=2.0, use_cache=False)
    present = set(names(np.unique(anatomy.labels)))
    for tissue in ("lung", "pleura", "kidney", "airway", "vertebral_artery", "csf", "spinal_cord", "cauda_equina",
                   "ligamentum_flavum", "disc_nucleus", "sacroiliac_joint", "costal_cartilage", "rectum",
                   "presacral_space", "bowel_gas", "epidural_fat", "nerve_root"):
        assert tissue in present, tissue
    assert anatomy.levels[0] == "C2" and anatomy.levels[-1] == "S1" and len(anatomy.levels) == 24
