"""One vertebra: where its parts sit in its own frame, its shape by region, its joints and discs.

Every vertebra is built in its own **body frame**: origin at the centre of the vertebral body
(half-way between the endplates), ``x`` to the patient's right, ``y`` anterior, ``z`` along the body
axis (cranial). The body and pedicles are shared by all regions; the posterior elements differ:

- **lumbar**: hatchet-shaped spinous process, flat transverse processes, sagittal-to-oblique facets;
- **thoracic**: long spinous processes sloping steeply down, stout transverse processes reaching
  back to the ribs, near-coronal facets;
- **cervical**: small bodies with uncinate processes, articular pillars (lateral masses) between
  facets inclined 40-65 degrees, transverse processes pierced by the foramen transversarium, short
  bifid spinous processes (C3-C6), the long vertebra prominens (C7), and the axis (C2) with its dens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.anatomy.morphometry import DiscDims, VertebraDims
from simulator.anatomy.structures import box_axes
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
        ``"C2"`` ... ``"L5"`` or ``"S1"``.
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

    @property
    def region(self) -> str:
        return self.dims.region

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
        """Body-frame height of the pedicle axis (pedicles spring from the upper body; in the neck
        from its middle)."""
        if self.region == "cervical":
            return 0.5
        return 0.5 * self.height_mid_mm - 0.5 * self.dims.pedicle_height_mm - 1.5

    @property
    def lamina_top_z(self) -> float:
        if self.region == "cervical":
            return 0.5 * self.dims.lamina_height_mm - 1.0
        return 0.5 * self.height_mid_mm - 1.0

    @property
    def lamina_bottom_z(self) -> float:
        return self.lamina_top_z - self.dims.lamina_height_mm

    @property
    def canal_back_y(self) -> float:
        """Body-frame y of the posterior wall of the canal (front of the laminae) at the midline."""
        return -self.half_depth - self.dims.canal_depth_mm

    @property
    def pedicle_length_mm(self) -> float:
        """How far the pedicle reaches back from the body before the articular pillar."""
        return {"cervical": 5.0, "thoracic": 8.0}.get(self.region, 9.0)

    def pedicle_centre_local(self, side: int) -> np.ndarray:
        """Centre of the pedicle's narrowest section (``side`` +1 right, -1 left). Most pedicles
        converge forwards, so the centre sits lateral enough for their medial walls to be
        ``canal_width_mm`` apart where they meet the body; diverging ones (T11-T12) are
        ``canal_width_mm`` apart at their isthmus (behind it the laminae close the canal in)."""
        d = self.dims
        back = 0.5 * self.pedicle_length_mm
        sin_a = np.sin(np.radians(d.pedicle_transverse_angle_deg))
        converge = back * max(sin_a, 0.0)
        return np.array([side * (0.5 * d.canal_width_mm + 0.5 * d.pedicle_width_mm + converge),
                         -self.half_depth - back, self.pedicle_z])

    def lateral_mass_centre_local(self, side: int) -> np.ndarray:
        """Centroid of a cervical articular pillar (the cervical medial branch target): behind the
        short pedicle, beside the back of the canal (the pillar is ~10-12 mm deep)."""
        d = self.dims
        return np.array([side * (0.5 * d.canal_width_mm + 5.5), -self.half_depth - self.pedicle_length_mm - 5.5, 0.0])

    def spinous_axis_local(self) -> tuple[np.ndarray, np.ndarray]:
        """Base of the spinous process (laminar junction) and its unit direction, body frame."""
        d = self.dims
        z = 0.5 * (self.lamina_top_z + self.lamina_bottom_z)
        base = np.array([0.0, self.canal_back_y - 0.5 * d.lamina_thickness_mm, z])
        slope = np.radians(d.spinous_inclination_deg)  # back and down
        return base, np.array([0.0, -np.cos(slope), -np.sin(slope)])

    def spinous_knob_local(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre and radii (body frame) of the thickened tip of the spinous process (it sits a
        little below the process's axis, the thick end of the lumbar hatchet)."""
        base, axis = self.spinous_axis_local()
        down = np.cross([1.0, 0.0, 0.0], axis)  # perpendicular to the axis, pointing caudally
        down = down / np.linalg.norm(down)
        d = self.dims
        if self.region == "lumbar":
            centre = base + axis * (d.spinous_length_mm - 2.5) + down * (0.06 * d.spinous_height_mm)
            return centre, np.array([4.8, 4.0, 0.42 * d.spinous_height_mm])
        if self.region == "thoracic":
            return base + axis * (d.spinous_length_mm - 2.0), np.array([3.6, 3.5, 4.5])
        big = self.name in ("C2", "C7")
        return base + axis * (d.spinous_length_mm - 2.0), np.array([3.5 if not big else 5.0, 3.2, 4.0 if not big else 5.5])

    @property
    def bifid(self) -> bool:
        """Bifid spinous process: C2-C6."""
        return self.region == "cervical" and self.name != "C7"

    def spinous_tip_local(self) -> np.ndarray:
        """The most posterior point of the spinous process (what a finger feels)."""
        centre, radii = self.spinous_knob_local()
        return centre - np.array([0.0, radii[1], 0.0])


