"""Write an anatomy out for inspection in other software (3D Slicer, ITK-SNAP, any NIfTI reader).

Native format (``spinesim anatomy export ANATOMY DIR``):

- ``labels.nii.gz``: SpineSim tissue ids (uint8), ``labels.json`` naming them;
- ``hu.nii.gz``: CT numbers (int16): each tissue's ``hu`` of ``assets/tissues.toml`` for a phantom,
  the resampled CT itself for an imported scan;
- ``meshes/<structure>.vtp`` (VTK XML PolyData) and ``meshes/<structure>.stl`` (binary STL) for every
  structure of the anatomy's 3D view (and the skin).

TotalSegmentator format (``--format totalsegmentator``): ``segmentations.nii.gz`` (a multi-label map
of the ``total`` task's v2 class ids: each vertebra, the sacrum, hips, ribs, sternum, costal
cartilages, lungs by lobe, kidneys, spinal cord, trachea, common carotids) and ``ct.nii.gz`` (the
CT numbers), which ``spinesim import-ct ct.nii.gz --labels segmentations.nii.gz`` reads back.

Frames: the NIfTI affine is the anatomy's ``world_from_voxel`` (RAS mm). Mesh vertices are written
in LPS mm (x and y negated), the convention 3D Slicer assumes for mesh files (the STL header says
``SPACE=LPS``), so volumes and meshes load aligned. ``export.json`` records all of this.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from simulator.anatomy.anatomy import Anatomy
from simulator.anatomy.meshes import Mesh
from simulator.anatomy.sampling import sample_field
from simulator.anatomy.tissues import tissue_table
from simulator.anatomy.totalsegmentator import class_for_structure, lobe_of_height, ts_classes, ts_ids
from simulator.errors import SpineSimError

FORMATS = ("native", "totalsegmentator")
_LPS = np.array([-1.0, -1.0, 1.0], np.float32)


def _nifti(volume: np.ndarray, affine: np.ndarray, path: Path) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(volume, affine)
    img.header.set_xyzt_units("mm")
    img.set_sform(affine, code=1)  # scanner (world) coordinates
    img.set_qform(affine, code=1)
    nib.save(img, str(path))


def write_vtp(mesh: Mesh, path: Path) -> None:
    """A triangle mesh as VTK XML PolyData (ASCII), vertices in LPS mm."""
    v = np.asarray(mesh.vertices_mm, np.float32) * _LPS
    f = np.asarray(mesh.faces, np.int64)
    offsets = 3 * np.arange(1, len(f) + 1)
    with open(path, "w", encoding="ascii") as fh:
        fh.write('<?xml version="1.0"?>\n<VTKFile type="PolyData" version="0.1" byte_order="LittleEndian">\n')
        fh.write("  <PolyData>\n")
        fh.write(f'    <Piece NumberOfPoints="{len(v)}" NumberOfVerts="0" NumberOfLines="0" NumberOfStrips="0" '
                 f'NumberOfPolys="{len(f)}">\n')
        fh.write('      <Points>\n        <DataArray type="Float32" NumberOfComponents="3" format="ascii">\n')
        np.savetxt(fh, v, fmt="%.3f")
        fh.write("        </DataArray>\n      </Points>\n      <Polys>\n")
        fh.write('        <DataArray type="Int64" Name="connectivity" format="ascii">\n')
        np.savetxt(fh, f, fmt="%d")
        fh.write('        </DataArray>\n        <DataArray type="Int64" Name="offsets" format="ascii">\n')
        np.savetxt(fh, offsets.reshape(-1, 1), fmt="%d")
        fh.write("        </DataArray>\n      </Polys>\n    </Piece>\n  </PolyData>\n</VTKFile>\n")


def write_stl(mesh: Mesh, path: Path, name: str = "") -> None:
    """A triangle mesh as binary STL (80-byte header, count, 50 bytes a triangle), LPS mm."""
    v = np.asarray(mesh.vertices_mm, np.float32) * _LPS
    f = np.asarray(mesh.faces, np.int64)
    tri = v[f]  # (M, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norms = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(norms > 0, normals / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    record = np.zeros(len(f), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    record["n"] = normals
    record["v"] = tri
    header = f"SpineSim {name} SPACE=LPS".encode("ascii", "replace")[:80].ljust(80, b" ")
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(np.uint32(len(f)).tobytes())
        fh.write(record.tobytes())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def hu_volume(anatomy: Anatomy) -> np.ndarray:
    """CT numbers of an anatomy (int16): the scan's own for an imported one, else each tissue's."""
    own = getattr(anatomy, "hu_volume", None)
    if callable(own):
        return np.asarray(own(), np.int16)
    table = np.zeros(256, np.int16)
    for t in tissue_table():
        table[t.id] = int(round(t.hu))
    return table[anatomy.labels]


def totalsegmentator_labels(anatomy: Anatomy) -> np.ndarray:
    """The anatomy's structures as a multi-label map of TotalSegmentator ``total`` v2 ids (uint8)."""
    structures = getattr(anatomy, "structures", None)
    if structures is not None:  # an imported anatomy keeps its classes' own ids
        return np.where(structures <= max(ts_classes()), structures, 0).astype(np.uint8)
    phantom = getattr(anatomy, "phantom", None)
    if phantom is None:
        raise SpineSimError("this anatomy has no structures to write in TotalSegmentator's conventions")
    grid = anatomy.grid
    ids = ts_ids()
    out = np.zeros(grid.shape, np.uint8)
    for s in phantom.structures:  # in painting order: bone last, as in the label volume
        side = re.fullmatch(r"lung_(left|right)", s.name)
        cls = class_for_structure(s.name)
        if cls is None and side is None:
            continue
        lo = np.maximum(s.bbox_mm[0], grid.lo_mm)
        hi = np.minimum(s.bbox_mm[1], grid.hi_mm)
        if np.any(hi < lo):
            continue
        i0 = np.floor((lo - grid.lo_mm) / grid.voxel_mm).astype(int)
        i1 = np.minimum(np.ceil((hi - grid.lo_mm) / grid.voxel_mm).astype(int) + 1, grid.shape)
        shape = tuple(int(n) for n in (i1 - i0))
        if min(shape) <= 0:
            continue
        d, _ = sample_field(s.field, grid.lo_mm + i0 * grid.voxel_mm, shape, grid.voxel_mm,
                            band_mm=2.0 * grid.voxel_mm)
        inside = d < 0.0
        if not inside.any():
            continue
        view = out[i0[0]:i1[0], i0[1]:i1[1], i0[2]:i1[2]]
        if side is not None:
            z = grid.lo_mm[2] + grid.voxel_mm * (i0[2] + np.nonzero(inside)[2])
            top, bottom = s.bbox_mm[1, 2], s.bbox_mm[0, 2]
            view[inside] = lobe_of_height(side.group(1), (top - z) / max(top - bottom, 1e-6))
        else:
            view[inside] = ids[cls]
    return out


