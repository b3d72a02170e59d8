"""Where user data and caches live (platform folders, overridable).

``SPINESIM_CACHE_DIR`` and ``SPINESIM_DATA_DIR`` override the platform defaults; the CLI's
``--cache-dir`` sets the former for one run.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir() -> Path:
    """Folder for rebuildable data (built phantoms, meshes)."""
    override = os.environ.get("SPINESIM_CACHE_DIR")
    path = Path(override) if override else Path(platformdirs.user_cache_dir("spinesim"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Folder for the user's own data (attempt records)."""
    override = os.environ.get("SPINESIM_DATA_DIR")
    path = Path(override) if override else Path(platformdirs.user_data_dir("spinesim"))
    path.mkdir(parents=True, exist_ok=True)
    return path
