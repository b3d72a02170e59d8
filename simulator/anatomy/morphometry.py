"""Per-level dimensions of one patient's spine (C2 to L5), from ``assets/morphometry_spine.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulator.anatomy.patient import ResolvedPatient
from simulator.assets import read_asset_text

#: Female vertebrae are smaller at the same stature in the dry-bone series (Gujarat: L5 body width
#: 42.8 vs 46.0 mm, L1 31.6 vs 36.3): about 0.93 overall.
FEMALE_SCALE = 0.93

#: A degenerate interspace: the disc narrowed and the ligamentum flavum thickened by these factors.
DEGENERATE_DISC_FACTOR = 0.7
DEGENERATE_FLAVUM_FACTOR = 1.4

#: Fields of VertebraDims read from the table (one value per level).
_VERTEBRA_FIELDS = (
    "endplate_width_mm", "endplate_depth_mm", "body_height_posterior_mm", "canal_width_mm",
    "canal_depth_mm", "pedicle_width_mm", "pedicle_height_mm", "pedicle_transverse_angle_deg",
    "spinous_length_mm", "spinous_height_mm", "spinous_inclination_deg", "transverse_span_mm",
    "lamina_height_mm", "lamina_thickness_mm", "facet_angle_from_sagittal_deg",
    "facet_angle_to_horizontal_deg")


@dataclass(frozen=True)
class VertebraDims:
    """Dimensions of one vertebra (mm, degrees)."""

    level: str
    region: str  # "cervical", "thoracic", "lumbar" (or "sacral" for the S1 segment)
    endplate_width_mm: float
    endplate_depth_mm: float
    body_height_posterior_mm: float
    body_wedge_deg: float
    canal_width_mm: float
    canal_depth_mm: float
    pedicle_width_mm: float
    pedicle_height_mm: float
    pedicle_transverse_angle_deg: float
    spinous_length_mm: float
    spinous_height_mm: float
    spinous_inclination_deg: float
    transverse_span_mm: float
    lamina_height_mm: float
    lamina_thickness_mm: float
    facet_angle_from_sagittal_deg: float
    facet_angle_to_horizontal_deg: float


@dataclass(frozen=True)
class DiscDims:
    """The disc below a level and the ligamentum flavum of that interspace."""

    level: str  # e.g. "L4-L5"
    anterior_height_mm: float
    middle_height_mm: float
    posterior_height_mm: float
    ligamentum_flavum_thickness_mm: float
    ligamentum_flavum_gap: bool  # a midline gap in the ligament (false loss of resistance)


@dataclass(frozen=True)
class SpineMorphometry:
    vertebrae: tuple[VertebraDims, ...]
    discs: tuple[DiscDims, ...]
    sacral_slope_deg: float
    s1_endplate_width_mm: float
    s1_endplate_depth_mm: float

    def vertebra(self, level: str) -> VertebraDims:
        return next(v for v in self.vertebrae if v.level == level)

    def disc(self, interspace: str) -> DiscDims:
        return next(d for d in self.discs if d.level == interspace)


@lru_cache(maxsize=1)
def reference_table() -> dict:
    """The raw morphometry table (adult male means)."""
    return tomllib.loads(read_asset_text("morphometry_spine.toml"))


def spine_morphometry(patient: ResolvedPatient) -> SpineMorphometry:
    """This patient's dimensions: the table scaled by sex and height, with seeded variation.

    Each dimension varies by a few percent (seeded); the spreads are smaller than the published SDs
    (e.g. L5 body depth 35.7 +- 3.5 mm) so that every seed stays a plausible adult. Degenerate
    interspaces (``patient.degenerate_levels``) get a disc narrowed by 30% and a ligamentum flavum
    thickened by 40%.
    """
    table = reference_table()
    v = table["vertebra"]
    d = table["disc"]
    scale = patient.size_scale * (FEMALE_SCALE if patient.sex == "female" else 1.0)
    rng = np.random.default_rng([patient.shape_seed, 2])
    wedge_key = "body_wedge_male_deg" if patient.sex == "male" else "body_wedge_female_deg"

    def jitter(sd_fraction: float) -> float:
        return float(1.0 + sd_fraction * np.clip(rng.standard_normal(), -2.0, 2.0))

    vertebrae = []
    for i, level in enumerate(table["levels"]):
        body = jitter(0.03)  # body dimensions vary together
        vertebrae.append(VertebraDims(
            level=level,
            region=table["region"][i],
            endplate_width_mm=v["endplate_width_mm"][i] * scale * body,
            endplate_depth_mm=v["endplate_depth_mm"][i] * scale * body,
            body_height_posterior_mm=v["body_height_posterior_mm"][i] * scale * jitter(0.03),
            body_wedge_deg=v[wedge_key][i],
            canal_width_mm=v["canal_width_mm"][i] * scale * jitter(0.04),
            canal_depth_mm=v["canal_depth_mm"][i] * scale * jitter(0.04),
            pedicle_width_mm=v["pedicle_width_mm"][i] * scale * jitter(0.05),
            pedicle_height_mm=v["pedicle_height_mm"][i] * scale * jitter(0.04),
            pedicle_transverse_angle_deg=v["pedicle_transverse_angle_deg"][i],
            spinous_length_mm=v["spinous_length_mm"][i] * scale * jitter(0.05),
            spinous_height_mm=v["spinous_height_mm"][i] * scale * jitter(0.05),
            spinous_inclination_deg=v["spinous_inclination_deg"][i],
            transverse_span_mm=v["transverse_span_mm"][i] * scale * jitter(0.04),
            lamina_height_mm=v["lamina_height_mm"][i] * scale * jitter(0.03),
            lamina_thickness_mm=v["lamina_thickness_mm"][i] * scale,
            facet_angle_from_sagittal_deg=v["facet_angle_from_sagittal_deg"][i] + 3.0 * float(
                np.clip(rng.standard_normal(), -2, 2)),
            facet_angle_to_horizontal_deg=v["facet_angle_to_horizontal_deg"][i],
        ))
    discs = []
    for i, level in enumerate(d["levels"]):
        # +-1-2 mm per disc (the reference's advice), as one factor on the disc's heights
        disc = 1.0 + 0.08 * float(np.clip(rng.standard_normal(), -2, 2))
        lf = d["ligamentum_flavum_thickness_mm"][i] * jitter(0.06)
        gap = bool(rng.random() < d["ligamentum_flavum_gap_probability"][i])
        if level in patient.degenerate_levels:
            disc *= DEGENERATE_DISC_FACTOR
            lf *= DEGENERATE_FLAVUM_FACTOR
        if level == "L5-S1" and patient.transitional == "sacralized_L5":
            disc *= 0.4  # a rudimentary disc under a sacralised L5
        discs.append(DiscDims(
            level=level,
            anterior_height_mm=d["anterior_height_mm"][i] * scale * disc,
            middle_height_mm=d["middle_height_mm"][i] * scale * disc,
            posterior_height_mm=d["posterior_height_mm"][i] * scale * disc,
            ligamentum_flavum_thickness_mm=lf,
            ligamentum_flavum_gap=gap,
        ))
    s = table["sacrum"]
    return SpineMorphometry(
        vertebrae=tuple(vertebrae),
        discs=tuple(discs),
        sacral_slope_deg=s["sacral_slope_prone_deg"],
        s1_endplate_width_mm=s["s1_endplate_width_mm"] * scale,
        s1_endplate_depth_mm=s["s1_endplate_depth_mm"] * scale,
    )


def reference_vertebra(level: str) -> VertebraDims:
    """The table's values for ``level`` (adult male means, no scaling), for tests and docs."""
    table = reference_table()
    i = table["levels"].index(level)
    v = table["vertebra"]
    return VertebraDims(level=level, region=table["region"][i], body_wedge_deg=v["body_wedge_male_deg"][i],
                        **{k: v[k][i] for k in _VERTEBRA_FIELDS})
