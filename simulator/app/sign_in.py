"""Who is at the station: a trainee signs in by name so their attempts are kept under it (the last
name is offered again)."""

from __future__ import annotations

import re
import unicodedata

from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit

from simulator.app.settings import app_settings


def account_for(name: str) -> str:
    """The account a display name is kept under: accents taken off, lowercase, spaces to dots, other
    signs dropped."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    account = re.sub(r"[^a-z0-9._@-]", "", re.sub(r"\s+", ".", plain.strip().lower()))
    return account.lstrip("._-")[:60]


class SignInDialog(QDialog):
    """Your name; the account shown as it will be kept. Accepted with a name, it is remembered."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("SpineSim: sign in")
        form = QFormLayout(self)
        form.addRow(QLabel("Your attempts are kept under your name. For training only; not for clinical use."))
        self.name = QLineEdit(str(app_settings().value("trainee/name", "")))
        self.name.setObjectName("trainee_name")
        self.account = QLabel()
        self.name.textChanged.connect(self._update)
        form.addRow("Your name", self.name)
        form.addRow("Kept as", self.account)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)
        self._update()

    def _update(self) -> None:
        account = account_for(self.name.text())
        self.account.setText(account or "-")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(account))

    def chosen(self) -> tuple[str, str] | None:
        """(account, display name) if a name was given and accepted; it is remembered."""
        name = " ".join(self.name.text().split())
        if self.result() != QDialog.DialogCode.Accepted or not account_for(name):
            return None
        app_settings().setValue("trainee/name", name)
        return account_for(name), name
