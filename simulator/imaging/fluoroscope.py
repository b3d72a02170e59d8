"""An X-ray image at a C-arm pose: anatomy once per pose, needle and contrast per frame.

The display chain turns line integrals into what a C-arm monitor shows: photon counts with quantum
noise (seeded by the image's index, so a replay gives the same image), a little detector blur,
automatic brightness from the centre of the field, log display with bone dark and air bright,
and the circular field of an image intensifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from simulator.imaging.carm import CArmPose, Projection, projection_for
from simulator.imaging.contrast import ContrastField
from simulator.imaging.overlay import Overlay, overlay_integrals
from simulator.imaging.projector import ProjectorVolume, line_integrals

#: Photons per pixel before the patient, at the chosen dose: sets the quantum noise.
PHOTONS_PER_PIXEL = 4.0e5


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
    """

    def __init__(self, mu_per_mm: np.ndarray, world_from_voxel: np.ndarray, size_px: int = 512):
        self.volume = ProjectorVolume(mu_per_mm, world_from_voxel)
        self.world_from_voxel = world_from_voxel
        self.size_px = size_px
        self._pose: CArmPose | None = None
        self._projection: Projection | None = None
        self._anatomy: np.ndarray | None = None
        self._window: tuple[float, float] | None = None
        self._contrast_key = None
        self._contrast_integrals: np.ndarray | None = None

    def anatomy_integrals(self, pose: CArmPose) -> tuple[Projection, np.ndarray]:
        """Anatomy line integrals at ``pose`` (computed once per pose)."""
        if pose != self._pose or self._anatomy is None:
            self._projection = projection_for(pose, self.size_px)
            self._anatomy = self.volume.line_integrals(self._projection)
            self._window = auto_window(self._anatomy)
            self._pose = pose
            self._contrast_key = None
        return self._projection, self._anatomy

    def render(self, pose: CArmPose, overlays: list[Overlay], contrast: ContrastField | None,
               noise_seed: tuple[int, ...]) -> XRayImage:
        """The image at ``pose`` with ``overlays`` and ``contrast``; noise seeded by ``noise_seed``."""
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
        display = display_chain(total, self._window, np.random.default_rng(list(noise_seed)))
        return XRayImage(display=display, line_integrals=total, projection=projection, pose=pose)


def auto_window(anatomy: np.ndarray) -> tuple[float, float]:
    """Automatic brightness: the range of line integrals in the central third of the field."""
    rows, cols = anatomy.shape
    rr, cc = np.ogrid[:rows, :cols]
    centre = (rr - rows / 2) ** 2 + (cc - cols / 2) ** 2 < (0.33 * min(rows, cols)) ** 2
    lo, hi = np.percentile(anatomy[centre], [1.0, 99.0])
    span = max(hi - lo, 0.5)
    return float(lo - 0.1 * span), float(hi + 0.25 * span)


def display_chain(total: np.ndarray, window: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Line integrals to monitor grey levels (uint8), with noise, blur and the circular field."""
    rows, cols = total.shape
    expected = PHOTONS_PER_PIXEL * np.exp(-np.clip(total, 0.0, 30.0))
    counts = rng.poisson(expected).astype(np.float32)
    measured = -np.log(np.maximum(counts, 0.5) / PHOTONS_PER_PIXEL)
    measured = ndimage.gaussian_filter(measured, 0.6)
    # the edge enhancement every C-arm's image processing applies (unsharp mask)
    measured = measured + 0.8 * (measured - ndimage.gaussian_filter(measured, 4.0))
    lo, hi = window
    grey = np.clip((hi - measured) / (hi - lo), 0.0, 1.0) ** 1.15
    # image-intensifier field: a circle with a soft edge and slight vignetting
    rr, cc = np.ogrid[:rows, :cols]
    radius = np.hypot((rr - (rows - 1) / 2) / (rows / 2), (cc - (cols - 1) / 2) / (cols / 2))
    vignette = 1.0 - 0.18 * radius ** 2
    edge = np.clip((0.985 - radius) / 0.02, 0.0, 1.0)
    return np.round(255.0 * grey * vignette * edge).astype(np.uint8)
