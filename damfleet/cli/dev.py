"""``damfleet dev``, ``damfleet demo`` and ``damfleet submit``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.live import Live

from damfleet.cli import app
from damfleet.cli._support import exit_now as _exit
from damfleet.cli._support import failure_line, print_error, run_and_exit
from damfleet.errors import DamfleetError
from damfleet.settings import get_settings

if TYPE_CHECKING:   # the models load on first use; --help never needs them
    from damfleet.settings import Settings

console = Console(stderr=True)


def _status_table(snapshot: list[tuple[str, Any]]) -> Any:
    """The demo's live table, fitted to the terminal (see :func:`damfleet.cli.live.demo_table`)."""
    from damfleet.cli.live import demo_table
    from damfleet.summaries import pipeline_summary

    return demo_table(console, [(src, pipeline_summary(status) if status is not None else None)
                                for src, status in snapshot])


async def _demo(settings: Settings, *, as_json: bool, attach: bool, profile: str, keep_running: bool) -> int:
    from damfleet import samples
    from damfleet.client import FleetClient
    from damfleet.demo import run_assets
    from damfleet.launcher import Fleet
    from damfleet.policies import Queue
    from damfleet.summaries import summary_json

    started = time.monotonic()
    fleet = Fleet(settings, start_server=not attach)
    try:
        if not attach:
            console.print(f"[bold]starting[/] Temporal dev server (UI http://localhost:{settings.temporal.dev_ui_port})"
                          f" and {len(fleet.pools)} worker pools; "
                          f"state in {settings.state_path}")
        if not attach:
            await fleet.start()
        sources = samples.make_demo_set(settings.state_path / "samples")
        client = await FleetClient.connect(settings)
        task_queue = Queue.PIPELINE + settings.worker.queue_suffix
        live = None if as_json else Live(console=console, refresh_per_second=4)

        def progress(snapshot: list[tuple[str, Any]]) -> None:
            dead = fleet.check_workers()
            if dead:
                raise DamfleetError(f"worker process(es) died: {dead}; see {settings.state_path / 'logs'}")
            if live is not None:
                live.update(_status_table(snapshot))

        if live is not None:
            live.start()
        try:
            assets = await run_assets(client, sources, profile=profile, on_progress=progress, task_queue=task_queue)
        finally:
            if live is not None:
                live.stop()
        summary = summary_json(assets, started)
        if as_json:
            print(json.dumps(summary, indent=None))
        else:
            from damfleet.cli.render import print_assets

            print_assets(summary)
        if keep_running and not attach:
            console.print(f"fleet still running (Ctrl-C to stop); UI http://localhost:{settings.temporal.dev_ui_port}")
            await _wait_forever()
        return 0 if summary["all_completed"] else 1
    finally:
        fleet.stop()


async def _wait_forever() -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@app.command()
def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
    attach: Annotated[bool, typer.Option(help="Use an already running fleet instead of starting one.")] = False,
    profile: Annotated[str, typer.Option(help="Processing profile for the sample assets.")] = "",
    keep_running: Annotated[bool, typer.Option(help="Leave the fleet running after the summary.")] = False,
) -> None:
    """Start the fleet, process a generated sample set end to end, print a summary.

    Exits 0 only if every sample asset completed.
    """
    try:
        code = asyncio.run(_demo(get_settings(), as_json=as_json, attach=attach, profile=profile,
                                 keep_running=keep_running))
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        if failure_line(exc) is None:
            raise
        print_error(f"demo failed: {failure_line(exc)[1]}")  # type: ignore[index]
        code = 2
    _exit(code)


@app.command()
def dev() -> None:
    """Run the whole fleet locally (dev server, UI on :8233, every worker pool) until Ctrl-C."""

    async def run() -> int:
        from damfleet.launcher import POOLS, Fleet, dev_source_roots

        settings = get_settings()
        fleet = Fleet(settings)
        supervisor: asyncio.Task[None] | None = None
        try:
            await fleet.start()
            console.print(f"started the dev server and {len(fleet.pools)} pools; waiting until every pool polls its queue...")
            await fleet.wait_polling()
            console.print(f"[bold green]fleet ready[/]: Temporal {settings.temporal.address}, "
                          f"UI http://localhost:{settings.temporal.dev_ui_port}, "
                          f"metrics :{fleet.metrics_base_port}-{fleet.metrics_base_port + len(POOLS) - 1}, "
                          f"logs {settings.state_path / 'logs'}. Ctrl-C stops everything.")
            console.print(f"sources accepted under: {', '.join(dev_source_roots(settings))} "
                          "(DAMFLEET_INGEST_SOURCE_ROOTS)", soft_wrap=True)
            # A pool that dies (OOM kill, kill -9) is reaped and restarted, with backoff and a cap.
            supervisor = asyncio.create_task(fleet.supervise(lambda message: console.print(f"[yellow]{message}[/]")))
            await _wait_forever()
            return 0
        finally:
            if supervisor is not None:
                supervisor.cancel()
            console.print("stopping workers (graceful) and the dev server...")
            fleet.stop()

    try:
        code = asyncio.run(run())
    except DamfleetError as exc:
        print_error(str(exc))
        code = 2
    _exit(code)


