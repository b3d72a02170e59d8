"""The replay window: a recorded attempt played back on the patient it was made on.

The attempt's commands are run one by one through a fresh :class:`Simulation` (deterministic: the
same commands on the same scenario give the same needle path, images and score), and what the view
needs at every step is kept (:class:`ReplayTimeline`), so seeking anywhere, backwards too, is
instant. The window shows in step the 3D scene (the debrief's revealed spine, the needle and the
C-arm as they were), the X-ray monitor (the images the attempt acquired, and the last-image hold
and live frames of fluoroscopy runs) and a timeline of the needle's depth and the syringe pressure
with the attempt's events, with play / pause, a slider over the steps, step buttons and a speed.

Open it with :func:`open_replay` (from the app, e.g. the debrief) or :func:`run_replay_app` (from
the command line).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QKeySequence, QPainter, QPainterPath, QPen, QShortcut
from PyQt6.QtWidgets import (QApplication, QCheckBox, QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                             QMainWindow, QMessageBox, QProgressDialog, QPushButton, QSizePolicy, QSlider,
                             QSplitter, QStyle, QVBoxLayout, QWidget)
from pyvistaqt import QtInteractor

from simulator import __version__
from simulator.app.jobs import start_zone_job
from simulator.app.widgets import QtXRayMonitor
from simulator.errors import CommandRefused, SpineSimError
from simulator.imaging.carm import CArmPose
from simulator.imaging.views import console_name, projection_name
from simulator.records.attempt_file import AttemptRecord, read_record
from simulator.scene.scene import PATH_COLOUR, SpineScene, debrief_focus_points, path_tube
from simulator.scoring.scorecard import SCORING_VERSION
from simulator.simulation.simulation import Simulation

#: Playback speeds offered (times real time).
SPEEDS = (1.0, 2.0, 4.0)
#: The playback clock's tick, ms.
TICK_MS = 40
#: Events marked on the timeline: kind -> (letter, colour, legend).
MARKERS = {
    "image_acquired": ("X", (250, 220, 90), "image"),
    "bone_contacted": ("B", (235, 235, 235), "bone contact"),
    "dural_puncture": ("D", (90, 150, 255), "dural puncture"),
    "paraesthesia": ("P", (255, 90, 90), "paraesthesia"),
    "contrast_injected": ("C", (90, 220, 130), "contrast"),
    "loss_of_resistance": ("L", (90, 220, 240), "loss of resistance"),
    "drug_injected": ("I", (205, 130, 255), "injectate"),
}


# ============================================================================ the replay's data
@dataclass(frozen=True)
class NeedleState:
    """The needle at one step, as the 3D scene draws it (the attributes :class:`SpineScene` reads of
    a live needle)."""

    inserted: bool
    polyline: np.ndarray | None = None  # hub to tip
    tip_mm: np.ndarray | None = None
    hub_mm: np.ndarray | None = None
    entry_mm: np.ndarray | None = None
    direction: np.ndarray | None = None
    depth_mm: float = 0.0
    tissue: str | None = None
    spec: object = None

    def shaft_polyline(self) -> np.ndarray:
        return self.polyline

    @classmethod
    def of(cls, needle) -> "NeedleState":
        if not needle.inserted:
            return cls(False, spec=needle.spec)
        return cls(True, needle.shaft_polyline().copy(), needle.tip_mm, needle.hub_mm.copy(),
                   np.asarray(needle.entry_mm, float).copy(), needle.direction, float(needle.depth_mm),
                   needle.tip_tissue(), needle.spec)

    def same_as(self, other: "NeedleState") -> bool:
        if self.inserted != other.inserted or self.spec is not other.spec:
            return False
        if not self.inserted:
            return True
        return (self.polyline.shape == other.polyline.shape and np.array_equal(self.polyline, other.polyline)
                and np.array_equal(self.tip_mm, other.tip_mm))


@dataclass(frozen=True)
class MonitorFrame:
    """What the X-ray monitor showed: an acquired image, a fluoroscopy run's last-image hold or a
    live frame."""

    display: np.ndarray
    caption: str
    kind: str  # "image", "hold" or "live"
    image_index: int | None = None


@dataclass
class ReplayStep:
    """The attempt after its first ``index`` commands (step 0: before any)."""

    index: int
    t_s: float
    command: str | None  # the command's name (None at step 0)
    description: str  # the command with its values
    refused: str | None  # why the command did nothing (refused, or after the finish)
    needle: NeedleState
    carm_pose: CArmPose
    frame: int | None  # the monitor's frame (index into ReplayTimeline.frames)
    fluoroscopy_on: bool
    events: tuple[int, int]  # the events this step caused (a range of ReplayTimeline.events)
    tip_path_len: int
    lor_count: int
    force_count: int
    metrics: dict[str, float]
    finished: bool
    hub: str
    syringe: str | None


@dataclass
class ReplayTimeline:
    """Every step of a replayed attempt, and the replay's simulation in its final state."""

    loaded: object
    record: AttemptRecord
    sim: Simulation
    steps: list[ReplayStep] = field(default_factory=list)
    frames: list[MonitorFrame] = field(default_factory=list)

    @property
    def events(self):
        return self.sim.events

    @property
    def t_end_s(self) -> float:
        return self.steps[-1].t_s if self.steps else 0.0

    def step_at_time(self, t_s: float) -> int:
        """The last step at or before ``t_s``."""
        times = [s.t_s for s in self.steps]
        return max(0, int(np.searchsorted(times, t_s + 1e-9, side="right")) - 1)

    def step_of_event(self, event_index: int) -> int:
        for step in self.steps:
            if step.events[0] <= event_index < step.events[1]:
                return step.index
        return 0

    def depth_series(self) -> list[tuple[float, float | None]]:
        """(time s, depth mm or None when the needle is out) at every step."""
        return [(s.t_s, s.needle.depth_mm if s.needle.inserted else None) for s in self.steps]

    def pressure_series(self) -> list[tuple[float, float]]:
        """(time s, syringe pressure mmHg) at every reading."""
        return [(t, p) for t, (_, p) in zip(self.sim.lor_times_s, self.sim.lor_trace, strict=True)]

    def markers(self) -> list[tuple[float, str]]:
        return [(e.t_s, e.kind) for e in self.events if e.kind in MARKERS]

    def fluoroscopy_spans(self) -> list[tuple[float, float]]:
        spans, since = [], None
        for e in self.events:
            if e.kind == "fluoroscopy_started":
                since = e.t_s
            elif e.kind == "fluoroscopy_stopped" and since is not None:
                spans.append((since, e.t_s))
                since = None
        if since is not None:
            spans.append((since, self.t_end_s))
        return spans


