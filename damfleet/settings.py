"""Process settings, read once from the environment with one prefix: ``DAMFLEET_``.

Every deployable (the five workers, the inference service, the CLI) reads the same
variables, so a Helm values file or a ``.env`` configures the whole fleet in one place.
Settings are grouped per concern; a group's variables share a second prefix, for
example ``DAMFLEET_TEMPORAL_ADDRESS`` or ``DAMFLEET_TRANSCODE_FFMPEG_THREADS``.

The models (pydantic-settings, with ``Literal`` choices and ``SecretStr`` secrets) live in
:mod:`damfleet.settings_models`; this module is what the rest of damfleet imports, and it
loads them on first use (``Settings``, ``AISettings``, ... or :func:`load_settings`), so
a command that reads no setting, such as ``damfleet --help``, does not import pydantic.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from damfleet.settings_models import (
        AISettings,
        DistributionSettings,
        FixitySettings,
        IngestSettings,
        JobsSettings,
        Settings,
        StorageSettings,
        TemporalSettings,
        TranscodeSettings,
        WorkerSettings,
        setting_names,
    )

__all__ = [
    "MAX_IMAGE_PIXELS",
    "PREFIX",
    "AISettings",
    "DistributionSettings",
    "FixitySettings",
    "IngestSettings",
    "JobsSettings",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "TemporalSettings",
    "TranscodeSettings",
    "WorkerSettings",
    "get_settings",
    "load_settings",
    "parse_flag",
    "read_setting_file",
    "setting_names",
]

PREFIX = "DAMFLEET_"

#: 16383 x 16383, libvips' JPEG limit: larger images are refused (decompression bombs).
MAX_IMAGE_PIXELS = 268_402_689


class SettingsError(ValueError):
    """A setting is present but cannot be used; the message names the variable."""


def parse_flag(value: str) -> bool:
    """The words operators write for a switch; an empty value is off. Raises ValueError.

    Here rather than in the models so :mod:`damfleet.policies` (imported by workflows, no
    pydantic) reads its one switch with the same words as every other setting.
    """
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def __getattr__(name: str) -> Any:
    """The models (every public name not defined here) load from damfleet.settings_models on first use."""
    if name in __all__:
        value = getattr(importlib.import_module("damfleet.settings_models"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default: ``os.environ``).

    Storage credentials fall back to the standard ``AWS_*`` variables so existing
    deployments and IAM tooling keep working. A bad value raises :class:`SettingsError`
    with one line naming the variable and what is wrong with it.
    """
    from damfleet.settings_models import load

    return load(env)


_cached: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _cached
    if _cached is None:
        _cached = load_settings()
    return _cached


def read_setting_file(path: str, what: str) -> bytes | None:
    """The bytes of a file a setting names (a TLS certificate, key or CA bundle); ``None``
    when the setting is empty. An unreadable file is a ConfigurationError naming ``what``
    (say which setting) and the path, raised where the process starts, not on first use."""
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        from damfleet.errors import ConfigurationError

        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
