"""A trainee's own progress: their attempt history and a learning curve per procedure and guidance mode.

:func:`trainee_progress` reads the actor's *own* attempts from the store (an unlocked instructor
gets their own too, never everyone's) into a :class:`Progress`:

- ``history``: every attempt (finished, incomplete and in progress) with its scenario, score,
  verdict, hard fails, time, images and dose, oldest first (:meth:`Progress.newest_first` for a
  table);
- ``curves``: per (procedure, guidance mode) the scored attempts in order, numbered 1, 2, ...:
  score and verdict per attempt, the rolling pass rate, and the LC-CUSUM of the verdicts with the
  attempt at which it declared competence;
- one summary sentence per curve (:attr:`ProgressCurve.summary`).

Which attempts count in a curve
-------------------------------
The same rule as the instructors' report (:mod:`simulator.analysis.report`), so a trainee and their
instructor see the same competence attempt: an attempt counts when it is ``finished`` and has a
scorecard (the newest, a rescore replacing the original); a failure is a scorecard that did not
pass. Incomplete attempts (abandoned, or the station died) are listed in the history and named in
the summary but left out of the curve, because their outcome is unknown; ``include_incomplete=True``
counts them as failures without a score. Attempts still in progress never count.

Headless: no Qt. :func:`progress_figure` draws the curves with matplotlib (imported when called),
the app embeds that figure.
"""

from __future__ import annotations

import functools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from simulator.analysis.report import GUIDANCE_ORDER
from simulator.analysis.stats import LcCusumResult, lc_cusum, lc_cusum_threshold

__all__ = [
    "OKABE_ITO",
    "HistoryEntry",
    "Progress",
    "ProgressCurve",
    "curve_style",
    "guidance_title",
    "procedure_title",
    "progress_figure",
    "trainee_progress",
]

#: The pass mark of a scenario that does not name one (the scenario schema's default).
DEFAULT_PASS_MARK = 70.0
#: Colour-blind safe palette (Okabe and Ito 2008), in the order curves take it; yellow last
#: because it is faint on white.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#F0E442")
#: Line style per guidance mode, so the two modes of one procedure differ by more than colour.
GUIDANCE_LINESTYLES = {"fluoroscopy": "-", "landmark": "--"}
#: Marker of a passed attempt and of one that did not pass: a shape, not only a colour.
PASSED_MARKER = "o"
FAILED_MARKER = "X"


def procedure_title(procedure: str) -> str:
    """``"lumbar_interlaminar"`` -> ``"Lumbar interlaminar"``."""
    words = str(procedure).replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else "Unknown procedure"


def guidance_title(guidance: str) -> str:
    """The guidance mode as the summaries say it (``"fluoroscopy"``, ``"landmark"``)."""
    return str(guidance).replace("_", " ")


def _guidance_key(mode: str) -> tuple[int, str]:
    return (GUIDANCE_ORDER.index(mode), "") if mode in GUIDANCE_ORDER else (len(GUIDANCE_ORDER), mode)


