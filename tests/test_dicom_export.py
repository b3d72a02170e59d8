"""DICOM export of an attempt's X-ray images: the files read back with the same pixels, angles and
dose, carry no real patient, get the same UIDs on every export, and pass the independent validator
``dciodvfy`` (Debian's ``dicom3tools``; the tests fail, not skip, without it: CI installs it)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import numpy as np
import pydicom
import pytest

from simulator.errors import SpineSimError
from simulator.imaging.carm import detector_direction
from simulator.protocol import commands as cmd
from simulator.records.dicom_export import (
    XA_IMAGE_STORAGE,
    AttemptInfo,
    ExportedImage,
    attempt_info_from_simulation,
    images_from_simulation,
    patient_orientation,
    positioner_angles,
    write_attempt_dicom,
)

STARTED = datetime(2024, 5, 6, 9, 30, 0, tzinfo=timezone(timedelta(hours=2)))


def _validator_output(tool: str, *paths) -> tuple[list[str], list[str]]:
    """``tool``'s (dciodvfy, dcentvfy) error and warning lines for ``paths``."""
    exe = shutil.which(tool)
    if exe is None:
        pytest.fail(f"{tool} is not installed: install Debian's dicom3tools package "
                    "(apt-get install -y dicom3tools) to validate the DICOM export")
    done = subprocess.run([exe, *map(str, paths)], capture_output=True, timeout=120, check=False)
    lines = (done.stdout + done.stderr).decode("utf-8", "replace").splitlines()
    return [s for s in lines if s.startswith("Error")], [s for s in lines if s.startswith("Warning")]


def _assert_valid(paths) -> None:
    for path in paths:
        errors, warnings = _validator_output("dciodvfy", path)
        assert not errors, f"dciodvfy {path}:\n" + "\n".join(errors + warnings)
    errors, warnings = _validator_output("dcentvfy", *paths)  # patient/study/series agree across files
    assert not errors, "dcentvfy:\n" + "\n".join(errors + warnings)


def _exposure(dap_gy_cm2: float = 0.01234, mode: str = "acquisition") -> dict:
    return {"mode": mode, "kvp": 78.3, "mas_per_frame": 2.345, "frames": 1, "air_kerma_mgy": 0.1234,
            "dap_gy_cm2": dap_gy_cm2}


def _images() -> list[ExportedImage]:
    rng = np.random.default_rng(5)
    full = ExportedImage(rng.integers(0, 256, (48, 64), dtype=np.uint8), oblique_deg=25.0, tilt_deg=-8.0,
                         exposure=_exposure(), time_offset_s=12.5, pixel_spacing_mm=(0.5859375, 0.5859375),
                         source_to_detector_mm=1020.0, source_to_isocentre_mm=530.0, field_of_view_mm=300.0,
                         field_shape="ROUND", patient_orientation=("RP", "F"))
    # odd pixel count (padded on disk), fluoroscopy below 1 mAs, no geometry known
    bare = ExportedImage(rng.integers(0, 256, (7, 9), dtype=np.uint8), oblique_deg=-90.0, tilt_deg=0.0,
                         exposure={"mode": "fluoroscopy", "kvp": 70.0, "mas_per_frame": 0.2, "frames": 2,
                                   "air_kerma_mgy": 0.01, "dap_gy_cm2": 0.001}, time_offset_s=40.0)
    return [full, bare]


def _attempt(attempt_id: str = "20240506-0930-ab12", trainee: str = "Zoë Trainee") -> AttemptInfo:
    return AttemptInfo(attempt_id=attempt_id, scenario_id="lumbar_interlaminar_l4l5_fluoroscopy", trainee=trainee,
                       started=STARTED, app_version="0.1.0")


