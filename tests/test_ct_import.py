"""Real scans: a CT with its TotalSegmentator segmentation imports as an anatomy a scenario runs on.

The round trip is the check anyone can repeat: the phantom is written in TotalSegmentator's
conventions (the CT numbers of its tissues and a multi-label map of the ``total`` task's classes),
imported back, and must give the same levels, the same landmarks (within what the voxels resolve)
and the same outcome for the expert's attempt. The same CT as a DICOM series, and the same
segmentation as a folder of per-structure masks, must import identically; broken inputs are refused
in one line naming the file; nothing identifying the patient is stored.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from simulator.anatomy.anatomy import anatomy_for_scenario, build_anatomy
from simulator.anatomy.ct_import import hu_to_mu, import_ct, load_imported
from simulator.anatomy.export import export_anatomy
from simulator.anatomy.patient import PatientParameters
from simulator.anatomy.tissues import tid, tissue_table
from simulator.anatomy.totalsegmentator import ts_classes, ts_ids
from simulator.errors import SpineSimError
from simulator.scenario.loader import load_scenario
from simulator.simulation.reference import run_reference
from simulator.simulation.simulation import Simulation

from spine_helpers import FLUORO_L4L5

VOXEL = 1.5  # the session's small anatomy (conftest: seed 1, L3-S1 at 1.5 mm)
# identifiers written into the DICOM test series; none may reach the stored anatomy
PATIENT_NAME = "Testperson^Zelda"
PATIENT_ID = "PID-4471-XQ"
STUDY_DATE = "19770405"
BIRTH_DATE = "19311111"


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ts_export(small_anatomy, tmp_path_factory):
    """The phantom written in TotalSegmentator's conventions (ct.nii.gz, segmentations.nii.gz)."""
    out = tmp_path_factory.mktemp("ts-export")
    export_anatomy(small_anatomy, out, "totalsegmentator")
    return out


@pytest.fixture(scope="module")
def imported(ts_export):
    """The exported phantom imported back (same voxel size, so no resampling blurs it)."""
    import_ct(ts_export / "ct.nii.gz", ts_export / "segmentations.nii.gz", "roundtrip", voxel_mm=VOXEL)
    return load_imported("roundtrip")


def _bone_cut_by_grid_edge(anatomy, level: str) -> bool:
    """Whether the phantom's vertebra reaches the volume's top or bottom face (exact geometry)."""
    s = anatomy.phantom.structure(level)
    lo, hi = anatomy.grid.lo_mm, anatomy.grid.hi_mm
    xs = np.arange(max(lo[0], s.bbox_mm[0, 0]), min(hi[0], s.bbox_mm[1, 0]), 1.0)
    ys = np.arange(max(lo[1], s.bbox_mm[0, 1]), min(hi[1], s.bbox_mm[1, 1]), 1.0)
    for z in (lo[2], hi[2]):
        if not (s.bbox_mm[0, 2] <= z <= s.bbox_mm[1, 2]):
            continue
        X, Y = np.meshgrid(xs, ys, indexing="ij")
        face = np.stack([X.ravel(), Y.ravel(), np.full(X.size, z)], axis=1)
        if (s.field(face) < 0).any():
            return True
    return False


