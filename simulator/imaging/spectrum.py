"""The tube's spectrum in the image: transmission summed over energy, not taken at one energy.

The line integrals are computed at 60 keV. A real beam is a spectrum: its soft photons are
absorbed first, so a thick patient hardens the beam and attenuates less per millimetre than its
first centimetres do (beam hardening), and a higher kVp lowers all contrast. For a line integral
``A`` (at 60 keV) the detector sees

    T(A) = sum_i w_i exp(-A r_i),

with ``w_i`` the spectrum's energy-weighted bins and ``r_i`` water's attenuation at each bin's energy
relative to 60 keV (``assets/xray_tube.toml``, SpekPy and xraydb); the image shows ``-ln T``.

Four materials have their own energy dependence:

- **soft tissue** (everything up to :data:`SOFT_TISSUE_MU_60KEV_PER_MM` at 60 keV): water's;
- **bone**: a bone voxel is soft tissue plus an excess whose energy dependence is cortical bone's
  less the soft part (ICRU-44); the ray-caster integrates the excess separately, so bone is darker
  at low kVp than soft tissue is, as on a C-arm (:func:`polychromatic_anatomy`, a two-dimensional
  table per tabulated kVp);
- the **steel** needle (iron's steep fall with energy) and **iodine** (its K-edge at 33.2 keV):
  each pixel they cross is summed over the spectrum with all four (:func:`polychromatic_materials`).
"""

from __future__ import annotations

import tomllib
from functools import lru_cache

import numpy as np

from simulator.assets import read_asset_text

@lru_cache(maxsize=1)
def _tube() -> dict:
    return tomllib.loads(read_asset_text("xray_tube.toml"))


def _tube_rows() -> list[dict]:
    return _tube()["kvp"]


#: Attenuation at 60 keV up to which a voxel counts as soft tissue, 1/mm (``assets/xray_tube.toml``).
SOFT_TISSUE_MU_60KEV_PER_MM = float(_tube()["soft_tissue_mu_60kev_per_mm"])


def _neighbours(kvp: float) -> list[tuple[float, int]]:
    """(blend fraction, row index) of the two tabulated spectra either side of ``kvp``."""
    kvps = np.array([float(r["kvp"]) for r in _tube_rows()])
    i = int(np.clip(np.searchsorted(kvps, kvp), 1, len(kvps) - 1))
    f = float(np.clip((kvp - kvps[i - 1]) / (kvps[i] - kvps[i - 1]), 0.0, 1.0))
    return [(1.0 - f, i - 1), (f, i)]


