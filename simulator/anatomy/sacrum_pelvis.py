"""Sacrum, coccyx and ilia.

The sacrum is built in **arc coordinates**: its bodies follow a circular arc in the mid-sagittal
plane, starting at the centre of the S1 superior endplate and curving forward (the sacral
kyphosis). A point is described by ``x`` (lateral, mm), ``s`` (arc length from the S1 endplate
down the sacrum, mm) and ``ap`` (distance from the arc, positive anterior). Each part of the sacrum
(bodies, lateral masses, dorsal plate, canal, foramina, hiatus, cornua) is a profile along ``s``.

The ilia are curved plates flaring from the sacroiliac joints to the iliac crests; the joint space
is the thin shell between the sacrum's auricular surface and the ilium, so the two always fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.geometry import frames, sdf

#: Radius of the sacral arc (the sacrum's anterior concavity), mm.
SACRAL_ARC_RADIUS_MM = 115.0
#: Sacroiliac joint space, mm (1-2 mm on imaging, wikiMSK; up to ~4.5 in anatomy texts).
SIJ_GAP_MM = 2.0
#: Arc position (mm before scaling) below which the sacroiliac joint opens posteriorly: its lower
#: third, the synovial part (reference 3.9: the target is the inferior 1-2 cm of the joint).
SIJ_OPEN_S_MM = 40.0


@dataclass(frozen=True)
class SacrumShape:
    """Profiles of the sacrum along its arc (s in mm from the S1 endplate), scaled per patient."""

    scale: float
    hiatus_apex_s_mm: float  # S4 in most people
    dural_sac_end_s_mm: float  # around upper S2
    cornua: bool = True  # palpable sacral cornua beside the hiatus
    hiatus_depth_factor: float = 1.0  # < 1: a narrow hiatus (AP depth under 3 mm in ~9%)
    lumbarized_s1: bool = False  # S1 separated from S2 by a rudimentary disc

    def profile(self, knots_s, values, s):
        return np.interp(s, np.asarray(knots_s) * self.scale, np.asarray(values) * self.scale)

    # segment boundaries (S1 top at 0): S1 0-30, S2 -54, S3 -74, S4 -90, S5 -103, coccyx 106-135
    def body_half_width(self, s):
        return self.profile([0, 30, 54, 74, 90, 103], [24, 19, 15, 11, 8, 6], s)

    def body_half_depth(self, s):
        return self.profile([0, 30, 54, 74, 90, 103], [17, 13, 10, 8, 6, 5], s)

    def canal_half_width(self, s):
        return self.profile([0, 30, 54, 74, 90, 103], [15, 13, 10, 7.5, 6.5, 6], s)

    def canal_half_depth(self, s):
        depth = self.profile([0, 30, 54, 74, 90, 103], [6.5, 5.5, 4.0, 3.0, 2.6, 2.4], s)
        if self.hiatus_depth_factor != 1.0:
            # a narrow hiatus: the canal flattens from 10 mm above the apex down
            narrowing = np.clip((s - (self.hiatus_apex_s_mm - 10.0 * self.scale)) / (10.0 * self.scale), 0.0, 1.0)
            depth = depth * (1.0 - (1.0 - self.hiatus_depth_factor) * narrowing)
        return depth

    def lateral_half_width(self, s):
        return self.profile([0, 8, 25, 45, 65, 85, 100], [50, 53, 50, 42, 30, 17, 9], s)

    def canal_centre_ap(self, s):
        return -self.body_half_depth(s) - self.canal_half_depth(s) - 0.8

    def dorsal_surface_ap(self, s):
        """Back of the dorsal plate (fused laminae)."""
        return self.canal_centre_ap(s) - self.canal_half_depth(s) - 6.5 * self.scale


class SacralFrame:
    """Maps world points to sacral arc coordinates and back."""

    def __init__(self, world_from_s1plate: np.ndarray, radius_mm: float):
        self.world_from_plate = world_from_s1plate
        self.plate_from_world = frames.invert_rigid(world_from_s1plate)
        self.radius = radius_mm

    def to_arc(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = frames.apply(self.plate_from_world, points)
        vy = q[..., 1] - self.radius
        vz = q[..., 2]
        theta = np.arctan2(-vz, -vy)
        rho = np.hypot(vy, vz)
        return q[..., 0], self.radius * theta, self.radius - rho

    def to_world(self, x, s, ap) -> np.ndarray:
        theta = np.asarray(s, float) / self.radius
        rho = self.radius - np.asarray(ap, float)
        y = self.radius - rho * np.cos(theta)
        z = -rho * np.sin(theta)
        q = np.stack(np.broadcast_arrays(np.asarray(x, float), y, z), axis=-1)
        return frames.apply(self.world_from_plate, q)

    def axis_at(self, s: float) -> tuple[np.ndarray, np.ndarray]:
        """World unit vectors (down the arc, anterior) at arc length ``s``."""
        p0 = self.to_world(0.0, s, 0.0)
        down = frames.unit(self.to_world(0.0, s + 1.0, 0.0) - p0)
        anterior = frames.unit(self.to_world(0.0, s, 1.0) - p0)
        return down, anterior


def sacrum_field(frame: SacralFrame, shape: SacrumShape, extra_bone=()):
    """World-space field of the sacrum. ``extra_bone`` are world fields joined to it (the S1
    superior articular processes)."""
    k = shape.scale

    def field(points: np.ndarray) -> np.ndarray:
        x, s, ap = frame.to_arc(points)
        s_top = -s  # above the S1 endplate is outside
        # bodies: a swept ellipse along the arc, from the S1 endplate to S5
        body = sdf.ellipse_2d(np.stack([x, ap], -1),
                              np.stack([shape.body_half_width(s), shape.body_half_depth(s)], -1))
        body = np.maximum(body, np.maximum(s_top, s - 103.0 * k))
        # lateral masses (alae): thick, tapering down; the alae slope down laterally at the top
        half_lat = shape.lateral_half_width(s)
        lat_front = 0.55 * shape.body_half_depth(s)
        lat_back = shape.dorsal_surface_ap(s) + 1.0
        lat_centre = 0.5 * (lat_front + lat_back)
        lat_half = 0.5 * (lat_front - lat_back)
        lateral = sdf.round_box(np.stack([x, ap - lat_centre, np.zeros_like(x)], -1), np.zeros(3),
                                np.stack([half_lat, lat_half, np.ones_like(x)], -1), 0.0)
        lateral = sdf.smooth_max(lateral, np.maximum(2.0 * k + 0.16 * np.abs(x) - s, s - 98.0 * k), 6.0)
        # dorsal plate (fused laminae) from below the L5-S1 interlaminar window to the hiatus
        plate_back = shape.dorsal_surface_ap(s)
        plate_front = shape.canal_centre_ap(s)
        plate = sdf.round_box(np.stack([x, ap - 0.5 * (plate_back + plate_front), np.zeros_like(x)], -1),
                              np.zeros(3),
                              np.stack([shape.canal_half_width(s) + 10.0 * k,
                                        0.5 * (plate_front - plate_back), np.ones_like(x)], -1), 0.0)
        # the plate stops at the hiatus: an inverted U whose apex is in the midline
        hiatus_edge = shape.hiatus_apex_s_mm + 14.0 * np.minimum((x / (7.0 * k)) ** 2, 1.0)
        plate = np.maximum(plate, np.maximum(11.0 * k - s, s - hiatus_edge))
        # median crest: fused spinous tubercles
        crest = [sdf.ellipsoid(np.stack([x, ap, s], -1), (0.0, plate_back_at - 2.5 * k, s_c),
                               (3.5 * k, 5.0 * k, 7.0 * k))
                 for s_c, plate_back_at in ((s_c, float(shape.dorsal_surface_ap(s_c)))
                                            for s_c in (18.0 * k, 40.0 * k, 61.0 * k))]
        # cornua: the paired tubercles either side of the hiatus
        cornu_s = shape.hiatus_apex_s_mm + 11.0 * k
        cornu_ap = float(shape.dorsal_surface_ap(cornu_s)) + 2.0 * k
        cornua = [sdf.ellipsoid(np.stack([x, ap, s], -1), (side * 6.5 * k, cornu_ap, cornu_s),
                                (3.2 * k, 3.5 * k, 6.0 * k)) for side in (1, -1)] if shape.cornua else []
        bone = sdf.union(body, lateral, plate, *crest, k_mm=4.0)
        # the hiatus: the back of the canal lies open below the plate's edge (the lateral masses'
        # box would otherwise roof it)
        opening = np.maximum(_hiatus_region(x, s, shape), ap - shape.canal_centre_ap(s))
        bone = sdf.smooth_max(bone, -opening, 1.0)
        if cornua:
            # joined with a small blend: a wide one webs the two cornua across the hiatus
            bone = sdf.union(bone, *cornua, k_mm=1.0)
        if extra_bone:
            bone = sdf.union(bone, *[f(points) for f in extra_bone], k_mm=4.0)
        # sacral canal (continuous with the lumbar canal) and the hiatus below the apex
        canal = sdf.ellipse_2d(np.stack([x, ap - shape.canal_centre_ap(s)], -1),
                               np.stack([shape.canal_half_width(s), shape.canal_half_depth(s)], -1))
        canal = np.maximum(canal, s - 100.0 * k)
        bone = sdf.smooth_max(bone, -canal, 1.5)
        # dorsal and ventral foramina: four pairs of channels running front to back
        for s_f, x_f, r_f in DORSAL_FORAMINA:
            for side in (1, -1):
                hole = sdf.ellipse_2d(np.stack([x - side * x_f * k, s - s_f * k], -1), (r_f * k, r_f * k))
                bone = sdf.smooth_max(bone, -hole, 1.0)
        if shape.lumbarized_s1:
            # a rudimentary S1-S2 disc separates the first sacral segment's body and arch; the
            # lateral masses stay joined
            gap = np.maximum(np.abs(s - LUMBARIZED_GAP_S_MM * k) - 2.5 * k,
                             np.abs(x) - (shape.canal_half_width(s) + 10.0 * k))
            bone = sdf.smooth_max(bone, -gap, 1.0)
        return bone

    return field


#: The four pairs of dorsal sacral foramina: (arc position s, distance from the midline, radius), mm
#: before scaling: ~2-3 cm from the midline and ~2-2.5 cm apart (reference 1.9).
DORSAL_FORAMINA = ((27.0, 22.0, 5.2), (50.0, 21.0, 4.6), (70.5, 19.0, 4.0), (87.0, 16.0, 3.2))
#: Where a lumbarised S1 is separated from S2 (arc position, mm before scaling).
LUMBARIZED_GAP_S_MM = 30.0


#: Thickness of the sacrococcygeal ligament over the hiatus, mm before scaling (a design value:
#: a thin dense sheet, 1-3 mm on ultrasound; no series in our sources measures it).
SACROCOCCYGEAL_LIGAMENT_MM = 2.0


def _hiatus_region(x, s, shape: SacrumShape):
    """Bound that is negative inside the hiatus opening: below the inverted-U edge of the dorsal
    plate, inside the U, down to the bottom of S5."""
    k = shape.scale
    hiatus_edge = shape.hiatus_apex_s_mm + 14.0 * np.minimum((x / (7.0 * k)) ** 2, 1.0)
    return np.maximum(np.maximum(hiatus_edge - 0.5 - s, s - 106.0 * k), np.abs(x) - 7.5 * k)


def sacrococcygeal_ligament_field(frame: SacralFrame, shape: SacrumShape):
    """The sacrococcygeal ligament: the sheet that closes the sacral hiatus where the dorsal plate
    stops, flush with the plate's back surface (the "give" of a caudal needle)."""
    thickness = SACROCOCCYGEAL_LIGAMENT_MM * shape.scale

    def field(points: np.ndarray) -> np.ndarray:
        x, s, ap = frame.to_arc(points)
        back = shape.dorsal_surface_ap(s)
        sheet = np.abs(ap - (back + 0.5 * thickness)) - 0.5 * thickness
        return np.maximum(sheet, _hiatus_region(x, s, shape))

    return field