def _write_dicom_series(hu_ras: np.ndarray, affine: np.ndarray, folder: Path) -> None:
    """One axial CT series (CT Image Storage) from an axis-aligned RAS volume, with identifiers set
    (they must not survive the import). Pixels stored unsigned with intercept -1024, as scanners do."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    nx, ny, nz = hu_ras.shape
    v = float(affine[0, 0])
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(nz):
        # rows run posterior (LPS +y), columns to the patient's left (LPS +x)
        pixels = np.ascontiguousarray(hu_ras[::-1, ::-1, k].T) + 1024
        corner_ras = affine @ np.array([nx - 1, ny - 1, k, 1.0])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.PatientName = PATIENT_NAME
        ds.PatientID = PATIENT_ID
        ds.PatientBirthDate = BIRTH_DATE
        ds.StudyDate = STUDY_DATE
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(-corner_ras[0]), float(-corner_ras[1]), float(corner_ras[2])]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [v, v]
        ds.SliceThickness = v
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.PixelData = pixels.astype(np.uint16).tobytes()
        ds.save_as(folder / f"IM{k:04d}.dcm", enforce_file_format=True)


# ------------------------------------------------------------------------------ round trip
def test_round_trip_keeps_the_levels(small_anatomy, imported):
    """Imported back, the phantom covers the same levels, except a vertebra the volume's edge cuts:
    an imported scan counts a level only when it holds the whole vertebra (the phantom, being
    analytic, counts one whose body centre is inside; this region cuts L2 through its body)."""
    cut = {lv for lv in small_anatomy.levels if lv != "S1" and _bone_cut_by_grid_edge(small_anatomy, lv)}
    assert cut == {"L2"}
    assert imported.levels == tuple(lv for lv in small_anatomy.levels if lv not in cut)
    assert imported.world_from_voxel.tolist() == small_anatomy.world_from_voxel.tolist()  # the CT's frame, kept


def test_round_trip_landmarks(small_anatomy, imported):
    """Landmarks defined the same way agree within a voxel; those the import defines from the masks
    differently from the phantom's construction agree within a stated tolerance."""
    ph, im = small_anatomy.landmarks, imported.landmarks
    # same definition (the middle of the body's bone along its axis, the disc between the facing
    # endplate centres): within one voxel, the resolution of the masks
    for lv in ("L3", "L4", "L5"):
        assert np.linalg.norm(im[f"{lv}.body_center"] - ph[f"{lv}.body_center"]) <= VOXEL, lv
    for isp in ("L3-L4", "L4-L5", "L5-S1"):
        assert np.linalg.norm(im[f"{isp}.disc_center"] - ph[f"{isp}.disc_center"]) <= VOXEL, isp
    # an endplate centre is one end of that bone run: quantised to the voxel face it crosses, on an
    # endplate dished by up to 1.2 mm (vertebra.ENDPLATE_DISH_MM) within a voxel of its centre, so a
    # voxel plus 0.5 mm
    for lv in ("L3", "L4", "L5"):
        for name in ("superior_endplate_center", "inferior_endplate_center"):
            key = f"{lv}.{name}"
            assert np.linalg.norm(im[key] - ph[key]) <= VOXEL + 0.5, key
    assert np.linalg.norm(im["S1.superior_endplate_center"] - ph["S1.superior_endplate_center"]) <= VOXEL + 0.5
    # spinous tip: the phantom's is the back of the knob at the process's lower end (a point of its
    # construction); the import's is the middle of the bone within 2 mm of the process's most posterior
    # extent. On this phantom the process's back runs flat for 12-15 mm, so the two lie on the same
    # border up to ~3.5 mm apart along it: 4 mm
    for lv in ("L3", "L4", "L5"):
        assert np.linalg.norm(im[f"{lv}.spinous_tip"] - ph[f"{lv}.spinous_tip"]) <= 4.0, lv
    # interlaminar centre: the middle of the ligamentum flavum in front of the window's middle. The
    # phantom's ligament is seeded 5-6 mm thick and spans its two attachment points; the import derives
    # a 3.5 mm band continuing the upper lamina's front (the masks hold no ligament). The centres differ
    # by up to half the thickness difference plus a voxel: 3 mm. (L5-S1 is not compared: the phantom
    # ends that window 5 mm behind its sacral attachment point, the import at the sacrum's roof, ~6 mm
    # apart along the spine.)
    # The epidural target lies half way across the posterior epidural fat in front of that centre.
    # Along the needle's forward line the phantom's oblique ligament measures ~6 mm (it is crossed at
    # a slant), the import's band 3.5 mm, so the fat's back edge differs by up to 3 mm and the target
    # by half that plus the centre's own 3 mm along the spine: 4.5 mm. The test below checks that the
    # import's target does lie in its epidural fat, in front of the ligament and behind the dura.
    for isp in ("L3-L4", "L4-L5"):
        for name, tolerance_mm in (("interlaminar_center", 3.0), ("epidural_target", 4.5)):
            key = f"{isp}.{name}"
            assert np.linalg.norm(im[key] - ph[key]) <= tolerance_mm, key
    # endplate normals: planes fitted to voxelised endplates 35-50 mm across, where one voxel of
    # error from edge to edge tilts a plane by ~2 degrees (and the C-arm squares the endplate with it)
    for lv in ("L3", "L4", "L5", "S1"):
        cos = float(imported.endplate_normal(lv) @ small_anatomy.endplate_normal(lv))
        assert np.degrees(np.arccos(min(1.0, cos))) < 2.0, lv


