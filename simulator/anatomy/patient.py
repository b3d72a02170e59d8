"""A patient: the small set of seeded parameters the phantom generator builds a body from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

#: Bumped whenever the generator would build a different body from the same parameters, so an old
#: attempt record says which generator its patient came from. (Caches are also keyed by a
#: fingerprint of the generator's source, see :func:`generator_fingerprint`.)
GENERATOR_VERSION = "spine-3"

TRANSITIONAL = ("none", "sacralized_L5", "lumbarized_S1")
HIATUS = ("typical", "high", "narrow", "absent_cornua")
DEGENERABLE = ("L2-L3", "L3-L4", "L4-L5", "L5-S1")


def generator_fingerprint() -> str:
    """Hash of the anatomy generator's code and data: a cache built by other code is not reused."""
    import hashlib
    from pathlib import Path

    from simulator.assets import read_asset_text

    digest = hashlib.sha256(GENERATOR_VERSION.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    for asset in ("tissues.toml", "morphometry_spine.toml"):
        digest.update(read_asset_text(asset).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class PatientParameters:
    """What the generator needs to build one patient. Values left ``None`` are drawn from ``seed``.

    Attributes
    ----------
    seed : int
        Seeds every random choice (the same seed always gives the same patient within one
        generator version).
    sex : {"male", "female"} or None
    age_years : float or None
        Drives disc degeneration.
    height_cm : float or None
    bmi_kg_m2 : float or None
        Body-mass index; drives subcutaneous fat and so the skin-to-epidural depth.
    lordosis_deg, kyphosis_deg, cervical_lordosis_deg : float or None
        Sagittal curves in the procedure position (prone): lumbar L1-S1, thoracic T1-T12, cervical
        C2-C7.
    scoliosis_deg : float or None
        Coronal Cobb angle of a right thoracolumbar curve (0: straight spine).
    supraspinous_ends_at : {"L4", "L5"} or None
        Lowest spinous process the supraspinous ligament reaches (L4 in about 73%).
    transitional : {"none", "sacralized_L5", "lumbarized_S1"} or None
        Lumbosacral transitional vertebra.
    hiatus : {"typical", "high", "narrow", "absent_cornua"} or None
        Sacral hiatus variant.
    degenerate_levels : tuple of str or None
        Interspaces with a narrowed disc and a thickened ligamentum flavum.
    """

    seed: int = 0
    sex: str | None = None
    age_years: float | None = None
    height_cm: float | None = None
    bmi_kg_m2: float | None = None
    lordosis_deg: float | None = None
    kyphosis_deg: float | None = None
    cervical_lordosis_deg: float | None = None
    scoliosis_deg: float | None = None
    supraspinous_ends_at: str | None = None
    transitional: str | None = None
    hiatus: str | None = None
    degenerate_levels: tuple[str, ...] | None = None

    def resolved(self) -> "ResolvedPatient":
        """Every parameter fixed: drawn from the seed where not given."""
        rng = np.random.default_rng([self.seed, 1])
        # draw every value in a fixed order, whether or not it is used, so giving one parameter
        # never changes the others (new draws are only ever appended)
        sex_draw = rng.random()
        height_z = rng.standard_normal()
        bmi_draw = rng.standard_normal()
        lordosis_z = rng.standard_normal()
        ssl_draw = rng.random()
        shape_seed = int(rng.integers(0, 2**31 - 1))
        age_z = rng.standard_normal()
        kyphosis_z = rng.standard_normal()
        cervical_z = rng.standard_normal()
        scoliosis_draw = rng.random()
        scoliosis_size = rng.random()
        transitional_draw = rng.random()
        hiatus_draw = rng.random()
        degeneration_draws = rng.random(len(DEGENERABLE))

        sex = self.sex or ("male" if sex_draw < 0.5 else "female")
        # adult heights: men 176 +- 7 cm, women 163 +- 6.5 cm (population surveys, rounded)
        if self.height_cm is not None:
            height_cm = float(self.height_cm)
        elif sex == "male":
            height_cm = 176.0 + 7.0 * height_z
        else:
            height_cm = 163.0 + 6.5 * height_z
        # a plausible adult pain-clinic BMI: 27 +- 4, kept within 19..40
        bmi = float(self.bmi_kg_m2) if self.bmi_kg_m2 is not None else float(
            np.clip(27.0 + 4.0 * bmi_draw, 19.0, 40.0))
        # pain-clinic adults: 55 +- 14 years, 20..90
        age = float(self.age_years) if self.age_years is not None else float(np.clip(55.0 + 14.0 * age_z, 20.0, 90.0))
        # recumbent lordosis 36.8 +- 13.2 deg (n=627), narrowed to the range a phantom handles
        lordosis = float(self.lordosis_deg) if self.lordosis_deg is not None else float(
            np.clip(36.8 + 8.0 * lordosis_z, 20.0, 50.0))
        # thoracic kyphosis ~40 +- 10 standing (Vialle 2005), a little flatter prone
        kyphosis = float(self.kyphosis_deg) if self.kyphosis_deg is not None else float(
            np.clip(36.0 + 8.0 * kyphosis_z, 20.0, 55.0))
        # cervical lordosis 12.7 (CI 6.6-18.8) standing (Guo 2018); neutral to slight prone
        cervical = float(self.cervical_lordosis_deg) if self.cervical_lordosis_deg is not None else float(
            np.clip(8.0 + 6.0 * cervical_z, -5.0, 25.0))
        # adult scoliosis > 10 deg in about 8%; the phantom's curves are mild (10-20 deg)
        if self.scoliosis_deg is not None:
            scoliosis = float(self.scoliosis_deg)
        else:
            scoliosis = float(10.0 + 10.0 * scoliosis_size) if scoliosis_draw < 0.08 else 0.0
        ssl = self.supraspinous_ends_at or ("L4" if ssl_draw < 0.73 else "L5")
        # lumbosacral transitional vertebrae: sacralisation ~7%, lumbarisation ~3% [R]
        if self.transitional is not None:
            transitional = self.transitional
        else:
            transitional = ("sacralized_L5" if transitional_draw < 0.07 else
                            "lumbarized_S1" if transitional_draw < 0.10 else "none")
        # hiatus: apex at S3 in ~15% (high); AP depth < 3 mm in ~9% (narrow); absent cornua ~5% [V/R]
        if self.hiatus is not None:
            hiatus = self.hiatus
        else:
            hiatus = ("high" if hiatus_draw < 0.15 else "narrow" if hiatus_draw < 0.24 else
                      "absent_cornua" if hiatus_draw < 0.29 else "typical")
        # degeneration rises with age, most at L4-L5 and L5-S1
        if self.degenerate_levels is not None:
            degenerate = tuple(self.degenerate_levels)
        else:
            base = float(np.clip((age - 35.0) / 60.0, 0.0, 0.6))
            weights = (0.3, 0.6, 1.0, 0.9)
            degenerate = tuple(lv for lv, w, u in zip(DEGENERABLE, weights, degeneration_draws) if u < base * w)
        return ResolvedPatient(seed=self.seed, sex=sex, age_years=age, height_cm=height_cm, bmi_kg_m2=bmi,
                               lordosis_deg=lordosis, kyphosis_deg=kyphosis, cervical_lordosis_deg=cervical,
                               scoliosis_deg=scoliosis, supraspinous_ends_at=ssl, transitional=transitional,
                               hiatus=hiatus, degenerate_levels=degenerate, shape_seed=shape_seed)


@dataclass(frozen=True)
class ResolvedPatient:
    """A patient with every parameter fixed (what a record stores to rebuild the body)."""

    seed: int
    sex: str
    age_years: float
    height_cm: float
    bmi_kg_m2: float
    lordosis_deg: float
    kyphosis_deg: float
    cervical_lordosis_deg: float
    scoliosis_deg: float
    supraspinous_ends_at: str
    transitional: str
    hiatus: str
    degenerate_levels: tuple[str, ...]
    shape_seed: int
    generator_version: str = field(default=GENERATOR_VERSION)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["degenerate_levels"] = list(self.degenerate_levels)
        return out

    @property
    def size_scale(self) -> float:
        """Linear scale of the skeleton against the reference adult of the sex (height ratio)."""
        reference = 176.0 if self.sex == "male" else 163.0
        return self.height_cm / reference


def validate_patient_values(values: dict) -> list[tuple[str, str]]:
    """Field problems as ``(field, message)`` pairs; empty when all given values are usable."""
    ranges = {"height_cm": (140.0, 210.0), "bmi_kg_m2": (16.0, 50.0), "lordosis_deg": (0.0, 70.0),
              "kyphosis_deg": (0.0, 80.0), "cervical_lordosis_deg": (-20.0, 40.0),
              "scoliosis_deg": (0.0, 30.0), "age_years": (18.0, 100.0)}
    problems = []
    for name, (lo, hi) in ranges.items():
        value = values.get(name)
        if value is not None and not (lo <= value <= hi):
            problems.append((name, f"must be between {lo:g} and {hi:g}"))
    for level in values.get("degenerate_levels") or ():
        if level not in DEGENERABLE:
            problems.append(("degenerate_levels", f"'{level}' is not one of {', '.join(DEGENERABLE)}"))
    return problems