def _pose_caption(pose: CArmPose, position: str) -> str:
    return (f"{projection_name(pose.oblique_deg, pose.tilt_deg)}  "
            f"[C-arm {console_name(pose.oblique_deg, pose.tilt_deg, position)}]")


def _describe_command(command) -> str:
    values = {k: v for k, v in command.as_dict().items() if k != "command" and v is not None}
    parts = []
    for k, v in values.items():
        if isinstance(v, float):
            v = f"{v:g}"
        elif isinstance(v, (list, tuple)):
            v = "(" + ", ".join(f"{float(x):.1f}" if isinstance(x, (int, float)) else str(x) for x in v) + ")"
        parts.append(f"{k}={v}")
    name = command.command.replace("_", " ")
    return f"{name} ({', '.join(parts)})" if parts else name


def compute_replay(loaded, record: AttemptRecord, anatomy=None, image_size_px: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> ReplayTimeline:
    """Run ``record``'s commands through a fresh simulation of ``loaded`` and keep every step.

    Refused commands are kept as steps that change nothing (as :meth:`Simulation.replay` skips
    them); so are commands after the attempt's finish. ``image_size_px``: the images' size (the
    attempt's own, for identical images; default: the record header's ``image_size_px``, else the
    app's 512). ``progress(done, total)`` is called after every command.
    """
    header = record.header or {}
    size = int(image_size_px or header.get("image_size_px") or 512)
    sim = Simulation(loaded, anatomy=anatomy, image_size_px=size)
    position = sim.scenario.patient_position
    timeline = ReplayTimeline(loaded, record, sim)
    frames = timeline.frames

    def snapshot(index, t_s, command, refused, frame, needle, events_from):
        lor = sim.lor_trace[-1][1] if sim.lor_trace else None
        force = sim.force_trace[-1][2] if sim.force_trace else None
        metrics = dict(sim.metrics())
        metrics.update(lor_mmhg=lor, force_n=force)
        return ReplayStep(index, float(t_s), None if command is None else command.command,
                          "start" if command is None else _describe_command(command), refused, needle,
                          sim.carm_pose, frame, sim.fluoroscopy_on, (events_from, len(sim.events)),
                          len(sim.tip_path), len(sim.lor_trace), len(sim.force_trace), metrics, sim.finished,
                          sim.hub, sim.syringe)

    timeline.steps.append(snapshot(0, 0.0, None, None, None, NeedleState.of(sim.needle), 0))
    total = len(record.commands)
    for number, timed in enumerate(record.commands, start=1):
        previous = timeline.steps[-1]
        events_from = len(sim.events)
        images_before = len(sim.images)
        hold_before = sim.last_image_hold
        refused = None
        if sim.finished:
            refused = "after the attempt was finished"
        else:
            try:
                sim.apply(timed.command, timed.t_s)
            except CommandRefused as err:
                refused = f"refused: {err}"
        if refused is None:
            t_s = sim.t_s
        else:
            t_s = max(previous.t_s, float(timed.t_s)) if timed.t_s is not None else previous.t_s
        frame = previous.frame
        for index in range(images_before, len(sim.images)):
            image = sim.images[index]
            frames.append(MonitorFrame(image.display, f"#{index + 1}  {_pose_caption(image.pose, position)}",
                                       "image", index))
            frame = len(frames) - 1
        if sim.last_image_hold is not None and sim.last_image_hold is not hold_before:
            hold = sim.last_image_hold
            frames.append(MonitorFrame(hold.display, f"LIH  {_pose_caption(hold.pose, position)}", "hold"))
            frame = len(frames) - 1
        if sim.fluoroscopy_on and refused is None:
            # the live frame at this moment of the run (what the monitor showed while the pedal was
            # down): deterministic, keyed to the run's start and the pulse number
            live = sim.live_frame()
            started = next(e for e in reversed(sim.events) if e.kind == "fluoroscopy_started")
            mode = "DSA" if started.data.get("subtraction") else "LIVE"
            frames.append(MonitorFrame(live.display, f"{mode}  {_pose_caption(live.pose, position)}", "live"))
            frame = len(frames) - 1
        needle = NeedleState.of(sim.needle)
        if needle.same_as(previous.needle):
            needle = previous.needle  # the same object: the view knows it need not redraw
        timeline.steps.append(snapshot(number, t_s, timed.command, refused, frame, needle, events_from))
        if progress is not None:
            progress(number, total)
    return timeline


def _comparable(obj):
    return json.loads(json.dumps(obj, default=str))


def replay_warnings(timeline: ReplayTimeline) -> list[str]:
    """Why the replay may differ from what the trainee saw (empty when it cannot)."""
    header = timeline.record.header
    sim = timeline.sim
    if header is None:
        return ["This is a script of commands without a header: it is replayed on the scenario given, "
                "with nothing to check that it was made on it."]
    out = []
    recorded = header.get("generator_version")
    current = sim.anatomy.patient.generator_version
    if recorded != current:
        out.append(f"This attempt was recorded with patient generator <b>{recorded}</b>; the installed one is "
                   f"<b>{current}</b>. The patient is rebuilt with the current generator, so details of the "
                   "anatomy, the images and the needle's path may differ from what the trainee saw.")
    scenario = header.get("scenario") or {}
    if scenario.get("sha256") and scenario.get("sha256") != timeline.loaded.sha256:
        out.append("The scenario given differs from the one this attempt was recorded on; the replay may "
                   "differ.")
    if recorded == current and "patient" in header:
        def strip(p):
            return {k: v for k, v in _comparable(p).items() if k != "generator_version"}
        if strip(header["patient"]) != strip(sim.header["patient"]):
            out.append("The patient rebuilt for the replay differs from the one recorded (another patient's "
                       "parameters); the replay may differ.")
    return out


def scenario_from_record(record: AttemptRecord, source: str = "the attempt record"):
    """The scenario an attempt was recorded on, from the TOML text its header keeps."""
    from simulator.scenario.loader import parse_scenario

    header = record.header
    if header is None or not (header.get("scenario") or {}).get("text"):
        raise SpineSimError(f"{source}: no header with the scenario (a bare script): name the scenario to "
                            "replay it on")
    return parse_scenario(header["scenario"]["text"], f"{header['scenario'].get('source', 'scenario')} "
                                                      f"(from {source})")


# ============================================================================ widgets
class _ReplayMonitor(QtXRayMonitor):
    """The app's X-ray monitor, which can also go back to showing no image (seeking back)."""

    def clear_image(self, text: str = "No image yet at this point of the attempt.") -> None:
        self._image = None
        self._caption = ""
        self.clear()
        self.setText(text)


class MetricTimeline(QWidget):
    """The attempt over time: the needle's depth (top lane, deeper downwards), the syringe pressure
    (bottom lane), fluoroscopy runs shaded, event markers, and a cursor at the current time. A click
    or drag asks to seek there (:attr:`seek_requested`, in seconds)."""

    seek_requested = pyqtSignal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("replay_timeline")
        self.setMinimumHeight(170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.t_end_s = 1.0
        self.depth: list[tuple[float, float | None]] = []
        self.pressure: list[tuple[float, float]] = []
        self.markers: list[tuple[float, str]] = []
        self.spans: list[tuple[float, float]] = []
        self.cursor_time_s = 0.0
        self.depth_max = 10.0
        self.pressure_max = 600.0

    def set_data(self, t_end_s, depth, pressure, markers, spans) -> None:
        self.t_end_s = max(float(t_end_s), 1.0)
        self.depth = list(depth)
        self.pressure = list(pressure)
        self.markers = list(markers)
        self.spans = list(spans)
        deepest = max([d for _, d in self.depth if d is not None] or [0.0])
        self.depth_max = max(10.0, 10.0 * math.ceil(deepest * 1.05 / 10.0))
        highest = max([p for _, p in self.pressure] or [0.0])
        self.pressure_max = float(min(max(600.0, 100.0 * math.ceil(highest / 100.0)), 1000.0))
        self.update()

    def set_cursor(self, t_s: float) -> None:
        self.cursor_time_s = float(t_s)
        self.update()

    # geometry
    def _plot_rect(self) -> QRectF:
        return QRectF(self.rect()).adjusted(52, 20, -14, -36)

    def x_of(self, t_s: float) -> float:
        r = self._plot_rect()
        return r.left() + min(max(t_s / self.t_end_s, 0.0), 1.0) * r.width()

    def t_of(self, x: float) -> float:
        r = self._plot_rect()
        return min(max((x - r.left()) / max(r.width(), 1.0), 0.0), 1.0) * self.t_end_s

    def cursor_x(self) -> float:
        """The cursor's horizontal position, pixels."""
        return self.x_of(self.cursor_time_s)

    def _lanes(self) -> tuple[QRectF, QRectF]:
        r = self._plot_rect()
        h = (r.height() - 6.0) / 2.0
        return QRectF(r.left(), r.top(), r.width(), h), QRectF(r.left(), r.top() + h + 6.0, r.width(), h)

    # painting
    def paintEvent(self, event):  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor(24, 26, 30))
        font = QFont()
        font.setPointSize(8)
        p.setFont(font)
        plot = self._plot_rect()
        depth_lane, pressure_lane = self._lanes()
        for a, b in self.spans:  # fluoroscopy runs
            x0, x1 = self.x_of(a), self.x_of(b)
            p.fillRect(QRectF(x0, plot.top(), max(x1 - x0, 2.0), plot.height()), QColor(120, 110, 40, 90))
        for lane in (depth_lane, pressure_lane):
            p.setPen(QColor(90, 96, 106))
            p.drawRect(lane)
        label = QColor(150, 156, 166)
        p.setPen(label)
        p.drawText(QPointF(2, depth_lane.top() + 10), "0 mm")
        p.drawText(QPointF(2, depth_lane.bottom()), f"{self.depth_max:.0f} mm")
        p.drawText(QPointF(2, pressure_lane.top() + 10), f"{self.pressure_max:.0f}")
        p.drawText(QPointF(2, pressure_lane.bottom()), "0 mmHg")
        p.drawText(QPointF(depth_lane.left() + 4, depth_lane.top() + 11), "needle depth")
        p.drawText(QPointF(pressure_lane.left() + 4, pressure_lane.top() + 11), "syringe pressure")
        step = _nice_step(self.t_end_s)
        t = 0.0
        while t <= self.t_end_s + 1e-6:
            x = self.x_of(t)
            p.setPen(QColor(55, 60, 68))
            p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            p.setPen(label)
            p.drawText(QPointF(x - 8, plot.bottom() + 13), f"{t:.0f} s")
            t += step
        # the depth: deeper is lower; the needle out of the skin breaks the line
        path = QPainterPath()
        pen_down = False
        for t, d in self.depth:
            if d is None:
                pen_down = False
                continue
            pt = QPointF(self.x_of(t), depth_lane.top() + min(d / self.depth_max, 1.0) * depth_lane.height())
            path.lineTo(pt) if pen_down else path.moveTo(pt)
            pen_down = True
        p.setPen(QPen(QColor(240, 160, 90), 2))
        p.drawPath(path)
        path = QPainterPath()
        for i, (t, v) in enumerate(self.pressure):
            pt = QPointF(self.x_of(t), pressure_lane.bottom() - min(v / self.pressure_max, 1.0) * pressure_lane.height())
            path.lineTo(pt) if i else path.moveTo(pt)
        p.setPen(QPen(QColor(90, 200, 255), 2))
        p.drawPath(path)
        p.setBrush(QColor(90, 200, 255))
        for t, v in self.pressure:
            p.drawEllipse(QPointF(self.x_of(t), pressure_lane.bottom() - min(v / self.pressure_max, 1.0)
                                  * pressure_lane.height()), 2.0, 2.0)
        # event markers: a letter above the plot and a thin line down it
        for t, kind in self.markers:
            letter, colour, _ = MARKERS[kind]
            x = self.x_of(t)
            c = QColor(*colour)
            c.setAlpha(110)
            p.setPen(QPen(c, 1))
            p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            p.setPen(QColor(*colour))
            p.drawText(QPointF(x - 3, plot.top() - 5), letter)
        # the legend
        x = plot.left()
        for letter, colour, name in MARKERS.values():
            p.setPen(QColor(*colour))
            text = f"{letter} {name}"
            p.drawText(QPointF(x, self.height() - 5), text)
            x += p.fontMetrics().horizontalAdvance(text) + 14
        p.setPen(QColor(200, 185, 90))
        p.drawText(QPointF(x, self.height() - 5), "shaded: fluoroscopy")
        # the cursor
        x = self.cursor_x()
        p.setPen(QPen(QColor(255, 255, 255), 2))
        p.drawLine(QPointF(x, plot.top() - 2), QPointF(x, plot.bottom() + 2))
        p.end()

    def mousePressEvent(self, event):  # noqa: N802 (Qt name)
        if event.button() == Qt.MouseButton.LeftButton:
            self.seek_requested.emit(self.t_of(event.position().x()))

    def mouseMoveEvent(self, event):  # noqa: N802 (Qt name)
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.seek_requested.emit(self.t_of(event.position().x()))


def _nice_step(span: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200):
        if span / step <= 12:
            return float(step)
    return 3600.0


class _SceneSim:
    """What :class:`SpineScene` reads of a simulation, held at the replay's current step."""

    def __init__(self, sim: Simulation, step: ReplayStep):
        self.anatomy = sim.anatomy
        self.scenario = sim.scenario
        self.guidance = sim.guidance
        self.procedure = sim.procedure
        self.needle = step.needle
        self.carm_pose = step.carm_pose
        self.tip_path: list[np.ndarray] = []  # the path is drawn by the window, up to the step


# ============================================================================ the window
class ReplayWindow(QMainWindow):
    """Plays back one replayed attempt (see :func:`open_replay`).

    Parameters
    ----------
    timeline : ReplayTimeline
    trainee : str, optional
        Who made the attempt (shown in the header), when known.
    """

    def __init__(self, timeline: ReplayTimeline, trainee: str | None = None, parent=None):
        super().__init__(parent)
        self.timeline = timeline
        self.sim = timeline.sim
        sc = self.sim.scenario
        self.setWindowTitle(f"SpineSim replay - {sc.title}")
        self.resize(1500, 950)
        self.step = -1
        self.playing = False
        self._clock_s = 0.0
        self._wall = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._shown_needle = None
        self._shown_pose = None
        self._shown_frame = -2

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 6, 6, 6)
        self.setCentralWidget(central)
        header = timeline.record.header or {}
        trainee = trainee or header.get("trainee")
        self.header_label = QLabel(self._header_text(trainee))
        self.header_label.setObjectName("replay_header")
        self.header_label.setWordWrap(True)
        outer.addWidget(self.header_label)
        self.warnings = replay_warnings(timeline)
        self.version_warning = QLabel("<br>".join(f"&#9888; {w}" for w in self.warnings))
        self.version_warning.setObjectName("version_warning")
        self.version_warning.setWordWrap(True)
        self.version_warning.setStyleSheet("background: #6b5200; color: #fff6d0; padding: 5px; "
                                           "border: 1px solid #c79a00;")
        self.version_warning.setVisible(bool(self.warnings))
        outer.addWidget(self.version_warning)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.plotter = QtInteractor(splitter, auto_update=False)
        self.plotter.setObjectName("replay_view3d")
        splitter.addWidget(self.plotter)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.monitor = _ReplayMonitor()
        self.monitor.setMinimumSize(260, 260)
        self.monitor.clear_image()
        if self.sim.guidance == "fluoroscopy":
            right_layout.addWidget(self.monitor, stretch=3)
        else:
            self.monitor.hide()
            note = QLabel("<b>Landmark technique</b>: no X-ray images in this attempt.")
            note.setWordWrap(True)
            right_layout.addWidget(note)
        self.metrics_label = QLabel()
        self.metrics_label.setObjectName("replay_metrics")
        self.metrics_label.setWordWrap(True)
        self.metrics_label.setTextFormat(Qt.TextFormat.RichText)
        right_layout.addWidget(self.metrics_label)
        self.event_list = QListWidget()
        self.event_list.setObjectName("replay_events")
        self.event_list.itemClicked.connect(self._on_event_clicked)
        right_layout.addWidget(self.event_list, stretch=2)
        splitter.addWidget(right)
        splitter.setSizes([900, 600])
        outer.addWidget(splitter, stretch=1)

        self.timeline_widget = MetricTimeline()
        self.timeline_widget.set_data(timeline.t_end_s, timeline.depth_series(), timeline.pressure_series(),
                                      timeline.markers(), timeline.fluoroscopy_spans())
        self.timeline_widget.seek_requested.connect(self.seek_time)
        outer.addWidget(self.timeline_widget)
        outer.addLayout(self._controls())

        self._fill_events()
        self._scene_sim = _SceneSim(self.sim, timeline.steps[0])
        self.plotter.suppress_rendering = True
        try:
            self.scene = SpineScene(self.plotter, self._scene_sim)
            self.scene.reveal(sc.target_level, zone_later=True)
            # the levels round the target and the whole attempt's needle path (see focus_on)
            self._focus_mm = debrief_focus_points(self.sim)
            self.scene.focus_on(self._focus_mm)
            self._palpation_markers = self._add_palpation_markers()
        finally:
            self.plotter.suppress_rendering = False
        self.view_choice.setCurrentIndex(0)
        self.scene.close_up_camera()
        self._install_shortcuts()
        self.seek(0)
        self.target_zone_shown = False
        if sc.target_level:
            start_zone_job(self._scene_sim, self._on_target_zone,
                           lambda message: self.statusBar().showMessage(f"Target zone not shown: {message}", 8000))

    def _show_whole_spine(self, whole: bool) -> None:
        self.scene.focus_on(None if whole else self._focus_mm)
        self.plotter.render()

    def _on_target_zone(self, surface) -> None:
        """The target zone, computed off the GUI thread, joins the revealed anatomy."""
        self.scene.show_target_zone(surface)
        self.target_zone_shown = True
        self.plotter.update()

    # ------------------------------------------------------------------------- building
    def _header_text(self, trainee: str | None) -> str:
        sc = self.sim.scenario
        header = self.timeline.record.header or {}
        parts = [f"<b>Replay: {sc.title}</b> ({sc.id}, {sc.guidance})"]
        parts.append(f"trainee: <b>{trainee}</b>" if trainee else "trainee: not recorded")
        parts.append(f"patient seed {sc.patient.seed}, generator {self.sim.anatomy.patient.generator_version}")
        recorded_app = header.get("app_version")
        if recorded_app:
            parts.append(f"recorded with SpineSim {recorded_app}" +
                         ("" if recorded_app == __version__ else f" (replayed with {__version__})"))
        parts.append(f"scored with scoring version {SCORING_VERSION}")
        card = self.sim.scorecard
        if card is not None:
            parts.append(f"final score <b>{card.score:.0f} / 100 {'PASS' if card.passed else 'FAIL'}</b>")
        else:
            parts.append("the attempt was not finished (no score)")
        return " &nbsp;|&nbsp; ".join(parts)

    def _controls(self) -> QHBoxLayout:
        row = QHBoxLayout()
        style = self.style()

        def button(name, icon, tip, slot):
            b = QPushButton()
            b.setObjectName(name)
            b.setIcon(style.standardIcon(icon))
            b.setToolTip(tip)
            b.clicked.connect(lambda _=False: slot())
            row.addWidget(b)
            return b

        sp = QStyle.StandardPixmap
        self.start_button = button("replay_start", sp.SP_MediaSkipBackward, "To the start (Home)",
                                   lambda: self.seek(0))
        self.back_button = button("replay_step_back", sp.SP_MediaSeekBackward, "One step back (Left)",
                                  self.step_back)
        self.play_button = button("replay_play", sp.SP_MediaPlay, "Play / pause (Space)", self.toggle_play)
        self.forward_button = button("replay_step_forward", sp.SP_MediaSeekForward, "One step forward (Right)",
                                     self.step_forward)
        self.end_button = button("replay_end", sp.SP_MediaSkipForward, "To the end (End)",
                                 lambda: self.seek(self.last_step))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("replay_slider")
        self.slider.setRange(0, self.last_step)
        self.slider.setPageStep(max(1, self.last_step // 20))
        self.slider.valueChanged.connect(self._show_step)
        row.addWidget(self.slider, stretch=1)
        self.speed = QComboBox()
        self.speed.setObjectName("replay_speed")
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}x", s)
        row.addWidget(self.speed)
        self.view_choice = QComboBox()
        self.view_choice.setObjectName("replay_camera")
        self.view_choice.addItems(["Close-up", "Operator's view"])
        self.view_choice.activated.connect(self._set_camera)
        row.addWidget(self.view_choice)
        self.whole_spine = QCheckBox("Whole spine")
        self.whole_spine.setObjectName("replay_whole_spine")
        self.whole_spine.setToolTip("Show the whole spine, not only the levels round the target and the needle")
        self.whole_spine.toggled.connect(self._show_whole_spine)
        row.addWidget(self.whole_spine)
        self.time_label = QLabel()
        self.time_label.setObjectName("replay_time")
        self.time_label.setMinimumWidth(360)
        row.addWidget(self.time_label)
        return row

    def _install_shortcuts(self) -> None:
        for key, slot in ((Qt.Key.Key_Space, self.toggle_play), (Qt.Key.Key_Left, self.step_back),
                          (Qt.Key.Key_Right, self.step_forward), (Qt.Key.Key_Home, lambda: self.seek(0)),
                          (Qt.Key.Key_End, lambda: self.seek(self.last_step))):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(slot)

    def _fill_events(self) -> None:
        from simulator.app.main_window import describe_event  # not at import time: main_window may import us

        self._event_step: list[int] = []
        for step in self.timeline.steps:
            for index in range(*step.events):
                e = self.timeline.events[index]
                text = describe_event(e) or _plain_event(e)
                item = QListWidgetItem(f"{e.t_s:6.1f} s  {text}")
                item.setData(Qt.ItemDataRole.UserRole, step.index)
                self.event_list.addItem(item)
                self._event_step.append(step.index)

    def _add_palpation_markers(self) -> list[tuple[int, list]]:
        """Every palpation's marker, drawn once and shown from its step on."""
        out = []
        for index, e in enumerate(self.timeline.events):
            if e.kind != "palpated":
                continue
            before = set(self.plotter.actors)
            self.scene.add_palpation_marker(e.data["point_mm"], e.data["finding"], e.data["depth_mm"])
            actors = [self.plotter.actors[name] for name in set(self.plotter.actors) - before]
            out.append((self.timeline.step_of_event(index), actors))
        return out

    # ------------------------------------------------------------------------- playback
    @property
    def last_step(self) -> int:
        return len(self.timeline.steps) - 1

    @property
    def current(self) -> ReplayStep:
        return self.timeline.steps[self.step]

    def seek(self, step: int) -> None:
        """Show the attempt after its first ``step`` commands (clamped to the attempt)."""
        step = int(min(max(step, 0), self.last_step))
        if not self.playing:
            self._clock_s = self.timeline.steps[step].t_s
        if self.slider.value() != step:
            self.slider.setValue(step)  # shows it
        elif self.step != step:
            self._show_step(step)
        if not self.playing:
            self.timeline_widget.set_cursor(self.timeline.steps[step].t_s)

    def seek_time(self, t_s: float) -> None:
        """Show the attempt as it was at ``t_s`` seconds."""
        self.pause()
        self.seek(self.timeline.step_at_time(t_s))
        self._clock_s = float(t_s)
        self.timeline_widget.set_cursor(t_s)

    def step_forward(self) -> None:
        self.pause()
        self.seek(self.step + 1)

    def step_back(self) -> None:
        self.pause()
        self.seek(self.step - 1)

    def set_speed(self, speed: float) -> None:
        self.speed.setCurrentIndex(self.speed.findData(float(speed)))

    def play(self) -> None:
        if self.playing:
            return
        if self.step >= self.last_step:
            self.seek(0)
        self._clock_s = self.current.t_s
        self._wall = time.monotonic()
        self.playing = True
        self.play_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPause))
        self._timer.start()

    def pause(self) -> None:
        if not self.playing:
            return
        self.playing = False
        self._timer.stop()
        self.play_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def _tick(self) -> None:
        now = time.monotonic()
        self._clock_s += (now - self._wall) * float(self.speed.currentData() or 1.0)
        self._wall = now
        target = self.timeline.step_at_time(self._clock_s)
        if target != self.step:
            self.seek(target)
        self.timeline_widget.set_cursor(min(self._clock_s, self.timeline.t_end_s))
        self._update_time_label()
        if self.step >= self.last_step:
            self.pause()
            self.timeline_widget.set_cursor(self.current.t_s)

    # ------------------------------------------------------------------------- showing a step
    def _show_step(self, index: int) -> None:
        if index == self.step:
            return
        self.step = index
        step = self.timeline.steps[index]
        self._show_scene(step)
        self._show_monitor(step)
        self._show_metrics(step)
        self._show_events(step)
        if not self.playing:
            self.timeline_widget.set_cursor(step.t_s)
        self._update_time_label()

    def _show_scene(self, step: ReplayStep) -> None:
        # the scene's updates each ask for a render: one render for the whole step instead
        self.plotter.suppress_rendering = True
        try:
            self._update_scene(step)
        finally:
            self.plotter.suppress_rendering = False
        self.plotter.render()

    def _update_scene(self, step: ReplayStep) -> None:
        state = self._scene_sim
        if step.needle is not self._shown_needle:
            state.needle = step.needle
            self.scene.update_needle()
            self._shown_needle = step.needle
        if step.carm_pose != self._shown_pose:
            state.carm_pose = step.carm_pose
            self.scene.update_carm()
            self._shown_pose = step.carm_pose
        tube = path_tube(self.sim.tip_path[:step.tip_path_len])
        if tube is not None:
            self.plotter.add_mesh(tube, color=PATH_COLOUR,
                                  pickable=False, name="needle_path", reset_camera=False, render=False)
        elif "needle_path" in self.plotter.actors:
            self.plotter.remove_actor("needle_path", render=False)
        for shown_from, actors in self._palpation_markers:
            for actor in actors:
                actor.SetVisibility(step.index >= shown_from)

    def _show_monitor(self, step: ReplayStep) -> None:
        if step.frame == self._shown_frame:
            return
        self._shown_frame = step.frame
        if step.frame is None:
            self.monitor.clear_image()
        else:
            frame = self.timeline.frames[step.frame]
            self.monitor.show_image(frame.display, frame.caption)

    def _show_metrics(self, step: ReplayStep) -> None:
        m = step.metrics
        n = step.needle
        lines = []
        status = f"<b>{step.description}</b>"
        if step.refused:
            status += f" <span style='color:#e0a030'>({step.refused}: nothing changed)</span>"
        lines.append(status)
        if n.inserted:
            lines.append(f"Needle depth <b>{n.depth_mm:.1f} mm</b>, tip in {(n.tissue or '-').replace('_', ' ')}")
        else:
            lines.append("Needle not yet in")
        readings = []
        if m.get("lor_mmhg") is not None:
            readings.append(f"syringe {m['lor_mmhg']:.0f} mmHg")
        if m.get("force_n") is not None:
            readings.append(f"force {m['force_n']:.1f} N")
        readings.append(f"hub {step.hub}" + (f", {step.syringe} syringe on" if step.syringe else ""))
        lines.append("Last readings: " + ", ".join(readings))
        lines.append(f"Images {int(m['images'])} &nbsp; passes {int(m['needle_passes'])} &nbsp; bone contacts "
                     f"{int(m['bone_contacts'])} &nbsp; LOR tests {int(m['lor_tests'])} &nbsp; contrast "
                     f"{m['contrast_ml']:.1f} mL &nbsp; injectate {m.get('injectate_ml', 0.0):.1f} mL")
        if self.sim.guidance == "fluoroscopy":
            lines.append(f"Dose so far: fluoroscopy {m['fluoroscopy_s']:.1f} s, air kerma {m['air_kerma_mgy']:.2f} "
                         f"mGy, DAP {m['dap_gy_cm2']:.3f} Gy cm2" + (" &nbsp; <b>FLUORO ON</b>" if step.fluoroscopy_on
                                                                      else ""))
        card = self.sim.scorecard
        if step.finished and card is not None:
            parts = ", ".join(f"{k} {v:.0f}" for k, v in card.parts.items())
            verdict = "PASS" if card.passed else "FAIL"
            lines.append(f"<b>Score {card.score:.0f} / 100 {verdict}</b> ({parts}); outcome: "
                         f"{card.placement.outcome}")
            if card.hard_fails:
                lines.append("Safety: " + "; ".join(card.hard_fails))
        self.metrics_label.setText("<br>".join(lines))

    def _show_events(self, step: ReplayStep) -> None:
        last_current = None
        for row in range(self.event_list.count()):
            item = self.event_list.item(row)
            owner = self._event_step[row]
            font = item.font()
            font.setBold(owner == step.index)
            item.setFont(font)
            item.setForeground(QColor(30, 30, 30) if owner <= step.index else QColor(160, 160, 160))
            if owner <= step.index:
                last_current = item
        if last_current is not None:
            self.event_list.scrollToItem(last_current)

    def _update_time_label(self) -> None:
        step = self.current
        clock = self._clock_s if self.playing else step.t_s
        self.time_label.setText(f"{clock:6.1f} s of {self.timeline.t_end_s:.1f} s  |  step {step.index} of "
                                f"{self.last_step}: {step.command or 'start'}")

    def _on_event_clicked(self, item: QListWidgetItem) -> None:
        self.pause()
        self.seek(int(item.data(Qt.ItemDataRole.UserRole)))

    def _set_camera(self, index: int) -> None:
        (self.scene.close_up_camera if index == 0 else self.scene.reset_camera)()
        self.plotter.render()

    # ------------------------------------------------------------------------- state for tests
    def shown_tip_mm(self) -> np.ndarray | None:
        """The needle tip the 3D view shows now (None before the needle goes in)."""
        needle = self._scene_sim.needle
        return None if not needle.inserted else np.asarray(needle.tip_mm)

    def closeEvent(self, event):  # noqa: N802 (Qt name)
        self._timer.stop()
        self.plotter.close()
        super().closeEvent(event)


