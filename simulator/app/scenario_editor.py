"""The instructors' scenario editor: a form and the scenario's TOML kept in step, checked as you
type, and the case's patient previewed in 3D.

The TOML text is the document. A change in the form rewrites only its own key in the text (the
file's comments and order are kept); a change in the text fills the form again once the text is
valid TOML. Every change is checked with :func:`simulator.scenario.loader.parse_scenario` after a
short pause; its one-line message names the field, which the form marks. Save writes
``<data folder>/scenarios/<id>.toml`` (the scenario picker lists those under "My scenarios").

The preview builds the scenario's patient at a coarse voxel, only the region the case needs, on a
pool thread; the GUI thread only adds the finished actors to the 3D view.
"""

from __future__ import annotations

import math
import re
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomli_w
from PyQt6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFontDatabase, QKeySequence, QShortcut, QTextCursor, QTextFormat
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout, QGridLayout, QGroupBox,
                             QHBoxLayout, QLabel, QLineEdit, QMessageBox, QPlainTextEdit, QProgressBar,
                             QPushButton, QScrollArea, QSizePolicy, QSplitter, QTabWidget, QTextEdit,
                             QVBoxLayout, QWidget)

from simulator.app.scenario_picker import PROCEDURE_NAMES, fit_to_screen
from simulator.errors import SpineSimError
from simulator.scenario.loader import (DEFAULT_SCENARIO, LoadedScenario, builtin_scenarios, parse_scenario,
                                       user_scenarios, user_scenarios_dir)
from simulator.scenario.schema import PROCEDURE_LEVELS, PROCEDURE_POSITIONS, SIDED, TARGET_LEVELS

__all__ = ["ScenarioEditor", "open_scenario_editor", "set_toml_value", "build_preview", "preview_levels",
           "user_scenarios", "user_scenarios_dir"]

#: Pause after the last keystroke before the text is checked, ms.
VALIDATION_DELAY_MS = 250
#: The preview's label volume, mm: only the target zone's exact queries and the meshes are used.
PREVIEW_VOXEL_MM = 3.0
#: The preview's bone meshes, mm (the app's are 0.8 mm: eight times the samples, seconds longer).
PREVIEW_MESH_VOXEL_MM = 1.6
#: What the form marks a field at fault with.
_INVALID_STYLE = "border: 2px solid #d0312d; border-radius: 3px;"
_WARNING_STYLE = "border: 2px solid #d98a00; border-radius: 3px;"
_SPINE = ("C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11",
          "T12", "L1", "L2", "L3", "L4", "L5", "S1", "coccyx")


