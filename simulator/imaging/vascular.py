"""Vascular uptake of injected contrast: when it happens and which vessel it shows.

Uptake happens for certain when the tip is in a modelled vessel, and otherwise at a seeded
probability that depends on where the tip is (reference 3.12, ``assets/contrast.toml``): a
foraminal tip in the neck far more often than an interlaminar one. The draw is keyed to the
patient and the tip's position (to the millimetre), so repeating an injection without moving the
needle repeats its result, moving it draws again, and a replay gives the same images.

The vessel shown is the nearest modelled vessel of the drawn kind (the epidural venous plexus, a
radicular or vertebral artery) within reach of the tip; where the anatomy models none there (most
lumbar radicular arteries, periarticular veins, any imported CT), a vessel is drawn where anatomy
puts one: a radicular artery runs medially through the foramen to the front of the cord and turns
up and down along it (the anterior spinal artery's hairpin), veins drain from the tip towards the
vertebral body and branch.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulator.assets import read_asset_text
from simulator.geometry import frames
from simulator.imaging.contrast import VesselFill

VENOUS_TISSUES = ("epidural_vein", "jugular_vein")
ARTERIAL_TISSUES = ("radicular_artery", "vertebral_artery", "carotid_artery")


@lru_cache(maxsize=1)
def table() -> dict:
    """``assets/contrast.toml``."""
    return tomllib.loads(read_asset_text("contrast.toml"))


@dataclass(frozen=True)
class UptakeDraw:
    """The outcome of the uptake draw at one tip position.

    Attributes
    ----------
    kind : str or None
        ``"venous"``, ``"arterial"`` or None (no uptake).
    vascular_fraction : float
        Share of the injected volume the vessel takes (1.0: vascular only).
    mgi_per_ml : float
        Iodine left in the lumen.
    """

    kind: str | None
    vascular_fraction: float = 0.0
    mgi_per_ml: float = 0.0


def tip_key(patient_seed: int, stream: int, tip_mm) -> list[int]:
    """A seed for a draw that belongs to this patient and this tip position (to the millimetre)."""
    return [int(patient_seed), stream] + [int(np.floor(v)) & 0xFFFFFFFF for v in np.asarray(tip_mm, float)]


def draw_uptake(context: str | None, patient_seed: int, tip_mm, in_vessel: str | None = None) -> UptakeDraw:
    """Whether an injection at ``tip_mm`` in ``context`` (a row of ``[uptake.rates]``) shows uptake.

    ``in_vessel``: the kind of vessel the tip is in, if any (then the whole volume goes there).
    """
    t = table()
    rng = np.random.default_rng(tip_key(patient_seed, 29, tip_mm))
    u_rate, u_kind, u_mixed, u_fraction, u_strength = rng.random(5)
    if in_vessel is not None:
        kind, fraction = in_vessel, 1.0
    else:
        rates = t["uptake"]["rates"].get(context or "")
        if rates is None:
            return UptakeDraw(None)
        if u_rate >= rates["live_rate"] / t["uptake"]["live_sensitivity"]:
            return UptakeDraw(None)
        kind = "arterial" if u_kind < rates["arterial_share"] else "venous"
        lo, hi = t["uptake"]["mixed_vascular_fraction"]
        fraction = lo + (hi - lo) * u_fraction if u_mixed < t["uptake"]["mixed_share"] else 1.0
    lo, hi = t["vessel"][kind]["mgi_per_ml"]
    return UptakeDraw(kind, fraction, lo + (hi - lo) * u_strength)


def vessel_fill(anatomy, tip_mm, draw: UptakeDraw, start_s: float, duration_s: float, patient_seed: int) -> VesselFill:
    """The vessel ``draw`` shows, as contrast flowing from ``tip_mm``."""
    tip = np.asarray(tip_mm, float)
    params = table()["vessel"][draw.kind]
    rng = np.random.default_rng(tip_key(patient_seed, 31, tip))
    paths = modelled_paths(anatomy, tip, draw.kind, params["reach_mm"])
    radius = params["radius_mm"]
    if paths is None:
        paths = synthetic_arterial_paths(anatomy, tip, rng) if draw.kind == "arterial" else \
            synthetic_venous_paths(anatomy, tip, rng)
    else:
        paths, radius = paths
    return VesselFill(paths, draw.kind, radius, draw.mgi_per_ml, start_s, duration_s, params["washout_s"],
                      params["speed_mm_per_s"])


def modelled_paths(anatomy, tip: np.ndarray, kind: str, reach_mm: float):
    """Paths along the nearest modelled vessel of ``kind`` within ``reach_mm`` of the tip: a short
    connector from the tip, then downstream (an artery) or both ways (a vein); None if none is near."""
    tissues = ARTERIAL_TISSUES if kind == "arterial" else VENOUS_TISSUES
    best = None
    for _, tissue, points, radius in anatomy.vessel_paths():
        if tissue not in tissues or len(points) < 2:
            continue
        d = np.linalg.norm(points - tip, axis=1)
        i = int(np.argmin(d))
        if d[i] <= reach_mm and (best is None or d[i] < best[0]):
            best = (float(d[i]), points, i, radius)
    if best is None:
        return None
    _, points, i, radius = best
    along = _trim(points[i:], 80.0)
    paths = [np.vstack([tip, along])]
    if kind == "venous":
        paths.append(np.vstack([tip, _trim(points[:i + 1][::-1], 60.0)]))
    return paths, max(radius, 0.5)


def synthetic_arterial_paths(anatomy, tip: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """A radicular artery from the tip through the foramen to the front of the cord, then the
    anterior spinal artery's hairpin up and down the midline."""
    front, axis = _canal_front(anatomy, tip)
    entry = front + axis * 6.0
    inflow = _tortuous(np.array([tip, 0.5 * (tip + entry) + axis * 2.0, entry]), rng, 0.8)
    up = _tortuous(np.array([entry, front + axis * 20.0, front + axis * 45.0]), rng, 0.6)
    down = _tortuous(np.array([entry, front - axis * 15.0, front - axis * 35.0]), rng, 0.6)
    return [np.vstack([inflow, up[1:]]), np.vstack([inflow, down[1:]])]


