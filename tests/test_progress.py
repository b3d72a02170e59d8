"""The trainee's own progress: history, learning curves, rolling pass rate, LC-CUSUM signal and summary
lines from a store filled through the store API with synthetic scorecards, checked against values
worked by hand; then the progress dialog under a virtual display.

The data set (day d is 2024-03-d; LIF/LIL = lumbar interlaminar L4-L5 fluoroscopy/landmark, CAF/CAL
= caudal fluoroscopy/landmark; P passed, F not passed, I incomplete):

  ann  d1 LIF 40 F   d2 LIL 60 F (rescored to 62 F)   d3 LIF 75 P   d4 LIF 82 F (a hard fail)
       d5 LIL 71 P   d6 LIF 72 P   d7 LIL I   d8 LIF 90 P   d9 CAF 95 P   d10 LIF 85 P
       d11 LIL 65 F  d12 LIF 88 P  d13 CAL I
  bob  d5 LIF 99 P   (never in ann's progress)

Curves (h = 1.0 below, p0 = 0.2, p1 = 0.4: a pass adds ln(0.8/0.6) = 0.2877, a failure
ln(0.2/0.4) = -0.6931, floored at 0):
  LIF  F P F P P P P -> 0, .2877, 0, .2877, .5754, .8630, 1.1507: competent at attempt 7;
       passed in the last 3: 0/1, 1/2, 1/3, 2/3, 2/3, 3/3, 3/3
  LIL  F P F (the incomplete one left out) -> 0, .2877, 0
  CAF  P -> .2877;  CAL: no scored attempt
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from simulator.analysis.progress import FAILED_MARKER, PASSED_MARKER, trainee_progress
from simulator.analysis.stats import lc_cusum_threshold
from simulator.records.attempt_file import make_header
from simulator.records.store import Store

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
PASSWORD = "instructor pass 1"
LIF, LIL = "lumbar_interlaminar_l4l5_fluoroscopy", "lumbar_interlaminar_l4l5_landmark"
CAF, CAL = "caudal_fluoroscopy", "caudal_landmark"
LI, CA = "lumbar_interlaminar", "caudal"
WIN, LOSE = math.log(0.8 / 0.6), math.log(0.2 / 0.4)

# (who, scenario, day, score or None for incomplete, passed, extra)
ATTEMPTS = [
    ("ann", LIF, 1, 40.0, False, {"metrics": {"time_s": 300.0, "images": 10.0, "dap_gy_cm2": 1.2}}),
    ("ann", LIL, 2, 60.0, False, {"rescore": 62.0}),
    ("ann", LIF, 3, 75.0, True, {}),
    ("ann", LIF, 4, 82.0, False, {"hard_fails": ["Rule 5: contrast given without live imaging."]}),
    ("bob", LIF, 5, 99.0, True, {}),
    ("ann", LIL, 5, 71.0, True, {}),
    ("ann", LIF, 6, 72.0, True, {}),
    ("ann", LIL, 7, None, False, {}),
    ("ann", LIF, 8, 90.0, True, {}),
    ("ann", CAF, 9, 95.0, True, {}),
    ("ann", LIF, 10, 85.0, True, {}),
    ("ann", LIL, 11, 65.0, False, {"metrics": {"time_s": 420.0, "images": 0.0}}),
    ("ann", LIF, 12, 88.0, True, {}),
    ("ann", CAL, 13, None, False, {}),
]


def _header(scenario_id: str) -> dict:
    text = (SCENARIOS / f"{scenario_id}.toml").read_text(encoding="utf-8")
    seed = {"lumbar": 1, "caudal": 5}[scenario_id.split("_")[0]]
    return make_header(scenario_id, "builtin", hashlib.sha256(text.encode()).hexdigest(), text, {"seed": seed},
                       "spine-3")


def _card(score: float, passed: bool, metrics: dict, hard_fails=(), version: int = 3) -> dict:
    full = {"time_s": 200.0, "needle_passes": 1.0, "images": 4.0, "fluoroscopy_s": 12.0, "air_kerma_mgy": 3.0,
            "dap_gy_cm2": 0.5, **metrics}
    return {"scoring_version": version, "passed": passed, "hard_fails": list(hard_fails), "score": score,
            "parts": {}, "feedback": [], "metrics": full,
            "placement": {"outcome": "success" if passed else "bone", "description": "", "tissue": "",
                          "category": "", "interspace": "", "tip_mm": None, "distance_to_target_mm": None}}


def _fill(url: str) -> dict[tuple[str, int], int]:
    """Write ATTEMPTS into the store at ``url``; (who, day) -> attempt id. Closed at the end, so the
    unfinished attempts are incomplete."""
    clock = [datetime(2024, 2, 1, tzinfo=timezone.utc)]
    ids = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("simulator.records.store.utc_now", lambda: clock[0])
        store = Store.open(url)
        store.add_user(None, "drlee", "Dr Lee", "instructor", password=PASSWORD)
        lee = store.unlock("drlee", PASSWORD)
        people = {t: store.add_user(lee, t, t.capitalize()) for t in ("ann", "bob")}
        for minute, (who, scenario, day, score, passed, extra) in enumerate(ATTEMPTS):
            clock[0] = datetime(2024, 3, day, 9, tzinfo=timezone.utc) + timedelta(minutes=minute)
            aid = store.start_attempt(people[who], _header(scenario))
            ids[(who, day)] = aid
            store.append_command(aid, {"t_s": 1.0, "command": "acquire_image"})
            if score is None:
                continue
            metrics = extra.get("metrics", {})
            store.finish_attempt(aid, _card(score, passed, metrics, extra.get("hard_fails", ())))
            if "rescore" in extra:
                store.add_scorecard(lee, aid, _card(extra["rescore"], passed, metrics, version=4))
        store.close()
    return ids


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    url = f"sqlite:///{(tmp_path_factory.mktemp('progress') / 'store.db').as_posix()}"
    return url, _fill(url)


@pytest.fixture(scope="module")
def progress(db):
    url, _ = db
    with Store.open(url) as store:
        return trainee_progress(store, store.actor("ann"), h=1.0, rolling_window=3)


# ------------------------------------------------------------------------------------ history
def test_the_history_lists_every_own_attempt_in_order_with_its_figures(db, progress):
    _, ids = db
    assert progress.account == "ann" and progress.display_name == "Ann"
    own = [ids[(w, d)] for (w, _, d, *_rest) in ATTEMPTS if w == "ann"]
    assert [e.attempt_id for e in progress.history] == own  # bob's attempt is not there
    assert [e.attempt_id for e in progress.newest_first()] == own[::-1]
    first = progress.history[0]
    assert first.started_at == datetime(2024, 3, 1, 9, tzinfo=timezone.utc)
    assert (first.scenario_title, first.procedure, first.guidance) == (
        "Lumbar interlaminar epidural, L4-L5, under fluoroscopy", LI, "fluoroscopy")
    assert (first.score, first.passed, first.hard_fails, first.status) == (40.0, False, (), "finished")
    assert (first.time_s, first.images, first.dap_gy_cm2, first.fluoroscopy_s) == (300.0, 10, 1.2, 12.0)
    assert first.pass_mark == 70.0 and first.verdict == "not passed" and first.curve_attempt == 1
    by_day = {e.started_at.day: e for e in progress.history}
    assert by_day[2].score == 62.0  # the rescore replaces the original
    assert by_day[4].hard_fails == ("Rule 5: contrast given without live imaging.",)
    assert by_day[4].score == 82.0 and by_day[4].passed is False
    # a landmark attempt takes no X-rays: no dose, not a dose of 0
    assert by_day[11].dap_gy_cm2 is None and by_day[11].fluoroscopy_s is None and by_day[11].images == 0
    assert (by_day[11].time_s, by_day[11].curve_attempt) == (420.0, 3)
    for day in (7, 13):
        e = by_day[day]
        assert (e.status, e.scored, e.score, e.passed, e.verdict, e.curve_attempt) == (
            "incomplete", False, None, None, "incomplete", None)
    assert (by_day[13].scenario_title, by_day[13].procedure, by_day[13].guidance) == (
        "Caudal epidural through the sacral hiatus, by landmarks", CA, "landmark")


# ------------------------------------------------------------------------------------- curves
def test_one_curve_per_procedure_and_mode_with_scores_and_verdicts(progress):
    assert [(c.procedure, c.guidance) for c in progress.curves] == [
        (CA, "landmark"), (CA, "fluoroscopy"), (LI, "landmark"), (LI, "fluoroscopy")]
    lif = progress.curve(LI, "fluoroscopy")
    assert lif.attempt_numbers == (1, 2, 3, 4, 5, 6, 7)
    assert lif.scores == (40.0, 75.0, 82.0, 72.0, 90.0, 85.0, 88.0)
    assert lif.passed == (False, True, False, True, True, True, True)
    assert lif.pass_mark == 70.0 and lif.n_incomplete == 0
    lil = progress.curve(LI, "landmark")
    assert (lil.scores, lil.passed, lil.n_incomplete) == ((62.0, 71.0, 65.0), (False, True, False), 1)
    caf = progress.curve(CA, "fluoroscopy")
    assert (caf.scores, caf.passed) == ((95.0,), (True,))
    cal = progress.curve(CA, "landmark")
    assert (cal.n, cal.n_incomplete, cal.competence_attempt) == (0, 1, None)


def test_rolling_pass_rate(progress):
    lif = progress.curve(LI, "fluoroscopy")
    assert lif.rolling_window == 3
    assert lif.rolling_pass_rate == pytest.approx((0.0, 1 / 2, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0))
    assert progress.curve(LI, "landmark").rolling_pass_rate == pytest.approx((0.0, 1 / 2, 1 / 3))


def test_lc_cusum_signal(db, progress):
    lif = progress.curve(LI, "fluoroscopy")
    assert lif.lc.scores == pytest.approx((0.0, WIN, 0.0, WIN, 2 * WIN, 3 * WIN, 4 * WIN))
    assert lif.competent and lif.competence_attempt == 7
    _, ids = db
    assert lif.competence_attempt_id == ids[("ann", 12)]
    lil = progress.curve(LI, "landmark")
    assert lil.lc.scores == pytest.approx((0.0, WIN, 0.0)) and not lil.competent
    assert progress.curve(CA, "fluoroscopy").lc.scores == pytest.approx((WIN,))
    assert progress.h == 1.0
    # by default h is the instructors' report's: chosen by simulation for p0 = 0.2, p1 = 0.4
    url, _ = db
    with Store.open(url) as store:
        default = trainee_progress(store, store.actor("ann"))
    assert default.h == lc_cusum_threshold(0.2, 0.4).h
    assert not default.curve(LI, "fluoroscopy").competent  # 4 passes in a row are far from h = 3.84
    assert default.curve(LI, "fluoroscopy").rolling_window == 5
    assert default.curve(LI, "fluoroscopy").rolling_pass_rate[-1] == pytest.approx(4 / 5)


def test_summary_lines(progress):
    assert progress.summaries == [
        "Caudal, landmark: no scored attempts yet (1 incomplete not counted)",
        "Caudal, fluoroscopy: 1 attempt, passed, competence not yet shown (LC-CUSUM)",
        "Lumbar interlaminar, landmark: 3 attempts (1 incomplete not counted), last one not passed, "
        "competence not yet shown (LC-CUSUM)",
        "Lumbar interlaminar, fluoroscopy: 7 attempts, last 4 passed, competent at attempt 7 (LC-CUSUM)",
    ]


def test_incomplete_attempts_can_count_as_failures(db):
    url, _ = db
    with Store.open(url) as store:
        p = trainee_progress(store, store.actor("ann"), h=1.0, rolling_window=3, include_incomplete=True)
    lil = p.curve(LI, "landmark")
    assert lil.passed == (False, True, False, False) and lil.n_incomplete == 0
    assert math.isnan(lil.scores[2]) and lil.scores[3] == 65.0
    assert lil.lc.scores == pytest.approx((0.0, WIN, 0.0, 0.0))
    assert p.curve(CA, "landmark").passed == (False,)
    assert p.summaries[0] == "Caudal, landmark: 1 attempt, not passed, competence not yet shown (LC-CUSUM)"


def test_an_attempt_in_progress_is_listed_not_counted_and_others_see_only_their_own(tmp_path):
    url = f"sqlite:///{(tmp_path / 'store.db').as_posix()}"
    with Store.open(url) as store:
        store.add_user(None, "drlee", "Dr Lee", "instructor", password=PASSWORD)
        lee = store.unlock("drlee", PASSWORD)
        zoe = store.add_user(lee, "zoe", "Zoe")
        aid = store.start_attempt(zoe, _header(LIF))
        p = trainee_progress(store, zoe, h=1.0)
        assert [(e.attempt_id, e.status, e.verdict) for e in p.history] == [(aid, "in_progress", "in progress")]
        assert p.summaries == ["Lumbar interlaminar, fluoroscopy: no scored attempts yet"]
        # an instructor's own progress: their own attempts, not everyone's
        assert trainee_progress(store, lee, h=1.0).empty
        assert trainee_progress(store, store.actor("drlee"), h=1.0).empty


def test_the_figure_draws_one_score_line_per_curve(progress):
    from simulator.analysis.progress import progress_figure

    fig = progress_figure(progress)
    _check_figure(fig, progress)


def _check_figure(fig, progress) -> None:
    """One score line per procedure and mode with attempts, its points split by verdict into
    circles and crosses, the pass mark, and a rolling pass rate line per curve."""
    ax = fig.score_axes
    lines = {ln.get_gid(): ln for ln in ax.get_lines() if ln.get_gid()}
    scored = [c for c in progress.curves if c.n]
    assert sorted(g for g in lines if g.startswith("score:")) == sorted(
        f"score:{c.procedure}:{c.guidance}" for c in scored)
    lif = lines[f"score:{LI}:fluoroscopy"]
    assert list(lif.get_xdata()) == [1, 2, 3, 4, 5, 6, 7]
    assert list(lif.get_ydata()) == [40.0, 75.0, 82.0, 72.0, 90.0, 85.0, 88.0]
    passed, failed = lines[f"passed:{LI}:fluoroscopy"], lines[f"failed:{LI}:fluoroscopy"]
    assert passed.get_marker() == PASSED_MARKER and failed.get_marker() == FAILED_MARKER != PASSED_MARKER
    assert list(passed.get_xdata()) == [2, 4, 5, 6, 7] and list(failed.get_xdata()) == [1, 3]
    assert list(failed.get_ydata()) == [40.0, 82.0]
    # each curve its own colour; the guidance mode also changes the line style
    assert len({lines[f"score:{c.procedure}:{c.guidance}"].get_color() for c in scored}) == len(scored)
    assert lines[f"score:{LI}:landmark"].get_linestyle() != lif.get_linestyle()
    assert list(lines["pass_mark"].get_ydata()) == [70.0, 70.0]
    rates = {ln.get_gid(): ln for ln in fig.rate_axes.get_lines() if ln.get_gid()}
    assert list(rates[f"rate:{LI}:fluoroscopy"].get_ydata()) == pytest.approx(
        [100 * r for r in progress.curve(LI, "fluoroscopy").rolling_pass_rate])


# ----------------------------------------------------------------------------------- the dialog
@pytest.mark.gui
def test_the_dialog_lists_attempts_newest_first_and_draws_the_curves(qtbot, db, monkeypatch):
    pytest.importorskip("PyQt6")
    from PyQt6.QtCore import Qt

    from simulator.app import progress as progress_app

    url, ids = db
    store = Store.open(url)
    try:
        ann = store.actor("ann")
        dialog = progress_app.show_progress(None, store, ann)
        qtbot.addWidget(dialog)
        qtbot.waitExposed(dialog)
        assert dialog.objectName() == "progress" and not dialog.isModal()
        own = [ids[(w, d)] for (w, _, d, *_rest) in ATTEMPTS if w == "ann"]
        table = dialog.table
        assert table.rowCount() == len(own)
        assert [dialog.attempt_at_row(r) for r in range(table.rowCount())] == own[::-1]
        columns = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
        newest, oldest = 0, table.rowCount() - 1
        cell = {name: table.item(oldest, c).text() for c, name in enumerate(columns)}
        assert cell["Scenario"] == "Lumbar interlaminar epidural, L4-L5, under fluoroscopy"
        assert (cell["No."], cell["Score"], cell["Result"], cell["Time (s)"], cell["Images"],
                cell["DAP (Gy cm²)"]) == ("1", "40", "✖ not passed", "300", "10", "1.2")
        assert table.item(newest, columns.index("Result")).text() == "incomplete"
        assert table.item(newest, columns.index("Score")).text() == table.item(newest, columns.index("No.")).text() == "-"
        assert dialog.pages.currentIndex() == 1 and not dialog.empty_label.isVisible()
        # the summaries (the dialog's LC-CUSUM uses the default h) and the figure
        for line in dialog.progress.summaries:
            assert line in dialog.summary.text()
        _check_figure(dialog.figure, dialog.progress)

        # a double-click replays that attempt on its own scenario (the patient build and the replay
        # window stood in for: they are the replay window's tests)
        calls = []
        monkeypatch.setattr("simulator.app.main.build_patient", lambda loaded, title="": ("anatomy", loaded))
        monkeypatch.setattr("simulator.app.replay_window.open_replay",
                            lambda loaded, record, **kw: calls.append((loaded, record, kw)) or dialog)
        row = own[::-1].index(ids[("ann", 9)])
        rect = table.visualItemRect(table.item(row, columns.index("Scenario")))
        # a press and release first: Qt's item views take a double-click only after them
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.waitUntil(lambda: bool(calls), timeout=5_000)
        loaded, record, kw = calls[0]
        assert record.header["scenario"]["id"] == CAF and loaded.scenario.id == CAF
        assert kw["anatomy"] == ("anatomy", loaded) and kw["trainee"] == "Ann"
    finally:
        store.close()


@pytest.mark.gui
def test_the_dialog_with_no_attempts_says_so(qtbot, tmp_path):
    pytest.importorskip("PyQt6")
    from simulator.app.progress import show_progress

    url = f"sqlite:///{(tmp_path / 'empty.db').as_posix()}"
    with Store.open(url) as store:
        dialog = show_progress(None, store, store.sign_in("newbie", "New Bie"))
        qtbot.addWidget(dialog)
        qtbot.waitExposed(dialog)
        assert dialog.progress.empty and dialog.table.rowCount() == 0
        assert dialog.empty_label.isVisible() and "No attempts yet" in dialog.empty_label.text()
        assert not dialog.canvas.isVisible()
        assert "New Bie" in dialog.heading.text()
        # the first attempt arrives while the dialog is open: Refresh shows it
        newbie = store.actor("newbie")
        aid = store.start_attempt(newbie, _header(CAF))
        store.finish_attempt(aid, _card(91.0, True, {}))
        dialog.refresh_button.click()
        assert dialog.table.rowCount() == 1 and dialog.attempt_at_row(0) == aid
        assert dialog.canvas.isVisible() and not dialog.empty_label.isVisible()
        assert dialog.progress.summaries == ["Caudal, fluoroscopy: 1 attempt, passed, competence not yet shown "
                                             "(LC-CUSUM)"]
