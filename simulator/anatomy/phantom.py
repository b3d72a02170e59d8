"""The procedural lumbosacral phantom: one patient's anatomy as named implicit structures.

:class:`LumbarPhantom` assembles the vertebrae L1-L5, sacrum, coccyx and ilia, discs, facet and
sacroiliac joints, the posterior ligaments, the canal contents and the torso layers from a
:class:`~simulator.anatomy.patient.ResolvedPatient`. It answers exact tissue queries at any point
(for the needle, so a 0.4 mm dura is never missed) and fills labelled voxel volumes at any spacing
(for imaging and meshes). Named landmarks are in :meth:`LumbarPhantom.landmarks`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.anatomy import canal as canal_mod
from simulator.anatomy import ligaments, lumbar_spine as ls
from simulator.anatomy import sacrum_pelvis as sp
from simulator.anatomy.morphometry import lumbar_morphometry
from simulator.anatomy.patient import ResolvedPatient
from simulator.anatomy.sampling import sample_field
from simulator.anatomy.soft_tissue import (FASCIA_MM, SKIN_MM, SUPRASPINOUS_ROOM_MM, SpineProfile, Torso,
                                           make_gas_pockets, ravi_skin_to_epidural_mm)
from simulator.anatomy.structures import Structure, bbox_of_points
from simulator.anatomy.tissues import tid
from simulator.geometry import frames

LEVELS = ("L1", "L2", "L3", "L4", "L5")
INTERSPACES = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


@dataclass
class VolumeGrid:
    """A regular voxel grid in the world: ``world_from_voxel`` maps voxel indices (i, j, k) to mm."""

    lo_mm: np.ndarray
    shape: tuple[int, int, int]
    voxel_mm: float

    @property
    def world_from_voxel(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] *= self.voxel_mm
        m[:3, 3] = self.lo_mm
        return m

    @property
    def hi_mm(self) -> np.ndarray:
        return self.lo_mm + self.voxel_mm * (np.array(self.shape) - 1)

    @classmethod
    def covering(cls, lo_mm, hi_mm, voxel_mm: float) -> "VolumeGrid":
        lo = np.floor(np.asarray(lo_mm, float) / voxel_mm) * voxel_mm
        hi = np.asarray(hi_mm, float)
        shape = tuple(int(n) for n in np.ceil((hi - lo) / voxel_mm).astype(int) + 1)
        return cls(lo, shape, float(voxel_mm))


class LumbarPhantom:
    """One patient's lumbosacral anatomy (L1 to the coccyx, with the pelvis around the sacrum).

    Parameters
    ----------
    patient : ResolvedPatient
    """

    def __init__(self, patient: ResolvedPatient):
        self.patient = patient
        rng = np.random.default_rng([patient.shape_seed, 3])
        self.morphometry = lumbar_morphometry(patient)
        self.segments, self.s1 = ls.stack_segments(self.morphometry, patient.lordosis_deg)
        self.by_level = {s.name: s for s in self.segments}
        self.by_level["S1"] = self.s1
        k = patient.size_scale * (0.93 if patient.sex == "female" else 1.0)
        # sacral hiatus apex: S4 in ~65-79%, S3 and S5 ~15% each (Nastoulis 2023)
        apex_choice = rng.choice([62.0, 79.0, 92.0], p=[0.15, 0.72, 0.13])
        # dural sac end: most often upper third of S2, range L5-S1 disc to upper S3 (Binokay 2006)
        sac_end = float(np.clip(rng.normal(36.0, 9.0), 8.0, 60.0))
        self.sacrum_shape = sp.SacrumShape(scale=k, hiatus_apex_s_mm=apex_choice * k,
                                           dural_sac_end_s_mm=sac_end * k)
        plate = frames.rigid(frames.rotation_x(-self.morphometry.sacral_slope_deg), np.zeros(3))
        self.sacral_frame = sp.SacralFrame(plate, sp.SACRAL_ARC_RADIUS_MM * k)
        self.joints = {}
        chain = self.segments + [self.s1]
        for upper, lower in zip(chain[:-1], chain[1:]):
            self.joints[f"{upper.name}-{lower.name}"] = [ls.facet_joint(upper, lower, side)
                                                        for side in (1, -1)]
        self.canal = canal_mod.SpinalCanal(self.segments, self.sacral_frame, self.sacrum_shape)
        self._conus_fraction = float(np.clip(rng.normal(0.66, 0.35), -0.5, 2.2))
        self.structures: list[Structure] = []
        self.ilia: dict[str, sp.IliumShape] = {}
        self._build_structures(rng)
        self.torso = self._build_torso(rng)
        self._landmarks: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ assembly
    def _bone(self, name, field, bbox, group="bone") -> Structure:
        return Structure(name, field, bbox, tid("cancellous_bone"), [(ls.CORTEX_MM, tid("cortical_bone"))],
                         group)

    def _build_structures(self, rng: np.random.Generator) -> None:
        add = self.structures.append
        names = [s.name for s in self.segments]
        shape = self.sacrum_shape
        frame = self.sacral_frame

        # interspinous and supraspinous ligaments
        tips = {}
        for seg in self.segments:
            base, axis = seg.spinous_axis_local()
            tips[seg.name] = (seg.to_world(base), seg.to_world(seg.spinous_tip_local()))
        s1_base = frame.to_world(0.0, 18.0 * shape.scale, shape.canal_centre_ap(18.0 * shape.scale))
        s1_tip = frame.to_world(0.0, 18.0 * shape.scale,
                                shape.dorsal_surface_ap(18.0 * shape.scale) - 6.0 * shape.scale)
        tips["S1"] = (s1_base, s1_tip)
        forward = np.array([0.0, 4.0, 0.0])  # reach the ligamentum flavum (painted over it)
        for upper, lower in zip(names, names[1:] + ["S1"]):
            f, pts = ligaments.interspinous_field(tips[upper][0] + forward, tips[upper][1], tips[lower][1],
                                                  tips[lower][0] + forward)
            add(Structure(f"{upper}-{lower}.interspinous_ligament", f, bbox_of_points(pts, 6.0),
                          tid("interspinous_ligament"), group="ligament"))
        ssl_end = self.patient.supraspinous_ends_at
        ssl_levels = names[: names.index(ssl_end) + 1]
        f, pts = ligaments.supraspinous_field([tips[n][1] for n in ssl_levels])
        add(Structure("supraspinous_ligament", f, bbox_of_points(pts, 6.0), tid("supraspinous_ligament"),
                      group="ligament"))

        # epidural fat: the whole canal, and a cuff of fat in each foramen
        add(Structure("epidural_space", self.canal.canal, self.canal.canal.bbox(2.0), tid("epidural_fat"),
                      group="neural"))

        # ligamentum flavum of each interspace
        lf_thickness = {d.level: d.ligamentum_flavum_thickness_mm for d in self.morphometry.discs}
        for upper, lower in zip(names, names[1:] + ["S1"]):
            u = self.by_level[upper]
            top = u.to_world([0.0, u.canal_back_y - 1.0, u.lamina_bottom_z + 6.0])
            if lower == "S1":
                s = 11.0 * shape.scale
                bottom = frame.to_world(0.0, s, shape.canal_centre_ap(s) - shape.canal_half_depth(s))
            else:
                lw = self.by_level[lower]
                bottom = lw.to_world([0.0, lw.canal_back_y, lw.lamina_top_z])
            half_width = 0.5 * u.dims.canal_width_mm + 2.0
            f, pts = ligaments.ligamentum_flavum_field(top, bottom, half_width,
                                                       lf_thickness[f"{upper}-{lower}"])
            add(Structure(f"{upper}-{lower}.ligamentum_flavum", f, bbox_of_points(pts, half_width + 8.0),
                          tid("ligamentum_flavum"), group="ligament"))

        # facet joint spaces
        for name, pair in self.joints.items():
            for joint in pair:
                add(Structure(joint.name, joint.slab_field, bbox_of_points(joint.centre, 12.0),
                              tid("facet_joint"), group="joint"))

        # dural sac (dura around CSF), the cord and conus above, the cauda equina below
        add(Structure("dural_sac", self.canal.sac, self.canal.sac.bbox(1.0), tid("csf"),
                      [(canal_mod.DURA_MM, tid("dura"))], group="neural"))
        l1 = self.by_level["L1"]
        conus_tip = l1.to_world([0.0, 0.0, 0.5 * l1.height_mid_mm - self._conus_fraction * l1.height_mid_mm])
        conus_s = self.canal.sac_arclength_at(conus_tip)
        cord = self.canal.sub_tube(0.0, conus_s, 0.5, 0.62, 0.0, taper_mm=14.0)
        add(Structure("spinal_cord", cord, cord.bbox(1.0), tid("spinal_cord"), group="neural"))
        cauda = self.canal.sub_tube(conus_s - 5.0, len(self.canal.sac_centre) - 3, 0.55, 0.5, 0.35)
        add(Structure("cauda_equina", cauda, cauda.bbox(1.0), tid("cauda_equina"), group="neural"))
        for seg in self.segments:
            sac_rx = 0.36 * seg.dims.canal_width_mm
            for side, side_name in ((1, "right"), (-1, "left")):
                f, pts = canal_mod.nerve_root_field(seg, side, sac_rx)
                add(Structure(f"{seg.name}.nerve_root_{side_name}", f, bbox_of_points(pts, 5.0),
                              tid("nerve_root"), group="neural"))

        # discs, with their nuclei
        discs = {d.level: d for d in self.morphometry.discs}
        chain = self.segments + [self.s1]
        for upper, lower in zip(chain[:-1], chain[1:]):
            name = f"{upper.name}-{lower.name}"
            box = bbox_of_points(np.stack([upper.to_world([0, 0, -0.5 * upper.height_mid_mm]),
                                           lower.to_world([0, 0, 0.5 * lower.height_mid_mm])]),
                                 0.5 * max(upper.dims.endplate_width_mm, lower.dims.endplate_width_mm) + 4.0)
            add(Structure(f"{name}.disc", ls.disc_field(upper, lower, discs[name]), box,
                          tid("disc_annulus"), group="disc"))
            add(Structure(f"{name}.nucleus", ls.nucleus_field(upper, lower), box, tid("disc_nucleus"),
                          group="disc"))

        # vertebrae
        for i, seg in enumerate(self.segments):
            above = self.joints.get(f"{names[i - 1]}-{seg.name}") if i > 0 else None
            below_name = names[i + 1] if i + 1 < len(names) else "S1"
            below = self.joints[f"{seg.name}-{below_name}"]
            if i == 0:
                # L1's superior processes articulate with T12, which the phantom does not include:
                # give them a joint placed as the L1-L2 one is, one level up
                above = [self._virtual_joint_above(seg, side) for side in (1, -1)]
            field = ls.vertebra_field(seg, above, below)
            half = 0.5 * seg.dims.transverse_span_mm + 8.0
            box = bbox_of_points(np.stack([seg.to_world([x, y, z]) for x in (-half, half)
                                           for y in (seg.half_depth + 3.0,
                                                     -seg.half_depth - seg.dims.canal_depth_mm
                                                     - seg.dims.spinous_length_mm - 14.0)
                                           for z in (-0.5 * seg.height_mid_mm - 16.0,
                                                     0.5 * seg.height_mid_mm + 16.0)]), 2.0)
            add(self._bone(seg.name, field, box))

        # sacrum (with the S1 superior articular processes), coccyx, ilia and the joints between
        s1_saps = []
        for joint, side in zip(self.joints[f"L5-S1"], (1, -1)):
            base = self.s1.to_world(self.s1.pedicle_centre_local(side) + np.array([side * 1.5, -7.0, 2.0]))
            s1_saps.append(lambda p, j=joint, b=base: ls.superior_articular_process(p, j, b))
        sacrum = sp.sacrum_field(frame, shape, s1_saps)
        self._sacrum_field = sacrum
        sac_box_pts = np.concatenate([frame.to_world(x, s, ap) for x in (-60.0 * shape.scale, 60.0 * shape.scale)
                                      for s in (-25.0, 110.0 * shape.scale)
                                      for ap in (-55.0 * shape.scale, 25.0 * shape.scale)]).reshape(-1, 3)
        sac_box = bbox_of_points(sac_box_pts, 4.0)
        coccyx = sp.coccyx_field(frame, shape)
        cox_pts = np.stack([frame.to_world(0.0, s, 0.0) for s in (100.0 * shape.scale, 135.0 * shape.scale)])
        for side, side_name in ((1, "right"), (-1, "left")):
            ilium = self._ilium_shape(side)
            self.ilia[side_name] = ilium
            f = sp.ilium_field(ilium, sacrum, frame, shape)
            lo = np.array([min(side * 30.0, ilium.centre[0] + side * (ilium.radii[0] + 10.0)), -80.0, -75.0])
            hi = np.array([max(side * 30.0, ilium.centre[0] + side * (ilium.radii[0] + 10.0)), 80.0,
                           ilium.crest_top_z_mm + 12.0])
            box = np.stack([np.minimum(lo, hi), np.maximum(lo, hi)])
            add(Structure(f"sacroiliac_joint_{side_name}", sp.sacroiliac_joint_field(ilium, sacrum, frame, shape),
                          box, tid("sacroiliac_joint"), group="joint"))
            add(self._bone(f"ilium_{side_name}", f, box))
        add(self._bone("sacrum", sacrum, sac_box))
        add(self._bone("coccyx", coccyx, bbox_of_points(cox_pts, 12.0)))

    def _virtual_joint_above(self, seg: ls.Segment, side: int) -> ls.FacetJoint:
        up = ls.Segment("T12", seg.world_from_body @ frames.rigid(np.eye(3), [0, 0, seg.height_mid_mm + 10.0]),
                        seg.dims, seg.height_mid_mm)
        return ls.facet_joint(up, seg, side)

    def _ilium_shape(self, side: int) -> sp.IliumShape:
        k = self.sacrum_shape.scale
        l4, l5 = self.by_level["L4"], self.by_level["L5"]
        # iliac crest tops: at about the L4-L5 interspace on radiographs (Tuffier's line)
        rng = np.random.default_rng([self.patient.shape_seed, 4, side + 2])
        between = 0.5 * (l4.to_world([0, 0, -0.5 * l4.height_mid_mm])[2]
                         + l5.to_world([0, 0, 0.5 * l5.height_mid_mm])[2])
        crest_z = between + float(np.clip(rng.normal(2.0, 6.0), -12.0, 14.0))
        return sp.IliumShape(side=side, centre=np.array([side * 52.0 * k, 28.0 * k, crest_z - 45.0 * k]),
                             radii=np.array([84.0, 68.0, 88.0]) * k, crest_top_z_mm=crest_z,
                             crest_top_y_mm=8.0 * k)

    def _build_torso(self, rng: np.random.Generator) -> Torso:
        zs = []
        rows = []
        for seg in self.segments:
            tip = seg.to_world(seg.spinous_tip_local())
            back = seg.to_world([0.0, -seg.half_depth, 0.0])
            front = seg.to_world([0.0, seg.half_depth, 0.0])
            tp = seg.to_world([0.5 * seg.dims.transverse_span_mm, -seg.half_depth - 5.0, seg.pedicle_z])
            zs.append(tip[2])
            rows.append([tip[1], back[1], front[1], 0.5 * seg.dims.endplate_width_mm, tp[1]])
        shape = self.sacrum_shape
        for s in (10.0, 30.0, 50.0, 70.0, 90.0, 110.0, 130.0):
            s = s * shape.scale
            crest = self.sacral_frame.to_world(0.0, s, shape.dorsal_surface_ap(s) - 5.0 * shape.scale)
            back = self.sacral_frame.to_world(0.0, s, -shape.body_half_depth(s))
            front = self.sacral_frame.to_world(0.0, s, shape.body_half_depth(s))
            zs.append(crest[2])
            rows.append([crest[1], back[1], front[1], float(shape.body_half_width(s)), back[1] - 10.0])
        order = np.argsort(zs)
        z = np.array(zs)[order]
        r = np.array(rows)[order]
        # extend beyond the ends so the torso continues above L1 and below the coccyx
        z = np.concatenate([[z[0] - 60.0], z, [z[-1] + 80.0]])
        r = np.vstack([r[:1], r, r[-1:]])
        psoas = np.clip((z[-1] - 40.0 - z) / 120.0, 0.0, 1.0) * (z > -40.0)
        profile = SpineProfile(z_mm=z, midline_back_y_mm=r[:, 0], body_back_y_mm=r[:, 1],
                               body_front_y_mm=r[:, 2], body_half_width_mm=r[:, 3],
                               transverse_y_mm=r[:, 4], psoas=psoas)
        bmi = self.patient.bmi_kg_m2
        # soft tissue over the spinous tips set so the midline skin-to-epidural depth at L3-L4/L4-L5
        # follows Ravi 2011 (with the reference's +-8 mm scatter, as a seeded normal, SD 4 mm)
        target = ravi_skin_to_epidural_mm(bmi) + float(np.clip(rng.normal(0.0, 4.0), -8.0, 8.0))
        bony = self._tip_line_to_epidural_mm(profile, "L3-L4")
        # a lean back keeps at least 1.5 mm of fat over the tips
        fat = float(np.clip(target - bony - SKIN_MM - FASCIA_MM - SUPRASPINOUS_ROOM_MM, 1.5, 80.0))
        half_width = 118.0 * self.patient.size_scale + 1.6 * fat + 1.2 * (bmi - 22.0)
        depth = 190.0 * self.patient.size_scale + 2.2 * fat + 2.5 * (bmi - 22.0)
        torso = Torso(profile=profile, fat_midline_mm=fat, bulge_mm=6.0 + 0.15 * fat,
                      half_width_mm=half_width, depth_mm=depth, gas_pockets=[])
        torso.gas_pockets = make_gas_pockets(rng, profile, z[1] - 20.0, z[-2] - 20.0)
        return torso

    def _tip_line_to_epidural_mm(self, profile: SpineProfile, interspace: str) -> float:
        """Depth of the epidural fat below the spinous-tip line, straight forward in the midline at
        the centre of an interlaminar window (the torso's skin follows the tip line)."""
        centre = self.interlaminar_centre(interspace)
        tip_y = float(np.interp(centre[2], profile.z_mm, profile.midline_back_y_mm))
        t = np.arange(0.0, 80.0, 0.1)
        line = np.stack([np.zeros_like(t), tip_y + t, np.full_like(t, centre[2])], axis=1)
        labels = np.zeros(len(t), np.uint8)
        for st in self.structures:
            inside = np.all((line >= st.bbox_mm[0]) & (line <= st.bbox_mm[1]), axis=1)
            if inside.any():
                d = st.field(line[inside])
                idx = np.nonzero(inside)[0][d < 0]
                labels[idx] = st.tissue_for_depth(-d[d < 0])
        hits = np.nonzero(labels == tid("epidural_fat"))[0]
        return float(t[hits[0]]) if hits.size else 30.0

    def interlaminar_centre(self, interspace: str) -> np.ndarray:
        """Midline centre of an interlaminar window, inside the ligamentum flavum (world mm)."""
        upper, lower = interspace.split("-")
        u = self.by_level[upper]
        top = u.to_world([0.0, u.canal_back_y - 1.0, u.lamina_bottom_z + 6.0])
        if lower == "S1":
            shape = self.sacrum_shape
            s = 11.0 * shape.scale
            bottom = self.sacral_frame.to_world(0.0, s, shape.canal_centre_ap(s) - shape.canal_half_depth(s))
        else:
            lw = self.by_level[lower]
            bottom = lw.to_world([0.0, lw.canal_back_y, lw.lamina_top_z])
        thickness = {d.level: d.ligamentum_flavum_thickness_mm for d in self.morphometry.discs}[interspace]
        return 0.5 * (top + bottom) - u.axis([0.0, 1.0, 0.0]) * (0.5 * thickness)

    # ------------------------------------------------------------------ queries
    def structure(self, name: str) -> Structure:
        for s in self.structures:
            if s.name == name:
                return s
        raise KeyError(name)

    def tissue_at(self, points_mm: np.ndarray) -> np.ndarray:
        """Exact tissue ids at world points (any shape ``(..., 3)``)."""
        p = np.asarray(points_mm, float)
        flat = p.reshape(-1, 3)
        labels = self.torso.labels(flat)
        for s in self.structures:
            inside_box = np.all((flat >= s.bbox_mm[0]) & (flat <= s.bbox_mm[1]), axis=1)
            if not inside_box.any():
                continue
            idx = np.nonzero(inside_box)[0]
            d = s.field(flat[idx])
            hit = d < 0.0
            if hit.any():
                labels[idx[hit]] = s.tissue_for_depth(-d[hit])
        return labels.reshape(p.shape[:-1])

    def bounds_mm(self) -> np.ndarray:
        """World box holding the whole body model (skin included)."""
        z = self.torso.profile.z_mm
        lo = np.array([-self.torso.half_width_mm - 4.0,
                       float(self.torso.back_y(np.array([38.0]), np.array([z[1]]))[0]) - 40.0, z[0] + 20.0])
        hi = np.array([self.torso.half_width_mm + 4.0, 0.0, z[-1] - 30.0])
        front = self.torso.profile.midline_back_y_mm.min() + self.torso.depth_mm + 10.0
        hi[1] = front
        lo[1] = min(lo[1], float(np.min(self.torso.profile.midline_back_y_mm)) - 4.6
                    - self.torso.fat_midline_mm - 20.0)
        return np.stack([lo, hi])

    def label_volume(self, grid: VolumeGrid) -> np.ndarray:
        """Fill ``grid`` with tissue labels (uint8), thin shells widened to one voxel."""
        labels = np.empty(grid.shape, np.uint8)
        # torso layers, slab by slab (cheap closed-form labelling)
        axes = [grid.lo_mm[i] + grid.voxel_mm * np.arange(grid.shape[i]) for i in range(3)]
        yy, zz = np.meshgrid(axes[1], axes[2], indexing="ij")
        for i, x in enumerate(axes[0]):
            pts = np.stack([np.full_like(yy, x), yy, zz], axis=-1)
            labels[i] = self.torso.labels(pts)
        for s in self.structures:
            lo = np.maximum(s.bbox_mm[0], grid.lo_mm)
            hi = np.minimum(s.bbox_mm[1], grid.hi_mm)
            if np.any(hi < lo):
                continue
            i0 = np.floor((lo - grid.lo_mm) / grid.voxel_mm).astype(int)
            i1 = np.ceil((hi - grid.lo_mm) / grid.voxel_mm).astype(int) + 1
            i1 = np.minimum(i1, grid.shape)
            sub_shape = tuple(int(n) for n in (i1 - i0))
            if min(sub_shape) <= 0:
                continue
            sub_lo = grid.lo_mm + i0 * grid.voxel_mm
            deepest_shell = max([d for d, _ in s.shells], default=0.0)
            d, _ = sample_field(s.field, sub_lo, sub_shape, grid.voxel_mm,
                                band_mm=max(deepest_shell, grid.voxel_mm) + grid.voxel_mm)
            inside = d < 0.0
            if not inside.any():
                continue
            view = labels[i0[0]:i1[0], i0[1]:i1[1], i0[2]:i1[2]]
            view[inside] = s.tissue_for_depth(-d[inside], min_shell_mm=grid.voxel_mm)
        return labels

    def structure_distance(self, name: str, grid: VolumeGrid) -> np.ndarray:
        """Signed distance of one structure on a grid (for its surface mesh)."""
        s = self.structure(name)
        d, _ = sample_field(s.field, grid.lo_mm, grid.shape, grid.voxel_mm, band_mm=grid.voxel_mm * 2)
        return d

    def skin_distance(self, grid: VolumeGrid) -> np.ndarray:
        d, _ = sample_field(self.torso.field, grid.lo_mm, grid.shape, grid.voxel_mm, band_mm=grid.voxel_mm * 2)
        return d
