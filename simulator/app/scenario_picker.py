"""Choosing a scenario: the instructor's own cases ("My scenarios", saved by the scenario editor)
and every built-in case grouped by procedure, with a picture of the procedure and the case's brief,
or a scenario file from anywhere."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QGuiApplication, QPixmap
from PyQt6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QPushButton,
                             QTextBrowser, QTreeWidget, QTreeWidgetItem, QVBoxLayout)

from simulator.errors import SpineSimError
from simulator.scenario.loader import builtin_scenarios, load_scenario, parse_scenario, user_scenarios

#: How the procedures are named to a trainee.
PROCEDURE_NAMES = {
    "lumbar_interlaminar": "Lumbar interlaminar epidural",
    "cervical_interlaminar": "Cervical interlaminar epidural",
    "caudal": "Caudal epidural",
    "lumbar_transforaminal": "Lumbar transforaminal epidural",
    "cervical_transforaminal": "Cervical transforaminal epidural",
    "thoracic_transforaminal": "Thoracic transforaminal epidural",
    "s1_transforaminal": "S1 transforaminal epidural",
    "sacroiliac_joint": "Sacroiliac joint injection",
    "lumbar_medial_branch": "Lumbar medial branch block",
    "cervical_medial_branch": "Cervical medial branch block",
    "lumbar_facet": "Lumbar facet joint injection",
    "cervical_facet": "Cervical facet joint injection",
}
#: The group of the instructor's own scenarios.
MY_SCENARIOS = "My scenarios"
#: The size of the procedure pictures (``assets/pictures/<procedure>.png``), pixels.
PICTURE_SIZE = (360, 270)
_PROCEDURE_ROLE = Qt.ItemDataRole.UserRole + 1
_PICTURES: dict[str, QPixmap | None] = {}


def fit_to_screen(widget, width: int, height: int) -> None:
    """Resize to ``width`` x ``height`` or to what the screen has room for, whichever is smaller."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    if screen is not None:
        room = screen.availableGeometry()
        width, height = min(width, room.width() - 20), min(height, room.height() - 40)
    widget.resize(width, height)


def procedure_picture(procedure: str) -> QPixmap | None:
    """The shipped picture of a procedure's region and target, or None if there is none (a missing
    or unreadable picture is no error: the picker shows the brief alone)."""
    if procedure not in _PICTURES:
        from simulator.assets import asset

        pixmap = None
        try:
            node = asset(f"pictures/{procedure}.png")
            if node.is_file():
                pixmap = QPixmap()
                if not pixmap.loadFromData(node.read_bytes()) or pixmap.isNull():
                    pixmap = None
        except (OSError, ValueError, ModuleNotFoundError):
            pixmap = None
        _PICTURES[procedure] = pixmap
    return _PICTURES[procedure]


