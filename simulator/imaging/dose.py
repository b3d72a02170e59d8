"""Radiation dose: the C-arm's automatic exposure control, the air kerma at the interventional
reference point and the dose-area product.

The exposure control (AEC) sets each frame's technique from the patient along the central ray:
the kVp rises with the water-equivalent thickness, and the mAs is what brings the detector's
entrance air kerma to its target for the mode (a fluoroscopy frame or a single acquisition), within
the tube's limits (a patient too thick for the limit gets a noisier image). From the technique:

- air kerma at the interventional reference point (IEC 60601-2-43: 15 cm from the isocentre towards
  the source), from the tube's output per mAs at 1 m (``assets/xray_tube.toml``, SpekPy) and the
  inverse square law;
- dose-area product: that kerma times the collimated field's area at the same distance (the same at
  any distance, so it does not depend on the reference point).

Fluoroscopy is continuous (30 frames/s) or pulsed (7.5, 15, 30 pulses/s): the dose of a run is the
dose of one frame times its frames, so it scales with time and pulse rate; collimating the field
lowers the dose-area product and leaves the kerma.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from simulator.assets import read_asset_text
from simulator.imaging.carm import DETECTOR_SIZE_MM, SOURCE_TO_DETECTOR_MM, SOURCE_TO_ISOCENTRE_MM

#: The interventional reference point: this far from the isocentre towards the source, mm.
IRP_FROM_ISOCENTRE_MM = 150.0
SOURCE_TO_IRP_MM = SOURCE_TO_ISOCENTRE_MM - IRP_FROM_ISOCENTRE_MM
#: Frames per second of continuous fluoroscopy, and the pulse rates of pulsed fluoroscopy.
CONTINUOUS_FPS = 30.0
PULSE_RATES = (7.5, 15.0, 30.0)
#: Air kerma at the detector's entrance the AEC aims for per frame, nGy. Design values in the
#: range of image-intensifier and flat-panel practice (fluoroscopy ~10-30 nGy per frame, a single
#: digital acquisition ~10x that). With them a lumbar AP of the default patient at 30 frames/s and a
#: full 30 cm field gives ~45 mGy/min at the reference point and a dose-area product of ~0.075
#: Gy cm2/s, as reported for lumbar injections (reference 4.7: 0.59 Gy cm2 in 6 s, 5.31 in 72 s).
DETECTOR_TARGET_NGY = {"fluoroscopy": 15.0, "subtraction": 45.0, "acquisition": 150.0}
#: Digital subtraction needs about three times a fluoroscopy frame's dose for the same noise in a
#: difference of two images (reference 4.7: DSA 2.3-4.3x the effective dose of fluoroscopy).
#: Largest mAs per frame the tube gives in each mode (a mobile C-arm: ~10 mA continuous
#: fluoroscopy over a 33 ms frame; a few mAs for a single acquisition). Design values.
MAX_MAS_PER_FRAME = {"fluoroscopy": 0.35, "subtraction": 1.0, "acquisition": 6.0}
#: Water's linear attenuation at 60 keV, 1/mm (reference 4.2): the image's line integrals are at
#: 60 keV; dividing by this gives the water-equivalent thickness the AEC sees.
WATER_MU_60KEV_PER_MM = 0.0206
#: Photons per mm2 per uGy of air kerma for the beam behind the patient (~50 keV: fluence per air
#: kerma = 1 / (E * (mu_en/rho)_air), NIST; 3.05e4 at 50 keV).
PHOTONS_PER_MM2_PER_UGY = 3.05e4


@dataclass(frozen=True)
class TubeRow:
    kvp: float
    kerma_ugy_per_mas_at_1m: float
    mean_energy_kev: float
    water_mu_relative_to_60kev: float


@lru_cache(maxsize=1)
def tube_table() -> tuple[TubeRow, ...]:
    """The tube's output by kVp (``assets/xray_tube.toml``)."""
    data = tomllib.loads(read_asset_text("xray_tube.toml"))
    return tuple(TubeRow(float(r["kvp"]), float(r["kerma_ugy_per_mas_at_1m"]), float(r["mean_energy_kev"]),
                         float(r["water_mu_relative_to_60kev"])) for r in data["kvp"])


def _interp(kvp: float, field: str) -> float:
    rows = tube_table()
    return float(np.interp(kvp, [r.kvp for r in rows], [getattr(r, field) for r in rows]))


def aec_kvp(water_equivalent_mm: float) -> float:
    """The AEC's kVp for a patient this thick along the central ray: 65 kVp through 150 mm of water
    rising to 110 kVp at 400 mm (a typical anatomical programme; design values)."""
    return float(np.clip(65.0 + 45.0 * (water_equivalent_mm - 150.0) / 250.0, 60.0, 120.0))


@dataclass(frozen=True)
class Exposure:
    """The dose of some frames at one technique.

    Attributes
    ----------
    mode : {"fluoroscopy", "subtraction", "acquisition"}
    kvp : float
    mas_per_frame : float
    frames : int
    detector_ugy_per_frame : float
        Air kerma reaching the detector's entrance behind the central ray, per frame, uGy.
    air_kerma_mgy : float
        At the interventional reference point, all frames.
    dap_gy_cm2 : float
        Dose-area product, all frames.
    photons_per_pixel_unattenuated : float
        Photons per detector pixel per frame with nothing in the beam (the image's noise level).
    """

    mode: str
    kvp: float
    mas_per_frame: float
    frames: int
    detector_ugy_per_frame: float
    air_kerma_mgy: float
    dap_gy_cm2: float
    photons_per_pixel_unattenuated: float

    def as_dict(self) -> dict:
        return {"mode": self.mode, "kvp": round(self.kvp, 1), "mas_per_frame": round(self.mas_per_frame, 4),
                "frames": self.frames, "air_kerma_mgy": round(self.air_kerma_mgy, 4),
                "dap_gy_cm2": round(self.dap_gy_cm2, 5)}


