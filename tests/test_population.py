"""A study's patients (simulator/study/population.py, assets/population.toml): patient i of seed S
is the same however it is drawn, a few thousand draws follow the table's distributions within
sampling error, every draw is a patient the generator accepts, and a malformed table is reported
in one line naming the file and the field."""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import asdict

import numpy as np
import pytest
import tomli_w
from scipy import stats

from simulator.anatomy.patient import DEGENERABLE, HIATUS, TRANSITIONAL, validate_patient_values
from simulator.assets import read_asset_text
from simulator.errors import SpineSimError
from simulator.scenario.schema import PatientSection
from simulator.study.population import (
    POPULATION_SOURCE,
    draw_patient,
    draw_population,
    parse_population_table,
    population_table,
)

SEED = 20240917
N = 4000
#: Two-sided 99.9% normal quantile: every statistical check below fails by chance 1 time in 1000
#: (and the draws are seeded, so a pass is a pass for good).
Z999 = stats.norm.ppf(0.9995)


@pytest.fixture(scope="module")
def table():
    return population_table()


@pytest.fixture(scope="module")
def sample(table):
    return draw_population(N, SEED)


def _raw_table() -> dict:
    return tomllib.loads(read_asset_text("population.toml"))


# ------------------------------------------------------------------------------------ determinism
def test_same_seed_same_patients_and_other_seeds_differ(sample):
    assert draw_population(50, SEED) == sample[:50]
    other = draw_population(50, SEED + 1)
    assert sum(a.as_dict() | {"study_seed": 0} == b.as_dict() | {"study_seed": 0}
               for a, b in zip(sample, other)) == 0


def test_patient_i_does_not_depend_on_n_start_or_order(sample):
    """Patient i is the same in a study of 10 or of 4000, drawn alone, in a batch starting
    elsewhere (a resumed study, one worker's share) or in reverse order."""
    assert draw_population(10, SEED) == sample[:10]
    assert draw_patient(SEED, 2345) == sample[2345]
    assert draw_population(7, SEED, start=1000) == sample[1000:1007]
    assert [draw_patient(SEED, i) for i in reversed(range(30))][::-1] == sample[:30]
    assert [p.index for p in sample[:3]] == [0, 1, 2] and all(p.study_seed == SEED for p in sample[:3])


def test_patient_seeds_are_distinct_and_usable(sample):
    seeds = [p.patient_seed for p in sample]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**31 for s in seeds)


def test_reordering_the_table_changes_no_patient(table):
    raw = _raw_table()
    raw["hiatus"] = dict(reversed(list(raw["hiatus"].items())))
    raw["transitional"] = dict(reversed(list(raw["transitional"].items())))
    reordered = parse_population_table(tomli_w.dumps(raw), "reordered.toml")

    def strip(draw):  # the texts differ, so do the digests
        return draw.as_dict() | {"population_digest": ""}

    assert [strip(p) for p in draw_population(200, 3, table=reordered)] == \
           [strip(p) for p in draw_population(200, 3, table=table)]


@pytest.mark.parametrize("call", [lambda: draw_patient(-1, 0), lambda: draw_patient(1, True),
                                  lambda: draw_population(2.5, 1), lambda: draw_population(3, 1, start=-2)])
def test_bad_seed_or_count_is_one_clear_line(call):
    with pytest.raises(SpineSimError, match=r"must be a whole number >= 0") as err:
        call()
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ statistics
def _truncated_normal(spec):
    a, b = (spec.lo - spec.mean) / spec.sd, (spec.hi - spec.mean) / spec.sd
    return stats.truncnorm(a, b, loc=spec.mean, scale=spec.sd)


def _truncated_lognormal_cdf(spec):
    """CDF of a log-normal with the spec's arithmetic mean and SD, cut to [lo, hi] (derived here
    from the definition, not from the module's code)."""
    sigma = math.sqrt(math.log(1.0 + (spec.sd / spec.mean) ** 2))
    dist = stats.lognorm(s=sigma, scale=spec.mean / math.sqrt(1.0 + (spec.sd / spec.mean) ** 2))
    lo, hi = dist.cdf(spec.lo), dist.cdf(spec.hi)
    return dist, lambda x: (dist.cdf(np.clip(x, spec.lo, spec.hi)) - lo) / (hi - lo)


