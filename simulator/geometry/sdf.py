"""Signed distance functions (SDF) over arrays of points, in millimetres.

Every function takes points ``p`` of shape ``(..., 3)`` (or ``(..., 2)`` for the 2-D ones) and
returns signed distances of shape ``p.shape[:-1]``: negative inside, positive outside. Shapes of the
anatomy are built from these by smooth unions, so surfaces blend like bone rather than meeting at
hard creases. Some primitives (ellipsoids, tapered and bent shapes) return a bound of the distance
rather than the exact distance; near the surface, where tissue shells are cut from the field, the
error is a small fraction of a millimetre for the proportions used here.
"""

from __future__ import annotations

import numpy as np


def length(v: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis."""
    return np.sqrt(np.einsum("...i,...i->...", v, v))


def smooth_min(a: np.ndarray, b: np.ndarray, k_mm: float) -> np.ndarray:
    """Polynomial smooth minimum (smooth union) with a blend radius of ``k_mm``."""
    if k_mm <= 0:
        return np.minimum(a, b)
    h = np.clip(0.5 + 0.5 * (b - a) / k_mm, 0.0, 1.0)
    return b + (a - b) * h - k_mm * h * (1.0 - h)


def smooth_max(a: np.ndarray, b: np.ndarray, k_mm: float) -> np.ndarray:
    """Smooth maximum (smooth intersection / subtraction with ``-b``)."""
    return -smooth_min(-a, -b, k_mm)


def union(*distances: np.ndarray, k_mm: float = 0.0) -> np.ndarray:
    """(Smooth) union of several fields."""
    out = distances[0]
    for d in distances[1:]:
        out = smooth_min(out, d, k_mm)
    return out


def sphere(p: np.ndarray, center, radius_mm: float) -> np.ndarray:
    return length(p - np.asarray(center, float)) - radius_mm


def ellipsoid(p: np.ndarray, center, radii_mm) -> np.ndarray:
    """Ellipsoid bound (Quilez): exact on the surface, close nearby."""
    r = np.asarray(radii_mm, float)
    q = p - np.asarray(center, float)
    k0 = length(q / r)
    k1 = length(q / (r * r))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = k0 * (k0 - 1.0) / k1
    return np.where(k1 > 1e-9, d, -np.min(r))


def ellipse_2d(q: np.ndarray, radii_mm) -> np.ndarray:
    """2-D ellipse bound in the plane; ``q`` has shape (..., 2), ``radii_mm`` broadcasts."""
    r = np.asarray(radii_mm, float)
    k0 = length(q / r)
    k1 = length(q / (r * r))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = k0 * (k0 - 1.0) / k1
    return np.where(k1 > 1e-9, d, -np.min(r, axis=-1) if r.ndim > 1 else -np.min(r))


def extrude(d2: np.ndarray, z: np.ndarray, half_height_mm, rounding_mm: float = 0.0) -> np.ndarray:
    """Extrude a 2-D field ``d2`` along ``z`` (centred on 0), with rounded edges."""
    dz = np.abs(z) - (np.asarray(half_height_mm) - rounding_mm)
    d2r = d2 + rounding_mm
    outside = np.sqrt(np.maximum(d2r, 0.0) ** 2 + np.maximum(dz, 0.0) ** 2)
    inside = np.minimum(np.maximum(d2r, dz), 0.0)
    return outside + inside - rounding_mm


def round_box(p: np.ndarray, center, half_mm, rounding_mm: float = 0.0) -> np.ndarray:
    """Axis-aligned box with rounded edges, in the frame of ``p``."""
    q = np.abs(p - np.asarray(center, float)) - (np.asarray(half_mm, float) - rounding_mm)
    outside = length(np.maximum(q, 0.0))
    inside = np.minimum(np.max(q, axis=-1), 0.0)
    return outside + inside - rounding_mm


def capsule(p: np.ndarray, a, b, radius_mm: float) -> np.ndarray:
    """Segment ``a``–``b`` swept by a sphere."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    pa = p - a
    ba = b - a
    h = np.clip((pa @ ba) / float(ba @ ba), 0.0, 1.0)
    return length(pa - h[..., None] * ba) - radius_mm


def round_cone(p: np.ndarray, a, b, ra_mm: float, rb_mm: float) -> np.ndarray:
    """Segment swept by a sphere whose radius goes linearly from ``ra_mm`` to ``rb_mm``.

    A bound, good while the taper is gentle (|ra - rb| well under the length).
    """
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    pa = p - a
    ba = b - a
    h = np.clip((pa @ ba) / float(ba @ ba), 0.0, 1.0)
    return length(pa - h[..., None] * ba) - (ra_mm + (rb_mm - ra_mm) * h)


def flat_capsule(p: np.ndarray, a, b, radius_mm: float, flat_axis, flat_ratio: float,
                 rb_mm: float | None = None) -> np.ndarray:
    """A capsule squashed along ``flat_axis`` (a unit vector) to ``flat_ratio`` of its radius.

    Used for plates of bone with rounded rims: laminae, transverse and articular processes.
    """
    n = np.asarray(flat_axis, float)
    n = n / np.linalg.norm(n)
    a = np.asarray(a, float)
    along = (p - a) @ n
    # stretch the flat direction so the round capsule becomes an oblate one
    q = p + ((1.0 / flat_ratio) - 1.0) * along[..., None] * n
    rb = radius_mm if rb_mm is None else rb_mm
    return round_cone(q, a, b, radius_mm, rb) * flat_ratio


def plane(p: np.ndarray, point, normal) -> np.ndarray:
    """Half-space; negative on the side opposite ``normal``."""
    n = np.asarray(normal, float)
    n = n / np.linalg.norm(n)
    return (p - np.asarray(point, float)) @ n


def shell(d: np.ndarray, thickness_mm: float) -> np.ndarray:
    """A shell of ``thickness_mm`` just inside the surface of ``d``."""
    return np.abs(d + 0.5 * thickness_mm) - 0.5 * thickness_mm