# ------------------------------------------------------------------------------ format
def test_files_read_back_with_the_same_pixels_angles_and_dose(tmp_path):
    """Each image is one XA instance of one study and series; pydicom reads back its pixels, the
    C-arm angles in DICOM's patient-based convention and the dose in standard attributes."""
    images = _images()
    paths = write_attempt_dicom(tmp_path / "dicom", images, _attempt())
    assert [p.name for p in paths] == ["20240506-0930-ab12_001.dcm", "20240506-0930-ab12_002.dcm"]
    read = [pydicom.dcmread(p) for p in paths]
    for image, ds in zip(images, read):
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == XA_IMAGE_STORAGE and ds.Modality == "XA"
        assert np.array_equal(ds.pixel_array, image.pixels)
        primary, secondary = positioner_angles(image.oblique_deg, image.tilt_deg)
        assert float(ds.PositionerPrimaryAngle) == pytest.approx(primary)
        assert float(ds.PositionerSecondaryAngle) == pytest.approx(secondary)
        assert float(ds.ImageAndFluoroscopyAreaDoseProduct) == pytest.approx(10.0 * image.exposure["dap_gy_cm2"])
        assert float(ds.KVP) == pytest.approx(image.exposure["kvp"])
        mas = image.exposure["mas_per_frame"] * image.exposure["frames"]
        assert int(ds.ExposureInuAs) == round(1000 * mas)
        assert "SIMULATED" in ds.ImageComments and f"{image.exposure['air_kerma_mgy']:.4g} mGy" in ds.ImageComments
        assert ds.BurnedInAnnotation == "NO" and ds.Manufacturer == "SpineSim"
        acquired = datetime.strptime(ds.AcquisitionDateTime, "%Y%m%d%H%M%S.%f%z")
        assert acquired == STARTED + timedelta(seconds=image.time_offset_s)
    full, bare = read
    assert float(full.PositionerPrimaryAngle) == pytest.approx(155.0)  # prone AP is 180, +25 towards LAO
    assert float(bare.PositionerPrimaryAngle) == pytest.approx(-90.0)  # detector at the patient's right
    assert full.RadiationSetting == "GR" and bare.RadiationSetting == "SC"
    assert int(full.Exposure) == 2 and bare.Exposure in (None, "")  # 0.4 mAs: empty, not 0
    assert int(bare.ExposureInuAs) == 400
    assert list(full.PatientOrientation) == ["RP", "F"]
    assert [float(v) for v in full.ImagerPixelSpacing] == pytest.approx([0.5859375] * 2)
    assert [float(v) for v in full.PixelSpacing] == pytest.approx([0.5859375 * 530 / 1020] * 2)
    assert float(full.DistanceSourceToDetector) == 1020.0 and float(full.DistanceSourceToPatient) == 530.0
    assert "ImagerPixelSpacing" not in bare and "PositionerPrimaryAngle" in bare
    assert "EntranceDoseInmGy" not in full  # only on request: not an XA attribute
    assert len({ds.StudyInstanceUID for ds in read}) == 1 and len({ds.SeriesInstanceUID for ds in read}) == 1
    assert len({ds.SOPInstanceUID for ds in read}) == 2
    assert [int(ds.InstanceNumber) for ds in read] == [1, 2]


def test_files_carry_a_synthetic_patient_and_the_trainee_only_as_operator(tmp_path):
    paths = write_attempt_dicom(tmp_path, _images(), _attempt(trainee="Zoë Trainee"))
    for ds in map(pydicom.dcmread, paths):
        assert str(ds.PatientName) == "SpineSim^Phantom"
        assert ds.PatientID.startswith("SIM-")
        assert ds.PatientIdentityRemoved == "YES" and "Synthetic" in ds.DeidentificationMethod
        assert ds.PatientBirthDate == "" and ds.PatientSex == ""
        assert str(ds.OperatorsName.family_name) == "Zoë Trainee"
        holders = [e.keyword for e in ds.iterall() if e.VR in ("PN", "LO", "LT", "SH") and "Trainee" in str(e.value)]
        assert holders == ["OperatorsName"]


def test_dciodvfy_finds_no_errors(tmp_path):
    """The independent validator accepts the files (warnings allowed), also with the optional
    Entrance Dose in mGy, which it reports as a Standard Extended attribute."""
    _assert_valid(write_attempt_dicom(tmp_path / "plain", _images(), _attempt()))
    paths = write_attempt_dicom(tmp_path / "kerma", _images(), _attempt(trainee=""), kerma_as_entrance_dose=True)
    _assert_valid(paths)
    ds = pydicom.dcmread(paths[0])
    assert float(ds.EntranceDoseInmGy) == pytest.approx(0.1234) and "OperatorsName" not in ds


def test_a_re_export_gives_the_same_uids_and_bytes(tmp_path):
    first = write_attempt_dicom(tmp_path / "a", _images(), _attempt())
    again = write_attempt_dicom(tmp_path / "b", _images(), _attempt())
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    other = pydicom.dcmread(write_attempt_dicom(tmp_path / "c", _images(), _attempt("another-attempt"))[0])
    ds = pydicom.dcmread(first[0])
    assert ds.StudyInstanceUID.startswith("2.25.")
    assert other.StudyInstanceUID != ds.StudyInstanceUID and other.SOPInstanceUID != ds.SOPInstanceUID


