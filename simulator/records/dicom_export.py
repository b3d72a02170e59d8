"""Export an attempt's X-ray images as DICOM files that open in any viewer.

One attempt is one DICOM Study with one Series; each acquired image is one single-frame instance of
the **X-Ray Angiographic Image** IOD (SOP Class 1.2.840.10008.5.1.4.1.1.12.1, Modality ``XA``).
Why XA: it is what C-arms store, and its mandatory XA Positioner module has exactly the C-arm's two
angles (Positioner Primary / Secondary Angle) and its X-Ray Acquisition module the technique and the
dose-area product, so everything the simulator knows about an image lands in standard attributes
of the IOD itself. The Radiofluoroscopic IOD (RF) has no C-arm angles, and Digital X-Ray (DX) is
for radiography with a "for presentation" detector chain the simulator does not model.

What the files hold:

- the pixels as the monitor showed them (8-bit, MONOCHROME2, bone dark; Pixel Intensity
  Relationship ``DISP``), and a window spanning the full 0-255 range;
- the geometry: Positioner Primary / Secondary Angle (see :func:`positioner_angles` for the sign
  convention), source-to-detector and source-to-isocentre distances, the magnification, the pixel
  spacing at the detector (Imager Pixel Spacing) and at the isocentre (Pixel Spacing, calibration
  ``GEOMETRY``), the Patient Orientation of the rows and columns;
- the simulated dose: KVP, Exposure (mAs, whole numbers) and Exposure in uAs, Radiation Setting
  (``GR`` for an acquisition, ``SC`` for fluoroscopy), Image and Fluoroscopy Area Dose Product in
  dGy cm2 (the simulator's Gy cm2 times 10); all of it, with the air kerma at the interventional
  reference point, also spelled out in Image Comments. The XA IOD has no attribute for the kerma:
  on request (``kerma_as_entrance_dose``) it goes in Entrance Dose in mGy (0040,8302), an attribute
  of the DX/MG X-Ray Acquisition Dose module, which makes the files "Standard Extended" (validators
  warn) and which strictly means the dose at the skin, not at the reference point.

No real patient: the patient is ``SpineSim^Phantom`` with a generated Patient ID, no birth date or
sex, Patient Identity Removed ``YES`` with the De-identification Method saying the data are
synthetic; Body Part Examined ``SPINE`` (unpaired: no Laterality); Burned In Annotation and Recognizable Visual Features ``NO``; Manufacturer ``SpineSim``.
The trainee (a display name or pseudonym) is the Operator, never the patient.

UIDs are derived from the attempt id and the scenario id (``2.25.`` and a name-based UUID, see
:func:`_uid`), so exporting the same attempt again gives the same Study, Series and SOP Instance
UIDs, the same file names and the same bytes, overwriting the earlier export.

The public functions need only plain data (:class:`ExportedImage`, :class:`AttemptInfo`);
:func:`images_from_simulation` and :func:`attempt_info_from_simulation` build them from a
:class:`~simulator.simulation.simulation.Simulation`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from simulator import __version__
from simulator.errors import SpineSimError

#: X-Ray Angiographic Image Storage.
XA_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.12.1"
MANUFACTURER = "SpineSim"
MODEL_NAME = "SpineSim spinal injection training simulator"
PATIENT_NAME = "SpineSim^Phantom"
DEIDENTIFICATION_METHOD = "Synthetic: SpineSim software phantom, no real patient"
#: The exposure fields (:meth:`simulator.imaging.dose.Exposure.as_dict`) an export reads.
EXPOSURE_KEYS = ("mode", "kvp", "mas_per_frame", "frames", "air_kerma_mgy", "dap_gy_cm2")
#: Radiation Setting (0018,1155): ``GR`` a high-dose acquisition, ``SC`` low-dose fluoroscopy.
RADIATION_SETTING = {"acquisition": "GR", "fluoroscopy": "SC", "subtraction": "SC"}
#: Namespace of the name-based UUIDs behind the export's UIDs (fixed: changing it changes every UID).
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://spinesim.invalid/dicom-export")
#: DICOM Patient Orientation letters of the world frame's axes (RAS: +x right, +y anterior, +z head).
_AXIS_LETTERS = (("R", "L"), ("A", "P"), ("H", "F"))


@dataclass(frozen=True)
class ExportedImage:
    """One image to export, as plain data.

    Attributes
    ----------
    pixels : ndarray (rows, cols), uint8
        What the monitor showed (bone dark).
    oblique_deg, tilt_deg : float
        The C-arm's pose in the simulator's convention (:mod:`simulator.imaging.carm`): oblique
        positive with the detector towards the patient's left, tilt positive with the detector
        towards the head.
    exposure : mapping
        :meth:`simulator.imaging.dose.Exposure.as_dict`: ``mode``, ``kvp``, ``mas_per_frame``,
        ``frames``, ``air_kerma_mgy``, ``dap_gy_cm2`` (missing keys leave their attributes empty).
    time_offset_s : float
        Simulated seconds from the attempt's start to the acquisition.
    pixel_spacing_mm : (float, float) or None
        Spacing at the detector (between rows, between columns), mm.
    source_to_detector_mm, source_to_isocentre_mm : float or None
    field_of_view_mm : float or None
        The detector field in use (a magnification mode's smaller field).
    field_shape : {"ROUND", "RECTANGLE"} or None
        An image intensifier's round field or a flat panel's square one.
    patient_orientation : (str, str) or None
        DICOM Patient Orientation: the patient directions of the rows (left to right) and the
        columns (top to bottom), e.g. ``("R", "F")`` for a prone AP.
    """

    pixels: np.ndarray
    oblique_deg: float
    tilt_deg: float
    exposure: Mapping[str, Any] = field(default_factory=dict)
    time_offset_s: float = 0.0
    pixel_spacing_mm: tuple[float, float] | None = None
    source_to_detector_mm: float | None = None
    source_to_isocentre_mm: float | None = None
    field_of_view_mm: float | None = None
    field_shape: str | None = None
    patient_orientation: tuple[str, str] | None = None


@dataclass(frozen=True)
class AttemptInfo:
    """The attempt the images belong to.

    Attributes
    ----------
    attempt_id : str
        Stable id of the attempt (the UIDs and file names are derived from it and the scenario id).
    scenario_id : str
    trainee : str
        Display name or pseudonym, written as the Operator (empty: none written).
    started : datetime
        When the attempt started (naive: local time, no time zone written).
    app_version : str
    patient_id : str or None
        Patient ID of the simulated patient (None: one generated from the attempt id).
    body_part : str
        Body Part Examined (a DICOM defined term: SPINE, CSPINE, TSPINE, LSPINE, SSPINE, ...).
    """

    attempt_id: str
    scenario_id: str
    trainee: str
    started: datetime
    app_version: str = __version__
    patient_id: str | None = None
    body_part: str = "SPINE"


# ------------------------------------------------------------------------------ conversions
def positioner_angles(oblique_deg: float, tilt_deg: float) -> tuple[float, float]:
    """DICOM Positioner Primary and Secondary Angle of a C-arm pose.

    DICOM (PS3.3 C.8.7.5) places the detector about the *patient*: the primary angle lies in the
    transverse plane, 0 with the detector in front of the patient's chest (anterior), +90 at the
    patient's left (LAO), -90 at the right (RAO), range -180..180; the secondary angle tilts out of
    that plane, positive towards the head (CRA), negative towards the feet (CAU).

    The simulator measures oblique from the detector *behind* the patient (posterior, the AP view
    of a prone patient), positive towards the patient's left; tilt positive towards the head. So
    ``primary = 180 - oblique`` (wrapped to -180..180: a prone AP is 180, oblique +30 is 150 or
    LAO 150, oblique -30 is -150 or RAO 150, a left lateral +90 is LAO 90) and ``secondary = tilt``.
    """
    primary = 180.0 - float(oblique_deg)
    primary = (primary + 180.0) % 360.0 - 180.0  # -180 <= primary < 180, then -180 written as 180
    if primary == -180.0:
        primary = 180.0
    return primary, float(tilt_deg)


def patient_orientation(row_direction, column_direction) -> tuple[str, str]:
    """DICOM Patient Orientation letters of two world (RAS) directions: the rows' (along a row,
    left to right on screen) and the columns' (down a column), major axis first."""
    return _letters(row_direction), _letters(column_direction)