def hiatus_fat_field(frame: SacralFrame, shape: SacrumShape):
    """Epidural fat between the sacrococcygeal ligament and the sacral canal in the hiatus (where
    the missing plate would be): the caudal epidural space begins just deep to the ligament."""
    thickness = SACROCOCCYGEAL_LIGAMENT_MM * shape.scale

    def field(points: np.ndarray) -> np.ndarray:
        x, s, ap = frame.to_arc(points)
        front = -shape.body_half_depth(s)  # down to the bodies (bone is painted over it)
        back = shape.dorsal_surface_ap(s) + thickness
        band = np.maximum(back - ap, ap - front)
        return np.maximum(band, _hiatus_region(x, s, shape))

    return field


def sacral_foramen_fat_field(frame: SacralFrame, shape: SacrumShape, index: int, side: int):
    """Fat round the ramus in one sacral foramen's channel, from the dorsal surface through the
    bone (``index`` 0 for S1; ``side`` +1 right): where an S1 transforaminal needle ends and its
    contrast outlines the root."""
    k = shape.scale
    s_f, x_f, r_f = DORSAL_FORAMINA[index]

    def field(points: np.ndarray) -> np.ndarray:
        x, s, ap = frame.to_arc(points)
        hole = sdf.ellipse_2d(np.stack([x - side * x_f * k, s - s_f * k], -1), (r_f * k - 0.5, r_f * k - 0.5))
        band = np.maximum(shape.dorsal_surface_ap(s) + 0.5 - ap, ap - shape.body_half_depth(s))
        return np.maximum(hole, band)

    return field