@lru_cache(maxsize=16)
def _bins(row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(weights, water, iodine, iron and bone-excess attenuation relative to 60 keV) of a tabulated
    spectrum."""
    r = _tube_rows()[row]
    w = np.asarray(r["bin_energy_weight"], float)
    return (w / w.sum(), np.asarray(r["bin_water_mu_relative_to_60kev"], float),
            np.asarray(r["bin_iodine_mu_relative_to_60kev"], float),
            np.asarray(r["bin_iron_mu_relative_to_60kev"], float),
            np.asarray(r["bin_bone_excess_mu_relative_to_60kev"], float))


#: The two-dimensional anatomy table's grid: soft-tissue and bone-excess line integrals at 60 keV
#: (the transmission is smooth in both, so bilinear interpolation is exact to ~1e-4).
_SOFT_STEP, _SOFT_MAX = 0.02, 30.0
_BONE_STEP, _BONE_MAX = 0.02, 8.0


@lru_cache(maxsize=16)
def _anatomy_transmission(row: int) -> np.ndarray:
    """Transmission of a tabulated spectrum over the (soft, bone excess) grid."""
    w, r_water, _, _, r_bone = _bins(row)
    soft = np.arange(0.0, _SOFT_MAX + _SOFT_STEP / 2, _SOFT_STEP)
    bone = np.arange(0.0, _BONE_MAX + _BONE_STEP / 2, _BONE_STEP)
    out = np.zeros((len(soft), len(bone)), np.float32)
    for wi, rw, rb in zip(w, r_water, r_bone, strict=True):
        out += np.float32(wi) * np.exp(-soft * rw)[:, None].astype(np.float32) * np.exp(-bone * rb)[None, :].astype(np.float32)
    return out


def polychromatic_anatomy(anatomy_60kev: np.ndarray, bone_excess_60kev: np.ndarray, kvp: float) -> np.ndarray:
    """What the detector sees (as a line integral) of the anatomy at ``kvp``: its soft tissue with
    water's energy dependence and its bone excess with bone's."""
    bone = np.clip(bone_excess_60kev, 0.0, _BONE_MAX - 1e-3)
    soft = np.clip(anatomy_60kev - bone, 0.0, _SOFT_MAX - 1e-3)
    fs, fb = soft * np.float32(1.0 / _SOFT_STEP), bone * np.float32(1.0 / _BONE_STEP)
    i, j = fs.astype(np.int32), fb.astype(np.int32)
    ds, db = fs - i, fb - j
    transmitted = np.zeros(anatomy_60kev.shape, np.float32)
    for fraction, row in _neighbours(round(float(kvp), 1)):
        if fraction <= 0.0:
            continue
        t = _anatomy_transmission(row)
        transmitted += np.float32(fraction) * ((t[i, j] * (1 - db) + t[i, j + 1] * db) * (1 - ds)
                                               + (t[i + 1, j] * (1 - db) + t[i + 1, j + 1] * db) * ds)
    return -np.log(np.maximum(transmitted, np.float32(1e-30)))


def polychromatic_materials(anatomy_seen: np.ndarray, anatomy_60kev: np.ndarray, bone_at,
                            steel_60kev: np.ndarray | None, iodine_60kev: np.ndarray | None, kvp: float,
                            box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """What the detector sees (as a line integral) of the anatomy plus a steel needle and iodinated
    contrast, each with its own energy dependence: iron falls steeply with energy and iodine jumps
    at its K-edge (33.2 keV), so both stand out more at low kVp than water does. Pixels with steel
    or iodine (all inside ``box``, rows ``r0:r1`` and columns ``c0:c1``, if given) are summed over
    the spectrum exactly; the others keep ``anatomy_seen`` (:func:`polychromatic_anatomy`).

    ``bone_at(rows, cols)``: the anatomy's bone-excess line integrals at those pixels."""
    seen = anatomy_seen.copy()
    r0, r1, c0, c1 = box if box is not None else (0, anatomy_60kev.shape[0], 0, anatomy_60kev.shape[1])
    window = (slice(r0, r1), slice(c0, c1))
    parts = [p[window] for p in (steel_60kev, iodine_60kev) if p is not None]
    if not parts or r1 <= r0 or c1 <= c0:
        return seen
    rows, cols = np.nonzero(sum(parts) > 1e-4)
    if rows.size == 0:
        return seen
    rows, cols = rows + r0, cols + c0
    b = np.asarray(bone_at(rows, cols), float)[:, None]
    a = anatomy_60kev[rows, cols].astype(float)[:, None] - b
    s = (steel_60kev[rows, cols].astype(float) if steel_60kev is not None else np.zeros(rows.size))[:, None]
    i = (iodine_60kev[rows, cols].astype(float) if iodine_60kev is not None else np.zeros(rows.size))[:, None]
    transmitted = np.zeros(rows.size)
    for fraction, row in _neighbours(round(float(kvp), 1)):
        if fraction > 0.0:
            w, r_water, r_iodine, r_iron, r_bone = _bins(row)
            transmitted += fraction * (np.exp(-(a * r_water + b * r_bone + i * r_iodine + s * r_iron)) @ w)
    seen[rows, cols] = -np.log(np.maximum(transmitted, 1e-30))
    return seen
