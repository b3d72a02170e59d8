"""What the app remembers between runs (window layout, the last trainee's name): an INI file in the
user's data folder, so a test's data folder keeps its own."""

from __future__ import annotations

from PyQt6.QtCore import QSettings

from simulator.paths import data_dir


def app_settings() -> QSettings:
    """The app's settings file (``app_settings.ini`` in the data folder)."""
    return QSettings(str(data_dir() / "app_settings.ini"), QSettings.Format.IniFormat)
