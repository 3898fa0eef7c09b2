"""Logging for the worker pools: text for people, JSON for log pipelines, ids as fields.

``DAMFLEET_LOG_FORMAT=json`` writes one JSON object per line. Every line written while an
activity or a workflow runs carries ``workflow_id``, ``run_id``, ``task_queue``, ``activity``
(or ``workflow_type``), ``attempt`` and, when known, ``asset_id`` as fields, so a log
pipeline can pull every line of one asset across the five pools with one filter instead of
a regex over message text. The text format (the default, and what ``damfleet dev`` writes)
appends the same ids in brackets.

Noise control, because an operator pays for every line:

- Expected failures (bad input, a refused delivery: damfleet's own error types) are one
  line at WARNING, logged by the activity wrapper; the SDK's ~30-line traceback of the same
  failure is dropped. Unexpected exceptions keep their traceback.
- Third-party chatter (libvips, botocore, urllib3, httpx, asyncio) is at WARNING unless
  ``DAMFLEET_LOG_LEVEL=DEBUG``.
- ``DAMFLEET_LOG_FILE`` adds a size-rotated file (``damfleet dev`` sets it to
  ``.damfleet/logs/<pool>.log``).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "TextFormatter",
    "asset_context",
    "configure_logging",
]

#: Fields an activity or workflow adds to each line, in the order they are printed.
CONTEXT_FIELDS = ("workflow_id", "run_id", "workflow_type", "activity", "attempt", "task_queue", "asset_id")

#: Loggers that are chatty at INFO/DEBUG and rarely what an operator needs.
NOISY_LOGGERS = ("pyvips", "botocore", "aiobotocore", "boto3", "urllib3", "httpx", "httpcore", "asyncio",
                 "faster_whisper", "ultralytics", "PIL", "matplotlib", "grpc")

_asset: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("damfleet_log_asset", default=None)


@contextmanager
def asset_context(**fields: str) -> Iterator[None]:
    """Attach fields (``asset_id=...``) to every line logged inside the block (same task)."""
    token = _asset.set({k: v for k, v in fields.items() if v})
    try:
        yield
    finally:
        _asset.reset(token)


def _temporal_fields() -> dict[str, Any]:
    """Ids of the running activity or workflow, from the SDK's context (empty outside one)."""
    from temporalio import activity, workflow

    if activity.in_activity():
        info = activity.info()
        return {"workflow_id": info.workflow_id, "run_id": info.workflow_run_id, "activity": info.activity_type,
                "attempt": info.attempt, "task_queue": info.task_queue}
    if workflow.in_workflow():
        info = workflow.info()
        return {"workflow_id": info.workflow_id, "run_id": info.run_id, "workflow_type": info.workflow_type,
                "attempt": info.attempt, "task_queue": info.task_queue}
    return {}


class ContextFilter(logging.Filter):
    """Adds the context fields to every record, and trims expected failures to one line."""

    def __init__(self, pool: str = "") -> None:
        super().__init__()
        self.pool = pool

    def filter(self, record: logging.LogRecord) -> bool:
        if _is_expected_failure_trace(record):
            return False
        fields: dict[str, Any] = {}
        # The SDK's own loggers attach the ids as a dict; use it when the context is gone.
        for extra in (getattr(record, "temporal_workflow", None), getattr(record, "temporal_activity", None)):
            if isinstance(extra, dict):
                fields.update({key: extra[key] for key in ("workflow_id", "run_id", "workflow_type", "activity_type",
                                                           "task_queue", "attempt") if key in extra})
        if "activity_type" in fields:
            fields["activity"] = fields.pop("activity_type")
        with contextlib.suppress(Exception):  # logging must never raise
            fields.update(_temporal_fields())
        fields.update(_asset.get() or {})
        for key in CONTEXT_FIELDS:
            if key in fields and not hasattr(record, key):
                setattr(record, key, fields[key])
        record.pool = self.pool
        return True


def _is_expected_failure_trace(record: logging.LogRecord) -> bool:
    """The SDK's "Completing activity as failed" traceback for an error damfleet raised on
    purpose: the activity wrapper has already logged it as one line."""
    if record.name != "temporalio.activity" or not record.exc_info:
        return False
    from temporalio.exceptions import ApplicationError

    from damfleet.errors import DamfleetError

    error = record.exc_info[1]
    # translate_errors raises the ApplicationError `from None` (short histories), which leaves
    # the damfleet error as the context rather than the cause.
    origin = error.__cause__ or error.__context__ if error is not None else None
    return isinstance(error, ApplicationError) and isinstance(origin, DamfleetError)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, pool, the context fields, and
    ``exception`` (type, message, traceback) only for unexpected errors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "pool", ""):
            entry["pool"] = record.pool
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value not in (None, ""):
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["exception"] = {"type": type(error).__name__, "message": str(error),
                                  "traceback": self.formatException(record.exc_info)}
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the context ids appended in brackets when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{key}={getattr(record, key)}" for key in ("workflow_id", "activity", "attempt", "asset_id")
               if getattr(record, key, None) not in (None, "")]
        if not ids:
            return line
        head, sep, rest = line.partition("\n")
        return f"{head} [{' '.join(ids)}]{sep}{rest}"


def configure_logging(settings: Any, *, pool: str = "") -> None:
    """Set up the root logger from settings (format, level, optional rotated file)."""
    level = settings.log_level.upper()
    formatter: logging.Formatter = JsonFormatter() if settings.log_format == "json" else TextFormatter()
    handlers: list[logging.Handler] = []
    if settings.log_file:
        path = Path(settings.log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            path, maxBytes=settings.log_file_max_bytes, backupCount=settings.log_file_backups, encoding="utf-8"))
    else:
        handlers.append(logging.StreamHandler(sys.stderr))
    context = ContextFilter(pool)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(context)
    logging.basicConfig(level=level, handlers=handlers, force=True)
    # The SDK appends a dict of the same ids to every message; they are fields here.
    from temporalio import activity, workflow

    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
    if level != "DEBUG":
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