def test_round_trip_tissues_along_the_expert_path(small_anatomy, imported):
    """In the midline at L4-L5 the imported anatomy has what the needle must meet, in order: the
    derived ligamentum flavum, posterior epidural fat, the dura, CSF; and the epidural target is in
    epidural fat."""
    target = imported.landmark("L4-L5.epidural_target")
    assert imported.tissue_at(target[None])[0] == tid("epidural_fat")
    start = imported.landmark("L4-L5.interlaminar_center")
    forward = imported.landmark("L4.body_center") - imported.landmark("L4.spinous_tip")
    forward /= np.linalg.norm(forward)
    t = np.arange(0.0, 20.0, 0.1)
    names = [tissue_table()[int(i)].name for i in imported.tissue_at(start + t[:, None] * forward)]
    order = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
    assert order[:4] == ["ligamentum_flavum", "epidural_fat", "dura", "csf"]


def test_round_trip_expert_attempt_same_outcome(small_anatomy, imported):
    """The expert's attempt succeeds on the imported phantom as on the phantom. Its entry is the
    reference's own choice on each anatomy, so the phantom's recorded commands are also replayed on
    the import: the same outcome, unless the recorded path passes the phantom's bone closer than the
    voxels resolve (then the replay may stop on that very bone, and only there)."""
    loaded = load_scenario(FLUORO_L4L5)
    on_phantom = run_reference(Simulation(loaded, anatomy=small_anatomy, image_size_px=96))
    on_import = run_reference(Simulation(loaded, anatomy=imported, image_size_px=96))
    assert on_phantom.scorecard.placement.outcome == "success"
    assert on_import.scorecard.placement.outcome == "success"
    assert on_import.scorecard.placement.interspace == "L4-L5"
    replay = Simulation.replay(loaded, on_phantom.record, anatomy=imported, image_size_px=96)
    outcome = replay.scorecard.placement.outcome
    if outcome != "success":
        # the replay may differ only by a bone the recorded path grazes: a voxel's half-diagonal is
        # the most the masks can misplace a bone surface
        assert outcome == "bone"
        tip = np.asarray(replay.scorecard.placement.tip_mm)
        structure = imported.structure_at(tip + replay.needle.direction * 0.3 * VOXEL)
        clearance = float(small_anatomy.phantom.structure(structure).field(tip[None])[0])
        assert clearance < 0.5 * np.sqrt(3) * VOXEL


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_round_trip_replay_same_outcome_other_patients(seed, tmp_path):
    """Other seeded patients: the phantom's recorded expert attempt, replayed on its imported copy,
    ends in the epidural space at L4-L5 as on the phantom."""
    import tomli_w

    from simulator.scenario.loader import parse_scenario

    phantom = build_anatomy(PatientParameters(seed=seed), voxel_mm=VOXEL, levels=("L3", "S1"))
    export_anatomy(phantom, tmp_path, "totalsegmentator")
    import_ct(tmp_path / "ct.nii.gz", tmp_path / "segmentations.nii.gz", f"seed{seed}", voxel_mm=VOXEL)
    imported = load_imported(f"seed{seed}")
    loaded = load_scenario(FLUORO_L4L5)
    data = tomllib.loads(loaded.text)
    data["patient"] = {"seed": seed}
    loaded = parse_scenario(tomli_w.dumps(data), f"seed {seed}")
    on_phantom = run_reference(Simulation(loaded, anatomy=phantom, image_size_px=64))
    assert on_phantom.scorecard.placement.outcome == "success"
    assert run_reference(Simulation(loaded, anatomy=imported, image_size_px=64)).scorecard.placement.outcome == "success"
    replay = Simulation.replay(loaded, on_phantom.record, anatomy=imported, image_size_px=64)
    assert replay.scorecard.placement.outcome == "success"


