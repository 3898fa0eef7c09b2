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
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from google.protobuf.message import Message
from temporalio import activity
from temporalio.exceptions import ApplicationError

from damfleet.errors import UNEXPECTED_ERROR_MAX_ATTEMPTS, DamfleetError, TransientError
from damfleet.messages import clean_message
from damfleet.scratch import lease_scratch
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


def _attempt() -> int:
    return activity.info().attempt if activity.in_activity() else 1


def to_application_error(exc: BaseException, *, attempt: int | None = None) -> ApplicationError:
    """Translate an exception into the ApplicationError Temporal's retry policy reads.

    The policies set no attempt limit (a dead worker must not use up an asset's budget),
    so an error class's own ``max_attempts`` is applied here: on that attempt the error
    leaves as non-retryable and the run fails with its message. Exceptions damfleet did
    not anticipate get :data:`~damfleet.errors.UNEXPECTED_ERROR_MAX_ATTEMPTS`.
    """
    if isinstance(exc, ApplicationError):
        return exc
    attempt = _attempt() if attempt is None else attempt
    if isinstance(exc, DamfleetError):
        next_delay = None
        if isinstance(exc, TransientError) and exc.retry_after_seconds:
            next_delay = timedelta(seconds=max(0.0, exc.retry_after_seconds))
        budget = exc.max_attempts
        spent = exc.retryable and budget is not None and attempt >= budget
        message = str(exc)
        if spent:
            message = f"{message} (gave up after {attempt} attempts)"
        return ApplicationError(
            clean_message(message),
            type=exc.error_type,
            non_retryable=not exc.retryable or spent,
            next_retry_delay=next_delay,
        )
    # Anything unexpected is retried a few times; the type name helps operators triage.
    spent = attempt >= UNEXPECTED_ERROR_MAX_ATTEMPTS
    suffix = f" (gave up after {attempt} attempts)" if spent else ""
    return ApplicationError(clean_message(f"{type(exc).__name__}: {exc}{suffix}"), type=type(exc).__name__,
                            non_retryable=spent)


def translate_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Decorate an async activity so damfleet errors leave it as ApplicationErrors, and its
    output reports the attempt that made it (where the output has an ``attempt`` field)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return _with_attempt(await fn(*args, **kwargs))
        except (asyncio.CancelledError, ApplicationError):
            raise
        except Exception as exc:  # every failure leaves with a retry decision
            error = to_application_error(exc)
            if error.non_retryable:
                log.warning("activity %s failed permanently: %s", fn.__name__, error.message)
            if isinstance(exc, DamfleetError):
                # The message says what happened; the chain of library exceptions under it
                # (botocore, aiohttp, socket) is for the worker log, not the run's history,
                # where each retry of a long outage would store it again and where a chain
                # over the server's failure size limit reads only "Failure exceeds size limit".
                log.info("activity %s: %s", fn.__name__, error.message, exc_info=exc)
                raise error from None
            raise error from exc

    return wrapper


def _with_attempt(result: R) -> R:
    """Stamp the attempt into an output that carries one: the workflow learns from it that
    nothing was retried, and a finished run's reader is spared a history fetch
    (``PipelineResult.first_attempts_only``)."""
    if (isinstance(result, Message) and "attempt" in result.DESCRIPTOR.fields_by_name
            and activity.in_activity()):
        result.attempt = activity.info().attempt  # type: ignore[attr-defined]
    return result


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
    """A private scratch folder, owned by this process (see :mod:`damfleet.scratch`) and
    removed on every exit path (success, error, cancel); a SIGKILL leaves it to the sweeper."""
    loop = asyncio.get_running_loop()
    lease = await loop.run_in_executor(None, lease_scratch, settings.scratch_path, purpose)
    started = time.monotonic()
    try:
        yield lease.path
    finally:
        await asyncio.shield(loop.run_in_executor(None, lease.release))
        log.debug("scratch %s removed after %.1fs", lease.path, time.monotonic() - started)