def field_area_cm2_at_irp(field_mm: float, shutter_mm: float | None = None) -> float:
    """Area of a circular field of diameter ``field_mm`` at the detector, between two parallel
    shutter blades ``shutter_mm`` apart (None: open), projected back to the interventional
    reference point, cm2."""
    scale = 0.1 * SOURCE_TO_IRP_MM / SOURCE_TO_DETECTOR_MM
    radius = 0.5 * field_mm * scale
    if shutter_mm is None or 0.5 * shutter_mm * scale >= radius:
        return math.pi * radius ** 2
    half = 0.5 * shutter_mm * scale
    # the circle's band |x| <= half: twice the area under the circle from 0 to half
    return 2.0 * (half * math.sqrt(radius ** 2 - half ** 2) + radius ** 2 * math.asin(half / radius))


def exposure(central_integral: float, mode: str, frames: int, field_mm: float = DETECTOR_SIZE_MM,
             pixel_mm: float = DETECTOR_SIZE_MM / 512, field_of_view_mm: float = DETECTOR_SIZE_MM,
             flat_panel: bool = False, shutter_mm: float | None = None) -> Exposure:
    """The technique the AEC chooses and the dose of ``frames`` frames.

    Parameters
    ----------
    central_integral : float
        Line integral of attenuation (60 keV) through the patient along the central ray.
    mode : {"fluoroscopy", "subtraction", "acquisition"}
    frames : int
    field_mm : float
        Diameter of the collimated field at the detector, mm (no wider than the field of view).
    pixel_mm : float
        Detector pixel size, mm (for the photon count per pixel).
    field_of_view_mm : float
        The magnification mode's field: a smaller field spread over the same display needs more
        dose per frame, as the square of the field ratio for an image intensifier (the same light
        output from a smaller input area) and in proportion for a flat panel (design rule after
        vendors' dose-per-frame tables).
    flat_panel : bool
    shutter_mm : float or None
        Gap between the shutter blades at the detector, mm (None: open).
    """
    if mode not in DETECTOR_TARGET_NGY:
        raise ValueError(f"unknown exposure mode {mode!r}")
    integral = max(float(central_integral), 0.0)
    kvp = aec_kvp(integral / WATER_MU_60KEV_PER_MM)
    output = _interp(kvp, "kerma_ugy_per_mas_at_1m")  # uGy per mAs at 1 m
    transmitted = math.exp(-integral * _interp(kvp, "water_mu_relative_to_60kev"))
    at_detector_per_mas = output * (1000.0 / SOURCE_TO_DETECTOR_MM) ** 2  # uGy per mAs, no patient
    magnification = DETECTOR_SIZE_MM / min(float(field_of_view_mm), DETECTOR_SIZE_MM)
    target_ngy = DETECTOR_TARGET_NGY[mode] * magnification ** (1.0 if flat_panel else 2.0)
    wanted = 1e-3 * target_ngy / (at_detector_per_mas * transmitted)
    mas = float(min(wanted, MAX_MAS_PER_FRAME[mode]))
    kerma_irp_ugy = output * mas * (1000.0 / SOURCE_TO_IRP_MM) ** 2
    air_kerma_mgy = 1e-3 * kerma_irp_ugy * frames
    dap = 1e-6 * kerma_irp_ugy * field_area_cm2_at_irp(min(field_mm, field_of_view_mm), shutter_mm) * frames
    unattenuated_ugy = at_detector_per_mas * mas
    return Exposure(mode, kvp, mas, int(frames), unattenuated_ugy * transmitted, air_kerma_mgy, dap,
                    unattenuated_ugy * PHOTONS_PER_MM2_PER_UGY * pixel_mm ** 2)


def frames_in(duration_s: float, pulse_rate_pps: float | None) -> int:
    """Frames of a fluoroscopy run: at least one (a tap on the pedal gives a pulse)."""
    rate = CONTINUOUS_FPS if pulse_rate_pps is None else pulse_rate_pps
    return max(1, int(math.floor(duration_s * rate + 1e-9)))


@dataclass
class DoseTally:
    """What an attempt has cost in radiation so far."""

    fluoroscopy_s: float = 0.0
    frames: int = 0
    acquisitions: int = 0
    air_kerma_mgy: float = 0.0
    dap_gy_cm2: float = 0.0

    def add(self, exp: Exposure, fluoroscopy_s: float = 0.0) -> None:
        self.fluoroscopy_s += fluoroscopy_s
        if exp.mode == "acquisition":
            self.acquisitions += exp.frames
        else:
            self.frames += exp.frames
        self.air_kerma_mgy += exp.air_kerma_mgy
        self.dap_gy_cm2 += exp.dap_gy_cm2

    def as_dict(self) -> dict:
        return {"fluoroscopy_s": round(self.fluoroscopy_s, 2), "frames": self.frames,
                "acquisitions": self.acquisitions, "air_kerma_mgy": round(self.air_kerma_mgy, 3),
                "dap_gy_cm2": round(self.dap_gy_cm2, 4)}
