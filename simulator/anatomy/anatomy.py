"""The one anatomy model everything downstream reads: labels, attenuation, landmarks, meshes.

:class:`Anatomy` is the interface; :class:`PhantomAnatomy` wraps the procedural phantom (exact
point queries) and its labelled voxel volume (imaging, meshes). Building the volume is the slow
part; it is cached on disk keyed by the patient's parameters, the generator version and code, the
voxel size and the region, so the same patient loads in a fraction of a second the second time.
"""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from simulator.anatomy import landmarks as landmarks_mod
from simulator.anatomy.meshes import DISPLAY_GROUPS, Mesh, skin_mesh, structure_mesh
from simulator.anatomy.patient import (GENERATOR_VERSION, PatientParameters, ResolvedPatient,
                                       generator_fingerprint)
from simulator.anatomy.column import ALL_LEVELS, INTERSPACES
from simulator.anatomy.phantom import SpinePhantom, VolumeGrid
from simulator.anatomy.tissues import tissue_table
from simulator.errors import SpineSimError
from simulator.paths import cache_dir

#: Default voxel size of the anatomy volume, mm. Thin structures (dura, joint spaces) are exact for
#: the needle through the phantom's implicit geometry, so the volume only has to serve imaging.
DEFAULT_VOXEL_MM = 1.0


@dataclass(frozen=True)
class BuildInfo:
    """How an anatomy volume came to be (for benchmarks and the record)."""

    cache_key: str
    from_cache: bool
    seconds: float


