"""Attempts as CSV: one flat row per attempt (who, what, when, and its newest scorecard's parts,
placement and metrics), for a spreadsheet or a statistics package. ``spinesim export --format csv``
and the results dialog's CSV export both write it."""

from __future__ import annotations

import csv
from pathlib import Path

from simulator.errors import SpineSimError


def _flat(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list):
        out[prefix] = " | ".join(str(v) for v in value)
    else:
        out[prefix] = value


def attempt_csv_rows(store, actor, ids=None) -> list[dict]:
    """One flat row per attempt of ``ids`` (all the actor may read when empty or None); nested
    scorecard keys are dotted (``parts.placement``), lists joined with `` | ``."""
    infos = [store.attempt(actor, i) for i in ids] if ids else store.attempts(actor)
    rows = []
    for a in infos:
        row = {"attempt_id": a.id, "owner": a.owner, "scenario_id": a.scenario_id, "course": a.course,
               "status": a.status, "started_at": a.started_at.isoformat(),
               "finished_at": a.finished_at.isoformat() if a.finished_at else ""}
        card = store.scorecard(actor, a.id)
        if card is not None:
            _flat("", {k: v for k, v in card.items() if k != "feedback"}, row)
        rows.append(row)
    return rows


def write_attempts_csv(rows: list[dict], path) -> Path:
    """Write ``rows`` (see :func:`attempt_csv_rows`) with every column any row has; a one-line
    :class:`SpineSimError` naming the file if it cannot be written."""
    path = Path(path)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    except OSError as err:
        raise SpineSimError(f"{path}: cannot write ({err.strerror})") from None
    return path
