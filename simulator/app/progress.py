"""The trainee's own progress in the app: their attempt history, learning curves and one summary line
per procedure and guidance mode (the numbers are :func:`simulator.analysis.progress.trainee_progress`).

Open it with :func:`show_progress`; double-clicking an attempt replays it (:func:`open_replay`).
"""

from __future__ import annotations

import math
from html import escape

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QGuiApplication
from PyQt6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel, QMessageBox,
                             QSizePolicy, QSplitter, QStackedWidget, QTableWidget, QTableWidgetItem, QVBoxLayout,
                             QWidget)

from simulator.analysis.progress import (OKABE_ITO, HistoryEntry, Progress, curve_style, procedure_title,
                                         progress_figure, trainee_progress)
from simulator.errors import SpineSimError

#: The history table's columns: (header, tooltip).
COLUMNS = (
    ("Id", "The attempt's number in the database"),
    ("No.", "The attempt's number on its learning curve (its procedure and guidance mode; scored attempts only)"),
    ("Started", "When the attempt was started (this computer's time)"),
    ("Scenario", "The training case"),
    ("Procedure", ""),
    ("Guidance", "Fluoroscopy (X-ray guided) or landmark (palpation and feel only)"),
    ("Score", "0-100; the pass mark is the scenario's (usually 70)"),
    ("Result", "Passed needs a successful placement, no dural puncture, no hard fail and a score at or above "
               "the pass mark"),
    ("Hard fails", "Safety rules broken (each fails the attempt whatever its score); hover for the rule"),
    ("Time (s)", "Time the attempt took, s"),
    ("Images", "X-ray images taken"),
    ("DAP (Gy cm²)", "Dose-area product of the attempt's X-rays, Gy cm²; - for a landmark attempt"),
)
_COLUMN = {name: i for i, (name, _) in enumerate(COLUMNS)}
_NUMERIC = {"Id", "No.", "Score", "Hard fails", "Time (s)", "Images", "DAP (Gy cm²)"}
#: Result column text colours: Okabe-Ito bluish green and vermillion (the words say it too).
_PASSED_COLOUR = "#007A5A"
_FAILED_COLOUR = "#C04A00"
_MUTED = "#6B6B6B"


def _local_time(entry: HistoryEntry) -> str:
    when = entry.started_at
    # the store keeps UTC; a trainee thinks in the station's local time
    return (when.astimezone() if when.tzinfo else when).strftime("%Y-%m-%d %H:%M")


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def _swatch(style: dict[str, str]) -> str:
    """A short coloured line, solid or dashed as the curve is drawn, for the summary lines."""
    glyph = "━━━" if style["linestyle"] == "-" else "╍╍╍"
    return f'<span style="color:{style["color"]}; font-weight:bold">{glyph}</span>'


