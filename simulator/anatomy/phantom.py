"""The procedural phantom: one patient's spine and what surrounds it, as named implicit structures.

:class:`SpinePhantom` assembles C2 to the coccyx: vertebrae with their discs, facet joints and
posterior ligaments; the canal with epidural fat and veins, dural sac, cord, conus, cauda equina and
the exiting roots; the sacrum, coccyx, ilia and sacroiliac joints; ribs, costal cartilages, sternum,
lungs and pleura; the vertebral and radicular arteries; kidneys, airway and neck vessels, rectum
and presacral space; and the body's layers (skin, fat, fascia, muscle, viscera). It answers exact
tissue queries at any point (for the needle, so a 0.4 mm dura is never missed) and fills labelled
voxel volumes at any spacing for any region (for imaging and meshes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.anatomy import canal as canal_mod
from simulator.anatomy import ligaments, organs, thorax, vessels
from simulator.anatomy import sacrum_pelvis as sp
from simulator.anatomy import vertebra as vt
from simulator.anatomy.column import ALL_LEVELS, INTERSPACES, LEVELS, stack_column
from simulator.anatomy.morphometry import spine_morphometry
from simulator.anatomy.patient import ResolvedPatient
from simulator.anatomy.sampling import sample_field
from simulator.anatomy.soft_tissue import (FASCIA_MM, SKIN_MM, SUPRASPINOUS_ROOM_MM, SpineProfile, Torso,
                                           make_gas_pockets, ravi_skin_to_epidural_mm)
from simulator.anatomy.structures import Structure, bbox_of_points
from simulator.anatomy.tissues import tid
from simulator.geometry import frames

__all__ = ["SpinePhantom", "VolumeGrid", "LEVELS", "ALL_LEVELS", "INTERSPACES"]

#: Width of a midline gap in the ligamentum flavum, mm (Lirk 2003: 1.0 +- 0.3 mm).
FLAVUM_GAP_MM = 1.0
#: Cell size of the spatial index that finds the structures near a point, mm.
INDEX_CELL_MM = 16.0


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


def han_cervical_depth_mm(sex: str) -> float:
    """Midline skin-to-epidural depth at C6-C7: 51 +- 6 mm in men, 46 +- 6 in women (Han 2003,
    n=816)."""
    return 51.0 if sex == "male" else 46.0


class SpinePhantom:
    """One patient's spine from C2 to the coccyx, with the pelvis, the thorax and the neck round it.

    Parameters
    ----------
    patient : ResolvedPatient
    """

    def __init__(self, patient: ResolvedPatient):
        self.patient = patient
        rng = np.random.default_rng([patient.shape_seed, 3])
        # every seeded detail is drawn here, in a fixed order
        apex_s5 = rng.random() < 0.15
        sac_end = float(np.clip(rng.normal(36.0, 9.0), 8.0, 60.0))
        conus_fraction = float(np.clip(rng.normal(0.66, 0.35), -0.5, 2.2))
        va_entry = {side: vessels.vertebral_artery_entry(rng) for side in (1, -1)}
        aka = vessels.adamkiewicz_level_and_side(rng)
        cervical_radicular = {(f"{u}-{l}", side): rng.random() < 0.22
                              for u, l in zip(LEVELS[1:6], LEVELS[2:7]) for side in (1, -1)}
        lumbar_scatter = float(np.clip(rng.normal(0.0, 4.0), -8.0, 8.0))
        cervical_scatter = float(np.clip(rng.normal(0.0, 4.0), -8.0, 8.0))
        crest_offsets = {side: float(np.clip(rng.normal(2.0, 6.0), -12.0, 14.0)) for side in (1, -1)}
        gas_rng = np.random.default_rng([patient.shape_seed, 5])

        self.morphometry = spine_morphometry(patient)
        self.segments, self.s1, self.sacral_slope_deg = stack_column(self.morphometry, patient)
        self.by_level = {s.name: s for s in self.segments}
        self.by_level["S1"] = self.s1
        k = patient.size_scale * (0.93 if patient.sex == "female" else 1.0)
        self.scale = k
        # sacral hiatus apex: S4 in ~65-79%, S3 ~15% (high), S5 ~15% (Nastoulis 2023)
        apex = 62.0 if patient.hiatus == "high" else (92.0 if apex_s5 else 79.0)
        self.sacrum_shape = sp.SacrumShape(
            scale=k, hiatus_apex_s_mm=apex * k, dural_sac_end_s_mm=sac_end * k,
            cornua=patient.hiatus != "absent_cornua",
            hiatus_depth_factor=0.45 if patient.hiatus == "narrow" else 1.0,
            lumbarized_s1=patient.transitional == "lumbarized_S1")
        plate = frames.rigid(frames.rotation_x(-self.sacral_slope_deg), np.zeros(3))
        self.sacral_frame = sp.SacralFrame(plate, sp.SACRAL_ARC_RADIUS_MM * k)
        self.joints: dict[str, list[vt.FacetJoint]] = {}
        chain = self.segments + [self.s1]
        for upper, lower in zip(chain[:-1], chain[1:]):
            self.joints[f"{upper.name}-{lower.name}"] = [vt.facet_joint(upper, lower, side) for side in (1, -1)]
        self.canal = canal_mod.SpinalCanal(self.segments, self.sacral_frame, self.sacrum_shape)
        self.va_entry = va_entry
        self.adamkiewicz = aka
        self.structures: list[Structure] = []
        self.ilia: dict[str, sp.IliumShape] = {}
        self._build_spine(conus_fraction, crest_offsets, cervical_radicular)
        self.structures.sort(key=lambda st: st.layer)
        self.torso = self._build_torso(lumbar_scatter, cervical_scatter, gas_rng)
        self._build_body_around()
        self.structures.sort(key=lambda st: st.layer)
        self._by_name = {st.name: st for st in self.structures}
        self._build_index()

    # ------------------------------------------------------------------------------ the spine
    def _add(self, name, field, bbox, tissue, shells=(), group="soft_tissue", layer=0) -> Structure:
        st = Structure(name, field, np.asarray(bbox, float), tissue, list(shells), group, layer)
        self.structures.append(st)
        return st

    def _add_bone(self, name, field, bbox, layer=90) -> Structure:
        return self._add(name, field, bbox, tid("cancellous_bone"), [(vt.CORTEX_MM, tid("cortical_bone"))],
                         "bone", layer)

    def _tips(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(base, tip) of every spinous process (world), the S1 median crest standing for S1's."""
        tips = {}
        for seg in self.segments:
            base, _ = seg.spinous_axis_local()
            tips[seg.name] = (seg.to_world(base), seg.to_world(seg.spinous_tip_local()))
        shape, frame = self.sacrum_shape, self.sacral_frame
        s = 18.0 * shape.scale
        tips["S1"] = (frame.to_world(0.0, s, shape.canal_centre_ap(s)),
                      frame.to_world(0.0, s, shape.dorsal_surface_ap(s) - 6.0 * shape.scale))
        return tips

    def _build_spine(self, conus_fraction: float, crest_offsets: dict, cervical_radicular: dict) -> None:
        names = [s.name for s in self.segments]
        chain = names + ["S1"]
        shape, frame = self.sacrum_shape, self.sacral_frame
        tips = self._tips()

        # interspinous ligaments (every interspace) and the supraspinous ligament (C7 down to L4
        # or L5; above C7 the ligamentum nuchae is part of the neck's soft tissue)
        forward = np.array([0.0, 4.0, 0.0])  # reach the ligamentum flavum (painted over it)
        for upper, lower in zip(chain[:-1], chain[1:]):
            f, pts = ligaments.interspinous_field(tips[upper][0] + forward, tips[upper][1], tips[lower][1],
                                                  tips[lower][0] + forward)
            self._add(f"{upper}-{lower}.interspinous_ligament", f, bbox_of_points(pts, 6.0),
                      tid("interspinous_ligament"), group="ligament", layer=20)
        ssl_levels = names[names.index("C7"): names.index(self.patient.supraspinous_ends_at) + 1]
        f, pts = ligaments.supraspinous_field([tips[n][1] for n in ssl_levels])
        self._add("supraspinous_ligament", f, bbox_of_points(pts, 6.0), tid("supraspinous_ligament"),
                  group="ligament", layer=21)

        # epidural fat: the whole canal; the anterior internal venous plexus in its front
        self._add("epidural_space", self.canal.canal, self.canal.canal.bbox(2.0), tid("epidural_fat"),
                  group="neural", layer=30)
        for side, side_name in ((1, "right"), (-1, "left")):
            veins = vessels.epidural_veins(self.canal.canal_centre, self.canal.canal.ey, self.canal.canal.rx,
                                           self.canal.canal.ry, side)
            self._add(f"epidural_veins_{side_name}", veins, veins.bbox(1.0), tid("epidural_vein"),
                      group="vessel", layer=35)

        # ligamentum flavum of each interspace (two halves; a midline gap where the seed says)
        for upper, lower in zip(chain[:-1], chain[1:]):
            name = f"{upper}-{lower}"
            disc = self.morphometry.disc(name)
            top, bottom = self._flavum_attachments(name)
            u = self.by_level[upper]
            half_width = 0.5 * u.dims.canal_width_mm + 2.0
            f, pts, slit = ligaments.ligamentum_flavum_field(
                top, bottom, half_width, disc.ligamentum_flavum_thickness_mm,
                midline_gap_mm=FLAVUM_GAP_MM if disc.ligamentum_flavum_gap else 0.0)
            self._add(f"{name}.ligamentum_flavum", f, bbox_of_points(pts, half_width + 8.0),
                      tid("ligamentum_flavum"), group="ligament", layer=40)
            if slit is not None:
                self._add(f"{name}.flavum_gap", slit, bbox_of_points(pts, half_width + 8.0),
                          tid("interlaminar_fat"), group="ligament", layer=41)

        # facet joint spaces
        for pair in self.joints.values():
            for joint in pair:
                self._add(joint.name, joint.slab_field, bbox_of_points(joint.centre, 12.0), tid("facet_joint"),
                          group="joint", layer=45)

        # dural sac (dura round CSF), cord and conus, cauda equina, exiting roots
        self._add("dural_sac", self.canal.sac, self.canal.sac.bbox(1.0), tid("csf"),
                  [(canal_mod.DURA_MM, tid("dura"))], group="neural", layer=50)
        l1 = self.by_level["L1"]
        self.conus_tip = l1.to_world([0.0, 0.0, 0.5 * l1.height_mid_mm - conus_fraction * l1.height_mid_mm])
        conus_s = self.canal.sac_arclength_at(self.conus_tip)
        cord = self.canal.cord(conus_s)
        self.conus_tip = cord.centre[-1]
        self._add("spinal_cord", cord, cord.bbox(1.0), tid("spinal_cord"), group="neural", layer=55)
        cauda = self.canal.cauda_equina(conus_s)
        self._add("cauda_equina", cauda, cauda.bbox(1.0), tid("cauda_equina"), group="neural", layer=55)
        self.ganglia: dict[str, np.ndarray] = {}
        for upper_name, lower_name in zip(names, names[1:] + ["S1"]):
            upper = self.by_level[upper_name]
            root = canal_mod.root_name(upper_name, lower_name)
            for side, side_name in ((1, "right"), (-1, "left")):
                f, pts, ganglion = canal_mod.nerve_root_field(upper, self.by_level[lower_name], side,
                                                              0.36 * upper.dims.canal_width_mm)
                self.ganglia[f"{root}_{side_name}"] = ganglion
                self._add(f"{root}.nerve_root_{side_name}", f, bbox_of_points(pts, 6.0), tid("nerve_root"),
                          group="neural", layer=60)
                fat, fat_pts, reach = canal_mod.foraminal_fat_field(pts, upper.region)
                self._add(f"{upper_name}-{lower_name}.foraminal_fat_{side_name}", fat, bbox_of_points(fat_pts, reach),
                          tid("epidural_fat"), group="soft_tissue", layer=32)
        for side, side_name in ((1, "right"), (-1, "left")):
            f, pts = self._s1_root(side)
            self._add(f"S1.nerve_root_{side_name}", f, bbox_of_points(pts, 6.0), tid("nerve_root"),
                      group="neural", layer=60)
            for index in range(len(sp.DORSAL_FORAMINA)):
                fat = sp.sacral_foramen_fat_field(self.sacral_frame, self.sacrum_shape, index, side)
                s_f = sp.DORSAL_FORAMINA[index][0]
                self._add(f"S{index + 1}.foraminal_fat_{side_name}", fat, self._sacral_box(s_f - 8.0, s_f + 8.0, 35.0),
                          tid("epidural_fat"),
                          group="soft_tissue", layer=32)

        # arteries: vertebral (in the neck), Adamkiewicz, cervical radicular
        for side, side_name in ((1, "right"), (-1, "left")):
            va = vessels.vertebral_artery(self.by_level, side, self.va_entry[side])
            self._add(f"vertebral_artery_{side_name}", va, va.bbox(1.0), tid("vertebral_artery"), group="vessel",
                      layer=62)
        cord_front = lambda seg: seg.to_world([0.0, -seg.half_depth - 2.0, 0.0])  # noqa: E731
        if self.adamkiewicz is not None:
            level, side = self.adamkiewicz
            seg = self.by_level[level]
            artery = vessels.radicular_artery(seg, side, cord_front(seg))
            self._add("artery_of_adamkiewicz", artery, artery.bbox(1.0), tid("radicular_artery"), group="vessel",
                      layer=62)
        for (interspace, side), present in cervical_radicular.items():
            if present:
                seg = self.by_level[interspace.split("-")[0]]
                artery = vessels.radicular_artery(seg, side, cord_front(seg), position="posterior")
                side_name = "right" if side > 0 else "left"
                self._add(f"{interspace}.radicular_artery_{side_name}", artery, artery.bbox(1.0),
                          tid("radicular_artery"), group="vessel", layer=62)

        # discs, with their nuclei
        for upper, lower in zip(self.segments, self.segments[1:] + [self.s1]):
            name = f"{upper.name}-{lower.name}"
            box = bbox_of_points(np.stack([upper.to_world([0, 0, -0.5 * upper.height_mid_mm]),
                                           lower.to_world([0, 0, 0.5 * lower.height_mid_mm])]),
                                 0.5 * max(upper.dims.endplate_width_mm, lower.dims.endplate_width_mm) + 4.0)
            self._add(f"{name}.disc", vt.disc_field(upper, lower, self.morphometry.disc(name)), box,
                      tid("disc_annulus"), group="disc", layer=70)
            self._add(f"{name}.nucleus", vt.nucleus_field(upper, lower), box, tid("disc_nucleus"), group="disc",
                      layer=71)
        if shape.lumbarized_s1:
            self._add("S1-S2.disc", self._s1_s2_disc_field(), self._sacral_box(20.0, 40.0, 26.0), tid("disc_annulus"),
                      group="disc", layer=70)

        # vertebrae
        for i, seg in enumerate(self.segments):
            below_name = names[i + 1] if i + 1 < len(names) else "S1"
            above = self.joints.get(f"{names[i - 1]}-{seg.name}") if i > 0 else None
            below = self.joints[f"{seg.name}-{below_name}"]
            if i == 0:
                # the top vertebra's superior facets articulate with a level the phantom leaves out
                above = [self._virtual_joint_above(seg, side) for side in (1, -1)]
            field = vt.vertebra_field(seg, above, below)
            if seg.name == "L5" and self.patient.transitional == "sacralized_L5":
                field = self._sacralized(field, seg)
            self._add_bone(seg.name, field, self._vertebra_box(seg))

        # sacrum (with the S1 superior articular processes), coccyx, ilia and the joints between
        s1_saps = []
        for joint, side in zip(self.joints["L5-S1"], (1, -1)):
            base = self.s1.to_world(self.s1.pedicle_centre_local(side) + np.array([side * 1.5, -7.0, 2.0]))
            s1_saps.append(lambda p, j=joint, b=base: vt.superior_articular_process(p, j, b))
        sacrum = sp.sacrum_field(frame, shape, s1_saps)
        self._sacrum_field = sacrum
        coccyx = sp.coccyx_field(frame, shape)
        cox_pts = np.stack([frame.to_world(0.0, s, 0.0) for s in (100.0 * shape.scale, 135.0 * shape.scale)])
        for side, side_name in ((1, "right"), (-1, "left")):
            ilium = self._ilium_shape(side, crest_offsets[side])
            self.ilia[side_name] = ilium
            f = sp.ilium_field(ilium, sacrum, frame, shape)
            lo = np.array([min(side * 30.0, ilium.centre[0] + side * (ilium.radii[0] + 10.0)), -80.0, -75.0])
            hi = np.array([max(side * 30.0, ilium.centre[0] + side * (ilium.radii[0] + 10.0)), 80.0,
                           ilium.crest_top_z_mm + 12.0])
            box = np.stack([np.minimum(lo, hi), np.maximum(lo, hi)])
            self._add(f"sacroiliac_joint_{side_name}", sp.sacroiliac_joint_field(ilium, sacrum, frame, shape), box,
                      tid("sacroiliac_joint"), group="joint", layer=85)
            self._add_bone(f"ilium_{side_name}", f, box)
        self._add_bone("sacrum", sacrum, self._sacral_box(-25.0, 110.0, 60.0))
        hiatus_box = self._sacral_box(shape.hiatus_apex_s_mm / shape.scale - 5.0, 110.0, 20.0)
        self._add("sacrococcygeal_ligament", sp.sacrococcygeal_ligament_field(frame, shape), hiatus_box,
                  tid("sacrococcygeal_ligament"), group="ligament", layer=25)
        self._add("sacral_hiatus_fat", sp.hiatus_fat_field(frame, shape), hiatus_box, tid("epidural_fat"),
                  group="neural", layer=31)
        self._add_bone("coccyx", coccyx, bbox_of_points(cox_pts, 12.0))

    def _vertebra_box(self, seg: vt.Segment) -> np.ndarray:
        d = seg.dims
        half = 0.5 * d.transverse_span_mm + 10.0
        back = -seg.half_depth - d.canal_depth_mm - d.spinous_length_mm - 16.0
        reach = 18.0 if seg.region != "cervical" else 14.0
        zs = (-0.5 * seg.height_mid_mm - reach - (d.spinous_length_mm * 0.9 if seg.region == "thoracic" else 0.0),
              0.5 * seg.height_mid_mm + reach + (16.0 if seg.name == "C2" else 0.0))
        corners = np.stack([seg.to_world([x, y, z]) for x in (-half, half) for y in (seg.half_depth + 3.0, back)
                            for z in zs])
        return bbox_of_points(corners, 2.0)

    def _sacral_box(self, s_lo: float, s_hi: float, half_width: float) -> np.ndarray:
        shape, frame = self.sacrum_shape, self.sacral_frame
        k = shape.scale
        pts = np.concatenate([frame.to_world(x, s, ap) for x in (-half_width * k, half_width * k)
                              for s in (s_lo * k, s_hi * k) for ap in (-55.0 * k, 25.0 * k)]).reshape(-1, 3)
        return bbox_of_points(pts, 4.0)

    def _flavum_attachments(self, interspace: str) -> tuple[np.ndarray, np.ndarray]:
        """Midline attachments of a ligamentum flavum on the canal side: the front of the upper
        lamina's lower part, and the top of the lower lamina (world)."""
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
        return top, bottom

    def _s1_root(self, side: int):
        """The S1 root: from the sacral canal down and out through the S1 foramen."""
        shape, frame = self.sacrum_shape, self.sacral_frame
        k = shape.scale
        s_f, x_f, _ = sp.DORSAL_FORAMINA[0]
        a = frame.to_world(side * 9.0 * k, 12.0 * k, shape.canal_centre_ap(12.0 * k))
        b = frame.to_world(side * x_f * k, s_f * k, shape.canal_centre_ap(s_f * k) + 2.0 * k)
        c = frame.to_world(side * (x_f + 8.0) * k, (s_f + 8.0) * k, float(shape.body_half_depth(s_f * k)) + 8.0 * k)
        from simulator.geometry import sdf

        def field(points):
            return sdf.union(sdf.capsule(points, a, b, 2.4 * k), sdf.capsule(points, b, c, 2.6 * k), k_mm=2.0)

        return field, np.stack([a, b, c])

    def _s1_s2_disc_field(self):
        """The rudimentary disc of a lumbarised S1 (between the S1 and S2 bodies)."""
        shape, frame = self.sacrum_shape, self.sacral_frame
        k = shape.scale
        from simulator.geometry import sdf

        def field(points):
            x, s, ap = frame.to_arc(points)
            d2 = sdf.ellipse_2d(np.stack([x, ap], -1), np.stack([shape.body_half_width(s), shape.body_half_depth(s)], -1))
            return np.maximum(d2, np.abs(s - sp.LUMBARIZED_GAP_S_MM * k) - 3.0 * k)

        return field

    def _sacralized(self, field, seg: vt.Segment):
        """A sacralised L5: each transverse process widened into a bar fused with the sacral ala."""
        shape, frame = self.sacrum_shape, self.sacral_frame
        k = shape.scale
        from simulator.geometry import sdf

        bars = []
        for side in (1, -1):
            tip = seg.to_world(vt.transverse_tip_local(seg, side))
            ala = frame.to_world(side * 42.0 * k, 6.0 * k, -0.2 * float(shape.body_half_depth(6.0 * k)))
            bars.append((tip, ala))

        def fused(points):
            d = field(points)
            for tip, ala in bars:
                d = sdf.smooth_min(d, sdf.capsule(points, tip, ala, 8.5 * k), 5.0)
            return d

        return fused

    def _virtual_joint_above(self, seg: vt.Segment, side: int) -> vt.FacetJoint:
        up = vt.Segment("C1" if seg.name == "C2" else "above",
                        seg.world_from_body @ frames.rigid(np.eye(3), [0, 0, seg.height_mid_mm + 10.0]),
                        seg.dims, seg.height_mid_mm)
        joint = vt.facet_joint(up, seg, side)
        if seg.name == "C2":
            # the atlanto-axial joints are nearly horizontal, lateral to the dens
            normal = seg.axis([0.0, -0.12, 1.0])
            normal = normal / np.linalg.norm(normal)
            centre = seg.to_world(seg.lateral_mass_centre_local(side) + np.array([side * 1.0, 3.0, 0.5 * seg.height_mid_mm + 1.0]))
            up_axis = seg.axis([0.0, 1.0, 0.12])
            up_axis = up_axis / np.linalg.norm(up_axis)
            joint = vt.FacetJoint(joint.name, centre, normal, up_axis, 7.0, 6.0)
        return joint

    def _ilium_shape(self, side: int, crest_offset_mm: float) -> sp.IliumShape:
        k = self.sacrum_shape.scale
        l4, l5 = self.by_level["L4"], self.by_level["L5"]
        # iliac crest tops: at about the L4-L5 interspace on radiographs (Tuffier's line)
        between = 0.5 * (l4.to_world([0, 0, -0.5 * l4.height_mid_mm])[2]
                         + l5.to_world([0, 0, 0.5 * l5.height_mid_mm])[2])
        crest_z = between + crest_offset_mm
        return sp.IliumShape(side=side, centre=np.array([side * 52.0 * k, 28.0 * k, crest_z - 45.0 * k]),
                             radii=np.array([84.0, 68.0, 88.0]) * k, crest_top_z_mm=crest_z,
                             crest_top_y_mm=8.0 * k)

    # ------------------------------------------------------------------------------ the body
    def _build_torso(self, lumbar_scatter: float, cervical_scatter: float, gas_rng) -> Torso:
        tips, bodies = [], []
        for seg in self.segments:
            tip = seg.to_world(seg.spinous_tip_local())
            centre = seg.to_world([0.0, 0.0, 0.0])
            back = seg.to_world([0.0, -seg.half_depth, 0.0])
            front = seg.to_world([0.0, seg.half_depth, 0.0])
            tp = seg.to_world(vt.transverse_tip_local(seg, 1))
            tips.append([tip[2], tip[1]])
            bodies.append([centre[2], back[1], front[1], 0.5 * seg.dims.endplate_width_mm, tp[1], centre[0]])
        shape = self.sacrum_shape
        for s in (10.0, 30.0, 50.0, 70.0, 90.0, 110.0, 130.0):
            s = s * shape.scale
            crest = self.sacral_frame.to_world(0.0, s, shape.dorsal_surface_ap(s) - 5.0 * shape.scale)
            centre = self.sacral_frame.to_world(0.0, s, 0.0)
            back = self.sacral_frame.to_world(0.0, s, -shape.body_half_depth(s))
            front = self.sacral_frame.to_world(0.0, s, shape.body_half_depth(s))
            tips.append([crest[2], crest[1]])
            bodies.append([centre[2], back[1], front[1], float(shape.body_half_width(s)), back[1] - 10.0, centre[0]])
        # the midline profile follows the spinous tips, the column's profile the bodies: the thoracic
        # spinous processes hang a level below their bodies
        tips_a, bodies_a = (np.array(sorted(rows)) for rows in (tips, bodies))
        # thoracic spinous processes overlap in z: keep the profile a function of z
        tips_a = tips_a[np.concatenate([[True], np.diff(tips_a[:, 0]) > 0.5])]
        zs = np.union1d(tips_a[:, 0], bodies_a[:, 0])
        zs = zs[np.concatenate([[True], np.diff(zs) > 0.5])]
        z = np.concatenate([[zs[0] - 60.0], zs, [zs[-1] + 60.0]])
        r = np.column_stack([np.interp(z, tips_a[:, 0], tips_a[:, 1])]
                            + [np.interp(z, bodies_a[:, 0], bodies_a[:, i]) for i in range(1, 6)])
        zl = {lv: self.by_level[lv].to_world([0.0, 0.0, 0.0])[2] for lv in ALL_LEVELS if lv != "S1"}
        z_t12, z_l2, z_t1, z_c6 = zl["T12"], zl["L2"], zl["T1"], zl["C6"]
        psoas = np.clip((z_t12 - z) / 120.0, 0.0, 1.0) * (z > -40.0)
        bmi = self.patient.bmi_kg_m2
        profile = SpineProfile(z_mm=z, midline_back_y_mm=r[:, 0], body_back_y_mm=r[:, 1], body_front_y_mm=r[:, 2],
                               body_half_width_mm=r[:, 3], transverse_y_mm=r[:, 4], psoas=psoas,
                               fat_mm=np.full_like(z, 3.0), nuchal_mm=np.zeros_like(z),
                               half_width_mm=np.full_like(z, 150.0), depth_mm=np.full_like(z, 200.0),
                               body_centre_x_mm=r[:, 5])
        # soft tissue over the lumbar spinous tips set so the midline skin-to-epidural depth at
        # L3-L4 follows Ravi 2011 (with the reference's +-8 mm scatter as a seeded normal, SD 4 mm)
        target = ravi_skin_to_epidural_mm(bmi) + lumbar_scatter
        bony = self._tip_line_to_epidural_mm(profile, "L3-L4")
        fixed = SKIN_MM + FASCIA_MM + SUPRASPINOUS_ROOM_MM
        fat = float(np.clip(target - bony - fixed, 1.5, 80.0))  # a lean back keeps 1.5 mm of fat
        # the back of the chest and neck carry less fat than the lower back
        fat_z = fat * np.interp(z, [z_c6, z_t1, z_t12, z_l2], [0.6, 0.7, 0.8, 1.0])
        profile.fat_mm = fat_z
        # over the neck, the ligamentum nuchae fills what Han 2003's depth at C6-C7 leaves
        cervical_target = han_cervical_depth_mm(self.patient.sex) + cervical_scatter + 0.3 * (bmi - 25.0)
        bony_c = self._tip_line_to_epidural_mm(profile, "C6-C7")
        nuchal = float(np.clip(cervical_target - bony_c - fixed - fat * 0.6, 2.0, 40.0))
        c7_tip = self.by_level["C7"].to_world(self.by_level["C7"].spinous_tip_local())[2]
        profile.nuchal_mm = nuchal * np.clip((z - c7_tip) / 15.0, 0.0, 1.0)
        # the outline: pelvis, waist, chest, shoulders, neck (and their fat)
        size = self.patient.size_scale
        knots = [z[0], 0.0, zl["L3"], z_t12, zl["T6"], z_t1, zl["C7"], z_c6, z[-1]]
        widths = np.array([150.0, 145.0, 128.0, 132.0, 138.0, 170.0, 120.0, 58.0, 55.0]) * size
        depths = np.array([200.0, 195.0, 185.0, 200.0, 205.0, 190.0, 150.0, 105.0, 100.0]) * size
        order = np.argsort(knots)
        knots = np.asarray(knots)[order]
        widths, depths = widths[order], depths[order]
        neckness = np.clip((z - zl["C7"]) / (z_c6 - zl["C7"]), 0.0, 1.0)
        profile.half_width_mm = np.interp(z, knots, widths) + (1.6 * fat_z + 1.2 * (bmi - 22.0)) * (1.0 - 0.6 * neckness)
        profile.depth_mm = np.interp(z, knots, depths) + (2.2 * fat_z + 2.5 * (bmi - 22.0)) * (1.0 - 0.7 * neckness)
        pockets = make_gas_pockets(gas_rng, profile, -20.0, zl["L1"])
        return Torso(profile=profile, gas_pockets=pockets)

    def _tip_line_to_epidural_mm(self, profile: SpineProfile, interspace: str) -> float:
        """Depth of the epidural fat below the spinous-tip line, straight forward in the midline at
        the centre of an interlaminar window (the skin follows the tip line)."""
        centre = self.interlaminar_centre(interspace)
        tip_y = float(np.interp(centre[2], profile.z_mm, profile.midline_back_y_mm))
        t = np.arange(0.0, 80.0, 0.1)
        line = np.stack([np.zeros_like(t), tip_y + t, np.full_like(t, centre[2])], axis=1)
        labels = self._paint_structures(line, np.zeros(len(t), np.uint8))
        hits = np.nonzero(labels == tid("epidural_fat"))[0]
        return float(t[hits[0]]) if hits.size else 30.0

    def _build_body_around(self) -> None:
        """The structures that need the body outline: thorax, organs, neck."""
        chest = thorax.ChestShape(self.torso)
        by = self.by_level
        thoracic = [s for s in self.segments if s.region == "thoracic"]
        for seg in thoracic:
            for side, side_name in ((1, "right"), (-1, "left")):
                bone, cartilage = thorax.rib_tubes(seg, side, chest)
                number = seg.name[1:]
                self._add_bone(f"rib_{number}_{side_name}", bone, bone.bbox(2.0))
                if cartilage is not None:
                    self._add(f"rib_{number}_{side_name}.cartilage", cartilage, cartilage.bbox(2.0),
                              tid("costal_cartilage"), group="joint", layer=80)
        z_t2 = by["T2"].to_world([0.0, 0.0, 0.5 * by["T2"].height_mid_mm])[2]
        z_t9 = by["T9"].to_world([0.0, 0.0, 0.0])[2]
        sternum = thorax.sternum_field(chest, z_t2, z_t9)
        self._add_bone("sternum", sternum, sternum.bbox(3.0))
        prof = self.torso.profile

        def spine_fn(name):
            return lambda z: np.interp(z, prof.z_mm, getattr(prof, name))

        t7 = by["T7"]
        heart_centre = t7.to_world([-30.0, t7.half_depth + 55.0, -10.0])
        z_apex = by["T1"].to_world([0.0, 0.0, 0.5 * by["T1"].height_mid_mm])[2] + 28.0
        z_dome = by["T9"].to_world([0.0, 0.0, 0.0])[2]
        z_recess = by["L1"].to_world([0.0, 0.0, 0.5 * by["L1"].height_mid_mm])[2]
        for side, side_name in ((1, "right"), (-1, "left")):
            lung = thorax.LungShape(chest=chest, z_apex_mm=z_apex, z_dome_mm=z_dome, z_recess_mm=z_recess,
                                    side=side, spine_centre_x=spine_fn("body_centre_x_mm"), spine_centre_y=lambda z: 0.5 * (spine_fn("body_back_y_mm")(z)
                                                                              + spine_fn("body_front_y_mm")(z)),
                                    spine_half_width=spine_fn("body_half_width_mm"),
                                    spine_front_y=spine_fn("body_front_y_mm"), transverse_y=spine_fn("transverse_y_mm"),
                                    heart_centre=heart_centre, heart_radii=np.array([62.0, 52.0, 58.0]) * self.scale)

            def pleural(points, lung=lung):
                return lung.field(points) - thorax.PLEURA_MM

            a, b, yc = chest.ellipse(np.array([z_recess, z_apex]), 0.0)
            lo = np.array([min(0.0, side * (a.max() + 5.0)), yc.min() - b.max() - 5.0, z_recess - 30.0])
            hi = np.array([max(0.0, side * (a.max() + 5.0)), yc.max() + b.max() + 5.0, z_apex + 5.0])
            self._add(f"lung_{side_name}", pleural, np.stack([lo, hi]), tid("lung"),
                      [(thorax.PLEURA_MM, tid("pleura"))], group="organ", layer=10)
            f, centre, radius = organs.kidney_field(by["L1"], side)
            self._add(f"kidney_{side_name}", f, bbox_of_points(centre, radius + 3.0), tid("kidney"), group="organ",
                      layer=10)
            for vein in (False, True):
                tube = organs.neck_vessel_tube(by, side, vein)
                name = f"{'jugular_vein' if vein else 'carotid_artery'}_{side_name}"
                self._add(name, tube, tube.bbox(1.0), tid("jugular_vein" if vein else "carotid_artery"),
                          group="vessel", layer=11)
        airway = organs.airway_tube(by)
        self._add("airway", airway, airway.bbox(1.0), tid("airway"), group="organ", layer=11)
        presacral, rectum, box = organs.rectum_and_presacral(self.sacral_frame, self.sacrum_shape)
        self._add("presacral_space", presacral, bbox_of_points(box, 2.0), tid("presacral_space"), group="organ",
                  layer=10)
        self._add("rectum", rectum, rectum.bbox(1.0), tid("rectum"), group="organ", layer=11)

    # ------------------------------------------------------------------------------ queries
    def interlaminar_centre(self, interspace: str) -> np.ndarray:
        """Midline centre of an interlaminar window, inside the ligamentum flavum (world mm).

        The window is the gap between the lower edge of the upper lamina and the upper edge of the
        lower one; its centre is found in the ligament straight in front of the gap's midpoint (so
        a narrowed, degenerate interspace still has its centre in the ligament, not in bone). Where
        the ligament's halves are unfused in the midline, the centre lies in the gap between them.
        """
        top, bottom = self._flavum_attachments(interspace)
        upper = self.by_level[interspace.split("-")[0]]
        forward = upper.axis([0.0, 1.0, 0.0])
        thickness = self.morphometry.disc(interspace).ligamentum_flavum_thickness_mm
        fallback = 0.5 * (top + bottom) - forward * (0.5 * thickness)
        lower_edge = upper.to_world([0.0, upper.canal_back_y - upper.dims.lamina_thickness_mm, upper.lamina_bottom_z])
        if interspace.endswith("S1"):
            upper_edge = bottom - forward * 5.0
        else:
            lw = self.by_level[interspace.split("-")[1]]
            upper_edge = lw.to_world([0.0, lw.canal_back_y - lw.dims.lamina_thickness_mm, lw.lamina_top_z])
        gap_mid = 0.5 * (lower_edge + upper_edge)
        if not any(st.name == f"{interspace}.ligamentum_flavum" for st in self.structures):
            return fallback
        # where the halves are unfused in the midline, find the ligament just beside the gap
        beside = upper.axis([1.5, 0.0, 0.0]) if self.morphometry.disc(interspace).ligamentum_flavum_gap else 0.0
        t = np.arange(-15.0, 25.0, 0.1)
        line = gap_mid + beside + t[:, None] * forward
        # where the ligament is what the needle meets (not where bone overlies it)
        labels = self._paint_structures(line, np.zeros(len(t), np.uint8))
        inside = np.nonzero(labels == tid("ligamentum_flavum"))[0]
        if inside.size == 0:
            return fallback
        # the middle of the first stretch of ligament along the line
        breaks = np.nonzero(np.diff(inside) > 1)[0]
        run_end = inside[breaks[0]] if breaks.size else inside[-1]
        return line[(inside[0] + run_end) // 2] - beside

    def structure_at(self, point_mm) -> str | None:
        """Name of the innermost (last painted) structure containing ``point_mm``, if any."""
        p = np.asarray(point_mm, float).reshape(1, 3)
        for s in reversed(self.structures):
            if np.all((p >= s.bbox_mm[0]) & (p <= s.bbox_mm[1])) and s.field(p)[0] < 0:
                return s.name
        return None

    def structure(self, name: str) -> Structure:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(name) from None

    def _build_index(self) -> None:
        """A coarse grid of cells listing the structures whose boxes reach each cell."""
        boxes = np.array([s.bbox_mm for s in self.structures])
        self._index_lo = boxes[:, 0].min(axis=0)
        hi = boxes[:, 1].max(axis=0)
        self._index_shape = tuple(int(n) for n in np.ceil((hi - self._index_lo) / INDEX_CELL_MM).astype(int) + 1)
        cells: dict[tuple[int, int, int], list[int]] = {}
        for i, (lo_b, hi_b) in enumerate(boxes):
            a = np.floor((lo_b - self._index_lo) / INDEX_CELL_MM).astype(int)
            b = np.floor((hi_b - self._index_lo) / INDEX_CELL_MM).astype(int)
            for cx in range(a[0], b[0] + 1):
                for cy in range(a[1], b[1] + 1):
                    for cz in range(a[2], b[2] + 1):
                        cells.setdefault((cx, cy, cz), []).append(i)
        self._cells = cells

    def _candidates(self, points: np.ndarray) -> list[int]:
        cell = np.floor((points - self._index_lo) / INDEX_CELL_MM).astype(int)
        unique = {tuple(c) for c in np.unique(cell, axis=0)}
        found: set[int] = set()
        for c in unique:
            found.update(self._cells.get(c, ()))
        return sorted(found)

    def _paint_structures(self, flat: np.ndarray, labels: np.ndarray, candidates=None) -> np.ndarray:
        structures = self.structures if candidates is None else [self.structures[i] for i in candidates]
        for s in structures:
            inside_box = np.all((flat >= s.bbox_mm[0]) & (flat <= s.bbox_mm[1]), axis=1)
            if not inside_box.any():
                continue
            idx = np.nonzero(inside_box)[0]
            d = s.field(flat[idx])
            hit = d < 0.0
            if hit.any():
                labels[idx[hit]] = s.tissue_for_depth(-d[hit])
        return labels

    def tissue_at(self, points_mm: np.ndarray) -> np.ndarray:
        """Exact tissue ids at world points (any shape ``(..., 3)``)."""
        p = np.asarray(points_mm, float)
        flat = p.reshape(-1, 3)
        labels = self.torso.labels(flat)
        candidates = self._candidates(flat) if len(flat) < 20_000 else None
        return self._paint_structures(flat, labels, candidates).reshape(p.shape[:-1])

    def bounds_mm(self) -> np.ndarray:
        """World box holding the whole body model (skin included)."""
        prof = self.torso.profile
        z = prof.z_mm
        width = float(prof.half_width_mm.max()) + 4.0
        back = float(np.min(prof.midline_back_y_mm - self.torso.cover_mm(z))) - 25.0
        front = float(np.max(prof.midline_back_y_mm - self.torso.cover_mm(z) + prof.depth_mm)) + 10.0
        return np.array([[-width, back, z[0] + 20.0], [width, front, z[-1] - 30.0]])

    def label_volume(self, grid: VolumeGrid) -> np.ndarray:
        """Fill ``grid`` with tissue labels (uint8), thin shells widened to one voxel."""
        labels = np.empty(grid.shape, np.uint8)
        # torso layers, slab by slab (compiled closed-form labelling)
        axes = [grid.lo_mm[i] + grid.voxel_mm * np.arange(grid.shape[i]) for i in range(3)]
        for i, x in enumerate(axes[0]):
            labels[i] = self.torso.labels_slab(float(x), axes[1], axes[2])
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
