"""The lumbar column: where each vertebra sits, and the shape of each vertebra and disc.

Every vertebra is built in its own **body frame**: origin at the centre of the vertebral body
(half-way between the endplates), ``x`` to the patient's right, ``y`` anterior, ``z`` along the body
axis (cranial). Vertebrae are stacked on the S1 endplate along the lordotic curve: each disc and each
body is a wedge, and the sum of the wedges is the patient's lordosis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.anatomy.morphometry import DiscDims, LumbarMorphometry, VertebraDims
from simulator.anatomy.structures import box_axes, oriented_box
from simulator.geometry import frames, sdf

#: Facet joint space width (cartilage and joint cleft) on CT, mm.
FACET_GAP_MM = 1.8
#: Cortical shell thickness of vertebral bone, mm.
CORTEX_MM = 1.1
#: Central concavity of each endplate, mm (the disc is that much taller in its middle).
ENDPLATE_DISH_MM = 1.2


@dataclass(frozen=True)
class Segment:
    """One vertebra (or the S1 segment) placed in the world.

    Attributes
    ----------
    name : str
        ``"L1"`` ... ``"L5"`` or ``"S1"``.
    world_from_body : ndarray (4, 4)
        Rigid transform of the body frame (origin at the body centre).
    dims : VertebraDims
    height_mid_mm : float
        Body height at the centre of the endplates.
    """

    name: str
    world_from_body: np.ndarray
    dims: VertebraDims
    height_mid_mm: float

    def to_world(self, local_points) -> np.ndarray:
        return frames.apply(self.world_from_body, np.asarray(local_points, float))

    def axis(self, local_vector) -> np.ndarray:
        return frames.apply_vector(self.world_from_body, np.asarray(local_vector, float))

    # --- reference points of the vertebra, in its body frame -------------------------------------
    @property
    def half_depth(self) -> float:
        return 0.5 * self.dims.endplate_depth_mm

    @property
    def pedicle_z(self) -> float:
        """Body-frame height of the pedicle axis (pedicles spring from the upper body)."""
        return 0.5 * self.height_mid_mm - 0.5 * self.dims.pedicle_height_mm - 1.5

    @property
    def lamina_top_z(self) -> float:
        return 0.5 * self.height_mid_mm - 1.0

    @property
    def lamina_bottom_z(self) -> float:
        return self.lamina_top_z - self.dims.lamina_height_mm

    @property
    def canal_back_y(self) -> float:
        """Body-frame y of the posterior wall of the canal (front of the laminae) at the midline."""
        return -self.half_depth - self.dims.canal_depth_mm

    def pedicle_centre_local(self, side: int) -> np.ndarray:
        """Centre of the pedicle's narrowest section (``side`` +1 right, -1 left), 4.5 mm behind
        the body. The pedicles converge forwards, so the centre sits lateral enough for their
        medial walls to be ``canal_width_mm`` apart where they meet the body."""
        d = self.dims
        converge = 4.5 * np.sin(np.radians(d.pedicle_transverse_angle_deg))
        return np.array([side * (0.5 * d.canal_width_mm + 0.5 * d.pedicle_width_mm + converge),
                         -self.half_depth - 4.5, self.pedicle_z])

    def spinous_axis_local(self) -> tuple[np.ndarray, np.ndarray]:
        """Base of the spinous process (laminar junction) and its unit direction, body frame."""
        d = self.dims
        z = 0.5 * (self.lamina_top_z + self.lamina_bottom_z)
        base = np.array([0.0, self.canal_back_y - 0.5 * d.lamina_thickness_mm, z])
        slope = np.radians(14.0)  # lumbar spinous processes run back and a little down
        return base, np.array([0.0, -np.cos(slope), -np.sin(slope)])

    def spinous_knob_local(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre and radii (body frame) of the thickened tip of the spinous process: it sits a
        little below the process's axis, the hatchet's thick posterior end."""
        base, axis = self.spinous_axis_local()
        down = np.cross([1.0, 0.0, 0.0], axis)  # perpendicular to the axis, pointing caudally
        down = down / np.linalg.norm(down)
        centre = base + axis * (self.dims.spinous_length_mm - 2.5) + down * (0.1 * self.dims.spinous_height_mm)
        return centre, np.array([4.8, 4.0, 0.5 * self.dims.spinous_height_mm])

    def spinous_tip_local(self) -> np.ndarray:
        """The most posterior point of the spinous process (what a finger feels)."""
        centre, radii = self.spinous_knob_local()
        return centre - np.array([0.0, radii[1], 0.0])


