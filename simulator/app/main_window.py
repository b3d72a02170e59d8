"""The training window: 3D view, X-ray monitor (or the hands panel in landmark mode), controls.

Every button and key sends a command to the one :class:`~simulator.simulation.Simulation`; the
window only shows what the simulation's events say. The command's time is the wall-clock time
since the attempt started.
"""

from __future__ import annotations

import time

import numpy as np
from PyQt6.QtCore import QEvent, QRunnable, Qt, QThreadPool, QTimer, pyqtSignal
from PyQt6.QtGui import QAction, QKeySequence, QShortcut
from PyQt6.QtWidgets import (QApplication, QButtonGroup, QCheckBox, QComboBox, QSpinBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QGridLayout,
                             QGroupBox, QHBoxLayout, QLabel, QListWidget, QMainWindow, QMessageBox,
                             QPushButton, QRadioButton, QScrollArea, QSplitter, QTextBrowser, QVBoxLayout,
                             QWidget)
from pyvistaqt import QtInteractor

from simulator.errors import SpineSimError
from simulator.imaging.carm import FIELDS_OF_VIEW_MM
from simulator.imaging.views import console_name, projection_name, standard_views
from simulator.procedures.drugs import drug_catalogue
from simulator.protocol import commands as cmd
from simulator.protocol.events import Event
from simulator.app.jobs import Signals, report, start_zone_job
from simulator.scene.scene import SpineScene, debrief_focus_points

#: How the contrast patterns a trainee can report read in the app (reference 3.0).
#: Events that change the 3D scene other than the needle (the needle has its own frame).
SCENE_EVENTS = ("carm_moved", "palpated", "spine_visibility_changed")
#: With the pedal down, the 3D needle is drawn at most this often, seconds: a 3D frame takes
#: 30-45 ms in software OpenGL, so keys held down leave the window time to paint each live image.
NEEDLE_FRAME_LIVE_S = 0.1
#: How long a job waits for the 3D frame it should follow (see MainWindow._after_3d_frame).
FRAME_WAIT_S = 0.3
#: The debrief's 3D view is revealed this long after its dialog opens (one paint at a time).
DEBRIEF_REVEAL_AFTER_MS = 30

PATTERN_LABELS = {
    "epidural": "Epidural spread", "intrathecal": "Intrathecal (myelogram)", "subdural": "Subdural",
    "venous": "Venous uptake", "arterial": "Arterial uptake", "joint": "Intra-articular (arthrogram)",
    "disc": "Intradiscal (discogram)", "bone": "Intraosseous blush", "soft_tissue": "Soft tissue / muscle",
}

SHORTCUTS = [
    ("Right-click on the skin", "choose the entry point (or palpate, in palpation mode)"),
    ("Up / W", "advance 1 mm  (Shift: 5 mm, Alt: 0.5 mm)"),
    ("Down / S", "withdraw 1 mm  (Shift: 5 mm)"),
    ("Ctrl + arrows", "redirect the needle 2 degrees (cranial, caudal, left, right)"),
    ("L", "press the loss-of-resistance syringe (saline); Shift+L: air"),
    ("Y", "attach / detach a saline syringe on the hub (pressure read at every step); Shift+Y: air"),
    ("A", "aspirate: draw back and look at the hub"),
    ("B / Shift+B", "turn the needle's bevel 90 degrees clockwise / anticlockwise (steers the tip)"),
    ("C", "inject 0.5 mL of contrast"),
    ("D", "inject the drug syringe (the drug and volume chosen in the needle panel)"),
    ("R", "report your reading of the last contrast run (the pattern chosen in the needle panel)"),
    ("Ctrl+O", "choose another scenario"),
    ("Ctrl+K / Ctrl+P", "your courses / your progress and learning curves"),
    ("F", "take an X-ray image (a single acquisition, kept in the attempt)"),
    ("Space (hold)", "the fluoroscopy pedal: live images while held, the last one held on release"),
    ("1 / 2 / 3", "C-arm presets: AP, lateral, contralateral oblique 50 degrees"),
    ("G / Shift+G", "the next / previous of the procedure's standard views and your saved ones"),
    ("Ctrl+S", "save the C-arm's view in that list"),
    ("[ and ]", "C-arm oblique -/+ 5 degrees"),
    ("PgUp / PgDn", "C-arm tilt towards the head / feet 2 degrees"),
    ("Ctrl+Shift + arrows", "move the table: the beam's centre 10 mm towards the head, feet, left or right"),
    ("I / Shift+I", "close / open the iris 25 mm (a smaller field: less dose and scatter)"),
    ("O / Shift+O", "close / open the shutters 20 mm"),
    ("M", "the next magnification mode (the image intensifier's field)"),
    ("T", "the next fluoroscopy pulse rate (15/s, 7.5/s, 30/s, continuous)"),
    ("X", "digital subtraction on / off (the mask is taken as the pedal goes down)"),
    (", and .  /  - and =", "the monitor's level darker / brighter  /  window narrower / wider; Z: reset"),
    ("V", "show / hide the spine inside the skin (where the scenario allows)"),
    ("Home", "the 3D view back to the operator's place beside the table"),
    ("Left mouse drag / wheel", "orbit / zoom the 3D view"),
    ("Click a thumbnail", "see that image of the attempt again on the monitor"),
    ("P", "switch right-click between choosing the entry and palpating"),
    ("Ctrl+Enter or F10", "finish the attempt and see the debrief"),
    ("F1", "this help"),
]


class _CommandJob(QRunnable):
    """Runs a slow command (an X-ray at a new C-arm pose) off the GUI thread."""

    def __init__(self, sim, command, t_s):
        super().__init__()
        self.sim, self.command, self.t_s = sim, command, t_s
        self.signals = Signals()

    def run(self):
        try:
            events = self.sim.apply(self.command, self.t_s)
        except SpineSimError as err:
            report(self.signals, "failed", str(err))
        except Exception as err:  # noqa: BLE001 - reported to the user, never a crash
            report(self.signals, "failed", f"{err.__class__.__name__}: {err}")
        else:
            report(self.signals, "done", events)


