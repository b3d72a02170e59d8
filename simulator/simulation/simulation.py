"""The Simulation: the one object the app, scripts and replays drive.

Commands go in through :meth:`Simulation.apply`; events come out (returned, and sent to
subscribers). The simulation is deterministic: its clock is the commands' simulated times and every
random draw (syringe scatter, image noise) is seeded from the patient seed and the number of the
draw, never from the wall clock, so the same commands on the same scenario give the same images
and the same score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from simulator.anatomy.anatomy import Anatomy, anatomy_for_scenario
from simulator.anatomy.search import closest_approach
from simulator.anatomy.tissues import tissue_table
from simulator.errors import CommandRefused, SpineSimError
from simulator.geometry import frames
from simulator.imaging import contrast as contrast_mod
from simulator.imaging import injection as injection_mod
from simulator.imaging import dose as dose_mod
from simulator.imaging.carm import DETECTOR_SIZE_MM, CArmPose, detector_direction
from simulator.imaging.fluoroscope import Fluoroscope, XRayImage
from simulator.imaging.overlay import Overlay
from simulator.imaging.views import gravity_direction
from simulator.needle.needle import TRACK_STEP_MM, Needle
from simulator.needle import resistance
from simulator.needle.resistance import HIGH_MMHG, LOSS_MMHG, advance_feel, lor_reading
from simulator.needle.spec import needle_spec
from simulator.procedures.drugs import drug_catalogue
from simulator.procedures.registry import procedure_for
from simulator.protocol import commands as cmd
from simulator.protocol.events import Event
from simulator.records.attempt_file import AttemptRecord, AttemptWriter, TimedCommand, make_header
from simulator.scenario.loader import LoadedScenario
from simulator.simulation.palpation import PalpationFinding, palpate_point
from simulator.scoring.metrics import DANGER_STRUCTURES, standard_metrics
from simulator.scoring.scorecard import Scorecard, score_attempt

#: Seconds a command takes when a script gives no time (typical hand speeds).
NOMINAL_SECONDS = {
    "set_entry": 6.0, "advance": 0.6, "withdraw": 0.4, "redirect": 2.0, "move_carm": 5.0,
    "acquire_image": 2.0, "test_loss_of_resistance": 2.0, "inject_contrast": 4.0, "palpate": 3.0,
    "set_spine_visible": 1.0, "finish": 1.0, "rotate_bevel": 1.5, "bend_tip": 5.0, "attach_syringe": 4.0,
    "detach_syringe": 2.0, "aspirate": 3.0, "choose_needle": 5.0, "inject_drug": 8.0,
    "fluoroscopy_on": 0.2, "fluoroscopy_off": 1.0, "collimate": 1.0, "magnify": 1.0, "report_pattern": 3.0,
}
#: Tissues whose entry is announced as "ligament entered" (the hands feel the change to firm).
LIGAMENTS = ("supraspinous_ligament", "interspinous_ligament", "ligamentum_flavum", "sacrococcygeal_ligament")
FLAVUM_ID = tissue_table().id("ligamentum_flavum")
#: Tissues a touch of which gives a paraesthesia.
NEURAL = ("nerve_root", "spinal_cord", "cauda_equina")
_DANGER_IDS = {name: np.array([tissue_table().id(t) for t in tissues]) for name, tissues in DANGER_STRUCTURES.items()}
#: A pass starts when the needle goes forward from within this depth of the skin.
PASS_RESTART_DEPTH_MM = 5.0


class Simulation:
    """One attempt at one scenario.

    Parameters
    ----------
    loaded : LoadedScenario
    anatomy : Anatomy, optional
        Pre-built anatomy (else built, or loaded from the cache, from the scenario's patient).
    image_size_px : int
    record_path : path, optional
        Write the attempt record here as it happens.
    recorders : list, optional
        Also hand every command to these as it happens (e.g. a
        :class:`~simulator.records.recording.StoreRecorder`): ``start(header, events)`` now,
        ``append(timed_command, events)`` per command, ``finish(scorecard_dict)`` at the end.
    """

    def __init__(self, loaded: LoadedScenario, anatomy: Anatomy | None = None, image_size_px: int = 512,
                 record_path: str | Path | None = None, recorders=()):
        self.loaded = loaded
        self.scenario = loaded.scenario
        sc = self.scenario
        self.anatomy = anatomy or anatomy_for_scenario(sc)
        self.needle = Needle(needle_spec(sc.needle.id), self.anatomy.tissue_at)
        self.guidance = sc.guidance
        self.t_s = 0.0
        self.procedure = procedure_for(sc.procedure)
        centre = self.procedure.centre_point(self.anatomy, sc)
        self.carm_pose = CArmPose(0.0, 0.0, tuple(float(v) for v in centre))
        self.image_size_px = image_size_px
        self._fluoroscope: Fluoroscope | None = None
        self.contrast = contrast_mod.ContrastField()
        self.injectate_ml = 0.0
        self.images: list[XRayImage] = []
        self.dose = dose_mod.DoseTally()
        self.field_mm = DETECTOR_SIZE_MM  # the iris's field at the detector
        self.shutter_mm: float | None = None  # the gap between the shutter blades (None: open)
        self.last_image_hold: XRayImage | None = None  # the monitor's last frame of fluoroscopy
        self._fluoro_run: tuple[float, float | None] | None = None  # (since s, pulse rate) while on
        self._subtraction_mask: np.ndarray | None = None  # what the detector measured as a DSA run began
        self._fluoro_segment_s = 0.0  # start of the run's stretch at the current pose and field
        self.spine_visible = False
        self.events: list[Event] = []
        self.commands: list[TimedCommand] = []
        self.tip_path: list[np.ndarray] = []
        self.palpations: list[PalpationFinding] = []
        self.lor_trace: list[tuple[float, float]] = []  # (depth mm, pressure mmHg)
        self.lor_times_s: list[float] = []  # the time of each lor_trace reading
        self.force_trace: list[tuple[float, float, float]] = []  # (time s, depth mm, force N) per advance
        self.syringe: str | None = None  # the medium of the syringe on the hub, if one is attached
        self.hub = "dry"  # what the hub last showed: "dry", "csf", "blood"
        self.finished = False
        self._closed = False
        self.scorecard: Scorecard | None = None
        self._subscribers: list[Callable[[Event], None]] = []
        self._metrics = standard_metrics(self.procedure.view_standards(self.anatomy, sc))
        self._draws = 0
        self._high_resistance_seen = False
        self._in_pass = False
        self._dura_punctured = False
        self._last_pattern: str | None = None  # what the last contrast run showed
        self.header = make_header(sc.id, loaded.source, loaded.sha256, loaded.text,
                                  self.anatomy.patient.as_dict(), self.anatomy.patient.generator_version)
        self._writer = AttemptWriter(record_path, self.header) if record_path else None
        self._emit("attempt_started", scenario=sc.id, guidance=sc.guidance,
                   patient=self.anatomy.patient.as_dict())
        self._recorders = list(recorders)
        for recorder in self._recorders:
            recorder.start(self.header, list(self.events))

    # ----------------------------------------------------------------------------- plumbing
    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` for every event from now on."""
        self._subscribers.append(callback)

    def _emit(self, kind: str, **data) -> Event:
        event = Event(kind, self.t_s, data)
        self.events.append(event)
        for m in self._metrics:
            m.update(event)
        for cb in self._subscribers:
            cb(event)
        return event

    def _rng(self, purpose: int) -> np.random.Generator:
        self._draws += 1
        return np.random.default_rng([self.scenario.patient.seed, purpose, self._draws])

    @property
    def fluoroscope(self) -> Fluoroscope:
        if self._fluoroscope is None:
            self._fluoroscope = Fluoroscope(self.anatomy.mu_volume(), self.anatomy.world_from_voxel,
                                            self.image_size_px, flat_panel=self.scenario.carm.detector == "flat_panel")
        return self._fluoroscope

    @property
    def record(self) -> AttemptRecord:
        return AttemptRecord(self.header, list(self.commands))

    def metrics(self) -> dict[str, float]:
        values = {m.id: m.value() for m in self._metrics}
        values.update(fluoroscopy_s=round(self.dose.fluoroscopy_s, 2), air_kerma_mgy=round(self.dose.air_kerma_mgy, 3),
                      dap_gy_cm2=round(self.dose.dap_gy_cm2, 4))
        return values

    def attach(self, recorder) -> None:
        """Hand every command from now on to ``recorder`` too (an attempt resumed after its replay:
        see :meth:`simulator.records.recording.StoreRecorder.resuming`)."""
        self._recorders.append(recorder)

    def close(self) -> None:
        """End the attempt's recording; later commands are refused."""
        self._closed = True
        if self._writer is not None:
            self._writer.close()

    # ----------------------------------------------------------------------------- commands
    def apply(self, command, t_s: float | None = None) -> list[Event]:
        """Carry out one command at simulated time ``t_s`` (default: now plus its usual duration).

        Returns the events it caused. Raises :class:`CommandRefused` (and changes nothing) when the
        command cannot be done now.
        """
        if isinstance(command, dict):
            command = cmd.parse_command(command)
        name = command.command
        if self.finished:
            raise CommandRefused("the attempt is finished")
        if self._closed:
            raise CommandRefused("the attempt is closed")
        if t_s is None:
            t_s = self.t_s + NOMINAL_SECONDS[name]
        if not np.isfinite(t_s) or t_s < self.t_s - 1e-9:
            raise CommandRefused(f"time {t_s} s is before the attempt's current time {self.t_s:.3f} s")
        before = len(self.events)
        handler = getattr(self, f"_do_{name}")
        previous_t = self.t_s
        self.t_s = float(t_s)
        try:
            handler(command)
        except CommandRefused as err:
            self.t_s = previous_t
            del self.events[before:]
            self._emit("command_refused", command=name, reason=str(err))
            raise
        timed = TimedCommand(self.t_s, command)
        self.commands.append(timed)
        if self._writer is not None:
            self._writer.append(timed)
        for recorder in self._recorders:
            recorder.append(timed, self.events[before:])
            if self.finished:
                recorder.finish(self.scorecard.as_dict())
        return self.events[before:]

    def _require_fluoroscopy(self, what: str) -> None:
        if self.guidance != "fluoroscopy":
            raise CommandRefused(f"{what} is not available in landmark mode (no imaging)")

    def _do_set_entry(self, c: cmd.SetEntry) -> None:
        direction = np.asarray(c.direction, float) if c.direction is not None else frames.ANTERIOR
        if np.linalg.norm(direction) == 0:
            raise CommandRefused("direction must be a non-zero vector")
        self.needle.set_entry(c.point_mm, direction, self.anatomy.skin_entry)
        self._in_pass = False
        self._high_resistance_seen = False
        self.tip_path.append(self.needle.tip_mm.copy())
        self._emit("entry_set", entry_mm=_list(self.needle.entry_mm), direction=_list(self.needle.direction))

    def _do_advance(self, c: cmd.Advance) -> None:
        before = self.needle.depth_mm
        previous_t = self.commands[-1].t_s if self.commands else 0.0
        if before < PASS_RESTART_DEPTH_MM and not self._in_pass:
            self._in_pass = True
            self._high_resistance_seen = False
            self._emit("needle_pass_started")
        previous_tissue = self.needle.tip_tissue_id()
        step = self.needle.advance(c.distance_mm)
        table = tissue_table()
        for tissue, depth in step.entered:
            entered_id = table.id(tissue)
            self._emit("tissue_entered", tissue=tissue, depth_mm=round(depth, 2), feel=advance_feel(tissue))
            if resistance.pops(previous_tissue, entered_id):
                self._emit("pop_felt", tissue=table[previous_tissue].name, depth_mm=round(depth, 2))
            if tissue in LIGAMENTS and table[previous_tissue].name not in LIGAMENTS:
                self._emit("ligament_entered", depth_mm=round(depth, 2))
            if tissue in NEURAL and table[previous_tissue].name not in NEURAL:
                where = self.anatomy.structure_at(self.needle.point_at_depth(depth)) or tissue
                self._emit("paraesthesia", structure=where, depth_mm=round(depth, 2))
            if tissue in ("csf", "cauda_equina", "spinal_cord") and not self._dura_punctured:
                self._dura_punctured = True
                self._emit("dural_puncture", depth_mm=round(depth, 2),
                           tip_mm=_list(self.needle.point_at_depth(depth)))
                self._show_hub("csf")
            previous_tissue = entered_id
        self.tip_path.append(self.needle.tip_mm.copy())
        force_n = 0.0
        if step.moved_mm > 0.0:
            spec = self.needle.spec
            speed = step.moved_mm / max(self.t_s - previous_t, 1e-3)
            tip_id = self.needle.tip_tissue_id()
            layer_mm = self.needle.tip_layer_mm() if tip_id == FLAVUM_ID else resistance.FLAVUM_REFERENCE_MM
            force_n = resistance.advancing_force_n(tip_id, self.needle.shaft_tissue_ids(), 0.1, spec.tip,
                                                   spec.outer_diameter_mm, speed, layer_mm)
            self.force_trace.append((self.t_s, self.needle.depth_mm, round(force_n, 3)))
        # the track just covered, every millimetre, for the closest approach to each danger structure
        # (the shells from the voxel labels, cheap; the track's own tissues exact, as the needle has them)
        depths = np.arange(self.needle.depth_mm, before, -1.0)
        track = [self.needle.point_at_depth(d) for d in depths]
        shaft = self.needle.shaft_tissue_ids()
        own = shaft[np.minimum(np.round(depths / TRACK_STEP_MM).astype(int), len(shaft) - 1)]
        near = closest_approach(self.anatomy.labels_at, track, _DANGER_IDS, own) if track else {}
        self._emit("needle_advanced", depth_mm=round(self.needle.depth_mm, 2), tip_mm=_list(self.needle.tip_mm),
                   tissue=self.needle.tip_tissue(), requested_mm=c.distance_mm, moved_mm=round(step.moved_mm, 3),
                   force_n=round(force_n, 2), danger_mm=near)
        if step.bone_contact:
            self._emit("bone_contacted", depth_mm=round(self.needle.depth_mm, 2), tip_mm=_list(self.needle.tip_mm))
        if step.length_exhausted:
            self._emit("needle_length_exhausted", depth_mm=round(self.needle.depth_mm, 2))
        if self.syringe is not None and step.moved_mm > 0.0:
            self._read_syringe(self.syringe, "continuous")

    def _show_hub(self, what: str) -> None:
        self.hub = what
        self._emit("csf_in_hub" if what == "csf" else "blood_in_hub")

    def _do_withdraw(self, c: cmd.Withdraw) -> None:
        step = self.needle.withdraw(c.distance_mm)
        if self.needle.depth_mm < PASS_RESTART_DEPTH_MM:
            self._in_pass = False
        self.tip_path.append(self.needle.tip_mm.copy())
        self._emit("needle_withdrawn", depth_mm=round(self.needle.depth_mm, 2), tip_mm=_list(self.needle.tip_mm),
                   tissue=self.needle.tip_tissue(), moved_mm=round(step.moved_mm, 3))

    def _do_redirect(self, c: cmd.Redirect) -> None:
        angle = self.needle.redirect(c.cranial_deg, c.right_deg)
        self.tip_path.append(self.needle.tip_mm.copy())
        self._emit("needle_redirected", direction=_list(self.needle.direction), tip_mm=_list(self.needle.tip_mm),
                   tissue=self.needle.tip_tissue(), angle_deg=round(angle, 2))

    def _do_move_carm(self, c: cmd.MoveCArm) -> None:
        self._require_fluoroscopy("The C-arm")
        iso = self.carm_pose.isocentre_mm if c.isocentre_mm is None else tuple(float(v) for v in c.isocentre_mm)
        bounds = np.stack([self.anatomy.grid.lo_mm, self.anatomy.grid.hi_mm])
        if np.any(np.asarray(iso) < bounds[0] - 100.0) or np.any(np.asarray(iso) > bounds[1] + 100.0):
            raise CommandRefused("isocentre is outside the patient's region")
        self._close_fluoro_stretch()  # the technique changes with the pose
        self.carm_pose = CArmPose(float(c.oblique_deg), float(c.tilt_deg), iso, self.carm_pose.field_of_view_mm)
        self._emit("carm_moved", oblique_deg=c.oblique_deg, tilt_deg=c.tilt_deg, isocentre_mm=list(iso))

    def _do_acquire_image(self, c: cmd.AcquireImage) -> None:
        self._require_fluoroscopy("X-ray imaging")
        limit = self.scenario.limits.images
        if len(self.images) >= limit:
            raise CommandRefused(f"the scenario allows {limit} images")
        exposure = self._exposure("acquisition", 1)
        image = self.current_image(noise_index=len(self.images), exposure=exposure)
        self.images.append(image)
        self.dose.add(exposure)
        self._emit("image_acquired", index=len(self.images) - 1, oblique_deg=self.carm_pose.oblique_deg,
                   tilt_deg=self.carm_pose.tilt_deg, needle_beam_deg=self._needle_beam_deg(), **exposure.as_dict())

    def _needle_beam_deg(self) -> float | None:
        """The angle between the needle (hub to tip) and the beam, degrees; None when the needle is
        not in far enough to be seen along (3 mm)."""
        if not self.needle.inserted or self.needle.depth_mm < 3.0:
            return None
        axis = frames.unit(self.needle.tip_mm - self.needle.hub_mm)
        beam = detector_direction(self.carm_pose.oblique_deg, self.carm_pose.tilt_deg)
        return round(float(np.degrees(np.arccos(np.clip(abs(float(axis @ beam)), 0.0, 1.0)))), 2)

    def _exposure(self, mode: str, frames: int) -> dose_mod.Exposure:
        pose = self.carm_pose
        return dose_mod.exposure(self.fluoroscope.central_integral(pose), mode, frames, self.field_mm,
                                 self.fluoroscope.pixel_mm(pose), pose.field_of_view_mm,
                                 self.fluoroscope.flat_panel, self.shutter_mm)

    def current_image(self, noise_index: int | None = None, exposure: dose_mod.Exposure | None = None,
                      noise_stream: int = 7, subtract: np.ndarray | None = None,
                      t_s: float | None = None) -> XRayImage:
        """An image at the current pose with the needle and contrast as they are now (no event), at
        an acquisition's exposure unless ``exposure`` says otherwise; ``subtract``: a subtraction
        run's mask; ``t_s``: the simulated time (default now: contrast flows and washes out)."""
        index = len(self.images) if noise_index is None else noise_index
        exposure = exposure or self._exposure("acquisition", 1)
        return self.fluoroscope.render(self.carm_pose, self._overlays(), self.contrast,
                                       (self.scenario.patient.seed, noise_stream, index),
                                       photons_per_pixel=exposure.photons_per_pixel_unattenuated,
                                       field_mm=self.field_mm, subtract=subtract, kvp=exposure.kvp,
                                       t_s=self.t_s if t_s is None else t_s, shutter_mm=self.shutter_mm)

    # ----------------------------------------------------------------------------- live fluoroscopy
    @property
    def fluoroscopy_on(self) -> bool:
        return self._fluoro_run is not None

    def _do_fluoroscopy_on(self, c: cmd.FluoroscopyOn) -> None:
        self._require_fluoroscopy("Fluoroscopy")
        if self._fluoro_run is not None:
            raise CommandRefused("fluoroscopy is already on")
        self._fluoro_run = (self.t_s, c.pulse_rate_pps)
        self._fluoro_segment_s = self.t_s
        self._subtraction_mask = self._scene_integrals() if c.subtraction else None
        self._emit("fluoroscopy_started", pulse_rate_pps=c.pulse_rate_pps, subtraction=c.subtraction,
                   needle_beam_deg=self._needle_beam_deg())

    def _overlays(self) -> list[Overlay]:
        if self.needle.inserted:
            return [Overlay(self.needle.shaft_polyline(), self.needle.spec.radius_mm)]
        return []

    def _scene_integrals(self) -> np.ndarray:
        """Everything in the beam now (the mask of a subtraction run)."""
        kvp = self._exposure("subtraction", 1).kvp
        return self.fluoroscope.measured_integrals(self.carm_pose, self._overlays(), self.contrast, self.t_s, kvp,
                                                   self.field_mm, self.shutter_mm)

    @property
    def _fluoro_mode(self) -> str:
        return "subtraction" if self._subtraction_mask is not None else "fluoroscopy"

    def _do_fluoroscopy_off(self, c: cmd.FluoroscopyOff) -> None:
        if self._fluoro_run is None:
            raise CommandRefused("fluoroscopy is not on")
        self._stop_fluoroscopy()

    def _stop_fluoroscopy(self) -> None:
        since, rate = self._fluoro_run
        self._close_fluoro_stretch()
        self.last_image_hold = self.live_frame()
        self._fluoro_run = None
        self._subtraction_mask = None
        self._emit("fluoroscopy_stopped", duration_s=round(self.t_s - since, 3), pulse_rate_pps=rate,
                   **self.dose.as_dict())

    def _close_fluoro_stretch(self) -> None:
        """Count the dose of the run so far at the pose and field it had, and start a new stretch."""
        if self._fluoro_run is None:
            return
        duration = max(self.t_s - self._fluoro_segment_s, 0.0)
        frames = dose_mod.frames_in(duration, self._fluoro_run[1])
        self.dose.add(self._exposure(self._fluoro_mode, frames), fluoroscopy_s=duration)
        self._fluoro_segment_s = self.t_s

    def live_frame(self, t_s: float | None = None) -> XRayImage:
        """The fluoroscopy frame at simulated time ``t_s`` (default: now) of the run that is on, or
        that just ended: its noise is keyed to the run's start and the pulse number, so the same
        attempt gives the same frames anywhere. Shows the needle and contrast as they are now."""
        if self._fluoro_run is None:
            raise CommandRefused("fluoroscopy is not on")
        since, rate = self._fluoro_run
        t = self.t_s if t_s is None else float(t_s)
        pulse = int(max(t - since, 0.0) * (dose_mod.CONTINUOUS_FPS if rate is None else rate))
        exposure = self._exposure(self._fluoro_mode, 1)
        return self.current_image(noise_index=int(round(since * 1000.0)) * 100000 + pulse, exposure=exposure,
                                  noise_stream=13, subtract=self._subtraction_mask, t_s=t)

    def _do_magnify(self, c: cmd.Magnify) -> None:
        self._require_fluoroscopy("Magnification")
        self._close_fluoro_stretch()
        self.carm_pose = self.carm_pose.moved(field_of_view_mm=float(c.field_of_view_mm))
        self._emit("magnified", field_of_view_mm=float(c.field_of_view_mm))

    def _do_collimate(self, c: cmd.Collimate) -> None:
        self._require_fluoroscopy("The collimator")
        self._close_fluoro_stretch()
        self.field_mm = float(c.field_mm)
        self.shutter_mm = None if c.shutter_mm is None else float(c.shutter_mm)
        self._emit("collimated", field_mm=self.field_mm, shutter_mm=self.shutter_mm)

    def _do_test_loss_of_resistance(self, c: cmd.TestLossOfResistance) -> None:
        if not self.needle.inserted or self.needle.depth_mm <= 0.0:
            raise CommandRefused("the needle is not in the patient")
        self._read_syringe(c.medium, "press")

    def _read_syringe(self, medium: str, technique: str) -> None:
        """One plunger reading at the tip (a press, or the continuous pressure while advancing)."""
        tissue_id = self.needle.tip_tissue_id()
        in_cleft = (tissue_table()[tissue_id].name == "interspinous_ligament"
                    and resistance.in_false_loss_cleft(self.anatomy, self.needle.tip_mm, self.scenario.patient.seed))
        reading = lor_reading(tissue_id, medium, self._rng(11), in_cleft=in_cleft)
        self.lor_trace.append((self.needle.depth_mm, reading.pressure_mmhg))
        self.lor_times_s.append(self.t_s)
        self._emit("loss_of_resistance_tested", pressure_mmhg=reading.pressure_mmhg, medium=medium,
                   feel=reading.feel, depth_mm=round(self.needle.depth_mm, 2), technique=technique)
        if reading.pressure_mmhg >= HIGH_MMHG and reading.pressure_mmhg < 900:
            self._high_resistance_seen = True
        elif reading.pressure_mmhg <= LOSS_MMHG and self._high_resistance_seen:
            self._emit("loss_of_resistance", pressure_mmhg=reading.pressure_mmhg,
                       depth_mm=round(self.needle.depth_mm, 2))
        if tissue_table()[tissue_id].category == "intrathecal" and medium == "saline" and self.hub != "csf":
            self._show_hub("csf")  # fluid keeps dripping back from the hub

    def _do_attach_syringe(self, c: cmd.AttachSyringe) -> None:
        if not self.needle.inserted or self.needle.depth_mm <= 0.0:
            raise CommandRefused("insert the needle before attaching the syringe")
        self.syringe = c.medium
        self._emit("syringe_attached", medium=c.medium)
        self._read_syringe(c.medium, "continuous")

    def _do_detach_syringe(self, c: cmd.DetachSyringe) -> None:
        if self.syringe is None:
            raise CommandRefused("no syringe is attached")
        self.syringe = None
        self._emit("syringe_detached")

    def _do_aspirate(self, c: cmd.Aspirate) -> None:
        if not self.needle.inserted or self.needle.depth_mm <= 0.0:
            raise CommandRefused("the needle is not in the patient")
        category = tissue_table()[self.needle.tip_tissue_id()].category
        result = resistance.aspirate(category, self.needle.spec.gauge, self._rng(17))
        self._emit("aspirated", result=result)
        if result != "nothing":
            self._show_hub(result)

    def _do_choose_needle(self, c: cmd.ChooseNeedle) -> None:
        offered = (self.scenario.needle.id, *self.scenario.needle.choices)
        if c.needle_id not in offered:
            raise CommandRefused(f"this scenario offers {', '.join(offered)}")
        if self.needle.inserted and self.needle.depth_mm > 0.0:
            raise CommandRefused("withdraw the needle before changing it")
        self.needle = Needle(needle_spec(c.needle_id), self.anatomy.tissue_at)
        self.syringe = None
        self._emit("needle_chosen", needle_id=c.needle_id, name=self.needle.spec.name)

    def _do_rotate_bevel(self, c: cmd.RotateBevel) -> None:
        if not self.needle.inserted:
            raise CommandRefused("choose an entry point before turning the needle")
        self.needle.rotate_bevel(c.roll_deg)
        self._emit("bevel_rotated", roll_deg=round(self.needle.bevel_roll_deg, 1))

    def _do_bend_tip(self, c: cmd.BendTip) -> None:
        self.needle.bend_tip(c.bend_deg)
        self._emit("tip_bent", bend_deg=c.bend_deg)

    def _do_inject_contrast(self, c: cmd.InjectContrast) -> None:
        if not self.needle.inserted or self.needle.depth_mm <= 0.0:
            raise CommandRefused("the needle is not in the patient")
        total = self.contrast.total_ml + c.volume_ml
        if total > self.scenario.limits.contrast_ml + 1e-9:
            raise CommandRefused(f"the scenario allows {self.scenario.limits.contrast_ml} mL of contrast")
        # intrathecal contrast settles to the dependent side (anterior for a prone patient)
        done = injection_mod.inject(self.anatomy, self.needle.tip_mm, self.needle.tip_tissue(), c.volume_ml,
                                    self.t_s, self.scenario.patient.seed, self._rng(13),
                                    gravity_direction(self.scenario.patient_position))
        self.contrast.boluses += done.boluses
        self.contrast.vessels += done.vessels
        self.contrast.total_ml = total
        self._emit("contrast_injected", volume_ml=c.volume_ml, total_ml=round(total, 3), **done.report)
        self._last_pattern = done.report["vascular"] or done.report["compartment"]

    def _do_report_pattern(self, c: cmd.ReportPattern) -> None:
        if self._last_pattern is None:
            raise CommandRefused("no contrast has been injected to read")
        self._emit("pattern_reported", pattern=c.pattern, truth=self._last_pattern,
                   correct=c.pattern == self._last_pattern)

    def _do_inject_drug(self, c: cmd.InjectDrug) -> None:
        if not self.needle.inserted or self.needle.depth_mm <= 0.0:
            raise CommandRefused("the needle is not in the patient")
        drug = drug_catalogue().get(c.drug_id)
        if drug is None:
            raise CommandRefused(f"unknown drug '{c.drug_id}' (known: {', '.join(sorted(drug_catalogue()))})")
        total = self.injectate_ml + c.volume_ml
        if total > self.scenario.limits.injectate_ml + 1e-9:
            raise CommandRefused(f"the scenario allows {self.scenario.limits.injectate_ml} mL of injectate")
        self.injectate_ml = total
        tissue = self.needle.tip_tissue()
        self._emit("drug_injected", drug_id=drug.id, drug_kind=drug.kind, particulate=drug.particulate,
                   volume_ml=c.volume_ml, total_ml=round(total, 3), tissue=tissue,
                   category=tissue_table()[self.needle.tip_tissue_id()].category)

    def _do_palpate(self, c: cmd.Palpate) -> None:
        finding = self.palpate(np.asarray(c.point_mm, float))
        self.palpations.append(finding)
        self._emit("palpated", point_mm=_list(finding.point_mm), finding=finding.finding,
                   depth_mm=None if finding.depth_mm is None else round(finding.depth_mm, 1),
                   clearly=finding.clearly)

    def palpate(self, point_mm: np.ndarray) -> PalpationFinding:
        """What a pressing finger feels at ``point_mm`` (no event; see the ``palpate`` command)."""
        return palpate_point(self.anatomy, point_mm)

    def _do_set_spine_visible(self, c: cmd.SetSpineVisible) -> None:
        if c.visible and (self.guidance == "landmark" or not self.scenario.view.allow_spine_toggle):
            raise CommandRefused("this scenario does not allow showing the spine")
        if c.visible != self.spine_visible:
            self.spine_visible = c.visible
            self._emit("spine_visibility_changed", visible=c.visible)

    def _do_finish(self, c: cmd.Finish) -> None:
        if self._fluoro_run is not None:
            self._stop_fluoroscopy()
        inside = self.needle.inserted and self.needle.depth_mm > 0
        tip = self.needle.tip_mm if inside else None
        tissue_id = self.needle.tip_tissue_id() if inside else None
        placement = self.procedure.classify(self.anatomy, tip, self.scenario, self._dura_punctured,
                                            tip_tissue_id=tissue_id)
        self._emit("attempt_finished", outcome=placement.outcome, tissue=placement.tissue,
                   interspace=placement.interspace)
        sc = self.scenario
        self.scorecard = score_attempt(self.procedure, placement, self.metrics(), sc, sc.scoring.expert_time_s,
                                       sc.scoring.expert_images)
        self.finished = True

    # ----------------------------------------------------------------------------- replay
    @classmethod
    def replay(cls, loaded: LoadedScenario, record: AttemptRecord, anatomy: Anatomy | None = None,
               image_size_px: int = 512, stop_on_refusal: bool = False) -> "Simulation":
        """A simulation fed the commands of ``record`` (refused commands are skipped unless
        ``stop_on_refusal``)."""
        sim = cls(loaded, anatomy=anatomy, image_size_px=image_size_px)
        for timed in record.commands:
            if sim.finished:
                break
            try:
                sim.apply(timed.command, timed.t_s)
            except CommandRefused:
                if stop_on_refusal:
                    raise
        return sim


def _list(v) -> list[float]:
    return [round(float(x), 3) for x in v]


def open_simulation(scenario_ref: str, record_path=None, image_size_px: int = 512) -> Simulation:
    """A simulation of a scenario file or built-in scenario name."""
    from simulator.scenario.loader import load_scenario

    return Simulation(load_scenario(scenario_ref), record_path=record_path, image_size_px=image_size_px)


__all__ = ["Simulation", "open_simulation", "SpineSimError", "CommandRefused"]