@dataclass(frozen=True)
class FacetJoint:
    """A zygapophyseal joint between ``upper`` (its inferior articular process) and ``lower``.

    ``normal`` points from the lower vertebra's superior articular facet towards the upper one's
    inferior facet (posteromedially); ``up`` runs along the joint cranially.
    """

    name: str  # e.g. "L4-L5.facet_right"
    centre: np.ndarray
    normal: np.ndarray
    up: np.ndarray
    half_height_mm: float
    half_width_mm: float

    @property
    def across(self) -> np.ndarray:
        return np.cross(self.up, self.normal)

    def slab_field(self, points: np.ndarray) -> np.ndarray:
        """The joint space: a thin elliptical slab between the articular surfaces."""
        q = points - self.centre
        n = q @ self.normal
        u = q @ self.up
        w = q @ self.across
        d_plane = np.abs(n) - 0.5 * FACET_GAP_MM
        d_ell = sdf.ellipse_2d(np.stack([u, w], axis=-1), (self.half_height_mm, self.half_width_mm))
        return np.maximum(d_plane, d_ell)


def stack_segments(morph: LumbarMorphometry, lordosis_deg: float) -> tuple[list[Segment], Segment]:
    """Place L1..L5 on the S1 endplate. Returns the lumbar segments (cranial first) and S1.

    The disc wedges are scaled so that disc and body wedges add up to ``lordosis_deg`` between the
    L1 superior and S1 superior endplates.
    """
    discs = {d.level.split("-")[0]: d for d in morph.discs}
    vertebrae = {v.level: v for v in morph.vertebrae}
    order = ["L5", "L4", "L3", "L2", "L1"]

    def disc_wedge_deg(disc: DiscDims, depth: float) -> float:
        return float(np.degrees(np.arctan2(disc.anterior_height_mm - disc.posterior_height_mm, depth)))

    natural = sum(disc_wedge_deg(discs[lv], vertebrae[lv].endplate_depth_mm) for lv in order)
    body_total = sum(vertebrae[lv].body_wedge_deg for lv in order)
    factor = (lordosis_deg + body_total) / natural

    # S1: the endplate faces forward-up by the sacral slope; the body frame sits below it
    s1_dims = VertebraDims(
        level="S1", endplate_width_mm=morph.s1_endplate_width_mm,
        endplate_depth_mm=morph.s1_endplate_depth_mm, body_height_posterior_mm=28.0,
        body_wedge_deg=0.0, canal_width_mm=30.0, canal_depth_mm=13.0,
        pedicle_width_mm=18.0, pedicle_height_mm=14.0, pedicle_transverse_angle_deg=30.0,
        spinous_length_mm=12.0, spinous_height_mm=14.0, transverse_span_mm=100.0,
        lamina_height_mm=16.0, lamina_thickness_mm=6.0,
        facet_angle_from_sagittal_deg=vertebrae["L5"].facet_angle_from_sagittal_deg)
    rot = frames.rotation_x(-morph.sacral_slope_deg)
    plate_centre = np.zeros(3)
    s1 = Segment("S1", frames.rigid(rot, plate_centre - rot @ np.array([0.0, 0.0, 14.0])), s1_dims, 28.0)

    segments = []
    for level in order:
        v = vertebrae[level]
        disc = discs[level]
        wedge = factor * disc_wedge_deg(disc, v.endplate_depth_mm)
        disc_rot = rot @ frames.rotation_x(0.5 * wedge)
        # the middle height is measured between the endplates' hollows
        rim_gap = disc.middle_height_mm - 2.0 * ENDPLATE_DISH_MM
        lower_plate = plate_centre + disc_rot @ np.array([0.0, 0.0, rim_gap])
        rot = rot @ frames.rotation_x(wedge)
        body_rot = rot @ frames.rotation_x(-0.5 * v.body_wedge_deg)
        h_mid = v.body_height_posterior_mm - v.endplate_depth_mm * 0.5 * np.tan(np.radians(v.body_wedge_deg))
        centre = lower_plate + body_rot @ np.array([0.0, 0.0, 0.5 * h_mid])
        segments.append(Segment(level, frames.rigid(body_rot, centre), v, float(h_mid)))
        plate_centre = lower_plate + body_rot @ np.array([0.0, 0.0, h_mid])
        rot = rot @ frames.rotation_x(-v.body_wedge_deg)
    segments.reverse()
    return segments, s1