def coccyx_field(frame: SacralFrame, shape: SacrumShape):
    """Three small coccygeal segments continuing the sacral arc."""
    k = shape.scale
    segments = ((110.0, 7.5, 5.0, 5.0), (120.0, 5.5, 4.0, 4.2), (128.5, 4.0, 3.2, 3.4))

    def field(points: np.ndarray) -> np.ndarray:
        x, s, ap = frame.to_arc(points)
        q = np.stack([x, ap + 2.0 * k, s], -1)
        parts = [sdf.ellipsoid(q, (0.0, 0.0, s_c * k), (rx * k, ry * k, rz * k))
                 for s_c, rx, ry, rz in segments]
        return sdf.union(*parts, k_mm=1.5)

    return field


@dataclass(frozen=True)
class IliumShape:
    """One ilium: a curved wing between the sacroiliac joint and the iliac crest."""

    side: int  # +1 right, -1 left
    centre: np.ndarray  # world centre of the ellipsoid the wing lies on
    radii: np.ndarray
    crest_top_z_mm: float  # highest point of the crest (world z)
    crest_top_y_mm: float
    thickness_mm: float = 5.0

    def crest_z(self, y: np.ndarray) -> np.ndarray:
        """World z of the crest above a point at world ``y``: highest posterolaterally."""
        dy = (y - self.crest_top_y_mm) / 45.0
        return self.crest_top_z_mm - 18.0 * dy * dy

    def crest_top(self) -> np.ndarray:
        """World point at the highest part of the crest (on the wing's outer surface)."""
        y = self.crest_top_y_mm
        z = self.crest_top_z_mm
        r = self.radii
        c = self.centre
        t = 1.0 - ((y - c[1]) / r[1]) ** 2 - ((z - c[2]) / r[2]) ** 2
        x = c[0] + self.side * r[0] * np.sqrt(max(t, 0.0))
        return np.array([x, y, z])


