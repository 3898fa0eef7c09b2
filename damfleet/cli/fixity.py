"""Fixity commands: ``damfleet fixity run``, ``fixity schedule create`` and ``fixity report``.

    damfleet fixity schedule create --every 7d --sample 5%    # every asset checked within 20 weeks
    damfleet fixity run --collection news                      # audit now, wait, print the summary
    damfleet fixity report fixity-3f2a... --json               # the stored report (or progress)

Exit codes: 0 the audit found nothing wrong (or the command did what it said), 1 damaged
originals were found (or an unknown id), 2 bad usage or no connection. The shared
connection and error handling is :mod:`damfleet.cli._support`'s.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from damfleet.cli import app
from damfleet.cli._support import JsonOption, emit, run_with_fleet
from damfleet.cli.schedules import PausedOption, parse_duration

__all__ = ["parse_sample"]

console = Console(stderr=True)

fixity_app = typer.Typer(help="Fixity audits: re-verify stored originals, repair or quarantine damage.",
                         no_args_is_help=True)
fixity_schedule_app = typer.Typer(help="Fixity audits on a Temporal Schedule.", no_args_is_help=True)
fixity_app.add_typer(fixity_schedule_app, name="schedule")
app.add_typer(fixity_app, name="fixity")

SampleOption = Annotated[str, typer.Option(
    "--sample", help="Share of assets per audit, e.g. 5%: one of 20 stable buckets, every asset once in 20 audits.")]
PrefixOption = Annotated[str, typer.Option(help="Only assets under this storage prefix (URI, or a path under the root).")]
CollectionOption = Annotated[str, typer.Option(help="Only assets of this collection.")]
RenditionsOption = Annotated[bool | None, typer.Option(
    "--renditions/--no-renditions",
    help="Also re-hash renditions whose sha256 is recorded (S3); default DAMFLEET_FIXITY_INCLUDE_RENDITIONS.")]
RepairOption = Annotated[bool, typer.Option(
    "--repair/--no-repair", help="Restore damaged originals from verified copies, else quarantine (default), "
                                 "or only report.")]


def parse_sample(text: str) -> float | None:
    """``"5%"`` or ``"5"`` -> 5.0; ``"100%"`` -> None (every asset)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", text)
    if not match:
        raise ValueError(f"bad --sample {text!r}: use a percentage such as 5%")
    value = float(match.group(1))
    if not 0 < value <= 100:
        raise ValueError(f"--sample {text!r} must be above 0% and at most 100%")
    return None if value == 100 else value


def _summary(result: Any) -> dict[str, Any]:
    from damfleet import fixity

    return {
        "audit_id": result.audit_id,
        "failures": result.failures,
        "counts": fixity.counts_dict(result.counts),
        "total_assets": result.total_assets,
        "bucket": result.bucket,
        "buckets": result.buckets,
        "runs": result.runs,
        "seconds": round(result.seconds, 1),
        "report_uri": result.report_uri,
        "failed": [fixity.finding_dict(f) for f in result.failed],
        "failures_omitted": result.failures_omitted,
    }


def _print_failures(failures: list[dict[str, Any]]) -> None:
    if not failures:
        return
    table = Table("asset", "finding", "repair", "detail")
    for f in failures:
        table.add_row(f.get("asset_id", ""), f.get("status", ""), f.get("repair", ""), f.get("detail", "")[:160])
    console.print(table)


@fixity_app.command("run")
def fixity_run(
    prefix: PrefixOption = "",
    collection: CollectionOption = "",
    sample: SampleOption = "100%",
    bucket: Annotated[int | None, typer.Option(help="Check this bucket of the sample (default: the next).")] = None,
    repair: RepairOption = True,
    renditions: RenditionsOption = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the audit and print its summary.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Audit stored originals now: re-hash, compare with the ingest sha256, repair or quarantine."""
    from damfleet.client.fixity import audit_request, start_audit

    async def work(fleet: Any) -> int:
        request = audit_request(fleet.settings, prefix=prefix, collection=collection,
                                sample_percent=parse_sample(sample), bucket=bucket, repair=repair,
                                include_renditions=renditions)
        handle = await start_audit(fleet, request)
        if not wait:
            emit(as_json, {"audit_id": handle.id},
                  lambda: console.print(f"fixity audit [bold]{handle.id}[/] started"))
            return 0
        console.print(f"fixity audit [bold]{handle.id}[/] running ...")
        summary = _summary(await handle.result())

        def human() -> None:
            c = summary["counts"]
            console.print(f"{handle.id}: {c['checked']} checked, {c['ok']} ok, {c['mismatch']} mismatch, "
                          f"{c['missing']} missing, {c['unreadable']} unreadable; {c['repaired']} repaired, "
                          f"{c['quarantined']} quarantined; report {summary['report_uri']}")
            _print_failures(summary["failed"])

        emit(as_json, summary, human)
        return 1 if summary["failures"] else 0

    run_with_fleet(work)


@fixity_app.command("report")
def fixity_report(
    audit_id: Annotated[str, typer.Argument(help="The audit's workflow id (printed by `fixity run`).")],
    as_json: JsonOption = False,
) -> None:
    """The stored report of an audit (every failure), or the progress of one still running."""
    from damfleet.client.fixity import audit_report

    async def work(fleet: Any) -> int:
        report = await audit_report(fleet, audit_id)

        def human() -> None:
            c = report.get("counts", {})
            state = "finished" if report.get("finished", True) else "running"
            console.print(f"{audit_id} ({state}): " + ", ".join(f"{k} {v}" for k, v in c.items()))
            _print_failures(report.get("failures", []))

        emit(as_json, report, human)
        return 1 if report.get("failures") else 0

    run_with_fleet(work)


@fixity_schedule_app.command("create")
def fixity_schedule_create(
    every: Annotated[str, typer.Option(help="Audit interval: 12h, 1d, 7d.")] = "7d",
    sample: SampleOption = "100%",
    schedule_id: Annotated[str, typer.Option("--id", help="Schedule id.")] = "fixity-audit",
    prefix: PrefixOption = "",
    collection: CollectionOption = "",
    repair: RepairOption = True,
    renditions: RenditionsOption = None,
    paused: PausedOption = False,
    as_json: JsonOption = False,
) -> None:
    """Audit on a schedule; with --sample every asset is still checked within every x 100/sample."""
    from damfleet.client.fixity import audit_request, create_audit_schedule

    async def work(fleet: Any) -> int:
        interval = parse_duration(every)
        request = audit_request(fleet.settings, prefix=prefix, collection=collection,
                                sample_percent=parse_sample(sample), repair=repair,
                                include_renditions=renditions)
        await create_audit_schedule(fleet, schedule_id, request, every=interval, paused=paused)
        cycle = interval * request.sample_buckets
        data = {"schedule_id": schedule_id, "every_seconds": interval.total_seconds(),
                "buckets": request.sample_buckets, "cycle_seconds": cycle.total_seconds(), "paused": paused}
        emit(as_json, data, lambda: console.print(
            f"schedule [bold]{schedule_id}[/] audits 1/{request.sample_buckets} of the assets every {every}: "
            f"every asset within {cycle}"))
        return 0

    run_with_fleet(work)
