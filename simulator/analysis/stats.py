"""Statistics for the report comparing landmark-guided and image-guided (fluoroscopy) placement.

Headless: numpy and scipy only, no Qt and no plotting, so the same numbers come out of the app,
the command line and a researcher's notebook. Every function takes plain numbers, sequences or
dicts, not the simulator's objects.

Conventions
-----------
- A *success* is an attempt the instructor counts as a success (for example a passed scorecard); a
  proportion is successes / attempts.
- ``a`` and ``b`` are the two arms compared (for example a = fluoroscopy, b = landmark), and every
  difference is ``p_a - p_b``.
- Intervals are two-sided at ``confidence`` (0.95 by default).
- No attempts gives NaN, not an exception: a report with a procedure nobody has tried yet still
  renders, and NaN cannot be mistaken for a measured 0.
- The LC-CUSUM takes *failure* indicators (1 = failure), as Biau et al. do; everything else takes
  success indicators.

References
----------
.. [Wilson1927] Wilson EB. Probable inference, the law of succession, and statistical inference.
   J Am Stat Assoc 1927;22:209-212.
.. [Newcombe1998a] Newcombe RG. Interval estimation for the difference between independent
   proportions: comparison of eleven methods. Stat Med 1998;17:873-890.
.. [Newcombe1998b] Newcombe RG. Improved confidence intervals for the difference between binomial
   proportions based on paired data. Stat Med 1998;17:2635-2650.
.. [Fagerland2017] Fagerland MW, Lydersen S, Laake P. Statistical Analysis of Contingency Tables.
   CRC Press 2017, chapter 8 (the paired square-and-add interval, same correlation estimate).
.. [Biau2008] Biau DJ, Williams SM, Schlup MM, Nizard RS, Porcher R. Quantitative and individualized
   assessment of the learning curve using LC-CUSUM. Br J Surg 2008;95:925-929. doi:10.1002/bjs.6056
.. [Biau2010] Biau DJ, Porcher R. A method for monitoring a process from an out of control to an in
   control state: application to the learning curve. Stat Med 2010. doi:10.1002/sim.3947
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as _sps

__all__ = [
    "GroupRate",
    "LcCusumResult",
    "LcCusumThreshold",
    "PairedDifference",
    "RiskDifference",
    "Spread",
    "WilsonInterval",
    "lc_cusum",
    "lc_cusum_signal_probability",
    "lc_cusum_threshold",
    "lc_cusum_weights",
    "median_spread",
    "paired_difference",
    "rates_table",
    "risk_difference",
    "wilson_interval",
]

_NAN = float("nan")

# Simulated attempts held in memory at once by the LC-CUSUM simulations (about 16 MB of float64):
# long sequences get fewer trainees per batch, and the draws do not depend on the batch size.
_SIMULATION_BATCH_ATTEMPTS = 2_000_000


# ----------------------------------------------------------------------------------------------
# Checks shared by the public functions
# ----------------------------------------------------------------------------------------------


def _z_score(confidence: float) -> float:
    """Two-sided standard normal quantile for ``confidence``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    return float(_sps.norm.ppf(0.5 + confidence / 2.0))


def _count(value: Any, name: str) -> int:
    """A non-negative whole count; floats such as 2.5 are refused, not truncated."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return int(value)


def _counts(successes: Any, n: Any, arm: str = "") -> tuple[int, int]:
    successes = _count(successes, f"successes{arm}")
    n = _count(n, f"n{arm}")
    if successes > n:
        raise ValueError(f"successes{arm} ({successes}) exceeds n{arm} ({n})")
    return successes, n


def _outcome(value: Any, where: str) -> bool:
    """A binary outcome: True/False or 1/0. Anything else (None, 0.5, "yes") is an error, because
    guessing would silently move attempts between the success and failure columns."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{where}: outcome must be True/False or 1/0, got {value!r}")


