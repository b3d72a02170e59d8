"""An X-ray image at a C-arm pose: anatomy once per pose, needle and contrast per frame.

Once per pose: the anatomy's line integrals (and their bone excess), what the detector sees of
them at the exposure's kVp (:mod:`.spectrum`), the scatter and the automatic brightness. Per frame:
the needle's and the contrast's line integrals as they are at that moment, summed over the spectrum
where they are, then the display chain (:mod:`.display`: quantum noise seeded by the image's
index, so a replay gives the same image, blur, edge enhancement, bone dark and air bright, the
field of an image intensifier or a flat panel, the iris and shutters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from simulator.imaging.carm import (DETECTOR_SIZE_MM, SOURCE_TO_DETECTOR_MM, SOURCE_TO_ISOCENTRE_MM, CArmPose,
                                    Projection, projection_for)
from simulator.imaging.contrast import ContrastField
from simulator.imaging.display import PHOTONS_PER_PIXEL, display_chain, smooth_coarse
from simulator.imaging.overlay import Overlay, overlay_integrals
from simulator.imaging.projector import ProjectorVolume, window_line_integrals
from simulator.imaging.spectrum import polychromatic_anatomy, polychromatic_materials

#: Display window of a subtracted image (line integral differences): no change is mid-grey, a
#: film of contrast (~0.3-0.6) dark, as subtraction images are shown.
SUBTRACTION_WINDOW = (-0.5, 0.7)
#: Scatter-to-primary ratio at the detector, behind the C-arm's anti-scatter grid, for 20 cm of
#: water over the full field [D: without a grid a 20 cm patient gives a ratio of several; a
#: fluoroscopy grid removes most of it, leaving a few tenths, and the C-arm's processing flattens the
#: rest]. It grows with the thickness crossed (scatter is made along the path: ~ A exp(-A) for a line
#: integral A, against the primary's exp(-A)) and falls as the iris and shutters close.
SCATTER_TO_PRIMARY_20CM_WATER = 0.15
#: Line integral of 20 cm of water at 60 keV.
WATER_20CM_INTEGRAL = 0.206 * 20.0
#: The anatomy's rays are spaced no wider than this many voxels at the isocentre (see
#: :meth:`Fluoroscope.ray_stride`).
FINEST_RAY_VOXELS = 0.75


@dataclass(frozen=True)
class XRayImage:
    """One acquired image.

    Attributes
    ----------
    display : ndarray (rows, cols), uint8
        What the monitor shows (bone dark).
    line_integrals : ndarray (rows, cols), float32
        Total line integral of mu (anatomy + needle + contrast), before noise.
    projection : Projection
    pose : CArmPose
    """

    display: np.ndarray
    line_integrals: np.ndarray
    projection: Projection
    pose: CArmPose


class Fluoroscope:
    """Renders images of one anatomy volume.

    Parameters
    ----------
    mu_per_mm : ndarray
        The anatomy's attenuation volume.
    world_from_voxel : ndarray (4, 4)
    size_px : int
        Image rows and columns.
    flat_panel : bool
        A flat-panel detector (square field, no vignetting) instead of an image intensifier.
    """

    def __init__(self, mu_per_mm: np.ndarray, world_from_voxel: np.ndarray, size_px: int = 512,
                 flat_panel: bool = False):
        self.flat_panel = flat_panel
        self.volume = ProjectorVolume(mu_per_mm, world_from_voxel)
        self.world_from_voxel = world_from_voxel
        self.size_px = size_px
        self._pose: CArmPose | None = None
        self._projection: Projection | None = None
        self._anatomy: np.ndarray | None = None
        self._stride = 1
        self._coarse_anatomy: np.ndarray | None = None
        self._coarse_bone: np.ndarray | None = None
        self._seen: np.ndarray | None = None
        self._seen_kvp: float | None = None
        self._scatter_key = None
        self._scatter: np.ndarray | None = None
        self._scatter_window: tuple[float, float] | None = None
        # contrast stage id -> (the stage's array, kept so its id stays its own; its window)
        self._stage_integrals: dict[int, tuple[np.ndarray, tuple[int, int, np.ndarray] | None]] = {}

    def ray_stride(self, projection: Projection) -> int:
        """Every how many pixels (per axis) the anatomy is ray-cast: rays finer than the volume
        only resample the same voxels, so while two (or four) pixels together still span at most
        :data:`FINEST_RAY_VOXELS` of a voxel at the isocentre, one ray serves them and the rest are
        interpolated (a 512-pixel image of a 1 mm volume casts a quarter of its rays)."""
        voxel_mm = float(abs(self.world_from_voxel[0, 0]))
        at_isocentre_mm = projection.pixel_mm * SOURCE_TO_ISOCENTRE_MM / SOURCE_TO_DETECTOR_MM
        stride = 1
        while (2 * stride * at_isocentre_mm <= FINEST_RAY_VOXELS * voxel_mm
               and projection.rows % (2 * stride) == 0 and projection.cols % (2 * stride) == 0):
            stride *= 2
        return stride

    def exact_anatomy_integrals(self, projection: Projection) -> np.ndarray:
        """One ray per pixel (what ``spinesim render --raw`` writes)."""
        return self.volume.line_integrals(projection)

    def anatomy_integrals(self, pose: CArmPose) -> tuple[Projection, np.ndarray]:
        """Anatomy line integrals at ``pose`` (computed once per pose, at :meth:`ray_stride`)."""
        if pose != self._pose or self._anatomy is None:
            self._projection = projection_for(pose, self.size_px)
            stride = self.ray_stride(self._projection)
            p = self._projection
            coarse = Projection(source_mm=p.source_mm,
                                pixel00_mm=p.pixel00_mm + 0.5 * (stride - 1) * (p.row_step_mm + p.col_step_mm),
                                row_step_mm=p.row_step_mm * stride, col_step_mm=p.col_step_mm * stride,
                                rows=p.rows // stride, cols=p.cols // stride, detector_normal=p.detector_normal)
            self._coarse_anatomy, self._coarse_bone = self.volume.line_integrals(coarse, bone_excess=True)
            self._stride = stride
            self._anatomy = self._fine(self._coarse_anatomy)
            self._pose = pose
            self._seen_kvp = None
            self._stage_integrals = {}
        return self._projection, self._anatomy

    def _fine(self, coarse: np.ndarray) -> np.ndarray:
        """A per-ray image at full resolution (rays every :meth:`ray_stride` pixels, interpolated)."""
        if self._stride == 1:
            return coarse
        # grid_mode: pixel areas line up, so fine pixel r samples coarse (r - (stride-1)/2) / stride
        return ndimage.zoom(coarse, self._stride, order=1, grid_mode=True, mode="nearest").astype(np.float32)

    def _bone_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The bone-excess line integral at full-resolution pixels (interpolated between rays)."""
        k = self._stride
        where = np.stack([(rows - (k - 1) / 2.0) / k, (cols - (k - 1) / 2.0) / k])
        return ndimage.map_coordinates(self._coarse_bone, where, order=1, mode="nearest")

    def anatomy_seen(self, pose: CArmPose, kvp: float | None) -> np.ndarray:
        """What the detector sees of the anatomy alone at ``pose`` and ``kvp`` (its soft tissue and
        bone each with its own energy dependence; ``None``: the 60 keV line integrals), once per pose
        and kVp (summed over the spectrum ray by ray, then interpolated like the integrals)."""
        _, anatomy = self.anatomy_integrals(pose)
        if kvp is None:
            return anatomy
        if self._seen_kvp != kvp:
            self._seen = self._fine(polychromatic_anatomy(self._coarse_anatomy, self._coarse_bone, kvp))
            self._seen_kvp = kvp
        return self._seen

    def pixel_mm(self, pose: CArmPose) -> float:
        """Detector pixel size at ``pose``'s field of view, mm."""
        return min(DETECTOR_SIZE_MM, pose.field_of_view_mm) / self.size_px

    def central_integral(self, pose: CArmPose) -> float:
        """Mean anatomy line integral over the central tenth of the field (what the exposure
        control measures)."""
        _, anatomy = self.anatomy_integrals(pose)
        rows, cols = anatomy.shape
        r, c = max(1, rows // 20), max(1, cols // 20)
        return float(anatomy[rows // 2 - r:rows // 2 + r, cols // 2 - c:cols // 2 + c].mean())

    def material_integrals(self, pose: CArmPose, overlays: list[Overlay], contrast: ContrastField | None,
                           t_s: float | None = None):
        """Line integrals at 60 keV of what is in the beam at ``pose``, by material: ``(projection,
        anatomy, steel, iodine)``; steel (the ``overlays`` of steel) and iodine (``contrast`` as
        it is at simulated time ``t_s``, and iodine overlays) are None when there is none."""
        projection, anatomy, steel, iodine, _ = self._materials(pose, overlays, contrast, t_s)
        return projection, anatomy, steel, iodine

    def _materials(self, pose, overlays, contrast, t_s):
        """:meth:`material_integrals` and the box ``(r0, r1, c0, c1)`` holding all steel and iodine."""
        projection, anatomy = self.anatomy_integrals(pose)
        box = _Box()
        steel = [o for o in overlays if o.material == "steel"]
        iodine_overlays = [o for o in overlays if o.material == "iodine"]
        iodine = None
        if contrast is not None and not contrast.empty:
            iodine_overlays += contrast.overlays(t_s)
            for bolus in contrast.boluses:
                for (mu, w), weight in zip(bolus.stages, bolus.stage_weights(t_s), strict=True):
                    if weight <= 0.0:
                        continue
                    window = self._stage_window(mu, w, projection)
                    if window is not None:
                        r0, c0, sub = window
                        if iodine is None:
                            iodine = np.zeros_like(anatomy)
                        iodine[r0:r0 + sub.shape[0], c0:c0 + sub.shape[1]] += np.float32(weight) * sub
                        box.add(r0, r0 + sub.shape[0], c0, c0 + sub.shape[1])
        if iodine_overlays:
            drawn = overlay_integrals(iodine_overlays, projection)
            iodine = drawn if iodine is None else iodine + drawn
            box.add_overlays(iodine_overlays, projection)
        steel_integrals = None
        if steel:
            steel_integrals = overlay_integrals(steel, projection)
            box.add_overlays(steel, projection)
        return projection, anatomy, steel_integrals, iodine, box.bounds(projection)

    def _stage_window(self, mu: np.ndarray, w: np.ndarray, projection: Projection):
        """A contrast stage's line integrals over the pixels it covers (once per pose)."""
        cached = self._stage_integrals.get(id(mu))
        if cached is None or cached[0] is not mu:
            cached = (mu, window_line_integrals(mu, w, projection, step_voxels=0.7))
            self._stage_integrals[id(mu)] = cached
        return cached[1]

    def total_integrals(self, pose: CArmPose, overlays: list[Overlay], contrast: ContrastField | None,
                        t_s: float | None = None) -> tuple[Projection, np.ndarray]:
        """Line integrals at 60 keV of everything in the beam at ``pose``: anatomy, ``overlays``
        (the needle) and ``contrast`` at ``t_s``, before noise."""
        projection, anatomy, steel, iodine = self.material_integrals(pose, overlays, contrast, t_s)
        return projection, _sum_of(anatomy, steel, iodine)

    def seen_integrals(self, pose: CArmPose, overlays: list[Overlay], contrast: ContrastField | None,
                       t_s: float | None, kvp: float | None) -> tuple[Projection, np.ndarray, np.ndarray]:
        """``(projection, seen, total)``: what the detector sees as a line integral, summed over the
        spectrum at ``kvp`` with each material's energy dependence (``None``: a single 60 keV), and
        the 60 keV total."""
        projection, anatomy, steel, iodine, box = self._materials(pose, overlays, contrast, t_s)
        total = _sum_of(anatomy, steel, iodine)
        seen = total if kvp is None else polychromatic_materials(self.anatomy_seen(pose, kvp), anatomy, self._bone_at,
                                                                 steel, iodine, kvp, box)
        return projection, seen, total

    def scatter_fraction(self, pose: CArmPose, kvp: float | None, iris_fraction: float = 1.0,
                         shutter_fraction: float = 1.0) -> np.ndarray:
        """Scattered photons reaching each pixel, as a fraction of the unattenuated beam: what each
        ray's path scatters (~ A exp(-A), none through air) spread widely (over ~50 mm at the
        detector), scaled to the scatter-to-primary ratio and the open field (as the square root of
        its area: the iris's diameter, the shutters' gap). Computed once per pose: the needle and
        contrast hardly change it."""
        key = (pose, kvp, round(float(iris_fraction), 3), round(float(shutter_fraction), 3))
        if key != self._scatter_key:
            seen = self.anatomy_seen(pose, kvp)
            made = seen * np.exp(-seen)
            open_part = min(iris_fraction, 1.0) * np.sqrt(min(shutter_fraction / max(iris_fraction, 1e-3), 1.0))
            scale = SCATTER_TO_PRIMARY_20CM_WATER / WATER_20CM_INTEGRAL * open_part
            self._scatter = (scale * smooth_coarse(made, factor=16, size=5)).astype(np.float32)
            # the automatic brightness sees the anatomy through the scatter's veil
            self._scatter_window = auto_window(-np.log(np.exp(-seen) + self._scatter))
            self._scatter_key = key
        return self._scatter

    def measured_integrals(self, pose: CArmPose, overlays: list[Overlay], contrast: ContrastField | None,
                           t_s: float | None, kvp: float | None, field_mm: float = DETECTOR_SIZE_MM,
                           shutter_mm: float | None = None) -> np.ndarray:
        """What the detector measures, noiseless, as a line integral: :meth:`seen_integrals` with
        the scatter added (the mask of a subtraction run)."""
        _, seen, _ = self.seen_integrals(pose, overlays, contrast, t_s, kvp)
        slit = 1.0 if shutter_mm is None else self._iris_fraction(pose, shutter_mm)
        scatter = self.scatter_fraction(pose, kvp, self._iris_fraction(pose, field_mm), slit)
        return -np.log(np.exp(-seen) + scatter)

    @staticmethod
    def _iris_fraction(pose: CArmPose, field_mm: float) -> float:
        return min(field_mm / min(DETECTOR_SIZE_MM, pose.field_of_view_mm), 1.0)

    def render(self, pose: CArmPose, overlays: list[Overlay], contrast: ContrastField | None,
               noise_seed: tuple[int, ...], photons_per_pixel: float = PHOTONS_PER_PIXEL,
               field_mm: float = DETECTOR_SIZE_MM, subtract: np.ndarray | None = None,
               kvp: float | None = None, t_s: float | None = None, shutter_mm: float | None = None) -> XRayImage:
        """The image at ``pose`` with ``overlays`` and ``contrast``; noise seeded by ``noise_seed``
        at ``photons_per_pixel`` (unattenuated, per pixel: the exposure's dose), inside an iris of
        ``field_mm`` diameter at the detector and between shutter blades ``shutter_mm`` apart (None:
        open), with scatter. ``subtract``: a mask, as
        :meth:`measured_integrals` at the same ``kvp`` and field (digital subtraction: only what
        changed since the mask shows, dark on mid-grey). ``kvp``: the beam's spectrum (transmission
        summed over it, :mod:`.spectrum`); ``None``: a single 60 keV. ``t_s``: the simulated time
        (contrast flows and washes out)."""
        projection, seen, total = self.seen_integrals(pose, overlays, contrast, t_s, kvp)
        iris = self._iris_fraction(pose, field_mm)
        slit = 1.0 if shutter_mm is None else self._iris_fraction(pose, shutter_mm)
        scatter = self.scatter_fraction(pose, kvp, iris, slit)
        window = self._scatter_window if subtract is None else SUBTRACTION_WINDOW
        display = display_chain(seen, window, noise_seed, photons_per_pixel, iris, subtract, square=self.flat_panel,
                                scatter=scatter, shutter_fraction=slit)
        return XRayImage(display=display, line_integrals=total, projection=projection, pose=pose)


def _sum_of(anatomy: np.ndarray, *parts: np.ndarray | None) -> np.ndarray:
    total = anatomy.astype(np.float32).copy()
    for part in parts:
        if part is not None:
            total += part
    return total


class _Box:
    """The pixel box round everything drawn on top of the anatomy."""

    def __init__(self):
        self.r0 = self.c0 = 1 << 30
        self.r1 = self.c1 = -1

    def add(self, r0: int, r1: int, c0: int, c1: int) -> None:
        self.r0, self.r1 = min(self.r0, r0), max(self.r1, r1)
        self.c0, self.c1 = min(self.c0, c0), max(self.c1, c1)

    def add_overlays(self, overlays: list[Overlay], projection: Projection) -> None:
        for ov in overlays:
            rc = projection.project(ov.points_mm)
            margin = ov.radius_mm * projection.magnification_at(ov.points_mm[0]) / projection.pixel_mm + 3.0
            self.add(int(np.floor(rc[:, 0].min() - margin)), int(np.ceil(rc[:, 0].max() + margin)) + 1,
                     int(np.floor(rc[:, 1].min() - margin)), int(np.ceil(rc[:, 1].max() + margin)) + 1)

    def bounds(self, projection: Projection) -> tuple[int, int, int, int]:
        return (max(self.r0, 0), min(self.r1, projection.rows), max(self.c0, 0), min(self.c1, projection.cols))


def auto_window(anatomy: np.ndarray) -> tuple[float, float]:
    """Automatic brightness: the range of line integrals in the central third of the field."""
    rows, cols = anatomy.shape
    rr, cc = np.ogrid[:rows, :cols]
    centre = (rr - rows / 2) ** 2 + (cc - cols / 2) ** 2 < (0.33 * min(rows, cols)) ** 2
    lo, hi = np.percentile(anatomy[centre], [1.0, 99.0])
    span = max(hi - lo, 0.5)
    return float(lo - 0.1 * span), float(hi + 0.25 * span)
