"""The instructors' report: a store filled with a fixed synthetic data set (three trainees, two
procedures, both guidance modes, known counts) through the store API, then the report's numbers
against values worked by hand, the selection filters, and the HTML and PDF files.

The data set (day d is 2024-03-d; L = landmark, F = fluoroscopy; P = passed):

lumbar interlaminar L4-L5 (course A), one case (seed 1) in both modes:
  ann L: d1 success P; d2 wrong level (track through the disc); d3 success P
  ann F: d4 intrathecal; d5..d13 success P (d6 with a venous contrast pattern)
  ben L: d1 success with a dural puncture (not passed); d2 bone (a paraesthesia); d3, d4 success P
  ben F: d5 success P; d6 vessel; d7 started and never finished (incomplete)
  cat L: d2 nerve root; d3 success with a hard fail (not passed); d4 wrong level (subdural contrast)
  cat F: d1 success P
caudal (course B for ann and ben, no course for cat), one case (seed 5):
  ann L: d20 success P; d21 vessel          ann F: d22 success P
  ben F: d20, d21 success P
  cat L: d25 ligament; d26 bone, rescored (newer scoring version) to success P

Hand counts, lumbar interlaminar: landmark 10 attempts, 6 successes, 4 passed, 1 dural puncture,
0 intravascular, 1 intrathecal/subdural, 2 nerve root, 1 disc, 1 hard fail; fluoroscopy 13
attempts, 11 successes, 11 passed, 1 dural puncture, 2 intravascular, 1 intrathecal. Caudal:
landmark 4 attempts, 2 successes, 1 intravascular; fluoroscopy 3 attempts, 3 successes.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from scipy import stats as sps

from simulator.analysis import stats
from simulator.analysis.report import (
    COMPLICATIONS,
    Selection,
    attempt_rows,
    build_report,
    run_report,
    write_html,
    write_pdf,
)
from simulator.protocol.events import Event
from simulator.records.attempt_file import make_header
from simulator.records.store import Store

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
PASSWORD = "instructor pass 1"
LIL, LIF = "lumbar_interlaminar_l4l5_landmark", "lumbar_interlaminar_l4l5_fluoroscopy"
CAL, CAF = "caudal_landmark", "caudal_fluoroscopy"
A, B = "Course A", "Course B"
LI, CA = "lumbar_interlaminar", "caudal"
Z = 1.959963984540054


def _venous():
    return [Event("contrast_injected", 30.0, {"volume_ml": 1.0, "total_ml": 1.0, "compartment": "epidural",
                                              "context": "interlaminar", "vascular": "venous",
                                              "vascular_fraction": 0.4, "leak": None})]


def _epidural_contrast():
    return [Event("contrast_injected", 30.0, {"volume_ml": 1.0, "total_ml": 1.0, "compartment": "epidural",
                                              "context": "interlaminar", "vascular": None,
                                              "vascular_fraction": 0.0, "leak": None})]


# (trainee, scenario, day, course, outcome, passed, metrics, extra)
ATTEMPTS = [
    ("ann", LIL, 1, A, "success", True, {"time_s": 100}, {}),
    ("ann", LIL, 2, A, "wrong_level", False, {"time_s": 200, "closest_disc_mm": 0.0}, {}),
    ("ann", LIL, 3, A, "success", True, {"time_s": 300}, {}),
    ("ann", LIF, 4, A, "intrathecal", False, {"time_s": 150, "fluoroscopy_s": 10, "dural_punctures": 1}, {}),
    ("ann", LIF, 5, A, "success", True, {"time_s": 150, "fluoroscopy_s": 20}, {"events": _epidural_contrast()}),
    ("ann", LIF, 6, A, "success", True, {"time_s": 150, "fluoroscopy_s": 30}, {"events": _venous()}),
    *(("ann", LIF, d, A, "success", True, {"time_s": 150, "fluoroscopy_s": 10 * (d - 3)}, {}) for d in range(7, 14)),
    ("ben", LIL, 1, A, "success", False, {"time_s": 400, "dural_punctures": 1}, {}),
    ("ben", LIL, 2, A, "bone", False, {"time_s": 500},
     {"events": [Event("paraesthesia", 12.0, {"structure": "nerve_root", "depth_mm": 45.0})]}),
    ("ben", LIL, 3, A, "success", True, {"time_s": 600}, {}),
    ("ben", LIL, 4, A, "success", True, {"time_s": 700}, {}),
    ("ben", LIF, 5, A, "success", True, {"time_s": 150, "fluoroscopy_s": 30}, {}),
    ("ben", LIF, 6, A, "vessel", False, {"time_s": 150, "fluoroscopy_s": 40}, {}),
    ("ben", LIF, 7, A, None, False, {}, {"incomplete": True}),
    ("cat", LIL, 2, A, "nerve_root", False, {"time_s": 800}, {}),
    ("cat", LIL, 3, A, "success", False, {"time_s": 900}, {"hard_fails": ["Rule 5: injected after a bad pattern."]}),
    ("cat", LIL, 4, A, "wrong_level", False, {"time_s": 1000},
     {"events": [Event("contrast_injected", 40.0, {"compartment": "subdural", "vascular": None})]}),
    ("cat", LIF, 1, A, "success", True, {"time_s": 150, "fluoroscopy_s": 50}, {}),
    ("ann", CAL, 20, B, "success", True, {"time_s": 300}, {}),
    ("ann", CAL, 21, B, "vessel", False, {"time_s": 300}, {}),
    ("ann", CAF, 22, B, "success", True, {"time_s": 100, "fluoroscopy_s": 5, "dap_gy_cm2": 0.1}, {}),
    ("ben", CAF, 20, B, "success", True, {"time_s": 200, "fluoroscopy_s": 6, "dap_gy_cm2": 0.2}, {}),
    ("ben", CAF, 21, B, "success", True, {"time_s": 300, "fluoroscopy_s": 7, "dap_gy_cm2": 0.4}, {}),
    ("cat", CAL, 25, None, "ligament", False, {"time_s": 300}, {}),
    ("cat", CAL, 26, None, "bone", False, {"time_s": 300}, {"rescore": ("success", True)}),
]


def _header(scenario_id: str) -> dict:
    text = (SCENARIOS / f"{scenario_id}.toml").read_text(encoding="utf-8")
    seed = {"lumbar": 1, "caudal": 5}[scenario_id.split("_")[0]]
    return make_header(scenario_id, "builtin", hashlib.sha256(text.encode()).hexdigest(), text, {"seed": seed},
                       "spine-3")


def _card(outcome: str, passed: bool, metrics: dict, hard_fails=(), version: int = 3) -> dict:
    landmark = "landmark" in metrics.get("_scenario", "")
    full = {"time_s": 0.0, "needle_passes": 1.0, "images": 0.0 if landmark else 4.0, "fluoroscopy_s": 0.0,
            "air_kerma_mgy": 0.0, "dap_gy_cm2": 0.0, "dural_punctures": 0.0, "bone_contacts": 0.0,
            "closest_disc_mm": 5.0, "closest_nerve_root_mm": 5.0, "closest_pleura_mm": 5.0}
    full.update({k: float(v) for k, v in metrics.items() if not k.startswith("_")})
    return {"scoring_version": version, "passed": passed, "hard_fails": list(hard_fails),
            "score": 90.0 if passed else 40.0, "parts": {}, "feedback": [], "metrics": full,
            "placement": {"outcome": outcome, "description": "", "tissue": "", "category": "", "interspace": "",
                          "tip_mm": None, "distance_to_target_mm": None}}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """The filled store's URL (closed: the unfinished attempt is now incomplete)."""
    url = f"sqlite:///{(tmp_path_factory.mktemp('report') / 'store.db').as_posix()}"
    clock = [datetime(2024, 2, 1, tzinfo=timezone.utc)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("simulator.records.store.utc_now", lambda: clock[0])
        store = Store.open(url)
        store.add_user(None, "drlee", "Dr Lee", "instructor", password=PASSWORD)
        lee = store.unlock("drlee", PASSWORD)
        people = {t: store.add_user(lee, t, t.capitalize()) for t in ("ann", "ben", "cat")}
        store.create_course(lee, A, [LIL, LIF], ["ann", "ben", "cat"])
        store.create_course(lee, B, [CAL, CAF], ["ann", "ben"])
        for minute, (who, scenario, day, course, outcome, passed, metrics, extra) in enumerate(ATTEMPTS):
            clock[0] = datetime(2024, 3, day, 9, tzinfo=timezone.utc) + timedelta(minutes=minute)
            aid = store.start_attempt(people[who], _header(scenario), course=course)
            store.append_command(aid, {"t_s": 1.0, "command": "acquire_image"})
            if extra.get("events"):
                store.append_events(aid, extra["events"])
            if extra.get("incomplete"):
                continue
            store.finish_attempt(aid, _card(outcome, passed, {**metrics, "_scenario": scenario},
                                            extra.get("hard_fails", ())))
            if "rescore" in extra:
                new_outcome, new_passed = extra["rescore"]
                store.add_scorecard(lee, aid, _card(new_outcome, new_passed, {**metrics, "_scenario": scenario},
                                                    version=4))
        store.close()
    return url


@pytest.fixture(scope="module")
def rows(db):
    with Store.open(db) as store:
        return attempt_rows(store, store.unlock("drlee", PASSWORD))


@pytest.fixture(scope="module")
def report(rows):
    return build_report(rows, generated_at=datetime(2024, 4, 1, 12, tzinfo=timezone.utc))


def _wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score limits, the closed form written out again."""
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def _select(db, **kwargs):
    with Store.open(db) as store:
        return attempt_rows(store, store.unlock("drlee", PASSWORD), Selection(**kwargs))


# ------------------------------------------------------------------------------------------ rows
def test_rows_read_procedure_guidance_outcome_and_complications_from_the_store(rows):
    assert len(rows) == 30  # 31 attempts, the incomplete one left out
    assert rows.left_out == {"incomplete": 1}
    assert [r.started_at for r in rows] == sorted(r.started_at for r in rows)
    first = rows[0]
    assert (first.trainee, first.procedure, first.guidance, first.course, first.outcome, first.success) == (
        "ann", LI, "landmark", A, "success", True)
    assert {(r.procedure, r.guidance) for r in rows} == {(LI, "landmark"), (LI, "fluoroscopy"),
                                                         (CA, "landmark"), (CA, "fluoroscopy")}
    # one case per procedure, the same in both modes
    assert len({r.case for r in rows if r.procedure == LI}) == 1
    assert len({r.case for r in rows if r.procedure == CA}) == 1
    assert {r.case_label for r in rows if r.procedure == LI} == {"L4-L5, patient seed 1"}
    assert set(rows[0].complications) == {c.id for c in COMPLICATIONS}
    # landmark attempts have no fluoroscopy time or dose (not 0)
    assert all(r.fluoroscopy_s is None and r.dap_gy_cm2 is None for r in rows if r.guidance == "landmark")
    # the rescore (newer scoring version) is what counts
    cat_caudal = [r for r in rows if r.trainee == "cat" and r.procedure == CA]
    assert [r.outcome for r in cat_caudal] == ["ligament", "success"]
    assert [r.course for r in cat_caudal] == [None, None]
    by_day = {(r.trainee, r.scenario_id, r.started_at.day): r for r in rows}
    assert by_day[("ann", LIF, 6)].complications["intravascular"]  # venous pattern, placement a success
    assert not by_day[("ann", LIF, 5)].complications["intravascular"]  # epidural contrast only
    assert by_day[("ben", LIL, 2)].complications["nerve_root"]  # paraesthesia
    assert by_day[("cat", LIL, 4)].complications["intrathecal"]  # subdural contrast
    assert by_day[("ann", LIF, 4)].complications["dural_puncture"] and by_day[("ann", LIF, 4)].complications[
        "intrathecal"]


def test_a_trainee_sees_only_their_own_attempts(db):
    with Store.open(db) as store:
        own = attempt_rows(store, store.actor("cat"))
    assert {r.trainee for r in own} == {"cat"} and len(own) == 6


# ----------------------------------------------------------------------------------------- rates
RATES = {  # (procedure, guidance, measure): (count, n)
    (LI, "landmark", "success"): (6, 10), (LI, "landmark", "passed"): (4, 10),
    (LI, "landmark", "dural_puncture"): (1, 10), (LI, "landmark", "intravascular"): (0, 10),
    (LI, "landmark", "intrathecal"): (1, 10), (LI, "landmark", "nerve_root"): (2, 10),
    (LI, "landmark", "disc"): (1, 10), (LI, "landmark", "pleura"): (0, 10), (LI, "landmark", "hard_fail"): (1, 10),
    (LI, "fluoroscopy", "success"): (11, 13), (LI, "fluoroscopy", "passed"): (11, 13),
    (LI, "fluoroscopy", "dural_puncture"): (1, 13), (LI, "fluoroscopy", "intravascular"): (2, 13),
    (LI, "fluoroscopy", "intrathecal"): (1, 13), (LI, "fluoroscopy", "nerve_root"): (0, 13),
    (LI, "fluoroscopy", "disc"): (0, 13), (LI, "fluoroscopy", "hard_fail"): (0, 13),
    (CA, "landmark", "success"): (2, 4), (CA, "landmark", "intravascular"): (1, 4),
    (CA, "fluoroscopy", "success"): (3, 3), (CA, "fluoroscopy", "intravascular"): (0, 3),
}


def test_rates_and_wilson_intervals_by_procedure_and_guidance(report):
    for (proc, mode, measure), (k, n) in RATES.items():
        r = report.rate(proc, mode, measure)
        assert (r.count, r.n) == (k, n), (proc, mode, measure)
        low, high = _wilson(k, n)
        assert r.proportion == pytest.approx(k / n)
        assert (r.low, r.high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    # 6/10: the Wilson interval worked by hand, 0.3127 to 0.8318
    r = report.rate(LI, "landmark")
    assert (round(r.low, 4), round(r.high, 4)) == (0.3127, 0.8318)


def test_landmark_minus_fluoroscopy_with_newcombe_and_fisher(report):
    c = report.comparison(LI, "success").result
    assert (c.successes_a, c.n_a, c.successes_b, c.n_b) == (6, 10, 11, 13)
    assert c.difference == pytest.approx(6 / 10 - 11 / 13)
    la, ha = _wilson(6, 10)
    lb, hb = _wilson(11, 13)
    d = 0.6 - 11 / 13
    assert c.low == pytest.approx(d - math.hypot(0.6 - la, hb - 11 / 13))
    assert c.high == pytest.approx(d + math.hypot(ha - 0.6, 11 / 13 - lb))
    assert c.fisher_p_value == pytest.approx(sps.fisher_exact([[6, 4], [11, 2]]).pvalue)
    nerve = report.comparison(LI, "nerve_root").result
    assert nerve.fisher_p_value == pytest.approx(sps.fisher_exact([[2, 8], [0, 13]]).pvalue)
    caudal = report.comparison(CA, "success").result
    assert caudal.difference == pytest.approx(0.5 - 1.0)
    assert caudal.fisher_p_value == pytest.approx(sps.fisher_exact([[2, 2], [3, 0]]).pvalue)


def test_paired_analysis_uses_each_trainees_first_attempt_in_each_mode(report):
    [li] = report.paired_for(LI, "success")
    # ann: L success, F intrathecal (f); ben: both success (e); cat: L nerve root, F success (g)
    p = li.result
    assert (p.n_pairs, p.both_success, p.only_a_success, p.only_b_success, p.both_failure) == (3, 1, 1, 1, 0)
    assert li.trainees == ("ann", "ben", "cat")
    assert li.landmark_first == 2  # cat did fluoroscopy first
    assert p.mcnemar_p_value == pytest.approx(1.0)
    expected = stats.paired_difference([(True, False), (True, True), (False, True)])
    assert (p.low, p.high) == (pytest.approx(expected.low), pytest.approx(expected.high))
    [passed] = report.paired_for(LI, "passed")
    # ann (P, not P), ben (dural puncture, P), cat (not P, P)
    q = passed.result
    assert (q.both_success, q.only_a_success, q.only_b_success, q.both_failure) == (0, 1, 2, 0)
    assert q.mcnemar_p_value == pytest.approx(sps.binomtest(1, 3, 0.5).pvalue)
    [ca] = report.paired_for(CA, "success")
    assert ca.trainees == ("ann",) and ca.result.both_success == 1
    assert any("first attempt" in m.lower() for m in report.methods)


def test_technique_medians_and_quartiles(report):
    time = report.technique_for(LI, "landmark", "time_s").spread  # 100, 200, ..., 1000
    assert (time.n, time.median, time.q25, time.q75) == (10, 550.0, 325.0, 775.0)
    fluoro = report.technique_for(LI, "fluoroscopy", "fluoroscopy_s").spread
    # 10..100 (ann), 30, 40 (ben), 50 (cat): 13 values, sorted 10 20 30 30 40 40 50 50 60 70 80 90 100
    assert (fluoro.n, fluoro.median, fluoro.q25, fluoro.q75) == (13, 50.0, 30.0, 70.0)
    assert report.technique_for(LI, "landmark", "fluoroscopy_s").spread.n == 0  # not applicable
    caudal = report.technique_for(CA, "fluoroscopy", "time_s").spread
    assert (caudal.median, caudal.q25, caudal.q75, caudal.minimum, caudal.maximum) == (200, 150, 250, 100, 300)
    dap = report.technique_for(CA, "fluoroscopy", "dap_gy_cm2").spread
    assert dap.median == pytest.approx(0.2)


def test_learning_curves_declare_competence_where_the_weights_say(rows, report):
    h = report.h
    assert h == stats.lc_cusum_threshold(0.2, 0.4, max_attempts=50, alpha=0.05).h
    s, f = math.log(0.8 / 0.6), math.log(0.2 / 0.4)
    ann = report.curve("ann", LI, "fluoroscopy")
    assert ann.failures == (True,) + (False,) * 9
    assert ann.result.scores == pytest.approx([0.0] + [k * s for k in range(1, 10)])
    # 9 successes reach 9 * 0.2877 = 2.59: below h at these rates, so not yet
    assert 9 * s < h and ann.competence_attempt is None and ann.competence == "not yet"
    ben = report.curve("ben", LI, "landmark")
    assert ben.failures == (True, True, False, False)
    assert ben.result.scores == pytest.approx([0.0, 0.0, s, 2 * s])
    assert f < 0

    # a laxer test: acceptable 0.1, unacceptable 0.5, over 10 attempts
    lax = build_report(rows, 0.1, 0.5, lc_max_attempts=10)
    h = lax.h
    assert h == stats.lc_cusum_threshold(0.1, 0.5, max_attempts=10, alpha=0.05).h
    s = math.log(0.9 / 0.5)
    # ann's fluoroscopy curve: 0 after the failure, then s per success: competent at the first
    # attempt k with (k - 1) * s >= h
    k = 1 + math.ceil(h / s - 1e-12)
    assert k <= 10, "the data set is meant to reach competence under these rates"
    ann = lax.curve("ann", LI, "fluoroscopy")
    assert ann.competence_attempt == k
    assert ann.competence_attempt_id == ann.attempt_ids[k - 1]
    assert ann.competence.startswith(f"attempt {k} of 10 (2024-03-{k + 3:02d})")
    assert lax.curve("cat", LI, "landmark").competence == "not yet"
    pooled = build_report(rows, lc_by_guidance=False)
    assert pooled.curve("ann", LI, None).n == 13


# ------------------------------------------------------------------------------------ selection
def test_selection_filters_change_the_counts(db):
    course_a = _select(db, course=A)
    assert len(course_a) == 23 and {r.procedure for r in course_a} == {LI}
    assert len(_select(db, course=B)) == 5  # ann's and ben's caudal attempts; cat's had no course
    dates = _select(db, date_from=date(2024, 3, 2), date_to="2024-03-04")
    r = build_report(dates, lc_n_simulations=2000)
    assert (r.rate(LI, "landmark").n, r.rate(LI, "fluoroscopy").n) == (8, 1)
    assert r.rate(LI, "landmark").count == 4  # ann d3; ben d3, d4; cat d3 (with its hard fail)
    caudal = _select(db, procedures=[CA])
    assert len(caudal) == 7 and {r.procedure for r in caudal} == {CA}
    assert len(_select(db, trainees="ann")) == 16
    assert len(_select(db, trainees=["ann", "cat"], guidance="landmark")) == 10
    assert len(_select(db, guidance=["landmark"])) == 14
    everything = _select(db, include_incomplete=True)
    assert len(everything) == 31 and everything.left_out == {}
    rep = build_report(everything, lc_n_simulations=2000)
    rate = rep.rate(LI, "fluoroscopy")
    assert (rate.count, rate.n) == (11, 14)
    [incomplete] = [x for x in everything if x.status == "incomplete"]
    assert (incomplete.outcome, incomplete.success, incomplete.passed, incomplete.time_s) == (
        "incomplete", False, False, None)
    with pytest.raises(ValueError):
        Selection(date_from="2024-03-05", date_to="2024-03-01")


# ------------------------------------------------------------------------------------- files
def test_html_and_pdf_are_written_with_the_numbers(report, tmp_path):
    html_path = write_html(report, tmp_path / "report.html")
    text = html_path.read_text(encoding="utf-8")
    assert len(text) > 20_000
    assert text.count("data:image/png;base64,") == 3
    assert "Training use only" in text and "Generated 2024-04-01 12:00 UTC" in text
    for (proc, mode, measure), (k, n) in RATES.items():
        low, high = _wilson(k, n)
        assert f"{k}/{n} {100 * k / n:.1f}% ({100 * low:.1f} to {100 * high:.1f})" in text, (proc, mode, measure)
    c = report.comparison(LI).result
    assert f"{100 * c.difference:+.1f} ({100 * c.low:+.1f} to {100 * c.high:+.1f})" in text
    assert f"{c.fisher_p_value:.3f}" in text
    assert f"h = {report.h:g}" in text and "not yet" in text
    assert "Course A" not in text  # the selection was everything
    assert "left out" in text.lower() and "1 incomplete" in text
    assert "not independent" in text

    pdf_path = write_pdf(report, tmp_path / "report.pdf")
    data = pdf_path.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
    assert pages >= 4  # A4 text pages with the three plots in the flow
    assert len(re.findall(rb"/Subtype\s*/Image", data)) >= 3
    try:
        import pypdf
    except ImportError:
        return
    reader = pypdf.PdfReader(str(pdf_path))
    assert len(reader.pages) == pages
    assert "6/10" in "".join(p.extract_text() for p in reader.pages)


def test_run_report_writes_both_files(db, tmp_path):
    paths = run_report(db, "drlee", PASSWORD, Selection(course=B), tmp_path / "out", lc_n_simulations=2000)
    assert [p.suffix for p in paths] == [".html", ".pdf"] and all(p.stat().st_size > 10_000 for p in paths)
    text = paths[0].read_text(encoding="utf-8")
    assert "Course B" in text and "lumbar interlaminar" not in text
