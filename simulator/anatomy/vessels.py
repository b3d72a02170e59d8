"""Vessels the needle must avoid: the vertebral arteries, radicular (radiculomedullary) arteries and
the epidural venous plexus.

- **Vertebral artery**: rises from the subclavian artery in front of the C7 transverse process and
  enters the foramen transversarium at C6 in ~93% (C5 ~6-7%, C4 and C7 rare: Uchino 2013, n=2,287;
  Tasdemir 2023), then climbs through each foramen to C2, in front of the spinal nerve.
- **Radicular arteries** reach the cord through the foramen: the artery of Adamkiewicz, present in
  ~85%, left-sided in ~77%, between T8 and L1 in ~89% and most often at T10 (Taterra 2019), runs in
  the antero-superior foramen (Murthy 2010: upper third 88%, never the inferior fifth); in the neck
  about one foramen in five has an artery near its posterior opening (Huntoon 2005).
- **Epidural veins**: the anterior internal venous plexus, paired channels along the back of the
  vertebral bodies in the anterior epidural space.
"""

from __future__ import annotations

import numpy as np

from simulator.anatomy.structures import Tube, polyline_tube
from simulator.anatomy.vertebra import Segment, foramen_transversarium_local

#: Vertebral artery lumen radius, mm (lumen ~3-4 mm, Kim 2012).
VERTEBRAL_ARTERY_RADIUS_MM = 1.8
#: Radicular artery radius, mm (the artery of Adamkiewicz ~0.5-1.2 mm across).
RADICULAR_ARTERY_RADIUS_MM = 0.6
EPIDURAL_VEIN_RADIUS_MM = 1.0


def vertebral_artery_entry(rng: np.random.Generator) -> str:
    """The level whose foramen transversarium the artery enters (Uchino 2013, Tasdemir 2023)."""
    return str(rng.choice(["C6", "C5", "C4", "C7"], p=[0.93, 0.055, 0.01, 0.005]))


def vertebral_artery(by_level: dict[str, Segment], side: int, entry: str) -> Tube:
    """One vertebral artery: from in front of C7 up to the entry foramen, then through the
    foramina transversaria to above C2."""
    c7 = by_level["C7"]
    start = c7.to_world([side * 20.0, c7.half_depth + 6.0, -0.5 * c7.height_mid_mm - 20.0])
    order = ["C7", "C6", "C5", "C4", "C3", "C2"]
    points = [start]
    entered = False
    for level in order:
        seg = by_level[level]
        hole = seg.to_world(foramen_transversarium_local(seg, side))
        if level == entry:
            entered = True
        if entered:
            points.append(hole)
        else:
            # below its entry the artery runs in front of the transverse processes
            points.append(hole + seg.axis([0.0, 7.0, 0.0]))
    c2 = by_level["C2"]
    points.append(c2.to_world(foramen_transversarium_local(c2, side) + np.array([side * 4.0, 0.0, 14.0])))
    return polyline_tube(np.array(points), VERTEBRAL_ARTERY_RADIUS_MM, VERTEBRAL_ARTERY_RADIUS_MM, smooth_mm=3.0)


def adamkiewicz_level_and_side(rng: np.random.Generator) -> tuple[str, int] | None:
    """The artery of Adamkiewicz's foramen (named by the vertebra above it) and side, or None
    (absent in ~15%)."""
    if rng.random() > 0.85:
        return None
    levels = ["T7", "T8", "T9", "T10", "T11", "T12", "L1", "L2"]
    weights = np.array([3.0, 8.0, 14.0, 28.0, 20.0, 15.0, 8.0, 4.0])
    level = str(rng.choice(levels, p=weights / weights.sum()))
    side = -1 if rng.random() < 0.77 else 1  # left in ~77%
    return level, side


def radicular_artery(upper: Segment, side: int, cord_front: np.ndarray, position: str = "anterosuperior") -> Tube:
    """A radicular artery from the segmental artery beside the body, through the foramen (in its
    antero-superior part, or near its posterior opening in the neck), to the front of the cord."""
    d = upper.dims
    x_ped = abs(upper.pedicle_centre_local(side)[0])
    if upper.region == "cervical":
        z_f = -0.5 * upper.height_mid_mm - 1.0
        y_f = -upper.half_depth - (3.5 if position == "posterior" else 0.5)
    else:
        z_f = upper.pedicle_z - 0.5 * d.pedicle_height_mm - 2.0  # just under the pedicle
        y_f = -upper.half_depth - 1.0 if position == "anterosuperior" else -upper.half_depth - 4.0
    outside = upper.to_world([side * (x_ped + 14.0), 0.0 if upper.region != "cervical" else -upper.half_depth + 6.0,
                              z_f - 4.0])
    foramen = upper.to_world([side * (x_ped + 1.0), y_f, z_f])
    inside = upper.to_world([side * 0.5 * d.canal_width_mm * 0.6, -upper.half_depth - 1.5, z_f + 2.0])
    points = np.array([outside, foramen, inside, cord_front])
    return polyline_tube(points, RADICULAR_ARTERY_RADIUS_MM, RADICULAR_ARTERY_RADIUS_MM, smooth_mm=1.5)


def epidural_veins(canal_centre: np.ndarray, canal_ey: np.ndarray, canal_rx: np.ndarray,
                   canal_ry: np.ndarray, side: int) -> Tube:
    """One longitudinal channel of the anterior internal venous plexus, along the front of the canal."""
    anterior = canal_ey * np.sign(canal_ey[:, 1:2])  # the section axis that points forwards
    points = canal_centre + anterior * (canal_ry[:, None] - 2.8) + np.array([side, 0.0, 0.0]) * (0.45 * canal_rx[:, None])
    return Tube(points, EPIDURAL_VEIN_RADIUS_MM, EPIDURAL_VEIN_RADIUS_MM)