@pytest.mark.parametrize("sex", ["male", "female"])
def test_height_mean_and_sd_by_sex(sample, table, sex):
    heights = np.array([p.height_cm for p in sample if p.sex == sex])
    expected = _truncated_normal(table.height_cm[sex])
    n = len(heights)
    assert abs(heights.mean() - expected.mean()) < Z999 * expected.std() / math.sqrt(n)
    assert abs(heights.std(ddof=1) - expected.std()) < Z999 * expected.std() / math.sqrt(2 * (n - 1))
    assert stats.kstest(heights, expected.cdf).pvalue > 0.001


@pytest.mark.parametrize("sex", ["male", "female"])
def test_bmi_distribution_by_sex(sample, table, sex):
    """The BMI follows the table's cut log-normal (Kolmogorov-Smirnov), its mean within sampling
    error, and stays inside the generator's range."""
    spec = table.bmi_kg_m2[sex]
    bmi = np.array([p.bmi_kg_m2 for p in sample if p.sex == sex])
    dist, cdf = _truncated_lognormal_cdf(spec)
    assert stats.kstest(bmi, cdf).pvalue > 0.001
    mass = dist.cdf(spec.hi) - dist.cdf(spec.lo)
    moments = [dist.expect(lambda x, k=k: x ** k, lb=spec.lo, ub=spec.hi) / mass for k in (1, 2)]
    sd = math.sqrt(moments[1] - moments[0] ** 2)
    assert abs(bmi.mean() - moments[0]) < Z999 * sd / math.sqrt(len(bmi))
    assert spec.lo <= bmi.min() and bmi.max() <= spec.hi


def test_age_and_sex(sample, table):
    ages = np.array([p.age_years for p in sample])
    assert stats.kstest(ages, _truncated_normal(table.age_years).cdf).pvalue > 0.001
    _assert_binomial(sum(p.sex == "female" for p in sample), N, table.female_fraction, "female")


def _assert_binomial(count: int, n: int, p: float, what: str) -> None:
    lo, hi = stats.binom.interval(0.999, n, p)
    assert lo <= count <= hi, f"{what}: {count} of {n}, expected {n * p:.1f} (99.9%: {lo:g}..{hi:g})"


@pytest.mark.parametrize("variant,names", [("transitional", TRANSITIONAL), ("hiatus", HIATUS),
                                           ("supraspinous_ends_at", ("L4", "L5"))])
def test_variant_prevalences(sample, table, variant, names):
    probabilities = getattr(table, variant)
    assert set(probabilities) == set(names)
    for name in names:
        count = sum(getattr(p, variant) == name for p in sample)
        _assert_binomial(count, N, probabilities[name], f"{variant} = {name}")


def test_scoliosis_prevalence_and_size(sample, table):
    curved = [p.scoliosis_deg for p in sample if p.scoliosis_deg > 0.0]
    _assert_binomial(len(curved), N, table.scoliosis_prevalence, "scoliosis")
    mild_lo, mild_hi = table.scoliosis_mild_cobb_deg
    larger_hi = table.scoliosis_larger_cobb_deg[1]
    mild = sum(mild_lo <= c < mild_hi for c in curved)
    _assert_binomial(mild, len(curved), table.scoliosis_mild_fraction, "mild curves")
    assert all(mild_lo <= c <= larger_hi for c in curved)


def test_degeneration_follows_age(sample, table):
    """The share with a narrowed disc is the table's share at each patient's age (a sum of
    Bernoulli trials with those chances), and so is each interspace's count."""
    for age in (20.0, 35.0, 55.0, 80.0, 90.0):
        chances = table.level_probabilities(age)
        share = np.interp(age, table.degeneration_ages, table.disc_height_loss)
        assert 1.0 - np.prod([1.0 - c for c in chances.values()]) == pytest.approx(share, abs=1e-9)
    shares = np.array([np.interp(p.age_years, table.degeneration_ages, table.disc_height_loss) for p in sample])
    count = sum(bool(p.degenerate_levels) for p in sample)
    assert abs(count - shares.sum()) < Z999 * math.sqrt(np.sum(shares * (1 - shares)))
    for level in DEGENERABLE:
        chances = np.array([table.level_probabilities(p.age_years)[level] for p in sample[:1000]])
        count = sum(level in p.degenerate_levels for p in sample[:1000])
        assert abs(count - chances.sum()) < Z999 * math.sqrt(np.sum(chances * (1 - chances))), level
    older = [p for p in sample if p.age_years >= 60.0]
    younger = [p for p in sample if p.age_years < 40.0]
    assert np.mean([len(p.degenerate_levels) for p in older]) > np.mean([len(p.degenerate_levels) for p in younger])