def _plain_event(event) -> str:
    """An event the trainee's log does not tell, in plain words (the debrief may show it)."""
    data = event.data
    text = event.kind.replace("_", " ")
    if event.kind == "command_refused":
        return f"{data.get('command', '').replace('_', ' ')} refused: {data.get('reason', '')}"
    if "depth_mm" in data and data["depth_mm"] is not None:
        text += f" at {float(data['depth_mm']):.1f} mm"
    if "tissue" in data and isinstance(data["tissue"], str):
        text += f" ({data['tissue'].replace('_', ' ')})"
    if event.kind == "carm_moved":
        text += f" to {projection_name(data['oblique_deg'], data['tilt_deg'])}"
    return text


# ============================================================================ opening it
def _as_record(record) -> tuple[AttemptRecord, str]:
    if isinstance(record, AttemptRecord):
        return record, "the attempt record"
    return read_record(record), str(record)


def open_replay(loaded_scenario, record, anatomy=None, *, image_size_px: int | None = None,
                trainee: str | None = None, parent=None, show: bool = True) -> ReplayWindow:
    """Replay ``record`` (an :class:`AttemptRecord` or the path of one) on ``loaded_scenario`` (a
    ``LoadedScenario``; ``None``: the scenario the record's header keeps) and open the replay
    window. ``anatomy``: the patient, if already built (e.g. the app's, from the debrief); else
    built, or loaded from the cache. ``image_size_px``: the attempt's image size (default: the
    header's, else 512). Needs a QApplication; shows a progress dialog while the attempt is
    replayed."""
    record, source = _as_record(record)
    loaded = loaded_scenario if loaded_scenario is not None else scenario_from_record(record, source)
    total = len(record.commands)
    progress = None
    if QApplication.instance() is not None and total:
        progress = QProgressDialog("Replaying the attempt...", None, 0, total, parent)
        progress.setWindowTitle("SpineSim replay")
        progress.setMinimumDuration(400)
        progress.setWindowModality(Qt.WindowModality.ApplicationModal)

    def report(done: int, count: int) -> None:
        if progress is not None:
            progress.setValue(done)
            QApplication.processEvents()

    try:
        timeline = compute_replay(loaded, record, anatomy=anatomy, image_size_px=image_size_px, progress=report)
    finally:
        if progress is not None:
            progress.close()
    window = ReplayWindow(timeline, trainee=trainee, parent=parent)
    if show:
        window.show()
        window.plotter.render()
    return window


