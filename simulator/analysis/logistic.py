"""Logistic regression of a binary outcome (such as failure) on patient factors, headless.

Answers "which patient factors drive failure" in a simulated study: one row per simulated attempt,
a True/False outcome, numeric factors (BMI, age) and categorical factors (transitional vertebra,
sacral hiatus). numpy and scipy only, no Qt and no plotting, so the same numbers come out of the
command line and a researcher's notebook.

Model and coding
----------------
``logit P(outcome) = b0 + sum_k b_k x_k``. A numeric column is centred on its mean over the rows
used and divided by the unit it is reported per, so its coefficient is the change in log-odds per
that unit (``"bmi_kg_m2 (per 5)"``) and the intercept is the log-odds of a patient at the mean of
every numeric factor and at the reference level of every categorical one. A categorical column gets
one 0/1 indicator per observed level other than its reference (``"transitional=sacralisation"``),
so its odds ratio compares that level with the reference. Levels sort as text, so the result does
not depend on the order of the rows.

Estimation
----------
Newton-Raphson (for logistic regression the same iteration as iteratively reweighted least
squares), with steps of at most 5 on the log-odds scale and halved until the objective increases.

- *Maximum likelihood* maximises ``l(b) = sum_i y_i eta_i - log(1 + exp(eta_i))``.
- *Firth's penalised likelihood* [Firth1993]_ maximises ``l(b) + 1/2 log det I(b)`` with
  ``I(b) = X' W X`` (a Jeffreys-prior penalty). Its estimates have no first-order bias and are
  finite even under separation [Kosmidis2021]_; [Heinze2002]_ introduced it for separated data.
  The score is ``X' (y - p + h (1/2 - p))`` with ``h`` the diagonal of the weighted hat matrix.
  The Newton step uses the exact Hessian of the penalised log-likelihood where it is negative
  definite (near the maximum) and ``I(b)`` elsewhere (which the R package logistf uses
  throughout), so it converges quadratically even when the penalty is large (few rows).

With ``firth=None`` the Firth fit is used when

1. the data are (quasi-)completely separated [Albert1984]_, so the maximum-likelihood estimates do
   not exist. This is found exactly with the linear program of [Konis2007]_: separation exists iff
   some ``b != 0`` has ``s_i x_i'b >= 0`` for every row (``s_i = +1`` for an event, ``-1``
   otherwise) with at least one strict inequality;
2. fewer than 10 events, or fewer than 10 non-events, per factor coefficient (the intercept not
   counted), the events-per-variable rule of [Peduzzi1996]_;
3. maximum likelihood did not converge.

Inference
---------
Confidence intervals are profile-likelihood intervals [Venzon1988]_: the values ``c`` of one
coefficient where ``2 (l(b_hat) - max l(b | b_j = c))`` equals the chi-square(1) quantile at
``confidence``. P-values are likelihood-ratio tests of ``b_j = 0`` (the one coefficient dropped,
the others refitted). A Firth fit uses the penalised likelihood for both, with the penalty of the
full model, as [Heinze2002]_ and logistf do. These behave better than Wald intervals with few
events or large effects, and they stay valid under separation; a limit that would be infinite is
reported as such. ``std_error`` is the Wald standard error from the inverse of ``I(b)`` at the
estimates (at the penalised estimates for a Firth fit, as logistf reports), for reference only.

Edge cases
----------
- Rows where the outcome or any factor used is missing (None or NaN, or no such key) are left out;
  ``n`` counts the rows used and the note says how many were left out. No rows left raises
  :class:`~simulator.errors.SpineSimError`.
- A numeric factor with one value, or a categorical factor with one level, in every row used is
  dropped, and so is a column that is a combination of earlier ones (aliased); the note says so.
  A reference level with no rows is replaced by the most common level, with a note.
- When every outcome is True, or every one is False, the factors cannot be estimated: the fit is
  intercept only, with a note. Under maximum likelihood that intercept is infinite and the fit is
  marked not converged (its profile interval is still given, in closed form).
- Maximum likelihood forced with ``firth=False`` on separated data returns the last iterate,
  ``converged=False``, NaN intervals and p-values, and a note.
- A Firth intercept is biased towards a mean probability of 1/2; read the odds ratios, not the
  intercept, of a Firth fit.

The arithmetic is deterministic: the same rows, in any order, give the same fit to rounding.

References
----------
.. [Firth1993] Firth D. Bias reduction of maximum likelihood estimates. Biometrika 1993;80:27-38.
.. [Heinze2002] Heinze G, Schemper M. A solution to the problem of separation in logistic
   regression. Stat Med 2002;21:2409-2419.
.. [Kosmidis2021] Kosmidis I, Firth D. Jeffreys-prior penalty, finiteness and shrinkage in
   binomial-response generalized linear models. Biometrika 2021;108:71-82.
.. [Albert1984] Albert A, Anderson JA. On the existence of maximum likelihood estimates in
   logistic regression models. Biometrika 1984;71:1-10.
.. [Konis2007] Konis K. Linear programming algorithms for detecting separated data in binary
   logistic regression models. DPhil thesis, University of Oxford, 2007.
.. [Peduzzi1996] Peduzzi P, Concato J, Kemper E, Holford TR, Feinstein AR. A simulation study of
   the number of events per variable in logistic regression analysis. J Clin Epidemiol
   1996;49:1373-1379.
.. [Venzon1988] Venzon DJ, Moolgavkar SH. A method for computing profile-likelihood-based
   confidence intervals. Appl Stat 1988;37:87-94.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import linalg as _linalg
from scipy import optimize as _optimize
from scipy import special as _special
from scipy import stats as _sps

from simulator.errors import SpineSimError

__all__ = ["Coefficient", "LogisticFit", "fit_logistic"]

MAXIMUM_LIKELIHOOD = "maximum likelihood"
FIRTH = "Firth penalised likelihood"

# Peduzzi et al.'s rule: below this many events (or non-events) per factor coefficient the
# maximum-likelihood estimates are biased away from zero and their intervals too narrow.
EVENTS_PER_COEFFICIENT = 10

_NO_COLUMNS: Mapping[str, Any] = MappingProxyType({})
_NAN = float("nan")
_INTERCEPT = "intercept"

_MAX_ITERATIONS = 100
_MAX_HALVINGS = 40
# Largest Newton step on the log-odds scale (logistf's maxstep): keeps a first step from a poor
# start, or a step along a separating direction, from overflowing.
_MAX_STEP = 5.0
# Converged when the largest Newton step is below this (log-odds); Newton's quadratic convergence
# takes the estimates far closer than that by then.
_STEP_TOLERANCE = 1e-9
# A Newton step that cannot raise the objective even halved 40 times has reached the maximum to
# within rounding if it was already this small (the Firth score carries rounding of about 1e-9).
_STALLED_STEP_TOLERANCE = 1e-6
# A column whose part not explained by the columns before it is smaller than this (relative to its
# own size) is aliased and dropped.
_ALIASED_TOLERANCE = 1e-9
# Separation: the linear program's optimum, with each column scaled to a largest magnitude of 1,
# above this counts as separation (its optimum is exactly 0 otherwise).
_SEPARATION_TOLERANCE = 1e-7
# Profile limits further than this from zero on the log-odds scale (odds ratio beyond about e^700,
# the largest finite exp) are reported as infinite.
_LARGEST_LOG_ODDS = 700.0
# Largest row-wise product matrix (n x p^2 numbers) held for the exact Hessian of Firth's penalty.
_PRODUCTS_LIMIT = 4_000_000
# Profile deviances are capped here so the root finder only ever sees finite values.
_DEVIANCE_CAP = 1e6


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coefficient:
    """One coefficient of a logistic fit, on the log-odds scale and as an odds ratio.

    Attributes
    ----------
    name : str
        ``"intercept"``, ``"<column> (per <unit>)"`` for a numeric factor or ``"<column>=<level>"``
        for a level of a categorical factor.
    estimate : float
        Log-odds (intercept) or log odds ratio (factors).
    std_error : float
        Wald standard error, from the inverse of the information ``X' W X`` at the estimates (the
        penalised estimates for a Firth fit); NaN if that is singular. For reference only: the
        interval and p-value do not use it.
    odds_ratio : float
        ``exp(estimate)``: the odds for the intercept, the odds ratio for a factor.
    or_low, or_high : float
        Profile (penalised) likelihood confidence interval of ``odds_ratio``; 0 or inf when a limit
        is unbounded, NaN when the fit did not converge.
    p_value : float
        Two-sided (penalised) likelihood-ratio test of the coefficient being 0; NaN when the fit
        did not converge.
    """

    name: str
    estimate: float
    std_error: float
    odds_ratio: float
    or_low: float
    or_high: float
    p_value: float


@dataclass(frozen=True)
class LogisticFit:
    """A logistic regression of one binary outcome on patient factors.

    Attributes
    ----------
    outcome : str
        The outcome column, for example ``"failure"``.
    n : int
        Rows used (rows with a missing value left out).
    events : int
        Rows used whose outcome is True.
    coefficients : tuple of Coefficient
        The intercept first, then the numeric factors in the order given, then the levels of each
        categorical factor in the order given (levels sorted as text).
    log_likelihood : float
        Ordinary (unpenalised) log-likelihood at the estimates, for a Firth fit too.
    method : str
        ``"maximum likelihood"`` or ``"Firth penalised likelihood"``.
    converged : bool
        The estimates are the maximum of the (penalised) likelihood. False when maximum likelihood
        was forced on separated data or on an outcome that never or always happens (or, rarely,
        when Newton-Raphson failed); intervals and p-values are then NaN unless given in closed
        form.
    note : str
        ``""`` or one line of caveats, separated by ``"; "``.
    """

    outcome: str
    n: int
    events: int
    coefficients: tuple[Coefficient, ...]
    log_likelihood: float
    method: str
    converged: bool
    note: str

    def table(self) -> list[dict]:
        """The coefficients as JSON-ready dicts.

        Returns
        -------
        list of dict
            One dict per coefficient with keys ``name``, ``estimate``, ``std_error``,
            ``odds_ratio``, ``or_low``, ``or_high`` and ``p_value``; numbers rounded to 4
            significant figures (small p-values keep their magnitude), and infinite or NaN values
            given as None, which ``json.dumps(..., allow_nan=False)`` accepts.
        """
        return [
            {
                "name": coefficient.name,
                "estimate": _significant(coefficient.estimate),
                "std_error": _significant(coefficient.std_error),
                "odds_ratio": _significant(coefficient.odds_ratio),
                "or_low": _significant(coefficient.or_low),
                "or_high": _significant(coefficient.or_high),
                "p_value": _significant(coefficient.p_value),
            }
            for coefficient in self.coefficients
        ]


def _significant(value: float, digits: int = 4) -> float | None:
    """``value`` to ``digits`` significant figures, or None when it is infinite or NaN."""
    if not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


# ----------------------------------------------------------------------------------------------
# From rows to a design matrix
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Design:
    """The model matrix (intercept first), the 0/1 outcome and the notes made building them."""

    names: tuple[str, ...]
    matrix: np.ndarray
    outcome: np.ndarray
    notes: tuple[str, ...]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, numbers.Real) and math.isnan(value))


def _outcome_value(value: Any, index: int, outcome: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    raise SpineSimError(
        f"logistic model of {outcome}: row {index} has {outcome}={value!r}, not True/False"
    )


def _numeric_value(value: Any, index: int, outcome: str, column: str) -> float:
    if isinstance(value, numbers.Real) and math.isfinite(value):
        return float(value)
    raise SpineSimError(
        f"logistic model of {outcome}: row {index} has {column}={value!r}, not a finite number"
    )


def _check_arguments(
    outcome: str, numeric: Mapping[str, float], categorical: Mapping[str, str], confidence: float
) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    for column, unit in numeric.items():
        if not isinstance(unit, numbers.Real) or not (math.isfinite(unit) and unit > 0):
            raise ValueError(f"the unit of {column!r} must be a positive number, got {unit!r}")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ValueError(f"{', '.join(map(repr, both))} given as both numeric and categorical")
    if outcome in numeric or outcome in categorical:
        raise ValueError(f"the outcome {outcome!r} cannot also be a factor")


def _complete_rows(
    rows: Sequence[Mapping[str, Any]],
    outcome: str,
    numeric: Mapping[str, float],
    categorical: Mapping[str, str],
) -> tuple[list[bool], dict[str, list[float]], dict[str, list[str]]]:
    """Outcomes and factor values of the rows with nothing missing, in row order."""
    outcomes: list[bool] = []
    numbers_by_column: dict[str, list[float]] = {column: [] for column in numeric}
    levels_by_column: dict[str, list[str]] = {column: [] for column in categorical}
    for index, row in enumerate(rows):
        raw = row.get(outcome)
        if _is_missing(raw) or any(_is_missing(row.get(c)) for c in (*numeric, *categorical)):
            continue
        outcomes.append(_outcome_value(raw, index, outcome))
        for column in numeric:
            numbers_by_column[column].append(_numeric_value(row[column], index, outcome, column))
        for column in categorical:
            levels_by_column[column].append(str(row[column]))
    return outcomes, numbers_by_column, levels_by_column


def _no_rows_message(outcome: str, columns: Sequence[str], given: int) -> str:
    names = [outcome, *columns]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    every = "" if len(names) == 1 else " all"
    return f"logistic model of {outcome}: no rows with {listed}{every} recorded ({given} given)"


def _design(
    rows: Sequence[Mapping[str, Any]],
    outcome: str,
    numeric: Mapping[str, float],
    categorical: Mapping[str, str],
) -> _Design:
    """Model matrix with centred, scaled numeric columns and reference-coded levels."""
    outcomes, numbers_by_column, levels_by_column = _complete_rows(
        rows, outcome, numeric, categorical
    )
    n = len(outcomes)
    if n == 0:
        raise SpineSimError(_no_rows_message(outcome, [*numeric, *categorical], len(rows)))
    notes: list[str] = []
    if n < len(rows):
        notes.append(f"{len(rows) - n} of {len(rows)} rows left out for missing values")

    names = [_INTERCEPT]
    columns = [np.ones(n)]
    for column, unit in numeric.items():
        values = np.asarray(numbers_by_column[column], dtype=float)
        if np.all(values == values[0]):
            notes.append(f"{column} dropped: {values[0]:g} in every row")
            continue
        names.append(f"{column} (per {unit:g})")
        columns.append((values - values.mean()) / float(unit))
    for column, reference in categorical.items():
        values = levels_by_column[column]
        counts = Counter(values)
        levels = sorted(counts)
        if len(levels) == 1:
            notes.append(f"{column} dropped: {levels[0]!r} in every row")
            continue
        reference = str(reference)
        if reference not in counts:
            replacement = max(levels, key=lambda level: counts[level])  # first of equals: sorted
            notes.append(
                f"{column}: reference level {reference!r} has no rows, {replacement!r} used"
            )
            reference = replacement
        as_array = np.asarray(values, dtype=object)
        for level in levels:
            if level != reference:
                names.append(f"{column}={level}")
                columns.append((as_array == level).astype(float))

    kept_names, kept_columns = _drop_aliased(names, columns, notes)
    return _Design(
        names=tuple(kept_names),
        matrix=np.column_stack(kept_columns),
        outcome=np.asarray(outcomes, dtype=float),
        notes=tuple(notes),
    )


def _drop_aliased(
    names: list[str], columns: list[np.ndarray], notes: list[str]
) -> tuple[list[str], list[np.ndarray]]:
    """Columns in order, without any that is a linear combination of the ones kept before it."""
    kept_names = [names[0]]
    kept = [columns[0]]
    for name, column in zip(names[1:], columns[1:], strict=True):
        basis = np.column_stack(kept)
        solution = np.linalg.lstsq(basis, column, rcond=None)[0]
        residual = column - basis @ solution
        if np.linalg.norm(residual) <= _ALIASED_TOLERANCE * np.linalg.norm(column):
            notes.append(f"{name} dropped: aliased with the factors before it")
            continue
        kept_names.append(name)
        kept.append(column)
    return kept_names, kept


# ----------------------------------------------------------------------------------------------
# Likelihood, Newton-Raphson and profiles
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    """The objective and its derivatives at one value of the coefficients."""

    beta: np.ndarray
    log_likelihood: float
    objective: float  # the log-likelihood, plus Firth's penalty for a Firth fit
    score: np.ndarray  # gradient of the objective
    information: np.ndarray  # X' W X
    cholesky: np.ndarray | None  # lower factor of the information, None if not positive definite
    probability: np.ndarray
    weight: np.ndarray  # p (1 - p)
    leverage: np.ndarray | None  # x_i' I^-1 x_i (Firth only)
    inverse: np.ndarray | None  # I^-1 (Firth only)


class _Model:
    """The (penalised) log-likelihood of one model matrix and outcome, and its maximisation.

    Parameters
    ----------
    matrix : ndarray, shape (n, p)
        Model matrix, intercept first.
    outcome : ndarray, shape (n,)
        0/1 outcomes.
    firth : bool
        Add Firth's penalty ``1/2 log det I(b)``.
    """

    def __init__(self, matrix: np.ndarray, outcome: np.ndarray, firth: bool):
        self.matrix = matrix
        self.outcome = outcome
        self.firth = firth
        rows, size = matrix.shape
        # Row-wise products x_ia x_ic for the penalty's exact Hessian, when they fit in memory;
        # otherwise Newton-Raphson falls back on the information (Fisher scoring), which is slower
        # to converge only when the penalty is large relative to the information.
        self._products = None
        if firth and rows * size * size <= _PRODUCTS_LIMIT:
            self._products = (matrix[:, :, None] * matrix[:, None, :]).reshape(rows, size * size)

    def state(self, beta: np.ndarray) -> _State:
        """Objective and score at ``beta``."""
        matrix, outcome = self.matrix, self.outcome
        eta = matrix @ beta
        probability = _special.expit(eta)
        weight = probability * _special.expit(-eta)  # p (1 - p) without cancellation near 1
        log_likelihood = float(np.sum(outcome * eta - np.logaddexp(0.0, eta)))
        information = (matrix * weight[:, None]).T @ matrix
        try:
            cholesky = _linalg.cholesky(information, lower=True)
        except _linalg.LinAlgError:
            cholesky = None
        residual = outcome - probability
        if not self.firth:
            return _State(
                beta, log_likelihood, log_likelihood, matrix.T @ residual, information, cholesky,
                probability, weight, None, None,
            )
        if cholesky is None:
            return _State(
                beta, log_likelihood, -math.inf, np.full(beta.shape, _NAN), information, None,
                probability, weight, None, None,
            )
        objective = log_likelihood + float(np.sum(np.log(np.diag(cholesky))))  # + 1/2 log det I
        inverse = _linalg.cho_solve((cholesky, True), np.eye(beta.size))
        leverage = np.sum((matrix @ inverse) * matrix, axis=1)
        score = matrix.T @ (residual + weight * leverage * (0.5 - probability))
        return _State(
            beta, log_likelihood, objective, score, information, cholesky,
            probability, weight, leverage, inverse,
        )

    def curvature(self, state: _State) -> np.ndarray:
        """Minus the Hessian of the objective at ``state``: the information for maximum likelihood,
        the information minus the penalty's Hessian for Firth's (when it fits in memory)."""
        if not self.firth or self._products is None or state.inverse is None:
            return state.information
        first = state.weight * (1.0 - 2.0 * state.probability)  # dw/deta
        second = state.weight * (1.0 - 6.0 * state.weight)  # d2w/deta2
        return state.information - self._penalty_hessian(
            first, second, state.leverage, state.inverse
        )

    def _penalty_hessian(
        self, first: np.ndarray, second: np.ndarray, leverage: np.ndarray, inverse: np.ndarray
    ) -> np.ndarray:
        """Hessian of Firth's penalty ``1/2 log det I(b)``, ``I(b) = X' diag(w) X``.

        With ``M = I^-1``, ``w' = dw/deta = w (1 - 2p)`` and ``w'' = w (1 - 6w)``::

            d2/db_k db_l log det I = sum_i (x_i'M x_i) w''_i x_ik x_il
                                     - sum_ij (x_i'M x_j)^2 w'_i x_ik w'_j x_jl

        The double sum is ``C (M kron M) C'`` with ``C[k, (a, c)] = sum_i w'_i x_ik x_ia x_ic``,
        which never forms the n x n matrix ``X M X'``.
        """
        matrix = self.matrix
        direct = (matrix * (leverage * second)[:, None]).T @ matrix
        moments = (matrix * first[:, None]).T @ self._products
        cross = moments @ np.kron(inverse, inverse) @ moments.T
        return 0.5 * (direct - cross)

    def maximise(self, start: np.ndarray, free: np.ndarray) -> tuple[_State, bool]:
        """Newton-Raphson on the coefficients ``free``, the others held at their ``start`` values.

        Returns the last state and whether it converged.
        """
        state = self.state(start.astype(float))
        if not math.isfinite(state.objective):
            return state, False
        if free.size == 0:
            return state, True
        for _ in range(_MAX_ITERATIONS):
            step = _newton_step(self.curvature(state), state, free)
            if step is None:
                return state, False
            largest = float(np.max(np.abs(step)))
            if largest < _STEP_TOLERANCE:
                return state, True
            if largest > _MAX_STEP:
                step *= _MAX_STEP / largest
            for _ in range(_MAX_HALVINGS):
                beta = state.beta.copy()
                beta[free] += step
                trial = self.state(beta)
                if trial.objective > state.objective:
                    break
                step /= 2.0
            else:
                return state, largest < _STALLED_STEP_TOLERANCE
            state = trial
        return state, False


def _newton_step(curvature: np.ndarray, state: _State, free: np.ndarray) -> np.ndarray | None:
    """Newton step on the coefficients ``free``: the exact Hessian where it is negative definite
    (near the maximum, where it gives quadratic convergence), otherwise the information (Fisher
    scoring, always an ascent direction). None when neither can be solved."""
    block = np.ix_(free, free)
    for negative_hessian in (curvature[block], state.information[block]):
        try:
            factor = _linalg.cho_factor(negative_hessian, lower=True)
            step = _linalg.cho_solve(factor, state.score[free])
        except (_linalg.LinAlgError, ValueError):
            continue
        if np.all(np.isfinite(step)):
            return step
    return None


def _inverse(matrix: np.ndarray) -> np.ndarray | None:
    """Inverse of a symmetric positive definite matrix, None if it is not one."""
    try:
        factor = _linalg.cho_factor(matrix, lower=True)
    except (_linalg.LinAlgError, ValueError):
        return None
    return _linalg.cho_solve(factor, np.eye(matrix.shape[0]))


def _std_errors(state: _State) -> np.ndarray:
    """Wald standard errors: square roots of the diagonal of the inverse information."""
    if state.cholesky is None:
        return np.full(state.beta.shape, _NAN)
    inverse = _linalg.cho_solve((state.cholesky, True), np.eye(state.beta.size))
    return np.sqrt(np.diag(inverse))


class _Profile:
    """Profile (penalised) deviance of one coefficient: ``2 (l(b_hat) - max l(b | b_j = c))``."""

    def __init__(self, model: _Model, fitted: _State, index: int):
        self._model = model
        self._fitted = fitted
        self._index = index
        self._free = np.delete(np.arange(fitted.beta.size), index)
        # How the other coefficients move with this one near the maximum (the regression of the
        # others on it under the quadratic approximation): a start for each profile fit that is
        # usually within a Newton step or two of its maximum.
        covariance = _inverse(model.curvature(fitted))
        if covariance is None:
            covariance = _inverse(fitted.information)
        if covariance is None or not covariance[index, index] > 0:
            self._slope = np.zeros(fitted.beta.size)
        else:
            self._slope = covariance[:, index] / covariance[index, index]

    def deviance(self, value: float) -> float:
        """``2 (l(b_hat) - max l(b | b_j = value))``, capped at a large finite number."""
        start = self._fitted.beta + (value - self._fitted.beta[self._index]) * self._slope
        start[self._index] = value
        state, _ = self._model.maximise(start, self._free)
        if not math.isfinite(state.objective):  # start the others at their estimates instead
            start = self._fitted.beta.copy()
            start[self._index] = value
            state, _ = self._model.maximise(start, self._free)
        if not math.isfinite(state.objective):
            return _DEVIANCE_CAP
        return min(max(0.0, 2.0 * (self._fitted.objective - state.objective)), _DEVIANCE_CAP)

    def limit(self, direction: float, critical: float, std_error: float) -> float:
        """The profile limit below (``direction=-1``) or above (``+1``) the estimate.

        The root of ``sqrt(deviance) - sqrt(critical)``: the signed root of the deviance is close
        to linear in the coefficient, so Brent's method needs few profile fits.
        """
        estimate = float(self._fitted.beta[self._index])
        root_critical = math.sqrt(critical)

        def excess(value: float) -> float:
            return math.sqrt(self.deviance(value)) - root_critical

        scale = std_error if math.isfinite(std_error) and std_error > 0 else 1.0
        step = scale * root_critical  # the Wald limit, usually close
        inner = estimate
        while True:
            outer = estimate + direction * step
            if abs(outer) > _LARGEST_LOG_ODDS:
                return direction * math.inf
            if excess(outer) > 0.0:
                low, high = sorted((inner, outer))
                return float(_optimize.brentq(excess, low, high, xtol=1e-9, rtol=1e-12))
            inner = outer
            step *= 2.0


# ----------------------------------------------------------------------------------------------
# Separation and the choice of method
# ----------------------------------------------------------------------------------------------


def _separated(matrix: np.ndarray, outcome: np.ndarray) -> bool:
    """Whether the rows are (quasi-)completely separated, by Konis's linear program.

    Maximise ``sum_i s_i x_i'b`` subject to ``s_i x_i'b >= 0`` and ``-1 <= b_j <= 1``: the optimum
    is 0 unless some ``b`` separates the events from the non-events.
    """
    signs = 2.0 * outcome - 1.0
    scaled = matrix / np.max(np.abs(matrix), axis=0)  # separation does not depend on the scale
    signed = scaled * signs[:, None]
    result = _optimize.linprog(
        c=-signed.sum(axis=0),
        A_ub=-signed,
        b_ub=np.zeros(signed.shape[0]),
        bounds=[(-1.0, 1.0)] * signed.shape[1],
        method="highs",
    )
    return bool(result.status == 0 and -result.fun > _SEPARATION_TOLERANCE)


def _coefficients(
    names: Sequence[str],
    state: _State,
    profiles: Sequence[_Profile] | None,
    critical: float,
) -> tuple[Coefficient, ...]:
    std_errors = _std_errors(state)
    coefficients = []
    for index, name in enumerate(names):
        estimate = float(state.beta[index])
        std_error = float(std_errors[index])
        if profiles is None:
            low = high = p_value = _NAN
        else:
            profile = profiles[index]
            low = math.exp(profile.limit(-1.0, critical, std_error))
            high = math.exp(profile.limit(+1.0, critical, std_error))
            p_value = float(_sps.chi2.sf(profile.deviance(0.0), 1))
        coefficients.append(
            Coefficient(name, estimate, std_error, math.exp(estimate), low, high, p_value)
        )
    return tuple(coefficients)


def _one_outcome_fit(
    outcome_name: str, design: _Design, firth: bool, critical: float, notes: list[str]
) -> LogisticFit:
    """Intercept-only fit when every outcome is True or every one is False."""
    n = design.outcome.size
    events = int(design.outcome.sum())
    happened = events == n
    notes.append(
        f"{outcome_name} is {happened} in all {n} rows: factors cannot be estimated, intercept only"
    )
    intercept_only = design.matrix[:, :1]
    if firth:
        model = _Model(intercept_only, design.outcome, firth=True)
        state, converged = model.maximise(np.zeros(1), np.arange(1))
        profile = _Profile(model, state, 0)
        return LogisticFit(
            outcome_name, n, events, _coefficients([_INTERCEPT], state, [profile], critical),
            state.log_likelihood, FIRTH, converged, "; ".join(notes),
        )
    # Maximum likelihood: the log-odds are +-inf and the log-likelihood 0. The profile limit is
    # where n log(1 - p) (or n log p) falls to -critical/2, and b = 0 gives a deviance of 2n log 2.
    bound_probability = math.exp(-critical / (2.0 * n))  # of the observed outcome
    bound_odds = bound_probability / (1.0 - bound_probability)
    p_value = float(_sps.chi2.sf(2.0 * n * math.log(2.0), 1))
    if happened:
        intercept = Coefficient(_INTERCEPT, math.inf, _NAN, math.inf, bound_odds, math.inf, p_value)
    else:
        intercept = Coefficient(_INTERCEPT, -math.inf, _NAN, 0.0, 0.0, 1.0 / bound_odds, p_value)
    notes.append("maximum-likelihood intercept is infinite")
    return LogisticFit(
        outcome_name, n, events, (intercept,), 0.0, MAXIMUM_LIKELIHOOD, False, "; ".join(notes)
    )


# ----------------------------------------------------------------------------------------------
# The fit
# ----------------------------------------------------------------------------------------------


def fit_logistic(
    rows: Sequence[Mapping[str, Any]],
    outcome: str,
    numeric: Mapping[str, float] = _NO_COLUMNS,
    categorical: Mapping[str, str] = _NO_COLUMNS,
    *,
    confidence: float = 0.95,
    firth: bool | None = None,
) -> LogisticFit:
    """Fit a logistic regression of ``outcome`` on patient factors.

    Parameters
    ----------
    rows : sequence of mapping
        One mapping per simulated attempt, for example
        ``{"failure": True, "bmi_kg_m2": 31.2, "transitional": "none"}``.
    outcome : str
        Key of the binary outcome (True/False or 1/0). The model is of the probability of True.
    numeric : mapping of str to float, optional
        Numeric factor columns and the unit each coefficient is reported per, for example
        ``{"bmi_kg_m2": 5.0, "age_years": 10.0}``. Each column is centred on its mean and divided
        by its unit; its coefficient is named ``"bmi_kg_m2 (per 5)"``.
    categorical : mapping of str to str, optional
        Categorical factor columns and their reference levels, for example
        ``{"transitional": "none", "hiatus": "normal"}``. Every other observed level gets an
        indicator named ``"transitional=sacralisation"``. Values are compared as text.
    confidence : float, optional
        Two-sided confidence level of the odds-ratio intervals, in (0, 1).
    firth : bool or None, optional
        True for Firth's penalised likelihood, False for maximum likelihood, None (default) to use
        Firth's only when the data are separated, maximum likelihood does not converge, or there
        are fewer than 10 events or non-events per factor coefficient.

    Returns
    -------
    LogisticFit
        Estimates, profile-likelihood odds-ratio intervals and likelihood-ratio p-values, with
        the method used and a note of anything left out or doubtful. See the module docstring.

    Raises
    ------
    SpineSimError
        If no row has the outcome and every factor recorded ("logistic model of <outcome>: no rows
        with ..."), or a row has an outcome that is not True/False or a numeric factor that is not
        a number.
    ValueError
        If ``confidence`` is not in (0, 1), a unit is not positive, a column is both numeric and
        categorical, or the outcome is also a factor.

    Examples
    --------
    >>> rows = [{"failure": i % 3 == 0, "bmi_kg_m2": 20 + i % 17, "hiatus": "normal"}
    ...         for i in range(60)]
    >>> fit = fit_logistic(rows, "failure", {"bmi_kg_m2": 5.0}, {"hiatus": "normal"})
    >>> [c.name for c in fit.coefficients]
    ['intercept', 'bmi_kg_m2 (per 5)']
    """
    _check_arguments(outcome, numeric, categorical, confidence)
    critical = float(_sps.chi2.ppf(confidence, 1))
    design = _design(rows, outcome, numeric, categorical)
    notes = list(design.notes)
    n = design.outcome.size
    events = int(design.outcome.sum())
    if events in (0, n):
        return _one_outcome_fit(outcome, design, firth is not False, critical, notes)

    matrix, y = design.matrix, design.outcome
    all_coefficients = np.arange(matrix.shape[1])
    start = np.zeros(matrix.shape[1])
    start[0] = math.log(events / (n - events))
    separated = _separated(matrix, y)
    if separated:
        notes.append("(quasi-)complete separation: maximum-likelihood estimates do not exist")
    factor_coefficients = matrix.shape[1] - 1
    rarer = min(events, n - events)
    few_events = rarer < EVENTS_PER_COEFFICIENT * factor_coefficients
    use_firth = (separated or few_events) if firth is None else firth
    if few_events:
        kind = "events" if events <= n - events else "non-events"
        notes.append(
            f"fewer than {EVENTS_PER_COEFFICIENT} {kind} per factor coefficient "
            f"({rarer} {kind}, {factor_coefficients} coefficients)"
            + ("" if use_firth else ": estimates unstable")
        )
    if not use_firth:
        model = _Model(matrix, y, firth=False)
        state, converged = model.maximise(start, all_coefficients)
        converged = converged and not separated
        if not converged and firth is None:
            notes.append("maximum likelihood did not converge")
            use_firth = True
        elif not converged:
            notes.append(
                "maximum likelihood did not converge: last iterate given, without intervals"
                + (" (refit with firth=True)" if separated else "")
            )
    if use_firth:
        model = _Model(matrix, y, firth=True)
        state, converged = model.maximise(start, all_coefficients)
        if firth is None:
            notes.append("Firth penalised likelihood used")
        if not converged:
            notes.append("penalised likelihood did not converge: last iterate, without intervals")

    profiles = None
    if converged:
        profiles = [_Profile(model, state, index) for index in all_coefficients]
    return LogisticFit(
        outcome=outcome,
        n=n,
        events=events,
        coefficients=_coefficients(design.names, state, profiles, critical),
        log_likelihood=state.log_likelihood,
        method=FIRTH if use_firth else MAXIMUM_LIKELIHOOD,
        converged=converged,
        note="; ".join(notes),
    )
