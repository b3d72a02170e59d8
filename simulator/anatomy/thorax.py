"""The thoracic cage around the spine: ribs, costal cartilages, sternum, lungs and pleura.

Each rib runs from its head on the vertebral bodies (on the demifacets at the disc for T2-T9, on
its own body for T1 and T10-T12) over the tip of the transverse process (the costotransverse joint,
T1-T10), back to its angle and round the chest wall, falling as it goes forward, to its cartilage
(ribs 1-10) or a free end (11-12). The lungs fill the cage inside the ribs, down to the diaphragm
and up above the first rib, leaving the mediastinum and the vertebral column; the parietal pleura
is the thin layer round each lung, the danger zone lateral to the rib heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.anatomy.soft_tissue import Torso
from simulator.anatomy.structures import Tube, polyline_tube
from simulator.anatomy.vertebra import Segment, transverse_tip_local
from simulator.geometry import sdf

#: Parietal pleura and the pleural space, mm (a danger layer, not to scale: the membrane itself is
#: under 0.1 mm; the needle meets it as the lung's outer millimetre).
PLEURA_MM = 1.5
#: Chest wall inside the subcutaneous fat: muscle and ribs, mm.
CHEST_WALL_MM = 14.0


@dataclass(frozen=True)
class ChestShape:
    """The chest cross-section at each height, derived from the body outline."""

    torso: Torso

    def ellipse(self, z: np.ndarray, inset_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(half-width, half-depth, centre y) of the body outline shrunk by fat and ``inset_mm``."""
        prof = self.torso.profile
        depth = prof.at("depth_mm", z)
        back = prof.at("midline_back_y_mm", z) - self.torso.cover_mm(z)
        fat = prof.at("fat_mm", z)
        a = prof.at("half_width_mm", z) - 1.6 * fat - inset_mm
        b = 0.5 * depth - 1.2 * fat - inset_mm
        centre = back + 0.5 * depth
        return a, b, centre


def rib_path(seg: Segment, side: int, chest: ChestShape) -> tuple[np.ndarray, float, int]:
    """Centreline points of one rib (head to anterior end), its length fraction that is cartilage,
    and the rib number."""
    number = int(seg.name[1:])
    d = seg.dims
    half_w = 0.5 * d.endplate_width_mm
    if 2 <= number <= 9:
        # the head sits on the disc, between the demifacets of this body and the one above
        z_head = 0.5 * seg.height_mid_mm + 2.0
    else:
        # T1 and T10-T12: a whole facet on the side of the body, below the pedicle
        z_head = -0.3 * seg.height_mid_mm
    # the head sits in its costovertebral joint, ~1 mm from the body; the neck runs in front of the
    # transverse process, clear of the pedicle, to the tubercle on the process's tip
    head = seg.to_world([side * (half_w + 5.0), -seg.half_depth + 5.0, z_head])
    tp_tip = seg.to_world(transverse_tip_local(seg, side))
    tubercle = tp_tip + seg.axis([side * 2.0, 6.5, -2.5])
    if number >= 11:
        tubercle = tp_tip + seg.axis([side * 5.0, 6.0, -4.0])  # no costotransverse joint
    angle = tubercle + seg.axis([side * 28.0, -4.0, -6.0])
    a, b, yc = chest.ellipse(np.array([angle[2]]), CHEST_WALL_MM - 6.0)
    a, b, yc = float(a[0]), float(b[0]), float(yc[0])
    if number == 1:
        a *= 0.62  # the first rib curves tightly round the thoracic inlet
    theta0 = float(np.arcsin(np.clip(abs(angle[0]) / a, 0.0, 0.98)))
    # ribs 1-7 reach the sternum by their cartilages, 8-10 the costal margin; 11-12 float
    end = {11: 1.6, 12: 1.25}.get(number, 2.98 if number <= 7 else (2.7 if number <= 8 else 2.45))
    # the shafts fall as they go forward: a mid-thoracic rib's front end is ~3 vertebrae below its head
    drop = 18.0 if number == 1 else (70.0 if number <= 7 else 55.0)
    thetas = np.linspace(theta0, end, 14)
    frac = (thetas - theta0) / (end - theta0)
    around = np.stack([side * a * np.sin(thetas), yc - b * np.cos(thetas), angle[2] - drop * frac], axis=1)
    points = np.vstack([head, tubercle, angle, around[1:]])
    cartilage = 0.0 if number >= 11 else (0.25 if number <= 7 else 0.3)
    return points, cartilage, number


