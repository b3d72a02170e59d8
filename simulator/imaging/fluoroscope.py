"""An X-ray image at a C-arm pose: anatomy once per pose, needle and contrast per frame.

The display chain turns line integrals into what a C-arm monitor shows: photon counts with quantum
noise (seeded by the image's index, so a replay gives the same image), a little detector blur,
automatic brightness from the centre of the field, log display with bone dark and air bright,
and the circular field of an image intensifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from simulator.imaging.carm import (DETECTOR_SIZE_MM, SOURCE_TO_DETECTOR_MM, SOURCE_TO_ISOCENTRE_MM, CArmPose,
                                    Projection, projection_for)
from simulator.imaging.contrast import ContrastField
from simulator.imaging.overlay import Overlay, overlay_integrals
from simulator.imaging.projector import ProjectorVolume, line_integrals
from simulator.imaging.spectrum import polychromatic

#: Photons per pixel before the patient when no exposure is given (about a single acquisition's):
#: sets the quantum noise. The simulation passes each exposure's own (see :mod:`.dose`).
PHOTONS_PER_PIXEL = 4.0e5


#: Display window of a subtracted image (line integral differences): no change is mid-grey, a
#: film of contrast (~0.3-0.6) dark, as subtraction images are shown.
SUBTRACTION_WINDOW = (-0.5, 0.7)
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
        self._window: tuple[float, float] | None = None
        self._contrast_key = None
        self._contrast_integrals: np.ndarray | None = None

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
            if stride == 1:
                self._anatomy = self.volume.line_integrals(self._projection)
            else:
                p = self._projection
                coarse = Projection(source_mm=p.source_mm,
                                    pixel00_mm=p.pixel00_mm + 0.5 * (stride - 1) * (p.row_step_mm + p.col_step_mm),
                                    row_step_mm=p.row_step_mm * stride, col_step_mm=p.col_step_mm * stride,
                                    rows=p.rows // stride, cols=p.cols // stride, detector_normal=p.detector_normal)
                # grid_mode: pixel areas line up, so fine pixel r samples coarse (r - (stride-1)/2) / stride
                self._anatomy = ndimage.zoom(self.volume.line_integrals(coarse), stride, order=1,
                                             grid_mode=True, mode="nearest").astype(np.float32)
            self._window = auto_window(self._anatomy)
            self._pose = pose
            self._contrast_key = None
        return self._projection, self._anatomy

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

    def total_integrals(self, pose: CArmPose, overlays: list[Overlay], contrast: ContrastField | None
                        ) -> tuple[Projection, np.ndarray]:
        """Line integrals of everything in the beam at ``pose``: anatomy, ``overlays`` (the
        needle) and ``contrast``, before noise."""
        projection, anatomy = self.anatomy_integrals(pose)
        total = anatomy.astype(np.float32).copy()
        if overlays:
            total += overlay_integrals(overlays, projection)
        if contrast is not None and not contrast.empty:
            key = (id(contrast.mu_per_mm), contrast.total_ml)
            if key != self._contrast_key:
                self._contrast_integrals = line_integrals(contrast.mu_per_mm, contrast.world_from_voxel,
                                                          projection, step_voxels=0.7)
                self._contrast_key = key
            total += self._contrast_integrals
        return projection, total

    def render(self, pose: CArmPose, overlays: list[Overlay], contrast: ContrastField | None,
               noise_seed: tuple[int, ...], photons_per_pixel: float = PHOTONS_PER_PIXEL,
               field_mm: float = DETECTOR_SIZE_MM, subtract: np.ndarray | None = None,
               kvp: float | None = None) -> XRayImage:
        """The image at ``pose`` with ``overlays`` and ``contrast``; noise seeded by ``noise_seed``
        at ``photons_per_pixel`` (unattenuated, per pixel: the exposure's dose), inside an iris of
        ``field_mm`` diameter at the detector. ``subtract``: a mask's line integrals (digital
        subtraction: only what changed since the mask shows, dark on mid-grey). ``kvp``: the beam's
        spectrum (transmission summed over it, :mod:`.spectrum`); ``None``: a single 60 keV."""
        projection, total = self.total_integrals(pose, overlays, contrast)
        window = self._window if subtract is None else SUBTRACTION_WINDOW
        seen = total
        if kvp is not None:
            seen = polychromatic(total, kvp)
            if subtract is not None:
                subtract = polychromatic(subtract, kvp)
            else:
                window = tuple(float(v) for v in polychromatic(np.array(window), kvp))
        field_of_view = min(DETECTOR_SIZE_MM, pose.field_of_view_mm)
        display = display_chain(seen, window, np.random.default_rng(list(noise_seed)), photons_per_pixel,
                                min(field_mm / field_of_view, 1.0), subtract, square=self.flat_panel)
        return XRayImage(display=display, line_integrals=total, projection=projection, pose=pose)


def auto_window(anatomy: np.ndarray) -> tuple[float, float]:
    """Automatic brightness: the range of line integrals in the central third of the field."""
    rows, cols = anatomy.shape
    rr, cc = np.ogrid[:rows, :cols]
    centre = (rr - rows / 2) ** 2 + (cc - cols / 2) ** 2 < (0.33 * min(rows, cols)) ** 2
    lo, hi = np.percentile(anatomy[centre], [1.0, 99.0])
    span = max(hi - lo, 0.5)
    return float(lo - 0.1 * span), float(hi + 0.25 * span)


@lru_cache(maxsize=16)
def _field_mask(rows: int, cols: int, iris_fraction: float, square: bool = False) -> np.ndarray:
    """The image intensifier's circular field with a soft edge and slight vignetting, inside the
    iris; a flat panel's square field, even, inside the iris (float32, 0-255 scale folded in)."""
    rr, cc = np.ogrid[:rows, :cols]
    radius = np.hypot((rr - (rows - 1) / 2) / (rows / 2), (cc - (cols - 1) / 2) / (cols / 2))
    if square:
        edge = np.ones((rows, cols)) if iris_fraction >= 1.0 else np.clip((iris_fraction - radius) / 0.02, 0.0, 1.0)
        return (255.0 * edge).astype(np.float32)
    vignette = 1.0 - 0.18 * radius ** 2
    edge = np.clip((min(0.985, iris_fraction) - radius) / 0.02, 0.0, 1.0)
    return (255.0 * vignette * edge).astype(np.float32)