@dataclass(frozen=True)
class FacetJoint:
    """A zygapophyseal joint between ``upper`` (its inferior articular process) and ``lower``.

    ``normal`` points from the lower vertebra's superior articular facet towards the upper one's
    inferior facet (posteromedially, and upwards in the neck); ``up`` runs along the joint cranially.
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

    def plane_distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance from the joint's mid-plane, positive on the upper vertebra's side."""
        return (points - self.centre) @ self.normal


def facet_joint(upper: Segment, lower: Segment, side: int) -> FacetJoint:
    """The joint between ``upper``'s inferior and ``lower``'s superior articular process, placed
    and oriented by the lower vertebra's region and facet angles."""
    d = lower.dims
    phi = np.radians(d.facet_angle_from_sagittal_deg)
    theta = np.radians(d.facet_angle_to_horizontal_deg)
    if lower.region == "cervical":
        centre_local = lower.lateral_mass_centre_local(side) + np.array([0.0, 0.0, 0.5 * lower.height_mid_mm + 2.5])
        size = (6.0, 5.5)
    elif lower.region == "thoracic":
        centre_local = np.array([side * (0.5 * d.canal_width_mm + 0.5 * d.pedicle_width_mm + 2.0),
                                 -lower.half_depth - 0.9 * d.canal_depth_mm, 0.5 * lower.height_mid_mm + 2.0])
        size = (7.0, 6.5)
    else:  # lumbar and the S1 segment
        centre_local = np.array([side * (0.5 * d.canal_width_mm + 5.0),
                                 -lower.half_depth - 0.8 * d.canal_depth_mm, 0.5 * lower.height_mid_mm + 4.0])
        size = (8.0, 7.0)
    horizontal = np.array([-side * np.cos(phi), -np.sin(phi), 0.0])
    normal_local = horizontal * np.sin(theta) + np.array([0.0, 0.0, 1.0]) * np.cos(theta)
    # lumbar joints lean back a little: their top is more posterior than their bottom
    lean = frames.unit([0.0, -0.15, 1.0]) if lower.region == "lumbar" else np.array([0.0, 0.0, 1.0])
    up_local = frames.unit(lean - (lean @ normal_local) * normal_local)
    side_name = "right" if side > 0 else "left"
    return FacetJoint(
        name=f"{upper.name}-{lower.name}.facet_{side_name}",
        centre=lower.to_world(centre_local),
        normal=lower.axis(normal_local),
        up=lower.axis(up_local),
        half_height_mm=size[0],
        half_width_mm=size[1],
    )


