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

from simulator.anatomy.tissues import tid
from simulator.geometry import sdf

SKIN_MM = 2.5
FASCIA_MM = 1.6
#: Room between the fascia and the spinous tips for the supraspinous ligament, mm.
SUPRASPINOUS_ROOM_MM = 3.0


def ravi_skin_to_epidural_mm(bmi: float) -> float:
    """Lumbar skin-to-epidural depth predicted from BMI (Ravi 2011, n=120, ages 18-70)."""
    return 17.80 + 0.978 * bmi


@dataclass
class SpineProfile:
    """Sagittal profiles of the spine sampled along world z (used to place the soft tissues).

    All arrays are sampled at ``z_mm`` (increasing).
    """

    z_mm: np.ndarray
    midline_back_y_mm: np.ndarray  # most posterior bone in the midline (spinous tips, sacral crest)
    body_back_y_mm: np.ndarray  # posterior wall of the vertebral bodies / sacrum
    body_front_y_mm: np.ndarray
    body_half_width_mm: np.ndarray
    transverse_y_mm: np.ndarray  # coronal plane of the transverse processes
    psoas: np.ndarray  # 0..1: how developed the psoas is at this height

    def at(self, name: str, z: np.ndarray) -> np.ndarray:
        return np.interp(z, self.z_mm, getattr(self, name))


@dataclass
class Torso:
    """The body outline and its layers for one patient."""

    profile: SpineProfile
    fat_midline_mm: float  # subcutaneous fat over the spinous tips
    bulge_mm: float  # how far the paraspinal muscles stand out behind the tips
    half_width_mm: float
    depth_mm: float
    gas_pockets: list[tuple[np.ndarray, np.ndarray]]  # (centre, radii) of bowel gas

    def back_y(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """World y of the posterior skin surface."""
        cover = SKIN_MM + self.fat_midline_mm + FASCIA_MM + SUPRASPINOUS_ROOM_MM
        mid = self.profile.at("midline_back_y_mm", z) - cover
        ax = np.abs(x)
        bulge = self.bulge_mm * (np.exp(-((ax - 38.0) / 26.0) ** 2) - np.exp(-(38.0 / 26.0) ** 2))
        flank = 70.0 * (np.maximum(ax - 60.0, 0.0) / 110.0) ** 2
        return mid - bulge + flank

    def field(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (approximately) to the skin surface; negative inside the body."""
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        back = self.back_y(x, z) - y
        # the outline ellipse shapes the flanks and belly; it reaches well behind the back so it
        # never shifts the posterior skin, which is the height field above
        back_mid = self.profile.at("midline_back_y_mm", z) - SKIN_MM - self.fat_midline_mm - FASCIA_MM
        centre_y = back_mid - 40.0 + 0.5 * (self.depth_mm + 40.0)
        outline = sdf.ellipse_2d(np.stack([x, y - centre_y], -1),
                                 (self.half_width_mm, 0.5 * (self.depth_mm + 40.0)))
        return sdf.smooth_max(back, outline, 12.0)

    def fat_thickness(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Subcutaneous fat thickness: thinnest over the spine, thicker on the flanks and belly."""
        back_mid = self.profile.at("midline_back_y_mm", z)
        front = np.clip((y - back_mid) / self.depth_mm, 0.0, 1.0)
        lateral = np.clip(np.abs(x) / self.half_width_mm, 0.0, 1.0)
        return self.fat_midline_mm * (1.0 + 0.9 * lateral ** 2 + 0.8 * front ** 2)

    def labels(self, points: np.ndarray) -> np.ndarray:
        """Tissue ids of the torso layers at ``points`` (air outside)."""
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        depth = -self.field(points)
        out = np.full(depth.shape, tid("viscera"), np.uint8)
        prof = self.profile
        body_back = prof.at("body_back_y_mm", z)
        body_front = prof.at("body_front_y_mm", z)
        tp_plane = prof.at("transverse_y_mm", z)
        half_w = prof.at("body_half_width_mm", z)
        fat = self.fat_thickness(x, y, z)
        deep = depth - SKIN_MM - fat
        posterior = y < tp_plane + 6.0
        # paraspinal muscles fill the posterior compartment under the fascia
        out[posterior & (np.abs(x) < 95.0)] = tid("muscle")
        # psoas beside the vertebral bodies, growing towards the pelvis
        psoas_r = 9.0 + 11.0 * prof.at("psoas", z)
        psoas_c = half_w + 0.8 * psoas_r
        psoas_y = 0.5 * (body_back + body_front) - 2.0
        in_psoas = ((np.abs(x) - psoas_c) / psoas_r) ** 2 + ((y - psoas_y) / (psoas_r * 1.1)) ** 2 < 1.0
        out[in_psoas & (prof.at("psoas", z) > 0)] = tid("muscle")
        # the abdominal wall and flank muscles: a layer under the fat away from the back
        out[(deep < 12.0) & ~posterior] = tid("muscle")
        for centre, radii in self.gas_pockets:
            q = (points - centre) / radii
            out[np.einsum("...i,...i->...", q, q) < 1.0] = tid("bowel_gas")
        # the fascia thickens in the midline, where its crossing fibres replace the supraspinous
        # ligament below the level that ligament reaches (usually L4)
        # (generous: the ligaments are painted over it wherever they are)
        fascia = FASCIA_MM + (SUPRASPINOUS_ROOM_MM + 3.0) * np.exp(-((x / 6.0) ** 2))
        out[(deep < fascia) & posterior & (np.abs(x) < 110.0)] = tid("thoracolumbar_fascia")
        out[deep < 0.0] = tid("subcutaneous_fat")
        out[depth < SKIN_MM] = tid("skin")
        out[depth < 0.0] = tid("air")
        return out


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
