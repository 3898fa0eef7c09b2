"""Job control commands: ``status``, ``watch``, ``pause``, ``resume``, ``cancel``, ``batch``,
``retry-failed`` and ``queues`` (schedules are :mod:`damfleet.cli.schedules`).

Every command is a thin shell over :class:`damfleet.client.FleetClient`, so scripts can use
the SDK and the CLI interchangeably. ``--json`` prints one JSON object on stdout (human
output goes to stderr). Exit codes: 0 done, 1 the job could not do it (unknown id, already
finished, a failed run), 2 bad usage or no connection. Errors are one clear line, never a
traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

from damfleet.cli import app
from damfleet.cli._support import JsonOption, emit, run_with_fleet

__all__: list[str] = []  # commands register themselves on damfleet.cli.app

console = Console(stderr=True)


async def _summary(fleet: Any, workflow_id: str) -> dict[str, Any]:
    """``status`` of an asset run or a batch, whichever the id names."""
    from damfleet.policies import WorkflowName
    from damfleet.summaries import batch_summary, pipeline_summary

    kind = await fleet.kind(workflow_id)
    if kind == WorkflowName.BATCH_INGEST:
        return batch_summary(await fleet.batch_progress(workflow_id))
    if kind == WorkflowName.ASSET_PIPELINE:
        return pipeline_summary(await fleet.status(workflow_id))
    from damfleet.client import JobControlError

    raise JobControlError(f"{workflow_id} is a {kind} workflow, not an asset run or a batch")


# ---- commands -------------------------------------------------------------------------

@app.command()
def status(workflow_id: Annotated[str, typer.Argument(help="An asset run's or a batch's workflow id.")],
           as_json: JsonOption = False) -> None:
    """State, current stage and progress of an asset run or a batch."""

    async def work(fleet: Any) -> int:
        from damfleet.cli.render import print_status

        summary = await _summary(fleet, workflow_id)
        emit(as_json, summary, lambda: print_status(summary))
        return 0

    run_with_fleet(work)


@app.command()
def watch(
    workflow_id: Annotated[str, typer.Argument(help="An asset run's or a batch's workflow id.")],
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Live progress bars until the run or batch finishes; exits 0 if it completed."""

    async def work(fleet: Any) -> int:
        from damfleet.cli.live import stage_progress_text
        from damfleet.cli.render import print_status
        from damfleet.summaries import FINISHED_STATES

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
                    bars.update(main, total=100, completed=p["percent"], state=summary["state"],
                                count=f"{p['stages_done']}/{p['stages_total']}",
                                detail=summary["error"] or stage_progress_text(summary))
                if summary["state"] in FINISHED_STATES:
                    break
                await asyncio.sleep(interval)
                summary = await _summary(fleet, workflow_id)
        emit(as_json, summary, lambda: print_status(summary))
        return 0 if summary["state"] in ("COMPLETED", "COMPLETED_WITH_ERRORS") else 1

    run_with_fleet(work)


def _control(action: str) -> Callable[..., None]:
    def command(workflow_id: Annotated[str, typer.Argument(help="An asset run's or a batch's workflow id.")],
                as_json: JsonOption = False) -> None:
        async def work(fleet: Any) -> int:
            if action == "cancel":
                await fleet.cancel(workflow_id)
                state = "CANCEL_REQUESTED"
            else:
                state = await getattr(fleet, action)(workflow_id)
            emit(as_json, {"workflow_id": workflow_id, "action": action, "state": state},
                  lambda: console.print(f"{action}: [bold]{workflow_id}[/] ({state})"))
            return 0

        run_with_fleet(work)

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
            emit(as_json, {"workflow_id": handle.workflow_id, "existing": handle.existing},
                  lambda: console.print(f"batch [bold]{handle.workflow_id}[/] started"
                                        + (" (already submitted)" if handle.existing else "")))
            return 0
        from damfleet.cli.render import print_status
        from damfleet.summaries import batch_summary

        summary = batch_summary(await handle.wait())
        emit(as_json, summary, lambda: print_status(summary))
        return 0 if summary["state"] == "COMPLETED" else 1

    run_with_fleet(work, check)


@app.command(name="retry-failed")
def retry_failed(batch_id: Annotated[str, typer.Argument(help="A finished batch's workflow id.")],
                 as_json: JsonOption = False) -> None:
    """Start a new batch that re-runs only the failed assets of a finished batch."""

    async def work(fleet: Any) -> int:
        handle = await fleet.retry_failed(batch_id)
        if handle is None:
            emit(as_json, {"workflow_id": "", "retry_of": batch_id, "assets": 0},
                  lambda: console.print(f"batch {batch_id} has no failed assets"))
            return 0
        original = await fleet.get_batch(batch_id).progress()
        total, omitted = len(original.failed_assets), original.failed_assets_omitted
        data = {"workflow_id": handle.workflow_id, "retry_of": batch_id, "assets": total}
        if omitted:
            data["not_listed"] = omitted
        emit(as_json, data, lambda: console.print(
            f"re-running {total} failed assets as batch [bold]{handle.workflow_id}[/]"
            + (f"; {omitted} more failures were only counted (see the batch's failed assets)" if omitted else "")))
        return 0

    run_with_fleet(work)


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

        emit(as_json, data, human)
        return 0

    run_with_fleet(work)


if __name__ == "__main__":  # pragma: no cover
    app()
