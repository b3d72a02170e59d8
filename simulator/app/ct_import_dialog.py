"""Import a patient CT in the app (an instructor): the CT and its TotalSegmentator segmentation are
chosen, named and imported off the GUI thread with a progress bar and a Cancel button; scenarios
then use the patient by its name (``[anatomy] ct = "NAME"``, the scenario editor's *Patient CT*).

The import itself is :func:`simulator.anatomy.ct_import.import_ct`, as ``spinesim import-ct``
runs it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PyQt6.QtCore import QRunnable, QThreadPool, pyqtSignal
from PyQt6.QtWidgets import (QDialog, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                             QProgressBar, QPushButton, QVBoxLayout, QWidget)

from simulator.anatomy.ct_import import DEFAULT_IMPORT_VOXEL_MM, ImportCancelled, check_name, import_ct, load_imported
from simulator.app.jobs import Signals, report
from simulator.errors import SpineSimError


class _ImportSignals(Signals):
    step = pyqtSignal(float, str)  # done: the imported anatomy's levels
    cancelled = pyqtSignal()


class _ImportJob(QRunnable):
    def __init__(self, ct: Path, labels: Path, name: str, voxel_mm: float, stop: threading.Event):
        super().__init__()
        self.ct, self.labels, self.name, self.voxel_mm, self.stop = ct, labels, name, voxel_mm, stop
        self.signals = _ImportSignals()

    def run(self):
        try:
            import_ct(self.ct, self.labels, self.name, voxel_mm=self.voxel_mm,
                      progress=lambda f, text: report(self.signals, "step", f, text), cancelled=self.stop.is_set)
            levels = tuple(load_imported(self.name).levels)
        except ImportCancelled:
            report(self.signals, "cancelled")
        except SpineSimError as err:
            report(self.signals, "failed", str(err).splitlines()[0] if str(err) else "the import failed")
        except Exception as err:  # noqa: BLE001 - reported to the user, never a crash
            report(self.signals, "failed", f"{err.__class__.__name__}: {err}")
        else:
            report(self.signals, "done", levels)


class CtImportDialog(QDialog):
    """Choose a CT (a NIfTI file or a DICOM series folder) and its segmentation (a multi-label
    NIfTI or a folder of per-structure masks), name the patient and import it.

    ``imported(name)`` is emitted once the patient is stored. While the import runs the dialog
    stays responsive; Cancel stops it before anything is written (the running step finishes unseen).
    """

    imported = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("ct_import")
        self.setWindowTitle("Import a patient CT")
        self._stop: threading.Event | None = None  # set while an import runs
        #: The last import's outcome: "imported", "failed", "cancelled" (None before one ends).
        self.outcome: str | None = None

        self.ct_path = QLineEdit()
        self.ct_path.setObjectName("ct_path")
        self.ct_path.setPlaceholderText("ct.nii.gz, or a folder holding one DICOM series")
        self.labels_path = QLineEdit()
        self.labels_path.setObjectName("labels_path")
        self.labels_path.setPlaceholderText("segmentations.nii.gz, or a folder of masks (TotalSegmentator)")
        self.name = QLineEdit()
        self.name.setObjectName("ct_name")
        self.name.setPlaceholderText("e.g. smith (letters, digits, _ - .)")
        self.voxel_mm = QDoubleSpinBox()
        self.voxel_mm.setObjectName("ct_voxel_mm")
        self.voxel_mm.setRange(0.3, 4.0)
        self.voxel_mm.setSingleStep(0.25)
        self.voxel_mm.setValue(DEFAULT_IMPORT_VOXEL_MM)
        self.voxel_mm.setSuffix(" mm")

        form = QFormLayout()
        form.addRow("CT", self._path_row(self.ct_path, "Choose the CT"))
        form.addRow("Segmentation", self._path_row(self.labels_path, "Choose the segmentation"))
        form.addRow("Patient name", self.name)
        form.addRow("Voxel", self.voxel_mm)
        note = QLabel("Only pixel data and geometry are kept: no name, date or other header field of the scan. "
                      "Scenarios use the patient by its name (the scenario editor's Patient CT).")
        note.setWordWrap(True)
        note.setStyleSheet("color: #555;")

        self.progress = QProgressBar()
        self.progress.setObjectName("ct_progress")
        self.progress.setRange(0, 100)
        self.step_label = QLabel()
        self.step_label.setObjectName("ct_step")
        self.message = QLabel()
        self.message.setObjectName("ct_message")
        self.message.setWordWrap(True)
        self.import_button = QPushButton("Import")
        self.import_button.setObjectName("ct_import_button")
        self.import_button.setDefault(True)
        self.import_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("ct_cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.message, 1)
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.progress)
        layout.addWidget(self.step_label)
        layout.addLayout(buttons)
        self.resize(640, 300)
        self._set_running(False)

    def _path_row(self, edit: QLineEdit, title: str) -> QWidget:
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(edit, 1)
        for label, folder in (("File...", False), ("Folder...", True)):
            button = QPushButton(label)
            button.clicked.connect(lambda _=False, f=folder: self._browse(edit, title, f))
            box.addWidget(button)
        return row

    def _browse(self, edit: QLineEdit, title: str, folder: bool) -> None:
        if folder:
            chosen = QFileDialog.getExistingDirectory(self, title)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, title, "", "NIfTI (*.nii *.nii.gz);;All files (*)")
        if chosen:
            edit.setText(chosen)
            if edit is self.ct_path and not self.name.text().strip():
                stem = Path(chosen).name.split(".")[0]
                self.name.setText("".join(c if c.isalnum() or c in "_-" else "_" for c in stem)[:64])

    def _set_running(self, running: bool) -> None:
        for w in (self.ct_path, self.labels_path, self.name, self.voxel_mm, self.import_button):
            w.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        self.step_label.setVisible(running)

    @property
    def running(self) -> bool:
        return self._stop is not None

    def _error(self, text: str) -> None:
        self.message.setStyleSheet("color: #b00020;")
        self.message.setText(text)

    def _note(self, text: str) -> None:
        self.message.setStyleSheet("color: #1b5e20;")
        self.message.setText(text)

    def start(self) -> bool:
        """Check the fields and start the import; False (and a one-line message naming the field)
        when a field is wrong."""
        if self.running:
            return False
        paths = {}
        for field, edit in (("CT", self.ct_path), ("Segmentation", self.labels_path)):
            text = edit.text().strip()
            if not text:
                self._error(f"{field}: choose a file or a folder")
                return False
            if not Path(text).exists():
                self._error(f"{field}: {text}: no such file or folder")
                return False
            paths[field] = Path(text)
        name = self.name.text().strip()
        try:
            check_name(name)
        except SpineSimError:
            self._error(f"Patient name: '{name}' is not a valid name (letters, digits, '_', '-' and '.', up to 64, "
                        f"starting with a letter or digit)")
            return False
        self._stop = threading.Event()
        job = _ImportJob(paths["CT"], paths["Segmentation"], name, float(self.voxel_mm.value()), self._stop)
        # each handler is told which import it hears from: one cancelled earlier may still report
        stop = self._stop
        job.signals.step.connect(lambda f, text: self._on_step(stop, f, text))
        job.signals.done.connect(lambda levels: self._on_done(stop, name, levels))
        job.signals.failed.connect(lambda message: self._on_failed(stop, message))
        job.signals.cancelled.connect(lambda: self._on_cancelled(stop))
        self.outcome = None
        self.progress.setValue(0)
        self.step_label.setText("Starting")
        self._note("")
        self._set_running(True)
        QThreadPool.globalInstance().start(job)
        return True

    def cancel(self) -> None:
        """Stop the running import: the dialog is free at once and nothing is stored (the step
        under way finishes unseen)."""
        if not self.running:
            return
        self._stop.set()
        self._finish("cancelled")
        self._note("Cancelled: nothing was stored.")

    def _finish(self, outcome: str) -> None:
        self.outcome = outcome
        self._stop = None
        self._set_running(False)

    def _on_step(self, stop, fraction: float, text: str) -> None:
        if stop is self._stop:
            self.progress.setValue(int(round(100 * fraction)))
            self.step_label.setText(text)

    def _on_done(self, stop, name: str, levels) -> None:
        whole = ", ".join(levels) if levels else "none whole in the scan"
        if stop is not self._stop:
            # cancelled while it was being written: it is stored all the same, and said so
            if not self.running:
                self._note(f"Cancelled too late: '{name}' was already stored (levels {whole}).")
            self.imported.emit(name)
            return
        self._finish("imported")
        self._note(f"Imported '{name}': levels {whole}. Use it in a scenario as its Patient CT.")
        self.imported.emit(name)

    def _on_failed(self, stop, message: str) -> None:
        if stop is self._stop:
            self._finish("failed")
            self._error(message)

    def _on_cancelled(self, stop) -> None:
        if stop is self._stop:  # stopped by a close, not the button
            self._finish("cancelled")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if self.running:
            self._stop.set()  # a closed dialog leaves nothing half-imported behind
        super().closeEvent(event)


def open_ct_import(parent=None) -> CtImportDialog:
    """Show the CT import dialog (non-modal); the caller checks the instructor first."""
    dialog = CtImportDialog(parent)
    dialog.show()
    return dialog
