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


def lor_reading(tissue_id: int, medium: str, rng: np.random.Generator) -> LorReading:
    """The plunger pressure with the tip in ``tissue_id``."""
    base = float(tissue_table().lor_saline_mmhg[tissue_id])
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
        "epidural_fat": "a sudden give",
        "dura": "a subtle give",
        "csf": "no resistance",
        "cauda_equina": "no resistance",
        "disc_annulus": "gritty, very firm",
        "disc_nucleus": "soft after a firm layer",
        "nerve_root": "an electric shock down the leg (paraesthesia)",
    }.get(tissue_name, "firm")