def run_replay_app(attempt: str | Path | AttemptRecord, scenario_ref: str | None = None,
                   image_size_px: int | None = None, trainee: str | None = None) -> int:
    """The ``spinesim replay ATTEMPT`` command: open the replay window on an attempt record (or a
    script of commands, with ``scenario_ref``), on the scenario the record was made on unless
    ``scenario_ref`` names another. Returns the exit status (2 when it cannot be replayed)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("SpineSim")
    try:
        record, source = _as_record(attempt)
        if scenario_ref is not None:
            from simulator.scenario.loader import load_scenario

            loaded = load_scenario(scenario_ref)
        else:
            loaded = scenario_from_record(record, source)
        from simulator.app.main import build_patient

        anatomy = build_patient(loaded, "SpineSim replay")
        window = open_replay(loaded, record, anatomy=anatomy, image_size_px=image_size_px, trainee=trainee)
    except SpineSimError as err:
        QMessageBox.critical(None, "SpineSim replay", str(err))
        print(f"spinesim: error: {err}", file=sys.stderr)
        return 2
    status = app.exec()
    del window  # kept alive until the app ends
    return status


__all__ = ["ReplayWindow", "ReplayTimeline", "ReplayStep", "MetricTimeline", "compute_replay", "open_replay",
           "run_replay_app", "replay_warnings", "scenario_from_record"]
