"""Per-level dimensions of one patient's lumbar spine, from ``assets/morphometry_lumbar.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulator.anatomy.patient import ResolvedPatient
from simulator.assets import read_asset_text

LUMBAR_LEVELS = ("L1", "L2", "L3", "L4", "L5")

#: Female lumbar vertebrae are smaller at the same stature in the dry-bone series (Gujarat: L5 body
#: width 42.8 vs 46.0 mm, L1 31.6 vs 36.3): about 0.93 overall.
FEMALE_SCALE = 0.93


@dataclass(frozen=True)
class VertebraDims:
    """Dimensions of one lumbar vertebra (mm, degrees)."""

    level: str
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
    transverse_span_mm: float
    lamina_height_mm: float
    lamina_thickness_mm: float
    facet_angle_from_sagittal_deg: float


@dataclass(frozen=True)
class DiscDims:
    """The disc below a level and its ligamentum flavum."""

    level: str  # e.g. "L4-L5"
    anterior_height_mm: float
    middle_height_mm: float
    posterior_height_mm: float
    ligamentum_flavum_thickness_mm: float


@dataclass(frozen=True)
class LumbarMorphometry:
    vertebrae: tuple[VertebraDims, ...]
    discs: tuple[DiscDims, ...]
    sacral_slope_deg: float
    s1_endplate_width_mm: float
    s1_endplate_depth_mm: float


@lru_cache(maxsize=1)
def reference_table() -> dict:
    """The raw morphometry table (adult male means)."""
    return tomllib.loads(read_asset_text("morphometry_lumbar.toml"))


def lumbar_morphometry(patient: ResolvedPatient) -> LumbarMorphometry:
    """This patient's lumbar dimensions: the table scaled by sex and height, with seeded variation.

    Each dimension varies by a few percent (seeded); the spreads are smaller than the published SDs
    (e.g. L5 body depth 35.7 +- 3.5 mm) so that every seed stays a plausible adult.
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
            transverse_span_mm=v["transverse_span_mm"][i] * scale * jitter(0.04),
            lamina_height_mm=v["lamina_height_mm"][i] * scale * jitter(0.03),
            lamina_thickness_mm=v["lamina_thickness_mm"][i] * scale,
            facet_angle_from_sagittal_deg=v["facet_angle_from_sagittal_deg"][i] + 3.0 * float(
                np.clip(rng.standard_normal(), -2, 2)),
        ))
    discs = []
    for i, level in enumerate(d["levels"]):
        # +-1-2 mm per disc (the reference's advice), as one factor on the disc's heights
        disc = 1.0 + 0.08 * float(np.clip(rng.standard_normal(), -2, 2))
        discs.append(DiscDims(
            level=level,
            anterior_height_mm=d["anterior_height_mm"][i] * scale * disc,
            middle_height_mm=d["middle_height_mm"][i] * scale * disc,
            posterior_height_mm=d["posterior_height_mm"][i] * scale * disc,
            ligamentum_flavum_thickness_mm=d["ligamentum_flavum_thickness_mm"][i] * jitter(0.06),
        ))
    s = table["sacrum"]
    return LumbarMorphometry(
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
    return VertebraDims(level=level, **{k: v[k][i] for k in (
        "endplate_width_mm", "endplate_depth_mm", "body_height_posterior_mm", "canal_width_mm",
        "canal_depth_mm", "pedicle_width_mm", "pedicle_height_mm", "pedicle_transverse_angle_deg",
        "spinous_length_mm", "spinous_height_mm", "transverse_span_mm", "lamina_height_mm",
        "lamina_thickness_mm", "facet_angle_from_sagittal_deg")}, body_wedge_deg=v["body_wedge_male_deg"][i])


__all__ = ["LUMBAR_LEVELS", "VertebraDims", "DiscDims", "LumbarMorphometry", "lumbar_morphometry",
           "reference_vertebra"]
