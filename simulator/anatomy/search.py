"""Finding the nearest point of a tissue: thin spaces (a joint, the fat of a narrow canal) lie
wherever the surrounding structures put them, so landmarks, targets and contrast seeds are found by
searching round a nominal point."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def nearest_of(tissue_at: Callable[[np.ndarray], np.ndarray], point, tissue_ids, reach_mm: float,
               step_mm: float = 0.5, clearance_mm: float = 0.0) -> np.ndarray | None:
    """The point nearest ``point`` whose tissue is one of ``tissue_ids``, on a ``step_mm`` lattice
    within ``reach_mm`` (None if there is none).

    ``tissue_at``: world points (N, 3) to tissue ids (exact, or the voxel labels for speed).
    ``clearance_mm``: prefer a point whose six neighbours that far away are of the same tissues (not
    at the edge of the space); the nearest of all if none is.
    """
    p = np.asarray(point, float)
    axis = np.arange(-reach_mm, reach_mm + 1e-9, step_mm)
    offsets = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    offsets = offsets[np.linalg.norm(offsets, axis=1) <= reach_mm]
    hits = offsets[np.isin(tissue_at(p + offsets), tissue_ids)]
    if len(hits) == 0:
        return None
    hits = hits[np.argsort(np.linalg.norm(hits, axis=1))]
    if clearance_mm > 0.0:
        around = np.vstack([np.eye(3), -np.eye(3)]) * clearance_mm
        for hit in hits[:400]:
            if np.isin(tissue_at(p + hit + around), tissue_ids).all():
                return p + hit
    return p + hits[0]


#: The 26 directions of a cube's faces, edges and corners (unit vectors).
_DIRECTIONS = np.array([d for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)], float) - 1.0
_DIRECTIONS /= np.linalg.norm(_DIRECTIONS, axis=1)[:, None]
#: Shells searched round a point, mm.
SHELLS_MM = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0])


def closest_approach(tissue_at: Callable[[np.ndarray], np.ndarray], points, groups: dict[str, np.ndarray],
                     own_ids: np.ndarray | None = None) -> dict[str, float]:
    """For each group of tissue ids, the least distance (mm, to the nearest shell of
    :data:`SHELLS_MM` in 26 directions) from any of ``points`` to a tissue of the group: 0 when a
    point lies in it; groups with none within the last shell are left out. ``own_ids``: the
    points' own tissues when known (the needle's track), else looked up."""
    pts = np.atleast_2d(np.asarray(points, float))
    offsets = (SHELLS_MM[:, None, None] * _DIRECTIONS[None]).reshape(-1, 3)
    own = tissue_at(pts) if own_ids is None else np.asarray(own_ids)
    around = tissue_at((pts[:, None, :] + offsets[None]).reshape(-1, 3)).reshape(len(pts), len(SHELLS_MM), -1)
    out = {}
    for name, ids in groups.items():
        if np.isin(own, ids).any():
            out[name] = 0.0
            continue
        hit = np.isin(around, ids).any(axis=2)  # (points, shells)
        if hit.any():
            out[name] = float(SHELLS_MM[np.argmax(hit, axis=1)[hit.any(axis=1)]].min())
    return out
