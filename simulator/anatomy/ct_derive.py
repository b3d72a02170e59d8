"""From a CT and its TotalSegmentator masks to SpineSim's labelled anatomy.

The masks give the bones (each vertebra, the sacrum, hips, ribs), the cord and some organs; the CT
numbers give air, fat and soft tissue. What a CT segmentation lacks is derived from the bone and
cord geometry, each by a stated rule:

- **Vertebral frames.** A vertebra's *body* is its mask's bone in front of its vertebral foramen
  (the most posterior hole its mask encloses in slices across the spine); the body's *axis* is the
  mean normal of planes fitted to the central 60% of its two endplates (the neighbours' direction
  where they cannot be fitted), pointing cranially; *anterior* runs from the foramen's centre to
  the body's. The body's *centre* is the middle of its bone runs through the body's centroid (along
  the axis, front to back, side to side, along the axis again); the axial run's ends are the
  endplate centres.
- **Canal.** A centreline runs through the vertebral foramina (and, below, is tracked down the
  sacral canal to the hiatus); at every millimetre of it the section is the hole the spine's bone
  encloses in the plane across the centreline. Where the bone ring is open (discs, interlaminar
  windows, intervertebral foramina) the section is interpolated (signed distances, linearly) from
  the nearest closed sections above and below, then extended backwards to the canal's real posterior
  wall: to a lamina lying within 4 mm behind it, and across an interlaminar window to the front of
  the upper lamina (the ligamentum flavum lines the window in continuation of it).
- **Dural sac.** An ellipse in each section: 0.36 x the canal's width across (0.33 in the neck),
  against the front of the canal (1 mm off it), leaving the posterior epidural fat of
  :func:`simulator.anatomy.canal.posterior_fat_mm` behind it (4-5 mm in the lumbar spine); clipped to
  the canal shrunk by 1 mm. It ends 35 mm down the sacral canal (about S2), narrowing over its last
  25 mm. Its wall (dura, 0.4 mm) is widened to one voxel; CSF inside.
- **Cord.** The ``spinal_cord`` mask where there is one; otherwise an ellipse in the sac down to the
  L1-L2 disc. Below the conus, the cauda equina fills the front half of the sac.
- **Ligamentum flavum.** Between adjacent laminae: a 3.5 mm band behind the canal's posterior wall
  (the back third of the canal's depth, up to 2 mm past its sides), wherever that band is not bone,
  i.e. in the interlaminar window.
- **Discs.** Between adjacent vertebral bodies: the bodies' cross-sections near the facing endplates,
  between the two endplate centres, where not bone; the inner third is nucleus.
- **Nerve roots.** Through each intervertebral foramen: a 2.2 mm tube (1.8 above the lumbar spine)
  from the side of the sac under the upper pedicle out of the foramen, with its ganglion, placed from
  the upper vertebra's measured pedicle and body as the phantom places them.
- **Skin.** The body is what is denser than -500 HU (largest connected part, holes in each axial
  slice filled); its outer 2.5 mm is skin. Inside it: < -400 HU gas, -400 to -30 HU fat, above that
  muscle (soft tissue), then the masked organs over those, the canal's contents, and bone last
  (each bone's outer voxel layer, at least 1.1 mm, cortical; the rest cancellous).

Landmarks (names as in :mod:`simulator.anatomy.landmarks`) are defined on these:
``V.body_center`` / ``V.superior_endplate_center`` / ``V.inferior_endplate_center`` as above;
``V.spinous_tip`` the mean of the vertebra's most posterior bone (within 1 mm of the extreme, along
its anterior axis) within 10 mm of its midline; ``V.pedicle_left_center`` / ``_right`` the centroid
of the bone beside the canal in a 3 mm slab across the pedicle, half a pedicle length behind the
body; ``V.transverse_tip_left`` / ``_right`` the mean of its most lateral bone;
``U-L.interlaminar_center`` the middle of the first stretch of derived ligamentum flavum met along
the upper vertebra's anterior axis from the middle of the window's edges, each taken 5 mm behind
the canal's wall (the laminae's back surfaces); the window is the longest stretch of the centreline
with no bone within 4.5 mm behind the canal's wall in the midline;
``U-L.epidural_target`` found from it exactly as the phantom's (forward to the epidural fat, then
half way to the dura); ``U-L.disc_center`` the midpoint of the facing endplate centres;
``U-L.foramen_left_center`` / ``_right`` below the upper pedicle as the phantom places it;
``S1.superior_endplate_center`` the centroid of the sacrum's top surface patch facing L5 (its normal
is S1's endplate normal); ``sacrum.hiatus_apex`` the posterior midline edge of the sacral canal in
the lowest section still roofed by bone; ``iliac_crest_left_top`` / ``_right`` the mean of the hip
mask's highest voxels; ``dural_sac.end`` and ``conus.tip`` the ends of the sac and the cord.
"""

from __future__ import annotations

from collections.abc import Callable

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from simulator.anatomy.canal import cord_radii_mm, posterior_fat_mm, root_name
from simulator.anatomy.column import ALL_LEVELS
from simulator.anatomy.tissues import tid
from simulator.anatomy.totalsegmentator import role, ts_classes, ts_ids, vertebra_level
from simulator.anatomy.vertebra import CORTEX_MM
from simulator.geometry import sdf

#: Thickness of the derived ligamentum flavum, mm.
FLAVUM_MM = 3.5
#: Thickness of a lamina at the edge of an interlaminar window, mm (from its front to its back).
LAMINA_MM = 5.0
#: Skin thickness, mm (as the phantom's).
SKIN_MM = 2.5
#: Dural sac end below the top of the sacral canal, along it, mm (about S2; the phantom's mean).
SAC_END_MM = 35.0
#: Half-size of the canal sections, mm.
SECTION_HALF_MM = 32.0
#: Dura thickness, mm (widened to a voxel).
DURA_MM = 0.4

#: Ids of derived structures in the structure volume (TotalSegmentator classes keep their own ids).
EPIDURAL_ID, SAC_ID, CAUDA_ID = 200, 201, 202
FLAVUM_BASE, DISC_BASE, NUCLEUS_BASE, ROOT_BASE = 300, 400, 450, 500


@dataclass
class VertebraGeometry:
    """What is measured of one vertebra (world mm; ``axes`` columns: right, anterior, cranial)."""

    name: str
    centre: np.ndarray
    axes: np.ndarray
    superior_endplate: np.ndarray
    inferior_endplate: np.ndarray
    canal_centre: np.ndarray | None
    canal_width: float
    canal_front_y: float  # body frame y of the back of the body (front of the canal)
    body_points: np.ndarray  # world coordinates of the body's voxels
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)
    pedicle_height: float = 14.0
    pedicle_width: float = 9.0
    body_half_width: float = 20.0
    body_half_height: float = 12.0

    def to_world(self, local) -> np.ndarray:
        return self.centre + np.asarray(local, float) @ self.axes.T

    def to_local(self, world) -> np.ndarray:
        return (np.asarray(world, float) - self.centre) @ self.axes

    @property
    def region(self) -> str:
        return {"C": "cervical", "T": "thoracic"}.get(self.name[0], "lumbar")


@dataclass
class Derived:
    """The import's result on the isotropic grid."""

    labels: np.ndarray
    structures: np.ndarray
    structure_names: dict[int, tuple[str, str]]
    landmarks: dict[str, np.ndarray]
    endplate_normals: dict[str, np.ndarray]
    levels: tuple[str, ...]
    skin_sdf_dmm: np.ndarray  # signed distance to the skin, 0.1 mm units (int16)


