"""``spinesim import-ct`` and ``spinesim anatomy export``, run as a user would: the files written open
in any NIfTI reader and mesh viewer (3D Slicer among them), on the anatomy's own grid and frame."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from simulator.anatomy.export import export_anatomy, write_stl, write_vtp
from simulator.anatomy.meshes import Mesh
from simulator.anatomy.tissues import tissue_table
from simulator.anatomy.totalsegmentator import ts_classes, ts_ids

from spine_helpers import FLUORO_L4L5


def _spinesim(env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli_imported(small_anatomy, cli_env, tmp_path_factory):
    """The session's small phantom written in TotalSegmentator's conventions, then imported with the
    command line as ``cli_import``; returns the loaded anatomy."""
    from simulator.anatomy.ct_import import load_imported

    src = tmp_path_factory.mktemp("ts-src")
    export_anatomy(small_anatomy, src, "totalsegmentator")
    done = _spinesim(cli_env, "import-ct", src / "ct.nii.gz", "--labels", src / "segmentations.nii.gz",
                     "--name", "cli_import", "--voxel-mm", "1.5")
    assert done.returncode == 0, done.stderr
    assert "L4" in done.stdout and 'ct = "cli_import"' in done.stdout
    return load_imported("cli_import")


def _read_stl(path: Path) -> np.ndarray:
    """Triangles (M, 3, 3) of a binary STL, checking its layout: 80-byte header, a count, 50 bytes each."""
    blob = path.read_bytes()
    count = int(np.frombuffer(blob[80:84], "<u4")[0])
    assert len(blob) == 84 + 50 * count, path.name
    rec = np.frombuffer(blob[84:], dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    return rec["v"]


def test_native_export_of_an_imported_anatomy(cli_imported, cli_env, tmp_path):
    import nibabel as nib

    out = tmp_path / "native"
    done = _spinesim(cli_env, "anatomy", "export", "cli_import", out)
    assert done.returncode == 0, done.stderr
    # volumes: nibabel reads them back on the anatomy's grid, in its RAS frame
    labels = nib.load(out / "labels.nii.gz")
    assert labels.shape == cli_imported.grid.shape
    assert np.allclose(labels.affine, cli_imported.world_from_voxel)
    assert np.array_equal(np.asarray(labels.dataobj), cli_imported.labels)
    hu = nib.load(out / "hu.nii.gz")
    assert hu.shape == cli_imported.grid.shape and hu.get_data_dtype() == np.int16
    assert np.allclose(hu.affine, cli_imported.world_from_voxel)
    names = json.loads((out / "labels.json").read_text())["labels"]
    assert names[str(tissue_table().id("ligamentum_flavum"))] == "ligamentum_flavum"
    # meshes: every structure as VTP and STL, vertex and triangle counts those of the anatomy's mesh
    meshes = cli_imported.meshes()
    assert {"L4", "sacrum", "dural_sac", "L4-L5.ligamentum_flavum", "L4-L5.disc", "skin"} <= set(meshes)
    for name, mesh in meshes.items():
        stl = out / "meshes" / f"{name}.stl"
        tri = _read_stl(stl)
        assert len(tri) == len(mesh.faces), name
        vtp = ET.parse(out / "meshes" / f"{name}.vtp").getroot()
        assert vtp.tag == "VTKFile" and vtp.get("type") == "PolyData"
        piece = vtp.find("PolyData/Piece")
        assert int(piece.get("NumberOfPoints")) == len(mesh.vertices_mm), name
        assert int(piece.get("NumberOfPolys")) == len(mesh.faces), name
        conn = piece.find("Polys/DataArray[@Name='connectivity']").text.split()
        assert len(conn) == 3 * len(mesh.faces)
        points = np.array(piece.find("Points/DataArray").text.split(), float).reshape(-1, 3)
        # written in LPS (what 3D Slicer assumes for mesh files): x and y negated
        assert np.allclose(points, mesh.vertices_mm * [-1, -1, 1], atol=1e-3)


def test_vtk_reads_the_meshes(tmp_path):
    """VTK's own XML reader (3D Slicer's) reads the VTP back with the same points and triangles."""
    vtk_xml = pytest.importorskip("vtkmodules.vtkIOXML")
    v = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    write_vtp(Mesh(v, f, "bone"), tmp_path / "t.vtp")
    write_stl(Mesh(v, f, "bone"), tmp_path / "t.stl", "t")
    reader = vtk_xml.vtkXMLPolyDataReader()
    reader.SetFileName(str(tmp_path / "t.vtp"))
    reader.Update()
    poly = reader.GetOutput()
    assert poly.GetNumberOfPoints() == 4 and poly.GetNumberOfPolys() == 4
    assert np.allclose(poly.GetPoint(1), (-10.0, 0.0, 0.0))
    tri = _read_stl(tmp_path / "t.stl")
    assert np.allclose(tri[0], v[f[0]] * [-1, -1, 1])
    assert b"SPACE=LPS" in (tmp_path / "t.stl").read_bytes()[:80]


def test_totalsegmentator_export_reimports(cli_imported, cli_env, tmp_path):
    """``--format totalsegmentator`` writes the total task's v2 ids and the CT numbers; the pair is a
    valid input of import-ct again."""
    import nibabel as nib

    out = tmp_path / "ts"
    done = _spinesim(cli_env, "anatomy", "export", "cli_import", out, "--format", "totalsegmentator")
    assert done.returncode == 0, done.stderr
    seg = nib.load(out / "segmentations.nii.gz")
    ids = set(np.unique(np.asarray(seg.dataobj)).tolist()) - {0}
    assert ids <= set(ts_classes())
    names = ts_ids()
    assert {names["vertebrae_L4"], names["vertebrae_L5"], names["sacrum"], names["hip_left"],
            names["kidney_right"]} <= ids
    ct = nib.load(out / "ct.nii.gz")
    assert ct.shape == seg.shape and np.allclose(ct.affine, seg.affine)
    assert np.allclose(seg.affine, cli_imported.world_from_voxel)


def test_cli_errors_are_one_line(cli_env, tmp_path):
    bad = tmp_path / "scan.nii.gz"
    bad.write_bytes(b"not a scan")
    done = _spinesim(cli_env, "import-ct", bad, "--labels", bad, "--name", "x")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spinesim: error: ") and "scan.nii.gz" in lines[0]
    done = _spinesim(cli_env, "anatomy", "export", "nobody_by_this_name", tmp_path / "out")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "nobody_by_this_name" in lines[0]


@pytest.mark.slow
def test_native_export_of_a_scenario_phantom(cli_env, tmp_path):
    """A scenario's patient (another seed) exports natively too, phantom meshes included."""
    import nibabel as nib

    out = tmp_path / "phantom"
    done = _spinesim(cli_env, "anatomy", "export", FLUORO_L4L5, out, "--patient-seed", "3", timeout=900)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["patient"]["seed"] == 3
    labels = nib.load(out / "labels.nii.gz")
    assert np.allclose(labels.affine, manifest["world_from_voxel"])
    assert (out / "meshes" / "L4.stl").exists() and (out / "meshes" / "L4.vtp").exists()
    _read_stl(out / "meshes" / "L4.stl")
