"""The instructors' report: landmark against fluoroscopy guidance, complications, technique and
learning curves, from the attempt store.

Three steps, each usable on its own (the app, ``spinesim report`` and a notebook share them):

1. :func:`attempt_rows` reads the store (what an actor may see, narrowed by a :class:`Selection`)
   into one flat :class:`AttemptRow` per attempt: who, which case, which guidance mode, the
   placement outcome, a yes/no per complication type (:data:`COMPLICATIONS`) and the technique
   figures.
2. :func:`build_report` turns the rows into a :class:`Report`: success and complication rates per
   procedure and guidance mode with Wilson intervals; landmark minus fluoroscopy per procedure
   (Newcombe interval, Fisher's exact test); a paired analysis where the same trainees did the
   same case in both modes (exact McNemar test, Newcombe's paired interval); medians and quartiles
   of time, needle passes, fluoroscopy time and dose-area product; and an LC-CUSUM learning curve
   per trainee, procedure and guidance mode. The statistics are :mod:`simulator.analysis.stats`.
3. :func:`write_html` (one self-contained file, the plots embedded) and :func:`write_pdf` (the same
   content, through matplotlib: no LaTeX, no network) write what an instructor hands out.

Which attempts count
--------------------
An attempt counts when it is ``finished`` and has a scorecard; the newest scorecard is used (a
rescore replaces the original). Attempts still ``in_progress`` never count (someone may be doing
them). ``incomplete`` attempts (abandoned, or the station died) and finished attempts without a
scorecard are left out by default, because their outcome is unknown and a crashed station is not a
trainee's failure; the report says how many were left out. With ``Selection(include_incomplete=True)``
they count as attempts without a successful placement (outcome ``"incomplete"``, not passed), with
the complications their recorded events show and no technique figures.

Headless: no Qt; matplotlib only in :mod:`simulator.analysis.plots`, imported when a file is
written.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import textwrap
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from simulator.analysis.stats import (
    LcCusumResult,
    LcCusumThreshold,
    PairedDifference,
    RiskDifference,
    Spread,
    lc_cusum,
    lc_cusum_threshold,
    median_spread,
    paired_difference,
    rates_table,
    risk_difference,
)

__all__ = [
    "COMPLICATIONS",
    "GUIDANCE_ORDER",
    "MEASURES",
    "TECHNIQUE_MEASURES",
    "AttemptRow",
    "AttemptRows",
    "ComparisonRow",
    "ComplicationType",
    "LearningCurve",
    "PairedRow",
    "RateRow",
    "Report",
    "Selection",
    "TechniqueMeasure",
    "TechniqueRow",
    "attempt_rows",
    "build_report",
    "run_report",
    "write_html",
    "write_pdf",
]

#: The two guidance modes, in the order the report shows them; the comparisons are always
#: ``landmark - fluoroscopy``.
GUIDANCE_ORDER = ("landmark", "fluoroscopy")
LANDMARK, FLUOROSCOPY = GUIDANCE_ORDER
#: What every page and file says.
TRAINING_ONLY = ("Training use only: simulated attempts on simulated patients. These figures describe "
                 "performance in the simulator; they are not clinical outcomes.")
#: Outcome of an attempt that counts without a scorecard (Selection.include_incomplete).
INCOMPLETE = "incomplete"

_NAN = float("nan")


# ----------------------------------------------------------------------------------------------
# Complication types: one table, read by the rows, the tables and the plots
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evidence:
    """What an attempt's record says: its placement outcome, metrics, hard fails and events."""

    outcome: str
    metrics: Mapping[str, Any]
    hard_fails: Sequence[str]
    events: Sequence[Any]  # simulator.protocol.events.Event (kind, t_s, data)

    def metric(self, key: str, default: float = _NAN) -> float:
        value = self.metrics.get(key)
        try:
            return float(value) if value is not None else default
        except (TypeError, ValueError):
            return default

    def went_through(self, group: str) -> bool:
        """The needle's track went into a danger structure (its closest approach is 0 mm)."""
        return self.metric(f"closest_{group}_mm") == 0.0

    def has_event(self, kind: str) -> bool:
        return any(e.kind == kind for e in self.events)

    def contrast(self) -> Iterable[Mapping[str, Any]]:
        return (e.data for e in self.events if e.kind == "contrast_injected")


@dataclass(frozen=True)
class ComplicationType:
    """One complication counted per attempt (yes or no).

    Attributes
    ----------
    id : str
        Key in :attr:`AttemptRow.complications` and the measure id in the report.
    name : str
        Plain-language name, as the tables show it.
    definition : str
        How it is recognised from the attempt's record, as the report explains it.
    detect : callable
        ``detect(evidence) -> bool``.
    """

    id: str
    name: str
    definition: str
    detect: Callable[[_Evidence], bool] = field(repr=False, compare=False)


def _dural_puncture(ev: _Evidence) -> bool:
    return ev.outcome == "intrathecal" or ev.metric("dural_punctures", 0.0) > 0 or ev.has_event("dural_puncture")


def _intravascular(ev: _Evidence) -> bool:
    if ev.outcome in ("vessel", "vertebral_artery"):
        return True
    return any(d.get("vascular") in ("venous", "arterial") or d.get("compartment") in ("venous", "arterial")
               for d in ev.contrast())


def _intrathecal(ev: _Evidence) -> bool:
    return ev.outcome == "intrathecal" or any(d.get("compartment") in ("intrathecal", "subdural")
                                              for d in ev.contrast())


def _nerve_root(ev: _Evidence) -> bool:
    return ev.outcome == "nerve_root" or ev.has_event("paraesthesia") or ev.went_through("nerve_root")


def _disc(ev: _Evidence) -> bool:
    return ev.outcome == "disc" or ev.went_through("disc")


def _pleura(ev: _Evidence) -> bool:
    return ev.outcome == "pleura" or ev.went_through("pleura")


def _hard_fail(ev: _Evidence) -> bool:
    return bool(ev.hard_fails)


#: The complication types, in the order the report lists them.
COMPLICATIONS: tuple[ComplicationType, ...] = (
    ComplicationType("dural_puncture", "Dural puncture (wet tap)",
                     "the dura was punctured at any time in the attempt (a dural puncture event or metric), or "
                     "the tip ended intrathecal", _dural_puncture),
    ComplicationType("intravascular", "Intravascular needle or injection",
                     "the tip ended in a vessel or the vertebral artery, or any contrast injection showed venous "
                     "or arterial uptake (a vascular or mixed pattern)", _intravascular),
    ComplicationType("intrathecal", "Intrathecal or subdural",
                     "the tip ended intrathecal, or any contrast injection went intrathecal or subdural",
                     _intrathecal),
    ComplicationType("nerve_root", "Nerve root contact or paraesthesia",
                     "the tip ended in a nerve root, the needle touched a nerve (a paraesthesia), or its track "
                     "went through a root", _nerve_root),
    ComplicationType("disc", "Disc entered",
                     "the tip ended in the disc, or the needle's track went through a disc", _disc),
    ComplicationType("pleura", "Pleura or lung reached",
                     "the tip ended in the pleura or lung, or the needle's track went through them "
                     "(pneumothorax risk)", _pleura),
    ComplicationType("hard_fail", "Any hard fail (safety rule broken)",
                     "the scorecard lists at least one hard fail (a broken safety rule, such as contrast given without "
                     "live imaging in a transforaminal injection)", _hard_fail),
)
_COMPLICATION_IDS = tuple(c.id for c in COMPLICATIONS)