class Grid:
    """An axis-aligned isotropic grid: voxel (i, j, k) centre at ``lo + voxel * (i, j, k)``."""

    def __init__(self, lo_mm, shape, voxel_mm: float):
        self.lo = np.asarray(lo_mm, float)
        self.shape = tuple(int(n) for n in shape)
        self.voxel = float(voxel_mm)

    def index(self, points: np.ndarray) -> np.ndarray:
        return np.rint((np.asarray(points, float) - self.lo) / self.voxel).astype(np.int64)

    def world(self, index) -> np.ndarray:
        return self.lo + self.voxel * np.asarray(index, float)

    def lookup(self, volume: np.ndarray, points: np.ndarray, outside=0) -> np.ndarray:
        """Nearest-voxel values at world points (``outside`` beyond the grid)."""
        p = np.asarray(points, float)
        flat = p.reshape(-1, 3)
        idx = self.index(flat)
        ok = np.all((idx >= 0) & (idx < np.array(self.shape)), axis=1)
        out = np.full(len(flat), outside, volume.dtype)
        out[ok] = volume[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        return out.reshape(p.shape[:-1])


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def frame(z_axis, x_hint=(1.0, 0.0, 0.0)) -> np.ndarray:
    """Orthonormal columns (x, y, z): z along ``z_axis``, x nearest ``x_hint``, y = z cross x."""
    z = _unit(z_axis)
    h = np.asarray(x_hint, float)
    x = _unit(h - (h @ z) * z)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def _mask_points(mask: np.ndarray, grid: Grid, offset) -> np.ndarray:
    idx = np.argwhere(mask)
    return grid.world(idx + np.asarray(offset))


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def _sample_local(mask: np.ndarray, grid: Grid, offset, origin, axes, lo, shape, step) -> np.ndarray:
    """Nearest-voxel samples of a (cropped) mask on a grid in a local frame."""
    axes_i = [lo[i] + step * np.arange(shape[i]) for i in range(3)]
    uu, vv, ww = np.meshgrid(*axes_i, indexing="ij")
    world = origin + uu[..., None] * axes[:, 0] + vv[..., None] * axes[:, 1] + ww[..., None] * axes[:, 2]
    idx = np.rint((world - grid.lo) / grid.voxel).astype(np.int64) - np.asarray(offset)
    ok = np.all((idx >= 0) & (idx < np.array(mask.shape)), axis=-1)
    out = np.zeros(shape, bool)
    out[ok] = mask[idx[ok][:, 0], idx[ok][:, 1], idx[ok][:, 2]]
    return out


def _holes(slice2d: np.ndarray):
    """The holes a 2-D section of bone encloses: (labels, pixel counts, centres in pixels), or None."""
    holes = ndimage.binary_fill_holes(slice2d) & ~slice2d
    if not holes.any():
        return None
    lab, n = ndimage.label(holes)
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(holes, lab, index=index)
    centres = np.array(ndimage.center_of_mass(holes, lab, index=index)).reshape(-1, 2)
    return lab, sizes, centres


def _canal_hole(slice2d: np.ndarray, min_px: int, near, max_dist_px: float):
    """The canal in a 2-D section of bone: the hole holding ``near`` (pixel coordinates), else the
    nearest one within ``max_dist_px``; at least ``min_px`` pixels."""
    found = _holes(slice2d)
    if found is None:
        return None
    lab, sizes, centres = found
    dist = np.linalg.norm(centres - np.asarray(near), axis=1)
    inside = lab[int(round(near[0])), int(round(near[1]))] if (0 <= near[0] < lab.shape[0]
                                                               and 0 <= near[1] < lab.shape[1]) else 0
    if inside and sizes[inside - 1] >= min_px:
        return lab == inside
    order = np.argsort(dist)
    for i in order:
        if sizes[i] >= min_px and dist[i] <= max_dist_px:
            return lab == i + 1
    return None


# ------------------------------------------------------------------------------- vertebrae
def measure_vertebra(name: str, mask: np.ndarray, grid: Grid, offset, prior_axis) -> VertebraGeometry | None:
    """Frame, body, canal and landmarks of one vertebra from its mask (a crop at ``offset``)."""
    pts = _mask_points(mask, grid, offset)
    if len(pts) < 50:
        return None
    step = grid.voxel
    prior = _unit(prior_axis)
    axis = prior
    centre = pts.mean(axis=0)
    body_pts = pts
    canal_world = None
    canal_width = 20.0
    geo = None
    for _ in range(3):
        axes = frame(axis)
        # the vertebral foramen: the most posterior hole of the mask in slices across the axis
        local = (pts - centre) @ axes
        lo = local.min(axis=0) - 2 * step
        hi = local.max(axis=0) + 2 * step
        shape = tuple(int(n) for n in np.ceil((hi - lo) / step).astype(int) + 1)
        vol = _sample_local(mask, grid, offset, centre, axes, lo, shape, step)
        min_px = int(np.ceil(20.0 / step ** 2))
        hole_pts, widths, fronts = [], [], []
        for kz in range(shape[2]):
            sl = vol[:, :, kz]
            if sl.sum() < 10:
                continue
            hole = _posterior_hole(sl, min_px, lo, step)
            if hole is None:
                continue
            ij = np.argwhere(hole)
            u = lo[0] + step * ij[:, 0]
            v = lo[1] + step * ij[:, 1]
            hole_pts.append(np.column_stack([u, v, np.full(len(ij), lo[2] + step * kz)]))
            row = np.abs(v - 0.5 * (v.max() + v.min())) <= 0.5 * step
            widths.append(float(np.ptp(u[row])) + step if row.any() else float(np.ptp(u)) + step)
            fronts.append(float(v.max()))
        if hole_pts:
            hp = np.concatenate(hole_pts)
            canal_local = hp.mean(axis=0)
            canal_world = centre + canal_local @ axes.T
            canal_width = float(np.median(widths))
            front = float(np.median(fronts))
            keep = local[:, 1] > front + 0.5 * step
            if name.startswith("C"):
                keep &= np.abs(local[:, 0] - canal_local[0]) < 0.5 * canal_width + 2.0
        else:
            keep = local[:, 1] > np.median(local[:, 1])
        if geo is not None:  # the body measured last round bounds it (no transverse processes)
            gl = geo.to_local(pts)
            keep &= ((np.abs(gl[:, 0]) <= geo.body_half_width + step) & (gl[:, 1] >= geo.canal_front_y - step)
                     & (np.abs(gl[:, 2]) <= geo.body_half_height + 3.0))
        if keep.sum() < 30:
            return None
        body_pts = _largest_cluster(pts[keep], grid)
        cb = body_pts.mean(axis=0)
        if canal_world is not None:
            ap = cb - canal_world
            ap = ap - (ap @ axis) * axis
            y = _unit(ap)
            axes = np.stack([np.cross(y, axis), y, axis], axis=1)
        geo = _body_runs(name, mask, grid, offset, cb, axes, body_pts, canal_world, canal_width)
        if geo is None:
            return None
        # the body's axis: the mean normal of its two endplates (planes fitted to the central part of
        # its top and bottom surfaces); the column's direction where they cannot be fitted
        new_axis = _endplate_axis(geo, mask, grid, offset, body_pts)
        if new_axis is None or new_axis @ prior < np.cos(np.radians(35.0)):
            new_axis = prior
        axis = _unit(new_axis)
        centre = geo.centre
    geo.body_points = body_pts
    cl = geo.to_local(canal_world) if canal_world is not None else np.array([0.0, geo.canal_front_y - 8.0, 0.0])
    _vertebra_landmarks(geo, geo.to_local(pts), pts, cl)
    return geo


def _endplate_axis(geo: VertebraGeometry, mask, grid: Grid, offset, body_pts: np.ndarray) -> np.ndarray | None:
    """Unit mean normal (cranial) of planes fitted to the central 60% of a body's two endplates."""
    axis = geo.axes[:, 2]
    local = geo.to_local(body_pts)
    half_depth = max(-geo.canal_front_y, 1.0)
    central = (np.abs(local[:, 0]) < 0.6 * geo.body_half_width) & (np.abs(local[:, 1]) < 0.6 * half_depth)
    normals = []
    for sign in (1.0, -1.0):
        beyond = grid_lookup_crop(mask, grid, offset, body_pts + sign * axis * 1.5 * grid.voxel)
        surface = body_pts[central & ~beyond & (sign * local[:, 2] > 0)]
        if len(surface) < 12:
            return None
        w, vec = np.linalg.eigh(np.cov((surface - surface.mean(axis=0)).T))
        if w[1] < 2.0 * w[0]:
            return None  # not a plane
        n = vec[:, 0] if vec[:, 0] @ axis > 0 else -vec[:, 0]
        normals.append(n)
    return _unit(normals[0] + normals[1])


def _posterior_hole(slice2d: np.ndarray, min_px: int, lo, step):
    """The most posterior hole of a slice (the vertebral foramen: behind the body, whose concave
    endplates can also enclose a hole), at most 20 mm off the midline."""
    found = _holes(slice2d)
    if found is None:
        return None
    lab, sizes, centres = found
    u = lo[0] + step * centres[:, 0]
    v = lo[1] + step * centres[:, 1]
    ok = (sizes >= min_px) & (np.abs(u) < 20.0)
    if not ok.any():
        return None
    best = int(np.argmin(np.where(ok, v, np.inf)))
    return lab == best + 1


def _largest_cluster(points: np.ndarray, grid: Grid) -> np.ndarray:
    idx = grid.index(points)
    base = idx.min(axis=0)
    m = np.zeros(tuple(idx.max(axis=0) - base + 1), bool)
    m[tuple((idx - base).T)] = True
    m = _largest_component(m)
    return grid.world(np.argwhere(m) + base)


def _run(mask, grid: Grid, offset, start, direction, reach: float = 70.0):
    """Ends (t, mm) of the run of the mask's voxels through ``start`` along ``direction`` (sampled
    every 0.1 mm; each end half a sample beyond the last sample inside)."""
    t = np.arange(-reach, reach, 0.1)
    inside = grid_lookup_crop(mask, grid, offset, start + t[:, None] * direction)
    i0 = int(np.argmin(np.abs(t)))
    if not inside[i0]:
        near = np.nonzero(inside)[0]
        if near.size == 0:
            return None
        i0 = int(near[np.argmin(np.abs(near - i0))])
    a = i0
    while a > 0 and inside[a - 1]:
        a -= 1
    b = i0
    while b < len(t) - 1 and inside[b + 1]:
        b += 1
    return t[a] - 0.05, t[b] + 0.05


def _body_runs(name, mask, grid, offset, cb, axes, body_pts, canal_world, canal_width):
    """The body's centre: the middle of its bone runs along its axis, then front to back, then
    side to side (each through the centre found so far), and the axial run again."""
    c = cb.copy()
    runs = {}
    for k in (2, 1, 0, 2):
        r = _run(mask, grid, offset, c, axes[:, k])
        if r is None:
            return None
        runs[k] = r
        c = c + axes[:, k] * 0.5 * (r[0] + r[1])
        runs[k] = (r[0] - 0.5 * (r[0] + r[1]), r[1] - 0.5 * (r[0] + r[1]))
    geo = VertebraGeometry(name, c, axes, c + axes[:, 2] * runs[2][1], c + axes[:, 2] * runs[2][0], canal_world,
                           canal_width, float(runs[1][0]), body_pts)
    geo.body_half_width = float(runs[0][1])
    geo.body_half_height = float(runs[2][1])
    return geo


def grid_lookup_crop(mask, grid: Grid, offset, points) -> np.ndarray:
    idx = grid.index(points) - np.asarray(offset)
    ok = np.all((idx >= 0) & (idx < np.array(mask.shape)), axis=-1)
    out = np.zeros(len(points), bool)
    out[ok] = mask[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
    return out


def _vertebra_landmarks(geo: VertebraGeometry, local: np.ndarray, pts: np.ndarray, canal_local) -> None:
    n = geo.name
    lm = geo.landmarks
    lm[f"{n}.body_center"] = geo.centre
    lm[f"{n}.superior_endplate_center"] = geo.superior_endplate
    lm[f"{n}.inferior_endplate_center"] = geo.inferior_endplate
    xc = float(canal_local[0])
    # spinous tip: the middle of the most posterior bone (within 2 mm of it) near the midline
    band = np.abs(local[:, 0] - xc) < 10.0
    if band.any():
        y = local[band, 1]
        sel = y <= y.min() + 2.0
        lm[f"{n}.spinous_tip"] = pts[band][sel].mean(axis=0)
    # pedicles: the bone beside the canal in a slab half a pedicle length behind the body
    length = {"cervical": 5.0, "thoracic": 8.0}.get(geo.region, 9.0)
    y_slab = geo.canal_front_y - 0.5 * length
    slab = (np.abs(local[:, 1] - y_slab) <= 1.5) & (np.abs(local[:, 2]) <= geo.body_half_height + 2.0)
    widths, heights = [], []
    for side, side_name in ((1, "right"), (-1, "left")):
        lateral = side * (local[:, 0] - xc)
        sel = slab & (lateral > 0.5 * geo.canal_width - 1.0) & (lateral < 0.5 * geo.canal_width + 10.0)
        if sel.sum() >= 5:
            q = local[sel]
            c = q.mean(axis=0)
            c[1] = y_slab
            lm[f"{n}.pedicle_{side_name}_center"] = geo.to_world(c)
            widths.append(float(np.ptp(q[:, 0])) + 1.0)
            heights.append(float(np.ptp(q[:, 2])) + 1.0)
        if (lateral > 0).any():
            sel = lateral >= lateral.max() - 1.0
            lm[f"{n}.transverse_tip_{side_name}"] = pts[sel].mean(axis=0)
    if heights:
        geo.pedicle_height = float(np.clip(np.mean(heights), 5.0, 20.0))
        geo.pedicle_width = float(np.clip(np.mean(widths), 4.0, 16.0))


def measure_s1(sacrum: np.ndarray, grid: Grid, offset, l5: VertebraGeometry | None):
    """S1's superior endplate (centre and cranial normal) from the sacrum's top surface."""
    pts = _mask_points(sacrum, grid, offset)
    if len(pts) < 50:
        return None
    up = l5.axes[:, 2] if l5 is not None else np.array([0.0, 0.0, 1.0])
    if l5 is not None:
        start = l5.inferior_endplate
    else:
        xm = np.median(pts[:, 0])
        band = np.abs(pts[:, 0] - xm) < 8.0
        band &= pts[:, 1] > np.median(pts[band, 1]) if band.any() else band
        cand = pts[band] if band.any() else pts
        start = cand[np.argmax(cand[:, 2])] + up * 2.0
    t = np.arange(0.0, 40.0, 0.1)
    hit = grid_lookup_crop(sacrum, grid, offset, start - t[:, None] * up)
    if not hit.any():
        # no sacrum straight below L5: the topmost midline sacrum
        xm = np.median(pts[:, 0])
        band = np.abs(pts[:, 0] - xm) < 8.0
        cand = pts[band] if band.any() else pts
        e0 = cand[np.argmax(cand @ up)]
    else:
        e0 = start - t[int(np.argmax(hit))] * up
    normal = _unit(up)
    centre = e0
    surface = None
    for radius in (15.0, 22.0, 22.0):
        above = grid_lookup_crop(sacrum, grid, offset, pts + normal * 1.5 * grid.voxel)
        top = pts[~above]
        rel = top - centre
        height = rel @ normal
        planar = rel - height[:, None] * normal
        sel = (np.linalg.norm(planar, axis=1) < radius) & (np.abs(height) < 4.0)
        if sel.sum() < 10:
            break
        surface = top[sel]
        c = surface.mean(axis=0)
        w, v = np.linalg.eigh(np.cov((surface - c).T))
        n = v[:, 0] if v[:, 0] @ normal > 0 else -v[:, 0]
        if n @ up > np.cos(np.radians(60.0)):
            normal = _unit(n)
        centre = c
    if surface is None:
        return None
    return centre, normal


# ------------------------------------------------------------------------------- canal
@dataclass
class Centreline:
    points: np.ndarray  # (K, 3)
    axes: np.ndarray  # (K, 3, 3) columns right, anterior, cranial
    owner: list  # nearest vertebra name (or "sacrum") at each sample
    between: list  # (upper, lower) of the stretch each sample lies in, or None
    known: np.ndarray  # (K,) section measured (closed bone ring)
    sdf: np.ndarray  # (K, G, G) canal section signed distance, mm
    step: float
    half: float
    sstep: float
    hiatus: np.ndarray | None = None
    sacral_start: int | None = None


def _section_grid(half: float, step: float) -> np.ndarray:
    return np.arange(-half, half + 1e-9, step)


def _sample_section(bone: np.ndarray, grid: Grid, point, axes, coords) -> np.ndarray:
    uu, vv = np.meshgrid(coords, coords, indexing="ij")
    world = point + uu[..., None] * axes[:, 0] + vv[..., None] * axes[:, 1]
    return grid.lookup(bone, world, outside=False).astype(bool)


def _sdf2d(mask: np.ndarray, step: float) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, 99.0, np.float32)
    out = ndimage.distance_transform_edt(~mask, sampling=step)
    inn = ndimage.distance_transform_edt(mask, sampling=step)
    return (out - inn + np.where(mask, 0.5 * step, -0.5 * step)).astype(np.float32)


def build_centreline(vertebrae: list[VertebraGeometry], spine_bone: np.ndarray, grid: Grid,
                     s1: tuple | None, sacrum_mask_full: np.ndarray | None) -> Centreline | None:
    """The canal's centreline and sections (cranial first)."""
    nodes = [(v.canal_centre, v.axes, v.name) for v in vertebrae if v.canal_centre is not None]
    step = 1.0
    half = SECTION_HALF_MM
    coords = _section_grid(half, max(grid.voxel * 0.5, 0.5))
    sstep = coords[1] - coords[0]
    centre_px = (len(coords) - 1) / 2.0
    min_px = int(np.ceil(20.0 / sstep ** 2))
    sacral_nodes: list = []
    hiatus = None
    if s1 is not None and sacrum_mask_full is not None:
        s1_centre, s1_normal = s1
        # the sacral canal: first hole below the S1 endplate, behind the body, then tracked down
        ref_x = nodes[-1][1][:, 0] if nodes else np.array([1.0, 0.0, 0.0])
        axes = frame(s1_normal, ref_x)
        start = None
        for depth in np.arange(3.0, 40.0, 1.0):
            p = s1_centre - s1_normal * depth - axes[:, 1] * 25.0
            sec = _sample_section(sacrum_mask_full, grid, p, axes, coords)
            hole = _canal_hole(sec, min_px, near=(centre_px, centre_px), max_dist_px=14.0 / sstep)
            if hole is not None:
                ij = np.argwhere(hole).mean(axis=0)
                start = p + (ij[0] - centre_px) * sstep * axes[:, 0] + (ij[1] - centre_px) * sstep * axes[:, 1]
                break
        if start is not None:
            direction = -_unit(s1_normal)
            track = [start]
            misses = 0
            last_hole = None
            p = start
            for _ in range(160):
                ax = frame(-direction, ref_x)
                q = p + direction * 2.0
                sec = _sample_section(sacrum_mask_full, grid, q, ax, coords)
                hole = _canal_hole(sec, min_px, near=(centre_px, centre_px), max_dist_px=8.0 / sstep)
                if hole is None:
                    misses += 1
                    if misses > 3:
                        break
                    p = q
                    continue
                misses = 0
                ij = np.argwhere(hole)
                cij = ij.mean(axis=0)
                found = q + (cij[0] - centre_px) * sstep * ax[:, 0] + (cij[1] - centre_px) * sstep * ax[:, 1]
                # posterior midline edge of this section
                mid = np.abs(ij[:, 0] - cij[0]) * sstep < 2.0
                back = ij[mid][np.argmin(ij[mid][:, 1])] if mid.any() else cij
                last_hole = q + (back[0] - centre_px) * sstep * ax[:, 0] + (back[1] - centre_px) * sstep * ax[:, 1]
                track.append(found)
                if len(track) >= 4:
                    direction = _unit(track[-1] - track[-4])
                p = found
            hiatus = last_hole
            for i, pt in enumerate(track):
                d = _unit(track[min(i + 1, len(track) - 1)] - track[max(i - 1, 0)]) if len(track) > 1 else -s1_normal
                sacral_nodes.append((pt, frame(-d, ref_x), "sacrum"))
    all_nodes = nodes + sacral_nodes
    if len(all_nodes) == 0:
        return None
    pts = [n[0] for n in all_nodes]
    axs = [n[1] for n in all_nodes]
    own = [n[2] for n in all_nodes]
    # extend half a vertebra beyond the first (and, without a sacrum, the last) vertebra
    first = vertebrae[0] if vertebrae and vertebrae[0].canal_centre is not None else None
    if first is not None:
        h = float(np.linalg.norm(first.superior_endplate - first.inferior_endplate))
        pts.insert(0, pts[0] + first.axes[:, 2] * (0.5 * h + 8.0))
        axs.insert(0, axs[0])
        own.insert(0, own[0])
    if not sacral_nodes and nodes:
        last = [v for v in vertebrae if v.canal_centre is not None][-1]
        h = float(np.linalg.norm(last.superior_endplate - last.inferior_endplate))
        pts.append(pts[-1] - last.axes[:, 2] * (0.5 * h + 8.0))
        axs.append(axs[-1])
        own.append(own[-1])
    if len(pts) < 2:
        return None
    # resample every millimetre and smooth the course (the sections lie across its tangent, so
    # every voxel near the canal falls in the plane of its nearest sample)
    P = np.array(pts)
    seg_len = np.maximum(np.linalg.norm(np.diff(P, axis=0), axis=1), 1e-6)
    s_nodes = np.concatenate([[0.0], np.cumsum(seg_len)])
    s = np.arange(0.0, s_nodes[-1] + 1e-9, step)
    points = np.stack([np.interp(s, s_nodes, P[:, k]) for k in range(3)], axis=1)
    if len(points) > 8:
        points = ndimage.gaussian_filter1d(points, 5.0 / step, axis=0, mode="nearest")
    K = len(s)
    tangent = -np.gradient(points, axis=0)  # cranial: the samples run caudally
    axes_out = np.zeros((K, 3, 3))
    owner, between = [], []
    node_index = np.clip(np.searchsorted(s_nodes, s, side="right") - 1, 0, len(P) - 2)
    for i in range(K):
        j = node_index[i]
        f = (s[i] - s_nodes[j]) / seg_len[j]
        x = (1 - f) * axs[j][:, 0] + f * axs[j + 1][:, 0]
        axes_out[i] = frame(tangent[i], x)
        owner.append(own[j] if f < 0.5 else own[j + 1])
        between.append((own[j], own[j + 1]) if own[j] != own[j + 1] else None)
    # sections
    G = len(coords)
    sdfs = np.zeros((K, G, G), np.float32)
    known = np.zeros(K, bool)
    areas = np.zeros(K)
    for i in range(K):
        sec = _sample_section(spine_bone, grid, points[i], axes_out[i], coords)
        hole = _canal_hole(sec, min_px, near=(centre_px, centre_px), max_dist_px=8.0 / sstep)
        if hole is not None and hole.sum() * sstep ** 2 < 1200.0:
            known[i] = True
            areas[i] = hole.sum() * sstep ** 2
            sdfs[i] = _sdf2d(hole, sstep)
    # a section much larger than its neighbours closed round something else (a facet joint gap)
    for i in np.nonzero(known)[0]:
        lo, hi = max(0, i - 15), min(K, i + 16)
        near = areas[lo:hi][known[lo:hi]]
        if len(near) >= 3 and areas[i] > 1.5 * np.median(near):
            known[i] = False
    if not known.any():
        return None
    ring = known.copy()
    # the sacral stretch above the sacrum's roof (the first closed ring) is still the L5-S1 window
    sacral = [i for i in range(K) if owner[i] == "sacrum"]
    if sacral:
        roofed = [i for i in sacral if ring[i]]
        upper = next((o for o in reversed(owner[:sacral[0]]) if o != "sacrum"), None)
        if upper is not None:
            for i in sacral:
                if roofed and i >= roofed[0]:
                    break
                between[i] = (upper, "sacrum")
    _interpolate_sections(sdfs, known)
    # Where the ring is open the interpolated section is extended backwards to the canal's true
    # posterior wall: to the laminae where they lie behind it (the ring is open only at the
    # intervertebral foramina there), and across an interlaminar window to the upper lamina's front
    # (the ligamentum flavum lines the window in continuation of it).
    uu, vv = np.meshgrid(coords, coords, indexing="ij")
    last_back: np.ndarray | None = None  # world point of the last lamina-bounded posterior wall
    last_pair = None
    for i in range(K):
        inside = sdfs[i] < 0
        if not inside.any():
            continue
        uc = float(uu[inside].mean())
        col = inside & (np.abs(uu - uc) < 2.0)
        vb = float(vv[col].min()) if col.any() else float(vv[inside].min())
        ax = axes_out[i]
        if ring[i]:
            last_back = points[i] + uc * ax[:, 0] + vb * ax[:, 1]
            last_pair = between[i] or (owner[i], owner[i])
            continue
        t = np.arange(0.0, 4.0, 0.25)  # a lamina lies right behind; a spinous process farther
        ray = points[i] + uc * ax[:, 0] + (vb - t)[:, None] * ax[:, 1][None, :]
        hit = np.nonzero(grid.lookup(spine_bone, ray, outside=False))[0]
        if hit.size:
            extend = float(t[hit[0]])
            bounded = True
        elif last_back is not None and (between[i] is None or last_pair is None or between[i][0] in last_pair):
            extend = max(0.0, vb - float((last_back - points[i]) @ ax[:, 1]))
            bounded = False
        else:
            continue
        if extend >= sstep:
            sec = _sample_section(spine_bone, grid, points[i], ax, coords)
            grown = inside.copy()
            for n in range(1, int(extend / sstep) + 1):
                grown[:, :-n] |= inside[:, n:]
            grown &= ~sec
            lab, _ = ndimage.label(grown)
            keep = lab[inside & ~sec]
            keep = keep[keep > 0]
            if keep.size:
                grown = lab == np.bincount(keep).argmax()
                sdfs[i] = _sdf2d(grown | (inside & ~sec), sstep)
        if bounded:
            last_back = points[i] + uc * ax[:, 0] + (vb - extend) * ax[:, 1]
            last_pair = between[i] or (owner[i], owner[i])
    sacral_start = None
    if sacral_nodes:
        d = np.linalg.norm(points - sacral_nodes[0][0], axis=1)
        sacral_start = int(np.argmin(d))
    return Centreline(points, axes_out, owner, between, known, sdfs, step, half, sstep, hiatus, sacral_start)


def _interpolate_sections(sdfs: np.ndarray, known: np.ndarray) -> None:
    """Fill the unknown sections: signed distances interpolated linearly between the nearest known
    sections before and after (the nearest one beyond the ends)."""
    idx = np.nonzero(known)[0]
    for i in np.nonzero(~known)[0]:
        below = idx[idx > i]
        above = idx[idx < i]
        if above.size and below.size:
            a, b = above[-1], below[0]
            f = (i - a) / (b - a)
            sdfs[i] = (1 - f) * sdfs[a] + f * sdfs[b]
        else:
            sdfs[i] = sdfs[above[-1]] if above.size else sdfs[below[0]]


@dataclass
class SectionParams:
    """Per-sample measures of the canal section and the sac, cord and cauda ellipses in it."""

    uc: np.ndarray
    v_front: np.ndarray
    v_back: np.ndarray
    width: np.ndarray
    sac: np.ndarray  # (K, 4): u, v, rx, ry (rx 0: no sac)
    cord: np.ndarray  # (K, 4)
    cauda: np.ndarray  # (K, 4)
    flavum_pair: list  # interspace name per sample or None
    conus_index: int | None
    sac_end_index: int | None


def section_params(cl: Centreline, grid: Grid, has_cord_mask: bool, levels_present: list[str]) -> SectionParams:
    K, G, _ = cl.sdf.shape
    coords = -cl.half + cl.sstep * np.arange(G)
    uu, vv = np.meshgrid(coords, coords, indexing="ij")
    uc = np.zeros(K)
    vf = np.zeros(K)
    vb = np.zeros(K)
    width = np.zeros(K)
    for i in range(K):
        inside = cl.sdf[i] < 0
        if not inside.any():
            continue
        uc[i] = uu[inside].mean()
        col = inside & (np.abs(uu - uc[i]) < 2.0)
        vs = vv[col] if col.any() else vv[inside]
        vf[i], vb[i] = vs.max(), vs.min()
        row = inside & (np.abs(vv - 0.5 * (vf[i] + vb[i])) < 2.0)
        us = uu[row] if row.any() else uu[inside]
        width[i] = np.ptp(us) + (coords[1] - coords[0])
    smooth = lambda a: ndimage.gaussian_filter1d(a, 2.0, mode="nearest")  # noqa: E731
    uc, vf, vb, width = smooth(uc), smooth(vf), smooth(vb), smooth(width)
    depth = np.maximum(vf - vb, 4.0)
    # the sac: its end 35 mm down the sacral canal, narrowing over the last 25 mm
    sac_end = None
    if cl.sacral_start is not None:
        sac_end = min(K - 1, cl.sacral_start + int(round(SAC_END_MM / cl.step)))
    taper = np.ones(K)
    if sac_end is not None:
        idx = np.arange(K)
        taper = np.clip((sac_end - idx) / (25.0 / cl.step), 0.15, 1.0)
        taper[idx > sac_end] = 0.0
    sac = np.zeros((K, 4))
    cord = np.zeros((K, 4))
    cauda = np.zeros((K, 4))
    for i in range(K):
        owner = cl.owner[i]
        if owner == "sacrum":
            fat = 3.0
            kx = 0.31
        else:
            fat = posterior_fat_mm(owner)
            kx = 0.33 if owner.startswith("C") else 0.36
        ry = max(0.5 * (depth[i] - 1.0 - fat), 1.5) * taper[i]
        rx = kx * width[i] * taper[i]
        sac[i] = (uc[i], vf[i] - 1.0 - ry, rx, ry)
    # the conus: the cord mask's lower end, or (without one) the L1-L2 disc
    conus = None
    if not has_cord_mask:
        if "L1" in levels_present and "L2" in levels_present:
            i1 = [i for i, o in enumerate(cl.owner) if o == "L1"]
            i2 = [i for i, o in enumerate(cl.owner) if o == "L2"]
            conus = int(0.5 * (np.mean(i1) + np.mean(i2)))
        elif levels_present and all(ALL_LEVELS.index(lv) < ALL_LEVELS.index("L2") for lv in levels_present if lv in ALL_LEVELS):
            conus = K  # the whole scan lies above the conus
        else:
            upper = [lv for lv in levels_present if lv in ALL_LEVELS and ALL_LEVELS.index(lv) <= ALL_LEVELS.index("L1")]
            conus = max((i for i, o in enumerate(cl.owner) if o in upper), default=-1) + 1 if upper else 0
    for i in range(K):
        u, v, rx, ry = sac[i]
        if rx <= 0:
            continue
        owner = cl.owner[i]
        if conus is not None and i < conus:
            r = cord_radii_mm(owner if owner != "sacrum" else "L5")
            cord[i] = (u, v, min(r[0], 0.85 * rx), min(r[1], 0.8 * ry))
        elif conus is not None or has_cord_mask:
            cauda[i] = (u, v + 0.35 * ry, 0.55 * rx, 0.5 * ry)
    flavum_pair = [f"{b[0]}-{'S1' if b[1] == 'sacrum' else b[1]}" if b is not None else None for b in cl.between]
    return SectionParams(uc, vf, vb, width, sac, cord, cauda, flavum_pair, conus, sac_end)


def _ellipse_sdf(du: np.ndarray, dv: np.ndarray, rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """First-order signed distance to an ellipse (exact on the axes, good near the boundary)."""
    rx = np.maximum(rx, 1e-3)
    ry = np.maximum(ry, 1e-3)
    q = np.sqrt((du / rx) ** 2 + (dv / ry) ** 2)
    g = np.sqrt((du / rx ** 2) ** 2 + (dv / ry ** 2) ** 2) / np.maximum(q, 1e-9)
    return np.where(q > 1e-6, (q - 1.0) / np.maximum(g, 1e-9), -np.minimum(rx, ry))


# ------------------------------------------------------------------------------- the whole
def derive(hu: np.ndarray, ts: np.ndarray, grid: Grid,
           step: Callable[[float, str], None] | None = None) -> Derived:
    """Labels, structures, landmarks and the skin distance from a resampled CT and its masks
    (``step(fraction, what)`` is told as each part begins; it may raise to stop)."""
    step = step or (lambda _fraction, _what: None)
    step(0.0, "the body and the skin")
    v = grid.voxel
    classes = ts_classes()
    ids = ts_ids()
    labels = np.zeros(hu.shape, np.uint8)
    structures = np.zeros(hu.shape, np.uint16)
    names: dict[int, tuple[str, str]] = {}

    # body, skin and the CT-number classes
    body = hu > -500.0
    body = ndimage.binary_opening(body, iterations=1) if body.sum() > 1000 else body
    body = _largest_component(body)
    for k in range(body.shape[2]):
        if body[:, :, k].any():
            body[:, :, k] = ndimage.binary_fill_holes(body[:, :, k])
    depth_in = ndimage.distance_transform_edt(body, sampling=v)
    depth_out = ndimage.distance_transform_edt(~body, sampling=v)
    skin_sdf = np.where(body, -(depth_in - 0.5 * v), depth_out - 0.5 * v)
    skin_sdf_dmm = np.clip(np.rint(skin_sdf * 10.0), -32000, 32000).astype(np.int16)
    del depth_out
    labels[body & (hu < -400.0)] = tid("bowel_gas")
    labels[body & (hu >= -400.0) & (hu <= -30.0)] = tid("subcutaneous_fat")
    labels[body & (hu > -30.0)] = tid("muscle")
    labels[body & (depth_in <= SKIN_MM + 1e-6)] = tid("skin")
    del depth_in

    step(0.6, "the masked organs")
    # masked organs (bone is painted last)
    present = [int(i) for i in np.unique(ts) if i != 0]
    bone_ids = []
    objects = ndimage.find_objects(ts)
    for cid in present:
        r = role(classes.get(cid, ""))
        if r is None:
            continue
        sl = objects[cid - 1]
        m = ts[sl] == cid
        structures[sl][m] = cid
        names[cid] = (r.structure, r.group)
        if r.tissue == "bone":
            bone_ids.append(cid)
            continue
        if r.tissue == "spinal_cord":
            continue  # painted with the canal
        labels[sl][m] = tid(r.tissue)
        if r.tissue == "lung":
            # the pleura: the lung's outer voxel layer
            inner = ndimage.binary_erosion(m)
            labels[sl][m & ~inner] = tid("pleura")

    step(0.62, "the vertebrae's shapes")
    # the spine
    vert_ids = {}
    for cid in present:
        lv = vertebra_level(classes.get(cid, ""))
        if lv is not None:
            vert_ids[lv] = cid
    order = [lv for lv in ("C1",) + tuple(ALL_LEVELS) if lv in vert_ids]
    crops = {}
    centroids = {}
    for lv in order:
        sl = objects[vert_ids[lv] - 1]
        pad = 3
        sl = tuple(slice(max(0, s.start - pad), min(n, s.stop + pad)) for s, n in zip(sl, ts.shape))
        crops[lv] = (sl, ts[sl] == vert_ids[lv], np.array([s.start for s in sl]))
        centroids[lv] = _mask_points(crops[lv][1], grid, crops[lv][2]).mean(axis=0)
    # two rounds: the column's direction at each vertebra from its neighbours' mask centroids, then
    # from their measured body centres (the centroids lean towards long spinous processes)
    vertebrae: list[VertebraGeometry] = []
    for _ in range(2):
        measured = {g.name: g.centre for g in vertebrae}
        points = {lv: measured.get(lv, centroids[lv]) for lv in order}
        vertebrae = []
        for i, lv in enumerate(order):
            prior = np.array([0.0, 0.0, 1.0])
            above = order[i - 1] if i > 0 else None
            below = order[i + 1] if i + 1 < len(order) else None
            if above and below:
                prior = _unit(points[above] - points[below])
            elif above:
                prior = _unit(points[above] - points[lv])
            elif below:
                prior = _unit(points[lv] - points[below])
            if prior[2] < 0.3:
                prior = np.array([0.0, 0.0, 1.0])
            sl, m, off = crops[lv]
            geo = measure_vertebra(lv, m, grid, off, prior)
            if geo is not None:
                vertebrae.append(geo)
    by_name = {g.name: g for g in vertebrae}

    sacral = np.isin(ts, [ids["sacrum"], ids["vertebrae_S1"]])
    s1 = None
    s1_geo = None
    if sacral.any():
        sl = ndimage.find_objects(sacral.astype(np.uint8))[0]
        sl = tuple(slice(max(0, s.start - 3), min(n, s.stop + 3)) for s, n in zip(sl, ts.shape))
        l5 = by_name.get("L5")
        s1 = measure_s1(sacral[sl], grid, np.array([s.start for s in sl]), l5)
    spine_ids = [vert_ids[lv] for lv in order] + [ids["sacrum"], ids["vertebrae_S1"]]
    spine_bone = np.isin(ts, spine_ids)
    cl = build_centreline(vertebrae, spine_bone, grid, s1, sacral if s1 is not None else None)

    levels_present = [g.name for g in vertebrae if g.name in ALL_LEVELS and _whole(g, ts, vert_ids[g.name], objects)]
    landmarks: dict[str, np.ndarray] = {}
    for g in vertebrae:
        if g.name in ALL_LEVELS:
            landmarks.update(g.landmarks)
    normals = {g.name: g.axes[:, 2].copy() for g in vertebrae}
    if s1 is not None:
        landmarks["S1.superior_endplate_center"] = s1[0]
        normals["S1"] = s1[1]
        sl_s = ndimage.find_objects(sacral.astype(np.uint8))[0]
        # S1 is covered when the top of the sacrum and 20 mm below its endplate lie inside the scan
        top_inside = sl_s[2].stop < ts.shape[2] or s1[0][2] < grid.world([0, 0, ts.shape[2] - 1])[2] - 10.0
        if top_inside and s1[0][2] - grid.lo[2] >= 20.0:
            levels_present.append("S1")
        # the S1 "segment" for discs and interspaces
        up = s1[1]
        s1_geo = VertebraGeometry("S1", s1[0] - up * 15.0, frame(up, by_name["L5"].axes[:, 0] if "L5" in by_name
                                                                else (1.0, 0.0, 0.0)),
                                  s1[0], s1[0] - up * 30.0, None, 20.0, 0.0, np.zeros((0, 3)))

    step(0.8, "the spinal canal, sac and cord")
    has_cord = "spinal_cord" in [classes.get(c) for c in present]
    flavum = np.zeros(hu.shape, bool)
    if cl is not None:
        params = section_params(cl, grid, has_cord, levels_present)
        _paint_canal(cl, params, grid, labels, structures, names, ts, ids, has_cord, flavum)
        if cl.hiatus is not None:
            landmarks["sacrum.hiatus_apex"] = cl.hiatus
        if params.sac_end_index is not None:
            i = params.sac_end_index
            u, vv, _, _ = params.sac[max(i - 1, 0)]
            landmarks["dural_sac.end"] = cl.points[i] + u * cl.axes[i][:, 0] + vv * cl.axes[i][:, 1]
        if has_cord:
            cord_pts = np.argwhere(ts == ids["spinal_cord"])
            # the cord's lowest voxel is its tip only if the scan goes on below it
            if len(cord_pts) and cord_pts[:, 2].min() > 0:
                low = grid.world(cord_pts)
                landmarks["conus.tip"] = low[np.argmin(low[:, 2])]
        elif params.conus_index is not None and 0 < params.conus_index < len(cl.points):
            i = params.conus_index
            landmarks["conus.tip"] = cl.points[i] + params.sac[i, 0] * cl.axes[i][:, 0] + params.sac[i, 1] * cl.axes[i][:, 1]

    step(0.85, "the discs and nerve roots")
    # discs between adjacent bodies
    chain = [g for g in vertebrae if g.name in ALL_LEVELS] + ([s1_geo] if s1_geo is not None else [])
    bone_all = np.isin(ts, bone_ids) if bone_ids else np.zeros(ts.shape, bool)
    interspaces = _interspace_names()
    for up, lw in zip(chain[:-1], chain[1:]):
        if ALL_LEVELS.index(lw.name) != ALL_LEVELS.index(up.name) + 1:
            continue
        name = f"{up.name}-{lw.name}"
        _paint_disc(up, lw, grid, labels, structures, names, bone_all, interspaces.index(name), name)
        landmarks[f"{name}.disc_center"] = 0.5 * (up.inferior_endplate + lw.superior_endplate)
    # nerve roots
    if cl is not None:
        for up, lw in zip(chain[:-1], chain[1:]):
            if up.name not in by_name or ALL_LEVELS.index(lw.name) != ALL_LEVELS.index(up.name) + 1:
                continue
            name = f"{up.name}-{lw.name}"
            _paint_roots(up, lw, params, cl, grid, labels, structures, names, bone_all, interspaces.index(name),
                         landmarks)

    step(0.9, "the bones' cortex")
    # bone last: each bone's outer layer cortical, the rest cancellous
    if bone_ids:
        bone_labels = np.where(bone_all, ts, 0).astype(np.uint8)
        core = bone_all.copy()
        layers = max(1, int(round(CORTEX_MM / v)))
        for _ in range(layers):
            keep = core.copy()
            for axis in range(3):
                for shift in (1, -1):
                    nb_lab = np.roll(bone_labels, shift, axis=axis)
                    nb_core = np.roll(core, shift, axis=axis)
                    keep &= (nb_lab == bone_labels) & nb_core
            core = keep
        labels[bone_all] = tid("cortical_bone")
        labels[core] = tid("cancellous_bone")

    step(0.97, "the landmarks")
    # landmarks that read the final labels
    if cl is not None:
        for pair in sorted(set(p for p in params.flavum_pair if p)):
            upper, lower = pair.split("-")
            if upper not in by_name:
                continue
            centre = _interlaminar_centre(pair, cl, params, grid, labels, by_name[upper], spine_bone)
            if centre is None:
                continue
            landmarks[f"{pair}.interlaminar_center"] = centre
            landmarks[f"{pair}.epidural_target"] = _epidural_target(centre, by_name[upper].axes[:, 1], grid, labels)
    for side in ("left", "right"):
        cid = ids[f"hip_{side}"]
        if cid in present:
            p = grid.world(np.argwhere(ts[objects[cid - 1]] == cid) + [s.start for s in objects[cid - 1]])
            top = p[:, 2] >= p[:, 2].max() - 1.0
            landmarks[f"iliac_crest_{side}_top"] = p[top].mean(axis=0)
    levels = tuple(lv for lv in ALL_LEVELS if lv in levels_present)
    # a vertebra cut by the scan's edge is not covered: its landmarks would be wrong, so none are kept
    landmarks = {k: p for k, p in landmarks.items() if _landmark_covered(k, levels)}
    normals = {k: n for k, n in normals.items() if k in levels}
    return Derived(labels, structures, names, {k: np.asarray(x, float) for k, x in landmarks.items()},
                   normals, levels, skin_sdf_dmm)


def _landmark_covered(name: str, levels: tuple[str, ...]) -> bool:
    head = name.split(".")[0]
    if "-" in head:
        return all(lv in levels for lv in head.split("-"))
    if head in ALL_LEVELS:
        return head in levels
    if head == "sacrum":
        return "S1" in levels
    return True


def _interspace_names() -> list[str]:
    return [f"{a}-{b}" for a, b in zip(ALL_LEVELS[:-1], ALL_LEVELS[1:])]


def _whole(geo: VertebraGeometry, ts: np.ndarray, cid: int, objects) -> bool:
    """A vertebra counts as covered when the scan holds it whole: its mask does not reach the
    scan's first or last axial slice."""
    sl = objects[cid - 1]
    return sl[2].start > 0 and sl[2].stop < ts.shape[2]


def _roi_samples(cl: Centreline, grid: Grid, reach: float):
    """Voxels near the centreline, their nearest centreline sample and section coordinates."""
    lo = cl.points.min(axis=0) - reach
    hi = cl.points.max(axis=0) + reach
    i0 = np.clip(np.floor((lo - grid.lo) / grid.voxel).astype(int), 0, np.array(grid.shape) - 1)
    i1 = np.clip(np.ceil((hi - grid.lo) / grid.voxel).astype(int) + 1, 0, np.array(grid.shape))
    sub = tuple(int(n) for n in (i1 - i0))
    if min(sub) <= 0:
        return None
    near = np.zeros(sub, bool)
    idx = np.rint((cl.points - grid.lo) / grid.voxel).astype(int) - i0
    ok = np.all((idx >= 0) & (idx < np.array(sub)), axis=1)
    near[tuple(idx[ok].T)] = True
    dist = ndimage.distance_transform_edt(~near, sampling=grid.voxel)
    vox = np.argwhere(dist <= reach) + i0
    world = grid.world(vox)
    tree = cKDTree(cl.points)
    _, k = tree.query(world, workers=-1)
    rel = world - cl.points[k]
    ax = cl.axes[k]
    u = np.einsum("ni,ni->n", rel, ax[:, :, 0])
    vv = np.einsum("ni,ni->n", rel, ax[:, :, 1])
    w = np.einsum("ni,ni->n", rel, ax[:, :, 2])
    # beyond either end of the centreline nothing is canal
    valid = ~(((k == 0) & (w > 0.5 * cl.step)) | ((k == len(cl.points) - 1) & (w < -0.5 * cl.step)))
    return vox[valid], k[valid], u[valid], vv[valid]


def _paint_canal(cl: Centreline, params: SectionParams, grid: Grid, labels, structures, names, ts, ids,
                 has_cord: bool, flavum_out: np.ndarray) -> None:
    roi = _roi_samples(cl, grid, cl.half)
    if roi is None:
        return
    vox, k, u, v = roi
    sstep = cl.sstep
    canal = ndimage.map_coordinates(cl.sdf, [k.astype(float), (u + cl.half) / sstep, (v + cl.half) / sstep],
                                    order=1, mode="nearest")
    s = params.sac[k]
    sac = np.where(s[:, 2] > 0, _ellipse_sdf(u - s[:, 0], v - s[:, 1], s[:, 2], s[:, 3]), 99.0)
    sac = np.maximum(sac, canal + 1.0)
    c = params.cord[k]
    cord = np.where(c[:, 2] > 0, _ellipse_sdf(u - c[:, 0], v - c[:, 1], c[:, 2], c[:, 3]), 99.0)
    q = params.cauda[k]
    cauda = np.where(q[:, 2] > 0, _ellipse_sdf(u - q[:, 0], v - q[:, 1], q[:, 2], q[:, 3]), 99.0)
    ii, jj, kk = vox.T
    in_canal = canal < 0
    labels[ii[in_canal], jj[in_canal], kk[in_canal]] = tid("epidural_fat")
    structures[ii[in_canal], jj[in_canal], kk[in_canal]] = EPIDURAL_ID
    names[EPIDURAL_ID] = ("epidural_space", "neural")
    shell = max(DURA_MM, grid.voxel)
    in_sac = sac < 0
    labels[ii[in_sac], jj[in_sac], kk[in_sac]] = tid("csf")
    wall = in_sac & (sac > -shell)
    labels[ii[wall], jj[wall], kk[wall]] = tid("dura")
    structures[ii[in_sac], jj[in_sac], kk[in_sac]] = SAC_ID
    names[SAC_ID] = ("dural_sac", "neural")
    in_cauda = (cauda < 0) & in_sac & ~wall
    labels[ii[in_cauda], jj[in_cauda], kk[in_cauda]] = tid("cauda_equina")
    structures[ii[in_cauda], jj[in_cauda], kk[in_cauda]] = CAUDA_ID
    if in_cauda.any():
        names[CAUDA_ID] = ("cauda_equina", "neural")
    if has_cord:
        m = ts == ids["spinal_cord"]
        labels[m] = tid("spinal_cord")
    else:
        in_cord = (cord < 0) & in_sac & ~wall
        labels[ii[in_cord], jj[in_cord], kk[in_cord]] = tid("spinal_cord")
        structures[ii[in_cord], jj[in_cord], kk[in_cord]] = ids["spinal_cord"]
        if in_cord.any():
            names[ids["spinal_cord"]] = ("spinal_cord", "neural")
    # ligamentum flavum: a band behind the canal between laminae (bone overrides it later)
    pair = np.array([p if p else "" for p in params.flavum_pair])[k]
    depth = np.maximum(params.v_front[k] - params.v_back[k], 4.0)
    band = (canal > 0) & (canal <= FLAVUM_MM) & (pair != "")
    band &= v < params.v_back[k] + 0.33 * depth
    band &= np.abs(u - params.uc[k]) <= 0.5 * params.width[k] + 2.0
    band &= ts[ii, jj, kk] == 0
    interspaces = _interspace_names()
    for name in np.unique(pair[band]):
        if name not in interspaces:
            continue
        sel = band & (pair == name)
        sid = FLAVUM_BASE + interspaces.index(name)
        labels[ii[sel], jj[sel], kk[sel]] = tid("ligamentum_flavum")
        structures[ii[sel], jj[sel], kk[sel]] = sid
        names[sid] = (f"{name}.ligamentum_flavum", "ligament")
        flavum_out[ii[sel], jj[sel], kk[sel]] = True


def _paint_disc(up: VertebraGeometry, lw: VertebraGeometry, grid: Grid, labels, structures, names, bone,
                index: int, name: str) -> None:
    n = _unit(up.axes[:, 2] + lw.axes[:, 2])
    ax = frame(n, up.axes[:, 0])
    centre = 0.5 * (up.inferior_endplate + lw.superior_endplate)
    # cross-sections of the facing ends of the bodies
    foot = []
    for g, lo_h, hi_h, ref in ((up, 0.0, 4.0, up.inferior_endplate), (lw, -4.0, 0.0, lw.superior_endplate)):
        if len(g.body_points) == 0:
            continue
        h = (g.body_points - ref) @ g.axes[:, 2]
        foot.append(g.body_points[(h >= lo_h) & (h <= hi_h)])
    pts = np.concatenate(foot) if foot else np.zeros((0, 3))
    if len(pts) < 10:
        return
    step = grid.voxel
    half = 40.0
    coords = np.arange(-half, half + 1e-9, step)
    uv = (pts - centre) @ ax[:, :2]
    ij = np.rint((uv + half) / step).astype(int)
    ok = np.all((ij >= 0) & (ij < len(coords)), axis=1)
    fp = np.zeros((len(coords), len(coords)), bool)
    fp[ij[ok, 0], ij[ok, 1]] = True
    fp = ndimage.binary_closing(fp, iterations=2)
    fp = ndimage.binary_fill_holes(fp)
    fp = _largest_component(fp)
    fsdf = _sdf2d(fp, step)
    w_lo = (lw.superior_endplate - centre) @ n - 0.5 * step
    w_hi = (up.inferior_endplate - centre) @ n + 0.5 * step
    if w_hi <= w_lo:
        return
    corners = np.array([centre + a * ax[:, 0] + b * ax[:, 1] + c * n for a in (-half, half) for b in (-half, half)
                        for c in (w_lo - 3, w_hi + 3)])
    i0 = np.clip(grid.index(corners.min(axis=0)), 0, np.array(grid.shape) - 1)
    i1 = np.clip(grid.index(corners.max(axis=0)) + 1, 0, np.array(grid.shape))
    vox = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(i0, i1)], indexing="ij"), -1).reshape(-1, 3)
    rel = grid.world(vox) - centre
    w = rel @ n
    uvv = rel @ ax[:, :2]
    d2 = ndimage.map_coordinates(fsdf, [(uvv[:, 0] + half) / step, (uvv[:, 1] + half) / step], order=1, cval=99.0)
    sel = (w >= w_lo) & (w <= w_hi) & (d2 < 0)
    sel &= ~bone[vox[:, 0], vox[:, 1], vox[:, 2]]
    current = labels[vox[:, 0], vox[:, 1], vox[:, 2]]
    sel &= ~np.isin(current, [tid("csf"), tid("dura"), tid("cauda_equina"), tid("spinal_cord")])
    if not sel.any():
        return
    inner = fsdf[fp].min() if fp.any() else -10.0
    nucleus = sel & (d2 < 0.45 * inner) & (np.abs(w - 0.5 * (w_lo + w_hi)) < 0.3 * (w_hi - w_lo))
    s = vox[sel]
    labels[s[:, 0], s[:, 1], s[:, 2]] = tid("disc_annulus")
    structures[s[:, 0], s[:, 1], s[:, 2]] = DISC_BASE + index
    names[DISC_BASE + index] = (f"{name}.disc", "disc")
    s = vox[nucleus]
    labels[s[:, 0], s[:, 1], s[:, 2]] = tid("disc_nucleus")
    if len(s):
        structures[s[:, 0], s[:, 1], s[:, 2]] = NUCLEUS_BASE + index
        names[NUCLEUS_BASE + index] = (f"{name}.nucleus", "disc")