# ----------------------------------------------------------------------------------------------
# What the store gives, flattened
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One of the trainee's attempts.

    Attributes
    ----------
    attempt_id : int
    started_at : datetime
        When it was started (UTC, timezone-aware as the store keeps it).
    status : {"finished", "incomplete", "in_progress"}
    scenario_id, scenario_title : str
    procedure, guidance : str
        The scenario's procedure id and guidance mode (``"unknown"`` when its text cannot be read).
    pass_mark : float
        The scenario's pass mark, score points.
    scored : bool
        It has a scorecard (the newest is used).
    score : float or None
        0-100, None without a scorecard.
    passed : bool or None
        The scorecard's verdict; None without a scorecard.
    hard_fails : tuple of str
        The safety rules broken (each fails the attempt whatever its score).
    outcome : str or None
        The placement outcome (``"success"``, ``"intrathecal"``, ...), None without a scorecard.
    time_s : float or None
        Time to the end of the attempt, s.
    images : int or None
        X-ray images taken.
    fluoroscopy_s : float or None
        Fluoroscopy time, s; None for a landmark attempt (not applicable, not 0).
    dap_gy_cm2 : float or None
        Dose-area product, Gy cm2; None for a landmark attempt.
    air_kerma_mgy : float or None
        Air kerma at the reference point, mGy; None for a landmark attempt.
    curve_attempt : int or None
        Its number in its procedure and mode's learning curve (1 for the first that counts), None
        when it does not count there.
    """

    attempt_id: int
    started_at: datetime
    status: str
    scenario_id: str
    scenario_title: str
    procedure: str
    guidance: str
    pass_mark: float
    scored: bool
    score: float | None
    passed: bool | None
    hard_fails: tuple[str, ...]
    outcome: str | None
    time_s: float | None
    images: int | None
    fluoroscopy_s: float | None
    dap_gy_cm2: float | None
    air_kerma_mgy: float | None
    curve_attempt: int | None = None

    @property
    def group(self) -> tuple[str, str]:
        """(procedure, guidance): the learning curve it belongs to."""
        return self.procedure, self.guidance

    @property
    def verdict(self) -> str:
        """``"passed"``, ``"not passed"``, ``"incomplete"``, ``"in progress"`` or ``"not scored"``."""
        if self.passed is not None:
            return "passed" if self.passed else "not passed"
        if self.status == "finished":
            return "not scored"
        return self.status.replace("_", " ")


@dataclass(frozen=True)
class ProgressCurve:
    """The learning curve of one procedure in one guidance mode.

    Attributes
    ----------
    procedure, guidance : str
    attempt_ids : tuple of int
        The attempts that count, oldest first; attempt number ``k`` (1-based) is
        ``attempt_ids[k - 1]``.
    scores : tuple of float
        Score of each, NaN for an incomplete attempt counted as a failure.
    passed : tuple of bool
        Verdict of each.
    rolling_pass_rate : tuple of float
        After each attempt, the fraction passed of the last ``rolling_window`` attempts (fewer at
        the start), 0-1.
    rolling_window : int
    pass_mark : float
        The scenarios' pass mark (the most common one, should the scenarios differ).
    lc : LcCusumResult
        The LC-CUSUM of the failures (1 = not passed).
    n_incomplete : int
        Incomplete or unscored attempts of this procedure and mode left out of the curve.
    """

    procedure: str
    guidance: str
    attempt_ids: tuple[int, ...]
    scores: tuple[float, ...]
    passed: tuple[bool, ...]
    rolling_pass_rate: tuple[float, ...]
    rolling_window: int
    pass_mark: float
    lc: LcCusumResult
    n_incomplete: int = 0

    @property
    def n(self) -> int:
        """Attempts in the curve."""
        return len(self.attempt_ids)

    @property
    def attempt_numbers(self) -> tuple[int, ...]:
        """1, 2, ..., n: the curve's x axis."""
        return tuple(range(1, self.n + 1))

    @property
    def title(self) -> str:
        """``"Lumbar interlaminar, fluoroscopy"``."""
        return f"{procedure_title(self.procedure)}, {guidance_title(self.guidance)}"

    @property
    def competent(self) -> bool:
        """The LC-CUSUM has declared competence."""
        return self.lc.competent

    @property
    def competence_attempt(self) -> int | None:
        """1-based attempt number at which the LC-CUSUM declared competence, or None."""
        return self.lc.competence_attempt

    @property
    def competence_attempt_id(self) -> int | None:
        """The attempt (store id) at which competence was declared, or None."""
        k = self.lc.competence_attempt
        return None if k is None else self.attempt_ids[k - 1]

    @property
    def trailing_run(self) -> tuple[bool | None, int]:
        """(verdict, length) of the run of equal verdicts at the end; (None, 0) with no attempts."""
        if not self.passed:
            return None, 0
        last = self.passed[-1]
        run = 0
        for p in reversed(self.passed):
            if p != last:
                break
            run += 1
        return last, run

    @property
    def summary(self) -> str:
        """One line, e.g. ``"Lumbar interlaminar, fluoroscopy: 7 attempts, last 3 passed, competent
        at attempt 6 (LC-CUSUM)"``."""
        left_out = f" ({self.n_incomplete} incomplete not counted)" if self.n_incomplete else ""
        if self.n == 0:
            return f"{self.title}: no scored attempts yet{left_out}"
        last, run = self.trailing_run
        word = "passed" if last else "not passed"
        if run == self.n:
            streak = word if self.n == 1 else (f"all {self.n} passed" if last else f"none of {self.n} passed")
        else:
            streak = f"last one {word}" if run == 1 else f"last {run} {word}"
        if self.competence_attempt is not None:
            competence = f"competent at attempt {self.competence_attempt} (LC-CUSUM)"
        else:
            competence = "competence not yet shown (LC-CUSUM)"
        plural = "attempt" if self.n == 1 else "attempts"
        return f"{self.title}: {self.n} {plural}{left_out}, {streak}, {competence}"


