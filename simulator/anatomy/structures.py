"""Named anatomical structures defined implicitly, by a signed distance field in world millimetres.

A :class:`Structure` knows its name (``"L4"``, ``"L4-L5.ligamentum_flavum"``), its field, the box
it lies in, and which tissue each depth below its surface is (so a bone's outer millimetre is
cortical and its core cancellous, a dural sac's wall is dura and its lumen CSF). The phantom is an
ordered list of structures painted one over the other; the same list answers exact point queries
(for the needle) and fills voxel volumes (for imaging and meshes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.spatial import cKDTree

from simulator.geometry import frames, sdf

Field = Callable[[np.ndarray], np.ndarray]


@dataclass
class Structure:
    """One structure of the phantom.

    Attributes
    ----------
    name : str
        Stable, documented name, e.g. ``"L4"``, ``"L4-L5.disc"``, ``"dural_sac"``.
    field : callable
        World points ``(N, 3)`` in mm to signed distance in mm (negative inside).
    bbox_mm : ndarray, shape (2, 3)
        World-axis box holding the whole inside of the structure.
    core_tissue : int
        Tissue id deeper than every shell.
    shells : list of (depth_mm, tissue_id)
        Tissue of the outer layers, outermost first: a point at depth ``d`` below the surface is
        the first shell with ``d < depth_mm``.
    group : str
        What kind of structure it is, for meshes and display: ``bone``, ``disc``, ``ligament``,
        ``neural``, ``joint``, ``vessel``, ``organ``, ``soft_tissue``.
    layer : int
        Painting order: structures of a higher layer are painted over lower ones (bone is last).
    """

    name: str
    field: Field
    bbox_mm: np.ndarray
    core_tissue: int
    shells: list[tuple[float, int]] = field(default_factory=list)
    group: str = "soft_tissue"
    layer: int = 0

    def tissue_for_depth(self, depth_mm: np.ndarray, min_shell_mm: float = 0.0) -> np.ndarray:
        """Tissue ids for points at ``depth_mm`` (>= 0) below the surface.

        ``min_shell_mm`` widens thin shells to at least that depth, so a voxel volume does not lose
        a 0.4 mm dura between 1 mm voxels.
        """
        out = np.full(depth_mm.shape, self.core_tissue, np.uint8)
        # paint innermost shell first so outer shells win where they overlap
        for shell_depth, tissue in reversed(self.shells):
            out[depth_mm < max(shell_depth, min_shell_mm)] = tissue
        return out





def bbox_of_points(points: np.ndarray, margin_mm: float) -> np.ndarray:
    """Axis-aligned box around points, grown by ``margin_mm``."""
    p = np.asarray(points, float).reshape(-1, 3)
    return np.stack([p.min(axis=0) - margin_mm, p.max(axis=0) + margin_mm])




def oriented_box(p: np.ndarray, center, axes: np.ndarray, half_mm, rounding_mm: float) -> np.ndarray:
    """Rounded box whose local axes are the rows of ``axes`` (orthonormal)."""
    q = (p - np.asarray(center, float)) @ np.asarray(axes, float).T
    return sdf.round_box(q, np.zeros(3), half_mm, rounding_mm)


def box_axes(primary, secondary_hint) -> np.ndarray:
    """Orthonormal rows ``(a1, a2, a3)``: ``a1`` along ``primary``, ``a2`` nearest ``secondary_hint``."""
    a1 = frames.unit(primary)
    h = np.asarray(secondary_hint, float)
    a2 = frames.unit(h - (h @ a1) * a1)
    a3 = np.cross(a1, a2)
    return np.stack([a1, a2, a3])


class Tube:
    """A tube of elliptical section along a sampled centreline (dural sac, canal, cord, ribs, vessels).

    The section at each centreline sample is an ellipse with semi-axes ``(ra, rb)`` in the plane
    normal to the centreline: ``ra`` along ``reference`` (made perpendicular to the centreline; the
    patient's left-right axis by default), ``rb`` along the remaining direction. Beyond the first
    or last sample the tube ends flat (taper the radii for a rounded end).

    Parameters
    ----------
    centre_mm : ndarray, shape (N, 3)
        Centreline samples, about 1 mm apart, ordered from one end to the other.
    rx_mm, ry_mm : ndarray, shape (N,)
        Section semi-axes at each sample.
    reference : array (3,)
        World direction the first semi-axis follows (it must never run along the centreline).
    """

    def __init__(self, centre_mm: np.ndarray, rx_mm: np.ndarray, ry_mm: np.ndarray,
                 reference=(1.0, 0.0, 0.0)):
        self.centre = np.asarray(centre_mm, float)
        self.rx = np.broadcast_to(np.asarray(rx_mm, float), (len(self.centre),)).copy()
        self.ry = np.broadcast_to(np.asarray(ry_mm, float), (len(self.centre),)).copy()
        t = np.gradient(self.centre, axis=0)
        self.tangent = t / np.linalg.norm(t, axis=1, keepdims=True)
        ref = np.asarray(reference, float)
        ex = ref[None, :] - (self.tangent @ ref)[:, None] * self.tangent
        self.ex = ex / np.linalg.norm(ex, axis=1, keepdims=True)
        self.ey = np.cross(self.tangent, self.ex)
        self._tree = cKDTree(self.centre)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, float)
        flat = p.reshape(-1, 3)
        _, i = self._tree.query(flat)
        q = flat - self.centre[i]
        u = np.einsum("ij,ij->i", q, self.ex[i])
        v = np.einsum("ij,ij->i", q, self.ey[i])
        w = np.einsum("ij,ij->i", q, self.tangent[i])
        radii = np.stack([self.rx[i], self.ry[i]], axis=1)
        d2 = sdf.ellipse_2d(np.stack([u, v], axis=1), radii)
        # beyond the first or last sample the tube ends flat
        past_end = np.where(((i == 0) & (w < 0)) | ((i == len(self.centre) - 1) & (w > 0)),
                            np.abs(w), -np.inf)
        outside = np.hypot(np.maximum(d2, 0.0), np.maximum(past_end, 0.0))
        d = outside + np.minimum(np.maximum(d2, past_end), 0.0)
        return d.reshape(p.shape[:-1])

    def bbox(self, margin_mm: float = 0.0) -> np.ndarray:
        r = np.maximum(self.rx, self.ry).max()
        return bbox_of_points(self.centre, r + margin_mm)


def polyline_tube(points: np.ndarray, ra_mm, rb_mm, reference=(1.0, 0.0, 0.0), smooth_mm: float = 3.0,
                  step_mm: float = 1.0) -> Tube:
    """A tube along a smoothed polyline through ``points`` (radii constant or one per point)."""
    from scipy.ndimage import gaussian_filter1d

    p = np.asarray(points, float)
    ra = np.broadcast_to(np.asarray(ra_mm, float), (len(p),))
    rb = np.broadcast_to(np.asarray(rb_mm, float), (len(p),))
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    s_new = np.arange(0.0, s[-1] + 1e-9, step_mm)
    c = np.stack([np.interp(s_new, s, p[:, k]) for k in range(3)], axis=1)
    if smooth_mm > 0 and len(c) > 3:
        c = gaussian_filter1d(c, smooth_mm / step_mm, axis=0, mode="nearest")
    return Tube(c, np.interp(s_new, s, ra), np.interp(s_new, s, rb), reference)