def test_imported_attenuation_follows_deepdrr_mapping(imported):
    """mu from the CT numbers: soft tissue (40 HU) and cortical bone (1560 HU) match the tissue table
    to 2% (the same NIST data behind both), air is almost nothing."""
    table = tissue_table()
    for name in ("muscle", "cortical_bone"):
        t = table[name]
        assert hu_to_mu(np.array([t.hu]))[0] == pytest.approx(t.mu_60kev_per_mm, rel=0.02)
    assert hu_to_mu(np.array([-1000.0]))[0] < 2 * table["air"].mu_60kev_per_mm
    mu = imported.mu_volume()
    assert mu.shape == imported.grid.shape and mu.dtype == np.float32


def test_loading_an_imported_anatomy_is_fast(imported):
    """The import stores everything derived; loading reads arrays only."""
    assert load_imported("roundtrip").info.seconds < 2.0


# ------------------------------------------------------------------------------ other inputs
def test_dicom_series_imports_like_the_nifti(ts_export, imported, tmp_path):
    """The same CT as a DICOM series folder imports to the same labels and landmarks."""
    import nibabel as nib

    img = nib.load(ts_export / "ct.nii.gz")
    _write_dicom_series(np.asarray(img.dataobj).astype(np.int16), img.affine, tmp_path / "series")
    import_ct(tmp_path / "series", ts_export / "segmentations.nii.gz", "from_dicom", voxel_mm=VOXEL)
    dicom = load_imported("from_dicom")
    assert dicom.grid.shape == imported.grid.shape
    assert np.array_equal(dicom.world_from_voxel, imported.world_from_voxel)
    assert np.array_equal(dicom.labels, imported.labels)
    assert dicom.levels == imported.levels
    for key, value in imported.landmarks.items():
        assert np.allclose(dicom.landmarks[key], value, atol=1e-6), key


def test_mask_folder_imports_like_the_multilabel_file(ts_export, imported, tmp_path):
    """A folder of per-structure masks named after the classes imports like the multi-label file."""
    import nibabel as nib

    seg = nib.load(ts_export / "segmentations.nii.gz")
    data = np.asarray(seg.dataobj)
    folder = tmp_path / "masks"
    folder.mkdir()
    names = ts_classes()
    for cid in np.unique(data):
        if cid:
            nib.save(nib.Nifti1Image((data == cid).astype(np.uint8), seg.affine), folder / f"{names[int(cid)]}.nii.gz")
    assert (folder / "vertebrae_L4.nii.gz").exists() and (folder / "sacrum.nii.gz").exists()
    import_ct(ts_export / "ct.nii.gz", folder, "from_masks", voxel_mm=VOXEL)
    masks = load_imported("from_masks")
    assert np.array_equal(masks.labels, imported.labels)
    assert masks.levels == imported.levels