@app.command()
def submit(
    sources: Annotated[list[str], typer.Argument(help="Local paths or file:// / s3:// URIs.")],
    wait: Annotated[bool, typer.Option(help="Wait for each run to finish and print its summary.")] = False,
    profile: Annotated[str, typer.Option(help="Processing profile (default, web, hls, archive).")] = "",
    priority: Annotated[int, typer.Option(help="1 (highest) .. 5 (lowest); 0 = default (3).")] = 0,
    title: Annotated[str, typer.Option(help="Title stored with the asset (single source only).")] = "",
    collection: Annotated[str, typer.Option(help="Collection the asset belongs to.")] = "",
    tenant: Annotated[str, typer.Option(help="Tenant the asset belongs to.")] = "",
    sha256: Annotated[str, typer.Option(help="Expected sha256 (single source only).")] = "",
    skip_ai: Annotated[bool, typer.Option("--skip-ai", help="Do not run AI enrichment.")] = False,
    dedup: Annotated[bool | None, typer.Option(
        "--dedup/--no-dedup",
        help="Link content already in the collection and join an identical earlier submission "
             "(default: DAMFLEET_JOBS_DEDUP); --no-dedup always starts a new run.")] = None,
    target: Annotated[list[str] | None, typer.Option(
        "--target", help="Deliver to this target (a name from DAMFLEET_DISTRIBUTION_TARGETS_*); repeatable; "
                         "default: the profile's targets.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Start AssetPipeline runs against a running fleet.

    Every source is checked before anything starts (the file exists and is readable, the profile exists, priority 1-5):
    a bad request exits 2 with one line and starts nothing.
    """
    for flag, value in (("--sha256", sha256), ("--title", title)):
        if value and len(sources) != 1:
            print_error(f"error: {flag} applies to a single source")
            _exit(2)

    async def run() -> int:
        from damfleet.client import FleetClient
        from damfleet.demo import final_result
        from damfleet.storage import normalize_uri
        from damfleet.summaries import asset_summary
        from damfleet.validation import check_local_source, check_priority, check_profile

        # Check every source before starting any: a typo in the third path must not leave
        # two runs started and an error.
        check_profile(profile)
        check_priority(priority)
        for source in sources:
            check_local_source(normalize_uri(source))
        client = await FleetClient.connect()
        handles = []
        for source in sources:
            handle = await client.submit(source, profile=profile, priority=priority, collection=collection,
                                         tenant=tenant, expected_sha256=sha256, title=title, skip_ai=skip_ai,
                                         targets=target or [], dedup=dedup)
            handles.append((source, handle))
            if not as_json:
                console.print(f"submitted {source} as [bold]{handle.workflow_id}[/]")
        if not wait:
            if as_json:
                print(json.dumps({"workflow_ids": [h.workflow_id for _, h in handles],
                                  "runs": [{"source": s, "workflow_id": h.workflow_id} for s, h in handles]}))
            return 0
        if not as_json:
            from damfleet.cli.live import follow_runs

            await follow_runs(client, [(s, h.workflow_id) for s, h in handles], console)
        summaries = [asset_summary(s, h.workflow_id, await final_result(h)) for s, h in handles]
        if as_json:
            print(json.dumps({"assets": summaries}))
        else:
            from damfleet.cli.render import print_assets

            print_assets({"assets": summaries, "wall_seconds": 0.0})
        return 0 if all(a["state"] in ("COMPLETED", "COMPLETED_WITH_ERRORS") for a in summaries) else 1

    run_and_exit(run())


@app.command()
def redeliver(
    workflow_id: Annotated[str, typer.Argument(help="An AssetPipeline run that ended COMPLETED_WITH_ERRORS.")],
    target: Annotated[list[str] | None, typer.Option(help="Only these targets (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Retry a finished run's failed deliveries (earlier stages are not re-run)."""

    async def run() -> int:
        from google.protobuf.json_format import MessageToDict

        from damfleet.client import FleetClient
        from damfleet.v1 import common_pb2

        client = await FleetClient.connect()
        result = await client.redeliver(workflow_id, targets=target or [])
        if as_json:
            print(json.dumps(MessageToDict(result, preserving_proto_field_name=True)))
        else:
            state = common_pb2.JobState.Name(result.state)
            console.print(f"{workflow_id}: {state} {result.reason}".rstrip())
            for receipt in result.receipts:
                mark = "[green]ok[/]" if receipt.ok else f"[red]failed[/] {receipt.error}"
                console.print(f"  {receipt.target} {receipt.role}: {mark} {receipt.location}")
        return 0 if result.state == common_pb2.COMPLETED else 1

    run_and_exit(run())