# ----------------------------------------------------------------------------------------------
# One proportion
# ----------------------------------------------------------------------------------------------


class WilsonInterval(NamedTuple):
    """A proportion and its Wilson score interval (all three NaN when there were no attempts)."""

    proportion: float
    low: float
    high: float


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> WilsonInterval:
    """Proportion of successes with the Wilson score interval [Wilson1927]_.

    Parameters
    ----------
    successes : int
        Number of successful attempts, ``0 <= successes <= n``.
    n : int
        Number of attempts.
    confidence : float, optional
        Two-sided confidence level, in (0, 1).

    Returns
    -------
    WilsonInterval
        ``(proportion, low, high)``; NaN for all three when ``n == 0``.

    Raises
    ------
    TypeError
        If a count is not a whole number.
    ValueError
        If a count is negative, ``successes > n``, or ``confidence`` is outside (0, 1).

    Notes
    -----
    The interval is the set of true proportions the score test does not reject; unlike the Wald
    interval it stays inside [0, 1] and does not collapse to a point at 0/n or n/n, which matter
    here because small groups of trainees often have all or none of their attempts succeed.
    """
    successes, n = _counts(successes, n)
    z = _z_score(confidence)
    if n == 0:
        return WilsonInterval(_NAN, _NAN, _NAN)
    p = successes / n
    z2_over_n = z * z / n
    centre = (p + z2_over_n / 2.0) / (1.0 + z2_over_n)
    half_width = z * math.sqrt(p * (1.0 - p) / n + z2_over_n / (4.0 * n)) / (1.0 + z2_over_n)
    # at 0/n and n/n the exact limit is 0 or 1; rounding would leave -1e-17 or 1 + 1e-16
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == n else min(1.0, centre + half_width)
    return WilsonInterval(p, low, high)


# ----------------------------------------------------------------------------------------------
# Two independent groups
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskDifference:
    """Difference ``proportion_a - proportion_b`` between two independent groups.

    ``low`` and ``high`` bound the difference (Newcombe's hybrid score interval); ``fisher_p_value``
    is the two-sided Fisher exact test of the 2x2 table. NaN when either group has no attempts.
    """

    successes_a: int
    n_a: int
    successes_b: int
    n_b: int
    proportion_a: float
    proportion_b: float
    difference: float
    low: float
    high: float
    fisher_p_value: float
    confidence: float


def risk_difference(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = 0.95
) -> RiskDifference:
    """Risk difference between two independent groups, Newcombe's interval and Fisher's test.

    Parameters
    ----------
    successes_a, n_a : int
        Successes and attempts in group a (for example fluoroscopy-guided attempts).
    successes_b, n_b : int
        Successes and attempts in group b (for example landmark-guided attempts).
    confidence : float, optional
        Two-sided confidence level of the interval, in (0, 1).

    Returns
    -------
    RiskDifference
        The difference ``p_a - p_b`` with the hybrid score interval of [Newcombe1998a]_ (method
        10) and the two-sided Fisher exact p-value (``scipy.stats.fisher_exact``). Everything but
        the counts is NaN when ``n_a == 0`` or ``n_b == 0``.

    Notes
    -----
    With Wilson limits ``(l_a, u_a)`` and ``(l_b, u_b)`` of the two proportions, method 10 is::

        low  = d - sqrt((p_a - l_a)**2 + (u_b - p_b)**2)
        high = d + sqrt((u_a - p_a)**2 + (p_b - l_b)**2)

    It keeps the Wilson interval's good behaviour at 0/n and n/n, where the Wald interval of a
    difference fails, and it stays inside [-1, 1] by construction.

    The attempts of one trainee are not independent; when the same trainees did both modes, use
    :func:`paired_difference` instead.
    """
    successes_a, n_a = _counts(successes_a, n_a, "_a")
    successes_b, n_b = _counts(successes_b, n_b, "_b")
    p_a, low_a, high_a = wilson_interval(successes_a, n_a, confidence)
    p_b, low_b, high_b = wilson_interval(successes_b, n_b, confidence)
    if n_a == 0 or n_b == 0:
        return RiskDifference(
            successes_a, n_a, successes_b, n_b, p_a, p_b, _NAN, _NAN, _NAN, _NAN, confidence
        )
    difference = p_a - p_b
    low = difference - math.hypot(p_a - low_a, high_b - p_b)
    high = difference + math.hypot(high_a - p_a, p_b - low_b)
    table = [[successes_a, n_a - successes_a], [successes_b, n_b - successes_b]]
    p_value = float(_sps.fisher_exact(table, alternative="two-sided").pvalue)
    return RiskDifference(
        successes_a, n_a, successes_b, n_b, p_a, p_b, difference, low, high, p_value, confidence
    )


