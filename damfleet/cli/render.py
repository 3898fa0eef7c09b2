"""Results for people at a terminal: the tables ``status``, ``watch``, ``batch --wait``, the
demo and ``submit --wait`` print once runs have ended.

They print the dicts of :mod:`damfleet.summaries` (the same data ``--json`` prints), so what
a person reads and what a script parses never disagree. Tables go to stdout; progress and
messages go to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from damfleet.cli.live import stage_progress_text
from damfleet.stages import STAGES as STAGE_TABLE

__all__ = ["print_assets", "print_status"]


def print_assets(summary: dict[str, Any], console: Console | None = None) -> None:
    """Finished assets (the demo, ``submit --wait``) for people: a compact table (one row
    per asset, one column per stage), then each asset's details. ``console`` defaults to
    stdout at the terminal's width (a test passes a fixed-width one)."""
    out = console or Console()
    title = "damfleet" + (f": {summary['wall_seconds']:.1f}s wall time" if summary.get("wall_seconds") else "")
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("asset", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for header in (stage.header for stage in STAGE_TABLE):  # short: fits an 80-column terminal
        table.add_column(header, justify="right", min_width=max(len(header), 7))
    for asset in summary["assets"]:
        cells = []
        for entry in asset["stages"].values():
            status = entry["status"].lower()
            cells.append(f"{entry['seconds']:.1f}s" if status == "completed" else status.replace("_", " "))
        color = "green" if asset["state"] == "COMPLETED" else "yellow" if "ERRORS" in asset["state"] else "red"
        table.add_row(Path(asset["source"]).name, f"[{color}]{asset['state']}[/]", *cells)
    out.print(table)
    for asset in summary["assets"]:
        out.print(f"[bold]{Path(asset['source']).name}[/] ({asset['workflow_id']})")
        out.print("  outputs: " + ", ".join(f"{o['role']} ({o['size']:,} B)" for o in asset["outputs"]))
        for name, entry in asset["stages"].items():
            if entry["status"] == "SKIPPED":
                out.print(f"  {name} skipped: {entry.get('reason', '')}")
        if asset.get("transcript"):
            out.print(f"  transcript ({asset['transcript']['language']}): {asset['transcript']['excerpt'][:200]}")
        for line in [asset["error"]] if asset.get("error") else asset.get("failures", []):
            out.print(f"  [red]{line}[/]")


def print_status(summary: dict[str, Any]) -> None:
    """``damfleet status`` for people: an asset run's stages with timings, waits and errors,
    or a batch's counts with its first failed assets and bad rows."""
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
