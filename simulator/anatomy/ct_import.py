"""Import a patient CT with its TotalSegmentator segmentation as a SpineSim anatomy.

``import_ct(ct, labels, name)`` reads the CT (a NIfTI file, or a folder holding one DICOM series),
reads the segmentation (:mod:`simulator.anatomy.totalsegmentator`), checks that both share one voxel
grid, resamples both onto an isotropic grid aligned with the CT's own RAS frame (the world frame of
the imported anatomy: nothing is re-centred), derives the tissues the segmentation lacks
(:mod:`simulator.anatomy.ct_derive`) and stores the result in ``data_dir()/anatomies/NAME/``.
``load_imported(name)`` reads it back as an :class:`ImportedAnatomy`, which everything downstream
uses like the phantom.

What is stored is pixel data and geometry only: the resampled CT numbers, the labels, the
structures, the skin distance, landmarks and a ``meta.json`` with the grid, the levels and the
SHA-256 of the source files. No file names, and nothing else of a DICOM header: from DICOM only the
pixel data, rescale slope and intercept, orientation, position and pixel spacing are read.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from simulator.anatomy.anatomy import Anatomy, BuildInfo
from simulator.anatomy.ct_derive import Grid, derive
from simulator.anatomy.meshes import DISPLAY_GROUPS, Mesh, _mesh_from_distance
from simulator.anatomy.phantom import VolumeGrid
from simulator.anatomy.tissues import tid, tissue_table
from simulator.anatomy.totalsegmentator import grids_match, is_nifti, read_segmentation, spine_class_ids
from simulator.errors import SpineSimError
from simulator.paths import data_dir

#: Version of the import (its derivation rules); recorded as the patient's generator version.
IMPORT_VERSION = "ct-import-1"
FORMAT = "spinesim-imported-anatomy"
FORMAT_VERSION = 1
#: Default voxel size of the imported anatomy, mm (the projector needs isotropic voxels).
DEFAULT_IMPORT_VOXEL_MM = 1.0
#: Largest imported volume, voxels (about 1.6 GB of working memory during the import).
MAX_VOXELS = 160_000_000

#: CT number -> linear attenuation at 60 keV (DeepDRR's mapping: arcadelab/deepdrr
#: ``conv_hu_to_density`` and ``conv_hu_to_materials_thresholding``). Density (g/cm3) is
#: ``max(0, min(0.001029 HU + 1.030, 0.0005886 HU + 1.03))``; the mass attenuation (cm2/g, at 60 keV)
#: is that of air up to -800 HU, soft tissue up to 350 HU and bone above. Rows: (upper HU bound,
#: material, mu/rho cm2/g).
HU_TO_MU = (
    (-800.0, "air", 0.1875),
    (350.0, "soft_tissue", 0.2048),
    (float("inf"), "bone", 0.3148),
)


#: Gaussian smoothing of the attenuation volume, voxels (as the phantom's partial-volume edges).
MU_SMOOTHING_VOXELS = 0.6


def hu_to_density(hu) -> np.ndarray:
    """Mass density (g/cm3) from CT numbers (DeepDRR's two linear fits)."""
    h = np.asarray(hu, np.float32)
    return np.maximum(0.0, np.minimum(0.001029 * h + 1.030, 0.0005886 * h + 1.03)).astype(np.float32)


def hu_to_mu(hu) -> np.ndarray:
    """Linear attenuation at 60 keV (1/mm) from CT numbers, by :data:`HU_TO_MU`."""
    h = np.asarray(hu, np.float32)
    mu_rho = np.full(h.shape, HU_TO_MU[-1][2], np.float32)
    for upper, _, value in reversed(HU_TO_MU[:-1]):
        mu_rho[h <= upper] = value
    return (mu_rho * hu_to_density(h) / 10.0).astype(np.float32)  # cm2/g * g/cm3 = 1/cm -> 1/mm


# ------------------------------------------------------------------------------------ reading
_DICOM_TAGS = ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "RescaleSlope",
               "RescaleIntercept", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
               "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames",
               "PixelData"]


