"""Logistic regression of failure on patient factors (simulator.analysis.logistic).

Expected values are computed here independently of the module: a 2x2 table by hand, maximum
likelihood by scipy.optimize on a log-likelihood written out in this file, profile limits by a
one-dimensional search over the remaining coefficient, and Firth's estimate for a 2x2 table as the
log odds ratio with 1/2 added to every cell (Firth's penalty gives exactly that for a saturated
2x2 model).

The 2x2 table used below (failures / attempts):

    arm b (exposed):    a = 30 failures, b = 70 successes
    arm a (reference):  c = 15 failures, d = 85 successes
    odds ratio = (a d) / (b c) = 2550 / 1050 = 2.428571
    Woolf's standard error of its log = sqrt(1/30 + 1/70 + 1/15 + 1/85) = 0.355036
    Wald 95% interval = exp(0.887303 -+ 1.959964 * 0.355036) = 1.2110 .. 4.8703
    G (likelihood ratio) = 2 sum O ln(O / E), E = 22.5, 77.5, 22.5, 77.5 -> 6.5509, p = 0.01048
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import optimize, special, stats

from simulator.analysis.logistic import Coefficient, LogisticFit, fit_logistic
from simulator.errors import SpineSimError

CHI2_95 = float(stats.chi2.ppf(0.95, 1))  # 3.841459
Z_95 = float(stats.norm.ppf(0.975))  # 1.959964


def _by_name(fit: LogisticFit) -> dict[str, Coefficient]:
    return {coefficient.name: coefficient for coefficient in fit.coefficients}


def _log_likelihood(beta: np.ndarray, matrix: np.ndarray, outcome: np.ndarray) -> float:
    eta = matrix @ beta
    return float(np.sum(outcome * eta - np.logaddexp(0.0, eta)))


def _penalised_log_likelihood(beta: np.ndarray, matrix: np.ndarray, outcome: np.ndarray) -> float:
    """Firth's objective written out independently: l(b) + 1/2 log det(X' W X)."""
    probability = special.expit(matrix @ beta)
    information = matrix.T @ (matrix * (probability * (1.0 - probability))[:, None])
    return _log_likelihood(beta, matrix, outcome) + 0.5 * np.linalg.slogdet(information)[1]


def _two_by_two(a: int, b: int, c: int, d: int) -> list[dict]:
    """Rows of a 2x2 table: arm "b" has a failures and b successes, arm "a" (the reference) c
    failures and d successes."""
    return (
        [{"failure": True, "arm": "b"}] * a
        + [{"failure": False, "arm": "b"}] * b
        + [{"failure": True, "arm": "a"}] * c
        + [{"failure": False, "arm": "a"}] * d
    )


def _two_by_two_matrix(a: int, b: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    exposed = np.array([1.0] * (a + b) + [0.0] * (c + d))
    outcome = np.array([1.0] * a + [0.0] * b + [1.0] * c + [0.0] * d)
    return np.column_stack([np.ones_like(exposed), exposed]), outcome


def _profile_deviance(objective, matrix, outcome, maximum: float, slope: float) -> float:
    """2 (maximum - max over the intercept of objective(intercept, slope)), found by scipy."""
    result = optimize.minimize_scalar(
        lambda intercept: -objective(np.array([intercept, slope]), matrix, outcome),
        bounds=(-30.0, 30.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return 2.0 * (maximum + result.fun)


# ------------------------------------------------------------------------------------------------
# A known model
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated_study():
    """4000 attempts from log-odds = -1 + 0.8 x + 1.2 [group == b]."""
    rng = np.random.default_rng(20240611)
    n = 4000
    x = rng.normal(size=n)
    group = rng.choice(["a", "b"], size=n)
    eta = -1.0 + 0.8 * x + 1.2 * (group == "b")
    failure = rng.random(n) < special.expit(eta)
    rows = [
        {"failure": bool(failure[i]), "x": float(x[i]), "group": str(group[i])} for i in range(n)
    ]
    return rows, x, group, failure


def test_a_known_model_is_recovered_within_its_standard_errors(simulated_study):
    rows, x, group, failure = simulated_study
    fit = fit_logistic(rows, "failure", {"x": 1.0}, {"group": "a"})

    assert fit.method == "maximum likelihood"
    assert fit.converged
    assert fit.note == ""
    assert (fit.n, fit.events) == (4000, int(failure.sum()))
    assert [c.name for c in fit.coefficients] == ["intercept", "x (per 1)", "group=b"]
    # x is centred, so the true intercept is the log-odds at the sample mean of x
    truth = {"intercept": -1.0 + 0.8 * x.mean(), "x (per 1)": 0.8, "group=b": 1.2}
    for name, coefficient in _by_name(fit).items():
        assert abs(coefficient.estimate - truth[name]) < 3.0 * coefficient.std_error, name
        assert coefficient.or_low < math.exp(truth[name]) < coefficient.or_high, name
        assert coefficient.odds_ratio == pytest.approx(math.exp(coefficient.estimate), rel=1e-12)
        assert coefficient.p_value < 1e-10, name


def test_estimates_and_standard_errors_match_an_independent_maximisation(simulated_study):
    rows, x, group, failure = simulated_study
    fit = fit_logistic(rows, "failure", {"x": 1.0}, {"group": "a"})

    matrix = np.column_stack([np.ones_like(x), x - x.mean(), (group == "b").astype(float)])
    outcome = failure.astype(float)
    result = optimize.minimize(
        lambda beta: -_log_likelihood(beta, matrix, outcome),
        np.zeros(3),
        jac=lambda beta: -matrix.T @ (outcome - special.expit(matrix @ beta)),
        method="BFGS",
        options={"gtol": 1e-10},
    )
    probability = special.expit(matrix @ result.x)
    information = matrix.T @ (matrix * (probability * (1.0 - probability))[:, None])
    std_errors = np.sqrt(np.diag(np.linalg.inv(information)))

    assert [c.estimate for c in fit.coefficients] == pytest.approx(result.x, abs=1e-6)
    assert [c.std_error for c in fit.coefficients] == pytest.approx(std_errors, rel=1e-6)
    assert fit.log_likelihood == pytest.approx(-result.fun, abs=1e-8)


# ------------------------------------------------------------------------------------------------
# A 2x2 table by hand
# ------------------------------------------------------------------------------------------------


def test_a_two_by_two_table_gives_the_cross_product_odds_ratio():
    a, b, c, d = 30, 70, 15, 85
    fit = fit_logistic(_two_by_two(a, b, c, d), "failure", categorical={"arm": "a"}, firth=False)
    intercept, arm = fit.coefficients

    assert fit.method == "maximum likelihood" and fit.converged
    assert (fit.n, fit.events) == (200, 45)
    assert arm.name == "arm=b"
    assert arm.odds_ratio == pytest.approx(a * d / (b * c), rel=1e-9)  # 2.428571
    assert intercept.odds_ratio == pytest.approx(c / d, rel=1e-9)  # odds in the reference arm
    woolf = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)  # 0.355036
    assert arm.std_error == pytest.approx(woolf, rel=1e-7)

    # the likelihood-ratio p-value is the G test of the table
    expected = [22.5, 77.5, 22.5, 77.5]
    g = 2.0 * sum(o * math.log(o / e) for o, e in zip((a, b, c, d), expected, strict=True))
    assert g == pytest.approx(6.5509, abs=1e-4)
    assert arm.p_value == pytest.approx(stats.chi2.sf(g, 1), rel=1e-6)  # 0.01048

    # the profile interval is close to Woolf's Wald interval (1.2110 .. 4.8703) and a little to
    # its right, as the log odds ratio's likelihood is skewed that way for these counts
    wald_low = math.exp(math.log(arm.odds_ratio) - Z_95 * woolf)
    wald_high = math.exp(math.log(arm.odds_ratio) + Z_95 * woolf)
    assert arm.or_low < arm.odds_ratio < arm.or_high
    assert arm.or_low == pytest.approx(wald_low, rel=0.05)
    assert arm.or_high == pytest.approx(wald_high, rel=0.05)

    # ...and its limits are where the deviance, maximised over the intercept, reaches 3.8415
    matrix, outcome = _two_by_two_matrix(a, b, c, d)
    maximum = fit.log_likelihood
    for limit in (arm.or_low, arm.or_high):
        deviance = _profile_deviance(_log_likelihood, matrix, outcome, maximum, math.log(limit))
        assert deviance == pytest.approx(CHI2_95, abs=1e-5)


def test_the_confidence_level_sets_the_profile_deviance_at_the_limits():
    a, b, c, d = 30, 70, 15, 85
    fit = fit_logistic(
        _two_by_two(a, b, c, d), "failure", categorical={"arm": "a"}, confidence=0.80
    )
    arm = _by_name(fit)["arm=b"]
    narrower = _by_name(fit_logistic(_two_by_two(a, b, c, d), "failure", {}, {"arm": "a"}))
    assert narrower["arm=b"].or_low < arm.or_low < arm.or_high < narrower["arm=b"].or_high
    matrix, outcome = _two_by_two_matrix(a, b, c, d)
    deviance = _profile_deviance(
        _log_likelihood, matrix, outcome, fit.log_likelihood, math.log(arm.or_low)
    )
    assert deviance == pytest.approx(stats.chi2.ppf(0.80, 1), abs=1e-5)


# ------------------------------------------------------------------------------------------------
# Separation and few events
# ------------------------------------------------------------------------------------------------


def test_complete_separation_is_fitted_by_firth_with_finite_estimates():
    # every attempt in arm b failed, none in arm a: the maximum-likelihood odds ratio is infinite
    rows = _two_by_two(15, 0, 0, 20)
    fit = fit_logistic(rows, "failure", categorical={"arm": "a"})

    assert fit.method == "Firth penalised likelihood"
    assert fit.converged
    assert "separation" in fit.note
    arm = _by_name(fit)["arm=b"]
    # Firth's estimate for a 2x2 table: 1/2 added to every cell
    assert arm.odds_ratio == pytest.approx((15.5 * 20.5) / (0.5 * 0.5), rel=1e-7)  # 1271
    assert all(
        math.isfinite(value)
        for coefficient in fit.coefficients
        for value in (coefficient.estimate, coefficient.std_error, coefficient.or_low,
                      coefficient.or_high, coefficient.p_value)
    )
    assert 1.0 < arm.or_low < arm.odds_ratio < arm.or_high
    assert arm.p_value < 0.001

    # the interval is the profile penalised-likelihood one: at each limit the penalised deviance,
    # maximised over the intercept, is 3.8415
    matrix, outcome = _two_by_two_matrix(15, 0, 0, 20)
    beta = np.array([c.estimate for c in fit.coefficients])
    maximum = _penalised_log_likelihood(beta, matrix, outcome)
    for limit in (arm.or_low, arm.or_high):
        deviance = _profile_deviance(
            _penalised_log_likelihood, matrix, outcome, maximum, math.log(limit)
        )
        assert deviance == pytest.approx(CHI2_95, abs=1e-5)

    # the same rows by plain maximum likelihood do not converge, and say so
    plain = fit_logistic(rows, "failure", categorical={"arm": "a"}, firth=False)
    assert plain.method == "maximum likelihood"
    assert not plain.converged
    assert "separation" in plain.note
    assert _by_name(plain)["arm=b"].estimate > 2.0 * arm.estimate  # on its way to infinity
    assert math.isnan(_by_name(plain)["arm=b"].or_low)
    json.dumps(plain.table(), allow_nan=False)


def test_firth_estimates_maximise_the_penalised_likelihood_under_numeric_separation():
    dose = np.linspace(-2.0, 2.0, 12)
    rows = [{"failure": bool(value > 0.1), "dose": float(value)} for value in dose]
    fit = fit_logistic(rows, "failure", {"dose": 1.0})

    assert fit.method == "Firth penalised likelihood" and fit.converged
    beta = np.array([c.estimate for c in fit.coefficients])
    assert np.all(np.isfinite(beta))
    matrix = np.column_stack([np.ones_like(dose), dose - dose.mean()])
    outcome = (dose > 0.1).astype(float)
    step = 1e-5
    gradient = [
        (
            _penalised_log_likelihood(beta + step * unit, matrix, outcome)
            - _penalised_log_likelihood(beta - step * unit, matrix, outcome)
        )
        / (2.0 * step)
        for unit in np.eye(2)
    ]
    assert gradient == pytest.approx([0.0, 0.0], abs=1e-6)


def test_fewer_than_ten_events_per_factor_switches_to_firth():
    rng = np.random.default_rng(7)
    rows = [
        {"failure": i < 12, "age_years": float(rng.normal(50, 12)), "bmi_kg_m2": float(25 + i % 9)}
        for i in range(200)
    ]
    automatic = fit_logistic(rows, "failure", {"age_years": 10.0, "bmi_kg_m2": 5.0})
    assert automatic.method == "Firth penalised likelihood" and automatic.converged
    assert "fewer than 10 events per factor coefficient (12 events, 2 coefficients)" in (
        automatic.note
    )
    forced = fit_logistic(rows, "failure", {"age_years": 10.0, "bmi_kg_m2": 5.0}, firth=False)
    assert forced.method == "maximum likelihood" and forced.converged
    assert "estimates unstable" in forced.note


@pytest.mark.parametrize("happened", [False, True])
def test_an_outcome_that_never_or_always_happens_gives_an_intercept_only_fit(happened):
    rows = [{"failure": happened, "bmi_kg_m2": 20.0 + i} for i in range(30)]

    firth = fit_logistic(rows, "failure", {"bmi_kg_m2": 5.0})
    assert [c.name for c in firth.coefficients] == ["intercept"]
    assert firth.converged and firth.method == "Firth penalised likelihood"
    assert "intercept only" in firth.note
    # Firth's intercept alone: 1/2 added to events and non-events, odds 30.5/0.5 or 0.5/30.5
    expected_odds = 30.5 / 0.5 if happened else 0.5 / 30.5
    assert firth.coefficients[0].odds_ratio == pytest.approx(expected_odds, rel=1e-7)

    plain = fit_logistic(rows, "failure", {"bmi_kg_m2": 5.0}, firth=False)
    assert [c.name for c in plain.coefficients] == ["intercept"]
    assert not plain.converged and "intercept only" in plain.note
    intercept = plain.coefficients[0]
    assert intercept.estimate == (math.inf if happened else -math.inf)
    # the likelihood interval of the odds of the observed outcome: 30 log q = -3.8415 / 2
    bound = math.exp(-CHI2_95 / 60.0)
    if happened:
        assert intercept.or_low == pytest.approx(bound / (1.0 - bound), rel=1e-9)
    else:
        assert intercept.or_high == pytest.approx((1.0 - bound) / bound, rel=1e-9)
    json.dumps(plain.table(), allow_nan=False)


# ------------------------------------------------------------------------------------------------
# Coding of the factors
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bmi_rows():
    rng = np.random.default_rng(11)
    bmi = rng.uniform(18.0, 45.0, size=600)
    failure = rng.random(600) < special.expit(-1.0 + 0.06 * (bmi - 30.0))
    return [{"failure": bool(f), "bmi_kg_m2": float(v)} for f, v in zip(failure, bmi, strict=True)]


def test_reporting_per_five_units_multiplies_the_estimate_by_five(bmi_rows):
    per_one = _by_name(fit_logistic(bmi_rows, "failure", {"bmi_kg_m2": 1.0}))
    per_five = _by_name(fit_logistic(bmi_rows, "failure", {"bmi_kg_m2": 5.0}))

    one, five = per_one["bmi_kg_m2 (per 1)"], per_five["bmi_kg_m2 (per 5)"]
    assert five.estimate == pytest.approx(5.0 * one.estimate, rel=1e-9)
    assert five.std_error == pytest.approx(5.0 * one.std_error, rel=1e-9)
    assert math.log(five.or_low) == pytest.approx(5.0 * math.log(one.or_low), rel=1e-7)
    assert math.log(five.or_high) == pytest.approx(5.0 * math.log(one.or_high), rel=1e-7)
    assert five.p_value == pytest.approx(one.p_value, rel=1e-7)
    assert per_five["intercept"].estimate == pytest.approx(per_one["intercept"].estimate, rel=1e-9)


def test_numeric_factors_are_centred_on_their_mean(bmi_rows):
    shifted = [{**row, "bmi_kg_m2": row["bmi_kg_m2"] + 100.0} for row in bmi_rows]
    original = fit_logistic(bmi_rows, "failure", {"bmi_kg_m2": 5.0})
    moved = fit_logistic(shifted, "failure", {"bmi_kg_m2": 5.0})
    for a, b in zip(original.coefficients, moved.coefficients, strict=True):
        assert b.estimate == pytest.approx(a.estimate, rel=1e-7, abs=1e-9)

    # the intercept is the log-odds at the mean BMI: the uncentred fit's line evaluated there
    bmi = np.array([row["bmi_kg_m2"] for row in bmi_rows])
    outcome = np.array([row["failure"] for row in bmi_rows], dtype=float)
    matrix = np.column_stack([np.ones_like(bmi), bmi])
    uncentred = optimize.minimize(
        lambda beta: -_log_likelihood(beta, matrix, outcome),
        np.zeros(2),
        jac=lambda beta: -matrix.T @ (outcome - special.expit(matrix @ beta)),
        method="BFGS",
        options={"gtol": 1e-9},
    ).x
    intercept = original.coefficients[0].estimate
    assert intercept == pytest.approx(uncentred[0] + uncentred[1] * bmi.mean(), abs=1e-5)


def test_rows_with_a_missing_value_are_left_out(bmi_rows):
    complete = [
        {**row, "hiatus": "normal" if i % 3 else "narrow"} for i, row in enumerate(bmi_rows)
    ]
    incomplete = complete + [
        {"failure": None, "bmi_kg_m2": 30.0, "hiatus": "normal"},
        {"failure": True, "bmi_kg_m2": None, "hiatus": "normal"},
        {"failure": True, "bmi_kg_m2": float("nan"), "hiatus": "narrow"},
        {"failure": False, "bmi_kg_m2": 22.0, "hiatus": None},
        {"failure": True, "hiatus": "narrow"},  # no bmi at all
    ]
    factors = ({"bmi_kg_m2": 5.0}, {"hiatus": "normal"})
    fit = fit_logistic(incomplete, "failure", *factors)
    reference = fit_logistic(complete, "failure", *factors)

    assert fit.n == len(complete) == 600
    assert fit.events == reference.events
    assert "5 of 605 rows left out for missing values" in fit.note
    assert [c.estimate for c in fit.coefficients] == pytest.approx(
        [c.estimate for c in reference.coefficients], rel=1e-12
    )


def test_no_usable_rows_is_a_one_line_error_naming_the_outcome():
    with pytest.raises(SpineSimError, match=r"^logistic model of failure: no rows with failure"):
        fit_logistic([], "failure", {"bmi_kg_m2": 5.0})
    rows = [{"failure": True, "bmi_kg_m2": None}, {"failure": None, "bmi_kg_m2": 31.0}]
    with pytest.raises(SpineSimError) as raised:
        fit_logistic(rows, "failure", {"bmi_kg_m2": 5.0}, {"hiatus": "normal"})
    message = str(raised.value)
    assert message == (
        "logistic model of failure: no rows with failure, bmi_kg_m2 and hiatus all recorded"
        " (2 given)"
    )


def test_bad_values_and_arguments_are_refused():
    with pytest.raises(SpineSimError, match="row 1 has failure='yes'"):
        fit_logistic([{"failure": True}, {"failure": "yes"}], "failure")
    with pytest.raises(SpineSimError, match="row 0 has bmi_kg_m2='fat'"):
        fit_logistic([{"failure": True, "bmi_kg_m2": "fat"}], "failure", {"bmi_kg_m2": 5.0})
    with pytest.raises(ValueError, match="unit"):
        fit_logistic([{"failure": True, "bmi_kg_m2": 20.0}], "failure", {"bmi_kg_m2": 0.0})
    with pytest.raises(ValueError, match="confidence"):
        fit_logistic([{"failure": True}], "failure", confidence=1.0)


def _transitional_rows() -> list[dict]:
    """Failures / attempts by level: none 20/100, sacralisation 12/30, lumbarisation 9/20."""
    rows = []
    for level, failures, attempts in (
        ("none", 20, 100), ("sacralisation", 12, 30), ("lumbarisation", 9, 20)
    ):
        rows += [{"failure": i < failures, "transitional": level} for i in range(attempts)]
    return rows


def test_each_level_is_compared_with_the_reference_level():
    fit = fit_logistic(_transitional_rows(), "failure", categorical={"transitional": "none"})

    assert [c.name for c in fit.coefficients] == [
        "intercept", "transitional=lumbarisation", "transitional=sacralisation"
    ]
    by_name = _by_name(fit)
    reference_odds = 20 / 80
    assert by_name["intercept"].odds_ratio == pytest.approx(reference_odds, rel=1e-9)
    assert by_name["transitional=sacralisation"].odds_ratio == pytest.approx(
        (12 / 18) / reference_odds, rel=1e-9
    )
    assert by_name["transitional=lumbarisation"].odds_ratio == pytest.approx(
        (9 / 11) / reference_odds, rel=1e-9
    )


def test_absent_constant_and_missing_reference_levels():
    rows = _transitional_rows()
    for index, row in enumerate(rows):
        row["hiatus"] = "normal"
        row["bmi_kg_m2"] = 22.0 + index % 13
    # a level whose only rows are left out for a missing BMI has no indicator
    rows += [
        {"failure": i < 2, "transitional": "fused", "hiatus": "normal", "bmi_kg_m2": None}
        for i in range(5)
    ]
    categorical = {"transitional": "none", "hiatus": "normal"}

    fit = fit_logistic(rows, "failure", {}, categorical)
    assert "transitional=fused" in [c.name for c in fit.coefficients]  # BMI not a factor
    fit = fit_logistic(rows, "failure", {"bmi_kg_m2": 5.0}, categorical)
    names = [c.name for c in fit.coefficients]
    assert names == [
        "intercept", "bmi_kg_m2 (per 5)", "transitional=lumbarisation", "transitional=sacralisation"
    ]
    assert not any("fused" in name for name in names)
    assert not any(name.startswith("hiatus") for name in names)  # one level in every row
    assert "hiatus dropped: 'normal' in every row" in fit.note

    # a reference level with no rows: the most common level takes its place, with a note
    fit = fit_logistic(_transitional_rows(), "failure", {}, {"transitional": "sacralization"})
    assert [c.name for c in fit.coefficients] == [
        "intercept", "transitional=lumbarisation", "transitional=sacralisation"
    ]
    assert "reference level 'sacralization' has no rows, 'none' used" in fit.note


def test_a_numeric_factor_with_one_value_is_dropped_with_a_note():
    rows = [
        {"failure": i % 4 == 0, "age_years": 40.0, "bmi_kg_m2": 20.0 + i % 7} for i in range(80)
    ]
    fit = fit_logistic(rows, "failure", {"age_years": 10.0, "bmi_kg_m2": 5.0})
    assert [c.name for c in fit.coefficients] == ["intercept", "bmi_kg_m2 (per 5)"]
    assert "age_years dropped: 40 in every row" in fit.note


# ------------------------------------------------------------------------------------------------
# Output and packaging
# ------------------------------------------------------------------------------------------------


def test_the_table_is_json_ready_and_rounded(simulated_study):
    rows = simulated_study[0]
    fit = fit_logistic(rows, "failure", {"x": 1.0}, {"group": "a"})
    table = fit.table()
    json.dumps(table, allow_nan=False)
    assert [row["name"] for row in table] == [c.name for c in fit.coefficients]
    for row, coefficient in zip(table, fit.coefficients, strict=True):
        assert set(row) == {
            "name", "estimate", "std_error", "odds_ratio", "or_low", "or_high", "p_value"
        }
        assert row["odds_ratio"] == float(f"{coefficient.odds_ratio:.4g}")
        assert row["p_value"] == float(f"{coefficient.p_value:.4g}") > 0.0  # tiny, not 0


def test_the_fit_is_deterministic_and_does_not_depend_on_row_order(simulated_study):
    rows = simulated_study[0]
    first = fit_logistic(rows, "failure", {"x": 1.0}, {"group": "a"})
    again = fit_logistic(rows, "failure", {"x": 1.0}, {"group": "a"})
    assert again == first
    reordered = fit_logistic(rows[::-1], "failure", {"x": 1.0}, {"group": "a"})
    for a, b in zip(first.coefficients, reordered.coefficients, strict=True):
        assert b.name == a.name
        assert b.estimate == pytest.approx(a.estimate, rel=1e-9)
        assert b.or_low == pytest.approx(a.or_low, rel=1e-7)


def test_the_module_imports_no_gui_or_rendering_package():
    code = (
        "import sys, simulator.analysis.logistic\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('PyQt6', 'pyvista', 'pyvistaqt', 'vtk', 'vtkmodules', 'statsmodels', 'sklearn')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
