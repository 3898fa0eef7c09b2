"""Live progress for people at a terminal: ``watch``, the demo's table, ``submit --wait``.

Layouts are built for the terminal they print on. At 80 columns they drop whole columns
(rates, per-stage timings) rather than cut letters out of a state name: ``COMPLETED_WITH_ERRORS``
is always printed whole, because an operator greps for it. :func:`fit_table` does the
dropping for any table; the functions below choose what is essential.

Everything here formats summaries that :mod:`damfleet.summaries` already builds (plain
dicts), so it is tested with a fixed-width console and no fleet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from damfleet.stages import STAGES as STAGE_TABLE
from damfleet.summaries import FINISHED_STATES, STAGES, asset_percent

__all__ = [
    "demo_table",
    "fit_table",
    "follow_runs",
    "run_line",
    "stage_progress_text",
]

#: Short stage headers: "ai_enrich" and "distribution" cost a narrow terminal 8 columns.
_STAGE_HEADERS = {stage.name: stage.header for stage in STAGE_TABLE}


def fit_table(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]], *,
              optional: Sequence[str] = (), title: str | None = None) -> Table:
    """A table of ``headers``/``rows`` that fits ``console.width``, dropping ``optional``
    columns (in the order given) until it does. Cells never wrap: a column that is kept is
    shown whole."""
    keep = list(headers)
    for column in [None, *optional]:
        if column is not None:
            keep.remove(column)
        table = Table(*keep, title=title, expand=False)
        for column_obj in table.columns:
            column_obj.no_wrap = True
        for row in rows:
            table.add_row(*(cell for header, cell in zip(headers, row, strict=True) if header in keep))
        # Measured as if the terminal were unbounded: rich clamps a measurement to the width.
        if console.measure(table, options=console.options.update_width(10_000)).maximum <= console.width:
            return table
    return table


def stage_progress_text(summary: dict[str, Any]) -> str:
    """``transcode 42% proxy 80%``: the current stage with its live progress, or "" when none;
    a stage running beside it follows (``transcode 42% proxy 80%, ai_enrich 30%``)."""
    stage = summary.get("stage") or ""
    if not stage:
        return ""
    stages = summary.get("stages", {})
    entry = stages.get(stage, {})
    parts = [stage]
    if entry.get("status") == "PENDING":
        parts.append("(next)")
    if entry.get("percent"):
        parts.append(f"{entry['percent']:.0f}%")
    if entry.get("detail"):
        parts.append(entry["detail"])
    beside = [f"{name} {info['percent']:.0f}%" if info.get("percent") else name
              for name, info in stages.items() if name != stage and info.get("status") == "RUNNING"]
    return ", ".join([" ".join(parts), *beside])


def run_line(name: str, summary: dict[str, Any], width: int = 80) -> str:
    """One line for ``submit --wait``: name, state, overall percent, what runs now.

    The state is never shortened; the name gives way first, then the stage detail.
    """
    state = summary["state"]
    detail = stage_progress_text(summary) if state not in FINISHED_STATES else ""
    if summary.get("error") and state == "FAILED":
        detail = summary["error"]
    head = f"{state:<13} {asset_percent(summary):5.1f}%"
    room = width - len(head) - 2
    name_room = max(8, min(len(name), room // 2 if detail else room))
    shown = name if len(name) <= name_room else name[: name_room - 1] + "…"
    line = f"{shown}  {head}"
    if detail:
        detail_room = width - len(line) - 2
        if detail_room >= 8:
            line += "  " + (detail if len(detail) <= detail_room else detail[: detail_room - 1] + "…")
    return line


def demo_table(console: Console, snapshot: list[tuple[str, dict[str, Any] | None]]) -> Table:
    """The demo's live table: asset, state, progress, then per-stage seconds when they fit."""
    headers = ["asset", "state", "progress", *(_STAGE_HEADERS[s] for s in STAGES)]
    rows = []
    for source, summary in snapshot:
        name = Path(source).name
        if summary is None:
            rows.append([name, "PENDING", "", "", "", "", ""])
            continue
        cells = []
        for stage in STAGES:
            entry = summary["stages"].get(stage, {})
            status = entry.get("status", "PENDING")
            if status == "COMPLETED":
                cells.append(f"{entry.get('seconds', 0.0):.1f}s")
            elif status == "RUNNING":
                cells.append(f"{entry.get('percent', 0.0):.0f}%")
            else:
                cells.append(status.lower().replace("_", " "))
        progress = f"{asset_percent(summary):.0f}% {stage_progress_text(summary)}".strip()
        rows.append([name, summary["state"], progress, *cells])
    optional = [_STAGE_HEADERS[s] for s in reversed(STAGES)]
    return fit_table(console, headers, rows, optional=optional, title="damfleet demo")


async def follow_runs(client: Any, runs: Sequence[tuple[str, str]], console: Console,
                      *, interval: float = 1.0) -> None:
    """Print a line whenever a run's state, stage or progress moves, until all have ended.

    ``submit --wait`` uses this so a long transcode is visibly alive instead of silent
    until every run ends. Lines go to ``console`` (stderr): stdout stays for ``--json``.
    """
    from damfleet.summaries import pipeline_summary

    last: dict[str, str] = {}
    pending = {wid: Path(source).name for source, wid in runs}
    while pending:
        for wid, name in list(pending.items()):
            summary = pipeline_summary(await client.status(wid))
            line = run_line(name, summary, console.width)
            if line != last.get(wid):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
                last[wid] = line
            if summary["state"] in FINISHED_STATES:
                del pending[wid]
        if pending:
            await asyncio.sleep(interval)
