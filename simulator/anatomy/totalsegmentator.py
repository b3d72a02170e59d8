"""TotalSegmentator's conventions: the ``total`` task's classes (v2), reading its segmentations,
and how its classes map to SpineSim's structures and tissues.

A segmentation comes as one multi-label NIfTI (``TotalSegmentator --ml``: each voxel holds a class
id of ``assets/totalsegmentator_total_v2.toml``) or as a folder of per-structure masks named after
the classes (``vertebrae_L4.nii.gz``, ``spinal_cord.nii.gz``, ``sacrum.nii.gz``, ...). Either way it
is read into one label map of class ids on the segmentation's own voxel grid.

Mapping (TotalSegmentator class <-> SpineSim structure):

- ``vertebrae_C1`` ... ``vertebrae_L5`` <-> ``C1`` ... ``L5`` (bone); ``sacrum`` and ``vertebrae_S1``
  <-> ``sacrum`` (SpineSim's sacrum holds S1; its coccyx is written as part of ``sacrum``, the
  ``total`` task having no coccyx class);
- ``hip_left`` / ``hip_right`` <-> ``ilium_left`` / ``ilium_right``; ``rib_left_5`` <-> ``rib_5_left``;
  ``sternum`` <-> ``sternum``; ``costal_cartilages`` <-> every ``rib_N_side.cartilage``;
- lungs (the five lobes) <-> ``lung_left`` / ``lung_right`` (the phantom has no fissures: on export a
  lung is cut into lobes by height, see :func:`lobe_of_height`); ``kidney_left`` / ``kidney_right``
  (and their cysts) <-> kidneys; ``spinal_cord`` <-> ``spinal_cord``; ``trachea`` <-> ``airway``;
  ``common_carotid_artery_left`` / ``_right`` <-> ``carotid_artery_left`` / ``_right``;
- on import only: the other bones (femur, humerus, scapula, clavicula, skull) are bone; the
  muscles (autochthon, iliopsoas, gluteal) muscle; the abdominal and chest organs and the great
  vessels ``viscera`` (the tissue table has no blood-pool class; viscera has the same attenuation).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from simulator.assets import read_asset_text
from simulator.errors import SpineSimError

#: The class table this module reads.
TABLE_ASSET = "totalsegmentator_total_v2.toml"

VERTEBRA_LEVELS = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8",
                   "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")

_OTHER_BONES = ("femur_left", "femur_right", "humerus_left", "humerus_right", "scapula_left", "scapula_right",
                "clavicula_left", "clavicula_right", "skull")
_MUSCLES = ("autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "gluteus_maximus_left",
            "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right", "gluteus_minimus_left",
            "gluteus_minimus_right")
_VISCERA = ("spleen", "gallbladder", "liver", "stomach", "pancreas", "adrenal_gland_right", "adrenal_gland_left",
            "esophagus", "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate", "heart",
            "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right", "subclavian_artery_left",
            "brachiocephalic_vein_left", "brachiocephalic_vein_right", "atrial_appendage_left", "superior_vena_cava",
            "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left", "iliac_artery_right",
            "iliac_vena_left", "iliac_vena_right", "brain")
LUNG_LOBES = {"left": ("lung_upper_lobe_left", "lung_lower_lobe_left"),
              "right": ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right")}


@dataclass(frozen=True)
class ClassRole:
    """What one TotalSegmentator class is in SpineSim.

    Attributes
    ----------
    structure : str
        SpineSim structure name (``"L4"``, ``"ilium_left"``, ``"rib_5_left"``, ``"lung_left"``...;
        the class name itself where SpineSim has no such structure).
    tissue : str
        ``"bone"`` (split into cortical and cancellous on import) or a tissue name of
        ``assets/tissues.toml``.
    group : str
        Mesh group (``bone``, ``organ``, ``neural``, ``vessel``, ``joint``, ``soft_tissue``).
    """

    structure: str
    tissue: str
    group: str


@lru_cache(maxsize=1)
def ts_classes() -> dict[int, str]:
    """Class id -> class name of the ``total`` task, v2 (``assets/totalsegmentator_total_v2.toml``)."""
    data = tomllib.loads(read_asset_text(TABLE_ASSET))
    return {int(k): str(v) for k, v in data["classes"].items()}


@lru_cache(maxsize=1)
def ts_ids() -> dict[str, int]:
    """Class name -> class id."""
    return {v: k for k, v in ts_classes().items()}


def role(ts_name: str) -> ClassRole | None:
    """SpineSim's reading of a TotalSegmentator class (``None``: left to the CT numbers)."""
    m = re.fullmatch(r"vertebrae_(C[1-7]|T1[0-2]|T[1-9]|L[1-5]|S1)", ts_name)
    if m:
        level = m.group(1)
        return ClassRole("sacrum" if level == "S1" else level, "bone", "bone")
    if ts_name == "sacrum":
        return ClassRole("sacrum", "bone", "bone")
    m = re.fullmatch(r"hip_(left|right)", ts_name)
    if m:
        return ClassRole(f"ilium_{m.group(1)}", "bone", "bone")
    m = re.fullmatch(r"rib_(left|right)_(\d+)", ts_name)
    if m:
        return ClassRole(f"rib_{m.group(2)}_{m.group(1)}", "bone", "bone")
    if ts_name == "sternum" or ts_name in _OTHER_BONES:
        return ClassRole(ts_name, "bone", "bone")
    if ts_name == "costal_cartilages":
        return ClassRole("costal_cartilages", "costal_cartilage", "joint")
    for side, lobes in LUNG_LOBES.items():
        if ts_name in lobes:
            return ClassRole(f"lung_{side}", "lung", "organ")
    m = re.fullmatch(r"kidney_(?:cyst_)?(left|right)", ts_name)
    if m:
        return ClassRole(f"kidney_{m.group(1)}", "kidney", "organ")
    if ts_name == "spinal_cord":
        return ClassRole("spinal_cord", "spinal_cord", "neural")
    if ts_name == "trachea":
        return ClassRole("airway", "airway", "organ")
    m = re.fullmatch(r"common_carotid_artery_(left|right)", ts_name)
    if m:
        return ClassRole(f"carotid_artery_{m.group(1)}", "carotid_artery", "vessel")
    if ts_name in _MUSCLES:
        return ClassRole(ts_name, "muscle", "soft_tissue")
    if ts_name in _VISCERA:
        return ClassRole(ts_name, "viscera", "organ")
    return None


