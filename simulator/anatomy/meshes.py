"""Smooth surface meshes of the anatomy's structures, from their implicit fields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.measure import marching_cubes

from simulator.anatomy.phantom import SpinePhantom, VolumeGrid


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh in world mm.

    Attributes
    ----------
    vertices_mm : ndarray (N, 3), float32
    faces : ndarray (M, 3), int32
    group : str
        ``bone``, ``disc``, ``ligament``, ``neural``, ``joint``, ``skin``.
    """

    vertices_mm: np.ndarray
    faces: np.ndarray
    group: str


def _mesh_from_distance(d: np.ndarray, grid: VolumeGrid, group: str) -> Mesh | None:
    if not (d.min() < 0.0 < d.max()):
        return None
    # pad so surfaces touching the box close
    padded = np.pad(d, 1, constant_values=max(float(d.max()), 1.0))
    verts, faces, _, _ = marching_cubes(padded, 0.0, spacing=(grid.voxel_mm,) * 3)
    verts = verts - grid.voxel_mm + grid.lo_mm
    return Mesh(verts.astype(np.float32), faces.astype(np.int32), group)


def structure_mesh(phantom: SpinePhantom, name: str, voxel_mm: float = 0.8,
                   clip: np.ndarray | None = None) -> Mesh | None:
    """Mesh of one named structure (``None`` if it has no inside within ``clip``)."""
    s = phantom.structure(name)
    lo, hi = s.bbox_mm
    if clip is not None:
        lo, hi = np.maximum(lo, clip[0]), np.minimum(hi, clip[1])
        if np.any(hi <= lo):
            return None
    grid = VolumeGrid.covering(lo, hi, voxel_mm)
    return _mesh_from_distance(phantom.structure_distance(name, grid), grid, s.group)


def skin_mesh(phantom: SpinePhantom, bounds: np.ndarray, voxel_mm: float = 2.0) -> Mesh | None:
    """Mesh of the skin surface inside ``bounds``."""
    grid = VolumeGrid.covering(bounds[0], bounds[1], voxel_mm)
    return _mesh_from_distance(phantom.skin_distance(grid), grid, "skin")


#: Structures drawn in the 3D view (the torso layers are drawn as the skin only).
DISPLAY_GROUPS = ("bone", "disc", "ligament", "neural", "joint", "vessel", "organ")