@dataclass(frozen=True)
class Progress:
    """A trainee's history and learning curves (see :func:`trainee_progress`).

    Attributes
    ----------
    account, display_name : str
    history : tuple of HistoryEntry
        Every attempt, oldest first.
    curves : tuple of ProgressCurve
        One per (procedure, guidance mode) the history holds, by procedure then mode (landmark
        before fluoroscopy).
    h : float
        The LC-CUSUM decision limit.
    acceptable_failure_rate, unacceptable_failure_rate : float
        The LC-CUSUM's ``p0`` and ``p1``.
    include_incomplete : bool
        Incomplete attempts were counted as failures.
    """

    account: str
    display_name: str
    history: tuple[HistoryEntry, ...]
    curves: tuple[ProgressCurve, ...]
    h: float
    acceptable_failure_rate: float
    unacceptable_failure_rate: float
    include_incomplete: bool = False

    @property
    def empty(self) -> bool:
        """No attempts at all."""
        return not self.history

    def newest_first(self) -> list[HistoryEntry]:
        """The history, newest attempt first (as a table shows it)."""
        return list(reversed(self.history))

    @property
    def summaries(self) -> list[str]:
        """One summary line per curve, in the curves' order."""
        return [c.summary for c in self.curves]

    def curve(self, procedure: str, guidance: str) -> ProgressCurve | None:
        """The curve of ``procedure`` in ``guidance`` mode, or None."""
        return next((c for c in self.curves if (c.procedure, c.guidance) == (procedure, guidance)), None)

    def entry(self, attempt_id: int) -> HistoryEntry | None:
        """The history entry of an attempt, or None."""
        return next((e for e in self.history if e.attempt_id == attempt_id), None)

    @property
    def lc_method(self) -> str:
        """How the LC-CUSUM was set up, in one sentence (for a tooltip or a footnote)."""
        return (f"LC-CUSUM (Biau et al. 2008) of each attempt's pass or fail: acceptable failure rate "
                f"{100 * self.acceptable_failure_rate:g}%, unacceptable {100 * self.unacceptable_failure_rate:g}%, "
                f"decision limit h = {self.h:g}; competence is declared when the score reaches h.")


# ----------------------------------------------------------------------------------------------
# Reading the store
# ----------------------------------------------------------------------------------------------


