"""What every ``damfleet`` command shares: one clear line per failure, and a clean exit.

Exit codes, the same for every command: 0 done; 1 the job could not do it (unknown id,
already finished, a failed run); 2 a bad request or no connection. A failure is one line
on stderr, never a traceback: an operator reads what is wrong and what to do about it.

This module imports nothing heavy (no temporalio, no protobuf), so ``--help`` stays fast.
Every command module (jobs, schedules, fixity) runs its work through :func:`run_with_fleet`
and prints through :func:`emit`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

import typer

__all__ = [
    "JsonOption", "connection_hint", "emit", "exit_now", "failure_line", "print_error", "run_and_exit", "run_with_fleet",
]

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout (for scripts).")]


def exit_now(code: int) -> None:
    """Exit without interpreter teardown: the Temporal SDK's runtime can abort at exit
    (temporalio issue 300), and a CLI must not report failure for work that succeeded."""
    tracing = sys.modules.get("damfleet.tracing")
    if tracing is not None:  # the command's spans (its StartWorkflow) go out first: os._exit skips atexit
        tracing.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def connection_hint(exc: BaseException, address: str) -> str | None:
    """One actionable line for the SDK's connection failure, or None if ``exc`` is not one.

    The SDK raises a RuntimeError wrapping a Rust ``tonic::transport::Error`` over several
    lines; the operator needs the address it tried, why in a few words, and what to change.
    """
    text = str(exc)
    if "client connect" not in text.lower() and "tonic::transport" not in text:
        return None
    reason = "connection refused" if "refused" in text.lower() else "no answer"
    match = re.search(r'message: "([^"]+)"', text)
    if match and reason == "no answer":
        reason = match.group(1).lower()
    elif "timed out" in text.lower() or "deadline" in text.lower():
        reason = "timed out"
    tried = re.search(r"tried for ([0-9.]+ ?s)", text)
    if tried:
        reason += f", retried for {tried.group(1)}"
    return (f"cannot reach Temporal at {address} ({reason}): start the fleet with `damfleet dev`, "
            "or set DAMFLEET_TEMPORAL_ADDRESS to your Temporal frontend")


def failure_line(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, message) for an expected failure; None for a bug (let it raise)."""
    from damfleet.client import DamfleetClientError, JobNotFoundError
    from damfleet.errors import DamfleetError

    if isinstance(exc, (RuntimeError, DamfleetError)):
        from damfleet.settings import get_settings

        hint = connection_hint(exc, get_settings().temporal.address)
        if hint:
            return 2, hint
    if isinstance(exc, JobNotFoundError):
        return 1, f"not found: {exc}"
    if isinstance(exc, DamfleetClientError):
        return 1, str(exc)
    if isinstance(exc, (DamfleetError, ValueError)):
        return 2, f"error: {exc}"
    return None


def print_error(line: str) -> None:
    """One red line on stderr, never wrapped (a log collector or ``2>err`` keeps it whole)."""
    from rich.console import Console

    Console(stderr=True).print(line, style="red", markup=False, highlight=False, soft_wrap=True)


def run_and_exit(main: Coroutine[Any, Any, int]) -> None:
    """Run a command's coroutine and exit with its code; expected failures become one line."""
    try:
        code = asyncio.run(main)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        failure = failure_line(exc)
        if failure is None:
            raise
        code, line = failure
        print_error(line)
    exit_now(code)


def run_with_fleet(work: Callable[[Any], Awaitable[int]], check: Callable[[], None] | None = None) -> None:
    """Run ``check()`` (request checks that need no server), connect, run ``work(fleet)``,
    and turn every expected failure into one clear line."""

    async def main() -> int:
        from damfleet.client import FleetClient

        if check is not None:
            check()
        fleet = await FleetClient.connect()
        return await work(fleet)

    run_and_exit(main())


def emit(as_json: bool, data: dict[str, Any], human: Callable[[], None]) -> None:
    """``data`` as one JSON line on stdout for ``--json``; otherwise ``human()`` prints it for people."""
    if as_json:
        print(json.dumps(data, indent=None, sort_keys=False))
    else:
        human()