#: Grey-level response (gamma 1.15) as a table over [0, 1] (a power per pixel costs more than a
#: lookup).
_GAMMA_LUT = np.linspace(0.0, 1.0, 4097, dtype=np.float32) ** 1.15
_DETECTOR_BLUR = np.array([0.17, 0.66, 0.17], np.float32)  # ~ a Gaussian of 0.6 px


def _smooth_coarse(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """A wide blur (~4 px) computed on a 4x coarser grid and expanded back: the low-pass of the
    unsharp mask, at a sixteenth of the cost."""
    rows, cols = image.shape
    r, c = rows - rows % factor, cols - cols % factor
    coarse = image[:r, :c].reshape(r // factor, factor, c // factor, factor).mean(axis=(1, 3))
    coarse = ndimage.uniform_filter(coarse, 3, mode="nearest")
    wide = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
    if (r, c) != (rows, cols):
        wide = np.pad(wide, ((0, rows - r), (0, cols - c)), mode="edge")
    return wide


def display_chain(total: np.ndarray, window: tuple[float, float], rng: np.random.Generator,
                  photons_per_pixel: float = PHOTONS_PER_PIXEL, iris_fraction: float = 1.0,
                  subtract: np.ndarray | None = None, square: bool = False) -> np.ndarray:
    """Line integrals to monitor grey levels (uint8), with quantum noise at ``photons_per_pixel``
    (unattenuated), blur, the circular field and the iris (``iris_fraction`` of the field's
    diameter; nothing reaches the detector outside it).

    The counts are Poisson in distribution; they are drawn as its normal approximation (exact to
    well under a grey level at the tens of photons and more a pixel gets here, and five times
    cheaper).
    """
    rows, cols = total.shape
    expected = np.float32(photons_per_pixel) * np.exp(-np.clip(total, 0.0, 30.0, dtype=np.float32))
    counts = expected + np.sqrt(expected) * rng.standard_normal((rows, cols), dtype=np.float32)
    measured = -np.log(np.maximum(counts, np.float32(0.5)) / np.float32(photons_per_pixel))
    if subtract is not None:
        measured = measured - subtract  # the mask is an average of frames: its own noise is small
    measured = ndimage.correlate1d(ndimage.correlate1d(measured, _DETECTOR_BLUR, 0), _DETECTOR_BLUR, 1)
    # the edge enhancement every C-arm's image processing applies (unsharp mask)
    measured = measured + np.float32(0.8) * (measured - _smooth_coarse(measured))
    lo, hi = window
    index = np.clip((hi - measured) * np.float32(4096.0 / (hi - lo)), 0.0, 4096.0).astype(np.int32)
    mask = _field_mask(rows, cols, round(float(iris_fraction), 4), square)
    return np.round(_GAMMA_LUT[index] * mask).astype(np.uint8)