def _number(mapping: Mapping[str, Any], key: str) -> float | None:
    value = mapping.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _scenario_fields(header: Mapping[str, Any], scenario_id: str) -> dict[str, Any]:
    """Title, procedure, guidance and pass mark from the scenario TOML kept in the header.

    Read with tomllib rather than the scenario schema: an attempt made on an older scenario format
    must still be listed, and unknown fields must not hide it.
    """
    scenario = header.get("scenario") or {}
    try:
        toml = tomllib.loads(str(scenario.get("text") or ""))
    except tomllib.TOMLDecodeError:
        toml = {}
    scoring = toml.get("scoring") if isinstance(toml.get("scoring"), dict) else {}
    pass_mark = _number(scoring, "pass_mark")
    return {
        "scenario_title": str(toml.get("title") or scenario_id),
        "procedure": str(toml.get("procedure") or "unknown"),
        "guidance": str(toml.get("guidance") or "unknown"),
        "pass_mark": DEFAULT_PASS_MARK if pass_mark is None else pass_mark,
    }


def _entry(info, header: Mapping[str, Any], card: Mapping[str, Any] | None) -> HistoryEntry:
    fields = _scenario_fields(header, info.scenario_id)
    if card is not None:
        metrics = card.get("metrics") or {}
        score = _number(card, "score")
        passed: bool | None = bool(card.get("passed"))
        hard_fails = tuple(str(h) for h in (card.get("hard_fails") or ()))
        outcome = (card.get("placement") or {}).get("outcome")
        outcome = None if outcome is None else str(outcome)
    else:
        metrics, score, passed, hard_fails, outcome = {}, None, None, (), None
    images = _number(metrics, "images")
    # a landmark attempt takes no X-rays: its dose is not applicable, which is not the same as 0
    imaged = fields["guidance"] != "landmark"
    return HistoryEntry(
        attempt_id=int(info.id), started_at=info.started_at, status=str(info.status),
        scenario_id=str(info.scenario_id), scored=card is not None, score=score, passed=passed,
        hard_fails=hard_fails, outcome=outcome, time_s=_number(metrics, "time_s"),
        images=None if images is None else int(round(images)),
        fluoroscopy_s=_number(metrics, "fluoroscopy_s") if imaged else None,
        dap_gy_cm2=_number(metrics, "dap_gy_cm2") if imaged else None,
        air_kerma_mgy=_number(metrics, "air_kerma_mgy") if imaged else None,
        **fields,
    )


@functools.lru_cache(maxsize=16)
def _decision_limit(p0: float, p1: float, alpha: float, max_attempts: int) -> float:
    # the same simulation (same seed and size) as the instructors' report, so both show the same h;
    # cached because it is the same for every trainee and every refresh
    return lc_cusum_threshold(p0, p1, max_attempts=max_attempts, alpha=alpha).h


def _rolling(passed: Sequence[bool], window: int) -> tuple[float, ...]:
    return tuple(sum(passed[max(0, k + 1 - window):k + 1]) / min(window, k + 1) for k in range(len(passed)))


def _most_common(values: Sequence[float], default: float) -> float:
    if not values:
        return default
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=lambda v: (counts[v], -values.index(v)))


