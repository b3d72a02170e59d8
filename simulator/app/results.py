"""The instructor's results: choose attempts (course, trainees, procedure, guidance mode, dates), see
them in a table and the landmark-versus-image-guided report of them, and export them as CSV, xAPI
statements or the report's HTML and PDF.

The selection is a :class:`simulator.analysis.report.Selection`; the rows and the report are those of
:func:`~simulator.analysis.report.attempt_rows` and :func:`~simulator.analysis.report.build_report`,
read and built in a worker thread (reading every attempt's events and drawing the plots takes a
while on a big store) so the window stays responsive; Cancel discards what the worker brings back.
The exports are the command line's (``spinesim export --format csv|xapi``, ``spinesim report``).
"""

from __future__ import annotations

import base64
import re
import tempfile
import threading
import time
from datetime import date, timezone
from pathlib import Path

from PyQt6.QtCore import QDate, QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpacerItem,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from simulator.app.courses import (
    _MessageLine,
    _one_line,
    instructor_actor,
    scenario_entry,
)
from simulator.errors import SpineSimError

_ID_ROLE = Qt.ItemDataRole.UserRole
#: The attempts table's columns.
COLUMNS = ("Trainee", "Scenario", "Mode", "Started", "Score", "Pass", "Hard fails")


class _Signals(QObject):
    """What the worker thread hands back to the dialog (queued to the GUI thread); each carries the
    run's number so a cancelled or superseded run is ignored."""

    rows_ready = pyqtSignal(int, object)
    report_ready = pyqtSignal(int, object)
    failed = pyqtSignal(int, str)


class _SortItem(QTableWidgetItem):
    """A table cell sorted by a key of its own, not its text (scores as numbers, a blank first;
    start times to the second, then by attempt)."""

    def __init__(self, text: str, key):
        super().__init__(text)
        self.key = key

    def __lt__(self, other):
        return self.key < getattr(other, "key", self.key)


_IMG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _png_width_px(b64: str) -> int | None:
    try:
        head = base64.b64decode(b64[:32])
    except ValueError:
        return None
    return int.from_bytes(head[16:20], "big") if head[:8] == b"\x89PNG\r\n\x1a\n" else None


def fit_images(html: str, width_px: int) -> str:
    """``html`` with each embedded PNG given an explicit width of at most ``width_px`` (a
    QTextBrowser ignores the report's CSS ``max-width``, so a wide plot would be cut off)."""
    def fit(m):
        natural = _png_width_px(m.group(2)) or width_px
        return f'<img alt="{m.group(1)}" width="{min(natural, width_px)}" src="data:image/png;base64,{m.group(2)}"'

    return _IMG.sub(fit, html)


