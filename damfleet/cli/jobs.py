"""Job control commands: ``status``, ``watch``, ``pause``, ``resume``, ``cancel``, ``batch``,
``retry-failed``, ``schedule create|list|pause|delete`` and ``queues``.

Every command is a thin shell over :class:`damfleet.client.FleetClient`, so scripts can use
the SDK and the CLI interchangeably. ``--json`` prints one JSON object on stdout (human
output goes to stderr). Exit codes: 0 done, 1 the job could not do it (unknown id, already
finished, a failed run), 2 bad usage or no connection. Errors are one clear line, never a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from damfleet.cli import app
from damfleet.cli._support import run_and_exit
from damfleet.stages import STAGE_NAMES as _STAGES

__all__ = ["batch_summary", "parse_duration", "pipeline_summary"]

console = Console(stderr=True)
schedule_app = typer.Typer(help="Inbox rescans as Temporal Schedules: create, list, pause, delete.",
                           no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")

_FINISHED = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELLED"}
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout (for scripts).")]


def _run(work: Callable[[Any], Awaitable[int]], check: Callable[[], None] | None = None) -> None:
    """Run ``check()`` (request checks that need no server), connect, run ``work(fleet)``,
    and turn every expected failure into one clear line."""

    async def main() -> int:
        from damfleet.client import FleetClient

        if check is not None:
            check()
        fleet = await FleetClient.connect()
        return await work(fleet)

    run_and_exit(main())


def _emit(as_json: bool, data: dict[str, Any], human: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(data, indent=None, sort_keys=False))
    else:
        human()


def _message_dict(message: Any) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def pipeline_summary(result: Any) -> dict[str, Any]:
    """``status --json`` of an asset run: state, stage, progress, per-stage timing and errors."""
    from damfleet.v1 import common_pb2

    finished_statuses = {
        common_pb2.STAGE_STATUS_COMPLETED, common_pb2.STAGE_STATUS_SKIPPED, common_pb2.STAGE_STATUS_FAILED,
        common_pb2.STAGE_STATUS_CANCELLED, common_pb2.STAGE_STATUS_COMPLETED_WITH_ERRORS,
    }
    from damfleet.cli.live import asset_percent

    done = sum(1 for s in _STAGES if s in result.stages and result.stages[s].status in finished_statuses)
    summary = {
        "workflow_id": result.workflow_id,
        "type": "AssetPipeline",
        "state": common_pb2.JobState.Name(result.state),
        "stage": result.current_stage,
        "progress": {"stages_done": done, "stages_total": len(_STAGES), "percent": round(100.0 * done / len(_STAGES), 1)},
        "asset_id": result.asset_id,
        "error": result.error,
        "failures": list(result.failures),
        "duplicate_of": result.duplicate_of,
        "stages": {
            name: {
                "status": common_pb2.StageStatus.Name(result.stages[name].status).removeprefix("STAGE_STATUS_"),
                "seconds": result.stages[name].seconds,
                "reason": result.stages[name].reason,
                "attempts": result.stages[name].attempts,
                "waiting": result.stages[name].waiting,
                "last_error": result.stages[name].last_error,
                "percent": result.stages[name].percent,
                "detail": result.stages[name].detail,
            }
            for name in _STAGES if name in result.stages
        },
        "outputs": [{"role": o.role, "uri": o.uri, "size_bytes": o.size_bytes} for o in result.outputs],
    }
    # Percent counts the running stage's own progress (from its heartbeats), not only whole stages.
    summary["progress"]["percent"] = asset_percent(summary)
    return summary


def batch_summary(progress: Any) -> dict[str, Any]:
    """``status --json`` of a batch: state, progress counts, failed assets and bad rows."""
    from damfleet.v1 import common_pb2

    counts = _message_dict(progress)
    for key in ("batch_id", "state", "failed_assets", "bad_rows", "retry_of", "error"):
        counts.pop(key, None)
    for key in ("total", "completed", "completed_with_errors", "failed", "cancelled", "running", "pending",
                "duplicates", "percent", "bad_row_count", "runs"):
        counts.setdefault(key, 0)
    return {
        "workflow_id": progress.batch_id,
        "type": "BatchIngest",
        "state": common_pb2.JobState.Name(progress.state),
        "stage": "paused" if progress.paused else ("running" if progress.running else ""),
        "progress": counts,
        "failed_assets": [
            {"line": a.line, "source_uri": a.source_uri, "workflow_id": a.workflow_id,
             "state": common_pb2.JobState.Name(a.state), "error": a.error}
            for a in progress.failed_assets
        ],
        "bad_rows": [{"line": b.line, "reason": b.reason} for b in progress.bad_rows],
        "retry_of": progress.retry_of,
        "error": progress.error,
    }


async def _summary(fleet: Any, workflow_id: str) -> dict[str, Any]:
    from damfleet.policies import WorkflowName

    kind = await fleet.kind(workflow_id)
    if kind == WorkflowName.BATCH_INGEST:
        return batch_summary(await fleet.batch_progress(workflow_id))
    if kind == WorkflowName.ASSET_PIPELINE:
        return pipeline_summary(await fleet.status(workflow_id))
    from damfleet.client import JobControlError

    raise JobControlError(f"{workflow_id} is a {kind} workflow, not an asset run or a batch")


def _print_summary(summary: dict[str, Any]) -> None:
    from damfleet.cli.live import stage_progress_text

    table = Table(title=f"{summary['type']} {summary['workflow_id']}", show_header=False)
    table.add_row("state", summary["state"])
    if summary["type"] == "AssetPipeline":
        table.add_row("stage", stage_progress_text(summary) or "-")
        table.add_row("progress", f"{summary['progress']['percent']:.1f}%")
        for name, stage in summary["stages"].items():
            status_text = stage["status"]
            if stage["status"] == "RUNNING" and stage["percent"]:
                status_text += f" {stage['percent']:.0f}%"
            detail = f"{status_text:<21} {stage['seconds']:>7.1f}s"
            if stage["waiting"]:
                detail += f"  waiting: {stage['waiting']} (attempt {stage['attempts']})"
            elif stage["attempts"] > 1:
                detail += f"  attempt {stage['attempts']}"
            if stage["reason"]:
                detail += f"  {stage['reason']}"
            table.add_row(f"  {name}", detail)
        if summary["error"]:
            table.add_row("error", summary["error"])
        for failure in summary["failures"]:
            table.add_row("failure", failure)
    else:
        p = summary["progress"]
        table.add_row("progress", f"{p['percent']:.1f}%  ({p['total']} assets)")
        if summary["error"]:
            table.add_row("error", summary["error"])
        for key in ("completed", "completed_with_errors", "failed", "cancelled", "running", "pending",
                    "duplicates", "bad_row_count", "runs"):
            table.add_row(f"  {key}", str(p[key]))
        for asset in summary["failed_assets"][:20]:
            table.add_row(f"  failed line {asset['line']}", f"{asset['source_uri']}: {asset['error']}")
        for row in summary["bad_rows"][:20]:
            table.add_row(f"  bad row {row['line']}", row["reason"])
    Console().print(table)


# ---- commands -------------------------------------------------------------------------

@app.command()
def status(workflow_id: Annotated[str, typer.Argument(help="An asset run's or a batch's workflow id.")],
           as_json: JsonOption = False) -> None:
    """State, current stage and progress of an asset run or a batch."""

    async def work(fleet: Any) -> int:
        summary = await _summary(fleet, workflow_id)
        _emit(as_json, summary, lambda: _print_summary(summary))
        return 0

    _run(work)


@app.command()
def watch(
    workflow_id: Annotated[str, typer.Argument(help="An asset run's or a batch's workflow id.")],
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Live progress bars until the run or batch finishes; exits 0 if it completed."""

    async def work(fleet: Any) -> int:
        summary = await _summary(fleet, workflow_id)
        is_batch = summary["type"] == "BatchIngest"
        if not as_json:
            console.print(f"watching {summary['type']} [bold]{workflow_id}[/]", soft_wrap=True)
        # Columns sized for an 80-column terminal: the state is never cut (it is padded to
        # the longest, COMPLETED_WITH_ERRORS); the free-text detail gives way first.
        with Progress(
            TextColumn("{task.fields[state]}", table_column=Column(no_wrap=True, min_width=21)),
            BarColumn(bar_width=16),
            TextColumn("{task.fields[count]}", table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[detail]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            TimeElapsedColumn(),
            console=console, disable=as_json, transient=False, expand=True,
        ) as bars:
            main = bars.add_task(workflow_id, total=100, state="", count="", detail="")
            while True:
                p = summary["progress"]
                if is_batch:
                    done = p["completed"] + p["completed_with_errors"] + p["failed"] + p["cancelled"]
                    detail = (f"ok {p['completed']} err {p['completed_with_errors']} "
                              f"failed {p['failed']} run {p['running']}")
                    bars.update(main, total=p["total"] or None, completed=done, state=summary["state"],
                                count=f"{done}/{p['total']}", detail=summary["error"] or detail)
                else:
                    from damfleet.cli.live import stage_progress_text

                    bars.update(main, total=100, completed=p["percent"], state=summary["state"],
                                count=f"{p['stages_done']}/{p['stages_total']}",
                                detail=summary["error"] or stage_progress_text(summary))
                if summary["state"] in _FINISHED:
                    break
                await asyncio.sleep(interval)
                summary = await _summary(fleet, workflow_id)
        _emit(as_json, summary, lambda: _print_summary(summary))
        return 0 if summary["state"] in ("COMPLETED", "COMPLETED_WITH_ERRORS") else 1

    _run(work)


def _control(action: str) -> Callable[..., None]:
    def command(workflow_id: Annotated[str, typer.Argument(help="An asset run's or a batch's workflow id.")],
                as_json: JsonOption = False) -> None:
        async def work(fleet: Any) -> int:
            if action == "cancel":
                await fleet.cancel(workflow_id)
                state = "CANCEL_REQUESTED"
            else:
                state = await getattr(fleet, action)(workflow_id)
            _emit(as_json, {"workflow_id": workflow_id, "action": action, "state": state},
                  lambda: console.print(f"{action}: [bold]{workflow_id}[/] ({state})"))
            return 0

        _run(work)

    command.__doc__ = {
        "pause": "Pause a run or batch: what is running finishes, nothing new starts until resumed.",
        "resume": "Resume a paused run or batch.",
        "cancel": "Cancel a run (stops its activity, discards its outputs) or a whole batch.",
    }[action]
    return command


for _action in ("pause", "resume", "cancel"):
    app.command(name=_action)(_control(_action))


@app.command()
def batch(
    source: Annotated[str, typer.Argument(help="A CSV/XLSX manifest, or a folder / s3:// prefix of sources.")],
    profile: Annotated[str, typer.Option(help="Processing profile for every asset.")] = "",
    collection: Annotated[str, typer.Option(help="Collection for rows that name none.")] = "",
    tenant: Annotated[str, typer.Option(help="Tenant for rows that name none.")] = "",
    priority: Annotated[int, typer.Option(help="1 (highest) .. 5; 0 = the batch default (4).")] = 0,
    max_in_flight: Annotated[int, typer.Option(help="Assets processed at once; 0 = default (50).")] = 0,
    skip_ai: Annotated[bool, typer.Option(help="Skip AI enrichment for every asset.")] = False,
    dedup: Annotated[bool, typer.Option(help="Link content already ingested in the collection.")] = True,
    workflow_id: Annotated[str, typer.Option("--id", help="Batch id; default derived from the source.")] = "",
    wait: Annotated[bool, typer.Option(help="Wait for the batch to finish and print its progress.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a batch over a manifest or a storage prefix; prints the batch id."""
    from damfleet.errors import BadInputError
    from damfleet.manifest import manifest_format

    try:
        manifest_format(source)
        kind = {"manifest": source}
    except BadInputError:  # not a .csv/.xlsx name: a folder or prefix of sources
        kind = {"prefix": source}

    def check() -> None:
        # What can be checked without the server is checked first, so a typo is reported
        # as itself even when Temporal is down.
        from damfleet.storage import normalize_uri
        from damfleet.validation import check_local_manifest, check_local_prefix, check_priority, check_profile

        check_profile(profile)
        check_priority(priority)
        uri = normalize_uri(source)
        (check_local_manifest if "manifest" in kind else check_local_prefix)(uri)

    async def work(fleet: Any) -> int:
        handle = await fleet.batch(**kind, profile=profile, collection=collection, tenant=tenant, priority=priority,
                                   max_in_flight=max_in_flight, skip_ai=skip_ai, dedup=dedup,
                                   workflow_id=workflow_id or None)
        if not wait:
            _emit(as_json, {"workflow_id": handle.workflow_id, "existing": handle.existing},
                  lambda: console.print(f"batch [bold]{handle.workflow_id}[/] started"
                                        + (" (already submitted)" if handle.existing else "")))
            return 0
        summary = batch_summary(await handle.wait())
        _emit(as_json, summary, lambda: _print_summary(summary))
        return 0 if summary["state"] == "COMPLETED" else 1

    _run(work, check)


@app.command(name="retry-failed")
def retry_failed(batch_id: Annotated[str, typer.Argument(help="A finished batch's workflow id.")],
                 as_json: JsonOption = False) -> None:
    """Start a new batch that re-runs only the failed assets of a finished batch."""

    async def work(fleet: Any) -> int:
        handle = await fleet.retry_failed(batch_id)
        if handle is None:
            _emit(as_json, {"workflow_id": "", "retry_of": batch_id, "assets": 0},
                  lambda: console.print(f"batch {batch_id} has no failed assets"))
            return 0
        original = await fleet.get_batch(batch_id).progress()
        total, omitted = len(original.failed_assets), original.failed_assets_omitted
        data = {"workflow_id": handle.workflow_id, "retry_of": batch_id, "assets": total}
        if omitted:
            data["not_listed"] = omitted
        _emit(as_json, data, lambda: console.print(
            f"re-running {total} failed assets as batch [bold]{handle.workflow_id}[/]"
            + (f"; {omitted} more failures were only counted (see the batch's failed assets)" if omitted else "")))
        return 0

    _run(work)


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
    paused: Annotated[bool, typer.Option(help="Create it paused.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Rescan an inbox prefix on a schedule and batch its new objects."""

    async def work(fleet: Any) -> int:
        interval = parse_duration(every)
        await fleet.create_rescan_schedule(schedule_id, prefix, every=interval, profile=profile,
                                           collection=collection, tenant=tenant, priority=priority,
                                           settle_seconds=settle, paused=paused)
        _emit(as_json, {"schedule_id": schedule_id, "every_seconds": interval.total_seconds(), "paused": paused},
              lambda: console.print(f"schedule [bold]{schedule_id}[/] rescans {prefix} every {every}"))
        return 0

    _run(work)


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

        _emit(as_json, data, human)
        return 0

    _run(work)


@schedule_app.command("pause")
def schedule_pause(
    schedule_id: Annotated[str, typer.Argument()],
    unpause: Annotated[bool, typer.Option("--unpause", help="Unpause instead.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Pause (or --unpause) a schedule; batches already started keep running."""

    async def work(fleet: Any) -> int:
        await fleet.pause_schedule(schedule_id, unpause=unpause)
        _emit(as_json, {"schedule_id": schedule_id, "paused": not unpause},
              lambda: console.print(f"schedule {schedule_id} {'unpaused' if unpause else 'paused'}"))
        return 0

    _run(work)


@schedule_app.command("delete")
def schedule_delete(schedule_id: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Delete a schedule; batches already started keep running."""

    async def work(fleet: Any) -> int:
        await fleet.delete_schedule(schedule_id)
        _emit(as_json, {"schedule_id": schedule_id, "deleted": True},
              lambda: console.print(f"schedule {schedule_id} deleted"))
        return 0

    _run(work)


@app.command()
def queues(as_json: JsonOption = False) -> None:
    """Per-queue backlog and pollers, from the server's task-queue description."""

    async def work(fleet: Any) -> int:
        infos = await fleet.queues()
        data = {"queues": [q.__dict__ for q in infos]}

        def human() -> None:
            from damfleet.cli.live import fit_table

            out = Console()
            rows = [[q.name, q.kind, str(q.backlog), f"{q.backlog_age_seconds:.1f}", str(q.pollers),
                     f"{q.tasks_add_rate:.2f}", f"{q.tasks_dispatch_rate:.2f}"] for q in infos]
            # At 80 columns the rates and the kind go; queue names stay whole.
            out.print(fit_table(out, ["queue", "kind", "backlog", "oldest (s)", "pollers", "add/s", "dispatch/s"],
                                rows, optional=["dispatch/s", "add/s", "kind"]))

        _emit(as_json, data, human)
        return 0

    _run(work)


if __name__ == "__main__":  # pragma: no cover
    app()
