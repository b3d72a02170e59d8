"""C-arm geometry: where the X-ray source and detector are, and how world points project.

Angles are named in patient terms (reference section 0), whatever the patient's position:

- ``oblique_deg``: rotation of the C-arm about the patient's long axis; **positive moves the
  detector towards the patient's left**. 0 is AP (for a prone patient: tube under the table,
  detector over the back, beam running anterior to posterior); +90 is a lateral with the detector
  on the patient's left.
- ``tilt_deg``: cranio-caudal angulation; **positive tilts the detector towards the head**.

The image is shown as seen from the detector looking at the source: for a prone AP, as if looking
down at the patient's back with the head at the top of the image and the patient's right on the
image's right.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from simulator.geometry import frames

#: Source-to-image distance, mm (DeepDRR MobileCArm, after Siemens Cios Fusion; reference 4.5).
SOURCE_TO_DETECTOR_MM = 1020.0
#: Source-to-isocentre distance, mm (same source).
SOURCE_TO_ISOCENTRE_MM = 530.0
#: Detector side, mm: a 30 cm flat panel / 12-inch image intensifier field.
DETECTOR_SIZE_MM = 300.0
#: The fields of view a C-arm offers: full, and two magnification modes (reference 4.5: 12-inch
#: field, 9-inch and 6-inch magnification), mm.
FIELDS_OF_VIEW_MM = (300.0, 230.0, 170.0)


@dataclass(frozen=True)
class CArmPose:
    """Where the C-arm points.

    Attributes
    ----------
    oblique_deg : float
        Positive: detector towards the patient's left.
    tilt_deg : float
        Positive: detector towards the patient's head.
    isocentre_mm : tuple of float
        World point the central ray passes through (moved by moving the table).
    field_of_view_mm : float
        The detector's field in use: 300 mm, or a magnification mode (230, 170 mm) that spreads a
        smaller field over the same pixels.
    """

    oblique_deg: float = 0.0
    tilt_deg: float = 0.0
    isocentre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    field_of_view_mm: float = 300.0

    def moved(self, **changes) -> "CArmPose":
        return replace(self, **changes)


@dataclass(frozen=True)
class Projection:
    """A cone-beam projection: the source and the detector's pixel grid, in world mm.

    Attributes
    ----------
    source_mm : ndarray (3,)
    pixel00_mm : ndarray (3,)
        Centre of pixel row 0, column 0 (top-left of the displayed image).
    row_step_mm, col_step_mm : ndarray (3,)
        World displacement from one pixel to the next down a column / along a row.
    rows, cols : int
    """

    source_mm: np.ndarray
    pixel00_mm: np.ndarray
    row_step_mm: np.ndarray
    col_step_mm: np.ndarray
    rows: int
    cols: int
    detector_normal: np.ndarray = field(repr=False)

    @property
    def pixel_mm(self) -> float:
        return float(np.linalg.norm(self.col_step_mm))

    def pixel_centres(self) -> np.ndarray:
        """World positions of all pixel centres, shape (rows, cols, 3)."""
        r = np.arange(self.rows)[:, None, None]
        c = np.arange(self.cols)[None, :, None]
        return self.pixel00_mm + r * self.row_step_mm + c * self.col_step_mm

    def project(self, points_mm: np.ndarray) -> np.ndarray:
        """Image coordinates ``(row, col)`` (fractional pixels) of world points, shape (..., 2)."""
        p = np.asarray(points_mm, float)
        s = self.source_mm
        n = self.detector_normal
        plane_offset = (self.pixel00_mm - s) @ n
        ray = p - s
        t = plane_offset / (ray @ n)
        hit = s + t[..., None] * ray
        rel = hit - self.pixel00_mm
        row = rel @ self.row_step_mm / float(self.row_step_mm @ self.row_step_mm)
        col = rel @ self.col_step_mm / float(self.col_step_mm @ self.col_step_mm)
        return np.stack([row, col], axis=-1)

    def magnification_at(self, point_mm) -> float:
        """Geometric magnification of an object at ``point_mm``."""
        n = self.detector_normal
        sid = float((self.pixel00_mm - self.source_mm) @ n)
        sod = float((np.asarray(point_mm, float) - self.source_mm) @ n)
        return sid / sod

    def as_dict(self) -> dict:
        return {
            "source_mm": [float(v) for v in self.source_mm],
            "pixel00_mm": [float(v) for v in self.pixel00_mm],
            "row_step_mm": [float(v) for v in self.row_step_mm],
            "col_step_mm": [float(v) for v in self.col_step_mm],
            "rows": int(self.rows),
            "cols": int(self.cols),
        }


def detector_direction(oblique_deg: float, tilt_deg: float) -> np.ndarray:
    """Unit vector from the isocentre towards the detector centre (world)."""
    a = np.radians(oblique_deg)
    b = np.radians(tilt_deg)
    # oblique: from posterior (-y) towards the patient's left (-x); tilt: towards the head (+z)
    horizontal = np.array([-np.sin(a), -np.cos(a), 0.0])
    return np.cos(b) * horizontal + np.sin(b) * frames.SUPERIOR


def projection_for(pose: CArmPose, size_px: int = 512,
                   source_to_detector_mm: float = SOURCE_TO_DETECTOR_MM,
                   source_to_isocentre_mm: float = SOURCE_TO_ISOCENTRE_MM,
                   detector_size_mm: float = DETECTOR_SIZE_MM) -> Projection:
    """The projection of a square detector of ``size_px`` pixels at ``pose``."""
    d = detector_direction(pose.oblique_deg, pose.tilt_deg)
    iso = np.asarray(pose.isocentre_mm, float)
    detector_size_mm = min(detector_size_mm, float(pose.field_of_view_mm))
    source = iso - d * source_to_isocentre_mm
    centre = source + d * source_to_detector_mm
    # image up: the patient's head projected onto the detector (for a pure cranio-caudal view,
    # where the head is along the beam, fall back to the patient's back)
    up = frames.SUPERIOR - (frames.SUPERIOR @ d) * d
    if np.linalg.norm(up) < 1e-6:
        up = frames.POSTERIOR - (frames.POSTERIOR @ d) * d
    up = frames.unit(up)
    looking = -d  # the viewer at the detector looks towards the source
    right = np.cross(looking, up)
    pixel = detector_size_mm / size_px
    half = 0.5 * detector_size_mm - 0.5 * pixel
    pixel00 = centre + up * half - right * half
    return Projection(source_mm=source, pixel00_mm=pixel00, row_step_mm=-up * pixel,
                      col_step_mm=right * pixel, rows=size_px, cols=size_px, detector_normal=d)