# ------------------------------------------------------------------------------------ the patients
def test_every_draw_is_a_patient_the_generator_accepts(sample):
    """parameters() passes PatientParameters' validation and the scenario schema's [patient]
    section, resolves to the drawn values, and as_dict() is plain JSON."""
    for draw in sample:
        params = asdict(draw.parameters())
        assert validate_patient_values(params) == [], draw
        PatientSection(**params)
    for draw in sample[:500]:
        resolved = draw.parameters().resolved()
        for name in ("sex", "age_years", "height_cm", "bmi_kg_m2", "scoliosis_deg", "supraspinous_ends_at",
                     "transitional", "hiatus", "degenerate_levels"):
            assert getattr(resolved, name) == getattr(draw, name), name
        assert resolved.seed == draw.patient_seed
    record = json.loads(json.dumps(sample[0].as_dict()))
    assert record["index"] == 0 and record["population_digest"] == population_table().digest
    assert {"draw_version", "generator_version", "patient_seed", "degenerate_levels"} <= set(record)


def test_one_coarse_phantom_of_the_heaviest_draw(sample):
    """The draw with the highest BMI builds (3 mm voxels, L3-S1: about a second), on the drawn
    values."""
    from simulator.anatomy.anatomy import build_anatomy

    heaviest = max(sample, key=lambda p: p.bmi_kg_m2)
    anatomy = build_anatomy(heaviest.parameters(), voxel_mm=3.0, levels=("L3", "S1"))
    assert anatomy.patient.bmi_kg_m2 == heaviest.bmi_kg_m2
    assert anatomy.patient.height_cm == heaviest.height_cm


# ------------------------------------------------------------------------------------ the table
def test_shipped_table_loads_from_the_package(table):
    assert table.digest == hashlib.sha256(read_asset_text("population.toml").encode()).hexdigest()[:16]
    assert all(raw.get("source") for raw in _raw_table().values() if isinstance(raw, dict))


def _set(path: str, value):
    def change(raw):
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return change


_DELETE = object()


@pytest.mark.parametrize("change,field", [
    (_set("height_cm.male.sd", _DELETE), "height_cm.male.sd"),
    (_set("height_cm.female.sd", -1.0), "height_cm.female.sd"),
    (_set("bmi_kg_m2.max", 60.0), "bmi_kg_m2.max"),
    (_set("age_years.min", 10), "age_years.min"),
    (_set("age_years.mean", "fifty"), "age_years.mean"),
    (_set("hiatus.high", 0.5), "hiatus"),
    (_set("transitional.sacralised_L5", 0.01), "transitional.sacralised_L5"),
    (_set("scoliosis.source", ""), "scoliosis.source"),
    (_set("scoliosis.larger_cobb_deg", [20.0, 45.0]), "scoliosis.larger_cobb_deg"),
    (_set("sex.female_fraction", 1.5), "sex.female_fraction"),
    (_set("sex.female_fraction", True), "sex.female_fraction"),
    (_set("degeneration.ages", [20.0, 30.0, 30.0, 50.0, 60.0, 70.0, 80.0]), "degeneration.ages"),
    (_set("degeneration.disc_height_loss", [0.2, 0.3]), "degeneration.disc_height_loss"),
    (_set("degeneration.level_weights.L4-L5", _DELETE), "degeneration.level_weights.L4-L5"),
    (_set("supraspinous_ends_at", _DELETE), "supraspinous_ends_at"),
    (_set("format_version", 2), "format_version"),
    (_set("cohort", {"source": "x"}), "cohort"),
])
def test_malformed_table_is_one_line_naming_file_and_field(change, field):
    raw = _raw_table()
    change(raw)
    with pytest.raises(SpineSimError) as err:
        parse_population_table(tomli_w.dumps(raw), "x/population.toml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("x/population.toml: ") and field in message, message


def test_bad_toml_is_one_line():
    with pytest.raises(SpineSimError, match=r"^assets/population.toml: not valid TOML") as err:
        parse_population_table("format_version = \n[sex", POPULATION_SOURCE)
    assert "\n" not in str(err.value)
