"""The report's statistics: Wilson and Newcombe intervals, Fisher and exact McNemar tests, medians
and quartiles, the LC-CUSUM and its simulated decision limit, and rates per group.

Expected values are worked by hand in the comments (z = 1.959964, z^2 = 3.841459 for 95%) and
were checked with a separate computation that finds the Wilson limits by solving the score
equation numerically instead of by the closed form the module uses.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from simulator.analysis import stats
from simulator.analysis.stats import (
    lc_cusum,
    lc_cusum_signal_probability,
    lc_cusum_threshold,
    lc_cusum_weights,
    median_spread,
    paired_difference,
    rates_table,
    risk_difference,
    wilson_interval,
)

# published or hand-worked values are given to 4 decimals
FOUR_DECIMALS = 5e-5


def _pairs(e: int, f: int, g: int, h: int) -> list[tuple[bool, bool]]:
    """Pairs (success_a, success_b) for the paired table cells e (both), f (a only), g (b only),
    h (neither)."""
    return [(True, True)] * e + [(True, False)] * f + [(False, True)] * g + [(False, False)] * h


# ------------------------------------------------------------------------------------------------
# Wilson interval
# ------------------------------------------------------------------------------------------------


def test_wilson_8_of_10_by_hand():
    # centre = (8 + z^2/2) / (10 + z^2) = 9.920729 / 13.841459 = 0.716740
    # half   = z * sqrt(8*2/10 + z^2/4) / (10 + z^2) = 1.959964 * sqrt(2.560365) / 13.841459
    #        = 1.959964 * 1.600114 / 13.841459 = 0.226578
    # limits = 0.716740 -/+ 0.226578 = 0.490162 .. 0.943318
    p, low, high = wilson_interval(8, 10)
    assert p == 0.8
    assert low == pytest.approx(0.4902, abs=FOUR_DECIMALS)
    assert high == pytest.approx(0.9433, abs=FOUR_DECIMALS)


@pytest.mark.parametrize("confidence", [0.80, 0.95, 0.99])
def test_wilson_matches_scipy(confidence):
    for n in (1, 2, 7, 30, 101):
        for k in range(n + 1):
            ci = sps.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
            p, low, high = wilson_interval(k, n, confidence)
            assert p == k / n
            assert low == pytest.approx(ci.low, abs=1e-12)
            assert high == pytest.approx(ci.high, abs=1e-12)


def test_wilson_edges():
    # 0/n: low is exactly 0 and high = z^2 / (n + z^2) = 3.841459 / 13.841459 = 0.277533
    assert wilson_interval(0, 10) == (0.0, 0.0, pytest.approx(0.277533, abs=1e-6))
    # n/n mirrors it: low = n / (n + z^2) = 10 / 13.841459 = 0.722467, high exactly 1
    assert wilson_interval(10, 10) == (1.0, pytest.approx(0.722467, abs=1e-6), 1.0)
    # no attempts: NaN, not an exception
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_wilson_is_wider_at_higher_confidence():
    narrow = wilson_interval(8, 10, 0.90)
    wide = wilson_interval(8, 10, 0.99)
    assert wide.low < narrow.low < 0.8 < narrow.high < wide.high


@pytest.mark.parametrize(
    "args, error",
    [
        ((11, 10), ValueError),
        ((-1, 10), ValueError),
        ((2.5, 10), TypeError),
        ((True, 10), TypeError),
        ((1, 10, 1.0), ValueError),
        ((1, 10, 0.0), ValueError),
    ],
)
def test_wilson_refuses_bad_input(args, error):
    with pytest.raises(error):
        wilson_interval(*args)


# ------------------------------------------------------------------------------------------------
# Independent groups: Newcombe's hybrid score interval and Fisher's exact test
# ------------------------------------------------------------------------------------------------


def test_newcombe_unpaired_56_70_vs_48_80_by_hand():
    # p_a = 56/70 = 0.8, p_b = 48/80 = 0.6, d = 0.2
    # Wilson 56/70: centre 57.920729/73.841459 = 0.784393, half 0.092560 -> 0.691834 .. 0.876953
    # Wilson 48/80: centre 49.920729/83.841459 = 0.595418, half 0.104964 -> 0.490455 .. 0.700382
    # low  = 0.2 - sqrt((0.8 - 0.691834)^2 + (0.700382 - 0.6)^2)
    #      = 0.2 - sqrt(0.011700 + 0.010077) = 0.2 - 0.147568 = 0.052432
    # high = 0.2 + sqrt((0.876953 - 0.8)^2 + (0.6 - 0.490455)^2)
    #      = 0.2 + sqrt(0.005922 + 0.012000) = 0.2 + 0.133873 = 0.333873
    result = risk_difference(56, 70, 48, 80)
    assert result.proportion_a == 0.8 and result.proportion_b == 0.6
    assert result.difference == pytest.approx(0.2, abs=1e-12)
    assert result.low == pytest.approx(0.0524, abs=FOUR_DECIMALS)
    assert result.high == pytest.approx(0.3339, abs=FOUR_DECIMALS)


# The eight examples of Newcombe (1998a), table II, with method 10's limits:
# (successes_a, n_a, successes_b, n_b, low, high). Each row was computed from the two Wilson
# intervals with the numerical score-equation solver, not copied. The 10/10 rows by hand:
#   10/10 - 0/20: 1 - sqrt((1 - 0.722467)^2 + 0.161125^2) = 1 - 0.320909 = 0.679091
#   10/10 - 0/10: 1 - sqrt(2 * 0.277533^2) = 1 - 0.392491 = 0.607509
# (Wilson 10/10 low = 10/(10 + z^2) = 0.722467, 0/20 high = z^2/(20 + z^2) = 0.161125)
NEWCOMBE_1998A_TABLE_II = [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
]


@pytest.mark.parametrize("sa, na, sb, nb, low, high", NEWCOMBE_1998A_TABLE_II)
def test_newcombe_unpaired_worked_examples(sa, na, sb, nb, low, high):
    result = risk_difference(sa, na, sb, nb)
    assert result.difference == pytest.approx(sa / na - sb / nb, abs=1e-12)
    assert result.low == pytest.approx(low, abs=FOUR_DECIMALS)
    assert result.high == pytest.approx(high, abs=FOUR_DECIMALS)


def test_newcombe_unpaired_swapping_groups_mirrors_the_interval():
    forward = risk_difference(5, 56, 0, 29)
    backward = risk_difference(0, 29, 5, 56)
    assert backward.difference == pytest.approx(-forward.difference, abs=1e-12)
    assert backward.low == pytest.approx(-forward.high, abs=1e-12)
    assert backward.high == pytest.approx(-forward.low, abs=1e-12)
    assert backward.fisher_p_value == pytest.approx(forward.fisher_p_value, abs=1e-12)


def test_fisher_p_value_by_hand():
    # 3/3 against 0/3: with margins 3 and 3 of 6, the table with all three successes in a has
    # probability 1 / C(6, 3) = 1/20, and so does its mirror; two-sided p = 2/20 = 0.1
    assert risk_difference(3, 3, 0, 3).fisher_p_value == pytest.approx(0.1, abs=1e-12)


def test_fisher_p_value_from_the_hypergeometric_distribution():
    # the two-sided p-value sums the probabilities of every table with the same margins that is
    # no more likely than the one observed: successes in a ~ Hypergeom(150 attempts, 104
    # successes, 70 draws), observed 56
    observed = sps.hypergeom.pmf(56, 150, 104, 70)
    support = np.arange(max(0, 70 - 46), 71)
    pmf = sps.hypergeom.pmf(support, 150, 104, 70)
    expected = pmf[pmf <= observed * (1 + 1e-7)].sum()
    assert risk_difference(56, 70, 48, 80).fisher_p_value == pytest.approx(expected, rel=1e-9)


def test_risk_difference_with_an_empty_group_is_nan():
    result = risk_difference(3, 10, 0, 0)
    assert result.proportion_a == 0.3
    assert math.isnan(result.proportion_b)
    assert all(math.isnan(v) for v in (result.difference, result.low, result.high))
    assert math.isnan(result.fisher_p_value)


def test_risk_difference_refuses_impossible_counts():
    with pytest.raises(ValueError, match="successes_b"):
        risk_difference(3, 10, 5, 4)


# ------------------------------------------------------------------------------------------------
# Paired design: Newcombe's paired interval and the exact McNemar test
# ------------------------------------------------------------------------------------------------


def test_newcombe_paired_negative_correlation_by_hand():
    # e=36, f=12, g=2, h=0, n=50: p_1 = 48/50 = 0.96, p_2 = 38/50 = 0.76, d = (12 - 2)/50 = 0.2
    # Wilson 48/50: 0.865399 .. 0.988961    Wilson 38/50: 0.625873 .. 0.857026
    # e*h - f*g = -24 < 0, no correction: phi = -24 / sqrt(48*2*38*12) = -24/209.227 = -0.114708
    # below = sqrt(0.094601^2 + 2*0.114708*0.094601*0.097026 + 0.097026^2) = sqrt(0.020469)
    #       = 0.143070 -> low = 0.056930
    # above = sqrt(0.028961^2 + 2*0.114708*0.028961*0.134127 + 0.134127^2) = sqrt(0.019720)
    #       = 0.140428 -> high = 0.340428
    result = paired_difference(_pairs(36, 12, 2, 0))
    assert (result.both_success, result.only_a_success, result.only_b_success) == (36, 12, 2)
    assert result.both_failure == 0 and result.n_pairs == 50
    assert result.proportion_a == 0.96 and result.proportion_b == 0.76
    assert result.difference == pytest.approx(0.2, abs=1e-12)
    assert result.low == pytest.approx(0.0569, abs=FOUR_DECIMALS)
    assert result.high == pytest.approx(0.3404, abs=FOUR_DECIMALS)


def test_newcombe_paired_small_positive_association_is_taken_as_zero():
    # e=6, f=2, g=1, h=1, n=10: e*h - f*g = 4 <= n/2 = 5, so the corrected phi is 0
    # p_1 = 0.8 (Wilson 0.490162 .. 0.943318), p_2 = 0.7 (Wilson 0.396778 .. 0.892209), d = 0.1
    # low  = 0.1 - sqrt(0.309838^2 + 0.192209^2) = 0.1 - 0.364615 = -0.264615
    # high = 0.1 + sqrt(0.143318^2 + 0.303222^2) = 0.1 + 0.335386 = 0.435386
    result = paired_difference(_pairs(6, 2, 1, 1))
    assert result.low == pytest.approx(-0.2646, abs=FOUR_DECIMALS)
    assert result.high == pytest.approx(0.4354, abs=FOUR_DECIMALS)


def test_newcombe_paired_continuity_corrected_correlation():
    # e=10, f=0, g=0, h=10: raw phi would be 1 (a zero-width interval); corrected
    # phi = (100 - 20/2) / sqrt(10*10*10*10) = 90/100 = 0.9
    # p_1 = p_2 = 0.5, Wilson 10/20 half-width x = 0.200702
    # half-width = sqrt(x^2 - 2*0.9*x^2 + x^2) = x * sqrt(0.2) = 0.089757
    result = paired_difference(_pairs(10, 0, 0, 10))
    assert result.difference == 0.0
    assert result.low == pytest.approx(-0.0898, abs=FOUR_DECIMALS)
    assert result.high == pytest.approx(0.0898, abs=FOUR_DECIMALS)


def test_paired_interval_mirrors_when_the_modes_swap():
    pairs = _pairs(59, 6, 16, 80)
    forward = paired_difference(pairs)
    backward = paired_difference([(b, a) for a, b in pairs])
    assert backward.difference == pytest.approx(-forward.difference, abs=1e-12)
    assert backward.low == pytest.approx(-forward.high, abs=1e-12)
    assert backward.high == pytest.approx(-forward.low, abs=1e-12)
    assert backward.mcnemar_p_value == pytest.approx(forward.mcnemar_p_value, abs=1e-12)


def test_exact_mcnemar_by_hand():
    # 14 discordant pairs, 12 against 2: p = 2 * P(X <= 2), X ~ Binomial(14, 1/2)
    #   = 2 * (C(14,0) + C(14,1) + C(14,2)) / 2^14 = 2 * (1 + 14 + 91) / 16384 = 0.012939453125
    assert paired_difference(_pairs(36, 12, 2, 0)).mcnemar_p_value == pytest.approx(
        212 / 16384, abs=1e-12
    )
    # concordant pairs do not enter the test
    assert paired_difference(_pairs(0, 12, 2, 40)).mcnemar_p_value == pytest.approx(
        212 / 16384, abs=1e-12
    )


def test_paired_edges():
    # no discordant pair: no evidence of a difference, p = 1 and the difference is 0
    all_agree = paired_difference(_pairs(4, 0, 0, 3))
    assert all_agree.mcnemar_p_value == 1.0
    assert all_agree.difference == 0.0
    assert all_agree.low < 0.0 < all_agree.high
    # every pair a success in both modes: zero margins, phi = 0, and both limits come from the
    # Wilson interval of 20/20 (low 20/(20 + z^2) = 0.838875): -0.161125 .. 0.161125
    perfect = paired_difference(_pairs(20, 0, 0, 0))
    assert perfect.low == pytest.approx(-0.161125, abs=1e-6)
    assert perfect.high == pytest.approx(0.161125, abs=1e-6)
    empty = paired_difference([])
    assert empty.n_pairs == 0
    assert all(math.isnan(v) for v in (empty.difference, empty.low, empty.high))
    assert math.isnan(empty.mcnemar_p_value)


def test_paired_accepts_zero_one_and_refuses_other_outcomes():
    assert paired_difference([(1, 0), (0, 0)]).only_a_success == 1
    with pytest.raises(ValueError, match="pair 1"):
        paired_difference([(True, True), (True, None)])
    with pytest.raises(ValueError, match="pair 0"):
        paired_difference([(True,)])


# ------------------------------------------------------------------------------------------------
# Median and quartiles
# ------------------------------------------------------------------------------------------------


def test_median_spread_by_hand():
    # 1..10: median (5 + 6)/2 = 5.5; quartile positions 0.25*9 = 2.25 and 0.75*9 = 6.75 (0-based)
    # give 3 + 0.25 = 3.25 and 7 + 0.75 = 7.75
    spread = median_spread([7, 3, 10, 1, 5, 2, 9, 4, 8, 6])
    assert (spread.n, spread.median, spread.q25, spread.q75) == (10, 5.5, 3.25, 7.75)
    assert (spread.minimum, spread.maximum) == (1.0, 10.0)
    # 1, 3, 7: positions 0.5 and 1.5 -> 1 + 0.5*2 = 2 and 3 + 0.5*4 = 5
    odd = median_spread(np.array([7.0, 1.0, 3.0]))
    assert (odd.median, odd.q25, odd.q75) == (3.0, 2.0, 5.0)


def test_median_spread_edges():
    single = median_spread([42.0])
    assert (single.n, single.median, single.q25, single.q75) == (1, 42.0, 42.0, 42.0)
    empty = median_spread([])
    assert empty.n == 0
    assert all(math.isnan(v) for v in (empty.median, empty.q25, empty.q75, empty.minimum))
    with pytest.raises(ValueError, match="finite"):
        median_spread([1.0, float("nan")])


# ------------------------------------------------------------------------------------------------
# LC-CUSUM
# ------------------------------------------------------------------------------------------------


def test_lc_cusum_weights_by_hand():
    # acceptable 10%, unacceptable 20%: success ln(0.9/0.8) = ln 1.125 = 0.117783,
    # failure ln(0.1/0.2) = ln 0.5 = -0.693147
    success, failure = lc_cusum_weights(0.10, 0.20)
    assert success == pytest.approx(0.117783, abs=1e-6)
    assert failure == pytest.approx(-0.693147, abs=1e-6)


def test_lc_cusum_run_of_successes_reaches_competence_at_the_predicted_attempt():
    # h = 1.0: 8 successes score 8 * 0.1177830 = 0.942264 < 1, 9 score 1.060047 >= 1
    result = lc_cusum([0] * 12, 0.10, 0.20, h=1.0)
    assert result.competence_attempt == 9
    assert result.competent
    assert result.scores[7] == pytest.approx(0.942264, abs=1e-6)
    assert result.scores[8] == pytest.approx(1.060047, abs=1e-6)
    assert len(result.scores) == 12  # the curve goes on past the signal


def test_lc_cusum_reaching_h_exactly_counts():
    # competence is declared when the score reaches h, not only when it passes it
    scores = lc_cusum([0] * 12, 0.10, 0.20, h=1.0).scores
    assert lc_cusum([0] * 12, 0.10, 0.20, h=scores[8]).competence_attempt == 9
    assert lc_cusum([0] * 12, 0.10, 0.20, h=scores[8] + 1e-9).competence_attempt == 10


def test_lc_cusum_failure_resets_to_zero_and_delays_competence():
    # S, S: 0.235566; F: 0.235566 - 0.693147 < 0 -> 0; then 9 more successes are needed again,
    # so competence comes at attempt 3 + 9 = 12
    result = lc_cusum([False, False, True] + [False] * 10, 0.10, 0.20, h=1.0)
    assert result.scores[1] == pytest.approx(0.235566, abs=1e-6)
    assert result.scores[2] == 0.0
    assert result.competence_attempt == 12


def test_lc_cusum_failure_after_a_run_subtracts_without_resetting():
    # acceptable 20%, unacceptable 30%: success ln(0.8/0.7) = 0.133531, failure ln(2/3) = -0.405465
    # five successes: 0.667657; a failure: 0.667657 - 0.405465 = 0.262192
    result = lc_cusum([0, 0, 0, 0, 0, 1], 0.20, 0.30, h=5.0)
    assert result.scores[4] == pytest.approx(0.667657, abs=1e-6)
    assert result.scores[5] == pytest.approx(0.262192, abs=1e-6)
    assert result.competence_attempt is None and not result.competent


def test_lc_cusum_all_failures_stay_at_zero():
    result = lc_cusum([1] * 20, 0.10, 0.20, h=1.0)
    assert result.scores == (0.0,) * 20
    assert result.competence_attempt is None


@pytest.mark.parametrize(
    "outcomes, acceptable, unacceptable, h",
    [
        ([0], 0.2, 0.1, 1.0),  # rates the wrong way round
        ([0], 0.0, 0.1, 1.0),  # ln(0) weight
        ([0], 0.1, 0.2, 0.0),  # h = 0 would declare competence before any evidence
        ([0], 0.1, 0.2, float("nan")),
        ([0, 2], 0.1, 0.2, 1.0),  # not a failure indicator
    ],
)
def test_lc_cusum_refuses_bad_input(outcomes, acceptable, unacceptable, h):
    with pytest.raises(ValueError):
        lc_cusum(outcomes, acceptable, unacceptable, h)


def _exact_signal_probability(h, failure_rate, acceptable, unacceptable, attempts):
    """Exact probability that the LC-CUSUM reaches h within ``attempts``, by dynamic programming
    over the (successes, failures) counted since the score last sat at 0: an independent check of
    the module's simulation."""
    success_w = math.log((1 - acceptable) / (1 - unacceptable))
    failure_w = math.log(acceptable / unacceptable)
    states = {(0, 0): 1.0}
    signalled = 0.0
    for _ in range(attempts):
        following: dict[tuple[int, int], float] = {}
        for (s, f), prob in states.items():
            for (ds, df), step_prob in (((1, 0), 1 - failure_rate), ((0, 1), failure_rate)):
                state = (s + ds, f + df)
                score = state[0] * success_w + state[1] * failure_w
                if score <= 0:
                    state = (0, 0)
                    score = 0.0
                if score >= h:
                    signalled += prob * step_prob
                else:
                    following[state] = following.get(state, 0.0) + prob * step_prob
        states = following
    return signalled


