"""A patient: the small set of seeded parameters the phantom generator builds a body from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

#: Bumped whenever the generator would build a different body from the same parameters, so an old
#: attempt record says which generator its patient came from. (Caches are also keyed by a
#: fingerprint of the generator's source, see :func:`generator_fingerprint`.)
GENERATOR_VERSION = "lumbar-1"


def generator_fingerprint() -> str:
    """Hash of the anatomy generator's code and data: a cache built by other code is not reused."""
    import hashlib
    from pathlib import Path

    from simulator.assets import read_asset_text

    digest = hashlib.sha256(GENERATOR_VERSION.encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    for asset in ("tissues.toml", "morphometry_lumbar.toml"):
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
    height_cm : float or None
    bmi_kg_m2 : float or None
        Body-mass index; drives subcutaneous fat and so the skin-to-epidural depth.
    lordosis_deg : float or None
        Lumbar lordosis L1-S1 in the procedure position (prone, recumbent).
    supraspinous_ends_at : {"L4", "L5"} or None
        Lowest spinous process the supraspinous ligament reaches (L4 in about 73%).
    """

    seed: int = 0
    sex: str | None = None
    height_cm: float | None = None
    bmi_kg_m2: float | None = None
    lordosis_deg: float | None = None
    supraspinous_ends_at: str | None = None

    def resolved(self) -> "ResolvedPatient":
        """Every parameter fixed: drawn from the seed where not given."""
        rng = np.random.default_rng([self.seed, 1])
        # draw every value in a fixed order, whether or not it is used, so giving one parameter
        # never changes the others
        sex_draw = rng.random()
        height_z = rng.standard_normal()
        bmi_draw = rng.standard_normal()
        lordosis_z = rng.standard_normal()
        ssl_draw = rng.random()
        shape_seed = int(rng.integers(0, 2**31 - 1))

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
        # recumbent lordosis 36.8 +- 13.2 deg (n=627), narrowed to the range a phantom handles
        lordosis = float(self.lordosis_deg) if self.lordosis_deg is not None else float(
            np.clip(36.8 + 8.0 * lordosis_z, 20.0, 55.0))
        ssl = self.supraspinous_ends_at or ("L4" if ssl_draw < 0.73 else "L5")
        return ResolvedPatient(seed=self.seed, sex=sex, height_cm=height_cm, bmi_kg_m2=bmi,
                               lordosis_deg=lordosis, supraspinous_ends_at=ssl,
                               shape_seed=shape_seed)


@dataclass(frozen=True)
class ResolvedPatient:
    """A patient with every parameter fixed (what a record stores to rebuild the body)."""

    seed: int
    sex: str
    height_cm: float
    bmi_kg_m2: float
    lordosis_deg: float
    supraspinous_ends_at: str
    shape_seed: int
    generator_version: str = field(default=GENERATOR_VERSION)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def size_scale(self) -> float:
        """Linear scale of the skeleton against the reference adult of the sex (height ratio)."""
        reference = 176.0 if self.sex == "male" else 163.0
        return self.height_cm / reference


def validate_patient_values(sex, height_cm, bmi_kg_m2, lordosis_deg, supraspinous_ends_at) -> list[tuple[str, str]]:
    """Field problems as ``(field, message)`` pairs; empty when all given values are usable."""
    problems = []
    if sex is not None and sex not in ("male", "female"):
        problems.append(("sex", "must be 'male' or 'female'"))
    if height_cm is not None and not (140.0 <= height_cm <= 210.0):
        problems.append(("height_cm", "must be between 140 and 210"))
    if bmi_kg_m2 is not None and not (16.0 <= bmi_kg_m2 <= 50.0):
        problems.append(("bmi_kg_m2", "must be between 16 and 50"))
    if lordosis_deg is not None and not (0.0 <= lordosis_deg <= 70.0):
        problems.append(("lordosis_deg", "must be between 0 and 70"))
    if supraspinous_ends_at is not None and supraspinous_ends_at not in ("L4", "L5"):
        problems.append(("supraspinous_ends_at", "must be 'L4' or 'L5'"))
    return problems