def _articular_plate(p: np.ndarray, joint: FacetJoint, face_offset_mm: float, thickness_mm: float,
                     radius_mm: float, end_a: np.ndarray, end_b: np.ndarray, tuck_a_mm: float = 0.0) -> np.ndarray:
    """A rounded plate parallel to a facet joint, its mid-plane ``face_offset_mm`` along the joint's
    normal from the joint, running from ``end_a`` to ``end_b`` (projected onto that mid-plane), with
    a short strut back to ``end_a`` where it lies off the plane (the process's root).

    ``tuck_a_mm`` moves the plate's rounded end at ``end_a`` that far towards ``end_b`` (the strut
    still reaches ``end_a``): a superior articular process sits on the back of its pedicle and must
    not spread over the pedicle's free upper border (the vertebral notch of the foramen).
    """
    n = joint.normal
    plane_point = joint.centre + n * face_offset_mm
    a = end_a - ((end_a - plane_point) @ n) * n
    b = end_b - ((end_b - plane_point) @ n) * n
    root = a
    if tuck_a_mm > 0.0:
        span = float(np.linalg.norm(b - a))
        a = a + (b - a) * min(tuck_a_mm, 0.5 * span) / max(span, 1e-9)
    plate = sdf.flat_capsule(p, a, b, radius_mm, n, thickness_mm / (2.0 * radius_mm))
    if np.linalg.norm(end_a - a) > 1.0:
        strut = sdf.capsule(p, end_a, a, 0.45 * thickness_mm + 1.0)
        if root is not a:
            strut = np.minimum(strut, sdf.capsule(p, end_a, root, 0.45 * thickness_mm + 1.0))
        plate = sdf.smooth_min(plate, strut, 2.0)
    return plate


def superior_articular_process(p: np.ndarray, joint: FacetJoint, base_world: np.ndarray) -> np.ndarray:
    """The lower vertebra's SAP: a rounded plate in front of (antero-lateral to) the joint, rising
    from ``base_world`` (the pedicle's posterior end) to above the joint."""
    thickness = 6.5
    radius = joint.half_width_mm + 0.5
    offset = -(0.5 * FACET_GAP_MM + 0.5 * thickness)
    top = joint.centre + joint.up * (joint.half_height_mm + 1.5 - radius)
    return _articular_plate(p, joint, offset, thickness, radius, base_world - joint.normal * 1.0, top,
                            tuck_a_mm=radius - 2.0)


def inferior_articular_process(p: np.ndarray, joint: FacetJoint, root_world: np.ndarray) -> np.ndarray:
    """The upper vertebra's IAP: a rounded plate behind (postero-medial to) the joint, hanging from
    the lamina at ``root_world`` to below the joint."""
    thickness = 6.0
    radius = joint.half_width_mm
    offset = 0.5 * FACET_GAP_MM + 0.5 * thickness
    bottom = joint.centre - joint.up * (joint.half_height_mm + 1.5 - radius)
    return _articular_plate(p, joint, offset, thickness, radius, root_world, bottom)


# ------------------------------------------------------------------------------------ the body
def body_field_local(q: np.ndarray, seg: Segment) -> np.ndarray:
    """Vertebral body in its body frame: a waisted kidney-shaped cylinder with wedged, slightly
    concave endplates and rounded rims (with uncinate processes in the neck)."""
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
    r = 2.2 if seg.region != "cervical" else 1.5
    body = np.hypot(np.maximum(d2 + r, 0), np.maximum(dz + r, 0)) + np.minimum(np.maximum(d2 + r, dz + r), 0) - r
    if seg.region == "cervical":
        # uncinate processes: lips rising 5-7 mm from the lateral upper endplate
        for side in (1, -1):
            a = np.array([side * (half_w - 1.8), -0.7 * half_d, half_h])
            b = np.array([side * (half_w - 1.8), 0.3 * half_d, half_h])
            lip = sdf.flat_capsule(q, a, b, 3.0, [1.0, 0.0, 0.0], 0.6)
            lip = np.maximum(lip, half_h - 0.5 - z)
            lip = np.maximum(lip, z - (half_h + 5.5))
            body = sdf.smooth_min(body, lip, 1.5)
        if seg.name == "C2":
            # the dens (odontoid process) rising from the body of the axis
            dens = sdf.capsule(q, [0.0, 0.5, half_h], [0.0, 1.5, half_h + 14.0], 5.0)
            body = sdf.smooth_min(body, dens, 2.5)
    return body