def test_lc_cusum_signal_probability_by_hand():
    # h just under 3 success weights: within 3 attempts only S, S, S reaches it, so a trainee
    # failing 20% of attempts is declared competent with probability 0.8^3 = 0.512
    success, _ = lc_cusum_weights(0.10, 0.20)
    n = 20_000
    simulated = lc_cusum_signal_probability(
        3 * success - 1e-9, 0.20, 0.10, 0.20, max_attempts=3, n_simulations=n, seed=5
    )
    assert simulated == pytest.approx(0.512, abs=4 * math.sqrt(0.512 * 0.488 / n))


@pytest.mark.parametrize(
    "failure_rate, acceptable, unacceptable, h, attempts",
    [
        (0.10, 0.10, 0.20, 2.0, 30),
        (0.20, 0.10, 0.20, 2.0, 30),
        (0.30, 0.10, 0.20, 2.0, 30),
        (0.60, 0.30, 0.60, 1.5, 20),
    ],
)
def test_lc_cusum_signal_probability_matches_the_exact_probability(
    failure_rate, acceptable, unacceptable, h, attempts
):
    # a fixed h, so an error in the simulated scores cannot be absorbed by a shifted h
    n = 20_000
    simulated = lc_cusum_signal_probability(
        h, failure_rate, acceptable, unacceptable, max_attempts=attempts, n_simulations=n, seed=5
    )
    exact = _exact_signal_probability(h, failure_rate, acceptable, unacceptable, attempts)
    assert 0.0 < exact < 1.0
    assert simulated == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / n))