def rib_tubes(seg: Segment, side: int, chest: ChestShape) -> tuple[Tube, Tube | None]:
    """A rib (bone) and its costal cartilage as tubes: flat bands, taller than thick."""
    points, cartilage, number = rib_path(seg, side, chest)
    height = 4.5 if number == 1 else (6.0 if number <= 9 else 5.0)
    thick = 3.0 if number <= 10 else 2.6
    seg_len = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg_len)])
    # round the head and the neck, flatten the shaft into a band
    ra = np.where(s < 25.0, 4.0, height)
    rb = np.where(s < 25.0, 3.5, thick)
    tube = polyline_tube(points, ra, rb, reference=(0.0, 0.0, 1.0), smooth_mm=4.0)
    if cartilage <= 0.0:
        return tube, None
    n = len(tube.centre)
    cut = int(n * (1.0 - cartilage))
    bone = Tube(tube.centre[:cut], tube.rx[:cut], tube.ry[:cut], (0.0, 0.0, 1.0))
    cart = Tube(tube.centre[cut - 1:], tube.rx[cut - 1:] * 0.9, tube.ry[cut - 1:] * 1.2, (0.0, 0.0, 1.0))
    return bone, cart


def sternum_field(chest: ChestShape, z_top: float, z_bottom: float):
    """The sternum: manubrium and body, a flat plate just inside the front of the chest."""
    zs = np.linspace(z_top, z_bottom, 12)
    _, b, yc = chest.ellipse(zs, CHEST_WALL_MM - 4.0)
    front = yc + b
    centres = np.stack([np.zeros_like(zs), front - 5.0, zs], axis=1)
    width = np.interp(zs, [z_bottom, z_bottom + 0.7 * (z_top - z_bottom), z_top], [12.0, 15.0, 26.0])
    tube = polyline_tube(centres, width, 5.5, reference=(1.0, 0.0, 0.0), smooth_mm=2.0)
    return tube


@dataclass(frozen=True)
class LungShape:
    """Where the lungs are: inside the ribs, above the diaphragm, beside the mediastinum."""

    chest: ChestShape
    z_apex_mm: float  # top of the lungs (above the first rib)
    z_dome_mm: float  # top of the diaphragm's domes (front)
    z_recess_mm: float  # bottom of the posterior costophrenic recesses
    side: int
    spine_centre_x: object  # callable z -> x of the vertebral bodies' centre
    spine_centre_y: object  # callable z -> y of the vertebral bodies' centre
    spine_half_width: object  # callable z -> half width of the bodies
    spine_front_y: object  # callable z -> y of the bodies' front
    transverse_y: object  # callable z -> y of the transverse processes
    heart_centre: np.ndarray
    heart_radii: np.ndarray

    def field(self, points: np.ndarray) -> np.ndarray:
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        a, b, yc = self.chest.ellipse(z, CHEST_WALL_MM)
        # the cage narrows to a dome at the apex
        taper = np.sqrt(np.clip((self.z_apex_mm - z) / 45.0, 0.02, 1.0))
        inside = sdf.ellipse_2d(np.stack([x, y - yc], -1), np.stack([a * taper, b * taper], -1))
        # the mediastinum: the column with its paravertebral soft tissue behind, a central band in
        # front (great vessels, oesophagus, trachea); beside the bodies the pleura passes just
        # lateral to the rib heads (centred 5 mm out from the body, 4 mm in radius)
        front = self.spine_front_y(z)
        half = np.where(y < front + 4.0, self.spine_half_width(z) + 11.0, 16.0)
        mediastinum = half - self.side * (x - self.spine_centre_x(z))
        # behind, the lung reaches back to just in front of the rib necks (which lie in front of the
        # transverse processes), the parietal pleura lining them
        back = (self.transverse_y(z) + 13.0) - y
        # the diaphragm: lowest at the back (the costophrenic recess), domed in front; the right
        # dome sits higher (the liver)
        frontness = np.clip((y - yc + b) / (2.0 * b), 0.0, 1.0)
        floor = self.z_recess_mm + (self.z_dome_mm - self.z_recess_mm) * np.sin(0.5 * np.pi * frontness)
        floor = floor + (12.0 if self.side > 0 else 0.0)
        diaphragm = floor - z
        d = sdf.smooth_max(inside, mediastinum, 6.0)
        d = sdf.smooth_max(d, back, 6.0)
        d = sdf.smooth_max(d, diaphragm, 12.0)
        if self.side < 0:
            heart = sdf.ellipsoid(points, self.heart_centre, self.heart_radii)
            d = sdf.smooth_max(d, -heart, 8.0)
        return d
