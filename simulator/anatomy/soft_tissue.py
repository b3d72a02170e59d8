"""The torso around the spine: skin, subcutaneous fat, fascia, muscle, viscera and bowel gas.

These layers are not separate structures but one labelling function of depth below the skin and
position relative to the spine: every point inside the body that no deeper structure claims is
skin, fat, fascia, muscle or viscera by where it lies. The posterior skin follows the spinous tips
with a soft-tissue cover set by BMI, so the skin-to-epidural depth follows Ravi 2011
(depth = 17.80 + 0.978 x BMI mm, with seeded scatter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.anatomy import torso_kernel
from simulator.anatomy.tissues import tid

SKIN_MM = 2.5
FASCIA_MM = 1.6
#: Room between the fascia and the spinous tips for the supraspinous ligament, mm.
SUPRASPINOUS_ROOM_MM = 3.0


def ravi_skin_to_epidural_mm(bmi: float) -> float:
    """Lumbar skin-to-epidural depth predicted from BMI (Ravi 2011, n=120, ages 18-70)."""
    return 17.80 + 0.978 * bmi


@dataclass
class SpineProfile:
    """Sagittal profiles of the body sampled along world z (used to place the soft tissues).

    All arrays are sampled at ``z_mm`` (increasing).
    """

    z_mm: np.ndarray
    midline_back_y_mm: np.ndarray  # most posterior bone in the midline (spinous tips, sacral crest)
    body_back_y_mm: np.ndarray  # posterior wall of the vertebral bodies / sacrum
    body_front_y_mm: np.ndarray
    body_half_width_mm: np.ndarray
    transverse_y_mm: np.ndarray  # coronal plane of the transverse processes
    psoas: np.ndarray  # 0..1: how developed the psoas is at this height
    fat_mm: np.ndarray  # subcutaneous fat over the spinous tips
    nuchal_mm: np.ndarray  # ligamentum nuchae over the cervical spinous tips (0 below the neck)
    half_width_mm: np.ndarray  # half the body's width (pelvis, waist, chest, shoulders, neck)
    depth_mm: np.ndarray  # the body's anteroposterior depth
    body_centre_x_mm: np.ndarray | None = None  # left-right centre of the bodies (a scoliosis moves it)

    def at(self, name: str, z: np.ndarray) -> np.ndarray:
        return np.interp(z, self.z_mm, getattr(self, name))


@dataclass
class Torso:
    """The body outline and its layers for one patient.

    The posterior skin follows the spinous tips (a height field: the tips' line moved back by the
    soft-tissue cover, bulging over the paraspinal muscles and curving forwards to the flanks); an
    ellipse per height shapes the flanks and the front. Under the skin lie fat (thinnest over the
    spine, thicker on the flanks and belly), the thoracolumbar fascia over the posterior muscles
    (thickened in the midline, where its fibres stand in for the supraspinous ligament below L4),
    the ligamentum nuchae in the neck's midline, the paraspinal muscles and psoas, the body wall
    muscles, bowel gas, and viscera. The formulas run compiled (:mod:`torso_kernel`).
    """

    profile: SpineProfile
    gas_pockets: list[tuple[np.ndarray, np.ndarray]]  # (centre, radii) of bowel gas

    def __post_init__(self):
        prof = self.profile
        self._prof_z = np.ascontiguousarray(prof.z_mm, dtype=np.float64)
        self._prof = np.ascontiguousarray(np.stack([getattr(prof, name) for name in torso_kernel.PROFILE_ROWS]),
                                          dtype=np.float64)
        self._gas = np.array([[*c, *r] for c, r in self.gas_pockets], dtype=np.float64).reshape(-1, 6)
        self._ids = np.array([tid(n) for n in ("air", "skin", "subcutaneous_fat", "thoracolumbar_fascia",
                                               "muscle", "viscera", "bowel_gas", "supraspinous_ligament")],
                             dtype=np.uint8)

    def cover_mm(self, z: np.ndarray) -> np.ndarray:
        """Soft tissue between the skin and the spinous tips in the midline."""
        prof = self.profile
        return SKIN_MM + prof.at("fat_mm", z) + FASCIA_MM + SUPRASPINOUS_ROOM_MM + prof.at("nuchal_mm", z)

    def field(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (approximately) to the skin surface; negative inside the body."""
        p = np.asarray(points, float)
        flat = p.reshape(-1, 3)
        d = torso_kernel.skin_field(np.ascontiguousarray(flat[:, 0]), np.ascontiguousarray(flat[:, 1]),
                                    np.ascontiguousarray(flat[:, 2]), self._prof_z, self._prof, SKIN_MM, FASCIA_MM,
                                    SUPRASPINOUS_ROOM_MM)
        return d.reshape(p.shape[:-1])

    def labels(self, points: np.ndarray) -> np.ndarray:
        """Tissue ids of the torso layers at ``points`` (air outside)."""
        p = np.asarray(points, float)
        flat = p.reshape(-1, 3)
        out = torso_kernel.torso_labels(np.ascontiguousarray(flat[:, 0]), np.ascontiguousarray(flat[:, 1]),
                                        np.ascontiguousarray(flat[:, 2]), self._prof_z, self._prof, self._gas,
                                        self._ids, SKIN_MM, FASCIA_MM, SUPRASPINOUS_ROOM_MM)
        return out.reshape(p.shape[:-1])

    def labels_slab(self, x: float, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Tissue ids on the grid plane ``x`` = const over ``ys`` x ``zs``."""
        # z outermost: the kernel reads the profiles again only when z changes (once a row, not
        # once a point: a third of a volume's build)
        zz, yy = np.meshgrid(zs, ys, indexing="ij")
        out = torso_kernel.torso_labels(np.full(yy.size, x), yy.ravel(), zz.ravel(), self._prof_z, self._prof,
                                        self._gas, self._ids, SKIN_MM, FASCIA_MM, SUPRASPINOUS_ROOM_MM)
        return out.reshape(zz.shape).T


def make_gas_pockets(rng: np.random.Generator, profile: SpineProfile, z_lo: float, z_hi: float,
                     count: int = 9) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded bowel-gas pockets in front of the spine (they make a lumbar AP image look real)."""
    pockets = []
    for _ in range(count):
        z = rng.uniform(z_lo, z_hi)
        front = float(np.interp(z, profile.z_mm, profile.body_front_y_mm))
        centre = np.array([rng.uniform(-90.0, 90.0), front + rng.uniform(20.0, 70.0), z])
        radii = np.array([rng.uniform(8.0, 22.0), rng.uniform(6.0, 14.0), rng.uniform(8.0, 20.0)])
        pockets.append((centre, radii))
    return pockets