def test_lc_cusum_threshold_keeps_false_competence_under_alpha():
    threshold = lc_cusum_threshold(0.10, 0.20, max_attempts=50, alpha=0.05, seed=7)
    n = threshold.n_simulations
    assert threshold.false_competence_probability <= 0.05
    exact = _exact_signal_probability(threshold.h, 0.20, 0.10, 0.20, 50)
    # the simulated probability agrees with the exact one within 4 Monte Carlo standard errors
    se = math.sqrt(exact * (1 - exact) / n)
    assert threshold.false_competence_probability == pytest.approx(exact, abs=4 * se)
    # and the exact one stays near alpha: h was not chosen far too low by simulation noise
    assert exact <= 0.05 + 4 * math.sqrt(0.05 * 0.95 / n)
    exact_power = _exact_signal_probability(threshold.h, 0.10, 0.10, 0.20, 50)
    se_power = math.sqrt(exact_power * (1 - exact_power) / n)
    assert threshold.detection_probability == pytest.approx(exact_power, abs=4 * se_power)


@pytest.mark.parametrize("n_simulations, resolution, seed", [(10_000, 0.01, 3), (200, 1e-4, 1)])
def test_lc_cusum_threshold_is_the_smallest_h_on_the_grid(n_simulations, resolution, seed):
    threshold = lc_cusum_threshold(
        0.10, 0.20, n_simulations=n_simulations, seed=seed, resolution=resolution
    )
    # the same seed and count replay the same simulated trainees at any other h
    args = dict(n_simulations=n_simulations, seed=seed)
    at_h = lc_cusum_signal_probability(threshold.h, 0.20, 0.10, 0.20, **args)
    below = lc_cusum_signal_probability(threshold.h - resolution, 0.20, 0.10, 0.20, **args)
    assert at_h == threshold.false_competence_probability <= 0.05 < below
    assert threshold.h == pytest.approx(round(threshold.h / resolution) * resolution, abs=1e-9)


