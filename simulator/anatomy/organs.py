"""Organs round the spine that the X-ray shows or the needle must avoid: kidneys (upper lumbar
danger zone), the airway and the great vessels of the neck, the rectum and the presacral space in
front of the sacrum (beyond the anterior sacral plate: the caudal and S1 danger zone)."""

from __future__ import annotations

import numpy as np

from simulator.anatomy.sacrum_pelvis import SacralFrame, SacrumShape
from simulator.anatomy.structures import Tube, polyline_tube
from simulator.anatomy.vertebra import Segment
from simulator.geometry import sdf


def kidney_field(l1: Segment, side: int):
    """A kidney: retroperitoneal beside T12-L3, lateral to the psoas, upper pole at about T12;
    the right one ~15 mm lower (the liver). About 110 x 55 x 35 mm."""
    drop = 15.0 if side > 0 else 0.0
    centre = l1.to_world([side * (0.5 * l1.dims.endplate_width_mm + 50.0), 4.0, -0.5 * l1.height_mid_mm - 10.0 - drop])
    radii = np.array([27.0, 19.0, 55.0])
    # the upper pole leans medially and back
    tilt = np.radians(15.0)
    axis_z = np.array([-side * np.sin(tilt), -0.25, np.cos(tilt)])
    axis_z = axis_z / np.linalg.norm(axis_z)
    axis_x = np.cross([0.0, 1.0, 0.0], axis_z)
    axis_x = axis_x / np.linalg.norm(axis_x)
    axis_y = np.cross(axis_z, axis_x)
    rot = np.stack([axis_x, axis_y, axis_z])

    def field(points: np.ndarray) -> np.ndarray:
        q = (points - centre) @ rot.T
        return sdf.ellipsoid(q, np.zeros(3), radii)

    return field, centre, float(radii.max())


def airway_tube(by_level: dict[str, Segment]) -> Tube:
    """Larynx and trachea in front of the cervical and upper thoracic bodies, to the carina at ~T5."""
    points, radii = [], []
    for level, r in (("C3", 13.0), ("C4", 12.0), ("C5", 10.5), ("C6", 9.0), ("C7", 8.5), ("T1", 8.5),
                     ("T2", 8.5), ("T3", 8.5), ("T4", 8.0), ("T5", 7.0)):
        seg = by_level[level]
        # the oesophagus lies between the trachea and the spine
        points.append(seg.to_world([0.0, seg.half_depth + 12.0 + r, 0.0]))
        radii.append(r)
    return polyline_tube(np.array(points), np.array(radii), np.array(radii), smooth_mm=4.0)


def neck_vessel_tube(by_level: dict[str, Segment], side: int, vein: bool) -> Tube:
    """Common carotid artery (or internal jugular vein, lateral to it) beside the airway."""
    points = []
    for level in ("C2", "C3", "C4", "C5", "C6", "C7", "T1"):
        seg = by_level[level]
        x = side * (0.5 * seg.dims.endplate_width_mm + (16.0 if vein else 8.0))
        points.append(seg.to_world([x, seg.half_depth + (16.0 if vein else 12.0), 0.0]))
    r = 6.0 if vein else 3.5
    return polyline_tube(np.array(points), r, r, smooth_mm=5.0)


def rectum_and_presacral(frame: SacralFrame, shape: SacrumShape):
    """The presacral space (fat, ~6-8 mm) on the sacrum's front and the rectum in front of it.

    Returns (presacral field, rectum tube, box points)."""
    k = shape.scale
    ss = np.arange(30.0, 136.0, 5.0) * k
    front = np.array([float(shape.body_half_depth(s)) for s in ss])
    rectum_r = 15.0 * k
    centres = np.stack([frame.to_world(0.0, s, f + 8.0 * k + rectum_r) for s, f in zip(ss, front)])
    rectum = polyline_tube(centres, rectum_r, rectum_r * 0.85, smooth_mm=5.0)

    def presacral(points: np.ndarray) -> np.ndarray:
        x, s, ap = frame.to_arc(points)
        f = shape.body_half_depth(np.clip(s, 0.0, 103.0 * k))
        d_ap = np.maximum(f - ap, ap - (f + 9.0 * k))
        d_x = np.abs(x) - 30.0 * k
        d_s = np.maximum(25.0 * k - s, s - 130.0 * k)
        return np.maximum(np.maximum(d_ap, d_x), d_s)

    box = np.concatenate([centres + rectum_r + 12.0, centres - rectum_r - 12.0,
                          np.stack([frame.to_world(x, s, 0.0) for x in (-35.0 * k, 35.0 * k) for s in (20.0 * k, 135.0 * k)])])
    return presacral, rectum, box
