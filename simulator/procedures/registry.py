"""The procedures by id (the ``procedure`` of a scenario)."""

from __future__ import annotations

from simulator.procedures.base import Procedure
from simulator.procedures.caudal import Caudal
from simulator.procedures.lumbar_interlaminar import Interlaminar
from simulator.procedures.transforaminal import LumbarTransforaminal

_PROCEDURES: dict[str, Procedure] = {
    "lumbar_interlaminar": Interlaminar(),
    "cervical_interlaminar": Interlaminar(),
    "caudal": Caudal(),
    "lumbar_transforaminal": LumbarTransforaminal(),
}


def procedure_for(procedure_id: str) -> Procedure:
    """The :class:`Procedure` a scenario's ``procedure`` names."""
    return _PROCEDURES[procedure_id]