def ilium_field(ilium: IliumShape, sacrum_world_field, frame: SacralFrame, shape: SacrumShape):
    """World-space field of one ilium: wing, crest rim and the thick posterior part that meets the
    sacrum at the sacroiliac joint."""
    side = ilium.side
    k = shape.scale

    def field(points: np.ndarray) -> np.ndarray:
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        ell = sdf.ellipsoid(points, ilium.centre, ilium.radii)
        # the wing thins to nothing towards its medial edge, where it meets the thick posterior
        # ilium: no hard edge shows on a radiograph
        lateral_mm = x * side - (ilium.centre[0] * side - 12.0)
        thickness = ilium.thickness_mm * np.clip(lateral_mm / 22.0, 0.0, 1.0)
        wing = np.abs(ell + 0.5 * thickness) - 0.5 * thickness
        crest_z = ilium.crest_z(y)
        # the wing narrows downwards like a fan: its front edge recedes towards the acetabulum and
        # its back edge towards the greater sciatic notch
        below_top = np.maximum(ilium.crest_top_z_mm - z, 0.0)
        front_edge = 70.0 - 0.55 * below_top
        back_edge = -60.0 + 0.45 * np.maximum(below_top - 40.0, 0.0)
        bounds = np.maximum.reduce([-lateral_mm, z - crest_z, -60.0 - z, y - front_edge, back_edge - y])
        wing = sdf.smooth_max(wing, bounds, 3.0)
        rim = np.hypot(ell + 0.5 * ilium.thickness_mm, z - crest_z + 4.0) - 5.0
        rim = np.maximum(rim, np.maximum(-lateral_mm - 8.0, y - 70.0))
        # posterior ilium: a block wrapping the sacrum's lateral side (S1-S3), separated from it by
        # the joint space, rising to the posterior superior iliac spine
        xs, s, ap = frame.to_arc(points)
        d_sac = sacrum_world_field(points)
        wrap = np.maximum(SIJ_GAP_MM - d_sac, d_sac - (SIJ_GAP_MM + 11.0 * k))
        region = np.maximum.reduce([
            (shape.lateral_half_width(s) - 8.0 * k) - xs * side,
            s - 58.0 * k, -6.0 * k - s,
            ap - 6.0 * k,
            shape.dorsal_surface_ap(s) - 12.0 * k - ap,
        ])
        posterior = sdf.smooth_max(wrap, region, 4.0)
        # below the interosseous (ligamentous) part the ilium does not overhang the sacrum: the
        # joint's synovial lower third opens to the back, where it is injected
        overhang = np.maximum(xs * side - (shape.lateral_half_width(s) + SIJ_GAP_MM), SIJ_OPEN_S_MM * k - s)
        posterior = sdf.smooth_max(posterior, -overhang, 2.0)
        return sdf.union(wing, rim, posterior, k_mm=6.0)

    return field


def sacroiliac_joint_field(ilium: IliumShape, sacrum_world_field, frame: SacralFrame, shape: SacrumShape):
    """The joint space between the sacrum's auricular surface and the ilium (S1-S3)."""
    side = ilium.side
    k = shape.scale

    def field(points: np.ndarray) -> np.ndarray:
        xs, s, ap = frame.to_arc(points)
        d_sac = sacrum_world_field(points)
        gap = np.abs(d_sac - 0.5 * SIJ_GAP_MM) - 0.5 * SIJ_GAP_MM
        # where the ilium overhangs the sacrum's back (above the lower third) the joint wraps round
        # behind it; below, it ends at the sacrum's posterolateral corner (its posterior opening)
        medial_reach = np.where(s > SIJ_OPEN_S_MM * k, 1.0, 10.0 * k)
        region = np.maximum.reduce([
            (shape.lateral_half_width(s) - medial_reach) - xs * side,
            s - 60.0 * k, -2.0 * k - s,
            ap - 8.0 * k,
            shape.dorsal_surface_ap(s) - 10.0 * k - ap,
        ])
        return np.maximum(gap, region)

    return field
