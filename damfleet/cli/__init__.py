"""The ``damfleet`` command line (Typer + rich).

Commands live in sub-modules that register themselves on :data:`app`:
:mod:`damfleet.cli.dev` (dev, demo, submit), :mod:`damfleet.cli.jobs` (status, watch,
pause, resume, cancel, batch, schedules, queues), :mod:`damfleet.cli.inference`
(the gRPC inference service), :mod:`damfleet.cli.fixity` (fixity audits) and
:mod:`damfleet.cli.codec` (the payload codec server).
"""

from __future__ import annotations

import importlib
import importlib.util

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="damfleet",
    help="Temporal-orchestrated media processing fleet: ingest, transcode, AI enrichment, distribution.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_COMMAND_MODULES = (
    "damfleet.cli.dev", "damfleet.cli.jobs", "damfleet.cli.inference", "damfleet.cli.fixity", "damfleet.cli.codec",
)


def _register() -> None:
    for name in _COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def main() -> None:
    """Console-script entry point."""
    _register()
    app()