class ProgressDialog(QDialog):
    """The trainee's history, learning curves and summaries (see :func:`show_progress`).

    Parameters
    ----------
    progress : Progress
        What to show.
    store, actor : optional
        Where it came from: needed to refresh and to replay an attempt.
    parent : QWidget, optional

    Attributes
    ----------
    table : QTableWidget
        The history, newest attempt first; each row's first item holds the attempt id
        (``Qt.ItemDataRole.UserRole``).
    canvas : FigureCanvasQTAgg
        The learning curves (:func:`simulator.analysis.progress.progress_figure`).
    summary : QLabel
        One line per procedure and guidance mode.
    empty_label : QLabel
        Shown instead of all that when there are no attempts.
    """

    def __init__(self, progress: Progress, store=None, actor=None, parent=None):
        super().__init__(parent)
        self.setObjectName("progress")
        self.store = store
        self.actor = actor
        self.progress = progress
        self.replay_windows: list = []  # kept alive while they are open
        self.setWindowTitle("My progress")

        layout = QVBoxLayout(self)
        self.heading = QLabel()
        self.heading.setObjectName("progress_heading")
        layout.addWidget(self.heading)

        self.pages = QStackedWidget()
        layout.addWidget(self.pages, 1)
        self.empty_label = QLabel()
        self.empty_label.setObjectName("progress_empty")
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setText(
            "<p style='font-size:15pt'>No attempts yet</p>"
            f"<p style='color:{_MUTED}'>Choose a scenario and make an attempt: every attempt you make is "
            "listed here, with your score and a learning curve for each procedure and guidance mode.</p>")
        self.pages.addWidget(self.empty_label)

        content = QWidget()
        box = QVBoxLayout(content)
        box.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel()
        self.summary.setObjectName("progress_summary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(self.summary)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.figure = Figure(figsize=(9.0, 2.8), dpi=100, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setObjectName("progress_curves")
        self.canvas.setMinimumHeight(220)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.splitter.addWidget(self.canvas)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("progress_history")
        for i, (name, tip) in enumerate(COLUMNS):
            item = QTableWidgetItem(name)
            if tip:
                item.setToolTip(tip)
            self.table.setHorizontalHeaderItem(i, item)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        # compact rows: on a 768 px high screen the table should show ten attempts, not six
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # the scenario title is the long one: it takes the room left and is elided, not the numbers
        header.setSectionResizeMode(_COLUMN["Scenario"], QHeaderView.ResizeMode.Stretch)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setMinimumHeight(150)
        self.table.cellDoubleClicked.connect(self._row_double_clicked)
        self.splitter.addWidget(self.table)
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 4)
        box.addWidget(self.splitter, 1)

        self.note = QLabel()
        self.note.setObjectName("progress_note")
        self.note.setWordWrap(True)
        box.addWidget(self.note)
        self.pages.addWidget(content)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.refresh_button = buttons.addButton("Refresh", QDialogButtonBox.ButtonRole.ActionRole)
        self.refresh_button.setObjectName("progress_refresh")
        self.refresh_button.setToolTip("Read your attempts again (for attempts made since this opened)")
        self.refresh_button.clicked.connect(self.refresh)
        self.refresh_button.setEnabled(store is not None)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)

        self._fit_to_screen(progress.empty)
        # the curves get about 40% of the height, the history the rest (the user may drag)
        self.splitter.setSizes([max(240, int(0.4 * self.height())), max(200, int(0.45 * self.height()))])
        self.show_progress(progress)

    # ------------------------------------------------------------------------------ filling
    def _fit_to_screen(self, empty: bool = False) -> None:
        screen = self.screen() or QGuiApplication.primaryScreen()
        room = screen.availableGeometry() if screen is not None else None
        # made for a 1366 x 768 laptop: the table's twelve columns need about 1150 px; a message
        # that there is nothing yet needs no such window
        width, height = (760, 420) if empty else (1200, 720)
        if room is not None:
            width, height = min(width, room.width() - 40), min(height, room.height() - 40)
        self.resize(max(640, width), max(480, height))

    def show_progress(self, progress: Progress) -> None:
        """Show ``progress`` (replacing what is shown)."""
        self.progress = progress
        n = len(progress.history)
        who = escape(progress.display_name) + (f" ({escape(progress.account)})"
                                               if progress.display_name != progress.account else "")
        count = f"{n} attempt{'' if n == 1 else 's'} " if n else ""
        self.heading.setText(f"<b style='font-size:12pt'>Progress of {who}</b>"
                             f"<span style='color:{_MUTED}'> &nbsp; {count}(training use only: simulated "
                             "attempts)</span>")
        if self.pages.currentIndex() == 0 and not progress.empty and self.isVisible():
            self._fit_to_screen()  # the first attempts arrived: room for the curves and the table
        self.pages.setCurrentIndex(0 if progress.empty else 1)
        self._fill_summary()
        self._fill_table()
        progress_figure(progress, self.figure)
        self.canvas.draw_idle()

    def _fill_summary(self) -> None:
        styles = curve_style(self.progress)
        lines = []
        for c in self.progress.curves:
            swatch = _swatch(styles[(c.procedure, c.guidance)]) if c.n else "&nbsp;" * 6
            lines.append(f"{swatch}&nbsp; {escape(c.summary)}")
        self.summary.setText("<br>".join(lines))
        self.summary.setToolTip(self.progress.lc_method)
        counted = "counted as not passed" if self.progress.include_incomplete else "listed but not counted"
        self.note.setText(
            f"<span style='color:{_MUTED}; font-size:8pt'>Curves: scored attempts in order; ● passed, ✖ not "
            f"passed, dashed line: landmark. Incomplete attempts are {counted}. "
            f"{escape(self.progress.lc_method)} Double-click an attempt to replay it.</span>")

    def _fill_table(self) -> None:
        entries = self.progress.newest_first()
        self.table.setRowCount(len(entries))
        for row, e in enumerate(entries):
            if e.passed is None:
                result, colour = e.verdict, _MUTED
            else:
                result, colour = ("✔ passed", _PASSED_COLOUR) if e.passed else ("✖ not passed", _FAILED_COLOUR)
            cells = {
                "Id": str(e.attempt_id),
                "No.": "-" if e.curve_attempt is None else str(e.curve_attempt),
                "Started": _local_time(e),
                "Scenario": e.scenario_title,
                "Procedure": procedure_title(e.procedure),
                "Guidance": e.guidance,
                "Score": _num(e.score, ".0f"),
                "Result": result,
                "Hard fails": str(len(e.hard_fails)) if e.scored else "-",
                "Time (s)": _num(e.time_s, ".0f"),
                "Images": "-" if e.images is None else str(e.images),
                "DAP (Gy cm²)": _num(e.dap_gy_cm2, ".3g"),
            }
            items = {}
            for name, text in cells.items():
                item = items[name] = QTableWidgetItem(text)
                if name in _NUMERIC:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, _COLUMN[name], item)
            items["Id"].setData(Qt.ItemDataRole.UserRole, e.attempt_id)
            items["Scenario"].setToolTip(f"{e.scenario_title} ({e.scenario_id})")
            items["Result"].setForeground(QColor(colour))
            if e.hard_fails:
                items["Hard fails"].setToolTip("\n".join(e.hard_fails))
                items["Hard fails"].setForeground(QColor(_FAILED_COLOUR))

    def refresh(self) -> None:
        """Read the trainee's attempts from the store again."""
        if self.store is None:
            return
        try:
            if self.actor is None:
                try:
                    # someone the database did not know when this opened may have made an attempt since
                    self.actor = self.store.actor(self.progress.account)
                except SpineSimError:
                    return
            progress = trainee_progress(self.store, self.actor)
        except SpineSimError as err:
            QMessageBox.warning(self, "SpineSim", f"Your attempts could not be read: {err}")
            return
        self.show_progress(progress)

    # ------------------------------------------------------------------------------- replay
    def attempt_at_row(self, row: int) -> int | None:
        """The attempt id shown in table row ``row``."""
        item = self.table.item(row, _COLUMN["Id"])
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def _row_double_clicked(self, row: int, _column: int) -> None:
        attempt_id = self.attempt_at_row(row)
        if attempt_id is not None:
            self.replay_attempt(attempt_id)

    def replay_attempt(self, attempt_id: int):
        """Open the replay window on a stored attempt (its own scenario and patient); the replay
        window, or None if it cannot be replayed (the reason is shown)."""
        # through the modules, so that tests can stand in for the slow patient build and replay
        from simulator.app import main as app_main
        from simulator.app import replay_window

        if self.store is None or self.actor is None:
            QMessageBox.warning(self, "SpineSim", "The attempt database is not available: the attempt cannot be "
                                "replayed.")
            return None
        try:
            record = self.store.attempt_record(self.actor, attempt_id)
            loaded = replay_window.scenario_from_record(record, f"attempt {attempt_id}")
            anatomy = app_main.build_patient(loaded, "SpineSim replay")
            window = replay_window.open_replay(loaded, record, anatomy=anatomy, trainee=self.progress.display_name,
                                               parent=self)
        except SpineSimError as err:
            QMessageBox.warning(self, "SpineSim", f"Attempt {attempt_id} cannot be replayed: {err}")
            return None
        self.replay_windows = [w for w in self.replay_windows if w.isVisible()] + [window]
        return window