def facet_joint(upper: Segment, lower: Segment, side: int) -> FacetJoint:
    """The joint between ``upper``'s inferior and ``lower``'s superior articular process."""
    d = lower.dims
    phi = np.radians(d.facet_angle_from_sagittal_deg)
    centre_local = np.array([side * (0.5 * d.canal_width_mm + 5.0),
                             -lower.half_depth - 0.8 * d.canal_depth_mm,
                             0.5 * lower.height_mid_mm + 4.0])
    normal_local = np.array([-side * np.cos(phi), -np.sin(phi), 0.0])
    # the joint leans back a little: its top is more posterior than its bottom
    up_local = frames.unit([0.0, -0.15, 1.0])
    up_local = frames.unit(up_local - (up_local @ normal_local) * normal_local)
    side_name = "right" if side > 0 else "left"
    return FacetJoint(
        name=f"{upper.name}-{lower.name}.facet_{side_name}",
        centre=lower.to_world(centre_local),
        normal=lower.axis(normal_local),
        up=lower.axis(up_local),
        half_height_mm=8.0,
        half_width_mm=7.0,
    )


def superior_articular_process(p: np.ndarray, joint: FacetJoint, base_world: np.ndarray) -> np.ndarray:
    """The lower vertebra's SAP: a rounded plate in front of (antero-lateral to) the joint, rising
    from ``base_world`` (the pedicle's posterior end) to above the joint, with the mammillary
    process's bulk on its posterior rim."""
    thickness = 6.5
    radius = joint.half_width_mm + 0.5
    centre_face = joint.centre - joint.normal * (0.5 * FACET_GAP_MM + 0.5 * thickness)
    top = centre_face + joint.up * (joint.half_height_mm + 1.5 - radius)
    bottom = base_world - joint.normal * 1.0
    return sdf.flat_capsule(p, bottom, top, radius, joint.normal, thickness / (2.0 * radius))


def inferior_articular_process(p: np.ndarray, joint: FacetJoint, root_world: np.ndarray) -> np.ndarray:
    """The upper vertebra's IAP: a rounded plate behind (postero-medial to) the joint, hanging from
    the lamina at ``root_world`` to below the joint."""
    thickness = 6.0
    radius = joint.half_width_mm
    centre_face = joint.centre + joint.normal * (0.5 * FACET_GAP_MM + 0.5 * thickness)
    bottom = centre_face - joint.up * (joint.half_height_mm + 1.5 - radius)
    return sdf.flat_capsule(p, root_world, bottom, radius, joint.normal, thickness / (2.0 * radius))


def body_field_local(q: np.ndarray, seg: Segment) -> np.ndarray:
    """Vertebral body in its body frame: a waisted kidney-shaped cylinder with wedged, slightly
    concave endplates and rounded rims."""
    d = seg.dims
    half_w = 0.5 * d.endplate_width_mm
    half_d = seg.half_depth
    half_h = 0.5 * seg.height_mid_mm
    x, y, z = q[..., 0], q[..., 1], q[..., 2]
    zn = np.clip(z / half_h, -1.0, 1.0)
    waist = 1.0 - 0.045 * (1.0 - zn * zn)  # sides are concave, rims flare
    # an ellipse reaching 3 mm behind the posterior wall, cut flat at the wall: the flat (slightly
    # hollowed) back that faces the canal, with the section's full depth in the midline
    behind = 1.5
    q2 = np.stack([x / waist, (y + behind) / waist], axis=-1)
    d2 = sdf.ellipse_2d(q2, (half_w, half_d + behind)) * waist
    d2 = sdf.smooth_max(d2, -(y + half_d), 1.5)
    bite = sdf.ellipse_2d(np.stack([x, y + half_d + 6.7], axis=-1), (0.27 * half_w, 7.5))
    d2 = sdf.smooth_max(d2, -bite, 1.5)
    # wedge: kyphotic wedge (positive) makes the front shorter
    tan_w = np.tan(np.radians(0.5 * d.body_wedge_deg))
    r2 = np.clip((x / half_w) ** 2 + (y / half_d) ** 2, 0.0, 1.0)
    dish = ENDPLATE_DISH_MM * (1.0 - r2)  # endplates are slightly concave
    top = half_h - y * tan_w - dish
    bottom = -half_h + y * tan_w + dish
    dz = np.maximum(z - top, bottom - z)
    r = 2.2
    return np.hypot(np.maximum(d2 + r, 0), np.maximum(dz + r, 0)) + np.minimum(np.maximum(d2 + r, dz + r), 0) - r


