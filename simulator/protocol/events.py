"""Events: what happened in a simulation, in the past tense.

Events are plain records: a ``kind`` (``needle_advanced``, ``bone_contacted``, ...), the simulated
time ``t_s`` and a flat dict of JSON-friendly data. The app, the scoring metrics and the attempt
record all consume the same events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Every event kind, with what its data holds.
EVENT_KINDS = {
    "attempt_started": "scenario id, guidance mode, patient parameters",
    "entry_set": "entry_mm, direction: the needle's tip is at the skin",
    "needle_advanced": "depth_mm, tip_mm, tissue (where the tip now is), requested_mm, moved_mm",
    "needle_withdrawn": "depth_mm, tip_mm, tissue",
    "needle_redirected": "direction, tip_mm, tissue, angle_deg",
    "tissue_entered": "tissue, depth_mm: the tip crossed into a new tissue",
    "pop_felt": "tissue: a ligament or membrane gave way",
    "ligament_entered": "depth_mm: the hands feel the change to firm",
    "paraesthesia": "structure, depth_mm: the tip touched a nerve",
    "bone_contacted": "depth_mm, tip_mm: the needle stopped on bone",
    "needle_length_exhausted": "depth_mm: the hub is at the skin",
    "dural_puncture": "depth_mm, tip_mm",
    "needle_pass_started": "pass number",
    "loss_of_resistance_tested": "pressure_mmhg, medium, feel",
    "loss_of_resistance": "pressure_mmhg, depth_mm: the plunger gave after high resistance",
    "csf_in_hub": "the hub filled with clear fluid",
    "blood_in_hub": "blood came back into the hub",
    "syringe_attached": "medium: a syringe on the hub, read at every step",
    "syringe_detached": "(none)",
    "aspirated": "result: nothing, csf or blood",
    "needle_chosen": "needle_id, name",
    "bevel_rotated": "roll_deg",
    "tip_bent": "bend_deg",
    "contrast_injected": "volume_ml, total_ml, compartment, context, vascular, vascular_fraction, leak",
    "drug_injected": "drug_id, drug_kind, particulate, volume_ml, total_ml, tissue, category",
    "pattern_reported": "pattern (the trainee's reading), truth (what the contrast did), correct",
    "carm_moved": "oblique_deg, tilt_deg, isocentre_mm",
    "image_acquired": "index, oblique_deg, tilt_deg, needle_beam_deg (needle to beam, None without a needle), and the exposure (kvp, mas, air_kerma_mgy, dap_gy_cm2, ...)",
    "fluoroscopy_started": "pulse_rate_pps, subtraction, needle_beam_deg: the pedal went down",
    "fluoroscopy_stopped": "duration_s, pulse_rate_pps, and the dose so far",
    "collimated": "field_mm (iris), shutter_mm (gap between the shutter blades, or None)",
    "magnified": "field_of_view_mm",
    "palpated": "point_mm, finding, structure, depth_mm",
    "spine_visibility_changed": "visible",
    "command_refused": "command, reason",
    "attempt_finished": "outcome summary",
}


@dataclass(frozen=True)
class Event:
    """One thing that happened.

    Attributes
    ----------
    kind : str
        One of :data:`EVENT_KINDS`.
    t_s : float
        Simulated time, seconds from the start of the attempt.
    data : dict
        JSON-friendly details.
    """

    kind: str
    t_s: float
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "t_s": round(self.t_s, 3), **self.data}