#: Every yes/no measure with a rate in the report: (id, plain-language name). ``success`` is the
#: placement outcome ``"success"``; ``passed`` is the scorecard's verdict (success, no dural
#: puncture, no hard fail, score at or above the pass mark).
MEASURES: tuple[tuple[str, str], ...] = (
    ("success", "Placement success"),
    ("passed", "Passed (scorecard)"),
    *((c.id, c.name) for c in COMPLICATIONS),
)
_MEASURE_NAMES = dict(MEASURES)


@dataclass(frozen=True)
class TechniqueMeasure:
    """A technique figure summarised by median and quartiles; ``fluoroscopy_only`` measures are not
    applicable to landmark attempts (left out, not counted as 0)."""

    id: str
    name: str
    unit: str
    fluoroscopy_only: bool = False


TECHNIQUE_MEASURES: tuple[TechniqueMeasure, ...] = (
    TechniqueMeasure("time_s", "Time", "s"),
    TechniqueMeasure("needle_passes", "Needle passes", "count"),
    TechniqueMeasure("fluoroscopy_s", "Fluoroscopy time", "s", fluoroscopy_only=True),
    TechniqueMeasure("dap_gy_cm2", "Dose-area product", "Gy cm2", fluoroscopy_only=True),
)


# ----------------------------------------------------------------------------------------------
# Selection and rows
# ----------------------------------------------------------------------------------------------


def _names(value: Any, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    out = tuple(str(v).strip() for v in value)
    if not out or any(not v for v in out):
        raise ValueError(f"Selection.{what}: give at least one non-empty name, or None for all")
    return out


def _day(value: Any, what: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value.astimezone(timezone.utc) if value.tzinfo else value).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"Selection.{what}: {value!r} is not a date (YYYY-MM-DD)") from None
    raise TypeError(f"Selection.{what}: must be a date, got {value!r}")


@dataclass(frozen=True)
class Selection:
    """Which attempts a report covers; every field is optional (None: no restriction).

    Attributes
    ----------
    course : int or str, optional
        A course id or name: only attempts made in that course.
    trainees : sequence of str, optional
        Accounts of a group of trainees (a single account may be given as a string).
    date_from, date_to : date, optional
        First and last day, inclusive, of the attempts' start (UTC). ``YYYY-MM-DD`` strings and
        datetimes are accepted.
    procedures : sequence of str, optional
        Procedure ids (a scenario's ``procedure``: ``"lumbar_interlaminar"``, ``"caudal"``, ...).
    guidance : sequence of str, optional
        Guidance modes (``"landmark"``, ``"fluoroscopy"``).
    include_incomplete : bool
        Count incomplete attempts (and finished ones without a scorecard) as attempts without a
        successful placement; by default they are left out (see the module's notes).
    """

    course: int | str | None = None
    trainees: tuple[str, ...] | None = None
    date_from: date | None = None
    date_to: date | None = None
    procedures: tuple[str, ...] | None = None
    guidance: tuple[str, ...] | None = None
    include_incomplete: bool = False

    def __post_init__(self):
        set_ = object.__setattr__
        if self.course is not None and not isinstance(self.course, int):
            set_(self, "course", str(self.course))
        set_(self, "trainees", _names(self.trainees, "trainees"))
        set_(self, "procedures", _names(self.procedures, "procedures"))
        set_(self, "guidance", _names(self.guidance, "guidance"))
        set_(self, "date_from", _day(self.date_from, "date_from"))
        set_(self, "date_to", _day(self.date_to, "date_to"))
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"Selection: date_from {self.date_from} is after date_to {self.date_to}")
        set_(self, "include_incomplete", bool(self.include_incomplete))

    def describe(self) -> list[tuple[str, str]]:
        """The selection as (what, value) lines for the report."""
        def many(values):
            return ", ".join(values) if values else "all"

        if self.date_from or self.date_to:
            dates = f"{self.date_from or 'the first'} to {self.date_to or 'the last'} (inclusive, UTC)"
        else:
            dates = "all"
        return [
            ("Course", "all" if self.course is None else str(self.course)),
            ("Trainees", many(self.trainees)),
            ("Dates", dates),
            ("Procedures", many(self.procedures)),
            ("Guidance", many(self.guidance)),
            ("Incomplete attempts", "counted as unsuccessful" if self.include_incomplete else "left out"),
        ]

    def day_in_range(self, when: datetime) -> bool:
        d = _day(when, "date")
        return (self.date_from is None or d >= self.date_from) and (self.date_to is None or d <= self.date_to)


@dataclass(frozen=True)
class AttemptRow:
    """One attempt, flat.

    ``complications`` maps every :data:`COMPLICATIONS` id to True/False. Technique figures are None
    when not applicable (fluoroscopy time and dose of a landmark attempt) or unknown (an attempt
    without a scorecard). ``case`` identifies the clinical case (procedure, level, side, position
    and the patient's parameters) independent of the guidance mode, so a landmark and a fluoroscopy
    scenario of the same patient and target are the same case; ``case_label`` is how it is shown.
    """

    attempt_id: int
    trainee: str
    course: str | None
    scenario_id: str
    procedure: str
    guidance: str
    case: str
    case_label: str
    started_at: datetime
    status: str
    scored: bool
    passed: bool
    score: float | None
    outcome: str
    success: bool
    complications: Mapping[str, bool]
    time_s: float | None = None
    needle_passes: float | None = None
    fluoroscopy_s: float | None = None
    dap_gy_cm2: float | None = None
    images: float | None = None
    air_kerma_mgy: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The row with the complications as top-level keys (for :func:`stats.rates_table`, CSV)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "complications"}
        out.update({c: bool(self.complications.get(c, False)) for c in _COMPLICATION_IDS})
        return out

    def measure(self, measure_id: str) -> bool:
        """The yes/no value of a :data:`MEASURES` id."""
        if measure_id in ("success", "passed"):
            return bool(getattr(self, measure_id))
        return bool(self.complications[measure_id])


class AttemptRows(list):
    """The rows :func:`attempt_rows` returns (a list), with the selection they were read with and
    how many attempts were left out, and why (``left_out``)."""

    def __init__(self, rows: Iterable[AttemptRow] = (), selection: Selection | None = None,
                 left_out: Mapping[str, int] | None = None):
        super().__init__(rows)
        self.selection = selection
        self.left_out: dict[str, int] = dict(left_out or {})