def test_trainee_at_the_unacceptable_rate_rarely_reaches_h():
    # trainees simulated attempt by attempt through lc_cusum itself, on a generator unrelated to
    # the one that chose h
    threshold = lc_cusum_threshold(0.10, 0.20, max_attempts=50, alpha=0.05, seed=0)
    rng = np.random.default_rng(20080701)
    trainees = 4000
    declared = sum(
        lc_cusum(rng.random(50) < 0.20, 0.10, 0.20, threshold.h).competent for _ in range(trainees)
    )
    assert declared / trainees <= 0.05 + 4 * math.sqrt(0.05 * 0.95 / trainees)
    # a competent trainee, by contrast, is recognised much more often over the same 50 attempts
    competent = sum(
        lc_cusum(rng.random(50) < 0.10, 0.10, 0.20, threshold.h).competent for _ in range(trainees)
    )
    assert competent / trainees > 4 * declared / trainees


def test_lc_cusum_threshold_is_deterministic(monkeypatch):
    first = lc_cusum_threshold(0.05, 0.15, max_attempts=30, seed=11, n_simulations=5000)
    again = lc_cusum_threshold(0.05, 0.15, max_attempts=30, seed=11, n_simulations=5000)
    assert first == again
    # the batching that bounds memory does not change the draws
    monkeypatch.setattr(stats, "_SIMULATION_BATCH_ATTEMPTS", 30 * 7)
    assert lc_cusum_threshold(0.05, 0.15, max_attempts=30, seed=11, n_simulations=5000) == first


