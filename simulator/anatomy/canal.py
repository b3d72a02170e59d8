"""The spinal canal's contents: epidural fat, dural sac (dura and CSF), cord and conus, cauda
equina, and the exiting nerve roots with their ganglia."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from simulator.anatomy.sacrum_pelvis import SacralFrame, SacrumShape
from simulator.anatomy.structures import Tube
from simulator.anatomy.vertebra import Segment
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
    narrower caudally; 1-2 mm in the neck, 3-4 mm at C7-T1; LF-to-dura 4-5 mm in the upper thorax
    (Aldrete 1998) (reference section 2.1)."""
    table = {"L1": 4.6, "L2": 5.2, "L3": 5.0, "L4": 4.6, "L5": 4.0, "C7": 3.5, "T1": 4.5, "T2": 4.0}
    if level in table:
        return table[level]
    if level.startswith("C"):
        return 1.6
    return 3.5


def cord_radii_mm(level: str) -> tuple[float, float]:
    """Cord semi-axes (transverse, AP): the cervical enlargement ~12-14 x 7-9 mm, the thoracic cord
    ~8 x 6 mm, the lumbosacral enlargement a little larger (reference section 2.4)."""
    if level in ("C4", "C5", "C6"):
        return 6.5, 4.0
    if level.startswith("C"):
        return 6.0, 3.8
    if level in ("T11", "T12", "L1"):
        return 4.6, 3.6
    return 4.0, 3.0


class SpinalCanal:
    """Centrelines and sections of the canal, the dural sac and the cord for one patient.

    Parameters
    ----------
    segments : list of Segment
        The vertebrae, cranial first.
    frame, shape : sacral arc frame and shape
    conus_tip_mm : ndarray (3,)
        Where the cord ends (the conus medullaris).
    """

    def __init__(self, segments: list[Segment], frame: SacralFrame, shape: SacrumShape):
        canal_pts, canal_attr, sac_pts, sac_attr, cord_attr = [], [], [], [], []
        top = segments[0]
        for seg in segments:
            d = seg.dims
            rx_sac = (0.33 if seg.region == "cervical" else 0.36) * d.canal_width_mm
            ry_sac = 0.5 * (d.canal_depth_mm - 1.0 - posterior_fat_mm(seg.name))
            zs = (0.5 * seg.height_mid_mm + 25.0, 0.5 * seg.height_mid_mm) if seg is top else ()
            for z in (*zs, 0.4 * seg.height_mid_mm, 0.0, -0.4 * seg.height_mid_mm):
                # reaches 1.5 mm into the bodies and discs (painted over them) so no gap is left
                canal_pts.append(seg.to_world([0.0, -seg.half_depth - 0.5 * d.canal_depth_mm + 0.75, z]))
                canal_attr.append([0.5 * d.canal_width_mm + 1.0, 0.5 * d.canal_depth_mm + 1.6])
                sac_pts.append(seg.to_world([0.0, -seg.half_depth - 1.0 - ry_sac, z]))
                sac_attr.append([rx_sac, ry_sac])
                cord_attr.append(cord_radii_mm(seg.name))
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
                cord_attr.append((2.0, 2.0))
        self.canal_centre, canal_r = resample_with(np.array(canal_pts), np.array(canal_attr))
        self.sac_centre, sac_r = resample_with(np.array(sac_pts), np.array(np.hstack([sac_attr, cord_attr])),
                                               smooth_mm=4.0)
        self.canal = Tube(self.canal_centre, canal_r[:, 0], canal_r[:, 1])
        self.sac = Tube(self.sac_centre, sac_r[:, 0], sac_r[:, 1])
        self.sac_rx = sac_r[:, 0]
        self.sac_ry = sac_r[:, 1]
        self.cord_rx = np.minimum(sac_r[:, 2], 0.85 * self.sac_rx)
        self.cord_ry = np.minimum(sac_r[:, 3], 0.8 * self.sac_ry)

    def sub_tube(self, start_mm: float, stop_mm: float, rx: np.ndarray, ry: np.ndarray,
                 anterior_shift: float, taper_mm: float = 0.0) -> Tube:
        """A tube inside the sac between arc lengths ``start_mm`` and ``stop_mm`` of the sac's
        centreline, with sections ``rx``, ``ry`` (per sample of the whole centreline) and shifted
        anteriorly by a fraction of the sac's AP radius."""
        n = len(self.sac_centre)
        i0 = int(np.clip(start_mm, 0, n - 2))
        i1 = int(np.clip(stop_mm, i0 + 2, n))
        idx = np.arange(i0, i1)
        ey = self.sac.ey[idx]
        anterior = ey * np.sign(ey[:, 1:2])  # the section axis that points forwards
        centre = self.sac_centre[idx] + anterior * (anterior_shift * self.sac_ry[idx])[:, None]
        rx_i = np.asarray(rx, float)[idx]
        ry_i = np.asarray(ry, float)[idx]
        if taper_mm > 0:
            t = np.clip((idx[-1] - idx) / taper_mm, 0.15, 1.0)
            rx_i, ry_i = rx_i * t, ry_i * t
        return Tube(centre, rx_i, ry_i)

    def cord(self, conus_s_mm: float) -> Tube:
        """The spinal cord from the top of the phantom to the tip of the conus."""
        return self.sub_tube(0.0, conus_s_mm, self.cord_rx, self.cord_ry, 0.0, taper_mm=16.0)

    def cauda_equina(self, conus_s_mm: float) -> Tube:
        """The cauda equina: the roots below the conus, lying in the dependent (for a prone patient,
        anterior) part of the sac."""
        return self.sub_tube(conus_s_mm - 5.0, len(self.sac_centre) - 3, 0.55 * self.sac_rx, 0.5 * self.sac_ry, 0.35)

    def sac_arclength_at(self, point: np.ndarray) -> float:
        """Arc length (mm) along the sac's centreline of the sample nearest ``point``."""
        return float(np.argmin(np.linalg.norm(self.sac_centre - point, axis=1)))