class ScenarioPicker(QDialog):
    """A tree of the instructor's scenarios ("My scenarios", if any) and the built-in ones by
    procedure; the chosen one's picture and brief beside it. ``chosen`` holds the scenario's name
    (a built-in case) or path (the instructor's own, or a file) once accepted."""

    def __init__(self, parent=None, current: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Choose a scenario")
        fit_to_screen(self, 1040, 600)
        self.chosen: str | None = None
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Scenario", "Guidance"])
        self.tree.setColumnWidth(0, 470)
        self.brief = QTextBrowser()
        self.picture = QLabel()
        self.picture.setObjectName("scenario_picture")
        self.picture.setFixedSize(*PICTURE_SIZE)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        mine = user_scenarios()
        if mine:
            group = QTreeWidgetItem([MY_SCENARIOS, ""])
            group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            group.setToolTip(0, "Your own scenarios (Instructor > Scenario editor saves them here)")
            for name, path in mine.items():
                try:
                    sc = load_scenario(path).scenario
                except SpineSimError:
                    continue  # changed since it was listed
                item = self._item(sc, str(path))
                item.setToolTip(0, str(path))
                group.addChild(item)
                if current in (name, str(path)):
                    self.tree.setCurrentItem(item)
            self.tree.addTopLevelItem(group)
        groups: dict[str, QTreeWidgetItem] = {}
        for name, text in sorted(builtin_scenarios().items()):
            try:
                sc = parse_scenario(text, f"builtin:{name}").scenario
            except SpineSimError:
                continue  # `spinesim scenarios` reports it; the picker offers the valid ones
            group = groups.get(sc.procedure)
            if group is None:
                group = QTreeWidgetItem([PROCEDURE_NAMES.get(sc.procedure, sc.procedure), ""])
                group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                groups[sc.procedure] = group
            item = self._item(sc, name)
            group.addChild(item)
            if name == current:
                self.tree.setCurrentItem(item)
        for procedure in PROCEDURE_NAMES:
            if procedure in groups:
                self.tree.addTopLevelItem(groups[procedure])
        self.tree.expandAll()
        self.tree.currentItemChanged.connect(self._show_brief)
        self.tree.itemDoubleClicked.connect(lambda item, _col: self._accept_item(item))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(lambda: self._accept_item(self.tree.currentItem()))
        buttons.rejected.connect(self.reject)
        from_file = QPushButton("Open a scenario file...")
        from_file.clicked.connect(self._open_file)
        side = QVBoxLayout()
        side.addWidget(self.picture, 0, Qt.AlignmentFlag.AlignHCenter)
        side.addWidget(self.brief, 1)
        row = QHBoxLayout()
        row.addWidget(self.tree, 3)
        row.addLayout(side, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Pick a procedure and a case (double-click or OK). Landmark cases are done "
                                "without images."))
        layout.addLayout(row)
        bottom = QHBoxLayout()
        bottom.addWidget(from_file)
        bottom.addStretch(1)
        bottom.addWidget(buttons)
        layout.addLayout(bottom)
        self._show_brief(self.tree.currentItem())

    @staticmethod
    def _item(sc, ref: str) -> QTreeWidgetItem:
        item = QTreeWidgetItem([sc.title, sc.guidance])
        item.setData(0, Qt.ItemDataRole.UserRole, ref)
        item.setData(1, Qt.ItemDataRole.UserRole, _brief_html(sc))
        item.setData(0, _PROCEDURE_ROLE, sc.procedure)
        return item

    def select(self, name: str) -> None:
        """Make the scenario ``name`` the current item."""
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount()):
                if group.child(j).data(0, Qt.ItemDataRole.UserRole) == name:
                    self.tree.setCurrentItem(group.child(j))
                    return
        raise KeyError(name)

    def names(self) -> list[str]:
        """The scenarios offered, in the order shown."""
        return [self.tree.topLevelItem(i).child(j).data(0, Qt.ItemDataRole.UserRole)
                for i in range(self.tree.topLevelItemCount()) for j in range(self.tree.topLevelItem(i).childCount())]

    def _show_brief(self, item) -> None:
        html = item.data(1, Qt.ItemDataRole.UserRole) if item is not None else None
        self.brief.setHtml(html or "<p>Choose a case on the left.</p>")
        procedure = item.data(0, _PROCEDURE_ROLE) if item is not None else None
        pixmap = procedure_picture(procedure) if procedure else None
        if pixmap is None:
            self.picture.clear()
            self.picture.setToolTip("")
        else:
            self.picture.setPixmap(pixmap)
            self.picture.setToolTip(f"{PROCEDURE_NAMES.get(procedure, procedure)}: the target zone in green, "
                                    "the expert's needle in place")

    def _accept_item(self, item) -> None:
        name = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        if name:
            self.chosen = name
            self.accept()

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a scenario file", "", "Scenarios (*.toml)")
        if not path:
            return
        try:
            load_scenario(path)
        except SpineSimError as err:
            self.brief.setHtml(f"<p><b>This file cannot be used:</b> {err}</p>")
            return
        self.chosen = path
        self.accept()


def _brief_html(sc) -> str:
    from html import escape

    side = "" if sc.side == "midline" else f", {sc.side}"
    # an instructor's title and brief are text, not markup
    return (f"<h3>{escape(sc.title)}</h3><p><i>{PROCEDURE_NAMES.get(sc.procedure, sc.procedure)}, "
            f"{sc.target_level}{side}; {sc.guidance}; patient {sc.patient_position.replace('_', ' ')}</i></p>"
            f"<p>{escape(sc.brief)}</p><p>Pass mark {sc.scoring.pass_mark:.0f}; up to {sc.limits.images} images, "
            f"{sc.limits.contrast_ml:g} mL of contrast.</p>")