class ResultsDialog(QDialog):
    """Results of a selection of attempts, for an unlocked instructor.

    Parameters
    ----------
    store : Store
    actor : Actor
        An unlocked instructor; anyone else gets the store's refusal shown and every control
        disabled (``refused`` is True).
    parent : QWidget, optional
    export_folder : path, optional
        Where the exports are written; default: asked the first time (then kept).
    show_now : bool
        Read and report every attempt as soon as the dialog opens.

    Attributes
    ----------
    rows : AttemptRows or None
        The shown selection's attempts (what the exports write).
    report : Report or None
        Its report, once built.
    running : bool
        A worker is reading or building.
    """

    def __init__(self, store, actor, parent=None, export_folder: str | Path | None = None, show_now: bool = True):
        super().__init__(parent)
        self.setObjectName("results")
        self.setWindowTitle("Results")
        self.store, self.actor = store, actor
        self.export_folder = Path(export_folder) if export_folder is not None else None
        self.rows = None
        self.report = None
        self.html = ""
        self.running = False
        self.refused = False
        self._hard_fails: dict[int, list[str]] = {}
        self._run = 0  # the current run's number; results of any other run are dropped
        self._signals = _Signals(self)
        self._signals.rows_ready.connect(self._rows_ready)
        self._signals.report_ready.connect(self._report_ready)
        self._signals.failed.connect(self._failed)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(200)
        self._fit_timer.timeout.connect(self._show_html)

        layout = QHBoxLayout(self)
        layout.addWidget(self._filters())
        right = QVBoxLayout()
        layout.addLayout(right, 1)

        self.progress = QProgressBar()
        self.progress.setObjectName("report_progress")
        self.progress.setRange(0, 0)  # busy: the steps' lengths are not known beforehand
        self.progress.setMaximumWidth(160)
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_report")
        self.cancel_button.clicked.connect(self.cancel)
        busy = QHBoxLayout()
        busy.addWidget(self.progress)
        busy.addWidget(self.progress_label, 1)
        busy.addWidget(self.cancel_button)
        self.busy_row = QWidget()
        self.busy_row.setLayout(busy)
        busy.setContentsMargins(0, 0, 0, 0)
        self.busy_row.setVisible(False)
        right.addWidget(self.busy_row)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("results_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        head = self.table.horizontalHeader()
        for c in range(len(COLUMNS)):
            head.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.left_out = QLabel()
        self.left_out.setObjectName("left_out")
        self.left_out.setWordWrap(True)
        self.left_out.setStyleSheet("color: #444;")
        attempts_tab = QWidget()
        tab_layout = QVBoxLayout(attempts_tab)
        tab_layout.addWidget(self.table, 1)
        tab_layout.addWidget(self.left_out)
        self.report_view = QTextBrowser()
        self.report_view.setObjectName("report_view")
        self.report_view.setOpenExternalLinks(True)
        self.tabs = QTabWidget()
        self.tabs.addTab(attempts_tab, "Attempts")
        self.tabs.addTab(self.report_view, "Report")
        self.tabs.currentChanged.connect(lambda _i: self._fit_timer.start())
        right.addWidget(self.tabs, 1)

        self.csv_button = QPushButton("CSV")
        self.csv_button.setObjectName("export_csv")
        self.csv_button.setToolTip("One row per attempt with its scorecard's parts and metrics")
        self.csv_button.clicked.connect(self.export_csv)
        self.xapi_button = QPushButton("xAPI (JSON)")
        self.xapi_button.setObjectName("export_xapi")
        self.xapi_button.setToolTip("The attempts' xAPI statements, for a Learning Record Store")
        self.xapi_button.clicked.connect(self.export_xapi)
        self.report_button = QPushButton("Report (HTML + PDF)")
        self.report_button.setObjectName("export_report")
        self.report_button.clicked.connect(self.export_report)
        self.folder_button = QPushButton("Folder...")
        self.folder_button.setObjectName("export_folder")
        self.folder_button.setToolTip("Choose where the exports are written")
        self.folder_button.clicked.connect(lambda: self._folder(ask=True))
        exports = QHBoxLayout()
        exports.addWidget(QLabel("Export the selection:"))
        for b in (self.csv_button, self.xapi_button, self.report_button):
            exports.addWidget(b)
        exports.addStretch(1)
        exports.addWidget(self.folder_button)
        right.addLayout(exports)
        self.message = _MessageLine()
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.message, 1)
        bottom.addWidget(close)
        right.addLayout(bottom)
        self.resize(1180, 640)
        self._set_exports_enabled(False)

        try:
            self._users = self.store.users(self.actor)  # the store's own check: instructors only
            self._courses = self.store.courses(self.actor)
        except SpineSimError:
            self.refused = True
            self.message.error("Everyone's results are for an instructor who has given the instructor password.")
            self.filters.setEnabled(False)
            self.folder_button.setEnabled(False)
            return
        self._fill_filters()
        if show_now:
            self.apply()

    # ------------------------------------------------------------------------------ filters
    def _filters(self) -> QGroupBox:
        from simulator.app.scenario_picker import PROCEDURE_NAMES

        box = QGroupBox("Which attempts")
        box.setFixedWidth(320)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.course = QComboBox()
        self.course.setObjectName("filter_course")
        self.trainees = QListWidget()
        self.trainees.setObjectName("filter_trainees")
        self.trainees.setToolTip("Tick trainees to see only theirs; none ticked: everyone")
        self.trainees.setMinimumHeight(100)
        self.trainees.setMaximumHeight(170)
        self.procedure = QComboBox()
        self.procedure.setObjectName("filter_procedure")
        self.procedure.addItem("All procedures", None)
        for pid, name in PROCEDURE_NAMES.items():
            self.procedure.addItem(name, pid)
        self.guidance = QComboBox()
        self.guidance.setObjectName("filter_guidance")
        for label, mode in (("Both modes", None), ("Landmark", "landmark"), ("Fluoroscopy", "fluoroscopy")):
            self.guidance.addItem(label, mode)
        today = QDate.currentDate()
        self.from_on, self.date_from = QCheckBox(), QDateEdit(today.addDays(-30))
        self.to_on, self.date_to = QCheckBox(), QDateEdit(today)
        for on, edit, name in ((self.from_on, self.date_from, "from"), (self.to_on, self.date_to, "to")):
            on.setObjectName(f"filter_{name}_on")
            edit.setObjectName(f"filter_date_{name}")
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
            on.toggled.connect(edit.setEnabled)
        self.include_incomplete = QCheckBox("Count unfinished attempts as failed")
        self.include_incomplete.setObjectName("filter_incomplete")
        self.show_button = QPushButton("Show")
        self.show_button.setObjectName("apply_filters")
        self.show_button.setDefault(True)
        self.show_button.clicked.connect(self.apply)
        clear = QPushButton("All trainees")
        clear.setToolTip("Untick every trainee")
        clear.clicked.connect(lambda: [self.trainees.item(i).setCheckState(Qt.CheckState.Unchecked)
                                       for i in range(self.trainees.count())])
        form.addRow("Course", self.course)
        form.addRow(QLabel("Trainees (none ticked: all)"))
        form.addRow(self.trainees)
        form.addRow(clear)
        form.addRow("Procedure", self.procedure)
        form.addRow("Guidance", self.guidance)
        for on, edit, label in ((self.from_on, self.date_from, "From"), (self.to_on, self.date_to, "To")):
            row = QHBoxLayout()
            row.addWidget(on)
            row.addWidget(edit, 1)
            form.addRow(label, row)
        form.addRow(self.include_incomplete)
        form.addRow(self.show_button)
        # the filters stay together at the top however tall the window is
        form.addItem(QSpacerItem(0, 0, QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Expanding))
        self.filters = box
        return box

    def _fill_filters(self) -> None:
        self.course.clear()
        self.course.addItem("All courses", None)
        for c in self._courses:
            self.course.addItem(c.name, c.name)
        self.trainees.clear()
        # trainees first: they are whom results are about; instructors may have practised too
        for account, name, role in sorted(self._users, key=lambda u: (u[2] != "trainee", u[1].lower())):
            item = QListWidgetItem(f"{name} ({account})" + (" - instructor" if role != "trainee" else ""))
            item.setData(_ID_ROLE, account)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.trainees.addItem(item)

    def set_trainees(self, accounts) -> None:
        """Tick exactly these trainees' accounts (empty: all trainees)."""
        wanted = set(accounts)
        for i in range(self.trainees.count()):
            item = self.trainees.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.data(_ID_ROLE) in wanted else Qt.CheckState.Unchecked)

    def selection(self):
        """The :class:`~simulator.analysis.report.Selection` the filters describe (ValueError for
        an impossible one, such as a first day after the last)."""
        from simulator.analysis.report import Selection

        def day(on, edit) -> date | None:
            return edit.date().toPyDate() if on.isChecked() else None

        ticked = [self.trainees.item(i).data(_ID_ROLE) for i in range(self.trainees.count())
                  if self.trainees.item(i).checkState() == Qt.CheckState.Checked]
        procedure, guidance = self.procedure.currentData(), self.guidance.currentData()
        return Selection(course=self.course.currentData(), trainees=ticked or None,
                         date_from=day(self.from_on, self.date_from), date_to=day(self.to_on, self.date_to),
                         procedures=[procedure] if procedure else None, guidance=[guidance] if guidance else None,
                         include_incomplete=self.include_incomplete.isChecked())

    # ------------------------------------------------------------------------------- running
    def apply(self) -> bool:
        """Read the selected attempts and build their report in a worker thread (any run under way
        is dropped); False if the filters are impossible (the reason is shown)."""
        if self.refused:
            return False
        try:
            selection = self.selection()
        except (ValueError, TypeError) as err:
            self.message.error(_one_line(err))
            return False
        self._run += 1
        run = self._run
        self.rows, self.report, self.html = None, None, ""
        self._set_exports_enabled(False)
        self._busy(True, "Reading the attempts...")
        self.message.note("")
        thread = threading.Thread(target=self._work, args=(run, selection), name=f"results-{run}", daemon=True)
        thread.start()
        return True

    def _work(self, run: int, selection) -> None:
        # in the worker thread: only the store and the report code here, never a widget
        from simulator.analysis.report import attempt_rows, build_report, write_html

        try:
            rows = attempt_rows(self.store, self.actor, selection)
            fails = {}
            for r in rows:
                if r.scored and r.complications.get("hard_fail"):
                    card = self.store.scorecard(self.actor, r.attempt_id) or {}
                    fails[r.attempt_id] = [str(f) for f in card.get("hard_fails") or []]
            self._emit("rows_ready", run, (rows, fails))
            if run != self._run:
                return  # cancelled meanwhile: spare the plots
            report = build_report(rows)
            with tempfile.TemporaryDirectory(prefix="spinesim-report-") as folder:
                html = write_html(report, Path(folder) / "report.html").read_text(encoding="utf-8")
            self._emit("report_ready", run, (report, html))
        except SpineSimError as err:
            self._emit("failed", run, _one_line(err))
        except Exception as err:  # noqa: BLE001 - shown in the dialog; the worker must not die silently
            self._emit("failed", run, f"{err.__class__.__name__}: {_one_line(err)}")

    def _emit(self, signal_name: str, *args) -> None:
        try:
            # the signal is looked up here too: reaching it raises once the dialog is deleted
            getattr(self._signals, signal_name).emit(*args)
        except RuntimeError:
            pass  # the dialog was closed and deleted meanwhile: nobody is waiting

    def cancel(self) -> None:
        """Stop waiting for the run under way; whatever it brings back is discarded."""
        if not self.running:
            return
        self._run += 1
        self._busy(False)
        if self.report is None:
            self.report_view.setHtml("<p>The report was cancelled. Press <b>Show</b> to build it again.</p>")
        self.message.note("Cancelled.")

    def _busy(self, on: bool, text: str = "") -> None:
        self.running = on
        self.busy_row.setVisible(on)
        self.progress_label.setText(text)
        self.show_button.setEnabled(not on)

    def _rows_ready(self, run: int, payload) -> None:
        if run != self._run:
            return
        self.rows, self._hard_fails = payload
        self._fill_table()
        self._set_exports_enabled(bool(self.rows))
        self.progress_label.setText(f"Building the report of {len(self.rows)} attempts (statistics and plots)...")
        self.report_view.setHtml("<p>Building the report...</p>")

    def _report_ready(self, run: int, payload) -> None:
        if run != self._run:
            return
        self.report, self.html = payload
        self._show_html()
        self._busy(False)

    def _show_html(self) -> None:
        if not self.html:
            return
        bar = self.report_view.verticalScrollBar()
        where = bar.value() / bar.maximum() if bar.maximum() else 0.0
        self.report_view.setHtml(fit_images(self.html, max(240, self.report_view.viewport().width() - 32)))
        bar.setValue(round(where * bar.maximum()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        # the plots follow the view's width, once the resizing pauses (laying out the report is slow)
        self._fit_timer.start()

    def _failed(self, run: int, text: str) -> None:
        if run != self._run:
            return
        self._busy(False)
        self.message.error(text)

    def _fill_table(self) -> None:
        names = {a: n for a, n, _r in self._users}
        t = self.table
        t.setSortingEnabled(False)
        t.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            fails = self._hard_fails.get(row.attempt_id, [])
            passed = ("✓ pass" if row.passed else "✗ fail") if row.scored else "○ unfinished"
            cells = [QTableWidgetItem(names.get(row.trainee, row.trainee)),
                     QTableWidgetItem(scenario_entry(row.scenario_id).short),
                     QTableWidgetItem(row.guidance),
                     _SortItem(row.started_at.astimezone().strftime("%Y-%m-%d %H:%M"),
                               (row.started_at.timestamp(), row.attempt_id)),
                     _SortItem("" if row.score is None else f"{row.score:.0f}",
                               -1.0 if row.score is None else row.score),
                     QTableWidgetItem(passed),
                     _SortItem(str(len(fails)) if fails else "", len(fails))]
            cells[0].setToolTip(row.trainee)
            entry = scenario_entry(row.scenario_id)
            cells[1].setToolTip(f"{entry.title}\n{row.scenario_id} (attempt {row.attempt_id})")
            cells[6].setToolTip("\n".join(fails))
            cells[0].setData(_ID_ROLE, row.attempt_id)
            for c in (4, 6):
                cells[c].setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            for c, item in enumerate(cells):
                t.setItem(r, c, item)
        t.setSortingEnabled(True)
        t.sortByColumn(3, Qt.SortOrder.AscendingOrder)  # as started, the order the report counts them in
        left = ", ".join(f"{n} {why}" for why, n in sorted(self.rows.left_out.items()))
        self.left_out.setText(f"{len(self.rows)} attempts." + (f" Left out: {left}." if left else ""))
        self.tabs.setTabText(0, f"Attempts ({len(self.rows)})")

    def attempt_ids(self) -> list[int]:
        """The shown selection's attempt ids, in the order they were started."""
        return [] if self.rows is None else [r.attempt_id for r in self.rows]

    # ------------------------------------------------------------------------------ exports
    def _set_exports_enabled(self, on: bool) -> None:
        for b in (self.csv_button, self.xapi_button, self.report_button):
            b.setEnabled(on)

    def _folder(self, ask: bool = False) -> Path | None:
        if self.export_folder is None or ask:
            from simulator.paths import data_dir

            start = self.export_folder or data_dir() / "exports"
            chosen = QFileDialog.getExistingDirectory(self, "Export to which folder?", str(start))
            if not chosen:
                return None
            self.export_folder = Path(chosen)
        try:
            self.export_folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self.message.error(f"{self.export_folder}: cannot create the folder ({err.strerror})")
            return None
        return self.export_folder

    def _export(self, what: str, write):
        """Run one export with a wait cursor; the paths written, or None (the reason shown)."""
        if not self.rows:
            self.message.error("There are no attempts in the selection to export.")
            return None
        folder = self._folder()
        if folder is None:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            paths = write(folder, stamp)
        except SpineSimError as err:
            self.message.error(_one_line(err))
            return None
        except OSError as err:
            self.message.error(f"{folder}: cannot write the {what} ({err.strerror or err.__class__.__name__})")
            return None
        finally:
            QApplication.restoreOverrideCursor()
        self.message.note(f"Wrote the {what} of {len(self.rows)} attempts: "
                          + ", ".join(p.name for p in paths) + f" in {folder}")
        return paths

    def export_csv(self) -> Path | None:
        """Write the selection as CSV (``spinesim export --format csv``): one row per attempt."""
        from simulator.records.csv_export import attempt_csv_rows, write_attempts_csv

        def write(folder: Path, stamp: str):
            rows = attempt_csv_rows(self.store, self.actor, self.attempt_ids())
            return [write_attempts_csv(rows, folder / f"spinesim-attempts-{stamp}.csv")]

        paths = self._export("CSV", write)
        return paths[0] if paths else None

    def export_xapi(self) -> Path | None:
        """Write the selection's xAPI statements as one JSON array (``spinesim export --format xapi``)."""
        from simulator.records import xapi

        def write(folder: Path, stamp: str):
            statements = []
            for attempt_id in self.attempt_ids():
                info = self.store.attempt(self.actor, attempt_id)
                started = info.started_at if info.started_at.tzinfo else info.started_at.replace(tzinfo=timezone.utc)
                # the account as the name, as the command line does: an LRS gets no real names
                statements += xapi.statements_for_attempt(
                    str(attempt_id), xapi.Trainee(info.owner, info.owner),
                    self.store.attempt_record(self.actor, attempt_id).header, self.store.events(self.actor, attempt_id),
                    self.store.scorecard(self.actor, attempt_id), started, course_id=info.course)
            return [xapi.write_statements(folder / f"spinesim-xapi-{stamp}.json", statements)]

        paths = self._export("xAPI statements", write)
        return paths[0] if paths else None

    def export_report(self) -> tuple[Path, Path] | None:
        """Write the selection's report as HTML and PDF (as ``spinesim report`` does)."""
        from simulator.analysis.report import build_report, write_html, write_pdf

        def write(folder: Path, stamp: str):
            report = self.report or build_report(self.rows)
            return [write_html(report, folder / f"spinesim-report-{stamp}.html"),
                    write_pdf(report, folder / f"spinesim-report-{stamp}.pdf")]

        paths = self._export("report", write)
        return tuple(paths) if paths else None

    def done(self, result: int) -> None:
        self._run += 1  # a worker still running is no longer listened to
        self._busy(False)
        super().done(result)


def open_results(parent, store, actor=None, export_folder: str | Path | None = None) -> ResultsDialog | None:
    """Show the results dialog (non-modal); without an ``actor`` the instructor signs in first.
    None if cancelled or refused (the reason is shown)."""
    actor = actor or instructor_actor(parent, store)
    if actor is None:
        return None
    dialog = ResultsDialog(store, actor, parent, export_folder=export_folder)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


__all__ = ["COLUMNS", "ResultsDialog", "open_results"]