def _letters(direction) -> str:
    v = np.asarray(direction, float)
    v = v / np.linalg.norm(v)
    order = np.argsort(-np.abs(v))
    return "".join(_AXIS_LETTERS[i][0 if v[i] > 0 else 1] for i in order if abs(v[i]) > 1e-3)


def _uid(*parts: str) -> str:
    """A UID that depends only on ``parts``: ``2.25.`` and a name-based (SHA-1, version 5) UUID, as
    PS3.5 B.2 allows. Not ``pydicom.uid.generate_uid(prefix=None, entropy_srcs=...)``: with no
    prefix pydicom ignores the entropy sources and returns a random UUID."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, chr(31).join(parts)).int}"


def _ds(value: float) -> str:
    """A Decimal String of at most 16 characters (10 significant digits: no trailing zeros)."""
    text = f"{float(value):.10g}"
    if len(text) <= 16:
        return text
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))


def _person_name(text: str) -> str:
    """Free text as one PN component (no ``^ = \\`` delimiters, at most 64 characters)."""
    cleaned = re.sub(r"[\\^=\x00-\x1f]", " ", str(text))
    return " ".join(cleaned.split())[:64]


def _lo(text: str, limit: int = 64) -> str:
    cleaned = re.sub(r"[\\\x00-\x1f]", " ", str(text))
    return " ".join(cleaned.split())[:limit]


def _file_stem(attempt_id: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", attempt_id).strip("._") or "attempt"
    return stem[:60]


def _datetime_parts(moment: datetime) -> tuple[str, str, str]:
    """DICOM DA, TM and DT (the DT with the UTC offset when the moment has a time zone)."""
    da = moment.strftime("%Y%m%d")
    tm = moment.strftime("%H%M%S.%f")
    dt = da + tm
    offset = moment.utcoffset()
    if offset is not None:
        dt += _utc_offset(offset)
    return da, tm, dt


def _utc_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


# ------------------------------------------------------------------------------ export
def write_attempt_dicom(folder: str | Path, images: Sequence[ExportedImage], attempt: AttemptInfo, *,
                        kerma_as_entrance_dose: bool = False) -> list[Path]:
    """Write ``images`` as DICOM files in ``folder`` (created if missing), one per image.

    ``kerma_as_entrance_dose``: also write each image's air kerma at the interventional reference
    point as Entrance Dose in mGy (0040,8302). Off by default: that attribute is not part of the XA
    IOD (validators then report a Standard Extended SOP Class) and, strictly, means the dose at the
    patient's skin, which the reference-point kerma only approximates. The kerma is always in Image
    Comments.

    The files are named ``<attempt id>_<nnn>.dcm`` (the attempt id with anything but letters,
    digits, ``.``, ``_`` and ``-`` replaced), so a re-export overwrites the same files.

    Returns the paths written, in image order. Raises :class:`SpineSimError` (naming the path)
    when there are no images, an image is not a 2-D 8-bit array, or the folder cannot be written.
    """
    folder = Path(folder)
    images = list(images)
    if not images:
        raise SpineSimError(f"{folder}: no X-ray images to export (the attempt acquired none)")
    for n, image in enumerate(images, start=1):
        pixels = np.asarray(image.pixels)
        if pixels.ndim != 2 or pixels.dtype != np.uint8 or 0 in pixels.shape:
            raise SpineSimError(f"{folder}: image {n} is not a 2-D uint8 array "
                                f"(shape {pixels.shape}, dtype {pixels.dtype})")
    if folder.exists() and not folder.is_dir():
        raise SpineSimError(f"{folder}: not a folder, cannot export DICOM files into it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SpineSimError(f"{folder}: cannot create the DICOM export folder ({err.strerror or err})") from err
    stem = _file_stem(attempt.attempt_id)
    written: list[Path] = []
    for n, image in enumerate(images, start=1):
        path = folder / f"{stem}_{n:03d}.dcm"
        ds = _dataset(image, n, len(images), attempt, kerma_as_entrance_dose)
        try:
            ds.save_as(path, enforce_file_format=True)
        except OSError as err:
            raise SpineSimError(f"{path}: cannot write the DICOM file ({err.strerror or err})") from err
        written.append(path)
    return written


def _dataset(image: ExportedImage, number: int, count: int, attempt: AttemptInfo, kerma_as_entrance_dose: bool):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    study_uid = _uid("study", attempt.attempt_id, attempt.scenario_id)
    series_uid = _uid("series", attempt.attempt_id, attempt.scenario_id)
    sop_uid = _uid("image", attempt.attempt_id, attempt.scenario_id, str(number))

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XA_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)

    # ---- SOP Common
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the trainee's name may be in any script
    ds.SOPClassUID = XA_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    study_da, study_tm, _ = _datetime_parts(attempt.started)
    offset = attempt.started.utcoffset()
    if offset is not None:
        ds.TimezoneOffsetFromUTC = _utc_offset(offset)

    # ---- Patient: a synthetic phantom, nobody real
    ds.PatientName = PATIENT_NAME
    ds.PatientID = _lo(attempt.patient_id) if attempt.patient_id else _generated_patient_id(attempt)
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    ds.PatientComments = "Synthetic patient generated by the SpineSim training simulator; not a real person."

    # ---- General Study: one study per attempt
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = study_da
    ds.StudyTime = study_tm
    ds.ReferringPhysicianName = ""
    ds.StudyID = _lo(attempt.attempt_id, 16)
    ds.AccessionNumber = ""
    ds.StudyDescription = _lo(f"SpineSim training attempt: {attempt.scenario_id}")

    # ---- General Series: one series
    ds.Modality = "XA"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.SeriesDate = study_da
    ds.SeriesTime = study_tm
    ds.SeriesDescription = _lo(f"Simulated C-arm images ({attempt.scenario_id})")
    ds.BodyPartExamined = attempt.body_part  # an unpaired part: no Laterality
    trainee = _person_name(attempt.trainee)
    if trainee:
        # the whole display name as the family name component; the trailing "^" marks the
        # component form (without it validators read "Jane Doe" as the retired free-text form)
        ds.OperatorsName = trainee + "^"

    # ---- General Equipment
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = _lo(attempt.app_version)

    # ---- General Image
    acquired = attempt.started + timedelta(seconds=float(image.time_offset_s))
    acq_da, acq_tm, acq_dt = _datetime_parts(acquired)
    ds.InstanceNumber = number
    ds.AcquisitionNumber = number
    ds.PatientOrientation = list(image.patient_orientation) if image.patient_orientation else ""
    ds.ContentDate = acq_da
    ds.ContentTime = acq_tm
    ds.AcquisitionDateTime = acq_dt
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.ImageComments = _comments(image, number, count, attempt)
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "NO"
    ds.LossyImageCompression = "00"

    # ---- Image Pixel and X-Ray Image
    ds.set_pixel_data(np.ascontiguousarray(image.pixels), photometric_interpretation="MONOCHROME2",
                      bits_stored=8, generate_instance_uid=False)
    ds.PixelIntensityRelationship = "DISP"  # processed for display (bone dark), not log or linear
    # ---- VOI LUT: show the stored values as they are
    ds.WindowCenter = "127.5"
    ds.WindowWidth = "256"

    # ---- X-Ray Acquisition: technique and dose
    exposure = dict(image.exposure)
    mode = str(exposure.get("mode", "acquisition"))
    ds.RadiationSetting = RADIATION_SETTING.get(mode, "GR")
    kvp = exposure.get("kvp")
    ds.KVP = _ds(kvp) if kvp is not None else ""
    mas = _total_mas(exposure)
    # Exposure (mAs) is an integer string: a fraction of a mAs stays empty rather than read as 0
    ds.Exposure = round(mas) if mas is not None and round(mas) >= 1 else ""
    if mas is not None and round(mas * 1000.0) >= 1:
        ds.ExposureInuAs = round(mas * 1000.0)
    if exposure.get("dap_gy_cm2") is not None:
        ds.ImageAndFluoroscopyAreaDoseProduct = _ds(float(exposure["dap_gy_cm2"]) * 10.0)  # dGy cm2
    if kerma_as_entrance_dose and exposure.get("air_kerma_mgy") is not None:
        ds.EntranceDoseInmGy = _ds(exposure["air_kerma_mgy"])  # reference-point kerma (Standard Extended)
    if image.field_shape:
        ds.FieldOfViewShape = image.field_shape
        if image.field_of_view_mm:
            side = round(float(image.field_of_view_mm))
            ds.FieldOfViewDimensions = [side] if image.field_shape == "ROUND" else [side, side]
    if image.pixel_spacing_mm is not None:
        row_mm, col_mm = (float(v) for v in image.pixel_spacing_mm)
        ds.ImagerPixelSpacing = [_ds(row_mm), _ds(col_mm)]
        if image.source_to_detector_mm and image.source_to_isocentre_mm:
            at_isocentre = image.source_to_isocentre_mm / image.source_to_detector_mm
            ds.PixelSpacing = [_ds(row_mm * at_isocentre), _ds(col_mm * at_isocentre)]
            ds.PixelSpacingCalibrationType = "GEOMETRY"
            ds.PixelSpacingCalibrationDescription = "Magnification at the C-arm isocentre"

    # ---- XA Positioner
    primary, secondary = positioner_angles(image.oblique_deg, image.tilt_deg)
    ds.PositionerPrimaryAngle = _ds(primary)
    ds.PositionerSecondaryAngle = _ds(secondary)
    if image.source_to_isocentre_mm:
        ds.DistanceSourceToPatient = _ds(image.source_to_isocentre_mm)  # XA: source to isocentre
    if image.source_to_detector_mm:
        ds.DistanceSourceToDetector = _ds(image.source_to_detector_mm)
    if image.source_to_detector_mm and image.source_to_isocentre_mm:
        ds.EstimatedRadiographicMagnificationFactor = _ds(image.source_to_detector_mm
                                                          / image.source_to_isocentre_mm)
    return ds


def _total_mas(exposure: Mapping[str, Any]) -> float | None:
    if exposure.get("mas_per_frame") is None:
        return None
    return float(exposure["mas_per_frame"]) * int(exposure.get("frames", 1) or 1)


def _generated_patient_id(attempt: AttemptInfo) -> str:
    digest = hashlib.sha256(f"{attempt.scenario_id}\n{attempt.attempt_id}".encode()).hexdigest()[:12]
    return f"SIM-{digest.upper()}"


def _comments(image: ExportedImage, number: int, count: int, attempt: AttemptInfo) -> str:
    e = image.exposure
    parts = [(f"SIMULATED X-RAY IMAGE made by SpineSim {attempt.app_version}, a spinal injection training "
              "simulator: synthetic phantom, not a real patient, not for diagnosis."),
             (f"Scenario {attempt.scenario_id}, attempt {attempt.attempt_id}, image {number} of {count}, "
              f"t = {float(image.time_offset_s):.1f} s."),
             (f"C-arm oblique {float(image.oblique_deg):+.1f} deg (+: detector towards the patient's left), "
              f"tilt {float(image.tilt_deg):+.1f} deg (+: detector towards the head).")]
    dose = []
    if e.get("mode") is not None:
        dose.append(f"mode {e['mode']}")
    if e.get("kvp") is not None:
        dose.append(f"{float(e['kvp']):.1f} kVp")
    mas = _total_mas(e)
    if mas is not None:
        dose.append(f"{mas:.4g} mAs")
    if e.get("air_kerma_mgy") is not None:
        dose.append(f"air kerma at the interventional reference point {float(e['air_kerma_mgy']):.4g} mGy")
    if e.get("dap_gy_cm2") is not None:
        dose.append(f"dose-area product {float(e['dap_gy_cm2']):.4g} Gy cm2")
    if dose:
        parts.append("Simulated dose: " + ", ".join(dose) + ".")
    return " ".join(parts)


# ------------------------------------------------------------------------------ from a simulation
def images_from_simulation(sim) -> list[ExportedImage]:
    """The acquired images of ``sim`` (a :class:`~simulator.simulation.simulation.Simulation`, not
    imported here: records sit below the simulation layer), each with its ``image_acquired`` event
    (exposure and time) and its projection's geometry."""
    events = {int(e.data["index"]): e for e in sim.events if e.kind == "image_acquired" and "index" in e.data}
    shape = "RECTANGLE" if sim.scenario.carm.detector == "flat_panel" else "ROUND"
    out = []
    for index, image in enumerate(sim.images):
        event = events.get(index)
        if event is None:
            raise SpineSimError(f"image {index} of the simulation has no image_acquired event")
        p, pose = image.projection, image.pose
        normal = np.asarray(p.detector_normal, float)
        source = np.asarray(p.source_mm, float)
        sid = float((np.asarray(p.pixel00_mm, float) - source) @ normal)
        sod = float((np.asarray(pose.isocentre_mm, float) - source) @ normal)
        exposure = {k: event.data[k] for k in EXPOSURE_KEYS if k in event.data}
        out.append(ExportedImage(
            pixels=image.display, oblique_deg=float(pose.oblique_deg), tilt_deg=float(pose.tilt_deg),
            exposure=exposure, time_offset_s=float(event.t_s),
            pixel_spacing_mm=(float(np.linalg.norm(p.row_step_mm)), float(np.linalg.norm(p.col_step_mm))),
            source_to_detector_mm=sid, source_to_isocentre_mm=sod,
            field_of_view_mm=float(np.linalg.norm(p.col_step_mm)) * p.cols, field_shape=shape,
            patient_orientation=patient_orientation(p.col_step_mm, p.row_step_mm)))
    return out


def attempt_info_from_simulation(sim, attempt_id: str, trainee: str, started: datetime) -> AttemptInfo:
    """The :class:`AttemptInfo` of a simulation: its scenario, the app version of its record's
    header and a Patient ID derived from the simulated patient's parameters (the same phantom gets
    the same ID in every attempt)."""
    patient = json.dumps(sim.header.get("patient", {}), sort_keys=True, default=str)
    digest = hashlib.sha256(f"{patient}\n{sim.header.get('generator_version', '')}".encode()).hexdigest()[:12]
    return AttemptInfo(attempt_id=attempt_id, scenario_id=sim.scenario.id, trainee=trainee, started=started,
                       app_version=str(sim.header.get("app_version", __version__)),
                       patient_id=f"SIM-PHANTOM-{digest.upper()}")


__all__ = ["XA_IMAGE_STORAGE", "AttemptInfo", "ExportedImage", "attempt_info_from_simulation",
           "images_from_simulation", "patient_orientation", "positioner_angles", "write_attempt_dicom"]