def synthetic_venous_paths(anatomy, tip: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Veins draining from the tip towards the vertebral body (segmental and basivertebral veins),
    branching on the way."""
    body, axis = _nearest_body(anatomy, tip)
    trunk_end = tip + 0.7 * (body - tip)
    trunk = _tortuous(np.linspace(tip, trunk_end, 5), rng, 1.0)
    middle = trunk[len(trunk) // 2]
    sideways = np.cross(axis, frames.unit(body - tip))
    branches = [
        _tortuous(np.array([middle, middle + axis * 9.0 + sideways * 3.0, middle + axis * 18.0 + sideways * 4.0]), rng, 0.8),
        _tortuous(np.array([middle, middle - axis * 8.0 - sideways * 2.0, middle - axis * 16.0 - sideways * 5.0]), rng, 0.8),
    ]
    return [trunk] + [np.vstack([trunk[:len(trunk) // 2 + 1], b[1:]]) for b in branches]


def _nearest_level(anatomy, tip: np.ndarray) -> str | None:
    best, best_d = None, np.inf
    landmarks = anatomy.landmarks
    for name in landmarks:  # by name: reading every value would find every searched landmark
        if name.endswith(".body_center"):
            d = float(np.linalg.norm(landmarks[name] - tip))
            if d < best_d:
                best, best_d = name.split(".")[0], d
    return best


def _nearest_body(anatomy, tip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest vertebral body's centre and the spine's axis there (cranial)."""
    level = _nearest_level(anatomy, tip)
    if level is None:
        return tip + np.array([0.0, 25.0, 0.0]), np.array([0.0, 0.0, 1.0])
    axis = anatomy.endplate_normal(level) if level != "S1" else np.array([0.0, 0.0, 1.0])
    return anatomy.landmark(f"{level}.body_center"), frames.unit(axis)


def _canal_front(anatomy, tip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A point at the front of the canal in the midline at the tip's level, and the spine's axis."""
    body, axis = _nearest_body(anatomy, tip)
    level = _nearest_level(anatomy, tip)
    left, right = f"{level}.pedicle_left_center", f"{level}.pedicle_right_center"
    if level is not None and left in anatomy.landmarks and right in anatomy.landmarks:
        between = 0.5 * (anatomy.landmark(left) + anatomy.landmark(right))
        return between + 0.35 * (body - between), axis
    return body + np.array([0.0, -15.0, 0.0]), axis


def _trim(points: np.ndarray, length_mm: float) -> np.ndarray:
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    keep = int(np.searchsorted(np.cumsum(steps), length_mm)) + 2
    return points[:keep]


def _tortuous(points: np.ndarray, rng: np.random.Generator, amplitude_mm: float) -> np.ndarray:
    """A polyline through ``points`` resampled every 2 mm with a smooth seeded wander."""
    steps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    s = np.linspace(0.0, along[-1], max(3, int(along[-1] / 2.0) + 1))
    line = np.stack([np.interp(s, along, points[:, k]) for k in range(3)], axis=1)
    wander = np.cumsum(rng.normal(0.0, amplitude_mm * 0.5, size=line.shape), axis=0)
    wander -= np.linspace(0.0, 1.0, len(line))[:, None] * wander[-1]  # keep both ends in place
    wander[0] = 0.0
    return line + wander
