"""Line integrals of linear attenuation through a voxel volume, ray by ray (numba).

For every detector pixel the ray from the source to the pixel centre is clipped to the volume and
sampled; the sum times the length per sample is the line integral of mu (dimensionless: 1/mm times
mm). The anatomy (:class:`ProjectorVolume`) is sampled by Joseph's method, once per slice across the
beam's main axis with bilinear interpolation in the slice; small grids in any orientation (contrast)
at equal steps with trilinear interpolation (:func:`line_integrals`). The anatomy is the expensive
part of an image and is done once per C-arm pose; the needle and contrast are added on top (see
:mod:`simulator.imaging.fluoroscope`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from simulator.imaging.carm import Projection
from simulator.imaging.kernel_lock import KERNEL_LOCK
from simulator.imaging.spectrum import SOFT_TISSUE_MU_60KEV_PER_MM


@njit(cache=True, fastmath=True, inline="always")
def pixel_ray(source, pixel00, row_step, col_step, r, c):
    """Unit direction and length of the ray from the source to (fractional) pixel ``(r, c)``."""
    dx = pixel00[0] + r * row_step[0] + c * col_step[0] - source[0]
    dy = pixel00[1] + r * row_step[1] + c * col_step[1] - source[1]
    dz = pixel00[2] + r * row_step[2] + c * col_step[2] - source[2]
    length = np.sqrt(dx * dx + dy * dy + dz * dz)
    return dx / length, dy / length, dz / length, length


@njit(cache=True, fastmath=True, inline="always")
def slab(s, u, hi, t0, t1):
    """``[t0, t1]`` narrowed to where ``0 <= s + t u <= hi`` (empty when the result has t1 <= t0)."""
    if abs(u) < 1e-12:
        return (t0, t1) if 0.0 <= s <= hi else (t0, -1.0)
    ta = (0.0 - s) / u
    tb = (hi - s) / u
    if ta > tb:
        ta, tb = tb, ta
    return max(t0, ta), min(t1, tb)


@njit(cache=True, fastmath=True, inline="always")
def _clip_to_box(source_v, ux, uy, uz, length, hi0, hi1, hi2):
    """The part ``[t0, t1]`` of the ray from the source (length ``length``) inside the box
    ``[0, hi]`` on each axis; empty when ``t1 <= t0``."""
    t0, t1 = slab(source_v[0], ux, hi0, 0.0, length)
    t0, t1 = slab(source_v[1], uy, hi1, t0, t1)
    return slab(source_v[2], uz, hi2, t0, t1)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _raycast(mu, source_v, pixel00_v, row_step_v, col_step_v, rows, cols, step_vox, voxel_mm, soft_max, out,
             out_excess):
    nx, ny, nz = mu.shape
    hi0 = nx - 1.001
    hi1 = ny - 1.001
    hi2 = nz - 1.001
    for r in prange(rows):
        for c in range(cols):
            ux, uy, uz, length = pixel_ray(source_v, pixel00_v, row_step_v, col_step_v, r, c)
            t0, t1 = _clip_to_box(source_v, ux, uy, uz, length, hi0, hi1, hi2)
            acc = 0.0
            acc_excess = 0.0
            if t1 > t0:
                n_steps = int((t1 - t0) / step_vox)
                # a fixed per-pixel offset of the first sample (a hash of the pixel index) turns
                # the moire of regular sampling across thin cortices into fine, static grain
                h = (r * 73856093) ^ (c * 19349663)
                jitter = ((h & 1023) / 1024.0)
                t = t0 + jitter * step_vox
                x = source_v[0] + ux * t
                y = source_v[1] + uy * t
                z = source_v[2] + uz * t
                dx = ux * step_vox
                dy = uy * step_vox
                dz = uz * step_vox
                for _ in range(n_steps):
                    # the ray is clipped to [0, n - 1.001] on each axis: no sample needs clamping
                    i = int(x)
                    j = int(y)
                    k = int(z)
                    fx = np.float32(x - i)
                    fy = np.float32(y - j)
                    fz = np.float32(z - k)
                    c00 = mu[i, j, k] + (mu[i + 1, j, k] - mu[i, j, k]) * fx
                    c10 = mu[i, j + 1, k] + (mu[i + 1, j + 1, k] - mu[i, j + 1, k]) * fx
                    c01 = mu[i, j, k + 1] + (mu[i + 1, j, k + 1] - mu[i, j, k + 1]) * fx
                    c11 = mu[i, j + 1, k + 1] + (mu[i + 1, j + 1, k + 1] - mu[i, j + 1, k + 1]) * fx
                    c0 = c00 + (c10 - c00) * fy
                    c1 = c01 + (c11 - c01) * fy
                    v = c0 + (c1 - c0) * fz
                    acc += v
                    acc_excess += max(v - soft_max, np.float32(0.0))
                    x += dx
                    y += dy
                    z += dz
            out[r, c] = acc * step_vox * voxel_mm
            out_excess[r, c] = acc_excess * step_vox * voxel_mm


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _slices(mu, source_v, pixel00_v, row_step_v, col_step_v, rows, cols, voxel_mm, soft_max, out, out_excess):
    """Joseph's method: each ray is sampled where it crosses each slice of the volume's last axis
    (the beam's main direction), with bilinear interpolation in the slice, and the sum weighted by
    the ray's length per slice. Half the work of trilinear marching at the same accuracy."""
    nx, ny, nz = mu.shape
    hi0 = nx - 1.001
    hi1 = ny - 1.001
    hi2 = nz - 1.001
    for r in prange(rows):
        for c in range(cols):
            ux, uy, uz, length = pixel_ray(source_v, pixel00_v, row_step_v, col_step_v, r, c)
            t0, t1 = _clip_to_box(source_v, ux, uy, uz, length, hi0, hi1, hi2)
            acc = 0.0
            acc_excess = 0.0
            if t1 > t0 and abs(uz) > 1e-9:
                za = source_v[2] + uz * t0
                zb = source_v[2] + uz * t1
                k0 = int(np.ceil(min(za, zb)))
                k1 = int(np.floor(max(za, zb)))
                dxdk = ux / uz
                dydk = uy / uz
                x = source_v[0] + dxdk * (k0 - source_v[2])
                y = source_v[1] + dydk * (k0 - source_v[2])
                for k in range(k0, k1 + 1):
                    i = int(x)
                    j = int(y)
                    fx = np.float32(x - i)
                    fy = np.float32(y - j)
                    c0 = mu[i, j, k] + (mu[i + 1, j, k] - mu[i, j, k]) * fx
                    c1 = mu[i, j + 1, k] + (mu[i + 1, j + 1, k] - mu[i, j + 1, k]) * fx
                    v = c0 + (c1 - c0) * fy
                    acc += v
                    acc_excess += max(v - soft_max, np.float32(0.0))
                    x += dxdk
                    y += dydk
                acc /= abs(uz)
                acc_excess /= abs(uz)
            out[r, c] = acc * voxel_mm
            out_excess[r, c] = acc_excess * voxel_mm


def line_integrals(mu_per_mm: np.ndarray, world_from_voxel: np.ndarray, projection: Projection,
                   step_voxels: float = 1.0, bone_excess: bool = False):
    """Line integrals of ``mu_per_mm`` for every pixel of ``projection``.

    Parameters
    ----------
    mu_per_mm : ndarray (nx, ny, nz), float32
        Linear attenuation, 1/mm, C-contiguous.
    world_from_voxel : ndarray (4, 4)
        Voxel indices to world mm; must be isotropic (equal spacing on the three axes) and
        axis-aligned.
    projection : Projection
    step_voxels : float
        Sampling step along each ray, in voxels.

    bone_excess : bool
        Also return the integral of the attenuation above :data:`SOFT_TISSUE_MU_60KEV_PER_MM` (the
        bone that has its own energy dependence, see :mod:`.spectrum`).

    Returns
    -------
    ndarray (rows, cols), float32: the dimensionless integral of mu along each ray (and, with
    ``bone_excess``, that of the bone excess).
    """
    spacing = np.diag(world_from_voxel)[:3]
    if not np.allclose(spacing, spacing[0]) or not np.allclose(world_from_voxel[:3, :3], np.diag(spacing)):
        raise ValueError("line_integrals needs an isotropic, axis-aligned volume")
    voxel_mm = float(spacing[0])
    origin = world_from_voxel[:3, 3]

    def to_voxel(p):
        return ((np.asarray(p, float) - origin) / voxel_mm).astype(np.float64)

    out = np.empty((projection.rows, projection.cols), np.float32)
    excess = np.empty_like(out)
    mu = np.ascontiguousarray(mu_per_mm, dtype=np.float32)
    with KERNEL_LOCK:
        _raycast(mu, to_voxel(projection.source_mm), to_voxel(projection.pixel00_mm),
                 projection.row_step_mm / voxel_mm, projection.col_step_mm / voxel_mm, projection.rows,
                 projection.cols, float(step_voxels), voxel_mm, np.float32(SOFT_TISSUE_MU_60KEV_PER_MM), out,
                 excess)
    return (out, excess) if bone_excess else out


def window_line_integrals(mu_per_mm: np.ndarray, world_from_voxel: np.ndarray, projection: Projection,
                          step_voxels: float = 1.0) -> tuple[int, int, np.ndarray] | None:
    """Line integrals of a small volume over only the pixels its box projects onto.

    Returns ``(row0, col0, integrals)`` of that window of the image, or None if the box falls
    outside it.
    """
    shape = np.array(mu_per_mm.shape, float) - 1.0
    corners = np.array([[i, j, k] for i in (0.0, shape[0]) for j in (0.0, shape[1]) for k in (0.0, shape[2])])
    world = corners @ world_from_voxel[:3, :3].T + world_from_voxel[:3, 3]
    rc = projection.project(world)
    r0 = max(int(np.floor(rc[:, 0].min())) - 1, 0)
    c0 = max(int(np.floor(rc[:, 1].min())) - 1, 0)
    r1 = min(int(np.ceil(rc[:, 0].max())) + 2, projection.rows)
    c1 = min(int(np.ceil(rc[:, 1].max())) + 2, projection.cols)
    if r1 <= r0 or c1 <= c0:
        return None
    window = Projection(source_mm=projection.source_mm,
                        pixel00_mm=projection.pixel00_mm + r0 * projection.row_step_mm + c0 * projection.col_step_mm,
                        row_step_mm=projection.row_step_mm, col_step_mm=projection.col_step_mm,
                        rows=r1 - r0, cols=c1 - c0, detector_normal=projection.detector_normal)
    return r0, c0, line_integrals(mu_per_mm, world_from_voxel, window, step_voxels)


class ProjectorVolume:
    """An attenuation volume kept in the memory order that suits the beam.

    A ray marches fastest through memory when its main direction is the array's contiguous axis;
    for each main axis of the beam a transposed copy is made once (lazily) and reused, which makes
    an image about three times faster than marching across the memory layout.

    Parameters
    ----------
    mu_per_mm : ndarray (nx, ny, nz)
    world_from_voxel : ndarray (4, 4)
        Isotropic and axis-aligned.
    """

    def __init__(self, mu_per_mm: np.ndarray, world_from_voxel: np.ndarray):
        self.mu = mu_per_mm
        self.world_from_voxel = world_from_voxel
        self._copies: dict[int, tuple[np.ndarray, np.ndarray, list[int]]] = {}

    def _oriented(self, major_axis: int):
        if major_axis not in self._copies:
            order = [i for i in range(3) if i != major_axis] + [major_axis]
            mu = np.ascontiguousarray(np.transpose(self.mu, order), dtype=np.float32)
            w = np.eye(4)
            w[:3, :3] = np.diag(np.diag(self.world_from_voxel)[:3][order])
            w[:3, 3] = self.world_from_voxel[:3, 3][order]
            self._copies[major_axis] = (mu, w, order)
        return self._copies[major_axis]

    def line_integrals(self, projection: Projection, bone_excess: bool = False):
        """The line integrals of :func:`line_integrals`, by Joseph's method along the beam's main
        axis (the volume's copy with that axis last and contiguous)."""
        major = int(np.argmax(np.abs(projection.detector_normal)))
        mu, w, order = self._oriented(major)
        voxel_mm = float(w[0, 0])
        origin = w[:3, 3]

        def to_voxel(p):
            return ((np.asarray(p, float)[order] - origin) / voxel_mm).astype(np.float64)

        out = np.empty((projection.rows, projection.cols), np.float32)
        excess = np.empty_like(out)
        with KERNEL_LOCK:
            _slices(mu, to_voxel(projection.source_mm), to_voxel(projection.pixel00_mm),
                    projection.row_step_mm[order] / voxel_mm, projection.col_step_mm[order] / voxel_mm,
                    projection.rows, projection.cols, voxel_mm, np.float32(SOFT_TISSUE_MU_60KEV_PER_MM), out,
                    excess)
        return (out, excess) if bone_excess else out