def _scenario_fields(header: Mapping[str, Any]) -> dict[str, Any]:
    """Procedure, guidance and case of an attempt, from the scenario TOML kept in its header."""
    scenario = header.get("scenario") or {}
    try:
        toml = tomllib.loads(str(scenario.get("text") or ""))
    except tomllib.TOMLDecodeError:
        toml = {}
    procedure = str(toml.get("procedure") or "unknown")
    guidance = str(toml.get("guidance") or "unknown")
    level = str(toml.get("target_level") or "")
    side = str(toml.get("side") or "")
    position = str(toml.get("patient_position") or "")
    patient_spec = toml.get("patient") if isinstance(toml.get("patient"), dict) else {}
    # the resolved patient of the attempt (a scenario may be run on another seed) names the case
    patient = header.get("patient") if isinstance(header.get("patient"), dict) else patient_spec
    key = json.dumps([procedure, level, side, position, patient], sort_keys=True, default=str)
    case = hashlib.sha256(key.encode()).hexdigest()[:12]
    seed = patient.get("seed", patient_spec.get("seed"))
    extras = [f"{k} {v}" for k, v in sorted(patient_spec.items()) if k != "seed"]
    label = " ".join(x for x in (level, side if side not in ("", "midline") or not level else "") if x) or procedure
    label = label.replace("_", " ")
    label = f"{label}, patient seed {seed}" if seed is not None else label
    if extras:
        label += " (" + ", ".join(extras) + ")"
    return {"procedure": procedure, "guidance": guidance, "case": case, "case_label": label}