def _pedicle(q: np.ndarray, seg: Segment, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A pedicle (oval strut converging anteromedially from the body to the pillar) and its
    posterior end (body frame)."""
    d = seg.dims
    alpha = np.radians(d.pedicle_transverse_angle_deg)
    mid = seg.pedicle_centre_local(side)
    axis = np.array([-side * np.sin(alpha), np.cos(alpha), 0.0])
    length = seg.pedicle_length_mm
    front = mid + axis * (0.5 * length + 4.5)
    back = mid - axis * (0.5 * length + 3.5)
    # an oval section, flattened across its narrower dimension (L5 pedicles are wider than tall)
    if d.pedicle_width_mm <= d.pedicle_height_mm:
        flat, radius = np.cross(axis, [0.0, 0.0, 1.0]), 0.5 * d.pedicle_height_mm
    else:
        flat, radius = np.array([0.0, 0.0, 1.0]), 0.5 * d.pedicle_width_mm
    ratio = min(d.pedicle_width_mm, d.pedicle_height_mm) / max(d.pedicle_width_mm, d.pedicle_height_mm)
    return sdf.flat_capsule(q, front, back, radius, flat, ratio), back


def _lamina(q: np.ndarray, seg: Segment, side: int, lateral_x: float, lateral_y: float, slope_deg: float,
            overhang_mm: float = 6.0) -> np.ndarray:
    """An oval plate from the articular pillar to the midline, sloping back as it descends; it
    reaches ``overhang_mm`` beyond the pillar (into the lumbar pars; less where the facet joints sit
    right beside the lamina)."""
    d = seg.dims
    zc = 0.5 * (seg.lamina_top_z + seg.lamina_bottom_z)
    lateral = np.array([side * lateral_x, lateral_y, zc])
    medial = np.array([0.0, seg.canal_back_y - 0.5 * d.lamina_thickness_mm, zc])
    axes = box_axes(medial - lateral, [0.0, np.sin(np.radians(slope_deg)), np.cos(np.radians(slope_deg))])
    local = (q - 0.5 * (lateral + medial)) @ axes.T
    half_len = 0.5 * np.linalg.norm(medial - lateral) + overhang_mm
    oval = sdf.ellipse_2d(local[..., :2], (half_len, 0.5 * d.lamina_height_mm))
    return sdf.extrude(oval, local[..., 2], 0.5 * d.lamina_thickness_mm, min(1.8, 0.45 * d.lamina_thickness_mm))


def _spinous(q: np.ndarray, seg: Segment) -> list[np.ndarray]:
    """The spinous process: a plate from the laminar junction to a knobbed (or bifid) tip."""
    d = seg.dims
    base, axis = seg.spinous_axis_local()
    length = d.spinous_length_mm
    axes = box_axes(axis, [0.0, 0.0, 1.0])
    local = (q - base) @ axes.T  # (along the process, cranial, lateral)
    along = np.clip(local[..., 0] / length, 0.0, 1.0)
    d_length = np.abs(local[..., 0] - 0.5 * length) - 0.5 * length
    half_h = 0.5 * d.spinous_height_mm
    if seg.region == "lumbar":
        # upper border straight, lower border dropping towards the thick posterior end (a hatchet)
        upper = 0.8 * half_h
        lower = -0.8 * half_h - 0.25 * half_h * along
        half_t = 2.6 + 1.6 * along
    else:
        # slender, tapering towards the tip
        upper = half_h * (1.0 - 0.45 * along)
        lower = -half_h * (1.0 - 0.45 * along)
        half_t = 2.4 + 0.6 * along if seg.region == "thoracic" else 1.8 + 0.6 * along
    d_height = np.maximum(local[..., 1] - upper, lower - local[..., 1])
    parts = [sdf.extrude(np.maximum(d_length, d_height), local[..., 2], half_t, 1.5)]
    knob_centre, knob_radii = seg.spinous_knob_local()
    if seg.bifid:
        # two tubercles either side of the midline
        for side in (1, -1):
            parts.append(sdf.ellipsoid(q, knob_centre + np.array([side * 3.8, 0.5, 0.0]), knob_radii))
    else:
        parts.append(sdf.ellipsoid(q, knob_centre, knob_radii))
    return parts


def lumbar_posterior_elements(q: np.ndarray, seg: Segment) -> list[np.ndarray]:
    """Pedicles, laminae, spinous and transverse processes of a lumbar vertebra (body frame)."""
    d = seg.dims
    parts = []
    for side in (1, -1):
        pedicle, back = _pedicle(q, seg, side)
        parts.append(pedicle)
        # transverse process: a flattened bar from the pedicle-lamina junction
        root = back + np.array([side * 2.0, 0.5, -1.0])
        tip = np.array([side * 0.5 * d.transverse_span_mm, -seg.half_depth - 5.0, seg.pedicle_z - 2.0])
        stout = 1.25 if seg.name == "L5" else 1.0
        parts.append(sdf.flat_capsule(q, root, tip, 6.0 * stout, [0.0, 1.0, 0.0], 0.5, rb_mm=4.6 * stout))
        parts.append(_lamina(q, seg, side, 0.5 * d.canal_width_mm + 3.0,
                             -seg.half_depth - 0.78 * d.canal_depth_mm - 0.5 * d.lamina_thickness_mm, 22.0))
    return parts + _spinous(q, seg)


def thoracic_posterior_elements(q: np.ndarray, seg: Segment) -> list[np.ndarray]:
    """Pedicles, imbricated laminae, long sloping spinous process and the stout transverse
    processes that carry the rib tubercles (body frame)."""
    d = seg.dims
    parts = []
    for side in (1, -1):
        pedicle, back = _pedicle(q, seg, side)
        parts.append(pedicle)
        root = back + np.array([side * 1.5, -1.0, 0.5])
        tip = transverse_tip_local(seg, side)
        parts.append(sdf.flat_capsule(q, root, tip, 5.0, [0.0, 0.0, 1.0], 0.85, rb_mm=4.5))
        parts.append(sdf.ellipsoid(q, tip, (4.5, 4.5, 5.0)))  # the club-shaped tip with its costal facet
        parts.append(_lamina(q, seg, side, 0.5 * d.canal_width_mm + 3.0,
                             -seg.half_depth - 0.85 * d.canal_depth_mm - 0.5 * d.lamina_thickness_mm, 30.0,
                             overhang_mm=1.0))
    return parts + _spinous(q, seg)


def cervical_posterior_elements(q: np.ndarray, seg: Segment) -> list[np.ndarray]:
    """Short pedicles, thin laminae, short (bifid) spinous process and the transverse processes
    with their foramina transversaria (body frame). The articular pillars come from the joints."""
    d = seg.dims
    parts = []
    half_w = 0.5 * d.endplate_width_mm
    for side in (1, -1):
        pedicle, _ = _pedicle(q, seg, side)
        parts.append(pedicle)
        lm = seg.lateral_mass_centre_local(side)
        parts.append(_lamina(q, seg, side, lm[0] * side - 1.0, lm[1] - 3.0, 25.0, overhang_mm=1.0))
        # transverse process: anterior and posterior roots meeting at the tubercles, around the
        # foramen transversarium
        tip = np.array([side * 0.5 * d.transverse_span_mm, -seg.half_depth + 1.0, seg.pedicle_z - 1.0])
        # the anterior root (costal element) from the front of the body's side, the posterior root
        # from the pillar, lateral to the pedicle: the foramen transversarium between them
        anterior_root = np.array([side * (half_w - 2.5), 0.25 * seg.half_depth, seg.pedicle_z - 0.5])
        posterior_root = lm + np.array([side * 3.5, 2.0, -0.5])
        tp = sdf.union(sdf.flat_capsule(q, anterior_root, tip, 3.2, [0.0, 0.0, 1.0], 0.8),
                       sdf.flat_capsule(q, posterior_root, tip, 3.2, [0.0, 0.0, 1.0], 0.8), k_mm=1.5)
        hole = foramen_transversarium_local(seg, side)
        tp = sdf.smooth_max(tp, -(np.hypot(q[..., 0] - hole[0], q[..., 1] - hole[1]) - 2.8), 0.8)
        parts.append(tp)
    return parts + _spinous(q, seg)


def foramen_transversarium_local(seg: Segment, side: int) -> np.ndarray:
    """Centre of the foramen transversarium (cervical; body frame): where the vertebral artery runs."""
    d = seg.dims
    return np.array([side * (0.5 * d.endplate_width_mm + 3.5), -seg.half_depth + 2.0, seg.pedicle_z])


def transverse_tip_local(seg: Segment, side: int) -> np.ndarray:
    """Tip of the transverse process (body frame). Thoracic processes point back and out, where
    the rib tubercle rests on them."""
    d = seg.dims
    if seg.region == "thoracic":
        reach = 0.5 * d.transverse_span_mm
        return np.array([side * reach, -seg.half_depth - 0.45 * reach, seg.pedicle_z + 2.0])
    if seg.region == "cervical":
        return np.array([side * 0.5 * d.transverse_span_mm, -seg.half_depth + 1.0, seg.pedicle_z - 1.0])
    return np.array([side * 0.5 * d.transverse_span_mm, -seg.half_depth - 5.0, seg.pedicle_z - 2.0])


def cervical_pillar(p: np.ndarray, seg: Segment, side: int, upper: FacetJoint | None,
                    lower: FacetJoint | None) -> np.ndarray:
    """An articular pillar (lateral mass): a block between the facet planes of the joints above
    and below, in world coordinates."""
    centre = seg.to_world(seg.lateral_mass_centre_local(side))
    x_axis = seg.axis([side, 0.0, 0.0])
    y_axis = seg.axis([0.0, 1.0, 0.0])
    z_axis = seg.axis([0.0, 0.0, 1.0])
    q = p - centre
    bounds = [np.abs(q @ x_axis) - 5.0, np.abs(q @ y_axis) - 5.5]
    top = upper.plane_distance(p) + 0.5 * FACET_GAP_MM if upper is not None else q @ z_axis - 0.5 * seg.height_mid_mm - 3.0
    bottom = -(lower.plane_distance(p) - 0.5 * FACET_GAP_MM) if lower is not None else -(q @ z_axis) - 0.5 * seg.height_mid_mm - 4.0
    bounds += [top, bottom]
    d = bounds[0]
    for b in bounds[1:]:
        d = sdf.smooth_max(d, b, 1.5)
    return d


def vertebra_field(seg: Segment, sap_joints: list[FacetJoint] | None, iap_joints: list[FacetJoint] | None):
    """World-space field of a whole vertebra (body, posterior arch, articular processes).

    ``sap_joints`` are the (right, left) joints with the vertebra above, formed by this vertebra's
    superior articular processes; ``iap_joints`` those with the vertebra below.
    """
    local_from_world = frames.invert_rigid(seg.world_from_body)
    zc = 0.5 * (seg.lamina_top_z + seg.lamina_bottom_z)
    posterior = {"lumbar": lumbar_posterior_elements, "thoracic": thoracic_posterior_elements,
                 "cervical": cervical_posterior_elements}[seg.region]
    if seg.region == "cervical":
        def articular(points):
            ups = sap_joints or (None, None)
            downs = iap_joints or (None, None)
            return [cervical_pillar(points, seg, side, up, down) for side, up, down in zip((1, -1), ups, downs)]
    else:
        sap_bases = [seg.to_world(seg.pedicle_centre_local(side)
                                  + np.array([side * 1.5, -0.5 * seg.pedicle_length_mm - 2.5, 2.0]))
                     for side in (1, -1)]
        iap_roots = [seg.to_world(np.array([side * (0.5 * seg.dims.canal_width_mm + 1.0), seg.canal_back_y + 1.0,
                                            zc - 0.25 * seg.dims.lamina_height_mm])) for side in (1, -1)]

        def articular(points):
            out = [superior_articular_process(points, j, b) for j, b in zip(sap_joints or (), sap_bases)]
            out += [inferior_articular_process(points, j, r) for j, r in zip(iap_joints or (), iap_roots)]
            return out

    k = 2.0 if seg.region == "cervical" else 3.5

    def field(points: np.ndarray) -> np.ndarray:
        q = frames.apply(local_from_world, points)
        d = sdf.union(body_field_local(q, seg), *posterior(q, seg), k_mm=k)
        extra = articular(points)
        if extra:
            d = sdf.union(d, *extra, k_mm=k)
        return d

    return field


# ------------------------------------------------------------------------------------ discs
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
    centre = 0.5 * (a + b) + lower.axis([0.0, -0.06 * lower.dims.endplate_depth_mm, 0.0])
    half_h = 0.32 * np.linalg.norm(a - b)
    rx = 0.22 * lower.dims.endplate_width_mm
    ry = 0.2 * lower.dims.endplate_depth_mm
    local_from_world = frames.invert_rigid(lower.world_from_body)
    centre_local = frames.apply(local_from_world, centre)

    def field(points: np.ndarray) -> np.ndarray:
        q = frames.apply(local_from_world, points)
        return sdf.ellipsoid(q, centre_local, (rx, ry, half_h))

    return field
