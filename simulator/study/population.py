"""The patients of a simulated study, drawn from the distributions of ``assets/population.toml``.

Patient ``i`` of a study with seed ``S`` depends on ``(S, i)`` and the table alone: never on how many
patients the study has, nor on which were drawn before it. An interrupted study that is resumed, or a
study split across workers (``draw_population(n, S, start=k)``), gets the same patients. The
random numbers come from child ``i`` of ``numpy.random.SeedSequence(S)`` (what ``.spawn()`` would
give), whose first child drives the draws and whose second gives the patient's own seed.

Each :class:`PatientDraw` fixes sex, age, height, BMI and the variants (supraspinous ligament,
transitional vertebra, sacral hiatus, scoliosis, degenerate interspaces). Its
:meth:`~PatientDraw.parameters` are the :class:`~simulator.anatomy.patient.PatientParameters` the
anatomy builder takes; the patient seed fills in the rest (sagittal curves, body shape) as it
does for a scenario's patient.

A malformed table is reported as one :class:`~simulator.errors.SpineSimError` line naming the file
and the field, e.g. ``assets/population.toml: height_cm.male.sd: must be > 0``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from simulator.anatomy.patient import (
    DEGENERABLE,
    GENERATOR_VERSION,
    HIATUS,
    TRANSITIONAL,
    PatientParameters,
    validate_patient_values,
)
from simulator.assets import read_asset_text
from simulator.errors import SpineSimError

#: Where the shipped table lives, as named in error messages.
POPULATION_SOURCE = "assets/population.toml"
#: The table layout this module reads.
POPULATION_FORMAT_VERSION = 1
#: Bumped whenever the same seed, index and table would give a different patient (a new variable,
#: another use of the random numbers), so a study's record says how its patients were drawn.
DRAW_VERSION = "population-1"

SEXES = ("male", "female")
SUPRASPINOUS_ENDS = ("L4", "L5")

#: The uniform numbers each patient uses, in this order; drawn all at once, whether used or not, so
#: one variable never shifts another's. New variables are only ever appended (and DRAW_VERSION bumped).
_UNIFORMS = ("sex", "height", "bmi", "age", "supraspinous", "transitional", "hiatus", "scoliosis",
             "scoliosis_mild", "scoliosis_size", *(f"degeneration_{level}" for level in DEGENERABLE))


@dataclass(frozen=True)
class Truncated:
    """A normal distribution (or, with ``log``, a log-normal one) cut to ``[lo, hi]``.

    ``mean`` and ``sd`` are those of the variable itself before the cut (for a log-normal, the
    arithmetic mean and SD; its log has SD ``sqrt(log(1 + (sd/mean)**2))``).
    """

    mean: float
    sd: float
    lo: float
    hi: float
    log: bool = False

    def location_scale(self) -> tuple[float, float]:
        """Mean and SD of the underlying normal (of the log for a log-normal)."""
        if not self.log:
            return self.mean, self.sd
        var_log = math.log1p((self.sd / self.mean) ** 2)
        return math.log(self.mean) - var_log / 2.0, math.sqrt(var_log)

    def quantile(self, u: float) -> float:
        """The value at probability ``u`` (0..1) of the cut distribution (inverse transform)."""
        loc, scale = self.location_scale()
        to_normal = math.log if self.log else float
        a = float(ndtr((to_normal(self.lo) - loc) / scale))
        b = float(ndtr((to_normal(self.hi) - loc) / scale))
        x = loc + scale * float(ndtri(a + u * (b - a)))
        if self.log:
            x = math.exp(x)
        return min(max(x, self.lo), self.hi)  # rounding at the tails never leaves the bounds


@dataclass(frozen=True)
class PopulationTable:
    """The distributions of ``assets/population.toml``, checked (see the file for their sources).

    Category probabilities are kept in the fixed order of the generator's constants (not the
    file's), so reordering the file never changes a patient.
    """

    female_fraction: float
    height_cm: Mapping[str, Truncated]
    bmi_kg_m2: Mapping[str, Truncated]
    age_years: Truncated
    supraspinous_ends_at: Mapping[str, float]
    transitional: Mapping[str, float]
    hiatus: Mapping[str, float]
    scoliosis_prevalence: float
    scoliosis_mild_fraction: float
    scoliosis_mild_cobb_deg: tuple[float, float]
    scoliosis_larger_cobb_deg: tuple[float, float]
    degeneration_ages: tuple[float, ...]
    disc_height_loss: tuple[float, ...]
    level_weights: Mapping[str, float]
    #: First 16 hex digits of the table text's SHA-256: which table a record's patients came from.
    digest: str

    def disc_height_loss_at(self, age_years: float) -> float:
        """Share of patients of this age with at least one narrowed disc."""
        return float(np.interp(age_years, self.degeneration_ages, self.disc_height_loss))

    def level_probabilities(self, age_years: float) -> dict[str, float]:
        """Chance that each interspace is narrowed at this age (independent across interspaces)."""
        top = max(self.level_weights.values())
        weights = np.array([self.level_weights[level] / top for level in DEGENERABLE])
        share = self.disc_height_loss_at(age_years)
        if share <= 0.0:
            k = 0.0
        elif share >= 1.0:
            k = 1.0
        else:  # 1 - prod(1 - k w) rises from 0 to 1 over k in [0, 1] (the top weight is 1)
            k = brentq(lambda k: 1.0 - float(np.prod(1.0 - k * weights)) - share, 0.0, 1.0, xtol=1e-12)
        return {level: float(k * w) for level, w in zip(DEGENERABLE, weights)}


@dataclass(frozen=True)
class PatientDraw:
    """One patient of a study: what was drawn for index ``index`` of study seed ``study_seed``."""

    study_seed: int
    index: int
    #: The patient's own seed (PatientParameters.seed): the sagittal curves and the body's shape.
    patient_seed: int
    sex: str
    age_years: float
    height_cm: float
    bmi_kg_m2: float
    supraspinous_ends_at: str
    transitional: str
    hiatus: str
    scoliosis_deg: float
    degenerate_levels: tuple[str, ...]
    population_digest: str

    def parameters(self) -> PatientParameters:
        """The patient as the anatomy builder takes it (curves and shape left to the seed)."""
        return PatientParameters(
            seed=self.patient_seed, sex=self.sex, age_years=self.age_years, height_cm=self.height_cm,
            bmi_kg_m2=self.bmi_kg_m2, scoliosis_deg=self.scoliosis_deg,
            supraspinous_ends_at=self.supraspinous_ends_at, transitional=self.transitional,
            hiatus=self.hiatus, degenerate_levels=self.degenerate_levels)

    def as_dict(self) -> dict:
        """Plain values for the study's records (JSON- and TOML-ready), with the versions that
        make the patient reproducible."""
        out = asdict(self)
        out["degenerate_levels"] = list(self.degenerate_levels)
        out["draw_version"] = DRAW_VERSION
        out["generator_version"] = GENERATOR_VERSION
        return out


# ------------------------------------------------------------------------------------------ drawing
def draw_patient(seed: int, index: int, table: PopulationTable | None = None) -> PatientDraw:
    """Patient ``index`` of the study with seed ``seed`` (both whole numbers >= 0).

    Raises
    ------
    SpineSimError
        A seed or index that is not a whole number >= 0; a malformed shipped table.
    """
    _check_count(seed, "study seed")
    _check_count(index, "patient index")
    seed, index = int(seed), int(index)  # a numpy integer would reach the records as one
    table = table if table is not None else population_table()
    u = dict(zip(_UNIFORMS, np.random.default_rng(
        np.random.SeedSequence(seed, spawn_key=(index, 0))).random(len(_UNIFORMS))))
    patient_seed = int(np.random.SeedSequence(seed, spawn_key=(index, 1)).generate_state(1, np.uint32)[0] >> 1)

    sex = "female" if u["sex"] < table.female_fraction else "male"
    age = table.age_years.quantile(u["age"])
    if u["scoliosis"] < table.scoliosis_prevalence:
        lo, hi = (table.scoliosis_mild_cobb_deg if u["scoliosis_mild"] < table.scoliosis_mild_fraction
                  else table.scoliosis_larger_cobb_deg)
        scoliosis = lo + (hi - lo) * u["scoliosis_size"]
    else:
        scoliosis = 0.0
    narrowed = table.level_probabilities(age)
    return PatientDraw(
        study_seed=seed, index=index, patient_seed=patient_seed, sex=sex, age_years=age,
        height_cm=table.height_cm[sex].quantile(u["height"]),
        bmi_kg_m2=table.bmi_kg_m2[sex].quantile(u["bmi"]),
        supraspinous_ends_at=_category(table.supraspinous_ends_at, u["supraspinous"]),
        transitional=_category(table.transitional, u["transitional"]),
        hiatus=_category(table.hiatus, u["hiatus"]),
        scoliosis_deg=scoliosis,
        degenerate_levels=tuple(level for level in DEGENERABLE if u[f"degeneration_{level}"] < narrowed[level]),
        population_digest=table.digest)


def draw_population(n: int, seed: int, *, start: int = 0,
                    table: PopulationTable | None = None) -> list[PatientDraw]:
    """Patients ``start .. start + n - 1`` of the study with seed ``seed``.

    Each is :func:`draw_patient` ``(seed, i)``: the same whatever ``n`` and ``start`` are, so
    ``draw_population(1000, S)[i] == draw_population(10, S, start=i)[0]``.
    """
    _check_count(n, "number of patients")
    _check_count(start, "first patient index")
    table = table if table is not None else population_table()
    return [draw_patient(seed, start + k, table) for k in range(n)]


def _category(probabilities: Mapping[str, float], u: float) -> str:
    total = 0.0
    for name, p in probabilities.items():
        total += p
        if u < total:
            return name
    return name  # u within rounding of 1: the last category


def _check_count(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise SpineSimError(f"{what} must be a whole number >= 0 (got {value!r})")


# ------------------------------------------------------------------------------------------ loading
@lru_cache(maxsize=1)
def population_table() -> PopulationTable:
    """The shipped table (``assets/population.toml``), checked.

    Raises
    ------
    SpineSimError
        When the shipped file is malformed (see :func:`parse_population_table`).
    """
    return parse_population_table(read_asset_text("population.toml"), POPULATION_SOURCE)


_SECTIONS = {
    "sex": {"female_fraction", "source"},
    "height_cm": {"male", "female", "min", "max", "source"},
    "bmi_kg_m2": {"male", "female", "min", "max", "source"},
    "age_years": {"mean", "sd", "min", "max", "source"},
    "supraspinous_ends_at": {*SUPRASPINOUS_ENDS, "source"},
    "transitional": {*TRANSITIONAL, "source"},
    "hiatus": {*HIATUS, "source"},
    "scoliosis": {"prevalence", "mild_fraction", "mild_cobb_deg", "larger_cobb_deg", "source"},
    "degeneration": {"ages", "disc_height_loss", "level_weights", "source"},
}


def parse_population_table(text: str, source: str = POPULATION_SOURCE) -> PopulationTable:
    """Read and check a population table.

    Parameters
    ----------
    text : str
        The TOML text: ``format_version`` and one table per variable (see
        ``assets/population.toml``), each with a non-empty ``source``.
    source : str
        The file's name for error messages.

    Raises
    ------
    SpineSimError
        One line naming ``source`` and the field: bad TOML; a field missing, unknown, of the wrong
        type or out of range; probabilities that do not sum to 1; bounds outside what the phantom
        generator accepts.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpineSimError(f"{source}: not valid TOML: {exc}") from None
    extra = sorted(set(data) - set(_SECTIONS) - {"format_version"})
    if extra:
        raise SpineSimError(f"{source}: {extra[0]}: unknown top-level field (known: format_version, "
                           f"{', '.join(_SECTIONS)})")
    version = data.get("format_version")
    if version != POPULATION_FORMAT_VERSION or isinstance(version, bool):
        raise SpineSimError(f"{source}: format_version: must be {POPULATION_FORMAT_VERSION}")
    sections = {name: _section(data, name, source) for name in _SECTIONS}

    def where(field: str) -> str:
        return f"{source}: {field}"

    sex = sections["sex"]
    scoliosis = sections["scoliosis"]
    degeneration = sections["degeneration"]
    ages = _numbers(degeneration["ages"], where("degeneration.ages"))
    shares = _numbers(degeneration["disc_height_loss"], where("degeneration.disc_height_loss"))
    if len(shares) != len(ages):
        raise SpineSimError(f"{where('degeneration.disc_height_loss')}: must have one value per age "
                            f"({len(ages)}), not {len(shares)}")
    if any(b <= a for a, b in itertools.pairwise(ages)):
        raise SpineSimError(f"{where('degeneration.ages')}: must rise strictly")
    for i, share in enumerate(shares):
        _probability(share, where(f"degeneration.disc_height_loss[{i}]"))
    weights = _mapping(degeneration["level_weights"], where("degeneration.level_weights"), DEGENERABLE)
    for level, weight in weights.items():
        if weight < 0.0:
            raise SpineSimError(f"{where(f'degeneration.level_weights.{level}')} must be >= 0")
    if max(weights.values()) <= 0.0:
        raise SpineSimError(f"{where('degeneration.level_weights')} must have a weight > 0")

    return PopulationTable(
        female_fraction=_probability(_number(sex["female_fraction"], where("sex.female_fraction")),
                                     where("sex.female_fraction")),
        height_cm=_by_sex(sections["height_cm"], "height_cm", source, log=False),
        bmi_kg_m2=_by_sex(sections["bmi_kg_m2"], "bmi_kg_m2", source, log=True),
        age_years=_truncated(sections["age_years"], sections["age_years"], "age_years", "age_years", source),
        supraspinous_ends_at=_categories(sections["supraspinous_ends_at"], SUPRASPINOUS_ENDS,
                                         "supraspinous_ends_at", source),
        transitional=_categories(sections["transitional"], TRANSITIONAL, "transitional", source),
        hiatus=_categories(sections["hiatus"], HIATUS, "hiatus", source),
        scoliosis_prevalence=_probability(_number(scoliosis["prevalence"], where("scoliosis.prevalence")),
                                          where("scoliosis.prevalence")),
        scoliosis_mild_fraction=_probability(
            _number(scoliosis["mild_fraction"], where("scoliosis.mild_fraction")), where("scoliosis.mild_fraction")),
        scoliosis_mild_cobb_deg=_cobb_range(scoliosis["mild_cobb_deg"], where("scoliosis.mild_cobb_deg")),
        scoliosis_larger_cobb_deg=_cobb_range(scoliosis["larger_cobb_deg"], where("scoliosis.larger_cobb_deg")),
        degeneration_ages=ages,
        disc_height_loss=shares,
        level_weights=MappingProxyType(weights),
        digest=hashlib.sha256(text.encode()).hexdigest()[:16],
    )