def posterior_elements_local(q: np.ndarray, seg: Segment) -> list[np.ndarray]:
    """Pedicles, laminae, spinous and transverse processes of ``seg`` (body frame), as fields."""
    d = seg.dims
    parts = []
    alpha = np.radians(d.pedicle_transverse_angle_deg)
    for side in (1, -1):
        # pedicle: an oval strut converging anteromedially, from inside the body to the pillar
        mid = seg.pedicle_centre_local(side)
        axis = np.array([-side * np.sin(alpha), np.cos(alpha), 0.0])
        front = mid + axis * 9.0
        back = mid - axis * 8.0
        # an oval section: flattened across its narrower dimension (L5 pedicles are wider than tall)
        if d.pedicle_width_mm <= d.pedicle_height_mm:
            flat, radius = np.cross(axis, [0.0, 0.0, 1.0]), 0.5 * d.pedicle_height_mm
        else:
            flat, radius = np.array([0.0, 0.0, 1.0]), 0.5 * d.pedicle_width_mm
        ratio = min(d.pedicle_width_mm, d.pedicle_height_mm) / max(d.pedicle_width_mm, d.pedicle_height_mm)
        parts.append(sdf.flat_capsule(q, front, back, radius, flat, ratio))
        # transverse process: a flattened bar from the pedicle-lamina junction
        root = back + np.array([side * 2.0, 0.5, -1.0])
        tip = np.array([side * 0.5 * d.transverse_span_mm, -seg.half_depth - 5.0, seg.pedicle_z - 2.0])
        stout = 1.25 if seg.name == "L5" else 1.0
        parts.append(sdf.flat_capsule(q, root, tip, 6.0 * stout, [0.0, 1.0, 0.0], 0.5,
                                      rb_mm=4.6 * stout))
        # lamina: an oval plate from the articular pillar to the midline, sloping back as it
        # descends; its curved borders shape the interlaminar window
        zc = 0.5 * (seg.lamina_top_z + seg.lamina_bottom_z)
        lateral = np.array([side * (0.5 * d.canal_width_mm + 3.0),
                            -seg.half_depth - 0.78 * d.canal_depth_mm - 0.5 * d.lamina_thickness_mm, zc])
        medial = np.array([0.0, seg.canal_back_y - 0.5 * d.lamina_thickness_mm, zc])
        axes = box_axes(medial - lateral, [0.0, np.sin(np.radians(22.0)), np.cos(np.radians(22.0))])
        local = (q - 0.5 * (lateral + medial)) @ axes.T
        half_len = 0.5 * np.linalg.norm(medial - lateral) + 6.0
        oval = sdf.ellipse_2d(local[..., :2], (half_len, 0.5 * d.lamina_height_mm))
        parts.append(sdf.extrude(oval, local[..., 2], 0.5 * d.lamina_thickness_mm, 1.8))
    # spinous process: a hatchet-shaped plate, thin at its root and thick and tall at its tip
    base, axis = seg.spinous_axis_local()
    length = d.spinous_length_mm
    axes = box_axes(axis, [0.0, 0.0, 1.0])
    local = (q - base) @ axes.T  # (along the process, cranial, lateral)
    along = np.clip(local[..., 0] / length, 0.0, 1.0)
    d_length = np.abs(local[..., 0] - 0.5 * length) - 0.5 * length
    # upper border straight, lower border dropping towards the thick posterior end (a hatchet)
    half_h = 0.5 * d.spinous_height_mm
    upper = 0.8 * half_h
    lower = -0.8 * half_h - 0.45 * half_h * along
    d_height = np.maximum(local[..., 1] - upper, lower - local[..., 1])
    parts.append(sdf.extrude(np.maximum(d_length, d_height), local[..., 2], 2.6 + 1.6 * along, 2.0))
    knob_centre, knob_radii = seg.spinous_knob_local()
    parts.append(sdf.ellipsoid(q, knob_centre, knob_radii))
    return parts


