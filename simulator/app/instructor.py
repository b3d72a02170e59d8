"""The instructor's view of results: the landmark-versus-image-guided report of every stored attempt,
behind the instructor password, shown in the app and written as HTML and PDF to hand out."""

from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import Qt, QUrl
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QMessageBox,
                             QTextBrowser, QVBoxLayout)

from simulator.errors import SpineSimError
from simulator.paths import data_dir


class InstructorSignIn(QDialog):
    """Account and instructor password (the password is never kept)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Instructor sign-in")
        form = QFormLayout(self)
        self.account = QLineEdit()
        self.account.setObjectName("instructor_account")
        self.password = QLineEdit()
        self.password.setObjectName("instructor_password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("Instructor account", self.account)
        form.addRow("Instructor password", self.password)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


def write_report(store, account: str, password: str, folder: Path | None = None) -> tuple[Path, Path]:
    """The report of every attempt the instructor may see, as (HTML, PDF) in ``folder`` (default:
    a new folder under the data folder's ``reports``). Raises SpineSimError on a wrong password."""
    from simulator.analysis.report import Selection, attempt_rows, build_report, write_html, write_pdf

    actor = store.unlock(account, password)
    report = build_report(attempt_rows(store, actor, Selection()))
    folder = folder or data_dir() / "reports" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    return write_html(report, folder / "report.html"), write_pdf(report, folder / "report.pdf")


class ReportDialog(QDialog):
    """The report shown in the app, with buttons to open its PDF and its folder."""

    def __init__(self, html_path: Path, pdf_path: Path, parent=None):
        super().__init__(parent)
        self.setObjectName("report_dialog")
        self.setWindowTitle("Landmark versus image guidance: report")
        layout = QVBoxLayout(self)
        self.text = QTextBrowser()
        self.text.setObjectName("report_text")
        self.text.setHtml(html_path.read_text(encoding="utf-8"))
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        open_pdf = buttons.addButton("Open the PDF", QDialogButtonBox.ButtonRole.ActionRole)
        open_pdf.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(pdf_path))))
        open_folder = buttons.addButton("Open the folder", QDialogButtonBox.ButtonRole.ActionRole)
        open_folder.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(pdf_path.parent))))
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.resize(900, 760)


def show_report(parent, store) -> ReportDialog | None:
    """Ask for the instructor's password, then build and show the report (None if cancelled or
    refused; the reason is shown)."""
    if store is None:
        QMessageBox.warning(parent, "SpineSim", "The attempt database is not available: there are no results to "
                            "report on.")
        return None
    sign_in = InstructorSignIn(parent)
    if not sign_in.exec():
        return None
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        html, pdf = write_report(store, sign_in.account.text().strip(), sign_in.password.text())
    except SpineSimError as err:
        QMessageBox.warning(parent, "SpineSim", f"{err}")
        return None
    finally:
        QApplication.restoreOverrideCursor()
    dialog = ReportDialog(html, pdf, parent)
    dialog.show()
    return dialog