def _section(data: dict, name: str, source: str) -> dict:
    """The table ``name``, with exactly its fields and a non-empty source."""
    section = data.get(name)
    if section is None:
        raise SpineSimError(f"{source}: {name}: the [{name}] table is missing")
    if not isinstance(section, dict):
        raise SpineSimError(f"{source}: {name}: must be a table ([{name}])")
    allowed = _SECTIONS[name]
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise SpineSimError(f"{source}: {name}.{unknown[0]}: unknown field (known: {', '.join(sorted(allowed))})")
    missing = [field for field in sorted(allowed) if field not in section]
    if missing:
        raise SpineSimError(f"{source}: {name}.{missing[0]}: missing")
    text = section["source"]
    if not isinstance(text, str) or not text.strip():
        raise SpineSimError(f"{source}: {name}.source: must name where the numbers come from")
    return section


def _number(value: Any, what: str) -> float:
    # bool is an int in Python; TOML true is never a number here
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpineSimError(f"{what}: must be a number (got {value!r})")
    if not math.isfinite(value):
        raise SpineSimError(f"{what}: must be finite")
    return float(value)


def _numbers(value: Any, what: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise SpineSimError(f"{what}: must be a non-empty list of numbers")
    return tuple(_number(v, f"{what}[{i}]") for i, v in enumerate(value))


def _probability(value: float, what: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise SpineSimError(f"{what}: must be between 0 and 1 (got {value:g})")
    return value


def _mapping(value: Any, what: str, names: tuple[str, ...]) -> dict[str, float]:
    """Numbers for exactly ``names``, in that order."""
    if not isinstance(value, dict):
        raise SpineSimError(f"{what}: must be a table of {', '.join(names)}")
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise SpineSimError(f"{what}.{unknown[0]}: unknown field (known: {', '.join(names)})")
    for name in names:
        if name not in value:
            raise SpineSimError(f"{what}.{name}: missing")
    return {name: _number(value[name], f"{what}.{name}") for name in names}


def _categories(section: dict, names: tuple[str, ...], field: str, source: str) -> Mapping[str, float]:
    """Probabilities of every category, summing to 1, in the order of ``names``."""
    probabilities = {name: _probability(_number(section[name], f"{source}: {field}.{name}"),
                                        f"{source}: {field}.{name}") for name in names}
    total = sum(probabilities.values())
    if abs(total - 1.0) > 1e-6:
        raise SpineSimError(f"{source}: {field}: the probabilities of {', '.join(names)} must sum to 1 "
                            f"(they sum to {total:.6g})")
    return MappingProxyType(probabilities)


def _generator_range(field: str, value: float, what: str) -> None:
    """``value`` must be one the phantom generator accepts for ``field``."""
    problems = validate_patient_values({field: value})
    if problems:
        raise SpineSimError(f"{what}: {problems[0][1]} (the phantom generator's range for {field})")


def _truncated(params: Any, bounds: dict, field: str, name: str, source: str, log: bool = False) -> Truncated:
    """A cut distribution from ``params`` (mean, sd) and ``bounds`` (min, max) for ``field``."""
    where = f"{source}: {name}"
    if not isinstance(params, dict):
        raise SpineSimError(f"{where}: must be a table {{ mean = ..., sd = ... }}")
    if params is not bounds:
        unknown = sorted(set(params) - {"mean", "sd"})
        if unknown:
            raise SpineSimError(f"{where}.{unknown[0]}: unknown field (known: mean, sd)")
    for key in ("mean", "sd"):
        if key not in params:
            raise SpineSimError(f"{where}.{key}: missing")
    mean = _number(params["mean"], f"{where}.mean")
    sd = _number(params["sd"], f"{where}.sd")
    lo = _number(bounds["min"], f"{source}: {field}.min")
    hi = _number(bounds["max"], f"{source}: {field}.max")
    if sd <= 0.0:
        raise SpineSimError(f"{where}.sd: must be > 0")
    if lo >= hi:
        raise SpineSimError(f"{source}: {field}.max: must be greater than min ({lo:g})")
    _generator_range(field, lo, f"{source}: {field}.min")
    _generator_range(field, hi, f"{source}: {field}.max")
    if not lo <= mean <= hi:
        raise SpineSimError(f"{where}.mean: must lie between min and max ({lo:g}..{hi:g})")
    if log and lo <= 0.0:
        raise SpineSimError(f"{source}: {field}.min: must be > 0 (a log-normal distribution)")
    return Truncated(mean=mean, sd=sd, lo=lo, hi=hi, log=log)


def _by_sex(section: dict, field: str, source: str, log: bool) -> Mapping[str, Truncated]:
    return MappingProxyType({sex: _truncated(section[sex], section, field, f"{field}.{sex}", source, log)
                             for sex in SEXES})


def _cobb_range(value: Any, what: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise SpineSimError(f"{what}: must be two numbers [lowest, highest] (degrees)")
    lo, hi = (_number(v, f"{what}[{i}]") for i, v in enumerate(value))
    if lo > hi:
        raise SpineSimError(f"{what}: the lowest must not exceed the highest")
    for v in (lo, hi):
        _generator_range("scoliosis_deg", v, what)
    return lo, hi