def trainee_progress(
    store,
    actor,
    *,
    acceptable_failure_rate: float = 0.2,
    unacceptable_failure_rate: float = 0.4,
    lc_alpha: float = 0.05,
    lc_max_attempts: int = 50,
    h: float | None = None,
    rolling_window: int = 5,
    include_incomplete: bool = False,
) -> Progress:
    """The actor's own attempt history and learning curves.

    Parameters
    ----------
    store : simulator.records.store.Store
    actor : simulator.records.store.Actor
        Whose progress; only their own attempts are read, whatever their role.
    acceptable_failure_rate, unacceptable_failure_rate : float
        The LC-CUSUM's ``p0`` (a competent trainee's failure rate) and ``p1`` (not acceptable);
        the instructors' report's defaults.
    lc_alpha : float
        Largest probability of declaring competent, within ``lc_max_attempts``, a trainee who fails
        at the unacceptable rate; sets ``h`` (:func:`simulator.analysis.stats.lc_cusum_threshold`).
    lc_max_attempts : int
        Attempts over which ``lc_alpha`` is controlled.
    h : float, optional
        The decision limit itself, instead of choosing it by simulation.
    rolling_window : int
        Attempts in the rolling pass rate.
    include_incomplete : bool
        Count incomplete (and finished but unscored) attempts in the curves as failures without a
        score; by default they are only listed (see the module's notes).

    Returns
    -------
    Progress
    """
    if rolling_window < 1:
        raise ValueError(f"rolling_window must be at least 1, got {rolling_window!r}")
    if h is None:
        h = _decision_limit(float(acceptable_failure_rate), float(unacceptable_failure_rate), float(lc_alpha),
                            int(lc_max_attempts))
    infos = sorted(store.attempts(actor, owner=actor.account), key=lambda i: (i.started_at, i.id))
    entries: list[HistoryEntry] = []
    for info in infos:
        header = store.attempt_record(actor, info.id).header or {}
        card = store.scorecard(actor, info.id) if info.status == "finished" else None
        entries.append(_entry(info, header, card))

    groups: dict[tuple[str, str], list[HistoryEntry]] = {}
    for e in entries:
        groups.setdefault(e.group, []).append(e)
    numbers: dict[int, int] = {}
    curves: list[ProgressCurve] = []
    for (procedure, guidance), group in sorted(groups.items(), key=lambda kv: (kv[0][0], _guidance_key(kv[0][1]))):
        counted = [e for e in group if e.scored or (include_incomplete and e.status != "in_progress")]
        counted_ids = {e.attempt_id for e in counted}
        # an attempt someone may still be making has no outcome yet: neither counted nor "left out"
        n_left_out = sum(1 for e in group if e.attempt_id not in counted_ids and e.status != "in_progress")
        passed = tuple(bool(e.passed) for e in counted)
        for k, e in enumerate(counted, start=1):
            numbers[e.attempt_id] = k
        curves.append(ProgressCurve(
            procedure=procedure, guidance=guidance,
            attempt_ids=tuple(e.attempt_id for e in counted),
            scores=tuple(float("nan") if e.score is None else e.score for e in counted),
            passed=passed, rolling_pass_rate=_rolling(passed, rolling_window), rolling_window=int(rolling_window),
            pass_mark=_most_common([e.pass_mark for e in group], DEFAULT_PASS_MARK),
            lc=lc_cusum([not p for p in passed], acceptable_failure_rate, unacceptable_failure_rate, h),
            n_incomplete=n_left_out,
        ))
    history = tuple(replace(e, curve_attempt=numbers.get(e.attempt_id)) for e in entries)
    return Progress(
        account=actor.account, display_name=getattr(actor, "display_name", None) or actor.account,
        history=history, curves=tuple(curves), h=float(h),
        acceptable_failure_rate=float(acceptable_failure_rate),
        unacceptable_failure_rate=float(unacceptable_failure_rate), include_incomplete=bool(include_incomplete),
    )


# ----------------------------------------------------------------------------------------------
# The figure
# ----------------------------------------------------------------------------------------------


def curve_style(progress: Progress) -> dict[tuple[str, str], dict[str, str]]:
    """Colour and line style of each curve: a palette colour per curve that has attempts (in the
    curves' order, so the clearest colours go to drawn lines) and a line style per guidance mode."""
    drawn = [c for c in progress.curves if c.n] + [c for c in progress.curves if not c.n]
    return {(c.procedure, c.guidance): {"color": OKABE_ITO[i % len(OKABE_ITO)],
                                        "linestyle": GUIDANCE_LINESTYLES.get(c.guidance, "-.")}
            for i, c in enumerate(drawn)}