@pytest.mark.parametrize("oblique, tilt", [(0, 0), (25, 0), (-25, 10), (90, 0), (-90, -15), (180, 0), (135, 20)])
def test_positioner_angles_point_the_detector_where_the_simulator_does(oblique, tilt):
    """DICOM's angles place the detector about the patient (0 anterior, +90 the patient's left,
    secondary + towards the head); turned back into a direction they match the C-arm's."""
    primary, secondary = positioner_angles(oblique, tilt)
    assert -180.0 < primary <= 180.0
    p, s = np.radians(primary), np.radians(secondary)
    # world RAS: anterior +y, patient's left -x, head +z
    dicom = np.cos(s) * np.array([-np.sin(p), np.cos(p), 0.0]) + np.sin(s) * np.array([0.0, 0.0, 1.0])
    assert dicom == pytest.approx(detector_direction(oblique, tilt), abs=1e-9)


def test_patient_orientation_letters():
    assert patient_orientation([1, 0, 0], [0, 0, -1]) == ("R", "F")
    assert patient_orientation([0.8, -0.6, 0], [0, 0, -1]) == ("RP", "F")
    assert patient_orientation([0, 0.2, 0.9], [-1, 0, 0]) == ("HA", "L")


# ------------------------------------------------------------------------------ errors
def test_no_images_is_a_one_line_error_naming_the_folder(tmp_path):
    with pytest.raises(SpineSimError, match="no X-ray images") as err:
        write_attempt_dicom(tmp_path / "out", [], _attempt())
    assert str(tmp_path / "out") in str(err.value) and "\n" not in str(err.value)


def test_an_unwritable_folder_is_a_one_line_error_naming_it(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    target = blocker / "dicom"  # under a regular file: fails even for root
    with pytest.raises(SpineSimError) as err:
        write_attempt_dicom(target, _images(), _attempt())
    assert str(target) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SpineSimError, match="not a folder"):
        write_attempt_dicom(blocker, _images(), _attempt())


def test_pixels_must_be_a_2d_uint8_image(tmp_path):
    bad = ExportedImage(np.zeros((4, 4), np.float32), 0.0, 0.0)
    with pytest.raises(SpineSimError, match="uint8"):
        write_attempt_dicom(tmp_path, [bad], _attempt())


# ------------------------------------------------------------------------------ from a simulation
def test_export_of_a_simulated_attempt(make_sim, tmp_path):
    """The images of a real (small) attempt, an AP and an oblique with cranial tilt, export with
    their pixels, poses, geometry and dose, and pass the validator."""
    sim = make_sim()
    sim.apply(cmd.AcquireImage())
    sim.apply(cmd.MoveCArm(oblique_deg=25.0, tilt_deg=10.0))
    sim.apply(cmd.AcquireImage())
    events = [e for e in sim.events if e.kind == "image_acquired"]
    images = images_from_simulation(sim)
    assert len(images) == len(sim.images) == 2
    attempt = attempt_info_from_simulation(sim, "sim-attempt-1", "trainee-07", STARTED)
    paths = write_attempt_dicom(tmp_path, images, attempt)
    _assert_valid(paths)
    read = [pydicom.dcmread(p) for p in paths]
    for image, event, ds in zip(sim.images, events, read):
        assert np.array_equal(ds.pixel_array, image.display)
        primary, secondary = positioner_angles(image.pose.oblique_deg, image.pose.tilt_deg)
        assert float(ds.PositionerPrimaryAngle) == pytest.approx(primary)
        assert float(ds.PositionerSecondaryAngle) == pytest.approx(secondary)
        assert float(ds.ImageAndFluoroscopyAreaDoseProduct) == pytest.approx(10.0 * event.data["dap_gy_cm2"])
        assert float(ds.KVP) == pytest.approx(event.data["kvp"])
        assert float(ds.DistanceSourceToDetector) == pytest.approx(1020.0)
        assert float(ds.DistanceSourceToPatient) == pytest.approx(530.0)
        assert [float(v) for v in ds.ImagerPixelSpacing] == pytest.approx([300.0 / image.display.shape[0]] * 2)
        acquired = datetime.strptime(ds.AcquisitionDateTime, "%Y%m%d%H%M%S.%f%z")
        assert acquired == STARTED + timedelta(seconds=event.t_s)
    ap, oblique = read
    assert float(ap.PositionerPrimaryAngle) == pytest.approx(180.0) and list(ap.PatientOrientation) == ["R", "F"]
    assert float(oblique.PositionerPrimaryAngle) == pytest.approx(155.0)
    assert float(oblique.PositionerSecondaryAngle) == pytest.approx(10.0)
    assert ap.PatientID == oblique.PatientID and ap.PatientID.startswith("SIM-PHANTOM-")
    assert str(ap.OperatorsName.family_name) == "trainee-07"
