"""The instructor's sign-in: an account and the instructor password, asked for once per window
before any instructor screen (the results and their report are :mod:`simulator.app.results`)."""

from __future__ import annotations

from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLineEdit


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
