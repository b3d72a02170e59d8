"""Posterior ligaments: ligamentum flavum, interspinous and supraspinous ligaments."""

from __future__ import annotations

import numpy as np

from simulator.anatomy.structures import box_axes, oriented_box
from simulator.geometry import frames, sdf


def convex_polygon_2d(q: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Signed distance bound to a convex polygon (vertices counter-clockwise), 2-D points ``q``."""
    v = np.asarray(vertices, float)
    d = np.full(q.shape[:-1], -np.inf)
    for i in range(len(v)):
        a, b = v[i], v[(i + 1) % len(v)]
        e = b - a
        outward = np.array([e[1], -e[0]]) / np.linalg.norm(e)
        d = np.maximum(d, (q - a) @ outward)
    return d


def counter_clockwise(v: np.ndarray) -> np.ndarray:
    """Vertices ordered counter-clockwise around their centroid."""
    c = v.mean(axis=0)
    ang = np.arctan2(v[:, 1] - c[1], v[:, 0] - c[0])
    return v[np.argsort(ang)]


def ligamentum_flavum_field(top_attach: np.ndarray, bottom_attach: np.ndarray, half_width_mm: float,
                            thickness_mm: float, midline_gap_mm: float = 0.0):
    """The ligamentum flavum of one interspace: two halves meeting in the midline like a shallow V
    (apex posterior), from the front of the upper lamina to the top of the lower lamina.

    ``top_attach`` and ``bottom_attach`` are world points on the canal side (its anterior surface)
    in the midline. ``midline_gap_mm`` > 0 leaves the halves unfused in the midline (common in the
    neck). Returns the ligament's field, its two attachment points and the field of the slit
    between the halves (``None`` without a gap): the slit holds fat, so a needle in it feels a
    loss of resistance while still behind the canal.
    """
    along = frames.unit(bottom_attach - top_attach)
    length = float(np.linalg.norm(bottom_attach - top_attach))
    centre_line = 0.5 * (top_attach + bottom_attach)
    sweep = np.radians(24.0)
    halves = []
    for side in (1, -1):
        # laterally the ligament sweeps forward to the facet capsules
        lateral = np.array([side * np.cos(sweep), np.sin(sweep), 0.0])
        axes = box_axes(along, lateral)
        # thickness axis: make it point posteriorly (-y)
        if axes[2][1] > 0:
            axes[2] = -axes[2]
        # each half reaches 2.5 mm past the midline so the two meet with full thickness there
        centre = centre_line + axes[1] * (0.5 * half_width_mm - 1.25) + axes[2] * (0.5 * thickness_mm)
        halves.append((centre, axes))

    lateral_axis = frames.unit(np.cross(along, np.cross([1.0, 0.0, 0.0], along)))

    def whole(points: np.ndarray) -> np.ndarray:
        parts = [oriented_box(points, c, a, (0.5 * length + 1.5, 0.5 * half_width_mm + 1.25,
                                             0.5 * thickness_mm), 0.6) for c, a in halves]
        return sdf.union(*parts, k_mm=1.0)

    def slit_distance(points: np.ndarray) -> np.ndarray:
        return np.abs((points - centre_line) @ lateral_axis) - 0.5 * midline_gap_mm

    def field(points: np.ndarray) -> np.ndarray:
        d = whole(points)
        return np.maximum(d, -slit_distance(points)) if midline_gap_mm > 0.0 else d

    def slit(points: np.ndarray) -> np.ndarray:
        return np.maximum(whole(points), slit_distance(points))

    corners = np.array([top_attach, bottom_attach])
    return field, corners, (slit if midline_gap_mm > 0.0 else None)


def interspinous_field(upper_base: np.ndarray, upper_tip: np.ndarray, lower_tip: np.ndarray,
                       lower_base: np.ndarray, half_thickness_mm: float = 4.0):
    """The interspinous ligament: the midline sheet between two spinous processes (world x = 0)."""
    quad = counter_clockwise(np.array([[p[1], p[2]] for p in (upper_base, upper_tip, lower_tip,
                                                              lower_base)]))

    def field(points: np.ndarray) -> np.ndarray:
        d2 = convex_polygon_2d(points[..., 1:], quad)
        return sdf.extrude(d2, points[..., 0], half_thickness_mm, 1.0)

    return field, np.array([upper_base, upper_tip, lower_tip, lower_base])


def supraspinous_field(tips: list[np.ndarray], radius_mm: float = 2.6):
    """The supraspinous ligament: a cord over the spinous tips (its axis 0.5 mm behind each tip, so
    it fills the 3 mm between the tips and the fascia)."""
    offset = np.array([0.0, -0.5, 0.0])
    pts = [t + offset for t in tips]
    pts = [pts[0] + np.array([0.0, 0.0, 22.0])] + pts

    def field(points: np.ndarray) -> np.ndarray:
        return sdf.union(*[sdf.capsule(points, a, b, radius_mm) for a, b in zip(pts[:-1], pts[1:])])

    return field, np.array(pts)