# ----------------------------------------------------------------------------------------------
# Paired design: the same trainees did the same case in both modes
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedDifference:
    """Paired difference ``proportion_a - proportion_b`` (same trainee and case in both modes).

    The four cells count pairs: ``both_success`` (e), ``only_a_success`` (f: success in a, failure
    in b), ``only_b_success`` (g) and ``both_failure`` (h), in Newcombe's notation. ``low`` and
    ``high`` bound the difference (Newcombe's paired method 10); ``mcnemar_p_value`` is the exact
    McNemar test. NaN when there are no pairs.
    """

    n_pairs: int
    both_success: int
    only_a_success: int
    only_b_success: int
    both_failure: int
    proportion_a: float
    proportion_b: float
    difference: float
    low: float
    high: float
    mcnemar_p_value: float
    confidence: float


def _paired_cells(pairs: Iterable[tuple[Any, Any]]) -> tuple[int, int, int, int]:
    """Cells (e, f, g, h) of the paired 2x2 table."""
    e = f = g = h = 0
    for index, pair in enumerate(pairs):
        try:
            raw_a, raw_b = pair
        except (TypeError, ValueError):
            raise ValueError(
                f"pair {index}: expected (success_a, success_b), got {pair!r}"
            ) from None
        success_a = _outcome(raw_a, f"pair {index}, a")
        success_b = _outcome(raw_b, f"pair {index}, b")
        if success_a and success_b:
            e += 1
        elif success_a:
            f += 1
        elif success_b:
            g += 1
        else:
            h += 1
    return e, f, g, h


def _newcombe_phi(e: int, f: int, g: int, h: int) -> float:
    """Correlation of the paired outcomes as [Newcombe1998b]_ estimates it for method 10.

    A positive ``e*h - f*g`` is reduced by ``n/2`` (and floored at 0): a continuity correction that
    shrinks the estimated correlation, so the interval is not narrowed on weak evidence of it.
    A zero margin leaves the correlation undefined, and Newcombe then takes 0.
    """
    n = e + f + g + h
    margins = (e + f) * (g + h) * (e + g) * (f + h)
    if margins == 0:
        return 0.0
    cross = e * h - f * g
    if cross > n / 2.0:
        cross -= n / 2.0
    elif cross >= 0:
        cross = 0.0
    return cross / math.sqrt(margins)