def nerve_root_field(upper: Segment, lower: Segment | None, side: int, sac_rx: float):
    """An exiting spinal nerve root with its dorsal root ganglion, through the foramen between
    ``upper`` and ``lower``: from the sac, under the upper pedicle, out of the foramen (lumbar:
    infero-laterally; thoracic: laterally under the rib; cervical: antero-laterally in the gutter of
    the transverse process, behind the vertebral artery)."""
    d = upper.dims
    x_ped = abs(upper.pedicle_centre_local(side)[0])
    below_pedicle = upper.pedicle_z - 0.5 * d.pedicle_height_mm - (4.5 if upper.region != "cervical" else 2.0)
    if upper.region == "cervical":
        # the cervical foramen sits between the pedicles at the level of the disc below the body
        z_foramen = -0.5 * upper.height_mid_mm - 1.0
        a = upper.to_world([side * 0.8 * sac_rx, -upper.half_depth - 3.0, z_foramen + 1.0])
        b = upper.to_world([side * (x_ped + 1.0), -upper.half_depth - 1.0, z_foramen])
        c = upper.to_world([side * (0.5 * d.transverse_span_mm + 4.0), -upper.half_depth + 5.0, z_foramen - 6.0])
        ganglion = upper.to_world([side * (x_ped + 2.5), -upper.half_depth - 0.5, z_foramen])
        radii = (2.6, 2.4, 3.0)
    else:
        a = upper.to_world([side * 0.8 * sac_rx, -upper.half_depth - 4.0, upper.pedicle_z + 1.0])
        b = upper.to_world([side * (x_ped - 2.0), -upper.half_depth - 3.0, below_pedicle])
        if upper.region == "thoracic":
            c = upper.to_world([side * (x_ped + 25.0), -upper.half_depth + 2.0, below_pedicle - 6.0])
        else:
            c = upper.to_world([side * (x_ped + 20.0), -upper.half_depth + 8.0, below_pedicle - 18.0])
        ganglion = upper.to_world([side * x_ped, -upper.half_depth - 2.5, below_pedicle - 1.5])
        radii = (3.4, 3.2, 4.2) if upper.region == "lumbar" else (2.8, 2.6, 3.4)
    r_root = 2.2 if upper.region == "lumbar" else 1.8

    def field(points: np.ndarray) -> np.ndarray:
        return sdf.union(sdf.capsule(points, a, b, r_root), sdf.capsule(points, b, c, r_root + 0.2),
                         sdf.ellipsoid(points, ganglion, radii), k_mm=2.0)

    points = np.stack([a, b, c, ganglion])
    return field, points, ganglion


def foraminal_fat_field(root_points: np.ndarray, region: str):
    """The fat round a root and its ganglion in the foramen and just outside it (continuous with the
    epidural fat, so contrast from a transforaminal needle outlines the root and runs medially).

    ``root_points``: the root's (start, bend in the foramen, end, ganglion) from
    :func:`nerve_root_field`. Bone is painted over it, so it fills only the foramen's free space.
    """
    _, bend, end, ganglion = root_points
    pad = {"lumbar": 4.5, "thoracic": 3.5}.get(region, 3.0)
    outside = bend + 0.4 * (end - bend)

    def field(points: np.ndarray) -> np.ndarray:
        return sdf.union(sdf.capsule(points, bend, outside, pad + 1.5),
                         sdf.sphere(points, ganglion, pad + 3.5), k_mm=3.0)

    return field, np.stack([bend, outside, ganglion]), pad + 4.0


def root_name(upper: str, lower: str) -> str:
    """The clinical name of the root leaving the foramen between two vertebrae: in the neck the
    root numbered after the vertebra below (C5-C6 carries C6, C7-T1 carries C8); below, the one
    numbered after the vertebra above (L4-L5 carries L4)."""
    if upper.startswith("C"):
        return "C8" if lower == "T1" else lower
    return upper