def test_lc_cusum_threshold_refuses_bad_input():
    with pytest.raises(ValueError):
        lc_cusum_threshold(0.10, 0.20, alpha=0.0)
    with pytest.raises(ValueError):
        lc_cusum_threshold(0.10, 0.20, max_attempts=0)
    with pytest.raises(ValueError):
        lc_cusum_threshold(0.10, 0.20, resolution=0.0)


# ------------------------------------------------------------------------------------------------
# Rates per group
# ------------------------------------------------------------------------------------------------


def test_rates_table_groups_in_order_of_first_appearance():
    rows = (
        [{"procedure": "caudal", "guidance": "landmark", "passed": True}] * 8
        + [{"procedure": "caudal", "guidance": "landmark", "passed": False}] * 2
        + [{"procedure": "caudal", "guidance": "fluoroscopy", "passed": 1}] * 3
        + [{"procedure": "lumbar_il", "guidance": "landmark", "passed": 0}] * 4
    )
    table = rates_table(rows, ("procedure", "guidance"), "passed")
    assert [rate.group for rate in table] == [
        ("caudal", "landmark"),
        ("caudal", "fluoroscopy"),
        ("lumbar_il", "landmark"),
    ]
    assert [(rate.n, rate.successes) for rate in table] == [(10, 8), (3, 3), (4, 0)]
    # 8/10 is the hand-worked Wilson interval above
    assert table[0].low == pytest.approx(0.4902, abs=FOUR_DECIMALS)
    assert table[0].high == pytest.approx(0.9433, abs=FOUR_DECIMALS)
    assert (table[1].proportion, table[1].high) == (1.0, 1.0)
    assert (table[2].proportion, table[2].low) == (0.0, 0.0)
    assert table[1].labels == {"procedure": "caudal", "guidance": "fluoroscopy"}


def test_rates_table_single_key_and_errors():
    rows = [{"guidance": "landmark", "passed": True}, {"guidance": "landmark", "passed": False}]
    (only,) = rates_table(rows, "guidance", "passed")
    assert (only.group, only.n, only.successes) == (("landmark",), 2, 1)
    assert rates_table([], ("guidance",), "passed") == []
    with pytest.raises(KeyError, match="row 2"):
        rates_table(rows + [{"passed": True}], ("guidance",), "passed")
    with pytest.raises(ValueError, match="row 0"):
        rates_table([{"guidance": "landmark", "passed": None}], ("guidance",), "passed")