def _nobody(account: str, display_name: str | None) -> Progress:
    """The progress of someone the store has never seen: nothing yet."""
    return Progress(account=account, display_name=display_name or account, history=(), curves=(), h=math.nan,
                    acceptable_failure_rate=0.2, unacceptable_failure_rate=0.4)


def show_progress(parent, store, actor=None) -> ProgressDialog | None:
    """Open the progress dialog, not modal, on ``actor``'s own attempts.

    Parameters
    ----------
    parent : QWidget or None
    store : simulator.records.store.Store or None
        None: the user is told the database is not available, and None is returned.
    actor : simulator.records.store.Actor, optional
        Whose progress; default the station's trainee (:func:`simulator.app.main.trainee`), shown
        with no attempts if the database does not know them yet.

    Returns
    -------
    ProgressDialog or None
    """
    if store is None:
        QMessageBox.warning(parent, "SpineSim", "The attempt database is not available: there is no history to "
                            "show.")
        return None
    try:
        if actor is None:
            from simulator.app.main import trainee

            account, name = trainee()
            try:
                actor = store.actor(account)
            except SpineSimError:
                progress = _nobody(account, name)
        if actor is not None:
            progress = trainee_progress(store, actor)
    except SpineSimError as err:
        QMessageBox.warning(parent, "SpineSim", f"Your attempts could not be read: {err}")
        return None
    dialog = ProgressDialog(progress, store, actor, parent)
    dialog.setModal(False)
    dialog.show()
    return dialog


__all__ = ["ProgressDialog", "show_progress", "COLUMNS", "OKABE_ITO"]