def read_ct(path) -> tuple[np.ndarray, np.ndarray]:
    """A CT as (CT numbers float32, RAS affine) in nibabel's closest canonical voxel order:
    ``path`` is a NIfTI file or a folder of one DICOM series."""
    import nibabel as nib

    path = Path(path)
    if not path.exists():
        raise SpineSimError(f"{path}: no such file or folder")
    if path.is_dir():
        data, affine = _read_dicom_series(path)
        img = nib.Nifti1Image(data, affine)
        img = nib.as_closest_canonical(img)
        return np.asarray(img.dataobj, np.float32), np.asarray(img.affine, float)
    if not is_nifti(path):
        raise SpineSimError(f"{path}: expected a NIfTI file (.nii or .nii.gz) or a DICOM series folder")
    from simulator.anatomy.totalsegmentator import _load_nifti

    data, affine = _load_nifti(path, "CT")
    try:
        values = np.asarray(data, np.float32)
    except (TypeError, ValueError):
        raise SpineSimError(f"{path}: the CT's voxels are not numbers") from None
    if not np.all(np.isfinite(values)):
        raise SpineSimError(f"{path}: the CT holds non-finite values")
    return values, affine


def _read_dicom_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """One DICOM series: slices sorted along their normal, affine converted from LPS to RAS."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    slices = []
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name.startswith(".") or f.name.upper() == "DICOMDIR":
            continue
        try:
            ds = pydicom.dcmread(f, specific_tags=_DICOM_TAGS)
        except InvalidDicomError:
            continue  # not a DICOM file: ignored
        except Exception as err:  # noqa: BLE001 - a truncated or corrupt file
            raise SpineSimError(f"{f}: cannot read this DICOM file ({err.__class__.__name__})") from None
        try:
            if "PixelData" not in ds:
                continue
            if int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
                raise SpineSimError(f"{f}: multi-frame DICOM is not supported (export the series as single slices)")
            orient = np.array([float(x) for x in ds.ImageOrientationPatient])
            pos = np.array([float(x) for x in ds.ImagePositionPatient])
            spacing = np.array([float(x) for x in ds.PixelSpacing])
            slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
            intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
            pixels = ds.pixel_array.astype(np.float32) * slope + intercept
        except SpineSimError:
            raise
        except AttributeError as err:
            raise SpineSimError(f"{f}: DICOM slice lacks {str(err).split()[-1]} (position, orientation and "
                                f"pixel spacing are needed)") from None
        except Exception as err:  # noqa: BLE001 - pixel data that cannot be decoded
            raise SpineSimError(f"{f}: cannot decode the pixel data ({err.__class__.__name__}: "
                                f"{str(err).splitlines()[0] if str(err) else ''})") from None
        if pixels.ndim != 2:
            raise SpineSimError(f"{f}: expected a single-frame greyscale CT slice")
        slices.append((f, orient, pos, spacing, pixels))
    if not slices:
        raise SpineSimError(f"{folder}: no DICOM slices with pixel data in this folder")
    if len(slices) < 2:
        raise SpineSimError(f"{folder}: a DICOM series needs at least two slices")
    f0, orient0, _, spacing0, pix0 = slices[0]
    for f, orient, _, spacing, pixels in slices[1:]:
        if (not np.allclose(orient, orient0, atol=1e-4) or not np.allclose(spacing, spacing0, atol=1e-4)
                or pixels.shape != pix0.shape):
            raise SpineSimError(f"{f}: this slice does not belong to the series of {f0.name} (orientation, "
                                f"spacing or size differ): keep one series per folder")
    row = orient0[:3]
    col = orient0[3:]
    normal = np.cross(row, col)
    slices.sort(key=lambda s: float(s[2] @ normal))
    along = np.array([float(s[2] @ normal) for s in slices])
    gaps = np.diff(along)
    if np.any(gaps < 1e-3):
        raise SpineSimError(f"{folder}: two slices share a position (more than one series in the folder?)")
    if np.ptp(gaps) > 0.01 * np.median(gaps) + 1e-3:
        raise SpineSimError(f"{folder}: the slices are not evenly spaced ({gaps.min():.2f}-{gaps.max():.2f} mm)")
    # volume[c, r, k] = slice k's pixel (row r, column c)
    volume = np.stack([s[4].T for s in slices], axis=2)
    first = slices[0][2]
    step = (slices[-1][2] - first) / (len(slices) - 1)
    lps = np.eye(4)
    lps[:3, 0] = row * spacing0[1]  # along a row: the column index, spaced by the column spacing
    lps[:3, 1] = col * spacing0[0]
    lps[:3, 2] = step
    lps[:3, 3] = first
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    return volume.astype(np.float32), ras


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.iterdir() if p.is_file()):
            h.update(_sha256_of(f).encode())
        return h.hexdigest()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------ resampling
def _target_grid(shape, affine, voxel_mm: float) -> Grid:
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)]) @ affine.T
    lo = corners[:, :3].min(axis=0)
    hi = corners[:, :3].max(axis=0)
    lo = np.floor(lo / voxel_mm + 1e-6) * voxel_mm
    n = np.floor((hi - lo) / voxel_mm + 1e-6).astype(int) + 1
    return Grid(lo, tuple(int(x) for x in n), voxel_mm)


def _resample(data: np.ndarray, affine: np.ndarray, grid: Grid, order: int, cval: float, dtype) -> np.ndarray:
    """``data`` (on ``affine``'s grid) sampled at the centres of ``grid``'s voxels."""
    inv = np.linalg.inv(affine)
    out = np.empty(grid.shape, dtype)
    nx, ny, nz = grid.shape
    # an identical grid (e.g. a file SpineSim exported at this voxel size) is copied, not interpolated
    src0 = inv @ np.append(grid.lo, 1.0)
    scale = inv[:3, :3] * grid.voxel
    if (np.allclose(scale, np.eye(3), atol=1e-6) and np.allclose(src0[:3], np.round(src0[:3]), atol=1e-4)):
        o = np.round(src0[:3]).astype(int)
        out[...] = cval
        a = np.maximum(o, 0)
        b = np.minimum(o + np.array(grid.shape), data.shape)
        if np.all(b > a):
            out[a[0] - o[0]:b[0] - o[0], a[1] - o[1]:b[1] - o[1], a[2] - o[2]:b[2] - o[2]] = \
                data[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
        return out
    ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    chunk = max(1, int(4_000_000 // max(nx * ny, 1)))
    for k0 in range(0, nz, chunk):
        k1 = min(nz, k0 + chunk)
        kk = np.arange(k0, k1)
        world = grid.lo[:, None, None, None] + grid.voxel * np.stack(np.broadcast_arrays(
            ii[..., None], jj[..., None], kk[None, None, :]))
        src = np.tensordot(inv[:3, :3], world, axes=1) + inv[:3, 3][:, None, None, None]
        out[:, :, k0:k1] = ndimage.map_coordinates(data, src, order=order, cval=cval, mode="constant",
                                                   prefilter=False)
    return out


# ------------------------------------------------------------------------------------ import
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_name(name: str) -> str:
    """``name`` if it can name an imported anatomy, else a one-line :class:`SpineSimError`."""
    if not _NAME.fullmatch(name or "") or ".." in name:
        raise SpineSimError(f"--name: '{name}' is not a valid anatomy name (letters, digits, '_', '-' and '.', "
                            f"up to 64, starting with a letter or digit)")
    return name


def anatomies_dir() -> Path:
    path = data_dir() / "anatomies"
    path.mkdir(parents=True, exist_ok=True)
    return path


class ImportCancelled(Exception):
    """The import was cancelled (nothing was stored)."""


def import_ct(ct_path, labels_path, name: str, voxel_mm: float = DEFAULT_IMPORT_VOXEL_MM,
              progress: Callable[[float, str], None] | None = None,
              cancelled: Callable[[], bool] | None = None) -> Path:
    """Import a CT and its TotalSegmentator segmentation as anatomy ``name``; returns its folder.

    Parameters
    ----------
    ct_path, labels_path : path
        The CT (NIfTI, or a folder of one DICOM series) and its segmentation.
    name : str
        The anatomy's name (scenarios use it: ``[anatomy] ct = "NAME"``).
    voxel_mm : float
        The imported grid's voxel, 0.3-4 mm.
    progress : callable(fraction, step), optional
        Told as each step begins (reading, resampling, deriving the tissues, writing).
    cancelled : callable() -> bool, optional
        Asked between steps; True stops the import with :class:`ImportCancelled`, before anything
        is written.

    Raises :class:`SpineSimError` (one line naming the file) for an unreadable file, a segmentation
    whose grid differs from the CT's, or one with no vertebrae.
    """
    def step(fraction: float, text: str) -> None:
        if cancelled is not None and cancelled():
            raise ImportCancelled(f"importing {name} was cancelled")
        if progress is not None:
            progress(fraction, text)

    check_name(name)
    if not (0.3 <= float(voxel_mm) <= 4.0):
        raise SpineSimError(f"--voxel-mm: {voxel_mm} is outside 0.3-4 mm")
    ct_path, labels_path = Path(ct_path), Path(labels_path)
    step(0.0, "Reading the CT")
    hu, affine = read_ct(ct_path)
    step(0.15, "Reading the segmentation")
    ts, seg_affine = read_segmentation(labels_path)
    if ts.shape != hu.shape or not grids_match(seg_affine, affine):
        raise SpineSimError(f"{labels_path}: the segmentation's grid does not match the CT's (shape {ts.shape} vs "
                            f"{hu.shape}, or a different position or spacing): it must be the segmentation of "
                            f"this CT")
    if not np.isin(ts, list(spine_class_ids())).any():
        raise SpineSimError(f"{labels_path}: the segmentation has no vertebrae (no vertebrae_C1..L5, vertebrae_S1 "
                            f"or sacrum)")
    grid = _target_grid(hu.shape, affine, float(voxel_mm))
    if int(np.prod(grid.shape)) > MAX_VOXELS:
        raise SpineSimError(f"{ct_path}: the scan is too large at {voxel_mm} mm voxels ({grid.shape}); import it "
                            f"with a larger --voxel-mm")
    t0 = time.perf_counter()
    step(0.25, "Resampling onto the import's grid")
    hu_r = _resample(hu, affine, grid, 1, -1024.0, np.float32)
    ts_r = _resample(ts, affine, grid, 0, 0, np.uint8)
    del hu, ts
    derived = derive(hu_r, ts_r, grid, step=lambda f, what: step(0.4 + 0.5 * f, f"Deriving the tissues: {what}"))
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "generator_version": IMPORT_VERSION,
        "frame": "the CT's own RAS frame (mm), as stored in its header",
        "voxel_mm": grid.voxel, "lo_mm": grid.lo.tolist(), "shape": list(grid.shape),
        "levels": list(derived.levels),
        "landmarks": {k: [float(x) for x in v] for k, v in sorted(derived.landmarks.items())},
        "endplate_normals": {k: [float(x) for x in v] for k, v in derived.endplate_normals.items()},
        "structures": {str(k): list(v) for k, v in sorted(derived.structure_names.items())},
        "sources": {"ct_sha256": _sha256_of(ct_path), "labels_sha256": _sha256_of(labels_path)},
        "hu_to_mu": [list(r) for r in HU_TO_MU[:-1]] + [["inf", HU_TO_MU[-1][1], HU_TO_MU[-1][2]]],
        "import_seconds": round(time.perf_counter() - t0, 2),
    }
    step(0.9, "Writing the anatomy")
    root = anatomies_dir()
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        np.save(tmp / "hu.npy", np.clip(np.rint(hu_r), -32768, 32767).astype(np.int16))
        np.save(tmp / "labels.npy", derived.labels)
        np.save(tmp / "structures.npy", derived.structures)
        np.save(tmp / "skin_distance.npy", derived.skin_sdf_dmm)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        final = root / name
        if final.exists():
            old = root / f".{name}.old"
            if old.exists():
                shutil.rmtree(old)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SpineSimError(f"{root}: cannot write the imported anatomy ({err.strerror})") from None
    if progress is not None:
        progress(1.0, "Imported")
    return root / name


# ------------------------------------------------------------------------------------ loading
@dataclass(frozen=True)
class ImportedPatient:
    """The record of an imported patient: a name and the fingerprints of its source files only."""

    name: str
    ct_sha256: str
    labels_sha256: str
    voxel_mm: float
    generator_version: str = IMPORT_VERSION

    def as_dict(self) -> dict:
        return {"source": "ct", "name": self.name, "ct_sha256": self.ct_sha256, "labels_sha256": self.labels_sha256,
                "voxel_mm": self.voxel_mm, "generator_version": self.generator_version}


def imported_names() -> list[str]:
    root = anatomies_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / "meta.json").exists())


def load_imported(name: str) -> "ImportedAnatomy":
    """The imported anatomy called ``name`` (see :func:`import_ct`)."""
    t0 = time.perf_counter()
    folder = anatomies_dir() / name
    if not _NAME.fullmatch(name or "") or not (folder / "meta.json").exists():
        known = imported_names()
        raise SpineSimError(f"anatomy '{name}': no imported CT of that name (imported: "
                            f"{', '.join(known) if known else 'none'}; import it with Instructor > Import a "
                            f"patient CT, or spinesim import-ct)")
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError("format")
        labels = np.load(folder / "labels.npy", allow_pickle=False)
        structures = np.load(folder / "structures.npy", allow_pickle=False)
        skin = np.load(folder / "skin_distance.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError):
        raise SpineSimError(f"anatomy '{name}': its stored files in {folder} are unreadable; import it again") from None
    grid = VolumeGrid(np.array(meta["lo_mm"], float), tuple(meta["shape"]), float(meta["voxel_mm"]))
    if labels.shape != grid.shape or structures.shape != grid.shape or skin.shape != grid.shape:
        raise SpineSimError(f"anatomy '{name}': its stored volumes do not match its grid; import it again")
    key = hashlib.sha256(json.dumps({"meta": meta, "import": IMPORT_VERSION}, sort_keys=True).encode()).hexdigest()[:24]
    info = BuildInfo(cache_key=f"ct-{key}", from_cache=True, seconds=time.perf_counter() - t0)
    return ImportedAnatomy(name, folder, grid, labels, structures, skin, meta, info)


class ImportedAnatomy(Anatomy):
    """An imported CT's anatomy: every query reads the stored volumes (nearest voxel).

    Parameters
    ----------
    name : str
    folder : Path
    grid : VolumeGrid
    labels, structures, skin_dmm : ndarray
        Tissue ids, structure ids, signed skin distance (0.1 mm units).
    meta : dict
    info : BuildInfo
    """

    def __init__(self, name: str, folder: Path, grid: VolumeGrid, labels: np.ndarray, structures: np.ndarray,
                 skin_dmm: np.ndarray, meta: dict, info: BuildInfo):
        super().__init__(grid, labels, info)
        self.name = name
        self.folder = folder
        self.structures = structures
        self._skin = skin_dmm
        self.meta = meta
        self._grid = Grid(grid.lo_mm, grid.shape, grid.voxel_mm)
        self._names = {int(k): (v[0], v[1]) for k, v in meta["structures"].items()}
        src = meta["sources"]
        self._patient = ImportedPatient(name, src["ct_sha256"], src["labels_sha256"], float(meta["voxel_mm"]))
        self._hu: np.ndarray | None = None

    @property
    def patient(self) -> ImportedPatient:
        return self._patient

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.meta["levels"])

    def hu_volume(self) -> np.ndarray:
        """The CT numbers on the anatomy's grid (int16)."""
        if self._hu is None:
            self._hu = np.load(self.folder / "hu.npy", allow_pickle=False)
        return self._hu

    def mu_volume(self) -> np.ndarray:
        """Attenuation at 60 keV from the CT numbers (:func:`hu_to_mu`), lightly smoothed as the
        phantom's."""
        if self._mu is None:
            self._mu = ndimage.gaussian_filter(hu_to_mu(self.hu_volume()), MU_SMOOTHING_VOXELS).astype(np.float32)
        return self._mu

    def tissue_at(self, points_mm: np.ndarray) -> np.ndarray:
        """Tissue ids at world points from the label volume (nearest voxel; air outside the scan)."""
        return self._grid.lookup(self.labels, np.asarray(points_mm, float), outside=np.uint8(tid("air")))

    def skin_signed_distance(self, points_mm: np.ndarray) -> np.ndarray:
        p = np.asarray(points_mm, float)
        flat = p.reshape(-1, 3)
        idx = (flat - self.grid.lo_mm) / self.grid.voxel_mm
        d = ndimage.map_coordinates(self._skin, idx.T, order=1, mode="nearest").astype(float) / 10.0
        # beyond the scan: at least the distance to its box
        clipped = np.clip(idx, 0, np.array(self.grid.shape) - 1)
        d += np.linalg.norm(idx - clipped, axis=1) * self.grid.voxel_mm
        return d.reshape(p.shape[:-1])

    def endplate_normal(self, level: str) -> np.ndarray:
        normals = self.meta["endplate_normals"]
        if level not in normals:
            raise SpineSimError(f"anatomy '{self.name}' has no {level} (it covers {', '.join(self.levels)})")
        return np.array(normals[level], float)

    def structure_at(self, point_mm) -> str | None:
        sid = int(self._grid.lookup(self.structures, np.asarray(point_mm, float).reshape(1, 3))[0])
        entry = self._names.get(sid)
        return entry[0] if entry else None

    def structure_names(self) -> dict[int, tuple[str, str]]:
        """Structure id -> (name, group) of the structure volume."""
        return dict(self._names)

    def _compute_landmarks(self) -> dict[str, np.ndarray]:
        return {k: np.array(v, float) for k, v in self.meta["landmarks"].items()}

    def _build_meshes(self) -> dict[str, Mesh]:
        out: dict[str, Mesh] = {}
        objects = ndimage.find_objects(self.structures)
        by_name: dict[str, list[int]] = {}
        for sid, (name, group) in self._names.items():
            if group in DISPLAY_GROUPS and name != "epidural_space":
                by_name.setdefault(name, []).append(sid)
        for name, sids in by_name.items():
            boxes = [objects[s - 1] for s in sids if s - 1 < len(objects) and objects[s - 1] is not None]
            if not boxes:
                continue
            lo = np.min([[b.start for b in box] for box in boxes], axis=0)
            hi = np.max([[b.stop for b in box] for box in boxes], axis=0)
            sub = self.structures[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            mesh = _mask_mesh(np.isin(sub, sids), self.grid.lo_mm + lo * self.grid.voxel_mm, self.grid.voxel_mm,
                              self._names[sids[0]][1])
            if mesh is not None:
                out[name] = mesh
        body = self.labels != tid("air")
        step = max(1, int(round(3.0 / self.grid.voxel_mm)))
        coarse = body[::step, ::step, ::step]
        skin = _mask_mesh(coarse, self.grid.lo_mm, self.grid.voxel_mm * step, "skin")
        if skin is not None:
            out["skin"] = skin
        return out


def _mask_mesh(mask: np.ndarray, lo_mm: np.ndarray, voxel_mm: float, group: str) -> Mesh | None:
    """Marching cubes of a (lightly smoothed) voxel mask."""
    if not mask.any():
        return None
    d = 0.5 - ndimage.gaussian_filter(mask.astype(np.float32), 0.6)
    return _mesh_from_distance(d, VolumeGrid(np.asarray(lo_mm, float), mask.shape, voxel_mm), group)


def tissue_hu_table() -> np.ndarray:
    """CT number of every tissue id (tissues.toml), indexable by label."""
    table = tissue_table()
    out = np.zeros(256, np.int16)
    for t in table:
        out[t.id] = int(round(t.hu))
    return out