def _number(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _row(info, header: Mapping[str, Any], card: Mapping[str, Any] | None, events: Sequence[Any],
         fields: Mapping[str, Any]) -> AttemptRow:
    if card is not None:
        metrics = card.get("metrics") or {}
        outcome = str((card.get("placement") or {}).get("outcome") or "unknown")
        hard_fails = list(card.get("hard_fails") or [])
        passed = bool(card.get("passed"))
        score = _number(card, "score")
    else:
        metrics, outcome, hard_fails, passed, score = {}, INCOMPLETE, [], False, None
    evidence = _Evidence(outcome, metrics, hard_fails, events)
    fluoro = fields["guidance"] != LANDMARK
    technique = {m: _number(metrics, m) for m in ("time_s", "needle_passes", "images")}
    dose = {m: (_number(metrics, m) if fluoro else None) for m in ("fluoroscopy_s", "dap_gy_cm2", "air_kerma_mgy")}
    return AttemptRow(
        attempt_id=int(info.id), trainee=info.owner, course=info.course, scenario_id=info.scenario_id,
        started_at=info.started_at, status=info.status, scored=card is not None, passed=passed, score=score,
        outcome=outcome, success=outcome == "success",
        complications={c.id: bool(c.detect(evidence)) for c in COMPLICATIONS},
        **fields, **technique, **dose,
    )


def attempt_rows(store, actor, selection: Selection | None = None) -> AttemptRows:
    """The attempts ``actor`` may see that ``selection`` picks, one :class:`AttemptRow` each, in
    the order they were started.

    Parameters
    ----------
    store : simulator.records.store.Store
    actor : simulator.records.store.Actor
        An unlocked instructor sees everyone's attempts; a trainee only their own.
    selection : Selection, optional
        Which attempts (default: all).

    Returns
    -------
    AttemptRows
        A list of rows with ``.selection`` and ``.left_out`` (reason -> number of attempts).
    """
    selection = selection or Selection()
    infos: dict[int, Any] = {}
    owners = selection.trainees if selection.trainees is not None else (None,)
    for owner in owners:
        for info in store.attempts(actor, owner=owner, course=selection.course):
            infos[info.id] = info
    left_out: Counter[str] = Counter()
    rows: list[AttemptRow] = []
    parsed: dict[str, dict[str, Any]] = {}
    for info in sorted(infos.values(), key=lambda i: (i.started_at, i.id)):
        if not selection.day_in_range(info.started_at):
            continue
        header = store.attempt_record(actor, info.id).header or {}
        text = str((header.get("scenario") or {}).get("text") or "")
        memo = hashlib.sha256((text + json.dumps(header.get("patient"), sort_keys=True, default=str)).encode())
        fields = parsed.setdefault(memo.hexdigest(), _scenario_fields(header))
        if selection.procedures is not None and fields["procedure"] not in selection.procedures:
            continue
        if selection.guidance is not None and fields["guidance"] not in selection.guidance:
            continue
        if info.status == "in_progress":
            left_out["still in progress"] += 1
            continue
        card = store.scorecard(actor, info.id)
        if info.status != "finished" or card is None:
            if not selection.include_incomplete:
                left_out["incomplete" if info.status != "finished" else "finished without a scorecard"] += 1
                continue
            card = None
        rows.append(_row(info, header, card, store.events(actor, info.id), fields))
    return AttemptRows(rows, selection, dict(left_out))


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateRow:
    """A yes/no measure's rate in one procedure and guidance mode, with its Wilson interval."""

    procedure: str
    guidance: str
    measure: str
    n: int
    count: int
    proportion: float
    low: float
    high: float

    @property
    def measure_name(self) -> str:
        return _MEASURE_NAMES[self.measure]


@dataclass(frozen=True)
class ComparisonRow:
    """Landmark minus fluoroscopy for one procedure and measure (independent attempts):
    ``result`` has a = landmark, b = fluoroscopy."""

    procedure: str
    measure: str
    result: RiskDifference

    @property
    def measure_name(self) -> str:
        return _MEASURE_NAMES[self.measure]


@dataclass(frozen=True)
class PairedRow:
    """Landmark minus fluoroscopy for the trainees who did the same case in both modes, each
    trainee's first attempt in each mode making one pair (``result``: a = landmark,
    b = fluoroscopy). ``landmark_first``: pairs whose landmark attempt came first."""

    procedure: str
    case: str
    case_label: str
    measure: str
    trainees: tuple[str, ...]
    landmark_first: int
    result: PairedDifference

    @property
    def measure_name(self) -> str:
        return _MEASURE_NAMES[self.measure]


@dataclass(frozen=True)
class TechniqueRow:
    """Median, quartiles and range of a technique figure in one procedure and guidance mode."""

    procedure: str
    guidance: str
    measure: str
    spread: Spread

    @property
    def technique(self) -> TechniqueMeasure:
        return next(m for m in TECHNIQUE_MEASURES if m.id == self.measure)


@dataclass(frozen=True)
class LearningCurve:
    """One trainee's LC-CUSUM over their attempts at a procedure (in one guidance mode, or all
    modes when ``guidance`` is None), in the order they were started."""

    trainee: str
    procedure: str
    guidance: str | None
    attempt_ids: tuple[int, ...]
    started_at: tuple[datetime, ...]
    failures: tuple[bool, ...]
    result: LcCusumResult

    @property
    def n(self) -> int:
        return len(self.attempt_ids)

    @property
    def competence_attempt(self) -> int | None:
        """1-based attempt number at which competence was declared, or None."""
        return self.result.competence_attempt

    @property
    def competence_attempt_id(self) -> int | None:
        k = self.result.competence_attempt
        return None if k is None else self.attempt_ids[k - 1]

    @property
    def competence(self) -> str:
        """``"attempt 7 of 12 (2024-03-10)"`` or ``"not yet"``."""
        k = self.result.competence_attempt
        if k is None:
            return "not yet"
        return f"attempt {k} of {self.n} ({self.started_at[k - 1].date().isoformat()})"


@dataclass(frozen=True)
class Report:
    """Everything the report shows; :func:`write_html` and :func:`write_pdf` render it.

    ``rates``: every :data:`MEASURES` per procedure and guidance mode. ``comparisons``: per
    procedure done in both modes, landmark minus fluoroscopy. ``paired``: per procedure and case
    with at least one trainee in both modes. ``technique``: per procedure, guidance mode and
    :data:`TECHNIQUE_MEASURES` entry. ``curves``: per trainee, procedure (and guidance mode).
    ``methods`` and ``caveats``: the sentences the report prints.
    """

    title: str
    generated_at: datetime
    selection: Selection | None
    left_out: Mapping[str, int]
    rows: tuple[AttemptRow, ...]
    confidence: float
    acceptable_failure_rate: float
    unacceptable_failure_rate: float
    lc_alpha: float
    lc_max_attempts: int
    lc_outcome: str
    lc_by_guidance: bool
    threshold: LcCusumThreshold
    procedures: tuple[str, ...]
    guidance_modes: tuple[str, ...]
    rates: tuple[RateRow, ...]
    comparisons: tuple[ComparisonRow, ...]
    paired: tuple[PairedRow, ...]
    technique: tuple[TechniqueRow, ...]
    curves: tuple[LearningCurve, ...]
    methods: tuple[str, ...]
    caveats: tuple[str, ...]

    @property
    def h(self) -> float:
        """The LC-CUSUM decision limit."""
        return self.threshold.h

    def rate(self, procedure: str, guidance: str, measure: str = "success") -> RateRow | None:
        return next((r for r in self.rates if (r.procedure, r.guidance, r.measure) == (procedure, guidance, measure)),
                    None)

    def comparison(self, procedure: str, measure: str = "success") -> ComparisonRow | None:
        return next((c for c in self.comparisons if (c.procedure, c.measure) == (procedure, measure)), None)

    def paired_for(self, procedure: str, measure: str = "success") -> list[PairedRow]:
        return [p for p in self.paired if (p.procedure, p.measure) == (procedure, measure)]

    def technique_for(self, procedure: str, guidance: str, measure: str) -> TechniqueRow | None:
        return next((t for t in self.technique if (t.procedure, t.guidance, t.measure) == (procedure, guidance,
                                                                                            measure)), None)

    def curve(self, trainee: str, procedure: str, guidance: str | None = None) -> LearningCurve | None:
        return next((c for c in self.curves if (c.trainee, c.procedure, c.guidance) == (trainee, procedure, guidance)),
                    None)


def _guidance_key(mode: str) -> tuple[int, str]:
    return (GUIDANCE_ORDER.index(mode), "") if mode in GUIDANCE_ORDER else (len(GUIDANCE_ORDER), mode)


def format_percent(x: float) -> str:
    """A proportion as a percent with one decimal (``-`` when unknown), as the reports print it."""
    return "-" if x is None or not math.isfinite(x) else f"{100.0 * x:.1f}%"


def _pp(x: float) -> str:
    """A proportion as percent without the sign (interval limits)."""
    return "-" if x is None or not math.isfinite(x) else f"{100.0 * x:.1f}"


def format_p(p: float) -> str:
    """A p-value as the reports print it: ``<0.001``, else three decimals (``-`` when unknown)."""
    if p is None or not math.isfinite(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _human(name: str) -> str:
    return name.replace("_", " ")


def build_report(
    rows: Iterable[AttemptRow],
    acceptable_failure_rate: float = 0.2,
    unacceptable_failure_rate: float = 0.4,
    lc_alpha: float = 0.05,
    lc_max_attempts: int = 50,
    *,
    lc_outcome: str = "passed",
    lc_by_guidance: bool = True,
    lc_n_simulations: int = 20_000,
    lc_seed: int = 0,
    confidence: float = 0.95,
    selection: Selection | None = None,
    left_out: Mapping[str, int] | None = None,
    title: str = "SpineSim training report: landmark and fluoroscopy guidance",
    generated_at: datetime | None = None,
) -> Report:
    """Compute the report from attempt rows.

    Parameters
    ----------
    rows : iterable of AttemptRow
        Usually :func:`attempt_rows`; its ``selection`` and ``left_out`` are used unless given.
    acceptable_failure_rate, unacceptable_failure_rate : float
        The LC-CUSUM's ``p0`` (a competent trainee's failure rate) and ``p1`` (not acceptable).
    lc_alpha : float
        Largest probability of declaring competent, within ``lc_max_attempts``, a trainee who fails
        at the unacceptable rate; ``h`` is chosen by :func:`stats.lc_cusum_threshold`.
    lc_max_attempts : int
        Attempts over which ``lc_alpha`` is controlled.
    lc_outcome : {"passed", "success"}
        What an LC-CUSUM failure is: not passed (default: the scorecard's verdict, so a placement
        with a dural puncture or a hard fail is a failure) or no successful placement.
    lc_by_guidance : bool
        One curve per trainee, procedure *and guidance mode* (default: the two modes are different
        skills with different failure rates); False pools a trainee's attempts at a procedure.
    lc_n_simulations, lc_seed : int
        Simulation size and seed of the decision limit (the same arguments give the same ``h``).
    confidence : float
        Level of every interval.
    selection, left_out
        Shown in the report (default: from ``rows`` when it is an :class:`AttemptRows`).
    title : str
    generated_at : datetime, optional
        Default now (UTC).

    Returns
    -------
    Report
    """
    if lc_outcome not in ("passed", "success"):
        raise ValueError(f"lc_outcome must be 'passed' or 'success', got {lc_outcome!r}")
    if selection is None:
        selection = getattr(rows, "selection", None)
    if left_out is None:
        left_out = getattr(rows, "left_out", {}) or {}
    rows = tuple(sorted(rows, key=lambda r: (r.started_at, r.attempt_id)))
    generated_at = generated_at or datetime.now(timezone.utc)
    threshold = lc_cusum_threshold(acceptable_failure_rate, unacceptable_failure_rate, max_attempts=lc_max_attempts,
                                   alpha=lc_alpha, n_simulations=lc_n_simulations, seed=lc_seed)
    procedures = tuple(sorted({r.procedure for r in rows}))
    modes = tuple(sorted({r.guidance for r in rows}, key=_guidance_key))
    group_order = {(p, g): i for i, (p, g) in enumerate((p, g) for p in procedures for g in modes)}

    # (a) rates per procedure and guidance mode
    dicts = [r.as_dict() for r in rows]
    rates: list[RateRow] = []
    for measure, _ in MEASURES:
        for g in rates_table(dicts, ("procedure", "guidance"), measure, confidence):
            rates.append(RateRow(g.group[0], g.group[1], measure, g.n, g.successes, g.proportion, g.low, g.high))
    measure_order = {m: i for i, (m, _) in enumerate(MEASURES)}
    rates.sort(key=lambda r: (group_order[(r.procedure, r.guidance)], measure_order[r.measure]))

    # (b) landmark minus fluoroscopy per procedure, attempts as independent
    comparisons: list[ComparisonRow] = []
    for proc in procedures:
        land = [r for r in rows if r.procedure == proc and r.guidance == LANDMARK]
        fluo = [r for r in rows if r.procedure == proc and r.guidance == FLUOROSCOPY]
        if not land or not fluo:
            continue
        for measure, _ in MEASURES:
            result = risk_difference(sum(r.measure(measure) for r in land), len(land),
                                     sum(r.measure(measure) for r in fluo), len(fluo), confidence)
            comparisons.append(ComparisonRow(proc, measure, result))

    # (c) paired: each trainee's first attempt in each mode at the same case
    paired: list[PairedRow] = []
    firsts: dict[tuple[str, str, str, str], AttemptRow] = {}
    for r in rows:  # in time order: the first one seen is the first attempt
        firsts.setdefault((r.procedure, r.case, r.trainee, r.guidance), r)
    cases = sorted({(p, c) for (p, c, _, _) in firsts})
    labels: dict[str, set[str]] = {}
    for r in rows:
        labels.setdefault(r.case_label, set()).add(r.case)
    for proc, case in cases:
        pairs = []
        for trainee in sorted({t for (p, c, t, _) in firsts if (p, c) == (proc, case)}):
            a = firsts.get((proc, case, trainee, LANDMARK))
            b = firsts.get((proc, case, trainee, FLUOROSCOPY))
            if a is not None and b is not None:
                pairs.append((trainee, a, b))
        if not pairs:
            continue
        label = pairs[0][1].case_label
        if len(labels.get(label, ())) > 1:
            label += f" [{case[:6]}]"
        landmark_first = sum((a.started_at, a.attempt_id) < (b.started_at, b.attempt_id) for _, a, b in pairs)
        for measure, _ in MEASURES:
            result = paired_difference([(a.measure(measure), b.measure(measure)) for _, a, b in pairs], confidence)
            paired.append(PairedRow(proc, case, label, measure, tuple(t for t, _, _ in pairs), landmark_first, result))

    # (d) technique
    technique: list[TechniqueRow] = []
    for proc in procedures:
        for mode in modes:
            group = [r for r in rows if r.procedure == proc and r.guidance == mode]
            if not group:
                continue
            for m in TECHNIQUE_MEASURES:
                values = [getattr(r, m.id) for r in group if getattr(r, m.id) is not None]
                technique.append(TechniqueRow(proc, mode, m.id, median_spread(values)))

    # (e) learning curves
    curves: list[LearningCurve] = []
    sequences: dict[tuple[str, str, str | None], list[AttemptRow]] = {}
    for r in rows:
        sequences.setdefault((r.trainee, r.procedure, r.guidance if lc_by_guidance else None), []).append(r)
    for (trainee, proc, mode), seq in sorted(sequences.items(), key=lambda kv: (
            kv[0][1], _guidance_key(kv[0][2] or ""), kv[0][0])):
        failures = tuple(not getattr(r, lc_outcome) for r in seq)
        result = lc_cusum(failures, acceptable_failure_rate, unacceptable_failure_rate, threshold.h)
        curves.append(LearningCurve(trainee, proc, mode, tuple(r.attempt_id for r in seq),
                                    tuple(r.started_at for r in seq), failures, result))

    methods, caveats = _texts(rows, threshold, confidence, lc_outcome, lc_by_guidance, left_out, selection,
                              paired, curves)
    return Report(
        title=title, generated_at=generated_at, selection=selection, left_out=dict(left_out), rows=rows,
        confidence=confidence, acceptable_failure_rate=float(acceptable_failure_rate),
        unacceptable_failure_rate=float(unacceptable_failure_rate), lc_alpha=float(lc_alpha),
        lc_max_attempts=int(lc_max_attempts), lc_outcome=lc_outcome, lc_by_guidance=bool(lc_by_guidance),
        threshold=threshold, procedures=procedures, guidance_modes=modes, rates=tuple(rates),
        comparisons=tuple(comparisons), paired=tuple(paired), technique=tuple(technique), curves=tuple(curves),
        methods=tuple(methods), caveats=tuple(caveats),
    )


def _texts(rows, threshold: LcCusumThreshold, confidence: float, lc_outcome: str, lc_by_guidance: bool,
           left_out: Mapping[str, int], selection: Selection | None, paired: Sequence[PairedRow],
           curves: Sequence[LearningCurve]) -> tuple[list[str], list[str]]:
    level = f"{100 * confidence:g}%"
    failure = ("an attempt that did not pass (the scorecard's verdict: a successful placement with no dural "
               "puncture, no hard fail and a score at or above the scenario's pass mark)" if lc_outcome == "passed"
               else "an attempt without a successful placement")
    n_left = sum(left_out.values())
    include = selection is not None and selection.include_incomplete
    methods = [
        "An attempt counts when it is finished and has a scorecard; the newest scorecard is used (a rescore "
        "replaces the original). Attempts still in progress never count. "
        + ("Incomplete attempts and finished attempts without a scorecard count as attempts without a successful "
           "placement (outcome 'incomplete', not passed), with the complications their recorded events show "
           "and no technique figures." if include else
           "Incomplete attempts (abandoned, or the station stopped) and finished attempts without a scorecard "
           "are left out, because their outcome is unknown.")
        + (f" Left out here: {', '.join(f'{v} {k}' for k, v in sorted(left_out.items()))}." if n_left else ""),
        "Placement success is the scorecard's placement outcome 'success' (the tip ended in the procedure's "
        "target zone at the intended level and side). A complication is counted once per attempt, whatever "
        "the number of times it happened.",
        f"Rates are given with {level} Wilson score intervals. Landmark minus fluoroscopy differences per "
        f"procedure are in percentage points, with Newcombe's hybrid score interval ({level}) and the two-sided "
        "Fisher exact test, treating every attempt as independent.",
        "Paired analysis: where the same trainee did the same case (the same procedure, level, side and "
        "simulated patient) in both guidance modes, each trainee's FIRST attempt in each mode makes one pair; "
        f"later attempts are not used. The difference is landmark minus fluoroscopy with Newcombe's paired "
        f"interval ({level}) and the exact McNemar test on the discordant pairs.",
        "Technique figures are medians with the 25th and 75th percentiles (linear interpolation) and the "
        "range; fluoroscopy time and dose-area product apply to fluoroscopy attempts only.",
        "Learning curves: LC-CUSUM (Biau et al. 2008) over each trainee's attempts at a procedure"
        + (" in one guidance mode" if lc_by_guidance else " in both guidance modes together")
        + f", in the order they were started. A failure is {failure}. Acceptable failure rate "
        f"{threshold.acceptable_failure_rate:g}, unacceptable {threshold.unacceptable_failure_rate:g}; each "
        f"success adds {math.log((1 - threshold.acceptable_failure_rate) / (1 - threshold.unacceptable_failure_rate)):.4f}"
        f", each failure adds {math.log(threshold.acceptable_failure_rate / threshold.unacceptable_failure_rate):.4f} "
        f"and the score never goes below 0. Competence is declared when the score first reaches h = "
        f"{threshold.h:g}, chosen by {threshold.n_simulations} simulations (seed {threshold.seed}) so that a "
        f"trainee failing at the unacceptable rate is declared competent within {threshold.max_attempts} attempts "
        f"with probability {threshold.false_competence_probability:.3f} (at most alpha = {threshold.alpha:g}); a "
        f"trainee at the acceptable rate is recognised within that many attempts with probability "
        f"{threshold.detection_probability:.3f}.",
    ]
    caveats = [
        "The attempts of one trainee are not independent (a trainee who does well tends to keep doing well), but "
        "the rates, their intervals and the unpaired landmark-fluoroscopy tests treat them as if they were: when a "
        "few trainees make many of the attempts, the intervals are too narrow and the p-values too small.",
        "Trainees were not randomised to a guidance mode and may have done the modes in any order, so a "
        "difference between the modes can reflect experience as much as guidance.",
        "Many rates and tests are shown with no adjustment for multiple comparisons; a p-value below 0.05 among "
        "many is expected by chance.",
        "With few attempts the intervals are wide; no complication in n attempts does not mean a zero risk (the "
        "upper limit of the interval is what the data allow).",
        "Procedures never done without imaging fail every landmark attempt by rule 1 of the hard fails, by "
        "design; their landmark rates describe the rule, not the trainees.",
        "'Not yet' on a learning curve means the evidence of competence has not accumulated, not that the "
        "trainee is incompetent; the curve says nothing about attempts not made in the simulator.",
        "All dates are UTC.",
    ]
    if paired:
        n_pairs = sum(p.result.n_pairs for p in paired if p.measure == "success")
        first = sum(p.landmark_first for p in paired if p.measure == "success")
        caveats.append(
            f"In the paired analysis {first} of {n_pairs} pairs had the landmark attempt first; what was learnt in "
            "the first mode carries over to the second. Only first attempts are paired, so most attempts do not "
            "enter it.")
    long = [c for c in curves if c.n > threshold.max_attempts]
    if long:
        caveats.append(
            f"{len(long)} learning curve(s) run past {threshold.max_attempts} attempts, beyond the attempts over "
            "which the false-competence probability was controlled.")
    if any(r.guidance not in GUIDANCE_ORDER or r.procedure == "unknown" for r in rows):
        caveats.append("Some attempts' scenario could not be read (procedure or guidance 'unknown').")
    return methods, caveats


# ----------------------------------------------------------------------------------------------
# The document both writers render: headings, paragraphs, tables and figures
# ----------------------------------------------------------------------------------------------


@dataclass
class _Table:
    columns: list[str]
    rows: list[list[str]]
    align: str = ""  # one "l"/"r" per column (default: first left, the others right)
    caption: str = ""

    def alignment(self, i: int) -> str:
        if self.align:
            return self.align[i]
        return "l" if i == 0 else "r"


def _rate_cell(count: int, n: int, proportion: float, low: float, high: float) -> str:
    if n == 0:
        return "-"
    return f"{count}/{n} {format_percent(proportion)} ({_pp(low)} to {_pp(high)})"


def _diff_cell(d: float, low: float, high: float) -> str:
    if not math.isfinite(d):
        return "-"
    return f"{100 * d:+.1f} ({100 * low:+.1f} to {100 * high:+.1f})"


def _num(x: float, unit: str) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if unit == "Gy cm2":
        return f"{x:.3g}"
    if float(x).is_integer() or abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}"


def _document(report: Report) -> list[tuple[str, Any]]:
    """The report as blocks: ("h1"|"h2"|"h3"|"p"|"small", text), ("list", [text]), ("table", _Table),
    ("figure", (key, caption))."""
    r = report
    doc: list[tuple[str, Any]] = [("h1", r.title), ("banner", TRAINING_ONLY)]
    doc.append(("p", f"Generated {r.generated_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC by SpineSim. "
                     f"{len(r.rows)} attempts by {len({x.trainee for x in r.rows})} trainees."))
    sel = r.selection.describe() if r.selection is not None else [("Selection", "as given")]
    doc.append(("table", _Table(["Selection", ""], [[k, v] for k, v in sel], align="ll")))
    if r.left_out:
        doc.append(("p", "Left out: " + ", ".join(f"{v} {k}" for k, v in sorted(r.left_out.items())) + "."))
    if not r.rows:
        doc.append(("p", "No attempts match the selection."))

    # (a) + (b): one table per procedure
    doc.append(("h2", "1. Placement success and complications by guidance mode"))
    doc.append(("p", "Each cell: events/attempts, the rate and its "
                     f"{100 * r.confidence:g}% Wilson interval (percent). Difference: landmark minus fluoroscopy, "
                     "percentage points, Newcombe interval; p: Fisher's exact test (attempts treated as "
                     "independent)."))
    for proc in r.procedures:
        modes = [m for m in r.guidance_modes if r.rate(proc, m) is not None]
        columns = ["Measure", *(m.capitalize() for m in modes)]
        has_cmp = r.comparison(proc) is not None
        if has_cmp:
            columns += ["Difference L-F (pp)", "Fisher p"]
        body = []
        for measure, name in MEASURES:
            line = [name]
            for m in modes:
                x = r.rate(proc, m, measure)
                line.append(_rate_cell(x.count, x.n, x.proportion, x.low, x.high))
            if has_cmp:
                c = r.comparison(proc, measure).result
                line += [_diff_cell(c.difference, c.low, c.high), format_p(c.fisher_p_value)]
            body.append(line)
        doc.append(("h3", _human(proc)))
        doc.append(("table", _Table(columns, body)))
        if not has_cmp:
            doc.append(("small", "Only one guidance mode was attempted: no comparison."))
    doc.append(("figure", ("success", "Placement success by procedure and guidance mode, with "
                                      f"{100 * r.confidence:g}% Wilson intervals.")))

    # (c) paired
    doc.append(("h2", "2. Paired comparison (same trainee, same case, both modes)"))
    doc.append(("p", "Each trainee's first attempt in each mode at the same case makes one pair; later attempts are "
                     "not used. Both: success in both modes; L only / F only: success in one mode only. "
                     "Difference: landmark minus fluoroscopy (percentage points) with Newcombe's paired interval; "
                     "p: exact McNemar test."))
    if not r.paired:
        doc.append(("p", "No trainee did the same case in both modes."))
    for proc in r.procedures:
        groups = r.paired_for(proc)
        if not groups:
            continue
        for g in groups:
            body = []
            for measure, name in MEASURES:
                p = next(x for x in r.paired if (x.procedure, x.case, x.measure) == (proc, g.case, measure)).result
                body.append([name, str(p.n_pairs), str(p.both_success), str(p.only_a_success),
                             str(p.only_b_success), str(p.both_failure), format_percent(p.proportion_a), format_percent(p.proportion_b),
                             _diff_cell(p.difference, p.low, p.high), format_p(p.mcnemar_p_value)])
            doc.append(("h3", f"{_human(proc)}: {g.case_label}"))
            doc.append(("small", f"Trainees: {', '.join(g.trainees)}; landmark attempt first in {g.landmark_first} "
                                 f"of {len(g.trainees)} pairs."))
            doc.append(("table", _Table(["Measure", "Pairs", "Both", "L only", "F only", "Neither", "Landmark",
                                         "Fluoroscopy", "Difference L-F (pp)", "McNemar p"], body)))

    # (d) technique
    doc.append(("h2", "3. Technique"))
    doc.append(("p", "Median, 25th and 75th percentiles and range of each figure; n: attempts with the figure "
                     "(fluoroscopy time and dose-area product: fluoroscopy attempts only)."))
    body = []
    for proc in r.procedures:
        for mode in r.guidance_modes:
            for m in TECHNIQUE_MEASURES:
                t = r.technique_for(proc, mode, m.id)
                if t is None or t.spread.n == 0:
                    continue
                s = t.spread
                body.append([_human(proc), mode, f"{m.name} ({m.unit})", str(s.n),
                             *(_num(v, m.unit) for v in (s.median, s.q25, s.q75, s.minimum, s.maximum))])
    if body:
        doc.append(("table", _Table(["Procedure", "Guidance", "Figure", "n", "Median", "25th", "75th", "Min", "Max"],
                                    body, align="lll" + "r" * 6)))
        doc.append(("figure", ("technique", "Technique by procedure and guidance mode (boxes: quartiles; line: "
                                            "median; whiskers: 1.5 interquartile ranges).")))

    # (e) learning curves
    doc.append(("h2", "4. Learning curves (LC-CUSUM)"))
    doc.append(("p", f"Acceptable failure rate {r.acceptable_failure_rate:g}, unacceptable "
                     f"{r.unacceptable_failure_rate:g}, alpha {r.lc_alpha:g} over {r.lc_max_attempts} attempts: "
                     f"h = {r.h:g}. A failure is "
                     + ("an attempt that did not pass." if r.lc_outcome == "passed"
                        else "an attempt without a successful placement.")))
    body = [[c.trainee, _human(c.procedure), c.guidance or "both", str(c.n), str(sum(c.failures)),
             f"{c.result.scores[-1]:.2f}" if c.result.scores else "-", f"{max(c.result.scores, default=0.0):.2f}",
             c.competence] for c in r.curves]
    if body:
        doc.append(("table", _Table(["Trainee", "Procedure", "Guidance", "Attempts", "Failures", "Last score",
                                     "Highest", "Competence reached"], body, align="lll" + "rrrr" + "l")))
        doc.append(("figure", ("curves", f"LC-CUSUM score after each attempt; dashed line: h = {r.h:g}; a marker "
                                         "where competence was declared.")))

    doc.append(("h2", "5. Complications: definitions"))
    doc.append(("list", [f"{c.name}: {c.definition}." for c in COMPLICATIONS]))
    doc.append(("h2", "6. Methods and parameters"))
    t = r.threshold
    params = [
        ["Confidence level", f"{100 * r.confidence:g}%"],
        ["Acceptable failure rate (p0)", f"{r.acceptable_failure_rate:g}"],
        ["Unacceptable failure rate (p1)", f"{r.unacceptable_failure_rate:g}"],
        ["LC-CUSUM alpha", f"{r.lc_alpha:g}"],
        ["Attempts over which alpha holds", str(r.lc_max_attempts)],
        ["Decision limit h", f"{t.h:g}"],
        ["Simulated false-competence probability", f"{t.false_competence_probability:.4f}"],
        ["Simulated detection probability at p0", f"{t.detection_probability:.4f}"],
        ["Simulations, seed", f"{t.n_simulations}, {t.seed}"],
        ["LC-CUSUM failure", "not passed" if r.lc_outcome == "passed" else "no successful placement"],
        ["Curves per", "trainee, procedure and guidance" if r.lc_by_guidance else "trainee and procedure"],
    ]
    doc.append(("table", _Table(["Parameter", "Value"], params, align="ll")))
    doc.append(("list", list(r.methods)))
    doc.append(("h2", "7. Caveats"))
    doc.append(("list", list(r.caveats)))
    doc.append(("banner", TRAINING_ONLY))
    return doc


def _figures(report: Report) -> dict[str, Any]:
    from simulator.analysis import plots

    out = {"success": plots.success_rate_figure(report)}
    if any(t.spread.n for t in report.technique):
        out["technique"] = plots.technique_figure(report)
    if report.curves:
        out["curves"] = plots.learning_curve_figure(report)
    return out


# ----------------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1a1a1a;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ccc;padding-bottom:.2em}
h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}th{background:#f0f0f0}
td.r{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.banner{background:#fff4d6;border:1px solid #e0b84c;padding:.5em .8em;font-weight:600}
.small{font-size:.88em;color:#444}figure{margin:1em 0}figcaption{font-size:.88em;color:#444}
img{max-width:100%}
@media print{body{max-width:none}h2{page-break-after:avoid}}
"""


def write_html(report: Report, path: str | Path) -> Path:
    """Write the report as one self-contained HTML file (plots as embedded PNG).

    Returns
    -------
    Path
    """
    import base64

    from simulator.analysis import plots

    figures = _figures(report)
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{esc(report.title)}</title>", f"<style>{_CSS}</style></head><body>"]
    for kind, value in _document(report):
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{esc(value)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{esc(value)}</p>")
        elif kind == "small":
            parts.append(f'<p class="small">{esc(value)}</p>')
        elif kind == "banner":
            parts.append(f'<p class="banner">{esc(value)}</p>')
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in value) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{esc(c)}</th>" for c in value.columns)
            body = "".join("<tr>" + "".join(f'<td class="{value.alignment(i)}">{esc(c)}</td>'
                                            for i, c in enumerate(row)) + "</tr>" for row in value.rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "figure":
            key, caption = value
            fig = figures.get(key)
            if fig is None:
                continue
            data = base64.b64encode(plots.figure_png(fig)).decode("ascii")
            parts.append(f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{esc(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------------------------
# PDF (matplotlib's PdfPages: text and table pages, then the plots)
# ----------------------------------------------------------------------------------------------

_A4_IN = (8.27, 11.69)
_PT_PER_IN = 72.0
_MARGIN_PT = 48.0
_MONO_WIDTH = 0.6  # DejaVu Sans Mono advance, em


class _PdfPager:
    """Lays blocks out on A4 pages of text, top to bottom, and starts a new page when one is full."""

    def __init__(self, pdf, footer: str):
        self.pdf = pdf
        self.footer = footer
        self.page = 0
        self.fig = None
        self.y = 0.0  # pt from the top of the page

    @property
    def width_pt(self) -> float:
        return _A4_IN[0] * _PT_PER_IN - 2 * _MARGIN_PT

    @property
    def bottom_pt(self) -> float:
        return _A4_IN[1] * _PT_PER_IN - _MARGIN_PT

    def _new_page(self) -> None:
        from matplotlib.figure import Figure

        self.flush()
        self.fig = Figure(figsize=_A4_IN)
        self.page += 1
        self.y = _MARGIN_PT

    def flush(self) -> None:
        if self.fig is None:
            return
        self.fig.text(0.5, 0.5 * _MARGIN_PT / (_A4_IN[1] * _PT_PER_IN), f"{self.footer} - page {self.page}",
                      ha="center", va="center", fontsize=7, color="#555555")
        self.pdf.savefig(self.fig)
        self.fig = None

    def _room(self, height_pt: float) -> None:
        if self.fig is None or self.y + height_pt > self.bottom_pt:
            self._new_page()

    def _text(self, x_pt: float, s: str, size: float, **kw) -> None:
        h = _A4_IN[1] * _PT_PER_IN
        self.fig.text((_MARGIN_PT + x_pt) / (_A4_IN[0] * _PT_PER_IN), 1.0 - (self.y + size) / h, s,
                      fontsize=size, va="baseline", **kw)

    def lines(self, text: str, size: float = 9.0, weight: str = "normal", chars: int | None = None,
              indent_pt: float = 0.0, color: str = "black", gap: float = 0.35, bullet: str = "") -> None:
        chars = chars or int((self.width_pt - indent_pt) / (0.5 * size))
        wrapped = textwrap.wrap(text, chars) or [""]
        lead = size * 1.3
        for i, line in enumerate(wrapped):
            self._room(lead)
            if bullet and i == 0:
                self._text(indent_pt - 0.9 * size, bullet, size, color=color)
            self._text(indent_pt, line, size, fontweight=weight, color=color)
            self.y += lead
        self.y += gap * size

    def heading(self, text: str, size: float) -> None:
        self._room(size * 4 + 40.0)  # never a heading alone at the foot of a page
        self.y += 0.4 * size
        self.lines(text, size=size, weight="bold", gap=0.3)

    def table(self, t: _Table) -> None:
        widths = [max(len(c), *(len(row[i]) for row in t.rows)) if t.rows else len(c)
                  for i, c in enumerate(t.columns)]
        gap = 2
        chars = sum(widths) + gap * (len(widths) - 1)
        size = max(4.0, min(7.5, self.width_pt / (chars * _MONO_WIDTH)))
        lead = size * 1.35
        xs, x = [], 0.0
        for w in widths:
            xs.append(x)
            x += (w + gap) * size * _MONO_WIDTH

        def row(cells, weight):
            self._room(lead)
            for i, (cell, w) in enumerate(zip(cells, widths)):
                right = t.alignment(i) == "r"
                text = cell.rjust(w) if right else cell
                self._text(xs[i], text, size, family="DejaVu Sans Mono", fontweight=weight)
            self.y += lead

        self._room(lead * min(4, len(t.rows) + 1))
        row(t.columns, "bold")
        start_page = self.page
        for cells in t.rows:
            if self.y + lead > self.bottom_pt:
                self._new_page()
            if self.page != start_page:  # the header again on a new page
                start_page = self.page
                row(t.columns, "bold")
            row(cells, "normal")
        self.y += lead * 0.6

    def figure(self, fig, caption: str) -> None:
        """A plot across the text width (as a 200 dpi image, so every page stays A4), its caption
        under it."""
        import io

        from matplotlib.image import imread

        from simulator.analysis import plots

        image = imread(io.BytesIO(plots.figure_png(fig, dpi=200)), format="png")
        height_px, width_px = image.shape[:2]
        width = self.width_pt
        height = width * height_px / width_px
        limit = self.bottom_pt - _MARGIN_PT - 40.0  # a whole page less room for the caption
        if height > limit:
            width, height = width * limit / height, limit
        self._room(height + 30.0)
        page_w, page_h = _A4_IN[0] * _PT_PER_IN, _A4_IN[1] * _PT_PER_IN
        left = _MARGIN_PT + (self.width_pt - width) / 2
        ax = self.fig.add_axes((left / page_w, 1.0 - (self.y + height) / page_h, width / page_w, height / page_h))
        ax.imshow(image, interpolation="antialiased")
        ax.set_axis_off()
        self.y += height + 4.0
        self.lines(caption, size=8, color="#444444")


def write_pdf(report: Report, path: str | Path) -> Path:
    """Write the report as a PDF: the same blocks as the HTML on A4 text pages, each plot on a page
    of its own (matplotlib's PdfPages; no LaTeX, no network).

    Returns
    -------
    Path
    """
    from matplotlib.backends.backend_pdf import PdfPages

    figures = _figures(report)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    footer = (f"SpineSim report, generated {report.generated_at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC - "
              "training use only")
    metadata = {"Title": report.title, "Creator": "SpineSim", "Subject": TRAINING_ONLY}
    with PdfPages(tmp, metadata=metadata) as pdf:
        pager = _PdfPager(pdf, footer)
        for kind, value in _document(report):
            if kind == "h1":
                pager.heading(value, 15)
            elif kind == "h2":
                pager.heading(value, 12)
            elif kind == "h3":
                pager.heading(value, 10)
            elif kind == "p":
                pager.lines(value)
            elif kind == "small":
                pager.lines(value, size=8, color="#444444")
            elif kind == "banner":
                pager.lines(value, size=9, weight="bold", color="#8a5a00")
            elif kind == "list":
                for item in value:
                    pager.lines(item, size=8.5, indent_pt=12, bullet="-", gap=0.2)
            elif kind == "table":
                pager.table(value)
            elif kind == "figure":
                key, caption = value
                if key in figures:
                    pager.figure(figures[key], caption)
        pager.flush()
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------------------------
# For the command line
# ----------------------------------------------------------------------------------------------


def run_report(url: str | None, actor_account: str, password: str | None, selection: Selection | None = None,
               out_dir: str | Path = ".", **report_options) -> list[Path]:
    """Read the store, build the report and write it as HTML and PDF (``spinesim report``).

    Parameters
    ----------
    url : str or None
        The database (None: :func:`simulator.records.store.database_url`'s choice).
    actor_account : str
        Who is asking. With ``password`` (the instructor password) everyone's attempts are read;
        without it only the account's own (a trainee's report of their own attempts).
    password : str or None
    selection : Selection, optional
    out_dir : path
        Folder for ``spinesim-report-<UTC time>.html`` and ``.pdf`` (made if missing).
    **report_options
        Passed to :func:`build_report` (failure rates, ``lc_alpha``, ``lc_max_attempts``, ...).

    Returns
    -------
    list of Path
        The HTML and the PDF file.
    """
    from simulator.records.store import Store

    with Store.open(url) as store:
        actor = store.unlock(actor_account, password) if password is not None else store.actor(actor_account)
        rows = attempt_rows(store, actor, selection)
    report = build_report(rows, **report_options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"spinesim-report-{report.generated_at.astimezone(timezone.utc):%Y%m%d-%H%M%S}"
    return [write_html(report, out / f"{stem}.html"), write_pdf(report, out / f"{stem}.pdf")]