def test_no_patient_identifiers_are_stored(tmp_path, ts_export):
    """Import keeps pixel data and geometry only: no name, id or date of the DICOM header is in any
    stored file."""
    import nibabel as nib

    img = nib.load(ts_export / "ct.nii.gz")
    _write_dicom_series(np.asarray(img.dataobj).astype(np.int16), img.affine, tmp_path / "series")
    folder = import_ct(tmp_path / "series", ts_export / "segmentations.nii.gz", "anonymous", voxel_mm=VOXEL)
    stored = [p for p in folder.rglob("*") if p.is_file()]
    assert stored
    needles = [s.encode() for s in (PATIENT_NAME, "Testperson", "Zelda", PATIENT_ID, STUDY_DATE, BIRTH_DATE,
                                    str(tmp_path))]
    for path in stored:
        blob = path.read_bytes()
        for needle in needles:
            assert needle not in blob, f"{needle!r} found in {path.name}"
    meta = json.loads((folder / "meta.json").read_text())
    assert set(meta["sources"]) == {"ct_sha256", "labels_sha256"}


# ------------------------------------------------------------------------------ refusals
def _one_line(err: SpineSimError) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def test_corrupt_nifti_is_refused_naming_the_file(ts_export, tmp_path):
    bad = tmp_path / "broken_ct.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 definitely not a NIfTI image")
    with pytest.raises(SpineSimError) as err:
        import_ct(bad, ts_export / "segmentations.nii.gz", "broken")
    assert "broken_ct.nii.gz" in _one_line(err.value)
    truncated = tmp_path / "truncated_seg.nii.gz"
    truncated.write_bytes((ts_export / "segmentations.nii.gz").read_bytes()[:3000])
    with pytest.raises(SpineSimError) as err:
        import_ct(ts_export / "ct.nii.gz", truncated, "broken")
    assert "truncated_seg.nii.gz" in _one_line(err.value)


def test_segmentation_on_another_grid_is_refused(ts_export, tmp_path):
    import nibabel as nib

    seg = nib.load(ts_export / "segmentations.nii.gz")
    shifted = seg.affine.copy()
    shifted[2, 3] += 3.0
    moved = tmp_path / "moved_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(seg.dataobj), shifted), moved)
    with pytest.raises(SpineSimError) as err:
        import_ct(ts_export / "ct.nii.gz", moved, "moved")
    assert "moved_seg.nii.gz" in _one_line(err.value) and "grid" in str(err.value)
    cropped = tmp_path / "cropped_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(seg.dataobj)[:, :, 5:], seg.affine), cropped)
    with pytest.raises(SpineSimError) as err:
        import_ct(ts_export / "ct.nii.gz", cropped, "cropped")
    assert "cropped_seg.nii.gz" in _one_line(err.value)


def test_segmentation_without_vertebrae_is_refused(ts_export, tmp_path):
    import nibabel as nib

    seg = nib.load(ts_export / "segmentations.nii.gz")
    data = np.asarray(seg.dataobj).copy()
    keep = {ts_ids()["kidney_left"], ts_ids()["kidney_right"], ts_ids()["hip_left"]}
    data[~np.isin(data, list(keep))] = 0
    organs = tmp_path / "organs_only.nii.gz"
    nib.save(nib.Nifti1Image(data, seg.affine), organs)
    with pytest.raises(SpineSimError) as err:
        import_ct(ts_export / "ct.nii.gz", organs, "organs")
    assert "organs_only.nii.gz" in _one_line(err.value) and "no vertebrae" in str(err.value)


def test_unknown_imported_name_is_refused():
    with pytest.raises(SpineSimError) as err:
        load_imported("no_such_patient")
    assert "no_such_patient" in _one_line(err.value)