class MainWindow(QMainWindow):
    """The trainee's window for one attempt.

    The window follows the simulation's events, whoever sends the commands (the trainee, a script,
    a replay); events from a worker thread reach the widgets through a queued signal.

    Parameters
    ----------
    sim : Simulation
    record_path : str, optional
        Where the attempt record is being written (shown in the debrief).
    """

    event_received = pyqtSignal(object)

    def __init__(self, sim, record_path: str | None = None):
        super().__init__()
        self.sim = sim
        self.record_path = record_path
        #: The scenario the trainee chose to go to next (the app opens it when this window closes),
        #: and the course it is done in (None: free practice).
        self.next_scenario: str | None = None
        self.next_course: int | None = None
        self.instructor = None  # the unlocked instructor (Actor), once the password is given
        self.dialogs: list = []  # non-modal dialogs kept alive while open
        self._t0 = time.monotonic()
        self._busy = False
        self._needle_redraw_pending = False
        self._needle_frame_at = 0.0  # perf_counter of the last 3D needle frame
        self._scene_frame_due = False  # the 3D scene changed and its frame is not drawn yet
        self._after_frame: list = []  # jobs to start once that frame is drawn (_after_3d_frame)
        self._reveal_timer = QTimer(self)  # the debrief's 3D reveal, just after its dialog
        self._reveal_timer.setSingleShot(True)
        self._reveal_timer.timeout.connect(self._reveal_for_debrief)
        self._debrief_focus_mm = None
        self._live_timer = QTimer(self)
        self._live_timer.timeout.connect(self._show_live_frame)
        self._palpate_mode = sim.guidance == "landmark"
        self._pedal_pending = False  # the pedal went down while an X-ray was being made
        self.target_zone_shown = False  # the debrief's target zone is drawn (it comes off-thread)
        self._crests: dict[str, list[float]] = {}
        self.debrief_dialog: QDialog | None = None
        self.replay_window = None  # the debrief's replay, kept alive while it is open
        self.store = None  # the attempt store, when the app has one (the instructors' report reads it)
        sc = sim.scenario
        self.setWindowTitle(f"SpineSim - {sc.title}")
        self.resize(1500, 900)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        # no multisampling (nor FXAA): in software OpenGL they took 2-3 times the frame's own time,
        # and a needle key press should redraw within the 100 ms a trainee feels as instant
        self.plotter = QtInteractor(splitter, auto_update=False, multi_samples=0)
        self.plotter.setObjectName("view3d")
        self.plotter.ren_win.AddObserver("EndEvent", self._on_3d_frame)
        splitter.addWidget(self.plotter)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        # the panels need more height than a laptop's screen gives: they scroll rather than force
        # the window taller than the screen
        scroll = QScrollArea()
        scroll.setObjectName("panels")
        scroll.setWidgetResizable(True)
        scroll.setWidget(right)
        splitter.addWidget(scroll)
        splitter.setSizes([820, 680])
        self.setCentralWidget(splitter)
        self.splitter = splitter
        self._panels = scroll

        brief = QLabel(f"<b>{sc.title}</b><br>{sc.brief}")
        brief.setWordWrap(True)
        right_layout.addWidget(brief)

        from simulator.app.widgets import HelpOverlay, ImageStrip, QtXRayMonitor, force_trace, pressure_trace

        self.monitor = QtXRayMonitor()
        self.image_strip = ImageStrip()
        self.image_strip.image_chosen.connect(self.show_taken_image)
        if sim.guidance == "fluoroscopy":
            right_layout.addWidget(self.monitor, stretch=3)
            right_layout.addWidget(self.image_strip)
            right_layout.addWidget(self._carm_panel())
        else:
            self.monitor.hide()
            note = QLabel("<b>Landmark technique</b>: no X-ray. Palpate (right-click on the skin in "
                          "palpation mode), choose the entry, and find the epidural space by loss of "
                          "resistance.")
            note.setWordWrap(True)
            right_layout.addWidget(note)
        self.trace = pressure_trace()
        self.force_trace = force_trace()
        against = QComboBox()
        against.setObjectName("trace_against")
        against.addItems(["depth", "time"])
        against.currentTextChanged.connect(lambda text: (self.trace.set_against(text),
                                                         self.force_trace.set_against(text)))
        self.trace_against = against
        row = QHBoxLayout()
        row.addWidget(QLabel("Traces against:"))
        row.addWidget(against)
        row.addStretch(1)
        right_layout.addLayout(row)
        right_layout.addWidget(self.trace, stretch=1)
        right_layout.addWidget(self.force_trace, stretch=1)
        right_layout.addWidget(self._needle_panel())
        self.log = QListWidget()
        self.log.setObjectName("event_log")
        right_layout.addWidget(self.log, stretch=2)

        self.scene = SpineScene(self.plotter, sim)
        self.plotter.enable_surface_point_picking(callback=self._on_pick, show_message=False,
                                                  show_point=False, left_clicking=False)
        self.event_received.connect(self._on_event)
        sim.subscribe(self.event_received.emit)
        self._install_shortcuts()
        if sim.guidance == "fluoroscopy":
            # the pedal is a held key: seen before any widget can take it as a button press
            QApplication.instance().installEventFilter(self)
        self.help_overlay = HelpOverlay(SHORTCUTS, self.centralWidget(), self)
        self._build_menu()
        # the panels scroll up and down, never sideways: their pane is as wide as they need
        self._panels.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._panels.setMinimumWidth(self._panels.widget().sizeHint().width() + 2 * self._panels.frameWidth()
                                     + self._panels.verticalScrollBar().sizeHint().width())
        self.restore_layout()
        self._update_status()
        self.plotter.render()

    # ------------------------------------------------------------------------- panels
    def _carm_panel(self) -> QGroupBox:
        box = QGroupBox("C-arm")
        grid = QGridLayout(box)
        self.oblique = QDoubleSpinBox()
        self.oblique.setObjectName("oblique_deg")
        self.oblique.setRange(-100.0, 100.0)
        self.oblique.setSingleStep(5.0)
        self.oblique.setSuffix(" deg (+ detector to patient's left)")
        self.tilt = QDoubleSpinBox()
        self.tilt.setObjectName("tilt_deg")
        self.tilt.setRange(-45.0, 45.0)
        self.tilt.setSingleStep(2.0)
        self.tilt.setSuffix(" deg (+ detector to head)")
        grid.addWidget(QLabel("Oblique"), 0, 0)
        grid.addWidget(self.oblique, 0, 1, 1, 3)
        grid.addWidget(QLabel("Tilt"), 1, 0)
        grid.addWidget(self.tilt, 1, 1, 1, 3)
        self.oblique.editingFinished.connect(self._send_carm)
        self.tilt.editingFinished.connect(self._send_carm)
        # the procedure's standard views, computed from this patient, and the trainee's saved ones
        sc = self.sim.scenario
        self.views = QComboBox()
        self.views.setObjectName("views")
        self.views.addItem("Standard and saved views...", None)
        side = sc.side if sc.side in ("left", "right") else "right"
        interspace = self.sim.procedure.views_interspace(sc.target_level)
        for name, pose in standard_views(self.sim.anatomy, sc.procedure, interspace, side).items():
            self.views.addItem(f"{name} ({projection_name(*pose)})", pose)
        self.views.activated.connect(self._go_to_view)
        grid.addWidget(self.views, 2, 0, 1, 2)
        save = QPushButton("Save view")
        save.setObjectName("save_view")
        save.clicked.connect(self.save_view)
        grid.addWidget(save, 2, 2)
        shoot = QPushButton("Take X-ray (F)")
        shoot.setObjectName("take_xray")
        shoot.clicked.connect(self.take_image)
        grid.addWidget(shoot, 2, 3)
        self.pulse_rate = QComboBox()
        self.pulse_rate.setObjectName("pulse_rate")
        for label, rate in (("Pulsed 15/s", 15.0), ("Pulsed 7.5/s", 7.5), ("Pulsed 30/s", 30.0),
                            ("Continuous", None)):
            self.pulse_rate.addItem(label, rate)
        self.iris = QDoubleSpinBox()
        self.iris.setObjectName("iris_mm")
        self.iris.setRange(50.0, 300.0)
        self.iris.setSingleStep(25.0)
        self.iris.setValue(300.0)
        self.iris.setSuffix(" mm field (iris)")
        self.iris.editingFinished.connect(self._collimate)
        self.shutters = QDoubleSpinBox()
        self.shutters.setObjectName("shutter_mm")
        self.shutters.setRange(20.0, 300.0)
        self.shutters.setSingleStep(20.0)
        self.shutters.setValue(300.0)
        self.shutters.setSuffix(" mm shutters")
        self.shutters.setToolTip("the gap between the two shutter blades (300: open)")
        self.shutters.editingFinished.connect(self._collimate)
        self.subtraction = QCheckBox("Subtraction")
        self.subtraction.setObjectName("subtraction")
        self.subtraction.setToolTip("digital subtraction: the mask is taken when the pedal goes down; "
                                    "about three times the dose per frame")
        grid.addWidget(QLabel("Fluoro (hold Space)"), 3, 0)
        grid.addWidget(self.pulse_rate, 3, 1)
        grid.addWidget(self.iris, 3, 2)
        grid.addWidget(self.subtraction, 3, 3)
        self.level_box = QSpinBox()
        self.level_box.setObjectName("monitor_level")
        self.level_box.setRange(0, 255)
        self.level_box.setValue(128)
        self.level_box.setPrefix("Level ")
        self.width_box = QSpinBox()
        self.width_box.setObjectName("monitor_width")
        self.width_box.setRange(8, 512)
        self.width_box.setValue(256)
        self.width_box.setPrefix("Window ")
        for spin in (self.level_box, self.width_box):
            spin.valueChanged.connect(lambda _=0: self.monitor.set_window(self.level_box.value(),
                                                                          self.width_box.value()))
        grid.addWidget(self.level_box, 5, 0)
        grid.addWidget(self.width_box, 5, 1)
        grid.addWidget(self.shutters, 5, 2)
        self.magnification = QComboBox()
        self.magnification.setObjectName("magnification")
        for fov in FIELDS_OF_VIEW_MM:
            self.magnification.addItem("Full field (30 cm)" if fov == 300.0 else f"Magnified ({fov / 10:.0f} cm)", fov)
        self.magnification.activated.connect(self._magnify)
        self.dose_label = QLabel()
        self.dose_label.setWordWrap(True)  # its numbers grow; it wraps rather than widen the panels
        self.dose_label.setObjectName("dose")
        grid.addWidget(self.magnification, 4, 0)
        grid.addWidget(self.dose_label, 4, 1, 1, 3)
        return box

    def _magnify(self, index: int) -> None:
        self.execute(cmd.Magnify(field_of_view_mm=self.magnification.itemData(index)))

    def step_view(self, step: int) -> None:
        """The next (or previous) standard or saved view of the list, the C-arm moved there."""
        n = self.views.count() - 1  # the first item is the list's title
        if self.sim.guidance != "fluoroscopy" or n <= 0:
            return
        current = self.views.currentIndex()
        index = (current - 1 + step) % n + 1 if current > 0 else (1 if step > 0 else n)
        self.views.setCurrentIndex(index)
        self._go_to_view(index)
        self.statusBar().showMessage(f"View: {self.views.itemText(index)}", 3000)

    def step_collimation(self, iris_mm: float = 0.0, shutter_mm: float = 0.0) -> None:
        """Close (negative) or open the iris or the shutters by a step, as their spin boxes do."""
        if self.sim.guidance != "fluoroscopy":
            return
        self.iris.setValue(self.iris.value() + iris_mm)
        self.shutters.setValue(self.shutters.value() + shutter_mm)
        self._collimate()

    def step_choice(self, combo: QComboBox, then=None) -> None:
        """The next item of an imaging choice (the magnification, the pulse rate), round again after
        the last."""
        if self.sim.guidance != "fluoroscopy":
            return
        combo.setCurrentIndex((combo.currentIndex() + 1) % combo.count())
        if then is not None:
            then(combo.currentIndex())
        self.statusBar().showMessage(combo.currentText(), 3000)

    def reset_window(self) -> None:
        """The monitor's window and level back to the full grey scale."""
        self.level_box.setValue(128)
        self.width_box.setValue(256)

    def _collimate(self) -> None:
        shutter = self.shutters.value()
        self.execute(cmd.Collimate(field_mm=self.iris.value(), shutter_mm=None if shutter >= 300.0 else shutter))

    def _go_to_view(self, index: int) -> None:
        pose = self.views.itemData(index)
        if pose is not None:
            self.set_carm(*pose)

    def save_view(self) -> None:
        """Keep the C-arm's current angles in the views list (for this attempt)."""
        pose = (self.sim.carm_pose.oblique_deg, self.sim.carm_pose.tilt_deg)
        saved = sum(1 for i in range(self.views.count()) if str(self.views.itemText(i)).startswith("saved"))
        self.views.addItem(f"saved {saved + 1} ({projection_name(*pose)})", pose)
        self._log(f"View saved: {projection_name(*pose)}.")

    # ------------------------------------------------------------------------- the pedal
    def eventFilter(self, obj, event):  # noqa: N802 (Qt name)
        kind = event.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == Qt.Key.Key_Space \
                and self.isActiveWindow():
            if not event.isAutoRepeat():
                (self.pedal_down if kind == QEvent.Type.KeyPress else self.pedal_up)()
            return True
        return super().eventFilter(obj, event)

    def pedal_down(self) -> None:
        """The fluoroscopy pedal goes down: live frames at the chosen pulse rate until it comes up."""
        if self.sim.fluoroscopy_on:
            return
        if self._busy:
            # an X-ray is still being made: the run starts when it is done, if the pedal is still down
            self._pedal_pending = True
            return
        self._pedal_pending = False
        rate = self.pulse_rate.currentData()
        if not self.execute(cmd.FluoroscopyOn(pulse_rate_pps=rate, subtraction=self.subtraction.isChecked())):
            return
        self._live_timer.start(int(1000.0 / (rate or 30.0)))
        self._show_live_frame()

    def pedal_up(self) -> None:
        """The pedal comes up: the dose of the run is counted and its last frame stays on."""
        self._pedal_pending = False
        if not self.sim.fluoroscopy_on:
            return
        self._live_timer.stop()
        self.execute(cmd.FluoroscopyOff())

    def _show_live_frame(self) -> None:
        if not self.sim.fluoroscopy_on:
            self._live_timer.stop()
            return
        frame = self.sim.live_frame(max(self.elapsed_s(), self.sim.t_s))
        mode = "DSA" if self.subtraction.isChecked() else "LIVE"
        self.monitor.show_image(frame.display, f"{mode}  {self._pose_caption(frame.pose)}")

    def _needle_panel(self) -> QGroupBox:
        box = QGroupBox(f"Needle: {self.sim.needle.spec.name}")
        self.needle_box = box
        grid = QGridLayout(box)
        self.depth_label = QLabel()
        self.depth_label.setObjectName("depth")
        self.hub_label = QLabel("Hub: dry")
        self.hub_label.setObjectName("hub")
        self.feel_label = QLabel("Force: -")
        self.feel_label.setObjectName("feel")
        self.palpation_label = QLabel("Palpation: -")
        self.palpation_label.setObjectName("palpation")
        grid.addWidget(self.depth_label, 0, 0, 1, 2)
        grid.addWidget(self.hub_label, 0, 2, 1, 1)
        grid.addWidget(self.feel_label, 0, 3, 1, 1)
        grid.addWidget(self.palpation_label, 5, 0, 1, 4)
        buttons = [
            ("Advance 1 mm", lambda: self.advance(1.0)), ("Advance 5 mm", lambda: self.advance(5.0)),
            ("Withdraw 1 mm", lambda: self.withdraw(1.0)), ("Withdraw 5 mm", lambda: self.withdraw(5.0)),
            ("LOR: saline (L)", lambda: self.execute(cmd.TestLossOfResistance(medium="saline"))),
            ("LOR: air", lambda: self.execute(cmd.TestLossOfResistance(medium="air"))),
            ("Syringe on hub (Y)", lambda: self.toggle_syringe("saline")),
            ("Aspirate (A)", lambda: self.execute(cmd.Aspirate())),
            ("Bevel +90 (B)", lambda: self.turn_bevel(90.0)),
            ("Contrast 0.5 mL (C)", lambda: self.inject(0.5)),
            ("Inject drug (D)", self.inject_drug),
            ("Finish (F10)", self.finish),
        ]
        for i, (label, fn) in enumerate(buttons):
            b = QPushButton(label)
            b.clicked.connect(lambda _=False, f=fn: f())
            grid.addWidget(b, 1 + i // 4, i % 4)
        mode_row = QHBoxLayout()
        self.entry_radio = QRadioButton("Right-click: choose entry")
        self.palpate_radio = QRadioButton("Right-click: palpate (P)")
        group = QButtonGroup(box)
        group.addButton(self.entry_radio)
        group.addButton(self.palpate_radio)
        (self.palpate_radio if self._palpate_mode else self.entry_radio).setChecked(True)
        self.palpate_radio.toggled.connect(self._set_palpate_mode)
        mode_row.addWidget(self.entry_radio)
        mode_row.addWidget(self.palpate_radio)
        if self.sim.guidance == "fluoroscopy" and self.sim.scenario.view.allow_spine_toggle:
            self.spine_button = QPushButton("Show spine (V)")
            self.spine_button.setCheckable(True)
            self.spine_button.toggled.connect(lambda on: self.execute(cmd.SetSpineVisible(visible=on)))
            mode_row.addWidget(self.spine_button)
        grid.addLayout(mode_row, 4, 0, 1, 4)
        drug_row = QHBoxLayout()
        self.drug_choice = QComboBox()
        for drug in drug_catalogue().values():
            self.drug_choice.addItem(drug.name, drug.id)
        self.drug_ml = QDoubleSpinBox()
        self.drug_ml.setRange(0.1, 20.0)
        self.drug_ml.setSingleStep(0.1)
        self.drug_ml.setValue(1.0)
        self.drug_ml.setSuffix(" mL")
        drug_row.addWidget(QLabel("Drug syringe:"))
        drug_row.addWidget(self.drug_choice, 1)
        drug_row.addWidget(self.drug_ml)
        grid.addLayout(drug_row, 6, 0, 1, 4)
        if self.sim.guidance == "fluoroscopy":
            reading_row = QHBoxLayout()
            self.pattern_choice = QComboBox()
            self.pattern_choice.setObjectName("pattern_choice")
            for pattern in cmd.PATTERNS:
                self.pattern_choice.addItem(PATTERN_LABELS[pattern], pattern)
            report = QPushButton("Report reading (R)")
            report.clicked.connect(lambda _=False: self.report_pattern())
            reading_row.addWidget(QLabel("Contrast shows:"))
            reading_row.addWidget(self.pattern_choice, 1)
            reading_row.addWidget(report)
            grid.addLayout(reading_row, 7, 0, 1, 4)
        return box

    def report_pattern(self) -> None:
        """The trainee's reading of the last contrast run (scored, never answered during the
        attempt)."""
        if self.sim.guidance == "fluoroscopy":
            self.execute(cmd.ReportPattern(pattern=self.pattern_choice.currentData()))

    def _build_menu(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        choose = QAction("Choose a scenario...", self)
        choose.setShortcut(QKeySequence("Ctrl+O"))
        choose.triggered.connect(self.choose_scenario)
        file_menu.addAction(choose)
        courses = QAction("My courses...", self)
        courses.setShortcut(QKeySequence("Ctrl+K"))
        courses.triggered.connect(self.my_courses)
        file_menu.addAction(courses)
        progress = QAction("My progress...", self)
        progress.setShortcut(QKeySequence("Ctrl+P"))
        progress.triggered.connect(self.my_progress)
        file_menu.addAction(progress)
        file_menu.addSeparator()
        who = QAction("Sign in...", self)
        who.triggered.connect(self.sign_in)
        file_menu.addAction(who)
        instructor = self.menuBar().addMenu("&Instructor")
        for label, slot in (("Scenario editor...", self.edit_scenarios),
                            ("Import a patient CT...", self.import_ct), ("Courses...", self.build_courses),
                            ("Class view...", self.class_view),
                            ("Results, report and exports...", self.show_results)):
            action = QAction(label, self)
            action.triggered.connect(slot)
            instructor.addAction(action)
        instructor.addSeparator()
        leave = QAction("Leave instructor mode", self)
        leave.triggered.connect(self.leave_instructor_mode)
        instructor.addAction(leave)
        self._build_view_menu()
        help_menu = self.menuBar().addMenu("&Help")
        shortcuts = QAction("Keyboard shortcuts", self)
        shortcuts.setShortcut(QKeySequence("F1"))
        shortcuts.triggered.connect(self.show_help)
        help_menu.addAction(shortcuts)
        about = QAction("About SpineSim", self)
        about.triggered.connect(lambda: QMessageBox.about(
            self, "About SpineSim", "SpineSim: a simulator for image-guided and landmark spinal injections.\n\n"
            "For training only; not for clinical use. GPL-3.0-or-later."))
        help_menu.addAction(about)

    def _build_view_menu(self) -> None:
        """The 3D view's layers (under fluoroscopy only: at the bedside the trainee sees the
        patient as is) and the operator's view."""
        from simulator.scene.scene import LAYERS

        view_menu = self.menuBar().addMenu("&View")
        names = {"skin": "Skin", "table": "Table", "carm": "C-arm", "markers": "Palpation marks"}
        self.layer_actions: dict[str, QAction] = {}
        for layer in LAYERS:
            if layer == "carm" and self.sim.guidance != "fluoroscopy":
                continue
            action = QAction(f"Show {names[layer].lower()}", self, checkable=True)
            action.setChecked(True)
            action.setEnabled(self.sim.guidance == "fluoroscopy")
            action.toggled.connect(lambda on, name=layer: self.set_layer_visible(name, on))
            view_menu.addAction(action)
            self.layer_actions[layer] = action
        if self.sim.guidance != "fluoroscopy":
            view_menu.addSection("Layers are fixed in landmark mode")
        view_menu.addSeparator()
        home = QAction("Operator's view", self)
        home.setShortcut(QKeySequence("Home"))
        home.triggered.connect(self.reset_view)
        view_menu.addAction(home)

    def set_layer_visible(self, layer: str, visible: bool) -> None:
        """Show or hide a layer of the 3D view (fluoroscopy mode only)."""
        if self.sim.guidance != "fluoroscopy":
            return
        self.scene.set_layer_visible(layer, visible)
        self.plotter.update()  # one frame when Qt paints (render() would draw two)

    def reset_view(self) -> None:
        self.scene.reset_camera()
        self.plotter.update()

    def show_taken_image(self, index: int) -> None:
        """Image ``index`` of this attempt on the monitor again (a review, not a new exposure)."""
        image = self.sim.images[index]
        self.monitor.show_image(image.display, f"#{index + 1} (review)  {self._pose_caption(image.pose)}")

    def choose_scenario(self) -> None:
        """The scenario picker; a choice closes this attempt (already on disk) and opens the new
        case (see :func:`simulator.app.main.run_app`)."""
        from simulator.app.scenario_picker import ScenarioPicker

        picker = ScenarioPicker(self, current=self.sim.scenario.id)
        if picker.exec() and picker.chosen:
            self.next_scenario = picker.chosen
            self.close()

    def inject_drug(self) -> None:
        """The drug syringe: the chosen drug and volume through the needle."""
        self.execute(cmd.InjectDrug(drug_id=self.drug_choice.currentData(), volume_ml=self.drug_ml.value()))

    def _install_shortcuts(self) -> None:
        keys = {
            "Up": lambda: self.advance(1.0), "W": lambda: self.advance(1.0),
            "Shift+Up": lambda: self.advance(5.0), "Shift+W": lambda: self.advance(5.0),
            "Alt+Up": lambda: self.advance(0.5),
            "Down": lambda: self.withdraw(1.0), "S": lambda: self.withdraw(1.0),
            "Shift+Down": lambda: self.withdraw(5.0), "Shift+S": lambda: self.withdraw(5.0),
            "Ctrl+Up": lambda: self.execute(cmd.Redirect(cranial_deg=2.0)),
            "Ctrl+Down": lambda: self.execute(cmd.Redirect(cranial_deg=-2.0)),
            "Ctrl+Left": lambda: self.execute(cmd.Redirect(right_deg=-2.0)),
            "Ctrl+Right": lambda: self.execute(cmd.Redirect(right_deg=2.0)),
            "L": lambda: self.execute(cmd.TestLossOfResistance(medium="saline")),
            "Shift+L": lambda: self.execute(cmd.TestLossOfResistance(medium="air")),
            "Y": lambda: self.toggle_syringe("saline"), "Shift+Y": lambda: self.toggle_syringe("air"),
            "A": lambda: self.execute(cmd.Aspirate()),
            "B": lambda: self.turn_bevel(90.0), "Shift+B": lambda: self.turn_bevel(-90.0),
            "C": lambda: self.inject(0.5),
            "D": self.inject_drug,
            "R": self.report_pattern,
            "F": self.take_image,
            "1": lambda: self.set_carm(0.0, self.sim.carm_pose.tilt_deg),
            "2": lambda: self.set_carm(90.0, self.sim.carm_pose.tilt_deg),
            "3": lambda: self.set_carm(50.0, self.sim.carm_pose.tilt_deg),
            "[": lambda: self.set_carm(self.sim.carm_pose.oblique_deg - 5.0, self.sim.carm_pose.tilt_deg),
            "]": lambda: self.set_carm(self.sim.carm_pose.oblique_deg + 5.0, self.sim.carm_pose.tilt_deg),
            "PgUp": lambda: self.set_carm(self.sim.carm_pose.oblique_deg, self.sim.carm_pose.tilt_deg + 2.0),
            "PgDown": lambda: self.set_carm(self.sim.carm_pose.oblique_deg, self.sim.carm_pose.tilt_deg - 2.0),
            "Ctrl+Shift+Up": lambda: self.move_table(cranial_mm=10.0),
            "Ctrl+Shift+Down": lambda: self.move_table(cranial_mm=-10.0),
            "Ctrl+Shift+Left": lambda: self.move_table(right_mm=-10.0),
            "Ctrl+Shift+Right": lambda: self.move_table(right_mm=10.0),
            "G": lambda: self.step_view(1), "Shift+G": lambda: self.step_view(-1),
            "Ctrl+S": self.save_view,
            "I": lambda: self.step_collimation(iris_mm=-25.0), "Shift+I": lambda: self.step_collimation(iris_mm=25.0),
            "O": lambda: self.step_collimation(shutter_mm=-20.0),
            "Shift+O": lambda: self.step_collimation(shutter_mm=20.0),
            "M": lambda: self.step_choice(self.magnification, self._magnify),
            "T": lambda: self.step_choice(self.pulse_rate),
            "X": lambda: self.subtraction.toggle(),
            ",": lambda: self.level_box.stepBy(-8), ".": lambda: self.level_box.stepBy(8),
            "-": lambda: self.width_box.stepBy(-16), "=": lambda: self.width_box.stepBy(16),
            "Z": self.reset_window,
            "V": self.toggle_spine,
            "P": lambda: (self.entry_radio if self._palpate_mode else self.palpate_radio).setChecked(True),
            "Ctrl+Return": self.finish, "Ctrl+Enter": self.finish, "F10": self.finish,
        }
        self._shortcuts = []
        for key, fn in keys.items():
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(fn)
            self._shortcuts.append(sc)

    # ------------------------------------------------------------------------- commands
    def elapsed_s(self) -> float:
        return max(self.sim.t_s, time.monotonic() - self._t0)

    def toggle_syringe(self, medium: str) -> None:
        """Attach a loss-of-resistance syringe to the hub, or take it off."""
        self.execute(cmd.DetachSyringe() if self.sim.syringe else cmd.AttachSyringe(medium=medium))

    def turn_bevel(self, delta_deg: float) -> None:
        self.execute(cmd.RotateBevel(roll_deg=(self.sim.needle.bevel_roll_deg + delta_deg) % 360.0))

    def execute(self, command) -> bool:
        """Send one command; a refusal is shown, never raised."""
        if self._busy:
            self.statusBar().showMessage("Busy: the image is being taken", 2000)
            return False
        if self.sim.finished:
            return False
        try:
            self.sim.apply(command, self.elapsed_s())
        except SpineSimError as err:
            self.statusBar().showMessage(str(err), 6000)
            self._log(f"Not possible: {err}")
            return False
        return True

    def advance(self, mm: float) -> None:
        self.execute(cmd.Advance(distance_mm=mm))

    def withdraw(self, mm: float) -> None:
        self.execute(cmd.Withdraw(distance_mm=mm))

    def inject(self, ml: float) -> None:
        self.execute(cmd.InjectContrast(volume_ml=ml))

    def set_carm(self, oblique_deg: float, tilt_deg: float) -> None:
        if self.sim.guidance != "fluoroscopy":
            return
        oblique_deg = float(np.clip(oblique_deg, -100.0, 100.0))
        tilt_deg = float(np.clip(tilt_deg, -45.0, 45.0))
        self.execute(cmd.MoveCArm(oblique_deg=oblique_deg, tilt_deg=tilt_deg))

    def move_table(self, cranial_mm: float = 0.0, right_mm: float = 0.0) -> None:
        """Slide the table so the beam's centre (the isocentre) moves over the patient."""
        if self.sim.guidance != "fluoroscopy":
            return
        pose = self.sim.carm_pose
        iso = np.asarray(pose.isocentre_mm, float) + np.array([right_mm, 0.0, cranial_mm])
        if self.execute(cmd.MoveCArm(oblique_deg=pose.oblique_deg, tilt_deg=pose.tilt_deg,
                                     isocentre_mm=tuple(float(v) for v in iso))):
            self._log(f"Table moved: beam centre {cranial_mm:+.0f} mm cranial, {right_mm:+.0f} mm right.")

    def _send_carm(self) -> None:
        self.set_carm(self.oblique.value(), self.tilt.value())

    def take_image(self, wait: bool = False) -> None:
        """Take an X-ray at the current pose (off the GUI thread; ``wait`` blocks, for tests)."""
        if self.sim.guidance != "fluoroscopy" or self._busy or self.sim.finished:
            if self.sim.guidance != "fluoroscopy":
                self.statusBar().showMessage("No imaging in landmark mode", 3000)
            return
        self._busy = True
        self.statusBar().showMessage("X-ray...")
        job = _CommandJob(self.sim, cmd.AcquireImage(), self.elapsed_s())
        job.signals.done.connect(self._on_image_done)
        job.signals.failed.connect(self._on_job_failed)
        if wait:
            job.setAutoDelete(False)
            job.run()
            return
        if self._needle_redraw_pending:
            self._redraw_needle()  # the needle's last step is drawn before the image, not beside it
        self._after_3d_frame(lambda: QThreadPool.globalInstance().start(job))

    def _after_3d_frame(self, start) -> None:
        """Call ``start`` (which starts a job in the thread pool) once the 3D frame asked for is
        drawn, or at once when none is due.

        On two cores a frame drawn beside a computing job took 50-80 ms, not 30-45, and with the
        key's own work held the window over 100 ms. A frame that never comes (a minimised window)
        holds the job back at most :data:`FRAME_WAIT_S`.
        """
        if not self._scene_frame_due:
            start()
            return
        self._after_frame.append(start)
        QTimer.singleShot(int(1000 * FRAME_WAIT_S), self._run_after_frame)

    def _run_after_frame(self) -> None:
        waiting, self._after_frame = self._after_frame, []
        for start in waiting:
            start()

    def _on_image_done(self, events) -> None:
        self._busy = False
        self.statusBar().clearMessage()
        self._update_status()
        if self._pedal_pending:
            self.pedal_down()

    def _on_job_failed(self, message: str) -> None:
        self._busy = False
        self.statusBar().showMessage(message, 6000)
        self._log(f"Not possible: {message}")
        if self._pedal_pending:
            self.pedal_down()

    def toggle_spine(self) -> None:
        if hasattr(self, "spine_button"):
            self.spine_button.toggle()
        else:
            self.execute(cmd.SetSpineVisible(visible=not self.sim.spine_visible))

    def _set_palpate_mode(self, on: bool) -> None:
        self._palpate_mode = on

    def _on_pick(self, point) -> None:
        """Right-click on the skin: choose the entry, or palpate."""
        if point is None:
            return
        p = tuple(float(v) for v in point)
        if self._palpate_mode:
            self.execute(cmd.Palpate(point_mm=p))
        else:
            self.execute(cmd.SetEntry(point_mm=p))

    def finish(self) -> None:
        if self.sim.finished:
            return
        if self.execute(cmd.Finish()):
            self.show_debrief()

    # ------------------------------------------------------------------------- events
    def _on_event(self, event: Event) -> None:
        text = describe_event(event)
        if text:
            self._log(text)
        kind = event.kind
        if kind in ("entry_set", "needle_advanced", "needle_withdrawn", "needle_redirected"):
            # the 3D needle is redrawn 20 ms later, in a paint of its own: the monitor and the
            # panels show the step first (8 ms, not ~25 ms behind the 3D frame), and the window is
            # never held for both at once (in software OpenGL the 3D frame alone takes 30-45 ms)
            if not self._needle_redraw_pending:
                self._needle_redraw_pending = True
                # pedal down: at most one needle frame per NEEDLE_FRAME_LIVE_S, so keys pressed
                # back to back draw the monitor each time and the 3D view between them
                wait_s = 0.02
                if self.sim.fluoroscopy_on:
                    wait_s = max(wait_s, NEEDLE_FRAME_LIVE_S - (time.perf_counter() - self._needle_frame_at))
                QTimer.singleShot(int(1000 * wait_s), self._redraw_needle)
            if self.sim.fluoroscopy_on:
                # the pedal is down: the trainee sees the needle move at once, not at the next pulse
                self._show_live_frame()
        elif kind == "carm_moved":
            for box, value in ((self.oblique, event.data["oblique_deg"]), (self.tilt, event.data["tilt_deg"])):
                box.blockSignals(True)
                box.setValue(float(value))
                box.blockSignals(False)
            self.scene.update_carm()
        elif kind == "collimated":
            shutter = event.data.get("shutter_mm")
            for spin, value in ((self.iris, event.data["field_mm"]), (self.shutters, 300.0 if shutter is None else shutter)):
                spin.blockSignals(True)
                spin.setValue(float(value))
                spin.blockSignals(False)
        elif kind == "fluoroscopy_stopped" and self.sim.last_image_hold is not None:
            hold = self.sim.last_image_hold
            self.monitor.show_image(hold.display, f"LIH  {self._pose_caption(hold.pose)}")
        elif kind == "image_acquired":
            image = self.sim.images[event.data["index"]]
            caption = f"#{event.data['index'] + 1}  {self._pose_caption(image.pose)}"
            self.monitor.show_image(image.display, caption)
            self.image_strip.add_image(event.data["index"], image.display, caption)
        if kind == "palpated":
            self.scene.add_palpation_marker(event.data["point_mm"], event.data["finding"], event.data["depth_mm"])
            self.palpation_label.setText(palpation_text(event.data))
            if event.data["finding"] == "iliac crest":
                side = "right" if event.data["point_mm"][0] > 0 else "left"
                self._crests[side] = event.data["point_mm"]
                if len(self._crests) == 2:
                    self.scene.show_tuffier_line(self._crests["left"], self._crests["right"])
                    self._log("Tuffier's line drawn between the palpated crests.")
        elif kind == "spine_visibility_changed":
            self.scene.set_spine_visible(event.data["visible"])
        elif kind == "csf_in_hub":
            self.hub_label.setText("Hub: <b style='color:#60b0ff'>clear fluid (CSF)!</b>")
        elif kind == "needle_chosen":
            self.needle_box.setTitle(f"Needle: {event.data['name']}")
        elif kind == "blood_in_hub":
            self.hub_label.setText("Hub: <b style='color:#c0392b'>blood!</b>")
        if kind == "needle_advanced":
            self.feel_label.setText(f"Force: <b>{event.data['force_n']:.1f} N</b>")
            self.force_trace.set_readings([(d, f) for _, d, f in self.sim.force_trace],
                                          [t for t, _, _ in self.sim.force_trace])
        elif kind == "loss_of_resistance_tested":
            self.trace.set_readings(self.sim.lor_trace, self.sim.lor_times_s)
        self._update_status()
        if kind in SCENE_EVENTS:
            # one frame when Qt next paints, for all the events of a command (a render per event
            # drew the 3D view two or three times a key press); the needle's own frame comes from
            # _redraw_needle, never in the same paint as the monitor's
            self._scene_frame_due = True
            self.plotter.update()

    def _redraw_needle(self) -> None:
        if not self._needle_redraw_pending:
            return  # drawn early (an X-ray was asked for before the timer ran)
        self._needle_redraw_pending = False
        self._needle_frame_at = time.perf_counter()
        self.scene.update_needle()
        self._scene_frame_due = True
        self.plotter.update()

    def _on_3d_frame(self, *_) -> None:
        self._scene_frame_due = False
        if self._after_frame:
            QTimer.singleShot(0, self._run_after_frame)  # not inside VTK's render

    def _pose_caption(self, pose) -> str:
        """The projection in patient terms and as the C-arm's console shows it."""
        return (f"{projection_name(pose.oblique_deg, pose.tilt_deg)}  "
                f"[C-arm {console_name(pose.oblique_deg, pose.tilt_deg, self.sim.scenario.patient_position)}]")

    def _log(self, text: str) -> None:
        self.log.addItem(f"{self.elapsed_s():6.1f} s  {text}")
        self.log.scrollToBottom()

    def _update_status(self) -> None:
        n = self.sim.needle
        if n.inserted:
            interval = n.spec.depth_mark_interval_mm
            marks = (f"{int(n.depth_mm // interval)} of its {interval / 10:g} cm marks in" if interval > 0
                     else "no depth marks on this needle")
            self.depth_label.setText(f"Depth <b>{n.depth_mm:.1f} mm</b> ({marks})")
        else:
            self.depth_label.setText("No entry point yet: right-click on the skin")
        m = self.sim.metrics()
        dose_text = ""
        if self.sim.guidance == "fluoroscopy":
            dose_text = (f"   Fluoro {m['fluoroscopy_s']:.1f} s   Ka,r {m['air_kerma_mgy']:.2f} mGy   "
                         f"DAP {m['dap_gy_cm2']:.3f} Gy cm2")
            self.dose_label.setText(f"Dose: fluoroscopy <b>{m['fluoroscopy_s']:.1f} s</b>, reference air kerma "
                                    f"<b>{m['air_kerma_mgy']:.2f} mGy</b>, DAP <b>{m['dap_gy_cm2']:.3f} Gy cm2</b>")
        self.statusBar().showMessage(
            f"Time {self.elapsed_s():.0f} s   Images {int(m['images'])}   Passes {int(m['needle_passes'])}   "
            f"Contrast {m['contrast_ml']:.1f} mL" + dose_text)

    def show_help(self) -> None:
        """Every key and mouse action over the window (F1 again, Esc or a click closes it)."""
        self.help_overlay.toggle()

    def sign_in(self) -> None:
        """Who is at the station: their attempts from the next one on are kept under their name."""
        from simulator.app.main import sign_in, trainee

        if sign_in(self):
            QMessageBox.information(self, "SpineSim", f"Signed in as {trainee()[1]}: your next attempts are kept "
                                    "under your name (choose a scenario to start one).")

    # ------------------------------------------------------------------------- trainee and instructor
    def _keep(self, dialog):
        if dialog is not None:
            self.dialogs = [d for d in self.dialogs if d.isVisible()] + [dialog]
        return dialog

    def _trainee_actor(self):
        from simulator.app.main import trainee

        if self.store is None:
            QMessageBox.warning(self, "SpineSim", "The attempt database is not available: courses and progress "
                                "need it.")
            return None
        try:
            return self.store.sign_in(*trainee())
        except SpineSimError as err:
            QMessageBox.warning(self, "SpineSim", str(err))
            return None

    def my_courses(self) -> None:
        """The signed-in trainee's courses: a case started there closes this attempt (already
        stored) and opens the case, its attempt kept under the course."""
        from simulator.app.courses import MyCourses

        actor = self._trainee_actor()
        if actor is None:
            return
        dialog = MyCourses(self.store, actor, self)
        if dialog.exec() and dialog.chosen:
            self.next_scenario, self.next_course = dialog.chosen, dialog.chosen_course
            self.close()

    def my_progress(self):
        """The signed-in trainee's history and learning curves."""
        from simulator.app.progress import show_progress

        actor = self._trainee_actor()
        return self._keep(show_progress(self, self.store, actor)) if actor is not None else None

    def instructor_actor(self):
        """The unlocked instructor: asks for the password once per window (None if refused)."""
        from simulator.app.courses import instructor_actor

        if self.instructor is None:
            self.instructor = instructor_actor(self, self.store)
        return self.instructor

    def leave_instructor_mode(self) -> None:
        self.instructor = None
        for dialog in self.dialogs:
            if dialog.objectName() in ("course_builder", "class_view", "results", "scenario_editor", "ct_import"):
                dialog.close()
        self.statusBar().showMessage("Instructor mode left: the password is asked again next time.", 4000)

    def build_courses(self):
        from simulator.app.courses import open_course_builder

        actor = self.instructor_actor()
        return self._keep(open_course_builder(self, self.store, actor)) if actor is not None else None

    def class_view(self):
        from simulator.app.courses import open_class_view

        actor = self.instructor_actor()
        return self._keep(open_class_view(self, self.store, actor)) if actor is not None else None

    def show_results(self):
        from simulator.app.results import open_results

        actor = self.instructor_actor()
        return self._keep(open_results(self, self.store, actor)) if actor is not None else None

    def edit_scenarios(self):
        from simulator.app.scenario_editor import open_scenario_editor

        # authoring writes files only; the password keeps trainees out of the answer keys
        if self.instructor_actor() is None:
            return None
        return self._keep(open_scenario_editor(self))

    def import_ct(self):
        """A patient's CT and segmentation imported for scenarios to use (an instructor)."""
        from simulator.app.ct_import_dialog import open_ct_import

        if self.instructor_actor() is None:
            return None
        return self._keep(open_ct_import(self))

    def open_replay(self) -> None:
        """The whole attempt played back (3D, images and timeline in step, play/pause/seek)."""
        from simulator.app.replay_window import open_replay

        self.replay_window = open_replay(self.sim.loaded, self.sim.record, anatomy=self.sim.anatomy,
                                         image_size_px=self.sim.image_size_px, parent=self)

    def show_debrief(self) -> None:
        """The debrief: outcome, score and feedback, with the spine revealed in 3D."""
        card = self.sim.scorecard
        self._debrief_focus_mm = debrief_focus_points(self.sim)  # the target and the needle's path
        dlg = QDialog(self)
        dlg.setObjectName("debrief")
        dlg.setWindowTitle("Debrief")
        layout = QVBoxLayout(dlg)
        text = QTextBrowser()
        text.setObjectName("debrief_text")
        text.setHtml(debrief_html(card, self.sim, self.record_path))
        layout.addWidget(text)
        if self.sim.images:
            from simulator.app.widgets import ImageStrip

            strip = ImageStrip(96)
            strip.setObjectName("debrief_images")
            for i, image in enumerate(self.sim.images):
                strip.add_image(i, image.display, self._pose_caption(image.pose))
            strip.image_chosen.connect(self.show_taken_image)
            layout.addWidget(QLabel("The images you took (click one to see it on the monitor):"))
            layout.addWidget(strip)
        whole = QCheckBox("Show the whole spine (not only the levels round the target and the needle)")
        whole.setObjectName("debrief_whole_spine")
        whole.toggled.connect(self._show_whole_spine)
        layout.addWidget(whole)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        replay = buttons.addButton("Replay the attempt", QDialogButtonBox.ButtonRole.ActionRole)
        replay.setObjectName("replay")
        replay.clicked.connect(self.open_replay)
        buttons.rejected.connect(dlg.close)
        layout.addWidget(buttons)
        dlg.resize(560, 560)
        dlg.setModal(False)
        dlg.show()
        self.debrief_dialog = dlg
        # the 3D view is revealed once the dialog has been painted (a zero timer would run before
        # that paint): the two together held the window over 100 ms in software OpenGL. The timer
        # is the window's own, so a window closed meanwhile takes it along.
        self._reveal_timer.start(DEBRIEF_REVEAL_AFTER_MS)

    def _reveal_for_debrief(self) -> None:
        # the attempt is over: the C-arm would stand between the close-up and the spine (and cost
        # its pixels in every frame); the View menu shows it again
        if "carm" in self.layer_actions:
            self.layer_actions["carm"].blockSignals(True)
            self.layer_actions["carm"].setChecked(False)
            self.layer_actions["carm"].blockSignals(False)
            self.scene.set_layer_visible("carm", False)
        self.scene.reveal(self.sim.scenario.target_level, zone_later=True)
        self.scene.focus_on(self._debrief_focus_mm)
        self.scene.close_up_camera()
        self._scene_frame_due = True
        self.plotter.update()  # one frame when Qt paints (an explicit render() draws twice in pyvistaqt)
        # the target zone is sampled tissue by tissue (about half a second): off the GUI thread,
        # drawn when it is ready; started after the revealed frame, not beside it
        self._after_3d_frame(lambda: start_zone_job(self.sim, self._on_target_zone,
                                                    lambda message: self._log(f"Target zone not shown: {message}")))

    def _show_whole_spine(self, whole: bool) -> None:
        self.scene.focus_on(None if whole else self._debrief_focus_mm)
        self.plotter.update()

    def _on_target_zone(self, surface) -> None:
        self.scene.show_target_zone(surface)
        self.target_zone_shown = True
        self.plotter.update()

    def restore_layout(self) -> None:
        """The window's size, place and split as the trainee last left them."""
        from simulator.app.settings import app_settings

        settings = app_settings()
        if settings.value("window/geometry") is not None:
            self.restoreGeometry(settings.value("window/geometry"))
        if settings.value("window/splitter") is not None:
            self.splitter.restoreState(settings.value("window/splitter"))

    def save_layout(self) -> None:
        from simulator.app.settings import app_settings

        settings = app_settings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/splitter", self.splitter.saveState())
        settings.sync()

    def resizeEvent(self, event):  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        if self.help_overlay.isVisible():
            self.help_overlay.follow()

    def closeEvent(self, event):  # noqa: N802 (Qt name)
        self.save_layout()
        self._live_timer.stop()
        QApplication.instance().removeEventFilter(self)
        self.sim.close()
        self.plotter.close()
        super().closeEvent(event)


def describe_event(event: Event) -> str | None:
    """What the trainee is told about an event (what the hands feel, never the hidden tissue)."""
    d = event.data
    k = event.kind
    if k == "entry_set":
        return "Needle tip placed on the skin."
    if k == "tissue_entered":
        return f"At {d['depth_mm']:.0f} mm: {d['feel']}."
    if k == "pop_felt":
        return "A pop: a layer gives way."
    if k == "ligament_entered":
        return f"At {d['depth_mm']:.0f} mm the needle grips: firm, gritty tissue."
    if k == "paraesthesia":
        return "The patient jumps: a sharp electric pain shoots down the limb (paraesthesia). Stop and withdraw."
    if k == "aspirated":
        return {"csf": "Aspiration: clear fluid.", "blood": "Aspiration: blood!"}.get(
            d["result"], "Aspiration: nothing (a negative aspirate does not prove the tip is safe).")
    if k == "blood_in_hub":
        return "Blood in the hub."
    if k == "syringe_attached":
        return f"Syringe of {d['medium']} on the hub: its pressure is read as you advance."
    if k == "syringe_detached":
        return "Syringe taken off the hub."
    if k == "bevel_rotated":
        return f"Bevel turned to {d['roll_deg']:.0f} degrees."
    if k == "needle_chosen":
        return f"Needle changed: {d['name']}."
    if k == "tip_bent":
        return f"Tip bent by {d['bend_deg']:.0f} degrees."
    if k == "bone_contacted":
        return f"Bone! The needle stops at {d['depth_mm']:.0f} mm."
    if k == "needle_length_exhausted":
        return "The hub is at the skin: the needle is all the way in."
    if k == "loss_of_resistance_tested":
        return f"Syringe ({d['medium']}): {d['pressure_mmhg']:.0f} mmHg, {d['feel']}."
    if k == "loss_of_resistance":
        return "Loss of resistance: the plunger gives."
    if k == "csf_in_hub":
        return "Clear fluid drips from the hub."
    if k == "fluoroscopy_stopped":
        return (f"Fluoroscopy {d['duration_s']:.1f} s; in all {d['fluoroscopy_s']:.1f} s, "
                f"{d['air_kerma_mgy']:.2f} mGy, {d['dap_gy_cm2']:.3f} Gy cm2.")
    if k == "collimated":
        return f"Iris set to a {d['field_mm']:.0f} mm field."
    if k == "magnified":
        return f"Field of view {d['field_of_view_mm'] / 10:.0f} cm."
    if k == "image_acquired":
        return f"X-ray #{d['index'] + 1} (oblique {d['oblique_deg']:+.0f}, tilt {d['tilt_deg']:+.0f})."
    if k == "contrast_injected":
        return f"Injected {d['volume_ml']:.1f} mL of contrast ({d['total_ml']:.1f} mL in all)."
    if k == "pattern_reported":
        return f"Your reading of the contrast: {PATTERN_LABELS[d['pattern']].lower()}."
    if k == "drug_injected":
        return f"Injected {d['volume_ml']:.1f} mL of {drug_catalogue()[d['drug_id']].name} ({d['total_ml']:.1f} mL in all)."
    if k == "palpated":
        return palpation_text(d)
    if k == "needle_redirected":
        return f"Needle redirected by {d['angle_deg']:.0f} degrees."
    if k == "attempt_finished":
        return "Attempt finished."
    return None


def palpation_text(data: dict) -> str:
    """What the fingers felt, as the needle panel and the log say it."""
    if data["depth_mm"] is None:
        return "Palpation: soft tissue, no bone within reach."
    clarity = "clearly" if data["clearly"] else "vaguely"
    return f"Palpation: {data['finding']} felt {clarity}, about {data['depth_mm']:.0f} mm deep."


def debrief_html(card, sim, record_path: str | None) -> str:
    p = card.placement
    verdict = "<span style='color:#1a7f37'>PASS</span>" if card.passed else "<span style='color:#b3261e'>FAIL</span>"
    parts = "".join(f"<li>{k}: {v:.0f}</li>" for k, v in card.parts.items())
    feedback = "".join(f"<li>{line}</li>" for line in card.feedback)
    m = card.metrics
    record = f"<p><small>Attempt record: {record_path}</small></p>" if record_path else ""
    readings = contrast_readings(sim.events)
    readings_html = "<h3>Contrast</h3><ul>" + "".join(f"<li>{line}</li>" for line in readings) + "</ul>" \
        if readings else ""
    return (f"<h2>{verdict} &nbsp; {card.score:.0f} / 100</h2>"
            f"<p><b>Where the tip ended:</b> {p.description} ({p.tissue.replace('_', ' ')}, "
            f"{p.interspace or '-'}; target {sim.scenario.target_level}).</p>"
            f"<ul>{parts}</ul><h3>Feedback</h3><ul>{feedback}</ul>"
            f"<h3>Technique</h3><ul><li>Time: {m['time_s']:.0f} s</li>"
            f"<li>Needle passes: {int(m['needle_passes'])}, redirections: {int(m['redirections'])}</li>"
            f"<li>Images: {int(m['images'])}</li><li>Bone contacts: {int(m['bone_contacts'])}</li>"
            f"<li>Loss-of-resistance tests: {int(m['lor_tests'])}</li>"
            f"<li>Contrast: {m['contrast_ml']:.1f} mL</li>"
            f"<li>Path of the tip: {m['path_total_mm']:.0f} mm in all, {m['path_in_tissue_mm']:.0f} mm in tissue; "
            f"needle in for {m['time_inside_s']:.0f} s</li></ul>"
            "<p>The 3D view now shows the spine (see-through), the needle's path (vermilion) and the target zone "
            f"(green: {sim.procedure.outcomes['success'][0]} at {sim.scenario.target_level}).</p>" + readings_html + record)


def contrast_readings(events) -> list[str]:
    """One line per contrast run: what it showed and the trainee's last reading of it (the
    debrief's answer key)."""
    runs: list[list] = []  # [what it showed, last reading or None, right?]
    for e in events:
        if e.kind == "contrast_injected":
            truth = e.data.get("vascular") or e.data.get("compartment")
            runs.append([f"{e.data['volume_ml']:.1f} mL showed {PATTERN_LABELS.get(truth, truth).lower()}", None, False])
        elif e.kind == "pattern_reported" and runs:
            runs[-1][1:] = [PATTERN_LABELS[e.data["pattern"]].lower(), bool(e.data["correct"])]
    return [f"{shown}: not read." if read is None else f"{shown}: you read {read} ({'right' if right else 'wrong'})."
            for shown, read, right in runs]