def vertebra_level(ts_name: str) -> str | None:
    """``"L4"`` for ``vertebrae_L4`` (``None`` for other classes, and for ``vertebrae_S1``, which
    SpineSim counts with the sacrum)."""
    m = re.fullmatch(r"vertebrae_(C[1-7]|T1[0-2]|T[1-9]|L[1-5])", ts_name)
    return m.group(1) if m else None


def spine_class_ids() -> set[int]:
    """Ids of the classes that make a segmentation usable: vertebrae C1-L5, S1 and the sacrum."""
    ids = ts_ids()
    return {ids[f"vertebrae_{lv}"] for lv in VERTEBRA_LEVELS} | {ids["vertebrae_S1"], ids["sacrum"]}


def class_for_structure(name: str) -> str | None:
    """The TotalSegmentator class a phantom structure is written as on export (``None``: not
    written). Lungs are split into lobes separately (:func:`lobe_of_height`)."""
    if name in VERTEBRA_LEVELS:
        return f"vertebrae_{name}"
    if name in ("sacrum", "coccyx"):
        return "sacrum"
    m = re.fullmatch(r"ilium_(left|right)", name)
    if m:
        return f"hip_{m.group(1)}"
    m = re.fullmatch(r"rib_(\d+)_(left|right)", name)
    if m:
        return f"rib_{m.group(2)}_{m.group(1)}"
    if re.fullmatch(r"rib_\d+_(left|right)\.cartilage", name):
        return "costal_cartilages"
    if name == "sternum":
        return "sternum"
    m = re.fullmatch(r"kidney_(left|right)", name)
    if m:
        return name
    if name == "spinal_cord":
        return "spinal_cord"
    if name == "airway":
        return "trachea"
    m = re.fullmatch(r"carotid_artery_(left|right)", name)
    if m:
        return f"common_carotid_artery_{m.group(1)}"
    return None