# ------------------------------------------------------------------------------------ the TOML text
_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]\s*(#.*)?$")


def _toml_value(value) -> str:
    """``value`` as TOML (a multi-line text as a multi-line string, as the shipped briefs are)."""
    if isinstance(value, str) and "\n" in value:
        body = value.replace("\\", "\\\\").replace('"""', '""\\"')
        return f'"""{body}"""'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _section_span(lines: list[str], table: str | None) -> tuple[int, int] | None:
    """Lines ``[start, end)`` of a table's keys (``None``: the top level), or ``None`` if the
    text has no such table."""
    if table is None:
        return 0, next((i for i, line in enumerate(lines) if _HEADER.match(line)), len(lines))
    for i, line in enumerate(lines):
        match = _HEADER.match(line)
        if match and match.group(1) == table:
            end = next((j for j in range(i + 1, len(lines)) if _HEADER.match(lines[j])), len(lines))
            return i + 1, end
    return None


def _pair_end(lines: list[str], start: int) -> int:
    """The line after the key-value pair that starts on line ``start`` (a multi-line string or
    array runs on)."""
    for end in range(start + 1, len(lines) + 1):
        try:
            tomllib.loads("\n".join(lines[start:end]))
            return end
        except tomllib.TOMLDecodeError:
            continue
    return start + 1


def _trailing_comment(line: str) -> str:
    """A one-line pair's comment (with the spaces before it), kept when its value is rewritten."""
    for match in re.finditer(r"\s*#", line):
        try:
            tomllib.loads(line[:match.start()])
        except tomllib.TOMLDecodeError:
            continue  # a '#' inside the value's string
        return line[match.start():]
    return ""


def set_toml_value(text: str, table: str | None, key: str, value) -> str:
    """``text`` with ``key`` of ``[table]`` set to ``value``, or removed when ``value`` is None;
    the rest of the text (comments, order, blank lines) is kept.

    A key that is missing goes below a commented-out example of it (``# key = ...``) if there is
    one, else at the end of its table; a missing table goes at the end of the text.

    Parameters
    ----------
    text : str
        TOML text.
    table : str or None
        The table (``"limits"``), or None for a top-level key.
    key : str
    value : str, int, float, bool, list or None

    Returns
    -------
    str
        The new text. (Only lines are edited: the caller checks the result parses to the value.)
    """
    lines = text.split("\n")
    new = None if value is None else f"{key} = {_toml_value(value)}".split("\n")
    span = _section_span(lines, table)
    if span is None:
        if new is None:
            return text
        return text.rstrip("\n") + f"\n\n[{table}]\n" + "\n".join(new) + "\n"
    start, end = span
    own = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for i in range(start, end):
        if own.match(lines[i]):
            stop = _pair_end(lines, i)
            if new is None:
                del lines[i:stop]
            else:
                comment = _trailing_comment(lines[i]) if stop == i + 1 else ""
                lines[i:stop] = new[:-1] + [new[-1] + comment]
            return "\n".join(lines)
    if new is None:
        return text
    example = re.compile(rf"^\s*#\s*{re.escape(key)}\s*=")
    at = next((i + 1 for i in range(start, end) if example.match(lines[i])), None)
    if at is None:
        at = end
        while at > start and not lines[at - 1].strip():
            at -= 1  # above the blank lines that end the table
    lines[at:at] = new
    return "\n".join(lines)


_MISSING = object()


def _get(data: dict, path: str):
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set(data: dict, path: str, value) -> None:
    *tables, key = path.split(".")
    node = data
    for part in tables:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(key, None)
    else:
        node[key] = value


def _with_value(text: str, path: str, value) -> str:
    """``text`` with the field at ``path`` (``"limits.time_s"``) set; if editing the lines does not
    give exactly that value (an unusual layout: an inline table, a dotted key), the whole text is
    written again from its values (its comments are then lost, never a value)."""
    table, key = path.rsplit(".", 1) if "." in path else (None, path)
    edited = set_toml_value(text, table, key, value)
    expected = _MISSING if value is None else (list(value) if isinstance(value, tuple) else value)
    try:
        got = _get(tomllib.loads(edited), path)
        if got is expected or (got is not _MISSING and expected is not _MISSING and _same(got, expected)):
            return edited
    except tomllib.TOMLDecodeError:
        pass
    data = tomllib.loads(text)
    _set(data, path, value)
    return tomli_w.dumps(data)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


# ------------------------------------------------------------------------------------- the region
def _target_levels(procedure: str, target_level: str) -> tuple[str, str]:
    """The vertebrae (top, bottom) a target lies between or on."""
    if "-" in target_level:
        top, bottom = target_level.split("-", 1)
        return top, bottom
    special = {"sacral_hiatus": ("S1", "coccyx"), "inferior_joint": ("S1", "coccyx"), "TON": ("C2", "C3"),
               "C8": ("C7", "T1")}
    if target_level in special:
        return special[target_level]
    if procedure == "lumbar_medial_branch" and target_level in _SPINE[:-1]:
        # the Ln medial branch is blocked on the L(n+1) transverse process (L5: on the sacral ala)
        return target_level, _SPINE[_SPINE.index(target_level) + 1]
    return target_level, target_level


def preview_levels(scenario) -> tuple[str, str]:
    """The region a preview builds: the scenario's own ``[anatomy] levels`` if it names them, else
    the target's vertebrae and one more on each side (caudal and sacroiliac: L5 to the coccyx).

    Parameters
    ----------
    scenario : Scenario

    Returns
    -------
    (str, str)
        Top and bottom levels, as :func:`simulator.anatomy.anatomy.build_anatomy` takes them.
    """
    if scenario.anatomy.levels:
        return tuple(scenario.anatomy.levels)
    top, bottom = _target_levels(scenario.procedure, scenario.target_level)
    i, j = _SPINE.index(top), _SPINE.index(bottom)
    if bottom == "coccyx":
        return "L5", "coccyx"
    return _SPINE[max(i - 1, 0)], _SPINE[min(j + 1, len(_SPINE) - 2)]


def _region_warning(scenario) -> str | None:
    """A region (``[anatomy] levels``) that leaves out the target's vertebrae loads, but the
    trainee would see no bone at the target: said, not refused."""
    levels = scenario.anatomy.levels
    if not levels or scenario.anatomy.ct:
        return None
    lo, hi = sorted(_SPINE.index(lv) for lv in levels)
    top, bottom = _target_levels(scenario.procedure, scenario.target_level)
    if top not in _SPINE or bottom not in _SPINE:
        return None
    if _SPINE.index(top) < lo or _SPINE.index(bottom) > hi:
        return (f"anatomy.levels: {levels[0]} to {levels[1]} leaves out the target {scenario.target_level} "
                f"(it needs {top} to {bottom})")
    return None


def _builtin_defaults() -> dict[str, dict]:
    """Each procedure's level, side, position and region in its first built-in case (a change of
    procedure in the form takes them where the scenario's own no longer fit)."""
    out: dict[str, dict] = {}
    for name, text in sorted(builtin_scenarios().items()):
        try:
            sc = parse_scenario(text, name).scenario
        except SpineSimError:
            continue
        if sc.procedure not in out:
            out[sc.procedure] = {"target_level": sc.target_level, "side": sc.side,
                                 "patient_position": sc.patient_position,
                                 "anatomy.levels": list(sc.anatomy.levels) if sc.anatomy.levels else None}
    return out


# ------------------------------------------------------------------------------------ the preview
class PreviewCancelled(Exception):
    """The preview was cancelled while it was being built."""


@dataclass
class PreviewResult:
    """What the preview shows, built off the GUI thread.

    Attributes
    ----------
    sim : Simulation
        A simulation of the scenario on the preview's anatomy (coarse display meshes).
    zone : pyvista.PolyData
        The target zone's surface.
    seconds : float
        How long the build took.
    """

    sim: object
    zone: object
    seconds: float


class _PreviewAnatomy:
    """An anatomy with coarse display meshes: everything else is the built anatomy's (but its cache
    key, so that nothing cached for the display is mistaken for the full anatomy's)."""

    def __init__(self, anatomy, meshes):
        from dataclasses import replace

        self._anatomy = anatomy
        self._meshes = meshes
        self.info = replace(anatomy.info, cache_key=f"{anatomy.info.cache_key}-preview")

    def meshes(self):
        return self._meshes

    def __getattr__(self, name):
        return getattr(self._anatomy, name)


def _merge(meshes: list):
    from simulator.anatomy.meshes import Mesh

    offsets = np.cumsum([0] + [len(m.vertices_mm) for m in meshes[:-1]])
    return Mesh(np.concatenate([m.vertices_mm for m in meshes]),
                np.concatenate([m.faces + off for m, off in zip(meshes, offsets)]).astype(np.int32), meshes[0].group)


#: Coarse meshes already built in this session, by anatomy cache key (a second preview of the same
#: patient is immediate); the last few patients only.
_MESH_CACHE: dict[str, dict] = {}
_MESH_CACHE_SIZE = 4


def _preview_meshes(anatomy, progress, cancelled) -> dict:
    """One merged mesh per structure group (eight actors instead of a hundred: the GUI thread adds
    them in a few milliseconds) and the skin, sampled coarsely."""
    from simulator.anatomy.meshes import DISPLAY_GROUPS, skin_mesh, structure_mesh

    phantom = getattr(anatomy, "phantom", None)
    if phantom is None:  # an imported CT has no implicit geometry: its own meshes
        return anatomy.meshes()
    key = anatomy.info.cache_key
    if key in _MESH_CACHE:
        return _MESH_CACHE[key]
    clip = np.stack([anatomy.grid.lo_mm, anatomy.grid.hi_mm])
    structures = [s for s in phantom.structures if s.group in DISPLAY_GROUPS and s.name != "epidural_space"]
    groups: dict[str, list] = {}
    for i, s in enumerate(structures):
        if cancelled():
            raise PreviewCancelled
        voxel_mm = PREVIEW_MESH_VOXEL_MM if s.group == "bone" else 1.2
        mesh = structure_mesh(phantom, s.name, voxel_mm=voxel_mm, clip=clip)
        if mesh is not None:
            groups.setdefault(mesh.group, []).append(mesh)
        progress(i / len(structures))
    out = {group: _merge(meshes) for group, meshes in groups.items()}
    display = clip + np.array([[-60.0, -60.0, -120.0], [60.0, 60.0, 120.0]])
    skin = skin_mesh(phantom, display, voxel_mm=4.0)
    if skin is not None:
        out["skin"] = skin
    _MESH_CACHE[key] = out
    while len(_MESH_CACHE) > _MESH_CACHE_SIZE:
        _MESH_CACHE.pop(next(iter(_MESH_CACHE)))
    return out


def build_preview(loaded: LoadedScenario, progress=None, cancelled=None) -> PreviewResult:
    """Build what the preview shows (no Qt; run it off the GUI thread).

    Parameters
    ----------
    loaded : LoadedScenario
    progress : callable(percent: int, step: str), optional
    cancelled : callable() -> bool, optional
        Polled between steps; when it returns True the build stops with :class:`PreviewCancelled`.

    Returns
    -------
    PreviewResult

    Raises
    ------
    SpineSimError
        The patient cannot be built (e.g. an imported CT that is missing).
    PreviewCancelled
    """
    from simulator.anatomy.anatomy import anatomy_for_scenario, build_anatomy
    from simulator.scene.scene import shaded_polydata, target_zone_surface
    from simulator.simulation.simulation import Simulation

    report = progress or (lambda percent, step: None)
    stop = cancelled or (lambda: False)

    def check():
        if stop():
            raise PreviewCancelled

    t0 = time.perf_counter()
    sc = loaded.scenario
    report(2, "Building the patient")
    if sc.anatomy.ct:
        anatomy = anatomy_for_scenario(sc)
    else:
        anatomy = build_anatomy(sc.patient.parameters(), voxel_mm=PREVIEW_VOXEL_MM, levels=preview_levels(sc))
    check()
    report(20, "Finding the landmarks")
    _ = anatomy.landmarks
    check()
    meshes = _preview_meshes(anatomy, lambda f: report(30 + int(55 * f), "Making the surfaces"), stop)
    check()
    report(86, "Placing the target")
    sim = Simulation(loaded, anatomy=_PreviewAnatomy(anatomy, meshes), image_size_px=64)
    zone = target_zone_surface(sim)
    check()
    report(94, "Shading the surfaces")
    shaded_polydata(sim.anatomy)  # the normals, here rather than on the GUI thread
    check()
    report(100, "Done")
    return PreviewResult(sim, zone, time.perf_counter() - t0)


class _PreviewSignals(QObject):
    progress = pyqtSignal(int, int, str)  # job, percent, step
    finished = pyqtSignal(int, object)
    failed = pyqtSignal(int, str)


class _PreviewJob(QRunnable):
    """One preview build on a pool thread; it reports to ``signals`` (owned by the editor)."""

    def __init__(self, job: int, loaded: LoadedScenario, signals: _PreviewSignals, cancel: threading.Event):
        super().__init__()
        self.job, self.loaded, self.signals, self.cancel = job, loaded, signals, cancel

    def _emit(self, signal_name: str, *args) -> None:
        if self.cancel.is_set():
            return
        try:
            # looked up here: reaching the signal raises once the editor is deleted
            getattr(self.signals, signal_name).emit(self.job, *args)
        except RuntimeError:  # the editor was closed and deleted meanwhile
            self.cancel.set()

    def run(self) -> None:
        try:
            result = build_preview(self.loaded, lambda p, s: self._emit("progress", p, s),
                                   self.cancel.is_set)
        except PreviewCancelled:
            return
        except SpineSimError as err:
            self._emit("failed", str(err))
        except Exception as err:  # noqa: BLE001 - shown as a message, never a traceback
            self._emit("failed", f"{err.__class__.__name__}: {err}")
        else:
            self._emit("finished", result)


# ------------------------------------------------------------------------------------- the dialog
@dataclass
class _Field:
    path: str
    widget: QWidget
    kind: str  # text, brief, int, float, choice, level, list, bool, region


class ScenarioEditor(QDialog):
    """The scenario editor (see the module's description).

    Parameters
    ----------
    parent : QWidget, optional
    path : path, optional
        A scenario file to open (else a copy of the default built-in case to start from).

    Attributes
    ----------
    fields : dict of str to QWidget
        The form's widgets by field (``"limits.time_s"``; ``"anatomy.levels"`` is a pair of combos
        in a QWidget).
    toml : QPlainTextEdit
        The scenario's text.
    path : Path or None
        The file being edited (None until saved).
    loaded : LoadedScenario or None
        The last text that validated (None while the text is invalid).
    ask_before_discarding : bool
        Ask before unsaved changes are dropped (closing, starting from another case).
    """

    #: A scenario was saved (its path).
    saved = pyqtSignal(str)
    #: The preview finished and is on screen.
    preview_shown = pyqtSignal()

    def __init__(self, parent=None, path: str | Path | None = None):
        super().__init__(parent)
        self.setObjectName("scenario_editor")
        self.setWindowTitle("Scenario editor")
        fit_to_screen(self, 1300, 730)
        self.path: Path | None = None
        self.loaded: LoadedScenario | None = None
        self.ask_before_discarding = True
        self.preview_gui_seconds = 0.0
        self._saved_text = ""
        self._writing = False  # the form is writing the text: do not fill the form back from it
        self._filling = False  # the form is being filled from the text: do not write it back
        self._ended = False
        self.preview_scene = None
        self._form_stale = False
        self._marked: list[QWidget] = []
        self._builtins = builtin_scenarios()
        self._defaults = _builtin_defaults()
        self._job = 0
        self._cancel: threading.Event | None = None
        self._signals = _PreviewSignals(self)
        self._signals.progress.connect(self._preview_progress)
        self._signals.finished.connect(self._preview_finished)
        self._signals.failed.connect(self._preview_failed)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(VALIDATION_DELAY_MS)
        self._timer.timeout.connect(self.validate)

        self.fields: dict[str, QWidget] = {}
        self._fields: dict[str, _Field] = {}
        self._build_ui()
        if path is not None:
            self.open_file(path)
        else:
            self.start_from(DEFAULT_SCENARIO)

    # ------------------------------------------------------------------------------ layout
    def _build_ui(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Start from:"))
        self.start_combo = QComboBox()
        self.start_combo.setObjectName("start_from")
        self.start_combo.addItem("a built-in case...", None)
        for name in sorted(self._builtins):
            self.start_combo.addItem(name, name)
        self.start_combo.setMinimumContentsLength(32)
        self.start_combo.activated.connect(self._start_from_chosen)
        top.addWidget(self.start_combo)
        open_button = QPushButton("Open a file...")
        open_button.clicked.connect(self._open_dialog)
        top.addWidget(open_button)
        self.file_label = QLabel()
        self.file_label.setObjectName("file")
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.file_label, 1)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._form_page(), "Form")
        self.toml = QPlainTextEdit()
        self.toml.setObjectName("toml")
        self.toml.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.toml.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.toml.textChanged.connect(self._text_changed)
        self.tabs.addTab(self.toml, "TOML")

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.tabs)
        splitter.addWidget(self._preview_panel())
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([760, 500])

        self.validation = QLabel()
        self.validation.setObjectName("validation")
        self.validation.setWordWrap(True)
        self.validation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel()
        self.status.setObjectName("status")
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("save")
        self.save_button.setToolTip("Save to your scenarios folder as <id>.toml (Ctrl+S)")
        self.save_button.clicked.connect(self.save)
        self.save_as_button = QPushButton("Save as...")
        self.save_as_button.clicked.connect(self._save_as_dialog)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        QShortcut(QKeySequence.StandardKey.Save, self, activated=self.save)

        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.save_button)
        bottom.addWidget(self.save_as_button)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.validation)
        layout.addLayout(bottom)

    def _add(self, form: QFormLayout, path: str, label: str, widget: QWidget, kind: str, tip: str = "") -> QWidget:
        self.fields[path] = widget
        self._fields[path] = _Field(path, widget, kind)
        widget.setObjectName(f"field:{path}")
        if tip:
            widget.setToolTip(tip)
            widget.setProperty("help", tip)
        form.addRow(label, widget)
        if isinstance(widget, QLineEdit):
            widget.textEdited.connect(lambda _text, p=path: self._field_edited(p))
        elif isinstance(widget, QPlainTextEdit):
            widget.textChanged.connect(lambda p=path: self._field_edited(p))
        elif isinstance(widget, QCheckBox):
            widget.toggled.connect(lambda _on, p=path: self._field_edited(p))
        elif isinstance(widget, QComboBox):
            if widget.isEditable():
                widget.editTextChanged.connect(lambda _text, p=path: self._field_edited(p))
            else:
                widget.activated.connect(lambda _i, p=path: self._field_edited(p))
        return widget

    def _line(self, placeholder: str = "", width: int | None = None) -> QLineEdit:
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        if width:
            edit.setMaximumWidth(width)
        return edit

    def _combo(self, items, blank: str | None = None, default: str | None = None) -> QComboBox:
        """A choice; ``blank``: an item for leaving the field out; ``default``: the item shown
        when the field is left out and there is no blank item."""
        combo = QComboBox()
        combo.setProperty("default", default)
        if blank is not None:
            combo.addItem(blank, None)
        for item in items:
            label, value = item if isinstance(item, tuple) else (item.replace("_", " "), item)
            combo.addItem(label, value)
        return combo

    @staticmethod
    def _form() -> QFormLayout:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        return form

    def _form_page(self) -> QWidget:
        from simulator.needle.spec import needle_catalogue

        needles = needle_catalogue()
        # --- the case
        case = self._form()
        self._add(case, "id", "Id", self._line("lower-case letters, digits, _ and -"), "text",
                  "Stable identifier; attempt records refer to it. Save writes <id>.toml.")
        self._add(case, "title", "Title", self._line("what the trainee reads in the picker"), "text")
        brief = QPlainTextEdit()
        brief.setTabChangesFocus(True)
        brief.setFixedHeight(84)
        self._add(case, "brief", "Brief", brief, "brief", "What the trainee is told before starting.")
        self._add(case, "procedure", "Procedure", self._combo(list(
            (PROCEDURE_NAMES.get(p, p), p) for p in PROCEDURE_LEVELS)), "choice")
        level = QComboBox()
        level.setEditable(True)
        level.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self._add(case, "target_level", "Target level", level, "level",
                  "The interspace, nerve or joint the case targets (the list shows the procedure's).")
        self._add(case, "side", "Side", self._combo(["midline", "left", "right"], default="midline"),
                  "choice")
        self._add(case, "approach", "Approach", self._combo(["midline", "paramedian"], default="midline"),
                  "choice")
        self._add(case, "guidance", "Guidance", self._combo(
            [("fluoroscopy (C-arm images)", "fluoroscopy"), ("landmark (no images)", "landmark")]), "choice")
        self._add(case, "patient_position", "Patient position", self._combo(
            ["prone", "supine", "left_lateral_decubitus", "right_lateral_decubitus"], default="prone"),
            "choice")
        # --- the needle and the room
        kit = self._form()
        self._add(kit, "needle.id", "Needle", self._combo(
            [(spec.name, nid) for nid, spec in needles.items()], default="tuohy_20g_89mm"), "choice")
        self._add(kit, "needle.choices", "Other needles", self._line("ids, comma-separated"), "list",
                  "Needles the trainee may choose instead: " + ", ".join(needles))
        self._add(kit, "carm.detector", "C-arm detector", self._combo(
            [("image intensifier (round)", "image_intensifier"), ("flat panel (square)", "flat_panel")],
            default="image_intensifier"), "choice")
        self._add(kit, "view.allow_spine_toggle", "See-through skin", QCheckBox("the trainee may show the spine"),
                  "bool")
        region = QWidget()
        row = QHBoxLayout(region)
        row.setContentsMargins(0, 0, 0, 0)
        region.top = self._combo(_SPINE[:-1], blank="whole spine")
        region.bottom = self._combo(_SPINE, blank="-")
        row.addWidget(region.top)
        row.addWidget(QLabel("to"))
        row.addWidget(region.bottom)
        row.addStretch(1)
        self._add(kit, "anatomy.levels", "Region", region, "region",
                  "Build only these levels (a faster first start); the target must lie inside.")
        region.top.activated.connect(lambda _i: self._field_edited("anatomy.levels"))
        region.bottom.activated.connect(lambda _i: self._field_edited("anatomy.levels"))
        self._add(kit, "anatomy.voxel_mm", "Voxel, mm", self._line("1.0 (0.5-3)"), "float",
                  "Voxel of the anatomy volume (images only; the needle sees exact anatomy).")
        from simulator.anatomy.ct_import import imported_names

        self._add(kit, "anatomy.ct", "Patient CT", self._combo(
            [(name, name) for name in imported_names()], blank="none: the generated patient (seed)"), "choice",
            "A patient CT imported on this station (the patient fields then do not apply).")
        self.import_ct_button = QPushButton("Import a patient CT...")
        self.import_ct_button.setObjectName("editor_import_ct")
        self.import_ct_button.clicked.connect(self.import_ct)
        kit.addRow("", self.import_ct_button)
        # --- the patient
        patient = self._form()
        self._add(patient, "patient.seed", "Seed", self._line("0"), "int",
                  "Fixes every parameter not given here: the same seed is the same patient.")
        self._add(patient, "patient.sex", "Sex", self._combo(["male", "female"], blank="from the seed"), "choice")
        for path, label, hint in (("age_years", "Age, years", "18-100"), ("height_cm", "Height, cm", "140-210"),
                                  ("bmi_kg_m2", "BMI, kg/m\N{SUPERSCRIPT TWO}", "16-50"),
                                  ("lordosis_deg", "Lumbar lordosis, \N{DEGREE SIGN}", "0-70"),
                                  ("kyphosis_deg", "Thoracic kyphosis, \N{DEGREE SIGN}", "0-80"),
                                  ("cervical_lordosis_deg", "Cervical lordosis, \N{DEGREE SIGN}", "-20-40"),
                                  ("scoliosis_deg", "Scoliosis, \N{DEGREE SIGN}", "0-30")):
            self._add(patient, f"patient.{path}", label, self._line("from the seed"), "float",
                      f"{hint}; leave empty for the seed's value")
        self._add(patient, "patient.supraspinous_ends_at", "Supraspinous lig. ends at",
                  self._combo(["L4", "L5"], blank="from the seed"), "choice")
        self._add(patient, "patient.transitional", "Transitional vertebra",
                  self._combo(["none", "sacralized_L5", "lumbarized_S1"], blank="from the seed"), "choice")
        self._add(patient, "patient.hiatus", "Sacral hiatus",
                  self._combo(["typical", "high", "narrow", "absent_cornua"], blank="from the seed"), "choice")
        self._add(patient, "patient.degenerate_levels", "Degenerate levels", self._line("e.g. L3-L4, L4-L5"), "list")
        # --- limits and scoring
        limits = self._form()
        for path, label, hint, kind in (("limits.time_s", "Time, s", "900", "float"),
                                        ("limits.images", "Images", "60", "int"),
                                        ("limits.contrast_ml", "Contrast, mL", "5 (at most 20)", "float"),
                                        ("limits.injectate_ml", "Injectate, mL", "20 (at most 30)", "float"),
                                        ("scoring.pass_mark", "Pass mark", "70 (0-100)", "float"),
                                        ("scoring.expert_time_s", "Expert time, s", "240", "float"),
                                        ("scoring.expert_images", "Expert images", "8", "int")):
            self._add(limits, path, label, self._line(hint), kind, f"Leave empty for the default, {hint}")

        grid = QGridLayout()
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        for col, boxes in enumerate(((("The case", case), ("Needle, C-arm and region", kit)),
                                     (("Patient", patient), ("Limits and scoring", limits)))):
            for r, (title, form) in enumerate(boxes):
                box = QGroupBox(title)
                box.setLayout(form)
                grid.addWidget(box, r, col)
        grid.setRowStretch(2, 1)
        page = QWidget()
        page.setLayout(grid)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(page)
        self.form_page = scroll
        return scroll

    def _preview_panel(self) -> QWidget:
        from pyvistaqt import QtInteractor

        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(4, 0, 0, 0)
        self.preview_title = QLabel("Preview: the case's patient, spine and target zone")
        self.preview_title.setWordWrap(True)
        layout.addWidget(self.preview_title)
        self.plotter = QtInteractor(panel, auto_update=False)
        self.plotter.setObjectName("preview")
        self.plotter.setMinimumSize(360, 300)
        self.plotter.set_background((32, 36, 44), top=(78, 88, 104))
        layout.addWidget(self.plotter, 1)
        legend = QLabel("<span style='color:#28dc78'>\u25A0</span> target zone &nbsp; "
                        "<span style='color:#6ea0eb'>\u25A0</span> dura, cord, roots &nbsp; "
                        "<span style='color:#cd3ca5'>\u25A0</span> vessels &nbsp; "
                        "<span style='color:#96c8be'>\u25A0</span> disc")
        legend.setWordWrap(True)
        layout.addWidget(legend)
        row = QHBoxLayout()
        self.preview_button = QPushButton("Preview patient")
        self.preview_button.setObjectName("preview_button")
        self.preview_button.setToolTip("Build the case's patient (coarse, only its region) and show it in 3D")
        self.preview_button.clicked.connect(self.start_preview)
        self.progress = QProgressBar()
        self.progress.setObjectName("preview_progress")
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.progress.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("preview_cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_preview)
        row.addWidget(self.preview_button)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.preview_step = QLabel("Preview patient builds the case's patient, coarsely and only its region "
                                   "(seconds; the first time a little longer), and shows it here.")
        self.preview_step.setObjectName("preview_step")
        self.preview_step.setWordWrap(True)
        layout.addWidget(self.preview_step)
        return panel

    def import_ct(self):
        """Import a patient CT (the dialog; the editor is already an instructor's); once it is
        stored, the Patient CT list offers it and this scenario uses it."""
        from simulator.app.ct_import_dialog import open_ct_import

        self.ct_import_dialog = open_ct_import(self)
        self.ct_import_dialog.imported.connect(self._ct_imported)
        return self.ct_import_dialog

    def _ct_imported(self, name: str) -> None:
        from simulator.anatomy.ct_import import imported_names

        combo = self.fields["anatomy.ct"]
        combo.blockSignals(True)
        while combo.count() > 1:  # the blank item stays first
            combo.removeItem(1)
        for known in imported_names():
            combo.addItem(known, known)
        combo.blockSignals(False)
        if self._parses():
            self._write_field("anatomy.ct", name)
            self._fill(tomllib.loads(self.text()))

    # ------------------------------------------------------------------------------ the text
    def text(self) -> str:
        """The scenario's TOML text as it stands."""
        return self.toml.toPlainText()

    def set_text(self, text: str) -> None:
        """Replace the text (the form follows once it is checked)."""
        self.toml.setPlainText(text)
        self.validate()

    def _text_changed(self) -> None:
        if not self._writing:
            self._form_stale = True
        self.save_button.setEnabled(False)  # until the new text is checked
        self.preview_button.setEnabled(False)
        self._update_title()
        self._timer.start()

    def _write_field(self, path: str, value) -> None:
        """The form's value into the text, keeping the rest of it (undo in the text works)."""
        text = self.text()
        new = _with_value(text, path, value)
        if new == text:
            return
        bar = self.toml.verticalScrollBar().value()
        self._writing = True
        try:
            cursor = self.toml.textCursor()
            cursor.select(QTextCursor.SelectionType.Document)
            cursor.insertText(new)  # one undoable step, unlike setPlainText
        finally:
            self._writing = False
        self.toml.verticalScrollBar().setValue(bar)

    # ------------------------------------------------------------------------------ the form
    def _value(self, field: _Field):
        w, kind = field.widget, field.kind
        if kind == "text":
            return w.text()
        if kind == "brief":
            return w.toPlainText()
        if kind in ("int", "float"):
            return _number(w.text(), kind)
        if kind == "choice":
            return w.currentData()
        if kind == "level":
            return w.currentText().strip()
        if kind == "list":
            items = [part.strip() for part in w.text().split(",") if part.strip()]
            return items or None
        if kind == "bool":
            return w.isChecked()
        if kind == "region":
            top, bottom = w.top.currentData(), w.bottom.currentData()
            return [top, bottom] if top and bottom else None
        raise ValueError(kind)

    def _field_edited(self, path: str) -> None:
        if self._filling:
            return
        if not self._parses():
            return  # the form is disabled while the text is not TOML; nothing to merge into
        field = self._fields[path]
        value = self._value(field)
        self._write_field(path, value)
        if path == "procedure" and value in PROCEDURE_LEVELS:
            self._procedure_changed(value)
        elif path == "anatomy.levels" and value is None:
            # half a region is no region: show both ends cleared
            self._fill_field(field, _MISSING)

    def _procedure_changed(self, procedure: str) -> None:
        """A new procedure keeps the scenario valid where it can: what no longer fits (the level, a
        side for a one-sided procedure, the position, the region) is taken from its built-in case."""
        data = tomllib.loads(self.text())
        default = self._defaults.get(procedure, {})
        if data.get("target_level") not in PROCEDURE_LEVELS[procedure]:
            self._write_field("target_level", default.get("target_level", PROCEDURE_LEVELS[procedure][0]))
        if procedure in SIDED and data.get("side", "midline") == "midline":
            self._write_field("side", default.get("side", "right"))
        if data.get("patient_position", "prone") not in PROCEDURE_POSITIONS[procedure]:
            self._write_field("patient_position", default.get("patient_position", PROCEDURE_POSITIONS[procedure][0]))
        if _get(data, "anatomy.levels") is not _MISSING and default.get("anatomy.levels"):
            self._write_field("anatomy.levels", default["anatomy.levels"])
        self._fill(tomllib.loads(self.text()))

    def _fill(self, data: dict) -> None:
        """Show the text's values in the form (without writing them back)."""
        self._filling = True
        try:
            procedure = data.get("procedure")
            levels = PROCEDURE_LEVELS.get(procedure, TARGET_LEVELS) if isinstance(procedure, str) else TARGET_LEVELS
            combo = self.fields["target_level"]
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(levels)
            combo.blockSignals(False)
            for field in self._fields.values():
                self._fill_field(field, _get(data, field.path))
        finally:
            self._filling = False

    def _fill_field(self, field: _Field, value) -> None:
        w, kind = field.widget, field.kind
        widgets = (w.top, w.bottom) if kind == "region" else (w,)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            missing = value is _MISSING
            if kind in ("text", "int", "float"):
                w.setText("" if missing else _shown(value))
            elif kind == "brief":
                if w.toPlainText() != ("" if missing else str(value)):
                    w.setPlainText("" if missing else str(value))
            elif kind == "choice":
                if missing:
                    index = w.findData(None)
                    w.setCurrentIndex(index if index >= 0 else w.findData(w.property("default")))
                else:
                    w.setCurrentIndex(w.findData(value))  # an unknown value: none (the check names it)
            elif kind == "level":
                w.setEditText("" if missing else _shown(value))
            elif kind == "list":
                w.setText("" if missing else (", ".join(_shown(v) for v in value) if isinstance(value, list)
                                              else _shown(value)))
            elif kind == "bool":
                w.setChecked(True if missing else value is True)
            elif kind == "region":
                pair = value if isinstance(value, list) and len(value) == 2 else [None, None]
                w.top.setCurrentIndex(max(w.top.findData(pair[0]), 0))
                w.bottom.setCurrentIndex(max(w.bottom.findData(pair[1]), 0))
        finally:
            for widget in widgets:
                widget.blockSignals(False)

    def _parses(self) -> bool:
        try:
            tomllib.loads(self.text())
            return True
        except tomllib.TOMLDecodeError:
            return False

    # ------------------------------------------------------------------------------ checking
    def source(self) -> str:
        """How messages name the scenario: its file's name, or ``unsaved scenario``."""
        return self.path.name if self.path else "unsaved scenario"

    def validate(self) -> LoadedScenario | None:
        """Check the text now (it is also checked a moment after every change); returns the
        scenario if it is valid."""
        self._timer.stop()
        text = self.text()
        self._clear_marks()
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            data = None
        self.form_page.setEnabled(data is not None)
        if data is not None and self._form_stale:
            self._fill(data)
        if data is not None:
            self._form_stale = False
        try:
            loaded = parse_scenario(text, self.source())
        except SpineSimError as err:
            self.loaded = None
            message = str(err)
            if data is None:
                message += " \N{EM DASH} fix it in the TOML tab; the form is read-only meanwhile"
                self._mark_toml_line(message)
            self._show_problem(message)
            self.save_button.setEnabled(False)
            self.save_as_button.setEnabled(False)
            self.preview_button.setEnabled(False)
            return None
        self.loaded = loaded
        warning = _region_warning(loaded.scenario)
        if warning:
            self._show_validation(f"Valid, but {warning}", "#b36b00")
            self._mark(warning.split(":", 1)[0], warning, _WARNING_STYLE)
        else:
            self._show_validation("Valid", "#1b7f3b")
        self.save_button.setEnabled(True)
        self.save_as_button.setEnabled(True)
        self.preview_button.setEnabled(self._cancel is None)
        return loaded

    def _show_validation(self, text: str, colour: str) -> None:
        self.validation.setText(text)
        self.validation.setStyleSheet(f"color: {colour}; font-weight: bold;")

    def _show_problem(self, message: str) -> None:
        self._show_validation(message, "#c0281e")
        body = message[len(self.source()) + 2:] if message.startswith(self.source() + ": ") else message
        head = body.split(":", 1)[0].strip()
        if re.fullmatch(r"[A-Za-z_][\w.]*", head):
            self._mark(head, body, _INVALID_STYLE)

    def _mark(self, field_path: str, message: str, style: str) -> None:
        """Border and tooltip on the form's widget for ``field_path`` (or its nearest section:
        ``needle.choices.0`` marks ``needle.choices``)."""
        parts = field_path.split(".")
        while parts and ".".join(parts) not in self.fields:
            parts.pop()
        if not parts:
            return
        widget = self.fields[".".join(parts)]
        widget.setStyleSheet(f"{type(widget).__name__} {{ {style} }}" if not isinstance(widget, QCheckBox)
                             else f"QCheckBox::indicator {{ {style} }}")
        widget.setToolTip(message)
        self._marked.append(widget)

    def _clear_marks(self) -> None:
        for widget in self._marked:
            widget.setStyleSheet("")
            widget.setToolTip(widget.property("help") or "")
        self._marked = []
        self.toml.setExtraSelections([])

    def _mark_toml_line(self, message: str) -> None:
        """Highlight the line a TOML syntax error names ("... (at line 12, column 3)")."""
        match = re.search(r"at line (\d+)", message)
        if not match:
            return
        block = self.toml.document().findBlockByLineNumber(int(match.group(1)) - 1)
        selection = QTextEdit.ExtraSelection()
        selection.format.setBackground(QColor(255, 215, 210))
        selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        selection.cursor = QTextCursor(block)
        self.toml.setExtraSelections([selection])

    def error_field(self) -> str | None:
        """The form field the current message marks (``"limits.time_s"``), if any."""
        for path, widget in self.fields.items():
            if widget in self._marked:
                return path
        return None

    # ------------------------------------------------------------------------------ files
    def is_modified(self) -> bool:
        """The text differs from what was last opened or saved."""
        return self.text() != self._saved_text

    def _update_title(self) -> None:
        name = self.path.name if self.path else "new scenario"
        self.setWindowTitle(f"Scenario editor \N{EM DASH} {name}{' *' if self.is_modified() else ''}")
        self.file_label.setText(str(self.path) if self.path else "not saved yet")

    def _confirm_discard(self) -> bool:
        if not self.ask_before_discarding or not self.is_modified():
            return True
        answer = QMessageBox.question(
            self, "Scenario editor", "Save the changes to this scenario first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Save:
            return self.save() is not None
        return answer == QMessageBox.StandardButton.Discard

    def start_from(self, name: str) -> None:
        """A copy of the built-in scenario ``name`` to edit (its id gets ``_copy``, so saving it
        does not shadow the built-in case)."""
        text = self._builtins.get(name)
        if text is None:
            self._show_validation(f"{name}: no such built-in scenario", "#c0281e")
            return
        try:
            text = _with_value(text, "id", f"{name}_copy")
        except tomllib.TOMLDecodeError:
            pass
        # the shipped files name their JSON Schema beside them; a copy saved elsewhere would not find it
        text = re.sub(r"\A#:schema [^\n]*\n", "", text)
        self.path = None
        self._saved_text = ""
        self._form_stale = True
        self.set_text(text)
        self._update_title()
        self.status.setText(f"A copy of the built-in {name}: change it, then Save.")

    def _start_from_chosen(self, index: int) -> None:
        name = self.start_combo.itemData(index)
        self.start_combo.setCurrentIndex(0)
        if name and self._confirm_discard():
            self.start_from(name)

    def open_file(self, path: str | Path) -> bool:
        """Open a scenario file (shown even if it does not validate, to be fixed); False, with the
        reason shown, if it cannot be read (the current text is kept)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            self._show_validation(f"{path}: cannot be read ({err.__class__.__name__})", "#c0281e")
            return False
        self.path = path
        self._saved_text = text
        self._form_stale = True
        self.set_text(text)
        self._update_title()
        self.status.setText(f"Opened {path}")
        return True

    def _open_dialog(self) -> None:
        if not self._confirm_discard():
            return
        start = str(self.path.parent if self.path else user_scenarios_dir())
        path, _ = QFileDialog.getOpenFileName(self, "Open a scenario", start, "Scenarios (*.toml)")
        if path:
            self.open_file(path)

    def save(self) -> Path | None:
        """Save to ``<data folder>/scenarios/<id>.toml``; the path, or None (with the reason shown)
        if the scenario is invalid or cannot be written."""
        loaded = self.validate()
        if loaded is None:
            return None
        path = user_scenarios_dir() / f"{loaded.scenario.id}.toml"
        if (path.exists() and path != self.path and self.ask_before_discarding
                and QMessageBox.question(self, "Scenario editor", f"{path.name} exists. Replace it?")
                != QMessageBox.StandardButton.Yes):
            return None
        return self.save_to(path)

    def save_to(self, path: str | Path) -> Path | None:
        """Write the scenario to ``path`` (a valid scenario only); the path, or None with the
        reason shown."""
        loaded = self.validate()
        if loaded is None:
            return None
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(loaded.text, encoding="utf-8")
            tmp.replace(path)
        except OSError as err:
            self._show_validation(f"{path}: cannot be written ({err.strerror or err.__class__.__name__})",
                                  "#c0281e")
            return None
        self.path = path
        self._saved_text = loaded.text
        self.validate()  # messages now name the file
        self._update_title()
        self.status.setText(f"Saved {path}")
        self.saved.emit(str(path))
        return path

    def _save_as_dialog(self) -> None:
        if self.validate() is None:
            return
        start = str(self.path or user_scenarios_dir() / f"{self.loaded.scenario.id}.toml")
        path, _ = QFileDialog.getSaveFileName(self, "Save the scenario as", start, "Scenarios (*.toml)")
        if path:
            self.save_to(path if path.endswith(".toml") else path + ".toml")

    def _end(self) -> bool:
        """Ask about unsaved changes; if the editor may close, stop the preview and free its view."""
        if not self._confirm_discard():
            return False
        self._saved_text = self.text()  # asked once: the reject() inside a close does not ask again
        self.cancel_preview()
        if not self._ended:
            self._ended = True
            self.plotter.close()
        return True

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if not self._end():
            event.ignore()
            return
        super().closeEvent(event)

    def reject(self) -> None:
        """Escape or Close: as closing the window."""
        if self._end():
            super().reject()

    # ------------------------------------------------------------------------------ preview
    def start_preview(self) -> bool:
        """Build the scenario's patient on a pool thread and show it when ready (False if the
        scenario is invalid)."""
        loaded = self.validate()
        if loaded is None:
            return False
        self.cancel_preview()
        self._job += 1
        self._cancel = threading.Event()
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.preview_button.setEnabled(False)
        self.preview_step.setText("Starting...")
        QThreadPool.globalInstance().start(_PreviewJob(self._job, loaded, self._signals, self._cancel))
        return True

    def cancel_preview(self) -> None:
        """Drop the preview being built: the dialog is usable at once (the build stops at its next
        step, in the background)."""
        if self._cancel is not None:
            self._cancel.set()
            self._cancel = None
            self.preview_step.setText("Preview cancelled.")
        self._job += 1  # whatever is still on its way is for an older job
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.preview_button.setEnabled(self.loaded is not None)

    def preview_running(self) -> bool:
        """A preview is being built."""
        return self._cancel is not None

    def _preview_progress(self, job: int, percent: int, step: str) -> None:
        if job == self._job:
            self.progress.setValue(percent)
            self.preview_step.setText(f"{step}...")

    def _preview_failed(self, job: int, message: str) -> None:
        if job != self._job:
            return
        self._cancel = None
        self.cancel_preview()
        self.preview_step.setText(f"The patient could not be built: {message}")

    def _preview_finished(self, job: int, result: PreviewResult) -> None:
        if job != self._job:
            return  # cancelled, or superseded by a newer preview
        from simulator.scene.pictures import approach_camera
        from simulator.scene.scene import TARGET_COLOUR, SpineScene

        t0 = time.perf_counter()
        self._cancel = None
        pl = self.plotter
        # one render at the end, not one per actor
        pl.suppress_rendering = True
        try:
            pl.clear_actors()
            scene = SpineScene(pl, result.sim)
            scene.set_layer_visible("carm", False)  # it would stand between the camera and the back
            scene.reveal(None)
            pl.remove_actor("debrief_legend", render=False)  # the legend is a label below the view
            if result.zone.n_points:
                pl.add_mesh(result.zone, color=TARGET_COLOUR, opacity=0.8, pickable=False, name="target_zone",
                            render=False)
            # from behind and a little above, on the operator's side: the levels round the target
            sim = result.sim
            target = np.asarray(sim.procedure.target_point(sim.anatomy, sim.scenario), float)
            grid = sim.anatomy.grid
            height_mm = float(grid.hi_mm[2] - grid.lo_mm[2])
            pl.camera_position = approach_camera(target, None, sim.scenario,
                                                 distance_mm=max(260.0, 0.6 * height_mm / np.tan(np.radians(15.0))))
            pl.camera.view_angle = 30.0
        finally:
            pl.suppress_rendering = False
        # drawn at the widget's next paint (one render; the actors above took a few ms)
        pl.update()
        self.preview_scene = scene
        sc = result.sim.scenario
        # the patient, not the case's title (the form shows it; the line must fit above the view)
        patient = (f"the imported CT '{sc.anatomy.ct}'" if sc.anatomy.ct else
                   f"patient seed {sc.patient.seed}, region {' to '.join(preview_levels(sc))}")
        self.preview_title.setText(f"Preview: {patient}")
        self.preview_gui_seconds = time.perf_counter() - t0
        self.cancel_preview()
        self.preview_step.setText(f"Built in {result.seconds:.1f} s. Drag to turn, scroll to zoom.")
        self.preview_shown.emit()


def _number(text: str, kind: str):
    """A number field's text as TOML: a whole number, a decimal, or the text itself (the check
    then says the field must be a number); empty: the field is left out (its default)."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _shown(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return str(value)


def open_scenario_editor(parent=None, path: str | Path | None = None) -> ScenarioEditor:
    """Show the scenario editor (not modal) and return it.

    Parameters
    ----------
    parent : QWidget, optional
    path : path, optional
        A scenario file to open; else a copy of the default built-in case.

    Returns
    -------
    ScenarioEditor
    """
    editor = ScenarioEditor(parent, path)
    editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    editor.setModal(False)
    editor.show()
    editor.raise_()
    editor.activateWindow()
    return editor
