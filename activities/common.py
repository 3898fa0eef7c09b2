"""What every stage's activity wrapper shares: error mapping, heartbeats, scratch space.

Activities stay thin: they heartbeat, translate damfleet's exceptions into Temporal
``ApplicationError`` s (retryable or not, decided by the exception class in
:mod:`damfleet.errors`), and call plain functions that know nothing of Temporal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from damfleet.errors import DamfleetError, TransientError
from damfleet.messages import clean_message
from damfleet.settings import Settings, get_settings
from damfleet.storage import Storage

__all__ = [
    "Heartbeater",
    "StageContext",
    "scratch_dir",
    "to_application_error",
    "translate_errors",
]

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class StageContext:
    """Dependencies an activity class needs, created once per worker process."""

    settings: Settings = field(default_factory=get_settings)
    storage: Storage = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.storage is None:
            self.storage = Storage.from_settings(self.settings)


def to_application_error(exc: BaseException) -> ApplicationError:
    """Translate a damfleet error into the ApplicationError Temporal's retry policy reads."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, DamfleetError):
        next_delay = None
        if isinstance(exc, TransientError) and exc.retry_after_seconds:
            next_delay = timedelta(seconds=max(0.0, exc.retry_after_seconds))
        return ApplicationError(
            clean_message(str(exc)),
            type=exc.error_type,
            non_retryable=not exc.retryable,
            next_retry_delay=next_delay,
        )
    # Anything unexpected is retried by policy; the type name helps operators triage.
    return ApplicationError(clean_message(f"{type(exc).__name__}: {exc}"), type=type(exc).__name__)


def translate_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate an async activity so damfleet errors leave it as ApplicationErrors."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (asyncio.CancelledError, ApplicationError):
            raise
        except DamfleetError as exc:
            if not exc.retryable:
                log.warning("activity %s failed permanently: %s", fn.__name__, exc)
            raise to_application_error(exc) from exc

    return wrapper


class Heartbeater:
    """Heartbeats the latest progress on a timer while long work runs elsewhere.

    Work running in a thread or a subprocess cannot heartbeat itself; this task keeps
    the activity alive (so a dead worker is noticed by the heartbeat timeout, not a live
    one) and, because cancellation reaches an activity only through heartbeats, is what
    lets a cancel request arrive within seconds.
    """

    def __init__(self, interval_seconds: float | None = None) -> None:
        timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
        default = timeout.total_seconds() / 4 if timeout else 10.0
        self.interval = max(0.5, min(interval_seconds or default, 10.0))
        self.details: Any = None
        self._task: asyncio.Task[None] | None = None

    def update(self, details: Any) -> None:
        """Record new progress; sent with the next beat (and immediately on the first)."""
        self.details = details

    async def _beat(self) -> None:
        while True:
            if self.details is None:
                activity.heartbeat()
            else:
                activity.heartbeat(self.details)
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> Heartbeater:
        if activity.in_activity():
            self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def scratch_dir(settings: Settings, purpose: str) -> AsyncIterator[Path]:
    """A private scratch folder removed on every exit path (success, error, cancel)."""
    root = settings.scratch_path
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{purpose}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    started = time.monotonic()
    try:
        yield path
    finally:
        await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, path, True))
        log.debug("scratch %s removed after %.1fs", path, time.monotonic() - started)