def progress_figure(progress: Progress, figure=None):
    """Draw the learning curves: score against attempt number (left) and the rolling pass rate
    (right), one line per procedure and guidance mode.

    Passed attempts are drawn as circles and the others as crosses (a shape, not only a colour);
    each curve has an Okabe-Ito colour and the guidance mode's line style; the pass mark is a grey
    dashed line. Artists carry gids for tests and tools: ``"score:<procedure>:<guidance>"`` (the
    line), ``"passed:..."`` and ``"failed:..."`` (the markers), ``"rate:..."`` and ``"pass_mark"``.

    Parameters
    ----------
    progress : Progress
    figure : matplotlib.figure.Figure, optional
        Drawn into (cleared first), e.g. a Qt canvas's figure; default a new Agg figure, 9 x 3.2 in.

    Returns
    -------
    matplotlib.figure.Figure
        With ``figure.score_axes`` and ``figure.rate_axes`` set (None when there is nothing to draw).
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    if figure is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(9.0, 3.2), dpi=100, layout="constrained")
        FigureCanvasAgg(figure)
    figure.clear()
    drawn = [c for c in progress.curves if c.n]
    if not drawn:
        ax = figure.add_subplot()
        ax.text(0.5, 0.5, "No scored attempts yet", ha="center", va="center", transform=ax.transAxes,
                color="#777777")
        ax.set_axis_off()
        figure.score_axes = figure.rate_axes = None
        return figure
    score_ax, rate_ax = figure.subplots(1, 2, width_ratios=(5, 3))
    style = curve_style(progress)
    n_max = max(c.n for c in drawn)
    handles = []
    for c in drawn:
        key = f"{c.procedure}:{c.guidance}"
        st = style[(c.procedure, c.guidance)]
        xs = list(c.attempt_numbers)
        line, = score_ax.plot(xs, list(c.scores), lw=1.6, gid=f"score:{key}", label=c.title, **st)
        handles.append(line)
        ok = [(x, s) for x, s, p in zip(xs, c.scores, c.passed) if p]
        bad = [(x, 0.0 if math.isnan(s) else s) for x, s, p in zip(xs, c.scores, c.passed) if not p]
        score_ax.plot([x for x, _ in ok], [s for _, s in ok], ls="none", marker=PASSED_MARKER, markersize=6.5,
                      color=st["color"], markeredgecolor="white", markeredgewidth=0.6, gid=f"passed:{key}")
        score_ax.plot([x for x, _ in bad], [s for _, s in bad], ls="none", marker=FAILED_MARKER, markersize=7.5,
                      color=st["color"], markeredgecolor="white", markeredgewidth=0.6, gid=f"failed:{key}")
        if c.competence_attempt is not None:
            k = c.competence_attempt
            score_ax.annotate("competent", (k, c.scores[k - 1]), xytext=(0, 9), textcoords="offset points",
                              ha="center", fontsize=7, color=st["color"])
        # small dots too, so that a curve of one attempt still shows
        rate_ax.plot(xs, [100.0 * r for r in c.rolling_pass_rate], lw=1.6, marker=".", markersize=5,
                     gid=f"rate:{key}", **st)
    for mark in sorted({c.pass_mark for c in drawn}):
        score_ax.axhline(mark, color="#555555", ls=(0, (4, 3)), lw=1.0, gid="pass_mark", zorder=0)
        score_ax.text(1.0, mark, f" pass {mark:g}", transform=score_ax.get_yaxis_transform(), ha="left",
                      va="center", fontsize=7, color="#555555", clip_on=False)
    for ax in (score_ax, rate_ax):
        ax.set_xlim(0.5, n_max + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("attempt", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    score_ax.set_ylim(-3, 108)
    score_ax.set_ylabel("score", fontsize=8)
    score_ax.set_title("Score per attempt", fontsize=9)
    rate_ax.set_ylim(-5, 105)
    rate_ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    window = drawn[0].rolling_window
    rate_ax.set_title(f"Passed, last {window} attempts", fontsize=9)
    handles += [Line2D([], [], ls="none", marker=PASSED_MARKER, color="#444444", label="passed"),
                Line2D([], [], ls="none", marker=FAILED_MARKER, color="#444444", label="not passed")]
    rate_ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                   borderaxespad=0.0)
    figure.score_axes, figure.rate_axes = score_ax, rate_ax
    return figure