def _paint_roots(up: VertebraGeometry, lw: VertebraGeometry, params: SectionParams, cl: Centreline, grid: Grid,
                 labels, structures, names, bone, index: int, landmarks) -> None:
    """The exiting root of each side under the upper pedicle (placed as the phantom places it)."""
    hd = -up.canal_front_y
    half_height = 0.5 * float((up.superior_endplate - up.inferior_endplate) @ up.axes[:, 2])
    k = int(np.argmin(np.linalg.norm(cl.points - up.centre, axis=1)))
    sac_rx = float(params.sac[k, 2]) if params.sac[k, 2] > 0 else 0.36 * up.canal_width
    root = root_name(up.name, lw.name)
    for side, side_name in ((1, "right"), (-1, "left")):
        ped = up.landmarks.get(f"{up.name}.pedicle_{side_name}_center")
        if ped is None:
            continue
        pl = up.to_local(ped)
        x_ped = abs(float(pl[0]))
        ped_z = float(pl[2])
        if up.region == "cervical":
            z_f = -half_height - 1.0
            a = [side * 0.8 * sac_rx, -hd - 3.0, z_f + 1.0]
            b = [side * (x_ped + 1.0), -hd - 1.0, z_f]
            c = [side * (x_ped + 14.0), -hd + 5.0, z_f - 6.0]
            g = [side * (x_ped + 2.5), -hd - 0.5, z_f]
            radii, r_root = (2.6, 2.4, 3.0), 1.8
            foramen = [side * (x_ped + 1.0), -hd - 1.0, -half_height - 1.0]
        else:
            below = ped_z - 0.5 * up.pedicle_height - 4.5
            a = [side * 0.8 * sac_rx, -hd - 4.0, ped_z + 1.0]
            b = [side * (x_ped - 2.0), -hd - 3.0, below]
            c = ([side * (x_ped + 25.0), -hd + 2.0, below - 6.0] if up.region == "thoracic"
                 else [side * (x_ped + 20.0), -hd + 8.0, below - 18.0])
            g = [side * x_ped, -hd - 2.5, below - 1.5]
            radii = (3.4, 3.2, 4.2) if up.region == "lumbar" else (2.8, 2.6, 3.4)
            r_root = 2.2 if up.region == "lumbar" else 1.8
            foramen = [side * (0.5 * up.canal_width + 0.5 * up.pedicle_width), -hd - 2.0,
                       ped_z - 0.5 * up.pedicle_height - 6.0]
        A, B, C, Gc = (up.to_world(p) for p in (a, b, c, g))
        landmarks[f"{up.name}-{lw.name}.foramen_{side_name}_center"] = up.to_world(foramen)
        pts = np.stack([A, B, C, Gc])
        lo = pts.min(axis=0) - 6.0
        hi = pts.max(axis=0) + 6.0
        i0 = np.clip(grid.index(lo), 0, np.array(grid.shape) - 1)
        i1 = np.clip(grid.index(hi) + 1, 0, np.array(grid.shape))
        if np.any(i1 <= i0):
            continue
        vox = np.stack(np.meshgrid(*[np.arange(p, q) for p, q in zip(i0, i1)], indexing="ij"), -1).reshape(-1, 3)
        w = grid.world(vox)
        d = sdf.union(sdf.capsule(w, A, B, r_root), sdf.capsule(w, B, C, r_root + 0.2),
                      sdf.ellipsoid(w, Gc, np.array(radii)), k_mm=2.0)
        sel = (d < 0) & ~bone[vox[:, 0], vox[:, 1], vox[:, 2]]
        s = vox[sel]
        if not len(s):
            continue
        sid = ROOT_BASE + 2 * index + (0 if side > 0 else 1)
        labels[s[:, 0], s[:, 1], s[:, 2]] = tid("nerve_root")
        structures[s[:, 0], s[:, 1], s[:, 2]] = sid
        names[sid] = (f"{root}.nerve_root_{side_name}", "neural")