def export_anatomy(anatomy: Anatomy, out_dir, fmt: str = "native") -> list[Path]:
    """Write ``anatomy`` to ``out_dir`` (created) in ``fmt``; returns the files written."""
    if fmt not in FORMATS:
        raise SpineSimError(f"--format: '{fmt}' is not one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = _write(anatomy, out, fmt)
    except OSError as err:
        raise SpineSimError(f"{err.filename or out}: cannot write ({err.strerror})") from None
    return written


def _write(anatomy: Anatomy, out: Path, fmt: str) -> list[Path]:
    affine = np.asarray(anatomy.world_from_voxel, float)
    written: list[Path] = []
    info = {"format": "spinesim-anatomy-export", "format_version": 1, "layout": fmt,
            "patient": anatomy.patient.as_dict(), "levels": list(anatomy.levels),
            "volume_frame": "RAS mm: the NIfTI affine is world_from_voxel",
            "world_from_voxel": affine.tolist()}
    if fmt == "totalsegmentator":
        seg = out / "segmentations.nii.gz"
        _nifti(totalsegmentator_labels(anatomy), affine, seg)
        ct = out / "ct.nii.gz"
        _nifti(hu_volume(anatomy), affine, ct)
        written += [seg, ct]
        info["classes"] = "TotalSegmentator 'total' task v2 ids (assets/totalsegmentator_total_v2.toml)"
    else:
        labels = out / "labels.nii.gz"
        _nifti(np.asarray(anatomy.labels, np.uint8), affine, labels)
        hu = out / "hu.nii.gz"
        _nifti(hu_volume(anatomy), affine, hu)
        names = out / "labels.json"
        table = tissue_table()
        names.write_text(json.dumps({"format": "spinesim-labels", "format_version": 1,
                                     "labels": {str(t.id): t.name for t in table}}, indent=1))
        written += [labels, hu, names]
        mesh_dir = out / "meshes"
        mesh_dir.mkdir(exist_ok=True)
        for name, mesh in sorted(anatomy.meshes().items()):
            if len(mesh.faces) == 0:
                continue
            vtp = mesh_dir / f"{_safe(name)}.vtp"
            stl = mesh_dir / f"{_safe(name)}.stl"
            write_vtp(mesh, vtp)
            write_stl(mesh, stl, name)
            written += [vtp, stl]
        info["mesh_frame"] = "LPS mm (x and y negated from the RAS world), as 3D Slicer assumes for mesh files"
    manifest = out / "export.json"
    manifest.write_text(json.dumps(info, indent=1))
    written.append(manifest)
    return written
