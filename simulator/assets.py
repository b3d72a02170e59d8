"""Read-only access to the files in ``assets/`` (shipped inside the package as ``simulator._assets``)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def asset(name: str) -> Traversable:
    """The asset file ``name`` (a path inside ``assets/``)."""
    node = resources.files("simulator._assets")
    for part in name.split("/"):
        node = node / part
    return node


def read_asset_text(name: str) -> str:
    """Text of the asset file ``name``."""
    return asset(name).read_text(encoding="utf-8")
