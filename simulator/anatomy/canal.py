"""The spinal canal's contents: epidural fat, dural sac (dura and CSF), cord and conus, cauda
equina, and the exiting nerve roots with their ganglia."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from simulator.anatomy.lumbar_spine import Segment
from simulator.anatomy.sacrum_pelvis import SacralFrame, SacrumShape
from simulator.anatomy.structures import Tube
from simulator.geometry import sdf

#: Dura and arachnoid together, mm (0.3-0.5 mm, reference section 2.1).
DURA_MM = 0.4


def resample_with(points: np.ndarray, attrs: np.ndarray, step_mm: float = 1.0,
                  smooth_mm: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Resample a polyline (and per-point attributes) every ``step_mm``, then smooth its course."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    s_new = np.arange(0.0, s[-1] + 1e-9, step_mm)
    p = np.stack([np.interp(s_new, s, points[:, k]) for k in range(3)], axis=1)
    a = np.stack([np.interp(s_new, s, attrs[:, k]) for k in range(attrs.shape[1])], axis=1)
    if smooth_mm > 0:
        p = gaussian_filter1d(p, smooth_mm / step_mm, axis=0, mode="nearest")
        a = gaussian_filter1d(a, smooth_mm / step_mm, axis=0, mode="nearest")
    return p, a


def posterior_fat_mm(level: str) -> float:
    """Posterior epidural space depth at the interlaminar level: up to 5-6 mm mid-lumbar (L2/3),
    narrower caudally (reference section 2.1)."""
    return {"L1": 4.6, "L2": 5.2, "L3": 5.0, "L4": 4.6, "L5": 4.0}.get(level, 3.5)


class SpinalCanal:
    """Centrelines and sections of the canal and the dural sac for one patient.

    Parameters
    ----------
    segments : list of Segment
        L1..L5, cranial first.
    frame, shape : sacral arc frame and shape
    dural_end_s_mm : float
        Arc length along the sacrum where the dural sac ends (upper S2 on average).
    """

    def __init__(self, segments: list[Segment], frame: SacralFrame, shape: SacrumShape):
        canal_pts, canal_attr, sac_pts, sac_attr = [], [], [], []
        top = segments[0]
        for seg in segments:
            d = seg.dims
            rx_sac = 0.36 * d.canal_width_mm
            ry_sac = 0.5 * (d.canal_depth_mm - 1.0 - posterior_fat_mm(seg.name))
            zs = (0.5 * seg.height_mid_mm + 25.0, 0.5 * seg.height_mid_mm) if seg is top else ()
            for z in (*zs, 0.4 * seg.height_mid_mm, 0.0, -0.4 * seg.height_mid_mm):
                # reaches 1.5 mm into the bodies and discs (painted over them) so no gap is left
                canal_pts.append(seg.to_world([0.0, -seg.half_depth - 0.5 * d.canal_depth_mm + 0.75, z]))
                canal_attr.append([0.5 * d.canal_width_mm + 1.0, 0.5 * d.canal_depth_mm + 1.6])
                sac_pts.append(seg.to_world([0.0, -seg.half_depth - 1.0 - ry_sac, z]))
                sac_attr.append([rx_sac, ry_sac])
        for s in np.arange(0.0, 101.0, 5.0) * shape.scale:
            cx = float(shape.canal_half_width(s))
            cy = float(shape.canal_half_depth(s))
            centre_ap = float(shape.canal_centre_ap(s))
            canal_pts.append(frame.to_world(0.0, s, centre_ap))
            canal_attr.append([cx + 0.5, cy + 0.5])
            if s <= shape.dural_sac_end_s_mm:
                # the sac narrows to a cone over its last 25 mm
                taper = float(np.clip((shape.dural_sac_end_s_mm - s) / 25.0, 0.15, 1.0))
                ry = max(0.5 * (2 * cy - 1.0 - 3.0), 2.0) * taper
                sac_pts.append(frame.to_world(0.0, s, centre_ap + cy - 1.0 - ry))
                sac_attr.append([0.62 * cx * taper, ry])
        self.canal_centre, canal_r = resample_with(np.array(canal_pts), np.array(canal_attr))
        self.sac_centre, sac_r = resample_with(np.array(sac_pts), np.array(sac_attr), smooth_mm=4.0)
        self.canal = Tube(self.canal_centre, canal_r[:, 0], canal_r[:, 1])
        self.sac = Tube(self.sac_centre, sac_r[:, 0], sac_r[:, 1])
        self.sac_rx = sac_r[:, 0]
        self.sac_ry = sac_r[:, 1]

    def sub_tube(self, start_mm: float, stop_mm: float, scale_x: float, scale_y: float,
                 anterior_shift: float, taper_mm: float = 0.0) -> Tube:
        """A tube inside the sac between arc lengths ``start_mm`` and ``stop_mm`` of the sac's
        centreline, with sections scaled from the sac's and shifted anteriorly by a fraction of it."""
        n = len(self.sac_centre)
        i0 = int(np.clip(start_mm, 0, n - 2))
        i1 = int(np.clip(stop_mm, i0 + 2, n))
        idx = np.arange(i0, i1)
        ey = self.sac.ey[idx]
        centre = self.sac_centre[idx] + ey * (anterior_shift * self.sac_ry[idx])[:, None]
        rx = self.sac_rx[idx] * scale_x
        ry = self.sac_ry[idx] * scale_y
        if taper_mm > 0:
            t = np.clip((idx[-1] - idx) / taper_mm, 0.2, 1.0)
            rx, ry = rx * t, ry * t
        return Tube(centre, rx, ry)

    def sac_arclength_at(self, point: np.ndarray) -> float:
        """Arc length (mm) along the sac's centreline of the sample nearest ``point``."""
        return float(np.argmin(np.linalg.norm(self.sac_centre - point, axis=1)))


def nerve_root_field(seg: Segment, side: int, sac_rx: float):
    """An exiting lumbar root with its dorsal root ganglion: from the sac, under the pedicle,
    out of the foramen infero-laterally."""
    d = seg.dims
    x_ped = 0.5 * d.canal_width_mm + 0.5 * d.pedicle_width_mm
    below_pedicle = seg.pedicle_z - 0.5 * d.pedicle_height_mm - 4.5
    a = seg.to_world([side * 0.8 * sac_rx, -seg.half_depth - 4.0, seg.pedicle_z + 1.0])
    b = seg.to_world([side * (x_ped - 2.0), -seg.half_depth - 3.0, below_pedicle])
    c = seg.to_world([side * (x_ped + 20.0), -seg.half_depth + 8.0, below_pedicle - 18.0])
    ganglion = seg.to_world([side * x_ped, -seg.half_depth - 2.5, below_pedicle - 1.5])

    def field(points: np.ndarray) -> np.ndarray:
        return sdf.union(sdf.capsule(points, a, b, 2.2), sdf.capsule(points, b, c, 2.4),
                         sdf.ellipsoid(points, ganglion, (3.4, 3.2, 4.2)), k_mm=2.0)

    points = np.stack([a, b, c, ganglion])
    return field, points