def _exact_mcnemar(f: int, g: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs against Binomial(f + g, 1/2)."""
    if f + g == 0:
        # no discordant pair: the two modes never disagreed, so there is no evidence against
        # equality (scipy's binomtest refuses n = 0)
        return 1.0
    return float(_sps.binomtest(f, f + g, 0.5, alternative="two-sided").pvalue)


def paired_difference(
    pairs: Iterable[tuple[Any, Any]], confidence: float = 0.95
) -> PairedDifference:
    """Paired risk difference with Newcombe's interval and the exact McNemar test.

    Parameters
    ----------
    pairs : iterable of (bool, bool)
        One ``(success_a, success_b)`` per trainee and case done in both modes (True/False or 1/0).
    confidence : float, optional
        Two-sided confidence level of the interval, in (0, 1).

    Returns
    -------
    PairedDifference
        The cells of the paired table, the two marginal proportions, their difference
        ``(f - g) / n``, the interval of [Newcombe1998b]_ (method 10) and the exact McNemar
        p-value (``scipy.stats.binomtest`` on the discordant pairs). NaN when there are no pairs.

    Raises
    ------
    ValueError
        If a pair is not two binary outcomes.

    Notes
    -----
    With Wilson limits ``(l_1, u_1)``, ``(l_2, u_2)`` of the two marginal proportions ``p_1``,
    ``p_2`` (each over all ``n`` pairs) and the corrected correlation ``phi``
    (:func:`_newcombe_phi`)::

        low  = d - sqrt((p_1 - l_1)**2 - 2*phi*(p_1 - l_1)*(u_2 - p_2) + (u_2 - p_2)**2)
        high = d + sqrt((u_1 - p_1)**2 - 2*phi*(u_1 - p_1)*(p_2 - l_2) + (p_2 - l_2)**2)

    Positive correlation (good trainees succeed in both modes) narrows the interval, which is why
    a paired design needs fewer trainees than two independent groups.
    """
    e, f, g, h = _paired_cells(pairs)
    n = e + f + g + h
    p_1, low_1, high_1 = wilson_interval(e + f, n, confidence)
    p_2, low_2, high_2 = wilson_interval(e + g, n, confidence)
    if n == 0:
        return PairedDifference(0, 0, 0, 0, 0, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, confidence)
    difference = (f - g) / n
    phi = _newcombe_phi(e, f, g, h)
    below = _square_and_add(p_1 - low_1, high_2 - p_2, phi)
    above = _square_and_add(high_1 - p_1, p_2 - low_2, phi)
    return PairedDifference(
        n_pairs=n,
        both_success=e,
        only_a_success=f,
        only_b_success=g,
        both_failure=h,
        proportion_a=p_1,
        proportion_b=p_2,
        difference=difference,
        low=difference - below,
        high=difference + above,
        mcnemar_p_value=_exact_mcnemar(f, g),
        confidence=confidence,
    )


def _square_and_add(x: float, y: float, phi: float) -> float:
    """sqrt(x^2 - 2 phi x y + y^2), floored at 0 against rounding (|phi| <= 1 keeps it >= 0)."""
    return math.sqrt(max(0.0, x * x - 2.0 * phi * x * y + y * y))


# ----------------------------------------------------------------------------------------------
# Continuous measures: time, passes, fluoroscopy time, dose-area product
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """Median, quartiles and range of a measure, in the measure's own unit (NaN when ``n == 0``)."""

    n: int
    median: float
    q25: float
    q75: float
    minimum: float
    maximum: float


def median_spread(values: Iterable[float]) -> Spread:
    """Median, 25th and 75th percentiles, minimum, maximum and count of a measure.

    Parameters
    ----------
    values : iterable of float
        One value per attempt, in the measure's unit (for example seconds to placement, needle
        passes, fluoroscopy seconds, dose-area product in Gy*cm^2).

    Returns
    -------
    Spread
        The summary; ``n == 0`` and NaN elsewhere for an empty input.

    Raises
    ------
    ValueError
        If a value is NaN or infinite: dropping it silently would change ``n``; leave attempts
        without the measure (a landmark attempt has no fluoroscopy time) out before calling.

    Notes
    -----
    Quartiles use linear interpolation between order statistics (numpy's default, Hyndman and Fan
    type 7), the same as R's ``quantile`` default. Medians and quartiles rather than means because
    times and doses are skewed by a few long attempts.
    """
    data = np.asarray(list(values), dtype=float)
    if data.ndim != 1:
        raise ValueError(f"values must be a flat sequence of numbers, got shape {data.shape}")
    if data.size == 0:
        return Spread(0, _NAN, _NAN, _NAN, _NAN, _NAN)
    if not np.all(np.isfinite(data)):
        raise ValueError("values must be finite numbers (NaN or infinity found)")
    q25, median, q75 = np.percentile(data, [25.0, 50.0, 75.0])
    return Spread(
        int(data.size), float(median), float(q25), float(q75), float(data.min()), float(data.max())
    )


# ----------------------------------------------------------------------------------------------
# LC-CUSUM learning curve
# ----------------------------------------------------------------------------------------------


def _check_failure_rates(acceptable: float, unacceptable: float) -> None:
    if not 0.0 < acceptable < unacceptable < 1.0:
        raise ValueError(
            "need 0 < acceptable_failure_rate < unacceptable_failure_rate < 1, got "
            f"{acceptable!r} and {unacceptable!r}"
        )


def lc_cusum_weights(
    acceptable_failure_rate: float, unacceptable_failure_rate: float
) -> tuple[float, float]:
    """Score added by a success and by a failure in the LC-CUSUM [Biau2008]_.

    Parameters
    ----------
    acceptable_failure_rate : float
        Failure rate of a competent trainee (``p0``).
    unacceptable_failure_rate : float
        Failure rate that is not acceptable (``p1 > p0``), the null hypothesis of the test.

    Returns
    -------
    (success_weight, failure_weight) : tuple of float
        ``ln((1 - p0) / (1 - p1)) > 0`` and ``ln(p0 / p1) < 0``: the log-likelihood ratio of one
        attempt, acceptable rate against unacceptable rate.
    """
    _check_failure_rates(acceptable_failure_rate, unacceptable_failure_rate)
    success_weight = math.log((1.0 - acceptable_failure_rate) / (1.0 - unacceptable_failure_rate))
    failure_weight = math.log(acceptable_failure_rate / unacceptable_failure_rate)
    return success_weight, failure_weight


@dataclass(frozen=True)
class LcCusumResult:
    """An LC-CUSUM curve and the attempt at which competence was declared.

    ``scores[t - 1]`` is the score after attempt ``t`` (the score before the first attempt is 0);
    ``competence_attempt`` is the 1-based attempt at which the score first reached ``h``, or None.
    """

    scores: tuple[float, ...]
    competence_attempt: int | None
    h: float
    acceptable_failure_rate: float
    unacceptable_failure_rate: float
    success_weight: float
    failure_weight: float

    @property
    def competent(self) -> bool:
        """True when the curve reached ``h``."""
        return self.competence_attempt is not None


def lc_cusum(
    outcomes: Iterable[Any],
    acceptable_failure_rate: float,
    unacceptable_failure_rate: float,
    h: float,
) -> LcCusumResult:
    """Learning-curve CUSUM (LC-CUSUM) of one trainee's consecutive attempts [Biau2008]_.

    Parameters
    ----------
    outcomes : iterable of bool or {0, 1}
        One *failure indicator* per attempt, in the order they were made (1 or True = failure).
    acceptable_failure_rate : float
        Failure rate of a competent trainee (``p0``), in (0, 1).
    unacceptable_failure_rate : float
        Failure rate that is not acceptable (``p1``), with ``p0 < p1 < 1``.
    h : float
        Decision limit, > 0; see :func:`lc_cusum_threshold` to choose it.

    Returns
    -------
    LcCusumResult
        The scores after each attempt, the attempt at which competence was first declared (or
        None) and the parameters and weights used.

    Notes
    -----
    The LC-CUSUM reverses the usual CUSUM: its null hypothesis is that the trainee performs at the
    unacceptable rate ``p1`` (out of control), and it signals when there is enough evidence that the
    trainee performs at the acceptable rate ``p0`` [Biau2010]_. With ``x_t = 1`` for a failure::

        w_t = x_t * ln(p0 / p1) + (1 - x_t) * ln((1 - p0) / (1 - p1))
        s_0 = 0,  s_t = max(0, s_{t-1} + w_t)

    and competence is declared at the first ``t`` with ``s_t >= h``. The barrier at 0 keeps early
    failures from being banked against later success: evidence of competence has to accumulate in
    a run of recent attempts. The curve is computed over all the attempts given, past the signal,
    so a report can show what followed; watching for a relapse after the signal is the job of a
    standard CUSUM, not of this one.
    """
    if not (math.isfinite(h) and h > 0.0):
        raise ValueError(f"h must be a positive number, got {h!r}")
    success_weight, failure_weight = lc_cusum_weights(
        acceptable_failure_rate, unacceptable_failure_rate
    )
    score = 0.0
    scores: list[float] = []
    competence_attempt: int | None = None
    for attempt, raw in enumerate(outcomes, start=1):
        failed = _outcome(raw, f"attempt {attempt}")
        score = max(0.0, score + (failure_weight if failed else success_weight))
        scores.append(score)
        if competence_attempt is None and score >= h:
            competence_attempt = attempt
    return LcCusumResult(
        tuple(scores),
        competence_attempt,
        float(h),
        float(acceptable_failure_rate),
        float(unacceptable_failure_rate),
        success_weight,
        failure_weight,
    )


def _peak_scores(
    failure_rate: float,
    weights: tuple[float, float],
    max_attempts: int,
    n_simulations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Highest LC-CUSUM score over ``max_attempts`` of each of ``n_simulations`` simulated trainees
    who fail each attempt independently with probability ``failure_rate``.

    A trainee is declared competent within ``max_attempts`` exactly when this peak reaches ``h``, so
    one simulation serves every candidate ``h``.
    """
    success_weight, failure_weight = weights
    peaks = np.empty(n_simulations)
    batch = max(1, _SIMULATION_BATCH_ATTEMPTS // max_attempts)
    for start in range(0, n_simulations, batch):
        rows = min(batch, n_simulations - start)
        failures = rng.random((rows, max_attempts)) < failure_rate
        walk = np.cumsum(np.where(failures, failure_weight, success_weight), axis=1)
        # the score reflected at 0 is the free walk minus its lowest point so far (0 counted), so
        # the whole batch is done with array operations instead of a loop per attempt
        lowest = np.minimum(np.minimum.accumulate(walk, axis=1), 0.0)
        peaks[start : start + rows] = (walk - lowest).max(axis=1)
    return peaks


def _check_simulation(max_attempts: Any, n_simulations: Any) -> tuple[int, int]:
    max_attempts = _count(max_attempts, "max_attempts")
    n_simulations = _count(n_simulations, "n_simulations")
    if max_attempts < 1 or n_simulations < 1:
        raise ValueError("max_attempts and n_simulations must be at least 1")
    return max_attempts, n_simulations


def lc_cusum_signal_probability(
    h: float,
    true_failure_rate: float,
    acceptable_failure_rate: float,
    unacceptable_failure_rate: float,
    max_attempts: int = 50,
    n_simulations: int = 20_000,
    seed: int = 0,
) -> float:
    """Probability that the LC-CUSUM declares competence within ``max_attempts``, by simulation.

    Parameters
    ----------
    h : float
        Decision limit.
    true_failure_rate : float
        Failure rate of the simulated trainee, in [0, 1]. At the unacceptable rate this is the
        probability of wrongly declaring competence (type I error); at the acceptable rate it is
        the probability of recognising a competent trainee in time.
    acceptable_failure_rate, unacceptable_failure_rate : float
        The LC-CUSUM's ``p0`` and ``p1``, see :func:`lc_cusum`.
    max_attempts : int, optional
        Attempts each simulated trainee makes.
    n_simulations : int, optional
        Simulated trainees; the Monte Carlo standard error is about
        ``sqrt(P * (1 - P) / n_simulations)``.
    seed : int, optional
        Seed of the ``numpy.random.Generator``: the same arguments give the same probability.

    Returns
    -------
    float
        Fraction of simulated trainees whose score reached ``h``.
    """
    if not 0.0 <= true_failure_rate <= 1.0:
        raise ValueError(f"true_failure_rate must be in [0, 1], got {true_failure_rate!r}")
    max_attempts, n_simulations = _check_simulation(max_attempts, n_simulations)
    weights = lc_cusum_weights(acceptable_failure_rate, unacceptable_failure_rate)
    peaks = _peak_scores(
        true_failure_rate, weights, max_attempts, n_simulations, np.random.default_rng(seed)
    )
    return float(np.mean(peaks >= h))


@dataclass(frozen=True)
class LcCusumThreshold:
    """A decision limit ``h`` chosen by simulation, with what the simulation estimated for it.

    ``false_competence_probability``: fraction of simulated trainees at the unacceptable rate
    declared competent within ``max_attempts`` (at most ``alpha``). ``detection_probability``:
    the same for trainees at the acceptable rate (the test's power over that many attempts).
    """

    h: float
    acceptable_failure_rate: float
    unacceptable_failure_rate: float
    max_attempts: int
    alpha: float
    false_competence_probability: float
    detection_probability: float
    n_simulations: int
    seed: int
    resolution: float


def _smallest_grid_value_above(value: float, resolution: float) -> float:
    """Smallest multiple of ``resolution`` strictly greater than ``value``."""
    decimals = max(0, -math.floor(math.log10(resolution))) + 6
    grid_value = round((math.floor(value / resolution) + 1) * resolution, decimals)
    # the rounding that turns 2.9000000000000004 into 2.9 must not land on or below value
    while grid_value <= value:
        grid_value = round(grid_value + resolution, decimals)
    return grid_value


def lc_cusum_threshold(
    acceptable_failure_rate: float,
    unacceptable_failure_rate: float,
    max_attempts: int = 50,
    alpha: float = 0.05,
    n_simulations: int = 20_000,
    seed: int = 0,
    resolution: float = 0.01,
) -> LcCusumThreshold:
    """Choose the LC-CUSUM decision limit ``h`` by simulation [Biau2008]_.

    Parameters
    ----------
    acceptable_failure_rate, unacceptable_failure_rate : float
        The LC-CUSUM's ``p0`` and ``p1``, see :func:`lc_cusum`.
    max_attempts : int, optional
        Attempts over which the error is controlled (50 by default).
    alpha : float, optional
        Largest acceptable probability of declaring competent, within ``max_attempts``, a trainee
        who performs at the unacceptable rate (0.05 by default).
    n_simulations : int, optional
        Simulated trainees at each rate.
    seed : int, optional
        Seed of the ``numpy.random.Generator``: the same arguments always give the same ``h``.
    resolution : float, optional
        ``h`` is a multiple of this (0.01 by default), so the report shows a round number.

    Returns
    -------
    LcCusumThreshold
        The smallest ``h`` on the grid whose simulated false-competence probability is at most
        ``alpha``, with that probability and the detection probability at the acceptable rate.

    Notes
    -----
    ``n_simulations`` trainees failing each attempt with probability ``p1`` are simulated over
    ``max_attempts`` attempts; one is wrongly declared competent when the highest score of the run
    reaches ``h``. Allowing at most ``floor(alpha * n_simulations)`` such trainees, ``h`` is the
    first grid value above the corresponding order statistic of the peaks. A smaller ``h`` would
    signal sooner but more often in error. The detection probability is simulated on the same
    generator's next draws, at ``p0``. The scores take discrete values, so the false-competence
    probability at ``h`` is usually below ``alpha``, not equal to it.

    :func:`lc_cusum_signal_probability` with the same ``seed`` and ``n_simulations`` reproduces
    ``false_competence_probability`` and gives the probability for any other ``h``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
    if not (math.isfinite(resolution) and resolution > 0.0):
        raise ValueError(f"resolution must be a positive number, got {resolution!r}")
    max_attempts, n_simulations = _check_simulation(max_attempts, n_simulations)
    weights = lc_cusum_weights(acceptable_failure_rate, unacceptable_failure_rate)
    rng = np.random.default_rng(seed)
    false_peaks = np.sort(
        _peak_scores(unacceptable_failure_rate, weights, max_attempts, n_simulations, rng)
    )
    allowed_false = math.floor(alpha * n_simulations)
    # every peak up to this one must stay below h, leaving at most allowed_false at or above it
    boundary = float(false_peaks[n_simulations - allowed_false - 1])
    h = _smallest_grid_value_above(boundary, resolution)
    true_peaks = _peak_scores(acceptable_failure_rate, weights, max_attempts, n_simulations, rng)
    return LcCusumThreshold(
        h=h,
        acceptable_failure_rate=float(acceptable_failure_rate),
        unacceptable_failure_rate=float(unacceptable_failure_rate),
        max_attempts=max_attempts,
        alpha=float(alpha),
        false_competence_probability=float(np.mean(false_peaks >= h)),
        detection_probability=float(np.mean(true_peaks >= h)),
        n_simulations=n_simulations,
        seed=seed,
        resolution=float(resolution),
    )


# ----------------------------------------------------------------------------------------------
# Success rates per group of attempts
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRate:
    """Success rate of one group of attempts, with its Wilson interval.

    ``group`` holds the values of ``group_keys`` in the same order, for example
    ``("lumbar_interlaminar", "fluoroscopy")`` for ``("procedure", "guidance")``.
    """

    group_keys: tuple[str, ...]
    group: tuple[Any, ...]
    n: int
    successes: int
    proportion: float
    low: float
    high: float

    @property
    def labels(self) -> dict[str, Any]:
        """The group as ``{key: value}``."""
        return dict(zip(self.group_keys, self.group, strict=True))


def rates_table(
    rows: Iterable[Mapping[str, Any]],
    group_keys: Sequence[str] | str,
    outcome_key: str,
    confidence: float = 0.95,
) -> list[GroupRate]:
    """Attempts, successes and Wilson interval of the success rate per group.

    Parameters
    ----------
    rows : iterable of mapping
        One mapping per attempt, for example
        ``{"procedure": "caudal", "guidance": "landmark", "passed": True}``.
    group_keys : sequence of str, or str
        Keys whose values define a group, for example ``("procedure", "guidance")``.
    outcome_key : str
        Key of the success indicator (True/False or 1/0).
    confidence : float, optional
        Two-sided confidence level of the intervals, in (0, 1).

    Returns
    -------
    list of GroupRate
        One entry per group, in the order each group first appears in ``rows`` (group values may be
        of types that do not sort together, and the caller knows the order it wants).

    Raises
    ------
    KeyError
        If a row lacks a group key or the outcome key.
    ValueError
        If an outcome is not binary.
    """
    keys = (group_keys,) if isinstance(group_keys, str) else tuple(group_keys)
    if not keys:
        raise ValueError("group_keys must name at least one key")
    _z_score(confidence)
    tallies: dict[tuple[Any, ...], list[int]] = {}
    for index, row in enumerate(rows):
        try:
            group = tuple(row[key] for key in keys)
            raw = row[outcome_key]
        except KeyError as missing:
            raise KeyError(f"row {index} has no key {missing.args[0]!r}") from None
        success = _outcome(raw, f"row {index}, {outcome_key!r}")
        tally = tallies.setdefault(group, [0, 0])
        tally[0] += 1
        tally[1] += int(success)
    table = []
    for group, (n, successes) in tallies.items():
        proportion, low, high = wilson_interval(successes, n, confidence)
        table.append(GroupRate(keys, group, n, successes, proportion, low, high))
    return table
