"""One injection of contrast: which compartments it reaches, with what pattern, over time.

The tip's tissue names the compartment (:func:`.contrast_spread.compartment_of`); where the tip is
(foraminal, caudal, interlaminar, a joint; the level's region) sets the chance of vascular uptake
(:mod:`.vascular`). Then:

- a tip in a vessel sends everything into it (venous or arterial pattern);
- uptake elsewhere takes part of the volume (a mixed pattern, the commoner) or all of it;
- a joint fills to its capacity, and the rest leaks through the capsule (facet: into the epidural
  space or the multifidus; the SIJ leaks in a quarter of injections whatever the volume);
- contrast in marrow blushes and drains into the veins of the vertebral body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.anatomy.search import nearest_of
from simulator.anatomy.tissues import tissue_table
from simulator.imaging import contrast_spread as spread_mod
from simulator.imaging import vascular
from simulator.imaging.contrast import Bolus, VesselFill

#: Extra seconds intrathecal and subdural contrast keeps spreading after the push (it "spreads
#: quickly over several levels", reference 3.0).
AFTER_SPREAD_S = {"intrathecal": 3.0, "subdural": 4.0}


@dataclass
class Injection:
    """What one injection put where, and what the event reports.

    Attributes
    ----------
    boluses : list of Bolus
    vessels : list of VesselFill
    report : dict
        ``compartment`` (of the tip), ``context`` (where the tip is, for uptake), ``vascular``
        (``"venous"``, ``"arterial"`` or None), ``vascular_fraction``, ``leak`` (a compartment or
        None).
    """

    boluses: list[Bolus] = field(default_factory=list)
    vessels: list[VesselFill] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def injection_seconds(volume_ml: float) -> float:
    """How long the push of ``volume_ml`` takes."""
    return float(volume_ml) / float(vascular.table()["injection"]["rate_ml_per_s"])


def inject(anatomy, tip_mm, tip_tissue: str, volume_ml: float, start_s: float, patient_seed: int,
           rng: np.random.Generator, gravity: np.ndarray) -> Injection:
    """Contrast of ``volume_ml`` injected at ``tip_mm`` (in ``tip_tissue``) from ``start_s``.

    ``rng``: the attempt's draw for the fill's texture; ``gravity``: the world direction that is
    down for the patient's position (intrathecal contrast settles that way).
    """
    tip = np.asarray(tip_mm, float)
    compartment = spread_mod.compartment_of(tip_tissue)
    context = uptake_context(anatomy, tip, compartment, tip_tissue)
    duration = injection_seconds(volume_ml)
    in_vessel = compartment if compartment in ("venous", "arterial") else None
    draw = vascular.draw_uptake(context, patient_seed, tip, in_vessel)
    out = Injection(report={"compartment": compartment, "context": context, "vascular": draw.kind,
                            "vascular_fraction": round(draw.vascular_fraction, 3), "leak": None})
    if draw.kind is not None:
        out.vessels.append(vascular.vessel_fill(anatomy, tip, draw, start_s, duration, patient_seed))
    left_ml = volume_ml * (1.0 - draw.vascular_fraction)
    if left_ml <= 1e-6:
        return out
    names = tissue_table().names_by_id()

    def fill(where: str, ml: float, at: np.ndarray, washout_s=None) -> float:
        result = spread_mod.spread(anatomy.labels, anatomy.world_from_voxel, at, names, where, ml, rng,
                                   dependent_direction=gravity if where == "intrathecal" else None)
        if result is None or not result.stages:
            return 0.0
        out.boluses.append(Bolus(result.stages, where, start_s, duration + AFTER_SPREAD_S.get(where, 0.0),
                                 washout_s, result.filled_ml))
        return result.filled_ml

    if compartment == "joint":
        leak_ml, leak_to = _joint_behaviour(tip_tissue, _region(anatomy, tip), left_ml, patient_seed, tip)
        fill("joint", left_ml - leak_ml, tip)
        if leak_ml > 1e-6:
            near = nearest_tissue(anatomy, tip, spread_mod.COMPARTMENT_TISSUES[leak_to], 15.0)
            if near is not None and fill(leak_to, leak_ml, near) > 0.0:
                out.report["leak"] = leak_to
    elif compartment == "bone":
        fill("bone", left_ml, tip, washout_s=vascular.table()["intraosseous"]["blush_washout_s"])
        drain = vascular.UptakeDraw("venous", 0.0, 0.5 * sum(vascular.table()["vessel"]["venous"]["mgi_per_ml"]))
        out.vessels.append(vascular.vessel_fill(anatomy, tip, drain, start_s, duration, patient_seed))
    else:
        fill(compartment, left_ml, tip)
    return out


def uptake_context(anatomy, tip: np.ndarray, compartment: str, tip_tissue: str) -> str | None:
    """Where the tip is, as a row of the uptake table: ``cervical_foraminal`` (and thoracic, lumbar,
    sacral), ``caudal``, ``interlaminar``, ``facet``, ``sacroiliac``; None elsewhere."""
    if tip_tissue == "facet_joint":
        return "facet"
    if tip_tissue == "sacroiliac_joint":
        return "sacroiliac"
    if compartment != "epidural":
        return None
    region = _region(anatomy, tip)
    if nearest_tissue(anatomy, tip, ("nerve_root",), 6.0) is not None:
        return f"{region}_foraminal"
    return "caudal" if region == "sacral" else "interlaminar"


def _region(anatomy, tip: np.ndarray) -> str:
    s1 = anatomy.landmarks.get("S1.superior_endplate_center")
    if s1 is not None and tip[2] < s1[2] - 3.0:
        return "sacral"
    interspace = anatomy.interspace_at(tip) or "L4-L5"
    return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[interspace[0]]


def nearest_tissue(anatomy, point, tissues, within_mm: float) -> np.ndarray | None:
    """The nearest point of any of ``tissues`` within ``within_mm`` (voxel labels, a 1 mm lattice)."""
    ids = [tissue_table().id(t) for t in tissues]
    return nearest_of(anatomy.labels_at, point, ids, within_mm, step_mm=1.0)


def _joint_behaviour(tip_tissue: str, region: str, volume_ml: float, patient_seed: int,
                     tip: np.ndarray) -> tuple[float, str]:
    """(volume that leaks mL, compartment it leaks into) for an injection into a joint."""
    j = vascular.table()["joint"]
    rng = np.random.default_rng(vascular.tip_key(patient_seed, 37, tip))
    u_leaky, u_where = rng.random(2)
    if tip_tissue == "sacroiliac_joint":
        capacity = j["sacroiliac_ml"]
        leak = max(volume_ml - capacity, 0.0)
        if u_leaky < j["sacroiliac_leaky_probability"]:
            leak = max(leak, j["sacroiliac_leak_fraction"] * volume_ml)
        return leak, "soft_tissue"
    capacity = j["cervical_facet_ml"] if region == "cervical" else j["lumbar_facet_ml"]
    leak_to = "epidural" if u_where < j["facet_leak_epidural_share"] else "soft_tissue"
    return max(volume_ml - capacity, 0.0), leak_to