class Anatomy:
    """What every part of SpineSim reads of a patient's anatomy, whatever its source.

    Subclasses fill it from the procedural phantom (:class:`PhantomAnatomy`) or from an imported
    CT. Everything downstream (imaging, needle, procedures, scoring, scene) uses only these methods.

    Attributes
    ----------
    grid : VolumeGrid
        The voxel grid of ``labels``.
    labels : ndarray (uint8, grid.shape)
        Tissue label of every voxel (ids of ``assets/tissues.toml``).
    info : BuildInfo
    """

    def __init__(self, grid: VolumeGrid, labels: np.ndarray, info: BuildInfo):
        self.grid = grid
        self.labels = labels
        self.info = info
        self._mu: np.ndarray | None = None
        self._landmarks: Mapping[str, np.ndarray] | None = None
        self._persist = True  # landmarks are kept in the on-disk cache (off for throwaway builds)
        self._meshes: dict[str, Mesh] | None = None
        self._derived: dict[tuple, object] = {}

    def derived(self, key: tuple, compute):
        """``compute()`` once per anatomy for ``key``: points found by searching the tissue (a
        procedure's target point, a foramen's fat) are asked for by every attempt and every score
        on this anatomy, and cost a tenth of a second to a second each."""
        if key not in self._derived:
            self._derived[key] = compute()
        value = self._derived[key]
        return value.copy() if isinstance(value, np.ndarray) else value

    # ---------------------------------------------------------------- to be provided by a source
    @property
    def patient(self):
        """The patient's record: an object with ``as_dict()`` and ``generator_version``."""
        raise NotImplementedError

    def tissue_at(self, points_mm: np.ndarray) -> np.ndarray:
        """Tissue ids at world points (shape ``(..., 3)``)."""
        raise NotImplementedError

    def skin_signed_distance(self, points_mm: np.ndarray) -> np.ndarray:
        """Signed distance to the skin surface (negative inside the body), mm."""
        raise NotImplementedError

    def endplate_normal(self, level: str) -> np.ndarray:
        """Unit normal of a vertebra's superior endplate (its body axis); S1: the sacral endplate."""
        raise NotImplementedError

    def structure_at(self, point_mm) -> str | None:
        """Name of the structure at ``point_mm`` (e.g. ``"L4"``, ``"ilium_left"``), if any."""
        raise NotImplementedError

    def facet_normal(self, interspace: str, side: str) -> np.ndarray | None:
        """Unit normal of a facet joint's plane (``side`` ``"left"`` or ``"right"``), where the
        anatomy knows it (``None`` otherwise)."""
        return None

    def vessel_paths(self) -> list[tuple[str, str, np.ndarray, float]]:
        """The modelled vessels' centrelines: ``(name, tissue name, points (N, 3) in world mm,
        radius mm)``, each ordered in the direction the blood flows for an artery. An anatomy
        without vessel geometry (an imported CT) has none."""
        return []

    def labels_at(self, points_mm: np.ndarray) -> np.ndarray:
        """Tissue ids of the label volume's nearest voxels (air outside the volume): what the
        images are made of, far cheaper than :meth:`tissue_at`'s exact answer."""
        from simulator.anatomy.ct_derive import Grid

        grid = Grid(self.grid.lo_mm, self.grid.shape, self.grid.voxel_mm)
        return grid.lookup(self.labels, np.asarray(points_mm, float).reshape(-1, 3), outside=0).astype(np.int64)

    def _compute_landmarks(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _build_meshes(self) -> dict[str, Mesh]:
        raise NotImplementedError

    @property
    def levels(self) -> tuple[str, ...]:
        """The levels (``"C2"`` ... ``"S1"``) the anatomy covers."""
        raise NotImplementedError

    # ---------------------------------------------------------------- shared
    @property
    def world_from_voxel(self) -> np.ndarray:
        return self.grid.world_from_voxel

    def mu_volume(self) -> np.ndarray:
        """Linear attenuation at 60 keV (1/mm) on the voxel grid, lightly smoothed (partial volume
        at tissue boundaries, as a detector's blur would give)."""
        if self._mu is None:
            mu = tissue_table().mu_60kev_per_mm[self.labels]
            self._mu = ndimage.gaussian_filter(mu, 0.6).astype(np.float32)
        return self._mu

    @property
    def landmarks(self) -> Mapping[str, np.ndarray]:
        """Named landmarks (world mm); names documented in :mod:`simulator.anatomy.landmarks`."""
        if self._landmarks is None:
            # cached beside the meshes: computing them is the slowest part of a cached start (~2 s)
            path = _cache_folder(self.info.cache_key) / "landmarks.npz" if self._persist else None
            self._landmarks = _load_landmarks(path) if path is not None else {}
            if not self._landmarks:
                self._landmarks = self._compute_landmarks()
                if path is not None:
                    _save_landmarks(path, self._landmarks)
        return self._landmarks

    def landmark(self, name: str) -> np.ndarray:
        try:
            return landmarks_mod.lookup(self.landmarks, name)
        except KeyError:
            raise SpineSimError(f"unknown landmark '{name}'") from None

    def skin_entry(self, start_mm, direction) -> np.ndarray | None:
        """First point on the skin along a ray from outside the body (``None`` if it misses)."""
        d = np.asarray(direction, float)
        d = d / np.linalg.norm(d)
        t = np.arange(0.0, 400.0, 0.25)
        labels = self.tissue_at(np.asarray(start_mm, float) + t[:, None] * d)
        hits = np.nonzero(labels != tissue_table().id("air"))[0]
        return None if hits.size == 0 else np.asarray(start_mm, float) + t[hits[0]] * d

    def skin_point_behind(self, point_mm) -> np.ndarray:
        """The skin point straight behind (posterior to) ``point_mm``: where a needle aimed
        straight forward at the point enters."""
        p = np.asarray(point_mm, float)
        hit = self.skin_entry(p - np.array([0.0, 300.0, 0.0]), [0.0, 1.0, 0.0])
        if hit is None:
            raise SpineSimError("no skin behind that point")
        return hit

    def skin_point_nearest(self, point_mm) -> np.ndarray:
        """The skin point nearest ``point_mm`` (where a finger pressing straight at it would be):
        along the skin distance's gradient, refined twice."""
        p = np.asarray(point_mm, float)
        eps = 0.5
        for _ in range(3):
            d = float(self.skin_signed_distance(p[None])[0])
            offsets = np.concatenate([p + eps * np.eye(3), p - eps * np.eye(3)])
            values = self.skin_signed_distance(offsets)
            grad = (values[:3] - values[3:]) / (2 * eps)
            p = p - d * grad / max(float(np.linalg.norm(grad)), 1e-9)
        return p

    def interspace_at(self, point_mm) -> str:
        """The interspace (``"L4-L5"``) whose interlaminar level is nearest ``point_mm`` along the
        spine."""
        p = np.asarray(point_mm, float)
        best, best_d = "", np.inf
        for name in INTERSPACES:
            key = f"{name}.interlaminar_center"
            if key not in self.landmarks:
                continue
            centre = self.landmarks[key]
            axis = self.endplate_normal(name.split("-")[0])
            d = abs(float((p - centre) @ axis)) + 0.1 * float(np.linalg.norm(p - centre))
            if d < best_d:
                best, best_d = name, d
        return best

    def meshes(self) -> dict[str, Mesh]:
        """Surface meshes of the displayed structures and the skin (built once, cached on disk)."""
        if self._meshes is None:
            path = _cache_folder(self.info.cache_key) / "meshes.npz"
            self._meshes = _load_meshes(path) if path.exists() else {}
            if not self._meshes:  # missing or unreadable: rebuild
                self._meshes = self._build_meshes()
                _save_meshes(path, self._meshes)
        return self._meshes


class PhantomAnatomy(Anatomy):
    """The procedural phantom's anatomy: exact point queries, and a labelled volume of a region.

    Parameters
    ----------
    phantom : SpinePhantom
    grid : VolumeGrid
    labels : ndarray (uint8, grid.shape)
    info : BuildInfo
    """

    def __init__(self, phantom: SpinePhantom, grid: VolumeGrid, labels: np.ndarray, info: BuildInfo):
        super().__init__(grid, labels, info)
        self.phantom = phantom

    @property
    def patient(self) -> ResolvedPatient:
        return self.phantom.patient

    def tissue_at(self, points_mm: np.ndarray) -> np.ndarray:
        """Exact tissue ids at world points (shape ``(..., 3)``), from the implicit geometry."""
        return self.phantom.tissue_at(points_mm)

    def skin_signed_distance(self, points_mm: np.ndarray) -> np.ndarray:
        return self.phantom.torso.field(np.asarray(points_mm, float))

    def endplate_normal(self, level: str) -> np.ndarray:
        if level == "S1":
            return self.phantom.sacral_frame.world_from_plate[:3, 2].copy()
        return self.phantom.by_level[level].axis([0.0, 0.0, 1.0])

    def structure_at(self, point_mm) -> str | None:
        """Name of the innermost (last painted) structure containing ``point_mm``, if any."""
        return self.phantom.structure_at(point_mm)

    def facet_normal(self, interspace: str, side: str) -> np.ndarray | None:
        for joint in self.phantom.joints.get(interspace, []):
            if joint.name.endswith(f"facet_{side}"):
                return joint.normal.copy()
        return None

    def _compute_landmarks(self) -> Mapping[str, np.ndarray]:
        return landmarks_mod.compute_landmarks(self.phantom)

    def vessel_paths(self) -> list[tuple[str, str, np.ndarray, float]]:
        names = tissue_table().names_by_id()
        out = []
        for s in self.phantom.structures:
            centre = getattr(s.field, "centre", None)
            if s.group == "vessel" and centre is not None:
                out.append((s.name, names[s.core_tissue], np.asarray(centre, float), float(np.mean(s.field.rx))))
        return out

    @property
    def levels(self) -> tuple[str, ...]:
        """The levels whose vertebral bodies lie in the volume."""
        lo, hi = self.grid.lo_mm, self.grid.hi_mm
        out = []
        for level in ALL_LEVELS:
            z = self.phantom.by_level[level].to_world([0.0, 0.0, 0.0])[2]
            if lo[2] <= z <= hi[2]:
                out.append(level)
        return tuple(out)

    def _build_meshes(self) -> dict[str, Mesh]:
        clip = np.stack([self.grid.lo_mm, self.grid.hi_mm])
        out = {}
        for s in self.phantom.structures:
            if s.group not in DISPLAY_GROUPS or s.name == "epidural_space":
                continue
            m = structure_mesh(self.phantom, s.name, voxel_mm=0.8 if s.group == "bone" else 1.0, clip=clip)
            if m is not None:
                out[s.name] = m
        # the skin is drawn well beyond the modelled region so the patient reads as a body on the table
        body = self.phantom.bounds_mm()
        display = np.stack([body[0] - [0.0, 0.0, 220.0], body[1] + [0.0, 0.0, 260.0]])
        display[0, 2] = min(display[0, 2], clip[0, 2] - 220.0)
        display[1, 2] = max(display[1, 2], clip[1, 2] + 260.0)
        skin = skin_mesh(self.phantom, display, voxel_mm=3.0)
        if skin is not None:
            out["skin"] = skin
        return out


# ---------------------------------------------------------------------------- building and cache
def _load_landmarks(path: Path) -> dict[str, np.ndarray]:
    """Landmarks saved by :func:`_save_landmarks`; empty if missing or unreadable (then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {name: np.array(f[name], float) for name in f.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return {}


def _save_landmarks(path: Path, landmarks: Mapping[str, np.ndarray]) -> None:
    try:
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **{name: np.asarray(v, float) for name, v in landmarks.items()})
        tmp.replace(path)  # whole or not at all: a reader never sees half a file
    except OSError:
        pass  # a read-only cache: computed again next time


def region_bounds(phantom: SpinePhantom, levels: tuple[str, str] | None) -> np.ndarray:
    """World box of the body between two levels (inclusive), or of the whole phantom."""
    body = phantom.bounds_mm()
    if levels is None:
        return body
    top, bottom = levels
    ordered = ALL_LEVELS + ("coccyx",)
    for lv in levels:
        if lv not in ordered:
            raise SpineSimError(f"unknown level '{lv}' (expected one of {', '.join(ordered)})")
    i, j = ordered.index(top), ordered.index(bottom)
    if i > j:
        top, bottom = bottom, top
    if top == "coccyx":
        raise SpineSimError("a region needs a vertebra above the coccyx")
    seg_top = phantom.by_level[top]
    z_hi = seg_top.to_world([0.0, 0.0, 0.5 * seg_top.height_mid_mm])[2] + 25.0
    if bottom == "coccyx":
        # the whole sacrum, the hiatus and the coccyx (a caudal case)
        z_lo = float(landmarks_mod.coccyx_tip(phantom)[2]) - 25.0
    else:
        seg_bottom = phantom.by_level[bottom]
        z_lo = seg_bottom.to_world([0.0, 0.0, -0.5 * seg_bottom.height_mid_mm])[2] - 25.0
    if bottom == "S1":
        z_lo -= 40.0  # keep the sacrum to S2 with the S1 foramina
    lo = body[0].copy()
    hi = body[1].copy()
    lo[2] = max(lo[2], z_lo)
    hi[2] = min(hi[2], z_hi)
    return np.stack([lo, hi])


def cache_key(patient: ResolvedPatient, voxel_mm: float, levels) -> str:
    payload = json.dumps({"patient": patient.as_dict(), "voxel_mm": voxel_mm, "levels": levels,
                          "generator": GENERATOR_VERSION, "code": generator_fingerprint()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _cache_folder(key: str) -> Path:
    path = cache_dir() / "anatomy" / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_anatomy(parameters: PatientParameters | ResolvedPatient, voxel_mm: float = DEFAULT_VOXEL_MM,
                  levels: tuple[str, str] | None = None, use_cache: bool = True,
                  landmarks: dict[str, np.ndarray] | None = None) -> PhantomAnatomy:
    """Build (or load from the cache) a patient's anatomy.

    Parameters
    ----------
    parameters : PatientParameters or ResolvedPatient
    voxel_mm : float
        Voxel size of the label volume.
    levels : (str, str) or None
        Build only the body between two levels (e.g. ``("L3", "S1")``); ``None`` for all.
    use_cache : bool
        Read and write the on-disk cache (labels and landmarks).
    landmarks : dict, optional
        The same patient's landmarks from another region's build (they are the analytic
        phantom's, whatever the region): not computed again.
    """
    patient = parameters.resolved() if isinstance(parameters, PatientParameters) else parameters
    if not (0.3 <= voxel_mm <= 4.0):
        raise SpineSimError(f"voxel size {voxel_mm} mm is outside 0.3-4 mm")
    t0 = time.perf_counter()
    phantom = SpinePhantom(patient)
    bounds = region_bounds(phantom, levels)
    grid = VolumeGrid.covering(bounds[0], bounds[1], voxel_mm)
    key = cache_key(patient, voxel_mm, list(levels) if levels else None)
    path = _cache_folder(key) / "labels.npy" if use_cache else None
    labels = None
    if path is not None and path.exists():
        try:
            labels = np.load(path, allow_pickle=False)
            if labels.shape != grid.shape or labels.dtype != np.uint8:
                labels = None
        except (OSError, ValueError):
            labels = None  # a corrupt cache entry is rebuilt, never trusted
    from_cache = labels is not None
    if labels is None:
        labels = phantom.label_volume(grid)
        if path is not None:
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, labels)
            tmp.replace(path)
    info = BuildInfo(cache_key=key, from_cache=from_cache, seconds=time.perf_counter() - t0)
    anatomy = PhantomAnatomy(phantom, grid, labels, info)
    anatomy._persist = use_cache
    if landmarks is not None:
        anatomy._landmarks = landmarks
    return anatomy


def _save_meshes(path: Path, meshes: dict[str, Mesh]) -> None:
    arrays = {}
    for name, m in meshes.items():
        arrays[f"{name}|v"] = m.vertices_mm
        arrays[f"{name}|f"] = m.faces
        arrays[f"{name}|g"] = np.array(m.group)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load_meshes(path: Path) -> dict[str, Mesh]:
    out = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            names = {k.split("|")[0] for k in data.files}
            for name in names:
                out[name] = Mesh(data[f"{name}|v"], data[f"{name}|f"], str(data[f"{name}|g"]))
    except (OSError, ValueError, KeyError):
        return {}
    return out


def anatomy_for_scenario(scenario) -> Anatomy:
    """The anatomy a scenario names: the seeded phantom (its region and voxel size), or an
    imported CT (``[anatomy] ct = "NAME"``), refused if it lacks the scenario's levels."""
    section = scenario.anatomy
    if getattr(section, "ct", None):
        from simulator.anatomy.ct_import import load_imported

        anatomy = load_imported(section.ct)
        level = scenario.target_level
        # an interspace needs both its vertebrae; the sacral hiatus, the sacrum
        needed = level.split("-") if "-" in level else ["S1"] if level == "sacral_hiatus" else []
        missing = [lv for lv in needed if lv not in anatomy.levels]
        if missing:
            raise SpineSimError(f"anatomy.ct: '{section.ct}' does not cover {', '.join(missing)} "
                                f"(it covers {', '.join(anatomy.levels) or 'no vertebrae'})")
        return anatomy
    return build_anatomy(scenario.patient.parameters(), voxel_mm=section.voxel_mm, levels=section.levels)