def lobe_of_height(side: str, fraction_from_top: np.ndarray) -> np.ndarray:
    """Class ids of the lobes a whole lung is cut into on export, by the height of each voxel (0 at
    the apex, 1 at the base): the left lung in halves (upper, lower), the right in thirds (upper,
    middle, lower). An approximation: the phantom's lungs have no fissures."""
    lobes = LUNG_LOBES[side]
    ids = np.array([ts_ids()[n] for n in lobes], np.uint8)
    index = np.clip((np.asarray(fraction_from_top) * len(lobes)).astype(int), 0, len(lobes) - 1)
    return ids[index]


# ----------------------------------------------------------------------------------- reading
def _load_nifti(path: Path, what: str):
    """A NIfTI image, as nibabel reads it, or a one-line error naming the file."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        img = nib.as_closest_canonical(img)
        data = np.asanyarray(img.dataobj)
    except FileNotFoundError:
        raise SpineSimError(f"{path}: no such file") from None
    except Exception as err:  # noqa: BLE001 - nibabel, gzip and zlib raise many types for a bad file
        raise SpineSimError(f"{path}: cannot read the {what} as NIfTI ({err.__class__.__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else 'corrupt file'})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise SpineSimError(f"{path}: the {what} must be a 3-D volume (it has shape {data.shape})")
    return data, np.asarray(img.affine, float)


def is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def read_segmentation(path) -> tuple[np.ndarray, np.ndarray]:
    """A TotalSegmentator segmentation as (class-id volume uint8, RAS affine), in nibabel's closest
    canonical (RAS) voxel order.

    ``path``: a multi-label NIfTI of ``total`` v2 ids, or a folder of per-structure masks named
    ``<class>.nii.gz`` (files of other names are ignored; all masks must share one grid).
    """
    path = Path(path)
    if not path.exists():
        raise SpineSimError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_mask_folder(path)
    data, affine = _load_nifti(path, "segmentation")
    if not np.issubdtype(data.dtype, np.integer):
        values = np.asarray(data, float)
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise SpineSimError(f"{path}: a multi-label segmentation must hold whole-number class ids")
        data = values
    lo, hi = int(np.min(data)), int(np.max(data))
    if lo < 0 or hi > max(ts_classes()):
        raise SpineSimError(f"{path}: label {lo if lo < 0 else hi} is not a TotalSegmentator 'total' v2 class id "
                            f"(1-{max(ts_classes())})")
    return np.asarray(data, np.uint8), affine


def _read_mask_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    ids = ts_ids()
    files = sorted(p for p in folder.iterdir() if is_nifti(p))
    known = [(p, p.name.removesuffix(".gz").removesuffix(".nii")) for p in files]
    known = [(p, n) for p, n in known if n in ids]
    if not known:
        raise SpineSimError(f"{folder}: no masks named after TotalSegmentator classes (e.g. vertebrae_L4.nii.gz)")
    labels = None
    affine0 = None
    for p, name in sorted(known, key=lambda item: ids[item[1]]):
        data, affine = _load_nifti(p, "mask")
        if labels is None:
            labels = np.zeros(data.shape, np.uint8)
            affine0 = affine
            first = p
        elif data.shape != labels.shape or not grids_match(affine, affine0):
            raise SpineSimError(f"{p}: this mask's grid differs from {first.name}'s (shape {data.shape} vs "
                                f"{labels.shape})")
        labels[np.asarray(data) > 0.5] = ids[name]
    return labels, affine0


def grids_match(a: np.ndarray, b: np.ndarray, translation_mm: float = 0.05, linear: float = 1e-3) -> bool:
    """Whether two voxel-to-world affines describe the same grid: the voxel axes within ``linear``
    (relative to the voxel size) and the origin within ``translation_mm``. The tolerance covers the
    float32 rounding of NIfTI headers and of DICOM positions, far below any real misregistration."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    scale = max(float(np.abs(a[:3, :3]).max()), 1e-6)
    return (np.allclose(a[:3, :3], b[:3, :3], atol=linear * scale, rtol=0)
            and np.allclose(a[:3, 3], b[:3, 3], atol=translation_mm, rtol=0))
