"""The procedures by id (the ``procedure`` of a scenario)."""

from __future__ import annotations

from simulator.procedures.base import Procedure
from simulator.procedures.caudal import Caudal
from simulator.procedures.lumbar_interlaminar import CervicalInterlaminar, Interlaminar
from simulator.procedures.foraminal import CervicalTransforaminal, S1Transforaminal, ThoracicTransforaminal
from simulator.procedures.joints import CervicalFacet, LumbarFacet, SacroiliacJoint
from simulator.procedures.medial_branch import CervicalMedialBranch, LumbarMedialBranch
from simulator.procedures.transforaminal import LumbarTransforaminal

_PROCEDURES: dict[str, Procedure] = {
    "lumbar_interlaminar": Interlaminar(),
    "cervical_interlaminar": CervicalInterlaminar(),
    "caudal": Caudal(),
    "lumbar_transforaminal": LumbarTransforaminal(),
    "cervical_transforaminal": CervicalTransforaminal(),
    "thoracic_transforaminal": ThoracicTransforaminal(),
    "s1_transforaminal": S1Transforaminal(),
    "sacroiliac_joint": SacroiliacJoint(),
    "lumbar_medial_branch": LumbarMedialBranch(),
    "cervical_medial_branch": CervicalMedialBranch(),
    "lumbar_facet": LumbarFacet(),
    "cervical_facet": CervicalFacet(),
}


def procedure_for(procedure_id: str) -> Procedure:
    """The :class:`Procedure` a scenario's ``procedure`` names."""
    return _PROCEDURES[procedure_id]
