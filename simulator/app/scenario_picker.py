"""Choosing a scenario: every built-in case grouped by procedure, with its brief, or a scenario
file of the instructor's own."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QPushButton,
                             QTextBrowser, QTreeWidget, QTreeWidgetItem, QVBoxLayout)

from simulator.errors import SpineSimError
from simulator.scenario.loader import builtin_scenarios, load_scenario, parse_scenario

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


class ScenarioPicker(QDialog):
    """A tree of the built-in scenarios by procedure; the chosen one's brief beside it.
    ``chosen`` holds the scenario's name (or a file's path) once accepted."""

    def __init__(self, parent=None, current: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Choose a scenario")
        self.resize(900, 520)
        self.chosen: str | None = None
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Scenario", "Guidance"])
        self.tree.setColumnWidth(0, 430)
        self.brief = QTextBrowser()
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
            item = QTreeWidgetItem([sc.title, sc.guidance])
            item.setData(0, Qt.ItemDataRole.UserRole, name)
            item.setData(1, Qt.ItemDataRole.UserRole, _brief_html(sc))
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
        row = QHBoxLayout()
        row.addWidget(self.tree, 3)
        row.addWidget(self.brief, 2)
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
    side = "" if sc.side == "midline" else f", {sc.side}"
    return (f"<h3>{sc.title}</h3><p><i>{PROCEDURE_NAMES.get(sc.procedure, sc.procedure)}, "
            f"{sc.target_level}{side}; {sc.guidance}; patient {sc.patient_position.replace('_', ' ')}</i></p>"
            f"<p>{sc.brief}</p><p>Pass mark {sc.scoring.pass_mark:.0f}; up to {sc.limits.images} images, "
            f"{sc.limits.contrast_ml:g} mL of contrast.</p>")
