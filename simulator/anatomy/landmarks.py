"""Named anatomical landmarks of the phantom, in world millimetres.

Names are stable and documented (README, "Landmarks"):

Per vertebra ``V`` in C2..L5:
    ``V.body_center``, ``V.superior_endplate_center``, ``V.inferior_endplate_center``,
    ``V.spinous_tip``, ``V.pedicle_left_center``, ``V.pedicle_right_center``,
    ``V.transverse_tip_left``, ``V.transverse_tip_right``, ``V.lamina_left``, ``V.lamina_right``;
    cervical also ``V.lateral_mass_left_center``, ``V.lateral_mass_right_center`` (articular pillar
    centroid) and ``V.foramen_transversarium_left`` / ``_right``; thoracic also
    ``V.rib_head_left`` / ``_right`` and ``V.costotransverse_left`` / ``_right``; lumbar also
    ``V.sap_tp_junction_left`` / ``_right`` (superior articular process meeting the transverse
    process, on the bone's dorsal surface: the medial branch target).
Per interspace ``U-L`` in C2-C3 .. L5-S1:
    ``U-L.interlaminar_center`` (the centre of the interlaminar window, in the ligamentum flavum,
    midline), ``U-L.epidural_target`` (midline posterior epidural fat behind the dura, at the
    window), ``U-L.disc_center``, ``U-L.facet_left_center``, ``U-L.facet_right_center``,
    ``U-L.foramen_left_center``, ``U-L.foramen_right_center``, ``U-L.sap_tip_left`` /
    ``_right`` (tip of the lower vertebra's superior articular process).
Sacrum and pelvis:
    ``S1.superior_endplate_center``, ``S1.foramen_left``, ``S1.foramen_right`` (dorsal S1 foramina,
    and likewise ``S2``-``S4``), ``sacrum.hiatus_apex``, ``sacrum.cornu_left``,
    ``sacrum.cornu_right``, ``coccyx.tip``, ``iliac_crest_left_top``, ``iliac_crest_right_top``,
    ``psis_left``, ``psis_right``, ``sij_left_lower_third``, ``sij_right_lower_third``.
Canal:
    ``dural_sac.end``, ``conus.tip``, ``vertebral_artery_left_entry`` / ``_right_entry``.

Levels outside a region-only build are present too (the phantom is analytic). British spellings
(``..._centre``) are accepted on lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from simulator.anatomy import thorax
from simulator.anatomy import vertebra as vt
from simulator.anatomy.phantom import INTERSPACES, SpinePhantom
from simulator.anatomy.search import nearest_of
from simulator.anatomy.sacrum_pelvis import DORSAL_FORAMINA
from simulator.anatomy.tissues import tid, tissue_table


def _first_along(phantom: SpinePhantom, start: np.ndarray, direction: np.ndarray, tissue: int,
                 max_mm: float, step_mm: float = 0.1) -> float | None:
    t = np.arange(0.0, max_mm, step_mm)
    labels = phantom.tissue_at(start + t[:, None] * direction)
    hits = np.nonzero(labels == tissue)[0]
    return float(t[hits[0]]) if hits.size else None


def epidural_target(phantom: SpinePhantom, interspace: str) -> np.ndarray:
    """Midpoint of the posterior epidural fat in the midline at an interspace.

    Found by walking forward from the interlaminar centre through the ligamentum flavum into the
    epidural fat and up to the dura, so it follows the patient's own anatomy.
    """
    upper, _ = interspace.split("-")
    seg = phantom.by_level[upper]
    start = interlaminar_centre(phantom, interspace)
    forward = seg.axis([0.0, 1.0, 0.0])
    begin = _first_along(phantom, start, forward, tid("epidural_fat"), 25.0)
    if begin is None:
        return start
    dura = _first_along(phantom, start + forward * begin, forward, tid("dura"), 15.0)
    depth = 2.0 if dura is None else 0.5 * dura
    return start + forward * (begin + depth)


def interlaminar_centre(phantom: SpinePhantom, interspace: str) -> np.ndarray:
    """Midline centre of the interlaminar window, inside the ligamentum flavum."""
    return phantom.interlaminar_centre(interspace)


FORAMEN_CONTENTS = ("nerve_root", "epidural_fat", "epidural_vein", "radicular_artery")


def _clear_centre(phantom: SpinePhantom, guess: np.ndarray, seg: vt.Segment, half_mm=(3.0, 6.0, 7.0)) -> np.ndarray:
    """The point near ``guess`` deepest inside the foramen's contents (nerve root, fat, vessels).

    A foramen's size and shape vary with the patient (disc height, the superior articular process,
    the sacral ala), so its centre is found on the anatomy rather than set by a formula.
    """
    axes = [np.arange(-h, h + 0.01, 1.0) for h in half_mm]
    offsets = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
    points = guess + offsets.reshape(-1, 3) @ seg.world_from_body[:3, :3].T
    labels = phantom.tissue_at(points)
    walls = ~np.isin(labels, [tid(name) for name in FORAMEN_CONTENTS])
    clearance = ndimage.distance_transform_edt(~walls.reshape(offsets.shape[:3])).ravel()
    score = clearance - 0.25 * np.linalg.norm(offsets.reshape(-1, 3), axis=1)
    return points[int(np.argmax(score))]


def _dorsal_bone_surface(phantom, seg, local_point: np.ndarray) -> np.ndarray:
    """The bone surface straight behind ``local_point`` (a point inside bone, in the vertebra's
    frame), 0.3 mm inside the bone: where a needle from behind lands on it (the medial branch
    lies on this surface)."""
    t = np.arange(0.0, 25.0, 0.1)
    line = seg.to_world(local_point + t[:, None] * np.array([0.0, -1.0, 0.0]))
    bone = tissue_table().is_bone[phantom.tissue_at(line)]
    if not bone[0]:
        return seg.to_world(local_point)
    last = int(np.argmin(bone)) - 1 if not bone.all() else len(t) - 1
    return line[max(last - 3, 0)]


def coccyx_tip(phantom: SpinePhantom) -> np.ndarray:
    """The tip of the coccyx (world mm)."""
    k = phantom.sacrum_shape.scale
    return phantom.sacral_frame.to_world(0.0, 132.0 * k, -2.0 * k)


class Landmarks(Mapping):
    """Named landmarks (world mm), the ones found by searching the tissue computed when first
    asked for.

    An interspace's epidural target and foramina take 20-50 ms each to find; a patient has 23
    interspaces and an attempt needs one or two of them, so they wait to be read. Every name is
    known from the start (``in`` and iteration never compute); reading a value, ``items()`` or
    ``values()`` computes what is still pending.
    """

    def __init__(self, values: dict[str, np.ndarray], pending: dict[str, object], order: list[str]):
        self._values = values
        self._pending = pending
        self._order = order
        # the app reads landmarks from its GUI thread and its workers' (an X-ray, the debrief's zone)
        self._lock = threading.RLock()

    def __getitem__(self, name: str) -> np.ndarray:
        value = self._values.get(name)
        if value is None:
            with self._lock:
                value = self._values.get(name)
                if value is None:
                    if name not in self._pending:
                        raise KeyError(name)
                    value = np.asarray(self._pending[name](), float)
                    self._values[name] = value  # found before it leaves the pending: `in` never misses it
                    del self._pending[name]
        return value

    def __contains__(self, name) -> bool:
        return name in self._values or name in self._pending

    def __iter__(self):
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


def compute_landmarks(phantom: SpinePhantom) -> Landmarks:
    """All named landmarks of ``phantom`` (see :class:`Landmarks`: the searched ones on demand)."""
    out: dict[str, object] = {}
    pending: set[str] = set()

    def later(name: str, compute) -> None:
        out[name] = compute
        pending.add(name)
    for seg in phantom.segments:
        n = seg.name
        d = seg.dims
        out[f"{n}.body_center"] = seg.to_world([0.0, 0.0, 0.0])
        out[f"{n}.superior_endplate_center"] = seg.to_world([0.0, 0.0, 0.5 * seg.height_mid_mm])
        out[f"{n}.inferior_endplate_center"] = seg.to_world([0.0, 0.0, -0.5 * seg.height_mid_mm])
        out[f"{n}.spinous_tip"] = seg.to_world(seg.spinous_tip_local())
        for side, name in ((1, "right"), (-1, "left")):
            out[f"{n}.pedicle_{name}_center"] = seg.to_world(seg.pedicle_centre_local(side))
            out[f"{n}.transverse_tip_{name}"] = seg.to_world(vt.transverse_tip_local(seg, side))
            out[f"{n}.lamina_{name}"] = seg.to_world(
                [side * (0.25 * d.canal_width_mm + 1.0), seg.canal_back_y - 0.5 * d.lamina_thickness_mm,
                 0.5 * (seg.lamina_top_z + seg.lamina_bottom_z)])
            if seg.region == "cervical":
                out[f"{n}.lateral_mass_{name}_center"] = seg.to_world(seg.lateral_mass_centre_local(side))
                out[f"{n}.foramen_transversarium_{name}"] = seg.to_world(vt.foramen_transversarium_local(seg, side))
            elif seg.region == "thoracic":
                rib = thorax.rib_path(seg, side, thorax.ChestShape(phantom.torso))[0]
                # the centre of the head, a few mm along the neck from the end of its centreline
                along = (rib[1] - rib[0]) / np.linalg.norm(rib[1] - rib[0])
                out[f"{n}.rib_head_{name}"] = rib[0] + 3.0 * along
                out[f"{n}.costotransverse_{name}"] = seg.to_world(vt.transverse_tip_local(seg, side)
                                                                  + np.array([0.0, 3.0, -1.0]))
            else:
                # the superior articular process meets the transverse process at the pedicle's back
                root = seg.pedicle_centre_local(side) + np.array([side * 4.0, -0.5 * seg.pedicle_length_mm - 2.0, 1.5])
                out[f"{n}.sap_tp_junction_{name}"] = _dorsal_bone_surface(phantom, seg, root)
    for interspace in INTERSPACES:
        upper, lower = interspace.split("-")
        u = phantom.by_level[upper]
        lw = phantom.by_level[lower]
        out[f"{interspace}.interlaminar_center"] = interlaminar_centre(phantom, interspace)
        later(f"{interspace}.epidural_target", lambda i=interspace: epidural_target(phantom, i))
        out[f"{interspace}.disc_center"] = 0.5 * (u.to_world([0.0, 0.0, -0.5 * u.height_mid_mm])
                                                  + lw.to_world([0.0, 0.0, 0.5 * lw.height_mid_mm]))
        for joint in phantom.joints[interspace]:
            side = "right" if joint.centre[0] > u.to_world([0.0, 0.0, 0.0])[0] else "left"
            out[f"{interspace}.facet_{side}_center"] = joint.centre
            out[f"{interspace}.sap_tip_{side}"] = (joint.centre - joint.normal * 4.0
                                                  + joint.up * (joint.half_height_mm + 1.0))
        for side, name in ((1, "right"), (-1, "left")):
            if u.region == "cervical":
                centre = u.to_world([side * (abs(u.pedicle_centre_local(side)[0]) + 1.0), -u.half_depth - 1.0,
                                     -0.5 * u.height_mid_mm - 1.0])
            else:
                below_pedicle = u.pedicle_z - 0.5 * u.dims.pedicle_height_mm - 6.0
                centre = u.to_world([side * (0.5 * u.dims.canal_width_mm + 0.5 * u.dims.pedicle_width_mm),
                                     -u.half_depth - 2.0, below_pedicle])
            later(f"{interspace}.foramen_{name}_center", lambda c=centre, u=u: _clear_centre(phantom, c, u))
    shape = phantom.sacrum_shape
    frame = phantom.sacral_frame
    k = shape.scale
    out["S1.superior_endplate_center"] = frame.to_world(0.0, 0.0, 0.0)
    for number, (s_f, x_f, _) in enumerate(DORSAL_FORAMINA, start=1):
        for side, name in ((1, "right"), (-1, "left")):
            out[f"S{number}.foramen_{name}"] = frame.to_world(side * x_f * k, s_f * k, shape.dorsal_surface_ap(s_f * k))
    for side, name in ((1, "right"), (-1, "left")):
        out[f"sacrum.cornu_{name}"] = frame.to_world(side * 6.5 * k, shape.hiatus_apex_s_mm + 11.0 * k,
                                                     shape.dorsal_surface_ap(shape.hiatus_apex_s_mm + 11.0 * k))
        ilium = phantom.ilia[name]
        out[f"iliac_crest_{name}_top"] = ilium.crest_top()
        out[f"psis_{name}"] = frame.to_world(side * (shape.lateral_half_width(20.0 * k) - 2.0), 20.0 * k,
                                             shape.dorsal_surface_ap(20.0 * k) - 10.0 * k)
        # the lower third of the joint (the injection target), on its posterior (medial) line
        s_low = 48.0 * k
        nominal = frame.to_world(side * (shape.lateral_half_width(s_low) + 1.0), s_low,
                                 shape.dorsal_surface_ap(s_low) + 6.0 * k)
        found = nearest_of(phantom.tissue_at, nominal, [tid("sacroiliac_joint")], 6.0)
        out[f"sij_{name}_lower_third"] = nominal if found is None else found
        entry = phantom.va_entry[1 if name == "right" else -1]
        seg = phantom.by_level[entry]
        out[f"vertebral_artery_{name}_entry"] = seg.to_world(vt.foramen_transversarium_local(seg, 1 if name == "right" else -1))
    apex = shape.hiatus_apex_s_mm
    out["sacrum.hiatus_apex"] = frame.to_world(0.0, apex, shape.canal_centre_ap(apex) - shape.canal_half_depth(apex))
    out["coccyx.tip"] = coccyx_tip(phantom)
    out["dural_sac.end"] = phantom.canal.sac_centre[-1]
    out["conus.tip"] = phantom.conus_tip
    values = {k_: np.asarray(v, float) for k_, v in out.items() if k_ not in pending}
    return Landmarks(values, {k_: out[k_] for k_ in pending}, list(out))


def lookup(landmarks: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A landmark by name, accepting ``centre`` for ``center``."""
    if name in landmarks:
        return landmarks[name]
    alt = name.replace("centre", "center")
    if alt in landmarks:
        return landmarks[alt]
    raise KeyError(name)
