"""What the hands feel: advancing force and the loss-of-resistance syringe.

The syringe pressure for the tissue at the tip comes from ``assets/tissues.toml`` (high in
ligament, maximal in the ligamentum flavum at ~450-500 mmHg, near zero in the epidural space). A
reading carries a small seeded scatter; air in the syringe compresses, so it reads lower and
scatters more than saline (a less certain loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.anatomy.tissues import tissue_table

#: A reading at or above this is "high" resistance: ligament (the supraspinous and interspinous
#: ligaments ~340-360, the ligamentum flavum ~480 mmHg), not skin (~260) or fascia (~170), mmHg.
HIGH_MMHG = 300.0
#: A reading at or below this after a high one is a loss of resistance, mmHg.
LOSS_MMHG = 60.0


@dataclass(frozen=True)
class LorReading:
    """One press on the syringe plunger."""

    pressure_mmhg: float
    medium: str
    feel: str  # "bone: no flow", "high", "moderate", "low", "none"


def feel_of(pressure_mmhg: float) -> str:
    if pressure_mmhg >= 900.0:
        return "solid: nothing can be injected"
    if pressure_mmhg >= HIGH_MMHG:
        return "high"
    if pressure_mmhg >= 200.0:
        return "firm"
    if pressure_mmhg >= 100.0:
        return "moderate"
    if pressure_mmhg > 25.0:
        return "low"
    return "none: the plunger gives"


def lor_reading(tissue_id: int, medium: str, rng: np.random.Generator, in_cleft: bool = False) -> LorReading:
    """The plunger pressure with the tip in ``tissue_id`` (``in_cleft``: in a cleft of a
    degenerate interspinous ligament, where the syringe gives falsely)."""
    base = CLEFT_MMHG if in_cleft else float(tissue_table().lor_saline_mmhg[tissue_id])
    if base >= 900.0:  # bone: the syringe will not empty
        return LorReading(999.0, medium, feel_of(999.0))
    scatter = 0.06 if medium == "saline" else 0.18
    factor = 1.0 if medium == "saline" else 0.8
    p = max(0.0, base * factor * (1.0 + scatter * float(rng.standard_normal())))
    return LorReading(round(p, 1), medium, feel_of(p))


def advance_feel(tissue_name: str) -> str:
    """A word for how advancing through ``tissue_name`` feels (reference section 5.2)."""
    return {
        "skin": "firm, then a pop",
        "subcutaneous_fat": "soft, mushy",
        "thoracolumbar_fascia": "a small pop",
        "muscle": "spongy",
        "supraspinous_ligament": "firm",
        "interspinous_ligament": "gritty, firm",
        "ligamentum_flavum": "leathery, very firm",
        "interlaminar_fat": "a sudden give",
        "sacrococcygeal_ligament": "firm, then a give",
        "epidural_fat": "a sudden give",
        "dura": "a subtle give",
        "csf": "no resistance",
        "cauda_equina": "no resistance",
        "disc_annulus": "gritty, very firm",
        "disc_nucleus": "soft after a firm layer",
        "nerve_root": "an electric shock down the leg (paraesthesia)",
    }.get(tissue_name, "firm")


# ----------------------------------------------------------------------------- advancing force
#: The needle the tissue forces of ``assets/tissues.toml`` are for (20 G Tuohy, outer diameter mm).
REFERENCE_DIAMETER_MM = 0.908
#: Tip-shape factor on the peak force at the tip (design values after the reference, section 5.2:
#: "Tuohy > Quincke for the ligamentum flavum"; Naemura 2009/2012: a Tuohy indents the ligament more
#: before it gives; a cutting bevel parts tissue most easily, a pencil point pushes it aside).
TIP_FORCE_FACTOR = {"tuohy": 1.0, "quincke": 0.7, "pencil_point": 0.85, "blunt": 1.15}
#: A layer "gives" with a pop when the tip passes from a layer needing at least this peak force...
POP_MIN_FORCE_N = 1.2
#: ...into one needing at most this fraction of it.
POP_RATIO = 0.7


def needle_force_factor(tip: str, outer_diameter_mm: float) -> float:
    """Scale of a needle's forces against the 20 G Tuohy of the table: force grows with the needle's
    diameter (Jiang 2014, J Biomech) and depends on its tip."""
    return TIP_FORCE_FACTOR.get(tip, 1.0) * outer_diameter_mm / REFERENCE_DIAMETER_MM


def speed_factor(speed_mm_s: float) -> float:
    """Faster insertion raises the peak force (Naemura 2009: lower at 0.4 than at 2 mm/s); a gentle
    power law about 2 mm/s, bounded. Design values."""
    if not np.isfinite(speed_mm_s) or speed_mm_s <= 0.0:
        return 1.0
    return float(np.clip((speed_mm_s / 2.0) ** 0.12, 0.8, 1.3))


#: The ligamentum flavum crossing the table's force is for, mm: a typical lumbar flavum (3.5-4 mm
#: thick, reference 2.1) crossed a little obliquely on a midline path (the phantom's crossings at
#: L3-L5 are 4-6.5 mm, median ~4.6).
FLAVUM_REFERENCE_MM = 5.0


def layer_thickness_factor(tissue_name: str, layer_mm: float) -> float:
    """Scale of the tip's peak force with the thickness of the layer it is crossing: a thicker
    ligamentum flavum is indented further before it gives (reference 5.2, "scale LF peak force with
    local thickness"), a thin cervical one (1.5-3 mm) gives sooner. Other layers: 1."""
    if tissue_name != "ligamentum_flavum" or not np.isfinite(layer_mm) or layer_mm <= 0.0:
        return 1.0
    return float(np.clip(layer_mm / FLAVUM_REFERENCE_MM, 0.4, 1.5))


def advancing_force_n(tip_tissue_id: int, shaft_tissue_ids: np.ndarray, step_mm: float, tip: str,
                      outer_diameter_mm: float, speed_mm_s: float, tip_layer_mm: float = FLAVUM_REFERENCE_MM) -> float:
    """Force felt pushing the needle: the tip's peak force in its tissue (scaled by the layer's
    thickness where that matters, ``tip_layer_mm`` along the needle) plus friction along the shaft
    in each tissue it lies in, newtons."""
    table = tissue_table()
    factor = needle_force_factor(tip, outer_diameter_mm)
    tip_n = (float(table.advance_force_n[tip_tissue_id]) * factor * speed_factor(speed_mm_s)
             * layer_thickness_factor(table[tip_tissue_id].name, tip_layer_mm))
    friction_n = float(table.friction_n_per_mm[shaft_tissue_ids].sum()) * step_mm
    return tip_n + friction_n * outer_diameter_mm / REFERENCE_DIAMETER_MM


def pops(from_tissue_id: int, to_tissue_id: int) -> bool:
    """Whether passing from one tissue into the next is felt as a pop (a layer giving way)."""
    force = tissue_table().advance_force_n
    before, after = float(force[from_tissue_id]), float(force[to_tissue_id])
    return before >= POP_MIN_FORCE_N and after <= POP_RATIO * before


# ----------------------------------------------------------------------------- false losses
#: A degenerate interspinous ligament may hold fluid-filled or fatty clefts (interspinous bursitis,
#: Baastrup's disease): the syringe can lose resistance in them before the ligamentum flavum.
#: Probability that a degenerate interspace's ligament has clefts, the fraction of its volume they
#: fill, and the plunger pressure in one (mmHg; as loose areolar tissue). Design values: the
#: reference names the mechanism (section 5.2) but gives no rates.
CLEFT_PROBABILITY = 0.35
CLEFT_FRACTION = 0.2
CLEFT_MMHG = 35.0
#: Clefts lie at least this far behind the interlaminar window's centre, mm: in the ligament's back
#: part between the spinous processes, where interspinous bursae form (Baastrup's disease).
CLEFT_MIN_BEHIND_WINDOW_MM = 8.0
#: Size of the clefts, mm (the lattice of the seeded noise that places them).
CLEFT_SIZE_MM = 4.0


def has_clefts(interspace: str, seed: int) -> bool:
    """Whether the degenerate interspinous ligament at ``interspace`` has clefts (seeded)."""
    code = sum(ord(ch) * 31 ** i for i, ch in enumerate(interspace)) & 0xFFFFFFFF
    return float(np.random.default_rng([seed & 0xFFFFFFFF, 979, code]).random()) < CLEFT_PROBABILITY


def cleft_noise(point_mm, seed: int) -> float:
    """Seeded smooth value noise in [0, 1] on a :data:`CLEFT_SIZE_MM` lattice."""
    p = np.asarray(point_mm, float) / CLEFT_SIZE_MM
    base = np.floor(p).astype(np.int64)
    frac = p - base
    value = 0.0
    for corner in np.ndindex(2, 2, 2):
        c = base + np.array(corner)
        h = np.random.default_rng([seed & 0xFFFFFFFF, 977, *(int(v) & 0xFFFFFFFF for v in c)]).random()
        value += float(np.prod(np.where(np.array(corner) == 1, frac, 1.0 - frac))) * h
    return value


#: Noise level above which a point is in a cleft: the 80th percentile of :func:`cleft_noise`
#: (measured over 15 000 random points and three seeds), so about :data:`CLEFT_FRACTION` of the
#: ligament is cleft.
CLEFT_THRESHOLD = 0.636


def in_degenerate_cleft(point_mm, seed: int) -> bool:
    """Whether ``point_mm`` lies in a cleft of a degenerate interspinous ligament (seeded)."""
    return cleft_noise(point_mm, seed) > CLEFT_THRESHOLD


def in_false_loss_cleft(anatomy, point_mm, seed: int) -> bool:
    """Whether an interspinous-ligament point of ``anatomy`` lies in a cleft: at a degenerate
    interspace whose ligament has clefts, in its back part (at least
    :data:`CLEFT_MIN_BEHIND_WINDOW_MM` behind the interlaminar window, between the spinous processes,
    where interspinous bursae form), where the seeded noise says so."""
    degenerate = getattr(anatomy.patient, "degenerate_levels", ())  # an imported CT has none
    if not degenerate:
        return False
    p = np.asarray(point_mm, float)
    interspace = anatomy.interspace_at(p)
    if interspace not in degenerate or not has_clefts(interspace, seed):
        return False
    upper = interspace.split("-")[0]
    anterior = anatomy.landmark(f"{upper}.body_center") - anatomy.landmark(f"{upper}.spinous_tip")
    behind_mm = float((anatomy.landmark(f"{interspace}.interlaminar_center") - p) @ anterior) / float(
        np.linalg.norm(anterior))
    return behind_mm > CLEFT_MIN_BEHIND_WINDOW_MM and in_degenerate_cleft(p, seed)


# ----------------------------------------------------------------------------- aspiration
#: Probability that aspirating shows blood with the tip in a vessel: Furman 2003 (cervical TF, 392
#: injections): a blood flash is 96.5% specific but only 44.2% sensitive (reference section 3.12).
BLOOD_FLASH_SENSITIVITY = 0.442
#: Probability that aspirating shows CSF with the tip intrathecal: CSF flows back freely through
#: 18-22 G needles; through a 25 G needle slowly and less surely. Design values.
CSF_FLASH_PROBABILITY = {18: 1.0, 20: 1.0, 22: 0.97, 25: 0.85}


def aspirate(category: str, gauge: int, rng: np.random.Generator) -> str:
    """What the hub shows on aspiration: ``"csf"``, ``"blood"`` or ``"nothing"``."""
    u = float(rng.random())
    if category == "intrathecal":
        return "csf" if u < CSF_FLASH_PROBABILITY.get(int(gauge), 0.9) else "nothing"
    if category == "vessel":
        return "blood" if u < BLOOD_FLASH_SENSITIVITY else "nothing"
    return "nothing"