def _interlaminar_centre(pair: str, cl: Centreline, params: SectionParams, grid: Grid, labels, upper: VertebraGeometry,
                         spine_bone) -> np.ndarray | None:
    idx = [i for i, p in enumerate(params.flavum_pair) if p == pair]
    if not idx:
        return None
    # no bone behind the canal's posterior wall in the midline: the interlaminar window
    open_ = []
    for i in idx:
        back = cl.points[i] + params.uc[i] * cl.axes[i][:, 0] + params.v_back[i] * cl.axes[i][:, 1]
        t = np.arange(0.5, FLAVUM_MM + 1.0, 0.25)
        behind = back[None] - t[:, None] * cl.axes[i][:, 1]
        open_.append(not grid.lookup(spine_bone, behind, outside=False).any())
    open_ = np.array(open_)
    if not open_.any():
        return None
    # the longest run of open samples
    best, best_len, start = None, 0, None
    for j, o in enumerate(list(open_) + [False]):
        if o and start is None:
            start = j
        elif not o and start is not None:
            if j - start > best_len:
                best, best_len = (start, j - 1), j - start
            start = None
    def wall(i):
        return cl.points[i] + params.uc[i] * cl.axes[i][:, 0] + params.v_back[i] * cl.axes[i][:, 1]

    forward = upper.axes[:, 1]
    # the window's edges: the laminae's last and first midline points on the canal's wall, taken
    # to their back surfaces (LAMINA_MM behind); the centre lies straight in front of their middle
    a = idx[max(best[0] - 1, 0)]
    b = idx[min(best[1] + 1, len(idx) - 1)]
    gap_mid = 0.5 * (wall(a) + wall(b)) - forward * LAMINA_MM
    t = np.arange(-15.0, 25.0, 0.1)
    line = gap_mid + t[:, None] * forward
    inside = np.nonzero(grid.lookup(labels, line) == tid("ligamentum_flavum"))[0]
    if inside.size == 0:
        mid = idx[(best[0] + best[1]) // 2]
        return wall(mid) - forward * 0.5 * FLAVUM_MM
    # the middle of the first stretch of ligament along the line
    breaks = np.nonzero(np.diff(inside) > 1)[0]
    run_end = inside[breaks[0]] if breaks.size else inside[-1]
    return line[(inside[0] + run_end) // 2]


def _epidural_target(start: np.ndarray, forward: np.ndarray, grid: Grid, labels) -> np.ndarray:
    """As :func:`simulator.anatomy.landmarks.epidural_target`, on the labels."""
    def first(p, tissue, max_mm):
        t = np.arange(0.0, max_mm, 0.1)
        hits = np.nonzero(grid.lookup(labels, p + t[:, None] * forward) == tissue)[0]
        return float(t[hits[0]]) if hits.size else None

    begin = first(start, tid("epidural_fat"), 25.0)
    if begin is None:
        return start
    dura = first(start + forward * begin, tid("dura"), 15.0)
    depth = 2.0 if dura is None else 0.5 * dura
    return start + forward * (begin + depth)
