"""Sampling implicit fields on regular grids, exactly near surfaces and coarsely elsewhere.

A field is evaluated first on a grid four times coarser, then twice coarser, then at full
resolution, each time only where the coarser level says a surface may be near. Fields here are
(close to) 1-Lipschitz, so a value farther from zero than the coarser cell's diagonal cannot hide a
surface: this keeps voxelisation and meshing fast without losing thin features.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from simulator.anatomy.structures import Field

COARSE_FACTOR = 4


def grid_axes(lo_mm: np.ndarray, shape: tuple[int, int, int], voxel_mm: float) -> list[np.ndarray]:
    """World coordinates of voxel centres along each axis."""
    return [lo_mm[i] + voxel_mm * np.arange(shape[i]) for i in range(3)]


def _evaluate_grid(field: Field, axes: list[np.ndarray], chunk_points: int = 2_000_000) -> np.ndarray:
    shape = tuple(len(a) for a in axes)
    out = np.empty(shape, np.float32)
    plane = shape[1] * shape[2]
    step = max(1, chunk_points // max(plane, 1))
    yy, zz = np.meshgrid(axes[1], axes[2], indexing="ij")
    for i0 in range(0, shape[0], step):
        xs = axes[0][i0:i0 + step]
        pts = np.empty((len(xs), shape[1], shape[2], 3))
        pts[..., 0] = xs[:, None, None]
        pts[..., 1] = yy[None]
        pts[..., 2] = zz[None]
        out[i0:i0 + len(xs)] = field(pts.reshape(-1, 3)).reshape(len(xs), shape[1], shape[2])
    return out


def _refine(field: Field, coarse: np.ndarray, factor: int, lo: np.ndarray, shape, voxel_mm: float,
            band_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Values on the grid ``shape`` (spacing ``voxel_mm``) from a grid ``factor`` times coarser:
    exact where the coarse values come within reach of the surface, interpolated elsewhere."""
    fine_idx = [np.arange(n) / factor for n in shape]
    grids = np.meshgrid(*fine_idx, indexing="ij", sparse=True)
    approx = ndimage.map_coordinates(coarse, np.broadcast_arrays(*grids), order=1, mode="nearest")
    reach = band_mm + voxel_mm * factor * np.sqrt(3.0)
    near = np.abs(approx) < reach
    out = approx.astype(np.float32)
    idx = np.nonzero(near)
    if idx[0].size:
        pts = lo + voxel_mm * np.stack(idx, axis=1).astype(float)
        values = np.empty(len(pts), np.float32)
        chunk = 1_000_000
        for k in range(0, len(pts), chunk):
            values[k:k + chunk] = field(pts[k:k + chunk])
        out[idx] = values
    return out, near


def sample_field(field: Field, lo_mm, shape: tuple[int, int, int], voxel_mm: float,
                 band_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Signed distances on a grid, exact within ``band_mm`` of the surface.

    Parameters
    ----------
    field : callable
        World points (N, 3) -> signed distance (mm).
    lo_mm : array (3,)
        World position of voxel (0, 0, 0)'s centre.
    shape : tuple of int
        Grid shape.
    voxel_mm : float
        Grid spacing.
    band_mm : float
        Values with ``|d| < band_mm`` are exact; farther ones are interpolated from coarser grids
        (their sign is always right).

    Returns
    -------
    distances : ndarray (float32, ``shape``)
    exact : ndarray (bool, ``shape``)
        Where the value was evaluated exactly.
    """
    lo = np.asarray(lo_mm, float)
    coarse_shape = tuple(int(np.ceil((n - 1) / COARSE_FACTOR)) + 2 for n in shape)
    coarse = _evaluate_grid(field, grid_axes(lo, coarse_shape, voxel_mm * COARSE_FACTOR))
    # a middle level (twice coarser) narrows the shell the full-resolution pass must evaluate
    half = COARSE_FACTOR // 2
    mid_shape = tuple(int(np.ceil((n - 1) / half)) + 1 for n in shape)
    middle, _ = _refine(field, coarse, COARSE_FACTOR // half, lo, mid_shape, voxel_mm * half, band_mm + voxel_mm * half)
    return _refine(field, middle, half, lo, shape, voxel_mm, band_mm)
