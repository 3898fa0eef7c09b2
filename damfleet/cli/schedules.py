"""Schedule commands: ``schedule create|list|pause|delete`` (inbox rescans as Temporal Schedules).

Thin shells over the schedule calls of :class:`damfleet.client.FleetClient`; same
``--json``, exit codes and one-line errors as every other command (:mod:`damfleet.cli._support`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from damfleet.cli import app
from damfleet.cli._support import JsonOption, emit, run_with_fleet

__all__ = ["PausedOption", "parse_duration", "schedule_app"]

#: Every schedule-creating command (rescans here, fixity audits) offers it.
PausedOption = Annotated[bool, typer.Option(help="Create it paused.")]

console = Console(stderr=True)
schedule_app = typer.Typer(help="Inbox rescans as Temporal Schedules: create, list, pause, delete.",
                           no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d`` (or plain seconds) as a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 15m, 2h or 1d")
    value, unit = float(match.group(1)), match.group(2) or "s"
    seconds = value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return timedelta(seconds=seconds)


@schedule_app.command("create")
def schedule_create(
    schedule_id: Annotated[str, typer.Argument(help="Schedule id, e.g. inbox-news.")],
    prefix: Annotated[str, typer.Argument(help="Inbox folder or s3:// prefix to rescan.")],
    every: Annotated[str, typer.Option(help="Rescan interval: 90s, 15m, 2h, 1d.")] = "15m",
    profile: Annotated[str, typer.Option()] = "",
    collection: Annotated[str, typer.Option()] = "",
    tenant: Annotated[str, typer.Option()] = "",
    priority: Annotated[int, typer.Option(help="0 = the batch default (4).")] = 0,
    settle: Annotated[float, typer.Option(help="Skip objects modified in the last N seconds.")] = 30.0,
    paused: PausedOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rescan an inbox prefix on a schedule and batch its new objects."""

    async def work(fleet: Any) -> int:
        interval = parse_duration(every)
        await fleet.create_rescan_schedule(schedule_id, prefix, every=interval, profile=profile,
                                           collection=collection, tenant=tenant, priority=priority,
                                           settle_seconds=settle, paused=paused)
        emit(as_json, {"schedule_id": schedule_id, "every_seconds": interval.total_seconds(), "paused": paused},
              lambda: console.print(f"schedule [bold]{schedule_id}[/] rescans {prefix} every {every}"))
        return 0

    run_with_fleet(work)


@schedule_app.command("list")
def schedule_list(as_json: JsonOption = False) -> None:
    """Schedules with their paused flag and next run times."""

    async def work(fleet: Any) -> int:
        schedules = await fleet.list_schedules()
        data = {"schedules": [s.__dict__ for s in schedules]}

        def human() -> None:
            table = Table("id", "paused", "next runs", "note")
            for s in schedules:
                table.add_row(s.schedule_id, "yes" if s.paused else "no", ", ".join(s.next_action_times[:2]), s.note)
            Console().print(table)

        emit(as_json, data, human)
        return 0

    run_with_fleet(work)


@schedule_app.command("pause")
def schedule_pause(
    schedule_id: Annotated[str, typer.Argument()],
    unpause: Annotated[bool, typer.Option("--unpause", help="Unpause instead.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Pause (or --unpause) a schedule; batches already started keep running."""

    async def work(fleet: Any) -> int:
        await fleet.pause_schedule(schedule_id, unpause=unpause)
        emit(as_json, {"schedule_id": schedule_id, "paused": not unpause},
              lambda: console.print(f"schedule {schedule_id} {'unpaused' if unpause else 'paused'}"))
        return 0

    run_with_fleet(work)


@schedule_app.command("delete")
def schedule_delete(schedule_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Delete a schedule; batches already started keep running."""

    async def work(fleet: Any) -> int:
        await fleet.delete_schedule(schedule_id)
        emit(as_json, {"schedule_id": schedule_id, "deleted": True},
              lambda: console.print(f"schedule {schedule_id} deleted"))
        return 0

    run_with_fleet(work)