def test_scenario_at_a_level_the_scan_lacks_is_refused(tmp_path):
    """A scan of L1-L3 (an upper lumbar CT) imports, covers its whole vertebrae, and refuses the
    L4-L5 scenario with a message saying what it covers; an L2-L3 scenario runs on it."""
    upper = build_anatomy(PatientParameters(seed=1), voxel_mm=2.0, levels=("L1", "L3"))
    export_anatomy(upper, tmp_path / "ts", "totalsegmentator")
    import_ct(tmp_path / "ts" / "ct.nii.gz", tmp_path / "ts" / "segmentations.nii.gz", "upper_lumbar", voxel_mm=2.0)
    anatomy = load_imported("upper_lumbar")
    assert {"L1", "L2", "L3"} <= set(anatomy.levels) and "L4" not in anatomy.levels
    text = load_scenario(FLUORO_L4L5).text
    text = text.replace("voxel_mm = 1.0\n", "").replace('levels = ["L2", "S1"]', 'ct = "upper_lumbar"')
    scenario = tmp_path / "l4l5_on_upper_lumbar.toml"
    scenario.write_text(text)
    with pytest.raises(SpineSimError) as err:
        anatomy_for_scenario(load_scenario(scenario).scenario)
    message = _one_line(err.value)
    assert "upper_lumbar" in message and "L4" in message and "L5" in message
    covered = tmp_path / "l2l3_on_upper_lumbar.toml"
    covered.write_text(text.replace('target_level = "L4-L5"', 'target_level = "L2-L3"'))
    assert anatomy_for_scenario(load_scenario(covered).scenario).levels == anatomy.levels


# ------------------------------------------------------------------------------ rendering a CT
@pytest.mark.parametrize("oblique, tilt", [(0.0, 0.0), (90.0, 0.0), (-35.0, 12.0)])
def test_ct_render_agrees_with_an_independent_line_integral(imported, tmp_path, oblique, tilt):
    """``spinesim render ct:NAME --raw --geometry`` gives line integrals that another renderer,
    knowing only the geometry file (source, pixel grid, world_from_voxel, the HU volume and the
    HU-to-attenuation mapping as written there), reproduces within 1% (here: dense trilinear
    sampling along each ray with scipy, on pixels across the image)."""
    from scipy import ndimage

    from simulator.cli import main

    raw_path, geo_path = tmp_path / "raw.npy", tmp_path / "geometry.json"
    assert main(["render", "ct:roundtrip", "--oblique", str(oblique), "--tilt", str(tilt), "--size", "64",
                 "--out", str(tmp_path / "image.png"), "--raw", str(raw_path), "--geometry", str(geo_path)]) == 0
    raw = np.load(raw_path)
    geo = json.loads(geo_path.read_text())
    mapping = geo["hu_to_mu"]
    hu = np.load(geo["hu_volume"]).astype(np.float64)
    # the mapping exactly as the file states it, written out again here
    density = np.maximum(0.0, np.minimum(0.001029 * hu + 1.030, 0.0005886 * hu + 1.03))
    mass = np.full(hu.shape, float(mapping["table"][-1][2]))
    for upper, _, value in reversed(mapping["table"][:-1]):
        mass[hu <= float(upper)] = float(value)
    mu = ndimage.gaussian_filter(density * mass / 10.0, mapping["then_gaussian_sigma_voxels"])
    voxel_from_world = np.linalg.inv(np.array(geo["world_from_voxel"]))
    source = np.array(geo["source_mm"])
    rng = np.random.default_rng(5)
    pixels = rng.integers(8, 56, size=(40, 2))
    for r, c in pixels:
        pixel = (np.array(geo["pixel00_mm"]) + r * np.array(geo["row_step_mm"]) + c * np.array(geo["col_step_mm"]))
        length = float(np.linalg.norm(pixel - source))
        step_mm = 0.1
        t = np.arange(0.0, length, step_mm)
        world = source + t[:, None] * (pixel - source) / length
        index = (voxel_from_world[:3, :3] @ world.T).T + voxel_from_world[:3, 3]
        samples = ndimage.map_coordinates(mu, index.T, order=1, mode="constant", cval=0.0)
        expected = float(samples.sum() * step_mm)
        if expected > 0.5:  # rays through the patient
            assert raw[r, c] == pytest.approx(expected, rel=0.01), (r, c)
    assert geo["energy_kev"] == 60.0 and (geo["rows"], geo["cols"]) == raw.shape == (64, 64)
