"""The tube's spectrum in the image: transmission summed over energy, not taken at one energy.

The line integrals are computed at 60 keV. A real beam is a spectrum: its soft photons are
absorbed first, so a thick patient hardens the beam and attenuates less per millimetre than its
first centimetres do (beam hardening), and a higher kVp lowers all contrast. For a line integral
``A`` (at 60 keV) the detector sees

    T(A) = sum_i w_i exp(-A r_i),

with ``w_i`` the spectrum's energy-weighted bins and ``r_i`` water's attenuation at each bin's energy
relative to 60 keV (``assets/xray_tube.toml``, SpekPy and xraydb); the image shows ``-ln T``.

The anatomy is given water's energy dependence (one material): bone's steeper fall with energy is
not separated from it, so the model gets beam hardening and the kVp's effect on contrast right in
kind and for soft tissue in size, and bone contrast somewhat too low at low kVp and too high at
high kVp. The steel needle and the iodine of contrast have their own energy dependence
(:func:`polychromatic_materials`): each pixel they cross is summed over the spectrum with all
three materials, so iodine's K-edge and iron's steep fall show as they do on a C-arm.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache

import numpy as np

from simulator.assets import read_asset_text

#: The line-integral grid of the lookup tables (dimensionless, at 60 keV): fine enough that the
#: nearest entry is within 0.0025 of the answer (under a fifth of a grey level on the monitor).
_STEP = 0.005
_GRID = np.arange(0.0, 30.0 + _STEP / 2, _STEP)


@lru_cache(maxsize=1)
def _spectra() -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    data = tomllib.loads(read_asset_text("xray_tube.toml"))
    kvps = np.array([float(r["kvp"]) for r in data["kvp"]])
    bins = [(np.asarray(r["bin_energy_weight"], float), np.asarray(r["bin_water_mu_relative_to_60kev"], float))
            for r in data["kvp"]]
    return kvps, bins


def effective_integral(integral_60kev, weights, relative_mu) -> np.ndarray:
    """``-ln sum_i w_i exp(-A r_i)`` for line integrals ``A`` (weights normalised here)."""
    a = np.asarray(integral_60kev, float)
    w = np.asarray(weights, float) / np.sum(weights)
    return -np.log(np.exp(-a[..., None] * np.asarray(relative_mu, float)) @ w)


@lru_cache(maxsize=32)
def _table(kvp_key: float) -> np.ndarray:
    kvps, bins = _spectra()
    i = int(np.clip(np.searchsorted(kvps, kvp_key), 1, len(kvps) - 1))
    lo, hi = kvps[i - 1], kvps[i]
    f = float(np.clip((kvp_key - lo) / (hi - lo), 0.0, 1.0))
    # between two tabulated kVps, blend their transmissions (their spectra)
    t_lo = np.exp(-effective_integral(_GRID, *bins[i - 1]))
    t_hi = np.exp(-effective_integral(_GRID, *bins[i]))
    return (-np.log((1.0 - f) * t_lo + f * t_hi)).astype(np.float32)


def polychromatic(integral_60kev: np.ndarray, kvp: float) -> np.ndarray:
    """What the detector sees, as a line integral, for 60 keV line integrals at ``kvp``."""
    table = _table(round(float(kvp), 1))
    # the nearest entry: a lookup per pixel (np.interp's search costs three times as much)
    index = np.clip(np.asarray(integral_60kev, np.float32) * np.float32(1.0 / _STEP) + np.float32(0.5),
                    0.0, len(_GRID) - 1).astype(np.int32)
    return table[index]


@lru_cache(maxsize=32)
def _material_bins(kvp_key: float) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(blend fraction, weights, water, iodine and iron attenuation relative to 60 keV) of the two
    tabulated spectra either side of ``kvp_key``."""
    data = tomllib.loads(read_asset_text("xray_tube.toml"))["kvp"]
    kvps = np.array([float(r["kvp"]) for r in data])
    i = int(np.clip(np.searchsorted(kvps, kvp_key), 1, len(kvps) - 1))
    f = float(np.clip((kvp_key - kvps[i - 1]) / (kvps[i] - kvps[i - 1]), 0.0, 1.0))

    def bins(row):
        w = np.asarray(row["bin_energy_weight"], float)
        return (w / w.sum(), np.asarray(row["bin_water_mu_relative_to_60kev"], float),
                np.asarray(row["bin_iodine_mu_relative_to_60kev"], float),
                np.asarray(row["bin_iron_mu_relative_to_60kev"], float))

    return [(1.0 - f, *bins(data[i - 1])), (f, *bins(data[i]))]


def polychromatic_materials(anatomy_60kev: np.ndarray, steel_60kev: np.ndarray | None,
                            iodine_60kev: np.ndarray | None, kvp: float,
                            box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """What the detector sees (as a line integral) of the anatomy plus a steel needle and iodinated
    contrast, each with its own energy dependence: iron falls steeply with energy and iodine jumps
    at its K-edge (33.2 keV), so both stand out more at low kVp than water does. Pixels with steel
    or iodine (all inside ``box``, rows ``r0:r1`` and columns ``c0:c1``, if given) are summed over
    the spectrum exactly; the others use :func:`polychromatic`."""
    seen = polychromatic(anatomy_60kev, kvp)
    r0, r1, c0, c1 = box if box is not None else (0, anatomy_60kev.shape[0], 0, anatomy_60kev.shape[1])
    window = (slice(r0, r1), slice(c0, c1))
    parts = [p[window] for p in (steel_60kev, iodine_60kev) if p is not None]
    if not parts or r1 <= r0 or c1 <= c0:
        return seen
    rows, cols = np.nonzero(sum(parts) > 1e-4)
    if rows.size == 0:
        return seen
    rows, cols = rows + r0, cols + c0
    a = anatomy_60kev[rows, cols].astype(float)[:, None]
    s = (steel_60kev[rows, cols].astype(float) if steel_60kev is not None else np.zeros(rows.size))[:, None]
    i = (iodine_60kev[rows, cols].astype(float) if iodine_60kev is not None else np.zeros(rows.size))[:, None]
    transmitted = np.zeros(rows.size)
    for fraction, w, r_water, r_iodine, r_iron in _material_bins(round(float(kvp), 1)):
        if fraction > 0.0:
            transmitted += fraction * (np.exp(-(a * r_water + i * r_iodine + s * r_iron)) @ w)
    seen[rows, cols] = -np.log(np.maximum(transmitted, 1e-30))
    return seen
