"""The world frame and rigid transforms.

World frame (stated once, used everywhere): the **patient frame, RAS, in millimetres**.
``+x`` points to the patient's right, ``+y`` anterior, ``+z`` superior (cranial), like nibabel and
3D Slicer. The origin is the centre of the S1 superior endplate. The patient's position on the
table (prone, supine, ...) belongs to the scenario, not to the anatomy: for a prone patient the back
(``-y``) faces the ceiling and the X-ray tube sits under the table on the ``+y`` side.

Transforms are 4x4 homogeneous matrices named ``<to>_from_<from>`` and compose right to left:
``world_from_tip = world_from_needle @ needle_from_tip``.
"""

from __future__ import annotations

import numpy as np

RIGHT = np.array([1.0, 0.0, 0.0])
ANTERIOR = np.array([0.0, 1.0, 0.0])
SUPERIOR = np.array([0.0, 0.0, 1.0])
LEFT = -RIGHT
POSTERIOR = -ANTERIOR
INFERIOR = -SUPERIOR


def rotation_x(angle_deg: float) -> np.ndarray:
    """3x3 rotation about +x (right). Positive tips +z towards -y (posterior): extension."""
    a = np.radians(angle_deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])






def rigid(rotation: np.ndarray, translation) -> np.ndarray:
    """4x4 transform from a 3x3 rotation and a translation (mm)."""
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = np.asarray(translation, float)
    return m


def invert_rigid(m: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    r = m[:3, :3]
    out = np.eye(4)
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ m[:3, 3]
    return out


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to points of shape (..., 3)."""
    p = np.asarray(points, float)
    return p @ m[:3, :3].T + m[:3, 3]


def apply_vector(m: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Apply the linear part of a 4x4 transform to directions of shape (..., 3)."""
    return np.asarray(vectors, float) @ m[:3, :3].T


def unit(v) -> np.ndarray:
    """``v`` scaled to unit length (raises on a zero vector)."""
    v = np.asarray(v, float)
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n == 0.0:
        raise ValueError("direction must be a finite non-zero vector")
    return v / n


def angle_between_deg(a, b) -> float:
    """Angle between two directions, degrees."""
    c = float(np.clip(np.dot(unit(a), unit(b)), -1.0, 1.0))
    return float(np.degrees(np.arccos(c)))