def vertebra_field(seg: Segment, sap_joints: list[FacetJoint] | None,
                   iap_joints: list[FacetJoint] | None):
    """World-space field of a whole lumbar vertebra (body, posterior arch, articular processes).

    ``sap_joints`` are the (right, left) joints with the vertebra above, formed by this vertebra's
    superior articular processes; ``iap_joints`` those with the vertebra below.
    """
    local_from_world = frames.invert_rigid(seg.world_from_body)
    zc = 0.5 * (seg.lamina_top_z + seg.lamina_bottom_z)
    sap_bases = [seg.to_world(seg.pedicle_centre_local(side) + np.array([side * 1.5, -7.0, 2.0]))
                 for side in (1, -1)]
    iap_roots = [seg.to_world(np.array([side * (0.5 * seg.dims.canal_width_mm + 1.0),
                                        seg.canal_back_y + 1.0,
                                        zc - 0.25 * seg.dims.lamina_height_mm]))
                 for side in (1, -1)]

    def field(points: np.ndarray) -> np.ndarray:
        q = frames.apply(local_from_world, points)
        d = sdf.union(body_field_local(q, seg), *posterior_elements_local(q, seg), k_mm=3.5)
        extra = []
        for joint, base in zip(sap_joints or (), sap_bases):
            extra.append(superior_articular_process(points, joint, base))
        for joint, root in zip(iap_joints or (), iap_roots):
            extra.append(inferior_articular_process(points, joint, root))
        if extra:
            d = sdf.union(d, *extra, k_mm=3.5)
        return d

    return field


def disc_field(upper: Segment, lower: Segment, disc: DiscDims):
    """World-space field of the disc between two bodies: the space between their endplates,
    bulging a little past the rims."""
    local_from_world = frames.invert_rigid(lower.world_from_body)
    lw = 0.5 * min(upper.dims.endplate_width_mm, lower.dims.endplate_width_mm) + 0.8
    ld = 0.5 * min(upper.dims.endplate_depth_mm, lower.dims.endplate_depth_mm) + 0.6
    lower_top = 0.5 * lower.height_mid_mm
    upper_bottom_world = upper.to_world([0.0, 0.0, -0.5 * upper.height_mid_mm])
    upper_bottom = frames.apply(local_from_world, upper_bottom_world)[2]
    zc = 0.5 * (lower_top + upper_bottom)
    half_h = 0.5 * (upper_bottom - lower_top) + 3.0  # overlaps both endplates; bone is painted over

    def field(points: np.ndarray) -> np.ndarray:
        q = frames.apply(local_from_world, points)
        d2 = sdf.ellipse_2d(q[..., :2], (lw, ld))
        d2 = sdf.smooth_max(d2, -(q[..., 1] + ld - 1.0), 2.0)
        return sdf.extrude(d2, q[..., 2] - zc, half_h, 1.0)

    return field


def nucleus_field(upper: Segment, lower: Segment):
    """The nucleus pulposus: an ellipsoid a little behind the disc centre."""
    a = upper.to_world([0.0, 0.0, -0.5 * upper.height_mid_mm])
    b = lower.to_world([0.0, 0.0, 0.5 * lower.height_mid_mm])
    centre = 0.5 * (a + b) + lower.axis([0.0, -2.0, 0.0])
    half_h = 0.32 * np.linalg.norm(a - b)
    rx = 0.22 * lower.dims.endplate_width_mm
    ry = 0.2 * lower.dims.endplate_depth_mm
    local_from_world = frames.invert_rigid(lower.world_from_body)
    centre_local = frames.apply(local_from_world, centre)

    def field(points: np.ndarray) -> np.ndarray:
        q = frames.apply(local_from_world, points)
        return sdf.ellipsoid(q, centre_local, (rx, ry, half_h))

    return field
